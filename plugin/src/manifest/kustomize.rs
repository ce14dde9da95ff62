//! The one model of a kustomize build: what a build of the owner's path produces, as a list of
//! [`Entry`]s — every document the build includes, with the name and namespace the build gives
//! it and the chain of kustomization [`Layer`]s it came through. The change side
//! (`change::target::define`) reads the patches and transformers of exactly that chain; nothing
//! else walks a kustomization tree.
//!
//! Read here, once: kustomization files (`kustomization.yaml`, `.yml`, `Kustomization`; no
//! apiVersion or kind needed), their `resources` and `bases` (files, directories with a
//! kustomization file, plain directories of manifests), `components` (applied to everything the
//! kustomization holds, nested components first, before its own transformers), `namePrefix`,
//! `nameSuffix` and `namespace` (outer layers wrap inner ones; the outermost namespace wins;
//! Namespace, CustomResourceDefinition and APIService names are not prefixed; the namespace
//! transformer renames Namespace objects), `configMapGenerator` and `secretGenerator` (names get
//! a content hash suffix unless disabled). `crds` are read by kustomize for their schema only and
//! are not built. A resource listed twice by one kustomization counts once. Without a
//! kustomization file, Flux includes every manifest below the path (a subdirectory with a
//! kustomization file counts as one resource) and Argo CD includes the path's own files (all below
//! it with `directory.recurse`). Remote resources and Helm charts are noted, not followed. A cycle
//! of kustomizations, or nesting deeper than [`MAX_DEPTH`], is an error naming the files.

use std::collections::HashSet;

use serde_json::Value;

use super::yaml::{Node, parse_documents};
use super::{Build, Entry, Renderer};
use crate::Error;
use crate::git::{EntryKind, Snapshot, join_path};
use crate::splice::{self, DocSpan};

pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];
/// Kinds whose names no `namePrefix`/`nameSuffix` changes.
pub const NOT_PREFIXED: [&str; 3] = ["Namespace", "CustomResourceDefinition", "APIService"];
/// Kustomizations (and directories) nested deeper than this are refused.
pub const MAX_DEPTH: usize = 40;

/// Name prefix/suffix and namespace that the layers around a resource apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transform {
    pub prefix: String,
    pub suffix: String,
    pub namespace: Option<String>,
}

impl Transform {
    /// `self` is the outer layer, `inner` the kustomization inside it.
    fn wrap(&self, inner: &Transform) -> Transform {
        Transform {
            prefix: format!("{}{}", self.prefix, inner.prefix),
            suffix: format!("{}{}", inner.suffix, self.suffix),
            namespace: self.namespace.clone().or_else(|| inner.namespace.clone()),
        }
    }

    /// The renames a kustomization itself makes.
    fn own(k: &Value) -> Transform {
        let text = |key: &str| k.get(key).and_then(Value::as_str).unwrap_or_default();
        Transform {
            prefix: text("namePrefix").to_string(),
            suffix: text("nameSuffix").to_string(),
            namespace: Some(text("namespace"))
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        }
    }

    /// The renames of kustomizations applied in order (innermost first).
    fn of(ks: &[&Value]) -> Transform {
        ks.iter()
            .fold(Transform::default(), |t, k| Transform::own(k).wrap(&t))
    }
}

/// A kustomization an entry comes through, with the components it applies (innermost first:
/// a component's own components come before it). Their transformers apply in that order, the
/// components' before the kustomization's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    pub file: String,
    pub components: Vec<String>,
}

/// Whether `path` names a kustomization file.
pub fn is_kustomization_file(path: &str) -> bool {
    let name = path.rsplit_once('/').map_or(path, |(_, n)| n);
    KUSTOMIZATION_FILES.contains(&name)
}

/// The kustomization file of a directory, if it has one.
pub fn kustomization_in(snap: &Snapshot<'_>, dir: &str) -> Result<Option<String>, Error> {
    for name in KUSTOMIZATION_FILES {
        let path = join_path(dir, name).unwrap_or_default();
        if snap.kind(&path)? == Some(EntryKind::File) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Whether a resource is fetched from elsewhere (not followed).
pub fn is_remote(resource: &str) -> bool {
    resource.contains("://")
        || resource.starts_with("git@")
        || resource.starts_with("github.com/")
        || resource.starts_with("gitlab.com/")
        || resource.contains("?ref=")
}

/// The directory of a repository-relative file (`""` at the root).
pub fn dir_of(file: &str) -> String {
    file.rsplit_once('/')
        .map_or(String::new(), |(d, _)| d.to_string())
}

/// A kustomization or patch file that is not what kustomize needs.
pub fn bad(file: &str, message: impl Into<String>) -> Error {
    crate::change::error::Error::KustomizeSource {
        file: file.to_string(),
        message: message.into(),
    }
    .into()
}

/// The text of a file at the snapshot (`None` when it does not exist).
pub fn read_text(snap: &Snapshot<'_>, path: &str) -> Result<Option<String>, Error> {
    match snap.read(path)? {
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| bad(path, "the file is not UTF-8 text")),
        None => Ok(None),
    }
}

/// Parses a kustomization file's text: its first document with content (a kustomization file
/// needs no apiVersion or kind), and where it is.
pub fn parse(text: &str, file: &str) -> Result<(DocSpan, Value), Error> {
    let docs = splice::find_documents(text);
    let has_content = |d: &DocSpan| {
        text[d.range.clone()].lines().any(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#') && l != "---" && l != "..."
        })
    };
    let doc = docs
        .into_iter()
        .find(|d| !d.is_empty() || has_content(d))
        .ok_or_else(|| bad(file, "the file is empty"))?;
    let value = splice::parse_document(&text[doc.range.clone()])
        .map_err(|e| bad(file, format!("not valid YAML: {e}")))?;
    Ok((doc, value))
}

/// The strings of a list field (`resources`, `components`, …).
fn strings<'v>(k: &'v Value, key: &str) -> Vec<&'v str> {
    k.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn is_manifest_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")
}

/// A kustomization file read for the walk.
struct Read {
    file: String,
    dir: String,
    value: Value,
    text: String,
}

pub(super) struct Walker<'s, 'r> {
    snap: &'s Snapshot<'r>,
    build: &'s Build,
    pub entries: Vec<Entry>,
    pub notes: Vec<String>,
    /// The kustomization files being walked, outermost first (cycles, depth).
    stack: Vec<String>,
}

impl<'s, 'r> Walker<'s, 'r> {
    pub fn new(snap: &'s Snapshot<'r>, build: &'s Build) -> Self {
        Walker {
            snap,
            build,
            entries: Vec::new(),
            notes: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// Walks the build root.
    pub fn run(&mut self) -> Result<(), Error> {
        let root = self.build.path.clone();
        let outer = Transform {
            prefix: self.build.name_prefix.clone(),
            suffix: self.build.name_suffix.clone(),
            namespace: self.build.namespace.clone(),
        };
        match self.snap.kind(&root)? {
            None => {
                self.notes
                    .push(format!("{} does not exist at this commit", show(&root)));
                return Ok(());
            }
            Some(EntryKind::File) => return self.file(&root, &outer, &[]),
            Some(_) => {}
        }
        if let Some(k) = kustomization_in(self.snap, &root)? {
            return self.kustomization(&k, &outer, &[]);
        }
        if self
            .snap
            .kind(&join_path(&root, "Chart.yaml").unwrap_or_default())?
            == Some(EntryKind::File)
        {
            self.notes.push(format!(
                "{} is a Helm chart: its templates are rendered by Helm, not mapped to files",
                show(&root)
            ));
            return Ok(());
        }
        match self.build.renderer {
            Renderer::Flux => self.flux_generated(&root, &outer, 0),
            Renderer::ArgoDirectory { recurse } => self.directory(&root, &outer, recurse, 0, &[]),
        }
    }

    /// Enters a kustomization file: refused when it is already being walked (a cycle) or the
    /// nesting is too deep.
    fn enter(&mut self, file: &str) -> Result<(), Error> {
        if let Some(at) = self.stack.iter().position(|f| f == file) {
            let mut cycle: Vec<&str> = self.stack[at..].iter().map(String::as_str).collect();
            cycle.push(file);
            return Err(bad(
                file,
                format!(
                    "the kustomizations include each other in a cycle ({}); remove one of these references",
                    cycle.join(" → ")
                ),
            ));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(bad(
                file,
                format!(
                    "kustomizations are nested more than {MAX_DEPTH} deep ({} → {file}); kustomize builds are not followed that far",
                    self.stack.join(" → ")
                ),
            ));
        }
        self.stack.push(file.to_string());
        Ok(())
    }

    /// Reads a kustomization file; `None` (with a note) when it is not usable.
    fn read(&mut self, file: &str) -> Result<Option<Read>, Error> {
        let Some(text) = read_text(self.snap, file)? else {
            self.notes
                .push(format!("{file} does not exist at this commit"));
            return Ok(None);
        };
        if text.trim().is_empty() {
            return Ok(Some(Read {
                file: file.to_string(),
                dir: dir_of(file),
                value: Value::Null,
                text,
            }));
        }
        match parse(&text, file) {
            Ok((_, value)) => Ok(Some(Read {
                file: file.to_string(),
                dir: dir_of(file),
                value,
                text,
            })),
            Err(e) => {
                self.notes.push(format!("{e}; skipped"));
                Ok(None)
            }
        }
    }

    /// The components `k` applies, innermost first (a component's own components before it),
    /// each read once.
    fn components(&mut self, k: &Read, out: &mut Vec<Read>) -> Result<(), Error> {
        for c in strings(&k.value, "components") {
            if is_remote(c) {
                self.notes.push(format!(
                    "{} includes the remote component {c}, which is not followed",
                    k.file
                ));
                continue;
            }
            let Some(path) = join_path(&k.dir, c) else {
                self.notes
                    .push(format!("{}: {c} points outside the repository", k.file));
                continue;
            };
            let Some(cf) = kustomization_in(self.snap, &path)? else {
                self.notes.push(format!(
                    "{} lists the component {c}, which has no kustomization file at this commit",
                    k.file
                ));
                continue;
            };
            if out.iter().any(|r| r.file == cf) {
                self.notes
                    .push(format!("{} lists {c} twice; counted once", k.file));
                continue;
            }
            self.enter(&cf)?;
            let read = self.read(&cf)?;
            if let Some(read) = read {
                let nested = self.components(&read, out);
                if let Err(e) = nested {
                    self.stack.pop();
                    return Err(e);
                }
                out.push(read);
            }
            self.stack.pop();
        }
        Ok(())
    }

    fn kustomization(
        &mut self,
        file: &str,
        outer: &Transform,
        layers: &[Layer],
    ) -> Result<(), Error> {
        self.enter(file)?;
        let result = self.kustomization_inner(file, outer, layers);
        self.stack.pop();
        result
    }

    fn kustomization_inner(
        &mut self,
        file: &str,
        outer: &Transform,
        outer_layers: &[Layer],
    ) -> Result<(), Error> {
        let Some(k) = self.read(file)? else {
            return Ok(());
        };
        let mut components = Vec::new();
        self.components(&k, &mut components)?;
        let mut layers = outer_layers.to_vec();
        layers.push(Layer {
            file: file.to_string(),
            components: components.iter().map(|c| c.file.clone()).collect(),
        });
        let mut order: Vec<&Value> = components.iter().map(|c| &c.value).collect();
        order.push(&k.value);
        let t = outer.wrap(&Transform::of(&order));
        let mut listed: HashSet<String> = HashSet::new();
        for holder in components.iter().chain(std::iter::once(&k)) {
            self.resources(holder, &t, &layers, &mut listed)?;
        }
        // Generators run after the components: only what comes after transforms their output.
        for (i, holder) in components.iter().chain(std::iter::once(&k)).enumerate() {
            let g = outer.wrap(&Transform::of(&order[i..]));
            self.generators(holder, &g, &layers);
        }
        Ok(())
    }

    /// The `resources` and `bases` of `k` (a kustomization or a component).
    fn resources(
        &mut self,
        k: &Read,
        t: &Transform,
        layers: &[Layer],
        listed: &mut HashSet<String>,
    ) -> Result<(), Error> {
        let file = k.file.as_str();
        for r in strings(&k.value, "crds") {
            self.notes.push(format!(
                "{file} lists {r} under crds: kustomize reads it for the schema only and does not build it"
            ));
        }
        for key in ["resources", "bases"] {
            for r in strings(&k.value, key) {
                if is_remote(r) {
                    self.notes.push(format!(
                        "{file} includes the remote resource {r}, which is not followed"
                    ));
                    continue;
                }
                let Some(path) = join_path(&k.dir, r) else {
                    self.notes
                        .push(format!("{file}: {r} points outside the repository"));
                    continue;
                };
                if !listed.insert(path.clone()) {
                    self.notes
                        .push(format!("{file} lists {r} twice; counted once"));
                    continue;
                }
                match self.snap.kind(&path)? {
                    Some(EntryKind::File) => self.file(&path, t, layers)?,
                    Some(EntryKind::Dir) => match kustomization_in(self.snap, &path)? {
                        Some(inner) => self.kustomization(&inner, t, layers)?,
                        None => self.directory(&path, t, false, self.stack.len(), layers)?,
                    },
                    _ => self.notes.push(format!(
                        "{file} lists {r}, which does not exist at this commit"
                    )),
                }
            }
        }
        if k.value.get("helmCharts").is_some() {
            self.notes.push(format!(
                "{file} inflates Helm charts, which are not mapped to files"
            ));
        }
        Ok(())
    }

    /// The objects `configMapGenerator` and `secretGenerator` of `k` make.
    fn generators(&mut self, k: &Read, t: &Transform, layers: &[Layer]) {
        // Lines of the generator entries, for the location shown.
        let docs = parse_documents(&k.text).ok();
        let tree: Option<Node<'_>> = docs.as_ref().and_then(|d| d.iter().find_map(|d| d.root()));
        let flag = |v: Option<&Value>| {
            v.and_then(|o| o.get("disableNameSuffixHash"))
                .is_some_and(|b| b == &Value::Bool(true) || b.as_str() == Some("true"))
        };
        let hash_off = flag(k.value.get("generatorOptions"));
        for (key, kind) in [
            ("configMapGenerator", "ConfigMap"),
            ("secretGenerator", "Secret"),
        ] {
            let Some(list) = k.value.get(key).and_then(Value::as_array) else {
                continue;
            };
            for (i, item) in list.iter().enumerate() {
                let Some(name) = item.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let behavior = item
                    .get("behavior")
                    .and_then(Value::as_str)
                    .unwrap_or("create");
                if behavior != "create" {
                    continue;
                }
                let hashed = !hash_off && !flag(item.get("options"));
                let namespace = t
                    .namespace
                    .clone()
                    .or_else(|| {
                        item.get("namespace")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .or_else(|| self.build.default_namespace.clone());
                let line = tree
                    .as_ref()
                    .and_then(|n| n.get(key))
                    .and_then(|l| l.items().get(i).map(Node::line))
                    .unwrap_or(1);
                self.entries.push(Entry {
                    file: k.file.clone(),
                    doc: None,
                    first_line: line,
                    last_line: line,
                    group: String::new(),
                    kind: kind.to_string(),
                    source_name: name.to_string(),
                    name: format!("{}{name}{}", t.prefix, t.suffix),
                    namespace,
                    hashed,
                    transform: t.clone(),
                    layers: innermost_first(layers),
                });
            }
        }
    }

    /// Flux's generated kustomization: every manifest below `dir`; a subdirectory with its own
    /// kustomization file is built as one resource.
    fn flux_generated(&mut self, dir: &str, t: &Transform, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(bad(
                dir,
                format!(
                    "directories are nested more than {MAX_DEPTH} deep below the build path; they are not followed that far"
                ),
            ));
        }
        let Some(list) = self.snap.list(dir)? else {
            return Ok(());
        };
        for (name, kind) in list {
            let path = join_path(dir, &name).unwrap_or_default();
            match kind {
                EntryKind::File if is_manifest_name(&name) => self.file(&path, t, &[])?,
                EntryKind::Dir => match kustomization_in(self.snap, &path)? {
                    Some(k) => self.kustomization(&k, t, &[])?,
                    None => self.flux_generated(&path, t, depth + 1)?,
                },
                _ => {}
            }
        }
        Ok(())
    }

    /// A plain directory of manifests (Argo CD's directory source, or a directory resource of a
    /// kustomization): its files, and with `recurse` all below it, kustomization files or not.
    fn directory(
        &mut self,
        dir: &str,
        t: &Transform,
        recurse: bool,
        depth: usize,
        layers: &[Layer],
    ) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(bad(
                dir,
                format!(
                    "directories are nested more than {MAX_DEPTH} deep below the build path; they are not followed that far"
                ),
            ));
        }
        let Some(list) = self.snap.list(dir)? else {
            return Ok(());
        };
        for (name, kind) in list {
            let path = join_path(dir, &name).unwrap_or_default();
            match kind {
                EntryKind::File if is_manifest_name(&name) => self.file(&path, t, layers)?,
                EntryKind::Dir if recurse => self.directory(&path, t, true, depth + 1, layers)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn file(&mut self, path: &str, t: &Transform, layers: &[Layer]) -> Result<(), Error> {
        let Some(bytes) = self.snap.read(path)? else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(&bytes);
        let docs = match parse_documents(&text) {
            Ok(d) => d,
            Err(e) => {
                self.notes
                    .push(format!("{path} is not valid YAML ({e}); skipped"));
                return Ok(());
            }
        };
        for doc in docs {
            let Some(root) = doc.root() else { continue };
            let kind = root.str_at(&["kind"]).unwrap_or_default();
            if kind == "List" || (kind.ends_with("List") && root.get("items").is_some()) {
                for item in root.get("items").map(Node::items).unwrap_or_default() {
                    self.document(path, doc.index, (item.line(), item.line()), item, t, layers);
                }
                continue;
            }
            self.document(
                path,
                doc.index,
                (doc.first_line, doc.last_line),
                root,
                t,
                layers,
            );
        }
        Ok(())
    }

    fn document(
        &mut self,
        path: &str,
        index: usize,
        (first, last): (usize, usize),
        root: Node<'_>,
        t: &Transform,
        layers: &[Layer],
    ) {
        let (Some(api_version), Some(kind), Some(name)) = (
            root.str_at(&["apiVersion"]),
            root.str_at(&["kind"]),
            root.str_at(&["metadata", "name"]),
        ) else {
            return;
        };
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let final_name = if kind == "Namespace" {
            t.namespace.clone().unwrap_or_else(|| name.to_string())
        } else if NOT_PREFIXED.contains(&kind) {
            name.to_string()
        } else {
            format!("{}{name}{}", t.prefix, t.suffix)
        };
        let namespace = if kind == "Namespace" {
            None
        } else {
            t.namespace
                .clone()
                .or_else(|| root.str_at(&["metadata", "namespace"]).map(str::to_string))
                .or_else(|| self.build.default_namespace.clone())
        };
        self.entries.push(Entry {
            file: path.to_string(),
            doc: Some(index),
            first_line: first,
            last_line: last,
            group: group.to_string(),
            kind: kind.to_string(),
            source_name: name.to_string(),
            name: final_name,
            namespace,
            hashed: false,
            transform: t.clone(),
            layers: innermost_first(layers),
        });
    }
}

fn show(path: &str) -> String {
    if path.is_empty() {
        "the repository root".into()
    } else {
        path.to_string()
    }
}

/// The layers of a walk (outermost first) as an entry keeps them: innermost first.
fn innermost_first(layers: &[Layer]) -> Vec<Layer> {
    layers.iter().rev().cloned().collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use serde_json::Value;

    use super::super::{Build, Entry, Index, Renderer, index};
    use crate::Error;
    use crate::change::target;
    use crate::git::{Repo, RepoOrigin};

    /// A repository with one commit holding `files`.
    struct Fixture {
        _dir: tempfile::TempDir,
        repo: Repo,
        commit: gix::ObjectId,
    }

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn fixture(files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        git(dir.path(), &["init", "-q"]);
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-qm", "fixture"]);
        let head = git(dir.path(), &["rev-parse", "HEAD"]);
        let commit = gix::ObjectId::from_hex(head.trim().as_bytes()).unwrap();
        let repo = Repo::open(dir.path(), RepoOrigin::Cache).unwrap();
        Fixture {
            _dir: dir,
            repo,
            commit,
        }
    }

    fn flux(path: &str) -> Build {
        Build {
            path: path.into(),
            renderer: Renderer::Flux,
            name_prefix: String::new(),
            name_suffix: String::new(),
            namespace: None,
            default_namespace: None,
        }
    }

    fn deployment(name: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n        - name: app\n          image: nginx:1.0\n"
        )
    }

    fn config_map(name: &str) -> String {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: b\n")
    }

    fn build_index(fx: &Fixture, build: &Build) -> Result<Index, Error> {
        let snap = fx.repo.snapshot(fx.commit)?;
        index(&snap, build)
    }

    /// For every document entry: the object the change side computes from the entry's layers
    /// has the name and namespace the reading side gives it. Returns those objects by name.
    fn agree(fx: &Fixture, build: &Build) -> Vec<(Entry, Value)> {
        let snap = fx.repo.snapshot(fx.commit).unwrap();
        let index = index(&snap, build).unwrap();
        let mut out = Vec::new();
        for e in index.entries.iter().filter(|e| e.doc.is_some()) {
            let def = target::define(&snap, build, e).unwrap();
            let object = def.effective().unwrap();
            assert_eq!(
                object.pointer("/metadata/name").and_then(Value::as_str),
                Some(e.name.as_str()),
                "name of {} from {}",
                e.source_name,
                e.file
            );
            assert_eq!(
                object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str),
                e.namespace.as_deref(),
                "namespace of {} from {}",
                e.source_name,
                e.file
            );
            out.push((e.clone(), object));
        }
        out
    }

    fn names(entries: &[(Entry, Value)]) -> Vec<&str> {
        let mut n: Vec<&str> = entries.iter().map(|(e, _)| e.name.as_str()).collect();
        n.sort_unstable();
        n
    }

    #[test]
    fn components_inside_components_rename_and_patch_everything_once() {
        let fx = fixture(&[
            ("base/kustomization.yaml", "resources: [web.yaml]\n"),
            ("base/web.yaml", &deployment("web")),
            (
                "prod/Kustomization",
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: prod\nbases: [../base]\ncomponents: [../comp-a]\n",
            ),
            (
                "comp-a/kustomization.yaml",
                "kind: Component\nnamePrefix: a-\nresources: [extra.yaml]\ncomponents: [../comp-b]\n",
            ),
            ("comp-a/extra.yaml", &config_map("extra")),
            (
                "comp-b/kustomization.yaml",
                "kind: Component\nnameSuffix: -b\npatches:\n  - target: {kind: Deployment}\n    patch: |\n      - op: add\n        path: /spec/template/spec/containers/-\n        value: {name: sidecar, image: envoy:1}\n",
            ),
        ]);
        let objects = agree(&fx, &flux("prod"));
        assert_eq!(names(&objects), ["a-extra-b", "a-web-b"]);
        let (web, object) = objects.iter().find(|(e, _)| e.name == "a-web-b").unwrap();
        assert_eq!(object["metadata"]["namespace"], "prod");
        // The component's patch is applied once, not once per layer that reaches it.
        let containers = object["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 2, "{object}");
        assert_eq!(
            web.layers
                .iter()
                .map(|l| (l.file.as_str(), l.components.clone()))
                .collect::<Vec<_>>(),
            [
                ("base/kustomization.yaml", vec![]),
                (
                    "prod/Kustomization",
                    vec![
                        "comp-b/kustomization.yaml".to_string(),
                        "comp-a/kustomization.yaml".to_string()
                    ]
                ),
            ]
        );
    }

    #[test]
    fn each_copy_of_a_shared_base_gets_the_patches_of_its_own_overlay() {
        let overlay = |prefix: &str, replicas: u32| {
            format!(
                "namePrefix: {prefix}\nresources: [../base]\nreplicas:\n  - name: web\n    count: {replicas}\n"
            )
        };
        let fx = fixture(&[
            ("all/kustomization.yaml", "resources: [../one, ../two]\n"),
            ("one/kustomization.yaml", &overlay("one-", 2)),
            ("two/kustomization.yaml", &overlay("two-", 3)),
            ("base/kustomization.yaml", "resources: [web.yaml]\n"),
            ("base/web.yaml", &deployment("web")),
        ]);
        let objects = agree(&fx, &flux("all"));
        assert_eq!(names(&objects), ["one-web", "two-web"]);
        for (e, object) in &objects {
            let want = if e.name == "one-web" { 2 } else { 3 };
            assert_eq!(object["spec"]["replicas"], want, "{}", e.name);
        }
    }

    #[test]
    fn crds_twice_listed_missing_and_plain_directory_resources() {
        let fx = fixture(&[
            (
                "app/kustomization.yaml",
                "namePrefix: p-\ncrds: [crd.yaml]\nresources:\n  - web.yaml\n  - ./web.yaml\n  - gone.yaml\n  - plain\n",
            ),
            (
                "app/crd.yaml",
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\n",
            ),
            ("app/web.yaml", &deployment("web")),
            ("app/plain/settings.yaml", &config_map("settings")),
            ("app/plain/deeper/ignored.yaml", &config_map("ignored")),
        ]);
        let build = flux("app");
        let objects = agree(&fx, &build);
        // The CRD is read for its schema only; web counts once; a plain directory resource is
        // its own files, not those below it.
        assert_eq!(names(&objects), ["p-settings", "p-web"]);
        let notes = build_index(&fx, &build).unwrap().notes.join("\n");
        assert!(notes.contains("crd.yaml under crds"), "{notes}");
        assert!(notes.contains("lists ./web.yaml twice"), "{notes}");
        assert!(
            notes.contains("lists gone.yaml, which does not exist"),
            "{notes}"
        );
    }

    #[test]
    fn argo_directory_recurse_reads_files_below_a_kustomization_as_they_are() {
        let fx = fixture(&[
            ("apps/web.yaml", &deployment("web")),
            (
                "apps/sub/kustomization.yaml",
                "namePrefix: p-\nresources: [api.yaml]\n",
            ),
            ("apps/sub/api.yaml", &deployment("api")),
        ]);
        let build = Build {
            renderer: Renderer::ArgoDirectory { recurse: true },
            ..flux("apps")
        };
        let objects = agree(&fx, &build);
        assert_eq!(names(&objects), ["api", "web"]);
        assert!(objects.iter().all(|(e, _)| e.layers.is_empty()));
        // Flux builds the subdirectory with its kustomization.
        assert_eq!(names(&agree(&fx, &flux("apps"))), ["p-api", "web"]);
    }

    #[test]
    fn cycles_and_deep_nesting_are_errors_naming_the_files() {
        let fx = fixture(&[
            ("a/kustomization.yaml", "resources: [../b]\n"),
            ("b/kustomization.yaml", "resources: [../a]\n"),
            ("c/kustomization.yaml", "components: [../c]\n"),
        ]);
        let e = build_index(&fx, &flux("a")).unwrap_err().to_string();
        assert!(
            e.contains("a/kustomization.yaml → b/kustomization.yaml → a/kustomization.yaml"),
            "{e}"
        );
        let e = build_index(&fx, &flux("c")).unwrap_err().to_string();
        assert!(
            e.contains("c/kustomization.yaml → c/kustomization.yaml"),
            "{e}"
        );

        let mut files: Vec<(String, String)> = (0..50)
            .map(|i| {
                (
                    format!("d{i}/kustomization.yaml"),
                    format!("resources: [../d{}]\n", i + 1),
                )
            })
            .collect();
        files.push(("d50/kustomization.yaml".into(), "resources: []\n".into()));
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let fx = fixture(&refs);
        let e = build_index(&fx, &flux("d0")).unwrap_err().to_string();
        assert!(e.contains("nested more than 40 deep"), "{e}");
        assert!(
            e.contains("d0/kustomization.yaml → d1/kustomization.yaml"),
            "{e}"
        );
    }
}
