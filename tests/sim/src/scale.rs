//! The `/scale` subresource of apps workloads (autoscaling/v1 Scale), used by `kubectl scale` and autoscalers.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::merge_patch::merge_patch;
use crate::ops::{self, Target};
use crate::resources::ResourceType;
use crate::store::{Store, StoredObject};

/// Whether a type has a scale subresource.
pub(crate) fn has_scale(rt: &ResourceType) -> bool {
    rt.group == "apps"
        && matches!(
            rt.plural.as_str(),
            "deployments" | "replicasets" | "statefulsets"
        )
}

/// The Scale view of a workload.
pub(crate) fn scale_of(obj: &StoredObject) -> Value {
    let v = obj.to_value();
    let meta = &v["metadata"];
    let selector: Vec<String> = v["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, val)| format!("{k}={}", val.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": v["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": v["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector.join(",")},
    })
}

/// PUT or PATCH of /scale: derives the new replica count and writes it to the workload's spec.
pub(crate) fn write_scale(
    store: &mut Store,
    t: &Target<'_>,
    name: &str,
    body: &Value,
    is_patch: bool,
) -> Result<Arc<StoredObject>, ApiError> {
    let rt = t.rt;
    let Some(existing) = store.get(
        &rt.key(),
        &(
            t.namespace.unwrap_or_default().to_string(),
            name.to_string(),
        ),
    ) else {
        return Err(ApiError::not_found(&rt.group, &rt.plural, name));
    };
    let current = scale_of(&existing);
    let desired = if is_patch {
        merge_patch(&current, body)
    } else {
        body.clone()
    };
    if let Some(rv) = desired["metadata"]["resourceVersion"].as_str()
        && !is_patch
        && !rv.is_empty()
        && rv != existing.resource_version.to_string()
    {
        return Err(ApiError::conflict(&rt.group, &rt.plural, name));
    }
    let Some(replicas) = desired["spec"]["replicas"].as_i64().filter(|r| *r >= 0) else {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            name,
            &[(
                "spec.replicas",
                "FieldValueInvalid",
                "Invalid value: must be greater than or equal to 0".to_string(),
            )],
        ));
    };
    let main = Target {
        subresource: None,
        ..*t
    };
    ops::patch(store, &main, name, &json!({"spec": {"replicas": replicas}}))
}
