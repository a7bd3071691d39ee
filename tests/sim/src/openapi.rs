//! Minimal OpenAPI v3 documents advertising server-side field validation, so `kubectl create -f` works.

use serde_json::{Value, json};

use crate::discovery::GIT_VERSION;
use crate::resources::Registry;

/// The path prefix kubectl asks for: "api/v1" or "apis/G/V".
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// FNV-1a, only to give each document a hash that changes when its content does (kubectl caches by it).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn group_versions(registry: &Registry) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in registry.all() {
        let gv = (t.group.clone(), t.version.clone());
        if !out.contains(&gv) {
            out.push(gv);
        }
    }
    out
}

/// `/openapi/v3`: the index of per-group-version documents.
pub(crate) fn root(registry: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    for (g, v) in group_versions(registry) {
        let doc = group_version(registry, &g, &v).unwrap_or_default();
        let hash = fnv(doc.to_string().as_bytes());
        let p = gv_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash:016X}")}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/G/V`: PATCH operations advertising `fieldValidation`.
///
/// kubectl's query-param verifier looks for that parameter on the PATCH operation of the object's GVK;
/// finding it, kubectl sends `fieldValidation=Strict` and leaves validation to the server, so no object
/// schemas are needed (a 404 here makes `kubectl create -f` fail with "failed to download openapi").
pub(crate) fn group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = registry.in_group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = serde_json::Map::new();
    for t in types {
        let path = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{prefix}/{}/{{name}}", t.plural)
        };
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}
        ]);
        paths.insert(
            path,
            json!({
                "patch": {
                    "operationId": format!("patch{}", t.kind),
                    "parameters": params,
                    "responses": {"200": {"description": "OK"}},
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk
                }
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}
