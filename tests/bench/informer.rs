//! Benchmark (prints figures; asserts nothing about speed): the initial sync of N
//! simulated pods — time, objects per second, and kubebridge's peak RSS next to the raw
//! JSON size of those pods — and the watch → stdout event rate under churn.
//!
//! `cargo bench --bench informer` runs it at full size (100 000 pods; `BENCH_PODS`,
//! `BENCH_CHURN_PODS`, `BENCH_CHURN` and `BENCH_SECONDS` override). Under `cargo test`
//! it runs a small smoke size so the benchmark itself is known to work.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kubebridge_testkit::http;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let pods = env_or("BENCH_PODS", if full { 100_000 } else { 500 });
    let churn_pods = env_or("BENCH_CHURN_PODS", if full { 10_000 } else { 200 });
    let churn = env_or("BENCH_CHURN", if full { 10_000 } else { 200 });
    let seconds = env_or("BENCH_SECONDS", if full { 10 } else { 2 });
    let dir = tempfile::tempdir().expect("tempdir");

    println!(
        "kubebridge informer benchmark ({} run)",
        if full { "full" } else { "smoke" }
    );
    let sync = initial_sync(dir.path(), pods);
    println!("initial sync of {pods} pods (watch pods -A, stdout to the benchmark):");
    println!(
        "  raw JSON of the pods        {:>10.1} MiB ({:.0} bytes/pod)",
        mib(sync.json_bytes),
        sync.json_bytes as f64 / pods as f64
    );
    println!(
        "  time to the last ADDED      {:>10.2} s",
        sync.elapsed.as_secs_f64()
    );
    println!(
        "  objects per second          {:>10.0}",
        pods as f64 / sync.elapsed.as_secs_f64()
    );
    println!(
        "  peak RSS during sync        {:>10.1} MiB ({:.2}x the raw JSON)",
        mib(sync.peak_rss),
        sync.peak_rss as f64 / sync.json_bytes as f64
    );
    println!(
        "  RSS once synced (cache)     {:>10.1} MiB ({:.2}x the raw JSON)",
        mib(sync.settled_rss),
        sync.settled_rss as f64 / sync.json_bytes as f64
    );

    managed_fields(dir.path(), pods);

    let rate = churn_rate(dir.path(), churn_pods, churn, Duration::from_secs(seconds));
    println!(
        "watch -> stdout under churn ({churn_pods} pods, simulator asked for {churn} changes/s, {seconds} s):"
    );
    println!(
        "  changes made by the server  {:>10.0} /s",
        rate.server_per_sec
    );
    println!(
        "  notifications written       {:>10.0} /s",
        rate.written_per_sec
    );
    // The server's rate counts every change (5% are deployment scalings, outside the pod
    // watch); the lag says whether kubebridge kept up: how far the last notification
    // written trailed the server's latest resourceVersion when the window closed.
    println!(
        "  lag at the end              {:>10} resourceVersions ({:.0} ms at the server's rate)",
        rate.lag,
        rate.lag as f64 * 1000.0 / rate.server_per_sec.max(1.0)
    );
    println!("  RSS at the end              {:>10.1} MiB", mib(rate.rss));
}

/// The initial sync of pods that carry managedFields (as a real API server's do),
/// stripped (the default) and kept (`--keep-managed-fields`): the memory stripping saves.
fn managed_fields(dir: &Path, pods: u64) {
    let sim = SimProcess::start_with(dir, "managed", pods, 0, &["--managed-fields"]);
    let stripped = sync_of(&sim, pods, &[]);
    let kept = sync_of(&sim, pods, &["--keep-managed-fields"]);
    println!("initial sync of {pods} pods with managedFields (sim --managed-fields):");
    println!(
        "  raw JSON of the pods        {:>10.1} MiB ({:.0} bytes/pod)",
        mib(kept.json_bytes),
        kept.json_bytes as f64 / pods as f64
    );
    for (what, f) in [
        ("stripped (default)", &stripped),
        ("--keep-managed-fields", &kept),
    ] {
        println!(
            "  {what:<22} RSS once synced {:>8.1} MiB, peak {:>8.1} MiB, {:>6.2} s",
            mib(f.settled_rss),
            mib(f.peak_rss),
            f.elapsed.as_secs_f64()
        );
    }
    println!(
        "  saved by stripping          {:>10.1} MiB once synced ({:.0}%), {:.1} MiB at peak",
        mib(kept.settled_rss.saturating_sub(stripped.settled_rss)),
        100.0 * kept.settled_rss.saturating_sub(stripped.settled_rss) as f64
            / kept.settled_rss.max(1) as f64,
        mib(kept.peak_rss.saturating_sub(stripped.peak_rss)),
    );
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A `kubebridge sim` child process, stopped on drop.
struct SimProcess {
    child: Child,
    kubeconfig: PathBuf,
    addr: String,
}

impl SimProcess {
    fn start(dir: &Path, name: &str, pods: u64, churn: u64) -> SimProcess {
        SimProcess::start_with(dir, name, pods, churn, &[])
    }

    /// Like `start`, with more `kubebridge sim` arguments.
    fn start_with(dir: &Path, name: &str, pods: u64, churn: u64, extra: &[&str]) -> SimProcess {
        let kubeconfig = dir.join(format!("{name}.kubeconfig"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubebridge"))
            // A history window far larger than the run, so neither the watch nor a
            // paginated list is ever expired by the benchmark's own churn.
            .args([
                "sim",
                "--listen",
                "127.0.0.1:0",
                "--namespaces",
                "50",
                "--history",
                "2000000",
            ])
            .args(["--pods", &pods.to_string(), "--churn", &churn.to_string()])
            .args(extra)
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kubebridge sim");
        let deadline = Instant::now() + Duration::from_secs(300);
        let addr = loop {
            if let Ok(text) = std::fs::read_to_string(&kubeconfig)
                && let Some(server) = text.lines().find_map(|l| l.trim().strip_prefix("server:"))
            {
                break server
                    .trim()
                    .trim_matches('"')
                    .trim_start_matches("http://")
                    .to_owned();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the simulator exited ({status}) before serving; its stderr is above");
            }
            assert!(Instant::now() < deadline, "the simulator did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        SimProcess {
            child,
            kubeconfig,
            addr,
        }
    }

    /// GETs a path with the test kit's HTTP client and returns the body.
    fn get(&self, path: &str) -> Vec<u8> {
        let addr = self.addr.parse().expect("the simulator's address");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for one request");
        let response = runtime.block_on(http::request(
            addr,
            "GET",
            path,
            &[("Accept", "application/json")],
            None,
        ));
        assert_eq!(response.status, 200, "GET {path}: {}", response.text());
        response.body
    }

    fn resource_version(&self) -> u64 {
        let body: serde_json::Value =
            serde_json::from_slice(&self.get("/api/v1/namespaces?limit=1")).unwrap();
        body["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Total size of the pods' JSON as the server would send them one by one.
    fn pods_json_bytes(&self) -> u64 {
        let mut total = 0;
        let mut token = String::new();
        loop {
            let path = format!("/api/v1/pods?limit=5000&continue={token}");
            let body: serde_json::Value = serde_json::from_slice(&self.get(&path)).unwrap();
            for item in body["items"].as_array().unwrap() {
                total += serde_json::to_vec(item).unwrap().len() as u64;
            }
            match body["metadata"]["continue"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_owned(),
                _ => return total,
            }
        }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Samples a process's resident set size until told to stop; keeps the peak.
struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(rss) = rss_of(pid) {
                    p.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        RssSampler {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

fn spawn_watch(sim: &SimProcess) -> Child {
    spawn_watch_with(sim, &[])
}

fn spawn_watch_with(sim: &SimProcess, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kubebridge"))
        .args(["watch", "pods", "-A", "--kubeconfig"])
        .arg(&sim.kubeconfig)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kubebridge watch")
}

struct SyncFigures {
    json_bytes: u64,
    elapsed: Duration,
    peak_rss: u64,
    settled_rss: u64,
}

fn initial_sync(dir: &Path, pods: u64) -> SyncFigures {
    let sim = SimProcess::start(dir, "sync", pods, 0);
    sync_of(&sim, pods, &[])
}

/// The initial sync of `pods` pods from `sim` by `kubebridge watch pods -A EXTRA...`.
fn sync_of(sim: &SimProcess, pods: u64, extra: &[&str]) -> SyncFigures {
    let json_bytes = sim.pods_json_bytes();
    let started = Instant::now();
    let mut watch = spawn_watch_with(sim, extra);
    let sampler = RssSampler::start(watch.id());
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut seen = 0;
    while seen < pods {
        let line = lines.next().expect("a notification").unwrap();
        assert!(line.starts_with('{'));
        seen += 1;
    }
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let settled_rss = rss_of(watch.id()).unwrap_or(0);
    let peak_rss = sampler.finish();
    let _ = watch.kill();
    let _ = watch.wait();
    SyncFigures {
        json_bytes,
        elapsed,
        peak_rss,
        settled_rss,
    }
}

struct RateFigures {
    server_per_sec: f64,
    written_per_sec: f64,
    /// resourceVersions between the server's latest and the latest written at the end.
    lag: u64,
    rss: u64,
}

fn churn_rate(dir: &Path, pods: u64, churn: u64, window: Duration) -> RateFigures {
    let sim = SimProcess::start(dir, "churn", pods, churn);
    let mut watch = spawn_watch(&sim);
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    // Past the initial list (churn may add a few lines to it; they count as warm-up).
    for _ in 0..pods {
        lines.next().expect("a notification").unwrap();
    }
    let written = Arc::new(AtomicU64::new(0));
    let last_rv = Arc::new(AtomicU64::new(0));
    let (counter, last) = (written.clone(), last_rv.clone());
    std::thread::spawn(move || {
        for line in lines {
            let Ok(line) = line else { break };
            counter.fetch_add(1, Ordering::Relaxed);
            // The envelope's own resourceVersion comes before the object's.
            if let Some(rv) = line
                .split_once("\"resourceVersion\":\"")
                .and_then(|(_, rest)| rest.split('"').next())
                .and_then(|rv| rv.parse::<u64>().ok())
            {
                last.fetch_max(rv, Ordering::Relaxed);
            }
        }
    });
    // Let the backlog of changes made during the initial list drain first, so the
    // window counts the steady state rather than a catch-up burst.
    std::thread::sleep(Duration::from_secs(3));
    let rv0 = sim.resource_version();
    let w0 = written.load(Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(window);
    let rv1 = sim.resource_version();
    let w1 = written.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let lag = rv1.saturating_sub(last_rv.load(Ordering::Relaxed));
    let rss = rss_of(watch.id()).unwrap_or(0);
    let _ = watch.kill();
    let _ = watch.wait();
    RateFigures {
        server_per_sec: (rv1 - rv0) as f64 / secs,
        written_per_sec: (w1 - w0) as f64 / secs,
        lag,
        rss,
    }
}
