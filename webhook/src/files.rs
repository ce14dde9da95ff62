//! Noticing that files changed on disk.
//!
//! Files are re-read by path and compared by content on every poll: Kubernetes mounts Secrets and
//! ConfigMaps as symlinks that the kubelet swaps atomically (cert-manager renewals arrive that
//! way), so modification times of the visible path are not reliable.

use std::path::PathBuf;
use std::time::Duration;

/// What a poll found.
#[derive(Debug)]
pub enum Change {
    /// The same contents as last time.
    Unchanged,
    /// New contents, one entry per path.
    Changed(Vec<Vec<u8>>),
    /// A file could not be read (reported once per distinct error).
    Unreadable { path: PathBuf, error: String },
}

/// A set of files watched together (a certificate and its key; the config file).
#[derive(Debug)]
pub struct WatchedFiles {
    paths: Vec<PathBuf>,
    last: Vec<Vec<u8>>,
    last_error: Option<String>,
}

impl WatchedFiles {
    /// `current` is what was loaded at start, one entry per path.
    pub fn new(paths: Vec<PathBuf>, current: Vec<Vec<u8>>) -> WatchedFiles {
        WatchedFiles {
            paths,
            last: current,
            last_error: None,
        }
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    async fn read_all(&self) -> Result<Vec<Vec<u8>>, (PathBuf, std::io::Error)> {
        let mut contents = Vec::with_capacity(self.paths.len());
        for path in &self.paths {
            contents.push(tokio::fs::read(path).await.map_err(|e| (path.clone(), e))?);
        }
        Ok(contents)
    }

    /// Reads every file again. A change is reported once, even when the caller rejects the new
    /// contents; the next change is reported again. New contents count only when a second read a
    /// moment later agrees, so a file caught half-written (an empty config file is valid!) is
    /// never reported.
    pub async fn poll(&mut self) -> Change {
        let contents = match self.read_all().await {
            Ok(contents) => contents,
            Err((path, e)) => {
                let error = e.to_string();
                if self.last_error.as_deref() == Some(error.as_str()) {
                    return Change::Unchanged;
                }
                self.last_error = Some(error.clone());
                return Change::Unreadable { path, error };
            }
        };
        self.last_error = None;
        if contents == self.last {
            return Change::Unchanged;
        }
        tokio::time::sleep(SETTLE).await;
        match self.read_all().await {
            Ok(again) if again == contents => {}
            // Still being written: look again at the next poll.
            _ => return Change::Unchanged,
        }
        self.last = contents.clone();
        Change::Changed(contents)
    }
}

/// How long new contents must stay the same before they count.
const SETTLE: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_each_change_and_each_new_error_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "mode: audit\n").unwrap();
        let mut w = WatchedFiles::new(vec![path.clone()], vec![b"mode: audit\n".to_vec()]);
        assert!(matches!(w.poll().await, Change::Unchanged));
        std::fs::write(&path, "mode: enforce\n").unwrap();
        match w.poll().await {
            Change::Changed(c) => assert_eq!(c, vec![b"mode: enforce\n".to_vec()]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(w.poll().await, Change::Unchanged));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(w.poll().await, Change::Unreadable { .. }));
        assert!(matches!(w.poll().await, Change::Unchanged));
        std::fs::write(&path, "mode: enforce\n").unwrap();
        assert!(matches!(w.poll().await, Change::Unchanged));
    }
}
