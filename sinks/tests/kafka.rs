//! The Kafka sink against a real Kafka-protocol broker (tansu, from `tests/brokers.sh`),
//! read back with rdkafka's consumer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kubebridge_sinks::{
    EventType, Format, KafkaOptions, KafkaSink, KeyMode, Notification, Sink, SinkError,
    SinkOptions, sink_from_uri,
};
use kubebridge_testkit::brokers::{Broker, Forwarder, broker_env, free_port, wait_listening};
use kubebridge_testkit::consume::{Message, kafka_messages};
use kubebridge_testkit::publish::{interleaved, note, publish_until_done, unique};

/// Reads `want` messages of `topic` within 30 s, or fails the test.
async fn consume(brokers: &str, topic: &str, want: usize) -> Vec<Message> {
    let got = kafka_messages(brokers, topic, want, Duration::from_secs(30)).await;
    assert!(
        got.len() >= want,
        "only {} of {want} messages on {topic} after 30 s",
        got.len()
    );
    got
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("json payload")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_key_headers_and_order_per_object() {
    let Some(brokers) = broker_env("KUBEBRIDGE_TEST_KAFKA_BROKERS") else {
        return;
    };
    let base = unique("kbt-");
    // The topic template exercises {group} (core) and {resource}.
    let uri = format!("kafka://{brokers}/{base}-{{group}}-{{resource}}");
    let topic = format!("{base}-core-configmaps");
    let mut sink = sink_from_uri(&uri, &SinkOptions::default())
        .await
        .expect("sink");
    // 5 objects x 20 changes, interleaved, in two batches; plus one cluster-scoped object.
    let batch = interleaved(5, 20, 100);
    let (first, second) = batch.split_at(37);
    publish_until_done(sink.as_mut(), first, Duration::from_secs(30)).await;
    publish_until_done(sink.as_mut(), second, Duration::from_secs(30)).await;
    let cluster_scoped = note(None, "global", "uid-g", 1, EventType::Added);
    sink.publish(std::slice::from_ref(&cluster_scoped))
        .await
        .expect("publish");
    sink.close().await.expect("close");

    let got = consume(&brokers, &topic, batch.len() + 1).await;
    let by_id: HashMap<String, &Arc<Notification>> = batch
        .iter()
        .chain([&cluster_scoped])
        .map(|n| (n.id(), n))
        .collect();
    let mut partition_of: HashMap<String, i32> = HashMap::new();
    let mut per_key: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
    for m in &got {
        let id = &m.headers["kubebridge-id"];
        let n = by_id
            .get(id)
            .unwrap_or_else(|| panic!("unexpected id {id}"));
        assert_eq!(
            json(&m.payload),
            json(&n.to_json()),
            "payload is the envelope"
        );
        let key = m.key.clone().expect("a key");
        assert_eq!(key, n.key(), "key is namespace/name");
        assert_eq!(m.headers["type"], n.event_type.as_str());
        assert_eq!(m.headers["origin"], "watch");
        assert_eq!(m.headers["resource"], "/v1/configmaps");
        assert!(!m.headers.contains_key("content-type"));
        let p = *partition_of.entry(key.clone()).or_insert(m.partition);
        assert_eq!(p, m.partition, "every change of {key} on one partition");
        let rv: u64 = n.resource_version.parse().expect("rv");
        per_key.entry(key).or_default().push((m.offset, rv));
    }
    assert_eq!(got.len(), by_id.len(), "each notification once");
    assert_eq!(
        got.iter()
            .map(|m| m.headers["kubebridge-id"].clone())
            .collect::<HashSet<_>>()
            .len(),
        by_id.len()
    );
    assert_eq!(by_id[&cluster_scoped.id()].key(), "global");
    for (key, mut seen) in per_key {
        seen.sort();
        let rvs: Vec<u64> = seen.iter().map(|(_, rv)| *rv).collect();
        let mut sorted = rvs.clone();
        sorted.sort();
        assert_eq!(rvs, sorted, "changes of {key} in publish order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_structured_and_binary() {
    let Some(brokers) = broker_env("KUBEBRIDGE_TEST_KAFKA_BROKERS") else {
        return;
    };
    let n = note(Some("shop"), "cart", "uid-ce", 42, EventType::Deleted);
    let envelope = json(&n.to_json());

    let topic = unique("kbt-ce-s-");
    let options = SinkOptions {
        format: Format::CloudEvents,
        cloudevents_source: Some("//kubebridge/prod".into()),
        ..SinkOptions::default()
    };
    let mut sink = sink_from_uri(&format!("kafka://{brokers}/{topic}"), &options)
        .await
        .expect("sink");
    sink.publish(std::slice::from_ref(&n))
        .await
        .expect("publish");
    let got = consume(&brokers, &topic, 1).await;
    let event = json(&got[0].payload);
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "io.kubebridge.configmaps.core.deleted");
    assert_eq!(event["source"], "//kubebridge/prod");
    assert_eq!(event["id"], "uid-ce:42:DELETED");
    assert_eq!(event["subject"], "shop/cart");
    assert_eq!(event["time"], "2023-11-14T22:13:20.042Z");
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["data"], envelope);
    assert_eq!(
        got[0].headers["content-type"],
        "application/cloudevents+json"
    );

    let topic = unique("kbt-ce-b-");
    let options = SinkOptions {
        format: Format::CloudEventsBinary,
        ..SinkOptions::default()
    };
    let mut sink = sink_from_uri(&format!("kafka://{brokers}/{topic}"), &options)
        .await
        .expect("sink");
    sink.publish(std::slice::from_ref(&n))
        .await
        .expect("publish");
    let got = consume(&brokers, &topic, 1).await;
    let h = &got[0].headers;
    assert_eq!(
        json(&got[0].payload),
        envelope,
        "binary mode: body is the envelope"
    );
    assert_eq!(h["ce_specversion"], "1.0");
    assert_eq!(h["ce_type"], "io.kubebridge.configmaps.core.deleted");
    assert_eq!(
        h["ce_source"], "test-cluster",
        "source defaults to the cluster"
    );
    assert_eq!(h["ce_id"], "uid-ce:42:DELETED");
    assert_eq!(h["ce_subject"], "shop/cart");
    assert_eq!(h["ce_time"], "2023-11-14T22:13:20.042Z");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["kubebridge-id"], "uid-ce:42:DELETED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_modes() {
    let Some(brokers) = broker_env("KUBEBRIDGE_TEST_KAFKA_BROKERS") else {
        return;
    };
    let n = note(Some("ns"), "name", "the-uid", 1, EventType::Added);
    for (mode, want) in [
        (KeyMode::Uid, Some("the-uid")),
        (KeyMode::Name, Some("name")),
        (KeyMode::None, None),
    ] {
        let topic = unique("kbt-key-");
        let options = KafkaOptions {
            key: mode,
            ..KafkaOptions::default()
        };
        let mut sink =
            KafkaSink::new(&format!("kafka://{brokers}/{topic}"), options).expect("sink");
        sink.publish(std::slice::from_ref(&n))
            .await
            .expect("publish");
        let got = consume(&brokers, &topic, 1).await;
        assert_eq!(got[0].key.as_deref(), want, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_is_permanent_and_counts_what_went_before() {
    let Some(brokers) = broker_env("KUBEBRIDGE_TEST_KAFKA_BROKERS") else {
        return;
    };
    let topic = unique("kbt-big-");
    let options = KafkaOptions {
        properties: vec![("message.max.bytes".into(), "100000".into())],
        ..KafkaOptions::default()
    };
    let mut sink = KafkaSink::new(&format!("kafka://{brokers}/{topic}"), options).expect("sink");
    let small = note(Some("ns"), "small", "u-s", 1, EventType::Added);
    let mut big = (*note(Some("ns"), "big", "u-b", 2, EventType::Added)).clone();
    let padding = "x".repeat(200_000);
    big.object = Arc::from(
        serde_json::value::RawValue::from_string(format!(r#"{{"pad":"{padding}"}}"#))
            .expect("json"),
    );
    let batch = [small.clone(), Arc::new(big), small];
    let err = sink.publish(&batch).await.expect_err("too large");
    assert_eq!(err.delivered, 1, "{err}");
    assert!(
        matches!(err.error, SinkError::Permanent { .. }),
        "too large is permanent: {err}"
    );
}

fn tansu_args(port: u16) -> Vec<String> {
    let url = format!("tcp://127.0.0.1:{port}");
    vec![
        "broker".into(),
        "--listener-url".into(),
        url.clone(),
        "--advertised-listener-url".into(),
        url,
        "--storage-engine".into(),
        "memory://tansu/".into(),
    ]
}

/// A broker that stops answering (SIGSTOP) and comes back (SIGCONT) keeps its data, so
/// every confirmed id must be readable afterwards: publish blocks or fails
/// retryably meanwhile, and nothing confirmed is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_paused_mid_stream_loses_nothing_confirmed() {
    let Some(_) = broker_env("KUBEBRIDGE_TEST_KAFKA_BROKERS") else {
        return;
    };
    let Some(tansu) = broker_env("KUBEBRIDGE_TEST_TANSU") else {
        return;
    };
    let port = free_port();
    let broker = Broker::start(&PathBuf::from(tansu), &tansu_args(port));
    wait_listening(port, Duration::from_secs(20)).await;
    let brokers = format!("127.0.0.1:{port}");
    let topic = unique("kbt-pause-");
    let mut sink = KafkaSink::new(
        &format!("kafka://{brokers}/{topic}"),
        KafkaOptions::default(),
    )
    .expect("sink");

    let batch = interleaved(4, 50, 1);
    publish_until_done(&mut sink, &batch[..100], Duration::from_secs(30)).await;
    broker.signal("STOP");
    let rest = batch[100..].to_vec();
    let publishing = tokio::spawn(async move {
        let errors = publish_until_done(&mut sink, &rest, Duration::from_secs(90)).await;
        (sink, errors)
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!publishing.is_finished(), "nothing confirmed while paused");
    broker.signal("CONT");
    let (_sink, errors) = publishing.await.expect("task");
    eprintln!("errors while paused: {errors:?}");

    let got = consume(&brokers, &topic, batch.len()).await;
    let ids: HashSet<String> = got
        .iter()
        .map(|m| m.headers["kubebridge-id"].clone())
        .collect();
    for n in &batch {
        assert!(ids.contains(&n.id()), "confirmed {} was lost", n.id());
    }
}

/// Creates `topic` with tansu's own client, talking to `port` directly (a Kafka
/// client would follow the advertised address, which may not lead there yet).
fn create_topic(tansu: &std::path::Path, port: u16, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let status = std::process::Command::new(tansu)
            .args(["topic", "create", topic, "--partitions", "4", "--broker"])
            .arg(format!("tcp://127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if status.is_ok_and(|s| s.success()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("cannot create {topic} on 127.0.0.1:{port}");
}

fn tansu_behind(port: u16, advertised: u16) -> Vec<String> {
    let mut args = tansu_args(port);
    args[4] = format!("tcp://127.0.0.1:{advertised}");
    args
}

/// A broker killed (SIGKILL) and started again at the same address: tansu's memory
/// storage starts empty, so only what was confirmed after the restart can be checked;
/// publish must come back by itself, without a new sink.
///
/// Idempotence is off here because of a tansu limitation (see below).
///
/// The address is a forwarder's, because tansu cannot bind its old port again until
/// the kernel's TIME_WAIT (60 s) has passed: it does not set SO_REUSEADDR. The new
/// broker listens on a new port and the forwarder sends new connections there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarted_mid_stream_publish_recovers() {
    let Some(_) = broker_env("KUBEBRIDGE_TEST_KAFKA_BROKERS") else {
        return;
    };
    let Some(tansu) = broker_env("KUBEBRIDGE_TEST_TANSU") else {
        return;
    };
    let tansu = PathBuf::from(tansu);
    let (port1, port2) = (free_port(), free_port());
    let forwarder = Forwarder::start(port1).await;
    let mut broker = Broker::start(&tansu, &tansu_behind(port1, forwarder.port));
    wait_listening(port1, Duration::from_secs(20)).await;
    let brokers = format!("127.0.0.1:{}", forwarder.port);
    let topic = unique("kbt-restart-");
    let mut sink = KafkaSink::new(
        &format!("kafka://{brokers}/{topic}"),
        KafkaOptions {
            properties: vec![
                // Reconnect within a second of the broker's return, to keep the test short.
                ("reconnect.backoff.max.ms".into(), "1000".into()),
                // tansu's memory storage forgets producer ids on restart and then
                // answers UNKNOWN_PRODUCER_ID to every produce, even at sequence 0
                // after librdkafka's epoch bump, so an idempotent producer would retry
                // forever. Kafka keeps producer state across restarts.
                ("enable.idempotence".into(), "false".into()),
            ],
            ..KafkaOptions::default()
        },
    )
    .expect("sink");
    let batch = interleaved(4, 25, 1);
    publish_until_done(&mut sink, &batch[..50], Duration::from_secs(30)).await;
    broker.kill();
    let rest = batch[50..].to_vec();
    let publishing = tokio::spawn(async move {
        let errors = publish_until_done(&mut sink, &rest, Duration::from_secs(90)).await;
        (sink, errors)
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!publishing.is_finished(), "nothing confirmed while down");
    let _replacement = Broker::start(&tansu, &tansu_behind(port2, forwarder.port));
    wait_listening(port2, Duration::from_secs(20)).await;
    // tansu 0.6 acknowledges produce requests for a topic it does not have (its
    // memory storage starts empty) and drops them; Kafka would answer
    // UNKNOWN_TOPIC_OR_PARTITION. Create the topic first, as it would exist on Kafka.
    create_topic(&tansu, port2, &topic);
    forwarder.set_backend(port2);
    let (_sink, errors) = publishing.await.expect("task");
    eprintln!("errors across the restart: {errors:?}");
    let got = consume(&brokers, &topic, batch.len() - 50).await;
    let ids: HashSet<String> = got
        .iter()
        .map(|m| m.headers["kubebridge-id"].clone())
        .collect();
    for n in &batch[50..] {
        assert!(ids.contains(&n.id()), "confirmed {} was lost", n.id());
    }
}

/// A broker killed (SIGKILL) and started again at the same address with empty storage,
/// the way a rebuilt single-node dev Kafka comes back, under the sink's defaults
/// (idempotent producer, `message.timeout.ms=0`). The new broker knows neither the
/// topic nor the producer id, so librdkafka's idempotent producer cannot go on; the
/// sink must notice, build a new producer and re-send what was not confirmed, without
/// a new sink and within 60 s of the broker's return.
///
/// What "nothing lost" means here: what the old broker confirmed before the kill died
/// with its memory. That is the broker's loss (one node, no disk), which no client can
/// see or undo, so it is not checked. Everything else must reach the new broker at
/// least once: every notification not yet confirmed when the broker died (in flight,
/// queued inside librdkafka, or handed to the sink during the outage) and every one
/// published after the restart. Duplicates are allowed (a re-sent message may have
/// been written once already) and are counted and printed.
///
/// The address is a forwarder's, as in `broker_restarted_mid_stream_publish_recovers`
/// (tansu cannot bind its old port during TIME_WAIT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarted_empty_idempotent_producer_recovers() {
    let Some(_) = broker_env("KUBEBRIDGE_TEST_KAFKA_BROKERS") else {
        return;
    };
    let Some(tansu) = broker_env("KUBEBRIDGE_TEST_TANSU") else {
        return;
    };
    let tansu = PathBuf::from(tansu);
    let (port1, port2) = (free_port(), free_port());
    let forwarder = Forwarder::start(port1).await;
    let mut broker = Broker::start(&tansu, &tansu_behind(port1, forwarder.port));
    wait_listening(port1, Duration::from_secs(20)).await;
    let brokers = format!("127.0.0.1:{}", forwarder.port);
    let topic = unique("kbt-reborn-");
    let mut sink = KafkaSink::new(
        &format!("kafka://{brokers}/{topic}"),
        KafkaOptions {
            // Reconnect within a second of the broker's return, to keep the test short.
            properties: vec![("reconnect.backoff.max.ms".into(), "1000".into())],
            ..KafkaOptions::default()
        },
    )
    .expect("sink");
    let batch = interleaved(4, 50, 1);
    let (before, during) = batch[..150].split_at(50);
    let after = &batch[150..];
    publish_until_done(&mut sink, before, Duration::from_secs(30)).await;

    broker.kill();
    let during = during.to_vec();
    let publishing = tokio::spawn(async move {
        let errors = publish_until_done(&mut sink, &during, Duration::from_secs(90)).await;
        (sink, errors)
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!publishing.is_finished(), "nothing confirmed while down");
    let _replacement = Broker::start(&tansu, &tansu_behind(port2, forwarder.port));
    wait_listening(port2, Duration::from_secs(20)).await;
    forwarder.set_backend(port2);
    let back = Instant::now();

    let (mut sink, mut errors) = publishing.await.expect("task");
    errors.extend(publish_until_done(&mut sink, after, Duration::from_secs(60)).await);
    let took = back.elapsed();
    eprintln!("delivered {took:?} after the restart; errors: {errors:#?}");
    assert!(took < Duration::from_secs(60), "recovery took {took:?}");

    let want: HashSet<String> = batch[50..].iter().map(|n| n.id()).collect();
    let got = consume(&brokers, &topic, want.len()).await;
    let ids: Vec<String> = got
        .iter()
        .map(|m| m.headers["kubebridge-id"].clone())
        .collect();
    let distinct: HashSet<&String> = ids.iter().collect();
    let missing: Vec<&String> = want.iter().filter(|id| !distinct.contains(id)).collect();
    assert!(missing.is_empty(), "lost across the restart: {missing:?}");
    eprintln!(
        "{} messages for {} notifications: {} duplicates",
        ids.len(),
        want.len(),
        ids.len() - distinct.len()
    );
}
