//! The NATS and JetStream sinks against a real nats-server (from `tests/brokers.sh`),
//! read back with async-nats.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use futures::StreamExt;
use kubebridge_sinks::{
    EventType, Format, JetStreamSink, NatsOptions, NatsSink, Notification, Sink, SinkOptions,
    sink_from_uri,
};
use kubebridge_testkit::brokers::{Broker, broker_env, free_port, wait_listening};
use kubebridge_testkit::publish::{interleaved, note, publish_until_done, unique};

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("json payload")
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .map(|v| v.as_str())
        .unwrap_or_else(|| panic!("no header {name}"))
}

/// Receives `want` messages from `sub` within 10 s.
async fn receive(sub: &mut async_nats::Subscriber, want: usize) -> Vec<async_nats::Message> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, sub.next()).await {
            Ok(Some(m)) => got.push(m),
            _ => panic!("only {} of {want} messages after 10 s", got.len()),
        }
    }
    got
}

#[tokio::test]
async fn core_subjects_payload_and_headers() {
    let Some(url) = broker_env("KUBEBRIDGE_TEST_NATS_URL") else {
        return;
    };
    let prefix = unique("kbt");
    let reader = async_nats::connect(&url).await.expect("connect");
    let mut sub = reader.subscribe(format!("{prefix}.>")).await.expect("sub");
    reader.flush().await.expect("flush");

    let mut sink = sink_from_uri(&format!("{url}/{prefix}"), &SinkOptions::default())
        .await
        .expect("sink");
    // Tokens that need sanitising: a dotted group and a name with a space and a '>'.
    let mut odd = (*note(Some("ns"), "a b>c", "uid-odd", 7, EventType::Added)).clone();
    odd.resource = Arc::new(kubebridge_sinks::ResourceId {
        group: "apps.example.io".into(),
        version: "v1".into(),
        resource: "widgets".into(),
        kind: "Widget".into(),
    });
    let batch = vec![
        note(Some("ns"), "cm", "uid-1", 1, EventType::Added),
        note(None, "global", "uid-2", 2, EventType::Modified),
        Arc::new(odd),
    ];
    sink.publish(&batch).await.expect("publish");
    let got = receive(&mut sub, 3).await;
    let subjects: Vec<&str> = got.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            format!("{prefix}.core.v1.configmaps.ns.cm"),
            format!("{prefix}.core.v1.configmaps._.global"),
            format!("{prefix}.apps_example_io.v1.widgets.ns.a_b_c"),
        ]
    );
    for (m, n) in got.iter().zip(&batch) {
        assert_eq!(json(&m.payload), json(&n.to_json()));
        let h = m.headers.as_ref().expect("headers");
        assert_eq!(header(h, "kubebridge-id"), n.id());
        assert_eq!(header(h, "type"), n.event_type.as_str());
        assert_eq!(header(h, "origin"), "watch");
    }
    assert_eq!(
        header(got[2].headers.as_ref().expect("headers"), "resource"),
        "apps.example.io/v1/widgets"
    );
}

#[tokio::test]
async fn core_subject_template_and_cloudevents_binary() {
    let Some(url) = broker_env("KUBEBRIDGE_TEST_NATS_URL") else {
        return;
    };
    let prefix = unique("kbt");
    let reader = async_nats::connect(&url).await.expect("connect");
    let mut sub = reader.subscribe(format!("{prefix}.>")).await.expect("sub");
    reader.flush().await.expect("flush");
    let options = SinkOptions {
        subject_template: Some("{kind}.{namespace}.{name}".into()),
        format: Format::CloudEventsBinary,
        cloudevents_source: Some("//cluster/a".into()),
        ..SinkOptions::default()
    };
    let mut sink = sink_from_uri(&format!("{url}/{prefix}"), &options)
        .await
        .expect("sink");
    let n = note(Some("shop"), "cart", "uid-ce", 42, EventType::Sync);
    sink.publish(std::slice::from_ref(&n))
        .await
        .expect("publish");
    let got = receive(&mut sub, 1).await;
    assert_eq!(
        got[0].subject.as_str(),
        format!("{prefix}.ConfigMap.shop.cart")
    );
    assert_eq!(json(&got[0].payload), json(&n.to_json()));
    let h = got[0].headers.as_ref().expect("headers");
    assert_eq!(header(h, "ce-specversion"), "1.0");
    assert_eq!(header(h, "ce-type"), "io.kubebridge.configmaps.core.sync");
    assert_eq!(header(h, "ce-source"), "//cluster/a");
    assert_eq!(header(h, "ce-id"), "uid-ce:42:SYNC");
    assert_eq!(header(h, "ce-subject"), "shop/cart");
    assert_eq!(header(h, "ce-time"), "2023-11-14T22:13:20.042Z");
    assert_eq!(header(h, "content-type"), "application/json");
}

/// The stream's stored messages, in order.
async fn stored(url: &str, stream: &str) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let js = async_nats::jetstream::new(async_nats::connect(url).await.expect("connect"));
    let mut s = js.get_stream(stream).await.expect("stream");
    let count = s.info().await.expect("info").state.messages;
    let mut out = Vec::new();
    for seq in 1..=count {
        out.push(s.get_raw_message(seq).await.expect("message"));
    }
    out
}

#[tokio::test]
async fn jetstream_creates_the_stream_and_drops_duplicates() {
    let Some(url) = broker_env("KUBEBRIDGE_TEST_NATS_URL") else {
        return;
    };
    let prefix = unique("kbt");
    let stream = unique("KBT");
    let js_url = format!(
        "{}/{prefix}?stream={stream}",
        url.replacen("nats://", "jetstream://", 1)
    );
    let mut sink = JetStreamSink::new(&js_url, NatsOptions::default())
        .await
        .expect("sink");
    let batch = interleaved(3, 40, 1);
    sink.publish(&batch).await.expect("publish");
    // The same notifications again, as a retry after a lost ack would send them.
    sink.publish(&batch[..10]).await.expect("publish again");
    sink.publish(&batch[100..]).await.expect("publish again");

    let msgs = stored(&url, &stream).await;
    assert_eq!(msgs.len(), batch.len(), "duplicates dropped by Nats-Msg-Id");
    for (m, n) in msgs.iter().zip(&batch) {
        assert_eq!(header(&m.headers, "Nats-Msg-Id"), n.id());
        assert_eq!(header(&m.headers, "kubebridge-id"), n.id());
        assert_eq!(
            m.subject.as_str(),
            format!("{prefix}.core.v1.configmaps.ns.{}", n.name)
        );
        assert_eq!(json(&m.payload), json(&n.to_json()));
    }

    let js = async_nats::jetstream::new(async_nats::connect(&url).await.expect("connect"));
    let mut s = js.get_stream(&stream).await.expect("stream");
    let info = s.info().await.expect("info");
    assert_eq!(info.config.subjects, [format!("{prefix}.>")]);
}

#[tokio::test]
async fn jetstream_cloudevents_structured() {
    let Some(url) = broker_env("KUBEBRIDGE_TEST_NATS_URL") else {
        return;
    };
    let prefix = unique("kbt");
    let stream = unique("KBT");
    let js_url = format!(
        "{}/{prefix}?stream={stream}",
        url.replacen("nats://", "jetstream://", 1)
    );
    let options = SinkOptions {
        format: Format::CloudEvents,
        ..SinkOptions::default()
    };
    let mut sink = sink_from_uri(&js_url, &options).await.expect("sink");
    assert_eq!(sink.kind(), "jetstream");
    let n = note(None, "node-1", "uid-n", 9, EventType::Added);
    sink.publish(std::slice::from_ref(&n))
        .await
        .expect("publish");
    let msgs = stored(&url, &stream).await;
    let event = json(&msgs[0].payload);
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "io.kubebridge.configmaps.core.added");
    assert_eq!(event["source"], "test-cluster");
    assert_eq!(event["id"], "uid-n:9:ADDED");
    assert_eq!(event["subject"], "node-1");
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["data"], json(&n.to_json()));
    assert_eq!(
        header(&msgs[0].headers, "content-type"),
        "application/cloudevents+json"
    );
}

fn nats_args(port: u16, store: &std::path::Path) -> Vec<String> {
    vec![
        "-a".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-js".into(),
        "-sd".into(),
        store.display().to_string(),
    ]
}

/// A private nats-server killed (SIGKILL) mid-stream and restarted on the same port and
/// store: publish fails retryably or waits, the retries succeed, and every confirmed
/// id is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_server_restarted_mid_stream_loses_nothing_confirmed() {
    let Some(_) = broker_env("KUBEBRIDGE_TEST_NATS_URL") else {
        return;
    };
    let Some(server) = broker_env("KUBEBRIDGE_TEST_NATS_SERVER") else {
        return;
    };
    let store = std::env::temp_dir().join(unique("kbt-js-"));
    let port = free_port();
    let mut broker = Broker::start(&PathBuf::from(server), &nats_args(port, &store));
    wait_listening(port, Duration::from_secs(20)).await;
    let url = format!("nats://127.0.0.1:{port}");
    let stream = "KBT_RESTART";
    let options = NatsOptions {
        timeout: Duration::from_secs(2),
        ..NatsOptions::default()
    };
    let mut sink = JetStreamSink::new(
        &format!("jetstream://127.0.0.1:{port}/kbt?stream={stream}"),
        options,
    )
    .await
    .expect("sink");

    let batch: Vec<Arc<Notification>> = interleaved(5, 60, 1);
    publish_until_done(&mut sink, &batch[..100], Duration::from_secs(30)).await;
    broker.kill();
    let rest = batch[100..].to_vec();
    let publishing = tokio::spawn(async move {
        let errors = publish_until_done(&mut sink, &rest, Duration::from_secs(60)).await;
        (sink, errors)
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.restart();
    let (_sink, errors) = publishing.await.expect("task");
    assert!(!errors.is_empty(), "a publish while down fails retryably");
    eprintln!("{} retryable errors, first: {}", errors.len(), errors[0]);

    let msgs = stored(&url, stream).await;
    let ids: Vec<String> = msgs
        .iter()
        .map(|m| header(&m.headers, "kubebridge-id").to_string())
        .collect();
    let unique_ids: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique_ids.len(), ids.len(), "no id stored twice");
    for n in &batch {
        assert!(
            unique_ids.contains(&n.id()),
            "confirmed {} was lost",
            n.id()
        );
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&store);
}

/// Core NATS with the server gone: the flush times out and the batch fails retryably;
/// once the server is back the same sink delivers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_server_down_is_retryable_and_recovers() {
    let Some(_) = broker_env("KUBEBRIDGE_TEST_NATS_URL") else {
        return;
    };
    let Some(server) = broker_env("KUBEBRIDGE_TEST_NATS_SERVER") else {
        return;
    };
    let store = std::env::temp_dir().join(unique("kbt-core-"));
    let port = free_port();
    let mut broker = Broker::start(&PathBuf::from(server), &nats_args(port, &store));
    wait_listening(port, Duration::from_secs(20)).await;
    let options = NatsOptions {
        timeout: Duration::from_secs(1),
        ..NatsOptions::default()
    };
    let mut sink = NatsSink::new(&format!("nats://127.0.0.1:{port}/kbt"), options)
        .await
        .expect("sink");
    let batch = interleaved(2, 5, 1);
    publish_until_done(&mut sink, &batch, Duration::from_secs(10)).await;
    broker.kill();
    let err = tokio::time::timeout(Duration::from_secs(10), sink.publish(&batch))
        .await
        .expect("publish returns within its timeout")
        .expect_err("server down");
    assert!(err.error.is_retryable(), "{err}");
    assert_eq!(err.delivered, 0);
    broker.restart();
    wait_listening(port, Duration::from_secs(20)).await;
    let reader = async_nats::connect(format!("nats://127.0.0.1:{port}"))
        .await
        .expect("connect");
    let mut sub = reader.subscribe("kbt.>").await.expect("sub");
    reader.flush().await.expect("flush");
    publish_until_done(&mut sink, &batch, Duration::from_secs(30)).await;
    // What was buffered while down may arrive too (at least once): count ids.
    let got = receive(&mut sub, batch.len()).await;
    assert!(got.iter().all(|m| m.headers.is_some()));
    drop(broker);
    let _ = std::fs::remove_dir_all(&store);
}

/// Credentials in the URI: user and password, and a token, against servers that
/// require them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_uri() {
    let Some(_) = broker_env("KUBEBRIDGE_TEST_NATS_URL") else {
        return;
    };
    let Some(server) = broker_env("KUBEBRIDGE_TEST_NATS_SERVER") else {
        return;
    };
    let server = PathBuf::from(server);
    for (auth, uri_auth) in [
        (
            vec!["--user", "kb", "--pass", "p@ss:word"],
            "kb:p%40ss%3Aword@",
        ),
        (vec!["--auth", "s3cr3t-token"], "s3cr3t-token@"),
    ] {
        let port = free_port();
        let mut args: Vec<String> = vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ];
        args.extend(auth.iter().map(|s| s.to_string()));
        let _broker = Broker::start(&server, &args);
        wait_listening(port, Duration::from_secs(20)).await;
        let options = NatsOptions {
            timeout: Duration::from_secs(5),
            ..NatsOptions::default()
        };
        let uri = format!("nats://{uri_auth}127.0.0.1:{port}/kbt");
        let mut sink = NatsSink::new(&uri, options).await.expect("sink");
        let batch = interleaved(1, 3, 1);
        publish_until_done(&mut sink, &batch, Duration::from_secs(20)).await;
    }
}

/// Runs openssl(1) with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?} failed");
}

/// TLS with a CA file: a server certificate for 127.0.0.1 signed by a CA made here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_ca_file() {
    let Some(_) = broker_env("KUBEBRIDGE_TEST_NATS_URL") else {
        return;
    };
    let Some(server) = broker_env("KUBEBRIDGE_TEST_NATS_SERVER") else {
        return;
    };
    let dir = std::env::temp_dir().join(unique("kbt-tls-"));
    std::fs::create_dir_all(&dir).expect("dir");
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=kubebridge test CA",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ],
    );
    let port = free_port();
    let args: Vec<String> = vec![
        "-a".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "--tls".into(),
        "--tlscert".into(),
        dir.join("server.pem").display().to_string(),
        "--tlskey".into(),
        dir.join("server.key").display().to_string(),
    ];
    let _broker = Broker::start(&PathBuf::from(server), &args);
    wait_listening(port, Duration::from_secs(20)).await;
    let options = SinkOptions {
        nats_ca: Some(dir.join("ca.pem")),
        nats_timeout: Duration::from_secs(5),
        ..SinkOptions::default()
    };
    let mut sink = sink_from_uri(&format!("nats://127.0.0.1:{port}/kbt"), &options)
        .await
        .expect("sink");
    let batch = interleaved(1, 3, 1);
    publish_until_done(sink.as_mut(), &batch, Duration::from_secs(20)).await;
    let _ = std::fs::remove_dir_all(&dir);
}
