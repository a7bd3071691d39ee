//! Test helpers shared by the informer's unit tests: synthetic objects and processors.

use std::sync::Arc;

use kubebridge_sinks::{Notification, ResourceId};
use serde_json::value::RawValue;

use super::{Processor, ProcessorConfig, RawObject};

/// The transform of pods: managedFields stripped when `strip`, Secrets' values and the
/// paths of `rules` hashed with a fixed key.
pub(crate) fn transform(
    strip: bool,
    rules: Vec<super::transform::ResolvedRule>,
) -> super::transform::ObjectTransform {
    let key = super::redact::RedactionKey::new(b"test-key".to_vec(), super::redact::KeySource::Env);
    super::transform::Transforms::new(strip, true, key, rules).for_resource(&pods(), || {
        prometheus::IntCounter::new("redacted", "test").expect("counter")
    })
}

/// A redaction rule for pods' `/spec/token`.
pub(crate) fn pod_token_rule() -> super::transform::ResolvedRule {
    super::transform::ResolvedRule {
        group: String::new(),
        resource: "pods".into(),
        paths: vec![super::redact_path::RedactPath::parse("/spec/token").expect("path")],
    }
}

pub(crate) fn pods() -> Arc<ResourceId> {
    Arc::new(ResourceId {
        group: String::new(),
        version: "v1".into(),
        resource: "pods".into(),
        kind: "Pod".into(),
    })
}

/// Pods as discovery describes them, for tests that need the whole resource.
pub(crate) fn pod_resource() -> crate::kube::discovery::ApiResource {
    crate::kube::discovery::ApiResource {
        id: pods(),
        namespaced: true,
        singular: "pod".into(),
        short_names: vec!["po".into()],
        preferred: true,
    }
}

pub(crate) fn obj(name: &str, uid: &str, rv: u32) -> RawObject {
    let text = format!(
        r#"{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"ns","uid":"{uid}","resourceVersion":"{rv}"}}}}"#
    );
    RawObject::decode(
        RawValue::from_string(text).expect("json"),
        &pods(),
        &super::transform::ObjectTransform::none(),
    )
    .expect("decode")
}

/// A pod of realistic shape: what a dictionary learns from is the shared text.
pub(crate) fn pod_text(i: usize, rv: u32) -> String {
    format!(
        r#"{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"web-{i}","namespace":"ns-{ns}","uid":"3f0c{i:08}-aaaa-4bbb-8ccc-{i:012}","resourceVersion":"{rv}","labels":{{"app":"web","pod-template-hash":"7d9f{h:04}"}},"ownerReferences":[{{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f{h:04}","uid":"9a{h:06}","controller":true,"blockOwnerDeletion":true}}]}},"spec":{{"containers":[{{"name":"web","image":"registry.example.com/web:1.{h}","ports":[{{"containerPort":8080,"protocol":"TCP"}}],"resources":{{"requests":{{"cpu":"100m","memory":"128Mi"}}}},"terminationMessagePath":"/dev/termination-log","imagePullPolicy":"IfNotPresent"}}],"restartPolicy":"Always","nodeName":"node-{n}","schedulerName":"default-scheduler"}},"status":{{"phase":"Running","podIP":"10.0.{n}.{ip}","conditions":[{{"type":"Ready","status":"True","lastTransitionTime":"2026-11-28T09:{m:02}:00Z"}}]}}}}"#,
        ns = i % 7,
        h = i % 13,
        n = i % 50,
        ip = i % 250,
        m = i % 60,
    )
}

pub(crate) fn pod(i: usize, rv: u32) -> RawObject {
    let raw = RawValue::from_string(pod_text(i, rv)).expect("json");
    RawObject::decode(raw, &pods(), &super::transform::ObjectTransform::none()).expect("decode")
}

pub(crate) fn processor(emit_initial: bool) -> Processor {
    processor_with(emit_initial, super::CacheCompression::None)
}

/// A processor whose cache holds objects as `compression` says.
pub(crate) fn processor_with(
    emit_initial: bool,
    compression: super::CacheCompression,
) -> Processor {
    Processor::new(
        "pods".into(),
        pods(),
        ProcessorConfig {
            emit_initial,
            resync: None,
            cluster: Some("c1".into()),
            cache_compression: compression,
        },
        Vec::new(),
        crate::metrics::Metrics::new(),
    )
}

/// `TYPE origin name rv` for each notification, compact enough to compare whole.
pub(crate) fn summary(notes: &[Notification]) -> Vec<String> {
    notes
        .iter()
        .map(|n| {
            let old = n
                .old_object
                .as_ref()
                .map(|o| format!(" old={}", rv_of(o)))
                .unwrap_or_default();
            format!(
                "{} {} {} {}{old}",
                n.event_type, n.origin, n.name, n.resource_version
            )
        })
        .collect()
}

pub(crate) fn rv_of(raw: &RawValue) -> String {
    let v: serde_json::Value = serde_json::from_str(raw.get()).expect("json");
    v["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned()
}
