//! The state every part of a running simulator shares: the store, the fault hooks, the
//! review table and the configuration.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::SimConfig;
use crate::faults::Faults;
use crate::reviews::Reviews;
use crate::store::Store;

/// State shared by the HTTP handlers, watch tasks, churn and the [`crate::Sim`] handle.
pub(crate) struct Shared {
    pub(crate) store: Arc<Mutex<Store>>,
    pub(crate) faults: Faults,
    pub(crate) reviews: Reviews,
    pub(crate) config: SimConfig,
}

impl Shared {
    /// Locks the store; a poisoned lock is recovered because every write leaves the store consistent.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}
