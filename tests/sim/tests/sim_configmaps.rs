//! ConfigMaps as kubebridge's checkpoint store uses them, with the real API's rules:
//! binaryData kept as sent, updates conditional on metadata.resourceVersion (409 when
//! stale), and the 1 MiB limit on data plus binaryData (422).
#![allow(clippy::unwrap_used)] // Tests may panic on unexpected values; that is their failure mode.

use kubebridge_sim::{Sim, SimConfig};
use serde_json::json;

async fn sim() -> Sim {
    Sim::start("127.0.0.1:0".parse().unwrap(), SimConfig::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn binary_data_round_trips_and_a_stale_update_is_a_conflict() {
    let s = sim().await;
    let created = s
        .create(
            "configmaps",
            Some("default"),
            json!({"metadata": {"name": "kb"}, "binaryData": {"checkpoint": "S0JDSwEA"}}),
        )
        .unwrap();
    assert_eq!(created["binaryData"]["checkpoint"], "S0JDSwEA");
    let rv = created["metadata"]["resourceVersion"].clone();
    let mut next = created.clone();
    next["binaryData"]["checkpoint"] = json!("AAAA");
    let updated = s
        .update("configmaps", Some("default"), next.clone())
        .unwrap();
    assert_ne!(updated["metadata"]["resourceVersion"], rv);
    // A writer still holding the first resourceVersion (a deposed leader) is refused.
    next["binaryData"]["checkpoint"] = json!("BBBB");
    next["metadata"]["resourceVersion"] = rv;
    let err = s.update("configmaps", Some("default"), next).unwrap_err();
    assert_eq!(err.code, 409, "{err:?}");
    let got = s.get("configmaps", Some("default"), "kb").unwrap();
    assert_eq!(got["binaryData"]["checkpoint"], "AAAA");
    // Creating one that exists is a conflict too (AlreadyExists).
    let err = s
        .create(
            "configmaps",
            Some("default"),
            json!({"metadata": {"name": "kb"}}),
        )
        .unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
}

#[tokio::test]
async fn a_configmap_over_one_mebibyte_is_invalid() {
    let s = sim().await;
    // 1 MiB + 3 bytes, base64-encoded (4 characters per 3 bytes).
    let over = "A".repeat((1024 * 1024 + 3) / 3 * 4);
    let err = s
        .create(
            "configmaps",
            Some("default"),
            json!({"metadata": {"name": "big"}, "binaryData": {"b": over}}),
        )
        .unwrap_err();
    assert_eq!(err.code, 422, "{err:?}");
    assert_eq!(
        err.message,
        "ConfigMap \"big\" is invalid: []: Too long: must have at most 1048576 bytes"
    );
    // Exactly at the limit is fine, text and binary counted together.
    let text = "x".repeat(1024 * 1024 - 3);
    s.create(
        "configmaps",
        Some("default"),
        json!({"metadata": {"name": "full"}, "data": {"t": text}, "binaryData": {"b": "AAAA"}}),
    )
    .unwrap();
}
