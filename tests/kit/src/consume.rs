//! Reading messages back from the brokers: every message of a Kafka topic or a
//! JetStream stream, owned, for the caller to assert on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::envelope::assert_envelope;
use crate::publish::unique;

/// One message read back from a broker.
#[derive(Debug)]
pub struct Message {
    /// The Kafka partition; 0 on JetStream.
    pub partition: i32,
    /// The Kafka offset, or the JetStream stream sequence.
    pub offset: i64,
    /// The Kafka key; `None` on JetStream.
    pub key: Option<String>,
    /// The value as sent.
    pub payload: Vec<u8>,
    /// Headers by name (the first value of a repeated one).
    pub headers: HashMap<String, String>,
}

impl Message {
    /// The payload as JSON, whatever its format.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| {
            panic!(
                "payload is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.payload)
            )
        })
    }

    /// The payload as a notification, checked against the envelope schema.
    pub fn notification(&self) -> Value {
        let n = self.json();
        assert_envelope(&n);
        n
    }
}

/// Reads `topic` from the beginning of every partition, assigned explicitly (a group
/// join on tansu waits half the session timeout), until `want` messages arrived or
/// `limit` passed; returns what arrived, for the caller to assert on.
pub async fn kafka_messages(
    brokers: &str,
    topic: &str,
    want: usize,
    limit: Duration,
) -> Vec<Message> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::{Headers, Message as _};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("kbtest-"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let partitions = kafka_partitions(&consumer, topic).await;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(m) = tokio::time::timeout(left, consumer.recv()).await else {
            break;
        };
        let m = m.expect("consume");
        let mut headers = HashMap::new();
        if let Some(h) = m.headers() {
            for header in h.iter() {
                let value = header
                    .value
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                headers.insert(header.key.to_string(), value.unwrap_or_default());
            }
        }
        got.push(Message {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    got
}

/// How many partitions `topic` has, waiting up to 10 s: a broker that just started may
/// not list them yet.
async fn kafka_partitions(consumer: &rdkafka::consumer::StreamConsumer, topic: &str) -> i32 {
    use rdkafka::consumer::Consumer;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let found = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        if found > 0 {
            return i32::try_from(found).expect("partition count fits i32");
        }
        assert!(Instant::now() < deadline, "topic {topic} has no partitions");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every message of the JetStream stream `stream` on the server at `url`, in stream
/// order.
pub async fn jetstream_messages(url: &str, stream: &str) -> Vec<Message> {
    let js = async_nats::jetstream::new(async_nats::connect(url).await.expect("connect to nats"));
    let mut s = js.get_stream(stream).await.expect("the stream exists");
    let count = s.info().await.expect("stream info").state.messages;
    let mut out = Vec::new();
    for seq in 1..=count {
        let m = s.get_raw_message(seq).await.expect("message");
        let headers = m
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.first().map(|v| v.as_str().to_owned()).unwrap_or_default(),
                )
            })
            .collect();
        out.push(Message {
            partition: 0,
            offset: i64::try_from(seq).expect("sequence fits i64"),
            key: None,
            payload: m.payload.to_vec(),
            headers,
        });
    }
    out
}

/// How many messages the JetStream stream `stream` holds; 0 while the server or the
/// stream is not there yet.
pub async fn jetstream_count(url: &str, stream: &str) -> usize {
    let Ok(client) = async_nats::connect(url).await else {
        return 0;
    };
    let js = async_nats::jetstream::new(client);
    match js.get_stream(stream).await {
        Ok(mut s) => s.info().await.map_or(0, |i| {
            usize::try_from(i.state.messages).unwrap_or(usize::MAX)
        }),
        Err(_) => 0,
    }
}
