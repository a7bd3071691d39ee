//! Shared informers: one per (resource, namespace, selectors), whatever consumes it.

use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{
    Processor, ProcessorConfig, Reflector, ReflectorConfig, ReflectorError, Store, Subscription,
};
use crate::checkpoint::run::Resume;
use crate::kube::discovery::ApiResource;
use crate::metrics::Metrics;

/// What one informer watches. Two consumers asking for equal specs share one informer:
/// one LIST, one WATCH and one cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InformerSpec {
    /// The resource.
    pub resource: ApiResource,
    /// A namespace, or `None` for all namespaces (and for cluster-scoped resources).
    pub namespace: Option<String>,
    /// Label selector, sent to the server.
    pub label_selector: Option<String>,
    /// Field selector, sent to the server.
    pub field_selector: Option<String>,
}

impl InformerSpec {
    /// A short name for logs and snapshot ids: `pods@shop`, `deployments.apps`.
    pub fn name(&self) -> String {
        let mut name = self.resource.id.to_string();
        if let Some(ns) = &self.namespace {
            name.push('@');
            name.push_str(ns);
        }
        name
    }
}

/// Each informer's name and a flag that turns true once it has synced.
pub type SyncedFlags = Vec<(String, watch::Receiver<bool>)>;

/// Informers being assembled: specs and their subscribers, before anything starts.
#[derive(Default)]
pub struct Informers {
    specs: Vec<(InformerSpec, Vec<Subscription>)>,
    /// With `--checkpoint`: where each informer starts from.
    resumes: Vec<(InformerSpec, Resume)>,
}

impl Informers {
    /// Subscribes a route to the informer for `spec`, creating it if no one asked for it
    /// yet.
    pub fn subscribe(&mut self, spec: InformerSpec, route: Subscription) {
        match self.specs.iter_mut().find(|(s, _)| *s == spec) {
            Some((_, subs)) => subs.push(route),
            None => self.specs.push((spec, vec![route])),
        }
    }

    /// The informers to start, for a caller that reads their checkpoints first.
    pub(crate) fn specs(&self) -> impl Iterator<Item = &InformerSpec> {
        self.specs.iter().map(|(spec, _)| spec)
    }

    /// Tracks the informer for `spec` for its checkpoint, starting from `resume`.
    pub(crate) fn checkpoint(&mut self, spec: InformerSpec, resume: Resume) {
        self.resumes.push((spec, resume));
    }

    /// Starts a reflector and a processor for every informer.
    pub(crate) fn start(
        self,
        client: &kube::Client,
        reflector: &ReflectorConfig,
        processor: &ProcessorConfig,
        cancel: &CancellationToken,
        metrics: &Metrics,
    ) -> RunningInformers {
        let mut resumes = self.resumes;
        let mut running = RunningInformers {
            tasks: JoinSet::new(),
            synced: Vec::new(),
            caches: Vec::new(),
        };
        for (spec, subscribers) in self.specs {
            let name = spec.name();
            // The DeltaFIFO: bounded, so a processor blocked on a full sink queue stops
            // the reflector reading its watch.
            let (delta_tx, delta_rx) = mpsc::channel(256);
            let resume = resumes
                .iter()
                .position(|(s, _)| *s == spec)
                .map(|i| resumes.swap_remove(i).1);
            let processor = Processor::with_checkpoint(
                name.clone(),
                spec.resource.id.clone(),
                processor.clone(),
                subscribers,
                resume,
                metrics.clone(),
            );
            running.synced.push((name, processor.synced()));
            running.caches.push((spec.clone(), processor.cache()));
            let reflector = Reflector::new(
                spec.name(),
                client.clone(),
                spec.resource.clone(),
                spec.namespace.clone(),
                spec.label_selector.clone(),
                spec.field_selector.clone(),
                reflector.clone(),
                metrics.clone(),
            );
            let cancel = cancel.clone();
            running.tasks.spawn(async move {
                let (result, ()) =
                    tokio::join!(reflector.run(delta_tx, cancel), processor.run(delta_rx));
                result.map_err(Box::new)
            });
        }
        running
    }
}

/// Informers that are running.
pub struct RunningInformers {
    tasks: JoinSet<Result<(), Box<ReflectorError>>>,
    synced: Vec<(String, watch::Receiver<bool>)>,
    caches: Vec<(InformerSpec, Arc<RwLock<Store>>)>,
}

impl RunningInformers {
    /// Each informer's cache, shared for reading.
    pub fn caches(&self) -> Vec<(InformerSpec, Arc<RwLock<Store>>)> {
        self.caches.clone()
    }

    /// Each informer's name and whether it has synced, for readiness checks.
    pub fn synced_flags(&self) -> SyncedFlags {
        self.synced.clone()
    }

    /// Waits for the next informer to stop; `None` when all have.
    pub async fn join_next(&mut self) -> Option<Result<(), Box<ReflectorError>>> {
        let joined = self.tasks.join_next().await?;
        Some(joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())))
    }
}
