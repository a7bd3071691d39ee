//! The read-only lister over the informers' caches (`--serve-cache`):
//! `GET /cache/{resource}?namespace=NS&labelSelector=SEL` answers a Kubernetes-style List
//! from memory, so other tools can read cluster state without asking the API server,
//! which is what the informer pattern exists for.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use kubebridge_apimachinery::{LabelSelector, failure_status, status_json};
use serde::Deserialize;

use crate::informer::{InformerSpec, Store};

/// The caches that can be listed, by informer.
pub(crate) struct Lister {
    caches: Vec<(InformerSpec, Arc<RwLock<Store>>)>,
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

    /// Answers `GET /cache/{resource}?{query}`: an HTTP status and a JSON body (a List,
    /// or a `Status` naming what was wrong).
    pub(crate) fn list(&self, resource: &str, query: Option<&str>) -> (u16, String) {
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
        // Several informers (one per -n) may hold the same resource: their union, by key.
        let mut items: BTreeMap<String, String> = BTreeMap::new();
        for (_, cache) in &informers {
            let store = cache.read().unwrap_or_else(PoisonError::into_inner);
            for object in store.sorted() {
                if namespace.is_some() && object.namespace != namespace {
                    continue;
                }
                if !selector.is_empty() {
                    let labels = serde_json::from_str::<Labels>(object.raw.get())
                        .map(|l| l.metadata.labels)
                        .unwrap_or_default();
                    if !selector.matches(&labels) {
                        continue;
                    }
                }
                items
                    .entry(object.key())
                    .or_insert_with(|| object.raw.get().to_owned());
            }
        }
        let id = &first.resource.id;
        let mut body = format!(
            "{{\"apiVersion\":{},\"kind\":{},\"metadata\":{{}},\"items\":[",
            json_string(&id.api_version()),
            json_string(&format!("{}List", id.kind))
        );
        for (i, item) in items.values().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(item);
        }
        body.push_str("]}");
        (200, body)
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn status(code: u16, reason: &str, message: &str) -> (u16, String) {
    (code, status_json(&failure_status(code, reason, message)))
}
