//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection
//! does it: only the holder runs informers and sinks; a standby takes over once the
//! lease has gone unrenewed for its duration; a leader that cannot renew within its
//! deadline stops at once.
//!
//! Expiry is judged by the standby's own clock: a lease counts as expired when its
//! record (holder, renewTime) has not changed for `lease_duration` since this process
//! last saw it change, so clock skew between nodes cannot cause two leaders.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{Value, json};
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
pub enum LeaderError {
    /// The API server refused, and retrying will not help (RBAC on leases, usually).
    #[error(
        "leader election on lease {namespace}/{name} failed: {source}; the account needs get, create and update on leases.coordination.k8s.io"
    )]
    Refused {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// What the server said.
        #[source]
        source: ApiError,
    },
    /// The leader could not renew within the deadline; it has stopped.
    #[error(
        "lost the leader lease {0}: could not renew it within the renew deadline; stopping so a standby can take over"
    )]
    Lost(String),
}

#[derive(Deserialize, Default, Clone, PartialEq, Eq, Debug)]
#[serde(rename_all = "camelCase")]
struct LeaseSpec {
    #[serde(default)]
    holder_identity: Option<String>,
    #[serde(default)]
    renew_time: Option<String>,
    #[serde(default)]
    lease_transitions: Option<i64>,
}

#[derive(Deserialize)]
struct Lease {
    metadata: LeaseMeta,
    #[serde(default)]
    spec: LeaseSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeaseMeta {
    resource_version: String,
}

/// One participant in the election.
pub struct Elector {
    client: kube::Client,
    config: LeaseConfig,
    /// The record last seen and when (local clock) it last changed.
    observed: Option<(LeaseSpec, Instant)>,
}

fn micro_time(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

impl Elector {
    /// A participant; nothing is sent until [`Elector::acquire`].
    pub fn new(client: kube::Client, config: LeaseConfig) -> Elector {
        Elector {
            client,
            config,
            observed: None,
        }
    }

    fn collection(&self) -> String {
        format!(
            "/apis/coordination.k8s.io/v1/namespaces/{}/leases",
            self.config.namespace
        )
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
        let now = SystemTime::now();
        let url = Url::new(format!("{}/{}", self.collection(), self.config.name));
        let existing: Option<Lease> = match api::get_json(&self.client, url).await {
            Ok(lease) => Some(lease),
            Err(e) if e.code() == Some(404) => None,
            Err(e) if e.is_retryable() => {
                tracing::debug!(error = %e, "leader election: cannot read the lease");
                return Ok(false);
            }
            Err(e) => return Err(self.refused(e)),
        };
        let me = self.config.identity.clone();
        let duration = self.config.lease_duration.as_secs().max(1);
        let Some(lease) = existing else {
            let body = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.config.name, "namespace": self.config.namespace},
                "spec": {"holderIdentity": me, "leaseDurationSeconds": duration,
                         "acquireTime": micro_time(now), "renewTime": micro_time(now), "leaseTransitions": 0}
            });
            return self.write("POST", Url::new(self.collection()), &body).await;
        };
        // Follow changes of the record with the local clock (see the module docs).
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|(spec, _)| *spec != lease.spec);
        if changed {
            self.observed = Some((lease.spec.clone(), Instant::now()));
        }
        let held_by_me = lease.spec.holder_identity.as_deref() == Some(me.as_str());
        let expired = self
            .observed
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() >= self.config.lease_duration)
            || lease
                .spec
                .holder_identity
                .as_deref()
                .is_none_or(str::is_empty);
        if !held_by_me && !expired {
            return Ok(false);
        }
        let transitions = lease.spec.lease_transitions.unwrap_or(0) + i64::from(!held_by_me);
        let mut spec = json!({"holderIdentity": me, "leaseDurationSeconds": duration,
                              "renewTime": micro_time(now), "leaseTransitions": transitions});
        if !held_by_me {
            spec["acquireTime"] = Value::String(micro_time(now));
        }
        let body = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            // The resourceVersion makes the update conditional: 409 if someone else wrote first.
            "metadata": {"name": self.config.name, "namespace": self.config.namespace,
                         "resourceVersion": lease.metadata.resource_version},
            "spec": spec
        });
        let url = Url::new(format!("{}/{}", self.collection(), self.config.name));
        self.write("PUT", url, &body).await
    }

    async fn write(
        &mut self,
        method: &'static str,
        url: Url,
        body: &Value,
    ) -> Result<bool, LeaderError> {
        match api::send_json::<Lease>(&self.client, method, url, body).await {
            Ok(lease) => {
                self.observed = Some((lease.spec, Instant::now()));
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
    pub async fn acquire(&mut self, cancel: &CancellationToken) -> Result<bool, LeaderError> {
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
    pub async fn keep(mut self, cancel: CancellationToken) -> Result<(), LeaderError> {
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
