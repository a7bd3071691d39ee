//! Kubeconfig documents pointing kubectl or a client library at a running simulator.

/// A kubeconfig with cluster and context "kubebridge-sim", user "sim" without credentials.
pub(crate) fn kubeconfig_yaml(server: &str, namespace: Option<&str>) -> String {
    let ns_line = namespace
        .map(|ns| format!("    namespace: {ns}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kubebridge-sim\n  cluster:\n    server: {server}\nusers:\n- name: sim\n  user: {{}}\ncontexts:\n- name: kubebridge-sim\n  context:\n    cluster: kubebridge-sim\n    user: sim\n{ns_line}current-context: kubebridge-sim\npreferences: {{}}\n"
    )
}
