//! Benchmark (prints figures; asserts nothing about speed): kubebridge's watch path
//! against its peers on the same feed, in one run, each measurement repeated and
//! reported as median and range.
//!
//! The feed is `kubebridge sim --replay` (tests/sim/src/replay.rs): a pre-built LIST and
//! a pre-built watch stream of the simulator's real-sized seed pods, served as fast as
//! the socket takes them, so the figures are the client's. Two replay servers run in
//! child processes: `sync` (N pods, no events) and `stream` (1 000 pods listed, then M
//! `MODIFIED` events cycling over them). Every client runs in a process of its own:
//!
//! - **raw**: a bare HTTP client that downloads the LIST pages, or splits the watch
//!   stream into lines and counts them (the limit; tests/bench/common/raw_http.rs);
//! - **kubebridge → stdout**: `kubebridge watch pods -A`, its stdout a pipe the
//!   benchmark counts lines on, or `/dev/null` (progress read from `/metrics`);
//! - **kubebridge → null sink**: the same pipeline in a library call, into a sink that
//!   confirms at once (tests/bench/common/peers.rs);
//! - **kube-runtime**: `watcher(Api<Pod>)` + `reflector` store, the Rust peer.
//!
//! It prints the initial sync time of N pods, RSS once synced against the pods' JSON
//! bytes (as served, with managedFields), changes/s of the watch phase, CPU seconds, each
//! as a ratio to its peer; and the LIST's bytes and CPU with and without gzip. kubebridge
//! syncs twice, with managedFields stripped (the default) and kept
//! (`--keep-managed-fields`): the memory stripping saves (issue 11), and the kept RSS
//! against the JSON (issue 12's target).
//!
//! It also prints the time `kubebridge watch pods -A --resync PERIOD` takes to replay
//! its N cached pods to stdout (a pipe) as `SYNC` lines: from the first line of the
//! first replay to its last (issue 12's target: <= 1 s for 100 000 pods).
//!
//! `cargo bench --bench informer` runs it at full size (`BENCH_PODS` = 100 000,
//! `BENCH_EVENTS` = 100 000, `BENCH_RUNS` = 5). Under `cargo test` it runs at a smoke
//! size, so the benchmark itself is known to work. `BENCH_ONLY=sync` runs only the
//! initial sync figures (against the bare download of the same pages with gzip, as
//! kubebridge asks, and without), `BENCH_ONLY=resync` only the resync figure,
//! `BENCH_ONLY=watch` only the watch throughput figures;
//! `BENCH_RESYNC_PERIOD` (seconds) sets its period, which must outlast the initial sync
//! (when it does not, the run is retried with twice the period).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "common/peers.rs"]
mod peers;
#[path = "common/raw_http.rs"]
mod raw_http;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Pods the `stream` server lists before its watch events, as in issue 12's setup.
const STREAM_LISTED: u64 = 1_000;
/// kube's and kubebridge's LIST page size.
const PAGE: usize = 500;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if let Some(role) = peers::role() {
        peers::run(&role);
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let pods = env_or("BENCH_PODS", if full { 100_000 } else { 2_000 });
    let events = env_or("BENCH_EVENTS", if full { 100_000 } else { 5_000 });
    let runs = env_or("BENCH_RUNS", if full { 5 } else { 1 }).max(1) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "kubebridge informer benchmark ({} run: {pods} pods, {events} watch events, {runs} runs; median [min-max])",
        if full { "full" } else { "smoke" }
    );
    println!(
        "machine: {} cores, load average {} at the start",
        cores(),
        load_average()
    );
    if std::env::var("BENCH_ONLY").is_ok_and(|only| only == "watch") {
        let stream = Replay::start(dir.path(), "stream", STREAM_LISTED, events);
        watch_figures(&stream, events, runs);
        return;
    }
    let sync = Replay::start(dir.path(), "sync", pods, 0);
    // The first replay must start after the initial sync is on stdout: a period beyond
    // a release build's sync (about 6 s for 100 000 pods, gzip included) or a debug build's smoke-size
    // one (about 1.5 s for 2 000); a longer one where the machine is slower.
    let period =
        Duration::from_secs(env_or("BENCH_RESYNC_PERIOD", if full { 12 } else { 3 }).max(1));
    match std::env::var("BENCH_ONLY").as_deref() {
        Ok("resync") => {
            resync_figures(&sync, pods, runs, period);
            return;
        }
        Ok("sync") => {
            sync_figures(&sync, pods, runs);
            return;
        }
        _ => {}
    }
    let stream = Replay::start(dir.path(), "stream", STREAM_LISTED, events);
    sync_figures(&sync, pods, runs);
    resync_figures(&sync, pods, runs, period);
    watch_figures(&stream, events, runs);
    gzip_figures(&sync, runs);
    println!(
        "load average at the end: {} on {} cores",
        load_average(),
        cores()
    );
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

/// Median and range of repeated measurements.
struct Spread(Vec<f64>);

impl Spread {
    fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return f64::NAN;
        }
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    fn show(&self, scale: f64, decimals: usize) -> String {
        let min = self.0.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!(
            "{:>10.decimals$} [{:.decimals$}-{:.decimals$}]",
            self.median() / scale,
            min / scale,
            max / scale
        )
    }
}

/// A `kubebridge sim --replay` child process, stopped on drop.
struct Replay {
    child: Child,
    kubeconfig: PathBuf,
    addr: String,
    list_rv: u64,
}

impl Replay {
    fn start(dir: &Path, name: &str, pods: u64, events: u64) -> Replay {
        let kubeconfig = dir.join(format!("{name}.kubeconfig"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubebridge"))
            .args(["sim", "--listen", "127.0.0.1:0", "--namespaces", "50"])
            .args(["--replay", &pods.to_string()])
            .args(["--replay-events", &events.to_string()])
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kubebridge sim --replay");
        let deadline = Instant::now() + Duration::from_secs(600);
        let addr = loop {
            if let Ok(text) = std::fs::read_to_string(&kubeconfig)
                && let Some(server) = text.lines().find_map(|l| l.trim().strip_prefix("server:"))
            {
                break server.trim().trim_start_matches("http://").to_owned();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the replay server exited ({status}) before serving");
            }
            assert!(Instant::now() < deadline, "the replay server did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        let list_rv = list_resource_version(&addr);
        Replay {
            child,
            kubeconfig,
            addr,
            list_rv,
        }
    }
}

fn list_resource_version(addr: &str) -> u64 {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    use std::io::Write;
    write!(
        stream,
        "GET /api/v1/pods?limit=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.split_once("\"resourceVersion\":\"")
        .and_then(|(_, rest)| rest.split('"').next())
        .and_then(|rv| rv.parse().ok())
        .expect("the LIST's resourceVersion")
}

impl Drop for Replay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb * 1024.0)
}

/// CPU seconds (user + system) a process has used.
fn cpu_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state.
    (ticks(11) + ticks(12)) / 100.0
}

/// A client under test in a child process, and when it reached each milestone.
struct Client {
    child: Child,
    started: Instant,
    milestones: mpsc::Receiver<(&'static str, Instant)>,
}

/// The milestones of a client: `synced` after the LIST, `done` after the events.
struct Timings {
    sync: Duration,
    watch: Duration,
    rss: f64,
    cpu_sync: f64,
    cpu_watch: f64,
}

impl Client {
    /// Waits for the two milestones; RSS is read `settle` after `synced`, when the
    /// client is idle (with no events to come) or not.
    fn timings(mut self, events: bool) -> Timings {
        let pid = self.child.id();
        let child = &mut self.child;
        let mut wait = |name: &str| {
            let deadline = Instant::now() + Duration::from_secs(600);
            loop {
                match self.milestones.recv_timeout(Duration::from_secs(1)) {
                    Ok((what, at)) if what == name => return at,
                    Ok(_) => {}
                    Err(_) => {
                        if let Ok(Some(status)) = child.try_wait() {
                            panic!("the client exited ({status}) before it said {name}");
                        }
                        assert!(Instant::now() < deadline, "the client never said {name}");
                    }
                }
            }
        };
        let synced = wait("synced");
        let cpu_sync = cpu_of(&pid.to_string());
        let (done, rss) = if events {
            (wait("done"), 0.0)
        } else {
            // Idle now: let the allocator settle, then read what it holds.
            std::thread::sleep(Duration::from_secs(1));
            (synced, rss_of(pid))
        };
        let cpu_watch = cpu_of(&pid.to_string()) - cpu_sync;
        Timings {
            sync: synced - self.started,
            watch: done - synced,
            rss,
            cpu_sync,
            cpu_watch,
        }
    }
}

/// A client is stopped when its figures are read, and also when the benchmark panics
/// first (a client that never syncs), so no `kubebridge watch` outlives the run.
impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A peer child (this benchmark binary in a role) that says its milestones on stdout.
fn peer(role: &str, replay: &Replay, list: u64, events: u64) -> Client {
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("BENCH_ROLE", role)
        .env("BENCH_KUBECONFIG", &replay.kubeconfig)
        .env("BENCH_EXPECT_LIST", list.to_string())
        .env("BENCH_EXPECT_EVENTS", events.to_string())
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a peer");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            let name = match line.as_str() {
                "synced" => "synced",
                "done" => "done",
                _ => continue,
            };
            if tx.send((name, Instant::now())).is_err() {
                return;
            }
        }
    });
    Client {
        child,
        started,
        milestones: rx,
    }
}

/// `kubebridge watch pods -A EXTRA...` with its stdout a pipe whose lines the benchmark
/// counts.
fn kubebridge_pipe(replay: &Replay, list: u64, events: u64, extra: &[&str]) -> Client {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubebridge"))
        .args(["watch", "pods", "-A", "--kubeconfig"])
        .arg(&replay.kubeconfig)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kubebridge watch");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || count_lines(out, list, events, &tx));
    Client {
        child,
        started,
        milestones: rx,
    }
}

fn count_lines(
    mut out: ChildStdout,
    list: u64,
    events: u64,
    tx: &mpsc::Sender<(&'static str, Instant)>,
) {
    let mut buf = vec![0u8; 1 << 20];
    let mut seen = 0u64;
    loop {
        let n = match out.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let before = seen;
        seen += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        let now = Instant::now();
        if before < list && seen >= list {
            let _ = tx.send(("synced", now));
        }
        if events > 0 && before < list + events && seen >= list + events {
            let _ = tx.send(("done", now));
        }
    }
}

/// When a `--resync` run's stdout reached each point: the initial list written, the
/// first replay's first and last `SYNC` line.
struct ResyncTimes {
    listed: Instant,
    first_sync: Instant,
    last_sync: Instant,
}

/// Runs `kubebridge watch pods -A --resync PERIOD` on `pods` cached pods and times the
/// first replay on its stdout, then stops it. `None` when the initial sync outlasted
/// the period: the replay then starts at once and its SYNC lines queue behind the
/// list's, so the figure would be the list's.
fn kubebridge_resync(replay: &Replay, pods: u64, period: Duration) -> Option<ResyncTimes> {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubebridge"))
        .args(["watch", "pods", "-A", "--kubeconfig"])
        .arg(&replay.kubeconfig)
        .args(["--resync", &format!("{}ms", period.as_millis())])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kubebridge watch --resync");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(time_first_resync(out, pods));
    });
    let times = loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(Some(times)) => break times,
            Ok(None) => panic!("kubebridge --resync closed stdout before its first replay ended"),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("kubebridge --resync exited ({status}) before its first replay");
                }
                assert!(
                    started.elapsed() < period + Duration::from_secs(600),
                    "kubebridge --resync never replayed its {pods} pods"
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => unreachable!("the reader always sends"),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    // The first replay is due a period after kubebridge starts (after `started`).
    (times.listed < started + period).then_some(times)
}

/// Reads `kubebridge --resync` stdout until the first replay's `pods` SYNC lines are
/// out; `None` when stdout closes first.
fn time_first_resync(out: ChildStdout, pods: u64) -> Option<ResyncTimes> {
    const SYNC: &[u8] = br#""type":"SYNC""#;
    let mut out = BufReader::with_capacity(1 << 20, out);
    let mut line = Vec::new();
    let (mut listed, mut first_sync, mut lines, mut syncs) = (None, None, 0u64, 0u64);
    loop {
        line.clear();
        if out.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        let now = Instant::now();
        // The envelope starts with its type: look only at its head.
        let head = &line[..line.len().min(64)];
        if head.windows(SYNC.len()).any(|w| w == SYNC) {
            first_sync.get_or_insert(now);
            syncs += 1;
            if syncs == pods {
                return Some(ResyncTimes {
                    listed: listed?,
                    first_sync: first_sync?,
                    last_sync: now,
                });
            }
        } else {
            lines += 1;
            if lines == pods {
                listed = Some(now);
            }
        }
    }
}

fn resync_figures(replay: &Replay, pods: u64, runs: usize, period: Duration) {
    let (mut period, mut secs) = (period, Vec::new());
    while secs.len() < runs {
        match kubebridge_resync(replay, pods, period) {
            Some(t) => secs.push((t.last_sync - t.first_sync).as_secs_f64()),
            None => {
                // A loaded machine synced slower than the period allows: retry longer.
                assert!(
                    period < Duration::from_secs(600),
                    "the initial sync of {pods} pods outlasted every resync period tried"
                );
                println!(
                    "  (the initial sync outlasted --resync {period:?}; retrying with twice that)"
                );
                period *= 2;
            }
        }
    }
    let secs = Spread(secs);
    println!();
    println!(
        "resync replay of {pods} cached pods to stdout (a pipe), --resync {}s, first SYNC line to last:",
        period.as_secs_f64()
    );
    println!("  {:<30} {:>24} {:>12}", "client", "replay s", "SYNC/s");
    println!(
        "  {:<30} {} {:>12.0}",
        "kubebridge -> stdout (pipe)",
        secs.show(1.0, 2),
        pods as f64 / secs.median()
    );
    println!(
        "  issue 12's target: <= 1 s for 100 000 pods, i.e. <= {:.2} s for {pods} ({:.2}x the target)",
        pods as f64 / 100_000.0,
        secs.median() / (pods as f64 / 100_000.0)
    );
}

/// `kubebridge watch pods -A > /dev/null`, its progress read from `/metrics`.
fn kubebridge_devnull(replay: &Replay, list: u64, events: u64) -> Client {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_kubebridge"))
        .args([
            "watch",
            "pods",
            "-A",
            "--metrics-addr",
            &metrics,
            "--kubeconfig",
        ])
        .arg(&replay.kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kubebridge watch");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut synced = false;
        loop {
            let sent = sent_total(&metrics);
            let now = Instant::now();
            if !synced && sent >= list {
                synced = true;
                let _ = tx.send(("synced", now));
            }
            if events > 0 && sent >= list + events {
                let _ = tx.send(("done", now));
                return;
            }
            if tx.send(("tick", now)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    Client {
        child,
        started,
        milestones: rx,
    }
}

/// `kubebridge_sink_sent_total` summed over its series; 0 while unreachable.
fn sent_total(addr: &str) -> u64 {
    use std::io::Write;
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return 0;
    };
    if write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return 0;
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with("kubebridge_sink_sent_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The pods' JSON bytes as LIST items (what a cache of raw JSON holds at best).
fn json_bytes(replay: &Replay) -> f64 {
    raw_http::list_all(&replay.addr, "/api/v1/pods", PAGE, false).json_bytes as f64
}

/// A client of the initial sync: its label and how to start it on `(replay, pods)`.
type SyncClient = (&'static str, fn(&Replay, u64) -> Client);

/// The initial-sync clients, in the order they are printed: kubebridge with
/// managedFields stripped (the default) and kept (`--keep-managed-fields`), then its peer.
const SYNC_CLIENTS: [SyncClient; 5] = [
    ("kubebridge -> stdout (pipe)", |r, n| {
        kubebridge_pipe(r, n, 0, &[])
    }),
    ("  same, --keep-managed-fields", |r, n| {
        kubebridge_pipe(r, n, 0, &["--keep-managed-fields"])
    }),
    ("kubebridge -> null sink", |r, n| {
        peer("kubebridge-null", r, n, 0)
    }),
    ("  same, --keep-managed-fields", |r, n| {
        peer("kubebridge-null-keep", r, n, 0)
    }),
    ("kube-runtime reflector (Pod)", |r, n| {
        peer("kube-runtime", r, n, 0)
    }),
];
/// Indexes in `SYNC_CLIENTS`.
const PIPE_STRIPPED: usize = 0;
const PIPE_KEPT: usize = 1;
const NULL_STRIPPED: usize = 2;
const NULL_KEPT: usize = 3;
const KUBE_RUNTIME: usize = 4;

fn sync_figures(replay: &Replay, pods: u64, runs: usize) {
    let json = json_bytes(replay);
    let download = |gzip| {
        raw_http::list_all(&replay.addr, "/api/v1/pods", PAGE, gzip)
            .elapsed
            .as_secs_f64()
    };
    let (mut raw_gzip, mut raw_identity) = (Vec::new(), Vec::new());
    let mut rows: Vec<Vec<Timings>> = SYNC_CLIENTS.iter().map(|_| Vec::new()).collect();
    for _ in 0..runs {
        raw_gzip.push(download(true));
        raw_identity.push(download(false));
        for ((_, start), row) in SYNC_CLIENTS.iter().zip(&mut rows) {
            row.push(start(replay, pods).timings(false));
        }
    }
    let (gzip, identity) = (Spread(raw_gzip), Spread(raw_identity));
    println!();
    println!(
        "initial sync of {pods} pods ({:.1} MiB of JSON as served, managedFields included: {:.0} bytes/pod; LIST pages of {PAGE}):",
        mib(json),
        json / pods as f64
    );
    println!(
        "  (kubebridge and kube-runtime ask for gzip, so \"x gzip\" is the ratio to the bare download of the same pages in the same encoding; \"x identity\" to the uncompressed download)"
    );
    println!(
        "  {:<30} {:>24} {:>8} {:>10} {:>24} {:>8} {:>10}",
        "client", "sync s", "x gzip", "x identity", "RSS MiB once synced", "x JSON", "CPU s"
    );
    for (name, raw) in [
        ("raw LIST download, gzip", &gzip),
        ("raw LIST download, identity", &identity),
    ] {
        println!(
            "  {:<30} {} {:>8.2} {:>10.2}",
            name,
            raw.show(1.0, 2),
            raw.median() / gzip.median(),
            raw.median() / identity.median()
        );
    }
    for ((name, _), t) in SYNC_CLIENTS.iter().zip(&rows) {
        let sync = Spread(t.iter().map(|t| t.sync.as_secs_f64()).collect());
        let rss = Spread(t.iter().map(|t| t.rss).collect());
        let cpu = Spread(t.iter().map(|t| t.cpu_sync).collect());
        println!(
            "  {:<30} {} {:>8.2} {:>10.2} {} {:>8.2} {:>10.2}",
            name,
            sync.show(1.0, 2),
            sync.median() / gzip.median(),
            sync.median() / identity.median(),
            rss.show(1024.0 * 1024.0, 1),
            rss.median() / json,
            cpu.median()
        );
    }
    let rss = |i: usize| Spread(rows[i].iter().map(|t| t.rss).collect()).median();
    managed_fields_figures(json, rss(PIPE_STRIPPED), rss(PIPE_KEPT), "stdout (pipe)");
    managed_fields_figures(json, rss(NULL_STRIPPED), rss(NULL_KEPT), "null sink");
    println!(
        "  kubebridge (--keep-managed-fields, as kube-runtime keeps them) holds the pods in {:.2}x kube-runtime's RSS",
        rss(PIPE_KEPT) / rss(KUBE_RUNTIME)
    );
    let kept_sync = Spread(
        rows[PIPE_KEPT]
            .iter()
            .map(|t| t.sync.as_secs_f64())
            .collect(),
    );
    println!(
        "  issue 12's targets, kubebridge -> stdout (pipe), --keep-managed-fields: sync {:.2}x the gzip download ({:.2}x identity; target <= 1.2x); RSS {:.2}x the JSON (target <= 1.1x)",
        kept_sync.median() / gzip.median(),
        kept_sync.median() / identity.median(),
        rss(PIPE_KEPT) / json
    );
}

/// RSS once synced with managedFields stripped (the default) and kept, against the JSON
/// as served (with managedFields), and what stripping saves (issue 11).
fn managed_fields_figures(json: f64, stripped: f64, kept: f64, sink: &str) {
    println!(
        "  managedFields, kubebridge -> {sink}: stripped {:.1} MiB = {:.2}x JSON, kept {:.1} MiB = {:.2}x JSON; stripping saves {:.1} MiB ({:.0}% of kept)",
        mib(stripped),
        stripped / json,
        mib(kept),
        kept / json,
        mib(kept - stripped),
        100.0 * (kept - stripped) / kept
    );
}

fn watch_figures(replay: &Replay, events: u64, runs: usize) {
    let lines = events + events / 1000; // MODIFIED events plus a bookmark every 1000
    let mut raw = Vec::new();
    let mut rows: Vec<(&str, Vec<Timings>)> = vec![
        ("kubebridge -> stdout (pipe)", Vec::new()),
        ("kubebridge -> stdout (/dev/null)", Vec::new()),
        ("kubebridge -> null sink", Vec::new()),
        ("kube-runtime reflector (Pod)", Vec::new()),
    ];
    for _ in 0..runs {
        raw.push(
            raw_http::watch_lines(&replay.addr, "/api/v1/pods", replay.list_rv, lines)
                .as_secs_f64(),
        );
        rows[0]
            .1
            .push(kubebridge_pipe(replay, STREAM_LISTED, events, &[]).timings(true));
        rows[1]
            .1
            .push(kubebridge_devnull(replay, STREAM_LISTED, events).timings(true));
        rows[2]
            .1
            .push(peer("kubebridge-null", replay, STREAM_LISTED, events).timings(true));
        rows[3]
            .1
            .push(peer("kube-runtime", replay, STREAM_LISTED, events).timings(true));
    }
    let rate = |secs: &[f64]| Spread(secs.iter().map(|s| events as f64 / s).collect());
    let raw = rate(&raw);
    println!();
    println!(
        "watch: {events} MODIFIED events of {STREAM_LISTED} listed pods, from the socket (changes/s):"
    );
    println!(
        "  {:<34} {:>24} {:>9} {:>14} {:>16}",
        "client", "changes/s", "x raw", "x kube-runtime", "CPU us/change"
    );
    println!(
        "  {:<34} {} {:>9}",
        "raw line splitter (the limit)",
        raw.show(1.0, 0),
        "1.00"
    );
    let kr = rate(
        &rows[3]
            .1
            .iter()
            .map(|t| t.watch.as_secs_f64())
            .collect::<Vec<_>>(),
    )
    .median();
    for (name, t) in &rows {
        let r = rate(&t.iter().map(|t| t.watch.as_secs_f64()).collect::<Vec<_>>());
        let cpu = Spread(t.iter().map(|t| t.cpu_watch).collect());
        println!(
            "  {:<34} {} {:>9.2} {:>14.2} {:>16.1}",
            name,
            r.show(1.0, 0),
            r.median() / raw.median(),
            r.median() / kr,
            cpu.median() * 1e6 / events as f64
        );
    }
    println!("  targets: kubebridge -> stdout >= 0.8x raw and >= 3x kube-runtime");
}

fn gzip_figures(replay: &Replay, runs: usize) {
    let server = replay.child.id().to_string();
    let mut rows = Vec::new();
    for gzip in [false, true] {
        let (mut secs, mut server_cpu, mut client_cpu, mut wire, mut json) =
            (Vec::new(), Vec::new(), Vec::new(), 0, 0);
        for _ in 0..runs {
            let (s0, c0) = (cpu_of(&server), cpu_of("self"));
            let d = raw_http::list_all(&replay.addr, "/api/v1/pods", PAGE, gzip);
            server_cpu.push(cpu_of(&server) - s0);
            client_cpu.push(cpu_of("self") - c0);
            secs.push(d.elapsed.as_secs_f64());
            wire = d.wire_bytes;
            json = d.json_bytes;
        }
        rows.push((
            gzip,
            Spread(secs),
            Spread(server_cpu),
            Spread(client_cpu),
            wire,
            json,
        ));
    }
    println!();
    println!(
        "LIST of every pod (pages of {PAGE}) with and without gzip (the server at gzip's default level, as kube-apiserver):"
    );
    println!(
        "  {:<10} {:>12} {:>24} {:>14} {:>14}",
        "encoding", "wire MiB", "time s (loopback)", "server CPU s", "client CPU s"
    );
    for (gzip, secs, server, client, wire, json) in &rows {
        println!(
            "  {:<10} {:>12.1} {} {:>14.2} {:>14.2}   ({:.1}% of {:.1} MiB of JSON)",
            if *gzip { "gzip" } else { "identity" },
            mib(*wire as f64),
            secs.show(1.0, 2),
            server.median(),
            client.median(),
            100.0 * *wire as f64 / *json as f64,
            mib(*json as f64)
        );
    }
    let (plain, gz) = (&rows[0], &rows[1]);
    for mbit in [100.0, 1000.0] {
        let t = |bytes: u64, cpu: f64| bytes as f64 * 8.0 / (mbit * 1e6) + cpu;
        println!(
            "  over a {mbit:.0} Mbit/s link: identity {:.1} s, gzip {:.1} s (transfer + both sides' CPU)",
            t(plain.4, 0.0),
            t(gz.4, gz.2.median() + gz.3.median())
        );
    }
}
