//! How the Kafka sink is configured beyond its URI: [`KafkaOptions`] and [`KeyMode`].

use crate::cloudevents::Format;

/// What a Kafka message's key is, and so which messages share a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyMode {
    /// `namespace/name` (`name` for cluster-scoped objects): every change to one
    /// object, including a re-created one, is ordered. The default.
    #[default]
    NamespaceName,
    /// The name alone.
    Name,
    /// The object's uid: a re-created object (new uid) may land elsewhere.
    Uid,
    /// No key: messages spread over partitions, with no order per object.
    None,
}

impl std::str::FromStr for KeyMode {
    type Err = String;

    /// Parses `namespace/name`, `name`, `uid` or `none` (the CLI's `--kafka-key`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "namespace/name" | "namespace-name" => Ok(KeyMode::NamespaceName),
            "name" => Ok(KeyMode::Name),
            "uid" => Ok(KeyMode::Uid),
            "none" => Ok(KeyMode::None),
            _ => Err(format!(
                "unknown Kafka key \"{s}\"; use namespace/name, name, uid or none"
            )),
        }
    }
}

/// How the Kafka sink is configured beyond its URI.
#[derive(Debug, Clone, Default)]
pub struct KafkaOptions {
    /// Extra librdkafka properties (`-X key=value`), applied after the defaults so
    /// they win: TLS, SASL, tuning.
    pub properties: Vec<(String, String)>,
    /// What the message key is.
    pub key: KeyMode,
    /// The message layout.
    pub format: Format,
    /// The CloudEvents `source`; `None` uses the notification's cluster name.
    pub cloudevents_source: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_modes_parse() {
        assert_eq!("uid".parse::<KeyMode>(), Ok(KeyMode::Uid));
        assert_eq!(
            "namespace/name".parse::<KeyMode>(),
            Ok(KeyMode::NamespaceName)
        );
        assert!("x".parse::<KeyMode>().is_err());
    }
}
