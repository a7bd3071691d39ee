//! Building a sink from its URI: `stdout`, `kafka://`, `nats://`, `jetstream://`.
//!
//! A URI naming a sink this build was compiled without says which sinks it has.

use crate::{Sink, SinkConfigError, SinkOptions, StdoutSink};

/// The sinks compiled into this build, by the name their URI starts with.
pub const AVAILABLE: &[&str] = &[
    "stdout",
    #[cfg(feature = "kafka")]
    "kafka",
    #[cfg(feature = "nats")]
    "nats",
    #[cfg(feature = "nats")]
    "jetstream",
];

/// Builds the sink `uri` names.
///
/// Async because the NATS sinks read their creds file and start their client; no sink
/// waits for its broker here: a broker that is down at start-up is retried by the
/// sink, while a malformed URI, option or property is a [`SinkConfigError`], and so is
/// a sink this build does not have (it names the cargo feature to build it with).
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
        "kafka" => kafka(uri, options),
        "nats" => nats(uri, options).await,
        "jetstream" => jetstream(uri, options).await,
        _ => Err(SinkConfigError::new(
            "unknown",
            uri,
            "unknown sink; write stdout, kafka://HOST:PORT/TOPIC, nats://HOST:PORT/PREFIX or jetstream://HOST:PORT/PREFIX",
        )),
    }
}

#[cfg(feature = "kafka")]
fn kafka(uri: &str, options: &SinkOptions) -> Result<Box<dyn Sink>, SinkConfigError> {
    Ok(Box::new(crate::KafkaSink::new(uri, options.kafka())?))
}

#[cfg(not(feature = "kafka"))]
fn kafka(uri: &str, _: &SinkOptions) -> Result<Box<dyn Sink>, SinkConfigError> {
    Err(not_built(uri, "kafka", "kafka", AVAILABLE))
}

#[cfg(feature = "nats")]
async fn nats(uri: &str, options: &SinkOptions) -> Result<Box<dyn Sink>, SinkConfigError> {
    Ok(Box::new(crate::NatsSink::new(uri, options.nats()).await?))
}

#[cfg(not(feature = "nats"))]
async fn nats(uri: &str, _: &SinkOptions) -> Result<Box<dyn Sink>, SinkConfigError> {
    Err(not_built(uri, "nats", "nats", AVAILABLE))
}

#[cfg(feature = "nats")]
async fn jetstream(uri: &str, options: &SinkOptions) -> Result<Box<dyn Sink>, SinkConfigError> {
    Ok(Box::new(
        crate::JetStreamSink::new(uri, options.nats()).await?,
    ))
}

#[cfg(not(feature = "nats"))]
async fn jetstream(uri: &str, _: &SinkOptions) -> Result<Box<dyn Sink>, SinkConfigError> {
    Err(not_built(uri, "jetstream", "nats", AVAILABLE))
}

/// `URI: this kubebridge was built without the SINK sink (cargo feature `FEATURE`);
/// it has: stdout, ...`. The URI is shown with any secret masked.
#[cfg_attr(all(feature = "kafka", feature = "nats"), allow(dead_code))]
fn not_built(uri: &str, sink: &str, feature: &str, available: &[&str]) -> SinkConfigError {
    SinkConfigError {
        message: format!(
            "{}: this kubebridge was built without the {sink} sink (cargo feature `{feature}`); it has: {}",
            crate::redact(uri),
            available.join(", ")
        ),
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
            #[cfg(feature = "kafka")]
            ("kafka://127.0.0.1:1/t", "kafka"),
            #[cfg(feature = "nats")]
            ("nats://127.0.0.1:1/p", "nats"),
            #[cfg(feature = "nats")]
            ("jetstream://127.0.0.1:1/p?stream=S", "jetstream"),
        ];
        for (uri, kind) in kinds {
            let sink = sink_from_uri(uri, &opts).await.expect(uri);
            assert_eq!(sink.kind(), kind);
        }
        assert!(error_of("kafak://h:1/t").await.contains("unknown sink"));
    }

    #[test]
    fn a_missing_sink_names_its_feature_and_what_the_build_has() {
        assert_eq!(
            not_built(
                "kafka://broker:9092/t",
                "kafka",
                "kafka",
                &["stdout", "nats", "jetstream"]
            )
            .message,
            "kafka://broker:9092/t: this kubebridge was built without the kafka sink (cargo feature `kafka`); it has: stdout, nats, jetstream"
        );
        assert_eq!(
            not_built("nats://u:pw@h:1/p", "nats", "nats", &["stdout"]).message,
            "nats://u:***@h:1/p: this kubebridge was built without the nats sink (cargo feature `nats`); it has: stdout"
        );
    }

    /// What a build without the feature answers; run with `--no-default-features`.
    #[tokio::test]
    async fn the_build_lists_what_it_has() {
        let has = |s: &str| AVAILABLE.contains(&s);
        assert!(has("stdout"));
        assert_eq!(has("kafka"), cfg!(feature = "kafka"));
        assert_eq!(has("nats") && has("jetstream"), cfg!(feature = "nats"));
        for (uri, feature) in [
            ("kafka://h:1/t", "kafka"),
            ("nats://h:1/p", "nats"),
            ("jetstream://h:1/p", "nats"),
        ] {
            if !has(feature) {
                let e = error_of(uri).await;
                assert!(
                    e.contains(&format!("(cargo feature `{feature}`); it has: stdout")),
                    "{e}"
                );
            }
        }
    }

    #[cfg(feature = "nats")]
    #[tokio::test]
    async fn explains_what_is_wrong() {
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
