//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection
//! does it: only the holder runs informers and sinks; a standby takes over once the
//! lease has gone unrenewed for its duration; a leader that cannot renew within its
//! deadline stops at once.
//!
//! Expiry is judged by the standby's own clock: a lease counts as expired when its
//! record (the spec: holder, renewTime, …) has not changed for `lease_duration` since
//! this process last saw it change, so clock skew between nodes cannot cause two leaders.
//! Every write is conditional on the resourceVersion read, so of two contenders one
//! gets 409 Conflict and stays a standby.
//!
//! Under a slow or failing API server: every attempt (a GET and perhaps a write) is
//! bounded by the retry period, and the leader's renew deadline is kept by the clock,
//! not checked between attempts, so a leader steps down `renew_deadline` after the
//! start of its last successful renewal even while a request hangs. That instant comes
//! before any standby can see the lease expire (`lease_duration` after it saw that
//! renewal), which leaves `lease_duration - renew_deadline` for the caller to stop
//! publishing. A clean shutdown releases the lease (client-go's ReleaseOnCancel): a
//! lease with no holder is free at once, so a standby takes over within a retry period.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Resource as _;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::kube::api::{self, ApiError, Url};
use crate::metrics::Metrics;

/// Timings and identity for one election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This process's identity (its pod name, or hostname and pid).
    pub identity: String,
    /// How long a lease lasts without renewal: 15 s, client-go's default.
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it gives up: 10 s, client-go's.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew: 2 s, client-go's.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Checks what the API server would refuse, so that a typo is a usage error (exit 2)
    /// and not a standby that never leads: the namespace must be a DNS-1123 label, the
    /// name a DNS-1123 subdomain, the identity not empty, and the timings in client-go's
    /// order. An empty namespace passes: it stands for the context's, filled in at start.
    /// The error is one line naming the flag, the value and what would be right.
    pub fn validate(&self) -> Result<(), String> {
        if !self.namespace.is_empty() && !kubebridge_apimachinery::is_dns1123_label(&self.namespace)
        {
            return Err(format!(
                "--leader-elect-namespace {:?} is not a namespace: a namespace is a DNS-1123 label, at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit (e.g. \"kube-system\")",
                self.namespace
            ));
        }
        if kubebridge_apimachinery::dns1123_subdomain_error(&self.name).is_some() {
            return Err(format!(
                "--leader-elect-name {:?} is not a Lease name: a Lease name is a DNS-1123 subdomain, at most 253 lower-case letters, digits, '-' and '.', each '.'-separated part starting and ending with a letter or digit (e.g. \"kubebridge\")",
                self.name
            ));
        }
        if self.identity.trim().is_empty() {
            return Err(
                "--leader-elect-identity is empty: give each instance its own name (default: $POD_NAME, else hostname_pid)".into(),
            );
        }
        let (retry, renew, lease) = (self.retry_period, self.renew_deadline, self.lease_duration);
        if retry.is_zero() || retry >= renew || renew >= lease {
            return Err("leader election needs 0 < --leader-elect-retry-period < --leader-elect-renew-deadline < --leader-elect-lease-duration".into());
        }
        Ok(())
    }

    fn lease(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The client for lease requests: `config`'s, without kube's own retry layer, which
/// re-sends a request answered 429, 503 or 504 up to 15 times with growing pauses inside
/// what the election counts as one attempt. With it off, one attempt is one request and
/// the election does its own retrying, once per retry period.
pub fn lease_client(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    config.default_retry = false;
    kube::Client::try_from(config)
}

/// Why leadership could not be had or kept.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LeaderError {
    /// The API server refused, and retrying will not help (RBAC on leases, usually).
    #[error(
        "leader election on lease {namespace}/{name} failed: {source}; the account needs get, create and update on leases.coordination.k8s.io"
    )]
    Refused {
        namespace: String,
        name: String,
        #[source]
        source: ApiError,
    },
    /// Leadership ended without being released: the caller must stop publishing at once.
    #[error("lost the leader lease {lease}: {reason}; stopping so a standby can take over")]
    Lost {
        /// `namespace/name`.
        lease: String,
        /// What happened, for the operator.
        reason: String,
    },
}

/// What one attempt to acquire or renew found.
#[derive(Debug)]
enum Attempt {
    /// This process holds the lease now.
    Held,
    /// Another process holds it, and its lease has not expired.
    HeldBy(String),
    /// The attempt failed and the next may not: a timeout, a 5xx, a lost race.
    Failed {
        /// For the metric: `timeout`, `error` or `conflict`.
        reason: &'static str,
        /// For the log.
        detail: String,
    },
}

/// One participant in the election.
pub(crate) struct Elector {
    client: kube::Client,
    config: LeaseConfig,
    metrics: Metrics,
    /// The record last seen and when (local clock) it last changed.
    observed: Option<(LeaseSpec, Instant)>,
    /// The lease as this process last wrote it: what a release updates.
    written: Option<Lease>,
    /// When the attempt that last took or renewed the lease began.
    renewed_at: Option<Instant>,
}

impl Elector {
    /// A participant; nothing is sent until [`Elector::acquire`]. Give it a client
    /// from [`lease_client`], so that one attempt is one request.
    pub(crate) fn new(client: kube::Client, config: LeaseConfig, metrics: Metrics) -> Elector {
        Elector {
            client,
            config,
            metrics,
            observed: None,
            written: None,
            renewed_at: None,
        }
    }

    /// The leases collection of the lease's namespace, or with `named`, the lease itself.
    fn url(&self, named: bool) -> Url {
        let collection = Lease::url_path(&(), Some(&self.config.namespace));
        Url::new(if named {
            format!("{collection}/{}", self.config.name)
        } else {
            collection
        })
    }

    fn refused(&self, source: ApiError) -> LeaderError {
        LeaderError::Refused {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source,
        }
    }

    fn lost(&self, reason: String) -> LeaderError {
        self.metrics.lease_held(false);
        tracing::warn!(lease = %self.config.lease(), identity = %self.config.identity, %reason, "lost the leadership: stop publishing");
        LeaderError::Lost {
            lease: self.config.lease(),
            reason,
        }
    }

    /// One attempt, bounded by the retry period: a request that hangs is a failed attempt.
    async fn attempt(&mut self) -> Result<Attempt, LeaderError> {
        let bound = self.config.retry_period;
        let attempt = match tokio::time::timeout(bound, self.try_acquire_or_renew()).await {
            Ok(attempt) => attempt,
            Err(_) => Ok(Attempt::Failed {
                reason: "timeout",
                detail: format!(
                    "no answer within the retry period of {}",
                    humantime::format_duration(bound)
                ),
            }),
        };
        if let Ok(Attempt::Failed { reason, .. }) = &attempt {
            self.metrics.lease_attempt_failed(reason);
        }
        attempt
    }

    /// Tries once to take or renew the lease.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, LeaderError> {
        let existing: Option<Lease> = match api::get_json(&self.client, self.url(true)).await {
            Ok(lease) => Some(lease),
            Err(e) if e.code() == Some(404) => None,
            Err(e) if e.is_retryable() => {
                return Ok(Attempt::Failed {
                    reason: "error",
                    detail: e.to_string(),
                });
            }
            Err(e) => return Err(self.refused(e)),
        };
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    // The first holder, not a transition.
                    lease_transitions: Some(0),
                    ..held_spec(&self.config, LeaseSpec::default(), false)
                }),
            };
            return self.write("POST", self.url(false), &lease).await;
        };
        let spec = lease.spec.take().unwrap_or_default();
        // Follow changes of the record with the local clock (see the module docs).
        if self.observed.as_ref().is_none_or(|(seen, _)| *seen != spec) {
            self.observed = Some((spec.clone(), Instant::now()));
        }
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let held_by_me = holder == self.config.identity;
        // No holder: released (or never held), free at once.
        let expired = holder.is_empty()
            || self
                .observed
                .as_ref()
                .is_some_and(|(_, at)| at.elapsed() >= self.config.lease_duration);
        if !held_by_me && !expired {
            return Ok(Attempt::HeldBy(holder));
        }
        lease.spec = Some(held_spec(&self.config, spec, held_by_me));
        // The fetched metadata carries its resourceVersion, which makes the update
        // conditional: 409 if someone else wrote first.
        self.write("PUT", self.url(true), &lease).await
    }

    async fn write(
        &mut self,
        method: &'static str,
        url: Url,
        lease: &Lease,
    ) -> Result<Attempt, LeaderError> {
        let body = serde_json::to_value(lease).map_err(|e| {
            self.refused(ApiError::Decode {
                path: url.path().to_owned(),
                detail: format!("cannot encode the lease: {e}"),
            })
        })?;
        match api::send_json::<Lease>(&self.client, method, url, &body).await {
            Ok(mut lease) => {
                self.observed = Some((lease.spec.clone().unwrap_or_default(), Instant::now()));
                lease.metadata.managed_fields = None;
                self.written = Some(lease);
                Ok(Attempt::Held)
            }
            // Someone else created or updated it first: not ours this round.
            Err(e) if matches!(e.code(), Some(409)) => Ok(Attempt::Failed {
                reason: "conflict",
                detail: e.to_string(),
            }),
            Err(e) if e.is_retryable() => Ok(Attempt::Failed {
                reason: "error",
                detail: e.to_string(),
            }),
            Err(e) => Err(self.refused(e)),
        }
    }

    /// Waits until this process holds the lease, or `cancel`; `Ok(false)` when cancelled.
    /// An error is one retrying will not help (RBAC, usually).
    pub(crate) async fn acquire(
        &mut self,
        cancel: &CancellationToken,
    ) -> Result<bool, LeaderError> {
        let lease = self.config.lease();
        let mut standing_by_for = String::new();
        loop {
            let started = Instant::now();
            let attempt = tokio::select! {
                attempt = self.attempt() => attempt?,
                () = cancel.cancelled() => return Ok(false),
            };
            match attempt {
                Attempt::Held => {
                    self.renewed_at = Some(started);
                    self.metrics.lease_held(true);
                    tracing::info!(%lease, identity = %self.config.identity, "became the leader");
                    return Ok(true);
                }
                Attempt::HeldBy(holder) if holder != standing_by_for => {
                    tracing::info!(%lease, identity = %self.config.identity, %holder, "the lease is held by another instance; standing by");
                    standing_by_for = holder;
                }
                Attempt::HeldBy(_) => {}
                Attempt::Failed { detail, .. } => {
                    tracing::debug!(%lease, error = %detail, "leader election: no lease this round");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.retry_period) => {}
                () = cancel.cancelled() => return Ok(false),
            }
        }
    }

    /// Hands the lease this process just acquired to a task that renews it every retry
    /// period, and returns the handle the caller watches: see [`Leadership`].
    pub(crate) fn lead(self) -> Leadership {
        let stop = CancellationToken::new();
        let lease = self.config.lease();
        let identity = self.config.identity.clone();
        let metrics = self.metrics.clone();
        Leadership {
            task: Some(tokio::spawn(self.renew(stop.clone()))),
            stop,
            lease,
            identity,
            metrics,
        }
    }

    /// Renews until `stop`, then releases the lease. Ends with an error the moment
    /// leadership is gone: `renew_deadline` after the start of the last attempt that
    /// renewed (by the clock, whatever request is in flight), or when another holder shows.
    async fn renew(mut self, stop: CancellationToken) -> Result<(), LeaderError> {
        let period = self.config.retry_period;
        let mut renewed_at = self.renewed_at.unwrap_or_else(Instant::now);
        // Since the last renewal; empty while renewals succeed.
        let mut last_failure = String::new();
        loop {
            let deadline = renewed_at + self.config.renew_deadline;
            let missed = format!(
                "not renewed for the renew deadline of {} (last attempt: {})",
                humantime::format_duration(self.config.renew_deadline),
                if last_failure.is_empty() {
                    "none finished"
                } else {
                    &last_failure
                }
            );
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(deadline) => return Err(self.lost(missed)),
                () = stop.cancelled() => break,
                () = tokio::time::sleep(period) => {}
            }
            let started = Instant::now();
            // Not stopped by `stop`: an update in flight would make the release conflict.
            let attempt = tokio::select! {
                biased;
                () = tokio::time::sleep_until(deadline) => return Err(self.lost(missed)),
                attempt = self.attempt() => attempt,
            };
            let failure = match attempt {
                Ok(Attempt::Held) => {
                    if !last_failure.is_empty() {
                        tracing::info!(lease = %self.config.lease(), identity = %self.config.identity, "renewed the leader lease again");
                    }
                    renewed_at = started;
                    last_failure.clear();
                    continue;
                }
                Ok(Attempt::HeldBy(holder)) => {
                    return Err(self.lost(format!("{holder} holds it now")));
                }
                Ok(Attempt::Failed { detail, .. }) => detail,
                Err(e) => e.to_string(),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            tracing::warn!(lease = %self.config.lease(), identity = %self.config.identity, error = %failure, left = %humantime::format_duration(left), "could not renew the leader lease; retrying until the renew deadline");
            last_failure = failure;
        }
        self.release().await;
        Ok(())
    }

    /// Gives the lease up, as client-go's ReleaseOnCancel does: the holder cleared and a
    /// duration of 1 s, written only over this process's own last write (its
    /// resourceVersion), and given at most one retry period. A standby sees a lease with
    /// no holder as free and takes it at its next attempt.
    async fn release(&mut self) {
        self.metrics.lease_held(false);
        let lease_name = self.config.lease();
        let identity = self.config.identity.clone();
        let Some(mut lease) = self.written.take() else {
            return;
        };
        let spec = lease.spec.take().unwrap_or_default();
        let now = MicroTime(Timestamp::now());
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(String::new()),
            lease_duration_seconds: Some(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..spec
        });
        let url = self.url(true);
        let released = match serde_json::to_value(&lease) {
            Ok(body) => tokio::time::timeout(
                self.config.retry_period,
                api::send_json::<Lease>(&self.client, "PUT", url, &body),
            )
            .await
            .map_err(|_| "no answer within the retry period".to_owned())
            .and_then(|sent| sent.map_err(|e| e.to_string())),
            Err(e) => Err(format!("cannot encode the lease: {e}")),
        };
        match released {
            Ok(_) => {
                tracing::info!(lease = %lease_name, %identity, "released the leader lease; a standby can take over at once");
            }
            Err(error) => {
                tracing::warn!(lease = %lease_name, %identity, %error, expires_in = %humantime::format_duration(self.config.lease_duration), "could not release the leader lease; a standby takes over when it expires");
            }
        }
    }
}

/// The leadership this process holds: a task renews the lease in the background.
///
/// The caller publishes only while it holds this, and must select on
/// [`Leadership::lost`] beside its work: it resolves on *any* end of the renewal task
/// (the renew deadline passed, another holder, an error, a panic), so that no way of
/// dying leaves a leader publishing without a lease. On a clean shutdown, after the sinks
/// have drained, [`Leadership::release`] hands the lease over. Dropping it stops renewing
/// without releasing (the lease then expires in its own time).
pub(crate) struct Leadership {
    /// `None` once [`Leadership::lost`] has reported its end.
    task: Option<JoinHandle<Result<(), LeaderError>>>,
    stop: CancellationToken,
    /// `namespace/name`, and this process's identity in it, for messages.
    lease: String,
    identity: String,
    metrics: Metrics,
}

impl Leadership {
    /// Resolves when leadership is lost, for whatever reason, with the error to exit
    /// with: the caller must stop publishing at once. Cancel-safe (use it in `select!`).
    pub(crate) async fn lost(&mut self) -> LeaderError {
        let reason = match self.task.as_mut() {
            None => "the renewal task had already ended".to_owned(),
            Some(task) => {
                let ended = task.await;
                self.task = None;
                match ended {
                    Ok(Err(lost)) => return lost,
                    Ok(Ok(())) => "the renewal task stopped".to_owned(),
                    Err(e) if e.is_panic() => {
                        let panic = e.into_panic();
                        let message = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        format!("the renewal task panicked: {message}")
                    }
                    Err(e) => format!("the renewal task ended: {e}"),
                }
            }
        };
        self.metrics.lease_held(false);
        tracing::warn!(lease = %self.lease, identity = %self.identity, %reason, "lost the leadership: stop publishing");
        LeaderError::Lost {
            lease: self.lease.clone(),
            reason,
        }
    }

    /// Stops renewing and releases the lease (see [`Elector`]'s release), within about
    /// two retry periods: call it once the sinks have drained, never before (a standby
    /// starts publishing as soon as it is released). Leadership already lost is logged.
    pub(crate) async fn release(mut self) {
        self.stop.cancel();
        let Some(task) = self.task.take() else {
            return;
        };
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(lost)) => tracing::warn!(error = %lost, "leadership ended before its release"),
            Err(e) => {
                tracing::warn!(lease = %self.lease, error = %e, "the renewal task ended before the release")
            }
        }
    }

    /// A leadership whose renewal is `task`, for tests of how its end is reported.
    #[cfg(test)]
    fn from_task(lease: &str, task: JoinHandle<Result<(), LeaderError>>) -> Leadership {
        Leadership {
            task: Some(task),
            stop: CancellationToken::new(),
            lease: lease.to_owned(),
            identity: "me".to_owned(),
            metrics: Metrics::new(),
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The spec that says `config.identity` holds the lease, renewed now: `previous` is the
/// record read from the server, whose acquire time stands while `held_by_me`.
fn held_spec(config: &LeaseConfig, previous: LeaseSpec, held_by_me: bool) -> LeaseSpec {
    let now = MicroTime(Timestamp::now());
    let transitions = previous.lease_transitions.unwrap_or(0) + i32::from(!held_by_me);
    let duration = i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX);
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(duration.max(1)),
        acquire_time: match previous.acquire_time {
            Some(acquired) if held_by_me => Some(acquired),
            _ => Some(now.clone()),
        },
        renew_time: Some(now),
        lease_transitions: Some(transitions),
        ..previous
    }
}

#[cfg(test)]
mod tests;
