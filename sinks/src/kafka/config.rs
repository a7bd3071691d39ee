//! The Kafka sink's client configuration: URI, properties and defaults, validation.

use rdkafka::ClientConfig;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;

use super::KafkaOptions;
use super::health::{Health, HealthContext};
use super::secrets::Scrubber;
use crate::SinkConfigError;
use crate::subject::{self, Template};
use crate::uri::{self, SinkUri};

/// The defaults, before the user's properties (see the module documentation).
const DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("compression.type", "lz4"),
    ("message.timeout.ms", "0"),
    ("linger.ms", "0"),
    ("statistics.interval.ms", "1000"),
];

/// What a Kafka sink is built from: the producer's properties and the topic template.
pub(super) struct KafkaConfig {
    /// `bootstrap.servers`, the defaults, then the user's properties.
    pub client: ClientConfig,
    /// The topic, with placeholders.
    pub topic: Template,
    /// The sensitive property values, kept out of every error this config makes.
    scrubber: Scrubber,
}

impl KafkaConfig {
    /// Reads `kafka://HOST:PORT[,HOST:PORT...]/TOPIC` and the options.
    ///
    /// Checks the URI and topic here; the properties are checked by librdkafka when
    /// [`KafkaConfig::first_producer`] creates the producer.
    pub fn new(uri: &str, options: &KafkaOptions) -> Result<KafkaConfig, SinkConfigError> {
        let err = |problem: String| SinkConfigError::new("kafka", uri, problem);
        let parsed: SinkUri = uri::parse(uri).map_err(err)?;
        if parsed.scheme != "kafka" {
            return Err(err(format!(
                "scheme \"{}\" is not kafka; write kafka://HOST:PORT/TOPIC",
                parsed.scheme
            )));
        }
        if parsed.userinfo.is_some() {
            return Err(err(
                "credentials do not go in a kafka URI; pass -X sasl.username=... -X sasl.password=..."
                    .into(),
            ));
        }
        if let Some((k, _)) = parsed.query.first() {
            return Err(err(format!(
                "unknown query parameter \"{k}\"; pass librdkafka properties with -X {k}=VALUE"
            )));
        }
        if parsed.path.is_empty() {
            return Err(err("no topic; write kafka://HOST:PORT/TOPIC".into()));
        }
        let topic = Template::parse(&parsed.path, subject::TOPIC_FIELDS).map_err(err)?;
        subject::check_kafka_topic(&topic.sample("x")).map_err(err)?;

        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", parsed.hosts.join(","));
        for (k, v) in DEFAULTS {
            client.set(*k, *v);
        }
        for (k, v) in &options.properties {
            client.set(k, v);
        }
        let scrubber = Scrubber::new(
            options
                .properties
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        Ok(KafkaConfig {
            client,
            topic,
            scrubber,
        })
    }

    /// The sink's first producer: librdkafka rejects unknown properties and bad values
    /// here, which is a configuration error naming the property.
    pub fn first_producer(&self, uri: &str) -> Result<Producer, SinkConfigError> {
        self.producer()
            .map_err(|e| SinkConfigError::new("kafka", uri, e))
    }

    /// A new producer (a new librdkafka instance, so a new producer id), with a fresh
    /// [`Health`] its callbacks report to. The error holds no secret (librdkafka's own
    /// error would: its `Display` prints the rejected value).
    pub fn producer(&self) -> Result<Producer, ProducerError> {
        let health = Health::new();
        let producer =
            FutureProducer::from_config_and_context(&self.client, HealthContext::new(&health))
                .map_err(|e| ProducerError(describe(&e, &self.scrubber)))?;
        Ok(Producer { producer, health })
    }
}

/// Why librdkafka refused to create a producer, with every sensitive value scrubbed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct ProducerError(String);

/// One librdkafka producer and what its callbacks have said about it.
pub(super) struct Producer {
    pub producer: FutureProducer<HealthContext>,
    pub health: std::sync::Arc<Health>,
}

fn describe(err: &KafkaError, scrubber: &Scrubber) -> String {
    match err {
        // The value is never echoed, here or inside librdkafka's own description: a
        // mistyped key (`sasl.pasword`) or a bad `sasl.jaas.config` would print a secret.
        KafkaError::ClientConfig(_, description, key, value) => {
            let description = scrubber.scrub(description, Some(value));
            format!(
                "librdkafka property {key} is not accepted ({description}); see librdkafka's CONFIGURATION.md"
            )
        }
        other => scrubber.scrub(&format!("cannot create the producer: {other}"), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(props: &[(&str, &str)]) -> KafkaOptions {
        KafkaOptions {
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..KafkaOptions::default()
        }
    }

    fn error_of(uri: &str, options: KafkaOptions) -> String {
        match KafkaConfig::new(uri, &options).and_then(|c| c.first_producer(uri)) {
            Ok(_) => panic!("{uri} should be rejected"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn rejects_bad_uris_and_properties() {
        assert_eq!(
            error_of("kafka://h:1", opts(&[])),
            "kafka sink \"kafka://h:1\": no topic; write kafka://HOST:PORT/TOPIC"
        );
        assert!(error_of("kafka://h:1/a{name}", opts(&[])).contains("unknown placeholder"));
        assert!(error_of("kafka://h:1/a b", opts(&[])).contains("Kafka allows only"));
        assert!(error_of("kafka://u:p@h:1/t", opts(&[])).contains("credentials do not go"));
        assert!(error_of("kafka://h:1/t?acks=1", opts(&[])).contains("-X acks=VALUE"));
        let e = error_of("kafka://h:1/t", opts(&[("no.such.property", "1")]));
        assert!(
            e.contains("property no.such.property is not accepted"),
            "{e}"
        );
        let e = error_of("kafka://h:1/t", opts(&[("acks", "sometimes")]));
        assert!(e.contains("property acks is not accepted"), "{e}");
        // A mistyped secret key, or a value librdkafka quotes back: never echoed.
        for (key, secret) in [("sasl.pasword", "hunter2-typo"), ("acks", "hunter2-quoted")] {
            let e = error_of("kafka://h:1/t", opts(&[(key, secret)]));
            assert!(e.contains(key) && !e.contains(secret), "{e}");
        }
    }

    #[test]
    fn user_properties_win_over_the_defaults() {
        let config = KafkaConfig::new(
            "kafka://h1:1,h2:2/t",
            &opts(&[("compression.type", "zstd")]),
        )
        .expect("valid");
        assert_eq!(config.client.get("bootstrap.servers"), Some("h1:1,h2:2"));
        assert_eq!(config.client.get("compression.type"), Some("zstd"));
        assert_eq!(config.client.get("acks"), Some("all"));
        assert_eq!(config.client.get("message.timeout.ms"), Some("0"));
        assert_eq!(config.client.get("statistics.interval.ms"), Some("1000"));
    }

    /// Each sensitive property, rejected by librdkafka or beside one that is, never
    /// shows its value (nor a part of it) in the error.
    #[test]
    fn sensitive_values_never_reach_an_error() {
        let jaas =
            "org.apache.kafka.PlainLoginModule required username=\"u\" password=\"jaas-pw-1234\";";
        let cases: &[&[(&str, &str)]] = &[
            &[("sasl.passwrd", "hunter2")],
            &[("sasl.jaas.config", jaas)],
            &[
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanisms", "NOPE"),
                ("sasl.password", "beside-pw-5678"),
            ],
            &[
                ("ssl.key.password", "keypw-9012"),
                ("ssl.key.pem", "not a pem key-3456"),
                ("ssl.keystore.password", "ks-7890"),
                ("acks", "sometimes"),
            ],
            &[
                ("sasl.oauthbearer.client.secret", "oauth-1357"),
                ("sasl.oauthbearer.config", "principal=p token=tok-2468"),
                ("sasl.oauthbearer.method", "bogus"),
            ],
        ];
        for props in cases {
            let e = error_of("kafka://h:1/t", opts(props));
            for (key, value) in props.iter() {
                if !super::super::secrets::is_sensitive(key) && *key != "sasl.passwrd" {
                    continue;
                }
                for part in value.split(|c: char| c.is_whitespace() || "\"=;".contains(c)) {
                    if part.chars().any(|c| c.is_ascii_digit()) {
                        assert!(!e.contains(part), "{props:?} -> {e}");
                    }
                }
            }
        }
    }
}
