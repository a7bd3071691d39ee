//! Fault injection and per-verb request counters.
//!
//! Faults act on requests (delays, injected failures, RBAC denials, per-resource rules
//! that hang or answer a status), on watch streams (drops, silence, 410 on every watch,
//! injected lines, watch-list requests served as plain watches) and on the store
//! (compaction, a restart that loses the watch cache).

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

/// A line that is not a well-formed watch event, for [`Faults::inject_watch_line`] and
/// [`Faults::poison_watches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchLine {
    /// `this is not JSON`: a line no decoder accepts.
    Garbage,
    /// A well-formed `MODIFIED` event whose object has a kind and apiVersion but no
    /// `metadata` (no name, no resourceVersion).
    NoMetadata,
    /// A `MODIFIED` event of about `bytes` bytes (an object with one huge annotation),
    /// sent in 64 KiB chunks so the line arrives piecemeal, newline last.
    Oversized {
        /// The approximate length of the line.
        bytes: usize,
    },
}

/// What requests on one resource get from [`Faults::set_rule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The request is read and then never answered until the rule is cleared (then it
    /// is served normally, as a server that was stuck and recovered).
    Hang,
    /// The request is answered with this HTTP status and a metav1.Status body
    /// (503 ServiceUnavailable, 500 InternalError, 504 Timeout, ...).
    Status(u16),
}

#[derive(Default)]
struct FaultState {
    delay: Duration,
    pending: VecDeque<Failure>,
    forbidden: BTreeSet<(String, String)>,
    counts: BTreeMap<(String, String), u64>,
    rules: BTreeMap<String, Rule>,
    every_watch_gone: bool,
    poison: Option<WatchLine>,
    ignore_send_initial_events: bool,
}

/// What a watch stream reads from the fault hooks when it starts.
pub(crate) struct WatchFaults {
    /// Ends the stream when it changes ([`Faults::drop_watches`]).
    pub(crate) drop_signal: tokio::sync::watch::Receiver<u64>,
    /// True while watches are silenced ([`Faults::silence_watches`]).
    pub(crate) silence: tokio::sync::watch::Receiver<bool>,
    /// Lines to send on this stream as they come ([`Faults::inject_watch_line`]).
    pub(crate) injected: tokio::sync::broadcast::Receiver<WatchLine>,
    /// A line this stream sends first ([`Faults::poison_watches`]).
    pub(crate) poison: Option<WatchLine>,
    /// Whether this watch is answered with a 410 ERROR event ([`Faults::expire_every_watch`]).
    pub(crate) gone: bool,
    /// Whether `sendInitialEvents` is ignored ([`Faults::ignore_send_initial_events`]).
    pub(crate) ignore_send_initial_events: bool,
}

/// Fault hooks of a running [`crate::Sim`]; every method acts immediately.
pub struct Faults {
    state: Mutex<FaultState>,
    store: Arc<Mutex<Store>>,
    drop_tx: tokio::sync::watch::Sender<u64>,
    silence_tx: tokio::sync::watch::Sender<bool>,
    inject_tx: tokio::sync::broadcast::Sender<WatchLine>,
    /// Bumped whenever a rule changes, so hung requests look again.
    rules_tx: tokio::sync::watch::Sender<u64>,
}

impl Faults {
    pub(crate) fn new(store: Arc<Mutex<Store>>) -> Faults {
        let (drop_tx, _) = tokio::sync::watch::channel(0);
        let (silence_tx, _) = tokio::sync::watch::channel(false);
        let (inject_tx, _) = tokio::sync::broadcast::channel(64);
        let (rules_tx, _) = tokio::sync::watch::channel(0);
        Faults {
            state: Mutex::new(FaultState::default()),
            store,
            drop_tx,
            silence_tx,
            inject_tx,
            rules_tx,
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

    /// An API server restart that loses its watch cache: every open watch ends (as
    /// [`Faults::drop_watches`]) and history is compacted past the current
    /// resourceVersion (one more commit without an event, as the restarted server's own
    /// writes), so every resume from a resourceVersion a client holds gets 410 Gone and
    /// every continue token expires; a client must relist.
    pub fn restart(&self) {
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .restart();
        self.drop_watches();
    }

    /// `on`: every open watch goes silent (no events, no bookmarks, no end: a half-open
    /// connection), and so does every watch opened while it is on. `off`: watches opened
    /// from now on are served normally; a stream that went silent stays silent until the
    /// client closes it or [`Faults::drop_watches`] ends it, as a dead connection does.
    pub fn silence_watches(&self, on: bool) {
        self.silence_tx.send_replace(on);
    }

    /// `on`: every watch request is answered as one from a compacted resourceVersion,
    /// a 200 stream with one `ERROR` event holding a 410 Expired Status, then the end;
    /// lists are served normally. `off`: watches are served normally again.
    pub fn expire_every_watch(&self, on: bool) {
        self.state().every_watch_gone = on;
    }

    /// Sends `line` once on every open watch, between two events; returns how many
    /// watches it went to. Silent watches do not send it.
    pub fn inject_watch_line(&self, line: WatchLine) -> usize {
        self.inject_tx.send(line).unwrap_or(0)
    }

    /// `Some(line)`: every watch opened from now on sends `line` right after its initial
    /// state or replay, before any live event, so a client that resumes after failing on
    /// it meets it again (a poisoned position in history). `None` stops it.
    pub fn poison_watches(&self, line: Option<WatchLine>) {
        self.state().poison = line;
    }

    /// Sets (`Some`) or clears (`None`) the rule for every request on `resource`, the
    /// resource key `plural[.group]` ("leases.coordination.k8s.io", "pods"), whatever
    /// the verb; discovery is not affected. Requests are still counted.
    pub fn set_rule(&self, resource: &str, rule: Option<Rule>) {
        let mut st = self.state();
        match rule {
            Some(r) => st.rules.insert(resource.to_string(), r),
            None => st.rules.remove(resource),
        };
        drop(st);
        self.rules_tx.send_modify(|g| *g += 1);
    }

    /// `on`: watch requests with `sendInitialEvents` are served as plain watches (the
    /// parameter and `resourceVersionMatch` ignored: no initial-events-end bookmark), as
    /// an aggregated API server or a proxy that does not know the WatchList feature.
    pub fn ignore_send_initial_events(&self, on: bool) {
        self.state().ignore_send_initial_events = on;
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

    /// The fault hooks a watch starting now follows.
    pub(crate) fn watch_faults(&self) -> WatchFaults {
        let st = self.state();
        WatchFaults {
            drop_signal: self.drop_tx.subscribe(),
            silence: self.silence_tx.subscribe(),
            injected: self.inject_tx.subscribe(),
            poison: st.poison,
            gone: st.every_watch_gone,
            ignore_send_initial_events: st.ignore_send_initial_events,
        }
    }

    /// Applies the rule for `resource`, if any: waits while it says hang, and returns the
    /// error a status rule answers with.
    pub(crate) async fn apply_rule(&self, resource: &str) -> Option<ApiError> {
        let mut changed = self.rules_tx.subscribe();
        loop {
            let rule = self.state().rules.get(resource).copied();
            match rule {
                None => return None,
                Some(Rule::Status(code)) => return Some(rule_error(code, resource)),
                Some(Rule::Hang) => {
                    if changed.changed().await.is_err() {
                        return None;
                    }
                }
            }
        }
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

/// The error a [`Rule::Status`] answers with, reason and message as the API server's.
fn rule_error(code: u16, resource: &str) -> ApiError {
    let (reason, message) = match code {
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
        504 => (
            "Timeout",
            "the server was unable to return a response in the time allotted",
        ),
        429 => (
            "TooManyRequests",
            "Too many requests, please try again later.",
        ),
        500 => ("InternalError", "Internal error occurred: injected failure"),
        _ => ("", "injected failure"),
    };
    ApiError::new(code, reason, format!("{message} (injected on {resource})"))
}
