//! What a bug looks like to a user: a panic prints one line naming it as a bug, where it
//! happened and where to report it, and the process exits 101 (Rust's exit code for a
//! panic that reaches `main`); the backtrace, and the default hook's message, only when
//! `RUST_BACKTRACE` asks for them.
//!
//! Only the panic's own message and location are printed: never the thread's name or
//! anything else of its state. A panic in a task whose end kubebridge awaits (a sink, an
//! informer) is raised again in `main` and ends the process; one in a detached task (a
//! single HTTP connection of the metrics endpoint) is reported and that task alone ends.

use std::panic::{Location, PanicHookInfo};

/// Where bugs are reported: the issues of the repository in Cargo.toml.
pub const REPORT_TO: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/issues");

/// Installs the hook. With `RUST_BACKTRACE` set (and not `0`), the default hook runs
/// too, so the backtrace is there for the report.
pub fn install() {
    let backtrace = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if backtrace {
            default(info);
        }
        eprintln!("{}", describe(info));
    }));
}

/// The one line a panic prints.
pub fn describe(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    line(message, info.location())
}

/// [`describe`]'s text, from the panic's message (if it is text) and location.
fn line(message: Option<&str>, location: Option<&Location<'_>>) -> String {
    let message = message
        .map(|m| m.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "a panic without a message".to_owned());
    let at = location.map_or_else(
        || "an unknown place".to_owned(),
        |l| format!("{}:{}", l.file(), l.line()),
    );
    format!(
        "kubebridge: internal error (a bug): {message} at {at}; please report it with the output of RUST_BACKTRACE=1 to {REPORT_TO}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn one_line_with_the_message_the_place_and_where_to_report() {
        let text = line(Some("index out of\nbounds"), Some(Location::caller()));
        assert!(
            text.starts_with(
                "kubebridge: internal error (a bug): index out of bounds at src/cmd/panic_hook.rs:"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("to https://example.invalid/kubebridge/issues"),
            "{text}"
        );
        assert!(!text.contains('\n'));
        assert!(line(None, None).contains("a panic without a message at an unknown place"));
    }

    /// The real hook path: a panic's info, caught, described. Other tests that panic
    /// meanwhile only print through this hook, so running in parallel is harmless.
    #[test]
    fn a_real_panic_is_described_by_its_message_and_place() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let previous = std::panic::take_hook();
        let sink = seen.clone();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some("panic-hook-probe") {
                sink.lock().expect("lock").push(describe(info));
            }
        }));
        let joined = std::thread::Builder::new()
            .name("panic-hook-probe".into())
            .spawn(|| {
                let n = 3;
                panic!("cannot add {n} to the clock");
            })
            .expect("spawn")
            .join();
        std::panic::set_hook(previous);
        assert!(joined.is_err(), "the thread panicked");
        let seen = seen.lock().expect("lock");
        let [text] = seen.as_slice() else {
            panic!("one description: {seen:?}")
        };
        assert!(
            text.contains("(a bug): cannot add 3 to the clock at src/cmd/panic_hook.rs:"),
            "{text}"
        );
        assert!(!text.contains("panic-hook-probe"), "no thread name: {text}");
    }
}
