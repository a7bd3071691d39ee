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

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Resource as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::kube::api::{self, ApiError, Url};

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
    /// The leader could not renew within the deadline; it has stopped.
    #[error(
        "lost the leader lease {0}: could not renew it within the renew deadline; stopping so a standby can take over"
    )]
    Lost(String),
}

/// One participant in the election.
pub(crate) struct Elector {
    client: kube::Client,
    config: LeaseConfig,
    /// The record last seen and when (local clock) it last changed.
    observed: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    /// A participant; nothing is sent until [`Elector::acquire`].
    pub(crate) fn new(client: kube::Client, config: LeaseConfig) -> Elector {
        Elector {
            client,
            config,
            observed: None,
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

    /// Tries once to take or renew the lease. `Ok(true)` when this process holds it.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let existing: Option<Lease> = match api::get_json(&self.client, self.url(true)).await {
            Ok(lease) => Some(lease),
            Err(e) if e.code() == Some(404) => None,
            Err(e) if e.is_retryable() => {
                tracing::debug!(error = %e, "leader election: cannot read the lease");
                return Ok(false);
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
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        let held_by_me = holder == self.config.identity;
        let expired = holder.is_empty()
            || self
                .observed
                .as_ref()
                .is_some_and(|(_, at)| at.elapsed() >= self.config.lease_duration);
        if !held_by_me && !expired {
            return Ok(false);
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
    ) -> Result<bool, LeaderError> {
        let body = serde_json::to_value(lease).map_err(|e| {
            self.refused(ApiError::Decode {
                path: url.path().to_owned(),
                detail: format!("cannot encode the lease: {e}"),
            })
        })?;
        match api::send_json::<Lease>(&self.client, method, url, &body).await {
            Ok(lease) => {
                self.observed = Some((lease.spec.unwrap_or_default(), Instant::now()));
                Ok(true)
            }
            // Someone else created or updated it first: not ours this round.
            Err(e) if matches!(e.code(), Some(409)) || e.is_retryable() => {
                tracing::debug!(error = %e, "leader election: lost a race for the lease");
                Ok(false)
            }
            Err(e) => Err(self.refused(e)),
        }
    }

    /// Waits until this process holds the lease, or `cancel`; `Ok(false)` when cancelled.
    pub(crate) async fn acquire(
        &mut self,
        cancel: &CancellationToken,
    ) -> Result<bool, LeaderError> {
        loop {
            if self.try_acquire_or_renew().await? {
                tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became the leader");
                return Ok(true);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.retry_period) => {}
                _ = cancel.cancelled() => return Ok(false),
            }
        }
    }

    /// Renews every retry period until `cancel`; returns an error the moment the lease
    /// has gone unrenewed for the renew deadline (the caller must stop publishing).
    pub(crate) async fn keep(mut self, cancel: CancellationToken) -> Result<(), LeaderError> {
        let mut last_renewed = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.config.retry_period) => {}
                _ = cancel.cancelled() => return Ok(()),
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) | Err(_) if last_renewed.elapsed() < self.config.renew_deadline => {}
                Ok(false) | Err(_) => {
                    return Err(LeaderError::Lost(format!(
                        "{}/{}",
                        self.config.namespace, self.config.name
                    )));
                }
            }
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
mod tests {
    use super::*;

    fn config() -> LeaseConfig {
        LeaseConfig {
            namespace: "default".into(),
            name: "kubebridge".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    fn at(seconds: i64) -> Option<MicroTime> {
        Timestamp::from_second(seconds).ok().map(MicroTime)
    }

    #[test]
    fn a_renewal_keeps_the_acquire_time_and_the_transition_count() {
        let mine = LeaseSpec {
            holder_identity: Some("me".into()),
            acquire_time: at(1_000),
            renew_time: at(1_010),
            lease_transitions: Some(3),
            preferred_holder: Some("me".into()),
            ..LeaseSpec::default()
        };
        let renewed = held_spec(&config(), mine, true);
        assert_eq!(renewed.acquire_time, at(1_000));
        assert_eq!(renewed.lease_transitions, Some(3));
        assert_eq!(renewed.lease_duration_seconds, Some(15));
        assert_eq!(renewed.preferred_holder.as_deref(), Some("me"));
        assert!(renewed.renew_time > at(1_010));
    }

    #[test]
    fn a_takeover_counts_a_transition_and_acquires_now() {
        let theirs = LeaseSpec {
            holder_identity: Some("other".into()),
            acquire_time: at(1_000),
            renew_time: at(1_010),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        };
        let taken = held_spec(&config(), theirs, false);
        assert_eq!(taken.holder_identity.as_deref(), Some("me"));
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, taken.renew_time);
    }

    #[test]
    fn the_lease_is_encoded_as_the_api_expects() {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some("kubebridge".into()),
                namespace: Some("default".into()),
                resource_version: Some("42".into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                renew_time: at(0),
                ..LeaseSpec::default()
            }),
        };
        let body = serde_json::to_value(&lease).expect("encodes");
        assert_eq!(body["apiVersion"], "coordination.k8s.io/v1");
        assert_eq!(body["kind"], "Lease");
        assert_eq!(body["metadata"]["resourceVersion"], "42");
        assert_eq!(body["spec"]["renewTime"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            Lease::url_path(&(), Some("default")),
            "/apis/coordination.k8s.io/v1/namespaces/default/leases"
        );
    }
}
