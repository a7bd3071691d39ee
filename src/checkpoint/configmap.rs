//! `--checkpoint configmap://[NAMESPACE]/PREFIX`: checkpoints in ConfigMaps of
//! kubebridge's own namespace, so a new leader resumes from the old leader's.
//!
//! A checkpoint is split into parts under the ConfigMap size limit (1 MiB of data): the
//! head `PREFIX-NAME` holds part 0 and says how many parts there are and which
//! generation they belong to; parts 1.. are `PREFIX-NAME-1`, .... Parts are written
//! first, the head last, so the head is the commit point; a reader refuses parts of
//! another generation. Every write is conditional on the resourceVersion this process
//! last read or wrote, so a deposed leader's late write gets 409 Conflict and is
//! reported; the store itself reads the newer object again before a next write (never
//! a blind retry of the same write), and the checkpoint writer (`checkpoint::run`)
//! makes no next write: after a conflict an instance stops writing that checkpoint
//! for the rest of its run, so even its re-read cannot lead to replacing the other's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::store::StoreError;
use crate::kube::api::{self, ApiError, Url};

/// Raw bytes per ConfigMap: under the API server's 1 MiB limit on a ConfigMap's data,
/// with room for the metadata.
pub const PART_BYTES: usize = 900 * 1024;
/// The data key of every part.
const KEY: &str = "checkpoint";
const PARTS: &str = "kubebridge.io/checkpoint-parts";
const GENERATION: &str = "kubebridge.io/checkpoint-generation";

/// ConfigMaps in one namespace.
#[derive(Clone)]
pub struct ConfigMapStore {
    client: kube::Client,
    namespace: String,
    prefix: String,
    /// Each ConfigMap's resourceVersion as this process last read or wrote it; absent
    /// when it must be read again before the next write.
    versions: Arc<Mutex<HashMap<String, String>>>,
}

impl ConfigMapStore {
    /// ConfigMaps named `prefix-...` in `namespace`.
    pub fn new(client: kube::Client, namespace: String, prefix: String) -> Self {
        ConfigMapStore {
            client,
            namespace,
            prefix,
            versions: Arc::default(),
        }
    }

    fn object_name(&self, name: &str, part: usize) -> String {
        match part {
            0 => format!("{}-{name}", self.prefix),
            n => format!("{}-{name}-{n}", self.prefix),
        }
    }

    fn url(&self, object: Option<&str>) -> Url {
        let base = format!("/api/v1/namespaces/{}/configmaps", self.namespace);
        Url::new(match object {
            Some(o) => format!("{base}/{o}"),
            None => base,
        })
    }

    /// Where `name`'s checkpoint is kept, for messages.
    pub(crate) fn describe(&self, name: &str) -> String {
        format!("configmap {}/{}", self.namespace, self.object_name(name, 0))
    }

    fn remember(&self, object: &str, rv: Option<String>) {
        let mut versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        match rv {
            Some(rv) => versions.insert(object.to_owned(), rv),
            None => versions.remove(object),
        };
    }

    fn version(&self, object: &str) -> Option<String> {
        let versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        versions.get(object).cloned()
    }

    /// Reads one ConfigMap, remembering its resourceVersion; `None` when absent.
    async fn get(&self, object: &str) -> Result<Option<ConfigMap>, StoreError> {
        match api::get_json::<ConfigMap>(&self.client, self.url(Some(object))).await {
            Ok(cm) => {
                self.remember(object, cm.metadata.resource_version.clone());
                Ok(Some(cm))
            }
            Err(e) if e.code() == Some(404) => {
                self.remember(object, None);
                Ok(None)
            }
            Err(e) => Err(StoreError::Api(e.to_string())),
        }
    }

    /// The checkpoint stored under `name`, if any.
    pub async fn load(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let head_name = self.object_name(name, 0);
        let Some(head) = self.get(&head_name).await? else {
            return Ok(None);
        };
        let annotation = |cm: &ConfigMap, key: &str| {
            cm.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(key).cloned())
        };
        let generation = annotation(&head, GENERATION).unwrap_or_default();
        let parts: usize = annotation(&head, PARTS)
            .and_then(|p| p.parse().ok())
            .filter(|p| (1..=1024).contains(p))
            .ok_or_else(|| {
                StoreError::Inconsistent(format!("{head_name}: no valid {PARTS} annotation"))
            })?;
        let mut bytes = part_bytes(&head, &head_name)?;
        for part in 1..parts {
            let object = self.object_name(name, part);
            let cm = self.get(&object).await?.ok_or_else(|| {
                StoreError::Inconsistent(format!("{object}: part {part} of {parts} is missing"))
            })?;
            if annotation(&cm, GENERATION).unwrap_or_default() != generation {
                return Err(StoreError::Inconsistent(format!(
                    "{object}: part {part} belongs to another write than {head_name}"
                )));
            }
            bytes.extend(part_bytes(&cm, &object)?);
        }
        Ok(Some(bytes))
    }

    /// Replaces the checkpoint under `name`: parts first, the head last.
    pub async fn save(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let chunks: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[]]
        } else {
            bytes.chunks(PART_BYTES).collect()
        };
        let generation = format!("{:016x}", fastrand::u64(..));
        let mut annotations = BTreeMap::from([(GENERATION.to_owned(), generation)]);
        for (part, chunk) in chunks.iter().enumerate().skip(1).rev() {
            self.put(&self.object_name(name, part), chunk, annotations.clone())
                .await?;
        }
        annotations.insert(PARTS.to_owned(), chunks.len().to_string());
        self.put(&self.object_name(name, 0), chunks[0], annotations)
            .await
    }

    /// Creates or replaces one ConfigMap, conditionally on the resourceVersion last seen.
    async fn put(
        &self,
        object: &str,
        chunk: &[u8],
        annotations: BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        if self.version(object).is_none() {
            // Not read or written by this process yet (or since a conflict): read it, so
            // the write is conditional on what is there now.
            self.get(object).await?;
        }
        let rv = self.version(object);
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(object.to_owned()),
                namespace: Some(self.namespace.clone()),
                resource_version: rv.clone(),
                annotations: Some(annotations),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "kubebridge".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            binary_data: Some(BTreeMap::from([(
                KEY.to_owned(),
                ByteString(chunk.to_vec()),
            )])),
            ..ConfigMap::default()
        };
        let body = serde_json::to_value(&cm).map_err(|e| StoreError::Api(e.to_string()))?;
        let (method, url) = match rv {
            Some(_) => ("PUT", self.url(Some(object))),
            None => ("POST", self.url(None)),
        };
        match api::send_json::<ConfigMap>(&self.client, method, url, &body).await {
            Ok(written) => {
                self.remember(object, written.metadata.resource_version);
                Ok(())
            }
            Err(e) if e.code() == Some(409) => {
                // Someone else wrote it since: forget our version, so the next attempt
                // reads theirs first.
                self.remember(object, None);
                Err(StoreError::Conflict(e.to_string()))
            }
            Err(e) => Err(StoreError::Api(describe_api(&e))),
        }
    }
}

/// The API error, with the RBAC rule to add when it is a 403.
fn describe_api(e: &ApiError) -> String {
    if e.code() == Some(403) {
        format!(
            "{e}; kubebridge needs get, create and update on configmaps in its namespace (a Role)"
        )
    } else {
        e.to_string()
    }
}

fn part_bytes(cm: &ConfigMap, object: &str) -> Result<Vec<u8>, StoreError> {
    cm.binary_data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .map(|b| b.0.clone())
        .ok_or_else(|| StoreError::Inconsistent(format!("{object}: no binaryData.{KEY}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sim() -> (kubebridge_sim::Sim, kube::Client) {
        let sim = kubebridge_sim::Sim::start(
            "127.0.0.1:0".parse().expect("an address"),
            kubebridge_sim::SimConfig::default(),
        )
        .await
        .expect("the simulator starts");
        let url = sim.url().parse().expect("a URL");
        let client = kube::Client::try_from(kube::Config::new(url)).expect("a client");
        (sim, client)
    }

    fn bytes(len: usize, salt: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ salt).collect()
    }

    #[tokio::test]
    async fn a_checkpoint_over_several_configmaps_reads_back_whole() {
        let (sim, client) = sim().await;
        let store = ConfigMapStore::new(client.clone(), "default".into(), "kb".into());
        assert_eq!(store.load("pods-1").await.expect("read"), None);
        let big = bytes(PART_BYTES * 2 + 10, 1);
        store.save("pods-1", big.clone()).await.expect("write");
        store
            .save("pods-1", big.clone())
            .await
            .expect("write again");
        for name in ["kb-pods-1", "kb-pods-1-1", "kb-pods-1-2"] {
            sim.get("configmaps", Some("default"), name).expect(name);
        }
        let other = ConfigMapStore::new(client, "default".into(), "kb".into());
        assert_eq!(other.load("pods-1").await.expect("read"), Some(big));
    }

    #[tokio::test]
    async fn a_deposed_writers_late_write_is_refused_and_leaves_the_new_one_whole() {
        let (_sim, client) = sim().await;
        let old = ConfigMapStore::new(client.clone(), "default".into(), "kb".into());
        let new = ConfigMapStore::new(client, "default".into(), "kb".into());
        old.save("pods-1", bytes(PART_BYTES * 2 + 10, 1))
            .await
            .expect("the old leader writes");
        // The new leader resumes from it and writes its own (as large: every part live).
        new.load("pods-1").await.expect("read").expect("found");
        let current = bytes(PART_BYTES * 2 + 99, 2);
        new.save("pods-1", current.clone())
            .await
            .expect("the new leader writes");
        // The old leader's write, late: refused on the first part the new one wrote.
        let err = old
            .save("pods-1", bytes(PART_BYTES * 2 + 5, 3))
            .await
            .expect_err("conflict");
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert_eq!(
            new.load("pods-1").await.expect("read"),
            Some(current.clone())
        );
        // A smaller checkpoint lives in the head alone; a late write may touch the parts
        // beyond it, but never the head.
        let small = bytes(100, 4);
        new.save("pods-1", small.clone()).await.expect("write");
        let err = old
            .save("pods-1", bytes(PART_BYTES * 2 + 5, 5))
            .await
            .expect_err("conflict");
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert_eq!(new.load("pods-1").await.expect("read"), Some(small));
        // The refused writer reads again before its next write: no blind retry, and once
        // it has read the newer checkpoint its write is conditional on that.
        old.load("pods-1").await.expect("read");
        old.save("pods-1", bytes(10, 6))
            .await
            .expect("conditional on what it read");
    }
}
