//! [`ResourceId`]: the Kubernetes resource an object belongs to.

use std::fmt;

use serde::Serialize;

/// The resource an object belongs to: its group, version, plural resource name and kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ResourceId {
    /// API group; empty for the core group (pods, configmaps, ...).
    pub group: String,
    /// API version within the group, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `deployments`.
    pub resource: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
}

impl ResourceId {
    /// `apiVersion` as written in objects: `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

impl fmt::Display for ResourceId {
    /// kubectl's fully qualified form: `pods` for the core group, `deployments.apps` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}
