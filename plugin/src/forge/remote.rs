//! Git remote URLs and which forge (and which API) serves them.

use std::fmt;
use std::str::FromStr;

use super::Error;

/// The kinds of forge a pull request can be opened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForgeKind {
    GitHub,
    GitLab,
    Gitea,
    Forgejo,
}

impl ForgeKind {
    /// The name used on the command line (`--forge github`).
    pub fn name(self) -> &'static str {
        match self {
            ForgeKind::GitHub => "github",
            ForgeKind::GitLab => "gitlab",
            ForgeKind::Gitea => "gitea",
            ForgeKind::Forgejo => "forgejo",
        }
    }

    /// The environment variables a token is read from, in order.
    pub fn token_vars(self) -> &'static [&'static str] {
        match self {
            ForgeKind::GitHub => &["GITHUB_TOKEN", "GH_TOKEN"],
            ForgeKind::GitLab => &["GITLAB_TOKEN"],
            ForgeKind::Gitea => &["GITEA_TOKEN"],
            ForgeKind::Forgejo => &["FORGEJO_TOKEN", "GITEA_TOKEN"],
        }
    }
}

impl fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ForgeKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "github" | "ghe" => Ok(ForgeKind::GitHub),
            "gitlab" => Ok(ForgeKind::GitLab),
            "gitea" => Ok(ForgeKind::Gitea),
            "forgejo" | "codeberg" => Ok(ForgeKind::Forgejo),
            _ => Err(Error::UnknownForgeName {
                name: s.to_string(),
            }),
        }
    }
}

/// A parsed git remote: where the repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRepo {
    /// `https`, `http`, `ssh` or `git`.
    pub scheme: String,
    /// Host name, without user or port.
    pub host: String,
    /// Port of an http(s) remote (an ssh port says nothing about the web/API port).
    pub port: Option<u16>,
    /// Everything before the repository name: `acme`, or `group/subgroup` on GitLab.
    pub owner: String,
    /// The repository name without `.git`.
    pub repo: String,
}

impl RemoteRepo {
    /// `host` or `host:port`.
    pub fn authority(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// `owner/repo` (`group/subgroup/repo` on GitLab).
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }
}

fn bad(url: &str, reason: &str) -> Error {
    Error::RemoteUrl {
        url: redact_userinfo(url),
        reason: reason.to_string(),
    }
}

/// The URL with any `user:password@` removed (remote URLs sometimes embed tokens).
pub(crate) fn redact_userinfo(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{scheme}://{}", &rest[at + 1..]);
        }
    }
    url.to_string()
}

/// Parses `https://host/owner/repo(.git)`, `ssh://[user@]host[:port]/owner/repo`,
/// `git@host:owner/repo(.git)` (scp-like) and `git://host/owner/repo`.
pub fn parse_remote_url(url: &str) -> Result<RemoteRepo, Error> {
    let url = url.trim();
    let (scheme, host, port, path) = if let Some((scheme, rest)) = url.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(
            scheme.as_str(),
            "https" | "http" | "ssh" | "git" | "git+ssh" | "ssh+git"
        ) {
            return Err(bad(
                url,
                &format!("the {scheme}:// scheme does not name a forge"),
            ));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = split_port(hostport).ok_or_else(|| bad(url, "invalid port"))?;
        let scheme = if scheme.contains("ssh") {
            "ssh".to_string()
        } else {
            scheme
        };
        let port = if scheme == "ssh" || scheme == "git" {
            None
        } else {
            port
        };
        (
            scheme,
            host.to_string(),
            port,
            path.trim_start_matches('/').to_string(),
        )
    } else if let Some((hostpart, path)) = url.split_once(':') {
        // scp-like: [user@]host:path (a Windows drive or a local path is not a remote)
        if hostpart.contains('/') || path.starts_with("//") || hostpart.len() < 2 {
            return Err(bad(url, "a local path is not a forge remote"));
        }
        let host = hostpart.rsplit_once('@').map_or(hostpart, |(_, h)| h);
        (
            "ssh".to_string(),
            host.to_string(),
            None,
            path.trim_start_matches('/').to_string(),
        )
    } else {
        return Err(bad(url, "not a URL or user@host:path"));
    };
    if host.is_empty() {
        return Err(bad(url, "no host"));
    }
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let Some((owner, repo)) = path.rsplit_once('/') else {
        return Err(bad(url, "the path does not have the form owner/repository"));
    };
    if owner.is_empty() || repo.is_empty() || owner.split('/').any(str::is_empty) {
        return Err(bad(url, "the path does not have the form owner/repository"));
    }
    Ok(RemoteRepo {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
        owner: owner.to_string(),
        repo: repo.to_string(),
    })
}

fn split_port(hostport: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = hostport.strip_prefix('[') {
        // [ipv6]:port
        let (h, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((h, Some(p.parse().ok()?))),
            None => Some((h, None)),
        };
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() => Some((h, Some(p.parse().ok()?))),
        Some((h, _)) => Some((h, None)),
        None => Some((hostport, None)),
    }
}

/// Everything needed to talk to the forge that hosts one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forge {
    pub kind: ForgeKind,
    /// Base of the REST API, without a trailing slash: `https://api.github.com`,
    /// `https://HOST/api/v3`, `https://HOST/api/v4`, `https://HOST/api/v1`.
    pub api_url: String,
    /// Base of the web UI: `https://github.com`, `https://HOST`.
    pub web_url: String,
    /// The host (and port) named in messages and used for `git credential fill`.
    pub host: String,
    /// Owner of the repository (`group/subgroup` on GitLab).
    pub owner: String,
    pub repo: String,
}

impl Forge {
    /// Works out the forge of a git remote. `kind` (`--forge`) is needed unless [`detect`] knows
    /// the host; `api_url` (`--forge-url`) overrides the usual API
    /// location (`https://HOST/api/v3|v4|v1`) and may also tell the kind by its path.
    pub fn from_remote(
        remote_url: &str,
        kind: Option<ForgeKind>,
        api_url: Option<&str>,
    ) -> Result<Forge, Error> {
        let remote = parse_remote_url(remote_url)?;
        let api_url = api_url.map(|u| u.trim_end_matches('/').to_string());
        let kind = match kind {
            Some(k) => k,
            None => detect(&remote.host)
                .or_else(|| api_url.as_deref().and_then(kind_from_api_path))
                .ok_or_else(|| Error::UnknownForge {
                    host: remote.host.clone(),
                })?,
        };
        // An http remote (a local forge) keeps http; everything else uses https.
        let scheme = if remote.scheme == "http" {
            "http"
        } else {
            "https"
        };
        let authority = remote.authority();
        let default_web = if kind == ForgeKind::GitHub && remote.host == "www.github.com" {
            "https://github.com".to_string()
        } else {
            format!("{scheme}://{authority}")
        };
        let (api_url, web_url) = match api_url {
            Some(api) => {
                check_url(&api)?;
                // The web UI is under the API's host only when that is the remote's host.
                let web = if host_of(&api).eq_ignore_ascii_case(&remote.host) {
                    web_from_api(&api).unwrap_or(default_web)
                } else {
                    default_web
                };
                (api, web)
            }
            None => {
                let api = match kind {
                    ForgeKind::GitHub
                        if remote.host == "github.com" || remote.host == "www.github.com" =>
                    {
                        "https://api.github.com".to_string()
                    }
                    ForgeKind::GitHub => format!("{default_web}/api/v3"),
                    ForgeKind::GitLab => format!("{default_web}/api/v4"),
                    ForgeKind::Gitea | ForgeKind::Forgejo => format!("{default_web}/api/v1"),
                };
                (api, default_web)
            }
        };
        let host = if remote.host == "www.github.com" {
            "github.com".to_string()
        } else {
            authority
        };
        Ok(Forge {
            kind,
            api_url,
            web_url,
            host,
            owner: remote.owner,
            repo: remote.repo,
        })
    }

    /// `owner/repo`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }
}

/// Which forge serves a host, by its name: github.com, gitlab.com, gitea.com, codeberg.org, and
/// hosts whose first label starts with `github` (GitHub Enterprise: `github.acme.io`,
/// `github-ent.acme.io`, or `code.github.acme.io`), `gitlab`, `gitea` or `forgejo`. The one
/// answer for links (`status`, `trace`) and for pull requests (`edit`): elsewhere, `--forge`.
pub fn detect(host: &str) -> Option<ForgeKind> {
    let host = host.to_ascii_lowercase();
    let first = host.split('.').next().unwrap_or_default();
    match host.as_str() {
        "github.com" | "www.github.com" => Some(ForgeKind::GitHub),
        "gitlab.com" => Some(ForgeKind::GitLab),
        "gitea.com" => Some(ForgeKind::Gitea),
        "codeberg.org" => Some(ForgeKind::Forgejo),
        h if first.starts_with("github") || h.contains(".github.") => Some(ForgeKind::GitHub),
        _ if first.starts_with("gitlab") => Some(ForgeKind::GitLab),
        _ if first.starts_with("gitea") => Some(ForgeKind::Gitea),
        _ if first.starts_with("forgejo") => Some(ForgeKind::Forgejo),
        _ => None,
    }
}

fn kind_from_api_path(api: &str) -> Option<ForgeKind> {
    if api.ends_with("/api/v3") || api.contains("://api.github.com") {
        Some(ForgeKind::GitHub)
    } else if api.ends_with("/api/v4") {
        Some(ForgeKind::GitLab)
    } else {
        None
    }
}

fn web_from_api(api: &str) -> Option<String> {
    if api.starts_with("https://api.github.com") {
        return Some("https://github.com".into());
    }
    ["/api/v3", "/api/v4", "/api/v1"]
        .iter()
        .find_map(|s| api.strip_suffix(s))
        .map(str::to_string)
}

/// Loopback hosts, where plain http is acceptable (a forge on this machine).
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

pub(crate) fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    split_port(authority).map_or(authority, |(h, _)| h)
}

/// An API URL must be https, or http to a loopback address.
pub(crate) fn check_url(url: &str) -> Result<(), Error> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    if lower.starts_with("http://") {
        if is_loopback(host_of(url)) {
            return Ok(());
        }
        return Err(Error::InsecureForgeUrl {
            url: redact_userinfo(url),
        });
    }
    Err(Error::ForgeUrl {
        url: redact_userinfo(url),
        reason: "it must start with https://".into(),
    })
}
