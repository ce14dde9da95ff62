//! Git for a change: finding the newest tip of a branch with the user's own `git` (their
//! credential helpers, `insteadOf` rules and SSH config apply), committing the changed files on a
//! branch with gix without touching the work tree or `HEAD`, and pushing that branch with `git`,
//! never forced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::refs::transaction::PreviousValue;

use crate::Error;
use crate::change::error::Error as ChangeError;

/// Where a branch is pushed: a remote of the clone, or the source URL itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// A configured remote (`origin`).
    Named(String),
    /// A URL (git still applies its `insteadOf` rules and credential helpers).
    Url(String),
}

impl Remote {
    /// The argument for `git fetch` / `git push`.
    pub fn arg(&self) -> &str {
        match self {
            Remote::Named(n) | Remote::Url(n) => n,
        }
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.arg())
    }
}

/// The repository a change is committed in and the remote it is pushed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// Where `git` runs: the work tree of a clone, or the git dir of a bare clone.
    pub dir: PathBuf,
    pub remote: Remote,
}

/// Runs the user's `git` in `dir` (terminal prompts stay possible: stdin is inherited).
pub fn git(dir: &Path, args: &[&str]) -> Result<String, Error> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| crate::git::Error::GitSpawn {
            command: format!("git {}", args.join(" ")),
            dir: dir.display().to_string(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(crate::git::Error::GitCommand {
            command: format!("git {}", args.join(" ")),
            dir: dir.display().to_string(),
            message: if message.is_empty() {
                format!("it exited with {}", out.status)
            } else {
                message
            },
        }
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The remote of the clone at `dir` that names the same repository as `url` (as configured or
/// through `insteadOf` rules), preferring `origin`; else the URL itself.
pub fn remote_for(dir: &Path, url: &str) -> Remote {
    match crate::git::remotes_naming(dir, url).into_iter().next() {
        Some(n) => Remote::Named(n),
        None => Remote::Url(url.to_string()),
    }
}

/// The tips of `branches` on the remote (`git ls-remote`); branches that do not exist are left
/// out.
pub fn remote_tips(ws: &Workspace, branches: &[&str]) -> Result<BTreeMap<String, ObjectId>, Error> {
    let mut args = vec!["ls-remote", "--heads", ws.remote.arg()];
    let refs: Vec<String> = branches.iter().map(|b| format!("refs/heads/{b}")).collect();
    args.extend(refs.iter().map(String::as_str));
    let out = git(&ws.dir, &args)?;
    let mut tips = BTreeMap::new();
    for line in out.lines() {
        let Some((hex, name)) = line.split_once('\t') else {
            continue;
        };
        if let (Ok(id), Some(branch)) = (
            ObjectId::from_hex(hex.trim().as_bytes()),
            name.trim().strip_prefix("refs/heads/"),
        ) {
            tips.insert(branch.to_string(), id);
        }
    }
    Ok(tips)
}

/// The branch the remote's `HEAD` points at (what Argo CD's `targetRevision: HEAD` follows).
pub fn remote_default_branch(ws: &Workspace) -> Result<String, Error> {
    let out = git(&ws.dir, &["ls-remote", "--symref", ws.remote.arg(), "HEAD"])?;
    out.lines()
        .find_map(|l| {
            let rest = l.strip_prefix("ref: refs/heads/")?;
            Some(rest.split_once('\t').map_or(rest, |(b, _)| b).to_string())
        })
        .ok_or_else(|| {
            ChangeError::BranchMissing {
                branch: "HEAD".into(),
                remote: ws.remote.to_string(),
            }
            .into()
        })
}

/// Downloads the commits of `branches` from the remote into the repository.
pub fn fetch(ws: &Workspace, branches: &[&str]) -> Result<(), Error> {
    if branches.is_empty() {
        return Ok(());
    }
    let mut args = vec![
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        ws.remote.arg(),
    ];
    let refs: Vec<String> = branches.iter().map(|b| format!("refs/heads/{b}")).collect();
    args.extend(refs.iter().map(String::as_str));
    git(&ws.dir, &args).map(|_| ())
}

/// Pushes `branch` to the same name on the remote. Never forced: the remote only accepts it as
/// a new branch or a fast-forward.
pub fn push(ws: &Workspace, branch: &str) -> Result<(), Error> {
    let spec = format!("refs/heads/{branch}:refs/heads/{branch}");
    git(
        &ws.dir,
        &["push", "--quiet", "--porcelain", ws.remote.arg(), &spec],
    )
    .map(|_| ())
}

/// An open gix repository for committing (opened fresh, so it sees what `git fetch` brought).
pub struct CommitRepo {
    pub repo: gix::Repository,
    pub dir: PathBuf,
}

/// gix's error reading or writing `what` (a commit, a path) in the clone at `dir`.
fn gix_err(
    dir: &Path,
    what: Option<String>,
    e: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    crate::git::Error::Read {
        repo: dir.display().to_string(),
        what,
        source: Box::new(e),
    }
    .into()
}

/// One new commit on a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommit {
    /// Repository-relative paths and their whole new content.
    pub files: Vec<(String, String)>,
    pub message: String,
    pub parent: ObjectId,
    pub branch: String,
    /// Where the local branch points now (`None`: it must not exist yet).
    pub branch_was: Option<ObjectId>,
}

impl CommitRepo {
    pub fn open(dir: &Path) -> Result<CommitRepo, Error> {
        let repo = gix::open(dir).map_err(|e| gix_err(dir, None, e))?;
        Ok(CommitRepo {
            repo,
            dir: dir.to_path_buf(),
        })
    }

    /// Where a local branch points.
    pub fn local_branch(&self, branch: &str) -> Option<ObjectId> {
        let r = self
            .repo
            .try_find_reference(format!("refs/heads/{branch}").as_str())
            .ok()??;
        r.into_fully_peeled_id().ok().map(|id| id.detach())
    }

    pub fn has_commit(&self, id: ObjectId) -> bool {
        self.repo
            .find_object(id)
            .is_ok_and(|o| o.kind == gix::object::Kind::Commit)
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: ObjectId, descendant: ObjectId) -> bool {
        if ancestor == descendant {
            return true;
        }
        matches!(self.repo.merge_base(ancestor, descendant), Ok(Some(b)) if b.detach() == ancestor)
    }

    /// The content of a file at a commit (`None`: no such file).
    pub fn read_file(&self, commit: ObjectId, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let tree = self
            .repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(|e| gix_err(&self.dir, Some(format!("commit {commit}")), e))?;
        let entry = tree
            .lookup_entry_by_path(path)
            .map_err(|e| gix_err(&self.dir, Some(format!("{path} at {commit}")), e))?;
        match entry {
            Some(e) if e.mode().is_blob() => {
                let blob = e
                    .object()
                    .map_err(|e| gix_err(&self.dir, Some(format!("{path} at {commit}")), e))?;
                Ok(Some(blob.data.clone()))
            }
            _ => Ok(None),
        }
    }

    /// `user.email`'s local part (else `$USER`), made safe for a branch name.
    pub fn user_slug(&self) -> String {
        let email = self
            .repo
            .author()
            .and_then(Result::ok)
            .map(|s| s.email.to_str_lossy().into_owned())
            .unwrap_or_default();
        let local = email.split('@').next().unwrap_or_default().to_string();
        let name = if local.trim().is_empty() {
            std::env::var("USER").unwrap_or_default()
        } else {
            local
        };
        let slug = slug(&name);
        if slug.is_empty() { "user".into() } else { slug }
    }

    /// Checks that git config names an author and a committer (as `git commit` needs).
    pub fn identity(&self) -> Result<(), Error> {
        let missing = || crate::git::Error::NoGitIdentity {
            repo: self.dir.display().to_string(),
        };
        match (self.repo.author(), self.repo.committer()) {
            (Some(Ok(_)), Some(Ok(_))) => Ok(()),
            (Some(Err(e)), _) | (_, Some(Err(e))) => Err(gix_err(
                &self.dir,
                Some("reading the git identity".into()),
                e,
            )),
            _ => Err(missing().into()),
        }
    }

    /// Writes the files and the commit, then creates or moves the local branch (compare-and-swap:
    /// fails if the branch moved meanwhile). The work tree, index and `HEAD` are not touched.
    pub fn commit(&self, c: &NewCommit) -> Result<ObjectId, Error> {
        let author = self
            .repo
            .author()
            .ok_or_else(|| crate::git::Error::NoGitIdentity {
                repo: self.dir.display().to_string(),
            })?
            .map_err(|e| gix_err(&self.dir, Some("reading the author identity".into()), e))?;
        let committer = self
            .repo
            .committer()
            .ok_or_else(|| crate::git::Error::NoGitIdentity {
                repo: self.dir.display().to_string(),
            })?
            .map_err(|e| gix_err(&self.dir, Some("reading the committer identity".into()), e))?;
        let parent = self
            .repo
            .find_commit(c.parent)
            .map_err(|e| gix_err(&self.dir, Some(format!("commit {}", c.parent)), e))?;
        let tree_id = parent
            .tree_id()
            .map_err(|e| gix_err(&self.dir, Some(format!("commit {}", c.parent)), e))?;
        let mut editor = self
            .repo
            .edit_tree(tree_id)
            .map_err(|e| gix_err(&self.dir, None, e))?;
        for (path, content) in &c.files {
            let blob = self
                .repo
                .write_blob(content.as_bytes())
                .map_err(|e| gix_err(&self.dir, Some(format!("writing {path}")), e))?;
            // Keep an executable bit the file had.
            let kind = match editor.get(path.as_str()).map(|e| e.mode().kind()) {
                Some(gix::object::tree::EntryKind::BlobExecutable) => {
                    gix::object::tree::EntryKind::BlobExecutable
                }
                _ => gix::object::tree::EntryKind::Blob,
            };
            editor
                .upsert(path.as_str(), kind, blob.detach())
                .map_err(|e| gix_err(&self.dir, Some(path.to_string()), e))?;
        }
        let tree = editor.write().map_err(|e| gix_err(&self.dir, None, e))?;
        let commit = self
            .repo
            .new_commit_as(committer, author, &c.message, tree.detach(), [c.parent])
            .map_err(|e| gix_err(&self.dir, None, e))?;
        let id = commit.id;
        let constraint = match c.branch_was {
            Some(old) => PreviousValue::MustExistAndMatch(old.into()),
            None => PreviousValue::MustNotExist,
        };
        self.repo
            .reference(
                format!("refs/heads/{}", c.branch).as_str(),
                id,
                constraint,
                format!(
                    "kubectl-gitops: {}",
                    c.message.lines().next().unwrap_or_default()
                ),
            )
            .map_err(|e| gix_err(&self.dir, Some(format!("creating branch {}", c.branch)), e))?;
        Ok(id)
    }
}

/// Lowercase letters, digits, `.`, `_` and `-` only (others become `-`), no leading, trailing
/// or doubled `-`.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_matches(|c| c == '-' || c == '.').to_string()
}

/// `gitops/<user>/<kind>-<name>-<yyyymmdd-hhmm>`.
pub fn default_branch(user: &str, kind: &str, name: &str, now: &jiff::Zoned) -> String {
    format!(
        "gitops/{user}/{}-{}-{}",
        slug(kind),
        slug(name),
        now.strftime("%Y%m%d-%H%M")
    )
}

/// Whether `branch` is a valid branch name (`git check-ref-format --branch`).
pub fn valid_branch_name(branch: &str) -> bool {
    !branch.is_empty()
        && !branch.starts_with('-')
        && !branch.starts_with("refs/")
        && branch != "HEAD"
        && gix::refs::FullName::try_from(format!("refs/heads/{branch}")).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names() {
        let now: jiff::Zoned = "2026-11-21T14:03:00+00:00[UTC]".parse().unwrap();
        assert_eq!(
            default_branch("ana", "Deployment", "web", &now),
            "gitops/ana/deployment-web-20261121-1403"
        );
        assert_eq!(slug("Ana María.Lopez"), "ana-mar-a.lopez");
        assert_eq!(slug("--x__y--"), "x__y");
        assert!(valid_branch_name("gitops/ana/web"));
        for bad in [
            "",
            "a..b",
            "-x",
            "a b",
            "x.lock",
            "refs/heads/x",
            "a~b",
            "HEAD",
        ] {
            assert!(!valid_branch_name(bad), "{bad}");
        }
    }
}
