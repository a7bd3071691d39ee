//! The per-route filter stage on its own: notifications per second through a route with
//! no filter (the default: only the noise comparison), with `--no-suppress` (nothing at
//! all), with a CEL filter, with `--diff`, and with projection plus diff, over realistic
//! pods (~5 KiB with managedFields, conditions and container statuses).
//!
//! `cargo bench --bench filters` runs 50 000 MODIFIED notifications per case
//! (`BENCH_NOTES` overrides); under `cargo test` a smoke size, so the benchmark is known
//! to work. Figures mean something only on an otherwise idle machine.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use kubebridge::filter::{FilterConfig, RouteFilter};
use kubebridge_sinks::{EventType, Notification, Origin, ResourceId};
use serde_json::value::RawValue;
use serde_json::{Value, json};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A pod as the API server writes it, at resourceVersion `rv`, in `phase`, with its
/// heartbeat at `beat`.
fn pod(i: usize, rv: u64, phase: &str, beat: u64) -> Value {
    let condition = |kind: &str| {
        json!({"type": kind, "status": "True", "lastProbeTime": null,
               "lastHeartbeatTime": format!("2026-01-01T00:{:02}:{:02}Z", beat / 60 % 60, beat % 60),
               "lastTransitionTime": "2026-01-01T00:00:00Z"})
    };
    let container = |name: &str| {
        json!({"name": name, "image": format!("registry.example.com/team/{name}:1.2.{i}"),
               "ports": [{"containerPort": 8080, "protocol": "TCP"}],
               "env": [{"name": "MODE", "value": "production"}, {"name": "REPLICA", "value": i.to_string()}],
               "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
               "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
               "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"})
    };
    let managed = |manager: &str| {
        json!({"manager": manager, "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:00Z",
               "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}}},
               "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:env": {}, "f:resources": {}}}},
               "f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:lastHeartbeatTime": {}, "f:status": {}}}}}})
    };
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": format!("web-{i}"), "namespace": "shop", "uid": format!("uid-{i}"),
                     "resourceVersion": rv.to_string(), "creationTimestamp": "2026-01-01T00:00:00Z",
                     "labels": {"app": "web", "pod-template-hash": "5d8f9c7b6"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f9c7b6", "uid": "rs", "controller": true}],
                     "managedFields": [managed("kube-controller-manager"), managed("kubelet")]},
        "spec": {"containers": [container("app"), container("sidecar")], "nodeName": "node-1",
                 "restartPolicy": "Always", "serviceAccountName": "default"},
        "status": {"phase": phase, "hostIP": "10.0.0.1", "podIP": "10.1.0.7",
                   "conditions": [condition("Initialized"), condition("Ready"), condition("ContainersReady"), condition("PodScheduled")],
                   "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "app:1", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}
    })
}

fn raw(v: &Value) -> Arc<RawValue> {
    Arc::from(RawValue::from_string(v.to_string()).expect("json"))
}

fn modified(object: &Value, old: &Value) -> Arc<Notification> {
    Arc::new(Notification {
        event_type: EventType::Modified,
        origin: Origin::Watch,
        time: SystemTime::now(),
        cluster: None,
        resource: Arc::new(ResourceId {
            group: String::new(),
            version: "v1".into(),
            resource: "pods".into(),
            kind: "Pod".into(),
        }),
        namespace: object["metadata"]["namespace"].as_str().map(Into::into),
        name: object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .into(),
        uid: object["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .into(),
        resource_version: object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .into(),
        object: raw(object),
        old_object: Some(raw(old)),
        snapshot: None,
        patch: None,
        tombstone: false,
        old_resource_version: None,
    })
}

/// Runs `notes` through a route with `config`: (notifications/s, how many it published).
fn run(config: &FilterConfig, notes: &[Arc<Notification>]) -> (f64, usize) {
    let route = RouteFilter::new("bench", config).expect("valid config");
    let start = Instant::now();
    let published = notes.iter().filter_map(|n| route.pass(n)).count();
    (
        notes.len() as f64 / start.elapsed().as_secs_f64(),
        published,
    )
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = env_or("BENCH_NOTES", if full { 50_000 } else { 300 });
    println!(
        "filters benchmark ({}): {n} MODIFIED notifications per case",
        if full { "full" } else { "smoke" }
    );
    // Real changes: the phase flips (and the heartbeat moves); noise: only the
    // resourceVersion and managedFields change.
    let real: Vec<_> = (0..n)
        .map(|i| {
            let rv = 2 * i as u64 + 10;
            modified(
                &pod(i, rv + 1, if i % 2 == 0 { "Failed" } else { "Running" }, 2),
                &pod(i, rv, "Running", 1),
            )
        })
        .collect();
    let noise: Vec<_> = (0..n)
        .map(|i| {
            let rv = 2 * i as u64 + 10;
            let mut new = pod(i, rv + 1, "Running", 1);
            new["metadata"]["managedFields"][0]["time"] = json!("2026-01-01T00:00:09Z");
            modified(&new, &pod(i, rv, "Running", 1))
        })
        .collect();
    let bytes = real[0].object.get().len();
    println!("object size: {bytes} bytes");
    let failed = r#"object.status.phase == "Failed" && (oldObject == null || oldObject.status.phase != "Failed")"#;
    let cases: Vec<(&str, FilterConfig, &[Arc<Notification>])> = vec![
        (
            "--no-suppress (nothing to do)",
            FilterConfig {
                suppress: false,
                ..FilterConfig::default()
            },
            &real,
        ),
        ("no filter, real changes", FilterConfig::default(), &real),
        (
            "no filter, noise (suppressed)",
            FilterConfig::default(),
            &noise,
        ),
        (
            "CEL filter",
            FilterConfig {
                filter: Some(failed.into()),
                ..FilterConfig::default()
            },
            &real,
        ),
        (
            "--diff",
            FilterConfig {
                diff: true,
                ..FilterConfig::default()
            },
            &real,
        ),
        (
            "--field x3 --diff --old-object none",
            FilterConfig {
                fields: vec![
                    "/metadata/name".into(),
                    "/metadata/labels".into(),
                    "/status".into(),
                ],
                diff: true,
                old_object: kubebridge::filter::OldObject::None,
                ..FilterConfig::default()
            },
            &real,
        ),
    ];
    for (name, config, notes) in cases {
        let (rate, published) = run(&config, notes);
        println!(
            "{name:<40} {rate:>12.0} notifications/s  ({published} of {} published)",
            notes.len()
        );
        assert!(published <= notes.len());
    }
}
