//! The core NATS sink, `nats://[user:pass@|token@]HOST:PORT[,HOST:PORT...]/PREFIX`,
//! and what it shares with the JetStream sink: connecting, subjects and headers.
//!
//! # Connecting
//!
//! Credentials: `user:password@` or `token@` in the URI (percent-encode `@`, `:` and
//! `/` in them), or a `.creds` file ([`NatsOptions::credentials_file`]). TLS: add
//! `?tls=true` to the URI, or give a CA file ([`NatsOptions::ca_file`]), which also
//! requires TLS; a `tls://` scheme is not used because `jetstream://` needs TLS too and
//! one query parameter covers both. The client connects in the background and
//! reconnects forever, so a server that is down at start-up only delays the first
//! delivery; an unreadable creds or CA file is a [`SinkConfigError`].
//!
//! # Subjects
//!
//! `PREFIX.<group or core>.<version>.<resource>.<namespace or _>.<name>`, each token
//! sanitised (`.`, `*`, `>` and whitespace become `_`, an empty token `_`). A
//! [`NatsOptions::subject_template`] replaces the part after `PREFIX.` and may use
//! `{group}`, `{version}`, `{resource}`, `{kind}`, `{namespace}` and `{name}`.
//!
//! # Delivery
//!
//! Core NATS has no acknowledgement: `publish` sends the batch and then flushes, so a
//! confirmed batch has been written to the server's socket, no more. A publish made
//! while disconnected only fills the client's buffer, which is why the flush (bounded
//! by [`NatsOptions::timeout`]) decides. Use `jetstream://` for stored, acknowledged
//! delivery.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_trait::async_trait;

use crate::cloudevents::{self, Format};
use crate::subject::{self, Template};
use crate::uri::{self, SinkUri, UserInfo};
use crate::{Notification, PublishError, Sink, SinkConfigError, SinkError};

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

/// What the two NATS sinks build from their URI and options.
pub(crate) struct Setup {
    pub client: async_nats::Client,
    /// The prefix from the URI path.
    pub prefix: String,
    pub subject: Template,
    /// Query parameters the caller handles (`stream` for JetStream).
    pub query: Vec<(String, String)>,
}

/// Parses the URI and options shared by both NATS sinks and starts connecting.
pub(crate) async fn setup(
    kind: &str,
    scheme: &str,
    uri: &str,
    options: &NatsOptions,
    extra_params: &[&str],
) -> Result<Setup, SinkConfigError> {
    let err = |problem: String| SinkConfigError::new(kind, uri, problem);
    let parsed: SinkUri = uri::parse(uri).map_err(err)?;
    if parsed.scheme != scheme {
        return Err(err(format!(
            "scheme \"{}\" is not {scheme}; write {scheme}://HOST:PORT/PREFIX",
            parsed.scheme
        )));
    }
    if parsed.path.is_empty() {
        return Err(err(format!(
            "no subject prefix; write {scheme}://HOST:PORT/PREFIX"
        )));
    }
    subject::check_nats_subject(&parsed.path).map_err(|e| err(format!("prefix {e}")))?;
    let template_text = options
        .subject_template
        .as_deref()
        .unwrap_or(subject::DEFAULT_SUBJECT);
    let template = Template::parse(template_text, subject::SUBJECT_FIELDS)
        .map_err(|e| err(format!("subject template: {e}")))?;
    subject::check_nats_subject(&template.sample("x"))
        .map_err(|e| err(format!("subject template {e}")))?;

    let mut tls = options.ca_file.is_some();
    let mut query = Vec::new();
    for (k, v) in parsed.query {
        match k.as_str() {
            "tls" => {
                tls = match v.as_str() {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    _ => return Err(err(format!("tls={v}; write tls=true or tls=false"))),
                }
            }
            k if extra_params.contains(&k) => query.push((k.to_string(), v)),
            _ => {
                let mut known = vec!["tls"];
                known.extend_from_slice(extra_params);
                return Err(err(format!(
                    "unknown query parameter \"{k}\"; known: {}",
                    known.join(", ")
                )));
            }
        }
    }

    let mut connect = async_nats::ConnectOptions::new()
        .name("kubebridge")
        // A server that is down at start-up is an outage like any other, not a
        // configuration error: connect in the background and keep trying.
        .retry_on_initial_connect()
        .max_reconnects(None)
        .require_tls(tls);
    match parsed.userinfo {
        Some(UserInfo::UserPassword(user, pass)) => {
            connect = connect.user_and_password(user, pass);
        }
        Some(UserInfo::Token(token)) => connect = connect.token(token),
        None => {}
    }
    if let Some(path) = &options.credentials_file {
        connect = connect.credentials_file(path).await.map_err(|e| {
            err(format!(
                "cannot read the NATS creds file {}: {e}",
                path.display()
            ))
        })?;
    }
    if let Some(path) = &options.ca_file {
        // Read it now: the client would only find out on its first (background)
        // connection attempt, and retry forever.
        std::fs::metadata(path)
            .map_err(|e| err(format!("cannot read the CA file {}: {e}", path.display())))?;
        connect = connect.add_root_certificates(path.clone());
    }
    let addrs: Vec<String> = parsed
        .hosts
        .iter()
        .map(|h| format!("{}://{h}", if tls { "tls" } else { "nats" }))
        .collect();
    let addrs: Vec<async_nats::ServerAddr> = addrs
        .iter()
        .map(|a| a.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("bad server address: {e}")))?;
    let client = connect
        .connect(addrs)
        .await
        .map_err(|e| err(format!("cannot set up the client: {e}")))?;
    Ok(Setup {
        client,
        prefix: parsed.path,
        subject: template,
        query,
    })
}

/// The full subject for `n`: `PREFIX.` + the rendered template.
pub(crate) fn subject_for(prefix: &str, template: &Template, n: &Notification) -> String {
    let rest = template.render(n, subject::nats_token);
    let mut s = String::with_capacity(prefix.len() + 1 + rest.len());
    s.push_str(prefix);
    s.push('.');
    s.push_str(&rest);
    s
}

/// The body and headers of the message for `n`.
pub(crate) fn message_for(
    n: &Notification,
    format: Format,
    source: Option<&str>,
) -> (bytes::Bytes, HeaderMap) {
    let encoded = cloudevents::encode(n, format, source);
    let mut headers = HeaderMap::new();
    headers.insert("type", n.event_type.as_str());
    headers.insert("origin", n.origin.as_str());
    headers.insert(
        "resource",
        format!(
            "{}/{}/{}",
            n.resource.group, n.resource.version, n.resource.resource
        )
        .as_str(),
    );
    headers.insert("kubebridge-id", n.id().as_str());
    if let Some(attrs) = &encoded.binary_attributes {
        // The NATS protocol binding of CloudEvents spells the prefix `ce-`.
        for (name, value) in attrs {
            headers.insert(format!("ce-{name}").as_str(), value.as_str());
        }
    }
    if format != Format::Envelope {
        headers.insert("content-type", encoded.content_type);
    }
    (encoded.body.into(), headers)
}

/// Publishes each notification as one core NATS message; see the module documentation
/// for what a confirmation means.
pub struct NatsSink {
    client: async_nats::Client,
    prefix: String,
    subject: Template,
    options: NatsOptions,
    label: String,
}

impl NatsSink {
    /// Builds a sink from `nats://[user:pass@|token@]HOST:PORT/PREFIX[?tls=true]` and
    /// starts connecting in the background.
    pub async fn new(uri: &str, options: NatsOptions) -> Result<NatsSink, SinkConfigError> {
        let setup = setup("nats", "nats", uri, &options, &[]).await?;
        Ok(NatsSink {
            client: setup.client,
            prefix: setup.prefix,
            subject: setup.subject,
            options,
            label: uri::redact(uri),
        })
    }
}

/// Classifies a client-side core publish failure.
fn classify_publish(label: &str, err: async_nats::PublishError) -> SinkError {
    let message = format!("nats sink {label}: {err}");
    match err.kind() {
        async_nats::client::PublishErrorKind::MaxPayloadExceeded
        | async_nats::client::PublishErrorKind::InvalidSubject => {
            SinkError::permanent(message, err)
        }
        async_nats::client::PublishErrorKind::Send => SinkError::retryable(message, err),
    }
}

#[async_trait]
impl Sink for NatsSink {
    fn kind(&self) -> &'static str {
        "nats"
    }

    async fn publish(&mut self, batch: &[Arc<Notification>]) -> Result<(), PublishError> {
        for (i, n) in batch.iter().enumerate() {
            let subject = subject_for(&self.prefix, &self.subject, n);
            let (body, headers) = message_for(
                n,
                self.options.format,
                self.options.cloudevents_source.as_deref(),
            );
            if let Err(e) = self
                .client
                .publish_with_headers(subject, headers, body)
                .await
            {
                let error = classify_publish(&self.label, e);
                // Those before it are only buffered so far; flush them to count them.
                let delivered = match self.flush().await {
                    Ok(()) => i,
                    Err(_) => 0,
                };
                return Err(PublishError { delivered, error });
            }
        }
        self.flush().await.map_err(PublishError::none_delivered)
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        self.flush().await
    }
}

impl NatsSink {
    /// Waits until everything published so far is written to the server.
    async fn flush(&self) -> Result<(), SinkError> {
        match tokio::time::timeout(self.options.timeout, self.client.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SinkError::retryable(
                format!("nats sink {}: flush failed", self.label),
                e,
            )),
            Err(elapsed) => Err(SinkError::retryable(
                format!(
                    "nats sink {}: not connected, flush timed out after {:?} ({:?})",
                    self.label,
                    self.options.timeout,
                    self.client.connection_state()
                ),
                elapsed,
            )),
        }
    }
}
