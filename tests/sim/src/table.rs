//! Server-side printing: the meta.k8s.io/v1 Table form that `kubectl get` asks for with `Accept: ...;as=Table`.

use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::time::{human_duration, now_unix, parse_rfc3339};

fn col(name: &str, ty: &str, format: &str, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": 0})
}

/// Column definitions for a type (the common ones kubectl shows; NAME and AGE for the rest).
pub(crate) fn columns(rt: &ResourceType) -> Vec<Value> {
    let name = col(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace.",
    );
    let age = col(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => vec![
            name,
            col(
                "Ready",
                "string",
                "",
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                "",
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                "",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age,
        ],
        ("apps", "deployments") => vec![
            name,
            col("Ready", "string", "", "Number of the pod with ready state"),
            col(
                "Up-to-date",
                "string",
                "",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            col(
                "Available",
                "string",
                "",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            age,
        ],
        ("", "namespaces") => vec![
            name,
            col("Status", "string", "", "The status of the namespace"),
            age,
        ],
        _ => vec![name, age],
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// One row: cells plus the object's metadata as a PartialObjectMetadata (includeObject=Metadata, the default).
pub(crate) fn row(rt: &ResourceType, obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let age = meta["creationTimestamp"]
        .as_str()
        .and_then(parse_rfc3339)
        .map(|t| human_duration(now_unix() - t))
        .unwrap_or_else(|| "<unknown>".to_string());
    let cells = match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => {
            let total = obj["spec"]["containers"].as_array().map_or(0, Vec::len);
            let statuses = obj["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let ready = statuses
                .iter()
                .filter(|s| s["ready"].as_bool() == Some(true))
                .count();
            let restarts: i64 = statuses.iter().map(|s| int(&s["restartCount"])).sum();
            let status = if meta["deletionTimestamp"].is_string() {
                "Terminating".to_string()
            } else {
                obj["status"]["phase"]
                    .as_str()
                    .unwrap_or("Unknown")
                    .to_string()
            };
            json!([
                name,
                format!("{ready}/{total}"),
                status,
                restarts.to_string(),
                age
            ])
        }
        ("apps", "deployments") => {
            let st = &obj["status"];
            let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            json!([
                name,
                format!("{}/{}", int(&st["readyReplicas"]), want),
                int(&st["updatedReplicas"]),
                int(&st["availableReplicas"]),
                age
            ])
        }
        ("", "namespaces") => json!([
            name,
            obj["status"]["phase"].as_str().unwrap_or("Active"),
            age
        ]),
        _ => json!([name, age]),
    };
    json!({
        "cells": cells,
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta},
    })
}

/// A Table wrapping rows, with list metadata.
pub(crate) fn table(rt: &ResourceType, rows: Vec<Value>, list_meta: Value) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns(rt),
        "rows": rows,
    })
}
