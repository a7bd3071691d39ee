//! Background churn: realistic pod and deployment mutations at a steady rate, via the API's write path.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::ops::{self, Target};
use crate::seed::{Owner, create_pod};
use crate::shared::Shared;
use crate::store::{ObjKey, Store};
use crate::time::now_rfc3339;

/// Runs forever (until aborted), making `rate` mutations per second on average.
pub(crate) async fn run(shared: Arc<Shared>, rate: f64) {
    let tick = Duration::from_millis(10).max(Duration::from_secs_f64((1.0 / rate).min(1.0)));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pods: Vec<ObjKey> = Vec::new();
    let mut budget = 0.0f64;
    let mut last = tokio::time::Instant::now();
    let mut counter: u64 = 0;
    loop {
        interval.tick().await;
        let now = tokio::time::Instant::now();
        budget += rate * now.duration_since(last).as_secs_f64();
        last = now;
        let mut store = shared.lock();
        if pods.is_empty() {
            let at = store.resource_version();
            store.scan("pods", None, None, at, |k, _| {
                pods.push(k.clone());
                true
            });
        }
        // After a stall (a starved CPU), make up at most 100 ms of changes: a load
        // generator that bursts to several times its rate misleads the benchmarks that
        // read it, and one tick must never hold the lock for long.
        budget = budget.min((rate * 0.1).max(1.0));
        while budget >= 1.0 {
            budget -= 1.0;
            counter += 1;
            mutate(&mut store, &mut pods, counter);
        }
    }
}

fn patch(store: &mut Store, resource: &str, key: &ObjKey, sub: Option<&str>, body: Value) -> bool {
    let Some(rt) = store.registry.lookup_key(resource) else {
        return false;
    };
    let t = Target {
        rt: &rt,
        namespace: Some(&key.0),
        subresource: sub,
        dry_run: false,
    };
    ops::patch(store, &t, &key.1, &body).is_ok()
}

/// One random mutation; objects that vanished meanwhile (deleted through the API) are forgotten.
fn mutate(store: &mut Store, pods: &mut Vec<ObjKey>, counter: u64) {
    if pods.is_empty() {
        return;
    }
    let roll = store.rng.f64();
    let i = store.rng.usize(..pods.len());
    let key = pods[i].clone();
    let ok = if roll < 0.35 {
        patch(
            store,
            "pods",
            &key,
            None,
            json!({"metadata": {"annotations": {"kubebridge.sim/heartbeat": counter.to_string()}}}),
        )
    } else if roll < 0.55 {
        let version = format!("v{}", store.rng.u32(1..5));
        patch(
            store,
            "pods",
            &key,
            None,
            json!({"metadata": {"labels": {"version": version}}}),
        )
    } else if roll < 0.80 {
        let ready = store.rng.f64() < 0.8;
        let now = now_rfc3339();
        patch(
            store,
            "pods",
            &key,
            Some("status"),
            json!({"status": {"conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}
            ]}}),
        )
    } else if roll < 0.95 {
        replace_pod(store, pods, i)
    } else {
        scale(store, &key)
    };
    if !ok && store.get("pods", &key).is_none() {
        pods.swap_remove(i);
    }
}

/// Deletes a pod and creates its replacement under the same ReplicaSet, like a controller would.
fn replace_pod(store: &mut Store, pods: &mut Vec<ObjKey>, i: usize) -> bool {
    let key = pods[i].clone();
    let Some(old) = store.get("pods", &key) else {
        return false;
    };
    let old = old.to_value();
    let Some(rt) = store.registry.lookup_key("pods") else {
        return false;
    };
    let t = Target {
        rt: &rt,
        namespace: Some(&key.0),
        subresource: None,
        dry_run: false,
    };
    if ops::delete(store, &t, &key.1, None, None).is_err() {
        return false;
    }
    pods.swap_remove(i);
    let meta = &old["metadata"];
    let owner_ref = &meta["ownerReferences"][0];
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let owner = Owner {
        app: str_of(&meta["labels"]["app"]),
        rs_name: str_of(&owner_ref["name"]),
        rs_uid: str_of(&owner_ref["uid"]),
        hash: str_of(&meta["labels"]["pod-template-hash"]),
        image: str_of(&old["spec"]["containers"][0]["image"]),
    };
    if owner.rs_name.is_empty() {
        return true;
    }
    if let Some(name) = create_pod(store, &key.0, &owner, &now_rfc3339()) {
        pods.push((key.0, name));
    }
    true
}

/// Nudges the replicas of the deployment owning this pod's namespace's first app up or down by one.
fn scale(store: &mut Store, pod_key: &ObjKey) -> bool {
    let Some(pod) = store.get("pods", pod_key) else {
        return false;
    };
    let app = pod.labels.get("app").cloned().unwrap_or_default();
    let key = (pod_key.0.clone(), app);
    let Some(dep) = store.get("deployments.apps", &key) else {
        return true;
    };
    let replicas = dep.to_value()["spec"]["replicas"].as_i64().unwrap_or(1);
    let delta = if store.rng.bool() { 1 } else { -1 };
    let new = (replicas + delta).max(0);
    patch(
        store,
        "deployments.apps",
        &key,
        None,
        json!({"spec": {"replicas": new}}),
    ) && patch(
        store,
        "deployments.apps",
        &key,
        Some("status"),
        json!({"status": {"replicas": new, "readyReplicas": new, "updatedReplicas": new, "availableReplicas": new}}),
    )
}
