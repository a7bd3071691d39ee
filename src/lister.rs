//! The read-only lister over the informers' caches (`--serve-cache`):
//! `GET /cache/{resource}?namespace=NS&labelSelector=SEL` answers a Kubernetes-style List
//! from memory, so other tools can read cluster state without asking the API server,
//! which is what the informer pattern exists for.
//!
//! A response costs no copy of the cache: under each cache's read lock the lister takes
//! only an `Arc` of each matching object's JSON (the bytes the cache already shares with
//! notifications), releases the lock, and then matches labels, sorts, and writes the List
//! chunk by chunk from those `Arc`s. No lock is held while a client reads, and the cache
//! may change meanwhile: a response is the state at the moment it was asked for.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use kubebridge_apimachinery::{LabelSelector, failure_status, status_json};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::informer::{InformerSpec, Store};

/// One informer's cache, with what it holds.
type Cache = (InformerSpec, Arc<RwLock<Store>>);

/// The caches that can be listed, by informer.
pub(crate) struct Lister {
    caches: Vec<Cache>,
}

/// The answer to `GET /cache/{resource}`.
pub(crate) enum Listing {
    /// Something was wrong: the HTTP status and a Kubernetes `Status` body saying what.
    Status(u16, String),
    /// 200 and a List of the matching objects.
    List(ListBody),
}

/// A List over a snapshot of `Arc`s: the objects' JSON is shared with the cache, never
/// copied, and written out one object at a time.
pub(crate) struct ListBody {
    /// `{"apiVersion":…,"kind":…List,"metadata":{},"items":[`
    head: Bytes,
    /// The objects, ordered by `namespace/name`.
    items: Vec<Arc<RawValue>>,
}

const TAIL: &[u8] = b"]}";

impl ListBody {
    /// The length of the whole body in bytes, known before any of it is written.
    pub(crate) fn content_length(&self) -> usize {
        let objects: usize = self.items.iter().map(|raw| raw.get().len()).sum();
        let commas = self.items.len().saturating_sub(1);
        self.head.len() + objects + commas + TAIL.len()
    }

    /// The body, chunk by chunk: the head, each object's JSON (the cache's own bytes)
    /// with a comma between, and the tail. Built lazily as the client reads.
    pub(crate) fn into_chunks(self) -> impl Iterator<Item = Bytes> + Send + 'static {
        let items = self.items.into_iter().enumerate().flat_map(|(i, raw)| {
            let comma = (i > 0).then_some(Bytes::from_static(b","));
            comma
                .into_iter()
                .chain(std::iter::once(Bytes::from_owner(Json(raw))))
        });
        std::iter::once(self.head)
            .chain(items)
            .chain(std::iter::once(Bytes::from_static(TAIL)))
    }
}

/// An object's JSON as bytes, without copying it out of its `Arc`.
struct Json(Arc<RawValue>);

impl AsRef<[u8]> for Json {
    fn as_ref(&self) -> &[u8] {
        self.0.get().as_bytes()
    }
}

#[derive(Deserialize)]
struct Labels {
    metadata: LabelsMeta,
}

#[derive(Deserialize)]
struct LabelsMeta {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The query of `GET /cache/{resource}`, parsed once: what the authorization check asks
/// about is what the lister serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CacheQuery {
    /// `namespace=NS`; `None` (absent or empty) lists every namespace.
    pub namespace: Option<String>,
    /// `labelSelector=SEL`, as written.
    pub label_selector: String,
}

impl CacheQuery {
    /// Parses `query`. A repeated `namespace` or `labelSelector` is refused: one reader
    /// taking the first and another the last is how a check and a listing disagree.
    pub(crate) fn parse(query: Option<&str>) -> Result<CacheQuery, Listing> {
        let mut parsed = CacheQuery::default();
        let (mut namespaces, mut selectors) = (0, 0);
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "namespace" => {
                    namespaces += 1;
                    parsed.namespace = Some(v.into_owned()).filter(|n| !n.is_empty());
                }
                "labelSelector" => {
                    selectors += 1;
                    parsed.label_selector = v.into_owned();
                }
                _ => {}
            }
        }
        if namespaces > 1 || selectors > 1 {
            return Err(status(
                400,
                "BadRequest",
                "namespace and labelSelector may each be given once",
            ));
        }
        Ok(parsed)
    }
}

impl Lister {
    /// A lister over these informers' caches.
    pub(crate) fn new(caches: Vec<(InformerSpec, Arc<RwLock<Store>>)>) -> Lister {
        Lister { caches }
    }

    /// The API group, plural name and whether it is namespaced, of the one resource
    /// `/cache/{resource}` lists; `None` when no cache holds it, or when a bare plural
    /// names several (which [`Lister::list`] refuses). What `--metrics-auth kubernetes`
    /// asks permission for, so it must be exactly what `list` serves.
    pub(crate) fn resolve(&self, resource: &str) -> Option<(String, String, bool)> {
        let informers = self.matching(resource).ok()?;
        let (spec, _) = informers.first()?;
        let r = &spec.resource;
        Some((r.id.group.clone(), r.id.resource.clone(), r.namespaced))
    }

    /// The caches of the one resource `resource` names: its full name
    /// (`deployments.apps`, or the plural alone for the core group) or, when only one
    /// group's resource has that plural, the bare plural. Several informers (one per
    /// `-n`) may hold it. A bare plural two groups share (`events`, `events.events.k8s.io`)
    /// is a 400 naming both: a list never mixes resources.
    fn matching(&self, resource: &str) -> Result<Vec<&Cache>, Listing> {
        let exact: Vec<_> = self
            .caches
            .iter()
            .filter(|(spec, _)| spec.resource.id.to_string() == resource)
            .collect();
        if !exact.is_empty() {
            return Ok(exact);
        }
        let by_plural: Vec<_> = self
            .caches
            .iter()
            .filter(|(spec, _)| spec.resource.id.resource == resource)
            .collect();
        let mut names: Vec<String> = by_plural
            .iter()
            .map(|(spec, _)| spec.resource.id.to_string())
            .collect();
        names.sort();
        names.dedup();
        if names.len() > 1 {
            return Err(status(
                400,
                "BadRequest",
                &format!(
                    "{resource:?} names several cached resources ({}); ask for one by its full name",
                    names.join(", ")
                ),
            ));
        }
        Ok(by_plural)
    }

    /// Answers `GET /cache/{resource}?{query}`: a List, or a `Status` naming what was
    /// wrong.
    pub(crate) fn list(&self, resource: &str, query: &CacheQuery) -> Listing {
        let namespace = query.namespace.clone();
        let selector = match LabelSelector::parse(&query.label_selector) {
            Ok(s) => s,
            Err(e) => {
                return status(
                    400,
                    "BadRequest",
                    &format!("invalid labelSelector: {}", e.0),
                );
            }
        };
        let informers = match self.matching(resource) {
            Ok(informers) => informers,
            Err(refused) => return refused,
        };
        let Some((first, _)) = informers.first() else {
            let known: Vec<String> = self
                .caches
                .iter()
                .map(|(s, _)| s.resource.id.to_string())
                .collect();
            return status(
                404,
                "NotFound",
                &format!(
                    "no cache for {resource:?}; kubebridge caches: {}",
                    known.join(", ")
                ),
            );
        };
        // Under each lock: the namespace test and an `Arc` per object (decompressed
        // first when the cache is compressed), nothing more.
        let mut taken: Vec<(String, Arc<RawValue>)> = Vec::new();
        for (_, cache) in &informers {
            let store = cache.read().unwrap_or_else(PoisonError::into_inner);
            let matching = store
                .objects()
                .filter(|object| namespace.is_none() || object.namespace == namespace);
            for object in matching {
                match store.raw(object) {
                    Ok(raw) => taken.push((object.key(), raw)),
                    // A partial list would pass for the whole cache: refuse it instead
                    // (counted and logged by the store).
                    Err(unreadable) => {
                        return status(
                            500,
                            "InternalError",
                            &format!(
                                "{unreadable}; it is replaced when the object next changes or is relisted"
                            ),
                        );
                    }
                }
            }
        }
        // Several informers (one per -n) may hold the same resource: their union, by key,
        // the first informer's copy winning as it always has.
        let mut items: BTreeMap<String, Arc<RawValue>> = BTreeMap::new();
        for (key, raw) in taken {
            if !selector.is_empty() {
                let labels = serde_json::from_str::<Labels>(raw.get())
                    .map(|l| l.metadata.labels)
                    .unwrap_or_default();
                if !selector.matches(&labels) {
                    continue;
                }
            }
            items.entry(key).or_insert(raw);
        }
        let id = &first.resource.id;
        let head = format!(
            "{{\"apiVersion\":{},\"kind\":{},\"metadata\":{{}},\"items\":[",
            json_string(&id.api_version()),
            json_string(&format!("{}List", id.kind))
        );
        Listing::List(ListBody {
            head: Bytes::from(head),
            items: items.into_values().collect(),
        })
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn status(code: u16, reason: &str, message: &str) -> Listing {
    Listing::Status(code, status_json(&failure_status(code, reason, message)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use crate::informer::RawObject;

    /// What `GET /cache/{resource}?{query}` answers.
    fn get(lister: &Lister, resource: &str, query: Option<&str>) -> Listing {
        match CacheQuery::parse(query) {
            Ok(query) => lister.list(resource, &query),
            Err(refused) => refused,
        }
    }
    use crate::informer::testing::pod_resource as pods;

    fn pod(ns: &str, name: &str, app: &str, rv: u32) -> RawObject {
        let text = format!(
            r#"{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"{ns}","uid":"u-{ns}-{name}","resourceVersion":"{rv}","labels":{{"app":"{app}"}}}},"spec":{{"nodeName":"n1"}}}}"#
        );
        RawObject::decode(
            RawValue::from_string(text).unwrap(),
            &pods().id,
            &crate::informer::transform::ObjectTransform::none(),
        )
        .unwrap()
    }

    /// Two informers over pods (as with `-n shop -n other`) plus one over all of them,
    /// so the union by key is exercised.
    fn caches() -> Vec<(InformerSpec, Arc<RwLock<Store>>)> {
        let spec = |ns: Option<&str>| InformerSpec {
            resource: pods(),
            namespace: ns.map(Into::into),
            label_selector: None,
            field_selector: None,
        };
        let store = |objects: Vec<RawObject>| {
            let mut store = Store::default();
            for o in objects {
                store.insert(o);
            }
            Arc::new(RwLock::new(store))
        };
        vec![
            (
                spec(Some("shop")),
                store(vec![
                    pod("shop", "web", "web", 7),
                    pod("shop", "db", "db", 3),
                ]),
            ),
            (
                spec(Some("other")),
                store(vec![
                    pod("other", "web", "web", 5),
                    pod("other", "a", "db", 2),
                ]),
            ),
            (
                spec(None),
                store(vec![
                    pod("shop", "web", "web", 6),
                    pod("zoo", "cat", "web", 1),
                ]),
            ),
        ]
    }

    /// Today's lister, before snapshots: the List copied into one `String` under the
    /// locks. The golden every new answer must match byte for byte.
    fn the_old_way(
        caches: &[(InformerSpec, Arc<RwLock<Store>>)],
        namespace: Option<&str>,
        selector: &str,
    ) -> String {
        let selector = LabelSelector::parse(selector).unwrap();
        let mut items: BTreeMap<String, String> = BTreeMap::new();
        for (_, cache) in caches {
            let store = cache.read().unwrap();
            for object in store.sorted() {
                if namespace.is_some() && object.namespace.as_deref() != namespace {
                    continue;
                }
                let raw = store.raw(object).unwrap();
                let labels = serde_json::from_str::<Labels>(raw.get())
                    .map(|l| l.metadata.labels)
                    .unwrap_or_default();
                if !selector.is_empty() && !selector.matches(&labels) {
                    continue;
                }
                items
                    .entry(object.key())
                    .or_insert_with(|| raw.get().to_owned());
            }
        }
        let items: Vec<String> = items.into_values().collect();
        format!(
            r#"{{"apiVersion":"v1","kind":"PodList","metadata":{{}},"items":[{}]}}"#,
            items.join(",")
        )
    }

    fn text(listing: Listing) -> (u16, String) {
        match listing {
            Listing::Status(code, body) => (code, body),
            Listing::List(list) => {
                let length = list.content_length();
                let bytes: Vec<u8> = list.into_chunks().flat_map(|c| c.to_vec()).collect();
                assert_eq!(bytes.len(), length, "Content-Length matches the body");
                (200, String::from_utf8(bytes).unwrap())
            }
        }
    }

    #[test]
    fn a_list_is_byte_identical_to_the_one_built_the_old_way() {
        let caches = caches();
        let lister = Lister::new(caches.clone());
        for (query, namespace, selector) in [
            (None, None, ""),
            (Some("namespace=shop"), Some("shop"), ""),
            (Some("namespace="), None, ""),
            (Some("labelSelector=app%3Dweb"), None, "app=web"),
            (
                Some("namespace=other&labelSelector=app%21%3Dweb"),
                Some("other"),
                "app!=web",
            ),
            (Some("namespace=nowhere"), Some("nowhere"), ""),
        ] {
            let (code, body) = text(get(&lister, "pods", query));
            assert_eq!(code, 200, "{query:?}: {body}");
            assert_eq!(body, the_old_way(&caches, namespace, selector), "{query:?}");
            serde_json::from_str::<serde_json::Value>(&body).unwrap();
        }
        // The first informer's copy of shop/web (rv 7) wins over the third's (rv 6).
        let (_, all) = text(get(&lister, "pods", None));
        assert!(all.contains(r#""resourceVersion":"7""#) && !all.contains(r#""6""#));
        let (code, _) = text(get(&lister, "pods", Some("labelSelector=app%20in%20(")));
        assert_eq!(code, 400);
        let (code, _) = text(get(&lister, "secrets", None));
        assert_eq!(code, 404);
    }

    #[test]
    fn the_body_is_the_caches_own_bytes_not_a_copy() {
        let caches = caches();
        let lister = Lister::new(caches.clone());
        let Listing::List(list) = get(&lister, "pods", Some("namespace=shop")) else {
            panic!("a list");
        };
        let store = caches[0].1.read().unwrap();
        let cached: Vec<*const u8> = store
            .sorted()
            .iter()
            .map(|o| store.raw(o).unwrap().get().as_ptr())
            .collect();
        drop(store);
        let sent: Vec<*const u8> = list
            .into_chunks()
            .filter(|c| c.len() > 2)
            .skip(1) // the head
            .map(|c| c.as_ptr())
            .collect();
        assert_eq!(
            sent, cached,
            "each object is sent from the cache's own allocation"
        );
    }

    #[test]
    fn no_lock_is_held_while_the_body_is_written() {
        let caches = caches();
        let lister = Lister::new(caches.clone());
        let (_, before) = text(get(&lister, "pods", None));
        let Listing::List(list) = get(&lister, "pods", None) else {
            panic!("a list");
        };
        let mut chunks = list.into_chunks();
        let mut sent: Vec<u8> = Vec::new();
        for _ in 0..3 {
            sent.extend_from_slice(&chunks.next().unwrap());
        }
        // Half-way through the body, the informers can still write to every cache.
        for (_, cache) in &caches {
            let mut store = cache.try_write().expect("no lock held by the response");
            store.remove("shop/db");
            store.insert(pod("shop", "new", "web", 9));
        }
        sent.extend(chunks.flat_map(|c| c.to_vec()));
        assert_eq!(
            String::from_utf8(sent).unwrap(),
            before,
            "the response is the snapshot taken when it was asked for"
        );
        let (_, after) = text(get(&lister, "pods", None));
        assert!(after.contains(r#""name":"new""#) && !after.contains(r#""name":"db""#));
    }

    /// `--metrics-auth` checks what `resolve` and `CacheQuery` say; the lister must serve
    /// exactly that, or a check for one namespace or resource lets another through.
    #[test]
    fn what_is_checked_is_what_is_served() {
        let lister = Lister::new(caches());
        for query in [
            "namespace=shop&namespace=zoo",
            "namespace=shop&namespace=",
            "labelSelector=a&labelSelector=b",
        ] {
            let (code, body) = text(get(&lister, "pods", Some(query)));
            assert_eq!(code, 400, "{query}: {body}");
        }
        // The core group's plural is its full name; a bare plural two other groups
        // share is refused; each full name lists its own resource only.
        let mut caches = caches();
        let crd = |group: &str, plural: &str, name: &str| {
            let mut resource = pods();
            resource.id = Arc::new(kubebridge_sinks::ResourceId {
                group: group.into(),
                version: "v1".into(),
                resource: plural.into(),
                kind: "Pod".into(),
            });
            let mut store = Store::default();
            store.insert(pod("zoo", name, "x", 9));
            let spec = InformerSpec {
                resource,
                namespace: None,
                label_selector: None,
                field_selector: None,
            };
            (spec, Arc::new(RwLock::new(store)))
        };
        caches.push(crd("example.com", "pods", "crd"));
        caches.push(crd("a.example", "widgets", "wa"));
        caches.push(crd("b.example", "widgets", "wb"));
        let lister = Lister::new(caches);
        assert_eq!(
            lister.resolve("pods"),
            Some((String::new(), "pods".into(), true))
        );
        let (code, body) = text(get(&lister, "pods", None));
        assert_eq!(code, 200, "{body}");
        assert!(!body.contains("\"crd\""), "core pods only: {body}");
        assert_eq!(
            lister.resolve("pods.example.com"),
            Some(("example.com".into(), "pods".into(), true))
        );
        let (code, body) = text(get(&lister, "pods.example.com", None));
        assert_eq!(code, 200, "{body}");
        assert!(
            body.contains("\"crd\"") && !body.contains("\"web\""),
            "{body}"
        );
        assert_eq!(
            lister.resolve("widgets"),
            None,
            "ambiguous: nothing to authorize"
        );
        let (code, body) = text(get(&lister, "widgets", None));
        assert_eq!(code, 400, "{body}");
        assert!(
            body.contains("widgets.a.example") && body.contains("widgets.b.example"),
            "{body}"
        );
    }
}
