//! kubectl-style resource names (`po`, `deploy`, `deployments.apps`,
//! `crontabs.v1.stable.example.com`) resolved to a group, version and resource through
//! the API server's discovery documents, so CRDs work like built-ins.

use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroupList, APIResourceList, APIVersions};
use kubebridge_sinks::ResourceId;

use crate::kube::api::{self, ApiError, Url};

/// A resource the API server serves, as discovery describes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiResource {
    /// Group, version, plural name and kind.
    pub id: Arc<ResourceId>,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Singular name, e.g. `pod`.
    pub singular: String,
    /// Short names, e.g. `po`.
    pub short_names: Vec<String>,
    /// Whether this version is the group's preferred one.
    pub preferred: bool,
}

impl ApiResource {
    /// The collection path: `/api/v1/namespaces/NS/pods`, or without the namespace part
    /// for all namespaces and for cluster-scoped resources.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let base = if self.id.group.is_empty() {
            format!("/api/{}", self.id.version)
        } else {
            format!("/apis/{}/{}", self.id.group, self.id.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.id.resource),
            _ => format!("{base}/{}", self.id.resource),
        }
    }

    fn answers_to(&self, name: &str) -> bool {
        self.id.resource == name
            || self.singular == name
            || self.short_names.iter().any(|s| s == name)
            || self.id.kind.eq_ignore_ascii_case(name)
    }
}

/// Why a name did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Discovery itself failed.
    #[error("cannot read the API server's discovery documents: {0}")]
    Discovery(#[from] ApiError),
    /// No served resource has that name.
    #[error("the server doesn't have a resource type \"{name}\"{}", suggest(.suggestions))]
    Unknown {
        /// The name as the user wrote it.
        name: String,
        /// The closest known names.
        suggestions: Vec<String>,
    },
    /// The resource exists but cannot be listed and watched.
    #[error("resource \"{0}\" does not support list and watch, so it cannot be streamed")]
    NotWatchable(String),
}

fn suggest(names: &[String]) -> String {
    if names.is_empty() {
        "; `kubectl api-resources` lists the ones it has".to_owned()
    } else {
        format!("; did you mean {}?", names.join(", "))
    }
}

/// What the API server serves, in kubectl's priority order (the core group first, then
/// groups in the order the server lists them, the preferred version first in each).
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    resources: Vec<(ApiResource, bool)>, // (resource, supports list and watch)
}

impl Discovery {
    /// Reads `/api`, `/apis` and every group version. A group whose discovery fails
    /// (an aggregated API that is down) is skipped with a warning, as kubectl does.
    pub async fn run(client: &kube::Client) -> Result<Discovery, ApiError> {
        // Both roots at once: one round trip less at every start.
        let (core, groups): (APIVersions, APIGroupList) = futures::try_join!(
            api::get_json(client, Url::new("/api")),
            api::get_json(client, Url::new("/apis")),
        )?;

        let mut wanted: Vec<(String, String, bool)> = core
            .versions
            .iter()
            .map(|v| (String::new(), v.clone(), true))
            .collect();
        for group in &groups.groups {
            let preferred = group.preferred_version.as_ref().map(|p| p.version.clone());
            let mut versions: Vec<_> = group.versions.iter().map(|v| v.version.clone()).collect();
            // Preferred version first so an unqualified name picks it.
            versions.sort_by_key(|v| Some(v) != preferred.as_ref());
            for v in versions {
                let is_preferred = Some(&v) == preferred.as_ref();
                wanted.push((group.name.clone(), v, is_preferred));
            }
        }

        let lists = join_all(wanted.iter().map(|(group, version, _)| {
            let path = if group.is_empty() {
                format!("/api/{version}")
            } else {
                format!("/apis/{group}/{version}")
            };
            api::get_json::<APIResourceList>(client, Url::new(path))
        }))
        .await;

        let mut resources = Vec::new();
        for ((group, version, preferred), list) in wanted.into_iter().zip(lists) {
            let list = match list {
                Ok(list) => list,
                Err(e) if group.is_empty() => return Err(e),
                Err(e) => {
                    tracing::warn!(group, version, error = %e, "skipping an API group whose discovery failed");
                    continue;
                }
            };
            for r in list.resources {
                if r.name.contains('/') {
                    continue; // a subresource such as pods/log
                }
                let watchable = ["list", "watch"]
                    .iter()
                    .all(|v| r.verbs.iter().any(|x| x == v));
                resources.push((
                    ApiResource {
                        id: Arc::new(ResourceId {
                            group: group.clone(),
                            version: version.clone(),
                            resource: r.name.clone(),
                            kind: r.kind.clone(),
                        }),
                        namespaced: r.namespaced,
                        singular: if r.singular_name.is_empty() {
                            r.kind.to_lowercase()
                        } else {
                            r.singular_name.clone()
                        },
                        short_names: r.short_names.unwrap_or_default(),
                        preferred,
                    },
                    watchable,
                ));
            }
        }
        Ok(Discovery { resources })
    }

    /// A discovery of these (resource, supports list and watch) pairs, in priority order.
    pub(crate) fn from_resources(resources: Vec<ApiResource>) -> Discovery {
        Discovery {
            resources: resources.into_iter().map(|r| (r, true)).collect(),
        }
    }

    /// Every served resource, in priority order.
    pub fn resources(&self) -> impl Iterator<Item = &ApiResource> {
        self.resources.iter().map(|(r, _)| r)
    }

    /// Resolves a name the way kubectl does: `RESOURCE`, `RESOURCE.GROUP` or
    /// `RESOURCE.VERSION.GROUP`, where RESOURCE is a plural, singular, short name or kind.
    pub fn resolve(&self, name: &str) -> Result<ApiResource, ResolveError> {
        let lower = name.to_lowercase();
        let found = self.find(&lower);
        match found {
            Some((r, true)) => Ok(r.clone()),
            Some((r, false)) => Err(ResolveError::NotWatchable(r.id.to_string())),
            None => Err(ResolveError::Unknown {
                name: name.to_owned(),
                suggestions: self.closest(&lower),
            }),
        }
    }

    fn find(&self, name: &str) -> Option<&(ApiResource, bool)> {
        let (head, rest) = match name.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (name, None),
        };
        let Some(rest) = rest else {
            return self
                .resources
                .iter()
                .find(|(r, _)| r.preferred && r.answers_to(head));
        };
        // `resource.group` first; then `resource.version.group`.
        self.resources
            .iter()
            .find(|(r, _)| r.preferred && r.id.group == rest && r.answers_to(head))
            .or_else(|| {
                let (version, group) = rest.split_once('.').unwrap_or((rest, ""));
                self.resources.iter().find(|(r, _)| {
                    r.id.version == version && r.id.group == group && r.answers_to(head)
                })
            })
    }

    fn closest(&self, name: &str) -> Vec<String> {
        let head = name.split('.').next().unwrap_or(name);
        let mut scored: Vec<(usize, String)> = self
            .resources()
            .filter(|r| r.preferred)
            .map(|r| {
                let distance = std::iter::once(r.id.resource.as_str())
                    .chain(std::iter::once(r.singular.as_str()))
                    .chain(r.short_names.iter().map(String::as_str))
                    .map(|candidate| strsim::levenshtein(head, candidate))
                    .min()
                    .unwrap_or(usize::MAX);
                (distance, r.id.to_string())
            })
            .filter(|(d, _)| *d <= 2.max(head.len() / 3))
            .collect();
        scored.sort();
        scored.dedup_by(|a, b| a.1 == b.1);
        scored.into_iter().take(3).map(|(_, n)| n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        short: &[&str],
        preferred: bool,
    ) -> (ApiResource, bool) {
        (
            ApiResource {
                id: Arc::new(ResourceId {
                    group: group.into(),
                    version: version.into(),
                    resource: plural.into(),
                    kind: kind.into(),
                }),
                namespaced: true,
                singular: kind.to_lowercase(),
                short_names: short.iter().map(|s| s.to_string()).collect(),
                preferred,
            },
            true,
        )
    }

    fn discovery() -> Discovery {
        Discovery {
            resources: vec![
                resource("", "v1", "pods", "Pod", &["po"], true),
                resource("", "v1", "events", "Event", &["ev"], true),
                resource("apps", "v1", "deployments", "Deployment", &["deploy"], true),
                resource("events.k8s.io", "v1", "events", "Event", &["ev"], true),
                resource(
                    "stable.example.com",
                    "v1",
                    "crontabs",
                    "CronTab",
                    &["ct"],
                    true,
                ),
                resource(
                    "stable.example.com",
                    "v1beta1",
                    "crontabs",
                    "CronTab",
                    &["ct"],
                    false,
                ),
            ],
        }
    }

    fn resolved(name: &str) -> String {
        let r = discovery().resolve(name).expect(name);
        format!("{}/{}", r.id, r.id.version)
    }

    #[test]
    fn resolves_like_kubectl() {
        assert_eq!(resolved("po"), "pods/v1");
        assert_eq!(resolved("Pod"), "pods/v1");
        assert_eq!(resolved("pod"), "pods/v1");
        assert_eq!(resolved("deploy"), "deployments.apps/v1");
        assert_eq!(resolved("deployments.apps"), "deployments.apps/v1");
        assert_eq!(resolved("ct"), "crontabs.stable.example.com/v1");
        assert_eq!(
            resolved("crontabs.v1beta1.stable.example.com"),
            "crontabs.stable.example.com/v1beta1"
        );
        // The core group wins an ambiguous name, as in kubectl.
        assert_eq!(resolved("events"), "events/v1");
        assert_eq!(resolved("events.events.k8s.io"), "events.events.k8s.io/v1");
    }

    #[test]
    fn unknown_names_suggest_the_closest() {
        let err = discovery().resolve("podz").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "the server doesn't have a resource type \"podz\"; did you mean pods?"
        );
        assert!(discovery().resolve("deployments.extensions").is_err());
    }

    #[test]
    fn collection_paths() {
        let d = discovery();
        let pods = d.resolve("pods").expect("pods");
        assert_eq!(
            pods.collection_path(Some("shop")),
            "/api/v1/namespaces/shop/pods"
        );
        assert_eq!(pods.collection_path(None), "/api/v1/pods");
        let deploy = d.resolve("deploy").expect("deploy");
        assert_eq!(
            deploy.collection_path(Some("a")),
            "/apis/apps/v1/namespaces/a/deployments"
        );
    }
}
