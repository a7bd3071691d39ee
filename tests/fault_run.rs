//! The randomized fault run at CI size (issue 8's proof): churn on pods, deployments and
//! configmaps while watches drop, history is compacted (410), the API server restarts
//! losing its watch cache, the JetStream server is killed and restarted, and kubebridge
//! itself gets SIGTERM and is started again; then every sink must hold each object's
//! final state, and a DELETED for each object that is gone (duplicates counted, not
//! failed). See tests/kit/src/fault_run.rs for the faults and the ones still off.
//!
//! `KUBEBRIDGE_FAULT_SEED=N` runs another seed (the fixed CI seed otherwise),
//! `KUBEBRIDGE_FAULT_SECONDS` another length, `KUBEBRIDGE_FAULT_ENABLE=a,b` adds
//! pending faults. The seed and the schedule are printed: rerun with
//! `cargo nextest run -p kubebridge -E 'binary(fault_run)' --no-capture`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use kubebridge_testkit::fault_run::{RunConfig, run};

/// Churn and faults for this long in CI; catch-up and the check come after.
const CI_SECONDS: u64 = 35;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_faults_lose_no_final_state_and_no_delete() {
    let seconds = std::env::var("KUBEBRIDGE_FAULT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_SECONDS);
    let config = RunConfig::from_env(Duration::from_secs(seconds));
    let Some(report) = run(config).await else {
        return;
    };
    println!("{report}");
    assert!(
        report.passed(),
        "the fault run failed: see the report above"
    );
    assert!(
        report.schedule.len() >= 5,
        "only {} faults injected: too few to prove anything",
        report.schedule.len()
    );
}
