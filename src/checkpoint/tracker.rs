//! Confirmation tracking: the point up to which every sink of one informer has settled
//! what it was handed, and the index of the objects known at that point.
//!
//! The processor numbers every change it notifies (`record`), hands the notification to
//! each sink's queue with a receipt from that sink's [`Ledger`], then says the number was
//! handed (`handed`). A sink's safe point is just below its oldest unsettled number, or
//! the last handed number when it has none outstanding; the informer's is the lowest of
//! its sinks'. [`Tracker::advance`] applies the logged changes up to that point to the
//! confirmed index, which is what a checkpoint writes. It never moves on enqueue, only on
//! settlement, so a crash can repeat a change but never skip one.
//!
//! Settled means confirmed by the destination, refused for good, or evicted under
//! `--overflow drop-oldest`: the last two are logged and counted where they happen, and a
//! checkpoint does not hold the informer back for them (it would never move again). A
//! notification a route's filter kept out of a queue never becomes outstanding there.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::confirm::Ledger;

/// What a checkpoint knows of one object: enough to tell, on the next start, whether it
/// changed, was replaced or went away; never its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
}

/// The objects known at a checkpoint, by `namespace/name` (or `name`).
pub type Index = HashMap<String, Known>;

/// One change to the index, in the order the processor notified it.
#[derive(Debug)]
pub(crate) enum Change {
    /// The object under the key is now this one.
    Put(String, Known),
    /// The object under the key is gone.
    Delete(String),
    /// The whole index is now this (an initial list that notified nothing).
    Reset(Index),
}

/// The point every sink has settled: an index, the resourceVersion of the last change
/// in it, and how far along the processor's numbering it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Confirmed {
    /// The objects.
    pub index: Index,
    /// The highest resourceVersion among the changes applied (for people and metrics:
    /// a resume always lists, so it is never watched from).
    pub resource_version: String,
    /// The processor's sequence number it reaches.
    pub seq: u64,
}

struct State {
    /// The last sequence number given out.
    issued: u64,
    /// Every notification numbered up to here is in every sink's queue (or was filtered).
    handed: u64,
    /// Changes numbered above `confirmed.seq`, in order.
    log: VecDeque<(u64, Change, String)>,
    confirmed: Confirmed,
    /// Whether `confirmed` moved since [`Tracker::take_dirty`] last returned it.
    dirty: bool,
    /// When `confirmed` last moved.
    moved_at: SystemTime,
}

/// One informer's confirmation tracking.
pub(crate) struct Tracker {
    ledgers: Mutex<Vec<Arc<Ledger>>>,
    state: Mutex<State>,
}

impl Tracker {
    /// Tracking from `resumed` (a checkpoint's index), or from nothing.
    pub(crate) fn new(resumed: Option<Confirmed>) -> Arc<Tracker> {
        // Nothing to write until something is confirmed: a checkpoint of nothing would
        // make the next start send everything as `relist` rather than as its initial list.
        let dirty = false;
        let confirmed = resumed.unwrap_or_default();
        Arc::new(Tracker {
            ledgers: Mutex::default(),
            state: Mutex::new(State {
                issued: confirmed.seq,
                handed: confirmed.seq,
                log: VecDeque::new(),
                confirmed,
                dirty,
                moved_at: SystemTime::now(),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Each critical section leaves the state consistent: a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ledgers(&self) -> MutexGuard<'_, Vec<Arc<Ledger>>> {
        self.ledgers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ledger for one more sink of this informer.
    pub(crate) fn ledger(&self) -> Arc<Ledger> {
        let ledger = Arc::new(Ledger::default());
        self.ledgers().push(ledger.clone());
        ledger
    }

    /// Numbers `change` (whose object is at `resource_version`) and logs it until every
    /// sink has settled it. Call before handing its notification to any sink.
    pub(crate) fn record(&self, change: Change, resource_version: String) -> u64 {
        let mut state = self.state();
        state.issued += 1;
        let seq = state.issued;
        state.log.push_back((seq, change, resource_version));
        seq
    }

    /// Every notification numbered up to `seq` is now in every sink's queue.
    pub(crate) fn handed(&self, seq: u64) {
        let mut state = self.state();
        state.handed = state.handed.max(seq);
    }

    /// The highest number every sink has settled everything up to.
    fn safe_point(&self, handed: u64) -> u64 {
        self.ledgers()
            .iter()
            .filter_map(|l| l.oldest())
            .map(|oldest| oldest - 1)
            .fold(handed, u64::min)
    }

    /// Applies the logged changes every sink has settled to the confirmed index; returns
    /// whether it moved.
    pub(crate) fn advance(&self) -> bool {
        let handed = self.state().handed;
        // Read the ledgers without the state lock: a receipt settled meanwhile only makes
        // the point we compute conservative.
        let safe = self.safe_point(handed);
        let mut state = self.state();
        let mut moved = false;
        while state.log.front().is_some_and(|(seq, ..)| *seq <= safe) {
            let Some((seq, change, rv)) = state.log.pop_front() else {
                break;
            };
            let confirmed = &mut state.confirmed;
            match change {
                Change::Put(key, known) => {
                    confirmed.index.insert(key, known);
                }
                Change::Delete(key) => {
                    confirmed.index.remove(&key);
                }
                Change::Reset(index) => confirmed.index = index,
            }
            if later(&rv, &confirmed.resource_version) {
                confirmed.resource_version = rv;
            }
            confirmed.seq = seq;
            moved = true;
        }
        if moved {
            state.dirty = true;
            state.moved_at = SystemTime::now();
        }
        moved
    }

    /// The confirmed point, if it moved since the last call (a copy, so encoding and
    /// writing it holds nothing up).
    pub(crate) fn take_dirty(&self) -> Option<Confirmed> {
        let mut state = self.state();
        if !state.dirty {
            return None;
        }
        state.dirty = false;
        Some(state.confirmed.clone())
    }

    /// Marks the confirmed point as not yet persisted (a write failed).
    pub(crate) fn mark_dirty(&self) {
        self.state().dirty = true;
    }

    /// Changes numbered but not yet settled by every sink.
    pub(crate) fn unconfirmed(&self) -> usize {
        self.state().log.len()
    }

    /// When the confirmed point last moved.
    pub(crate) fn moved_at(&self) -> SystemTime {
        self.state().moved_at
    }

    /// A copy of the confirmed point as it is now.
    #[cfg(test)]
    pub(crate) fn confirmed(&self) -> Confirmed {
        self.state().confirmed.clone()
    }
}

/// Whether resourceVersion `a` is later than `b`. resourceVersions are opaque to
/// clients, but every API server in use writes etcd revisions (decimal integers); for
/// anything else the latest applied wins.
fn later(a: &str, b: &str) -> bool {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(a), Ok(b)) => a > b,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(uid: &str, rv: u64) -> Known {
        Known {
            uid: uid.into(),
            resource_version: rv.to_string(),
        }
    }

    fn put(t: &Tracker, key: &str, rv: u64) -> u64 {
        t.record(Change::Put(key.into(), known(key, rv)), rv.to_string())
    }

    #[test]
    fn advances_only_as_far_as_the_slowest_sink_settled() {
        let t = Tracker::new(None);
        let fast = t.ledger();
        let slow = t.ledger();
        let mut receipts = Vec::new();
        for (key, rv) in [("a", 1), ("b", 2), ("c", 3)] {
            let seq = put(&t, key, rv);
            receipts.push((fast.issue(seq), slow.issue(seq)));
            t.handed(seq);
        }
        // Nothing settled: nothing confirmed, though everything is queued.
        assert!(!t.advance());
        assert!(t.confirmed().index.is_empty());
        for (f, _) in &receipts {
            f.settle();
        }
        receipts[0].1.settle();
        assert!(t.advance());
        let c = t.confirmed();
        assert_eq!(c.index.len(), 1, "only a: the slow sink has b and c out");
        assert_eq!((c.seq, c.resource_version.as_str()), (1, "1"));
        receipts[2].1.settle();
        t.advance();
        assert_eq!(t.confirmed().seq, 1, "b still holds it back");
        receipts[1].1.settle();
        t.advance();
        assert_eq!(t.confirmed().index.len(), 3);
        assert_eq!(t.unconfirmed(), 0);
    }

    #[test]
    fn a_change_not_yet_handed_to_every_sink_is_not_confirmed() {
        let t = Tracker::new(None);
        let a = t.ledger();
        let _b = t.ledger();
        let seq = put(&t, "x", 5);
        a.issue(seq).settle();
        // b has not been handed it yet (the processor is between the two queues).
        t.advance();
        assert_eq!(t.confirmed().seq, 0);
        t.handed(seq);
        t.advance();
        assert_eq!(
            t.confirmed().seq,
            1,
            "b filtered it out: nothing outstanding"
        );
    }

    #[test]
    fn deletes_resets_and_the_highest_resource_version() {
        let t = Tracker::new(None);
        let mut index = Index::new();
        index.insert("a".into(), known("a", 7));
        index.insert("b".into(), known("b", 3));
        let s = t.record(Change::Reset(index), "7".into());
        t.handed(s);
        let s = t.record(Change::Delete("b".into()), "3".into());
        t.handed(s);
        assert!(t.advance());
        let c = t.take_dirty().expect("moved");
        assert_eq!(c.index.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(
            c.resource_version, "7",
            "a relist's delete carries an older rv"
        );
        assert!(t.take_dirty().is_none(), "written once");
        t.mark_dirty();
        assert!(t.take_dirty().is_some(), "a failed write is tried again");
    }
}
