//! Write operations with the apiserver's semantics: create, update, merge patch, delete, and validation.

use std::sync::Arc;

use kubebridge_apimachinery::{
    dns1123_label_error, dns1123_subdomain_error, label_key_error, label_value_error,
};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::ids::{random_suffix, uuid_v4};
use crate::merge_patch::merge_patch;
use crate::resources::{CRD_RESOURCE, ResourceType};
use crate::store::{EventType, ObjKey, Store, StoredObject};
use crate::time::now_rfc3339;

/// Namespaces that exist from the start and cannot be deleted.
pub(crate) const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Where a write goes: the type (at the requested version), namespace and optional subresource.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) rt: &'a ResourceType,
    pub(crate) namespace: Option<&'a str>,
    pub(crate) subresource: Option<&'a str>,
    pub(crate) dry_run: bool,
}

impl Target<'_> {
    fn key(&self, name: &str) -> ObjKey {
        let ns = if self.rt.namespaced {
            self.namespace.unwrap_or("default")
        } else {
            ""
        };
        (ns.to_string(), name.to_string())
    }
}

/// Checks the body is an object whose kind/apiVersion (when present) match the URL, and strips them.
fn check_type_meta(rt: &ResourceType, body: Value) -> Result<Value, ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::bad_request(
            "the object provided is unrecognized (must be of type object)",
        ));
    };
    if let Some(av) = map.remove("apiVersion") {
        let expected = rt.api_version();
        if av.as_str() != Some(expected.as_str()) {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({expected})",
                av.as_str().unwrap_or_default()
            )));
        }
    }
    if let Some(kind) = map.remove("kind")
        && kind.as_str() != Some(rt.kind.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({}) does not match the expected kind ({})",
            kind.as_str().unwrap_or_default(),
            rt.kind
        )));
    }
    if !map.get("metadata").is_none_or(Value::is_object) {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    if !map.contains_key("metadata") {
        map.insert("metadata".to_string(), json!({}));
    }
    Ok(Value::Object(map))
}

/// Reconciles metadata.namespace with the request's namespace (400 on mismatch, like the real server).
fn check_namespace(t: &Target<'_>, body: &mut Value) -> Result<String, ApiError> {
    let meta = &mut body["metadata"];
    if !t.rt.namespaced {
        if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        return Ok(String::new());
    }
    let in_body = meta["namespace"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let ns = match (t.namespace, in_body) {
        (Some(url), Some(b)) if url != b => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        (Some(url), _) => url.to_string(),
        (None, Some(b)) => b,
        (None, None) => "default".to_string(),
    };
    meta["namespace"] = Value::String(ns.clone());
    Ok(ns)
}

/// Why `name` is not a valid object name: a DNS-1123 label for namespaces, a subdomain otherwise.
fn name_problem(name: &str, label_only: bool) -> Option<String> {
    if label_only {
        dns1123_label_error(name)
    } else {
        dns1123_subdomain_error(name)
    }
}

/// A field cause of a 422 Invalid: (field, reason, message).
type Cause = (&'static str, &'static str, String);

/// Field-level validation shared by create and update.
fn validate(rt: &ResourceType, name: &str, body: &Value) -> Result<(), ApiError> {
    let mut causes: Vec<Cause> = Vec::new();
    label_causes(body, &mut causes);
    if rt.key() == CRD_RESOURCE {
        crd_causes(&body["spec"], name, &mut causes);
    }
    if rt.group.is_empty() && rt.plural == "configmaps" {
        configmap_causes(body, &mut causes);
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&rt.group, &rt.kind, name, &causes))
    }
}

/// The apiserver's limit on a ConfigMap's `data` plus `binaryData` (corev1.MaxSecretSize).
const MAX_CONFIGMAP_BYTES: usize = 1024 * 1024;

/// A ConfigMap over [`MAX_CONFIGMAP_BYTES`] of data: the real message is
/// `ConfigMap "x" is invalid: []: Too long: must have at most 1048576 bytes`. binaryData
/// values are counted decoded, as the apiserver holds them.
fn configmap_causes(body: &Value, causes: &mut Vec<Cause>) {
    let strings = |field: &str| -> Vec<String> {
        body.get(field)
            .and_then(Value::as_object)
            .map(|m| {
                m.values()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let text: usize = strings("data").iter().map(String::len).sum();
    let binary: usize = strings("binaryData")
        .iter()
        .map(|b64| {
            let padding = b64.bytes().rev().take_while(|b| *b == b'=').count();
            (b64.len() / 4 * 3).saturating_sub(padding)
        })
        .sum();
    if text + binary > MAX_CONFIGMAP_BYTES {
        causes.push((
            "[]",
            "FieldValueTooLong",
            format!("Too long: must have at most {MAX_CONFIGMAP_BYTES} bytes"),
        ));
    }
}

/// Problems with `metadata.labels`: keys, values, and their JSON types.
fn label_causes(body: &Value, causes: &mut Vec<Cause>) {
    if let Some(labels) = body["metadata"].get("labels") {
        match labels.as_object() {
            Some(map) => {
                for (k, v) in map {
                    match v.as_str() {
                        Some(s) => {
                            if let Some(e) = label_key_error(k) {
                                causes.push((
                                    "metadata.labels",
                                    "FieldValueInvalid",
                                    format!("Invalid value: \"{k}\": {e}"),
                                ));
                            } else if let Some(e) = label_value_error(s) {
                                causes.push((
                                    "metadata.labels",
                                    "FieldValueInvalid",
                                    format!("Invalid value: \"{s}\": {e}"),
                                ));
                            }
                        }
                        None => causes.push((
                            "metadata.labels",
                            "FieldValueInvalid",
                            format!("Invalid value: {v}: label values must be strings"),
                        )),
                    }
                }
            }
            None if labels.is_null() => {}
            None => causes.push((
                "metadata.labels",
                "FieldValueInvalid",
                "Invalid value: must be an object".to_string(),
            )),
        }
    }
}

/// Problems with a CustomResourceDefinition's spec and name.
fn crd_causes(spec: &Value, name: &str, causes: &mut Vec<Cause>) {
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    if group.is_empty() {
        causes.push((
            "spec.group",
            "FieldValueRequired",
            "Required value".to_string(),
        ));
    }
    if plural.is_empty() {
        causes.push((
            "spec.names.plural",
            "FieldValueRequired",
            "Required value".to_string(),
        ));
    }
    if spec["names"]["kind"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        causes.push((
            "spec.names.kind",
            "FieldValueRequired",
            "Required value".to_string(),
        ));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced") | Some("Cluster")) {
        causes.push((
            "spec.scope",
            "FieldValueNotSupported",
            "Unsupported value: supported values: \"Cluster\", \"Namespaced\"".to_string(),
        ));
    }
    let versions = spec["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let storage_versions = versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count();
    if storage_versions != 1 {
        causes.push((
            "spec.versions",
            "FieldValueInvalid",
            "Invalid value: must have exactly one version marked as storage version".to_string(),
        ));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push((
            "metadata.name",
            "FieldValueInvalid",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
}

/// Fills server-side defaults for a new object of some built-in types.
fn apply_create_defaults(rt: &ResourceType, body: &mut Value, name: &str) {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") if !body["status"].is_object() => {
            body["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        }
        ("", "namespaces") => {
            body["metadata"]["labels"]["kubernetes.io/metadata.name"] =
                Value::String(name.to_string());
            if !body["spec"].is_object() {
                body["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            body["status"] = json!({"phase": "Active"});
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let now = now_rfc3339();
            let storage: Vec<Value> = body["spec"]["versions"]
                .as_array()
                .map(|vs| {
                    vs.iter()
                        .filter(|v| v["storage"].as_bool() == Some(true))
                        .map(|v| v["name"].clone())
                        .collect()
                })
                .unwrap_or_default();
            let mut accepted = body["spec"]["names"].clone();
            if accepted["singular"].as_str().unwrap_or_default().is_empty() {
                accepted["singular"] =
                    Value::String(accepted["kind"].as_str().unwrap_or_default().to_lowercase());
            }
            if accepted["listKind"].is_null() {
                accepted["listKind"] = Value::String(format!(
                    "{}List",
                    accepted["kind"].as_str().unwrap_or_default()
                ));
            }
            body["status"] = json!({
                "acceptedNames": accepted,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now}
                ],
                "storedVersions": storage,
            });
        }
        _ => {}
    }
}

/// After a CRD is written or deleted, (un)registers the types it serves.
fn sync_crd(store: &mut Store, crd: &Value, exists: bool) {
    let group = crd["spec"]["group"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let plural = crd["spec"]["names"]["plural"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    store
        .registry
        .set_crd(&group, &plural, exists.then_some(crd));
}

/// POST: creates an object.
pub(crate) fn create(
    store: &mut Store,
    t: &Target<'_>,
    body: Value,
) -> Result<Arc<StoredObject>, ApiError> {
    let rt = t.rt;
    let mut body = check_type_meta(rt, body)?;
    let ns = check_namespace(t, &mut body)?;
    let mut name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        let generate = body["metadata"]["generateName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if generate.is_empty() {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                "",
                &[(
                    "metadata.name",
                    "FieldValueRequired",
                    "Required value: name or generateName is required".to_string(),
                )],
            ));
        }
        name = format!("{generate}{}", random_suffix(&mut store.rng, 5));
        body["metadata"]["name"] = Value::String(name.clone());
    }
    if let Some(problem) = name_problem(&name, rt.plural == "namespaces" && rt.group.is_empty()) {
        return Err(ApiError::invalid(
            &rt.group,
            &rt.kind,
            &name,
            &[("metadata.name", "FieldValueInvalid", problem)],
        ));
    }
    validate(rt, &name, &body)?;
    if rt.namespaced
        && store
            .get("namespaces", &(String::new(), ns.clone()))
            .is_none()
    {
        return Err(ApiError::not_found("", "namespaces", &ns));
    }
    let key = (ns, name.clone());
    let resource = rt.key();
    if store.get(&resource, &key).is_some() {
        return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
    }
    {
        let meta = body["metadata"]
            .as_object_mut()
            .expect("metadata was checked to be an object");
        for field in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(field);
        }
        meta.insert("uid".to_string(), Value::String(uuid_v4(&mut store.rng)));
        meta.insert(
            "creationTimestamp".to_string(),
            Value::String(now_rfc3339()),
        );
        if rt.generation {
            meta.insert("generation".to_string(), json!(1));
        }
    }
    apply_create_defaults(rt, &mut body, &name);
    if t.dry_run {
        return Ok(Arc::new(StoredObject::from_value(&resource, &body)));
    }
    // Only CRDs need the value after the commit; avoid cloning every other object.
    let crd = (resource == CRD_RESOURCE).then(|| body.clone());
    let stored = store.commit(&resource, EventType::Added, body);
    if let Some(crd) = crd {
        sync_crd(store, &crd, true);
    }
    Ok(stored)
}

/// The name an update writes: the URL's, which the body must not contradict, else the body's.
fn update_name(
    rt: &ResourceType,
    url_name: Option<&str>,
    body_name: String,
) -> Result<String, ApiError> {
    match url_name {
        Some(u) if !body_name.is_empty() && u != body_name => Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({u})"
        ))),
        Some(u) => Ok(u.to_string()),
        None if body_name.is_empty() => Err(ApiError::invalid(
            &rt.group,
            &rt.kind,
            "",
            &[(
                "metadata.name",
                "FieldValueRequired",
                "Required value: name is required".to_string(),
            )],
        )),
        None => Ok(body_name),
    }
}

/// PUT: replaces an object (or its status when `subresource` is "status").
pub(crate) fn update(
    store: &mut Store,
    t: &Target<'_>,
    url_name: Option<&str>,
    body: Value,
) -> Result<Arc<StoredObject>, ApiError> {
    let rt = t.rt;
    let mut body = check_type_meta(rt, body)?;
    check_namespace(t, &mut body)?;
    let body_name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = update_name(rt, url_name, body_name)?;
    body["metadata"]["name"] = Value::String(name.clone());
    let resource = rt.key();
    let key = t.key(&name);
    let Some(existing) = store.get(&resource, &key) else {
        return Err(ApiError::not_found(&rt.group, &rt.plural, &name));
    };
    if let Some(rv) = body["metadata"]["resourceVersion"]
        .as_str()
        .filter(|s| !s.is_empty())
        && rv != existing.resource_version.to_string()
    {
        return Err(ApiError::conflict(&rt.group, &rt.plural, &name));
    }
    let old = existing.to_value();
    let mut new = if t.subresource == Some("status") {
        let mut v = old.clone();
        v["status"] = body["status"].clone();
        v
    } else {
        if rt.status_subresource {
            match old.get("status") {
                Some(s) => body["status"] = s.clone(),
                None => {
                    if let Some(m) = body.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        body
    };
    {
        let meta = new["metadata"]
            .as_object_mut()
            .expect("metadata is an object");
        for field in [
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
        ] {
            match old["metadata"].get(field) {
                Some(v) => meta.insert(field.to_string(), v.clone()),
                None => meta.remove(field),
            };
        }
        meta.insert(
            "resourceVersion".to_string(),
            Value::String(existing.resource_version.to_string()),
        );
    }
    if rt.generation && spec_changed(&old, &new) {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        new["metadata"]["generation"] = json!(generation);
    }
    if new == old {
        // The real apiserver skips the etcd write for a no-op update: same resourceVersion, no watch event.
        return Ok(existing);
    }
    validate(rt, &name, &new)?;
    if t.dry_run {
        return Ok(Arc::new(StoredObject::from_value(&resource, &new)));
    }
    // Only CRDs need the value after the commit; avoid cloning every other object.
    let crd = (resource == CRD_RESOURCE).then(|| new.clone());
    let stored = store.commit(&resource, EventType::Modified, new);
    if let Some(crd) = crd {
        sync_crd(store, &crd, true);
    }
    Ok(stored)
}

/// Whether anything outside metadata and status changed (what bumps metadata.generation).
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

/// PATCH with a JSON merge patch (strategic merge patches are treated as merge patches).
pub(crate) fn patch(
    store: &mut Store,
    t: &Target<'_>,
    name: &str,
    patch_body: &Value,
) -> Result<Arc<StoredObject>, ApiError> {
    let rt = t.rt;
    if !patch_body.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        ));
    }
    let Some(existing) = store.get(&rt.key(), &t.key(name)) else {
        return Err(ApiError::not_found(&rt.group, &rt.plural, name));
    };
    let mut current = existing.to_value();
    current["apiVersion"] = Value::String(rt.api_version());
    current["kind"] = Value::String(rt.kind.clone());
    let patched = merge_patch(&current, patch_body);
    update(store, t, Some(name), patched)
}

/// DELETE: removes an object, returning its final state stamped with the deletion's resourceVersion.
pub(crate) fn delete(
    store: &mut Store,
    t: &Target<'_>,
    name: &str,
    precondition_rv: Option<&str>,
    precondition_uid: Option<&str>,
) -> Result<Arc<StoredObject>, ApiError> {
    let rt = t.rt;
    let resource = rt.key();
    let key = t.key(name);
    let Some(existing) = store.get(&resource, &key) else {
        return Err(ApiError::not_found(&rt.group, &rt.plural, name));
    };
    let value = existing.to_value();
    if precondition_rv.is_some_and(|rv| rv != existing.resource_version.to_string()) {
        return Err(ApiError::conflict(&rt.group, &rt.plural, name));
    }
    if let Some(uid) = precondition_uid
        && value["metadata"]["uid"].as_str() != Some(uid)
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                value["metadata"]["uid"].as_str().unwrap_or_default()
            ),
        ));
    }
    let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
    if is_namespace && SYSTEM_NAMESPACES.contains(&name) {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
        ));
    }
    if t.dry_run {
        return Ok(existing);
    }
    if is_namespace {
        // The namespace controller would delete the contents asynchronously; we do it at once, emitting events.
        let types: Vec<Arc<ResourceType>> = store
            .registry
            .all()
            .iter()
            .filter(|r| r.namespaced)
            .cloned()
            .collect();
        let mut seen = std::collections::HashSet::new();
        for r in types {
            if seen.insert(r.key()) {
                delete_all(store, &r.key(), Some(name));
            }
        }
    }
    if resource == CRD_RESOURCE {
        let group = value["spec"]["group"].as_str().unwrap_or_default();
        let plural = value["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or_default();
        delete_all(store, &crate::resources::resource_key(group, plural), None);
        sync_crd(store, &value, false);
    }
    Ok(store.commit(&resource, EventType::Deleted, value))
}

/// Deletes every object of a resource (optionally in one namespace), emitting DELETED events.
fn delete_all(store: &mut Store, resource: &str, namespace: Option<&str>) {
    let mut victims = Vec::new();
    let at = store.resource_version();
    store.scan(resource, namespace, None, at, |_, obj| {
        victims.push(obj.clone());
        true
    });
    for obj in victims {
        store.commit(resource, EventType::Deleted, obj.to_value());
    }
}
