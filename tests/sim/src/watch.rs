//! Watch streams: initial state or history replay, then live events, bookmarks and selector transitions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kubebridge_apimachinery::{FieldSelector, LabelSelector};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::faults::{WatchFaults, WatchLine};
use crate::media::{self, Representation};
use crate::resources::ResourceType;
use crate::store::{Event, EventType, Store, StoredObject};

/// Which objects a watch (or list) selects.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub(crate) resource: String,
    pub(crate) namespace: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
}

impl Filter {
    /// Whether an object (already known to be of this resource) is selected.
    pub(crate) fn matches(&self, obj: &StoredObject) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| obj.namespace == ns)
            && self.labels.matches(&obj.labels)
            && self.fields.matches(|f| obj.field(f))
    }

    /// Translates a store event into what this watcher sees, like the watch cache: an object that starts
    /// matching arrives as ADDED, one that stops matching as DELETED (old state, new resourceVersion).
    pub(crate) fn translate(&self, event: &Event) -> Option<(&'static str, Arc<StoredObject>)> {
        if *event.resource != *self.resource {
            return None;
        }
        let now = self.matches(&event.object);
        match event.event_type {
            EventType::Added => now.then(|| ("ADDED", event.object.clone())),
            EventType::Deleted => now.then(|| ("DELETED", event.object.clone())),
            EventType::Modified => {
                let before = event.previous.as_ref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some(("MODIFIED", event.object.clone())),
                    (false, true) => Some(("ADDED", event.object.clone())),
                    (true, false) => {
                        let prev = event.previous.as_ref()?;
                        let mut v = prev.to_value();
                        v["metadata"]["resourceVersion"] =
                            Value::String(event.resource_version.to_string());
                        Some((
                            "DELETED",
                            Arc::new(StoredObject::from_value(&event.resource, &v)),
                        ))
                    }
                    (false, false) => None,
                }
            }
        }
    }
}

/// Watch query parameters after parsing.
#[derive(Debug, Clone, Default)]
pub(crate) struct WatchParams {
    pub(crate) resource_version: Option<String>,
    pub(crate) resource_version_match: Option<String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) bookmarks: bool,
    pub(crate) send_initial_events: Option<bool>,
    pub(crate) representation: Representation,
}

/// How to render events for one watcher.
struct Renderer {
    rt: Arc<ResourceType>,
    representation: Representation,
}

impl Renderer {
    fn event(&self, ty: &str, obj: &StoredObject) -> Bytes {
        let object = media::render_object(&self.rt, obj, self.representation);
        let mut out = Vec::with_capacity(object.len() + 32);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(ty.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        out.extend_from_slice(&object);
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    /// An injected line in the chunks it is sent in.
    fn injected(&self, line: WatchLine, rv: u64) -> Vec<Bytes> {
        let (kind, api_version) = (self.rt.kind.as_str(), self.rt.api_version());
        match line {
            WatchLine::Garbage => vec![Bytes::from_static(b"this is not JSON\n")],
            WatchLine::NoMetadata => {
                let event = json!({"type": "MODIFIED", "object": {"kind": kind, "apiVersion": api_version}});
                let mut out = serde_json::to_vec(&event).expect("JSON values serialize");
                out.push(b'\n');
                vec![Bytes::from(out)]
            }
            WatchLine::Oversized { bytes } => {
                const CHUNK: usize = 64 * 1024;
                let head = format!(
                    "{{\"type\":\"MODIFIED\",\"object\":{{\"kind\":\"{kind}\",\"apiVersion\":\"{api_version}\",\"metadata\":{{\"name\":\"oversized\",\"namespace\":\"default\",\"resourceVersion\":\"{rv}\",\"annotations\":{{\"big\":\""
                );
                let mut chunks = vec![Bytes::from(head)];
                let filler = Bytes::from(vec![b'x'; CHUNK]);
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(CHUNK);
                    chunks.push(filler.slice(..n));
                    left -= n;
                }
                chunks.push(Bytes::from_static(b"\"}}}}\n"));
                chunks
            }
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj =
            json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": meta});
        let mut line = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj}))
            .expect("JSON values serialize");
        line.push(b'\n');
        Bytes::from(line)
    }
}

/// Where the stream starts, decided under the store lock.
enum Start {
    Initial(Vec<Arc<StoredObject>>),
    Replay(Vec<Arc<Event>>),
    Expired(String),
}

/// Everything a running watch needs from the server.
pub(crate) struct WatchContext {
    pub(crate) store: Arc<Mutex<Store>>,
    pub(crate) faults: WatchFaults,
    pub(crate) bookmark_interval: Duration,
    pub(crate) watch_list: bool,
}

/// Validates the request, snapshots the starting point and subscribes atomically, then spawns the stream task.
pub(crate) fn start(
    ctx: WatchContext,
    rt: Arc<ResourceType>,
    filter: Filter,
    mut params: WatchParams,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    if ctx.faults.ignore_send_initial_events {
        params.send_initial_events = None;
        params.resource_version_match = None;
    }
    let send_initial = params.send_initial_events.unwrap_or(false);
    if params.send_initial_events.is_some() && !ctx.watch_list {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            &[("sendInitialEvents", "FieldValueForbidden", "Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled".to_string())],
        ));
    }
    if params.send_initial_events.is_some() {
        if params.resource_version_match.as_deref() != Some("NotOlderThan") {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "ListOptions",
                "",
                &[("resourceVersionMatch", "FieldValueForbidden", "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan".to_string())],
            ));
        }
        if send_initial && !params.bookmarks {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "ListOptions",
                "",
                &[(
                    "allowWatchBookmarks",
                    "FieldValueForbidden",
                    "Forbidden: allowWatchBookmarks required when sendInitialEvents is set"
                        .to_string(),
                )],
            ));
        }
    } else if params
        .resource_version_match
        .as_deref()
        .is_some_and(|m| !m.is_empty())
    {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            &[("resourceVersionMatch", "FieldValueForbidden", "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided".to_string())],
        ));
    }
    let requested: Option<u64> = match params.resource_version.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?,
        ),
    };

    let (start, start_rv, rx) = {
        let store = ctx.store.lock().unwrap_or_else(|p| p.into_inner());
        let current = store.resource_version();
        let rx = store.subscribe();
        let start = match requested {
            _ if ctx.faults.gone => Start::Expired(format!(
                "too old resource version: {} ({})",
                requested.unwrap_or(current),
                current + 1
            )),
            _ if send_initial => Start::Initial(snapshot(&store, &filter, current)),
            // sendInitialEvents=false explicitly: no synthetic events, start at the most recent state.
            None | Some(0) if params.send_initial_events == Some(false) => {
                Start::Replay(Vec::new())
            }
            None | Some(0) => Start::Initial(snapshot(&store, &filter, current)),
            Some(r) if r < store.compacted() => Start::Expired(format!(
                "too old resource version: {r} ({})",
                store.compacted()
            )),
            Some(r) => Start::Replay(store.history_after(r)),
        };
        let start_rv = match requested {
            Some(r) if r > 0 && !send_initial => r,
            _ => current,
        };
        (start, start_rv, rx)
    };

    let (tx, out) = mpsc::channel(256);
    let renderer = Renderer {
        rt,
        representation: params.representation,
    };
    tokio::spawn(run(
        ctx,
        renderer,
        filter,
        params,
        send_initial,
        start,
        start_rv,
        rx,
        tx,
    ));
    Ok(out)
}

fn snapshot(store: &Store, filter: &Filter, at: u64) -> Vec<Arc<StoredObject>> {
    let mut objs = Vec::new();
    store.scan(
        &filter.resource,
        filter.namespace.as_deref(),
        None,
        at,
        |_, obj| {
            if filter.matches(obj) {
                objs.push(obj.clone());
            }
            true
        },
    );
    objs
}

/// The sending end of one watch stream with what ends or mutes it.
struct Stream {
    tx: mpsc::Sender<Bytes>,
    faults: WatchFaults,
    deadline: Instant,
}

impl Stream {
    /// Sends one line unless the watch must end first; false means stop. A drop requested
    /// before this line was produced always wins, so a test that drops watches and then
    /// writes can rely on the write not reaching the old stream. A silenced watch sends
    /// nothing more: it waits for its end and reports stop.
    async fn send(&mut self, line: Bytes) -> bool {
        if self.faults.drop_signal.has_changed().unwrap_or(true) {
            return false;
        }
        if *self.faults.silence.borrow_and_update() {
            self.mute().await;
            return false;
        }
        tokio::select! {
            biased;
            _ = self.faults.drop_signal.changed() => false,
            _ = self.faults.silence.changed() => {
                self.mute().await;
                false
            }
            r = self.tx.send(line) => r.is_ok(),
            _ = tokio::time::sleep_until(self.deadline) => false,
        }
    }

    /// A half-open connection: nothing more is sent, the stream stays open until the
    /// client leaves, the watch times out or watches are dropped.
    async fn mute(&mut self) {
        tokio::select! {
            _ = self.faults.drop_signal.changed() => {}
            _ = tokio::time::sleep_until(self.deadline) => {}
            _ = self.tx.closed() => {}
        }
    }

    /// Sends an injected line, chunk by chunk.
    async fn send_injected(&mut self, renderer: &Renderer, line: WatchLine, rv: u64) -> bool {
        for chunk in renderer.injected(line, rv) {
            if !self.send(chunk).await {
                return false;
            }
        }
        true
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    ctx: WatchContext,
    renderer: Renderer,
    filter: Filter,
    params: WatchParams,
    send_initial: bool,
    start: Start,
    start_rv: u64,
    mut rx: broadcast::Receiver<Arc<Event>>,
    tx: mpsc::Sender<Bytes>,
) {
    // Far enough to never fire, short enough not to overflow Instant arithmetic.
    let deadline = Instant::now()
        + params
            .timeout
            .unwrap_or(Duration::from_secs(100 * 365 * 86_400));
    let poison = ctx.faults.poison;
    let mut out = Stream {
        tx,
        faults: ctx.faults,
        deadline,
    };
    let Some(mut last_rv) =
        send_start(start, start_rv, send_initial, &renderer, &filter, &mut out).await
    else {
        return;
    };
    if let Some(line) = poison
        && !out.send_injected(&renderer, line, last_rv).await
    {
        return;
    }
    let interval = ctx.bookmark_interval.max(Duration::from_millis(1));
    let mut bookmarks = tokio::time::interval_at(Instant::now() + interval, interval);
    bookmarks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Biased: a drop or timeout that is due ends the stream before more events.
            biased;
            _ = out.faults.drop_signal.changed() => return,
            _ = tokio::time::sleep_until(deadline) => return,
            _ = out.tx.closed() => return,
            _ = out.faults.silence.changed() => {
                if *out.faults.silence.borrow_and_update() {
                    out.mute().await;
                    return;
                }
            }
            Ok(line) = out.faults.injected.recv() => {
                if !out.send_injected(&renderer, line, last_rv).await {
                    return;
                }
            }
            received = rx.recv() => match received {
                Ok(ev) => {
                    if ev.resource_version <= last_rv {
                        continue;
                    }
                    last_rv = ev.resource_version;
                    if let Some((ty, obj)) = filter.translate(&ev)
                        && !out.send(renderer.event(ty, &obj)).await
                    {
                        return;
                    }
                }
                // A lagging watcher is cut off (the client re-watches from its last RV); closed = shutdown.
                Err(_) => return,
            },
            _ = bookmarks.tick(), if params.bookmarks => {
                // Drain what is already queued so the bookmark is as fresh as possible.
                loop {
                    match rx.try_recv() {
                        Ok(ev) => {
                            if ev.resource_version <= last_rv {
                                continue;
                            }
                            last_rv = ev.resource_version;
                            if let Some((ty, obj)) = filter.translate(&ev)
                                && !out.send(renderer.event(ty, &obj)).await
                            {
                                return;
                            }
                        }
                        Err(broadcast::error::TryRecvError::Empty) => break,
                        Err(_) => return,
                    }
                }
                // Writers publish under the store lock, so an empty queue under it means we saw everything.
                let bookmark_rv = {
                    let store = ctx.store.lock().unwrap_or_else(|p| p.into_inner());
                    if rx.is_empty() { store.resource_version().max(last_rv) } else { last_rv }
                };
                last_rv = bookmark_rv;
                if !out.send(renderer.bookmark(bookmark_rv, false)).await {
                    return;
                }
            }
        }
    }
}

/// Sends what precedes live events: an ERROR for an expired start, the initial objects (and
/// their closing bookmark), or the history replay. Returns the resourceVersion reached, or
/// None when the stream ends here.
async fn send_start(
    start: Start,
    start_rv: u64,
    send_initial: bool,
    renderer: &Renderer,
    filter: &Filter,
    out: &mut Stream,
) -> Option<u64> {
    let mut last_rv = start_rv;
    match start {
        Start::Expired(message) => {
            let status = ApiError::expired(message).status_body();
            let line = format!("{{\"type\":\"ERROR\",\"object\":{status}}}\n");
            out.send(Bytes::from(line)).await;
            return None;
        }
        Start::Initial(objs) => {
            for obj in objs {
                if !out.send(renderer.event("ADDED", &obj)).await {
                    return None;
                }
            }
            if send_initial && !out.send(renderer.bookmark(start_rv, true)).await {
                return None;
            }
        }
        Start::Replay(events) => {
            for ev in events {
                if let Some((ty, obj)) = filter.translate(&ev)
                    && !out.send(renderer.event(ty, &obj)).await
                {
                    return None;
                }
                last_rv = last_rv.max(ev.resource_version);
            }
        }
    }
    Some(last_rv)
}
