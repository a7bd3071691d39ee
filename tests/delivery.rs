//! End to end: the kubebridge binary streams the simulated cluster into real brokers,
//! which are stopped and restarted under it; what the broker holds afterwards is
//! compared with every change the simulator made.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kubebridge_testkit::brokers::{
    Forwarder, PrivateNats, STARTUP, free_port, tansu_broker, tansu_broker_behind, wait_listening,
};
use kubebridge_testkit::consume::{Message, jetstream_count, jetstream_messages, kafka_messages};
use kubebridge_testkit::harness::{Harness, Running, WAIT, output, wait_until, wait_until_async};
use kubebridge_testkit::http::{get_text as get, sample};
use serde_json::{Value, json};

/// `uid:resourceVersion:TYPE`, the id kubebridge gives the notification of this change.
fn id(object: &Value, event_type: &str) -> String {
    format!(
        "{}:{}:{event_type}",
        object["metadata"]["uid"].as_str().unwrap(),
        object["metadata"]["resourceVersion"].as_str().unwrap()
    )
}

/// A namespace with `pods` pods; returns the ids of their ADDED notifications.
fn seed(h: &Harness, pods: usize) -> BTreeSet<String> {
    h.create_namespace("shop");
    (0..pods)
        .map(|i| {
            id(
                &h.create_pod("shop", &format!("p{i}"), json!({"app": "web"})),
                "ADDED",
            )
        })
        .collect()
}

/// Makes `n` changes to the pods, round robin; returns their ids.
async fn churn(h: &Harness, pods: usize, n: usize, pause: Duration) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for i in 0..n {
        let name = format!("p{}", i % pods);
        let patched = h
            .sim
            .patch(
                "pods",
                Some("shop"),
                &name,
                json!({"metadata": {"annotations": {"step": i.to_string()}}}),
            )
            .unwrap();
        ids.insert(id(&patched, "MODIFIED"));
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    ids
}

fn rss_mib(pid: u32) -> u64 {
    // No reading is a failure, not 0 MiB: a kubebridge that already exited has no VmRSS.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("kubebridge runs");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .expect("VmRSS of a running kubebridge")
}

/// The `kubebridge-id` header of each message, its payload checked as an envelope.
fn ids_of(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            // What kubebridge delivered must be an envelope, whichever broker holds it.
            m.notification();
            m.headers["kubebridge-id"].clone()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_gets_every_change_across_a_broker_restart() {
    let Some(mut nats) = PrivateNats::start().await else {
        return;
    };
    let url = nats.url.clone();

    let h = Harness::empty().await;
    let mut want = seed(&h, 5);
    let sink = nats.jetstream_sink("KB_E2E");
    let kb = Running::spawn(h.watch(&["pods", "-n", "shop", "--sink", &sink]));
    // Changes count from when the watch is up; before that they are initial state.
    wait_until(|| h.sim.requests("watch", "pods") >= 1).await;
    want.extend(churn(&h, 5, 30, Duration::ZERO).await);

    // The broker dies and stays away for 10 s while the cluster keeps changing.
    nats.broker.kill();
    want.extend(churn(&h, 5, 100, Duration::from_millis(100)).await);
    let rss = rss_mib(kb.child.id().unwrap());
    assert!(
        rss < 200,
        "memory stays bounded during the outage: {rss} MiB"
    );
    nats.broker.restart();
    want.extend(churn(&h, 5, 20, Duration::ZERO).await);

    // Everything arrives, each change once (the stream drops replays by Nats-Msg-Id).
    wait_until_async(|| async { jetstream_count(&url, "KB_E2E").await >= want.len() }).await;
    let ids = ids_of(&jetstream_messages(&url, "KB_E2E").await);
    let got: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(got.len(), ids.len(), "no notification stored twice");
    assert_eq!(got, want, "every change, nothing else");
    let (code, stderr) = kb.terminate().await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_keeps_per_object_order_through_a_stopped_broker() {
    let port = free_port();
    let Some(broker) = tansu_broker(port) else {
        return;
    };
    wait_listening(port, STARTUP).await;
    let brokers = format!("127.0.0.1:{port}");

    let h = Harness::empty().await;
    let mut want = seed(&h, 6);
    let sink = format!("kafka://{brokers}/kb.{{resource}}.{{namespace}}");
    let kb = Running::spawn(h.watch(&["pods", "-n", "shop", "--sink", &sink]));
    // Changes count from when the watch is up; before that they are initial state.
    wait_until(|| h.sim.requests("watch", "pods") >= 1).await;
    want.extend(churn(&h, 6, 30, Duration::ZERO).await);
    // Frozen, not killed: tansu keeps topics in memory only, so a restart would lose
    // what it had already acknowledged (a limit of the test broker, not of Kafka).
    broker.signal("STOP");
    want.extend(churn(&h, 6, 100, Duration::from_millis(100)).await);
    broker.signal("CONT");
    want.extend(churn(&h, 6, 20, Duration::ZERO).await);

    // librdkafka notices a frozen connection only when its request times out (30 s),
    // then reconnects and resends: allow for that.
    let messages = kafka_messages(
        &brokers,
        "kb.pods.shop",
        want.len(),
        Duration::from_secs(120),
    )
    .await;
    let got: BTreeSet<String> = ids_of(&messages).into_iter().collect();
    if got != want {
        let (_, stderr) = kb.terminate().await;
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        panic!(
            "{} missing: {missing:?}\n{} unexpected: {extra:?}\nkubebridge stderr:\n{stderr}",
            missing.len(),
            extra.len()
        );
    }
    // Per object: one partition, resourceVersions strictly increasing.
    let mut per_key: BTreeMap<String, Vec<(i32, u64)>> = BTreeMap::new();
    for m in &messages {
        let rv = m.notification()["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        per_key
            .entry(m.key.clone().expect("keyed"))
            .or_default()
            .push((m.partition, rv));
    }
    assert_eq!(per_key.len(), 6);
    for (key, seen) in per_key {
        assert!(key.starts_with("shop/p"), "{key}");
        assert!(
            seen.iter().all(|(p, _)| *p == seen[0].0),
            "{key} stays on one partition"
        );
        assert!(
            seen.windows(2).all(|w| w[0].1 < w[1].1),
            "{key} in order: {seen:?}"
        );
    }
    assert_eq!(messages[0].headers["type"], "ADDED");
    let (code, stderr) = kb.terminate().await;
    assert_eq!(code, 0, "{stderr}");
}

/// Kafka killed (SIGKILL) and started again at the same address with empty storage, the
/// way a rebuilt single-node dev Kafka comes back: delivery resumes by itself.
///
/// What "nothing lost" means when the broker itself lost its data: the changes made
/// before the kill were confirmed by the old broker (the test reads them back first)
/// and died with its memory; no client can see or undo that, so they are not checked.
/// Every change made after the kill (queued in kubebridge or inside librdkafka during
/// the outage, or made after the restart) must reach the new broker at least once
/// within 60 s of its return; duplicates are allowed and printed. The new broker does
/// not know the old producer id, so this also proves the sink replaces its idempotent
/// producer, which the log must say.
///
/// The address is a forwarder's: tansu cannot bind its old port again during TIME_WAIT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_delivers_again_after_the_broker_comes_back_empty() {
    let (port1, port2) = (free_port(), free_port());
    let forwarder = Forwarder::start(port1).await;
    let Some(mut broker) = tansu_broker_behind(port1, forwarder.port) else {
        return;
    };
    wait_listening(port1, STARTUP).await;
    let brokers = format!("127.0.0.1:{}", forwarder.port);
    let topic = "kb.pods.shop";

    let h = Harness::empty().await;
    let mut confirmed = seed(&h, 4);
    let sink = format!("kafka://{brokers}/kb.{{resource}}.{{namespace}}");
    let kb = Running::spawn(h.watch(&["pods", "-n", "shop", "--sink", &sink]));
    wait_until(|| h.sim.requests("watch", "pods") >= 1).await;
    confirmed.extend(churn(&h, 4, 20, Duration::ZERO).await);
    let old = kafka_messages(&brokers, topic, confirmed.len(), Duration::from_secs(60)).await;
    assert!(old.len() >= confirmed.len(), "delivered before the kill");

    broker.kill();
    let mut want = churn(&h, 4, 40, Duration::from_millis(100)).await;
    let _reborn = tansu_broker_behind(port2, forwarder.port).unwrap();
    wait_listening(port2, STARTUP).await;
    forwarder.set_backend(port2);
    let back = std::time::Instant::now();
    want.extend(churn(&h, 4, 20, Duration::ZERO).await);

    let mut ids = Vec::new();
    while back.elapsed() < Duration::from_secs(60) {
        // Until kubebridge delivers, the new broker has no such topic and the reader
        // gives up on it (a panic in its own task): not yet, try again.
        let read = tokio::spawn({
            let (brokers, n) = (brokers.clone(), want.len());
            async move { kafka_messages(&brokers, topic, n, Duration::from_secs(5)).await }
        });
        if let Ok(messages) = read.await {
            ids = ids_of(&messages);
            if want.iter().all(|id| ids.contains(id)) {
                break;
            }
        }
    }
    let got: BTreeSet<String> = ids.iter().cloned().collect();
    let (code, stderr) = kb.terminate().await;
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "{} of {} changes made after the kill missing 60 s after the restart: {missing:?}\nkubebridge stderr:\n{stderr}",
        missing.len(),
        want.len()
    );
    eprintln!(
        "{} messages for {} changes after the kill: {} duplicates, delivered within {:?}",
        ids.len(),
        want.len(),
        ids.len() - got.len(),
        back.elapsed()
    );
    for line in stderr.lines().filter(|l| l.contains("kafka")) {
        eprintln!("kubebridge: {line}");
    }
    assert!(
        stderr.contains("replaced the producer"),
        "the producer replacement is logged: {stderr}"
    );
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_counts_and_names_what_it_drops() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let PrivateNats { broker, url, .. } = &nats;

    let h = Harness::empty().await;
    let mut want = seed(&h, 3);
    let sink = nats.jetstream_sink("KB_DROP");
    let kb = Running::spawn(h.watch(&[
        "pods",
        "-n",
        "shop",
        "--sink",
        &sink,
        "--overflow",
        "drop-oldest",
        "--queue-capacity",
        "5",
    ]));
    wait_until_async(|| async { jetstream_count(url, "KB_DROP").await >= 3 }).await;
    broker.signal("STOP");
    want.extend(churn(&h, 3, 60, Duration::from_millis(5)).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.signal("CONT");
    // Give the sink time to deliver what survived, then stop kubebridge to read its log.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, stderr) = kb.terminate().await;
    assert_eq!(code, 0, "{stderr}");

    let evicted: BTreeSet<String> = stderr
        .lines()
        .filter(|l| l.contains("dropped the oldest notification"))
        .map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("id="))
                .expect("the log names the id")
                .to_owned()
        })
        .collect();
    let stored: BTreeSet<String> = ids_of(&jetstream_messages(url, "KB_DROP").await)
        .into_iter()
        .collect();
    assert!(!evicted.is_empty(), "a queue of 5 overflowed: {stderr}");
    assert!(
        stored.is_disjoint(&evicted),
        "an evicted notification was not delivered"
    );
    let accounted: BTreeSet<String> = stored.union(&evicted).cloned().collect();
    assert_eq!(
        accounted, want,
        "every change was either delivered or logged as dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_delivers_what_is_queued_within_the_grace() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let PrivateNats { broker, url, .. } = &nats;

    let h = Harness::empty().await;
    let mut want = seed(&h, 4);
    let sink = nats.jetstream_sink("KB_GRACE");
    // stdout shows what kubebridge has received; JetStream lags behind a frozen broker.
    let mut kb =
        Running::spawn(h.watch(&["pods", "-n", "shop", "--sink", "stdout", "--sink", &sink]));
    // Changes count from when the watch is up; before that they are initial state.
    wait_until(|| h.sim.requests("watch", "pods") >= 1).await;
    kb.take(4).await;
    broker.signal("STOP");
    want.extend(churn(&h, 4, 40, Duration::ZERO).await);
    kb.take(40).await;
    // Received, not yet delivered: SIGTERM now, then let the broker come back in time.
    let pid = kb.child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.signal("CONT");
    let (code, stderr) = kb.wait().await;
    assert_eq!(code, 0, "{stderr}");
    let stored: BTreeSet<String> = ids_of(&jetstream_messages(url, "KB_GRACE").await)
        .into_iter()
        .collect();
    assert_eq!(stored, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grace_that_runs_out_says_how_much_was_undelivered() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let broker = &nats.broker;

    let h = Harness::empty().await;
    seed(&h, 2);
    let sink = nats.jetstream_sink("KB_LATE");
    let mut kb = Running::spawn(h.watch(&[
        "pods",
        "-n",
        "shop",
        "--sink",
        "stdout",
        "--sink",
        &sink,
        "--shutdown-grace",
        "2s",
    ]));
    kb.take(2).await;
    broker.signal("STOP");
    churn(&h, 2, 10, Duration::ZERO).await;
    kb.take(10).await;
    let (code, stderr) = kb.terminate().await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("shutdown grace of 2s ran out"), "{stderr}");
    assert!(stderr.contains("undelivered"), "{stderr}");
}

/// The last line kubebridge wrote to stderr: its exit message.
fn last_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or_default()
}

/// A Kafka sink URI on a local port where nothing listens: librdkafka (with
/// `message.timeout.ms=0`) queues forever and never reports an error.
fn dead_kafka() -> String {
    format!("kafka://127.0.0.1:{}/kb.dead", free_port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_into_a_full_disk_exits_1_saying_how_much_was_undelivered() {
    let h = Harness::empty().await;
    seed(&h, 40);
    let mut cmd = h.watch(&["pods", "-n", "shop", "--once"]);
    cmd.stdout(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    );
    // Not `output()`, which would pipe stdout again.
    let child = cmd.spawn().unwrap();
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("--once ends")
        .unwrap();
    let (code, stderr) = (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(code, Some(1), "{stderr}");
    let last = last_line(&stderr);
    assert!(
        last.starts_with("kubebridge: 40 notification(s) undelivered: sink stdout refused 40"),
        "{stderr}"
    );
    // Each one was logged as it was dropped.
    let logged = stderr
        .lines()
        .filter(|l| l.contains("dropping a notification the sink refused for good"))
        .count();
    assert_eq!(logged, 40, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_confirms_nothing_makes_readyz_say_which_and_why() {
    let h = Harness::empty().await;
    seed(&h, 3);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let sink = dead_kafka();
    let kb = Running::spawn(h.watch(&[
        "pods",
        "-n",
        "shop",
        "--sink",
        &sink,
        "--metrics-addr",
        &addr,
        "--sink-stall-timeout",
        "2s",
        "--shutdown-grace",
        "1s",
    ]));
    let deadline = tokio::time::Instant::now() + WAIT;
    let body = loop {
        if let Some((503, body)) = get(port, "/readyz").await
            && body.contains("stalled")
        {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never reported the stall: {:?}",
            get(port, "/readyz").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(body.contains("sink kafka: stalled"), "{body}");
    assert!(body.contains("--sink-stall-timeout 2s"), "{body}");
    let age = r#"kubebridge_sink_oldest_unconfirmed_age_seconds{sink="kafka"}"#;
    let first = sample(&get(port, "/metrics").await.unwrap().1, age).unwrap();
    assert!(first > 2.0, "{first}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let metrics = get(port, "/metrics").await.unwrap().1;
    let second = sample(&metrics, age).unwrap();
    assert!(
        second > first,
        "the age keeps rising: {first} then {second}"
    );
    assert_eq!(get(port, "/healthz").await.unwrap().0, 200, "alive");
    // Nothing was delivered: the grace runs out and says how much.
    let (code, stderr) = kb.terminate().await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("sink kafka: stalled"), "logged: {stderr}");
    assert!(
        last_line(&stderr).contains("with 3 notification(s) undelivered"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_gives_up_on_a_sink_that_cannot_deliver() {
    let h = Harness::empty().await;
    seed(&h, 3);
    let sink = dead_kafka();
    let started = std::time::Instant::now();
    let (code, _, stderr) = output(h.watch(&[
        "pods",
        "-n",
        "shop",
        "--once",
        "--sink",
        &sink,
        "--sink-stall-timeout",
        "2s",
    ]))
    .await;
    let took = started.elapsed();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        took < Duration::from_secs(20),
        "ends soon after the 2s stall timeout: {took:?}"
    );
    let last = last_line(&stderr);
    assert!(
        last.starts_with("kubebridge: 3 notification(s) undelivered: sink kafka confirmed nothing"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_bytes_stay_within_the_budget_while_a_sink_is_down() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    let blob = |i: usize| format!("{i:06}{}", "x".repeat(100_000));
    h.sim
        .create(
            "configmaps",
            Some("shop"),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "big", "namespace": "shop"},
                   "data": {"blob": blob(0)}}),
        )
        .unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let sink = dead_kafka();
    let budget: f64 = 1024.0 * 1024.0;
    let kb = Running::spawn(h.watch(&[
        "configmaps",
        "-n",
        "shop",
        "--sink",
        &sink,
        "--metrics-addr",
        &addr,
        "--queue-bytes",
        "1MiB",
        "--shutdown-grace",
        "1s",
    ]));
    wait_until(|| h.sim.requests("watch", "configmaps") >= 1).await;
    // 40 updates of a 100 kB ConfigMap: each queued update pins about 200 kB (object and
    // old object), so a count of 10 000 alone would let all 8 MB queue.
    for i in 1..=40 {
        h.sim
            .patch(
                "configmaps",
                Some("shop"),
                "big",
                json!({"data": {"blob": blob(i)}}),
            )
            .unwrap();
    }
    let bytes = r#"kubebridge_queue_bytes{sink="kafka"}"#;
    let depth = r#"kubebridge_queue_depth{sink="kafka"}"#;
    let mut highest = 0.0f64;
    let deadline = tokio::time::Instant::now() + WAIT;
    // The queue fills to its budget, then the informer waits; it never goes over.
    loop {
        let metrics = get(port, "/metrics")
            .await
            .map(|(_, m)| m)
            .unwrap_or_default();
        if let (Some(b), Some(d)) = (sample(&metrics, bytes), sample(&metrics, depth)) {
            assert!(b <= budget, "queued {b} bytes, over the budget of {budget}");
            assert!(d <= 6.0, "{d} queued: the byte budget binds, not the count");
            assert_eq!(
                sample(&metrics, r#"kubebridge_queue_capacity_bytes{sink="kafka"}"#),
                Some(budget)
            );
            highest = highest.max(b);
            if b > budget / 2.0 {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue never filled: {highest} bytes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..10 {
        let metrics = get(port, "/metrics").await.unwrap().1;
        let b = sample(&metrics, bytes).unwrap();
        assert!(b <= budget, "queued {b} bytes, over the budget of {budget}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, stderr) = kb.terminate().await;
    assert_eq!(code, 1, "the grace ran out with the sink down: {stderr}");
}
