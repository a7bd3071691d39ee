//! The end-of-run checker: what a sink delivered, object by object, against the API
//! server's final state.
//!
//! The promise checked is the one kubebridge makes: at least once, in order per object.
//! So per object (key `resource[.group]/namespace/name`) the LAST notification a sink
//! holds must be the object's final state: same uid and resourceVersion, not a DELETED,
//! for an object that exists; a DELETED for one that existed and is gone. Intermediate
//! states may be missing (a relist after 410 Gone reports only what changed across the
//! gap, as client-go does) and states may arrive more than once (duplicates are counted,
//! not failed). And every incarnation (uid) a sink announced that is not the final one
//! must be closed by a DELETED of that uid: a delete is never skipped, even when the
//! object was recreated under the same name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

/// `resource[.group]/namespace/name` (namespace empty for cluster-scoped objects).
pub type Key = String;

/// An object's state at the end of the run, as the API server lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    /// metadata.uid.
    pub uid: String,
    /// metadata.resourceVersion.
    pub resource_version: String,
}

/// What a notification says about its object.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Delivered {
    deleted: bool,
    uid: String,
    resource_version: String,
}

/// The key of an object of `resource` (`plural`, `plural.group`).
pub fn key(resource: &str, namespace: &str, name: &str) -> Key {
    format!("{resource}/{namespace}/{name}")
}

/// The key of a notification, from its envelope.
pub fn notification_key(n: &Value) -> Key {
    let r = &n["resource"];
    let plural = r["resource"].as_str().unwrap_or_default();
    let resource = match r["group"].as_str().unwrap_or_default() {
        "" => plural.to_string(),
        g => format!("{plural}.{g}"),
    };
    key(
        &resource,
        n["namespace"].as_str().unwrap_or_default(),
        n["name"].as_str().unwrap_or_default(),
    )
}

/// The final state of every object a LIST body (`items` of one resource) holds.
pub fn final_states_of_list(resource: &str, list: &Value) -> BTreeMap<Key, Present> {
    let mut out = BTreeMap::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let m = &item["metadata"];
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        out.insert(
            key(
                resource,
                m["namespace"].as_str().unwrap_or_default(),
                m["name"].as_str().unwrap_or_default(),
            ),
            Present {
                uid: s(&m["uid"]),
                resource_version: s(&m["resourceVersion"]),
            },
        );
    }
    out
}

/// What the checker found in one sink.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// The sink's name, for printing.
    pub sink: String,
    /// Notifications read.
    pub notifications: usize,
    /// Notifications repeating a state (key, uid, resourceVersion, deleted or not) the
    /// sink already held: allowed by at-least-once, counted.
    pub duplicates: usize,
    /// Objects that exist at the end and whose last notification is their final state.
    pub final_states_ok: usize,
    /// Objects gone at the end whose last notification is a DELETED.
    pub deletes_ok: usize,
    /// Incarnations (uids) announced and later replaced or gone whose DELETED arrived.
    pub incarnations_closed: usize,
    /// Objects whose final state predates the scope of a [`check_since`] and of which
    /// the sink holds nothing: not checked.
    pub unchecked: usize,
    /// Objects gone at the end that the sink never heard of (created and deleted within
    /// a gap the API server compacted away): nothing to deliver, counted.
    pub never_seen: usize,
    /// Failures: an existing object whose last notification is not its final state (or
    /// missing), or a gone object whose last notification is not a DELETED and that is
    /// not a known gap. Each entry says which and why.
    pub lost: Vec<String>,
    /// Gone objects whose delete the caller declared a known gap (deleted while
    /// kubebridge was down: issue 10's checkpoints), and that were indeed not delivered.
    pub known_gap: Vec<String>,
}

impl Report {
    /// Whether nothing was lost.
    pub fn passed(&self) -> bool {
        self.lost.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: notifications={} duplicates={} final_states_ok={} deletes_ok={} incarnations_closed={} never_seen={} unchecked={} known_gap={} lost={}",
            self.sink,
            self.notifications,
            self.duplicates,
            self.final_states_ok,
            self.deletes_ok,
            self.incarnations_closed,
            self.never_seen,
            self.unchecked,
            self.known_gap.len(),
            self.lost.len()
        )?;
        for l in self.lost.iter().take(20) {
            write!(f, "\n  LOST {l}")?;
        }
        if self.lost.len() > 20 {
            write!(f, "\n  ... and {} more", self.lost.len() - 20)?;
        }
        for g in self.known_gap.iter().take(10) {
            write!(f, "\n  KNOWN GAP (deleted while kubebridge was down) {g}")?;
        }
        Ok(())
    }
}

/// Checks the notifications of one sink, in delivery order, against the final state.
/// Every key the sink mentions and `final_states` lacks is gone at the end; `touched`
/// names the objects the run wrote (to count the gone ones the sink never heard of);
/// `known_gap` names gone objects whose delete the caller expects not to be delivered,
/// reported apart.
pub fn check(
    sink: &str,
    notifications: &[Value],
    final_states: &BTreeMap<Key, Present>,
    touched: &BTreeSet<Key>,
    known_gap: &BTreeSet<Key>,
) -> Report {
    check_since(sink, notifications, final_states, touched, known_gap, 0)
}

/// [`check`] for a sink that lost what it held up to resourceVersion `since` (a Kafka
/// broker restarted without its state): an object whose final state is at or before
/// `since` and of which the sink holds nothing is not checked (counted as
/// `unchecked`); everything the sink holds is checked as by [`check`].
pub fn check_since(
    sink: &str,
    notifications: &[Value],
    final_states: &BTreeMap<Key, Present>,
    touched: &BTreeSet<Key>,
    known_gap: &BTreeSet<Key>,
    since: u64,
) -> Report {
    let mut report = Report {
        sink: sink.to_string(),
        notifications: notifications.len(),
        ..Report::default()
    };
    let mut last: BTreeMap<Key, Delivered> = BTreeMap::new();
    let mut seen: BTreeSet<(Key, String, String, bool)> = BTreeSet::new();
    // uid -> (key, whether a DELETED of it arrived)
    let mut incarnations: BTreeMap<String, (Key, bool)> = BTreeMap::new();
    for n in notifications {
        let k = notification_key(n);
        let d = Delivered {
            deleted: n["type"] == "DELETED",
            uid: n["uid"].as_str().unwrap_or_default().to_string(),
            resource_version: n["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        };
        if !seen.insert((
            k.clone(),
            d.uid.clone(),
            d.resource_version.clone(),
            d.deleted,
        )) {
            report.duplicates += 1;
        }
        let inc = incarnations
            .entry(d.uid.clone())
            .or_insert_with(|| (k.clone(), false));
        inc.1 |= d.deleted;
        last.insert(k, d);
    }
    for (uid, (k, deleted)) in &incarnations {
        let is_final = final_states.get(k).is_some_and(|p| &p.uid == uid);
        match (is_final, deleted) {
            (true, _) => {}
            (false, true) => report.incarnations_closed += 1,
            // The last state of a gone object is judged below, once per key.
            (false, false) if last.get(k).is_some_and(|d| &d.uid == uid) => {}
            (false, false) if known_gap.contains(k) => {
                report.known_gap.push(format!("{k} uid {uid}"))
            }
            (false, false) => report.lost.push(format!(
                "{k}: uid {uid} was replaced or deleted, its DELETED never arrived"
            )),
        }
    }
    for (k, want) in final_states {
        match last.get(k) {
            Some(d)
                if !d.deleted
                    && d.uid == want.uid
                    && d.resource_version == want.resource_version =>
            {
                report.final_states_ok += 1;
            }
            Some(d) => report.lost.push(format!(
                "{k}: final state uid {} rv {}, last delivered {} uid {} rv {}",
                want.uid,
                want.resource_version,
                if d.deleted { "DELETED" } else { "state" },
                d.uid,
                d.resource_version
            )),
            None if want
                .resource_version
                .parse::<u64>()
                .is_ok_and(|rv| rv <= since) =>
            {
                report.unchecked += 1;
            }
            None => report.lost.push(format!(
                "{k}: final state uid {} rv {}, nothing delivered",
                want.uid, want.resource_version
            )),
        }
    }
    for (k, d) in last.iter().filter(|(k, _)| !final_states.contains_key(*k)) {
        if d.deleted {
            report.deletes_ok += 1;
        } else if known_gap.contains(k) {
            report.known_gap.push(k.clone());
        } else {
            report.lost.push(format!(
                "{k}: gone at the end, last delivered uid {} rv {} is not a DELETED",
                d.uid, d.resource_version
            ));
        }
    }
    report.never_seen = touched
        .iter()
        .filter(|k| !final_states.contains_key(*k) && !last.contains_key(*k))
        .count();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n(ty: &str, name: &str, uid: &str, rv: u64) -> Value {
        json!({"type": ty, "resource": {"group": "", "version": "v1", "resource": "configmaps", "kind": "ConfigMap"},
               "namespace": "ns", "name": name, "uid": uid, "resourceVersion": rv.to_string()})
    }

    fn present(uid: &str, rv: u64) -> Present {
        Present {
            uid: uid.into(),
            resource_version: rv.to_string(),
        }
    }

    #[test]
    fn final_state_last_delete_and_duplicates() {
        let delivered = [
            n("ADDED", "a", "u1", 1),
            n("MODIFIED", "a", "u1", 3),
            n("ADDED", "a", "u1", 3), // a relist after a restart: same state again
            n("ADDED", "b", "u2", 2),
            n("DELETED", "b", "u2", 4),
            n("ADDED", "c", "u3", 5),
            n("DELETED", "c", "u3", 6),
            n("ADDED", "c", "u4", 7), // deleted and recreated with a new uid
        ];
        let skipped_delete = [n("ADDED", "c", "u3", 5), n("ADDED", "c", "u4", 7)];
        let finals = BTreeMap::from([
            (key("configmaps", "ns", "a"), present("u1", 3)),
            (key("configmaps", "ns", "c"), present("u4", 7)),
        ]);
        let r = check("t", &delivered, &finals, &BTreeSet::new(), &BTreeSet::new());
        assert!(r.passed(), "{r}");
        assert_eq!((r.final_states_ok, r.deletes_ok, r.duplicates), (2, 1, 1));
        assert_eq!(r.incarnations_closed, 2);

        let finals = BTreeMap::from([(key("configmaps", "ns", "c"), present("u4", 7))]);
        let r = check(
            "t",
            &skipped_delete,
            &finals,
            &BTreeSet::new(),
            &BTreeSet::new(),
        );
        assert_eq!(
            r.lost.len(),
            1,
            "a recreate without the old uid's DELETED: {r}"
        );
    }

    #[test]
    fn a_stale_last_state_a_missing_object_and_an_undelivered_delete_are_lost() {
        let delivered = [
            n("ADDED", "a", "u1", 1),
            n("ADDED", "gone", "u2", 2),
            n("ADDED", "c", "u3", 5),
            n("DELETED", "c", "u3", 6), // deleted, but it exists again at the end
        ];
        let finals = BTreeMap::from([
            (key("configmaps", "ns", "a"), present("u1", 3)),
            (key("configmaps", "ns", "c"), present("u4", 7)),
            (key("configmaps", "ns", "never"), present("u5", 8)),
        ]);
        let r = check("t", &delivered, &finals, &BTreeSet::new(), &BTreeSet::new());
        assert_eq!(r.lost.len(), 4, "{r}");
        assert!(!r.passed());
    }

    #[test]
    fn a_sink_that_lost_its_state_is_checked_after_the_loss_only() {
        let delivered = [n("MODIFIED", "b", "u2", 9)];
        let finals = BTreeMap::from([
            (key("configmaps", "ns", "a"), present("u1", 3)),
            (key("configmaps", "ns", "b"), present("u2", 9)),
            (key("configmaps", "ns", "c"), present("u3", 12)),
        ]);
        let r = check_since(
            "t",
            &delivered,
            &finals,
            &BTreeSet::new(),
            &BTreeSet::new(),
            5,
        );
        assert_eq!((r.unchecked, r.final_states_ok), (1, 1), "{r}");
        assert_eq!(
            r.lost.len(),
            1,
            "c changed after the loss and is missing: {r}"
        );
    }

    #[test]
    fn known_gaps_are_counted_apart_from_losses() {
        let delivered = [n("ADDED", "a", "u1", 1)];
        let gap = BTreeSet::from([key("configmaps", "ns", "a"), key("configmaps", "ns", "z")]);
        let r = check("t", &delivered, &BTreeMap::new(), &gap, &gap);
        assert!(r.passed(), "{r}");
        assert_eq!(r.known_gap, [key("configmaps", "ns", "a")]);
        assert_eq!(r.never_seen, 1);
    }

    #[test]
    fn a_replaced_uid_in_a_known_gap_is_a_gap_not_a_loss() {
        // Deleted and recreated while kubebridge was down: the old uid's DELETED cannot
        // have been seen, and is reported as such, not passed off nor counted as lost.
        let a = key("configmaps", "ns", "a");
        let delivered = [n("ADDED", "a", "u1", 1), n("ADDED", "a", "u2", 5)];
        let finals = BTreeMap::from([(a.clone(), present("u2", 5))]);
        let gap = BTreeSet::from([a.clone()]);
        let r = check("t", &delivered, &finals, &gap, &gap);
        assert!(r.lost.is_empty(), "{r}");
        assert_eq!(r.known_gap, [format!("{a} uid u1")]);
    }
}
