//! Revisions as GitOps agents report them.
//!
//! Flux: `main@sha1:<sha>`, `sha1:<sha>`, `v1.2.0@sha1:<sha>`, `refs/heads/main@sha1:<sha>`,
//! `main@sha256:<sha>` (SHA-256 repositories) and the pre-v2 form `main/<sha>`.
//! Argo CD: the bare commit sha (or a chart version for Helm repository sources, which has no commit).

use serde::Serialize;

/// A parsed revision: the reference (branch or tag) if named, and the commit if there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revision {
    /// What the agent reported, unchanged.
    pub raw: String,
    /// Branch or tag name as reported (`main`, `v1.2.0`, `refs/heads/main`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The full commit hash in lowercase hex, when the revision names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

fn is_hex_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Parses a revision string; never fails (unknown forms keep only `raw`).
pub fn parse(raw: &str) -> Revision {
    let text = raw.trim();
    let mut rev = Revision {
        raw: raw.to_string(),
        reference: None,
        commit: None,
    };
    let (reference, digest) = match text.rsplit_once('@') {
        Some((r, d)) => (Some(r), d),
        None => (None, text),
    };
    let hash = digest
        .strip_prefix("sha1:")
        .or_else(|| digest.strip_prefix("sha256:"));
    match hash {
        Some(h) if is_hex_id(h) || (h.len() >= 4 && h.chars().all(|c| c.is_ascii_hexdigit())) => {
            rev.commit = Some(h.to_ascii_lowercase());
            rev.reference = reference.filter(|r| !r.is_empty()).map(str::to_string);
        }
        _ if reference.is_none() && is_hex_id(text) => rev.commit = Some(text.to_ascii_lowercase()),
        _ if reference.is_none() => {
            // Flux before v2: `<branch>/<sha>`.
            if let Some((r, h)) = text.rsplit_once('/')
                && is_hex_id(h)
                && !r.is_empty()
            {
                rev.reference = Some(r.to_string());
                rev.commit = Some(h.to_ascii_lowercase());
            }
        }
        _ => {}
    }
    rev
}

impl Revision {
    /// The reference without `refs/heads/` or `refs/tags/`.
    pub fn short_reference(&self) -> Option<&str> {
        let r = self.reference.as_deref()?;
        Some(
            r.strip_prefix("refs/heads/")
                .or_else(|| r.strip_prefix("refs/tags/"))
                .unwrap_or(r),
        )
    }

    /// How a table shows it: `main@3f2a9c1`, `3f2a9c1`, or the raw text when there is no commit.
    pub fn display(&self) -> String {
        match (&self.commit, self.short_reference()) {
            (Some(c), Some(r)) => format!("{r}@{}", short(c)),
            (Some(c), None) => short(c).to_string(),
            (None, _) => self.raw.clone(),
        }
    }
}

/// The first 7 characters of a commit hash.
pub fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "3f2a9c1e8b7d6c5b4a39281706f5e4d3c2b1a098";

    #[test]
    fn revision_table() {
        let cases: Vec<(String, Option<&str>, Option<&str>, &str)> = vec![
            (
                format!("main@sha1:{SHA}"),
                Some("main"),
                Some(SHA),
                "main@3f2a9c1",
            ),
            (format!("sha1:{SHA}"), None, Some(SHA), "3f2a9c1"),
            (
                format!("v1.2.0@sha1:{SHA}"),
                Some("v1.2.0"),
                Some(SHA),
                "v1.2.0@3f2a9c1",
            ),
            (
                format!("refs/heads/main@sha1:{SHA}"),
                Some("refs/heads/main"),
                Some(SHA),
                "main@3f2a9c1",
            ),
            (
                format!("main/{SHA}"),
                Some("main"),
                Some(SHA),
                "main@3f2a9c1",
            ),
            (SHA.to_string(), None, Some(SHA), "3f2a9c1"),
            (SHA.to_uppercase(), None, Some(SHA), "3f2a9c1"),
            ("6.5.0".to_string(), None, None, "6.5.0"),
            (
                "chart podinfo@6.5.0".to_string(),
                None,
                None,
                "chart podinfo@6.5.0",
            ),
            ("".to_string(), None, None, ""),
            ("main".to_string(), None, None, "main"),
        ];
        for (raw, reference, commit, display) in cases {
            let r = parse(&raw);
            assert_eq!(r.reference.as_deref(), reference, "{raw}");
            assert_eq!(r.commit.as_deref(), commit, "{raw}");
            assert_eq!(r.display(), display, "{raw}");
        }
        let sha256 = "a".repeat(64);
        let r = parse(&format!("main@sha256:{sha256}"));
        assert_eq!(r.commit.as_deref(), Some(sha256.as_str()));
    }
}
