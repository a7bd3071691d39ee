//! Whose checkpoint it is: the cluster (its kube-system namespace's uid) and the informer
//! (resource, scope, selectors), and the name it is stored under.

use serde::Deserialize;

use crate::kube::api::{self, Url};

/// The informer a checkpoint belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InformerIdentity {
    /// Written into the checkpoint and compared on resume:
    /// `group/version/resource ns=NS labels=L fields=F`.
    pub full: String,
    /// The name it is stored under: the resource and a hash of `full` (a file name and
    /// part of a ConfigMap name, so DNS-1123 characters only).
    pub stored_as: String,
}

impl InformerIdentity {
    /// The identity of the informer on `resource` (`group`, `version`, plural) in
    /// `namespace` (or all) with these selectors.
    pub(crate) fn new(
        (group, version, resource): (&str, &str, &str),
        namespace: Option<&str>,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Self {
        let full = format!(
            "{group}/{version}/{resource} ns={} labels={} fields={}",
            namespace.unwrap_or("*"),
            labels.unwrap_or(""),
            fields.unwrap_or("")
        );
        let slug: String = resource
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        let stored_as = format!("{slug}-{:016x}", fnv1a(full.as_bytes()));
        InformerIdentity { full, stored_as }
    }
}

/// FNV-1a, 64 bits: stable across builds and platforms (std's hasher is not), which a
/// name on disk or in the cluster needs; collisions are caught by comparing `full`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[derive(Deserialize)]
struct Namespace {
    metadata: Meta,
}

#[derive(Deserialize)]
struct Meta {
    uid: String,
}

/// The cluster's identity: the uid of its kube-system namespace, which is created once
/// with the cluster and never deleted (the convention Kubernetes' own cluster-id
/// proposals use).
pub(crate) async fn cluster_uid(client: &kube::Client) -> Result<String, String> {
    api::get_json::<Namespace>(client, Url::new("/api/v1/namespaces/kube-system"))
        .await
        .map(|ns| ns.metadata.uid)
        .map_err(|e| {
            let hint = if e.code() == Some(403) {
                "; grant get on namespaces, resourceNames [kube-system] (a ClusterRole)"
            } else {
                ""
            };
            format!("{e}{hint}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_tell_informers_apart() {
        let a = InformerIdentity::new(("apps", "v1", "deployments"), Some("shop"), None, None);
        let b = InformerIdentity::new(
            ("apps", "v1", "deployments"),
            Some("shop"),
            Some("a=b"),
            None,
        );
        assert_eq!(a.full, "apps/v1/deployments ns=shop labels= fields=");
        assert_ne!(a.stored_as, b.stored_as);
        assert!(a.stored_as.starts_with("deployments-"), "{}", a.stored_as);
        assert_eq!(
            a.stored_as,
            InformerIdentity::new(("apps", "v1", "deployments"), Some("shop"), None, None)
                .stored_as
        );
        // FNV-1a's published test vector: the name must not change between builds.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
