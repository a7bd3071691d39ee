//! The `kubebridge` binary: parse, run, map the outcome to an exit code.

use std::error::Error;
use std::process::ExitCode;

use kubebridge::config::{self, CliExit, LogFormat, Logging};

fn main() -> ExitCode {
    kubebridge::cmd::panic_hook::install();
    let (command, logging) = match config::parse(std::env::args_os()) {
        Ok(parsed) => parsed,
        Err(CliExit::Info(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(CliExit::Usage(message)) => {
            eprintln!("kubebridge: {message}");
            return ExitCode::from(2);
        }
    };
    // check-config builds sinks only to validate them; their clients' connection
    // attempts in the background are not findings.
    let quiet_clients = matches!(command, config::Command::CheckConfig { .. });
    init_logging(&logging, quiet_clients);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kubebridge: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(kubebridge::cmd::run(command, shutdown_signal()));
    // A stdout write blocked on a reader that went away must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubebridge: {}", chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

/// The error and its causes on one line, skipping causes already in the message. Only
/// the first line of each is kept: what follows it is a parser's snippet of the input
/// (a kubeconfig's, with a token on the next line) or detail for a log, not for the one
/// line a user reads.
fn chain(e: &dyn Error) -> String {
    let mut text = first_line(&e.to_string()).to_owned();
    let mut source = e.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        let next = first_line(&next);
        if !text.contains(next) {
            text.push_str(": ");
            text.push_str(next);
        }
        source = cause.source();
    }
    text
}

/// `text`'s first line that is not blank, trimmed.
fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
}

/// Logs go to stderr, never to stdout, which carries the JSON lines. A RUST_LOG that
/// does not parse is not fatal (the environment is often shared with other programs):
/// one warning names it, and `--log-level` applies.
fn init_logging(logging: &Logging, quiet_clients: bool) {
    use tracing_subscriber::EnvFilter;
    let level = &logging.level;
    let others = if quiet_clients { "off" } else { "warn" };
    // A plain level is for kubebridge's own logs; directives (checked at parse time) are
    // taken as they are written.
    let own = if level.contains(['=', ',']) {
        level.clone()
    } else {
        format!("kubebridge={level},kubebridge_sinks={level},{others}")
    };
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (filter, bad_env) = match env.as_deref().map(EnvFilter::try_new) {
        Some(Ok(filter)) => (filter, None),
        Some(Err(e)) => (EnvFilter::new(&own), env.map(|v| (v, e.to_string()))),
        None => (EnvFilter::new(&own), None),
    };
    let filter = if quiet_clients {
        [
            "rdkafka=off",
            "librdkafka=off",
            "async_nats=off",
            // The Kafka sink's own relay of librdkafka's client errors.
            "kubebridge_sinks::kafka::health=off",
        ]
        .iter()
        .filter_map(|d| d.parse().ok())
        .fold(filter, |f, d| f.add_directive(d))
    } else {
        filter
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match logging.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    if let Some((value, error)) = bad_env {
        tracing::warn!(
            rust_log = %value, %error,
            "ignoring RUST_LOG, which is not a valid filter; logging at --log-level {level}"
        );
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot use kubeconfig k: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("line 3: bad\n 2 |   token: s3cret\n 3 | : [")]
    struct Inner;

    #[test]
    fn one_line_without_the_parsers_snippet() {
        assert_eq!(chain(&Outer(Inner)), "cannot use kubeconfig k: line 3: bad");
    }
}
