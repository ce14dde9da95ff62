//! Finding the repository behind a source URL: a clone given with `--repo`, the clone the command
//! runs in (matched by its remotes), or a bare clone in the cache directory
//! (`$XDG_CACHE_HOME/kubectl-gitops/`, else `~/.cache/kubectl-gitops/`), made with gix and fetched
//! when the applied commit is missing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::AtomicBool;

use gix::ObjectId;
use gix::bstr::ByteSlice;
use serde::Serialize;

use super::Error;
use super::Repo;
use super::url::RepoKey;

/// Never set: network operations run to completion or fail.
static NOT_INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Where a repository was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RepoOrigin {
    /// Given with `--repo`.
    Explicit,
    /// The clone the command runs in.
    WorkingDirectory,
    /// The clone cache.
    Cache,
}

/// A repository ready to read, and the applied commit in it.
pub struct Found {
    pub repo: Rc<Repo>,
    pub commit: Option<ObjectId>,
}

struct Local {
    repo: Rc<Repo>,
    /// The clone as gix opened it, to match source URLs against its remotes and rules.
    git: gix::Repository,
}

/// Opens repositories for source URLs, each at most once per run; clones and fetches at most once
/// per repository per run.
pub struct RepoFinder {
    locals: Vec<Local>,
    explicit_count: usize,
    cache_dir: PathBuf,
    cached: HashMap<RepoKey, Result<(Rc<Repo>, bool), String>>,
    /// The local clones each source URL names, as [`clone_is`] finds them (it reads every
    /// remote of every clone: a command locating 10,000 objects asks once per URL).
    local_matches: HashMap<String, Vec<Rc<Repo>>>,
    /// Print "cloning …" / "fetching …" to stderr.
    pub announce: bool,
}

/// The default cache directory.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("kubectl-gitops")
}

/// The repository each remote of a clone names, by the URL as configured and as git uses it
/// (after the `url.<base>.insteadOf` rules): `(remote name, keys)`.
fn remote_keys_by_name(repo: &gix::Repository) -> Vec<(String, Vec<RepoKey>)> {
    let mut out = Vec::new();
    for name in repo.remote_names() {
        let mut keys = Vec::new();
        let configured = repo
            .try_find_remote_without_url_rewrite(name.as_bstr())
            .and_then(Result::ok);
        let rewritten = repo.try_find_remote(name.as_bstr()).and_then(Result::ok);
        for remote in configured.iter().chain(rewritten.iter()) {
            if let Some(url) = remote.url(gix::remote::Direction::Fetch)
                && let Some(key) = RepoKey::of_url(&url.to_bstring().to_string())
                && !keys.contains(&key)
            {
                keys.push(key);
            }
        }
        out.push((name.to_string(), keys));
    }
    out
}

/// A source URL as given and as git in this clone would use it (its `insteadOf` rules: a mirror).
fn source_keys(repo: &gix::Repository, url: &str) -> Vec<RepoKey> {
    let mut keys: Vec<RepoKey> = RepoKey::of_url(url).into_iter().collect();
    if let Ok(remote) = repo.remote_at(url)
        && let Some(rewritten) = remote.url(gix::remote::Direction::Fetch)
        && let Some(key) = RepoKey::of_url(&rewritten.to_bstring().to_string())
        && !keys.contains(&key)
    {
        keys.push(key);
    }
    keys
}

/// The remotes of the clone at `dir` that name the same repository as `url` (as configured or
/// through the clone's `insteadOf` rules, either way), `origin` first. The one answer to "is this
/// clone the source's repository", for reading (`status`, `trace`, `blame`) and for changes.
pub fn remotes_naming(dir: &Path, url: &str) -> Vec<String> {
    let Ok(repo) = gix::discover(dir) else {
        return Vec::new();
    };
    let wanted = source_keys(&repo, url);
    let mut names: Vec<String> = remote_keys_by_name(&repo)
        .into_iter()
        .filter(|(_, keys)| keys.iter().any(|k| wanted.contains(k)))
        .map(|(name, _)| name)
        .collect();
    names.sort_by_key(|n| n != "origin");
    names
}

/// Whether a clone is the repository `url` names: one of its remotes does, or the URL names the
/// clone itself (`file:///srv/fleet`).
fn clone_is(repo: &gix::Repository, url: &str) -> bool {
    let wanted = source_keys(repo, url);
    let dir = repo.workdir().unwrap_or(repo.git_dir());
    remote_keys_by_name(repo)
        .iter()
        .flat_map(|(_, keys)| keys)
        .chain(RepoKey::of_url(&dir.display().to_string()).as_ref())
        .chain(RepoKey::of_url(&repo.git_dir().display().to_string()).as_ref())
        .any(|k| wanted.contains(k))
}

impl RepoFinder {
    /// `explicit`: the `--repo` paths; `cwd`: where to look for the clone the command runs in.
    pub fn new(
        explicit: &[PathBuf],
        cwd: Option<&Path>,
        cache_dir: PathBuf,
    ) -> Result<RepoFinder, Error> {
        let mut locals = Vec::new();
        for path in explicit {
            let repo = gix::discover(path).map_err(|e| Error::NotARepo {
                repo: path.display().to_string(),
                source: Some(e.into()),
            })?;
            let dir = repo.workdir().unwrap_or(repo.git_dir()).to_path_buf();
            let opened = Repo::open(&dir, RepoOrigin::Explicit)?;
            locals.push(Local {
                repo: Rc::new(opened),
                git: repo,
            });
        }
        let explicit_count = locals.len();
        if let Some(cwd) = cwd
            && let Ok(repo) = gix::discover(cwd)
        {
            let dir = repo.workdir().unwrap_or(repo.git_dir()).to_path_buf();
            if let Ok(opened) = Repo::open(&dir, RepoOrigin::WorkingDirectory) {
                locals.push(Local {
                    repo: Rc::new(opened),
                    git: repo,
                });
            }
        }
        Ok(RepoFinder {
            locals,
            explicit_count,
            cache_dir,
            cached: HashMap::new(),
            local_matches: HashMap::new(),
            announce: true,
        })
    }

    /// The repository for `url` containing `commit` (full or abbreviated hex) if one is given.
    /// `owner` names who applied the commit, for error messages.
    pub fn open(&mut self, url: &str, commit: Option<&str>, owner: &str) -> Result<Found, Error> {
        let Some(key) = RepoKey::of_url(url) else {
            return Err(Error::RepoUnreachable {
                url: url.to_string(),
                what: Some("this is not a Git URL".into()),
                source: None,
            });
        };
        let locals = &self.locals;
        let mut matching: Vec<Rc<Repo>> = self
            .local_matches
            .entry(url.to_string())
            .or_insert_with(|| {
                locals
                    .iter()
                    .filter(|l| clone_is(&l.git, url))
                    .map(|l| l.repo.clone())
                    .collect()
            })
            .clone();
        if matching.is_empty() && self.explicit_count == 1 {
            // One --repo and no remote matches: the user said which clone to use.
            matching.push(self.locals[0].repo.clone());
        }
        for repo in &matching {
            match commit {
                None => {
                    return Ok(Found {
                        repo: repo.clone(),
                        commit: None,
                    });
                }
                Some(hex) => {
                    if let Some(id) = repo.commit_id(hex)? {
                        return Ok(Found {
                            repo: repo.clone(),
                            commit: Some(id),
                        });
                    }
                }
            }
        }
        // The local clones lack the commit (or there is none): use the cache clone.
        let (repo, fetched) = self.cache_repo(&key, url).map_err(|message| {
            let mut message = message;
            if let Some(local) = matching.first() {
                message.push_str(&format!(
                    " (the clone at {} does not have commit {}: run `git fetch` there)",
                    local.dir.display(),
                    commit.unwrap_or("?")
                ));
            }
            // The cache clone's error is kept as text: it is remembered for the run.
            Error::RepoUnreachable {
                url: url.to_string(),
                what: None,
                source: Some(message.into()),
            }
        })?;
        let Some(hex) = commit else {
            return Ok(Found { repo, commit: None });
        };
        if let Some(id) = repo.commit_id(hex)? {
            return Ok(Found {
                repo,
                commit: Some(id),
            });
        }
        if !fetched {
            self.fetch(&key, url)?;
            if let Some(Ok((repo, _))) = self.cached.get(&key) {
                let repo = repo.clone();
                if let Some(id) = repo.commit_id(hex)? {
                    return Ok(Found {
                        repo,
                        commit: Some(id),
                    });
                }
            }
        }
        Err(Error::CommitMissing {
            commit: hex.to_string(),
            owner: owner.to_string(),
            url: url.to_string(),
        })
    }

    /// A repository opened earlier in this run, by its directory.
    pub fn by_dir(&self, dir: &Path) -> Option<Rc<Repo>> {
        self.locals
            .iter()
            .map(|l| &l.repo)
            .chain(
                self.cached
                    .values()
                    .filter_map(|r| r.as_ref().ok().map(|(repo, _)| repo)),
            )
            .find(|r| r.dir == dir)
            .cloned()
    }

    /// Opens (or clones) the cache clone; `bool`: fetched during this run.
    fn cache_repo(&mut self, key: &RepoKey, url: &str) -> Result<(Rc<Repo>, bool), String> {
        if let Some(entry) = self.cached.get(key) {
            return entry.clone();
        }
        let result = self.open_or_clone(key, url);
        self.cached.insert(key.clone(), result.clone());
        result
    }

    fn open_or_clone(&self, key: &RepoKey, url: &str) -> Result<(Rc<Repo>, bool), String> {
        let dir = self.cache_dir.join(key.cache_dir_name());
        if dir.join("HEAD").exists() {
            let repo = Repo::open(&dir, RepoOrigin::Cache).map_err(|e| crate::error::chain(&e))?;
            return Ok((Rc::new(repo), false));
        }
        std::fs::create_dir_all(&self.cache_dir).map_err(|e| {
            format!(
                "cannot create the cache directory {}: {e}",
                self.cache_dir.display()
            )
        })?;
        if self.announce {
            eprintln!("kubectl-gitops: cloning {url} into {}", dir.display());
        }
        let tmp = self.cache_dir.join(format!(
            ".{}.tmp-{}",
            key.cache_dir_name(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        let cloned = (|| -> Result<(), String> {
            let mut prepare =
                gix::prepare_clone_bare(url, &tmp).map_err(|e| super::error_text(&e))?;
            let (_repo, _outcome) = prepare
                .fetch_only(gix::progress::Discard, &NOT_INTERRUPTED)
                .map_err(|e| super::error_text(&e))?;
            Ok(())
        })();
        if let Err(e) = cloned {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            let _ = std::fs::remove_dir_all(&tmp);
            // Another run cloned it at the same time: use theirs.
            if !dir.join("HEAD").exists() {
                return Err(format!("cannot move the clone into {}: {e}", dir.display()));
            }
        }
        let repo = Repo::open(&dir, RepoOrigin::Cache).map_err(|e| crate::error::chain(&e))?;
        Ok((Rc::new(repo), true))
    }

    fn fetch(&mut self, key: &RepoKey, url: &str) -> Result<(), Error> {
        let dir = self.cache_dir.join(key.cache_dir_name());
        if self.announce {
            eprintln!("kubectl-gitops: fetching {url} into {}", dir.display());
        }
        let unreachable = |what: Option<&str>, e: crate::error::BoxError| Error::RepoUnreachable {
            url: url.to_string(),
            what: what.map(str::to_string),
            source: Some(e),
        };
        let repo = gix::open(&dir).map_err(|e| unreachable(None, e.into()))?;
        let remote = repo
            .find_remote("origin")
            .map_err(|e| unreachable(Some("the cache clone has no origin remote"), e.into()))?;
        // Every branch and tag, whatever the clone recorded: the applied commit may be on any.
        let mut remote = remote;
        remote
            .replace_refspecs(
                ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
                gix::remote::Direction::Fetch,
            )
            .map_err(|e| unreachable(None, e.into()))?;
        remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(|e| unreachable(None, e.into()))?
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| unreachable(None, e.into()))?
            .receive(gix::progress::Discard, &NOT_INTERRUPTED)
            .map_err(|e| unreachable(None, e.into()))?;
        // Reopen so the new pack is seen.
        let repo = Repo::open(&dir, RepoOrigin::Cache)?;
        self.cached.insert(key.clone(), Ok((Rc::new(repo), true)));
        Ok(())
    }
}
