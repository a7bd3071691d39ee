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

/// `--checkpoint-interval`: 1s to 1h. Under a second, a large checkpoint would be
/// rewritten faster than it can be written; over an hour, a crash repeats too much.
pub fn checkpoint_interval(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
        return Err(format!("{s:?} is outside 1s to 1h"));
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

/// An object name: a DNS-1123 subdomain, as the API server checks it.
pub fn object_name(s: &str) -> Result<String, String> {
    match kubebridge_apimachinery::dns1123_subdomain_error(s) {
        None => Ok(s.to_owned()),
        Some(e) => Err(e),
    }
}

/// The longest suffix `kubebridge rbac` appends to `--name` (its metrics-reader role).
const RBAC_SUFFIX: &str = "-metrics-reader";

/// `kubebridge rbac --name`: an object name that stays one with the suffixes of the
/// extra roles; it is written into YAML, so anything else (a crafted name holding a
/// newline and rules) is refused here rather than escaped later.
pub fn rbac_name(s: &str) -> Result<String, String> {
    object_name(s)?;
    object_name(&format!("{s}{RBAC_SUFFIX}"))
        .map_err(|_| format!("{s:?} is too long: the roles named after it add {RBAC_SUFFIX:?} and must stay within 253 characters"))?;
    Ok(s.to_owned())
}

/// A ServiceAccount as `NAMESPACE/NAME`.
pub fn service_account(s: &str) -> Result<(String, String), String> {
    let (ns, name) = s.split_once('/').ok_or_else(|| {
        format!("{s:?} is not NAMESPACE/NAME; write e.g. monitoring/prometheus-k8s")
    })?;
    Ok((namespace(ns)?, object_name(name)?))
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
        // The argument is not echoed: without its '=' it may still be `sasl.password:…`.
        _ => Err("write a librdkafka property as KEY=VALUE (no KEY= found)".to_owned()),
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

/// `--metrics-auth-cache-ttl`: 0 (no caching) up to 1 h, so a revoked token or
/// permission is honoured within the hour at worst.
pub fn auth_cache_ttl(s: &str) -> Result<Duration, String> {
    match duration(s)? {
        d if d > Duration::from_secs(3600) => Err(format!(
            "{s:?}: the review cache keeps answers at most 1h, so a revoked token or permission is honoured soon; write it like 1m"
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

/// The most objects one LIST page may ask for: 200 times client-go's 500, far above
/// any page an API server is tuned for, and low enough that a typo is caught.
pub const MAX_PAGE_SIZE: u32 = 100_000;

/// The largest sink queue: 100 times the default 10,000; with updates that pin an object
/// and its old object each, more would exceed any sensible memory limit.
pub const MAX_QUEUE_CAPACITY: usize = 1_000_000;

/// The simulator's limits: a seed or history larger than these would take gigabytes
/// (a seed pod is about 3 KB) or minutes to build, and a churn faster than this would
/// hold the store's lock for whole ticks.
pub const MAX_SIM_NAMESPACES: usize = 10_000;
/// See [`MAX_SIM_NAMESPACES`].
pub const MAX_SIM_PODS: usize = 100_000;
/// See [`MAX_SIM_NAMESPACES`].
pub const MAX_SIM_DEPLOYMENTS_PER_NAMESPACE: usize = 100;
/// A window, not an allocation: history holds only the events that happened, so the
/// informer benchmark's 2,000,000 (far more than its run makes) is well inside it.
pub const MAX_SIM_HISTORY: usize = 10_000_000;

/// Most events a replay server pre-builds: each holds a ~4.5 KB pod in memory, so a
/// million is about 4.5 GB.
pub const MAX_REPLAY_EVENTS: usize = 1_000_000;
/// See [`MAX_SIM_NAMESPACES`].
pub const MAX_CHURN_PER_SEC: f64 = 100_000.0;

/// `n` when `min <= n <= max`, else a message naming the range.
pub fn within<N: PartialOrd + std::fmt::Display>(n: N, min: N, max: N) -> Result<N, String> {
    if n >= min && n <= max {
        Ok(n)
    } else {
        Err(format!(
            "{n} is out of range: a whole number from {min} to {max}"
        ))
    }
}

/// A whole number from `min` to `max`.
fn whole<N>(s: &str, min: N, max: N) -> Result<N, String>
where
    N: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match s.trim().parse::<N>() {
        Ok(n) => within(n, min, max),
        Err(_) => Err(format!("a whole number from {min} to {max}")),
    }
}

/// `--page-size`: 1 to [`MAX_PAGE_SIZE`].
pub fn page_size(s: &str) -> Result<u32, String> {
    whole(s, 1, MAX_PAGE_SIZE)
}

/// `--queue-capacity`: 1 to [`MAX_QUEUE_CAPACITY`].
pub fn queue_capacity(s: &str) -> Result<usize, String> {
    whole(s, 1, MAX_QUEUE_CAPACITY)
}

/// The simulator's namespaces: 0 to [`MAX_SIM_NAMESPACES`].
pub fn sim_namespaces(s: &str) -> Result<usize, String> {
    whole(s, 0, MAX_SIM_NAMESPACES)
}

/// The simulator's pods: 0 to [`MAX_SIM_PODS`].
pub fn sim_pods(s: &str) -> Result<usize, String> {
    whole(s, 0, MAX_SIM_PODS)
}

/// The simulator's deployments per namespace: 0 to [`MAX_SIM_DEPLOYMENTS_PER_NAMESPACE`].
pub fn sim_deployments(s: &str) -> Result<usize, String> {
    whole(s, 0, MAX_SIM_DEPLOYMENTS_PER_NAMESPACE)
}

/// The replay server's pods: 1 to [`MAX_SIM_PODS`].
pub fn replay_pods(s: &str) -> Result<usize, String> {
    whole(s, 1, MAX_SIM_PODS)
}

/// The replay server's watch events: 0 to [`MAX_REPLAY_EVENTS`].
pub fn replay_events(s: &str) -> Result<usize, String> {
    whole(s, 0, MAX_REPLAY_EVENTS)
}

/// The simulator's watch history in events: 1 to [`MAX_SIM_HISTORY`].
pub fn sim_history(s: &str) -> Result<usize, String> {
    whole(s, 1, MAX_SIM_HISTORY)
}

/// A rate of changes per second: 0 to [`MAX_CHURN_PER_SEC`].
pub fn rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=MAX_CHURN_PER_SEC).contains(&v) => Ok(v),
        _ => Err(format!(
            "a number of changes per second, from 0 to {MAX_CHURN_PER_SEC}"
        )),
    }
}

/// The log levels `--log-level` accepts, besides `EnvFilter` directives.
pub const LOG_LEVELS: &str = "off, error, warn, info, debug or trace";

/// `--log-level`: one of [`LOG_LEVELS`] (for kubebridge's own logs), or directives in
/// RUST_LOG's syntax, `LEVEL` or `TARGET=LEVEL` separated by commas
/// (`warn,kubebridge=debug`). Every level must be known, so a typo is an error rather
/// than a filter that silently shows nothing.
pub fn log_level(s: &str) -> Result<String, String> {
    let known = |l: &str| {
        ["off", "error", "warn", "info", "debug", "trace"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(l.trim()))
    };
    let target = |t: &str| {
        !t.trim().is_empty()
            && t.trim()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_:-".contains(c))
    };
    let ok = s.split(',').all(|d| match d.split_once('=') {
        Some((t, l)) => target(t) && known(l),
        None => known(d),
    });
    if ok {
        Ok(s.trim().to_owned())
    } else {
        Err(format!(
            "use a level ({LOG_LEVELS}) or directives like warn,kubebridge=debug"
        ))
    }
}

/// `--types`: checked here (so an unknown type is a usage error naming the valid ones),
/// turned into event types with the rest of the route.
pub fn event_types(s: &str) -> Result<String, String> {
    crate::filter::parse_types(&[s])?;
    Ok(s.to_owned())
}

/// `--filter`: a CEL expression that compiles within the bounds.
pub fn cel_filter(s: &str) -> Result<String, String> {
    crate::filter::FilterConfig {
        filter: Some(s.to_owned()),
        ..Default::default()
    }
    .validate()?;
    Ok(s.to_owned())
}

/// `--ignore-field`, `--field`: a JSON pointer, `*` for any index or key.
pub fn json_pointer(s: &str) -> Result<String, String> {
    crate::pointer::Pointer::parse(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
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
    fn numbers_are_bounded() {
        assert_eq!(page_size("500"), Ok(500));
        assert!(page_size("0").is_err());
        assert!(page_size("4000000000").is_err());
        assert_eq!(queue_capacity("10000"), Ok(10_000));
        assert!(queue_capacity("999999999999").is_err());
        assert!(queue_capacity("18446744073709551616").is_err());
        assert!(sim_pods("99999999999").is_err());
        assert!(sim_history("0").is_err());
        assert_eq!(rate("2"), Ok(2.0));
        for bad in ["-1", "1e300", "inf", "NaN", "fast"] {
            assert!(rate(bad).is_err(), "{bad}");
        }
        let e = within(7usize, 1, 5).expect_err("out of range");
        assert!(e.contains("from 1 to 5"), "{e}");
    }

    #[test]
    fn log_levels_are_checked() {
        for good in [
            "warn",
            "INFO",
            "off",
            "warn,kubebridge=debug",
            "kube_client::client=trace",
        ] {
            assert!(log_level(good).is_ok(), "{good}");
        }
        for bad in [
            "loud",
            "",
            "kubebridge=loud",
            "info,",
            "=info",
            "kubebridge",
        ] {
            let e = log_level(bad).expect_err(bad);
            assert!(e.contains("error, warn, info"), "{e}");
        }
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
