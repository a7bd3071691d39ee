//! Checks of the deployment artefacts in deploy/: the container args use only flags the
//! binary has, the plain manifests are objects a (simulated) API server accepts, with the
//! security settings and RBAC they promise, and the Grafana dashboard queries only metrics
//! kubebridge exports.
//!
//! The kubectl test fails when kubectl is missing unless KUBEBRIDGE_SKIP_KUBECTL=1.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kubebridge_sim::{Sim, SimConfig};
use kubebridge_testkit::kubectl::{Kubectl, kubectl_path, rbac_stand_ins, stand_in_crd};
use serde_json::{Value, json};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// The files directly in `dir` whose names end with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.to_str().unwrap().ends_with(suffix))
        .collect();
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn manifest_files() -> Vec<PathBuf> {
    let out = files(&deploy_dir().join("manifests"), ".yaml");
    assert!(out.len() >= 8, "expected the manifests, found {out:?}");
    out
}

// ---------------------------------------------------------------------------------------
// 1. Flags
// ---------------------------------------------------------------------------------------

/// The flags given as YAML list items (`- --sink`, `- -X`, `- "--resync=10m"`), in comments
/// too (`#   - -X`): container args, and the commented examples, which must work as well.
/// Lines that merely mention a flag in prose (a kubectl command in a comment) are not list
/// items and are not collected.
fn listed_flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let item = line.trim_start().trim_start_matches('#').trim_start();
        let Some(value) = item.strip_prefix("- ") else {
            continue;
        };
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        if value.len() < 2 || !value.starts_with('-') {
            continue;
        }
        let flag = value.split('=').next().unwrap();
        let valid = if let Some(long) = flag.strip_prefix("--") {
            !long.is_empty()
                && long
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        } else {
            flag.len() == 2 && flag.as_bytes()[1].is_ascii_alphabetic()
        };
        assert!(valid, "not a flag: {value:?} in line {line:?}");
        out.insert(flag.to_string());
    }
    out
}

/// Whether `flag` occurs in `help` as a whole word (so `--format` is not found inside
/// `--log-format`, nor `-n` inside `--namespace`).
fn help_has_flag(help: &str, flag: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    help.match_indices(flag).any(|(i, _)| {
        let before = help[..i].chars().next_back();
        let after = help[i + flag.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

fn watch_help() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubebridge"))
        .args(["watch", "--help"])
        .output()
        .expect("run kubebridge watch --help");
    assert!(out.status.success(), "kubebridge watch --help failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_flag_matching_is_by_whole_word() {
    let help = "  -n, --namespace <NS>\n      --log-format <F>\n  -X <KEY=VALUE>\n";
    assert!(help_has_flag(help, "-n"));
    assert!(help_has_flag(help, "--namespace"));
    assert!(help_has_flag(help, "-X"));
    assert!(help_has_flag(help, "--log-format"));
    assert!(!help_has_flag(help, "--format"));
    assert!(!help_has_flag(help, "--name"));
    assert!(!help_has_flag(help, "-A"));
    let listed = listed_flags(
        "args:\n  - watch\n  - -A\n  - \"--resync=10m\"\n  #   - -X\n  # kubectl create --from-literal=a=b\n",
    );
    assert_eq!(
        listed.into_iter().collect::<Vec<_>>(),
        ["--resync", "-A", "-X"]
    );
}

#[test]
fn every_flag_in_the_manifests_and_chart_exists() {
    let help = watch_help();
    let mut sources: Vec<PathBuf> = manifest_files();
    let chart = deploy_dir().join("helm/kubebridge");
    sources.extend(files(&chart.join("templates"), ".yaml"));
    sources.extend(files(&chart.join("templates"), ".tpl"));
    sources.push(chart.join("values.yaml"));

    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in &sources {
        let name = path
            .strip_prefix(deploy_dir())
            .unwrap()
            .display()
            .to_string();
        for flag in listed_flags(&read(path)) {
            found.entry(flag).or_default().push(name.clone());
        }
    }
    // The deployment's own args, so that the check cannot pass on nothing.
    let deployment = listed_flags(&read(&deploy_dir().join("manifests/deployment.yaml")));
    for expected in [
        "--config",
        "--log-format",
        "--leader-elect",
        "--checkpoint",
        "--metrics-auth",
        "--redaction-key-file",
    ] {
        assert!(
            deployment.contains(expected),
            "deployment.yaml lists no {expected}"
        );
    }
    // The chart's template can emit each of these (what to watch, the sinks and the
    // Kafka properties are in its ConfigMap, where ${VAR} works).
    let template = listed_flags(&read(&chart.join("templates/deployment.yaml")));
    for expected in [
        "--config",
        "--format",
        "--resync",
        "--metrics-addr",
        "--metrics-auth",
        "--redaction-key-file",
        "--log-format",
        "--leader-elect",
        "--checkpoint",
        "--checkpoint-interval",
    ] {
        assert!(
            template.contains(expected),
            "the chart's deployment template never emits {expected}"
        );
    }

    let missing: Vec<String> = found
        .iter()
        .filter(|(flag, _)| !help_has_flag(&help, flag))
        .map(|(flag, files)| format!("{flag} (in {})", files.join(", ")))
        .collect();
    assert!(
        missing.is_empty(),
        "flags used in deploy/ that `kubebridge watch --help` does not know: {missing:?}"
    );
}

/// The key paths of a values.yaml written in two-space block style ("watch.resources",
/// "metrics.serviceMonitor.enabled", ...); list items and comments are skipped.
fn values_paths(text: &str) -> BTreeSet<String> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("- ") {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let Some((key, _)) = trimmed.split_once(':') else {
            continue;
        };
        if !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            continue;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let path = match stack.last() {
            Some((_, parent)) => format!("{parent}.{key}"),
            None => key.to_string(),
        };
        out.insert(path.clone());
        stack.push((indent, path));
    }
    out
}

#[test]
fn the_chart_templates_use_only_defined_values_and_close_their_blocks() {
    let chart = deploy_dir().join("helm/kubebridge");
    for f in [
        "Chart.yaml",
        "values.yaml",
        "templates/NOTES.txt",
        "templates/_helpers.tpl",
    ] {
        assert!(chart.join(f).is_file(), "the chart has no {f}");
    }
    let chart_yaml = read(&chart.join("Chart.yaml"));
    for line in [
        "apiVersion: v2",
        "name: kubebridge",
        "version: ",
        "appVersion: ",
    ] {
        assert!(chart_yaml.contains(line), "Chart.yaml has no {line:?}");
    }
    let values = values_paths(&read(&chart.join("values.yaml")));
    assert!(
        values.contains("metrics.serviceMonitor.enabled"),
        "{values:?}"
    );

    let mut templates = files(&chart.join("templates"), ".yaml");
    templates.extend(files(&chart.join("templates"), ".tpl"));
    templates.extend(files(&chart.join("templates"), ".txt"));
    assert!(templates.len() >= 8, "{templates:?}");
    let mut used = BTreeSet::new();
    for path in &templates {
        let text = read(path);
        let name = path.file_name().unwrap().to_str().unwrap();
        // Every action is closed on its line, and every block is ended.
        let mut depth: i64 = 0;
        for (n, line) in text.lines().enumerate() {
            assert_eq!(
                line.matches("{{").count(),
                line.matches("}}").count(),
                "{name}:{}: unbalanced braces: {line}",
                n + 1
            );
            for action in line.split("{{").skip(1) {
                let word = action
                    .trim_start_matches('-')
                    .split_whitespace()
                    .next()
                    .unwrap_or("");
                match word {
                    "if" | "range" | "with" | "define" => depth += 1,
                    "end" => depth -= 1,
                    _ => {}
                }
                assert!(depth >= 0, "{name}:{}: `end` without a block", n + 1);
            }
        }
        assert_eq!(depth, 0, "{name}: a block is never ended");
        // Every .Values path the template reads is in values.yaml.
        for (i, _) in text.match_indices(".Values.") {
            let tail = &text[i + ".Values.".len()..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(tail.len());
            let path = tail[..end].trim_end_matches('.');
            assert!(
                values.contains(path),
                "{name} reads .Values.{path}, which values.yaml does not define"
            );
            used.insert(path.to_string());
        }
    }
    // And every leaf in values.yaml is read somewhere.
    let unused: Vec<&String> = values
        .iter()
        .filter(|v| {
            !values.iter().any(|o| o.starts_with(&format!("{v}.")))
                && !used
                    .iter()
                    .any(|u| u == *v || v.starts_with(&format!("{u}.")))
        })
        .collect();
    assert!(
        unused.is_empty(),
        "values.yaml keys no template reads: {unused:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 2. The plain manifests against the simulated API server, with the real kubectl
// ---------------------------------------------------------------------------------------

/// Every object in a `kubectl -o json` output: one document per object, or a List.
fn objects(json_text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for v in serde_json::Deserializer::from_str(json_text).into_iter::<Value>() {
        let v = v.unwrap();
        if v["kind"] == "List" {
            out.extend(v["items"].as_array().unwrap().iter().cloned());
        } else {
            out.push(v);
        }
    }
    out
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}");
    found[0]
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifests_are_accepted_by_an_api_server() {
    let Some(kubectl_bin) = kubectl_path() else {
        eprintln!("KUBEBRIDGE_SKIP_KUBECTL=1: skipping");
        return;
    };
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), SimConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig, None).unwrap();
    let k = Kubectl::new(kubectl_bin, &kubeconfig, dir.path());

    // The simulator serves the core types the manifests use; the others are registered
    // as CRDs when (and only when) discovery does not list them.
    let served = k.with_cache("cache-0").api_resources().await;
    for builtin in [
        "namespaces",
        "serviceaccounts",
        "services",
        "deployments.apps",
    ] {
        assert!(
            served.contains(builtin),
            "the simulator does not serve {builtin}"
        );
    }
    let mut stand_ins = rbac_stand_ins();
    stand_ins.extend([
        stand_in_crd(
            "policy",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            "Namespaced",
            &["pdb"],
        ),
        stand_in_crd(
            "networking.k8s.io",
            "networkpolicies",
            "NetworkPolicy",
            "Namespaced",
            &["netpol"],
        ),
        // Not built in anywhere: the Prometheus Operator installs it.
        stand_in_crd(
            "monitoring.coreos.com",
            "servicemonitors",
            "ServiceMonitor",
            "Namespaced",
            &["smon"],
        ),
    ]);
    k.serve_stand_ins(&stand_ins, dir.path()).await;

    let files = manifest_files();
    let (namespace_file, rest): (Vec<&PathBuf>, Vec<&PathBuf>) = files
        .iter()
        .partition(|p| p.file_name().unwrap() == "00-namespace.yaml");
    assert_eq!(
        namespace_file.len(),
        1,
        "deploy/manifests/00-namespace.yaml"
    );
    let namespace_file = namespace_file[0].to_str().unwrap();

    // The Namespace, by itself: the other objects need it to exist, on a real API server
    // as on the simulator, so a dry run of everything at once cannot succeed.
    let out = k
        .with_cache("cache-1")
        .run(&["create", "--dry-run=server", "-f", namespace_file])
        .await;
    assert_eq!(out.trim(), "namespace/kubebridge created (server dry run)");
    k.with_cache("cache-1")
        .run(&["create", "-f", namespace_file])
        .await;

    // Everything else in one server-side dry run.
    let mut args: Vec<&str> = vec!["create", "--dry-run=server"];
    for p in &rest {
        args.push("-f");
        args.push(p.to_str().unwrap());
    }
    let out = k.with_cache("cache-1").run(&args).await;
    let mut created: Vec<&str> = out.lines().collect();
    created.sort();
    assert_eq!(
        created,
        [
            "clusterrole.rbac.authorization.k8s.io/kubebridge created (server dry run)",
            "clusterrole.rbac.authorization.k8s.io/kubebridge-cluster-identity created (server dry run)",
            "clusterrole.rbac.authorization.k8s.io/kubebridge-metrics-auth created (server dry run)",
            "clusterrole.rbac.authorization.k8s.io/kubebridge-metrics-reader created (server dry run)",
            "clusterrolebinding.rbac.authorization.k8s.io/kubebridge created (server dry run)",
            "clusterrolebinding.rbac.authorization.k8s.io/kubebridge-cluster-identity created (server dry run)",
            "clusterrolebinding.rbac.authorization.k8s.io/kubebridge-metrics-auth created (server dry run)",
            "clusterrolebinding.rbac.authorization.k8s.io/kubebridge-metrics-reader created (server dry run)",
            "configmap/kubebridge created (server dry run)",
            "deployment.apps/kubebridge created (server dry run)",
            "networkpolicy.networking.k8s.io/kubebridge created (server dry run)",
            "poddisruptionbudget.policy/kubebridge created (server dry run)",
            "role.rbac.authorization.k8s.io/kubebridge-checkpoint created (server dry run)",
            "role.rbac.authorization.k8s.io/kubebridge-leader-election created (server dry run)",
            "rolebinding.rbac.authorization.k8s.io/kubebridge-checkpoint created (server dry run)",
            "rolebinding.rbac.authorization.k8s.io/kubebridge-leader-election created (server dry run)",
            "service/kubebridge created (server dry run)",
            "serviceaccount/kubebridge created (server dry run)",
            "servicemonitor.monitoring.coreos.com/kubebridge created (server dry run)",
        ],
        "{out}"
    );
    // A dry run stores nothing.
    let stored = k
        .with_cache("cache-1")
        .run(&[
            "get",
            "deployments,serviceaccounts",
            "-n",
            "kubebridge",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(stored.trim(), "", "the dry run stored objects");

    // The content, as kubectl reads it.
    let manifests = deploy_dir().join("manifests");
    let out = k
        .with_cache("cache-1")
        .run(&[
            "create",
            "--dry-run=client",
            "-o",
            "json",
            "-f",
            manifests.to_str().unwrap(),
        ])
        .await;
    let objs = objects(&out);
    assert_eq!(objs.len(), 20, "{out}");
    check_deployment(one(&objs, "Deployment"), one(&objs, "ConfigMap"));
    check_rbac(&objs, &generated_rbac(&kubeconfig));
    check_selectors(&objs);
    check_network_policy(&objs);
}

fn check_deployment(d: &Value, config_map: &Value) {
    assert_eq!(d["metadata"]["namespace"], "kubebridge");
    assert_eq!(
        d["spec"]["replicas"], 2,
        "a leader and a standby (--leader-elect)"
    );
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "kubebridge");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(sc["capabilities"].get("add").is_none());
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(
        c["ports"],
        json!([{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}])
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][resource].is_string(),
                "resources.{kind}.{resource} missing"
            );
        }
    }

    assert_eq!(c["livenessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    let all_args = strings(&c["args"]);
    assert_eq!(
        all_args,
        [
            "watch",
            "--config",
            "/etc/kubebridge/config.yaml",
            "--log-format",
            "json",
            "--leader-elect",
            "--checkpoint",
            "configmap:///kubebridge-checkpoint",
            "--metrics-auth",
            "kubernetes",
            "--redaction-key-file",
            "/var/run/secrets/kubebridge/redaction-key/key",
        ]
    );
    // No credential in argv: only paths and words.
    assert!(
        all_args
            .iter()
            .all(|a| !a.contains('@') && !a.contains("$("))
    );
    // The redaction key: a Secret, mounted read-only where --redaction-key-file reads.
    let key_mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/var/run/secrets/kubebridge/redaction-key")
        .expect("the redaction key mount");
    assert_eq!(key_mount["readOnly"], true);
    let key_volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == key_mount["name"])
        .expect("the redaction key volume");
    assert_eq!(
        key_volume["secret"]["secretName"],
        "kubebridge-redaction-key"
    );
    assert_eq!(
        pod["securityContext"]["fsGroup"], 65532,
        "uid 65532 reads the key"
    );
    let args: Vec<&str> = all_args.to_vec();
    // The config file comes from the ConfigMap, mounted read-only where --config looks.
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/etc/kubebridge")
        .expect("the config mount");
    assert_eq!(mount["readOnly"], true);
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the config volume");
    assert_eq!(volume["configMap"]["name"], config_map["metadata"]["name"]);
    let config = config_map["data"]["config.yaml"]
        .as_str()
        .expect("config.yaml in the ConfigMap");
    // The whole command line, with the ConfigMap's file where the pod sees it, is valid
    // for kubebridge's own parser, and the file carries the routes and metrics address.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap();
    // And the redaction key's file, in case its flag reads it while parsing.
    let key = dir.path().join("redaction-key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    let key = key.to_str().unwrap();
    let argv = std::iter::once("kubebridge").chain(args.iter().map(|a| match *a {
        "/etc/kubebridge/config.yaml" => path,
        "/var/run/secrets/kubebridge/redaction-key/key" => key,
        other => other,
    }));
    match kubebridge::config::cli::parse(argv) {
        Ok((kubebridge::config::Command::Watch { stream, cluster }, _)) => {
            assert_eq!(stream.routes.len(), 1);
            assert_eq!(stream.routes[0].resources, ["pods", "deployments.apps"]);
            assert_eq!(
                stream.routes[0].sinks,
                ["jetstream://nats.nats.svc:4222/k8s?stream=K8S"]
            );
            assert_eq!(
                stream.metrics_addr.map(|a| a.port()),
                Some(9090),
                "probes need the metrics port"
            );
            assert!(stream.leader_election.is_some());
            // The in-cluster store, in the pod's own namespace (where the Role is).
            assert_eq!(
                stream.checkpoint.map(|c| c.uri),
                Some(kubebridge::config::CheckpointUri::ConfigMap {
                    namespace: None,
                    prefix: "kubebridge-checkpoint".into()
                })
            );
            assert_eq!(cluster.cluster_name.as_deref(), Some("prod"));
        }
        Ok(other) => panic!("not a watch: {other:?}"),
        Err(e) => panic!("the Deployment's args do not parse: {e:?}"),
    }
}

/// What `kubebridge rbac` prints for the manifests' resources and flags (the resources
/// of the ConfigMap's route, --leader-elect, --metrics-auth kubernetes, kube-prometheus'
/// Prometheus, the Deployment's --checkpoint), against the simulator at `kubeconfig`; README shows it verbatim.
fn generated_rbac(kubeconfig: &Path) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubebridge"))
        .args([
            "rbac",
            "pods",
            "deployments.apps",
            "--leader-elect",
            "--metrics-auth",
            "kubernetes",
            "--prometheus-service-account",
            "monitoring/prometheus-k8s",
            "--checkpoint",
            "configmap:///kubebridge-checkpoint",
            "--kubeconfig",
        ])
        .arg(kubeconfig)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubebridge rbac");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    // README's Security section shows this very output.
    let readme = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    assert!(
        readme.contains(&format!("```yaml\n{yaml}```")),
        "README's RBAC is not `kubebridge rbac`'s output:\n{yaml}"
    );
    serde_saphyr::from_multiple(&yaml).unwrap()
}

/// The manifests' RBAC is exactly what `kubebridge rbac` prints (labels aside): list
/// and watch on the watched resources, the Lease and the checkpoint ConfigMaps in Roles
/// of kubebridge's namespace, get on the kube-system Namespace by name, the metrics
/// reviews and the metrics reader; and no cluster-wide rule names leases or configmaps.
fn check_rbac(objs: &[Value], generated: &[Value]) {
    let rbac_kinds = ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];
    let key = |o: &Value| {
        format!(
            "{}/{}/{}",
            o["kind"].as_str().unwrap(),
            o["metadata"]["namespace"].as_str().unwrap_or(""),
            o["metadata"]["name"].as_str().unwrap()
        )
    };
    let mut in_manifests: BTreeMap<String, Value> = BTreeMap::new();
    for o in objs
        .iter()
        .filter(|o| rbac_kinds.contains(&o["kind"].as_str().unwrap()))
    {
        let mut o = o.clone();
        o["metadata"].as_object_mut().unwrap().remove("labels");
        assert!(in_manifests.insert(key(&o), o).is_none());
    }
    let printed: BTreeMap<String, Value> = generated.iter().map(|o| (key(o), o.clone())).collect();
    assert_eq!(
        in_manifests.keys().collect::<Vec<_>>(),
        printed.keys().collect::<Vec<_>>(),
        "the manifests hold exactly the objects `kubebridge rbac` prints"
    );
    for (k, o) in &printed {
        assert_eq!(&in_manifests[k], o, "{k} differs from `kubebridge rbac`'s");
    }

    for role in objs.iter().filter(|o| o["kind"] == "ClusterRole") {
        for rule in role["rules"].as_array().unwrap() {
            let text = rule.to_string();
            assert!(
                !text.contains("leases"),
                "a cluster-wide Lease rule: {rule}"
            );
            assert!(
                !text.contains("configmaps"),
                "a cluster-wide ConfigMap rule: {rule}"
            );
            assert!(!text.contains('*'), "no wildcards: {rule}");
            if rule.get("resources").is_some() {
                let verbs = strings(&rule["verbs"]);
                assert!(
                    verbs == ["list", "watch"] || verbs == ["create"] || *rule == identity_rule(),
                    "read-only, reviews, or the one Namespace: {rule}"
                );
            }
        }
    }
    // The cluster's identity: get on kube-system by name, and on no other namespace.
    let identity = objs
        .iter()
        .find(|o| {
            o["kind"] == "ClusterRole" && o["metadata"]["name"] == "kubebridge-cluster-identity"
        })
        .expect("the cluster identity's ClusterRole");
    assert_eq!(identity["rules"], json!([identity_rule()]));
    let checkpoint_role = objs
        .iter()
        .find(|o| o["kind"] == "Role" && o["metadata"]["name"] == "kubebridge-checkpoint")
        .expect("the checkpoint ConfigMaps' Role");
    assert_eq!(
        checkpoint_role["metadata"]["namespace"], "kubebridge",
        "where configmap:/// (the pod's namespace) keeps them"
    );
    assert_eq!(
        checkpoint_role["rules"],
        json!([checkpoint_rule()]),
        "exactly what the ConfigMap store calls"
    );
    let lease_role = objs
        .iter()
        .find(|o| o["kind"] == "Role" && o["metadata"]["name"] == "kubebridge-leader-election")
        .expect("the Lease's Role");
    assert_eq!(lease_role["metadata"]["namespace"], "kubebridge");
    assert_eq!(
        lease_role["rules"][0]["resourceNames"],
        json!(["kubebridge"]),
        "get/update on the one Lease --leader-elect-name names"
    );
    assert_eq!(
        one(objs, "ServiceAccount")["metadata"]["namespace"],
        "kubebridge"
    );
}

/// The one rule `--checkpoint` needs on ConfigMaps (in a Role): the store reads, creates
/// and replaces its parts, and never lists, watches or deletes.
fn checkpoint_rule() -> Value {
    json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update"]})
}

/// The one cluster-wide rule `--checkpoint` needs: get on the kube-system Namespace.
fn identity_rule() -> Value {
    json!({"apiGroups": [""], "resources": ["namespaces"], "resourceNames": ["kube-system"], "verbs": ["get"]})
}

/// The chart's checkpoint RBAC has the same rules as `kubebridge rbac` (its template's
/// rules are literal; only names and labels are templated), and the Deployment template
/// passes `--checkpoint` exactly when the RBAC for it is rendered.
#[test]
fn the_charts_checkpoint_rbac_is_what_kubebridge_rbac_prints() {
    let chart = deploy_dir().join("helm/kubebridge");
    let template = read(&chart.join("templates/role-checkpoint.yaml"));
    assert!(
        template
            .lines()
            .next()
            .unwrap()
            .contains("if and .Values.rbac.create .Values.checkpoint.enabled"),
        "rendered only with checkpoints on"
    );
    // Without the template actions (names, labels, the if/end): plain YAML.
    let plain: String = template
        .lines()
        .filter(|l| !l.contains("{{"))
        .map(|l| format!("{l}\n"))
        .collect();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&plain).unwrap();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]
    );
    let rules =
        |f: fn() -> Vec<k8s_openapi::api::rbac::v1::PolicyRule>| serde_json::to_value(f()).unwrap();
    assert_eq!(
        docs[0]["rules"],
        rules(kubebridge::cmd::rbac::checkpoint_rules)
    );
    assert_eq!(docs[0]["rules"], json!([checkpoint_rule()]));
    assert_eq!(
        docs[2]["rules"],
        rules(kubebridge::cmd::rbac::cluster_identity_rules)
    );
    assert_eq!(docs[2]["rules"], json!([identity_rule()]));
    assert_eq!(docs[1]["roleRef"]["kind"], "Role");
    assert_eq!(docs[3]["roleRef"]["kind"], "ClusterRole");
    for name in ["-checkpoint", "-cluster-identity"] {
        assert_eq!(
            template.matches(&format!("}}}}{name}\n")).count(),
            3,
            "the role, its binding and the roleRef are all named *{name}"
        );
    }
    // On by default, with the Deployment's prefix.
    let values = read(&chart.join("values.yaml"));
    assert!(
        values.contains("checkpoint:\n  enabled: true\n"),
        "checkpoints are on by default"
    );
    assert!(values.contains("  prefix: kubebridge-checkpoint\n"));
    let deployment = read(&chart.join("templates/deployment.yaml"));
    assert!(deployment.contains(
        "{{- if .Values.checkpoint.enabled }}\n            # The empty namespace is the pod's: the release's.\n            - --checkpoint\n            - {{ printf \"configmap:///%s\" .Values.checkpoint.prefix | quote }}"
    ));
}

/// Ingress to the metrics port only from Prometheus, for kubebridge's pods.
fn check_network_policy(objs: &[Value]) {
    let policy = one(objs, "NetworkPolicy");
    let deployment = one(objs, "Deployment");
    assert_eq!(policy["metadata"]["namespace"], "kubebridge");
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(strings(&policy["spec"]["policyTypes"]), ["Ingress"]);
    let ingress = policy["spec"]["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(
        ingress[0]["ports"],
        json!([{"port": "metrics", "protocol": "TCP"}])
    );
    let from = ingress[0]["from"].as_array().unwrap();
    assert_eq!(from.len(), 1, "one peer: Prometheus");
    assert!(from[0]["namespaceSelector"]["matchLabels"].is_object());
    assert!(from[0]["podSelector"]["matchLabels"].is_object());
}

/// The Service, the ServiceMonitor and the PodDisruptionBudget all find the pod.
fn check_selectors(objs: &[Value]) {
    let deployment = one(objs, "Deployment");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let matches = |selector: &Value| {
        let selector = selector.as_object().unwrap();
        !selector.is_empty() && selector.iter().all(|(k, v)| &pod_labels[k] == v)
    };
    assert!(matches(&deployment["spec"]["selector"]["matchLabels"]));

    let service = one(objs, "Service");
    assert!(matches(&service["spec"]["selector"]));
    // /readyz fails while a sink fails: the metrics must stay scrapable then.
    assert_eq!(service["spec"]["publishNotReadyAddresses"], true);
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}])
    );
    let service_labels = &service["metadata"]["labels"];

    let monitor = one(objs, "ServiceMonitor");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    assert!(!selector.is_empty() && selector.iter().all(|(k, v)| &service_labels[k] == v));
    let endpoints = monitor["spec"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["port"], "metrics");
    assert_eq!(endpoints[0]["path"], "/metrics");
    // --metrics-auth kubernetes: HTTPS (self-signed) and Prometheus' own token.
    assert_eq!(endpoints[0]["scheme"], "https");
    assert_eq!(
        endpoints[0]["bearerTokenFile"],
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    );
    assert_eq!(endpoints[0]["tlsConfig"]["insecureSkipVerify"], true);

    let pdb = one(objs, "PodDisruptionBudget");
    assert!(matches(&pdb["spec"]["selector"]["matchLabels"]));
    assert_eq!(
        pdb["spec"]["maxUnavailable"], 1,
        "one replica: minAvailable 1 would block node drains"
    );
}

// ---------------------------------------------------------------------------------------
// 3. The Grafana dashboard
// ---------------------------------------------------------------------------------------

/// The metrics kubebridge exports (the histogram's series end in _bucket, _sum, _count),
/// plus the standard process_* metrics.
const METRICS: [&str; 16] = [
    "kubebridge_queue_depth",
    "kubebridge_queue_capacity",
    "kubebridge_notifications_total",
    "kubebridge_sink_sent_total",
    "kubebridge_sink_errors_total",
    "kubebridge_sink_dropped_total",
    "kubebridge_sink_send_duration_seconds",
    "kubebridge_sink_oldest_unconfirmed_age_seconds",
    "kubebridge_watch_restarts_total",
    "kubebridge_relists_total",
    "kubebridge_cache_objects",
    "kubebridge_cache_bytes",
    "kubebridge_informer_synced",
    "kubebridge_resyncs_total",
    "kubebridge_last_event_timestamp_seconds",
    "kubebridge_build_info",
];
const HISTOGRAMS: [&str; 1] = ["kubebridge_sink_send_duration_seconds"];

/// Every string in a JSON document.
fn all_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| all_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| all_strings(x, out)),
        _ => {}
    }
}

/// Identifiers in `text` that start with `kubebridge_` or `process_`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| ident(c)) {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !ident(c)).unwrap_or(tail.len());
        let word = &tail[..end];
        if word.starts_with("kubebridge_") || word.starts_with("process_") {
            out.insert(word.to_string());
        }
        rest = &tail[end..];
    }
    out
}

fn known_metric(name: &str) -> bool {
    if name.starts_with("process_") {
        return true;
    }
    METRICS.contains(&name)
        && !HISTOGRAMS.contains(&name)
        && !name.ends_with("_bucket")
        && !name.ends_with("_count")
        && !name.ends_with("_sum")
        || HISTOGRAMS.iter().any(|h| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name == format!("{h}{s}"))
        })
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let path = deploy_dir().join("grafana/kubebridge-dashboard.json");
    let dashboard: Value = serde_json::from_str(&read(&path)).expect("the dashboard is JSON");
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    let panels = dashboard["panels"].as_array().expect("panels");

    // Panels in reading order (top to bottom, left to right), rows included.
    let mut ordered: Vec<&Value> = panels.iter().collect();
    ordered.sort_by_key(|p| {
        (
            p["gridPos"]["y"].as_u64().unwrap(),
            p["gridPos"]["x"].as_u64().unwrap(),
        )
    });
    let graphs: Vec<&Value> = ordered
        .iter()
        .copied()
        .filter(|p| p["type"] != "row")
        .collect();
    let first = &graphs[0];
    let first_exprs: Vec<&str> = first["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    assert!(
        first_exprs
            .iter()
            .any(|e| e.contains("kubebridge_queue_depth"))
            && first_exprs
                .iter()
                .any(|e| e.contains("kubebridge_queue_capacity")),
        "the first panel shows queue depth against capacity: {first_exprs:?}"
    );

    let mut ids = BTreeSet::new();
    let mut queried = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate id {p}");
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{} has no query", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr} queries no kubebridge metric");
            queried.extend(names);
        }
    }
    // Everything else: template variable queries, links, descriptions.
    let mut texts = Vec::new();
    all_strings(&dashboard, &mut texts);
    let mut everywhere = BTreeSet::new();
    for t in texts {
        everywhere.extend(metric_names(t));
    }
    let unknown: Vec<&String> = everywhere.iter().filter(|m| !known_metric(m)).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics kubebridge does not export: {unknown:?}"
    );
    // And it shows every one of them.
    for m in METRICS {
        assert!(
            queried
                .iter()
                .any(|q| q == m || q.starts_with(&format!("{m}_"))),
            "no panel shows {m}"
        );
    }
    assert!(queried.contains("process_resident_memory_bytes"));
}

#[test]
fn the_alert_rules_use_only_exported_metrics() {
    let text = read(&deploy_dir().join("prometheus/kubebridge-rules.yaml"));
    let exprs: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("expr: "))
        .collect();
    assert!(exprs.len() >= 6, "{exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        used.extend(metric_names(expr));
    }
    let unknown: Vec<&String> = used.iter().filter(|m| !known_metric(m)).collect();
    assert!(
        unknown.is_empty(),
        "unknown metrics in the rules: {unknown:?}"
    );
    // The README's list of what to alert on, each as a rule.
    for m in [
        "kubebridge_queue_depth",
        "kubebridge_sink_oldest_unconfirmed_age_seconds",
        "kubebridge_informer_synced",
        "kubebridge_relists_total",
        "kubebridge_sink_errors_total",
        "kubebridge_sink_dropped_total",
    ] {
        assert!(used.contains(m), "no alert on {m}");
    }
}

#[test]
fn the_image_runs_as_the_user_the_manifests_expect() {
    let dockerfile = read(&deploy_dir().join("Dockerfile"));
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let from: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "multi-stage: {from:?}");
    assert!(from[0].starts_with("FROM rust:1-bookworm@sha256:"));
    // Every base image pinned by digest (a tag alone can be moved under us).
    for f in &from {
        let image = f.split_whitespace().nth(1).unwrap();
        let digest = image.split_once("@sha256:").map(|(_, d)| d);
        assert!(
            digest.is_some_and(|d| d.len() == 64 && d.chars().all(|c| c.is_ascii_hexdigit())),
            "not pinned by digest: {f}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cargo build --release --locked -p kubebridge"))
    );
    // After the last FROM: the runtime stage.
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let runtime = &lines[last_from..];
    assert!(runtime.contains(&"USER 65532:65532"), "{runtime:?}");
    assert!(runtime.contains(&"ENTRYPOINT [\"/usr/local/bin/kubebridge\"]"));
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("COPY --from=builder")
                && l.ends_with("/usr/local/bin/kubebridge"))
    );
    // The Deployment and the chart run as that user.
    for path in [
        deploy_dir().join("manifests/deployment.yaml"),
        deploy_dir().join("helm/kubebridge/templates/deployment.yaml"),
    ] {
        let text = read(&path);
        for line in [
            "runAsUser: 65532",
            "runAsNonRoot: true",
            "readOnlyRootFilesystem: true",
            "allowPrivilegeEscalation: false",
            "drop: [\"ALL\"]",
            "type: RuntimeDefault",
            "path: /healthz",
            "path: /readyz",
        ] {
            assert!(text.contains(line), "{} has no {line:?}", path.display());
        }
    }
}

#[test]
fn metric_names_are_recognised() {
    let names = metric_names(
        "histogram_quantile(0.99, sum by (le, sink) (rate(kubebridge_sink_send_duration_seconds_bucket{sink=~\"$sink\"}[5m]))) / process_resident_memory_bytes",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "kubebridge_sink_send_duration_seconds_bucket",
            "process_resident_memory_bytes"
        ]
    );
    assert!(known_metric("kubebridge_sink_send_duration_seconds_count"));
    assert!(known_metric("kubebridge_queue_depth"));
    assert!(!known_metric("kubebridge_queue_depth_bucket"));
    assert!(!known_metric("kubebridge_sink_send_duration_seconds"));
    assert!(!known_metric("kubebridge_queue_length"));
}
