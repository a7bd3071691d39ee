//! `--checkpoint file:///DIR`: one file per informer in a directory, replaced atomically
//! (write a temporary file, fsync it, rename it over the old one, fsync the directory),
//! so a crash at any point leaves either the old checkpoint or the new one, whole.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::store::StoreError;

/// A directory of checkpoints.
#[derive(Debug, Clone)]
pub(crate) struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// Checkpoints in `dir`, which must exist and be writable (checked at start-up by
    /// [`FileStore::check`]).
    pub(crate) fn new(dir: PathBuf) -> FileStore {
        FileStore { dir }
    }

    /// Whether the directory is there and writable: a temporary file is created and
    /// removed, so a read-only volume is a usage error at start-up, not a warning an
    /// hour later.
    pub(crate) fn check(&self) -> Result<(), String> {
        let probe = self.dir.join(".kubebridge-probe");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| {
                format!(
                    "--checkpoint file://{}: cannot write there: {e}; give an existing, writable directory",
                    self.dir.display()
                )
            })
    }

    fn path(&self, file_name: &str) -> PathBuf {
        self.dir.join(format!("{file_name}.ckpt"))
    }

    /// Where `file_name`'s checkpoint is kept (for messages).
    pub(crate) fn describe(&self, file_name: &str) -> String {
        self.path(file_name).display().to_string()
    }

    /// The checkpoint stored under `file_name`, if any.
    pub(crate) async fn load(&self, file_name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(file_name);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io(format!("{}: {e}", path.display()))),
        }
    }

    /// Replaces the checkpoint under `file_name` with `bytes`, atomically.
    pub(crate) async fn save(&self, file_name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path(file_name);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || replace(&dir, &path, &bytes))
            .await
            .map_err(|e| StoreError::Io(e.to_string()))?
            .map_err(|e| StoreError::Io(e.to_string()))
    }
}

/// Write, fsync, rename, fsync the directory (so the rename itself survives a crash).
fn replace(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("ckpt.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replaces_atomically_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::new(dir.path().to_owned());
        store.check().expect("writable");
        assert_eq!(store.load("pods").await.expect("read"), None);
        store.save("pods", b"one".to_vec()).await.expect("write");
        store.save("pods", b"two".to_vec()).await.expect("write");
        assert_eq!(
            store.load("pods").await.expect("read").as_deref(),
            Some(&b"two"[..])
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["pods.ckpt"], "no temporary file left behind");
    }

    #[test]
    fn a_missing_directory_is_refused_at_start() {
        let err = FileStore::new("/nonexistent/kubebridge".into())
            .check()
            .expect_err("missing");
        assert!(
            err.starts_with("--checkpoint file:///nonexistent/kubebridge: cannot write there"),
            "{err}"
        );
    }
}
