//! Git URLs: comparing the URL a source names with the remotes of a local clone, naming cache
//! directories, and links to a file at a commit on GitHub, GitLab and Gitea/Forgejo.

use std::path::{Path, PathBuf};

use crate::forge::ForgeKind;

/// A URL reduced to what identifies a repository: lowercase host and path without scheme, user,
/// port, `.git` suffix and trailing slashes (`github.com/org/fleet`); local repositories become
/// `file:` plus their canonical path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoKey(pub String);

impl std::fmt::Display for RepoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn strip_git_suffix(path: &str) -> &str {
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix("/.git").unwrap_or(path);
    path.strip_suffix(".git")
        .unwrap_or(path)
        .trim_end_matches('/')
}

fn local_key(path: &Path) -> RepoKey {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let text = canonical.to_string_lossy();
    RepoKey(format!("file:{}", strip_git_suffix(&text)))
}

/// Splits a URL into (host, path) for network URLs, or gives the local path.
enum Parsed<'a> {
    Remote { host: &'a str, path: &'a str },
    Local(PathBuf),
}

fn parse(url: &str) -> Option<Parsed<'_>> {
    let url = url.trim();
    if url.is_empty() {
        return None;
    }
    if let Some(rest) = url.strip_prefix("file://") {
        return Some(Parsed::Local(PathBuf::from(rest)));
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        {
            return None;
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host_port.strip_prefix('[') {
            Some(v6) => v6.split_once(']').map_or(v6, |(h, _)| h),
            None => host_port.split_once(':').map_or(host_port, |(h, _)| h),
        };
        return Some(Parsed::Remote { host, path });
    }
    if url.starts_with('/') || url.starts_with('.') {
        return Some(Parsed::Local(PathBuf::from(url)));
    }
    // scp-like `[user@]host:path`
    if let Some((authority, path)) = url.split_once(':')
        && !authority.contains('/')
    {
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        return Some(Parsed::Remote { host, path });
    }
    None
}

impl RepoKey {
    /// The key of a source URL; `None` for text that is not a Git URL.
    pub fn of_url(url: &str) -> Option<RepoKey> {
        match parse(url)? {
            Parsed::Local(p) => Some(local_key(&p)),
            Parsed::Remote { host, path } => {
                let path = strip_git_suffix(path.trim_start_matches('/'));
                if host.is_empty() || path.is_empty() {
                    return None;
                }
                Some(RepoKey(format!(
                    "{}/{}",
                    host.to_ascii_lowercase(),
                    path.to_ascii_lowercase()
                )))
            }
        }
    }

    /// A directory name for the clone cache (`github.com/org/fleet` → `github.com_org_fleet.git`).
    pub fn cache_dir_name(&self) -> String {
        let mut name: String = self
            .0
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-._".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        name.push_str(".git");
        name
    }
}

/// A web link to `path` at `commit` for repositories on a known forge; `None` otherwise. The
/// remote is read and the forge detected exactly as `edit` reads them for a pull request.
pub fn file_link(url: &str, commit: &str, path: &str) -> Option<String> {
    let forge = crate::forge::Forge::from_remote(url, None, None).ok()?;
    let base = format!(
        "{}/{}",
        forge.web_url.trim_end_matches('/'),
        forge.full_name()
    );
    let path = path.trim_start_matches('/');
    Some(match forge.kind {
        ForgeKind::GitHub => format!("{base}/blob/{commit}/{path}"),
        ForgeKind::GitLab => format!("{base}/-/blob/{commit}/{path}"),
        ForgeKind::Gitea | ForgeKind::Forgejo => format!("{base}/src/commit/{commit}/{path}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_repository_whatever_the_url_form() {
        let want = Some(RepoKey("github.com/org/fleet".into()));
        for url in [
            "https://github.com/org/fleet",
            "https://github.com/org/fleet.git",
            "https://github.com/Org/Fleet/",
            "https://token:x-oauth@github.com/org/fleet.git",
            "ssh://git@github.com/org/fleet",
            "ssh://git@github.com:22/org/fleet.git",
            "git@github.com:org/fleet.git",
            "github.com:org/fleet",
        ] {
            assert_eq!(RepoKey::of_url(url), want, "{url}");
        }
        assert_ne!(RepoKey::of_url("https://github.com/org/other"), want);
        assert_eq!(RepoKey::of_url(""), None);
        assert_eq!(RepoKey::of_url("https://github.com"), None);
    }

    #[test]
    fn local_paths_compare_canonically() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("fleet");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        let a = RepoKey::of_url(&format!("file://{}", repo.display())).unwrap();
        let b = RepoKey::of_url(&format!("{}/.git", repo.display())).unwrap();
        let c = RepoKey::of_url(&format!("{}/", repo.display())).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert!(a.0.starts_with("file:/"), "{a}");
    }

    #[test]
    fn cache_dir_names_are_single_safe_components() {
        let key = RepoKey::of_url("https://gitlab.example.com/group/sub/fleet.git").unwrap();
        assert_eq!(
            key.cache_dir_name(),
            "gitlab.example.com_group_sub_fleet.git"
        );
    }

    #[test]
    fn file_links_per_forge() {
        let sha = "9b1e0c2aa";
        assert_eq!(
            file_link("ssh://git@github.com/org/fleet.git", sha, "apps/web.yaml").as_deref(),
            Some("https://github.com/org/fleet/blob/9b1e0c2aa/apps/web.yaml")
        );
        assert_eq!(
            file_link("https://gitlab.com/group/sub/fleet", sha, "a.yaml").as_deref(),
            Some("https://gitlab.com/group/sub/fleet/-/blob/9b1e0c2aa/a.yaml")
        );
        assert_eq!(
            file_link("git@codeberg.org:org/fleet.git", sha, "a.yaml").as_deref(),
            Some("https://codeberg.org/org/fleet/src/commit/9b1e0c2aa/a.yaml")
        );
        assert_eq!(
            file_link("https://gitea.example.com/org/fleet", sha, "a.yaml").as_deref(),
            Some("https://gitea.example.com/org/fleet/src/commit/9b1e0c2aa/a.yaml")
        );
        assert_eq!(
            file_link("https://git.example.com/org/fleet", sha, "a.yaml"),
            None
        );
        assert_eq!(file_link("file:///srv/fleet", sha, "a.yaml"), None);
    }

    /// A host `status` links to is a host `edit` opens pull requests on, and the other way round:
    /// one detector for both (they once disagreed on GitHub Enterprise hosts).
    #[test]
    fn links_and_pull_requests_agree_on_the_forge() {
        for host in [
            "github.com",
            "github.acme.io",
            "github-enterprise.acme.io",
            "code.github.acme.io",
            "gitlab.com",
            "gitlab.acme.io",
            "codeberg.org",
            "gitea.acme.io",
            "forgejo.acme.io",
            "git.acme.io",
        ] {
            let url = format!("https://{host}/org/fleet.git");
            let linked = file_link(&url, "abc", "a.yaml").is_some();
            let forge = crate::forge::Forge::from_remote(&url, None, None);
            assert_eq!(linked, forge.is_ok(), "{host}: {forge:?}");
        }
    }
}
