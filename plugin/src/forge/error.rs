//! Errors of opening pull requests: the forge, the repository, the token, the HTTP exchange.

/// What can go wrong talking to a forge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The git remote URL could not be understood.
    #[error("cannot read the git remote URL {url}: {reason}")]
    RemoteUrl { url: String, reason: String },
    /// The forge serving a host is not known.
    #[error(
        "cannot tell which forge serves {host}: pass --forge github|gitlab|gitea|forgejo (and --forge-url with the API URL if it is not at the usual place)"
    )]
    UnknownForge { host: String },
    /// A `--forge` value that is not a known forge.
    #[error("unknown forge {name:?}: use github, gitlab, gitea or forgejo")]
    UnknownForgeName { name: String },
    /// A forge API URL given by the user is not usable.
    #[error("invalid forge API URL {url}: {reason}")]
    ForgeUrl { url: String, reason: String },
    /// A token would be sent in clear text.
    #[error(
        "refusing to send a token to {url} over plain http; use an https URL (plain http is only allowed for localhost)"
    )]
    InsecureForgeUrl { url: String },
    /// No token was found in the environment or through git's credential helpers.
    #[error(
        "no token for {host}: set {vars}, or configure a git credential helper for https://{host}"
    )]
    NoToken { host: String, vars: String },
    /// Running `git credential fill` failed.
    #[error("`git credential fill` for {host} failed: {step}")]
    GitCredential {
        host: String,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The forge rejected the token (401/403).
    #[error("token rejected by {host} for {repo}: {hint}")]
    TokenRejected {
        host: String,
        repo: String,
        hint: String,
    },
    /// The repository does not exist or the token cannot see it.
    #[error(
        "repository {repo} not found on {host} (or the token cannot see it): check the git remote URL and the token's access"
    )]
    RepoNotFound { host: String, repo: String },
    /// A branch of the pull request does not exist on the forge.
    #[error(
        "branch {branch} not found in {repo} on {host}: push it first (git push -u origin {branch})"
    )]
    BranchNotFound {
        host: String,
        repo: String,
        branch: String,
    },
    /// The repository is archived (read-only).
    #[error(
        "repository {repo} on {host} is archived (read-only): unarchive it, or change the manifest where it lives now"
    )]
    RepoArchived { host: String, repo: String },
    /// The forge refused to create the pull request for another documented reason.
    #[error("{host} refused the pull request for {repo} (HTTP {status}): {message}")]
    ForgeRejected {
        host: String,
        repo: String,
        status: u16,
        message: String,
    },
    /// The pull request options are not usable.
    #[error("cannot open a pull request on {host} for {repo}: {message}")]
    InvalidPullRequest {
        host: String,
        repo: String,
        message: String,
    },
    /// A reviewer name is not known to the forge.
    #[error("reviewer {user} is not a user on {host}: check the name passed to --reviewer")]
    ReviewerNotFound { host: String, user: String },
    /// The forge could not be reached at all (the hint says what to check).
    #[error("cannot reach {url}")]
    Network {
        url: String,
        #[source]
        source: ureq::Error,
    },
    /// The forge's answer could not be read.
    #[error("cannot reach {url}: reading the answer")]
    NetworkRead {
        url: String,
        #[source]
        source: ureq::Error,
    },
    /// The forge answered with something that is not what its API documents.
    #[error("unexpected answer from {url} (HTTP {status}): {message}")]
    ForgeResponse {
        url: String,
        status: u16,
        message: String,
    },
}

impl Error {
    /// What to do, said after the cause (see [`crate::error::report`]).
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Network { .. } | Error::NetworkRead { .. } => {
                Some("check the network, a proxy (HTTPS_PROXY) or --forge-url")
            }
            _ => None,
        }
    }
}
