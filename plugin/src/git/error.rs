//! Errors of reading Git repositories (clones, the cache of clones, commits, trees, blame) and of
//! running the user's git.

use crate::error::BoxError;

/// What can go wrong reading a repository or running git.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Git repository behind a source could not be cloned or fetched (the hint says what
    /// to do).
    #[error("cannot reach the Git repository {url}{}", .what.as_ref().map(|w| format!(": {w}")).unwrap_or_default())]
    RepoUnreachable {
        url: String,
        what: Option<String>,
        #[source]
        source: Option<BoxError>,
    },
    /// The applied commit is not in the repository even after fetching.
    #[error(
        "commit {commit} applied by {owner} is not in {url} (fetched just now): it was probably force-pushed away or never pushed; reconcile {owner} and try again"
    )]
    CommitMissing {
        commit: String,
        owner: String,
        url: String,
    },
    /// Reading a Git repository failed: gix's error is the cause (`what`: the commit, path…).
    #[error("reading the Git repository at {repo}{}", .what.as_ref().map(|w| format!(": {w}")).unwrap_or_default())]
    Read {
        repo: String,
        what: Option<String>,
        #[source]
        source: BoxError,
    },
    /// A --repo directory that is not a clone.
    #[error("reading the Git repository at {repo}: not a Git repository")]
    NotARepo {
        repo: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The repository does not hold what it should (a missing object, a malformed tree).
    #[error("reading the Git repository at {repo}: {message}")]
    Invalid { repo: String, message: String },
    /// The user's git could not be run.
    #[error("`{command}` in {dir} failed: cannot run git")]
    GitSpawn {
        command: String,
        dir: String,
        #[source]
        source: std::io::Error,
    },
    /// The user's git failed (what it printed, or its exit status).
    #[error("`{command}` in {dir} failed: {message}")]
    GitCommand {
        command: String,
        dir: String,
        message: String,
    },
    /// No author identity in git config.
    #[error(
        "git does not know who you are in {repo}: run git config --global user.name \"Your Name\" and git config --global user.email you@example.com"
    )]
    NoGitIdentity { repo: String },
}

impl Error {
    /// What to do, said after the cause (see [`crate::error::report`]).
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::RepoUnreachable { .. } => {
                Some("run kubectl gitops inside a clone of it, or pass --repo PATH")
            }
            Error::NotARepo { .. } => Some("--repo takes the path of a clone"),
            _ => None,
        }
    }
}
