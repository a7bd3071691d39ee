//! Checkpoints during a run: each informer's checkpoint read and judged at start-up,
//! then written at most once per interval while its confirmed point moves, and once more
//! after the sinks drain on a clean shutdown.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::format::Checkpoint;
use super::identity::{InformerIdentity, cluster_uid};
use super::store::{CheckpointUri, Store, StoreError};
use super::tracker::{Index, Tracker};
use super::{configmap::ConfigMapStore, file::FileStore};
use crate::metrics::Metrics;

/// `--checkpoint` and `--checkpoint-interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// Where.
    pub uri: CheckpointUri,
    /// How often, at most, a changing checkpoint is written.
    pub interval: Duration,
}

/// The default `--checkpoint-interval`: a crash repeats at most this much more than what
/// was in flight, and with 100 000 objects a write every 10 s costs about 0.3 MiB/s
/// (README, "Checkpoints", measured by tests/bench/checkpoint.rs).
pub fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(10)
}

/// What one informer starts from.
pub(crate) struct Resume {
    /// Its confirmation tracking, from the checkpoint's point or from nothing.
    pub tracker: Arc<Tracker>,
    /// The checkpoint's index, when it resumes: its initial list is diffed against it.
    pub index: Option<Index>,
}

struct Entry {
    name: String,
    identity: InformerIdentity,
    tracker: Arc<Tracker>,
    /// When the persisted checkpoint was last up to date.
    current_at: SystemTime,
    /// Another instance wrote this checkpoint during this run (a new leader, while this
    /// one has not yet noticed it lost the lease, or a second instance sharing the
    /// store): this instance never writes it again, so a late write cannot replace the
    /// other's, nor leave parts of two writes behind.
    superseded: bool,
}

/// Every informer's checkpoint in one store.
pub(crate) struct Checkpoints {
    store: Store,
    /// The kube-system namespace's uid; `None` when it could not be read (nothing is
    /// resumed or written then).
    cluster: Option<String>,
    interval: Duration,
    metrics: Metrics,
    entries: Vec<Entry>,
}

impl Checkpoints {
    /// Opens the store `config` names (`default_namespace` for a ConfigMap store without
    /// one) and reads the cluster's identity. An unusable directory is a usage error; an
    /// unreadable cluster identity is one warning, and the run goes on without resuming.
    pub(crate) async fn open(
        config: &CheckpointConfig,
        client: &kube::Client,
        default_namespace: &str,
        metrics: &Metrics,
    ) -> Result<Checkpoints, String> {
        let store = match &config.uri {
            CheckpointUri::File(dir) => {
                let store = FileStore::new(dir.clone());
                store.check()?;
                Store::File(store)
            }
            CheckpointUri::ConfigMap { namespace, prefix } => {
                Store::ConfigMap(ConfigMapStore::new(
                    client.clone(),
                    namespace
                        .clone()
                        .unwrap_or_else(|| default_namespace.to_owned()),
                    prefix.clone(),
                ))
            }
        };
        let cluster = match cluster_uid(client).await {
            Ok(uid) => Some(uid),
            Err(e) => {
                tracing::warn!(error = %e, "--checkpoint: cannot read the cluster's identity (the kube-system namespace's uid), so checkpoints are neither resumed nor written this run; every informer starts from a full initial state");
                None
            }
        };
        Ok(Checkpoints {
            store,
            cluster,
            interval: config.interval,
            metrics: metrics.clone(),
            entries: Vec::new(),
        })
    }

    /// Reads and judges the checkpoint of the informer called `name`. A checkpoint that
    /// cannot be used is one warning and a count, and the informer starts afresh; `None`
    /// only when checkpoints are off for this run (no cluster identity).
    pub(crate) async fn resume(
        &mut self,
        name: &str,
        identity: InformerIdentity,
    ) -> Option<Resume> {
        let Some(cluster) = self.cluster.clone() else {
            self.metrics.checkpoint_resume(name, "no_cluster_identity");
            return None;
        };
        let where_ = self.store.describe(&identity.stored_as);
        let found = self.store.load(&identity.stored_as).await;
        let (outcome, resumed) = judge(found, &cluster, &identity);
        match (&resumed, &outcome) {
            (Some(c), _) => tracing::info!(
                informer = %name, checkpoint = %where_, objects = c.confirmed.index.len(),
                resource_version = %c.confirmed.resource_version,
                "resuming from the checkpoint: only what changed since is sent (origin relist)"
            ),
            (None, Ok(())) => {
                tracing::info!(informer = %name, checkpoint = %where_, "no checkpoint yet: starting from a full initial state")
            }
            (None, Err((_, why))) => tracing::warn!(
                informer = %name, checkpoint = %where_,
                "ignoring the checkpoint ({why}): starting from a full initial state"
            ),
        }
        let label = match (&resumed, &outcome) {
            (Some(_), _) => "resumed",
            (None, Ok(())) => "none",
            (None, Err((label, _))) => label,
        };
        self.metrics.checkpoint_resume(name, label);
        let (tracker, index) = match resumed {
            Some(c) => {
                let index = c.confirmed.index.clone();
                (Tracker::new(Some(c.confirmed)), Some(index))
            }
            None => (Tracker::new(None), None),
        };
        self.entries.push(Entry {
            name: name.to_owned(),
            identity,
            tracker: tracker.clone(),
            current_at: SystemTime::now(),
            superseded: false,
        });
        Some(Resume { tracker, index })
    }

    /// Starts writing: every interval, each checkpoint whose confirmed point moved. Send
    /// `true` on the returned channel for a last write (a clean shutdown, after the sinks
    /// drained), `false` to stop at once (the lease was lost: another instance may be
    /// writing already).
    pub(crate) fn spawn(mut self) -> (oneshot::Sender<bool>, JoinHandle<()>) {
        let (stop_tx, mut stop) = oneshot::channel::<bool>();
        let task = tokio::spawn(async move {
            if self.cluster.is_none() || self.entries.is_empty() {
                return;
            }
            let start = tokio::time::Instant::now() + self.interval;
            let mut tick = tokio::time::interval_at(start, self.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    last = &mut stop => {
                        if last.unwrap_or(false) {
                            self.write_all().await;
                        }
                        return;
                    }
                    _ = tick.tick() => self.write_all().await,
                }
            }
        });
        (stop_tx, task)
    }

    async fn write_all(&mut self) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        for entry in &mut self.entries {
            entry.tracker.advance();
            let now = SystemTime::now();
            // A superseded checkpoint is never written again; its age keeps growing, so
            // the metric shows it.
            if !entry.superseded
                && let Some(confirmed) = entry.tracker.take_dirty()
            {
                let checkpoint = Checkpoint {
                    cluster: cluster.clone(),
                    informer: entry.identity.full.clone(),
                    written_at_ms: now
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                    confirmed,
                };
                let objects = checkpoint.confirmed.index.len();
                // Encoding 100 000 entries takes tens of milliseconds (seconds in a debug
                // build): not on the async runtime's threads.
                let Ok(bytes) = tokio::task::spawn_blocking(move || checkpoint.encode()).await
                else {
                    entry.tracker.mark_dirty();
                    continue;
                };
                let size = bytes.len();
                match self.store.save(&entry.identity.stored_as, bytes).await {
                    Ok(()) => {
                        self.metrics.checkpoint_written(&entry.name, size, objects);
                        entry.current_at = entry.tracker.moved_at().min(now);
                    }
                    Err(StoreError::Conflict(e)) => {
                        entry.superseded = true;
                        self.metrics
                            .checkpoint_write_failed(&entry.name, "conflict");
                        tracing::error!(informer = %entry.name, checkpoint = %self.store.describe(&entry.identity.stored_as), error = %e, "another kubebridge wrote this checkpoint during this run (a new leader, or a second instance sharing the store): this instance stops writing it, so its late writes cannot replace the other's; a restart resumes from the other's checkpoint");
                    }
                    Err(e) => {
                        entry.tracker.mark_dirty();
                        self.metrics.checkpoint_write_failed(&entry.name, "error");
                        tracing::warn!(informer = %entry.name, checkpoint = %self.store.describe(&entry.identity.stored_as), error = %e, "writing the checkpoint failed; trying again at the next interval");
                    }
                }
            }
            let unconfirmed = entry.tracker.unconfirmed();
            let up_to_date = !entry.superseded
                && unconfirmed == 0
                && entry.current_at >= entry.tracker.moved_at();
            if up_to_date {
                entry.current_at = now;
            }
            let age = now.duration_since(entry.current_at).unwrap_or_default();
            self.metrics.checkpoint_state(&entry.name, age, unconfirmed);
        }
    }
}

/// Whether a stored checkpoint may be resumed: `Ok(())` with the checkpoint, `Ok(())`
/// without one (none stored), or the outcome label and a reason.
#[allow(clippy::type_complexity)]
fn judge(
    found: Result<Option<Vec<u8>>, StoreError>,
    cluster: &str,
    identity: &InformerIdentity,
) -> (Result<(), (&'static str, String)>, Option<Checkpoint>) {
    let bytes = match found {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return (Ok(()), None),
        Err(StoreError::Inconsistent(e)) => return (Err(("corrupt", e)), None),
        Err(e) => return (Err(("unreadable", e.to_string())), None),
    };
    let checkpoint = match Checkpoint::decode(&bytes) {
        Ok(c) => c,
        Err(e) => return (Err((e.outcome(), e.to_string())), None),
    };
    if checkpoint.cluster != cluster {
        return (
            Err((
                "foreign_cluster",
                format!(
                    "it was written for the cluster whose kube-system uid is {}, this one's is {cluster}",
                    checkpoint.cluster
                ),
            )),
            None,
        );
    }
    if checkpoint.informer != identity.full {
        return (
            Err((
                "other_informer",
                format!(
                    "it was written for {:?}, this informer is {:?}",
                    checkpoint.informer, identity.full
                ),
            )),
            None,
        );
    }
    (Ok(()), Some(checkpoint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tracker::Confirmed;

    fn identity() -> InformerIdentity {
        InformerIdentity::new(("", "v1", "pods"), None, None, None)
    }

    fn bytes(cluster: &str, informer: &str) -> Vec<u8> {
        Checkpoint {
            cluster: cluster.into(),
            informer: informer.into(),
            written_at_ms: 1,
            confirmed: Confirmed::default(),
        }
        .encode()
    }

    #[test]
    fn judges_every_kind_of_unusable_checkpoint() {
        let id = identity();
        let outcome = |found| judge(found, "c1", &id).0.err().map(|(label, _)| label);
        assert_eq!(outcome(Ok(None)), None);
        assert_eq!(outcome(Ok(Some(bytes("c1", &id.full)))), None);
        assert!(
            judge(Ok(Some(bytes("c1", &id.full))), "c1", &id)
                .1
                .is_some()
        );
        assert_eq!(
            outcome(Ok(Some(bytes("c2", &id.full)))),
            Some("foreign_cluster")
        );
        assert_eq!(
            outcome(Ok(Some(bytes("c1", "other")))),
            Some("other_informer")
        );
        let good = bytes("c1", &id.full);
        assert_eq!(
            outcome(Ok(Some(good[..good.len() - 3].to_vec()))),
            Some("corrupt")
        );
        let mut v9 = good.clone();
        v9[4] = 9;
        assert_eq!(outcome(Ok(Some(v9))), Some("wrong_version"));
        assert_eq!(
            outcome(Err(StoreError::Io("EIO".into()))),
            Some("unreadable")
        );
    }

    fn checkpoints(dir: &std::path::Path, cluster: &str, metrics: &Metrics) -> Checkpoints {
        Checkpoints {
            store: Store::File(FileStore::new(dir.to_owned())),
            cluster: Some(cluster.into()),
            interval: Duration::from_secs(1),
            metrics: metrics.clone(),
            entries: Vec::new(),
        }
    }

    #[tokio::test]
    async fn writes_what_every_sink_settled_and_resumes_from_it() {
        use crate::checkpoint::tracker::{Change, Known};
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Metrics::new();
        let mut first = checkpoints(dir.path(), "c1", &metrics);
        let resume = first.resume("pods", identity()).await.expect("tracked");
        assert!(resume.index.is_none());
        let ledger = resume.tracker.ledger();
        let known = Known {
            uid: "u".into(),
            resource_version: "5".into(),
        };
        let seq = resume
            .tracker
            .record(Change::Put("ns/a".into(), known.clone()), "5".into());
        let receipt = ledger.issue(seq);
        resume.tracker.handed(seq);
        first.write_all().await;
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            0,
            "nothing settled yet"
        );
        receipt.settle();
        first.write_all().await;
        let text = metrics.render();
        for line in [
            r#"kubebridge_checkpoint_resumes_total{outcome="none",resource="pods"} 1"#,
            r#"kubebridge_checkpoint_writes_total{resource="pods"} 1"#,
            r#"kubebridge_checkpoint_objects{resource="pods"} 1"#,
            r#"kubebridge_checkpoint_age_seconds{resource="pods"} 0"#,
            r#"kubebridge_checkpoint_unconfirmed{resource="pods"} 0"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }

        let mut second = checkpoints(dir.path(), "c1", &metrics);
        let resumed = second.resume("pods", identity()).await.expect("tracked");
        assert_eq!(resumed.index.expect("resumed").get("ns/a"), Some(&known));
        let mut foreign = checkpoints(dir.path(), "c2", &metrics);
        assert!(
            foreign
                .resume("pods", identity())
                .await
                .expect("tracked")
                .index
                .is_none()
        );
        let text = metrics.render();
        assert!(
            text.contains(
                r#"kubebridge_checkpoint_resumes_total{outcome="resumed",resource="pods"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"kubebridge_checkpoint_resumes_total{outcome="foreign_cluster",resource="pods"} 1"#), "{text}");
    }

    /// Records a change to `key` at `rv` and settles it, as a sink confirming it would.
    fn settled(tracker: &crate::checkpoint::tracker::Tracker, key: &str, rv: &str) {
        use crate::checkpoint::tracker::{Change, Known};
        let known = Known {
            uid: format!("u-{key}"),
            resource_version: rv.into(),
        };
        let seq = tracker.record(Change::Put(key.into(), known), rv.into());
        let receipt = tracker.ledger().issue(seq);
        tracker.handed(seq);
        receipt.settle();
    }

    /// A deposed leader (or a second instance) whose write meets another writer's
    /// checkpoint stops writing it for good: its later changes never replace the
    /// other's, and the conflict is counted.
    #[tokio::test]
    async fn a_superseded_checkpoint_is_never_written_again() {
        let sim = kubebridge_sim::Sim::start(
            "127.0.0.1:0".parse().expect("an address"),
            kubebridge_sim::SimConfig::default(),
        )
        .await
        .expect("the simulator starts");
        let client = kube::Client::try_from(kube::Config::new(sim.url().parse().expect("a URL")))
            .expect("a client");
        let over_configmaps = |metrics: &Metrics| Checkpoints {
            store: Store::ConfigMap(super::super::configmap::ConfigMapStore::new(
                client.clone(),
                "default".into(),
                "kb".into(),
            )),
            cluster: Some("c1".into()),
            interval: Duration::from_secs(1),
            metrics: metrics.clone(),
            entries: Vec::new(),
        };
        let old_metrics = Metrics::new();
        let mut old = over_configmaps(&old_metrics);
        let old_tracker = old
            .resume("pods", identity())
            .await
            .expect("tracked")
            .tracker;
        settled(&old_tracker, "ns/a", "5");
        old.write_all().await;
        // A new leader resumes from it and writes its own.
        let mut new = over_configmaps(&Metrics::new());
        let new_tracker = new
            .resume("pods", identity())
            .await
            .expect("tracked")
            .tracker;
        settled(&new_tracker, "ns/b", "6");
        new.write_all().await;
        // The old one's next writes: the first conflicts, the next is never attempted.
        for (key, rv) in [("ns/c", "7"), ("ns/d", "8")] {
            settled(&old_tracker, key, rv);
            old.write_all().await;
        }
        let text = old_metrics.render();
        for line in [
            r#"kubebridge_checkpoint_write_errors_total{reason="conflict",resource="pods"} 1"#,
            r#"kubebridge_checkpoint_writes_total{resource="pods"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        let index = over_configmaps(&Metrics::new())
            .resume("pods", identity())
            .await
            .expect("tracked")
            .index
            .expect("the new leader's checkpoint");
        assert!(index.contains_key("ns/b"), "the new leader's change");
        assert!(!index.contains_key("ns/c") && !index.contains_key("ns/d"));
    }
}
