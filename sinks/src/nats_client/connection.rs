//! The NATS connection both NATS sinks use: URI, credentials, TLS, client, flush.

use std::time::Duration;

use super::NatsOptions;
use super::message::Subjects;
use crate::uri::{self, SinkUri, UserInfo};
use crate::{SinkConfigError, SinkError};

/// What a NATS sink builds from its URI and options.
pub(crate) struct Connection {
    /// The client; it connects, and reconnects, in the background.
    pub client: async_nats::Client,
    /// The subjects, from the URI's prefix and the template option.
    pub subjects: Subjects,
    /// Query parameters the caller handles (`stream` for JetStream).
    pub query: Vec<(String, String)>,
}

/// Parses `uri` (`kind` names the sink in errors, `scheme` is the one it must have)
/// with `options`, and starts connecting. `extra_params` are query parameters the
/// caller handles, returned in [`Connection::query`]; any other but `tls` is an error.
pub(crate) async fn connect(
    kind: &str,
    scheme: &str,
    uri: &str,
    options: &NatsOptions,
    extra_params: &[&str],
) -> Result<Connection, SinkConfigError> {
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
    let subjects = Subjects::new(parsed.path, options.subject_template.as_deref()).map_err(err)?;
    let (tls, query) =
        split_query(parsed.query, options.ca_file.is_some(), extra_params).map_err(err)?;
    let client = client(&parsed.hosts, parsed.userinfo, tls, options)
        .await
        .map_err(err)?;
    Ok(Connection {
        client,
        subjects,
        query,
    })
}

/// Whether TLS is required (`tls=`, or `tls_default`), and the query parameters in
/// `extra_params`.
fn split_query(
    query: Vec<(String, String)>,
    tls_default: bool,
    extra_params: &[&str],
) -> Result<(bool, Vec<(String, String)>), String> {
    let mut tls = tls_default;
    let mut extra = Vec::new();
    for (k, v) in query {
        match k.as_str() {
            "tls" => {
                tls = match v.as_str() {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    _ => return Err(format!("tls={v}; write tls=true or tls=false")),
                }
            }
            k if extra_params.contains(&k) => extra.push((k.to_string(), v)),
            _ => {
                let mut known = vec!["tls"];
                known.extend_from_slice(extra_params);
                return Err(format!(
                    "unknown query parameter \"{k}\"; known: {}",
                    known.join(", ")
                ));
            }
        }
    }
    Ok((tls, extra))
}

/// A client for `hosts` that connects in the background; an unreadable creds or CA
/// file is an error now.
async fn client(
    hosts: &[String],
    userinfo: Option<UserInfo>,
    tls: bool,
    options: &NatsOptions,
) -> Result<async_nats::Client, String> {
    let mut connect = async_nats::ConnectOptions::new()
        .name("kubebridge")
        // A server that is down at start-up is an outage like any other, not a
        // configuration error: connect in the background and keep trying.
        .retry_on_initial_connect()
        .max_reconnects(None)
        .require_tls(tls);
    match userinfo {
        Some(UserInfo::UserPassword(user, pass)) => {
            connect = connect.user_and_password(user, pass);
        }
        Some(UserInfo::Token(token)) => connect = connect.token(token),
        None => {}
    }
    if let Some(path) = &options.credentials_file {
        connect = connect
            .credentials_file(path)
            .await
            .map_err(|e| format!("cannot read the NATS creds file {}: {e}", path.display()))?;
    }
    if let Some(path) = &options.ca_file {
        // Read it now: the client would only find out on its first (background)
        // connection attempt, and retry forever.
        std::fs::metadata(path)
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
        connect = connect.add_root_certificates(path.clone());
    }
    let addrs: Vec<async_nats::ServerAddr> = hosts
        .iter()
        .map(|h| format!("{}://{h}", if tls { "tls" } else { "nats" }).parse())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad server address: {e}"))?;
    connect
        .connect(addrs)
        .await
        .map_err(|e| format!("cannot set up the client: {e}"))
}

/// Waits until everything published so far is written to the server, for at most
/// `timeout`; `label` names the sink in the error (`nats sink URI`).
pub(crate) async fn flush(
    client: &async_nats::Client,
    timeout: Duration,
    label: &str,
) -> Result<(), SinkError> {
    match tokio::time::timeout(timeout, client.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(SinkError::retryable(format!("{label}: flush failed"), e)),
        Err(elapsed) => Err(SinkError::retryable(
            format!(
                "{label}: not connected, flush timed out after {timeout:?} ({:?})",
                client.connection_state()
            ),
            elapsed,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(split_query(q(&[]), false, &[]), Ok((false, vec![])));
        assert_eq!(split_query(q(&[]), true, &[]), Ok((true, vec![])));
        assert_eq!(
            split_query(q(&[("tls", "")]), false, &[]),
            Ok((true, vec![]))
        );
        assert_eq!(
            split_query(q(&[("stream", "S"), ("tls", "false")]), true, &["stream"]),
            Ok((false, q(&[("stream", "S")])))
        );
        assert!(
            split_query(q(&[("tls", "maybe")]), false, &[])
                .expect_err("bad tls")
                .contains("tls=true or tls=false")
        );
        assert_eq!(
            split_query(q(&[("stream", "S")]), false, &[]),
            Err("unknown query parameter \"stream\"; known: tls".to_string())
        );
    }

    /// No error about a NATS URI or creds file quotes the password, the token or the
    /// creds file's content.
    #[tokio::test]
    async fn errors_never_quote_credentials() {
        let options = NatsOptions::default();
        for uri in [
            "nats://u:pw-secret-1@h:notaport/p",
            "nats://u:pw-secret-1@h:1",
            "nats://u:pw-secret-1@h:1/p?tls=maybe",
            "nats://u:pw-secret-1@h:1/p?bogus=1",
            "natz://u:pw-secret-1@h:1/p",
            "nats:/u:pw-secret-1@h:1/p",
            "nats://tok?pw-secret-1@h:1",
        ] {
            let Err(e) = connect("nats", "nats", uri, &options, &[]).await else {
                panic!("{uri} should be rejected");
            };
            assert!(!e.message.contains("pw-secret-1"), "{e}");
        }
        let creds =
            std::env::temp_dir().join(format!("kubebridge-{}-bad.creds", std::process::id()));
        std::fs::write(
            &creds,
            "-----BEGIN NATS USER JWT-----\nJWT-SECRET-2\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUSEED-SECRET-3\n------END USER NKEY SEED------\n",
        )
        .expect("write");
        let options = NatsOptions {
            credentials_file: Some(creds),
            ..NatsOptions::default()
        };
        let result = connect("nats", "nats", "nats://h:1/p", &options, &[]).await;
        let _ = std::fs::remove_file(options.credentials_file.as_ref().expect("set"));
        let Err(e) = result else {
            panic!("a malformed creds file should be rejected");
        };
        assert!(e.message.contains("creds file"), "{e}");
        assert!(!e.message.contains("SECRET"), "{e}");
    }
}
