//! The informer cache on its own, plain (`--cache-compression none`) and zstd-compressed:
//! the heap it owns (counted allocation by allocation) for N realistic pods (the simulator's seeds, managedFields stripped
//! as kubebridge does by default) against their JSON, how fast it takes them in (the
//! initial list; zstd trains its dictionary on the first 1,000), how fast it answers a
//! change (read the old state for `oldObject`, store the new one), and how fast it hands
//! out every object (a resync or `/cache`).
//!
//! `cargo bench --bench cache` runs 100 000 pods, 3 runs, and prints the medians
//! (`BENCH_PODS`, `BENCH_RUNS` override); under `cargo test` a smoke size, so the
//! benchmark is known to work. Figures mean something only on an otherwise idle machine.

use std::time::{Duration, Instant};

use kubebridge::cache_bench::{CacheCompression, ObjectTransform, RawObject, Store};
use kubebridge_sim::{ReplayConfig, ReplayData};
use kubebridge_sinks::ResourceId;
use prometheus::IntCounter;
use serde_json::value::RawValue;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pods_resource() -> ResourceId {
    ResourceId {
        group: String::new(),
        version: "v1".into(),
        resource: "pods".into(),
        kind: "Pod".into(),
    }
}

/// The seed pods as kubebridge caches them: managedFields stripped, kind added.
fn pod_texts(n: usize) -> Vec<String> {
    let data = ReplayData::build(&ReplayConfig {
        pods: n,
        events: 0,
        ..ReplayConfig::default()
    });
    data.items()
        .iter()
        .map(|item| {
            let mut pod: serde_json::Value = serde_json::from_slice(item).expect("a seed pod");
            if let Some(meta) = pod["metadata"].as_object_mut() {
                meta.remove("managedFields");
            }
            serde_json::to_string(&pod).expect("JSON values serialize")
        })
        .collect()
}

fn decode(texts: &[String]) -> Vec<RawObject> {
    let resource = pods_resource();
    let none = ObjectTransform::none();
    texts
        .iter()
        .map(|t| {
            let raw = RawValue::from_string(t.clone()).expect("JSON");
            RawObject::decode(raw, &resource, &none).expect("a pod")
        })
        .collect()
}

struct Run {
    heap: usize,
    held: usize,
    insert: Duration,
    train: Duration,
    change: Duration,
    read_all: Duration,
}

fn run(compression: CacheCompression, texts: &[String]) -> Run {
    let counter = IntCounter::new("unreadable", "bench").expect("counter");
    let mut store = Store::new(compression, counter.clone());
    let objects = decode(texts);
    let keys: Vec<String> = objects.iter().map(RawObject::key).collect();
    let started = Instant::now();
    let mut train = Duration::ZERO;
    for (i, object) in objects.into_iter().enumerate() {
        if i + 1 == 1_000 {
            // The insert that trains the dictionary (zstd), timed on its own.
            let at = Instant::now();
            store.insert(object);
            train = at.elapsed();
        } else {
            store.insert(object);
        }
    }
    store.listed();
    let insert = started.elapsed();
    let heap = store.heap_bytes();
    let held = store.held_bytes();

    // A change per object: the old state read (oldObject), the new one stored.
    let changes = decode(texts);
    let started = Instant::now();
    for (key, object) in keys.iter().zip(changes) {
        let old = store.get(key).map(|e| store.raw(e).expect("readable"));
        std::hint::black_box(old);
        store.insert(object);
    }
    let change = started.elapsed();

    let started = Instant::now();
    let all: Vec<_> = store
        .sorted()
        .into_iter()
        .map(|e| store.raw(e).expect("readable"))
        .collect();
    let read_all = started.elapsed();
    drop(all);
    assert_eq!(counter.get(), 0, "every entry readable");
    Run {
        heap,
        held,
        insert,
        train,
        change,
        read_all,
    }
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    v[v.len() / 2]
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = env_or("BENCH_PODS", if full { 100_000 } else { 2_000 });
    let runs = env_or("BENCH_RUNS", if full { 3 } else { 1 });
    let texts = pod_texts(n);
    let json: usize = texts.iter().map(String::len).sum();
    println!(
        "cache benchmark ({}): {n} seed pods, managedFields stripped, {:.1} MB JSON ({} B/pod), median of {runs}",
        if full { "full" } else { "smoke" },
        json as f64 / 1e6,
        json / n.max(1)
    );
    let mut plain_heap = 0;
    let mut plain_change = 0.0;
    for compression in [CacheCompression::None, CacheCompression::Zstd] {
        let results: Vec<Run> = (0..runs).map(|_| run(compression, &texts)).collect();
        let heap = median(results.iter().map(|r| r.heap).collect());
        let held = median(results.iter().map(|r| r.held).collect());
        let insert = median(results.iter().map(|r| per_sec(n, r.insert)).collect());
        let train = median(results.iter().map(|r| r.train).collect());
        let change = median(results.iter().map(|r| per_sec(n, r.change)).collect());
        let read_all = median(results.iter().map(|r| r.read_all).collect());
        if compression == CacheCompression::None {
            plain_heap = heap;
            plain_change = change;
        }
        println!(
            "  {:<4}: heap {:>7.1} MB = {:.2}x JSON ({:.2}x plain); JSON held {:.1} MB; insert {:>9.0}/s (the 1,000th insert: {:.0} ms); change {:>9.0}/s ({:.2}x plain); read all {:.0} ms",
            compression_name(compression),
            heap as f64 / 1e6,
            heap as f64 / json as f64,
            heap as f64 / plain_heap.max(1) as f64,
            held as f64 / 1e6,
            insert,
            train.as_secs_f64() * 1e3,
            change,
            change / plain_change.max(1e-9),
            read_all.as_secs_f64() * 1e3,
        );
    }
}

fn compression_name(c: CacheCompression) -> &'static str {
    c.as_str()
}
