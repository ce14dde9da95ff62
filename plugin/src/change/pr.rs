//! The words of a change: commit message, pull request title and body, and opening the pull
//! request on the forge.

use serde_json::Value;

use super::diff::{FileChange, unified_all};
use crate::Error;
use crate::forge::{self, Credentials, Forge, PullRequest, PullRequestOptions};
use crate::splice::Change;

/// Everything the texts name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// `deployment/web`.
    pub resource: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// `edit`, `scale`, `set image`, `patch`, `label`, `annotate`.
    pub verb: String,
    /// `Flux Kustomization flux-system/apps`.
    pub owner: String,
    /// The revision the agent applied last, as it reports it (`main@sha1:…`), if known.
    pub applied: Option<String>,
    /// What was changed, in words (`scale to 6 replicas`).
    pub summary: String,
    /// `spec.replicas: 3 → 6`, one per changed field.
    pub fields: Vec<String>,
    /// The command line as typed (without secrets).
    pub command: String,
    /// The Kubernetes user the dry-run ran as, if validated.
    pub validated: bool,
}

impl Subject {
    /// `deployment/web (prod)` or `clusterrole/view`.
    pub fn object(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} ({ns})", self.resource),
            None => self.resource.clone(),
        }
    }

    /// `deployment/web in prod`.
    pub fn object_in(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} in {ns}", self.resource),
            None => self.resource.clone(),
        }
    }
}

/// The default pull request title: `deployment/web (prod): edit via kubectl gitops`.
pub fn default_title(s: &Subject) -> String {
    format!("{}: {} via kubectl gitops", s.object(), s.verb)
}

/// The commit message. With `--message`, its text comes first (its first line is the subject);
/// the object, the change and the live revision are always named.
pub fn commit_message(s: &Subject, message: Option<&str>) -> String {
    let mut out = match message.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => format!("{m}\n\n"),
        None => format!("{}: {}\n\n", s.object(), s.summary),
    };
    if !s.fields.is_empty() {
        out.push_str("Changed:\n");
        for f in &s.fields {
            out.push_str(&format!("- {f}\n"));
        }
        out.push('\n');
    }
    out.push_str(&format!("Object: {}\n", s.object_in()));
    out.push_str(&format!("Owner: {}\n", s.owner));
    out.push_str(&format!(
        "Based on live revision: {}\n",
        s.applied
            .as_deref()
            .unwrap_or("unknown (the owner reports none)")
    ));
    out.push_str(&format!("Made with: kubectl gitops {}\n", s.verb));
    out
}

/// GitHub refuses bodies over 65536 characters; keep well below on every forge.
const MAX_BODY: usize = 60_000;

/// The pull request body: the message, the object, owner, applied revision, files and the diff.
pub fn body(s: &Subject, message: Option<&str>, files: &[FileChange], user: &str) -> String {
    let mut out = String::new();
    if let Some(m) = message.map(str::trim).filter(|m| !m.is_empty()) {
        out.push_str(m);
        out.push_str("\n\n");
    }
    out.push_str(&format!(
        "Opened with `kubectl gitops {}` by {user}: {}.\n\n",
        s.verb, s.summary
    ));
    out.push_str("| | |\n|---|---|\n");
    out.push_str(&format!("| Object | `{}` |\n", s.object_in()));
    out.push_str(&format!("| Owner | {} |\n", s.owner));
    out.push_str(&format!(
        "| Applied revision | {} |\n",
        s.applied
            .as_deref()
            .map(|r| format!("`{r}`"))
            .unwrap_or_else(|| "unknown".into())
    ));
    let paths: Vec<String> = files.iter().map(|f| format!("`{}`", f.path)).collect();
    out.push_str(&format!("| Files | {} |\n", paths.join(", ")));
    out.push_str(&format!(
        "| Validated | {} |\n\n",
        if s.validated {
            "server-side dry-run against the cluster: ok"
        } else {
            "not validated against a cluster"
        }
    ));
    if !s.fields.is_empty() {
        out.push_str("Changed fields:\n\n");
        for f in &s.fields {
            out.push_str(&format!("- `{f}`\n"));
        }
        out.push('\n');
    }
    let diff = unified_all(files);
    let room = MAX_BODY.saturating_sub(out.len() + 200);
    if diff.len() <= room {
        out.push_str(&format!("```diff\n{diff}```\n"));
    } else {
        let mut cut = room;
        while !diff.is_char_boundary(cut) {
            cut -= 1;
        }
        let partial = &diff[..cut];
        let partial = &partial[..partial.rfind('\n').map_or(0, |i| i + 1)];
        out.push_str(&format!(
            "```diff\n{partial}```\n\n(The diff is cut here; see the commit for all of it.)\n"
        ));
    }
    out
}

fn show(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = text.replace('\n', "\\n");
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(79).collect::<String>())
    } else {
        text
    }
}

/// One line per change: `spec.replicas: 3 → 6`, `metadata.labels.team: added (payments)`,
/// `spec.paused: removed`.
pub fn describe_changes(old: &Value, changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| match c {
            Change::Set { path, value } => match old.pointer(&path.to_pointer()) {
                Some(before) if path.segments().is_empty() || before != value => {
                    format!("{path}: {} → {}", show(before), show(value))
                }
                _ => format!("{path}: added ({})", show(value)),
            },
            Change::Insert { path, value } => format!("{path}: inserted ({})", show(value)),
            Change::Delete { path } => format!("{path}: removed"),
        })
        .collect()
}

/// Opens the pull request (or finds the one already open from the branch). Blocking: call it
/// outside the async runtime.
pub fn open(
    forge: &Forge,
    creds: &Credentials,
    opts: &PullRequestOptions,
) -> Result<PullRequest, Error> {
    Ok(forge::open_pull_request(forge, creds, opts)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::splice::FieldPath;
    use serde_json::json;

    fn subject() -> Subject {
        Subject {
            resource: "deployment/web".into(),
            namespace: Some("prod".into()),
            verb: "scale".into(),
            owner: "Flux Kustomization flux-system/apps".into(),
            applied: Some("main@sha1:3f2a9c1e8b7d6c5b4a39281706f5e4d3c2b1a098".into()),
            summary: "scale to 6 replicas".into(),
            fields: vec!["spec.replicas: 3 → 6".into()],
            command: "kubectl gitops scale deployment/web --replicas=6 -n prod".into(),
            validated: true,
        }
    }

    #[test]
    fn texts_name_object_change_and_revision() {
        let s = subject();
        assert_eq!(
            default_title(&s),
            "deployment/web (prod): scale via kubectl gitops"
        );
        let m = commit_message(&s, None);
        assert!(
            m.starts_with(
                "deployment/web (prod): scale to 6 replicas\n\nChanged:\n- spec.replicas: 3 → 6\n"
            ),
            "{m}"
        );
        assert!(m.contains(
            "Based on live revision: main@sha1:3f2a9c1e8b7d6c5b4a39281706f5e4d3c2b1a098\n"
        ));
        let m = commit_message(&s, Some("Black Friday capacity\n\nTicket OPS-12"));
        assert!(
            m.starts_with("Black Friday capacity\n\nTicket OPS-12\n\nChanged:"),
            "{m}"
        );
        let files = [FileChange {
            path: "apps/web/deployment.yaml".into(),
            old: "spec:\n  replicas: 3\n".into(),
            new: "spec:\n  replicas: 6\n".into(),
        }];
        let b = body(&s, None, &files, "ana");
        assert!(b.contains("| Owner | Flux Kustomization flux-system/apps |"));
        assert!(b.contains("```diff\ndiff --git a/apps/web/deployment.yaml"));
        assert!(b.contains("-  replicas: 3\n+  replicas: 6\n"));
    }

    #[test]
    fn huge_diffs_are_cut() {
        let s = subject();
        let big: String = (0..20_000).map(|i| format!("k{i}: v\n")).collect();
        let files = [FileChange {
            path: "x.yaml".into(),
            old: String::new(),
            new: big,
        }];
        let b = body(&s, None, &files, "ana");
        assert!(b.len() < MAX_BODY);
        assert!(b.contains("The diff is cut here"));
    }

    #[test]
    fn change_descriptions() {
        let old = json!({"spec": {"replicas": 3}, "metadata": {"labels": {}}});
        let d = describe_changes(
            &old,
            &[
                Change::set(FieldPath::keys(["spec", "replicas"]), json!(6)),
                Change::set(
                    FieldPath::keys(["metadata", "labels", "team"]),
                    json!("payments"),
                ),
                Change::delete(FieldPath::keys(["spec", "paused"])),
            ],
        );
        assert_eq!(
            d,
            [
                "spec.replicas: 3 → 6",
                "metadata.labels.team: added (payments)",
                "spec.paused: removed"
            ]
        );
    }
}
