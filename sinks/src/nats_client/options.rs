//! How a NATS or JetStream sink is configured beyond its URI: [`NatsOptions`].

use std::path::PathBuf;
use std::time::Duration;

use crate::cloudevents::Format;

/// How a NATS or JetStream sink is configured beyond its URI.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Replaces the subject after `PREFIX.`; `None` means
    /// `{group}.{version}.{resource}.{namespace}.{name}`.
    pub subject_template: Option<String>,
    /// A NATS `.creds` file (JWT and NKey seed).
    pub credentials_file: Option<PathBuf>,
    /// A PEM file of CA certificates to verify the server with; implies TLS.
    pub ca_file: Option<PathBuf>,
    /// The message layout.
    pub format: Format,
    /// The CloudEvents `source`; `None` uses the notification's cluster name.
    pub cloudevents_source: Option<String>,
    /// How long a flush (core NATS) or an acknowledgement (JetStream) may take before
    /// the batch fails as retryable.
    pub timeout: Duration,
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            subject_template: None,
            credentials_file: None,
            ca_file: None,
            format: Format::Envelope,
            cloudevents_source: None,
            timeout: Duration::from_secs(10),
        }
    }
}
