//! The built-in resources of Kubernetes as discovery describes them, for resolving names
//! without a cluster (`check-config`). Group, version, plural, kind and scope come from
//! k8s-openapi's types (so they follow the Kubernetes version the binary is built
//! for); short names are kubectl's (`kubectl api-resources`). A test checks this table
//! against the simulated API server's discovery.

use std::sync::Arc;

use k8s_openapi::api::{
    admissionregistration, apps, autoscaling, batch, certificates, coordination, core, discovery,
    events, networking, node, policy, rbac, scheduling, storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope, Resource};
use kubebridge_sinks::ResourceId;

use super::discovery::{ApiResource, Discovery};

/// Whether a k8s-openapi scope type means "lives in a namespace".
trait Scope {
    const NAMESPACED: bool;
}
impl Scope for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Scope for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

fn entry<T>(short_names: &[&str]) -> ApiResource
where
    T: Resource,
    T::Scope: Scope,
{
    ApiResource {
        id: Arc::new(ResourceId {
            group: T::GROUP.to_owned(),
            version: T::VERSION.to_owned(),
            resource: T::URL_PATH_SEGMENT.to_owned(),
            kind: T::KIND.to_owned(),
        }),
        namespaced: <T::Scope as Scope>::NAMESPACED,
        singular: T::KIND.to_lowercase(),
        short_names: short_names.iter().map(|s| (*s).to_owned()).collect(),
        preferred: true,
    }
}

impl Discovery {
    /// What any Kubernetes API server serves, without asking one: the core group first,
    /// then the other built-in groups at their preferred versions, as discovery orders
    /// them. Custom resources are not in it.
    pub fn builtin() -> Discovery {
        use core::v1 as c;
        Discovery::from_resources(vec![
            entry::<c::Pod>(&["po"]),
            entry::<c::Service>(&["svc"]),
            entry::<c::ConfigMap>(&["cm"]),
            entry::<c::Secret>(&[]),
            entry::<c::Namespace>(&["ns"]),
            entry::<c::Node>(&["no"]),
            entry::<c::PersistentVolume>(&["pv"]),
            entry::<c::PersistentVolumeClaim>(&["pvc"]),
            entry::<c::Endpoints>(&["ep"]),
            entry::<c::Event>(&["ev"]),
            entry::<c::ServiceAccount>(&["sa"]),
            entry::<c::ReplicationController>(&["rc"]),
            entry::<c::ResourceQuota>(&["quota"]),
            entry::<c::LimitRange>(&["limits"]),
            entry::<c::PodTemplate>(&[]),
            entry::<apps::v1::Deployment>(&["deploy"]),
            entry::<apps::v1::ReplicaSet>(&["rs"]),
            entry::<apps::v1::StatefulSet>(&["sts"]),
            entry::<apps::v1::DaemonSet>(&["ds"]),
            entry::<apps::v1::ControllerRevision>(&[]),
            entry::<events::v1::Event>(&["ev"]),
            entry::<autoscaling::v2::HorizontalPodAutoscaler>(&["hpa"]),
            entry::<batch::v1::Job>(&[]),
            entry::<batch::v1::CronJob>(&["cj"]),
            entry::<certificates::v1::CertificateSigningRequest>(&["csr"]),
            entry::<networking::v1::Ingress>(&["ing"]),
            entry::<networking::v1::IngressClass>(&[]),
            entry::<networking::v1::NetworkPolicy>(&["netpol"]),
            entry::<policy::v1::PodDisruptionBudget>(&["pdb"]),
            entry::<rbac::v1::ClusterRole>(&[]),
            entry::<rbac::v1::ClusterRoleBinding>(&[]),
            entry::<rbac::v1::Role>(&[]),
            entry::<rbac::v1::RoleBinding>(&[]),
            entry::<storage::v1::CSIDriver>(&[]),
            entry::<storage::v1::CSINode>(&[]),
            entry::<storage::v1::StorageClass>(&["sc"]),
            entry::<storage::v1::VolumeAttachment>(&[]),
            entry::<admissionregistration::v1::MutatingWebhookConfiguration>(&[]),
            entry::<admissionregistration::v1::ValidatingWebhookConfiguration>(&[]),
            entry::<apiextensions::v1::CustomResourceDefinition>(&["crd", "crds"]),
            entry::<scheduling::v1::PriorityClass>(&["pc"]),
            entry::<coordination::v1::Lease>(&[]),
            entry::<node::v1::RuntimeClass>(&[]),
            entry::<discovery::v1::EndpointSlice>(&[]),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_kubectl_names_offline() {
        let d = Discovery::builtin();
        for (name, expected) in [
            ("po", "pods"),
            ("pods", "pods"),
            ("Pod", "pods"),
            ("deploy", "deployments.apps"),
            ("deployments.apps", "deployments.apps"),
            ("ev", "events"),
            ("events.events.k8s.io", "events.events.k8s.io"),
            ("hpa", "horizontalpodautoscalers.autoscaling"),
            ("crd", "customresourcedefinitions.apiextensions.k8s.io"),
        ] {
            let r = d.resolve(name).expect(name);
            assert_eq!(r.id.to_string(), expected, "{name}");
        }
        assert!(!d.resolve("nodes").expect("nodes").namespaced);
        assert!(d.resolve("crontabs.stable.example.com").is_err());
    }
}
