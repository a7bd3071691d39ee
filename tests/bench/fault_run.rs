//! Benchmark: the randomized fault run of tests/fault_run.rs, longer, printing its
//! figures: faults injected by kind, notifications, duplicates, lost (must be 0), and
//! kubebridge's peak RSS (VmHWM).
//!
//! `cargo bench --bench fault_run` runs it for `KUBEBRIDGE_FAULT_BENCH_SECONDS` (120 by
//! default); under `cargo test --benches` it runs a 10 s smoke size so the benchmark
//! itself is known to work. `KUBEBRIDGE_FAULT_SEED` and `KUBEBRIDGE_FAULT_ENABLE` act
//! as in the test.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kubebridge_testkit::fault_run::{RunConfig, run};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let configured: Option<u64> = std::env::var("KUBEBRIDGE_FAULT_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok());
    let seconds = configured.unwrap_or(if full { 120 } else { 10 });
    let size = match (configured, full) {
        (Some(_), _) => "configured",
        (None, true) => "full",
        (None, false) => "smoke",
    };
    println!("kubebridge fault-run benchmark ({size} run, {seconds} s of churn and faults)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let Some(report) = runtime.block_on(run(RunConfig::from_env(Duration::from_secs(seconds))))
    else {
        return;
    };
    println!("{report}");
    println!("wall time: {:.1}s", started.elapsed().as_secs_f64());
    assert!(report.passed(), "the fault run lost data");
}
