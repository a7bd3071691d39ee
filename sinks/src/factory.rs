//! Building a sink from its URI: `stdout`, `kafka://`, `nats://`, `jetstream://`.

use std::path::PathBuf;
use std::time::Duration;

use crate::cloudevents::Format;
use crate::jetstream::JetStreamSink;
use crate::kafka::{KafkaOptions, KafkaSink, KeyMode};
use crate::nats::{NatsOptions, NatsSink};
use crate::{Sink, SinkConfigError, StdoutSink};

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
    fn kafka(&self) -> KafkaOptions {
        KafkaOptions {
            properties: self.kafka_properties.clone(),
            key: self.kafka_key,
            format: self.format,
            cloudevents_source: self.cloudevents_source.clone(),
        }
    }

    fn nats(&self) -> NatsOptions {
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

/// Builds the sink `uri` names.
///
/// Async because the NATS sinks read their creds file and start their client; no sink
/// waits for its broker here: a broker that is down at start-up is retried by the
/// sink, while a malformed URI, option or property is a [`SinkConfigError`].
pub async fn sink_from_uri(
    uri: &str,
    options: &SinkOptions,
) -> Result<Box<dyn Sink>, SinkConfigError> {
    if uri == "stdout" || uri == "-" {
        return Ok(Box::new(StdoutSink::new()));
    }
    let scheme = uri
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    match scheme.as_str() {
        "kafka" => Ok(Box::new(KafkaSink::new(uri, options.kafka())?)),
        "nats" => Ok(Box::new(NatsSink::new(uri, options.nats()).await?)),
        "jetstream" => Ok(Box::new(JetStreamSink::new(uri, options.nats()).await?)),
        _ => Err(SinkConfigError::new(
            "unknown",
            uri,
            "unknown sink; write stdout, kafka://HOST:PORT/TOPIC, nats://HOST:PORT/PREFIX or jetstream://HOST:PORT/PREFIX",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn error_of(uri: &str) -> String {
        match sink_from_uri(uri, &SinkOptions::default()).await {
            Ok(_) => panic!("{uri} should be rejected"),
            Err(e) => e.message,
        }
    }

    #[tokio::test]
    async fn picks_the_sink_by_scheme() {
        let opts = SinkOptions::default();
        let kinds = [
            ("stdout", "stdout"),
            ("kafka://127.0.0.1:1/t", "kafka"),
            ("nats://127.0.0.1:1/p", "nats"),
            ("jetstream://127.0.0.1:1/p?stream=S", "jetstream"),
        ];
        for (uri, kind) in kinds {
            let sink = sink_from_uri(uri, &opts).await.expect(uri);
            assert_eq!(sink.kind(), kind);
        }
    }

    #[tokio::test]
    async fn explains_what_is_wrong() {
        assert!(error_of("kafak://h:1/t").await.contains("unknown sink"));
        assert_eq!(
            error_of("nats://u:secret@h:1").await,
            "nats sink \"nats://u:***@h:1\": no subject prefix; write nats://HOST:PORT/PREFIX"
        );
        assert!(error_of("nats://h:1/a.*").await.contains("wildcard"));
        assert!(
            error_of("nats://h:1/p?bogus=1")
                .await
                .contains("unknown query parameter")
        );
        assert!(
            error_of("jetstream://h:1/p?stream=a.b")
                .await
                .contains("stream name")
        );
        let opts = SinkOptions {
            nats_credentials: Some("/nonexistent.creds".into()),
            ..SinkOptions::default()
        };
        let e = sink_from_uri("nats://h:1/p", &opts)
            .await
            .err()
            .expect("error")
            .message;
        assert!(e.contains("creds file"), "{e}");
    }
}
