//! Reading Git repositories with gix: files at a commit, commit details, the last commit of many
//! paths in one history walk ([`walk`]), line blame, and finding or cloning the repository behind
//! a source URL ([`cache`]).

pub mod cache;
mod error;
pub mod revision;
pub mod url;
pub mod walk;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::{CommitRef, Find, TreeRefIter};
use serde::Serialize;

pub use cache::{RepoFinder, RepoOrigin, remotes_naming};
pub use error::Error;
pub use revision::Revision;
pub use url::RepoKey;
pub use walk::Stats as WalkStats;

/// An open repository and where it came from.
pub struct Repo {
    pub repo: gix::Repository,
    /// The directory (work tree, or the git dir of a bare clone).
    pub dir: PathBuf,
    pub origin: RepoOrigin,
    /// Trees [`Snapshot::lookup`] read, by id: resolving thousands of paths at a few commits
    /// reads each directory once, not once per path below it. Bounded: emptied when full.
    trees: RefCell<IdMap<Rc<[u8]>>>,
}

/// Maps keyed by object id, hashed by the id's own bits.
pub(crate) type IdMap<V> = gix::hashtable::HashMap<ObjectId, V>;

/// The most trees [`Repo::trees`] keeps.
const TREES_KEPT: usize = 4_096;

/// Who made a commit and why, for tables and blame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitInfo {
    /// Full hash.
    pub id: String,
    pub author: String,
    pub email: String,
    /// Author date.
    pub date: jiff::Timestamp,
    /// First line of the message.
    pub subject: String,
}

impl CommitInfo {
    /// The first 7 hex digits.
    pub fn short(&self) -> &str {
        revision::short(&self.id)
    }
}

/// What a tree entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    /// Symlinks and submodules: not followed.
    Other,
}

/// An error and its causes on one line (`a: b: c`), each cause once: [`crate::error::chain`].
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    crate::error::chain(e)
}

/// Normalizes a repository-relative path: no leading `./` or `/`, `..` resolved, `.` dropped.
/// `None` when `..` climbs out of the repository.
pub fn normalize_path(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Joins a repository-relative directory and a relative path, then normalizes.
pub fn join_path(dir: &str, rel: &str) -> Option<String> {
    if rel.starts_with('/') {
        return normalize_path(rel);
    }
    normalize_path(&format!("{dir}/{rel}"))
}

impl Repo {
    /// Opens the repository at `dir` (a work tree or a git dir).
    pub fn open(dir: &Path, origin: RepoOrigin) -> Result<Repo, Error> {
        let mut repo = gix::open(dir).map_err(|e| Error::Read {
            repo: dir.display().to_string(),
            what: None,
            source: e.into(),
        })?;
        // Tree diffs read the same delta bases again and again: without a delta-base cache
        // every object of a delta chain is inflated anew. 32 MiB keeps a 100,000-commit walk
        // well under 256 MiB.
        repo.objects.set_pack_cache(|| {
            Box::new(gix::odb::pack::cache::lru::MemoryCappedHashmap::new(
                32 << 20,
            ))
        });
        repo.object_cache_size(0);
        Ok(Repo {
            repo,
            dir: dir.to_path_buf(),
            origin,
            trees: RefCell::default(),
        })
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Invalid {
            repo: self.dir.display().to_string(),
            message: message.into(),
        }
    }

    /// A gix error reading `what` (a commit, a path) as the cause.
    fn read_err(
        &self,
        what: Option<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Read {
            repo: self.dir.display().to_string(),
            what,
            source: Box::new(e),
        }
    }

    /// Parses a full or abbreviated hex commit id.
    pub fn commit_id(&self, hex: &str) -> Result<Option<ObjectId>, Error> {
        if let Ok(id) = ObjectId::from_hex(hex.as_bytes()) {
            return Ok(self.has_commit(id).then_some(id));
        }
        match self.repo.rev_parse_single(hex) {
            Ok(id) => {
                let id = id.detach();
                Ok(self.has_commit(id).then_some(id))
            }
            Err(_) => Ok(None),
        }
    }

    /// Whether the commit is in the object database.
    pub fn has_commit(&self, id: ObjectId) -> bool {
        let mut buf = Vec::new();
        matches!(self.repo.objects.try_find(&id, &mut buf), Ok(Some(d)) if d.kind == gix::objs::Kind::Commit)
    }

    /// The commit a branch or tag name points at (`main`, `v1.2.0`, `origin/main`).
    pub fn resolve_reference(&self, name: &str) -> Option<ObjectId> {
        let short = name
            .strip_prefix("refs/heads/")
            .or_else(|| name.strip_prefix("refs/tags/"))
            .unwrap_or(name);
        let candidates = [
            name.to_string(),
            format!("refs/remotes/origin/{short}"),
            format!("refs/heads/{short}"),
            format!("refs/tags/{short}"),
        ];
        candidates.iter().find_map(|c| {
            let id = self.repo.rev_parse_single(c.as_str()).ok()?;
            let commit = id.object().ok()?.peel_to_commit().ok()?;
            Some(commit.id)
        })
    }

    /// Who, when and why of a commit.
    pub fn commit_info(&self, id: ObjectId) -> Result<CommitInfo, Error> {
        let mut buf = Vec::new();
        let data = self
            .repo
            .objects
            .try_find(&id, &mut buf)
            .map_err(|e| self.read_err(None, e))?
            .ok_or_else(|| self.err(format!("commit {id} not found")))?;
        let c = CommitRef::from_bytes(data.data, self.repo.object_hash())
            .map_err(|e| self.read_err(Some(format!("commit {id}")), e))?;
        let author = c
            .author()
            .map_err(|e| self.read_err(Some(format!("commit {id}")), e))?;
        let seconds = author
            .time()
            .map(|t| t.seconds)
            .unwrap_or_else(|_| author.seconds());
        let subject = c
            .message
            .lines()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.to_str_lossy().trim().to_string())
            .unwrap_or_default();
        Ok(CommitInfo {
            id: id.to_string(),
            author: author.name.to_str_lossy().trim().to_string(),
            email: author.email.to_str_lossy().trim().to_string(),
            date: jiff::Timestamp::from_second(seconds).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
            subject,
        })
    }

    /// The files of the repository at a commit.
    pub fn snapshot(&self, commit: ObjectId) -> Result<Snapshot<'_>, Error> {
        let mut buf = Vec::new();
        let data = self
            .repo
            .objects
            .try_find(&commit, &mut buf)
            .map_err(|e| self.read_err(None, e))?
            .ok_or_else(|| self.err(format!("commit {commit} not found")))?;
        let c = CommitRef::from_bytes(data.data, self.repo.object_hash())
            .map_err(|e| self.read_err(Some(format!("commit {commit}")), e))?;
        Ok(Snapshot {
            repo: self,
            commit,
            tree: c.tree(),
        })
    }

    /// For each path, the last commit at or before `start` that touched it (see [`walk`]).
    pub fn last_commits<P: AsRef<[u8]>>(
        &self,
        start: ObjectId,
        paths: &[P],
    ) -> Result<(Vec<Option<ObjectId>>, WalkStats), Error> {
        walk::last_commits(&self.repo, start, paths).map_err(|e| self.read_err(None, e))
    }

    /// The commit that last changed each line (0-based) of `path` at `commit`, following renames
    /// as `git blame` does.
    pub fn blame(&self, commit: ObjectId, path: &str) -> Result<Vec<ObjectId>, Error> {
        let options = gix::repository::blame_file::Options {
            rewrites: Some(gix::diff::Rewrites::default()),
            ..Default::default()
        };
        let outcome = self
            .repo
            .blame_file(path.as_bytes().as_bstr(), commit, options)
            .map_err(|e| self.read_err(Some(format!("blame {path} at {commit}")), e))?;
        let lines = outcome.blob.lines().count();
        let mut out = vec![commit; lines];
        for e in &outcome.entries {
            let start = e.start_in_blamed_file as usize;
            for slot in out.iter_mut().skip(start).take(e.len.get() as usize) {
                *slot = e.commit_id;
            }
        }
        Ok(out)
    }
}

/// The files of a repository at one commit.
pub struct Snapshot<'r> {
    repo: &'r Repo,
    pub commit: ObjectId,
    tree: ObjectId,
}

impl Snapshot<'_> {
    fn read_object(&self, id: ObjectId, buf: &mut Vec<u8>) -> Result<gix::objs::Kind, Error> {
        let data = self
            .repo
            .repo
            .objects
            .try_find(&id, buf)
            .map_err(|e| self.repo.read_err(None, e))?
            .ok_or_else(|| self.repo.err(format!("object {id} not found")))?;
        Ok(data.kind)
    }

    /// The raw tree `id`, read once per repository (see [`Repo::trees`]).
    fn tree(&self, id: ObjectId, buf: &mut Vec<u8>) -> Result<Rc<[u8]>, Error> {
        if let Some(t) = self.repo.trees.borrow().get(&id) {
            return Ok(t.clone());
        }
        self.read_object(id, buf)?;
        let tree: Rc<[u8]> = Rc::from(buf.as_slice());
        let mut trees = self.repo.trees.borrow_mut();
        if trees.len() >= TREES_KEPT {
            trees.clear();
        }
        trees.insert(id, tree.clone());
        Ok(tree)
    }

    /// The entry at a repository-relative path (`""` is the root directory).
    pub fn lookup(&self, path: &str) -> Result<Option<(ObjectId, EntryKind)>, Error> {
        let Some(path) = normalize_path(path) else {
            return Ok(None);
        };
        let mut current = (self.tree, EntryKind::Dir);
        let mut buf = Vec::new();
        for component in path.split('/').filter(|c| !c.is_empty()) {
            if current.1 != EntryKind::Dir {
                return Ok(None);
            }
            let tree = self.tree(current.0, &mut buf)?;
            let mut found = None;
            for e in TreeRefIter::from_bytes(&tree, self.repo.repo.object_hash()) {
                let e = e.map_err(|e| self.repo.read_err(None, e))?;
                if e.filename.as_bytes() == component.as_bytes() {
                    let kind = if e.mode.is_tree() {
                        EntryKind::Dir
                    } else if e.mode.is_blob() {
                        EntryKind::File
                    } else {
                        EntryKind::Other
                    };
                    found = Some((e.oid.to_owned(), kind));
                    break;
                }
            }
            match found {
                Some(f) => current = f,
                None => return Ok(None),
            }
        }
        Ok(Some(current))
    }

    /// What is at `path`, if anything.
    pub fn kind(&self, path: &str) -> Result<Option<EntryKind>, Error> {
        Ok(self.lookup(path)?.map(|(_, k)| k))
    }

    /// The content of the file at `path`; `None` if there is no file there.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.lookup(path)? {
            Some((id, EntryKind::File)) => {
                let mut buf = Vec::new();
                self.read_object(id, &mut buf)?;
                Ok(Some(buf))
            }
            _ => Ok(None),
        }
    }

    /// The entries of the directory at `path` in Git order; `None` if it is not a directory.
    pub fn list(&self, path: &str) -> Result<Option<Vec<(String, EntryKind)>>, Error> {
        let Some((id, EntryKind::Dir)) = self.lookup(path)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        self.read_object(id, &mut buf)?;
        let mut out = Vec::new();
        for e in TreeRefIter::from_bytes(&buf, self.repo.repo.object_hash()) {
            let e = e.map_err(|e| self.repo.read_err(None, e))?;
            let kind = if e.mode.is_tree() {
                EntryKind::Dir
            } else if e.mode.is_blob() {
                EntryKind::File
            } else {
                EntryKind::Other
            };
            out.push((e.filename.to_str_lossy().into_owned(), kind));
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_normalization() {
        assert_eq!(normalize_path("./apps/web/").as_deref(), Some("apps/web"));
        assert_eq!(normalize_path("/apps//web").as_deref(), Some("apps/web"));
        assert_eq!(
            normalize_path("apps/../base/x.yaml").as_deref(),
            Some("base/x.yaml")
        );
        assert_eq!(normalize_path(".").as_deref(), Some(""));
        assert_eq!(normalize_path("../x"), None);
        assert_eq!(
            join_path("apps/prod", "../base/d.yaml").as_deref(),
            Some("apps/base/d.yaml")
        );
        assert_eq!(join_path("", "d.yaml").as_deref(), Some("d.yaml"));
        assert_eq!(join_path("apps", "/abs.yaml").as_deref(), Some("abs.yaml"));
    }
}
