//! Which file in Git defines a live object: the `config.kubernetes.io/origin` annotation when the
//! build recorded it (kustomize `buildMetadata: [originAnnotations]`), else a search of what the
//! owner's path builds at the applied commit ([`kustomize`], the one model of a kustomization
//! tree: the change side reads the same entries and their layers). Several candidates are reported as
//! such, never guessed between.

pub mod kustomize;
pub mod yaml;

use serde::Serialize;

use crate::Error;
use crate::git::{EntryKind, Snapshot, join_path};
pub use kustomize::{Layer, Transform};

/// The annotation kustomize writes with `buildMetadata: [originAnnotations]`.
pub const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";

/// The live object to find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub group: String,
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

/// How the owner turns its path into objects, when there is no kustomization file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renderer {
    /// Flux generates a kustomization of every manifest below the path.
    Flux,
    /// Argo CD reads the path's files (and, with `directory.recurse`, every file below it).
    ArgoDirectory { recurse: bool },
}

/// What the owner builds: path and the transformations the owner itself adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// Repository-relative path (normalized, `""` for the root).
    pub path: String,
    pub renderer: Renderer,
    /// Flux `spec.namePrefix` / Argo CD `kustomize.namePrefix`.
    pub name_prefix: String,
    pub name_suffix: String,
    /// Forced on every namespaced object (Flux `spec.targetNamespace`, Argo CD `kustomize.namespace`).
    pub namespace: Option<String>,
    /// Given to objects that name none (Argo CD `destination.namespace`).
    pub default_namespace: Option<String>,
}

/// A document (or generator entry) the build produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Repository-relative file.
    pub file: String,
    /// 0-based document index in a multi-document file; `None` for a generator entry (the file is
    /// the kustomization that generates it).
    pub doc: Option<usize>,
    pub first_line: usize,
    pub last_line: usize,
    pub group: String,
    pub kind: String,
    /// The name written in the file.
    pub source_name: String,
    /// The name the build gives it (without a generator's hash suffix).
    pub name: String,
    pub namespace: Option<String>,
    /// Generated with a content hash suffix.
    pub hashed: bool,
    #[serde(skip)]
    pub transform: Transform,
    /// The kustomizations the entry comes through, innermost first: what patches and
    /// transforms it on the way to the owner's path (empty for a file the owner reads itself).
    #[serde(skip)]
    pub layers: Vec<Layer>,
}

/// Everything a build produces at one commit.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub root: String,
    pub entries: Vec<Entry>,
    /// What was skipped and why (remote resources, invalid YAML, missing paths).
    pub notes: Vec<String>,
}

/// The result of looking for an object's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<'a> {
    One(&'a Entry),
    None,
    Many(Vec<&'a Entry>),
}

/// Builds the index of what `build` produces in `snap`.
pub fn index(snap: &Snapshot<'_>, build: &Build) -> Result<Index, Error> {
    let mut walker = kustomize::Walker::new(snap, build);
    walker.run()?;
    Ok(Index {
        root: build.path.clone(),
        entries: walker.entries,
        notes: walker.notes,
    })
}

fn same_group(a: &str, b: &str) -> bool {
    a == b || a == "extensions" || b == "extensions"
}

fn name_matches(entry: &Entry, name: &str) -> bool {
    if entry.name == name {
        return true;
    }
    entry.hashed
        && name
            .strip_prefix(entry.name.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|hash| hash.len() == 10 && hash.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The file an origin annotation names, relative to the build root (`path:` for documents,
/// `configuredIn:` for generated objects).
pub fn origin_file(annotation: &str, root: &str) -> Option<String> {
    let docs = yaml::parse_documents(annotation).ok()?;
    let node = docs.iter().find_map(|d| d.root())?;
    if node.get("repo").is_some() {
        // A remote base: not in this repository.
        return None;
    }
    let rel = node
        .str_at(&["path"])
        .or_else(|| node.str_at(&["configuredIn"]))?;
    join_path(root, rel)
}

impl Index {
    /// The entries that produce `wanted`. With an origin annotation, only entries from that file
    /// count.
    pub fn find(&self, wanted: &Wanted, origin: Option<&str>) -> Found<'_> {
        let origin_file = origin.and_then(|o| origin_file(o, &self.root));
        let mut exact = Vec::new();
        let mut loose = Vec::new();
        for e in &self.entries {
            if e.kind != wanted.kind
                || !same_group(&e.group, &wanted.group)
                || !name_matches(e, &wanted.name)
            {
                continue;
            }
            if let Some(f) = &origin_file
                && &e.file != f
            {
                continue;
            }
            match (&e.namespace, wanted.namespace.is_empty()) {
                (_, true) => exact.push(e),
                (Some(ns), false) if ns == &wanted.namespace => exact.push(e),
                (None, false) => loose.push(e),
                (Some(_), false) => {}
            }
        }
        let mut pick = if exact.is_empty() { loose } else { exact };
        if pick.is_empty()
            && let Some(f) = &origin_file
        {
            // The annotation names the file; the build's renaming could not be reproduced: take
            // the one document of that kind whose written name is part of the live name.
            pick = self
                .entries
                .iter()
                .filter(|e| {
                    &e.file == f && e.kind == wanted.kind && wanted.name.contains(&e.source_name)
                })
                .collect();
        }
        match pick.len() {
            0 => Found::None,
            1 => Found::One(pick[0]),
            _ => Found::Many(pick),
        }
    }
}

/// Whether `path` exists at the snapshot as a file.
pub fn is_file(snap: &Snapshot<'_>, path: &str) -> Result<bool, Error> {
    Ok(snap.kind(path)? == Some(EntryKind::File))
}
