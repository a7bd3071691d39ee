//! Fault injection (dropped watches, compaction, delays, failures, RBAC denials) and per-verb request counters.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::ApiError;
use crate::store::Store;

/// A failure injected by [`Faults::fail_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 500 InternalError.
    InternalError,
    /// 429 TooManyRequests with a `Retry-After` header, like API priority and fairness rejecting a request.
    TooManyRequests {
        /// Seconds the client is told to wait.
        retry_after_secs: u32,
    },
}

#[derive(Default)]
struct FaultState {
    delay: Duration,
    pending: VecDeque<Failure>,
    forbidden: BTreeSet<(String, String)>,
    counts: BTreeMap<(String, String), u64>,
}

/// Fault hooks of a running [`crate::Sim`]; every method acts immediately.
pub struct Faults {
    state: Mutex<FaultState>,
    store: Arc<Mutex<Store>>,
    drop_tx: tokio::sync::watch::Sender<u64>,
}

impl Faults {
    pub(crate) fn new(store: Arc<Mutex<Store>>) -> Faults {
        let (drop_tx, _) = tokio::sync::watch::channel(0);
        Faults {
            state: Mutex::new(FaultState::default()),
            store,
            drop_tx,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FaultState> {
        // A panic while holding this lock leaves only counters behind; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends every open watch stream now; the chunked body terminates cleanly, as when an apiserver restarts.
    pub fn drop_watches(&self) {
        self.drop_tx.send_modify(|g| *g += 1);
    }

    /// Compacts history up to the current resourceVersion: older watch RVs and continue tokens expire.
    pub fn compact(&self) {
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .compact_all();
    }

    /// Delays every response by `delay` (zero disables).
    pub fn set_delay(&self, delay: Duration) {
        self.state().delay = delay;
    }

    /// Makes the next `n` API requests (not discovery) fail with `failure`.
    pub fn fail_next(&self, n: u32, failure: Failure) {
        let mut st = self.state();
        for _ in 0..n {
            st.pending.push_back(failure);
        }
    }

    /// From now on, `verb` on `resource` ("pods", "deployments.apps") answers 403 Forbidden.
    pub fn forbid(&self, resource: &str, verb: &str) {
        self.state()
            .forbidden
            .insert((resource.to_string(), verb.to_string()));
    }

    pub(crate) fn delay(&self) -> Duration {
        self.state().delay
    }

    pub(crate) fn drop_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.drop_tx.subscribe()
    }

    /// Counts an API request and returns the injected error it must fail with, if any.
    pub(crate) fn admit(
        &self,
        verb: &str,
        resource: &str,
        group: &str,
        namespace: Option<&str>,
    ) -> Option<ApiError> {
        let mut st = self.state();
        *st.counts
            .entry((verb.to_string(), resource.to_string()))
            .or_default() += 1;
        if st
            .forbidden
            .contains(&(resource.to_string(), verb.to_string()))
        {
            let plural = resource.split('.').next().unwrap_or(resource);
            let scope = match namespace {
                Some(ns) => format!("in the namespace \"{ns}\""),
                None => "at the cluster scope".to_string(),
            };
            return Some(
                ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{resource} is forbidden: User \"system:anonymous\" cannot {verb} resource \"{plural}\" in API group \"{group}\" {scope}"
                    ),
                )
                .with_details("", group, plural),
            );
        }
        match st.pending.pop_front()? {
            Failure::InternalError => Some(ApiError::internal("injected failure")),
            Failure::TooManyRequests { retry_after_secs } => {
                let mut e = ApiError::new(
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                );
                e.retry_after = Some(retry_after_secs);
                Some(e)
            }
        }
    }

    /// Counts a request no fault applies to (a discovery document).
    pub(crate) fn tally(&self, verb: &str, resource: &str) {
        *self
            .state()
            .counts
            .entry((verb.to_string(), resource.to_string()))
            .or_default() += 1;
    }

    pub(crate) fn count(&self, verb: &str, resource: &str) -> u64 {
        self.state()
            .counts
            .get(&(verb.to_string(), resource.to_string()))
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.state().counts.clone()
    }
}
