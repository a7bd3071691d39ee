//! The error a sink's configuration can fail with, before anything is published.

/// A sink URI, option or property that cannot work: fatal at start-up, unlike a broker
/// that is merely down (which a sink retries).
///
/// The message is one line naming what is wrong and what would be right, e.g.
/// `kafka sink "kafka://h:1": no topic; write kafka://HOST:PORT/TOPIC`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkConfigError {
    /// The one-line explanation.
    pub message: String,
}

impl SinkConfigError {
    /// An error about the sink `kind` configured by `uri`: `KIND sink "URI": PROBLEM`.
    ///
    /// The URI is shown with any password or token masked, because this message ends
    /// up in logs.
    pub fn new(kind: &str, uri: &str, problem: impl std::fmt::Display) -> Self {
        SinkConfigError {
            message: format!("{kind} sink \"{}\": {problem}", crate::uri::redact(uri)),
        }
    }
}
