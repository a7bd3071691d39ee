//! The plan: every route's resources resolved once, and the informers they share.
//! `watch` runs exactly this plan and `check-config` prints it, so the two cannot
//! disagree: sharing is decided on RESOLVED resources (group, version, resource), the
//! namespace scope and the selectors, so routes `[pods]` and `[po]` share one informer.

use std::fmt;

use crate::config::{NamespaceScope, Route};
use crate::informer::InformerSpec;
use crate::kube::{ApiResource, Discovery, ResolveError};

/// A resource of a route, as the plan knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedResource {
    /// Resolved through discovery (or, offline, the built-in table).
    Resolved(ApiResource),
    /// Offline only: a name the built-in table does not know (a custom resource), kept as
    /// written; discovery resolves it at start-up.
    AtStartup(String),
}

/// Which namespaces one informer watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedScope {
    /// Every namespace.
    All,
    /// One namespace.
    Namespace(String),
    /// The kubeconfig context's namespace, not known offline.
    ContextNamespace,
    /// A cluster-scoped resource: no namespace applies.
    Cluster,
}

/// One informer and the routes it feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedInformer {
    /// What it lists and watches.
    pub resource: PlannedResource,
    /// Where.
    pub scope: PlannedScope,
    /// Label selector, sent to the server.
    pub label_selector: Option<String>,
    /// Field selector, sent to the server.
    pub field_selector: Option<String>,
    /// Indexes into [`Plan::routes`] of the routes it feeds, each once.
    pub routes: Vec<usize>,
}

/// One route with its resources resolved.
#[derive(Debug, Clone)]
pub struct PlannedRoute {
    /// The route, as configured.
    pub route: Route,
    /// Its resources, resolved, in order, without repeats.
    pub resources: Vec<PlannedResource>,
}

/// Every route resolved and the distinct informers they need, in the order they start.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The routes.
    pub routes: Vec<PlannedRoute>,
    /// The informers, each distinct.
    pub informers: Vec<PlannedInformer>,
}

/// Why a route's resources did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("{context}{source}")]
pub struct PlanError {
    context: String,
    /// The resolution error.
    #[source]
    pub source: Box<ResolveError>,
}

/// How the plan resolves names: through a live discovery, or offline.
pub enum Resolver<'a> {
    /// A cluster's discovery: every name must resolve.
    Live(&'a Discovery),
    /// The built-in table; a name it does not know is resolved at start-up.
    Offline(&'a Discovery),
}

impl Resolver<'_> {
    /// `name` as this resolver knows it.
    pub(crate) fn resolve(&self, name: &str) -> Result<PlannedResource, ResolveError> {
        match self {
            Resolver::Live(d) => d.resolve(name).map(PlannedResource::Resolved),
            Resolver::Offline(d) => match d.resolve(name) {
                Ok(r) => Ok(PlannedResource::Resolved(r)),
                Err(ResolveError::Unknown { .. }) => {
                    Ok(PlannedResource::AtStartup(name.to_lowercase()))
                }
                Err(e) => Err(e),
            },
        }
    }
}

impl Plan {
    /// Resolves every route once and decides which informers they share.
    /// `context_namespace` is the kubeconfig context's namespace; `None` offline, where a
    /// route without namespaces stays [`PlannedScope::ContextNamespace`].
    pub fn build(
        routes: &[Route],
        resolver: &Resolver<'_>,
        context_namespace: Option<&str>,
    ) -> Result<Plan, PlanError> {
        let mut plan = Plan {
            routes: Vec::with_capacity(routes.len()),
            informers: Vec::new(),
        };
        for (index, route) in routes.iter().enumerate() {
            let mut resources = Vec::new();
            for name in &route.resources {
                let resource = resolver.resolve(name).map_err(|source| PlanError {
                    context: route.context(),
                    source: Box::new(source),
                })?;
                if !resources.contains(&resource) {
                    resources.push(resource);
                }
            }
            for resource in &resources {
                for scope in scopes(route, resource, context_namespace) {
                    plan.subscribe(index, resource, scope, route);
                }
            }
            plan.routes.push(PlannedRoute {
                route: route.clone(),
                resources,
            });
        }
        Ok(plan)
    }

    fn subscribe(
        &mut self,
        route: usize,
        resource: &PlannedResource,
        scope: PlannedScope,
        r: &Route,
    ) {
        let informer = PlannedInformer {
            resource: resource.clone(),
            scope,
            label_selector: r.label_selector.clone(),
            field_selector: r.field_selector.clone(),
            routes: Vec::new(),
        };
        let same = |i: &&mut PlannedInformer| {
            i.resource == informer.resource
                && i.scope == informer.scope
                && i.label_selector == informer.label_selector
                && i.field_selector == informer.field_selector
        };
        let found = match self.informers.iter_mut().find(same) {
            Some(found) => found,
            None => {
                self.informers.push(informer);
                let last = self.informers.len() - 1;
                &mut self.informers[last]
            }
        };
        if !found.routes.contains(&route) {
            found.routes.push(route);
        }
    }
}

/// The scopes one resource of a route is watched in. `-n` means nothing to a
/// cluster-scoped resource, as in kubectl.
fn scopes(
    route: &Route,
    resource: &PlannedResource,
    context_namespace: Option<&str>,
) -> Vec<PlannedScope> {
    if let PlannedResource::Resolved(r) = resource
        && !r.namespaced
    {
        return vec![PlannedScope::Cluster];
    }
    match &route.namespaces {
        NamespaceScope::All => vec![PlannedScope::All],
        NamespaceScope::ContextDefault => vec![match context_namespace {
            Some(ns) => PlannedScope::Namespace(ns.to_owned()),
            None => PlannedScope::ContextNamespace,
        }],
        NamespaceScope::Only(list) => list.iter().cloned().map(PlannedScope::Namespace).collect(),
    }
}

impl PlannedInformer {
    /// What the informer module runs for this informer; `None` only in an offline plan
    /// (a resource or namespace that the cluster has yet to tell).
    pub fn spec(&self) -> Option<InformerSpec> {
        let PlannedResource::Resolved(resource) = &self.resource else {
            return None;
        };
        let namespace = match &self.scope {
            PlannedScope::All | PlannedScope::Cluster => None,
            PlannedScope::Namespace(ns) => Some(ns.clone()),
            PlannedScope::ContextNamespace => return None,
        };
        Some(InformerSpec {
            resource: resource.clone(),
            namespace,
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
        })
    }
}

impl fmt::Display for PlannedResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlannedResource::Resolved(r) => write!(f, "{}", r.id),
            PlannedResource::AtStartup(name) => write!(f, "{name} (resolved at start-up)"),
        }
    }
}

impl fmt::Display for PlannedInformer {
    /// `pods in all namespaces, labels app=web`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.resource)?;
        match &self.scope {
            PlannedScope::All => write!(f, " in all namespaces")?,
            PlannedScope::Namespace(ns) => write!(f, " in namespace {ns}")?,
            PlannedScope::ContextNamespace => write!(f, " in the context's namespace")?,
            PlannedScope::Cluster => write!(f, " (cluster-scoped)")?,
        }
        if let Some(l) = &self.label_selector {
            write!(f, ", labels {l}")?;
        }
        if let Some(s) = &self.field_selector {
            write!(f, ", fields {s}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Plan {
    /// The informers with the routes each feeds, then the routes with their sinks
    /// (passwords masked) and what each publishes (its filters).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "informers ({}):", self.informers.len())?;
        for informer in &self.informers {
            let names: Vec<&str> = informer
                .routes
                .iter()
                .map(|&i| self.routes[i].route.name.as_str())
                .collect();
            let shared = if names.len() > 1 { " (shared)" } else { "" };
            writeln!(f, "  {informer}  <- {}{shared}", names.join(", "))?;
        }
        writeln!(f, "routes ({}):", self.routes.len())?;
        for planned in &self.routes {
            let resources: Vec<String> = planned.resources.iter().map(|r| r.to_string()).collect();
            let sinks: Vec<String> = planned
                .route
                .sinks
                .iter()
                .map(|s| kubebridge_sinks::redact(s))
                .collect();
            writeln!(
                f,
                "  {}: {} -> {}",
                planned.route.name,
                resources.join(", "),
                sinks.join(", ")
            )?;
            writeln!(f, "    publishes: {}", planned.route.filters)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, resources: &[&str]) -> Route {
        let mut r = Route::new(name, resources.iter().copied());
        r.namespaces = NamespaceScope::Only(vec!["shop".into()]);
        r
    }

    #[test]
    fn names_that_resolve_alike_share_one_informer() {
        let d = Discovery::builtin();
        let routes = [route("one", &["pods"]), route("two", &["po", "Pod"])];
        for resolver in [Resolver::Live(&d), Resolver::Offline(&d)] {
            let plan = Plan::build(&routes, &resolver, None).expect("plan");
            assert_eq!(plan.informers.len(), 1, "{plan}");
            assert_eq!(plan.informers[0].routes, [0, 1]);
            assert_eq!(
                plan.routes[1].resources.len(),
                1,
                "po and Pod are one resource"
            );
            assert!(
                plan.to_string()
                    .contains("pods in namespace shop  <- one, two (shared)"),
                "{plan}"
            );
        }
    }

    #[test]
    fn the_context_namespace_and_cluster_scope() {
        let d = Discovery::builtin();
        let mut a = Route::new("a", ["pods", "nodes"]);
        a.namespaces = NamespaceScope::ContextDefault;
        let mut b = route("b", &["pods", "no"]);
        b.namespaces = NamespaceScope::Only(vec!["dev".into(), "shop".into()]);
        let live =
            Plan::build(&[a.clone(), b.clone()], &Resolver::Live(&d), Some("dev")).expect("plan");
        // pods@dev (a, b), nodes (a, b), pods@shop (b).
        assert_eq!(live.informers.len(), 3, "{live}");
        assert!(live.informers.iter().all(|i| i.spec().is_some()));
        let offline = Plan::build(&[a, b], &Resolver::Offline(&d), None).expect("plan");
        assert_eq!(offline.informers.len(), 4, "{offline}");
    }

    #[test]
    fn unknown_names_wait_for_discovery_offline_and_fail_live() {
        let d = Discovery::builtin();
        let routes = [route("crd", &["crontabs.stable.example.com"])];
        let offline = Plan::build(&routes, &Resolver::Offline(&d), None).expect("offline");
        assert!(offline.informers[0].spec().is_none());
        let err = Plan::build(&routes, &Resolver::Live(&d), None).expect_err("live");
        assert!(err.to_string().starts_with("route \"crd\": "), "{err}");
    }
}
