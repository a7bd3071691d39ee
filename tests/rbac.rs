//! `kubebridge rbac` end to end, against the simulated API server: a crafted `--name`
//! is refused, each flag combination prints exactly the rules it needs (list and watch,
//! the one Lease, the metrics reviews, the checkpoint store and the cluster identity), and the output is accepted by a server-side dry
//! run with the real kubectl (skipped with KUBEBRIDGE_SKIP_KUBECTL=1).
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use kubebridge_sim::{Sim, SimConfig};
use kubebridge_testkit::kubectl::{Kubectl, kubectl_path, rbac_stand_ins};
use serde_json::Value;

fn kubebridge(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kubebridge"))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubebridge")
}

async fn sim(dir: &Path) -> (Sim, String) {
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), SimConfig::default())
        .await
        .unwrap();
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig, None).unwrap();
    (sim, kubeconfig.to_str().unwrap().to_string())
}

/// `kubebridge rbac ARGS --kubeconfig KC`, which must succeed; its YAML documents.
fn rbac(kubeconfig: &str, args: &[&str]) -> (String, Vec<Value>) {
    let mut all = vec!["rbac"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--kubeconfig", kubeconfig]);
    let out = kubebridge(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubebridge {all:?}: {stderr}");
    let yaml = String::from_utf8(out.stdout).unwrap();
    let docs = serde_saphyr::from_multiple::<Value>(&yaml)
        .unwrap_or_else(|e| panic!("not YAML: {e}\n{yaml}"));
    (yaml, docs)
}

/// One permission: where (`ClusterRole` or `Role/NAMESPACE`), API group, resource (or
/// non-resource URL), resource name (or `*` for any), verb.
type Grant = (String, String, String, String, String);

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        v => v
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {v}"))
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect(),
    }
}

/// Every grant the printed roles make, checking on the way that each role is bound to
/// exactly `subjects[role]` and nothing is unbound or bound twice.
fn grants(docs: &[Value], sa: &str, prometheus: Option<&str>) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    let mut roles = BTreeSet::new();
    let mut bound = BTreeSet::new();
    for d in docs {
        assert_eq!(d["apiVersion"], "rbac.authorization.k8s.io/v1", "{d}");
        let name = d["metadata"]["name"].as_str().unwrap().to_string();
        let ns = d["metadata"]["namespace"].as_str();
        let kind = d["kind"].as_str().unwrap();
        match kind {
            "ClusterRole" | "Role" => {
                assert_eq!(kind == "Role", ns.is_some(), "{d}");
                let place = match ns {
                    Some(ns) => format!("Role/{ns}"),
                    None => "ClusterRole".to_string(),
                };
                assert!(roles.insert((place.clone(), name)), "twice: {d}");
                for rule in d["rules"].as_array().unwrap() {
                    let groups = strings(&rule["apiGroups"]);
                    let targets = match rule.get("nonResourceURLs") {
                        Some(urls) => strings(urls),
                        None => strings(&rule["resources"]),
                    };
                    let names = match strings(&rule["resourceNames"]) {
                        n if n.is_empty() => vec!["*".to_string()],
                        n => n,
                    };
                    let groups = if groups.is_empty() {
                        vec!["-".to_string()]
                    } else {
                        groups
                    };
                    for g in &groups {
                        for t in &targets {
                            for n in &names {
                                for v in strings(&rule["verbs"]) {
                                    assert!(
                                        !v.contains('*') && !t.contains('*') && !g.contains('*')
                                    );
                                    out.insert((place.clone(), g.clone(), t.clone(), n.clone(), v));
                                }
                            }
                        }
                    }
                }
            }
            "ClusterRoleBinding" | "RoleBinding" => {
                let role_kind = if kind == "RoleBinding" {
                    "Role"
                } else {
                    "ClusterRole"
                };
                assert_eq!(d["roleRef"]["kind"], role_kind, "{d}");
                assert_eq!(d["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
                let role = d["roleRef"]["name"].as_str().unwrap().to_string();
                let place = match ns {
                    Some(ns) => format!("Role/{ns}"),
                    None => "ClusterRole".to_string(),
                };
                let subjects = d["subjects"].as_array().unwrap();
                assert_eq!(subjects.len(), 1, "{d}");
                let subject = format!(
                    "{}/{}",
                    subjects[0]["namespace"].as_str().unwrap(),
                    subjects[0]["name"].as_str().unwrap()
                );
                assert_eq!(subjects[0]["kind"], "ServiceAccount");
                let expected = if role.ends_with("-metrics-reader") {
                    prometheus.expect("a reader binding only for --prometheus-service-account")
                } else {
                    sa
                };
                assert_eq!(subject, expected, "{d}");
                assert!(bound.insert((place, role)), "bound twice: {d}");
            }
            other => panic!("unexpected kind {other}"),
        }
    }
    // Every role is bound, except an unbound metrics reader.
    let unbound: Vec<_> = roles
        .difference(&bound)
        .filter(|(_, n)| !(prometheus.is_none() && n.ends_with("-metrics-reader")))
        .collect();
    assert!(unbound.is_empty(), "unbound: {unbound:?}");
    assert!(bound.is_subset(&roles), "a binding to a role not printed");
    out
}

fn g(place: &str, group: &str, target: &str, name: &str, verbs: &[&str]) -> Vec<Grant> {
    verbs
        .iter()
        .map(|v| {
            (
                place.to_string(),
                group.to_string(),
                target.to_string(),
                name.to_string(),
                v.to_string(),
            )
        })
        .collect()
}

fn set(parts: Vec<Vec<Grant>>) -> BTreeSet<Grant> {
    parts.into_iter().flatten().collect()
}

const RW: &[&str] = &["list", "watch"];

#[test]
fn a_crafted_name_is_refused() {
    // The attack from issue 9: a name that, pasted into YAML, adds a wildcard rule.
    let crafted =
        "kubebridge\nrules:\n  - apiGroups: [\"*\"]\n    resources: [\"*\"]\n    verbs: [\"*\"]";
    for name in [
        crafted,
        "kubebridge\"]\n  - apiGroups: [\"*\"]",
        "Kubebridge",
        "kube bridge",
        "kb:admin",
        "",
        &"a".repeat(250),
    ] {
        // No cluster is needed to refuse it: the name is checked before anything runs.
        let out = kubebridge(&[
            "rbac",
            "pods",
            "--name",
            name,
            "--kubeconfig",
            "/nonexistent",
        ]);
        assert_eq!(out.status.code(), Some(2), "{name:?}");
        assert!(out.stdout.is_empty(), "{name:?} printed something");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--name"), "{name:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    for args in [
        &["rbac", "pods", "-n", "Bad_NS"][..],
        &[
            "rbac",
            "pods",
            "--leader-elect",
            "--leader-elect-name",
            "a/b",
        ],
        &["rbac", "pods", "--metrics-auth", "maybe"],
        &[
            "rbac",
            "pods",
            "--prometheus-service-account",
            "monitoring/prom",
        ],
        &[
            "rbac",
            "pods",
            "--metrics-auth",
            "kubernetes",
            "--prometheus-service-account",
            "prom",
        ],
    ] {
        let out = kubebridge(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_flag_prints_exactly_its_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, kc) = sim(dir.path()).await;
    let sa = "kubebridge/kubebridge";
    let res = ["pods", "deployments.apps", "nodes"];

    let (_, docs) = rbac(&kc, &res);
    assert_eq!(
        grants(&docs, sa, None),
        set(vec![
            g("ClusterRole", "", "pods", "*", RW),
            g("ClusterRole", "", "nodes", "*", RW),
            g("ClusterRole", "apps", "deployments", "*", RW),
        ])
    );

    let (_, docs) = rbac(&kc, &[&res[..], &["-n", "a", "--namespace", "b"]].concat());
    assert_eq!(
        grants(&docs, sa, None),
        set(vec![
            g("ClusterRole", "", "nodes", "*", RW),
            g("Role/a", "", "pods", "*", RW),
            g("Role/a", "apps", "deployments", "*", RW),
            g("Role/b", "", "pods", "*", RW),
            g("Role/b", "apps", "deployments", "*", RW),
        ])
    );

    let (_, docs) = rbac(
        &kc,
        &[
            "pods",
            "--leader-elect",
            "--name",
            "kb",
            "--service-account-namespace",
            "ops",
        ],
    );
    let lease = |ns: &str, name: &str| {
        vec![
            g(
                &format!("Role/{ns}"),
                "coordination.k8s.io",
                "leases",
                name,
                &["get", "update"],
            ),
            g(
                &format!("Role/{ns}"),
                "coordination.k8s.io",
                "leases",
                "*",
                &["create"],
            ),
        ]
    };
    assert_eq!(
        grants(&docs, "ops/kb", None),
        set([
            vec![g("ClusterRole", "", "pods", "*", RW)],
            lease("ops", "kubebridge")
        ]
        .concat())
    );
    let (_, docs) = rbac(
        &kc,
        &[
            "pods",
            "--leader-elect",
            "--lease-namespace",
            "elect",
            "--leader-elect-name",
            "my-lease",
        ],
    );
    assert_eq!(
        grants(&docs, sa, None),
        set([
            vec![g("ClusterRole", "", "pods", "*", RW)],
            lease("elect", "my-lease")
        ]
        .concat())
    );

    let auth = || {
        vec![
            g(
                "ClusterRole",
                "authentication.k8s.io",
                "tokenreviews",
                "*",
                &["create"],
            ),
            g(
                "ClusterRole",
                "authorization.k8s.io",
                "subjectaccessreviews",
                "*",
                &["create"],
            ),
            g("ClusterRole", "-", "/metrics", "*", &["get"]),
        ]
    };
    let (_, docs) = rbac(&kc, &["pods", "--metrics-auth", "kubernetes"]);
    assert_eq!(
        grants(&docs, sa, None),
        set([vec![g("ClusterRole", "", "pods", "*", RW)], auth()].concat())
    );
    let (_, docs) = rbac(&kc, &["pods", "--metrics-auth", "none"]);
    assert_eq!(
        grants(&docs, sa, None),
        set(vec![g("ClusterRole", "", "pods", "*", RW)])
    );
    // --checkpoint: the ConfigMap store's Role in the URI's namespace, else in
    // kubebridge's own; get on the kube-system Namespace by name for either store.
    let identity = || g("ClusterRole", "", "namespaces", "kube-system", &["get"]);
    let configmaps = |ns: &str| {
        g(
            &format!("Role/{ns}"),
            "",
            "configmaps",
            "*",
            &["get", "create", "update"],
        )
    };
    for (uri, sa_ns, store_ns) in [
        ("configmap:///kb-ck", "ops", Some("ops")),
        ("configmap://store/kb-ck", "ops", Some("store")),
        ("file:///var/lib/kubebridge", "ops", None),
    ] {
        let (_, docs) = rbac(
            &kc,
            &[
                "pods",
                "--checkpoint",
                uri,
                "--service-account-namespace",
                sa_ns,
            ],
        );
        let mut expected = vec![g("ClusterRole", "", "pods", "*", RW), identity()];
        expected.extend(store_ns.map(configmaps));
        assert_eq!(
            grants(&docs, &format!("{sa_ns}/kubebridge"), None),
            set(expected),
            "{uri}"
        );
        for d in docs.iter().filter(|d| d["kind"] == "ClusterRole") {
            assert!(
                !d["rules"].to_string().contains("configmaps"),
                "{uri}: a cluster-wide ConfigMap rule: {d}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_passes_a_server_side_dry_run() {
    let Some(kubectl_bin) = kubectl_path() else {
        eprintln!("KUBEBRIDGE_SKIP_KUBECTL=1: skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_sim, kc) = sim(dir.path()).await;
    let k = Kubectl::new(kubectl_bin, Path::new(&kc), dir.path());
    k.serve_stand_ins(&rbac_stand_ins(), dir.path()).await;
    let k = k.with_cache("dry-run");
    // As files: `kubectl create namespace` speaks protobuf, which the simulator does not.
    for ns in ["kubebridge", "a", "b"] {
        let path = dir.path().join(format!("ns-{ns}.json"));
        let object =
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        std::fs::write(&path, object.to_string()).unwrap();
        k.run(&["create", "-f", path.to_str().unwrap()]).await;
    }

    let (yaml, docs) = rbac(
        &kc,
        &[
            "pods",
            "deployments.apps",
            "nodes",
            "-n",
            "a",
            "-n",
            "b",
            "--leader-elect",
            "--metrics-auth",
            "kubernetes",
            "--prometheus-service-account",
            "monitoring/prometheus-k8s",
            "--checkpoint",
            "configmap:///kubebridge-checkpoint",
        ],
    );
    assert_eq!(docs.len(), 16);
    let file = dir.path().join("rbac.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out = k
        .run(&["create", "--dry-run=server", "-f", file.to_str().unwrap()])
        .await;
    let mut created: Vec<&str> = out.lines().collect();
    created.sort();
    let r = "rbac.authorization.k8s.io";
    let mut expected = vec![
        format!("clusterrole.{r}/kubebridge created (server dry run)"),
        format!("clusterrole.{r}/kubebridge-cluster-identity created (server dry run)"),
        format!("clusterrolebinding.{r}/kubebridge-cluster-identity created (server dry run)"),
        format!("role.{r}/kubebridge-checkpoint created (server dry run)"),
        format!("rolebinding.{r}/kubebridge-checkpoint created (server dry run)"),
        format!("clusterrole.{r}/kubebridge-metrics-auth created (server dry run)"),
        format!("clusterrole.{r}/kubebridge-metrics-reader created (server dry run)"),
        format!("clusterrolebinding.{r}/kubebridge created (server dry run)"),
        format!("clusterrolebinding.{r}/kubebridge-metrics-auth created (server dry run)"),
        format!("clusterrolebinding.{r}/kubebridge-metrics-reader created (server dry run)"),
        format!("role.{r}/kubebridge created (server dry run)"),
        format!("role.{r}/kubebridge created (server dry run)"),
        format!("role.{r}/kubebridge-leader-election created (server dry run)"),
        format!("rolebinding.{r}/kubebridge created (server dry run)"),
        format!("rolebinding.{r}/kubebridge created (server dry run)"),
        format!("rolebinding.{r}/kubebridge-leader-election created (server dry run)"),
    ];
    expected.sort();
    assert_eq!(created, expected, "{out}");
}
