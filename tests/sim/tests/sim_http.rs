//! HTTP-level tests of the simulated API server, over raw TCP.
#![allow(clippy::unwrap_used)] // Tests may panic on unexpected values; that is their failure mode.

use std::collections::BTreeSet;
use std::time::Duration;

use kubebridge_sim::{Failure, Sim, SimConfig};
use kubebridge_testkit::harness::pod;
use kubebridge_testkit::http::{Watch, get, post, request};
use serde_json::{Value, json};

async fn sim(config: SimConfig) -> Sim {
    Sim::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn discovery_documents() {
    let s = sim(SimConfig::default()).await;
    let a = s.addr();
    let v = get(a, "/version").await;
    assert_eq!(v.status, 200);
    assert_eq!(v.header("content-type"), Some("application/json"));
    assert!(v.json()["gitVersion"].as_str().unwrap().starts_with("v1."));
    assert_eq!(v.json()["major"], "1");

    let api = get(a, "/api").await.json();
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));
    assert!(api["serverAddressByClientCIDRs"].is_array());

    let core = get(a, "/api/v1").await.json();
    assert_eq!(core["kind"], "APIResourceList");
    assert_eq!(core["groupVersion"], "v1");
    let res = core["resources"].as_array().unwrap();
    let find = |n: &str| {
        res.iter()
            .find(|r| r["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    let pods = find("pods");
    assert_eq!(pods["kind"], "Pod");
    assert_eq!(pods["singularName"], "pod");
    assert_eq!(pods["namespaced"], true);
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert!(pods["verbs"].as_array().unwrap().contains(&json!("watch")));
    assert_eq!(
        find("pods/status")["verbs"],
        json!(["get", "patch", "update"])
    );
    assert_eq!(find("namespaces")["namespaced"], false);
    assert_eq!(find("nodes")["shortNames"], json!(["no"]));
    for r in [
        "configmaps",
        "secrets",
        "events",
        "services",
        "serviceaccounts",
    ] {
        find(r);
    }

    let groups = get(a, "/apis").await.json();
    assert_eq!(groups["kind"], "APIGroupList");
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in [
        "apps",
        "coordination.k8s.io",
        "events.k8s.io",
        "apiextensions.k8s.io",
    ] {
        assert!(names.contains(&g), "{g} missing from {names:?}");
    }
    let apps = get(a, "/apis/apps").await.json();
    assert_eq!(apps["kind"], "APIGroup");
    assert_eq!(
        apps["preferredVersion"],
        json!({"groupVersion": "apps/v1", "version": "v1"})
    );
    let apps_v1 = get(a, "/apis/apps/v1").await.json();
    let deploy = apps_v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments")
        .cloned()
        .unwrap();
    assert_eq!(deploy["shortNames"], json!(["deploy"]));
    let crds = get(a, "/apis/apiextensions.k8s.io/v1").await.json();
    assert_eq!(crds["resources"][0]["shortNames"], json!(["crd", "crds"]));
    assert_eq!(get(a, "/apis/nope.example.com/v1").await.status, 404);
    assert_eq!(get(a, "/openapi/v3").await.status, 200);
}

#[tokio::test]
async fn create_get_list_update_patch_delete() {
    let s = sim(SimConfig {
        namespaces: 1,
        ..Default::default()
    })
    .await;
    let a = s.addr();
    let r = post(
        a,
        "/api/v1/namespaces/ns-0/pods",
        &pod("web-1", "ns-0", json!({"app": "web"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let created = r.json();
    assert_eq!(created["kind"], "Pod");
    assert_eq!(created["apiVersion"], "v1");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(uid.len(), 36);
    assert_eq!(&uid[14..15], "4", "UUID v4");
    assert!(
        created["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let rv: u64 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(rv, s.resource_version());

    let got = get(a, "/api/v1/namespaces/ns-0/pods/web-1").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), created);

    // Typed lists omit kind/apiVersion on items.
    let list = get(a, "/api/v1/namespaces/ns-0/pods").await.json();
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["metadata"]["resourceVersion"], rv.to_string());
    assert_eq!(names(&list), vec!["web-1"]);
    assert!(list["items"][0].get("kind").is_none());
    // All-namespace list.
    assert_eq!(names(&get(a, "/api/v1/pods").await.json()), vec!["web-1"]);
    // Namespaces are cluster-scoped and include the system ones.
    let nss = names(&get(a, "/api/v1/namespaces").await.json());
    assert_eq!(
        nss,
        vec![
            "default",
            "kube-node-lease",
            "kube-public",
            "kube-system",
            "ns-0"
        ]
    );
    assert_eq!(
        get(a, "/api/v1/namespaces/ns-0").await.json()["kind"],
        "Namespace"
    );

    // Errors.
    let dup = post(
        a,
        "/api/v1/namespaces/ns-0/pods",
        &pod("web-1", "ns-0", json!({})),
    )
    .await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.json()["reason"], "AlreadyExists");
    assert_eq!(dup.json()["message"], "pods \"web-1\" already exists");
    // Like the real apiserver (Go's `omitempty`), an empty group is left out of details.
    assert_eq!(
        dup.json()["details"],
        json!({"name": "web-1", "kind": "pods"})
    );
    let nf = get(a, "/api/v1/namespaces/ns-0/pods/nope").await;
    assert_eq!(nf.status, 404);
    assert_eq!(nf.json()["kind"], "Status");
    assert_eq!(nf.json()["status"], "Failure");
    assert_eq!(nf.json()["message"], "pods \"nope\" not found");
    let no_ns = post(
        a,
        "/api/v1/namespaces/ghost/pods",
        &pod("x", "ghost", json!({})),
    )
    .await;
    assert_eq!(no_ns.status, 404);
    assert_eq!(no_ns.json()["message"], "namespaces \"ghost\" not found");
    let no_name = post(
        a,
        "/api/v1/namespaces/ns-0/pods",
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
    )
    .await;
    assert_eq!(no_name.status, 422);
    assert_eq!(no_name.json()["reason"], "Invalid");
    assert_eq!(
        no_name.json()["details"]["causes"][0]["field"],
        "metadata.name"
    );
    let bad_name = post(
        a,
        "/api/v1/namespaces/ns-0/pods",
        &pod("Bad_Name", "ns-0", json!({})),
    )
    .await;
    assert_eq!(bad_name.status, 422);
    let wrong_kind = post(
        a,
        "/api/v1/namespaces/ns-0/pods",
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}),
    )
    .await;
    assert_eq!(wrong_kind.status, 400);
    let wrong_av = post(
        a,
        "/api/v1/namespaces/ns-0/pods",
        &json!({"apiVersion": "apps/v1", "kind": "Pod", "metadata": {"name": "x"}}),
    )
    .await;
    assert_eq!(wrong_av.status, 400);
    let wrong_ns = post(
        a,
        "/api/v1/namespaces/ns-0/pods",
        &pod("x", "default", json!({})),
    )
    .await;
    assert_eq!(wrong_ns.status, 400);
    let generated = post(
        a,
        "/api/v1/namespaces/ns-0/configmaps",
        &json!({"metadata": {"generateName": "cfg-"}, "data": {"a": "b"}}),
    )
    .await;
    assert_eq!(generated.status, 201);
    assert!(
        generated.json()["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("cfg-")
    );

    // PUT with a stale resourceVersion conflicts; with the current one it succeeds and keeps uid.
    let mut upd = created.clone();
    upd["metadata"]["labels"]["app"] = json!("web2");
    upd["metadata"]["resourceVersion"] = json!("1");
    let body = serde_json::to_vec(&upd).unwrap();
    let c = request(
        a,
        "PUT",
        "/api/v1/namespaces/ns-0/pods/web-1",
        &[("Content-Type", "application/json")],
        Some(&body),
    )
    .await;
    assert_eq!(c.status, 409);
    assert_eq!(c.json()["reason"], "Conflict");
    upd["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"].clone();
    upd["metadata"]["uid"] = json!("hijack");
    let body = serde_json::to_vec(&upd).unwrap();
    let ok = request(
        a,
        "PUT",
        "/api/v1/namespaces/ns-0/pods/web-1",
        &[("Content-Type", "application/json")],
        Some(&body),
    )
    .await;
    assert_eq!(ok.status, 200);
    let updated = ok.json();
    assert_eq!(updated["metadata"]["uid"], uid.as_str());
    assert_eq!(updated["metadata"]["labels"]["app"], "web2");
    assert!(
        updated["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > rv
    );

    // Patches.
    let p = br#"{"metadata":{"labels":{"extra":"1","app":null}}}"#;
    let r = request(
        a,
        "PATCH",
        "/api/v1/namespaces/ns-0/pods/web-1",
        &[("Content-Type", "application/merge-patch+json")],
        Some(p),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["metadata"]["labels"], json!({"extra": "1"}));
    let r = request(
        a,
        "PATCH",
        "/api/v1/namespaces/ns-0/pods/web-1",
        &[("Content-Type", "application/strategic-merge-patch+json")],
        Some(br#"{"metadata":{"annotations":{"a":"b"}}}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["metadata"]["annotations"], json!({"a": "b"}));
    let r = request(
        a,
        "PATCH",
        "/api/v1/namespaces/ns-0/pods/web-1",
        &[("Content-Type", "application/json-patch+json")],
        Some(b"[]"),
    )
    .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.json()["reason"], "UnsupportedMediaType");
    // Status changes through the main resource are ignored; through /status they apply.
    let r = request(
        a,
        "PATCH",
        "/api/v1/namespaces/ns-0/pods/web-1",
        &[("Content-Type", "application/merge-patch+json")],
        Some(br#"{"status":{"phase":"Failed"}}"#),
    )
    .await;
    assert_eq!(r.json()["status"]["phase"], "Pending");
    let r = request(
        a,
        "PATCH",
        "/api/v1/namespaces/ns-0/pods/web-1/status",
        &[("Content-Type", "application/merge-patch+json")],
        Some(br#"{"status":{"phase":"Running"}}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"]["phase"], "Running");

    // dryRun stores nothing.
    let before = s.resource_version();
    let r = request(
        a,
        "POST",
        "/api/v1/namespaces/ns-0/pods?dryRun=All",
        &[("Content-Type", "application/json")],
        Some(&serde_json::to_vec(&pod("dry", "ns-0", json!({}))).unwrap()),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(get(a, "/api/v1/namespaces/ns-0/pods/dry").await.status, 404);
    let r = request(
        a,
        "DELETE",
        "/api/v1/namespaces/ns-0/pods/web-1?dryRun=All",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(s.resource_version(), before);

    // DELETE returns the final object with the deletion's resourceVersion.
    let r = request(
        a,
        "DELETE",
        "/api/v1/namespaces/ns-0/pods/web-1",
        &[("Content-Type", "application/json")],
        Some(br#"{"propagationPolicy":"Background"}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    let deleted = r.json();
    assert_eq!(deleted["kind"], "Pod");
    assert_eq!(
        deleted["metadata"]["resourceVersion"],
        s.resource_version().to_string()
    );
    assert_eq!(
        get(a, "/api/v1/namespaces/ns-0/pods/web-1").await.status,
        404
    );
    assert_eq!(
        request(a, "DELETE", "/api/v1/namespaces/ns-0/pods/web-1", &[], None)
            .await
            .status,
        404
    );

    // Deployments get generation 1 and bump it on spec changes only.
    let d = post(a, "/apis/apps/v1/namespaces/ns-0/deployments", &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}})).await.json();
    assert_eq!(d["metadata"]["generation"], 1);
    let d2 = s
        .patch(
            "deployments.apps",
            Some("ns-0"),
            "d",
            json!({"spec": {"replicas": 3}}),
        )
        .unwrap();
    assert_eq!(d2["metadata"]["generation"], 2);
    let d3 = s
        .patch(
            "deployments.apps",
            Some("ns-0"),
            "d",
            json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .unwrap();
    assert_eq!(d3["metadata"]["generation"], 2);
    s.shutdown().await;
}

#[tokio::test]
async fn sim_direct_api() {
    let s = sim(SimConfig::default()).await;
    let c = s
        .create(
            "configmaps",
            Some("default"),
            json!({"metadata": {"name": "c"}, "data": {"k": "v"}}),
        )
        .unwrap();
    assert_eq!(c["kind"], "ConfigMap");
    let err = s
        .create(
            "configmaps",
            Some("default"),
            json!({"metadata": {"name": "c"}}),
        )
        .unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    let mut stale = c.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    assert_eq!(
        s.update("configmaps", Some("default"), stale)
            .unwrap_err()
            .code,
        409
    );
    let mut fresh = c.clone();
    fresh["data"]["k"] = json!("w");
    assert_eq!(
        s.update("configmaps", Some("default"), fresh).unwrap()["data"]["k"],
        "w"
    );
    assert_eq!(
        s.get("configmaps", Some("default"), "c").unwrap()["data"]["k"],
        "w"
    );
    let rv = s.resource_version();
    // A no-op update does not bump the resourceVersion, as with the real apiserver.
    s.patch(
        "configmaps",
        Some("default"),
        "c",
        json!({"data": {"k": "w"}}),
    )
    .unwrap();
    assert_eq!(s.resource_version(), rv);
    let del = s.delete("configmaps", Some("default"), "c").unwrap();
    assert_eq!(del["metadata"]["resourceVersion"], (rv + 1).to_string());
    assert_eq!(
        s.get("configmaps", Some("default"), "c").unwrap_err().code,
        404
    );
    assert_eq!(s.get("widgets", None, "x").unwrap_err().code, 404);
    // Namespace deletion takes its contents with it.
    s.create("namespaces", None, json!({"metadata": {"name": "tmp"}}))
        .unwrap();
    s.create("pods", Some("tmp"), pod("p", "tmp", json!({})))
        .unwrap();
    s.delete("namespaces", None, "tmp").unwrap();
    assert_eq!(s.get("pods", Some("tmp"), "p").unwrap_err().code, 404);
    assert_eq!(
        s.delete("namespaces", None, "default").unwrap_err().code,
        403
    );
}

#[tokio::test]
async fn pagination_is_consistent_across_concurrent_writes() {
    let s = sim(SimConfig {
        namespaces: 1,
        pods: 30,
        deployments_per_namespace: 1,
        ..Default::default()
    })
    .await;
    let a = s.addr();
    let full = get(a, "/api/v1/namespaces/ns-0/pods").await.json();
    let expected = names(&full);
    assert_eq!(expected.len(), 30);
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "items sorted by name");

    let first = get(a, "/api/v1/namespaces/ns-0/pods?limit=7").await.json();
    let snapshot_rv = first["metadata"]["resourceVersion"].clone();
    assert_eq!(first["metadata"]["remainingItemCount"], 23);
    let mut seen = names(&first);
    // Mutate between pages: delete a not-yet-listed pod, add one, modify one.
    s.delete("pods", Some("ns-0"), &expected[20]).unwrap();
    s.create("pods", Some("ns-0"), pod("zzz-new", "ns-0", json!({})))
        .unwrap();
    s.create("pods", Some("ns-0"), pod("aaa-new", "ns-0", json!({})))
        .unwrap();
    s.patch(
        "pods",
        Some("ns-0"),
        &expected[25],
        json!({"metadata": {"labels": {"changed": "yes"}}}),
    )
    .unwrap();
    let mut token = first["metadata"]["continue"].as_str().unwrap().to_string();
    loop {
        let page = get(
            a,
            &format!("/api/v1/namespaces/ns-0/pods?limit=7&continue={token}"),
        )
        .await;
        assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
        let page = page.json();
        assert_eq!(page["metadata"]["resourceVersion"], snapshot_rv);
        seen.extend(names(&page));
        for item in page["items"].as_array().unwrap() {
            assert!(
                item["metadata"]["labels"].get("changed").is_none(),
                "page served from the old snapshot"
            );
        }
        match page["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => break,
        }
    }
    assert_eq!(seen, expected);
    let bad = get(a, "/api/v1/namespaces/ns-0/pods?limit=7&continue=garbage").await;
    assert_eq!(bad.status, 400);

    // After compaction, old continue tokens expire with the real message.
    s.faults().compact();
    let expired = get(
        a,
        &format!(
            "/api/v1/namespaces/ns-0/pods?limit=7&continue={}",
            first["metadata"]["continue"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(expired.status, 410);
    assert_eq!(expired.json()["reason"], "Expired");
    assert!(
        expired.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("The provided continue parameter is too old")
    );
    let exact = get(
        a,
        &format!(
            "/api/v1/namespaces/ns-0/pods?resourceVersion={}&resourceVersionMatch=Exact",
            snapshot_rv.as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(exact.status, 410);
}

#[tokio::test]
async fn exact_resource_version_list() {
    let s = sim(SimConfig::default()).await;
    s.create(
        "configmaps",
        Some("default"),
        json!({"metadata": {"name": "a"}}),
    )
    .unwrap();
    let rv = s.resource_version();
    s.create(
        "configmaps",
        Some("default"),
        json!({"metadata": {"name": "b"}}),
    )
    .unwrap();
    s.delete("configmaps", Some("default"), "a").unwrap();
    let l = get(
        s.addr(),
        &format!("/api/v1/configmaps?resourceVersion={rv}&resourceVersionMatch=Exact"),
    )
    .await
    .json();
    assert_eq!(names(&l), vec!["a"]);
    assert_eq!(l["metadata"]["resourceVersion"], rv.to_string());
    let now = get(s.addr(), "/api/v1/configmaps?resourceVersion=0")
        .await
        .json();
    assert_eq!(names(&now), vec!["b"]);
}

#[tokio::test]
async fn watch_from_resource_version_gets_exactly_the_later_events() {
    let s = sim(SimConfig {
        namespaces: 2,
        ..Default::default()
    })
    .await;
    let a = s.addr();
    s.create("pods", Some("ns-0"), pod("before", "ns-0", json!({})))
        .unwrap();
    let rv = s.resource_version();
    s.create("pods", Some("ns-0"), pod("p1", "ns-0", json!({})))
        .unwrap();
    s.create("pods", Some("ns-1"), pod("other-ns", "ns-1", json!({})))
        .unwrap();
    s.create(
        "configmaps",
        Some("ns-0"),
        json!({"metadata": {"name": "cm"}}),
    )
    .unwrap();
    s.patch(
        "pods",
        Some("ns-0"),
        "p1",
        json!({"metadata": {"labels": {"a": "b"}}}),
    )
    .unwrap();
    s.delete("pods", Some("ns-0"), "before").unwrap();

    let mut w = Watch::open(
        a,
        &format!("/api/v1/namespaces/ns-0/pods?watch=true&resourceVersion={rv}"),
    )
    .await;
    assert_eq!(w.status, 200);
    let mut got = Vec::new();
    for _ in 0..3 {
        let e = w.next().await.unwrap();
        assert_eq!(e["object"]["kind"], "Pod");
        assert_eq!(e["object"]["apiVersion"], "v1");
        got.push((
            e["type"].as_str().unwrap().to_string(),
            e["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
        ));
    }
    assert_eq!(
        got,
        vec![
            ("ADDED".into(), "p1".into()),
            ("MODIFIED".into(), "p1".into()),
            ("DELETED".into(), "before".into())
        ]
    );
    // Then live, skipping other namespaces and resources.
    s.create("pods", Some("ns-1"), pod("x", "ns-1", json!({})))
        .unwrap();
    s.create("pods", Some("ns-0"), pod("live", "ns-0", json!({})))
        .unwrap();
    let e = w.next().await.unwrap();
    assert_eq!(
        (
            e["type"].as_str().unwrap(),
            e["object"]["metadata"]["name"].as_str().unwrap()
        ),
        ("ADDED", "live")
    );
    assert_eq!(
        e["object"]["metadata"]["resourceVersion"],
        s.resource_version().to_string()
    );

    // Without a resourceVersion: synthetic ADDED for the current state first.
    let mut w2 = Watch::open(a, "/api/v1/pods?watch=1").await;
    let mut initial = BTreeSet::new();
    for _ in 0..4 {
        let e = w2.next().await.unwrap();
        assert_eq!(e["type"], "ADDED");
        initial.insert(
            e["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        initial,
        ["live", "other-ns", "p1", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}

#[tokio::test]
async fn watch_from_compacted_rv_gets_410_error_event() {
    let s = sim(SimConfig::default()).await;
    s.create(
        "configmaps",
        Some("default"),
        json!({"metadata": {"name": "a"}}),
    )
    .unwrap();
    let old = s.resource_version() - 1;
    s.faults().compact();
    let mut w = Watch::open(
        s.addr(),
        &format!("/api/v1/configmaps?watch=true&resourceVersion={old}"),
    )
    .await;
    assert_eq!(w.status, 200);
    let e = w.next().await.unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["kind"], "Status");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    assert!(
        e["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("too old resource version: {old} ("))
    );
    assert!(w.next().await.is_none(), "stream closes after the error");
    // Watching from the current RV still works.
    let mut ok = Watch::open(
        s.addr(),
        &format!(
            "/api/v1/configmaps?watch=true&resourceVersion={}",
            s.resource_version()
        ),
    )
    .await;
    s.create(
        "configmaps",
        Some("default"),
        json!({"metadata": {"name": "b"}}),
    )
    .unwrap();
    assert_eq!(ok.next().await.unwrap()["type"], "ADDED");
}

#[tokio::test]
async fn history_window_expires_old_resource_versions() {
    let s = sim(SimConfig {
        history: 5,
        ..Default::default()
    })
    .await;
    let start = s.resource_version();
    for i in 0..10 {
        s.create(
            "configmaps",
            Some("default"),
            json!({"metadata": {"name": format!("c{i}")}}),
        )
        .unwrap();
    }
    let mut w = Watch::open(
        s.addr(),
        &format!("/api/v1/configmaps?watch=true&resourceVersion={start}"),
    )
    .await;
    assert_eq!(w.next().await.unwrap()["object"]["code"], 410);
    let recent = s.resource_version() - 3;
    let mut w = Watch::open(
        s.addr(),
        &format!("/api/v1/configmaps?watch=true&resourceVersion={recent}"),
    )
    .await;
    for i in 7..10 {
        assert_eq!(
            w.next().await.unwrap()["object"]["metadata"]["name"],
            format!("c{i}")
        );
    }
}

#[tokio::test]
async fn bookmarks_only_when_asked() {
    let s = sim(SimConfig {
        bookmark_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let a = s.addr();
    let rv = s.resource_version();
    let mut plain = Watch::open(
        a,
        &format!("/api/v1/configmaps?watch=true&resourceVersion={rv}"),
    )
    .await;
    let mut with = Watch::open(
        a,
        &format!("/api/v1/configmaps?watch=true&resourceVersion={rv}&allowWatchBookmarks=true"),
    )
    .await;
    s.create(
        "configmaps",
        Some("default"),
        json!({"metadata": {"name": "a"}}),
    )
    .unwrap();
    s.create(
        "pods",
        Some("default"),
        pod("unrelated", "default", json!({})),
    )
    .unwrap();
    let e = with.next().await.unwrap();
    assert_eq!(e["type"], "ADDED");
    // Wait for two bookmarks: at least two intervals have passed.
    for _ in 0..2 {
        let b = with.next().await.unwrap();
        assert_eq!(b["type"], "BOOKMARK");
        assert_eq!(b["object"]["kind"], "ConfigMap");
        assert_eq!(b["object"]["apiVersion"], "v1");
        let brv: u64 = b["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            brv >= e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        );
        assert!(brv <= s.resource_version());
    }
    s.create(
        "configmaps",
        Some("default"),
        json!({"metadata": {"name": "b"}}),
    )
    .unwrap();
    assert_eq!(
        plain.next().await.unwrap()["object"]["metadata"]["name"],
        "a"
    );
    let next = plain.next().await.unwrap();
    assert_eq!(
        next["type"], "ADDED",
        "no bookmarks without allowWatchBookmarks: {next}"
    );
    assert_eq!(next["object"]["metadata"]["name"], "b");
}

#[tokio::test]
async fn selectors_on_list_and_watch() {
    let s = sim(SimConfig::default()).await;
    let a = s.addr();
    s.create(
        "pods",
        Some("default"),
        pod("a", "default", json!({"app": "x", "tier": "fe"})),
    )
    .unwrap();
    s.create(
        "pods",
        Some("default"),
        pod("b", "default", json!({"app": "y"})),
    )
    .unwrap();
    s.create(
        "pods",
        Some("kube-system"),
        pod("c", "kube-system", json!({"app": "x"})),
    )
    .unwrap();
    let l = |q: &str| {
        let q = q.to_string();
        async move { names(&get(a, &format!("/api/v1/pods?{q}")).await.json()) }
    };
    assert_eq!(
        l("labelSelector=app%3Dx").await,
        vec!["a", "c"],
        "sorted by namespace/name"
    );
    assert_eq!(
        l("labelSelector=app%20in%20(x,y),!tier").await,
        vec!["b", "c"]
    );
    assert_eq!(l("labelSelector=app!%3Dx").await, vec!["b"]);
    assert_eq!(l("labelSelector=tier").await, vec!["a"]);
    assert_eq!(l("fieldSelector=metadata.name%3Db").await, vec!["b"]);
    assert_eq!(
        l("fieldSelector=metadata.namespace!%3Ddefault").await,
        vec!["c"]
    );
    let bad = get(a, "/api/v1/configmaps?fieldSelector=spec.nodeName%3Dn1").await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.json()["message"],
        "field label not supported: spec.nodeName"
    );
    // Pods support the usual per-type fields, e.g. spec.nodeName ("" when unscheduled).
    s.patch(
        "pods",
        Some("default"),
        "b",
        json!({"spec": {"nodeName": "node-7"}}),
    )
    .unwrap();
    assert_eq!(l("fieldSelector=spec.nodeName%3Dnode-7").await, vec!["b"]);
    assert_eq!(
        l("fieldSelector=spec.nodeName%3D,status.phase%3DPending").await,
        vec!["a", "c"]
    );
    assert_eq!(
        get(a, "/api/v1/pods?labelSelector=app%3D(").await.status,
        400
    );
    // remainingItemCount is omitted with selectors, like the real server.
    let page = get(a, "/api/v1/pods?labelSelector=app&limit=1")
        .await
        .json();
    assert!(page["metadata"].get("remainingItemCount").is_none());
    assert!(page["metadata"]["continue"].is_string());

    let rv = s.resource_version();
    let mut w = Watch::open(
        a,
        &format!(
            "/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&labelSelector=app%3Dx"
        ),
    )
    .await;
    s.create(
        "pods",
        Some("default"),
        pod("d", "default", json!({"app": "y"})),
    )
    .unwrap();
    s.patch(
        "pods",
        Some("default"),
        "d",
        json!({"metadata": {"labels": {"app": "x"}}}),
    )
    .unwrap();
    s.patch(
        "pods",
        Some("default"),
        "d",
        json!({"metadata": {"labels": {"v": "2"}}}),
    )
    .unwrap();
    s.patch(
        "pods",
        Some("default"),
        "d",
        json!({"metadata": {"labels": {"app": "z"}}}),
    )
    .unwrap();
    let stop_rv = s.resource_version();
    s.delete("pods", Some("default"), "b").unwrap();
    s.delete("pods", Some("default"), "a").unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        let e = w.next().await.unwrap();
        got.push((
            e["type"].as_str().unwrap().to_string(),
            e["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
            e,
        ));
    }
    let kinds: Vec<(&str, &str)> = got
        .iter()
        .map(|(t, n, _)| (t.as_str(), n.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("ADDED", "d"),
            ("MODIFIED", "d"),
            ("DELETED", "d"),
            ("DELETED", "a")
        ]
    );
    // The stop-matching DELETED carries the last matching state at the new resourceVersion.
    let del = &got[2].2;
    assert_eq!(del["object"]["metadata"]["labels"]["app"], "x");
    assert_eq!(
        del["object"]["metadata"]["resourceVersion"],
        stop_rv.to_string()
    );
}

#[tokio::test]
async fn send_initial_events_and_watch_list_switch() {
    let s = sim(SimConfig::default()).await;
    let a = s.addr();
    for n in ["a", "b"] {
        s.create(
            "configmaps",
            Some("default"),
            json!({"metadata": {"name": n}}),
        )
        .unwrap();
    }
    let mut w = Watch::open(a, "/api/v1/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true").await;
    assert_eq!(w.status, 200);
    for n in ["a", "b"] {
        let e = w.next().await.unwrap();
        assert_eq!(
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap()
            ),
            ("ADDED", n)
        );
    }
    let b = w.next().await.unwrap();
    assert_eq!(b["type"], "BOOKMARK");
    assert_eq!(
        b["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(
        b["object"]["metadata"]["resourceVersion"],
        s.resource_version().to_string()
    );
    s.create(
        "configmaps",
        Some("default"),
        json!({"metadata": {"name": "c"}}),
    )
    .unwrap();
    assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "c");
    // sendInitialEvents=false: no synthetic events, just live ones.
    let mut quiet = Watch::open(
        a,
        "/api/v1/configmaps?watch=true&sendInitialEvents=false&resourceVersionMatch=NotOlderThan",
    )
    .await;
    s.create(
        "configmaps",
        Some("default"),
        json!({"metadata": {"name": "d"}}),
    )
    .unwrap();
    assert_eq!(
        quiet.next().await.unwrap()["object"]["metadata"]["name"],
        "d"
    );
    // Missing resourceVersionMatch is invalid.
    let bad = get(
        a,
        "/api/v1/configmaps?watch=true&sendInitialEvents=true&allowWatchBookmarks=true",
    )
    .await;
    assert_eq!(bad.status, 422);

    let off = sim(SimConfig {
        watch_list: false,
        ..Default::default()
    })
    .await;
    let r = get(off.addr(), "/api/v1/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true").await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["reason"], "Invalid");
    assert_eq!(r.json()["kind"], "Status");
}

#[tokio::test]
async fn watch_timeout_and_drop_watches() {
    let s = sim(SimConfig::default()).await;
    let mut w = Watch::open(
        s.addr(),
        &format!(
            "/api/v1/configmaps?watch=true&timeoutSeconds=1&resourceVersion={}",
            s.resource_version()
        ),
    )
    .await;
    assert!(
        w.next().await.is_none(),
        "timeoutSeconds ends the stream cleanly"
    );
    let mut w = Watch::open(
        s.addr(),
        &format!(
            "/api/v1/configmaps?watch=true&resourceVersion={}",
            s.resource_version()
        ),
    )
    .await;
    s.create(
        "configmaps",
        Some("default"),
        json!({"metadata": {"name": "a"}}),
    )
    .unwrap();
    assert_eq!(w.next().await.unwrap()["type"], "ADDED");
    s.faults().drop_watches();
    assert!(
        w.next().await.is_none(),
        "drop_watches ends the stream cleanly"
    );
}

#[tokio::test]
async fn fault_hooks_and_counters() {
    let s = sim(SimConfig::default()).await;
    let a = s.addr();
    s.faults().fail_next(
        1,
        Failure::TooManyRequests {
            retry_after_secs: 7,
        },
    );
    // Discovery is not affected and does not consume the failure.
    assert_eq!(get(a, "/api/v1").await.status, 200);
    let r = get(a, "/api/v1/namespaces/default/pods").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.json()["reason"], "TooManyRequests");
    assert_eq!(r.json()["details"]["retryAfterSeconds"], 7);
    assert_eq!(get(a, "/api/v1/namespaces/default/pods").await.status, 200);
    s.faults().fail_next(2, Failure::InternalError);
    assert_eq!(get(a, "/api/v1/pods").await.status, 500);
    let r = get(a, "/api/v1/pods?watch=true").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["reason"], "InternalError");
    assert_eq!(get(a, "/api/v1/pods").await.status, 200);

    s.faults().forbid("pods", "list");
    let r = get(a, "/api/v1/namespaces/shop/pods").await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        "pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" in the namespace \"shop\""
    );
    let r = get(a, "/api/v1/pods").await;
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .ends_with("at the cluster scope")
    );
    s.faults().forbid("deployments.apps", "watch");
    let r = get(a, "/apis/apps/v1/deployments?watch=true").await;
    assert_eq!(r.status, 403);
    assert!(r.json()["message"].as_str().unwrap().starts_with("deployments.apps is forbidden: User \"system:anonymous\" cannot watch resource \"deployments\" in API group \"apps\""));
    assert_eq!(
        get(a, "/api/v1/namespaces/default/pods/x").await.status,
        404,
        "get is still allowed"
    );

    s.faults().set_delay(Duration::from_millis(50));
    let t = std::time::Instant::now();
    assert_eq!(get(a, "/version").await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(50));
    s.faults().set_delay(Duration::ZERO);

    assert_eq!(s.requests("list", "pods"), 6);
    assert_eq!(s.requests("watch", "pods"), 1);
    assert_eq!(s.requests("get", "pods"), 1);
    assert_eq!(s.requests("watch", "deployments.apps"), 1);
    assert_eq!(s.requests("create", "pods"), 0);
    let counts = s.request_counts();
    assert_eq!(
        counts.get(&("list".to_string(), "pods".to_string())),
        Some(&6)
    );
}

#[tokio::test]
async fn crd_registers_and_unregisters_resources() {
    let s = sim(SimConfig::default()).await;
    let a = s.addr();
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {"group": "stable.example.com", "scope": "Namespaced",
                 "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
                 "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}
    });
    assert_eq!(get(a, "/apis/stable.example.com/v1").await.status, 404);
    let bad = post(
        a,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &json!({"metadata": {"name": "wrong"}, "spec": crd["spec"]}),
    )
    .await;
    assert_eq!(bad.status, 422);
    let r = post(
        a,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &crd,
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"]["conditions"][1]["type"], "Established");
    let disc = get(a, "/apis/stable.example.com/v1").await.json();
    assert_eq!(disc["resources"][0]["name"], "crontabs");
    assert_eq!(disc["resources"][0]["kind"], "CronTab");
    assert_eq!(disc["resources"][0]["shortNames"], json!(["ct"]));
    assert!(
        get(a, "/apis").await.json()["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "stable.example.com")
    );
    let cr = post(a, "/apis/stable.example.com/v1/namespaces/default/crontabs", &json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "t"}, "spec": {"cronSpec": "* * * * *"}})).await;
    assert_eq!(cr.status, 201);
    let sim_cr = s
        .create(
            "crontabs.stable.example.com",
            Some("default"),
            json!({"metadata": {"name": "u"}}),
        )
        .unwrap();
    assert_eq!(sim_cr["apiVersion"], "stable.example.com/v1");
    // Custom resources' list items carry kind/apiVersion.
    let list = get(a, "/apis/stable.example.com/v1/crontabs").await.json();
    assert_eq!(list["kind"], "CronTabList");
    assert_eq!(list["items"][0]["kind"], "CronTab");
    assert_eq!(list["items"][0]["apiVersion"], "stable.example.com/v1");
    s.delete(
        "customresourcedefinitions.apiextensions.k8s.io",
        None,
        "crontabs.stable.example.com",
    )
    .unwrap();
    assert_eq!(get(a, "/apis/stable.example.com/v1").await.status, 404);
    assert_eq!(
        get(a, "/apis/stable.example.com/v1/crontabs").await.status,
        404
    );
}

#[tokio::test]
async fn seeding_and_churn() {
    let s = sim(SimConfig {
        namespaces: 3,
        pods: 60,
        deployments_per_namespace: 2,
        churn_per_sec: 200.0,
        seed: 7,
        ..Default::default()
    })
    .await;
    let a = s.addr();
    let list = get(a, "/api/v1/pods?resourceVersion=0").await;
    let pods = list.json();
    let items = pods["items"].as_array().unwrap();
    assert!((50..=70).contains(&items.len()), "{}", items.len());
    let p = &items[0];
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
    assert!(p["metadata"]["labels"]["pod-template-hash"].is_string());
    assert!(p["status"]["podIP"].is_string());
    let size = serde_json::to_vec(p).unwrap().len();
    assert!((2000..6000).contains(&size), "pod JSON is {size} bytes");
    let deps = get(a, "/apis/apps/v1/deployments").await.json();
    assert_eq!(deps["items"].as_array().unwrap().len(), 6);
    // Churn is visible to watchers.
    let mut w = Watch::open(
        a,
        &format!(
            "/api/v1/pods?watch=true&resourceVersion={}",
            s.resource_version()
        ),
    )
    .await;
    let mut types = BTreeSet::new();
    for _ in 0..20 {
        let e = w.next().await.unwrap();
        types.insert(e["type"].as_str().unwrap().to_string());
    }
    assert!(types.contains("MODIFIED"));
}

#[tokio::test]
async fn seeding_is_reproducible() {
    let cfg = SimConfig {
        namespaces: 2,
        pods: 10,
        deployments_per_namespace: 1,
        seed: 42,
        ..Default::default()
    };
    let a = sim(cfg.clone()).await;
    let b = sim(cfg).await;
    let na = names(&get(a.addr(), "/api/v1/pods").await.json());
    let nb = names(&get(b.addr(), "/api/v1/pods").await.json());
    assert_eq!(na, nb);
}

#[tokio::test]
async fn table_output_for_kubectl() {
    let s = sim(SimConfig::default()).await;
    s.create("pods", Some("default"), pod("t", "default", json!({})))
        .unwrap();
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let r = request(
        s.addr(),
        "GET",
        "/api/v1/namespaces/default/pods?limit=500",
        &[("Accept", accept)],
        None,
    )
    .await;
    let t = r.json();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["columnDefinitions"][0]["name"], "Name");
    assert_eq!(t["rows"][0]["cells"][0], "t");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "default");
}

#[tokio::test]
async fn slow_watcher_is_disconnected_not_blocking_writers() {
    let s = sim(SimConfig {
        history: 100,
        ..Default::default()
    })
    .await;
    // Open a watch and do not read it while writing; writers must not block.
    let mut w = Watch::open(
        s.addr(),
        &format!(
            "/api/v1/configmaps?watch=true&resourceVersion={}",
            s.resource_version()
        ),
    )
    .await;
    let big = "x".repeat(2048);
    let total = 40_000;
    for i in 0..total {
        s.create(
            "configmaps",
            Some("default"),
            json!({"metadata": {"name": format!("c{i}")}, "data": {"v": big}}),
        )
        .unwrap();
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(s.resource_version(), 4 + total as u64);
    // The lagging watcher was cut off: its stream ends before delivering every event.
    let mut delivered = 0;
    while let Some(e) = w.next().await {
        assert_eq!(e["type"], "ADDED");
        delivered += 1;
    }
    assert!(delivered < total, "delivered {delivered} of {total}");
}

#[tokio::test]
async fn scale_subresource() {
    let s = sim(SimConfig {
        namespaces: 1,
        deployments_per_namespace: 1,
        ..Default::default()
    })
    .await;
    let a = s.addr();
    let sc = get(a, "/apis/apps/v1/namespaces/ns-0/deployments/web/scale")
        .await
        .json();
    assert_eq!(sc["kind"], "Scale");
    assert_eq!(sc["apiVersion"], "autoscaling/v1");
    assert_eq!(sc["status"]["selector"], "app=web");
    let r = request(
        a,
        "PATCH",
        "/apis/apps/v1/namespaces/ns-0/deployments/web/scale",
        &[("Content-Type", "application/merge-patch+json")],
        Some(br#"{"spec":{"replicas":5}}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["spec"]["replicas"], 5);
    assert_eq!(
        s.get("deployments.apps", Some("ns-0"), "web").unwrap()["spec"]["replicas"],
        5
    );
    let disc = get(a, "/apis/apps/v1").await.json();
    assert!(
        disc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "deployments/scale" && r["kind"] == "Scale")
    );
}

#[tokio::test]
async fn partial_object_metadata_representation() {
    let s = sim(SimConfig::default()).await;
    let a = s.addr();
    s.create(
        "pods",
        Some("default"),
        pod("m", "default", json!({"app": "m"})),
    )
    .unwrap();
    let r = request(
        a,
        "GET",
        "/api/v1/pods",
        &[(
            "Accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
        )],
        None,
    )
    .await;
    let l = r.json();
    assert_eq!(l["kind"], "PartialObjectMetadataList");
    assert_eq!(l["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(l["items"][0]["kind"], "PartialObjectMetadata");
    assert_eq!(l["items"][0]["metadata"]["labels"]["app"], "m");
    assert!(l["items"][0].get("spec").is_none());
    let rv = s.resource_version();
    let mut w = Watch::open_with(
        a,
        &format!("/api/v1/pods?watch=true&resourceVersion={rv}"),
        &[(
            "Accept",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        )],
    )
    .await;
    s.patch(
        "pods",
        Some("default"),
        "m",
        json!({"metadata": {"labels": {"x": "y"}}}),
    )
    .unwrap();
    let e = w.next().await.unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(e["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(e["object"]["metadata"]["labels"]["x"], "y");
    // A plain Accept gets full objects.
    let g = get(a, "/api/v1/namespaces/default/pods/m").await.json();
    assert_eq!(g["kind"], "Pod");
    assert!(g["spec"].is_object());
}

#[tokio::test]
async fn continue_tokens_outlive_the_watch_window() {
    // Like etcd (compacted every 5 minutes) versus the much shorter watch cache window.
    let s = sim(SimConfig {
        history: 3,
        ..Default::default()
    })
    .await;
    let a = s.addr();
    for i in 0..6 {
        s.create(
            "configmaps",
            Some("default"),
            json!({"metadata": {"name": format!("c{i}")}}),
        )
        .unwrap();
    }
    let first = get(a, "/api/v1/configmaps?limit=2").await.json();
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    let snapshot = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..6 {
        s.delete("configmaps", Some("default"), &format!("c{i}"))
            .unwrap();
    }
    // The watch window has moved past the snapshot...
    let mut w = Watch::open(
        a,
        &format!("/api/v1/configmaps?watch=true&resourceVersion={snapshot}"),
    )
    .await;
    assert_eq!(w.next().await.unwrap()["object"]["code"], 410);
    // ...but the list snapshot is still readable, with the deleted objects in it.
    let next = get(a, &format!("/api/v1/configmaps?limit=10&continue={token}")).await;
    assert_eq!(next.status, 200);
    assert_eq!(names(&next.json()), vec!["c2", "c3", "c4", "c5"]);
}
