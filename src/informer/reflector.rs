//! The reflector: LIST (paginated) then WATCH from the list's resourceVersion, resuming
//! after a dropped watch and relisting after 410 Gone, with backoff between failures.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::{Delta, RawObject};
use crate::kube::api::{self, ApiError, Url};
use crate::kube::discovery::ApiResource;
use crate::metrics;

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

/// client-go draws watch timeouts between 5 and 10 minutes; kube's client gives up on
/// a response that is silent for 295 s, so kubebridge stays below that.
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
    /// Whether a complete list (LIST or watch-list) has been handed on yet.
    listed: bool,
}

/// How a watch ended.
enum WatchEnd {
    /// The server closed it (timeout, restart): resume from the last resourceVersion.
    Closed { events: usize },
    /// 410 Gone: the resourceVersion is too old; relist.
    Gone,
    /// A failure worth retrying after a backoff.
    Failed(ApiError),
    /// Shutdown was asked for, or nobody listens any more.
    Stopped,
}

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: Box<RawValue>,
}

#[derive(Deserialize)]
struct ListPage {
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    #[serde(default)]
    resource_version: String,
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

#[derive(Deserialize)]
struct Bookmark {
    metadata: BookmarkMeta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BookmarkMeta {
    #[serde(default)]
    resource_version: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

impl Reflector {
    /// A reflector called `name` (for logs and metrics) for `resource`, in `namespace`
    /// (all namespaces when `None`).
    pub fn new(
        name: String,
        client: kube::Client,
        resource: ApiResource,
        namespace: Option<String>,
        label_selector: Option<String>,
        field_selector: Option<String>,
        config: ReflectorConfig,
    ) -> Self {
        Reflector {
            name,
            client,
            resource,
            namespace,
            label_selector,
            field_selector,
            config,
            backoff: Backoff::default(),
            listed: false,
        }
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

    /// Runs until cancelled, until `deltas` is closed, or (with `once`) after the
    /// initial list. Returns an error only for failures retrying cannot fix.
    pub async fn run(
        mut self,
        deltas: mpsc::Sender<Delta>,
        cancel: CancellationToken,
    ) -> Result<(), ReflectorError> {
        let mut resource_version: Option<String> = None;
        loop {
            if cancel.is_cancelled() || deltas.is_closed() {
                return Ok(());
            }
            let Some(rv) = resource_version.take() else {
                if self.config.watch_list && !self.config.once {
                    match self.watch(None, true, &deltas, &cancel).await {
                        Ok((end, rv)) => {
                            resource_version = rv;
                            self.after_watch(end, &mut resource_version, &cancel)
                                .await?;
                        }
                        Err(e) if matches!(e.code(), Some(400 | 422)) => {
                            tracing::info!(resource = %self.describe(), error = %e, "the API server does not support watch-list; using LIST");
                            self.config.watch_list = false;
                        }
                        Err(e) => self.pause_after(e, "watch", &cancel).await?,
                    }
                    continue;
                }
                match self.list(&cancel).await {
                    Ok(Some((objects, rv))) => {
                        self.backoff.reset();
                        tracing::debug!(resource = %self.describe(), objects = objects.len(), rv, "listed");
                        let initial = !std::mem::replace(&mut self.listed, true);
                        if deltas
                            .send(Delta::Replace { objects, initial })
                            .await
                            .is_err()
                            || self.config.once
                        {
                            return Ok(());
                        }
                        resource_version = Some(rv);
                    }
                    Ok(None) => return Ok(()),
                    Err(e) => self.pause_after(e, "list", &cancel).await?,
                }
                continue;
            };
            match self.watch(Some(rv.clone()), false, &deltas, &cancel).await {
                Ok((end, last)) => {
                    resource_version = last.or(Some(rv));
                    self.after_watch(end, &mut resource_version, &cancel)
                        .await?;
                }
                Err(e) if e.is_gone() => {
                    tracing::info!(resource = %self.describe(), "resourceVersion expired; relisting");
                    metrics::relisted(&self.name, "expired");
                }
                Err(e) => {
                    resource_version = Some(rv);
                    self.pause_after(e, "watch", &cancel).await?;
                }
            }
        }
    }

    async fn after_watch(
        &mut self,
        end: WatchEnd,
        resource_version: &mut Option<String>,
        cancel: &CancellationToken,
    ) -> Result<(), ReflectorError> {
        match end {
            WatchEnd::Closed { events } => {
                tracing::debug!(resource = %self.describe(), events, "watch closed; resuming");
                metrics::watch_restarted(&self.name, "closed");
                if events == 0 {
                    // A watch that ends at once, again and again, must not spin.
                    let delay = self.backoff.next_delay();
                    sleep_or_cancel(delay.min(Duration::from_secs(1)), cancel).await;
                }
            }
            WatchEnd::Gone => {
                tracing::info!(resource = %self.describe(), "watch expired (410 Gone); relisting");
                metrics::relisted(&self.name, "expired");
                *resource_version = None;
            }
            WatchEnd::Failed(e) => {
                metrics::watch_restarted(&self.name, "error");
                self.pause_after(e, "watch", cancel).await?;
            }
            WatchEnd::Stopped => {}
        }
        Ok(())
    }

    /// Sleeps after a retryable failure (honouring Retry-After), or turns a permanent
    /// one into an error.
    async fn pause_after(
        &mut self,
        e: ApiError,
        verb: &'static str,
        cancel: &CancellationToken,
    ) -> Result<(), ReflectorError> {
        if !e.is_retryable() && !e.is_gone() {
            return Err(self.permanent(e, verb));
        }
        let delay = e.retry_after().unwrap_or_else(|| self.backoff.next_delay());
        tracing::warn!(resource = %self.describe(), error = %e, retry_in = ?delay, "{verb} failed; retrying");
        sleep_or_cancel(delay, cancel).await;
        Ok(())
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

    /// A complete LIST: every object and the list's resourceVersion. Paginated; if the
    /// snapshot the pages come from is compacted before the last page (a continue token
    /// expires: churn outran the API server's compaction window), the list is taken again
    /// in one unpaginated request, as client-go's pager does, because restarting the
    /// pagination could expire again forever. Returns `None` when cancelled.
    async fn list(
        &mut self,
        cancel: &CancellationToken,
    ) -> Result<Option<(Vec<RawObject>, String)>, ApiError> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        let mut paginate = true;
        loop {
            if cancel.is_cancelled() {
                return Ok(None);
            }
            let mut url = self.url().param_opt("continue", token.as_deref());
            if paginate {
                url = url.param("limit", self.config.page_size.to_string());
            }
            let page: ListPage = match api::get_json(&self.client, url).await {
                Ok(page) => page,
                Err(e) if e.is_gone() && token.is_some() => {
                    tracing::info!(resource = %self.describe(), "continue token expired; listing again in one request");
                    objects.clear();
                    token = None;
                    paginate = false;
                    continue;
                }
                Err(e) => return Err(e),
            };
            objects.reserve(page.items.len());
            for item in page.items {
                objects.push(self.decode(item, "list")?);
            }
            let done = page
                .metadata
                .continue_token
                .as_deref()
                .is_none_or(str::is_empty);
            self.show_progress(objects.len(), done);
            match page.metadata.continue_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(Some((objects, page.metadata.resource_version))),
            }
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

    fn decode(&self, raw: Box<RawValue>, what: &str) -> Result<RawObject, ApiError> {
        RawObject::decode(raw, &self.resource.id).map_err(|e| ApiError::Decode {
            path: self.resource.collection_path(self.namespace.as_deref()),
            detail: format!("a {what} object without the metadata every object has: {e}"),
        })
    }

    /// Watches from `rv`, or, with `initial_events`, gets the state through the watch
    /// first (watch-list) and emits it as one `Replace`. Returns how it ended and the
    /// last resourceVersion seen.
    async fn watch(
        &mut self,
        rv: Option<String>,
        initial_events: bool,
        deltas: &mpsc::Sender<Delta>,
        cancel: &CancellationToken,
    ) -> Result<(WatchEnd, Option<String>), ApiError> {
        let timeout = fastrand::u64(self.config.watch_timeout_secs.clone());
        let mut url = self
            .url()
            .param("watch", "true")
            .param("allowWatchBookmarks", "true")
            .param("timeoutSeconds", timeout.to_string());
        if initial_events {
            url = url
                .param("sendInitialEvents", "true")
                .param("resourceVersionMatch", "NotOlderThan")
                .param("resourceVersion", "");
        } else if let Some(rv) = &rv {
            url = url.param("resourceVersion", rv);
        }
        let path = url.path().to_owned();
        let mut lines = tokio::select! {
            lines = api::get_lines(&self.client, url) => lines?,
            _ = cancel.cancelled() => return Ok((WatchEnd::Stopped, rv)),
        };
        let mut last_rv = rv;
        let mut events = 0usize;
        // With initial events, objects gather here until the end-of-initial-events bookmark.
        let mut initial: Option<Vec<RawObject>> = initial_events.then(Vec::new);
        loop {
            let line = tokio::select! {
                line = lines.next() => line,
                _ = cancel.cancelled() => return Ok((WatchEnd::Stopped, last_rv)),
            };
            let line = match line {
                None => break,
                Some(Ok(line)) if line.trim().is_empty() => continue,
                Some(Ok(line)) => line,
                Some(Err(e)) => return Ok((WatchEnd::Failed(e), last_rv)),
            };
            let event: WatchEvent = match serde_json::from_str(&line) {
                Ok(event) => event,
                Err(e) => {
                    let e = ApiError::Decode {
                        path,
                        detail: format!("a watch line that is not an event: {e}"),
                    };
                    return Ok((WatchEnd::Failed(e), last_rv));
                }
            };
            events += 1;
            metrics::watch_heard(&self.name);
            let delta = match event.kind.as_str() {
                "ADDED" | "MODIFIED" | "DELETED" => {
                    let object = match self.decode(event.object, "watch") {
                        Ok(o) => o,
                        Err(e) => return Ok((WatchEnd::Failed(e), last_rv)),
                    };
                    last_rv = Some(object.resource_version.clone());
                    if let Some(initial) = initial.as_mut() {
                        initial.push(object);
                        continue;
                    }
                    match event.kind.as_str() {
                        "ADDED" => Delta::Added(object),
                        "MODIFIED" => Delta::Modified(object),
                        _ => Delta::Deleted(object),
                    }
                }
                "BOOKMARK" => {
                    let bookmark: Bookmark = match serde_json::from_str(event.object.get()) {
                        Ok(b) => b,
                        Err(e) => {
                            let e = ApiError::Decode {
                                path,
                                detail: format!("a bookmark without metadata: {e}"),
                            };
                            return Ok((WatchEnd::Failed(e), last_rv));
                        }
                    };
                    if !bookmark.metadata.resource_version.is_empty() {
                        last_rv = Some(bookmark.metadata.resource_version);
                    }
                    let ends_initial = bookmark
                        .metadata
                        .annotations
                        .get(INITIAL_EVENTS_END)
                        .is_some_and(|v| v == "true");
                    match initial.take() {
                        Some(objects) if ends_initial => {
                            self.backoff.reset();
                            Delta::Replace {
                                objects,
                                initial: !std::mem::replace(&mut self.listed, true),
                            }
                        }
                        other => {
                            initial = other;
                            continue;
                        }
                    }
                }
                "ERROR" => {
                    let e = api::status_from_event(&path, event.object.get());
                    if e.is_gone() {
                        return Ok((WatchEnd::Gone, last_rv));
                    }
                    return Ok((WatchEnd::Failed(e), last_rv));
                }
                other => {
                    tracing::warn!(resource = %self.describe(), kind = other, "ignoring a watch event of unknown type");
                    continue;
                }
            };
            self.backoff.reset();
            if deltas.send(delta).await.is_err() {
                return Ok((WatchEnd::Stopped, last_rv));
            }
        }
        if initial.is_some() {
            // The stream ended before the initial state was complete: start again.
            return Ok((WatchEnd::Gone, None));
        }
        Ok((WatchEnd::Closed { events }, last_rv))
    }
}

async fn sleep_or_cancel(delay: Duration, cancel: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = cancel.cancelled() => {}
    }
}
