//! Never losing work: when validation, the commit, the push or the pull request fails, the
//! change is saved to files whose path is printed, and the message says what succeeded, what did
//! not, and the commands that finish the job by hand.

use std::path::{Path, PathBuf};

use super::diff::{FileChange, unified_all};
use crate::Error;
use crate::change::error::Error as ChangeError;

/// Where a change was saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub dir: PathBuf,
    /// `git apply`-able patch of every changed file.
    pub patch: PathBuf,
}

/// Saves the change in a new directory of the temp dir: `change.patch` (for `git apply` in a
/// clone), the whole new files under `files/<repository path>`, and the edited text the user
/// wrote (`edited.yaml`) when there is one.
pub fn save(what: &str, files: &[FileChange], edited: Option<&str>) -> Result<Saved, Error> {
    let base = std::env::temp_dir();
    let stamp = jiff::Zoned::now().strftime("%Y%m%d-%H%M%S").to_string();
    let safe = super::commit::slug(what);
    let io = |p: &Path, source: std::io::Error| Error::Io {
        path: p.display().to_string(),
        source,
    };
    let mut dir = base.join(format!("kubectl-gitops-{safe}-{stamp}"));
    let mut n = 1;
    while let Err(e) = std::fs::create_dir(&dir) {
        if e.kind() != std::io::ErrorKind::AlreadyExists || n > 100 {
            return Err(io(&dir, e));
        }
        n += 1;
        dir = base.join(format!("kubectl-gitops-{safe}-{stamp}-{n}"));
    }
    let patch = dir.join("change.patch");
    std::fs::write(&patch, unified_all(files)).map_err(|e| io(&patch, e))?;
    for f in files {
        let Some(rel) = crate::git::normalize_path(&f.path) else {
            continue;
        };
        let target = dir.join("files").join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&target, &f.new).map_err(|e| io(&target, e))?;
    }
    if let Some(text) = edited {
        let p = dir.join("edited.yaml");
        std::fs::write(&p, text).map_err(|e| io(&p, e))?;
    }
    Ok(Saved { dir, patch })
}

impl Saved {
    /// The sentence that says where the change is.
    pub fn sentence(&self) -> String {
        format!(
            "A copy of your changes has been stored to \"{}\" (apply it in a clone with `git apply {}`; the whole new files are in {}).",
            self.patch.display(),
            self.patch.display(),
            self.dir.join("files").display()
        )
    }
}

/// What had happened when a step failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Steps that succeeded, in order, as sentences.
    pub done: Vec<String>,
    /// What did not happen because of the failure.
    pub not_done: Vec<String>,
    /// Commands (or steps) that finish the change by hand.
    pub finish: Vec<String>,
}

/// The error for a change that stopped part way: the failure, what succeeded, what did not,
/// how to finish, and where the change is saved.
pub fn incomplete(step: &str, cause: &Error, progress: &Progress, saved: Option<&Saved>) -> Error {
    let mut m = format!("{step} failed: {}", cause.report());
    if progress.done.is_empty() {
        m.push_str("\nNothing was committed, pushed or opened.");
    } else {
        m.push_str("\nWhat succeeded:");
        for d in &progress.done {
            m.push_str(&format!("\n  - {d}"));
        }
    }
    if !progress.not_done.is_empty() {
        m.push_str("\nWhat did not happen:");
        for d in &progress.not_done {
            m.push_str(&format!("\n  - {d}"));
        }
    }
    if !progress.finish.is_empty() {
        m.push_str("\nTo finish by hand:");
        for f in &progress.finish {
            m.push_str(&format!("\n  {f}"));
        }
    }
    if let Some(s) = saved {
        m.push('\n');
        m.push_str(&s.sentence());
    }
    ChangeError::Incomplete { message: m }.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_patch_files_and_edited_text() {
        let files = [FileChange {
            path: "apps/web/deployment.yaml".into(),
            old: "a: 1\n".into(),
            new: "a: 2\n".into(),
        }];
        let s = save("deployment/web", &files, Some("# header\na: 2\n")).unwrap();
        assert!(
            s.dir
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("kubectl-gitops-deployment-web-")
        );
        let patch = std::fs::read_to_string(&s.patch).unwrap();
        assert!(patch.contains("-a: 1\n+a: 2\n"));
        assert_eq!(
            std::fs::read_to_string(s.dir.join("files/apps/web/deployment.yaml")).unwrap(),
            "a: 2\n"
        );
        assert_eq!(
            std::fs::read_to_string(s.dir.join("edited.yaml")).unwrap(),
            "# header\na: 2\n"
        );
        let e = incomplete(
            "pushing branch b to origin",
            &Error::Usage("rejected".into()),
            &Progress {
                done: vec!["committed 1a2b3c4 on local branch b".into()],
                not_done: vec!["no pull request was opened".into()],
                finish: vec!["git -C /r push origin b".into()],
            },
            Some(&s),
        )
        .to_string();
        assert!(e.starts_with("pushing branch b to origin failed: rejected\nWhat succeeded:\n  - committed 1a2b3c4"), "{e}");
        assert!(
            e.contains("To finish by hand:\n  git -C /r push origin b\n"),
            "{e}"
        );
        assert!(e.contains(&s.patch.display().to_string()));
        std::fs::remove_dir_all(&s.dir).unwrap();
    }
}
