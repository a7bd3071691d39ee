//! The running simulator: binds, seeds, serves HTTP, runs churn, and offers direct object operations.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::config::SimConfig;
use crate::error::{ApiError, SimError};
use crate::faults::Faults;
use crate::ops::{self, Target};
use crate::resources::ResourceType;
use crate::reviews::Reviews;
use crate::shared::Shared;
use crate::store::{ObjKey, Store, StoredObject};
use crate::{churn, http, kubeconfig, seed};

/// A running simulated API server; dropping it or calling [`Sim::shutdown`] stops it.
pub struct Sim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Sim {
    /// Binds `listen` (use 127.0.0.1:0 in tests), seeds objects, starts churn and serves.
    pub async fn start(listen: SocketAddr, config: SimConfig) -> std::io::Result<Sim> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let mut store = Store::new(config.history, config.seed);
        store.managed_fields = config.managed_fields;
        seed::seed(&mut store, &config);
        let store = Arc::new(Mutex::new(store));
        let shared = Arc::new(Shared {
            faults: Faults::new(store.clone()),
            reviews: Reviews::default(),
            store,
            config,
        });
        let mut tasks = vec![tokio::spawn(accept_loop(listener, shared.clone()))];
        if shared.config.churn_per_sec > 0.0 {
            tasks.push(tokio::spawn(churn::run(
                shared.clone(),
                shared.config.churn_per_sec,
            )));
        }
        Ok(Sim {
            shared,
            addr,
            tasks,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, e.g. "http://127.0.0.1:PORT".
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for this server: cluster/context "kubebridge-sim", user "sim" without credentials.
    pub fn kubeconfig_yaml(&self, namespace: Option<&str>) -> String {
        kubeconfig::kubeconfig_yaml(&self.url(), namespace)
    }

    /// Writes [`Sim::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path, namespace: Option<&str>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml(namespace))
    }

    /// Resolves "plural[.group][/status]" to its preferred-version type and subresource.
    fn resolve(
        &self,
        store: &Store,
        resource: &str,
    ) -> Result<(Arc<ResourceType>, Option<String>), SimError> {
        let (res, sub) = match resource.split_once('/') {
            Some((r, s)) => (r, Some(s.to_string())),
            None => (resource, None),
        };
        let rt = store
            .registry
            .lookup_key(res)
            .ok_or_else(|| SimError::from(ApiError::no_route()))?;
        if sub
            .as_deref()
            .is_some_and(|s| s != "status" || !rt.status_subresource)
        {
            return Err(ApiError::no_route().into());
        }
        Ok((rt, sub))
    }

    fn run_op(
        &self,
        resource: &str,
        namespace: Option<&str>,
        op: impl FnOnce(&mut Store, &Target<'_>) -> Result<Arc<StoredObject>, ApiError>,
    ) -> Result<Value, SimError> {
        let mut store = self.shared.lock();
        let (rt, sub) = self.resolve(&store, resource)?;
        let ns = if rt.namespaced {
            Some(namespace.unwrap_or("default"))
        } else {
            None
        };
        let t = Target {
            rt: &rt,
            namespace: ns,
            subresource: sub.as_deref(),
            dry_run: false,
        };
        let obj = op(&mut store, &t)?;
        drop(store);
        Ok(with_type(&rt, &obj))
    }

    /// Creates an object (POST semantics); `resource` is "plural" or "plural.group".
    pub fn create(
        &self,
        resource: &str,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, SimError> {
        let namespace = namespace_of(namespace, &object);
        self.run_op(resource, namespace.as_deref(), |s, t| {
            ops::create(s, t, object)
        })
    }

    /// Replaces an object (PUT semantics; 409 on a stale metadata.resourceVersion). "pods/status" updates status.
    pub fn update(
        &self,
        resource: &str,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, SimError> {
        let namespace = namespace_of(namespace, &object);
        self.run_op(resource, namespace.as_deref(), |s, t| {
            ops::update(s, t, None, object)
        })
    }

    /// Applies an RFC 7386 merge patch. "pods/status" patches status.
    pub fn patch(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
        merge_patch: Value,
    ) -> Result<Value, SimError> {
        self.run_op(resource, namespace, |s, t| {
            ops::patch(s, t, name, &merge_patch)
        })
    }

    /// Deletes an object and returns its final state.
    pub fn delete(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, SimError> {
        self.run_op(resource, namespace, |s, t| {
            ops::delete(s, t, name, None, None)
        })
    }

    /// Reads an object.
    pub fn get(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, SimError> {
        self.run_op(resource, namespace, |s, t| {
            let ns = if t.rt.namespaced {
                t.namespace.unwrap_or("default")
            } else {
                ""
            };
            let key: ObjKey = (ns.to_string(), name.to_string());
            s.get(&t.rt.key(), &key)
                .ok_or_else(|| ApiError::not_found(&t.rt.group, &t.rt.plural, name))
        })
    }

    /// Every object of `resource` now, in (namespace, name) order, in `namespace` when
    /// given (kubectl get's view, for tests comparing against it).
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Result<Vec<Value>, SimError> {
        let store = self.shared.lock();
        let (rt, _) = self.resolve(&store, resource)?;
        let mut out = Vec::new();
        let namespace = namespace.filter(|_| rt.namespaced);
        store.scan(&rt.key(), namespace, None, u64::MAX, |_, obj| {
            out.push(with_type(&rt, obj));
            true
        });
        Ok(out)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().resource_version()
    }

    /// Fault-injection hooks.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The users, tokens and permissions behind the TokenReview and SubjectAccessReview
    /// APIs.
    pub fn reviews(&self) -> &Reviews {
        &self.shared.reviews
    }

    /// Requests seen for `verb` (list|watch|get|create|update|patch|delete) on `resource` ("pods", "deployments.apps").
    pub fn requests(&self, verb: &str, resource: &str) -> u64 {
        self.shared.faults.count(verb, resource)
    }

    /// All request counts keyed by (verb, resource).
    pub fn request_counts(&self) -> BTreeMap<(String, String), u64> {
        self.shared.faults.counts()
    }

    /// Stops serving: ends watches, closes connections and stops churn.
    pub async fn shutdown(mut self) {
        self.shared.faults.drop_watches();
        for t in self.tasks.drain(..) {
            t.abort();
            // An aborted task reports cancellation; that is the expected outcome.
            let _ = t.await;
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shared.faults.drop_watches();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The object as a client sees it, with its kind and apiVersion.
fn with_type(rt: &ResourceType, obj: &StoredObject) -> Value {
    serde_json::from_slice(&obj.json_with_type(&rt.kind, &rt.api_version()))
        .expect("stored bodies with type metadata are valid JSON")
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    // Owning the connection tasks here means aborting this task aborts every connection too.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "simulator accept failed");
                // Back off so fd exhaustion does not turn into a busy loop.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| http::handle(shared.clone(), req));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "simulator connection ended with an error");
            }
        });
        while conns.try_join_next().is_some() {}
    }
}

/// The namespace an object operation targets: the caller's, else the object's own.
fn namespace_of(namespace: Option<&str>, object: &Value) -> Option<String> {
    namespace
        .or_else(|| object["metadata"]["namespace"].as_str())
        .map(str::to_string)
}
