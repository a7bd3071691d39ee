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

/// The caches that can be listed, by informer.
pub(crate) struct Lister {
    caches: Vec<(InformerSpec, Arc<RwLock<Store>>)>,
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

impl Lister {
    /// A lister over these informers' caches.
    pub(crate) fn new(caches: Vec<(InformerSpec, Arc<RwLock<Store>>)>) -> Lister {
        Lister { caches }
    }

    /// The API group, plural name and whether it is namespaced, of the resource
    /// `/cache/{resource}` lists (matched as [`Lister::list`] matches it); `None` when no
    /// cache holds it. What `--metrics-auth kubernetes` asks permission for.
    pub(crate) fn resolve(&self, resource: &str) -> Option<(String, String, bool)> {
        self.caches
            .iter()
            .map(|(spec, _)| &spec.resource)
            .find(|r| r.id.to_string() == resource || r.id.resource == resource)
            .map(|r| (r.id.group.clone(), r.id.resource.clone(), r.namespaced))
    }

    /// Answers `GET /cache/{resource}?{query}`: a List, or a `Status` naming what was
    /// wrong.
    pub(crate) fn list(&self, resource: &str, query: Option<&str>) -> Listing {
        let mut namespace = None;
        let mut selector = String::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "namespace" => namespace = Some(v.into_owned()).filter(|n| !n.is_empty()),
                "labelSelector" => selector = v.into_owned(),
                _ => {}
            }
        }
        let selector = match LabelSelector::parse(&selector) {
            Ok(s) => s,
            Err(e) => {
                return status(
                    400,
                    "BadRequest",
                    &format!("invalid labelSelector: {}", e.0),
                );
            }
        };
        let informers: Vec<&(InformerSpec, Arc<RwLock<Store>>)> = self
            .caches
            .iter()
            .filter(|(spec, _)| {
                spec.resource.id.to_string() == resource || spec.resource.id.resource == resource
            })
            .collect();
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
        // Under each lock: the namespace test and an `Arc` per object, nothing more.
        let mut taken: Vec<(String, Arc<RawValue>)> = Vec::new();
        for (_, cache) in &informers {
            let store = cache.read().unwrap_or_else(PoisonError::into_inner);
            let matching = store
                .objects()
                .filter(|object| namespace.is_none() || object.namespace == namespace);
            taken.extend(matching.map(|object| (object.key(), object.raw.clone())));
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
                let labels = serde_json::from_str::<Labels>(object.raw.get())
                    .map(|l| l.metadata.labels)
                    .unwrap_or_default();
                if !selector.is_empty() && !selector.matches(&labels) {
                    continue;
                }
                items
                    .entry(object.key())
                    .or_insert_with(|| object.raw.get().to_owned());
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
            let (code, body) = text(lister.list("pods", query));
            assert_eq!(code, 200, "{query:?}: {body}");
            assert_eq!(body, the_old_way(&caches, namespace, selector), "{query:?}");
            serde_json::from_str::<serde_json::Value>(&body).unwrap();
        }
        // The first informer's copy of shop/web (rv 7) wins over the third's (rv 6).
        let (_, all) = text(lister.list("pods", None));
        assert!(all.contains(r#""resourceVersion":"7""#) && !all.contains(r#""6""#));
        let (code, _) = text(lister.list("pods", Some("labelSelector=app%20in%20(")));
        assert_eq!(code, 400);
        let (code, _) = text(lister.list("secrets", None));
        assert_eq!(code, 404);
    }

    #[test]
    fn the_body_is_the_caches_own_bytes_not_a_copy() {
        let caches = caches();
        let lister = Lister::new(caches.clone());
        let Listing::List(list) = lister.list("pods", Some("namespace=shop")) else {
            panic!("a list");
        };
        let store = caches[0].1.read().unwrap();
        let cached: Vec<*const u8> = store
            .sorted()
            .iter()
            .map(|o| o.raw.get().as_ptr())
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
        let (_, before) = text(lister.list("pods", None));
        let Listing::List(list) = lister.list("pods", None) else {
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
        let (_, after) = text(lister.list("pods", None));
        assert!(after.contains(r#""name":"new""#) && !after.contains(r#""name":"db""#));
    }
}
