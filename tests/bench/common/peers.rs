//! The peers a benchmark runs in a child process of its own (the benchmark binary run
//! again with `BENCH_ROLE` set), so each one's RSS and CPU are its own: kube-runtime's
//! `watcher` + `reflector` store, and kubebridge's pipeline into a null sink
//! (`kubebridge-null`, managedFields stripped as by default; `kubebridge-null-keep`, as
//! with `--keep-managed-fields`).
//!
//! A child prints `synced` once it has the whole LIST, then `done` once it has seen
//! `BENCH_EXPECT_EVENTS` changes after it, and then waits to be killed.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use kubebridge::config::{NamespaceScope, Route, StreamConfig};
use kubebridge_sinks::{Notification, PublishError, Sink};

/// The role this process plays, if it is a peer child.
pub fn role() -> Option<String> {
    std::env::var("BENCH_ROLE").ok()
}

fn expected(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} is set by the benchmark"))
}

fn say(what: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{what}").expect("the benchmark reads this");
    out.flush().expect("the benchmark reads this");
}

/// Runs the child role named `role` until killed.
pub fn run(role: &str) {
    let kubeconfig = std::env::var("BENCH_KUBECONFIG").expect("BENCH_KUBECONFIG");
    let list = expected("BENCH_EXPECT_LIST");
    let events = expected("BENCH_EXPECT_EVENTS");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match role {
        "kube-runtime" => runtime.block_on(kube_runtime(&kubeconfig, list, events)),
        "kubebridge-null" => runtime.block_on(kubebridge_null(&kubeconfig, list, events, false)),
        "kubebridge-null-keep" => {
            runtime.block_on(kubebridge_null(&kubeconfig, list, events, true));
        }
        other => panic!("unknown BENCH_ROLE {other}"),
    }
}

async fn client(kubeconfig: &str) -> kube::Config {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("the replay kubeconfig");
    kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("a config for the replay server")
}

/// kube-runtime's `watcher` over `Api<Pod>` (typed, as most controllers use it), into a
/// `reflector` store, the Rust peer one would pick instead of kubebridge.
async fn kube_runtime(kubeconfig: &str, list: u64, events: u64) {
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let client = kube::Client::try_from(client(kubeconfig).await).expect("a client");
    let api: kube::Api<Pod> = kube::Api::all(client);
    let (store, writer) = reflector::store::<Pod>();
    let stream = watcher(api, watcher::Config::default()).reflect(writer);
    let mut stream = std::pin::pin!(stream);
    let mut applied = 0u64;
    let mut listed = 0u64;
    while let Some(event) = stream.next().await {
        match event.expect("the watcher saw no error") {
            watcher::Event::InitApply(_) => listed += 1,
            watcher::Event::InitDone => {
                assert_eq!(listed, list, "the LIST held every pod");
                say("synced");
                if events == 0 {
                    break;
                }
            }
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => {
                applied += 1;
                if applied == events {
                    say("done");
                    break;
                }
            }
            watcher::Event::Init => {}
        }
    }
    // Keep the store alive (it is what the RSS measures) until killed.
    std::future::pending::<()>().await;
    drop(store);
}

/// Counts what it is given and confirms it at once; says when the counts are reached.
struct CountingSink {
    seen: Arc<AtomicU64>,
    list: u64,
    events: u64,
}

#[async_trait]
impl Sink for CountingSink {
    fn kind(&self) -> &'static str {
        "null"
    }

    async fn publish(&mut self, batch: &[Arc<Notification>]) -> Result<(), PublishError> {
        let before = self.seen.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let after = before + batch.len() as u64;
        if before < self.list && after >= self.list {
            say("synced");
        }
        if self.events > 0 && before < self.list + self.events && after >= self.list + self.events {
            say("done");
        }
        Ok(())
    }
}

/// kubebridge's whole pipeline (`watch pods -A`, initial list as ADDED) into a sink that
/// confirms at once: what kubebridge costs without any output. `keep_managed_fields` is
/// `--keep-managed-fields` (stripped by default).
async fn kubebridge_null(kubeconfig: &str, list: u64, events: u64, keep_managed_fields: bool) {
    let cluster = kubebridge::kube::cluster::from_config(client(kubeconfig).await, None)
        .expect("a cluster for the replay server");
    let mut pods = Route::new("pods", ["pods"]);
    pods.namespaces = NamespaceScope::All;
    let mut stream = StreamConfig::new(vec![pods]);
    stream.redaction.keep_managed_fields = keep_managed_fields;
    let sink = Box::new(CountingSink {
        seen: Arc::default(),
        list,
        events,
    });
    kubebridge::cmd::watch(
        &cluster,
        &stream,
        vec![("pods".into(), sink)],
        std::future::pending(),
    )
    .await
    .expect("kubebridge watch into the null sink");
}
