//! The per-route stage of the fan-out: decides whether a notification goes to the
//! route's queues, and in what form. A route without transforms passes the notification's
//! `Arc` on untouched; one that projects or diffs publishes its own copy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubebridge_sinks::{EventType, Notification};
use serde_json::value::RawValue;

use super::cel::{CelFilter, Input};
use super::config::{ALWAYS_IGNORED, FilterConfig, OldObject};
use super::path_set::PathSet;
use super::raw;
use crate::log_throttle::LogThrottle;
use crate::metrics::Metrics;
use crate::pointer::Pointer;

/// Why a notification was held back from a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    /// Its type is not among the route's `types`.
    Type,
    /// A MODIFIED that changed only ignored fields (or, with `fields`, nothing projected).
    Unchanged,
    /// The route's CEL filter said false.
    Filter,
}

impl Held {
    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Held::Type => "type",
            Held::Unchanged => "unchanged",
            Held::Filter => "filter",
        }
    }
}

/// A route's filters, compiled: shared by every informer that feeds the route.
#[derive(Debug)]
pub(crate) struct Filters {
    route: String,
    /// Types published; `None` publishes all.
    types: Option<Vec<EventType>>,
    cel: Option<CelFilter>,
    /// What does not count as a change; `None` with `--no-suppress`.
    ignored: Option<PathSet>,
    /// What is kept; `None` keeps everything.
    fields: Option<PathSet>,
    diff: bool,
    old_object: OldObject,
    /// Logging of the CEL filter's runtime errors, at most once a minute.
    errors: Mutex<LogThrottle>,
}

impl Filters {
    /// Compiles `config` for the route called `route`. An error is one line naming the
    /// key (`filter`, `ignoreFields`, `fields`).
    pub(crate) fn compile(route: &str, config: &FilterConfig) -> Result<Filters, String> {
        let cel = config
            .filter
            .as_deref()
            .map(|s| CelFilter::compile(s).map_err(|e| format!("filter {s:?} {e}")))
            .transpose()?;
        let mut ignored = FilterConfig::pointers("ignoreFields", &config.ignore_fields)?;
        let fields = FilterConfig::pointers("fields", &config.fields)?;
        for always in ALWAYS_IGNORED {
            ignored.push(Pointer::parse(always).map_err(|e| e.to_string())?);
        }
        Ok(Filters {
            route: route.to_owned(),
            types: (!config.types.is_empty()).then(|| config.types.clone()),
            cel,
            ignored: config.suppress.then(|| PathSet::new(&ignored)),
            fields: (!fields.is_empty()).then(|| PathSet::new(&fields)),
            diff: config.diff,
            old_object: config.old_object,
            errors: Mutex::new(LogThrottle::new(Duration::from_secs(60))),
        })
    }

    /// Whether the route changes what it publishes (and so makes its own copies).
    fn transforms(&self) -> bool {
        self.fields.is_some() || self.diff || self.old_object == OldObject::None
    }

    /// What the route publishes for `note`: the same `Arc`, its own copy, or why nothing.
    pub(crate) fn apply(
        &self,
        note: &Arc<Notification>,
        metrics: &Metrics,
    ) -> Result<Arc<Notification>, Held> {
        if let Some(types) = &self.types
            && !types.contains(&note.event_type)
        {
            return Err(Held::Type);
        }
        let projected = self.fields.as_ref().map(|fields| {
            let at = fields.cursor();
            (
                raw::projected(&note.object, &at),
                note.old_object.as_ref().map(|old| raw::projected(old, &at)),
            )
        });
        if let (Some(ignored), Some(old)) = (&self.ignored, &note.old_object) {
            let (new, old): (&RawValue, &RawValue) = match &projected {
                Some((new, Some(old))) => (new, old),
                _ => (&note.object, old),
            };
            if note.event_type == EventType::Modified
                && raw::equal_ignoring(old, new, &ignored.cursor())
            {
                return Err(Held::Unchanged);
            }
        }
        if let Some(cel) = &self.cel {
            let input = Input {
                object: &note.object,
                old_object: note.old_object.as_deref(),
                event_type: note.event_type.as_str(),
                origin: note.origin.as_str(),
                tombstone: note.tombstone,
                old_resource_version: note.old_resource_version.as_deref(),
            };
            match cel.evaluate(&input) {
                Ok(true) => {}
                Ok(false) => return Err(Held::Filter),
                Err(e) => self.evaluation_failed(&e, note, metrics),
            }
        }
        if !self.transforms() {
            return Ok(note.clone());
        }
        let mut copy = Notification::clone(note);
        if let Some((object, old)) = projected {
            copy.object = Arc::from(object);
            copy.old_object = old.map(Arc::from);
        }
        if self.diff
            && copy.event_type == EventType::Modified
            && let Some(old) = &copy.old_object
        {
            copy.patch = patch(old, &copy.object);
        }
        if self.old_object == OldObject::None {
            copy.old_object = None;
        }
        Ok(Arc::new(copy))
    }

    /// A runtime error keeps the notification (a broken filter must not drop data): it is
    /// counted, and logged at most once a minute per route.
    fn evaluation_failed(&self, error: &str, note: &Notification, metrics: &Metrics) {
        metrics.filter_error(&self.route);
        let due = self.errors.lock().unwrap_or_else(|p| p.into_inner()).due();
        let Some(unlogged) = due else {
            return;
        };
        let expression = self.cel.as_ref().map_or("", |c| c.source());
        tracing::warn!(
            route = %self.route, object = %note.key(), id = %note.id(), expression, error,
            errors_since_last_log = unlogged,
            "the route's filter failed to evaluate; the notification is published (counted in kubebridge_route_filter_errors_total; logged at most once a minute)"
        );
    }
}

/// The RFC 6902 patch from `old` to `new`; `None` only if either is not JSON (never, for
/// objects the informer decoded).
fn patch(old: &RawValue, new: &RawValue) -> Option<Arc<RawValue>> {
    let old: serde_json::Value = serde_json::from_str(old.get()).ok()?;
    let new: serde_json::Value = serde_json::from_str(new.get()).ok()?;
    let patch = json_patch::diff(&old, &new);
    let text = serde_json::to_string(&patch).ok()?;
    RawValue::from_string(text).ok().map(Arc::from)
}

/// One route's stage in one informer's fan-out.
pub(crate) struct RouteStage {
    filters: Arc<Filters>,
    metrics: Metrics,
}

impl RouteStage {
    /// The stage of `filters`, counting in `metrics`.
    pub(crate) fn new(filters: Arc<Filters>, metrics: Metrics) -> RouteStage {
        RouteStage { filters, metrics }
    }

    /// What to queue for this route, if anything; what is held back is counted.
    pub(crate) fn pass(&self, note: &Arc<Notification>) -> Option<Arc<Notification>> {
        match self.filters.apply(note, &self.metrics) {
            Ok(published) => Some(published),
            Err(held) => {
                self.metrics.held(&self.filters.route, held.as_str());
                None
            }
        }
    }
}

/// A route's filters on their own, outside a `watch` run: for benchmarks and embedders
/// that want to filter notifications themselves. What it holds back or fails to evaluate
/// is counted in a registry of its own.
pub struct RouteFilter(RouteStage);

impl RouteFilter {
    /// Compiles `config` for the route called `route`; the error is one line.
    pub fn new(route: &str, config: &FilterConfig) -> Result<RouteFilter, String> {
        let filters = Arc::new(Filters::compile(route, config)?);
        Ok(RouteFilter(RouteStage::new(filters, Metrics::new())))
    }

    /// What the route publishes for `note`: the same `Arc`, its own copy, or nothing.
    pub fn pass(&self, note: &Arc<Notification>) -> Option<Arc<Notification>> {
        self.0.pass(note)
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use kubebridge_sinks::{Origin, ResourceId};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    fn note(event_type: EventType, object: &Value, old: Option<&Value>) -> Arc<Notification> {
        let raw = |v: &Value| Arc::from(RawValue::from_string(v.to_string()).expect("json"));
        Arc::new(Notification {
            event_type,
            origin: Origin::Watch,
            time: SystemTime::UNIX_EPOCH,
            cluster: None,
            resource: Arc::new(ResourceId {
                group: String::new(),
                version: "v1".into(),
                resource: "pods".into(),
                kind: "Pod".into(),
            }),
            namespace: Some("ns".into()),
            name: "a".into(),
            uid: "u".into(),
            resource_version: "2".into(),
            object: raw(object),
            old_object: old.map(raw),
            snapshot: None,
            patch: None,
            tombstone: false,
            old_resource_version: None,
        })
    }

    fn compile(config: FilterConfig) -> Filters {
        Filters::compile("r", &config).expect("valid")
    }

    /// JSON values over a small alphabet of keys, so two of them share structure.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..3).prop_map(|n| json!(n)),
            "[a-c~/]{0,3}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-c~/]{1,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn object() -> impl Strategy<Value = Value> {
        prop::collection::btree_map("[a-c~/]{1,2}", json_value(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    proptest! {
        /// For any two objects, the published patch turns the published oldObject into
        /// the published object, with and without projection.
        #[test]
        fn a_patch_applied_to_the_old_object_gives_the_object(old in object(), new in object(), project in any::<bool>()) {
            let filters = compile(FilterConfig {
                suppress: false,
                diff: true,
                fields: if project { vec!["/a".into(), "/b/*/c".into(), "/~1".into()] } else { Vec::new() },
                ..FilterConfig::default()
            });
            let published = filters
                .apply(&note(EventType::Modified, &new, Some(&old)), &Metrics::new())
                .expect("published");
            let patch: json_patch::Patch =
                serde_json::from_str(published.patch.as_ref().expect("a patch").get()).expect("patch");
            let mut patched: Value =
                serde_json::from_str(published.old_object.as_ref().expect("old").get()).expect("json");
            json_patch::patch(&mut patched, &patch).expect("applies");
            let object: Value = serde_json::from_str(published.object.get()).expect("json");
            prop_assert_eq!(patched, object);
        }

        /// With the default rules, objects that carry metadata: suppressed exactly when
        /// nothing but metadata.resourceVersion and metadata.managedFields changed.
        #[test]
        fn the_default_rules_suppress_exactly_bookkeeping(
            body_old in object(), body_new in object(), meta_old in object(), meta_new in object(),
            rvs in (0u32..3, 0u32..3), managed in (json_value(), json_value()), same_body in any::<bool>(),
        ) {
            let build = |body: &Value, meta: &Value, rv: u32, managed: &Value| {
                let mut object = body.clone();
                let mut meta = meta.clone();
                meta["resourceVersion"] = json!(rv.to_string());
                meta["managedFields"] = managed.clone();
                object["metadata"] = meta;
                object
            };
            let body_new = if same_body { body_old.clone() } else { body_new };
            let meta_new = if same_body { meta_old.clone() } else { meta_new };
            let old = build(&body_old, &meta_old, rvs.0, &managed.0);
            let new = build(&body_new, &meta_new, rvs.1, &managed.1);
            let filters = compile(FilterConfig::default());
            let held = filters.apply(&note(EventType::Modified, &new, Some(&old)), &Metrics::new()).is_err();
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(m) = v["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                    m.remove("managedFields");
                }
                v
            };
            prop_assert_eq!(held, strip(&old) == strip(&new));
        }

        /// Suppression never hides a change outside the ignored paths.
        #[test]
        fn only_changes_in_ignored_paths_are_suppressed(old in object(), new in object()) {
            let filters = compile(FilterConfig {
                ignore_fields: vec!["/a".into()],
                ..FilterConfig::default()
            });
            let held = filters.apply(&note(EventType::Modified, &new, Some(&old)), &Metrics::new()).is_err();
            let strip = |v: &Value| {
                let mut v = v.clone();
                v.as_object_mut().map(|m| m.remove("a"));
                v
            };
            prop_assert_eq!(held, strip(&old) == strip(&new));
        }
    }

    #[test]
    fn the_default_route_shares_the_notification_and_suppresses_bookkeeping() {
        let filters = compile(FilterConfig::default());
        let old = json!({"metadata": {"name": "a", "resourceVersion": "1", "managedFields": [1]}, "spec": {"x": 1}});
        let same = json!({"metadata": {"name": "a", "resourceVersion": "2"}, "spec": {"x": 1}});
        let changed = json!({"metadata": {"name": "a", "resourceVersion": "3"}, "spec": {"x": 2}});
        let metrics = Metrics::new();
        assert_eq!(
            filters
                .apply(&note(EventType::Modified, &same, Some(&old)), &metrics)
                .err(),
            Some(Held::Unchanged)
        );
        let n = note(EventType::Modified, &changed, Some(&same));
        let published = filters.apply(&n, &metrics).expect("a real change");
        assert!(Arc::ptr_eq(&published, &n), "no copy without transforms");
        // A SYNC has no old object to compare with: never suppressed.
        assert!(
            filters
                .apply(&note(EventType::Sync, &same, None), &metrics)
                .is_ok()
        );
    }
}
