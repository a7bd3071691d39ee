//! The randomized fault run (issue 8's proof): churn on several resources in the
//! simulator while kubebridge streams them to JetStream and stdout and random faults
//! fire; at the end every sink is consumed and [`crate::checker`] compares, per object,
//! the last delivered state with the simulator's final state.
//!
//! Reproducible from its seed: the churn's operations, the faults, their order, the
//! pauses between them and their lengths all come from the seed, and the schedule is
//! printed. (The interleaving of churn and faults with kubebridge's own timing is not:
//! the run checks an invariant that holds for every interleaving.)
//!
//! Run by tests/fault_run.rs (CI size) and tests/bench/fault_run.rs (longer, with
//! kubebridge's peak RSS).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::task::JoinHandle;

use crate::brokers::{
    Broker, Forwarder, PrivateNats, STARTUP, free_port, tansu_broker_behind, wait_listening,
};
use crate::checker::{self, Key, Present, Report};
use crate::consume::{jetstream_messages, kafka_messages};
use crate::envelope::parse_notification;
use crate::harness::{Harness, kubebridge};

/// The seed of CI's run; `KUBEBRIDGE_FAULT_SEED` overrides it.
pub const CI_SEED: u64 = 20_261_128;

/// The JetStream stream the run writes to.
const STREAM: &str = "KB_FAULTS";

/// The Kafka topic the run writes to, when it has a Kafka sink.
const TOPIC: &str = "kb.faults";

/// The resources churned and watched: (watch argument, resource key, list path).
const RESOURCES: [(&str, &str, &str); 3] = [
    ("pods", "pods", "/api/v1/pods"),
    (
        "deployments.apps",
        "deployments.apps",
        "/apis/apps/v1/deployments",
    ),
    ("configmaps", "configmaps", "/api/v1/configmaps"),
];

/// Namespaces the churn writes in.
const NAMESPACES: [&str; 2] = ["fr-0", "fr-1"];

/// Names per resource and namespace, so objects are updated, deleted and recreated
/// many times over.
const NAMES: usize = 8;

/// How long kubebridge has, once churn and faults stop, to deliver the final states
/// to every sink; `KUBEBRIDGE_FAULT_CATCH_UP_SECONDS` overrides it.
const CATCH_UP: Duration = Duration::from_secs(90);

fn catch_up() -> Duration {
    std::env::var("KUBEBRIDGE_FAULT_CATCH_UP_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(CATCH_UP, Duration::from_secs)
}

/// A fault the run can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// Every open watch ends cleanly; kubebridge resumes from its resourceVersion.
    WatchDrop,
    /// History compacted to now and watches dropped: resumes from older
    /// resourceVersions get 410 Gone, kubebridge relists.
    Compaction,
    /// The API server restarts and loses its watch cache ([`kubebridge_sim::Faults::restart`]):
    /// every resume gets 410, kubebridge relists.
    ApiRestart,
    /// The JetStream server is killed (SIGKILL) and started again on the same port and
    /// store after a pause, while the churn goes on.
    JetStreamRestart,
    /// The JetStream server is frozen (SIGSTOP) for a pause, then resumed (SIGCONT):
    /// connections stay open but nothing answers.
    JetStreamFreeze,
    /// kubebridge gets SIGTERM, exits, and is started again; it resumes from its
    /// checkpoint (`--checkpoint`), so its LIST sends only what changed while it was
    /// down. The churn pauses while it is down unless [`Fault::DeleteWhileDown`] is
    /// enabled.
    KubebridgeRestart,
    /// Watches go silent (open, nothing sent) for a few seconds.
    SilentWatches,
    /// Every new watch meets a line that is not JSON (and open ones meet one, and an
    /// object without metadata) for a few seconds.
    GarbageLine,
    /// Every watch is answered 410 Gone for a few seconds: a relist storm.
    EveryWatchGone,
    /// The churn (creates, updates, deletes, delete-and-recreate) goes on while
    /// kubebridge is down: the restart must deliver it from its checkpoint, deletes as
    /// tombstones.
    DeleteWhileDown,
    /// The Kafka broker (tansu, in memory) is killed and a new one started behind the
    /// same address, without the old one's state. Enabling it adds a Kafka sink to the
    /// run, checked from the last restart on ([`checker::check_since`]).
    KafkaBrokerRestart,
}

impl Fault {
    /// Every fault, for parsing names.
    pub const ALL: [Fault; 11] = [
        Fault::WatchDrop,
        Fault::Compaction,
        Fault::ApiRestart,
        Fault::JetStreamRestart,
        Fault::JetStreamFreeze,
        Fault::KubebridgeRestart,
        Fault::SilentWatches,
        Fault::GarbageLine,
        Fault::EveryWatchGone,
        Fault::DeleteWhileDown,
        Fault::KafkaBrokerRestart,
    ];

    /// The name used in the schedule, the counts and `KUBEBRIDGE_FAULT_ENABLE`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::WatchDrop => "watch-drop",
            Fault::Compaction => "compaction-410",
            Fault::ApiRestart => "api-server-restart",
            Fault::JetStreamRestart => "jetstream-restart",
            Fault::JetStreamFreeze => "jetstream-freeze",
            Fault::KubebridgeRestart => "kubebridge-restart",
            Fault::SilentWatches => "silent-watches",
            Fault::GarbageLine => "garbage-line",
            Fault::EveryWatchGone => "410-every-watch",
            Fault::DeleteWhileDown => "delete-while-down",
            Fault::KafkaBrokerRestart => "kafka-broker-restart",
        }
    }

    fn parse(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name.trim())
    }
}

/// The faults today's kubebridge survives: the default set. Silent watches need the
/// short idle timeout of [`BASE_ARGS`] to be noticed within a run.
pub const SURVIVED: [Fault; 11] = [
    Fault::WatchDrop,
    Fault::Compaction,
    Fault::ApiRestart,
    Fault::JetStreamRestart,
    Fault::JetStreamFreeze,
    Fault::KubebridgeRestart,
    Fault::SilentWatches,
    Fault::GarbageLine,
    Fault::EveryWatchGone,
    Fault::KafkaBrokerRestart,
    Fault::DeleteWhileDown,
];

/// Arguments every run gives `kubebridge watch`: an idle timeout short enough that a
/// silenced watch is dropped and resumed within a run of seconds (the default is 5m),
/// and `--no-suppress`: the checker holds a sink to the final resourceVersion of every
/// object, and the churn can change a pod's label and change it back within a relist
/// gap, which the default noise suppression rightly does not publish (the content is
/// the same); the run checks delivery, so it publishes every change.
pub const BASE_ARGS: [&str; 3] = ["--watch-idle-timeout", "5s", "--no-suppress"];

/// Faults off by default, each with what turns it on. Enable one for a run with
/// `KUBEBRIDGE_FAULT_ENABLE=name,name` (and `KUBEBRIDGE_FAULT_ARGS` for the flag it
/// needs); move it to [`SURVIVED`] once its fix is merged.
pub const PENDING: [(Fault, &str); 0] = [];

/// What one run does.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Seeds the churn and the fault schedule.
    pub seed: u64,
    /// How long churn and faults go on.
    pub duration: Duration,
    /// The faults drawn from.
    pub faults: Vec<Fault>,
    /// Pause between two churn operations.
    pub churn_interval: Duration,
    /// Extra arguments for `kubebridge watch`.
    pub extra_args: Vec<String>,
}

impl RunConfig {
    /// [`SURVIVED`] plus `KUBEBRIDGE_FAULT_ENABLE` (or exactly `KUBEBRIDGE_FAULT_ONLY`,
    /// to show one fault alone), the seed from `KUBEBRIDGE_FAULT_SEED`
    /// (else [`CI_SEED`]), extra kubebridge arguments from `KUBEBRIDGE_FAULT_ARGS`
    /// (split on spaces) after [`BASE_ARGS`].
    pub fn from_env(duration: Duration) -> RunConfig {
        let seed = std::env::var("KUBEBRIDGE_FAULT_SEED")
            .ok()
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("KUBEBRIDGE_FAULT_SEED={s} is not a number"))
            })
            .unwrap_or(CI_SEED);
        let only = std::env::var("KUBEBRIDGE_FAULT_ONLY").unwrap_or_default();
        let (mut faults, names) = if only.trim().is_empty() {
            (
                SURVIVED.to_vec(),
                std::env::var("KUBEBRIDGE_FAULT_ENABLE").unwrap_or_default(),
            )
        } else {
            (Vec::new(), only)
        };
        for name in names.split(',').filter(|n| !n.trim().is_empty()) {
            let f = Fault::parse(name).unwrap_or_else(|| {
                panic!(
                    "KUBEBRIDGE_FAULT_ENABLE: unknown fault {name:?}; known: {}",
                    Fault::ALL.map(Fault::name).join(", ")
                )
            });
            if !faults.contains(&f) {
                faults.push(f);
            }
        }
        let extra_args = BASE_ARGS
            .iter()
            .map(|a| (*a).to_string())
            .chain(
                std::env::var("KUBEBRIDGE_FAULT_ARGS")
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_string),
            )
            .collect();
        RunConfig {
            seed,
            duration,
            faults,
            churn_interval: Duration::from_millis(25),
            extra_args,
        }
    }
}

/// SplitMix64: a small seeded generator, so a seed reproduces the run without a
/// dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..hi` milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

/// What the run found; [`RunReport::passed`] is the verdict.
#[derive(Debug, Default)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The faults drawn from.
    pub enabled: Vec<Fault>,
    /// (seconds since the start, fault name, detail) of every fault injected.
    pub schedule: Vec<(f64, &'static str, String)>,
    /// Churn operations by kind (create, update, delete, recreate).
    pub churn: BTreeMap<&'static str, usize>,
    /// One report per sink.
    pub sinks: Vec<Report>,
    /// The exit code of every kubebridge that was stopped (SIGTERM must give 0).
    pub exit_codes: Vec<i32>,
    /// The highest VmHWM of any kubebridge process, KiB.
    pub peak_rss_kib: u64,
    /// How long the sinks took to converge once churn and faults stopped.
    pub catch_up: Duration,
}

impl RunReport {
    /// Faults injected, by name.
    pub fn faults_by_kind(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for (_, name, _) in &self.schedule {
            *out.entry(*name).or_default() += 1;
        }
        out
    }

    /// Nothing lost on any sink, no known gap hit (a known gap is reported apart, but
    /// it is not a pass), and every kubebridge exited 0.
    pub fn passed(&self) -> bool {
        !self.sinks.is_empty()
            && self
                .sinks
                .iter()
                .all(|s| s.passed() && s.known_gap.is_empty())
            && self.exit_codes.iter().all(|c| *c == 0)
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "fault run, seed {} (KUBEBRIDGE_FAULT_SEED={0} reproduces it)",
            self.seed
        )?;
        let enabled: Vec<_> = self.enabled.iter().map(|f| f.name()).collect();
        writeln!(f, "faults enabled: {}", enabled.join(", "))?;
        let pending: Vec<_> = PENDING
            .iter()
            .filter(|(p, _)| !self.enabled.contains(p))
            .map(|(p, _)| p.name())
            .collect();
        writeln!(f, "faults pending (off): {}", pending.join(", "))?;
        writeln!(f, "schedule:")?;
        for (t, name, detail) in &self.schedule {
            writeln!(f, "  {t:7.2}s {name} {detail}")?;
        }
        writeln!(f, "faults injected by kind: {:?}", self.faults_by_kind())?;
        writeln!(f, "churn operations: {:?}", self.churn)?;
        writeln!(f, "kubebridge exit codes: {:?}", self.exit_codes)?;
        writeln!(
            f,
            "kubebridge peak RSS (VmHWM): {:.1} MiB",
            self.peak_rss_kib as f64 / 1024.0
        )?;
        writeln!(
            f,
            "catch-up after the last fault: {:.1}s",
            self.catch_up.as_secs_f64()
        )?;
        for s in &self.sinks {
            writeln!(f, "{s}")?;
        }
        write!(
            f,
            "verdict: {}",
            if self.passed() {
                "PASS (lost = 0)"
            } else {
                "FAIL"
            }
        )
    }
}

/// The churn's shared switches.
#[derive(Default)]
struct ChurnControl {
    stop: AtomicBool,
    /// Set while kubebridge is down (between SIGTERM and its new watches).
    kubebridge_down: AtomicBool,
    /// Whether the churn goes on while kubebridge is down.
    delete_while_down: bool,
    /// Every object the churn created.
    touched: Mutex<BTreeSet<Key>>,
    ops: [AtomicUsize; 4],
}

const OP_NAMES: [&str; 4] = ["create", "update", "delete", "delete-and-recreate"];

fn manifest(resource: &str, ns: &str, name: &str) -> Value {
    match resource {
        "pods" => crate::harness::pod(name, ns, json!({"app": name})),
        "deployments.apps" => json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
        }),
        _ => json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": ns}, "data": {"v": "0"}}),
    }
}

/// Creates, updates, deletes and recreates objects until told to stop.
async fn churn(h: Arc<Harness>, ctl: Arc<ChurnControl>, seed: u64, interval: Duration) {
    let mut rng = Rng(seed ^ 0xC0FF_EE00);
    let mut exists: BTreeMap<(usize, usize, usize), bool> = BTreeMap::new();
    let mut step = 0u64;
    while !ctl.stop.load(Ordering::SeqCst) {
        step += 1;
        let (r, n, i) = (
            rng.below(RESOURCES.len()),
            rng.below(NAMESPACES.len()),
            rng.below(NAMES),
        );
        let roll = rng.below(100);
        let (resource, ns, name) = (RESOURCES[r].1, NAMESPACES[n], format!("o{i}"));
        let k = checker::key(resource, ns, &name);
        let down = ctl.kubebridge_down.load(Ordering::SeqCst);
        if down && !ctl.delete_while_down {
            // Changes while no kubebridge watches are [`Fault::DeleteWhileDown`]'s: without
            // it, the cluster holds still then.
            tokio::time::sleep(interval).await;
            continue;
        }
        let present = exists.get(&(r, n, i)).copied().unwrap_or(false);
        let op = match (present, roll) {
            (false, _) => 0,
            (true, 0..65) => 1,
            (true, 65..85) => 2,
            (true, _) => 3,
        };
        let sim = &h.sim;
        if op >= 2 {
            sim.delete(resource, Some(ns), &name).expect("churn delete");
        }
        match op {
            0 | 3 => {
                sim.create(resource, Some(ns), manifest(resource, ns, &name))
                    .expect("churn create");
                ctl.touched.lock().unwrap().insert(k);
            }
            1 => {
                let patch = json!({"metadata": {"annotations": {"step": step.to_string()}}});
                sim.patch(resource, Some(ns), &name, patch)
                    .expect("churn update");
            }
            _ => {}
        }
        exists.insert((r, n, i), op != 2);
        ctl.ops[op].fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(interval).await;
    }
}

/// One kubebridge process: its stdout read into notifications as it writes them,
/// stderr to a file.
struct Instance {
    child: Child,
    reader: JoinHandle<()>,
}

/// kubebridge across its restarts.
struct Kubebridge {
    h: Arc<Harness>,
    args: Vec<String>,
    dir: tempfile::TempDir,
    current: Option<Instance>,
    /// Every notification on stdout, in order, across instances.
    stdout: Arc<Mutex<Vec<Value>>>,
    started: usize,
    exit_codes: Vec<i32>,
    peak_rss_kib: u64,
}

impl Kubebridge {
    fn new(h: Arc<Harness>, sinks: &[String], extra: &[String]) -> Kubebridge {
        let mut args: Vec<String> = ["watch"].into_iter().map(String::from).collect();
        args.extend(RESOURCES.iter().map(|r| r.0.to_string()));
        args.extend(["-A", "--sink", "stdout", "--initial-state", "emit"].map(String::from));
        for sink in sinks {
            args.extend(["--sink".to_string(), sink.clone()]);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let checkpoints = dir.path().join("checkpoints");
        std::fs::create_dir(&checkpoints).expect("a checkpoint directory");
        // Restarts resume from a checkpoint, written every second while changes flow.
        args.extend([
            "--checkpoint".to_string(),
            format!("file://{}", checkpoints.display()),
            "--checkpoint-interval".to_string(),
            "1s".to_string(),
        ]);
        args.extend(extra.iter().cloned());
        Kubebridge {
            h,
            args,
            dir,
            current: None,
            stdout: Arc::default(),
            started: 0,
            exit_codes: Vec::new(),
            peak_rss_kib: 0,
        }
    }

    /// Starts kubebridge and waits until it watches every resource (its LIST is done).
    async fn start(&mut self) {
        let before: Vec<u64> = RESOURCES
            .iter()
            .map(|r| self.h.sim.requests("watch", r.1))
            .collect();
        self.started += 1;
        let log = self
            .dir
            .path()
            .join(format!("kubebridge-{}.log", self.started));
        let mut cmd = kubebridge();
        cmd.args(&self.args)
            .arg("--kubeconfig")
            .arg(&self.h.kubeconfig)
            .stderr(Stdio::from(File::create(&log).expect("log file")));
        let mut child = cmd.spawn().expect("spawn kubebridge");
        let stdout = child.stdout.take().expect("stdout");
        let sink = self.stdout.clone();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let n = parse_notification(&line);
                sink.lock().unwrap().push(n);
            }
        });
        self.current = Some(Instance { child, reader });
        let deadline = Instant::now() + STARTUP;
        while RESOURCES
            .iter()
            .zip(&before)
            .any(|(r, b)| self.h.sim.requests("watch", r.1) <= *b)
        {
            if let Some(code) = self
                .current
                .as_mut()
                .and_then(|i| i.child.try_wait().ok().flatten())
            {
                panic!(
                    "kubebridge exited with {code} at start; log: {}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "kubebridge did not start watching; log: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, wait for the exit (within the shutdown grace and a margin), drain stdout.
    async fn stop(&mut self) {
        let Some(mut inst) = self.current.take() else {
            return;
        };
        let pid = inst.child.id().expect("running");
        self.peak_rss_kib = self.peak_rss_kib.max(vm_hwm_kib(pid));
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill(1)");
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(60), inst.child.wait())
            .await
            .expect("kubebridge exits within 60 s of SIGTERM")
            .expect("wait");
        inst.reader.await.expect("the stdout reader does not panic");
        let code = status.code().unwrap_or(-1);
        if code != 0 {
            eprintln!("kubebridge exited {code}; log: {}", self.log_tail());
        }
        self.exit_codes.push(code);
    }

    /// The end of the current instance's stderr, for failure messages.
    fn log_tail(&self) -> String {
        let log = self
            .dir
            .path()
            .join(format!("kubebridge-{}.log", self.started));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let mut start = text.len().saturating_sub(4000);
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        text[start..].to_string()
    }

    fn notifications(&self) -> Vec<Value> {
        self.stdout.lock().unwrap().clone()
    }
}

/// VmHWM (peak resident set) of a process, KiB; 0 when unreadable.
pub fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

/// A private tansu behind a [`Forwarder`], so a new broker can take the old one's
/// address at once (tansu's port stays in TIME_WAIT after a kill).
struct PrivateKafka {
    broker: Broker,
    forwarder: Forwarder,
    /// The resourceVersion when the last broker died: what the sink held up to it is gone.
    lost_up_to: u64,
}

impl PrivateKafka {
    async fn start() -> Option<PrivateKafka> {
        let port = free_port();
        // The broker advertises the forwarder's address, so a client's metadata never
        // points at a broker port that dies with the broker.
        let forwarder = Forwarder::start(port).await;
        let broker = tansu_broker_behind(port, forwarder.port)?;
        wait_listening(port, STARTUP).await;
        Some(PrivateKafka {
            broker,
            forwarder,
            lost_up_to: 0,
        })
    }

    fn sink(&self) -> String {
        format!("kafka://127.0.0.1:{}/{TOPIC}", self.forwarder.port)
    }

    /// Every message of the topic as notifications, in per-partition offset order (all
    /// of one object's are in one partition).
    async fn notifications(&self) -> Vec<Value> {
        let brokers = format!("127.0.0.1:{}", self.forwarder.port);
        if !kafka_topic_exists(&brokers).await {
            // Nothing reached the broker since it lost its state: the check says what is missing.
            return Vec::new();
        }
        let mut msgs = kafka_messages(&brokers, TOPIC, usize::MAX, Duration::from_secs(5)).await;
        msgs.sort_by_key(|m| (m.partition, m.offset));
        msgs.iter().map(|m| m.notification()).collect()
    }
}

/// Whether [`TOPIC`] has partitions on the broker (it is created by the first message).
async fn kafka_topic_exists(brokers: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let brokers = brokers.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("allow.auto.create.topics", "false")
            .create()
            .expect("consumer");
        consumer
            .fetch_metadata(Some(TOPIC), Duration::from_secs(10))
            .is_ok_and(|m| {
                m.topics()
                    .first()
                    .is_some_and(|t| !t.partitions().is_empty())
            })
    })
    .await
    .expect("the metadata request does not panic")
}

/// What the sinks must hold at the end.
struct Expected {
    finals: BTreeMap<Key, Present>,
    touched: BTreeSet<Key>,
    gap: BTreeSet<Key>,
}

/// Everything a fault acts on.
struct World {
    h: Arc<Harness>,
    nats: PrivateNats,
    nats_port: u16,
    kafka: Option<PrivateKafka>,
    kb: Kubebridge,
    ctl: Arc<ChurnControl>,
}

impl World {
    /// Waits, at most `limit`, until every sink shows the simulator's present state;
    /// returns how long that took.
    async fn settle(&self, limit: Duration) -> Duration {
        let start = Instant::now();
        let finals = final_states(&self.h).await;
        let touched = self.ctl.touched.lock().unwrap().clone();
        let expected = Expected {
            touched,
            gap: BTreeSet::new(),
            finals,
        };
        while start.elapsed() < limit
            && !self.check_sinks(&expected).await.iter().all(Report::passed)
        {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        start.elapsed()
    }

    /// Reads every sink and checks it.
    async fn check_sinks(&self, e: &Expected) -> Vec<Report> {
        let stdout = self.kb.notifications();
        let mut out = vec![checker::check(
            "stdout", &stdout, &e.finals, &e.touched, &e.gap,
        )];
        let js: Vec<Value> = jetstream_messages(&self.nats.url, STREAM)
            .await
            .iter()
            .map(|m| m.notification())
            .collect();
        out.push(checker::check(
            "jetstream",
            &js,
            &e.finals,
            &e.touched,
            &e.gap,
        ));
        if let Some(kafka) = &self.kafka {
            let msgs = kafka.notifications().await;
            let since = kafka.lost_up_to;
            out.push(checker::check_since(
                "kafka", &msgs, &e.finals, &e.touched, &e.gap, since,
            ));
        }
        out
    }

    /// Injects one fault and returns a detail for the schedule.
    async fn inject(&mut self, fault: Fault, rng: &mut Rng) -> String {
        let faults = self.h.sim.faults();
        match fault {
            Fault::WatchDrop => {
                faults.drop_watches();
                String::new()
            }
            Fault::Compaction => {
                faults.compact();
                faults.drop_watches();
                format!("at rv {}", self.h.sim.resource_version())
            }
            Fault::ApiRestart => {
                faults.restart();
                format!("at rv {}", self.h.sim.resource_version())
            }
            Fault::JetStreamRestart => {
                let outage = rng.millis(500, 4000);
                self.nats.broker.kill();
                tokio::time::sleep(outage).await;
                self.nats.broker.restart();
                wait_listening(self.nats_port, STARTUP).await;
                format!("down {:.1}s", outage.as_secs_f64())
            }
            Fault::JetStreamFreeze => {
                let frozen = rng.millis(500, 4000);
                self.nats.broker.signal("STOP");
                tokio::time::sleep(frozen).await;
                self.nats.broker.signal("CONT");
                format!("frozen {:.1}s", frozen.as_secs_f64())
            }
            Fault::KubebridgeRestart => {
                let down = rng.millis(200, 2000);
                self.ctl.kubebridge_down.store(true, Ordering::SeqCst);
                // Let the churn step that read the switch before it flipped finish.
                tokio::time::sleep(Duration::from_millis(100)).await;
                // With the churn going on while it is down (delete-while-down), the SIGTERM
                // comes at once: what kubebridge has not delivered yet must come back from
                // its checkpoint. Otherwise the cluster holds still, and every sink is let
                // show it before the SIGTERM. A kubebridge that never catches up is caught
                // by the verdict, not hidden here.
                let settled = if self.ctl.delete_while_down {
                    Duration::ZERO
                } else {
                    self.settle(Duration::from_secs(45)).await
                };
                self.kb.stop().await;
                tokio::time::sleep(down).await;
                self.kb.start().await;
                self.ctl.kubebridge_down.store(false, Ordering::SeqCst);
                format!(
                    "down {:.1}s + restart (settled {:.1}s)",
                    down.as_secs_f64(),
                    settled.as_secs_f64()
                )
            }
            Fault::SilentWatches => {
                let d = rng.millis(1000, 8000);
                faults.silence_watches(true);
                tokio::time::sleep(d).await;
                faults.silence_watches(false);
                format!("for {:.1}s", d.as_secs_f64())
            }
            Fault::GarbageLine => {
                let d = rng.millis(500, 3000);
                faults.inject_watch_line(kubebridge_sim::WatchLine::Garbage);
                faults.inject_watch_line(kubebridge_sim::WatchLine::NoMetadata);
                faults.poison_watches(Some(kubebridge_sim::WatchLine::Garbage));
                tokio::time::sleep(d).await;
                faults.poison_watches(None);
                format!("poisoned for {:.1}s", d.as_secs_f64())
            }
            Fault::EveryWatchGone => {
                let d = rng.millis(1000, 5000);
                faults.expire_every_watch(true);
                faults.drop_watches();
                tokio::time::sleep(d).await;
                faults.expire_every_watch(false);
                format!("for {:.1}s", d.as_secs_f64())
            }
            Fault::KafkaBrokerRestart => {
                let Some(kafka) = self.kafka.as_mut() else {
                    return "no Kafka sink".into();
                };
                let outage = rng.millis(500, 4000);
                kafka.broker.kill();
                kafka.lost_up_to = self.h.sim.resource_version();
                tokio::time::sleep(outage).await;
                let port = free_port();
                kafka.broker = tansu_broker_behind(port, kafka.forwarder.port)
                    .expect("tansu was found at the start");
                wait_listening(port, STARTUP).await;
                kafka.forwarder.set_backend(port);
                format!(
                    "down {:.1}s, state lost up to rv {}",
                    outage.as_secs_f64(),
                    kafka.lost_up_to
                )
            }
            // A switch, not an event: it acts through KubebridgeRestart.
            Fault::DeleteWhileDown => "not an event".into(),
        }
    }
}

/// The port of a `nats://127.0.0.1:PORT` URL.
fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("nats://HOST:PORT")
}

/// The simulator's final state of every watched resource, by LIST.
async fn final_states(h: &Harness) -> BTreeMap<Key, Present> {
    let mut out = BTreeMap::new();
    for (_, resource, path) in RESOURCES {
        let list = crate::http::get(h.sim.addr(), path).await;
        assert_eq!(list.status, 200, "LIST {path}");
        out.extend(checker::final_states_of_list(resource, &list.json()));
    }
    out
}

/// Runs the fault run; `None` when broker tests are skipped.
pub async fn run(config: RunConfig) -> Option<RunReport> {
    let nats = PrivateNats::start().await?;
    let nats_port = port_of(&nats.url);
    let h = Arc::new(
        Harness::start(
            kubebridge_sim::SimConfig {
                bookmark_interval: Duration::from_secs(1),
                ..kubebridge_sim::SimConfig::default()
            },
            None,
        )
        .await,
    );
    for ns in NAMESPACES {
        h.create_namespace(ns);
    }
    let ctl = Arc::new(ChurnControl {
        delete_while_down: config.faults.contains(&Fault::DeleteWhileDown),
        ..ChurnControl::default()
    });
    let kafka = match config.faults.contains(&Fault::KafkaBrokerRestart) {
        true => Some(PrivateKafka::start().await?),
        false => None,
    };
    let mut sinks = vec![nats.jetstream_sink(STREAM)];
    sinks.extend(kafka.as_ref().map(PrivateKafka::sink));
    let mut world = World {
        kb: Kubebridge::new(h.clone(), &sinks, &config.extra_args),
        h: h.clone(),
        nats,
        nats_port,
        kafka,
        ctl: ctl.clone(),
    };
    let mut report = RunReport {
        seed: config.seed,
        enabled: config.faults.clone(),
        ..RunReport::default()
    };
    world.kb.start().await;

    let t0 = Instant::now();
    let churn_task = tokio::spawn(churn(
        h.clone(),
        ctl.clone(),
        config.seed,
        config.churn_interval,
    ));
    let mut rng = Rng(config.seed);
    let events: Vec<Fault> = config
        .faults
        .iter()
        .copied()
        .filter(|f| *f != Fault::DeleteWhileDown)
        .collect();
    while t0.elapsed() < config.duration {
        tokio::time::sleep(rng.millis(1000, 3500)).await;
        let Some(&fault) = events.get(rng.below(events.len().max(1))) else {
            break;
        };
        let at = t0.elapsed().as_secs_f64();
        let detail = world.inject(fault, &mut rng).await;
        eprintln!("fault run: {at:7.2}s {} {detail}", fault.name());
        report.schedule.push((at, fault.name(), detail));
    }
    ctl.stop.store(true, Ordering::SeqCst);
    churn_task.await.expect("churn does not panic");
    for (i, name) in OP_NAMES.iter().enumerate() {
        report.churn.insert(name, ctl.ops[i].load(Ordering::SeqCst));
    }

    let finals = final_states(&h).await;
    let expected = Expected {
        touched: ctl.touched.lock().unwrap().clone(),
        // Nothing is a known gap any more: changes made while kubebridge was down are
        // delivered from its checkpoint.
        gap: BTreeSet::new(),
        finals,
    };
    let caught_up = Instant::now();
    let deadline = caught_up + catch_up();
    while Instant::now() < deadline
        && !world
            .check_sinks(&expected)
            .await
            .iter()
            .all(Report::passed)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    report.catch_up = caught_up.elapsed();
    world.kb.stop().await;
    report.sinks = world.check_sinks(&expected).await;
    report.exit_codes = world.kb.exit_codes.clone();
    report.peak_rss_kib = world.kb.peak_rss_kib;
    Some(report)
}
