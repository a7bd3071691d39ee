//! Where checkpoints are kept: `--checkpoint URI` parsed once, and the store it names.

use std::path::PathBuf;

use super::configmap::ConfigMapStore;
use super::file::FileStore;

/// `--checkpoint`, as given: checked at parse time, opened once connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointUri {
    /// `file:///DIR`: one file per informer in an existing directory.
    File(PathBuf),
    /// `configmap://[NAMESPACE]/PREFIX`: ConfigMaps named `PREFIX-...` in NAMESPACE
    /// (kubebridge's own namespace when omitted).
    ConfigMap {
        /// The namespace, or `None` for kubebridge's own.
        namespace: Option<String>,
        /// The first part of every ConfigMap's name.
        prefix: String,
    },
}

/// The longest prefix: the name of a ConfigMap part adds a 16-digit hash and a part
/// number, and the whole must stay a DNS-1123 subdomain of at most 253 characters (a
/// label, 63, so that it also fits in places that want one).
const MAX_PREFIX: usize = 40;

impl std::str::FromStr for CheckpointUri {
    type Err = String;

    /// A clap value parser: one line naming what is wrong and what is right.
    fn from_str(uri: &str) -> Result<Self, String> {
        const FORMS: &str = "write file:///DIR or configmap://[NAMESPACE]/PREFIX";
        if let Some(path) = uri.strip_prefix("file://") {
            if !path.starts_with('/') || path.len() < 2 {
                return Err(format!(
                    "{uri:?} is not an absolute directory; {FORMS} (three slashes for an absolute path)"
                ));
            }
            return Ok(CheckpointUri::File(PathBuf::from(path)));
        }
        if let Some(rest) = uri.strip_prefix("configmap://") {
            let (namespace, prefix) = rest.split_once('/').unwrap_or(("", rest));
            if let Some(e) = (!namespace.is_empty())
                .then(|| kubebridge_apimachinery::dns1123_label_error(namespace))
                .flatten()
            {
                return Err(format!("{uri:?}: namespace {namespace:?}: {e}"));
            }
            if prefix.is_empty() || prefix.len() > MAX_PREFIX {
                return Err(format!(
                    "{uri:?}: give a ConfigMap name prefix of 1 to {MAX_PREFIX} characters; {FORMS}"
                ));
            }
            if let Some(e) = kubebridge_apimachinery::dns1123_label_error(prefix) {
                return Err(format!("{uri:?}: prefix {prefix:?}: {e}"));
            }
            return Ok(CheckpointUri::ConfigMap {
                namespace: (!namespace.is_empty()).then(|| namespace.to_owned()),
                prefix: prefix.to_owned(),
            });
        }
        Err(format!("{uri:?} is not a checkpoint store; {FORMS}"))
    }
}

impl std::fmt::Display for CheckpointUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckpointUri::File(dir) => write!(f, "file://{}", dir.display()),
            CheckpointUri::ConfigMap { namespace, prefix } => {
                write!(
                    f,
                    "configmap://{}/{prefix}",
                    namespace.as_deref().unwrap_or("")
                )
            }
        }
    }
}

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system error.
    #[error("{0}")]
    Io(String),
    /// Another writer changed the checkpoint since this one last read or wrote it: a
    /// deposed leader's late write, or a second instance writing the same checkpoint.
    #[error(
        "{0} (another kubebridge wrote this checkpoint since: is a second instance or a deposed leader running?)"
    )]
    Conflict(String),
    /// An API error.
    #[error("{0}")]
    Api(String),
    /// The stored parts do not belong together.
    #[error("{0}")]
    Inconsistent(String),
}

/// An open store.
#[derive(Clone)]
pub(crate) enum Store {
    /// Files in a directory.
    File(FileStore),
    /// ConfigMaps in a namespace.
    ConfigMap(ConfigMapStore),
}

impl Store {
    /// The checkpoint stored under `name`, if any.
    pub(crate) async fn load(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::File(s) => s.load(name).await,
            Store::ConfigMap(s) => s.load(name).await,
        }
    }

    /// Replaces the checkpoint under `name`.
    pub(crate) async fn save(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        match self {
            Store::File(s) => s.save(name, bytes).await,
            Store::ConfigMap(s) => s.save(name, bytes).await,
        }
    }

    /// Where `name`'s checkpoint is kept, for messages.
    pub(crate) fn describe(&self, name: &str) -> String {
        match self {
            Store::File(s) => s.describe(name),
            Store::ConfigMap(s) => s.describe(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms_and_refuses_the_rest() {
        assert_eq!(
            "file:///var/lib/kb".parse(),
            Ok(CheckpointUri::File("/var/lib/kb".into()))
        );
        assert_eq!(
            "configmap://ops/kb".parse(),
            Ok(CheckpointUri::ConfigMap {
                namespace: Some("ops".into()),
                prefix: "kb".into()
            })
        );
        assert_eq!(
            "configmap:///kb".parse(),
            Ok(CheckpointUri::ConfigMap {
                namespace: None,
                prefix: "kb".into()
            })
        );
        for bad in [
            "file://relative",
            "s3://b/k",
            "configmap://ops/",
            "configmap://Ops/kb",
            "configmap:///UP",
        ] {
            let err = bad.parse::<CheckpointUri>().expect_err(bad);
            assert!(err.starts_with(&format!("{bad:?}")), "{err}");
        }
    }
}
