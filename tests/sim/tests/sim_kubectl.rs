//! Fidelity test: the real kubectl must work against the simulator.
//! Fails when kubectl is missing unless KUBEBRIDGE_SKIP_KUBECTL=1.
#![allow(clippy::unwrap_used)] // Tests may panic on unexpected values; that is their failure mode.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use kubebridge_sim::{Sim, SimConfig};
use kubebridge_testkit::kubectl::{Kubectl, kubectl_path};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_works_against_the_simulator() {
    let Some(bin) = kubectl_path() else {
        eprintln!("KUBEBRIDGE_SKIP_KUBECTL=1: skipping");
        return;
    };
    let sim = Sim::start(
        "127.0.0.1:0".parse().unwrap(),
        SimConfig {
            namespaces: 2,
            pods: 12,
            deployments_per_namespace: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig, Some("ns-0")).unwrap();
    let k = Kubectl::new(bin, &kubeconfig, dir.path());

    // get pods -A: a header, all 12 pods with their namespace.
    let out = k.run(&["get", "pods", "-A"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAMESPACE") && lines[0].contains("NAME") && lines[0].contains("AGE"),
        "{out}"
    );
    assert_eq!(lines.len(), 13, "{out}");
    assert!(lines[1].starts_with("ns-0"));

    // Label selector in a namespace.
    let out = k
        .run(&["get", "pods", "-l", "app=web", "-n", "ns-1", "-o", "name"])
        .await;
    let names: Vec<&str> = out.lines().collect();
    assert_eq!(names.len(), 3, "{out}");
    assert!(names.iter().all(|n| n.starts_with("pod/web-")));

    // Single object as JSON.
    let name = names[0].trim_start_matches("pod/");
    let out = k
        .run(&["get", "pod", name, "-n", "ns-1", "-o", "json"])
        .await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kind"], "Pod");
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["metadata"]["name"], name);
    assert_eq!(v["metadata"]["namespace"], "ns-1");
    assert_eq!(v["status"]["phase"], "Running");
    assert_eq!(v, sim.get("pods", Some("ns-1"), name).unwrap());

    // describe (lists events with involvedObject field selectors), scale (the /scale subresource),
    // and a per-type field selector.
    let out = k.run(&["describe", "pod", name, "-n", "ns-1"]).await;
    assert!(
        out.contains("Name:") && out.contains(name) && out.contains("Events:"),
        "{out}"
    );
    assert!(
        k.run(&["scale", "deployment", "web", "-n", "ns-1", "--replicas=7"])
            .await
            .contains("scaled")
    );
    let d = sim.get("deployments.apps", Some("ns-1"), "web").unwrap();
    assert_eq!(
        (
            d["spec"]["replicas"].as_i64(),
            d["metadata"]["generation"].as_i64()
        ),
        (Some(7), Some(2))
    );
    let node = v["spec"]["nodeName"].as_str().unwrap().to_string();
    let out = k
        .run(&[
            "get",
            "pods",
            "-A",
            "-o",
            "name",
            "--field-selector",
            &format!("spec.nodeName={node}"),
        ])
        .await;
    assert!(out.lines().any(|l| l == format!("pod/{name}")), "{out}");

    // create -f: a Pod (context namespace ns-0), a CRD, then a CR of it.
    let pod = write(
        dir.path(),
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\n  labels: {app: hello}\nspec:\n  containers:\n  - name: c\n    image: nginx\n",
    );
    assert!(
        k.run(&["create", "-f", &pod])
            .await
            .contains("pod/hello created")
    );
    assert_eq!(
        sim.get("pods", Some("ns-0"), "hello").unwrap()["metadata"]["labels"]["app"],
        "hello"
    );
    let crd = write(
        dir.path(),
        "crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: crontabs.stable.example.com\nspec:\n  group: stable.example.com\n  scope: Namespaced\n  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n",
    );
    assert!(k.run(&["create", "-f", &crd]).await.contains("created"));
    let cr = write(
        dir.path(),
        "cr.yaml",
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: my-tab\nspec:\n  cronSpec: '* * * * */5'\n",
    );
    assert!(
        k.run(&["create", "-f", &cr])
            .await
            .contains("crontab.stable.example.com/my-tab created")
    );
    let out = k.run(&["get", "ct"]).await;
    assert!(out.contains("my-tab"), "{out}");
    assert_eq!(
        sim.get("crontabs.stable.example.com", Some("ns-0"), "my-tab")
            .unwrap()["spec"]["cronSpec"],
        "* * * * */5"
    );

    // delete.
    assert!(k.run(&["delete", "pod", "hello"]).await.contains("deleted"));
    assert_eq!(
        sim.get("pods", Some("ns-0"), "hello").unwrap_err().code,
        404
    );

    // get -w --output-watch-events sees ADDED and DELETED for changes made after it started.
    let mut child = k
        .command(&[
            "get",
            "pods",
            "-w",
            "--output-watch-events",
            "-l",
            "app=watched",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        // Wait until kubectl's watch is open, so the create is seen as a live event.
        while sim.requests("watch", "pods") == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sim.create("pods", Some("ns-0"), json!({"metadata": {"name": "w1", "labels": {"app": "watched"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}))
            .unwrap();
        sim.delete("pods", Some("ns-0"), "w1").unwrap();
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            let fields: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            if fields.get(1).map(String::as_str) == Some("w1") {
                seen.push(fields[0].clone());
                if fields[0] == "DELETED" {
                    break;
                }
            }
        }
        seen
    })
    .await
    .expect("kubectl get -w showed the events within 30s");
    child.kill().await.unwrap();
    assert_eq!(seen, vec!["ADDED", "DELETED"]);
    sim.shutdown().await;
}
