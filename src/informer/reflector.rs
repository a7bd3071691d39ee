//! The reflector: LIST (paginated) or watch-list, then WATCH from the list's
//! resourceVersion, resuming after a dropped watch and relisting after 410 Gone, with
//! backoff between failures. Like kube-runtime's watcher, it is a state machine
//! ([`State`]) advanced by one step function and read as a stream of [`Delta`]s.

use std::ops::Range;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::wire::{self, ListBody, WatchEvent};
use super::{Delta, RawObject};
use crate::kube::api::{self, ApiError, Url, WatchLine};
use crate::kube::discovery::ApiResource;
use crate::metrics::Metrics;

/// How the reflector talks to the API server.
#[derive(Debug, Clone)]
pub struct ReflectorConfig {
    /// Objects per LIST page (`limit`).
    pub page_size: u32,
    /// Server-side watch timeout, drawn at random from this range for every watch so
    /// that many watches do not all reconnect at once.
    pub watch_timeout_secs: Range<u64>,
    /// Get the initial state through WATCH with `sendInitialEvents=true` instead of LIST.
    pub watch_list: bool,
    /// Stop after the initial list (`--once`).
    pub once: bool,
    /// Show LIST progress on stderr (when it is a terminal).
    pub progress: bool,
}

impl Default for ReflectorConfig {
    fn default() -> Self {
        ReflectorConfig {
            page_size: default_page_size(),
            watch_timeout_secs: default_watch_timeout_secs(),
            watch_list: false,
            once: false,
            progress: false,
        }
    }
}

/// 500 objects per page: client-go's and kube-rs's default, a page of ordinary pods is a
/// few megabytes.
pub fn default_page_size() -> u32 {
    500
}

/// The server ends each watch after 150 to 290 s (drawn per watch) and the reflector
/// resumes it; client-go draws from 5 to 10 minutes. Only the server ends a watch: kube's
/// client sets no read timeout (`kube::Config::read_timeout` is `None`), so a connection
/// that dies without closing is not noticed by this timeout.
pub fn default_watch_timeout_secs() -> Range<u64> {
    150..290
}

/// A failure that retrying cannot fix; the informer stops and kubebridge exits.
#[derive(Debug, thiserror::Error)]
pub enum ReflectorError {
    /// RBAC does not allow the verb on the resource.
    #[error(
        "not allowed to {verb} {resource}{scope}: the ServiceAccount or user needs a (Cluster)Role rule \
         {{apiGroups: [\"{group}\"], resources: [\"{plural}\"], verbs: [\"list\", \"watch\"]}} (server said: {message})"
    )]
    Forbidden {
        /// The verb that was refused.
        verb: &'static str,
        /// The resource, kubectl style.
        resource: String,
        /// ` in namespace "x"` or empty.
        scope: String,
        /// API group for the rule.
        group: String,
        /// Plural name for the rule.
        plural: String,
        /// The server's message.
        message: String,
    },
    /// The server refused the request as malformed (a bad selector, usually).
    #[error("the API server rejected the request for {resource}: {message}")]
    BadRequest {
        /// The resource, kubectl style.
        resource: String,
        /// The server's message.
        message: String,
    },
    /// Any other refusal that will not change by retrying (401, 404, ...).
    #[error("cannot {verb} {resource}: {source}")]
    Permanent {
        /// The verb that failed.
        verb: &'static str,
        /// The resource, kubectl style.
        resource: String,
        /// The API error.
        #[source]
        source: ApiError,
    },
}

impl ReflectorError {
    /// Whether the user's input caused it (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, ReflectorError::BadRequest { .. })
    }
}

/// Lists and watches one resource in one scope, emitting deltas in order.
pub struct Reflector {
    name: String,
    client: kube::Client,
    resource: ApiResource,
    namespace: Option<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
    config: ReflectorConfig,
    backoff: Backoff,
    metrics: Metrics,
    /// How complete lists are taken. Starts as the config says; a server that refuses
    /// watch-list turns it into `List` for the rest of the run (see [`State::Empty`]).
    lists_by: ListBy,
}

/// How the reflector takes a complete list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListBy {
    /// LIST, in pages of `page_size`.
    List,
    /// WATCH with `sendInitialEvents=true`: the state arrives as events, then a bookmark.
    WatchList,
}

/// Where the reflector is. [`Reflector::step`] takes one state to the next; each variant
/// says what moves it on. In short:
///
/// ```text
/// Empty ─┬─> Listing ──(last page: Replace)──> Listed ──(open)──> Watching ──(closed)──> Listed
///        └─> WatchListing ──(end of initial events: Replace)────> Watching
/// 410 Gone -> Empty (relist);  other failures -> Backoff -> the state that retries them
/// ```
///
/// Relists (`kubebridge_relists_total`) and watch restarts
/// (`kubebridge_watch_restarts_total`) are counted on the transitions named below, with
/// the reason in quotes. Every failure takes one path, [`Reflector::retry`]: a permanent
/// one (403, 400, 404, ...) ends the reflector with a [`ReflectorError`]; any other goes
/// to [`State::Backoff`] and then to the state that retries it.
enum State {
    /// No list in hand: the start, after the watch's resourceVersion expired, or after a
    /// list was cut short. `initial`: whether the list to come is the informer's first.
    ///
    /// - lists by LIST -> `Listing` from the first page (no request yet);
    /// - lists by watch-list -> the watch-list request opens -> `WatchListing`;
    /// - the server refuses watch-list (400/422) -> LIST from now on -> `Empty`;
    /// - the watch-list request fails otherwise -> `Backoff` -> `Empty`.
    Empty {
        /// Whether the list to come is the informer's first.
        initial: bool,
    },
    /// A LIST in progress: the continue token of the next page and the objects so far.
    ///
    /// - a page with a continue token -> `Listing` (next page);
    /// - the last page -> emits `Replace` -> `Listed` (with `once`: -> `Done`);
    /// - 410 Gone on a continue token (churn outran the server's compaction window) ->
    ///   relist "expired" -> `Listing` again in one unpaginated request, as client-go's
    ///   pager does, because paginating again could expire again forever;
    /// - another failure -> `Backoff` -> `Empty`; if pages had arrived, they are thrown
    ///   away: relist "restarted".
    Listing(Pages),
    /// A watch-list in progress: objects gather until the end-of-initial-events bookmark.
    ///
    /// - an object event -> gathered -> `WatchListing`; another bookmark -> `WatchListing`;
    /// - the end-of-initial-events bookmark -> emits `Replace` -> `Watching` on the same
    ///   stream;
    /// - the stream ends first -> relist "restarted" -> `Empty`;
    /// - 410 Gone -> relist "expired" -> `Empty`;
    /// - another failure (or an end bookmark without a resourceVersion, which leaves
    ///   nothing to watch from) -> relist "restarted" -> `Backoff` -> `Empty`.
    WatchListing(InitialEvents),
    /// A resourceVersion to watch from and no watch open: after a LIST, or after a
    /// watch ended.
    ///
    /// - the watch opens -> `Watching`;
    /// - 410 Gone (the resourceVersion is older than the server's history) -> relist
    ///   "expired" -> `Empty`;
    /// - another failure -> watch restart "error" -> `Backoff` -> `Listed` (same version).
    Listed {
        /// Where the watch starts.
        resource_version: String,
    },
    /// A watch open, at `resource_version` (the last event or bookmark).
    ///
    /// - an object event -> emits `Added`/`Modified`/`Deleted` -> `Watching`;
    /// - a bookmark -> `Watching` at its version; an unknown event type -> ignored;
    /// - the server closes the watch (its timeout, a restart, a dropped connection) ->
    ///   watch restart "closed" -> `Listed` at the last version; after a short `Backoff`
    ///   if the watch heard nothing, so a watch that ends at once cannot spin;
    /// - 410 Gone (an `ERROR` event) -> relist "expired" -> `Empty`;
    /// - another failure (transport, an `ERROR` event, an undecodable line) -> watch
    ///   restart "error" -> `Backoff` -> `Listed` at the last version.
    Watching {
        /// The last resourceVersion the watch reached.
        resource_version: String,
        /// The open watch.
        watch: Watch,
    },
    /// Waiting after a failure (the Retry-After the server asked for, or the backoff),
    /// then `then`.
    Backoff {
        /// How long.
        delay: Duration,
        /// The state that retries what failed.
        then: Box<State>,
    },
    /// With `once`, the initial list has been handed on: the stream of deltas ends.
    Done,
}

/// A LIST in progress.
struct Pages {
    /// Whether this is the informer's first list.
    initial: bool,
    /// The token for the next page; `None` before the first.
    continue_token: Option<String>,
    /// Whether to ask for pages (`limit`); not after a continue token expired.
    paginate: bool,
    /// The objects of the pages so far.
    objects: Vec<RawObject>,
}

impl Pages {
    fn first(initial: bool, paginate: bool) -> Self {
        Pages {
            initial,
            continue_token: None,
            paginate,
            objects: Vec::new(),
        }
    }
}

/// A watch-list in progress.
struct InitialEvents {
    /// Whether this is the informer's first list.
    initial: bool,
    /// The watch the events arrive on; it goes on as the `Watching` watch.
    watch: Watch,
    /// The objects so far.
    objects: Vec<RawObject>,
    /// The last resourceVersion an event or bookmark carried.
    resource_version: Option<String>,
}

/// An open watch: its lines, and how many events it has carried.
struct Watch {
    lines: BoxStream<'static, WatchLine>,
    /// The request path, for errors.
    path: String,
    /// Events (bookmarks included) heard so far.
    heard: usize,
}

/// What one step produces: maybe a delta, and the next state; or the permanent failure
/// that ends the reflector (boxed: it is large, and rare).
type Step = Result<(Option<Delta>, State), Box<ReflectorError>>;

impl Reflector {
    /// A reflector called `name` (for logs and metrics) for `resource`, in `namespace`
    /// (all namespaces when `None`), counting what happens in `metrics`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: String,
        client: kube::Client,
        resource: ApiResource,
        namespace: Option<String>,
        label_selector: Option<String>,
        field_selector: Option<String>,
        config: ReflectorConfig,
        metrics: Metrics,
    ) -> Self {
        // `--once` wants a plain list: a watch-list would keep a watch open for nothing.
        let lists_by = if config.watch_list && !config.once {
            ListBy::WatchList
        } else {
            ListBy::List
        };
        Reflector {
            name,
            client,
            resource,
            namespace,
            label_selector,
            field_selector,
            config,
            backoff: Backoff::default(),
            metrics,
            lists_by,
        }
    }

    /// Runs until cancelled, until `deltas` is closed, or (with `once`) after the
    /// initial list. Returns an error only for failures retrying cannot fix.
    pub async fn run(
        self,
        deltas: mpsc::Sender<Delta>,
        cancel: CancellationToken,
    ) -> Result<(), ReflectorError> {
        let mut stream = std::pin::pin!(self.into_stream());
        loop {
            let next = tokio::select! {
                next = stream.next() => next,
                () = cancel.cancelled() => return Ok(()),
                () = deltas.closed() => return Ok(()),
            };
            let Some(delta) = next.transpose()? else {
                return Ok(());
            };
            // Not cancellable: a delta taken from the server is handed on, so the
            // processor can deliver it within the shutdown grace.
            if deltas.send(delta).await.is_err() {
                return Ok(());
            }
        }
    }

    /// The deltas, in order, as a stream: an `unfold` over [`State`]. It ends after the
    /// initial list with `once`, and after the first (permanent) error.
    pub fn into_stream(self) -> impl Stream<Item = Result<Delta, ReflectorError>> + Send {
        let start = State::Empty { initial: true };
        futures::stream::unfold(Some((self, start)), |machine| async move {
            let (mut reflector, state) = machine?;
            match reflector.step_trampolined(state).await {
                Ok((Some(delta), next)) => Some((Ok(delta), Some((reflector, next)))),
                Ok((None, _done)) => None,
                Err(e) => Some((Err(*e), None)),
            }
        })
    }

    /// Steps until a delta comes out, or until `Done` (returned with no delta). Any
    /// delta means the server is answering, so the backoff starts over.
    async fn step_trampolined(&mut self, mut state: State) -> Step {
        loop {
            if matches!(state, State::Done) {
                return Ok((None, State::Done));
            }
            let (delta, next) = self.step(state).await?;
            if delta.is_some() {
                self.backoff.reset();
                return Ok((delta, next));
            }
            state = next;
        }
    }

    /// One transition of the state machine (documented on [`State`]).
    async fn step(&mut self, state: State) -> Step {
        match state {
            State::Empty { initial } => self.start_list(initial).await,
            State::Listing(pages) => self.list_page(pages).await,
            State::WatchListing(events) => self.initial_event(events).await,
            State::Listed { resource_version } => match self.open(Some(&resource_version)).await {
                Ok(watch) => Ok((
                    None,
                    State::Watching {
                        resource_version,
                        watch,
                    },
                )),
                Err(e) => self.watch_failed(e, resource_version),
            },
            State::Watching {
                resource_version,
                watch,
            } => self.watch_event(resource_version, watch).await,
            State::Backoff { delay, then } => {
                tokio::time::sleep(delay).await;
                Ok((None, *then))
            }
            State::Done => Ok((None, State::Done)),
        }
    }

    /// From `Empty`: start a LIST, or open a watch-list.
    async fn start_list(&mut self, initial: bool) -> Step {
        if self.lists_by == ListBy::List {
            return Ok((None, State::Listing(Pages::first(initial, true))));
        }
        match self.open(None).await {
            Ok(watch) => {
                let events = InitialEvents {
                    initial,
                    watch,
                    objects: Vec::new(),
                    resource_version: None,
                };
                Ok((None, State::WatchListing(events)))
            }
            Err(e) if matches!(e.code(), Some(400 | 422)) => {
                tracing::info!(resource = %self.describe(), error = %e, "the API server does not support watch-list; using LIST");
                self.lists_by = ListBy::List;
                Ok((None, State::Empty { initial }))
            }
            Err(e) => Ok((None, self.retry(e, "watch", State::Empty { initial })?)),
        }
    }

    /// From `Listing`: fetch one page.
    async fn list_page(&mut self, mut pages: Pages) -> Step {
        let mut url = self
            .url()
            .param_opt("continue", pages.continue_token.as_deref());
        if pages.paginate {
            url = url.param("limit", self.config.page_size.to_string());
        }
        let path = url.path().to_owned();
        let page = match api::get_json::<ListBody>(&self.client, url).await {
            Ok(body) => wire::decode_page(body, &self.resource.id, &path),
            Err(e) => Err(e),
        };
        let page = match page {
            Ok(page) => page,
            Err(e) => return self.list_failed(e, pages),
        };
        pages.objects.extend(page.objects);
        self.show_progress(pages.objects.len(), page.continue_token.is_none());
        if let Some(token) = page.continue_token {
            pages.continue_token = Some(token);
            return Ok((None, State::Listing(pages)));
        }
        let resource_version = page.resource_version;
        tracing::debug!(resource = %self.describe(), objects = pages.objects.len(), rv = resource_version, "listed");
        let delta = Delta::Replace {
            objects: pages.objects,
            initial: pages.initial,
        };
        let next = if self.config.once {
            State::Done
        } else {
            State::Listed { resource_version }
        };
        Ok((Some(delta), next))
    }

    fn list_failed(&mut self, e: ApiError, pages: Pages) -> Step {
        let mid_list = pages.continue_token.is_some();
        if e.is_gone() && mid_list {
            tracing::info!(resource = %self.describe(), "continue token expired; listing again in one request");
            self.metrics.relisted(&self.name, "expired");
            return Ok((None, State::Listing(Pages::first(pages.initial, false))));
        }
        let next = self.retry(
            e,
            "list",
            State::Empty {
                initial: pages.initial,
            },
        )?;
        if mid_list {
            self.metrics.relisted(&self.name, "restarted");
        }
        Ok((None, next))
    }

    /// From `WatchListing`: read one event of the initial state.
    async fn initial_event(&mut self, mut events: InitialEvents) -> Step {
        let event = match events
            .watch
            .next(&self.resource, &self.name, &self.metrics)
            .await
        {
            Some(Ok(event)) => event,
            Some(Err(e)) => return self.watch_list_failed(Some(e), events.initial),
            None => return self.watch_list_failed(None, events.initial),
        };
        if let Some(rv) = event.resource_version() {
            events.resource_version = Some(rv.to_owned());
        }
        match event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                events.objects.push(o);
            }
            WatchEvent::Bookmark {
                ends_initial_events: true,
                ..
            } => return self.initial_events_done(events),
            WatchEvent::Bookmark { .. } => {}
            WatchEvent::Unknown(kind) => self.ignore(&kind),
        }
        Ok((None, State::WatchListing(events)))
    }

    /// The end-of-initial-events bookmark: the state is complete.
    fn initial_events_done(&mut self, events: InitialEvents) -> Step {
        let Some(resource_version) = events.resource_version else {
            // Nothing to watch from (the bookmark should carry the list's version).
            let e = ApiError::Decode {
                path: events.watch.path,
                detail: "the end of the initial events carries no resourceVersion".into(),
            };
            return self.watch_list_failed(Some(e), events.initial);
        };
        let delta = Delta::Replace {
            objects: events.objects,
            initial: events.initial,
        };
        let next = State::Watching {
            resource_version,
            watch: events.watch,
        };
        Ok((Some(delta), next))
    }

    /// A watch-list ended (`None`) or failed before its initial state was complete.
    fn watch_list_failed(&mut self, e: Option<ApiError>, initial: bool) -> Step {
        let again = State::Empty { initial };
        let (next, reason) = match e {
            None => {
                tracing::info!(resource = %self.describe(), "the watch-list ended before the initial state was complete; starting again");
                (again, "restarted")
            }
            Some(e) if e.is_gone() => {
                tracing::info!(resource = %self.describe(), "watch-list expired (410 Gone); starting again");
                (again, "expired")
            }
            Some(e) => (self.retry(e, "watch", again)?, "restarted"),
        };
        self.metrics.relisted(&self.name, reason);
        Ok((None, next))
    }

    /// From `Watching`: read one event.
    async fn watch_event(&mut self, mut resource_version: String, mut watch: Watch) -> Step {
        let event = match watch.next(&self.resource, &self.name, &self.metrics).await {
            Some(Ok(event)) => event,
            Some(Err(e)) => return self.watch_failed(e, resource_version),
            None => return Ok((None, self.watch_closed(resource_version, watch.heard))),
        };
        if let Some(rv) = event.resource_version() {
            resource_version = rv.to_owned();
        }
        let delta = match event {
            WatchEvent::Added(o) => Some(Delta::Added(o)),
            WatchEvent::Modified(o) => Some(Delta::Modified(o)),
            WatchEvent::Deleted(o) => Some(Delta::Deleted(o)),
            WatchEvent::Bookmark { .. } => None,
            WatchEvent::Unknown(kind) => {
                self.ignore(&kind);
                None
            }
        };
        let next = State::Watching {
            resource_version,
            watch,
        };
        Ok((delta, next))
    }

    fn watch_closed(&mut self, resource_version: String, heard: usize) -> State {
        tracing::debug!(resource = %self.describe(), events = heard, "watch closed; resuming");
        self.metrics.watch_restarted(&self.name, "closed");
        let resume = State::Listed { resource_version };
        if heard > 0 {
            return resume;
        }
        // A watch that ends at once, again and again, must not spin.
        State::Backoff {
            delay: self.backoff.next_delay().min(Duration::from_secs(1)),
            then: Box::new(resume),
        }
    }

    /// A watch could not open, or failed while open.
    fn watch_failed(&mut self, e: ApiError, resource_version: String) -> Step {
        if e.is_gone() {
            tracing::info!(resource = %self.describe(), "resourceVersion expired (410 Gone); relisting");
            self.metrics.relisted(&self.name, "expired");
            return Ok((None, State::Empty { initial: false }));
        }
        let next = self.retry(e, "watch", State::Listed { resource_version })?;
        self.metrics.watch_restarted(&self.name, "error");
        Ok((None, next))
    }

    /// The one error path: a permanent failure ends the reflector; any other waits
    /// (Retry-After, or the backoff) and then goes to `then`.
    fn retry(
        &mut self,
        e: ApiError,
        verb: &'static str,
        then: State,
    ) -> Result<State, Box<ReflectorError>> {
        if !e.is_retryable() && !e.is_gone() {
            return Err(Box::new(self.permanent(e, verb)));
        }
        let delay = e.retry_after().unwrap_or_else(|| self.backoff.next_delay());
        tracing::warn!(resource = %self.describe(), error = %e, retry_in = ?delay, "{verb} failed; retrying");
        Ok(State::Backoff {
            delay,
            then: Box::new(then),
        })
    }

    fn permanent(&self, e: ApiError, verb: &'static str) -> ReflectorError {
        let resource = self.resource.id.to_string();
        match e.code() {
            Some(403) => ReflectorError::Forbidden {
                verb,
                resource,
                scope: self
                    .namespace
                    .as_ref()
                    .filter(|_| self.resource.namespaced)
                    .map(|ns| format!(" in namespace {ns:?}"))
                    .unwrap_or_default(),
                group: self.resource.id.group.clone(),
                plural: self.resource.id.resource.clone(),
                message: e.server_message(),
            },
            Some(400) => ReflectorError::BadRequest {
                resource,
                message: e.server_message(),
            },
            _ => ReflectorError::Permanent {
                verb,
                resource,
                source: e,
            },
        }
    }

    fn ignore(&self, kind: &str) {
        tracing::warn!(resource = %self.describe(), kind, "ignoring a watch event of unknown type");
    }

    fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} in namespace {ns:?}", self.resource.id),
            None => self.resource.id.to_string(),
        }
    }

    fn url(&self) -> Url {
        Url::new(self.resource.collection_path(self.namespace.as_deref()))
            .param_opt("labelSelector", self.label_selector.as_deref())
            .param_opt("fieldSelector", self.field_selector.as_deref())
    }

    /// Opens a watch from `resource_version`, or, with `None`, a watch-list (the state
    /// first, then the changes).
    async fn open(&self, resource_version: Option<&str>) -> Result<Watch, ApiError> {
        let timeout = fastrand::u64(self.config.watch_timeout_secs.clone());
        let url = self
            .url()
            .param("watch", "true")
            .param("allowWatchBookmarks", "true")
            .param("timeoutSeconds", timeout.to_string());
        let url = match resource_version {
            Some(rv) => url.param("resourceVersion", rv),
            None => url
                .param("sendInitialEvents", "true")
                .param("resourceVersionMatch", "NotOlderThan")
                .param("resourceVersion", ""),
        };
        let path = url.path().to_owned();
        let lines = api::get_lines(&self.client, url).await?.boxed();
        Ok(Watch {
            lines,
            path,
            heard: 0,
        })
    }

    /// On a terminal, one line per informer that counts up while its LIST pages arrive
    /// (a large cluster's first list takes a while) and stays when it is done.
    fn show_progress(&self, objects: usize, done: bool) {
        if !self.config.progress {
            return;
        }
        // \r and "erase line": several informers share the line while they list.
        if done {
            eprint!(
                "\r\x1b[2Kkubebridge: listed {}: {objects} objects\n",
                self.name
            );
        } else {
            eprint!(
                "\r\x1b[2Kkubebridge: listing {}: {objects} objects so far",
                self.name
            );
        }
    }
}

impl Watch {
    /// The next event; `None` when the server closed the watch.
    async fn next(
        &mut self,
        resource: &ApiResource,
        informer: &str,
        metrics: &Metrics,
    ) -> Option<Result<WatchEvent, ApiError>> {
        loop {
            let line = match self.lines.next().await? {
                Ok(line) if line.trim().is_empty() => continue,
                Ok(line) => line,
                Err(e) => return Some(Err(e)),
            };
            let event = wire::decode_event(&line, &resource.id, &self.path);
            if event.is_ok() {
                self.heard += 1;
                metrics.watch_heard(informer);
            }
            return Some(event);
        }
    }
}

#[cfg(test)]
mod tests;
