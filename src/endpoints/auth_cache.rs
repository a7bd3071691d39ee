//! A small bounded map whose entries expire: the review results `auth` keeps so that a
//! scraper's every request does not cost the API server a TokenReview and a
//! SubjectAccessReview (what client-go's cached token authenticator and the delegating
//! authorizer's cache do for controller-runtime and kube-rbac-proxy).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Entries held at most, per cache. 1024: the kube-apiserver's own webhook token cache
/// holds as many, and a kubebridge has a handful of scrapers and readers; a flood of
/// distinct tokens evicts only its own entries' neighbours, never grows memory.
pub(crate) const DEFAULT_CAPACITY: usize = 1024;

/// Values by key until each one's own expiry; at most `capacity` of them.
pub(crate) struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// An empty cache holding at most `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The value under `key`, unless it has expired.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(key) {
            Some((value, expires)) if *expires > Instant::now() => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` under `key` for `ttl` (a zero `ttl` keeps nothing). When full, the
    /// expired entries go first, then the one that would expire soonest.
    pub(crate) fn insert(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, expires)| *expires > now);
        }
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let soonest = entries
                .iter()
                .min_by_key(|(_, (_, expires))| *expires)
                .map(|(k, _)| k.clone());
            if let Some(soonest) = soonest {
                entries.remove(&soonest);
            }
        }
        entries.insert(key, (value, now + ttl));
    }

    /// Entries held, expired or not.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_entry_is_served_until_it_expires() {
        let cache = TtlCache::new(4);
        cache.insert("a", 1, Duration::from_secs(10));
        assert_eq!(cache.get(&"a"), Some(1));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(cache.get(&"a"), Some(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(cache.get(&"a"), None);
        assert_eq!(cache.len(), 0, "an expired entry is dropped when met");
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_ttl_keeps_nothing() {
        let cache = TtlCache::new(4);
        cache.insert("a", 1, Duration::ZERO);
        assert_eq!(cache.get(&"a"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_drops_the_expired_then_the_soonest_to_expire() {
        let cache = TtlCache::new(3);
        cache.insert(1, "short", Duration::from_secs(1));
        cache.insert(2, "long", Duration::from_secs(100));
        cache.insert(3, "mid", Duration::from_secs(50));
        cache.insert(4, "new", Duration::from_secs(100));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&1), None, "the soonest to expire went");
        tokio::time::advance(Duration::from_secs(60)).await;
        cache.insert(5, "newer", Duration::from_secs(100));
        assert_eq!(cache.get(&3), None, "expired");
        assert_eq!(cache.get(&2), Some("long"));
        assert_eq!(cache.get(&4), Some("new"));
        assert_eq!(cache.get(&5), Some("newer"));
        for k in 10..1000 {
            cache.insert(k, "flood", Duration::from_secs(100));
        }
        assert_eq!(cache.len(), 3, "never more than its capacity");
    }
}
