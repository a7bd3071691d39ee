//! The values both the command line and the `--config` file accept, parsed in one place:
//! durations, resource lists, namespace scopes, DNS labels, formats and Kafka settings.
//! clap uses these as value parsers; the file's merge uses the same functions.

use std::time::Duration;

use kubebridge_sinks::{Format, KeyMode};

use super::NamespaceScope;

/// The longest duration any setting accepts. A year is far beyond any sensible resync,
/// grace or lease, and keeps every deadline computed from it representable (a
/// `300000000000y` would otherwise overflow the clock arithmetic and panic).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Parses `30s`, `10m`, `1h`, `1h30m` or `0`, at most [`MAX_DURATION`].
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration {s:?} ({e}); write it like 30s, 10m or 1h"))?;
    if d > MAX_DURATION {
        return Err(format!(
            "duration {s:?} is longer than the longest accepted, 365 days"
        ));
    }
    Ok(d)
}

/// The shortest `--sink-stall-timeout`: a sink is judged at most once a second, and a
/// shorter timeout would call every ordinary delivery round trip a stall.
pub const MIN_STALL_TIMEOUT: Duration = Duration::from_secs(1);

/// A sink stall timeout: a duration of at least [`MIN_STALL_TIMEOUT`].
pub fn stall_timeout(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d < MIN_STALL_TIMEOUT {
        return Err(format!("{s:?} is shorter than the shortest accepted, 1s"));
    }
    Ok(d)
}

/// kubectl's `deploy,po` form: each argument may name several resources. Names are
/// trimmed; an empty one is an error.
pub fn resources<S: AsRef<str>>(args: &[S]) -> Result<Vec<String>, String> {
    let names: Vec<String> = args
        .iter()
        .flat_map(|a| a.as_ref().split(','))
        .map(|r| r.trim().to_owned())
        .collect();
    if names.iter().any(String::is_empty) {
        return Err("a resource name is empty; name one like pods or deployments.apps".into());
    }
    Ok(names)
}

/// kubectl's namespace rule: `-A` for all, `-n` (repeatable, duplicates ignored) for
/// some, neither for the context's namespace. Every name must be a DNS label.
pub fn namespace_scope(all: bool, namespaces: &[String]) -> Result<NamespaceScope, String> {
    if all && !namespaces.is_empty() {
        return Err("namespaces and all namespaces exclude each other".into());
    }
    if all {
        return Ok(NamespaceScope::All);
    }
    if namespaces.is_empty() {
        return Ok(NamespaceScope::ContextDefault);
    }
    let mut list = Vec::with_capacity(namespaces.len());
    for ns in namespaces {
        let ns = namespace(ns)?;
        if !list.contains(&ns) {
            list.push(ns);
        }
    }
    Ok(NamespaceScope::Only(list))
}

/// One namespace name, checked as a DNS label.
pub fn namespace(s: &str) -> Result<String, String> {
    if kubebridge_apimachinery::is_dns1123_label(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "invalid namespace {s:?}: a namespace is lower-case letters, digits and '-', at most 63 characters"
        ))
    }
}

/// A sink URI, not blank.
pub fn sink_uri(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("the sink is empty; name one like stdout or kafka://HOST:PORT/TOPIC".into());
    }
    Ok(s.to_owned())
}

/// `envelope`, `cloudevents` (structured) or `cloudevents-binary`.
pub fn format(s: &str) -> Result<Format, String> {
    match s {
        "envelope" => Ok(Format::Envelope),
        "cloudevents" => Ok(Format::CloudEvents),
        "cloudevents-binary" => Ok(Format::CloudEventsBinary),
        _ => Err("use envelope, cloudevents (structured) or cloudevents-binary".into()),
    }
}

/// `namespace/name`, `name`, `uid` or `none`.
pub fn kafka_key(s: &str) -> Result<KeyMode, String> {
    s.parse::<KeyMode>()
}

/// A librdkafka property written `KEY=VALUE`, like kcat's `-X`.
pub fn kafka_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("{s:?}: write a librdkafka property as KEY=VALUE")),
    }
}

/// A duration that must not be zero (a timeout of zero would fire at once).
pub fn timeout(s: &str) -> Result<Duration, String> {
    match duration(s)? {
        d if d.is_zero() => Err(format!(
            "{s:?}: a timeout must be longer than 0; write it like 10s or 5m"
        )),
        d => Ok(d),
    }
}

/// A size in bytes: a whole number with an optional unit, `KiB`, `MiB` or `GiB` (powers
/// of 1024; `K`, `M`, `G` and `KB`, `MB`, `GB` are read the same way), at least 1 KiB and
/// at most 64 GiB.
pub fn byte_size(s: &str) -> Result<usize, String> {
    const KIB: u64 = 1024;
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => KIB * KIB,
        "g" | "gb" | "gib" => KIB * KIB * KIB,
        _ => 0,
    };
    let bytes = number
        .parse::<u64>()
        .ok()
        .filter(|_| scale > 0)
        .and_then(|n| n.checked_mul(scale));
    match bytes {
        Some(b) if (KIB..=64 * KIB * KIB * KIB).contains(&b) => {
            usize::try_from(b).map_err(|_| format!("{s:?}: too large for this machine"))
        }
        Some(_) => Err(format!("{s:?}: a size between 1KiB and 64GiB")),
        None => Err(format!(
            "{s:?}: write a size like 16MiB, 512KiB or 1GiB (a whole number, optionally with KiB, MiB or GiB)"
        )),
    }
}

/// At least 1.
pub fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?}: must be a whole number, at least 1")),
    }
}

/// A rate of changes per second: finite, 0 or more.
pub fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?}: a number of changes per second, 0 or more")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_and_timeouts_are_bounded_and_say_what_is_wrong() {
        assert_eq!(byte_size("16MiB"), Ok(16 << 20));
        assert_eq!(byte_size("1g"), Ok(1 << 30));
        assert_eq!(byte_size("2048"), Ok(2048));
        for bad in [
            "",
            "12",
            "1.5MiB",
            "-1",
            "16XB",
            "65GiB",
            "99999999999999999999",
        ] {
            let e = byte_size(bad).expect_err(bad);
            assert!(e.contains(&format!("{bad:?}")) && !e.contains('\n'), "{e}");
        }
        assert_eq!(timeout("5m"), Ok(Duration::from_secs(300)));
        assert!(timeout("0").expect_err("zero").contains("longer than 0"));
        assert!(timeout("300000000000y").is_err());
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        assert_eq!(duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(duration("5 parsecs").is_err());
        let long = duration("300000000000y").expect_err("too long");
        assert!(long.contains("longest accepted"), "{long}");
    }

    #[test]
    fn stall_timeouts_are_bounded() {
        assert_eq!(stall_timeout("2s"), Ok(Duration::from_secs(2)));
        assert!(stall_timeout("0").is_err());
        assert!(stall_timeout("500ms").is_err());
    }

    #[test]
    fn resource_lists_and_scopes() {
        assert_eq!(
            resources(&["deploy,po", " cm "]).expect("ok"),
            ["deploy", "po", "cm"]
        );
        assert!(resources(&["po,"]).is_err());
        assert_eq!(
            namespace_scope(false, &[]),
            Ok(NamespaceScope::ContextDefault)
        );
        assert_eq!(namespace_scope(true, &[]), Ok(NamespaceScope::All));
        assert_eq!(
            namespace_scope(false, &["a".into(), "b".into(), "a".into()]),
            Ok(NamespaceScope::Only(vec!["a".into(), "b".into()]))
        );
        assert!(namespace_scope(false, &["Bad_NS".into()]).is_err());
        assert!(namespace_scope(true, &["a".into()]).is_err());
    }
}
