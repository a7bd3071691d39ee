//! Test helpers shared by the informer's unit tests: synthetic objects and processors.

use std::sync::Arc;

use kubebridge_sinks::{Notification, ResourceId};
use serde_json::value::RawValue;

use super::{Processor, ProcessorConfig, RawObject};

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

pub(crate) fn processor(emit_initial: bool) -> Processor {
    Processor::new(
        "pods".into(),
        pods(),
        ProcessorConfig {
            emit_initial,
            resync: None,
            cluster: Some("c1".into()),
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
