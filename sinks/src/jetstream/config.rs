//! The JetStream sink's own configuration: `stream=`, and the stream it creates.

/// The stream named by the URI's `stream=` parameter (in `query`, as the shared
/// connection returned it), if any.
pub(super) fn stream_from_query(query: &[(String, String)]) -> Result<Option<String>, String> {
    let mut stream = None;
    for (k, v) in query {
        if k == "stream" {
            if v.is_empty()
                || v.chars()
                    .any(|c| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace())
            {
                return Err(format!(
                    "stream name \"{v}\" is not valid; use letters, digits, '-' and '_'"
                ));
            }
            stream = Some(v.clone());
        }
    }
    Ok(stream)
}

/// The stream to create when `name` is missing: subjects `PREFIX.>` and the server's
/// defaults (file storage, unlimited retention, 2-minute duplicate window).
pub(super) fn stream_config(name: &str, prefix: &str) -> async_nats::jetstream::stream::Config {
    async_nats::jetstream::stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{prefix}.>")],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn stream_names() {
        assert_eq!(stream_from_query(&query(&[])), Ok(None));
        assert_eq!(
            stream_from_query(&query(&[("stream", "K8S_events-1")])),
            Ok(Some("K8S_events-1".to_string()))
        );
        for bad in ["", "a.b", "a*", "a>", "a/b", "a b"] {
            assert!(
                stream_from_query(&query(&[("stream", bad)]))
                    .expect_err(bad)
                    .contains("is not valid"),
                "{bad}"
            );
        }
        let config = stream_config("S", "k8s.prod");
        assert_eq!(config.subjects, ["k8s.prod.>"]);
    }
}
