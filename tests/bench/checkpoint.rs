//! Benchmark (prints figures; asserts nothing about speed): what a checkpoint of 100 000
//! objects costs: its size (raw JSON and compressed), the time to encode and decode it,
//! how many ConfigMaps it needs, the time to write it to the ConfigMap store (the
//! in-process simulated API server over loopback), and what that adds up to at 100
//! changes per second with the default `--checkpoint-interval` of 10 s.
//!
//! `cargo bench --bench checkpoint` runs it full size (`BENCH_OBJECTS` overrides);
//! without `--bench` (as under `cargo test`) it runs a smoke size.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kubebridge::checkpoint::configmap::PART_BYTES;
use kubebridge::checkpoint::{Checkpoint, ConfigMapStore, Confirmed, Known};

/// 100 changes/s, written every 10 s: every write carries changes.
const INTERVAL: Duration = Duration::from_secs(10);

fn uuid(rng: &mut fastrand::Rng) -> String {
    let hex: String = (0..32)
        .map(|_| char::from_digit(rng.u32(..16), 16).unwrap())
        .collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..]
    )
}

/// `objects` pods as a real cluster names them: 10 namespaces, Deployment-owned names
/// (`app-HASH-SUFFIX`), random v4 uids, resourceVersions of a busy etcd.
fn checkpoint(objects: usize) -> Checkpoint {
    let mut rng = fastrand::Rng::with_seed(10);
    let mut confirmed = Confirmed::default();
    for i in 0..objects {
        let suffix: String = (0..5)
            .map(|_| rng.alphanumeric().to_ascii_lowercase())
            .collect();
        confirmed.index.insert(
            format!("team-{}/app-{}-7d9f8b6c5d-{suffix}", i % 10, i % 400),
            Known {
                uid: uuid(&mut rng),
                resource_version: (180_000_000 + rng.u64(..20_000_000)).to_string(),
            },
        );
    }
    confirmed.resource_version = "200000000".into();
    Checkpoint {
        cluster: uuid(&mut rng),
        informer: "/v1/pods ns=* labels= fields=".into(),
        written_at_ms: 1_764_000_000_000,
        confirmed,
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn mib(bytes: f64) -> String {
    format!("{:.2} MiB", bytes / 1024.0 / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let objects: usize = std::env::var("BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 100_000 } else { 2_000 });
    let runs = if full { 5 } else { 2 };
    let c = checkpoint(objects);
    let raw: usize = c
        .confirmed
        .index
        .iter()
        .map(|(k, v)| k.len() + v.uid.len() + v.resource_version.len() + 10)
        .sum();
    let mut encode = Vec::new();
    let mut bytes = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        bytes = c.encode();
        encode.push(start.elapsed());
    }
    let mut decode = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let back = Checkpoint::decode(&bytes).expect("decodes");
        decode.push(start.elapsed());
        assert_eq!(back.confirmed.index.len(), objects);
    }
    let parts = bytes.len().div_ceil(PART_BYTES);

    let sim = kubebridge_sim::Sim::start(
        "127.0.0.1:0".parse().unwrap(),
        kubebridge_sim::SimConfig::default(),
    )
    .await
    .expect("simulator");
    let client = kube::Client::try_from(kube::Config::new(sim.url().parse().unwrap())).unwrap();
    let store = ConfigMapStore::new(client, "default".into(), "kb".into());
    let mut write = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        store
            .save("pods-bench", bytes.clone())
            .await
            .expect("written");
        write.push(start.elapsed());
    }
    let writes_per_hour = 3600 / INTERVAL.as_secs() as usize * parts;
    let bytes_per_hour = (3600 / INTERVAL.as_secs()) as f64 * bytes.len() as f64;
    println!("checkpoint of {objects} objects:");
    println!(
        "  size: {} compressed ({} bytes), {} of JSON before compression",
        mib(bytes.len() as f64),
        bytes.len(),
        mib(raw as f64)
    );
    println!(
        "  encode (zstd level 3) {:?}, decode {:?} (median of {runs})",
        median(encode),
        median(decode)
    );
    println!(
        "  ConfigMap store: {parts} ConfigMap(s) of at most {} KiB; one write {:?} over loopback (median of {runs})",
        PART_BYTES / 1024,
        median(write)
    );
    println!(
        "  at 100 changes/s, every {:?}: {parts} PUT(s) per write, {writes_per_hour} API writes and {} per hour",
        INTERVAL,
        mib(bytes_per_hour)
    );
    sim.shutdown().await;
}
