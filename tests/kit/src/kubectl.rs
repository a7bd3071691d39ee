//! The real kubectl, run against a kubeconfig: found on the machine (or skipped with
//! `KUBEBRIDGE_SKIP_KUBECTL=1`), with a HOME and discovery cache of its own and a time
//! limit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

/// How long one kubectl command may take.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Where kubectl is: `None` when `KUBEBRIDGE_SKIP_KUBECTL=1`; a missing kubectl
/// otherwise fails the test, so a CI run without it cannot pass silently.
pub fn kubectl_path() -> Option<PathBuf> {
    if std::env::var("KUBEBRIDGE_SKIP_KUBECTL").as_deref() == Ok("1") {
        return None;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("kubectl"))
            .find(|p| p.is_file())
    });
    let found = on_path.or_else(|| {
        ["/usr/bin/kubectl", "/usr/local/bin/kubectl"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    });
    Some(found.expect("kubectl not found: install it or set KUBEBRIDGE_SKIP_KUBECTL=1"))
}

/// What one kubectl command did.
#[derive(Debug)]
pub struct Output {
    /// Whether it exited 0.
    pub success: bool,
    /// Its stdout (lossy).
    pub stdout: String,
    /// Its stderr (lossy).
    pub stderr: String,
}

/// kubectl bound to one kubeconfig, HOME and discovery cache.
#[derive(Clone, Debug)]
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    /// kubectl for `kubeconfig`, with HOME `home` and its discovery cache in
    /// `home/cache`; `None` when `KUBEBRIDGE_SKIP_KUBECTL=1` (see [`kubectl_path`]).
    pub fn find(kubeconfig: &Path, home: &Path) -> Option<Kubectl> {
        Some(Kubectl::new(kubectl_path()?, kubeconfig, home))
    }

    /// The kubectl at `bin`, otherwise as [`Kubectl::find`].
    pub fn new(bin: PathBuf, kubeconfig: &Path, home: &Path) -> Kubectl {
        Kubectl {
            bin,
            kubeconfig: kubeconfig.to_path_buf(),
            home: home.to_path_buf(),
            cache: home.join("cache"),
        }
    }

    /// The same kubectl with its discovery cache in `home/name`: a new name makes it
    /// discover the server's resources afresh.
    pub fn with_cache(&self, name: &str) -> Kubectl {
        Kubectl {
            cache: self.home.join(name),
            ..self.clone()
        }
    }

    /// `kubectl --kubeconfig K --cache-dir C ARGS...`, not started: for a test that
    /// streams its output (`get -w`). No KUBECONFIG from the environment; killed when
    /// dropped.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true);
        c
    }

    /// Runs `kubectl ARGS...` to its end within [`LIMIT`], whether it succeeds or not.
    pub async fn try_run(&self, args: &[&str]) -> Output {
        let out = tokio::time::timeout(LIMIT, self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within {LIMIT:?}"))
            .expect("kubectl runs");
        Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `kubectl ARGS...` and returns its stdout; fails the test unless it succeeds.
    pub async fn run(&self, args: &[&str]) -> String {
        let out = self.try_run(args).await;
        assert!(
            out.success,
            "kubectl {args:?} failed: {}\n{}",
            out.stderr, out.stdout
        );
        out.stdout
    }

    /// `kubectl api-resources -o name`: "pods", "deployments.apps", ...
    pub async fn api_resources(&self) -> BTreeSet<String> {
        self.run(&["api-resources", "-o", "name"])
            .await
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Makes the server serve each of `defs` (from [`stand_in_crd`]) that discovery does
    /// not already list, as a CustomResourceDefinition, and checks that it then does.
    /// `scratch` holds the CRD files; the discovery caches used are `home/stand-ins-*`.
    pub async fn serve_stand_ins(&self, defs: &[serde_json::Value], scratch: &Path) {
        let k = self.with_cache("stand-ins-before");
        let served = k.api_resources().await;
        for def in defs {
            let name = def["metadata"]["name"].as_str().expect("a CRD name");
            if served.contains(name) {
                continue;
            }
            let path = scratch.join(format!("{name}.json"));
            std::fs::write(&path, def.to_string()).expect("write the CRD");
            k.run(&["create", "-f", path.to_str().expect("UTF-8 path")])
                .await;
        }
        let served = self.with_cache("stand-ins-after").api_resources().await;
        for def in defs {
            let name = def["metadata"]["name"].as_str().expect("a CRD name");
            assert!(served.contains(name), "{name} is not served: {served:?}");
        }
    }
}

/// A CustomResourceDefinition standing in for a type the simulator does not serve
/// (RBAC, NetworkPolicy, the Prometheus Operator's), accepting any content.
pub fn stand_in_crd(
    group: &str,
    plural: &str,
    kind: &str,
    scope: &str,
    short: &[&str],
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {
                "plural": plural,
                "singular": kind.to_lowercase(),
                "kind": kind,
                "listKind": format!("{kind}List"),
                "shortNames": short,
            },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true
                }}
            }]
        }
    })
}

/// Stand-ins for the four RBAC types (`rbac.authorization.k8s.io/v1`).
pub fn rbac_stand_ins() -> Vec<serde_json::Value> {
    let g = "rbac.authorization.k8s.io";
    vec![
        stand_in_crd(g, "clusterroles", "ClusterRole", "Cluster", &[]),
        stand_in_crd(
            g,
            "clusterrolebindings",
            "ClusterRoleBinding",
            "Cluster",
            &[],
        ),
        stand_in_crd(g, "roles", "Role", "Namespaced", &[]),
        stand_in_crd(g, "rolebindings", "RoleBinding", "Namespaced", &[]),
    ]
}
