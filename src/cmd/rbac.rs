//! `kubebridge rbac`: the least-privilege ClusterRole for streaming a set of resources.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::AppError;
use crate::config::ClusterConfig;
use crate::kube::{ApiResource, cluster};

/// Resolves `names` through the cluster's discovery and prints their ClusterRole.
pub async fn run(options: &ClusterConfig, names: &[String], name: &str) -> Result<(), AppError> {
    let cluster = cluster::connect(options)
        .await
        .map_err(|e| AppError::Usage(e.into()))?;
    let discovery = cluster
        .discover()
        .await
        .map_err(|e| AppError::Failed(e.into()))?;
    let resources = names
        .iter()
        .map(|n| discovery.resolve(n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AppError::Usage(e.into()))?;
    print!("{}", cluster_role(name, &resources));
    Ok(())
}

/// A ClusterRole named `name` granting get, list and watch on exactly `resources`
/// (grouped by API group, as kubectl writes rules), as YAML.
pub fn cluster_role(name: &str, resources: &[ApiResource]) -> String {
    let mut by_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in resources {
        let plurals = by_group.entry(r.id.group.as_str()).or_default();
        if !plurals.contains(&r.id.resource.as_str()) {
            plurals.push(&r.id.resource);
        }
    }
    let mut yaml = String::new();
    let _ = writeln!(yaml, "apiVersion: rbac.authorization.k8s.io/v1");
    let _ = writeln!(yaml, "kind: ClusterRole");
    let _ = writeln!(yaml, "metadata:");
    let _ = writeln!(yaml, "  name: {name}");
    let _ = writeln!(yaml, "rules:");
    for (group, plurals) in by_group {
        let _ = writeln!(yaml, "  - apiGroups: [\"{group}\"]");
        let quoted: Vec<String> = plurals.iter().map(|p| format!("\"{p}\"")).collect();
        let _ = writeln!(yaml, "    resources: [{}]", quoted.join(", "));
        // get: kubectl-style tooling; list and watch: the informer itself.
        let _ = writeln!(yaml, "    verbs: [\"get\", \"list\", \"watch\"]");
    }
    yaml
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubebridge_sinks::ResourceId;
    use std::sync::Arc;

    fn resource(group: &str, plural: &str) -> ApiResource {
        ApiResource {
            id: Arc::new(ResourceId {
                group: group.into(),
                version: "v1".into(),
                resource: plural.into(),
                kind: String::new(),
            }),
            namespaced: true,
            singular: String::new(),
            short_names: Vec::new(),
            preferred: true,
        }
    }

    #[test]
    fn one_rule_per_group_with_only_read_verbs() {
        let yaml = cluster_role(
            "kb",
            &[
                resource("", "pods"),
                resource("apps", "deployments"),
                resource("", "configmaps"),
                resource("", "pods"),
            ],
        );
        assert_eq!(
            yaml,
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: kb\nrules:\n  \
             - apiGroups: [\"\"]\n    resources: [\"pods\", \"configmaps\"]\n    verbs: [\"get\", \"list\", \"watch\"]\n  \
             - apiGroups: [\"apps\"]\n    resources: [\"deployments\"]\n    verbs: [\"get\", \"list\", \"watch\"]\n"
        );
    }
}
