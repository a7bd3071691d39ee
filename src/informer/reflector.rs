//! The reflector: LIST (paginated) or watch-list, then WATCH from the list's
//! resourceVersion, resuming after a dropped watch and relisting after 410 Gone, with
//! backoff between failures. Like kube-runtime's watcher, it is a state machine
//! ([`State`]) advanced by one step function and read as a stream of [`Delta`]s.

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backoff::{Backoff, RELIST_RESET_AFTER, RelistBackoff};
use super::body::{self, Line, Lines, PageError, PageFetch};
use super::list_page::{self, ListPage};
use super::transform::{ObjectTransform, Transforms};
use super::wire::{self, BadLine, WatchEvent};
use super::{Delta, RawObject};
use crate::kube::api::{ApiError, Url};
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
    /// A watch that hears nothing (no event, no bookmark) for this long is dropped and
    /// resumed from its last resourceVersion; a request whose answer stops arriving for
    /// this long (the headers of a LIST or watch, the next bytes of a LIST page) is
    /// abandoned and retried. kube's client has no read timeout of its own.
    pub watch_idle_timeout: Duration,
    /// With `watch_list`: how long the end-of-initial-events bookmark may take to arrive
    /// after the watch-list opened before kubebridge decides the server ignores
    /// `sendInitialEvents` and lists by LIST for the rest of the run.
    pub watch_list_initial_timeout: Duration,
    /// The longest watch line (one event, so one object) read; a longer one is not
    /// buffered past this, and is handled as a malformed line (counted, relist).
    pub max_object_bytes: usize,
    /// The largest LIST page read; a larger one is an error (counted, retried with
    /// backoff) that says to raise this or lower `page_size`. A list holds at most two
    /// pages' bytes at once: the one being decoded and the next, downloading.
    pub max_page_bytes: usize,
    /// What is done to each object as it is decoded (redaction, managedFields
    /// stripping), before anything else sees it. The default changes nothing.
    pub transforms: Transforms,
}

impl Default for ReflectorConfig {
    fn default() -> Self {
        ReflectorConfig {
            page_size: default_page_size(),
            watch_timeout_secs: default_watch_timeout_secs(),
            watch_list: false,
            once: false,
            progress: false,
            watch_idle_timeout: default_watch_idle_timeout(),
            watch_list_initial_timeout: default_watch_list_initial_timeout(),
            max_object_bytes: default_max_object_bytes(),
            max_page_bytes: default_max_page_bytes(),
            transforms: Transforms::default(),
        }
    }
}

/// 500 objects per page: client-go's and kube-rs's default, a page of ordinary pods is a
/// few megabytes.
pub fn default_page_size() -> u32 {
    500
}

/// The server ends each watch after 150 to 290 s (drawn per watch) and the reflector
/// resumes it; client-go draws from 5 to 10 minutes. Only the server ends a watch by this
/// timeout: a connection that dies without closing is noticed by the watch idle timeout
/// ([`default_watch_idle_timeout`]), since kube's client sets no read timeout.
pub fn default_watch_timeout_secs() -> Range<u64> {
    150..290
}

/// 5 minutes: longer than the longest server-side watch timeout (290 s, above), so a
/// healthy watch on a quiet resource always ends by the server's timeout first, even on
/// an API server that sends a bookmark only just before that timeout; recent API
/// servers send every watch that asked for bookmarks one about every minute. A silent
/// watch is noticed within 5 minutes (issue 8 asks for no more).
pub fn default_watch_idle_timeout() -> Duration {
    Duration::from_secs(300)
}

/// 60 s: the API server's own bound on a LIST (its `--request-timeout`, 1 minute by
/// default); a watch-list replaces that LIST, and a server that supports it sends the end
/// bookmark right after the last initial event.
pub fn default_watch_list_initial_timeout() -> Duration {
    Duration::from_secs(60)
}

/// 16 MiB: etcd refuses a request over 1.5 MiB (`--max-request-bytes`) and the API server
/// a body over 3 MiB, so no object a server stores comes near it, even rendered as JSON
/// (base64 `binaryData` grows by a third) or in a cluster that raised etcd's limit.
pub fn default_max_object_bytes() -> usize {
    16 << 20
}

/// 1 GiB: a page holds at most `page_size` objects (500 by default), each at most
/// etcd's 1.5 MiB, so 750 MiB; 1 GiB leaves room for JSON rendering. Lower it (or the page
/// size) to fit a memory limit.
pub fn default_max_page_bytes() -> usize {
    1 << 30
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
    /// The wait after a failed request; starts over once a delta comes out.
    backoff: Backoff,
    /// The wait before a relist; starts over only after two quiet minutes.
    relists: RelistBackoff,
    /// Watches in a row that the server closed before they carried anything.
    empty_closes: u64,
    metrics: Metrics,
    /// This resource's decode-time transform.
    transform: ObjectTransform,
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
/// Empty ─┬─> Listing ──(last page: Replace)──> Listed ──(open)──> Watching ──(closed, idle)──> Listed
///        └─> WatchListing ──(end of initial events: Replace)────> Watching
/// relist (410 Gone, a malformed line, ...) -> Backoff (the relist backoff) -> Empty
/// other failures -> Backoff -> the state that retries them
/// ```
///
/// Relists (`kubebridge_relists_total`) and watch restarts
/// (`kubebridge_watch_restarts_total`) are counted on the transitions named below, with
/// the reason in quotes. Every relist takes one path, [`Reflector::relist`], which waits
/// the relist backoff first (client-go's: 800 ms doubling to 30 s while relists follow
/// each other). Every failed request takes one path, [`Reflector::retry_delay`]: a
/// permanent one (403, 400, 404, ...) ends the reflector with a [`ReflectorError`]; any
/// other waits (Retry-After, or the backoff) and is tried again.
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
    /// A LIST in progress: the continue token of the next page, the objects so far, and
    /// the next page itself, asked for (read on a task of its own) while the page before
    /// it was decoded, so that downloading and decoding overlap. Only one page ahead.
    ///
    /// - a page with a continue token -> `Listing` (next page);
    /// - the last page -> emits `Replace` -> `Listed` (with `once`: -> `Done`);
    /// - 410 Gone on a continue token (churn outran the server's compaction window) ->
    ///   relist "expired" -> `Listing` again in one unpaginated request, as client-go's
    ///   pager does, because paginating again could expire again forever;
    /// - another failure (a page over `max_page_bytes`, or one that does not decode,
    ///   included) -> `Backoff` -> `Empty`; if pages had arrived, they are thrown away:
    ///   relist "restarted". A page asked for ahead of a failed one is abandoned, and so
    ///   is one in flight when the reflector is dropped.
    Listing(Pages),
    /// A watch-list in progress: objects gather until the end-of-initial-events bookmark.
    ///
    /// - an `ADDED` event -> gathered -> `WatchListing`;
    /// - the end-of-initial-events bookmark -> emits `Replace` -> `Watching` on the same
    ///   stream;
    /// - a change (`MODIFIED`, `DELETED`) or a plain bookmark before it, or no end within
    ///   `watch_list_initial_timeout`: the server ignores `sendInitialEvents` and answered
    ///   a plain watch -> LIST from now on -> relist "watch_list_ignored" -> `Empty`;
    /// - the stream ends first, or hears nothing for `watch_idle_timeout` -> relist
    ///   "restarted" -> `Empty`;
    /// - 410 Gone -> relist "expired" -> `Empty`;
    /// - a malformed line -> relist "malformed" -> `Empty`;
    /// - another failure (or an end bookmark without a resourceVersion, which leaves
    ///   nothing to watch from) -> relist "restarted" -> `Empty`.
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
    /// - nothing heard (not even a bookmark) for `watch_idle_timeout` -> watch restart
    ///   "idle" -> `Listed` at the last version;
    /// - 410 Gone (an `ERROR` event) -> relist "expired" -> `Empty`;
    /// - a malformed line (not JSON, an object without metadata, over
    ///   `max_object_bytes`): resuming would read it again, forever -> relist "malformed"
    ///   -> `Empty`;
    /// - another failure (transport, an `ERROR` event) -> watch restart "error" ->
    ///   `Backoff` -> `Listed` at the last version.
    Watching {
        /// The last resourceVersion the watch reached.
        resource_version: String,
        /// The open watch.
        watch: Watch,
    },
    /// Waiting after a failure (the Retry-After the server asked for, or the backoff),
    /// or before a relist, then `then`.
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
    /// The page after the last one, asked for while that one was decoded.
    next: Option<PageFetch>,
}

impl Pages {
    fn first(initial: bool, paginate: bool) -> Self {
        Pages {
            initial,
            continue_token: None,
            paginate,
            objects: Vec::new(),
            next: None,
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
    /// When the end of the initial events is overdue: the server ignores watch-list.
    deadline: Instant,
}

/// An open watch: its lines, and how many events it has carried.
struct Watch {
    lines: Lines,
    /// The request path, for errors.
    path: String,
    /// Events (bookmarks included) heard so far.
    heard: usize,
}

/// What a watch said next.
enum Heard {
    /// An event that decoded.
    Event(WatchEvent),
    /// The connection failed, or the server sent an `ERROR` event.
    Failed(ApiError),
    /// A line that is not a usable event.
    Malformed(Malformed),
    /// Nothing, not even a bookmark, for as long as the caller would wait.
    Idle,
    /// The server closed the watch.
    Closed,
}

/// A watch line that is not a usable event, as a log may show it.
struct Malformed {
    /// What is wrong with it, without quoting it.
    detail: String,
    /// Its start, or `None` when it may belong to a Secret.
    prefix: Option<String>,
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
        let transform = config
            .transforms
            .for_resource(&resource.id, || metrics.redacted_values(&name));
        Reflector {
            transform,
            name,
            client,
            resource,
            namespace,
            label_selector,
            field_selector,
            config,
            backoff: Backoff::default(),
            relists: RelistBackoff::default(),
            empty_closes: 0,
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
    /// delta means the server is answering, so the backoff starts over (the relist
    /// backoff does not: a server that lists fine and expires every watch is in a storm).
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
                let now = Instant::now();
                let bound = self.config.watch_list_initial_timeout;
                let events = InitialEvents {
                    initial,
                    watch,
                    objects: Vec::new(),
                    resource_version: None,
                    // A bound too large to add is no bound: a year is as good.
                    deadline: now
                        .checked_add(bound)
                        .unwrap_or(now + Duration::from_secs(365 * 86_400)),
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

    /// From `Listing`: take one page (asked for while the page before it was decoded,
    /// or now), and ask for the next one before decoding it.
    async fn list_page(&mut self, mut pages: Pages) -> Step {
        let url = self.page_url(&pages, pages.continue_token.as_deref());
        let path = url.path().to_owned();
        let body = match pages.next.take() {
            Some(ahead) => ahead.finish().await,
            None => {
                let (cap, idle) = (self.config.max_page_bytes, self.config.watch_idle_timeout);
                body::read_page(&self.client, url, cap, idle).await
            }
        };
        let page = match self.decode_page(body, &path, &mut pages).await {
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

    /// Decodes a page on tokio's blocking pool. A page takes milliseconds of CPU, and a
    /// task spawned by a runtime worker (the page asked for ahead, and the client tasks
    /// it wakes) waits in that worker's own slot, which no other worker may take, until
    /// the worker is free again: decoded on the worker, the page asked for ahead would
    /// not even be requested before the decode ended.
    async fn decode_aside(&self, bytes: Bytes, path: &str) -> Result<ListPage, ApiError> {
        let (resource, transform) = (self.resource.id.clone(), self.transform.clone());
        let owned = path.to_owned();
        let decode = move || list_page::decode_page(&bytes, &resource, &transform, &owned);
        match tokio::task::spawn_blocking(decode).await {
            Ok(page) => page,
            // A panic in the decode is a bug: it ends the reflector as it would have.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down.
            Err(e) => Err(ApiError::Decode {
                path: path.to_owned(),
                detail: format!("the decode of a LIST page did not finish: {e}"),
            }),
        }
    }

    /// The URL of the LIST page after `continue_token` (the first page: `None`).
    fn page_url(&self, pages: &Pages, continue_token: Option<&str>) -> Url {
        let url = self.url().param_opt("continue", continue_token);
        if pages.paginate {
            url.param("limit", self.config.page_size.to_string())
        } else {
            url
        }
    }

    /// Decodes one LIST page read from `path`, having first asked for the page after it
    /// (into `pages.next`): the server prepares and sends that page while this one is
    /// decoded, so the list takes about the longer of the two, not their sum. One page
    /// ahead and no more, so at most two pages' bytes are held at once. A failure is
    /// counted by its reason (and the page asked for ahead, abandoned).
    async fn decode_page(
        &self,
        body: Result<Bytes, PageError>,
        path: &str,
        pages: &mut Pages,
    ) -> Result<ListPage, ApiError> {
        let page = match body {
            Ok(bytes) => {
                let ahead = list_page::next_page_token(&bytes).map(|token| {
                    let url = self.page_url(pages, Some(&token));
                    let (cap, idle) = (self.config.max_page_bytes, self.config.watch_idle_timeout);
                    (token, PageFetch::start(self.client.clone(), url, cap, idle))
                });
                let page = self.decode_aside(bytes, path).await;
                if let (Ok(page), Some((token, ahead))) = (&page, ahead)
                    && page.continue_token.as_ref() == Some(&token)
                {
                    pages.next = Some(ahead);
                }
                page
            }
            Err(PageError::Api(e)) => Err(e),
            Err(PageError::TooLarge) => {
                self.metrics.list_error(&self.name, "too_large");
                let cap = self.config.max_page_bytes;
                return Err(ApiError::Decode {
                    path: path.to_owned(),
                    detail: format!(
                        "a LIST page larger than the {cap}-byte cap (max_page_bytes); raise \
                         --max-page-bytes, or lower --page-size for smaller pages"
                    ),
                });
            }
        };
        if let Err(e) = &page
            && !e.is_gone()
        {
            self.metrics.list_error(&self.name, "error");
        }
        page
    }

    fn list_failed(&mut self, e: ApiError, pages: Pages) -> Step {
        let mid_list = pages.continue_token.is_some();
        if e.is_gone() && mid_list {
            tracing::info!(resource = %self.describe(), "continue token expired; listing again in one request");
            let again = State::Listing(Pages::first(pages.initial, false));
            return Ok((None, self.relist("expired", again, Duration::ZERO)));
        }
        let again = State::Empty {
            initial: pages.initial,
        };
        let delay = self.retry_delay(e, "list")?;
        let next = if mid_list {
            self.relist("restarted", again, delay)
        } else {
            State::Backoff {
                delay,
                then: Box::new(again),
            }
        };
        Ok((None, next))
    }

    /// From `WatchListing`: read one event of the initial state.
    async fn initial_event(&mut self, mut events: InitialEvents) -> Step {
        let initial = events.initial;
        let left = events.deadline.saturating_duration_since(Instant::now());
        let idle = self.config.watch_idle_timeout;
        let event = match self.hear(&mut events.watch, idle.min(left)).await {
            Heard::Event(event) => event,
            Heard::Failed(e) => return self.watch_list_failed(Some(e), initial),
            Heard::Closed => return self.watch_list_failed(None, initial),
            Heard::Malformed(bad) => {
                let last_good = events.resource_version.as_deref();
                let next = self.malformed(&bad, last_good, State::Empty { initial });
                return Ok((None, next));
            }
            Heard::Idle if Instant::now() >= events.deadline => {
                let why = format!(
                    "its end did not arrive within {}",
                    humantime::format_duration(self.config.watch_list_initial_timeout)
                );
                return Ok((None, self.watch_list_ignored(&why, initial)));
            }
            Heard::Idle => {
                tracing::warn!(resource = %self.describe(), idle = %humantime::format_duration(idle), "the watch-list heard nothing (no event, no bookmark) for the idle timeout; starting again");
                return Ok((
                    None,
                    self.relist("restarted", State::Empty { initial }, Duration::ZERO),
                ));
            }
        };
        if let Some(rv) = event.resource_version() {
            events.resource_version = Some(rv.to_owned());
        }
        let past_the_state = match event {
            WatchEvent::Added(o) => {
                events.objects.push(o);
                return Ok((None, State::WatchListing(events)));
            }
            WatchEvent::Bookmark {
                ends_initial_events: true,
                ..
            } => return self.initial_events_done(events),
            WatchEvent::Unknown(kind) => {
                self.ignore(&kind);
                return Ok((None, State::WatchListing(events)));
            }
            WatchEvent::Modified(_) => "a MODIFIED event arrived before its end",
            WatchEvent::Deleted(_) => "a DELETED event arrived before its end",
            WatchEvent::Bookmark { .. } => "a bookmark without the end annotation arrived first",
        };
        Ok((None, self.watch_list_ignored(past_the_state, initial)))
    }

    /// The server answered a watch-list as a plain watch (it ignores `sendInitialEvents`:
    /// an aggregated API server, a proxy, an emulator): what arrived may not be the whole
    /// state, so it is thrown away and LIST is used for the rest of the run.
    fn watch_list_ignored(&mut self, why: &str, initial: bool) -> State {
        tracing::warn!(resource = %self.describe(), "the API server answered a watch-list without the end of its initial events ({why}): it ignores sendInitialEvents; using LIST from now on");
        self.lists_by = ListBy::List;
        self.relist(
            "watch_list_ignored",
            State::Empty { initial },
            Duration::ZERO,
        )
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
        let next = match e {
            None => {
                tracing::info!(resource = %self.describe(), "the watch-list ended before the initial state was complete; starting again");
                self.relist("restarted", again, Duration::ZERO)
            }
            Some(e) if e.is_gone() => {
                tracing::info!(resource = %self.describe(), "watch-list expired (410 Gone); starting again");
                self.relist("expired", again, Duration::ZERO)
            }
            Some(e) => {
                let delay = self.retry_delay(e, "watch")?;
                self.relist("restarted", again, delay)
            }
        };
        Ok((None, next))
    }

    /// From `Watching`: read one event.
    async fn watch_event(&mut self, mut resource_version: String, mut watch: Watch) -> Step {
        let event = match self.hear(&mut watch, self.config.watch_idle_timeout).await {
            Heard::Event(event) => event,
            Heard::Failed(e) => return self.watch_failed(e, resource_version),
            Heard::Closed => return Ok((None, self.watch_closed(resource_version, watch.heard))),
            Heard::Idle => return Ok((None, self.watch_idle(resource_version, watch.heard))),
            Heard::Malformed(bad) => {
                let relist = State::Empty { initial: false };
                return Ok((None, self.malformed(&bad, Some(&resource_version), relist)));
            }
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
        if heard > 0 {
            self.empty_closes = 0;
        } else {
            // Watches that end at once, again and again, must not spin, nor go unsaid: a
            // warning at the 10th in a row, the 100th, the 1000th, ...
            self.empty_closes += 1;
            let n = self.empty_closes;
            if n >= 10 && 10u64.pow(n.ilog10()) == n {
                tracing::warn!(resource = %self.describe(), in_a_row = n, "the API server keeps closing watches before they carry a single event or bookmark (a proxy cutting long requests short?); resuming each after a short backoff");
            }
        }
        self.resume(resource_version, heard)
    }

    /// The watch heard nothing, not even a bookmark, for the idle timeout: its
    /// connection may be dead without having closed. Drop it and resume.
    fn watch_idle(&mut self, resource_version: String, heard: usize) -> State {
        let idle = humantime::format_duration(self.config.watch_idle_timeout);
        tracing::warn!(resource = %self.describe(), rv = %resource_version, idle = %idle, "the watch heard nothing (no event, no bookmark) for the idle timeout; dropping it and resuming from its last resourceVersion");
        self.metrics.watch_restarted(&self.name, "idle");
        self.resume(resource_version, heard)
    }

    /// Resumes a watch from `resource_version`: at once after a watch that carried
    /// something; after a short backoff (at most 1 s) after one that carried nothing, so
    /// a server that closes every watch at once, or a tiny idle timeout, cannot make it
    /// spin.
    fn resume(&mut self, resource_version: String, heard: usize) -> State {
        let resume = State::Listed { resource_version };
        if heard > 0 {
            return resume;
        }
        State::Backoff {
            delay: self.backoff.next_delay().min(Duration::from_secs(1)),
            then: Box::new(resume),
        }
    }

    /// A watch line that is not a usable event. Resuming from the same resourceVersion
    /// would read the same line again, forever; a relist brings the state that the line
    /// and everything after it described, so no change is lost.
    fn malformed(&mut self, bad: &Malformed, last_good: Option<&str>, then: State) -> State {
        self.metrics.watch_decode_error(&self.name);
        let resource = self.describe();
        let rv = last_good.unwrap_or("none");
        match &bad.prefix {
            Some(start) => {
                tracing::warn!(resource = %resource, last_good_rv = %rv, error = %bad.detail, line_start = %start, "a watch line is not a usable event; relisting so that no change is lost");
            }
            None => {
                tracing::warn!(resource = %resource, last_good_rv = %rv, error = %bad.detail, "a watch line is not a usable event (its start is not shown: it may hold a Secret); relisting so that no change is lost");
            }
        }
        self.relist("malformed", then, Duration::ZERO)
    }

    /// A watch could not open, or failed while open.
    fn watch_failed(&mut self, e: ApiError, resource_version: String) -> Step {
        if e.is_gone() {
            tracing::info!(resource = %self.describe(), "resourceVersion expired (410 Gone); relisting");
            let relist = State::Empty { initial: false };
            return Ok((None, self.relist("expired", relist, Duration::ZERO)));
        }
        let next = self.retry(e, "watch", State::Listed { resource_version })?;
        self.metrics.watch_restarted(&self.name, "error");
        Ok((None, next))
    }

    /// Every relist goes through here: counted by `reason`, then `then` after the relist
    /// backoff (or `at_least`, the failed request's own wait, if longer). The first
    /// relist after a quiet spell is routine and its cause is logged by the caller;
    /// those that follow it within two minutes are a storm, each logged at warn, at most
    /// one per backoff delay (which reaches 15 to 45 s by the seventh).
    fn relist(&mut self, reason: &'static str, then: State, at_least: Duration) -> State {
        let (delay, in_a_row) = self.relists.next_delay();
        let delay = delay.max(at_least);
        self.metrics.relisted(&self.name, reason);
        self.metrics.relist_backoff(&self.name, delay);
        if in_a_row > 1 {
            tracing::warn!(
                resource = %self.describe(),
                reason,
                relists_in_a_row = in_a_row,
                retry_in = ?delay,
                "relisting again within {} of the previous relist; backing off",
                humantime::format_duration(RELIST_RESET_AFTER)
            );
        } else {
            tracing::debug!(resource = %self.describe(), reason, retry_in = ?delay, "relisting");
        }
        State::Backoff {
            delay,
            then: Box::new(then),
        }
    }

    /// A failed request: a permanent failure ends the reflector; any other waits
    /// (Retry-After, or the backoff) and then goes to `then`.
    fn retry(
        &mut self,
        e: ApiError,
        verb: &'static str,
        then: State,
    ) -> Result<State, Box<ReflectorError>> {
        let delay = self.retry_delay(e, verb)?;
        Ok(State::Backoff {
            delay,
            then: Box::new(then),
        })
    }

    /// The one error path: a permanent failure is the reflector's end; any other is
    /// logged and waited out for the Retry-After the server asked for, or the backoff.
    fn retry_delay(
        &mut self,
        e: ApiError,
        verb: &'static str,
    ) -> Result<Duration, Box<ReflectorError>> {
        if !e.is_retryable() && !e.is_gone() {
            return Err(Box::new(self.permanent(e, verb)));
        }
        let delay = e.retry_after().unwrap_or_else(|| self.backoff.next_delay());
        tracing::warn!(resource = %self.describe(), error = %e, retry_in = ?delay, "{verb} failed; retrying");
        Ok(delay)
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
    /// first, then the changes). Bookmarks are asked for: they are what keeps a quiet
    /// watch from looking idle.
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
        let body = body::get(&self.client, url, self.config.watch_idle_timeout).await?;
        Ok(Watch {
            lines: Lines::new(body, path.clone(), self.config.max_object_bytes),
            path,
            heard: 0,
        })
    }

    /// What `watch` says next, waiting at most `wait` for it (blank lines do not count:
    /// they are not events). Only events that decoded count as heard, for the
    /// stuck-watch gauge.
    async fn hear(&self, watch: &mut Watch, wait: Duration) -> Heard {
        let deadline = Instant::now().checked_add(wait);
        loop {
            let next = watch.lines.next();
            let line = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, next).await {
                    Ok(line) => line,
                    Err(_) => return Heard::Idle,
                },
                None => next.await,
            };
            let line = match line {
                None => return Heard::Closed,
                Some(Err(e)) => return Heard::Failed(e),
                Some(Ok(Line::TooLong(start))) => {
                    return Heard::Malformed(Malformed {
                        detail: format!(
                            "a line longer than the {}-byte cap (max_object_bytes); raise \
                             --max-object-bytes if objects this large are expected",
                            self.config.max_object_bytes
                        ),
                        prefix: wire::log_prefix(&start, &self.resource.id, &self.transform),
                    });
                }
                Some(Ok(Line::Text(line))) => line,
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return match wire::decode_event(&line, &self.resource.id, &self.transform, &watch.path)
            {
                Ok(event) => {
                    watch.heard += 1;
                    self.metrics.watch_heard(&self.name);
                    Heard::Event(event)
                }
                Err(BadLine::Status(e)) => Heard::Failed(e),
                Err(BadLine::Malformed(detail)) => Heard::Malformed(Malformed {
                    detail,
                    prefix: wire::log_prefix(&line, &self.resource.id, &self.transform),
                }),
            };
        }
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

#[cfg(test)]
mod tests;
