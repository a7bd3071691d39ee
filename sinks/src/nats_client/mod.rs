//! What the core NATS and the JetStream sinks share, so neither reaches into the other.
//!
//! Their options, the connection (URI, credentials, TLS) and the message for a
//! notification (subject, body, headers).
//!
//! # Connecting
//!
//! Credentials: `user:password@` or `token@` in the URI (percent-encode `@`, `:` and
//! `/` in them), or a `.creds` file ([`NatsOptions::credentials_file`]). TLS: add
//! `?tls=true` to the URI, or give a CA file ([`NatsOptions::ca_file`]), which also
//! requires TLS; a `tls://` scheme is not used because `jetstream://` needs TLS too and
//! one query parameter covers both. The client connects in the background and
//! reconnects forever, so a server that is down at start-up only delays the first
//! delivery; an unreadable creds or CA file is a
//! [`SinkConfigError`](crate::SinkConfigError).
//!
//! # Subjects
//!
//! `PREFIX.<group or core>.<version>.<resource>.<namespace or _>.<name>`, each token
//! sanitised (`.`, `*`, `>` and whitespace become `_`, an empty token `_`). A
//! [`NatsOptions::subject_template`] replaces the part after `PREFIX.` and may use
//! `{group}`, `{version}`, `{resource}`, `{kind}`, `{namespace}` and `{name}`.
//!
//! # Files
//!
//! [`options`] (always compiled, so a configuration builds without the `nats`
//! feature); with it: `connection` and `message`.

pub mod options;

#[cfg(feature = "nats")]
pub(crate) mod connection;
#[cfg(feature = "nats")]
pub(crate) mod message;

pub use options::NatsOptions;
