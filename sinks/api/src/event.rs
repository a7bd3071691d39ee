//! What happened to an object ([`EventType`]) and how kubebridge learned of it ([`Origin`]).

use std::fmt;

use serde::Serialize;

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// The object appeared (created, or first seen by this informer).
    Added,
    /// The object changed; the notification carries the previous state as `oldObject`.
    Modified,
    /// The object is gone; the notification carries its last known state.
    Deleted,
    /// A periodic replay of an unchanged cached object (resync).
    Sync,
}

impl EventType {
    /// The upper-case name used in the envelope and in message ids.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
            EventType::Sync => "SYNC",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How kubebridge learned of the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The initial LIST (or the initial events of a watch-list): the state at start-up.
    List,
    /// A WATCH event: a change as it happened.
    Watch,
    /// Reconciliation after a gap (410 Gone, relist): the difference between the cache
    /// and the fresh list, so no change is lost while the watch was down.
    Relist,
    /// A periodic replay of the cache, with no request to the API server.
    Resync,
}

impl Origin {
    /// The lower-case name used in the envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::List => "list",
            Origin::Watch => "watch",
            Origin::Relist => "relist",
            Origin::Resync => "resync",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
