//! What a build of the owner's path would produce, as a list of [`Entry`]s: every document the
//! build includes, with the name and namespace the build gives it.
//!
//! Followed: `kustomization.yaml` (`.yml`, `Kustomization`) `resources`, `bases`, `components`,
//! `crds`, nested to any depth; `namePrefix`, `nameSuffix` and `namespace` (outer layers wrap inner
//! ones; the outermost namespace wins; Namespace, CustomResourceDefinition and APIService names are
//! not prefixed; the namespace transformer renames Namespace objects); `configMapGenerator` and
//! `secretGenerator` (names get a content hash suffix unless disabled). Without a kustomization
//! file, Flux includes every manifest below the path (a subdirectory with a kustomization file
//! counts as one resource) and Argo CD includes the path's own files (all below it with
//! `directory.recurse`). Remote resources and Helm charts are noted, not followed.

use std::collections::HashSet;

use super::yaml::{Node, parse_documents};
use super::{Build, Entry, Renderer};
use crate::Error;
use crate::git::{EntryKind, Snapshot, join_path};

const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
const NOT_PREFIXED: [&str; 3] = ["Namespace", "CustomResourceDefinition", "APIService"];

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
}

fn is_manifest_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")
}

fn is_remote(resource: &str) -> bool {
    resource.contains("://")
        || resource.starts_with("git@")
        || resource.starts_with("github.com/")
        || resource.starts_with("gitlab.com/")
        || resource.contains("?ref=")
}

pub(super) struct Walker<'s, 'r> {
    snap: &'s Snapshot<'r>,
    build: &'s Build,
    pub entries: Vec<Entry>,
    pub notes: Vec<String>,
    visiting: HashSet<String>,
}

impl<'s, 'r> Walker<'s, 'r> {
    pub fn new(snap: &'s Snapshot<'r>, build: &'s Build) -> Self {
        Walker {
            snap,
            build,
            entries: Vec::new(),
            notes: Vec::new(),
            visiting: HashSet::new(),
        }
    }

    fn kustomization_in(&self, dir: &str) -> Result<Option<String>, Error> {
        for name in KUSTOMIZATION_FILES {
            let path = join_path(dir, name).unwrap_or_default();
            if self.snap.kind(&path)? == Some(EntryKind::File) {
                return Ok(Some(path));
            }
        }
        Ok(None)
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
            Some(EntryKind::File) => return self.file(&root, &outer),
            Some(_) => {}
        }
        if let Some(k) = self.kustomization_in(&root)? {
            return self.kustomization(&root, &k, &outer);
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
            Renderer::Flux => self.flux_generated(&root, &outer),
            Renderer::ArgoDirectory { recurse } => self.directory(&root, &outer, recurse),
        }
    }

    fn kustomization(&mut self, dir: &str, file: &str, outer: &Transform) -> Result<(), Error> {
        if !self.visiting.insert(file.to_string()) {
            self.notes.push(format!(
                "{file} is included twice (or in a cycle); counted once"
            ));
            return Ok(());
        }
        let Some(bytes) = self.snap.read(file)? else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(&bytes);
        let docs = match parse_documents(&text) {
            Ok(d) => d,
            Err(e) => {
                self.notes.push(format!("{file} is not valid YAML ({e})"));
                return Ok(());
            }
        };
        let Some(k) = docs.iter().find_map(|d| d.root()) else {
            return Ok(());
        };
        let own = Transform {
            prefix: k.str_at(&["namePrefix"]).unwrap_or_default().to_string(),
            suffix: k.str_at(&["nameSuffix"]).unwrap_or_default().to_string(),
            namespace: k
                .str_at(&["namespace"])
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        };
        let t = outer.wrap(&own);
        for key in ["resources", "bases", "components", "crds"] {
            let Some(list) = k.get(key) else { continue };
            for item in list.items() {
                let Some(r) = item.as_str() else { continue };
                if is_remote(r) {
                    self.notes.push(format!(
                        "{file} includes the remote resource {r}, which is not followed"
                    ));
                    continue;
                }
                let Some(path) = join_path(dir, r) else {
                    self.notes
                        .push(format!("{file}: {r} points outside the repository"));
                    continue;
                };
                match self.snap.kind(&path)? {
                    Some(EntryKind::File) => self.file(&path, &t)?,
                    Some(EntryKind::Dir) => match self.kustomization_in(&path)? {
                        Some(inner) => self.kustomization(&path, &inner, &t)?,
                        None => self.directory(&path, &t, false)?,
                    },
                    _ => self.notes.push(format!(
                        "{file} lists {r}, which does not exist at this commit"
                    )),
                }
            }
        }
        if k.get("helmCharts").is_some() {
            self.notes.push(format!(
                "{file} inflates Helm charts, which are not mapped to files"
            ));
        }
        let hash_off = k
            .get("generatorOptions")
            .and_then(|o| o.get("disableNameSuffixHash"))
            .and_then(Node::as_str)
            == Some("true");
        for (key, kind) in [
            ("configMapGenerator", "ConfigMap"),
            ("secretGenerator", "Secret"),
        ] {
            let Some(list) = k.get(key) else { continue };
            for item in list.items() {
                let Some(name) = item.str_at(&["name"]) else {
                    continue;
                };
                let behavior = item.str_at(&["behavior"]).unwrap_or("create");
                if behavior != "create" {
                    continue;
                }
                let hashed = !hash_off
                    && item
                        .get("options")
                        .and_then(|o| o.get("disableNameSuffixHash"))
                        .and_then(Node::as_str)
                        != Some("true");
                let namespace = t
                    .namespace
                    .clone()
                    .or_else(|| item.str_at(&["namespace"]).map(str::to_string))
                    .or_else(|| self.build.default_namespace.clone());
                self.entries.push(Entry {
                    file: file.to_string(),
                    doc: None,
                    first_line: item.line(),
                    last_line: item.line(),
                    group: String::new(),
                    kind: kind.to_string(),
                    source_name: name.to_string(),
                    name: format!("{}{name}{}", t.prefix, t.suffix),
                    namespace,
                    hashed,
                    transform: t.clone(),
                });
            }
        }
        self.visiting.remove(file);
        Ok(())
    }

    /// Flux's generated kustomization: every manifest below `dir`; a subdirectory with its own
    /// kustomization file is built as one resource.
    fn flux_generated(&mut self, dir: &str, t: &Transform) -> Result<(), Error> {
        let Some(list) = self.snap.list(dir)? else {
            return Ok(());
        };
        for (name, kind) in list {
            let path = join_path(dir, &name).unwrap_or_default();
            match kind {
                EntryKind::File if is_manifest_name(&name) => self.file(&path, t)?,
                EntryKind::Dir => match self.kustomization_in(&path)? {
                    Some(k) => self.kustomization(&path, &k, t)?,
                    None => self.flux_generated(&path, t)?,
                },
                _ => {}
            }
        }
        Ok(())
    }

    /// A plain directory of manifests (Argo CD's directory source).
    fn directory(&mut self, dir: &str, t: &Transform, recurse: bool) -> Result<(), Error> {
        let Some(list) = self.snap.list(dir)? else {
            return Ok(());
        };
        for (name, kind) in list {
            let path = join_path(dir, &name).unwrap_or_default();
            match kind {
                EntryKind::File if is_manifest_name(&name) => self.file(&path, t)?,
                EntryKind::Dir if recurse => self.directory(&path, t, true)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn file(&mut self, path: &str, t: &Transform) -> Result<(), Error> {
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
                    self.document(path, doc.index, item.line(), item.line(), item, t);
                }
                continue;
            }
            self.document(path, doc.index, doc.first_line, doc.last_line, root, t);
        }
        Ok(())
    }

    fn document(
        &mut self,
        path: &str,
        index: usize,
        first: usize,
        last: usize,
        root: Node<'_>,
        t: &Transform,
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
