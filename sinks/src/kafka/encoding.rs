//! One notification as one Kafka record: its topic, key, payload and headers.

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use super::{KafkaOptions, KeyMode};
use crate::Notification;
use crate::cloudevents;
use crate::headers::{self, Binding};
use crate::subject::{self, Template};

/// A notification encoded for Kafka, owned, so a record can be made from it again when
/// librdkafka's queue is full.
pub(super) struct Message {
    topic: String,
    key: Option<String>,
    payload: Vec<u8>,
    headers: OwnedHeaders,
}

impl Message {
    /// Encodes `n` for the topic template `topic` as `options` say.
    pub fn new(n: &Notification, topic: &Template, options: &KafkaOptions) -> Message {
        let encoded = cloudevents::encode(n, options.format, options.cloudevents_source.as_deref());
        let list = headers::headers(n, &encoded, options.format, Binding::Kafka);
        let mut headers = OwnedHeaders::new_with_capacity(list.len());
        for (key, value) in &list {
            headers = headers.insert(Header {
                key: key.as_ref(),
                value: Some(value.as_ref()),
            });
        }
        Message {
            topic: topic.render(n, subject::kafka_topic_part),
            key: key_of(n, options.key),
            payload: encoded.body,
            headers,
        }
    }

    /// A record to hand to the producer.
    pub fn record(&self) -> FutureRecord<'_, str, [u8]> {
        let mut record = FutureRecord::to(&self.topic)
            .payload(self.payload.as_slice())
            .headers(self.headers.clone());
        if let Some(key) = &self.key {
            record = record.key(key.as_str());
        }
        record
    }
}

/// The message key `mode` asks for.
fn key_of(n: &Notification, mode: KeyMode) -> Option<String> {
    match mode {
        KeyMode::NamespaceName => Some(n.key()),
        KeyMode::Name => Some(n.name.clone()),
        KeyMode::Uid => Some(n.uid.clone()),
        KeyMode::None => None,
    }
}
