//! Bad input, table-driven: flags, durations, numbers, selectors, sink URIs, `-X`
//! properties, config files, kubeconfigs and unreachable servers. Each row must end
//! kubebridge with its exit code (2 for bad usage or configuration, 1 for a runtime
//! failure), exactly one line on stderr, no panic or backtrace, no secret, in time.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use kubebridge_testkit::harness::{Harness, kubebridge};

/// How long one row may take: an error found at parse time is instant, and an
/// unreachable server is refused at once, so this only catches a hang.
const BOUND: Duration = Duration::from_secs(20);

/// A password planted in rows; it must never reach stderr.
const SECRET: &str = "hunter2-s3cret";

/// One bad input. In `args` and file contents, `{dir}` is a scratch directory holding
/// `files`, `{kc}` the kubeconfig of a running simulator, `{free}` a local port nothing
/// listens on, and `{secret}` [`SECRET`].
struct Row {
    args: &'static [&'static str],
    files: Vec<(&'static str, &'static str)>,
    env: Vec<(&'static str, &'static str)>,
    code: i32,
    /// A substring the one line must contain.
    says: &'static str,
}

fn row(args: &'static [&'static str], code: i32, says: &'static str) -> Row {
    Row {
        args,
        files: Vec::new(),
        env: Vec::new(),
        code,
        says,
    }
}

fn with_file(
    args: &'static [&'static str],
    file: &'static str,
    code: i32,
    says: &'static str,
) -> Row {
    Row {
        args,
        files: vec![("c.yaml", file)],
        env: Vec::new(),
        code,
        says,
    }
}

const ROUTE: &str = "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\n";

/// A kubeconfig whose server is `{server}`, written into each kubeconfig row.
const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: default\ncurrent-context: x\nusers:\n- name: u\n  user:\n    token: {secret}\n";

fn rows() -> Vec<Row> {
    vec![
        // Subcommands and required arguments.
        row(&["watch", "--kubeconfig", "{kc}"], 2, "<RESOURCE>"),
        row(&["rbac", "--kubeconfig", "{kc}"], 2, "<RESOURCE>"),
        row(&["check-config"], 2, "<FILE>"),
        row(&["frobnicate"], 2, "frobnicate"),
        row(&["watch", "pods", "--bogus"], 2, "--bogus"),
        // Durations: malformed, negative, beyond the longest accepted.
        row(
            &["watch", "pods", "--resync", "300000000000y"],
            2,
            "--resync",
        ),
        row(&["watch", "pods", "--resync", "5 parsecs"], 2, "--resync"),
        row(&["watch", "pods", "--resync", "-1s"], 2, "--resync"),
        row(
            &["watch", "pods", "--resync", "9999999999999999999999s"],
            2,
            "--resync",
        ),
        row(
            &["watch", "pods", "--shutdown-grace", "300000000000y"],
            2,
            "--shutdown-grace",
        ),
        row(
            &["watch", "pods", "--shutdown-grace", "soon"],
            2,
            "--shutdown-grace",
        ),
        row(
            &["watch", "pods", "--checkpoint", "s3://bucket/kb"],
            2,
            "write file:///DIR or configmap://[NAMESPACE]/PREFIX",
        ),
        row(
            &["rbac", "pods", "--checkpoint", "configmap://ops/Bad_Prefix"],
            2,
            "prefix \"Bad_Prefix\"",
        ),
        row(
            &["watch", "pods", "--checkpoint", "file://relative/dir"],
            2,
            "three slashes for an absolute path",
        ),
        row(
            &[
                "watch",
                "pods",
                "--checkpoint",
                "configmap://kube_system/kb",
            ],
            2,
            "namespace \"kube_system\"",
        ),
        row(
            &[
                "watch",
                "pods",
                "--checkpoint",
                "file:///tmp",
                "--checkpoint-interval",
                "100ms",
            ],
            2,
            "outside 1s to 1h",
        ),
        row(
            &["watch", "pods", "--checkpoint-interval", "10s"],
            2,
            "--checkpoint-interval (checkpointInterval in the file) needs --checkpoint",
        ),
        row(
            &[
                "watch",
                "pods",
                "--kubeconfig",
                "{kc}",
                "--checkpoint",
                "file:///nonexistent/kb",
            ],
            2,
            "--checkpoint file:///nonexistent/kb: cannot write there",
        ),
        with_file(
            &["watch", "--config", "{dir}/c.yaml"],
            "checkpoint: ftp://x\nroutes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\n",
            2,
            "checkpoint: \"ftp://x\" is not a checkpoint store",
        ),
        row(
            &[
                "watch",
                "pods",
                "--leader-elect",
                "--leader-elect-lease-duration",
                "300000000000y",
            ],
            2,
            "--leader-elect-lease-duration",
        ),
        row(
            &[
                "watch",
                "pods",
                "--leader-elect",
                "--leader-elect-renew-deadline",
                "1fortnight",
            ],
            2,
            "--leader-elect-renew-deadline",
        ),
        row(
            &[
                "watch",
                "pods",
                "--leader-elect",
                "--leader-elect-retry-period",
                "0",
            ],
            2,
            "--leader-elect-retry-period",
        ),
        row(
            &[
                "watch",
                "pods",
                "--leader-elect",
                "--leader-elect-renew-deadline",
                "20s",
            ],
            2,
            "--leader-elect-lease-duration",
        ),
        row(
            &["watch", "pods", "--leader-elect-namespace", "kube-system"],
            2,
            "--leader-elect",
        ),
        row(
            &[
                "watch",
                "pods",
                "--leader-elect",
                "--leader-elect-namespace",
                "Bad_NS",
            ],
            2,
            "Bad_NS",
        ),
        row(
            &[
                "watch",
                "pods",
                "--leader-elect",
                "--leader-elect-name",
                "Kube Bridge",
            ],
            2,
            "--leader-elect-name",
        ),
        row(
            &[
                "watch",
                "pods",
                "--leader-elect",
                "--leader-elect-identity",
                " ",
            ],
            2,
            "--leader-elect-identity",
        ),
        // The fault limits' durations and sizes.
        row(
            &["watch", "pods", "--watch-idle-timeout", "0"],
            2,
            "--watch-idle-timeout",
        ),
        row(
            &["watch", "pods", "--watch-idle-timeout", "300000000000y"],
            2,
            "--watch-idle-timeout",
        ),
        row(
            &["watch", "pods", "--watch-list-initial-timeout", "-5s"],
            2,
            "--watch-list-initial-timeout",
        ),
        row(
            &["watch", "pods", "--metrics-header-timeout", "soon"],
            2,
            "--metrics-header-timeout",
        ),
        row(
            &[
                "watch",
                "pods",
                "--metrics-connection-timeout",
                "99999999999999999999s",
            ],
            2,
            "--metrics-connection-timeout",
        ),
        row(
            &["watch", "pods", "--max-object-bytes", "1TiB"],
            2,
            "--max-object-bytes",
        ),
        row(
            &["watch", "pods", "--max-page-bytes", "-1"],
            2,
            "--max-page-bytes",
        ),
        row(
            &[
                "watch",
                "pods",
                "--max-page-bytes",
                "99999999999999999999999",
            ],
            2,
            "--max-page-bytes",
        ),
        row(
            &["watch", "pods", "--metrics-max-connections", "0"],
            2,
            "--metrics-max-connections",
        ),
        row(
            &["watch", "pods", "--metrics-probe-connections", "-1"],
            2,
            "--metrics-probe-connections",
        ),
        // Numbers: zero, negative, overflowing, beyond the largest accepted.
        row(
            &["watch", "pods", "--types", "added,updated"],
            2,
            "ADDED, MODIFIED, DELETED and SYNC",
        ),
        row(
            &["watch", "pods", "--filter", "object.status.phase =="],
            2,
            "line 1 column 23",
        ),
        row(
            &["watch", "pods", "--filter", "phase == 'Failed'"],
            2,
            "unknown variable 'phase'",
        ),
        row(
            &[
                "watch",
                "pods",
                "--filter",
                "object.a.all(x, object.b.exists(y, y == x))",
            ],
            2,
            "inside another",
        ),
        row(
            &["watch", "pods", "--ignore-field", "status/x"],
            2,
            "--ignore-field",
        ),
        row(&["watch", "pods", "--field", "/a~9"], 2, "--field"),
        row(
            &["watch", "pods", "--old-object", "half"],
            2,
            "--old-object",
        ),
        row(&["watch", "pods", "--page-size", "0"], 2, "--page-size"),
        row(&["watch", "pods", "--page-size", "-5"], 2, "--page-size"),
        row(
            &["watch", "pods", "--page-size", "99999999999"],
            2,
            "--page-size",
        ),
        row(
            &["watch", "pods", "--page-size", "4000000000"],
            2,
            "--page-size",
        ),
        row(
            &["watch", "pods", "--queue-capacity", "0"],
            2,
            "--queue-capacity",
        ),
        row(
            &["watch", "pods", "--queue-capacity", "18446744073709551616"],
            2,
            "--queue-capacity",
        ),
        row(
            &["watch", "pods", "--queue-capacity", "999999999999"],
            2,
            "--queue-capacity",
        ),
        // Addresses.
        row(
            &["watch", "pods", "--metrics-addr", "127.0.0.1:99999"],
            2,
            "--metrics-addr",
        ),
        row(
            &["watch", "pods", "--metrics-addr", "localhost"],
            2,
            "--metrics-addr",
        ),
        row(
            &["watch", "pods", "--metrics-addr", "127.0.0.1:-1"],
            2,
            "--metrics-addr",
        ),
        row(&["sim", "--listen", "nowhere"], 2, "--listen"),
        // Enumerations and switches that exclude each other.
        row(
            &["watch", "pods", "--overflow", "sometimes"],
            2,
            "--overflow",
        ),
        row(
            &["watch", "pods", "--initial-state", "maybe"],
            2,
            "--initial-state",
        ),
        row(
            &["watch", "pods", "--cache-compression", "gzip"],
            2,
            "--cache-compression",
        ),
        row(
            &["watch", "pods", "--once", "--initial-state", "skip"],
            2,
            "--once",
        ),
        row(&["watch", "pods", "--serve-cache"], 2, "--metrics-addr"),
        // Endpoint security.
        row(
            &["watch", "pods", "--metrics-auth", "kubernetes"],
            2,
            "--metrics-addr",
        ),
        row(
            &[
                "watch",
                "pods",
                "--metrics-addr",
                "127.0.0.1:0",
                "--metrics-auth",
                "yes",
            ],
            2,
            "--metrics-auth",
        ),
        row(
            &[
                "watch",
                "pods",
                "--metrics-addr",
                "127.0.0.1:0",
                "--metrics-tls-cert",
                "c.pem",
            ],
            2,
            "--metrics-tls-key",
        ),
        row(
            &[
                "watch",
                "pods",
                "--metrics-addr",
                "127.0.0.1:0",
                "--metrics-auth-cache-ttl",
                "2h",
            ],
            2,
            "--metrics-auth-cache-ttl",
        ),
        row(
            &[
                "watch",
                "pods",
                "--metrics-addr",
                "0.0.0.0:0",
                "--serve-cache",
            ],
            2,
            "--insecure-endpoints",
        ),
        row(&["watch", "pods", "--log-level", "loud"], 2, "--log-level"),
        row(
            &["watch", "pods", "--log-level", "kubebridge=loud"],
            2,
            "--log-level",
        ),
        row(&["watch", "pods", "--log-format", "xml"], 2, "--log-format"),
        // Names and scopes.
        row(&["watch", "pods", "-n", "Bad_NS"], 2, "Bad_NS"),
        row(
            &["watch", "pods", "-n", "a", "-A"],
            2,
            "cannot be used with",
        ),
        row(&["watch", "po,"], 2, "resource name is empty"),
        // Sink settings the command line checks by itself.
        row(&["watch", "pods", "-X", "acks"], 2, "KEY=VALUE"),
        row(&["watch", "pods", "-X", "=all"], 2, "KEY=VALUE"),
        row(
            &["watch", "pods", "--kafka-key", "colour"],
            2,
            "--kafka-key",
        ),
        row(&["watch", "pods", "--format", "xml"], 2, "--format"),
        row(&["watch", "pods", "--sink", " "], 2, "the sink is empty"),
        // The demo and the simulator.
        row(&["demo", "--churn=-1"], 2, "--churn"),
        row(&["demo", "--churn", "1e400"], 2, "--churn"),
        row(&["demo", "--churn", "1e300"], 2, "--churn"),
        row(&["demo", "--sim-pods", "99999999999"], 2, "--sim-pods"),
        row(&["demo", "--sim-namespaces", "many"], 2, "--sim-namespaces"),
        row(&["sim", "--pods", "-1"], 2, "--pods"),
        row(&["sim", "--history", "99999999999999"], 2, "--history"),
        row(&["sim", "--namespaces", "99999999999"], 2, "--namespaces"),
        row(
            &["sim", "--deployments-per-namespace", "99999999999"],
            2,
            "--deployments-per-namespace",
        ),
        row(&["sim", "--seed", "abc"], 2, "--seed"),
        row(&["sim", "--replay", "0"], 2, "--replay"),
        row(
            &["sim", "--replay", "10", "--replay-events", "9999999"],
            2,
            "--replay-events",
        ),
        row(&["sim", "--replay-events", "10"], 2, "--replay"),
        row(&["sim", "--replay", "10", "--churn", "5"], 2, "--churn"),
        // Selectors, checked by the API server (a reachable one).
        row(
            &[
                "watch",
                "pods",
                "-A",
                "--once",
                "-l",
                "a in (b",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "a in (b",
        ),
        row(
            &[
                "watch",
                "pods",
                "-A",
                "--once",
                "-l",
                "=x",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "=x",
        ),
        row(
            &[
                "watch",
                "pods",
                "-A",
                "--once",
                "--field-selector",
                "spec.colour=blue",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "spec.colour",
        ),
        row(
            &["watch", "nosuchthings", "--once", "--kubeconfig", "{kc}"],
            2,
            "nosuchthings",
        ),
        // Sink URIs, checked once the plan is known; a password in one never shows.
        row(
            &[
                "watch",
                "pods",
                "-A",
                "--sink",
                "ftp://h/t",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "ftp",
        ),
        row(
            &[
                "watch",
                "pods",
                "-A",
                "--sink",
                "kafka://h:1",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "topic",
        ),
        row(
            &[
                "watch",
                "pods",
                "-A",
                "--sink",
                "kafka://h:99999/t",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "99999",
        ),
        row(
            &[
                "watch",
                "pods",
                "-A",
                "--sink",
                "nats://user:{secret}@h:99999/p",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "nats",
        ),
        row(
            &[
                "watch",
                "pods",
                "-A",
                "--sink",
                "nats://user:{secret}@:4222/p",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "nats",
        ),
        // Credentials in text that is not a URI (no scheme; a `?` in the password).
        row(
            &[
                "watch",
                "pods",
                "-A",
                "--sink",
                "user:pa?{secret}@h:4222/p",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "unknown sink",
        ),
        // A -X without its `=`: clap would quote the value back.
        row(
            &[
                "watch",
                "pods",
                "-A",
                "-X",
                "sasl.password:{secret}",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "KEY=VALUE",
        ),
        row(
            &[
                "watch",
                "pods",
                "-A",
                "--sink",
                "kafka://user:{secret}@h:port/t",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "kafka",
        ),
        row(
            &[
                "watch",
                "pods",
                "-A",
                "--sink",
                "jetstream://h:4222",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "jetstream",
        ),
        row(
            &[
                "watch",
                "pods",
                "-A",
                "--sink",
                "stdout://x",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "stdout",
        ),
        // -X properties librdkafka refuses.
        row(
            &[
                "watch",
                "pods",
                "-A",
                "--sink",
                "kafka://h:1/t",
                "-X",
                "acks=sometimes",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "acks",
        ),
        row(
            &[
                "watch",
                "pods",
                "-A",
                "--sink",
                "kafka://h:1/t",
                "-X",
                "sasl.password={secret}",
                "-X",
                "no.such.property=1",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "no.such.property",
        ),
        // Config files.
        with_file(
            &["watch", "--config", "{dir}/c.yaml"],
            "routes: [\n",
            2,
            "c.yaml",
        ),
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "routes:\n  - name: r\n   resources: [pods]\n",
            2,
            "c.yaml",
        ),
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "colour: blue\nroutes: []\n",
            2,
            "colour",
        ),
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "routes:\n  - name: r\n    resources: pods\n    sinks: [stdout]\n",
            2,
            "c.yaml",
        ),
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\nqueueCapacity: lots\n",
            2,
            "queueCapacity",
        ),
        // Redaction: an empty key file, a key that is a directory, an empty key in the
        // environment, a pointer that is not one; the key is never printed.
        Row {
            args: &[
                "watch",
                "secrets",
                "--redaction-key-file",
                "{dir}/key",
                "--kubeconfig",
                "{kc}",
            ],
            files: vec![("key", "\n")],
            env: Vec::new(),
            code: 2,
            says: "key: the file is empty",
        },
        row(
            &[
                "watch",
                "secrets",
                "--redaction-key-file",
                "{dir}",
                "--kubeconfig",
                "{kc}",
            ],
            2,
            "--redaction-key-file",
        ),
        Row {
            args: &["watch", "secrets", "--kubeconfig", "{kc}"],
            files: Vec::new(),
            env: vec![("KUBEBRIDGE_REDACTION_KEY", "")],
            code: 2,
            says: "KUBEBRIDGE_REDACTION_KEY is set but empty",
        },
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\nredact:\n  - resource: secrets\n    paths: [\"/data/x~\"]\n",
            2,
            "redact rule 1",
        ),
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\nqueueCapacity: 0\n",
            2,
            "queueCapacity",
        ),
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\nqueueCapacity: 999999999999\n",
            2,
            "queueCapacity",
        ),
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\nqueueCapacity: -3\n",
            2,
            "queueCapacity",
        ),
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\nresync: 300000000000y\n",
            2,
            "resync",
        ),
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\nshutdownGrace: whenever\n",
            2,
            "shutdownGrace",
        ),
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\nmetricsAddr: 127.0.0.1:99999\n",
            2,
            "metricsAddr",
        ),
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\nserveCache: yes please\n",
            2,
            "serveCache",
        ),
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [stdout]\n    labelSelector: ${KUBEBRIDGE_TEST_UNSET}\n",
            2,
            "KUBEBRIDGE_TEST_UNSET",
        ),
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [\"kafka://h:1/t\"]\n    kafka:\n      key: colour\n      properties:\n        sasl.password: {secret}\n",
            2,
            "kafka.key",
        ),
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "routes:\n  - name: r\n    resources: [pods]\n    sinks: [\"nats://u:{secret}@h:99999/p\"]\n",
            2,
            "nats",
        ),
        with_file(&["check-config", "{dir}/c.yaml"], "", 2, "c.yaml"),
        with_file(
            &["check-config", "{dir}/c.yaml"],
            "\u{0}\u{1}binary",
            2,
            "c.yaml",
        ),
        row(&["check-config", "{dir}/missing.yaml"], 2, "missing.yaml"),
        row(&["check-config", "{dir}"], 2, "--config"),
        Row {
            env: vec![("KUBEBRIDGE_TEST_SET", "a in (b")],
            ..with_file(
                &["watch", "--config", "{dir}/c.yaml", "--kubeconfig", "{kc}"],
                "routes:\n  - name: r\n    resources: [pods]\n    allNamespaces: true\n    sinks: [stdout]\n    labelSelector: ${KUBEBRIDGE_TEST_SET}\n",
                2,
                "a in (b",
            )
        },
        // Kubeconfigs.
        row(
            &["watch", "pods", "--kubeconfig", "{dir}/missing"],
            2,
            "missing",
        ),
        Row {
            env: vec![("KUBECONFIG", "{dir}/missing")],
            ..row(&["watch", "pods"], 2, "missing")
        },
        Row {
            files: vec![("kc", "\u{0}garbage: [")],
            ..row(
                &["watch", "pods", "--kubeconfig", "{dir}/kc"],
                2,
                "kubeconfig",
            )
        },
        Row {
            files: vec![("kc", "sim-server")],
            ..row(
                &[
                    "watch",
                    "pods",
                    "--kubeconfig",
                    "{dir}/kc",
                    "--context",
                    "nosuch",
                ],
                2,
                "nosuch",
            )
        },
        Row {
            files: vec![(
                "kc",
                "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
            )],
            ..row(&["watch", "pods", "--kubeconfig", "{dir}/kc"], 2, "context")
        },
        Row {
            // The parser's snippet of the lines around the error would show the token.
            files: vec![("kc", "token-then-garbage")],
            ..row(
                &["watch", "pods", "--kubeconfig", "{dir}/kc"],
                2,
                "kubeconfig",
            )
        },
        Row {
            files: vec![("kc", "bad-server")],
            ..row(
                &["watch", "pods", "--kubeconfig", "{dir}/kc"],
                2,
                "cluster url",
            )
        },
        Row {
            files: vec![("kc", "http-free")],
            // The retries are logged as they happen (warn); this row checks the end.
            env: vec![("RUST_LOG", "off")],
            ..row(
                &["watch", "pods", "--kubeconfig", "{dir}/kc"],
                1,
                "cannot reach",
            )
        },
        Row {
            files: vec![("kc", "http-free")],
            // The retries are logged as they happen (warn); this row checks the end.
            env: vec![("RUST_LOG", "off")],
            ..row(
                &["rbac", "pods", "--kubeconfig", "{dir}/kc"],
                1,
                "cannot reach",
            )
        },
        Row {
            files: vec![("kc", "http-free")],
            // The retries are logged as they happen (warn); this row checks the end.
            env: vec![("RUST_LOG", "off")],
            ..row(
                &[
                    "watch",
                    "pods",
                    "--once",
                    "--leader-elect",
                    "--kubeconfig",
                    "{dir}/kc",
                ],
                1,
                "cannot reach",
            )
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_one_line_and_its_exit_code() {
    let harness = Harness::empty().await;
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let kc = harness.kubeconfig.to_str().unwrap().to_owned();
    let all = rows();
    assert!(all.len() >= 50, "{} rows", all.len());
    let mut failures = Vec::new();
    for (i, row) in all.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let dir_text = dir.path().to_str().unwrap().to_owned();
        let fill = |s: &str| {
            s.replace("{dir}", &dir_text)
                .replace("{kc}", &kc)
                .replace("{free}", &free.to_string())
                .replace("{secret}", SECRET)
        };
        for (name, text) in &row.files {
            let text = match *text {
                "bad-server" => KUBECONFIG.replace("{server}", "not a url at all"),
                "http-free" => KUBECONFIG.replace("{server}", &format!("http://{free}")),
                "token-then-garbage" => {
                    KUBECONFIG.replace("{server}", &harness.sim.url()) + "  : [garbage\n"
                }
                "sim-server" => KUBECONFIG.replace("{server}", &harness.sim.url()),
                other => other.to_owned(),
            };
            std::fs::write(dir.path().join(name), fill(&text)).unwrap();
        }
        let args: Vec<String> = row.args.iter().map(|a| fill(a)).collect();
        let mut cmd = kubebridge();
        cmd.args(&args);
        for (k, v) in &row.env {
            cmd.env(k, fill(v));
        }
        let started = Instant::now();
        let out = match tokio::time::timeout(BOUND, cmd.output()).await {
            Ok(out) => out.unwrap(),
            Err(_) => {
                failures.push(format!("row {i} {args:?}: still running after {BOUND:?}"));
                continue;
            }
        };
        let code = out.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines = stderr.trim_end_matches('\n').lines().count();
        let mut wrong = Vec::new();
        if code != row.code {
            wrong.push(format!("exit {code}, expected {}", row.code));
        }
        if lines != 1 {
            wrong.push(format!("{lines} lines on stderr"));
        }
        if !stderr.contains(row.says) {
            wrong.push(format!("does not say {:?}", row.says));
        }
        for banned in ["panicked", "RUST_BACKTRACE", SECRET] {
            if stderr.contains(banned) {
                wrong.push(format!("says {banned:?}"));
            }
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "row {i} {args:?} ({:.1?}): {}\n    stderr: {stderr}",
                started.elapsed(),
                wrong.join(", ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

/// The control: a good config, the one the bad rows change, runs to the end with
/// `--once`; so the bad rows fail for what they change, not for what they share.
#[tokio::test]
async fn the_control_config_is_good() {
    let harness = Harness::empty().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, ROUTE).unwrap();
    let mut cmd = harness.watch(&["--once", "--config", path.to_str().unwrap()]);
    let out = tokio::time::timeout(BOUND, cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An invalid RUST_LOG is not fatal (it is the environment, often shared with other
/// programs): kubebridge warns once, names it, and runs with --log-level.
#[tokio::test]
async fn an_invalid_rust_log_warns_once_and_falls_back() {
    let harness = Harness::empty().await;
    let mut cmd = harness.watch(&["pods", "-A", "--once"]);
    cmd.env("RUST_LOG", "kubebridge=loud");
    let out = tokio::time::timeout(BOUND, cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.matches("RUST_LOG").count(),
        1,
        "one warning naming RUST_LOG: {stderr}"
    );
    assert!(stderr.contains("kubebridge=loud"), "{stderr}");
}

/// Set in the child process of [`a_panic_is_one_line_naming_the_bug`].
const PROBE: &str = "KUBEBRIDGE_PANIC_PROBE";

/// The child's body: with [`PROBE`] set, installs kubebridge's panic hook and panics
/// as a bug would; run by the test below, it does nothing on its own.
#[test]
fn panic_probe_child() {
    if std::env::var_os(PROBE).is_some() {
        kubebridge::cmd::panic_hook::install();
        panic!("the clock cannot go back");
    }
}

/// The whole path of a bug: this test binary runs itself as the child above, whose
/// panic goes through kubebridge's hook. One line naming the bug, the place and where
/// to report it; no backtrace unless RUST_BACKTRACE asks for one.
#[test]
fn a_panic_is_one_line_naming_the_bug() {
    let run = |backtrace: Option<&str>| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "panic_probe_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PROBE, "1")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
        if let Some(b) = backtrace {
            cmd.env("RUST_BACKTRACE", b);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(None);
    assert_eq!(code, Some(101), "{stderr}");
    let [line] = stderr.lines().collect::<Vec<_>>()[..] else {
        panic!("one line: {stderr}")
    };
    assert!(
        line.starts_with(
            "kubebridge: internal error (a bug): the clock cannot go back at tests/bad_input.rs:"
        ),
        "{line}"
    );
    assert!(
        line.ends_with(&format!("to {}", kubebridge::cmd::panic_hook::REPORT_TO)),
        "{line}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains(SECRET),
        "{stderr}"
    );

    let (code, stderr) = run(Some("1"));
    assert_eq!(code, Some(101), "{stderr}");
    assert!(stderr.contains("stack backtrace"), "{stderr}");
    assert!(
        stderr.contains("kubebridge: internal error (a bug)"),
        "{stderr}"
    );
}
