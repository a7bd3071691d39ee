//! Realistic seed objects: namespaces, deployments with their ReplicaSets, and ~3 KB pods owned by them.

use serde_json::{Value, json};

use crate::config::SimConfig;
use crate::ids::random_suffix;
use crate::ops::{self, SYSTEM_NAMESPACES, Target};
use crate::store::Store;

const APPS: [&str; 8] = [
    "web", "api", "worker", "cache", "auth", "billing", "search", "frontend",
];
const IMAGES: [&str; 8] = [
    "nginx:1.27.2",
    "ghcr.io/example/api:2.14.1",
    "ghcr.io/example/worker:5.3.0",
    "redis:7.4.1",
    "ghcr.io/example/auth:1.9.7",
    "ghcr.io/example/billing:3.1.4",
    "docker.elastic.co/elasticsearch/elasticsearch:8.15.3",
    "ghcr.io/example/frontend:0.42.0",
];

/// What a pod needs to know about its owning ReplicaSet.
pub(crate) struct Owner {
    pub(crate) app: String,
    pub(crate) rs_name: String,
    pub(crate) rs_uid: String,
    pub(crate) hash: String,
    pub(crate) image: String,
}

fn ip(rng: &mut fastrand::Rng) -> String {
    format!(
        "10.{}.{}.{}",
        rng.u8(0..=255),
        rng.u8(0..=255),
        rng.u8(1..=254)
    )
}

/// A Running pod as a kubelet would report it, around 3 KB of JSON.
pub(crate) fn pod(rng: &mut fastrand::Rng, namespace: &str, owner: &Owner, now: &str) -> Value {
    let name = format!("{}-{}", owner.rs_name, random_suffix(rng, 5));
    let node = format!("node-{}", rng.u32(0..50));
    let pod_ip = ip(rng);
    let container_id = format!(
        "containerd://{:016x}{:016x}{:016x}{:016x}",
        rng.u64(..),
        rng.u64(..),
        rng.u64(..),
        rng.u64(..)
    );
    let mut containers = vec![json!({
        "name": owner.app,
        "image": owner.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
        "env": [
            {"name": "APP_NAME", "value": owner.app},
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}
        ],
        "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/app", "readOnly": true},
            {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}
        ],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "initialDelaySeconds": 10, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 5},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File"
    })];
    let mut statuses = vec![json!({
        "name": owner.app, "state": {"running": {"startedAt": now}}, "lastState": {}, "ready": true,
        "restartCount": 0, "image": owner.image, "imageID": format!("{}@sha256:{:016x}{:016x}", owner.image, rng.u64(..), rng.u64(..)),
        "containerID": container_id, "started": true
    })];
    if rng.u8(0..10) < 3 {
        containers.push(json!({
            "name": "log-shipper", "image": "fluent/fluent-bit:3.1.9", "imagePullPolicy": "IfNotPresent",
            "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "10m", "memory": "32Mi"}},
            "volumeMounts": [{"name": "varlog", "mountPath": "/var/log"}],
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"
        }));
        statuses.push(json!({
            "name": "log-shipper", "state": {"running": {"startedAt": now}}, "lastState": {}, "ready": true,
            "restartCount": 0, "image": "fluent/fluent-bit:3.1.9", "imageID": "docker.io/fluent/fluent-bit@sha256:5f1a", "containerID": "containerd://log", "started": true
        }));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": format!("{}-", owner.rs_name),
            "namespace": namespace,
            "labels": {"app": owner.app, "pod-template-hash": owner.hash, "tier": "backend"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": now, "prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner.rs_name, "uid": owner.rs_uid, "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "containers": containers,
            "volumes": [
                {"name": "config", "configMap": {"name": format!("{}-config", owner.app), "defaultMode": 420}},
                {"name": "varlog", "emptyDir": {}},
                {"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "nodeName": node,
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ],
            "priority": 0,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}
            ],
            "hostIP": ip(rng),
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": now,
            "containerStatuses": statuses,
            "qosClass": "Burstable"
        }
    })
}

fn deployment(namespace: &str, app: &str, replicas: usize) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "namespace": namespace, "labels": {"app": app}, "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": app, "image": "example"}]}}
        },
        "status": {"replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas, "availableReplicas": replicas, "observedGeneration": 1}
    })
}

fn replica_set(
    namespace: &str,
    app: &str,
    name: &str,
    hash: &str,
    deploy_uid: &str,
    replicas: usize,
) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name, "namespace": namespace, "labels": {"app": app, "pod-template-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app, "uid": deploy_uid, "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app, "pod-template-hash": hash}}, "template": {"metadata": {"labels": {"app": app, "pod-template-hash": hash}}}},
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas, "observedGeneration": 1}
    })
}

fn must_create(store: &mut Store, resource: &str, namespace: Option<&str>, body: Value) -> Value {
    let rt = store
        .registry
        .lookup_key(resource)
        .expect("seeded types are built in");
    let t = Target {
        rt: &rt,
        namespace,
        subresource: None,
        dry_run: false,
    };
    ops::create(store, &t, body)
        .expect("seed objects are valid and unique")
        .to_value()
}

/// Creates the system namespaces, then the seed objects described by `config`.
pub(crate) fn seed(store: &mut Store, config: &SimConfig) {
    for ns in SYSTEM_NAMESPACES {
        must_create(store, "namespaces", None, json!({"metadata": {"name": ns}}));
    }
    let mut namespaces: Vec<String> = (0..config.namespaces).map(|i| format!("ns-{i}")).collect();
    for ns in &namespaces {
        must_create(store, "namespaces", None, json!({"metadata": {"name": ns}}));
    }
    if namespaces.is_empty() {
        if config.pods == 0 {
            return;
        }
        namespaces.push("default".to_string());
    }
    let per_ns = config
        .deployments_per_namespace
        .max(usize::from(config.pods > 0));
    if per_ns == 0 {
        return;
    }
    // Pod i goes to namespace i % N and, within it, to deployment (i / N) % per_ns.
    let n = namespaces.len();
    let replicas = |ns_index: usize, d: usize| -> usize {
        (0..config.pods)
            .filter(|i| i % n == ns_index && (i / n) % per_ns == d)
            .count()
    };
    let now = crate::time::now_rfc3339();
    let mut owners: Vec<Vec<Owner>> = Vec::new();
    for (ns_index, ns) in namespaces.iter().enumerate() {
        let mut list = Vec::new();
        for d in 0..per_ns {
            let app = if per_ns <= APPS.len() {
                APPS[d].to_string()
            } else {
                format!("{}-{d}", APPS[d % APPS.len()])
            };
            let count = if config.pods > 0 {
                replicas(ns_index, d)
            } else {
                2
            };
            let dep = must_create(
                store,
                "deployments.apps",
                Some(ns),
                deployment(ns, &app, count),
            );
            let hash = random_suffix(&mut store.rng, 10);
            let rs_name = format!("{app}-{hash}");
            let dep_uid = dep["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let rs = must_create(
                store,
                "replicasets.apps",
                Some(ns),
                replica_set(ns, &app, &rs_name, &hash, &dep_uid, count),
            );
            list.push(Owner {
                image: IMAGES[d % IMAGES.len()].to_string(),
                app,
                rs_name,
                rs_uid: rs["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                hash,
            });
        }
        owners.push(list);
    }
    for i in 0..config.pods {
        let ns_index = i % n;
        let owner = &owners[ns_index][(i / n) % per_ns];
        create_pod(store, &namespaces[ns_index], owner, &now);
    }
}

/// `metadata.managedFields` as a real API server keeps it for a pod: kube-controller-manager
/// owns what it wrote at creation (labels, owner references, spec), the kubelet the
/// status it reports; each entry's `fieldsV1` mirrors the fields it owns.
fn managed_fields(pod: &Value, now: &str) -> Value {
    let metadata = json!({
        "f:generateName": {},
        "f:labels": fields_of(&pod["metadata"]["labels"]),
        "f:ownerReferences": {".": {}, "k:{\"uid\":\"owner\"}": {}},
    });
    let entry = |manager: &str, subresource: Option<&str>, fields: Value| {
        let mut e = json!({
            "manager": manager, "operation": "Update", "apiVersion": "v1", "time": now,
            "fieldsType": "FieldsV1", "fieldsV1": fields,
        });
        if let Some(s) = subresource {
            e["subresource"] = json!(s);
        }
        e
    };
    json!([
        entry(
            "kube-controller-manager",
            None,
            json!({"f:metadata": metadata, "f:spec": fields_of(&pod["spec"])}),
        ),
        entry(
            "kubelet",
            Some("status"),
            json!({"f:status": fields_of(&pod["status"])}),
        ),
    ])
}

/// The `fieldsV1` set of `value`: `f:` for each member, `k:` for each named list item.
fn fields_of(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            out.insert(".".into(), json!({}));
            for (k, v) in map {
                // Atomic lists: one owner for the whole list, no per-item fields.
                let atomic = k == "containerStatuses" || k == "podIPs";
                let fields = if atomic { json!({}) } else { fields_of(v) };
                out.insert(format!("f:{k}"), fields);
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out = serde_json::Map::new();
            for item in items {
                let key = match item.get("name").or_else(|| item.get("type")) {
                    Some(name) => format!("k:{{\"name\":{name}}}"),
                    None => format!("v:{item}"),
                };
                out.insert(key, fields_of(item));
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

/// Creates a pod for `owner`, drawing a new random suffix when the name is already taken.
pub(crate) fn create_pod(
    store: &mut Store,
    namespace: &str,
    owner: &Owner,
    now: &str,
) -> Option<String> {
    let rt = store.registry.lookup_key("pods")?;
    let t = Target {
        rt: &rt,
        namespace: Some(namespace),
        subresource: None,
        dry_run: false,
    };
    for _ in 0..16 {
        let mut body = pod(&mut store.rng, namespace, owner, now);
        if store.managed_fields {
            body["metadata"]["managedFields"] = managed_fields(&body, now);
        }
        match ops::create(store, &t, body) {
            Ok(obj) => return Some(obj.name.clone()),
            Err(e) if e.code() == 409 => continue,
            Err(_) => return None,
        }
    }
    None
}
