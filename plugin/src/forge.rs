//! Opening pull requests (merge requests) on GitHub, GitHub Enterprise, GitLab, Gitea and
//! Forgejo through their REST APIs.
//!
//! ```no_run
//! # fn demo() -> Result<(), kubectl_gitops::Error> {
//! use kubectl_gitops::forge::{self, Environment, Forge, PullRequestOptions};
//! let forge = Forge::from_remote("git@github.com:acme/platform.git", None, None)?;
//! let creds = forge::resolve_token(&forge, &Environment::from_process())?;
//! let pr = forge::open_pull_request(&forge, &creds, &PullRequestOptions {
//!     title: "Scale deployment/web in shop to 5 replicas".into(),
//!     body: "Opened by kubectl gitops scale.".into(),
//!     head: "gitops/scale-web".into(),
//!     base: "main".into(),
//!     draft: false,
//!     reviewers: vec!["octocat".into()],
//! })?;
//! println!("{} {}", pr.url, if pr.reused { "(updated)" } else { "(new)" });
//! # Ok(()) }
//! ```

mod api;
mod error;
mod gitea;
mod github;
mod gitlab;
mod remote;
mod token;

pub use error::Error;
pub use remote::{Forge, ForgeKind, RemoteRepo, detect, parse_remote_url};
pub use token::{Credentials, Environment, Token, TokenSource, resolve_token};

use api::{enc, enc_path};

/// What to open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PullRequestOptions {
    pub title: String,
    pub body: String,
    /// The branch with the change (already pushed to the forge's repository).
    pub head: String,
    /// The branch to merge into.
    pub base: String,
    /// GitHub: a draft pull request; GitLab: `Draft: ` title prefix; Gitea/Forgejo: `WIP: `.
    pub draft: bool,
    /// Logins to ask for a review (GitHub teams as `org/team`).
    pub reviewers: Vec<String>,
}

/// An opened (or already open) pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// The number shown in the UI (GitLab: the merge request's `iid`).
    pub number: u64,
    /// The web page of the pull request.
    pub url: String,
    /// True when an open pull request from the same head branch existed and is reused.
    pub reused: bool,
}

/// Opens a pull request from `opts.head` into `opts.base`, or returns the one already open from
/// `opts.head`. Reviewers are requested on a new pull request only.
pub fn open_pull_request(
    forge: &Forge,
    creds: &Credentials,
    opts: &PullRequestOptions,
) -> Result<PullRequest, Error> {
    for (what, value) in [
        ("title", &opts.title),
        ("head", &opts.head),
        ("base", &opts.base),
    ] {
        if value.trim().is_empty() {
            return Err(Error::InvalidPullRequest {
                host: forge.host.clone(),
                repo: forge.full_name(),
                message: format!("it needs a {what}"),
            });
        }
    }
    if opts.head == opts.base {
        return Err(Error::InvalidPullRequest {
            host: forge.host.clone(),
            repo: forge.full_name(),
            message: format!(
                "the head and base branch are both {}: commit the change on a branch of its own",
                opts.head
            ),
        });
    }
    match forge.kind {
        ForgeKind::GitHub => github::open(forge, creds, opts),
        ForgeKind::GitLab => gitlab::open(forge, creds, opts),
        ForgeKind::Gitea | ForgeKind::Forgejo => gitea::open(forge, creds, opts),
    }
}

/// The web page where a pull request from `head` into `base` can be opened by hand
/// (`--no-pr`).
pub fn compare_url(forge: &Forge, base: &str, head: &str) -> String {
    let repo = format!("{}/{}", enc_path(&forge.owner), enc(&forge.repo));
    match forge.kind {
        ForgeKind::GitHub | ForgeKind::Gitea | ForgeKind::Forgejo => format!(
            "{}/{repo}/compare/{}...{}",
            forge.web_url,
            enc_path(base),
            enc_path(head)
        ),
        ForgeKind::GitLab => format!(
            "{}/{repo}/-/merge_requests/new?merge_request[source_branch]={}&merge_request[target_branch]={}",
            forge.web_url,
            enc(head),
            enc(base)
        ),
    }
}
