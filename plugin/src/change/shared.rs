//! Which other builds in the repository read a file: a base, a component or a patch file that
//! several overlays share. A change written there changes every one of them, so it is written in
//! the object's own overlay unless the person asks for the shared place (`--in-base`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::Error;
use crate::git::{EntryKind, Snapshot, join_path};
use crate::manifest::kustomize::{self, KUSTOMIZATION_FILES};

/// Directories looked at, at most: past this the repository is not searched further (and
/// nothing is called shared that was not found).
const MAX_DIRS: usize = 20_000;

/// The kustomizations of a repository and what each reads.
#[derive(Debug, Default)]
pub struct Graph {
    /// A file or a kustomization directory → the kustomization directories that read it.
    referrers: BTreeMap<String, BTreeSet<String>>,
    /// Directories holding a kustomization file.
    kustomizations: BTreeSet<String>,
}

impl Graph {
    /// Reads every kustomization file of the snapshot (breadth first, bounded).
    pub fn of(snap: &Snapshot<'_>) -> Result<Graph, Error> {
        let mut g = Graph::default();
        let mut dirs = vec![String::new()];
        let mut seen = 0usize;
        let mut files: Vec<(String, String)> = Vec::new();
        while let Some(dir) = dirs.pop() {
            seen += 1;
            if seen > MAX_DIRS {
                break;
            }
            let Some(list) = snap.list(&dir)? else {
                continue;
            };
            for (name, kind) in list {
                let path = join_path(&dir, &name).unwrap_or_default();
                match kind {
                    EntryKind::Dir => dirs.push(path),
                    EntryKind::File if KUSTOMIZATION_FILES.contains(&name.as_str()) => {
                        files.push((dir.clone(), path));
                    }
                    _ => {}
                }
            }
        }
        for (dir, _) in &files {
            g.kustomizations.insert(dir.clone());
        }
        for (dir, file) in files {
            let Ok(Some(text)) = kustomize::read_text(snap, &file) else {
                continue;
            };
            let Ok((_, k)) = kustomize::parse(&text, &file) else {
                continue;
            };
            for read in reads(&k) {
                if kustomize::is_remote(&read) {
                    continue;
                }
                let Some(path) = join_path(&dir, &read) else {
                    continue;
                };
                g.referrers.entry(path).or_default().insert(dir.clone());
            }
        }
        Ok(g)
    }

    /// The top-level builds (kustomization directories nothing else reads) whose output
    /// includes `node` (a file, or a kustomization directory). Bounded by the graph's size.
    pub fn roots(&self, node: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut todo = vec![node.to_string()];
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            match self.referrers.get(&n) {
                Some(up) if !up.is_empty() => todo.extend(up.iter().cloned()),
                _ if self.kustomizations.contains(&n) => {
                    out.insert(n);
                }
                _ => {}
            }
        }
        out
    }

    /// `node` and everything that reads it, directly or not (bounded by the graph's size).
    pub fn ancestors(&self, node: &str) -> BTreeSet<String> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut todo = vec![node.to_string()];
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(up) = self.referrers.get(&n) {
                todo.extend(up.iter().cloned());
            }
        }
        seen
    }

    /// Whether the build of `path` (a kustomization directory, or a plain directory the agent
    /// builds from all its manifests) reads `node`.
    pub fn builds(&self, path: &str, node: &str) -> bool {
        if self.kustomizations.contains(path) {
            return self.ancestors(node).contains(path);
        }
        // A plain directory: its own files, and what the kustomizations below it read.
        let inside = |n: &str| path.is_empty() || n == path || n.starts_with(&format!("{path}/"));
        self.ancestors(node).iter().any(|n| inside(n))
    }

    /// The builds besides `own` (the object's build root) that also read `file`.
    pub fn others(&self, file: &str, own: &str) -> Vec<String> {
        let mine = self.roots(own);
        let mut others: Vec<String> = self
            .roots(file)
            .into_iter()
            .filter(|r| r != own && !mine.contains(r))
            .collect();
        others.sort();
        others
    }
}

/// The local paths a kustomization reads: resources, bases, components, crds and patch files.
fn reads(k: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let strings = |key: &str| -> Vec<String> {
        k.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|s| !s.contains('\n'))
            .map(str::to_string)
            .collect()
    };
    for key in [
        "resources",
        "bases",
        "components",
        "crds",
        "patchesStrategicMerge",
    ] {
        out.extend(strings(key));
    }
    for key in ["patches", "patchesJson6902"] {
        for item in k.get(key).and_then(Value::as_array).into_iter().flatten() {
            if let Some(p) = item.get("path").and_then(Value::as_str) {
                out.push(p.to_string());
            }
        }
    }
    out
}

/// A file's directory, the node a kustomization file stands for.
pub fn kustomization_dir(file: &str) -> String {
    kustomize::dir_of(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)], kustomizations: &[&str]) -> Graph {
        let mut g = Graph::default();
        for (from, to) in edges {
            g.referrers
                .entry((*to).to_string())
                .or_default()
                .insert((*from).to_string());
        }
        g.kustomizations = kustomizations.iter().map(|s| (*s).to_string()).collect();
        g
    }

    #[test]
    fn a_base_two_overlays_read_is_shared_with_the_other() {
        let g = graph(
            &[
                ("apps/base", "apps/base/deployment.yaml"),
                ("apps/prod", "apps/base"),
                ("apps/staging", "apps/base"),
                ("apps/prod", "apps/prod/memory.yaml"),
                ("clusters/prod", "apps/prod"),
            ],
            &["apps/base", "apps/prod", "apps/staging", "clusters/prod"],
        );
        assert_eq!(
            g.others("apps/base/deployment.yaml", "apps/prod"),
            ["apps/staging"]
        );
        // The overlay's own patch file, and the overlay itself, are its own.
        assert!(g.others("apps/prod/memory.yaml", "apps/prod").is_empty());
        assert!(g.others("apps/prod", "apps/prod").is_empty());
        // From the other side.
        assert_eq!(
            g.others("apps/base/deployment.yaml", "apps/staging"),
            ["clusters/prod"]
        );
    }

    #[test]
    fn cycles_and_unread_files_end() {
        let g = graph(&[("a", "b"), ("b", "a")], &["a", "b"]);
        assert!(g.roots("a").is_empty());
        assert!(g.others("plain/deployment.yaml", "plain").is_empty());
    }
}
