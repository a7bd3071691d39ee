//! One notification as one Kafka record: its topic, key, payload and headers.

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use super::{KafkaOptions, KeyMode};
use crate::Notification;
use crate::cloudevents;
use crate::headers::{self, Binding};
use crate::subject::{self, Template};

/// A notification encoded for Kafka: what a record borrows while librdkafka copies it.
pub(super) struct Message {
    topic: String,
    key: Option<String>,
    payload: Vec<u8>,
    /// Taken by the record: librdkafka takes ownership of the headers it accepts, and
    /// hands back the record (headers included) when its queue is full.
    headers: Option<OwnedHeaders>,
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
            headers: Some(headers),
        }
    }

    /// The record to hand to the producer, once: it takes the headers along, and a
    /// send refused for a full queue gives the record back to send again.
    pub fn record(&mut self) -> FutureRecord<'_, str, [u8]> {
        let mut record = FutureRecord::to(&self.topic).payload(self.payload.as_slice());
        if let Some(headers) = self.headers.take() {
            record = record.headers(headers);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventType, Format, Origin, ResourceId};
    use rdkafka::message::Headers;
    use serde_json::value::RawValue;
    use std::sync::Arc;

    fn note() -> Notification {
        Notification {
            event_type: EventType::Modified,
            origin: Origin::Watch,
            time: std::time::SystemTime::UNIX_EPOCH,
            cluster: None,
            resource: Arc::new(ResourceId {
                group: "apps".into(),
                version: "v1".into(),
                resource: "deployments".into(),
                kind: "Deployment".into(),
            }),
            namespace: Some("shop".into()),
            name: "cart".into(),
            uid: "u1".into(),
            resource_version: "5".into(),
            object: Arc::from(RawValue::from_string("{}".into()).expect("valid")),
            old_object: None,
            snapshot: None,
            tombstone: false,
            old_resource_version: None,
            patch: None,
        }
    }

    #[test]
    fn topic_key_payload_and_headers() {
        let topic = Template::parse("k8s.{group}.{resource}", subject::TOPIC_FIELDS).expect("ok");
        let n = note();
        let mut cluster_scoped = note();
        cluster_scoped.namespace = None;
        let m = Message::new(&cluster_scoped, &topic, &KafkaOptions::default());
        assert_eq!(m.key.as_deref(), Some("cart"));
        let keys = [
            (KeyMode::NamespaceName, Some("shop/cart")),
            (KeyMode::Name, Some("cart")),
            (KeyMode::Uid, Some("u1")),
            (KeyMode::None, None),
        ];
        for (key, want) in keys {
            let options = KafkaOptions {
                key,
                ..KafkaOptions::default()
            };
            let m = Message::new(&n, &topic, &options);
            assert_eq!(m.topic, "k8s.apps.deployments");
            assert_eq!(m.key.as_deref(), want);
            assert_eq!(m.payload, n.to_json());
        }
        let options = KafkaOptions {
            format: Format::CloudEventsBinary,
            ..KafkaOptions::default()
        };
        let mut m = Message::new(&n, &topic, &options);
        let record = m.record();
        let headers = record.headers.expect("headers");
        let names: Vec<&str> = headers.iter().map(|h| h.key).collect();
        assert_eq!(
            names,
            [
                "type",
                "origin",
                "resource",
                "kubebridge-id",
                "ce_specversion",
                "ce_id",
                "ce_source",
                "ce_type",
                "ce_subject",
                "ce_time",
                "content-type"
            ]
        );
        assert_eq!(record.key, Some("shop/cart"));
    }
}
