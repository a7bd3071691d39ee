//! [`SinkOptions`]: everything besides the URI that configures a sink.
//!
//! One set for every sink, so one set of CLI flags serves every `--sink`; compiled in
//! every build, so a configuration builds the same with or without the broker features.

use std::path::PathBuf;
use std::time::Duration;

use crate::cloudevents::Format;
use crate::kafka::KeyMode;
use crate::nats_client::NatsOptions;

/// Everything besides the URI that configures a sink; each sink reads what concerns
/// it and ignores the rest, so one set of CLI flags serves every `--sink`.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// The message layout, for every sink but stdout (which always writes envelopes).
    pub format: Format,
    /// The CloudEvents `source`; `None` uses each notification's cluster name.
    pub cloudevents_source: Option<String>,
    /// librdkafka properties (`-X key=value`).
    pub kafka_properties: Vec<(String, String)>,
    /// What a Kafka message's key is.
    pub kafka_key: KeyMode,
    /// The NATS subject after `PREFIX.`, with `{...}` placeholders.
    pub subject_template: Option<String>,
    /// A NATS `.creds` file.
    pub nats_credentials: Option<PathBuf>,
    /// A CA file to verify NATS servers with; implies TLS.
    pub nats_ca: Option<PathBuf>,
    /// How long a NATS flush or JetStream acknowledgement may take.
    pub nats_timeout: Duration,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            format: Format::Envelope,
            cloudevents_source: None,
            kafka_properties: Vec::new(),
            kafka_key: KeyMode::NamespaceName,
            subject_template: None,
            nats_credentials: None,
            nats_ca: None,
            nats_timeout: NatsOptions::default().timeout,
        }
    }
}

impl SinkOptions {
    /// The Kafka sink's part.
    #[cfg(feature = "kafka")]
    pub(crate) fn kafka(&self) -> crate::KafkaOptions {
        crate::KafkaOptions {
            properties: self.kafka_properties.clone(),
            key: self.kafka_key,
            format: self.format,
            cloudevents_source: self.cloudevents_source.clone(),
        }
    }

    /// The NATS and JetStream sinks' part.
    #[cfg(feature = "nats")]
    pub(crate) fn nats(&self) -> NatsOptions {
        NatsOptions {
            subject_template: self.subject_template.clone(),
            credentials_file: self.nats_credentials.clone(),
            ca_file: self.nats_ca.clone(),
            format: self.format,
            cloudevents_source: self.cloudevents_source.clone(),
            timeout: self.nats_timeout,
        }
    }
}
