//! [`Snapshot`]: the frame around a full replay of the cache, for mark and sweep.

use std::sync::Arc;

use serde::Serialize;

/// Frames a complete picture of the cache (the initial list or a resync replay), so that
/// a consumer that lost its own state can mark and sweep.
///
/// Every notification of one snapshot carries the same `id` and the snapshot's `total`;
/// `index` runs from 0 to `total - 1`. A consumer marks every object it sees with the
/// snapshot id and, once it has counted `total` notifications of that id (they may arrive
/// on different partitions, so count rather than wait for the last index), deletes what
/// it holds for that resource that was not marked. An empty cache produces no snapshot
/// notifications, so there is nothing to sweep against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Unique per informer and replay, e.g. `pods@1732350000123-3`.
    pub id: Arc<str>,
    /// Position of this notification within the snapshot, from 0.
    pub index: u64,
    /// Number of notifications in the snapshot.
    pub total: u64,
}
