//! `kubebridge rbac`: the least-privilege RBAC objects for streaming a set of resources
//! with a set of flags, as YAML written by a serializer from k8s-openapi's types.
//!
//! What each flag needs, and why no more:
//! - the resources: `list` and `watch` (the informer's two verbs; it never `get`s), in a
//!   ClusterRole, or with `--namespace` in a Role per watched namespace (cluster-scoped
//!   resources stay in a ClusterRole: a Role cannot grant them);
//! - `--leader-elect`: `get` and `update` on the one Lease by name, and `create` on
//!   Leases (the API server cannot restrict `create` by name: the object does not exist
//!   yet), in a Role in the Lease's namespace, never cluster-wide (a cluster-wide Lease
//!   rule could overwrite kube-system's leader elections and the node heartbeats);
//! - `--metrics-auth kubernetes`: `create` on TokenReviews and SubjectAccessReviews,
//!   cluster-wide (they are cluster-scoped), as controller-runtime's `metrics-auth-role`,
//!   and a `metrics-reader` ClusterRole (`get` on the non-resource URL `/metrics`) for
//!   the scraper, bound to `--prometheus-service-account` when given;
//! - `--checkpoint configmap://[NS]/PREFIX`: `get`, `create` and `update` on ConfigMaps
//!   (what `checkpoint::configmap` calls: it never lists, watches or deletes) in a Role of
//!   the store's namespace, never cluster-wide; no `resourceNames`, because `create`
//!   cannot be limited by name and the names (`PREFIX-RESOURCE-HASH[-N]`) depend on the
//!   informers;
//! - `--checkpoint` with either store: `get` on the `kube-system` namespace by name, the
//!   cluster's identity that keeps a checkpoint from being applied to another cluster.
//!   Namespaces are cluster-scoped, so this one rule must be in a ClusterRole (a Role in
//!   kube-system cannot grant it); it names the one object and reads nothing else.

use std::collections::BTreeMap;
use std::io::Write as _;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::AppError;
use crate::config::{ClusterConfig, RbacGrants};
use crate::kube::{ApiResource, cluster};

/// The API group of Roles and ClusterRoles, in every roleRef.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The suffix of the Lease's Role (and its binding).
pub const LEADER_ELECTION_SUFFIX: &str = "-leader-election";
/// The suffix of the TokenReview/SubjectAccessReview ClusterRole (and its binding).
pub const METRICS_AUTH_SUFFIX: &str = "-metrics-auth";
/// The suffix of the `/metrics` reader ClusterRole (and its binding).
pub const METRICS_READER_SUFFIX: &str = "-metrics-reader";
/// The suffix of the checkpoint ConfigMaps' Role (and its binding).
pub const CHECKPOINT_SUFFIX: &str = "-checkpoint";
/// The suffix of the ClusterRole (and its binding) that reads the cluster's identity.
pub const CLUSTER_IDENTITY_SUFFIX: &str = "-cluster-identity";

/// One object `kubebridge rbac` prints; each serializes with its `apiVersion` and `kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RbacObject {
    /// Cluster-wide rules.
    ClusterRole(ClusterRole),
    /// Binds a ClusterRole to a ServiceAccount.
    ClusterRoleBinding(ClusterRoleBinding),
    /// Rules in one namespace.
    Role(Role),
    /// Binds a Role to a ServiceAccount in the Role's namespace.
    RoleBinding(RoleBinding),
}

/// Resolves `names` through the cluster's discovery and prints what `grants` needs.
pub async fn run(
    options: &ClusterConfig,
    names: &[String],
    grants: &RbacGrants,
) -> Result<(), AppError> {
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
    let yaml = to_yaml(&objects(grants, &resources))?;
    match std::io::stdout().lock().write_all(yaml.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(AppError::failed(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// `objects` as a multi-document YAML stream.
pub fn to_yaml(objects: &[RbacObject]) -> Result<String, AppError> {
    serde_saphyr::to_string_multiple(objects)
        .map_err(|e| AppError::failed(format!("cannot write the RBAC as YAML: {e}")))
}

/// Every object `grants` needs for watching `resources`, in apply order (each role
/// before its binding).
pub fn objects(grants: &RbacGrants, resources: &[ApiResource]) -> Vec<RbacObject> {
    let name = grants.name.as_str();
    let subject = service_account(&grants.service_account_namespace, name);
    let (namespaced, cluster_scoped): (Vec<&ApiResource>, Vec<&ApiResource>) =
        resources.iter().partition(|r| r.namespaced);
    let mut out = Vec::new();

    let cluster_wide: Vec<&ApiResource> = if grants.namespaces.is_empty() {
        resources.iter().collect()
    } else {
        cluster_scoped
    };
    if !cluster_wide.is_empty() {
        out.push(cluster_role(name, read_rules(&cluster_wide)));
        out.push(cluster_role_binding(name, name, subject.clone()));
    }
    if !grants.namespaces.is_empty() && !namespaced.is_empty() {
        for ns in &grants.namespaces {
            out.push(role(ns, name, read_rules(&namespaced)));
            out.push(role_binding(ns, name, name, subject.clone()));
        }
    }
    if let Some((ns, lease)) = &grants.lease {
        let role_name = format!("{name}{LEADER_ELECTION_SUFFIX}");
        out.push(role(ns, &role_name, lease_rules(lease)));
        out.push(role_binding(ns, &role_name, &role_name, subject.clone()));
    }
    if let Some(checkpoint) = &grants.checkpoint {
        if let Some(ns) = &checkpoint.configmap_namespace {
            let role_name = format!("{name}{CHECKPOINT_SUFFIX}");
            out.push(role(ns, &role_name, checkpoint_rules()));
            out.push(role_binding(ns, &role_name, &role_name, subject.clone()));
        }
        let identity = format!("{name}{CLUSTER_IDENTITY_SUFFIX}");
        out.push(cluster_role(&identity, cluster_identity_rules()));
        out.push(cluster_role_binding(&identity, &identity, subject.clone()));
    }
    if grants.metrics_auth {
        let auth = format!("{name}{METRICS_AUTH_SUFFIX}");
        out.push(cluster_role(&auth, review_rules()));
        out.push(cluster_role_binding(&auth, &auth, subject));
        let reader = format!("{name}{METRICS_READER_SUFFIX}");
        out.push(cluster_role(&reader, metrics_reader_rules()));
        if let Some((ns, prometheus)) = &grants.prometheus {
            out.push(cluster_role_binding(
                &reader,
                &reader,
                service_account(ns, prometheus),
            ));
        }
    }
    out
}

/// `list` and `watch` on `resources`, one rule per API group (as kubectl writes rules),
/// each plural once, in the order given.
pub fn read_rules(resources: &[&ApiResource]) -> Vec<PolicyRule> {
    let mut by_group: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in resources {
        let plurals = by_group.entry(r.id.group.as_str()).or_default();
        if !plurals.contains(&r.id.resource) {
            plurals.push(r.id.resource.clone());
        }
    }
    by_group
        .into_iter()
        .map(|(group, plurals)| PolicyRule {
            api_groups: Some(vec![group.to_owned()]),
            resources: Some(plurals),
            verbs: strings(&["list", "watch"]),
            ..PolicyRule::default()
        })
        .collect()
}

/// `get` and `update` on the Lease `lease` only, and `create` on Leases (which cannot be
/// restricted by name).
pub fn lease_rules(lease: &str) -> Vec<PolicyRule> {
    let leases = |verbs: &[&str], names: Option<Vec<String>>| PolicyRule {
        api_groups: Some(strings(&["coordination.k8s.io"])),
        resources: Some(strings(&["leases"])),
        resource_names: names,
        verbs: strings(verbs),
        ..PolicyRule::default()
    };
    vec![
        leases(&["get", "update"], Some(vec![lease.to_owned()])),
        leases(&["create"], None),
    ]
}

/// `get`, `create` and `update` on ConfigMaps: what the ConfigMap checkpoint store does
/// (read a part, create it the first time, replace it conditionally on its
/// resourceVersion). For a Role, never a ClusterRole.
pub fn checkpoint_rules() -> Vec<PolicyRule> {
    vec![PolicyRule {
        api_groups: Some(strings(&[""])),
        resources: Some(strings(&["configmaps"])),
        verbs: strings(&["get", "create", "update"]),
        ..PolicyRule::default()
    }]
}

/// `get` on the `kube-system` namespace only: its uid identifies the cluster a
/// checkpoint belongs to.
pub fn cluster_identity_rules() -> Vec<PolicyRule> {
    vec![PolicyRule {
        api_groups: Some(strings(&[""])),
        resources: Some(strings(&["namespaces"])),
        resource_names: Some(strings(&["kube-system"])),
        verbs: strings(&["get"]),
        ..PolicyRule::default()
    }]
}

/// `create` on TokenReviews and SubjectAccessReviews: how `--metrics-auth kubernetes`
/// asks the API server who a caller is and what they may do.
pub fn review_rules() -> Vec<PolicyRule> {
    [
        ("authentication.k8s.io", "tokenreviews"),
        ("authorization.k8s.io", "subjectaccessreviews"),
    ]
    .into_iter()
    .map(|(group, resource)| PolicyRule {
        api_groups: Some(strings(&[group])),
        resources: Some(strings(&[resource])),
        verbs: strings(&["create"]),
        ..PolicyRule::default()
    })
    .collect()
}

/// `get` on `/metrics`: what a scraper needs with `--metrics-auth kubernetes`.
pub fn metrics_reader_rules() -> Vec<PolicyRule> {
    vec![PolicyRule {
        non_resource_urls: Some(strings(&["/metrics"])),
        verbs: strings(&["get"]),
        ..PolicyRule::default()
    }]
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        ..ObjectMeta::default()
    }
}

fn service_account(namespace: &str, name: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: name.to_owned(),
        namespace: Some(namespace.to_owned()),
        api_group: None,
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: Some(RBAC_GROUP.to_owned()),
        kind: kind.to_owned(),
        name: name.to_owned(),
    }
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> RbacObject {
    RbacObject::ClusterRole(ClusterRole {
        metadata: meta(None, name),
        rules: Some(rules),
        ..ClusterRole::default()
    })
}

fn cluster_role_binding(name: &str, role: &str, subject: Subject) -> RbacObject {
    RbacObject::ClusterRoleBinding(ClusterRoleBinding {
        metadata: meta(None, name),
        role_ref: role_ref("ClusterRole", role),
        subjects: Some(vec![subject]),
    })
}

fn role(namespace: &str, name: &str, rules: Vec<PolicyRule>) -> RbacObject {
    RbacObject::Role(Role {
        metadata: meta(Some(namespace), name),
        rules: Some(rules),
    })
}

fn role_binding(namespace: &str, name: &str, role: &str, subject: Subject) -> RbacObject {
    RbacObject::RoleBinding(RoleBinding {
        metadata: meta(Some(namespace), name),
        role_ref: role_ref("Role", role),
        subjects: Some(vec![subject]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CheckpointGrant;
    use kubebridge_sinks::ResourceId;
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn resource(group: &str, plural: &str, namespaced: bool) -> ApiResource {
        ApiResource {
            id: Arc::new(ResourceId {
                group: group.into(),
                version: "v1".into(),
                resource: plural.into(),
                kind: String::new(),
            }),
            namespaced,
            singular: String::new(),
            short_names: Vec::new(),
            preferred: true,
        }
    }

    fn grants() -> RbacGrants {
        RbacGrants {
            name: "kb".into(),
            service_account_namespace: "kbns".into(),
            namespaces: Vec::new(),
            lease: None,
            metrics_auth: false,
            prometheus: None,
            checkpoint: None,
        }
    }

    /// The YAML, parsed back: what a reader of the output gets.
    fn printed(grants: &RbacGrants, resources: &[ApiResource]) -> Vec<Value> {
        let yaml = to_yaml(&objects(grants, resources)).expect("serializes");
        serde_saphyr::from_multiple::<Value>(&yaml).expect("the output is YAML")
    }

    /// Each printed object's kind and name, in order.
    fn kinds_and_names(docs: &[Value]) -> Vec<(&str, &str)> {
        docs.iter()
            .map(|d| {
                (
                    d["kind"].as_str().expect("kind"),
                    d["metadata"]["name"].as_str().expect("name"),
                )
            })
            .collect()
    }

    fn resources() -> Vec<ApiResource> {
        vec![
            resource("", "pods", true),
            resource("apps", "deployments", true),
            resource("", "configmaps", true),
            resource("", "pods", true),
            resource("", "nodes", false),
        ]
    }

    const SA: fn() -> Value =
        || json!([{"kind": "ServiceAccount", "name": "kb", "namespace": "kbns"}]);

    #[test]
    fn cluster_wide_list_and_watch_only() {
        let docs = printed(&grants(), &resources());
        assert_eq!(
            docs,
            [
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "kb"},
                "rules": [
                    {"apiGroups": [""], "resources": ["pods", "configmaps", "nodes"], "verbs": ["list", "watch"]},
                    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list", "watch"]},
                ]}),
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": "kb"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kb"},
                    "subjects": SA()}),
            ]
        );
    }

    #[test]
    fn namespaces_get_roles_and_cluster_scoped_resources_stay_cluster_wide() {
        let g = RbacGrants {
            namespaces: vec!["a".into(), "b".into()],
            ..grants()
        };
        let docs = printed(&g, &resources());
        let kinds: Vec<(&str, &str)> = docs
            .iter()
            .map(|d| {
                (
                    d["kind"].as_str().expect("kind"),
                    d["metadata"]["namespace"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("ClusterRole", ""),
                ("ClusterRoleBinding", ""),
                ("Role", "a"),
                ("RoleBinding", "a"),
                ("Role", "b"),
                ("RoleBinding", "b"),
            ]
        );
        assert_eq!(
            docs[0]["rules"],
            json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]}])
        );
        for role in [&docs[2], &docs[4]] {
            assert_eq!(
                role["rules"],
                json!([
                    {"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["list", "watch"]},
                    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list", "watch"]},
                ])
            );
        }
        assert_eq!(
            docs[3]["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kb"})
        );
        assert_eq!(docs[3]["subjects"], SA());
        // Only namespaced resources: no ClusterRole at all.
        let docs = printed(&g, &[resource("", "pods", true)]);
        assert!(docs.iter().all(|d| d["kind"] != "ClusterRole"), "{docs:?}");
    }

    #[test]
    fn the_lease_is_one_role_in_its_namespace() {
        let g = RbacGrants {
            lease: Some(("kbns".into(), "my-lease".into())),
            ..grants()
        };
        let docs = printed(&g, &[resource("", "pods", true)]);
        assert_eq!(docs.len(), 4);
        assert_eq!(
            docs[2],
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "kb-leader-election", "namespace": "kbns"},
            "rules": [
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                 "resourceNames": ["my-lease"], "verbs": ["get", "update"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            ]})
        );
        assert_eq!(
            docs[3]["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kb-leader-election"})
        );
        // No cluster-wide rule mentions leases.
        assert!(
            !docs[0]["rules"].to_string().contains("leases"),
            "{}",
            docs[0]
        );
    }

    #[test]
    fn metrics_auth_grants_reviews_and_a_reader_role() {
        let g = RbacGrants {
            metrics_auth: true,
            prometheus: Some(("monitoring".into(), "prometheus-k8s".into())),
            ..grants()
        };
        let docs = printed(&g, &[resource("", "pods", true)]);
        let names = kinds_and_names(&docs);
        assert_eq!(
            names,
            [
                ("ClusterRole", "kb"),
                ("ClusterRoleBinding", "kb"),
                ("ClusterRole", "kb-metrics-auth"),
                ("ClusterRoleBinding", "kb-metrics-auth"),
                ("ClusterRole", "kb-metrics-reader"),
                ("ClusterRoleBinding", "kb-metrics-reader"),
            ]
        );
        assert_eq!(
            docs[2]["rules"],
            json!([
                {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
                {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
            ])
        );
        assert_eq!(docs[3]["subjects"], SA());
        assert_eq!(
            docs[4]["rules"],
            json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])
        );
        assert_eq!(
            docs[5]["subjects"],
            json!([{"kind": "ServiceAccount", "name": "prometheus-k8s", "namespace": "monitoring"}])
        );
        // Without a Prometheus account: the reader role, unbound.
        let g = RbacGrants {
            prometheus: None,
            ..g
        };
        assert_eq!(printed(&g, &[resource("", "pods", true)]).len(), 5);
    }

    #[test]
    fn a_configmap_checkpoint_is_a_role_in_its_namespace_and_one_named_namespace_get() {
        let g = RbacGrants {
            checkpoint: Some(CheckpointGrant {
                configmap_namespace: Some("store".into()),
            }),
            ..grants()
        };
        let docs = printed(&g, &[resource("", "pods", true)]);
        assert_eq!(docs.len(), 6);
        assert_eq!(
            docs[2],
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "kb-checkpoint", "namespace": "store"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                       "verbs": ["get", "create", "update"]}]})
        );
        assert_eq!(
            docs[3]["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kb-checkpoint"})
        );
        assert_eq!(docs[3]["metadata"]["namespace"], "store");
        assert_eq!(docs[3]["subjects"], SA());
        assert_eq!(
            docs[4],
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "kb-cluster-identity"},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"],
                       "resourceNames": ["kube-system"], "verbs": ["get"]}]})
        );
        assert_eq!(docs[5]["subjects"], SA());
        // No cluster-wide rule mentions configmaps.
        for d in docs.iter().filter(|d| d["kind"] == "ClusterRole") {
            assert!(!d["rules"].to_string().contains("configmaps"), "{d}");
        }
    }

    #[test]
    fn a_file_checkpoint_needs_only_the_cluster_identity() {
        let g = RbacGrants {
            checkpoint: Some(CheckpointGrant {
                configmap_namespace: None,
            }),
            ..grants()
        };
        let docs = printed(&g, &[resource("", "pods", true)]);
        let kinds = kinds_and_names(&docs);
        assert_eq!(
            kinds,
            [
                ("ClusterRole", "kb"),
                ("ClusterRoleBinding", "kb"),
                ("ClusterRole", "kb-cluster-identity"),
                ("ClusterRoleBinding", "kb-cluster-identity"),
            ]
        );
    }

    /// Even a name that got past the CLI's check could not add a rule: the serializer
    /// quotes it as one scalar.
    #[test]
    fn a_crafted_name_stays_a_name() {
        let crafted = "kb\nrules:\n- apiGroups: [\"*\"]\n  resources: [\"*\"]\n  verbs: [\"*\"]";
        let g = RbacGrants {
            name: crafted.into(),
            ..grants()
        };
        let docs = printed(&g, &[resource("", "pods", true)]);
        assert_eq!(docs[0]["metadata"]["name"], crafted);
        assert_eq!(
            docs[0]["rules"],
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}])
        );
    }
}
