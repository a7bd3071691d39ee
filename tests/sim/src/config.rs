//! Configuration of a simulated API server: seed size, churn rate, history window and feature switches.

use std::time::Duration;

/// How a [`crate::Sim`] is seeded and how it behaves over time.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed namespaces "ns-0", "ns-1", ... created besides the four system namespaces that always exist.
    pub namespaces: usize,
    /// Seed pods spread across the seed namespaces (or "default" when there are none), ~3 KB of JSON each.
    pub pods: usize,
    /// Seed deployments (each with one ReplicaSet) per seed namespace; pods are owned by them.
    pub deployments_per_namespace: usize,
    /// Background mutations per second (0 = none).
    pub churn_per_sec: f64,
    /// Watch history window in events; older resourceVersions get 410 Gone.
    pub history: usize,
    /// How often a watch that asked for bookmarks gets a BOOKMARK event.
    pub bookmark_interval: Duration,
    /// Whether `sendInitialEvents=true` (the WatchList feature) is supported.
    pub watch_list: bool,
    /// RNG seed so that seeding and churn are reproducible.
    pub seed: u64,
    /// Give generated pods `metadata.managedFields` as a real API server does (one entry
    /// for kube-controller-manager's spec, one for the kubelet's status), about a third
    /// of their bytes. Off by default so existing figures keep their meaning.
    pub managed_fields: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            namespaces: 0,
            pods: 0,
            deployments_per_namespace: 0,
            churn_per_sec: 0.0,
            history: 10_000,
            bookmark_interval: Duration::from_secs(60),
            watch_list: true,
            seed: 1,
            managed_fields: false,
        }
    }
}
