//! The registry of served resource types: built-in kinds plus those added at runtime by CustomResourceDefinitions.

use std::sync::Arc;

use serde_json::Value;

/// Key under which CRD objects are stored.
pub(crate) const CRD_RESOURCE: &str = "customresourcedefinitions.apiextensions.k8s.io";

/// One resource type served at one group/version.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResourceType {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) plural: String,
    pub(crate) singular: String,
    pub(crate) kind: String,
    pub(crate) namespaced: bool,
    pub(crate) short_names: Vec<String>,
    pub(crate) categories: Vec<String>,
    /// Whether a `/status` subresource exists (main-resource writes then ignore status changes).
    pub(crate) status_subresource: bool,
    /// Whether metadata.generation is tracked (bumped on spec changes).
    pub(crate) generation: bool,
    /// True for custom resources, whose list items carry kind/apiVersion.
    pub(crate) custom: bool,
}

impl ResourceType {
    /// The storage key: "plural" for core, "plural.group" otherwise.
    pub(crate) fn key(&self) -> String {
        resource_key(&self.group, &self.plural)
    }

    /// "v1" or "group/version".
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kind of the list type, e.g. "PodList".
    pub(crate) fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// "plural" for the core group, "plural.group" otherwise.
pub(crate) fn resource_key(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

/// All served resource types, in discovery order.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    types: Vec<Arc<ResourceType>>,
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    plural: &str,
    singular: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    all: bool,
    status: bool,
    generation: bool,
) -> Arc<ResourceType> {
    Arc::new(ResourceType {
        group: group.to_string(),
        version: "v1".to_string(),
        plural: plural.to_string(),
        singular: singular.to_string(),
        kind: kind.to_string(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: if all {
            vec!["all".to_string()]
        } else {
            Vec::new()
        },
        status_subresource: status,
        generation,
        custom: false,
    })
}

impl Default for Registry {
    fn default() -> Self {
        let types = vec![
            builtin(
                "",
                "configmaps",
                "configmap",
                "ConfigMap",
                true,
                &["cm"],
                false,
                false,
                false,
            ),
            builtin(
                "",
                "events",
                "event",
                "Event",
                true,
                &["ev"],
                false,
                false,
                false,
            ),
            builtin(
                "",
                "namespaces",
                "namespace",
                "Namespace",
                false,
                &["ns"],
                false,
                true,
                false,
            ),
            builtin(
                "",
                "nodes",
                "node",
                "Node",
                false,
                &["no"],
                false,
                true,
                false,
            ),
            builtin("", "pods", "pod", "Pod", true, &["po"], true, true, false),
            builtin(
                "",
                "secrets",
                "secret",
                "Secret",
                true,
                &[],
                false,
                false,
                false,
            ),
            builtin(
                "",
                "serviceaccounts",
                "serviceaccount",
                "ServiceAccount",
                true,
                &["sa"],
                false,
                false,
                false,
            ),
            builtin(
                "",
                "services",
                "service",
                "Service",
                true,
                &["svc"],
                true,
                true,
                false,
            ),
            builtin(
                "apps",
                "daemonsets",
                "daemonset",
                "DaemonSet",
                true,
                &["ds"],
                true,
                true,
                true,
            ),
            builtin(
                "apps",
                "deployments",
                "deployment",
                "Deployment",
                true,
                &["deploy"],
                true,
                true,
                true,
            ),
            builtin(
                "apps",
                "replicasets",
                "replicaset",
                "ReplicaSet",
                true,
                &["rs"],
                true,
                true,
                true,
            ),
            builtin(
                "apps",
                "statefulsets",
                "statefulset",
                "StatefulSet",
                true,
                &["sts"],
                true,
                true,
                true,
            ),
            builtin(
                "coordination.k8s.io",
                "leases",
                "lease",
                "Lease",
                true,
                &[],
                false,
                false,
                false,
            ),
            builtin(
                "events.k8s.io",
                "events",
                "event",
                "Event",
                true,
                &["ev"],
                false,
                false,
                false,
            ),
            builtin(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                "customresourcedefinition",
                "CustomResourceDefinition",
                false,
                &["crd", "crds"],
                false,
                true,
                true,
            ),
        ];
        Registry { types }
    }
}

impl Registry {
    /// The type served at group/version/plural.
    pub(crate) fn lookup(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// The preferred version of a resource given as "plural" or "plural.group".
    pub(crate) fn lookup_key(&self, key: &str) -> Option<Arc<ResourceType>> {
        let (plural, group) = key.split_once('.').unwrap_or((key, ""));
        let preferred = self.preferred_version(group)?;
        self.lookup(group, &preferred, plural).or_else(|| {
            self.types
                .iter()
                .find(|t| t.group == group && t.plural == plural)
                .cloned()
        })
    }

    /// Every served type.
    pub(crate) fn all(&self) -> &[Arc<ResourceType>] {
        &self.types
    }

    /// Group names in discovery order ("" = core first).
    pub(crate) fn groups(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in &self.types {
            if !out.contains(&t.group) {
                out.push(t.group.clone());
            }
        }
        out
    }

    /// Versions served for a group, preferred first.
    pub(crate) fn versions(&self, group: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in self.types.iter().filter(|t| t.group == group) {
            if !out.contains(&t.version) {
                out.push(t.version.clone());
            }
        }
        out
    }

    /// The first-registered version of a group, which is the preferred one.
    pub(crate) fn preferred_version(&self, group: &str) -> Option<String> {
        self.versions(group).into_iter().next()
    }

    /// Types served at one group/version.
    pub(crate) fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .cloned()
            .collect()
    }

    /// Replaces the types a CRD serves (None removes them).
    pub(crate) fn set_crd(&mut self, group: &str, plural: &str, crd: Option<&Value>) {
        self.types
            .retain(|t| !(t.custom && t.group == group && t.plural == plural));
        let Some(crd) = crd else { return };
        let spec = &crd["spec"];
        let names = &spec["names"];
        let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let list_of = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let kind = str_of(&names["kind"]);
        let singular = match names["singular"].as_str() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => kind.to_lowercase(),
        };
        let versions = spec["versions"].as_array().cloned().unwrap_or_default();
        for v in versions
            .iter()
            .filter(|v| v["served"].as_bool().unwrap_or(false))
        {
            self.types.push(Arc::new(ResourceType {
                group: group.to_string(),
                version: str_of(&v["name"]),
                plural: plural.to_string(),
                singular: singular.clone(),
                kind: kind.clone(),
                namespaced: spec["scope"].as_str() != Some("Cluster"),
                short_names: list_of(&names["shortNames"]),
                categories: list_of(&names["categories"]),
                status_subresource: v["subresources"]["status"].is_object(),
                generation: true,
                custom: true,
            }));
        }
    }
}

/// Fields every resource can be selected on.
const META_FIELDS: [&str; 2] = ["metadata.name", "metadata.namespace"];

/// The field selectors a resource supports (as registered by the real apiserver's strategies).
pub(crate) fn selectable_fields(resource: &str) -> &'static [&'static str] {
    match resource {
        "pods" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "events" | "events.events.k8s.io" => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "secrets" => &["metadata.name", "metadata.namespace", "type"],
        "namespaces" => &["metadata.name", "metadata.namespace", "status.phase"],
        "nodes" => &["metadata.name", "metadata.namespace", "spec.unschedulable"],
        "replicasets.apps" => &["metadata.name", "metadata.namespace", "status.replicas"],
        _ => &META_FIELDS,
    }
}

/// Extracts the non-metadata selectable fields of an object, rendered as the apiserver does ("" when unset).
pub(crate) fn field_values(resource: &str, value: &Value) -> Vec<(&'static str, String)> {
    selectable_fields(resource)
        .iter()
        .filter(|f| !f.starts_with("metadata."))
        .map(|f| {
            let mut v = value;
            for part in f.split('.') {
                v = &v[part];
            }
            // events.k8s.io names the involved object "regarding"; core names are used for selection.
            if v.is_null() && f.starts_with("involvedObject.") {
                v = &value["regarding"][&f["involvedObject.".len()..]];
            }
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                Value::Null => String::new(),
                // The core "source" field is an object {component, host}; select on the component.
                other => other["component"].as_str().unwrap_or_default().to_string(),
            };
            (*f, s)
        })
        .collect()
}
