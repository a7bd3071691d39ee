//! Checkpoints end to end: the kubebridge binary killed (SIGKILL) under churn, objects
//! created, changed, deleted and replaced while it is down, and a restart that sends
//! exactly the difference from what every sink had confirmed; and every kind of unusable
//! checkpoint falling back, with one warning, to a full initial state.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kubebridge_sim::SimConfig;
use kubebridge_testkit::harness::{Harness, Running, brief, wait_until};
use serde_json::{Value, json};

/// What a checkpoint file holds: key -> (uid, resourceVersion).
type Index = BTreeMap<String, (String, String)>;

/// The one checkpoint file in `dir`, decoded as the format documents it (4-byte magic,
/// 2-byte version, one zstd frame of JSON); `None` while there is none.
fn read_checkpoint(dir: &Path) -> Option<Index> {
    let file = checkpoint_file(dir)?;
    let bytes = std::fs::read(file).ok()?;
    assert_eq!(&bytes[..4], b"KBCK");
    assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), 1);
    let json = zstd::decode_all(&bytes[6..]).expect("a whole zstd frame");
    let body: Value = serde_json::from_slice(&json).expect("JSON");
    Some(
        body["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .map(|t| {
                let s = |i: usize| t[i].as_str().unwrap().to_owned();
                (s(0), (s(1), s(2)))
            })
            .collect(),
    )
}

fn checkpoint_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "ckpt"))
}

fn kill9(running: &mut Running) {
    let pid = running.child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn pods_now(h: &Harness) -> Index {
    let list = h.sim.list("pods", Some("shop")).expect("list");
    list.iter()
        .map(|p| {
            let m = &p["metadata"];
            (
                format!("shop/{}", m["name"].as_str().unwrap()),
                (
                    m["uid"].as_str().unwrap().to_owned(),
                    m["resourceVersion"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

/// The notifications a resume from `then` to `now` must send, as `brief` prints them
/// (deletes of vanished objects first, by key; then, by key, the rest).
fn expected_diff(then: &Index, now: &Index) -> Vec<String> {
    let mut out: Vec<String> = then
        .keys()
        .filter(|k| !now.contains_key(*k))
        .map(|k| format!("DELETED relist {k}"))
        .collect();
    for (key, (uid, rv)) in now {
        match then.get(key) {
            None => out.push(format!("ADDED relist {key}")),
            Some((old_uid, _)) if old_uid != uid => {
                out.push(format!("DELETED relist {key}"));
                out.push(format!("ADDED relist {key}"));
            }
            Some((_, old_rv)) if old_rv == rv => {}
            Some(_) => out.push(format!("MODIFIED relist {key}")),
        }
    }
    out
}

fn label(h: &Harness, name: &str, value: &str) {
    h.sim
        .patch(
            "pods",
            Some("shop"),
            name,
            json!({"metadata": {"labels": {"v": value}}}),
        )
        .expect("patch");
}

fn args(dir: &Path) -> Vec<String> {
    ["pods", "-n", "shop", "--checkpoint-interval", "1s"]
        .map(str::to_owned)
        .into_iter()
        .chain([
            "--checkpoint".to_owned(),
            format!("file://{}", dir.display()),
        ])
        .collect()
}

fn spawn(h: &Harness, dir: &Path) -> Running {
    let args = args(dir);
    h.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_kill_9_sends_exactly_what_changed_since_the_confirmed_checkpoint() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    for i in 0..8 {
        h.create_pod("shop", &format!("p{i}"), json!({}));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn(&h, dir.path());
    let listed = first.take(8).await;
    assert!(listed.iter().all(|n| n["origin"] == "list"));

    // A change every sink (stdout) confirmed, then a checkpoint that holds it.
    label(&h, "p0", "1");
    assert_eq!(brief(&first.next().await), "MODIFIED watch shop/p0");
    let p0 = pods_now(&h)["shop/p0"].clone();
    wait_until(|| read_checkpoint(dir.path()).is_some_and(|i| i.get("shop/p0") == Some(&p0))).await;

    // Churn, then SIGKILL with changes in flight (made, perhaps read, not checkpointed).
    for (i, name) in ["p1", "p2", "p1"].iter().enumerate() {
        label(&h, name, &format!("c{i}"));
    }
    let _ = first.next().await;
    kill9(&mut first);
    let _ = first.wait().await;
    let confirmed = read_checkpoint(dir.path()).expect("a checkpoint survives SIGKILL");
    assert_eq!(
        confirmed.get("shop/p0"),
        Some(&p0),
        "confirmed before the kill"
    );

    // While it is down: create, modify, delete, delete and recreate (a new uid).
    h.create_pod("shop", "p8", json!({}));
    label(&h, "p3", "down");
    h.sim.delete("pods", Some("shop"), "p4").unwrap();
    h.sim.delete("pods", Some("shop"), "p5").unwrap();
    h.create_pod("shop", "p5", json!({}));
    // And the API server forgets its history: any old resourceVersion is 410 Gone.
    h.sim.faults().compact();

    let now = pods_now(&h);
    let expected = expected_diff(&confirmed, &now);
    for must in [
        "ADDED relist shop/p8",
        "MODIFIED relist shop/p3",
        "DELETED relist shop/p4",
        "ADDED relist shop/p5",
    ] {
        assert!(
            expected.contains(&must.to_owned()),
            "{must} in {expected:?}"
        );
    }
    let mut second = spawn(&h, dir.path());
    let resumed = second.take(expected.len()).await;
    let got: Vec<String> = resumed.iter().map(brief).collect();
    // Deletes of vanished objects come first; the rest follow the list's order.
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(
        got_sorted, expected_sorted,
        "exactly the difference, nothing unchanged"
    );
    assert_eq!(got[0], "DELETED relist shop/p4");

    let p4 = &resumed[0];
    assert_eq!(p4["tombstone"], true);
    assert_eq!(p4["uid"], confirmed["shop/p4"].0);
    assert_eq!(p4["object"]["metadata"]["uid"], confirmed["shop/p4"].0);
    assert_eq!(p4["object"]["kind"], "Pod");
    assert!(
        p4["object"].get("spec").is_none(),
        "a tombstone holds the identity only"
    );
    let p3 = resumed
        .iter()
        .find(|n| brief(n) == "MODIFIED relist shop/p3")
        .unwrap();
    assert_eq!(p3["oldResourceVersion"], confirmed["shop/p3"].1);
    assert!(p3.get("oldObject").is_none());
    let replaced: Vec<&Value> = resumed.iter().filter(|n| n["name"] == "p5").collect();
    assert_eq!(replaced.len(), 2);
    assert_eq!(replaced[0]["uid"], confirmed["shop/p5"].0);
    assert_eq!(replaced[1]["uid"], now["shop/p5"].0);

    // Then it watches as usual.
    label(&h, "p6", "after");
    assert_eq!(brief(&second.next().await), "MODIFIED watch shop/p6");
    second.expect_silence(Duration::from_millis(500)).await;
    // A clean shutdown writes the last checkpoint: a third run sends nothing.
    let (code, stderr) = second.terminate().await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(read_checkpoint(dir.path()).unwrap(), pods_now(&h));
    let mut third = spawn(&h, dir.path());
    third.expect_silence(Duration::from_secs(1)).await;
    label(&h, "p7", "third");
    // Before or after its list, depending on timing: either way the first and only
    // notification is this change; nothing unchanged is replayed.
    let n = third.next().await;
    assert_eq!(
        (n["type"].as_str(), n["name"].as_str()),
        (Some("MODIFIED"), Some("p7"))
    );
    third.expect_silence(Duration::from_millis(500)).await;
    let (code, stderr) = third.terminate().await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stderr.contains("checkpoint"),
        "no warning about it: {stderr}"
    );
}

/// Runs once to write a checkpoint, lets `spoil` damage it, and checks the next run
/// falls back to a full initial state with one warning naming why.
async fn falls_back(h: &Harness, spoil: impl FnOnce(&Path), why: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn(h, dir.path());
    first.take(2).await;
    wait_until(|| read_checkpoint(dir.path()).is_some_and(|i| i.len() == 2)).await;
    let (code, stderr) = first.terminate().await;
    assert_eq!(code, 0, "{why}: the first run: {stderr}");
    spoil(&checkpoint_file(dir.path()).unwrap());
    let mut second = spawn(h, dir.path());
    let got: Vec<String> = second.take(2).await.iter().map(brief).collect();
    assert_eq!(got, ["ADDED list shop/a", "ADDED list shop/b"], "{why}");
    let (code, stderr) = second.terminate().await;
    assert_eq!(code, 0, "{why}: {stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ignoring the checkpoint"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning: {stderr}");
    assert!(warnings[0].contains(why), "{why}: {}", warnings[0]);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

async fn two_pods(seed: u64) -> Harness {
    let h = Harness::start(
        SimConfig {
            seed,
            bookmark_interval: Duration::from_millis(200),
            ..SimConfig::default()
        },
        None,
    )
    .await;
    h.create_namespace("shop");
    h.create_pod("shop", "a", json!({}));
    h.create_pod("shop", "b", json!({}));
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_or_foreign_version_checkpoint_falls_back_with_one_warning() {
    let h = two_pods(1).await;
    falls_back(
        &h,
        |f| {
            let bytes = std::fs::read(f).unwrap();
            std::fs::write(f, &bytes[..bytes.len() - 5]).unwrap();
        },
        "truncated or corrupt",
    )
    .await;
    falls_back(
        &h,
        |f| {
            let mut bytes = std::fs::read(f).unwrap();
            bytes[4] = 7;
            std::fs::write(f, bytes).unwrap();
        },
        "checkpoint format version 7",
    )
    .await;
    falls_back(
        &h,
        |f| std::fs::write(f, b"").unwrap(),
        "not a kubebridge checkpoint",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_from_another_cluster_is_not_applied() {
    let one = two_pods(1).await;
    let other = two_pods(2).await;
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn(&one, dir.path());
    first.take(2).await;
    wait_until(|| read_checkpoint(dir.path()).is_some_and(|i| i.len() == 2)).await;
    let (code, _) = first.terminate().await;
    assert_eq!(code, 0);
    // The same informer against another cluster: its objects have other uids, and a
    // diff against the first cluster's index would be nonsense.
    let mut second = spawn(&other, dir.path());
    let got: Vec<String> = second.take(2).await.iter().map(brief).collect();
    assert_eq!(got, ["ADDED list shop/a", "ADDED list shop/b"]);
    let (code, stderr) = second.terminate().await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.matches("ignoring the checkpoint").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("written for the cluster whose kube-system uid is"),
        "{stderr}"
    );
}

/// The checkpoint kept in ConfigMaps `kb-pods-*` of namespace default; `None` while there
/// is none.
fn read_configmap_checkpoint(h: &Harness) -> Option<Index> {
    let head = h
        .sim
        .list("configmaps", Some("default"))
        .unwrap()
        .into_iter()
        .find(|cm| {
            let name = cm["metadata"]["name"].as_str().unwrap();
            name.starts_with("kb-pods-") && name.matches('-').count() == 2
        })?;
    assert_eq!(
        head["metadata"]["annotations"]["kubebridge.io/checkpoint-parts"], "1",
        "a small checkpoint fits in one ConfigMap"
    );
    let bytes: k8s_openapi::ByteString =
        serde_json::from_value(head["binaryData"]["checkpoint"].clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.ckpt"), bytes.0).unwrap();
    read_checkpoint(dir.path())
}

/// Short lease timings, in client-go's proportions (as tests/operations.rs).
fn leader(identity: &str) -> Vec<String> {
    [
        "pods",
        "-n",
        "shop",
        "--checkpoint",
        "configmap:///kb",
        "--checkpoint-interval",
        "1s",
        "--leader-elect",
        "--leader-elect-namespace",
        "default",
        "--leader-elect-identity",
        identity,
        "--leader-elect-lease-duration",
        "3s",
        "--leader-elect-renew-deadline",
        "2s",
        "--leader-elect-retry-period",
        "300ms",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn spawn_args(h: &Harness, args: &[String]) -> Running {
    h.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_resumes_from_the_killed_leaders_checkpoint_in_configmaps() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    for i in 0..5 {
        h.create_pod("shop", &format!("p{i}"), json!({}));
    }
    let mut first = spawn_args(&h, &leader("first"));
    first.take(5).await;
    label(&h, "p0", "1");
    assert_eq!(brief(&first.next().await), "MODIFIED watch shop/p0");
    let p0 = pods_now(&h)["shop/p0"].clone();
    wait_until(|| read_configmap_checkpoint(&h).is_some_and(|i| i.get("shop/p0") == Some(&p0)))
        .await;

    let mut second = spawn_args(&h, &leader("second"));
    second.expect_silence(Duration::from_secs(1)).await;
    // The leader dies without a word; until the standby leads, the cluster changes.
    kill9(&mut first);
    let _ = first.wait().await;
    let confirmed = read_configmap_checkpoint(&h).expect("the old leader's checkpoint");
    h.sim.delete("pods", Some("shop"), "p1").unwrap();
    label(&h, "p2", "while-no-leader");
    h.create_pod("shop", "p5", json!({}));
    h.sim.delete("pods", Some("shop"), "p3").unwrap();
    h.create_pod("shop", "p3", json!({}));

    let expected = expected_diff(&confirmed, &pods_now(&h));
    assert!(
        expected.contains(&"DELETED relist shop/p1".to_owned()),
        "{expected:?}"
    );
    let got: Vec<String> = second
        .take(expected.len())
        .await
        .iter()
        .map(brief)
        .collect();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(got),
        sorted(expected),
        "only the difference, from the old leader's checkpoint"
    );
    second.expect_silence(Duration::from_millis(500)).await;
    let (code, stderr) = second.terminate().await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stderr.contains("checkpoint"),
        "no warning about it: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_one_sink_confirmed_and_another_did_not_is_sent_again_after_kill_9() {
    use kubebridge_testkit::brokers::PrivateNats;
    use kubebridge_testkit::consume::jetstream_messages;
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let h = Harness::empty().await;
    h.create_namespace("shop");
    for i in 0..4 {
        h.create_pod("shop", &format!("p{i}"), json!({}));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(dir.path());
    args.extend([
        "--sink".into(),
        "stdout".into(),
        "--sink".into(),
        nats.jetstream_sink("KB_CKPT"),
    ]);
    let mut first = spawn_args(&h, &args);
    first.take(4).await;
    wait_until(|| read_checkpoint(dir.path()).is_some_and(|i| i.len() == 4)).await;

    // JetStream freezes: stdout confirms the next changes, JetStream does not.
    nats.broker.signal("STOP");
    label(&h, "p1", "in-flight");
    label(&h, "p2", "in-flight");
    assert_eq!(brief(&first.next().await), "MODIFIED watch shop/p1");
    assert_eq!(brief(&first.next().await), "MODIFIED watch shop/p2");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let held = read_checkpoint(dir.path()).unwrap();
    let now = pods_now(&h);
    assert_ne!(
        held["shop/p1"], now["shop/p1"],
        "not confirmed by every sink: not checkpointed"
    );
    kill9(&mut first);
    let _ = first.wait().await;
    nats.broker.signal("CONT");
    h.sim.delete("pods", Some("shop"), "p3").unwrap();

    let mut second = spawn_args(&h, &args);
    let expected = expected_diff(&held, &pods_now(&h));
    let got: Vec<Value> = second.take(expected.len()).await;
    let briefs: Vec<String> = got.iter().map(brief).collect();
    for must in [
        "MODIFIED relist shop/p1",
        "MODIFIED relist shop/p2",
        "DELETED relist shop/p3",
    ] {
        assert!(briefs.contains(&must.to_owned()), "{must} in {briefs:?}");
    }
    // JetStream gets every one of them too (ids are uid:resourceVersion:type, so one it
    // stored before the freeze is the same message, de-duplicated by the stream).
    let ids = |n: &Value| {
        format!(
            "{}:{}:{}",
            n["uid"].as_str().unwrap(),
            n["resourceVersion"].as_str().unwrap(),
            n["type"].as_str().unwrap()
        )
    };
    let want: std::collections::BTreeSet<String> = got.iter().map(ids).collect();
    wait_until_async_ids(&nats.url, &want).await;
    let stored: Vec<Value> = jetstream_messages(&nats.url, "KB_CKPT")
        .await
        .iter()
        .map(|m| m.notification())
        .collect();
    let tombstone = stored
        .iter()
        .find(|n| n["name"] == "p3" && n["type"] == "DELETED")
        .unwrap();
    assert_eq!(tombstone["tombstone"], true);
    let (code, stderr) = second.terminate().await;
    assert_eq!(code, 0, "{stderr}");
}

async fn wait_until_async_ids(url: &str, want: &std::collections::BTreeSet<String>) {
    use kubebridge_testkit::consume::jetstream_messages;
    use kubebridge_testkit::harness::wait_until_async;
    wait_until_async(|| async {
        let got: std::collections::BTreeSet<String> = jetstream_messages(url, "KB_CKPT")
            .await
            .iter()
            .filter_map(|m| m.headers.get("kubebridge-id").cloned())
            .collect();
        want.is_subset(&got)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_with_a_checkpoint_reports_what_changed_since_the_last_run() {
    use kubebridge_testkit::harness::run_to_end;
    let h = two_pods(1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(dir.path());
    args.push("--once".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, first, stderr) = run_to_end(h.watch(&args)).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        first.iter().map(brief).collect::<Vec<_>>(),
        ["ADDED list shop/a", "ADDED list shop/b"]
    );
    let (code, nothing, stderr) = run_to_end(h.watch(&args)).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(nothing.is_empty(), "nothing changed: {nothing:?}");
    h.sim.delete("pods", Some("shop"), "a").unwrap();
    label(&h, "b", "x");
    let (code, diff, stderr) = run_to_end(h.watch(&args)).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        diff.iter().map(brief).collect::<Vec<_>>(),
        ["DELETED relist shop/a", "MODIFIED relist shop/b"]
    );
}

fn signal(running: &Running, name: &str) {
    let pid = running.child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_that_wakes_up_cannot_overwrite_the_new_leaders_checkpoint() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    for i in 0..3 {
        h.create_pod("shop", &format!("p{i}"), json!({}));
    }
    let mut first = spawn_args(&h, &leader("first"));
    first.take(3).await;
    wait_until(|| read_configmap_checkpoint(&h).is_some_and(|i| i.len() == 3)).await;
    let mut second = spawn_args(&h, &leader("second"));
    second.expect_silence(Duration::from_secs(1)).await;

    // The leader freezes (a long GC pause, a stopped VM) with its checkpoint writer
    // mid-interval; the standby takes over and checkpoints a change of its own.
    signal(&first, "STOP");
    label(&h, "p0", "new-leader");
    assert_eq!(brief(&second.next().await), "MODIFIED relist shop/p0");
    let p0 = pods_now(&h)["shop/p0"].clone();
    wait_until(|| read_configmap_checkpoint(&h).is_some_and(|i| i.get("shop/p0") == Some(&p0)))
        .await;

    // It wakes up: it finds it lost the lease and exits 1; whatever write it still
    // attempts is refused, so the new leader's checkpoint stands.
    signal(&first, "CONT");
    let (code, stderr) = first.wait().await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("lost the leader lease"), "{stderr}");
    assert_eq!(
        read_configmap_checkpoint(&h).unwrap().get("shop/p0"),
        Some(&p0)
    );
    label(&h, "p1", "still-leading");
    assert_eq!(brief(&second.next().await), "MODIFIED watch shop/p1");
    let p1 = pods_now(&h)["shop/p1"].clone();
    wait_until(|| read_configmap_checkpoint(&h).is_some_and(|i| i.get("shop/p1") == Some(&p1)))
        .await;
    let (code, stderr) = second.terminate().await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_clusters_identity_checkpoints_are_off_with_one_warning() {
    let h = two_pods(1).await;
    h.sim.faults().forbid("namespaces", "get");
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn(&h, dir.path());
    let got: Vec<String> = run.take(2).await.iter().map(brief).collect();
    assert_eq!(got, ["ADDED list shop/a", "ADDED list shop/b"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (code, stderr) = run.terminate().await;
    assert_eq!(code, 0, "{stderr}");
    assert!(checkpoint_file(dir.path()).is_none(), "nothing written");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cluster's identity"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("namespaces, resourceNames [kube-system]"),
        "{}",
        warnings[0]
    );
}
