//! Where a field of an object is actually set in Git.
//!
//! An object is its document in a manifest file, changed by the kustomization layers around it
//! on the way to the owner's path: strategic-merge and JSON 6902 patches (`patches`,
//! `patchesStrategicMerge`, `patchesJson6902`, in files or inline, also from `components`), the
//! `images` and `replicas` transformers, and common labels, annotations, namespace and name
//! prefix/suffix. [`Definition::effective`] computes the object those sources give;
//! [`Definition::route`] writes a change to that object into the source that sets each field —
//! the patch or transformer entry that sets it last, else the document itself — and checks that
//! the sources then give exactly the intended object. Fields set for every object of a layer
//! (common labels, namespace, name prefix) are refused with a message naming the file.
//!
//! The layers are those the build model recorded for the object's entry
//! ([`crate::manifest::kustomize`]): the change side does not walk the tree again.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::Error;
use crate::change::error::Error as ChangeError;
use crate::git::{EntryKind, Snapshot, join_path};
use crate::manifest::kustomize::{self, NOT_PREFIXED, bad, dir_of, is_kustomization_file};
use crate::manifest::{Build, Entry};
use crate::patch_target;
use crate::splice::{self, Change, DocSpan, FieldPath, PathSegment};

use super::diff::FileChange;
use super::shared;

/// Fields by which strategic merge patches merge lists of objects (as in `splice`).
const MERGE_KEYS: &[&str] = &[
    "name",
    "mountPath",
    "devicePath",
    "containerPort",
    "port",
    "ip",
    "type",
];

/// The texts of the files a definition reads, as in Git and with the edits made so far.
#[derive(Debug, Clone, Default)]
pub struct Files {
    original: BTreeMap<String, String>,
    current: BTreeMap<String, String>,
}

impl Files {
    /// The current text of a file read during [`define`].
    pub fn get(&self, path: &str) -> Option<&str> {
        self.current
            .get(path)
            .or_else(|| self.original.get(path))
            .map(String::as_str)
    }

    /// The text in Git.
    pub fn original(&self, path: &str) -> Option<&str> {
        self.original.get(path).map(String::as_str)
    }

    /// Whether the file has been edited (its text is not the one read).
    pub fn is_edited(&self, path: &str) -> bool {
        self.current.contains_key(path)
    }

    pub fn set(&mut self, path: &str, text: String) {
        self.current.insert(path.to_string(), text);
    }

    /// The files whose text changed, in path order.
    pub fn changes(&self) -> Vec<FileChange> {
        self.current
            .iter()
            .filter_map(|(p, new)| {
                let old = self.original.get(p)?;
                (old != new).then(|| FileChange {
                    path: p.clone(),
                    old: old.clone(),
                    new: new.clone(),
                })
            })
            .collect()
    }
}

/// How to find the object's document in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocRef {
    pub file: String,
    pub index: usize,
    pub kind: String,
    /// The name written in the file.
    pub name: String,
    pub namespace: Option<String>,
}

impl DocRef {
    /// The span of the document in `text`: by kind and name (and namespace when the file names
    /// one), else by position.
    pub fn span(&self, text: &str) -> Option<DocSpan> {
        self.span_in(&splice::find_documents(text))
    }

    /// [`DocRef::span`] among a file's documents already found.
    fn span_in(&self, docs: &[DocSpan]) -> Option<DocSpan> {
        let matching: Vec<&DocSpan> = docs
            .iter()
            .filter(|d| d.is_object(&self.kind, &self.name, self.namespace.as_deref()))
            .collect();
        match matching.as_slice() {
            [one] => Some((*one).clone()),
            _ => docs
                .iter()
                .find(|d| d.index == self.index && d.kind.as_deref() == Some(self.kind.as_str()))
                .cloned(),
        }
    }
}

/// Where the text of a patch is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PatchText {
    /// A document of a patch file.
    File { path: String, index: usize },
    /// A string inside a kustomization file (`patch: |` or a `patchesStrategicMerge` item).
    Inline { file: String, at: FieldPath },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Patch {
    json6902: bool,
    text: PatchText,
    /// `apps/prod/kustomization.yaml (patches[1])` or `apps/prod/replicas-patch.yaml`.
    origin: String,
}

/// One transformation a layer makes, in the order it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Patch(Patch),
    /// `replicas[index]` of the kustomization file.
    Replicas {
        file: String,
        index: usize,
    },
    /// `images[index]` of the kustomization file.
    Images {
        file: String,
        index: usize,
    },
    /// Labels for every object: the map, whether selectors and templates get them too.
    Labels {
        file: String,
        field: String,
        labels: Map<String, Value>,
        selectors: bool,
        templates: bool,
    },
    Annotations {
        file: String,
        annotations: Map<String, Value>,
    },
    Namespace {
        file: String,
        namespace: String,
    },
    Name {
        file: String,
        prefix: String,
        suffix: String,
    },
}

/// A source that set a field of the object on the way from its document (see
/// [`Definition::setters`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setter {
    /// The field (or the map or list it set as a whole).
    pub path: FieldPath,
    /// The file: a patch file, or the kustomization file holding the patch or entry.
    pub file: String,
    /// What in the file: `patch` for a patch file, else `patches[1].patch`, `images[0]`, ….
    pub what: String,
}

/// The setter a field's value comes from: the last whose path is the field or holds it.
pub fn setter_of<'s>(setters: &'s [Setter], field: &[PathSegment]) -> Option<&'s Setter> {
    setters.iter().rev().find(|s| {
        let p = s.path.segments();
        p.len() <= field.len() && p.iter().zip(field).all(|(a, b)| a == b)
    })
}

/// The object's own overlay: the kustomization at its build root, read by no other build.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnOverlay {
    file: String,
    /// Its steps are `steps[from..end]`.
    from: usize,
    end: usize,
}

/// Everything that defines an object in Git.
#[derive(Debug, Clone)]
pub struct Definition {
    pub doc: DocRef,
    /// The document's span in its file as read, and the document parsed: what [`Definition::states`]
    /// starts from while the file has no edit (so the file is not split and parsed again).
    original: (DocSpan, Value),
    /// The kustomization files around the document, innermost first.
    pub layers: Vec<String>,
    steps: Vec<Step>,
    pub files: Files,
    /// Workload kinds get common labels in selectors and templates.
    kind: String,
    /// Files of the definition that other builds in the repository read too → those builds.
    shared: BTreeMap<String, Vec<String>>,
    own: Option<OwnOverlay>,
    /// Write a change to a shared file there (`--in-base`) rather than in the own overlay.
    pub in_base: bool,
    /// The files the definition reads (the document, layers, patch files, components).
    read: Vec<String>,
    /// What a person should know about where the change went (printed to stderr).
    pub notes: Vec<String>,
}

/// The object identity patch targets are matched against.
#[derive(Debug, Clone)]
struct Identity {
    group: String,
    version: String,
    kind: String,
    /// Names the object may be matched by (as written, and as the layers rename it).
    names: Vec<String>,
    namespace: Option<String>,
    labels: Map<String, Value>,
    annotations: Map<String, Value>,
}

impl Identity {
    /// Whether a patch `target` selects the object; a target kustomize refuses is an error
    /// naming the file.
    fn matches_target(&self, target: &Value, file: &str) -> Result<bool, Error> {
        patch_target::selects(
            target,
            &patch_target::Subject {
                group: &self.group,
                version: &self.version,
                kind: &self.kind,
                names: &self.names,
                namespace: self.namespace.as_deref(),
                labels: &self.labels,
                annotations: &self.annotations,
            },
        )
        .map_err(|e| bad(file, format!("a patch there does not apply: {e}")))
    }

    /// A strategic merge patch without a target applies to the object it names.
    fn named_by(&self, patch: &Value) -> bool {
        let kind = patch.get("kind").and_then(Value::as_str);
        let name = patch.pointer("/metadata/name").and_then(Value::as_str);
        let ns = patch.pointer("/metadata/namespace").and_then(Value::as_str);
        kind == Some(self.kind.as_str())
            && name.is_some_and(|n| self.names.iter().any(|m| m == n))
            && match (ns, &self.namespace) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// Reads the files of a definition while it is built.
struct Reader<'s, 'r> {
    snap: &'s Snapshot<'r>,
    files: Files,
}

impl Reader<'_, '_> {
    fn text(&mut self, path: &str) -> Result<Option<String>, Error> {
        if let Some(t) = self.files.original.get(path) {
            return Ok(Some(t.clone()));
        }
        let t = kustomize::read_text(self.snap, path)?;
        if let Some(t) = &t {
            self.files.original.insert(path.to_string(), t.clone());
        }
        Ok(t)
    }
}

fn string_map(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

/// The definition of the object `entry` describes, built by `build`, at the snapshot.
pub fn define(snap: &Snapshot<'_>, build: &Build, entry: &Entry) -> Result<Definition, Error> {
    define_in(snap, build, entry, None)
}

/// [`define`] with the snapshot's kustomization graph, when the caller has read it
/// (`shared::Graph::of` reads every directory of the repository: callers defining many objects
/// at one commit read it once for all of them); `None` reads it here.
pub fn define_in(
    snap: &Snapshot<'_>,
    build: &Build,
    entry: &Entry,
    graph: Option<&shared::Graph>,
) -> Result<Definition, Error> {
    let Some(doc_index) = entry.doc else {
        return Err(ChangeError::GeneratedObject {
            resource: format!("{}/{}", entry.kind.to_ascii_lowercase(), entry.name),
            file: entry.file.clone(),
        }
        .into());
    };
    let mut reader = Reader {
        snap,
        files: Files::default(),
    };
    let text = reader
        .text(&entry.file)?
        .ok_or_else(|| bad(&entry.file, "the file does not exist at this commit"))?;
    let docs = splice::find_documents(&text);
    let source_ns = docs
        .iter()
        .find(|d| d.is_object(&entry.kind, &entry.source_name, None))
        .and_then(|d| d.namespace.clone());
    let doc = DocRef {
        file: entry.file.clone(),
        index: doc_index,
        kind: entry.kind.clone(),
        name: entry.source_name.clone(),
        namespace: source_ns,
    };
    let span = doc.span_in(&docs).ok_or_else(|| {
        bad(
            &entry.file,
            format!("no document of {} {} in it", entry.kind, entry.source_name),
        )
    })?;
    let base = splice::parse_document(&text[span.range.clone()])?;
    let original = (span.clone(), base.clone());
    let api_version = base
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (group, version) = match api_version.rsplit_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    };
    let mut identity = Identity {
        group,
        version,
        kind: entry.kind.clone(),
        names: vec![entry.source_name.clone()],
        namespace: doc.namespace.clone(),
        labels: string_map(base.pointer("/metadata/labels")),
        annotations: string_map(base.pointer("/metadata/annotations")),
    };
    let mut steps = Vec::new();
    let mut own = None;
    // The layers the build model recorded for the entry, innermost first; each layer's
    // components transform what it holds before its own transformers do.
    let mut layers = Vec::new();
    for (i, layer) in entry.layers.iter().enumerate() {
        let from = steps.len();
        for c in &layer.components {
            layer_steps(&mut reader, c, &mut identity, &mut steps)?;
            layers.push(c.clone());
        }
        layer_steps(&mut reader, &layer.file, &mut identity, &mut steps)?;
        layers.push(layer.file.clone());
        if i + 1 == entry.layers.len() && dir_of(&layer.file) == build.path {
            own = Some(OwnOverlay {
                file: layer.file.clone(),
                from,
                end: steps.len(),
            });
        }
    }
    // What else in the repository reads the files that define the object.
    let read_here;
    let graph = match graph {
        Some(g) => g,
        None => {
            read_here = shared::Graph::of(snap)?;
            &read_here
        }
    };
    // Every file a step reads: the document, the layers, patch files, and the kustomization
    // files of components (whose entries and inline patches are steps too).
    let mut read: Vec<&str> = vec![doc.file.as_str()];
    read.extend(layers.iter().map(String::as_str));
    for step in &steps {
        let file = match step {
            Step::Patch(Patch {
                text: PatchText::File { path, .. },
                ..
            }) => path,
            Step::Patch(Patch {
                text: PatchText::Inline { file, .. },
                ..
            })
            | Step::Replicas { file, .. }
            | Step::Images { file, .. }
            | Step::Labels { file, .. }
            | Step::Annotations { file, .. }
            | Step::Namespace { file, .. }
            | Step::Name { file, .. } => file,
        };
        if !read.contains(&file.as_str()) {
            read.push(file);
        }
    }
    let mut shared_files = BTreeMap::new();
    for &file in &read {
        let node = if is_kustomization_file(file) {
            shared::kustomization_dir(file)
        } else {
            file.to_string()
        };
        let others = graph.others(&node, &build.path);
        if !others.is_empty() {
            shared_files.insert(file.to_string(), others);
        }
    }
    let own = own.filter(|o: &OwnOverlay| !shared_files.contains_key(&o.file));
    let read: Vec<String> = read.iter().map(|f| (*f).to_string()).collect();
    // The owner's own name prefix, suffix and namespace (Flux `spec.namePrefix`,
    // `spec.targetNamespace`; Argo CD `kustomize.namePrefix`, `kustomize.namespace`).
    if !build.name_prefix.is_empty() || !build.name_suffix.is_empty() {
        steps.push(Step::Name {
            file: "the owner's spec".into(),
            prefix: build.name_prefix.clone(),
            suffix: build.name_suffix.clone(),
        });
    }
    if let Some(ns) = &build.namespace {
        steps.push(Step::Namespace {
            file: "the owner's spec".into(),
            namespace: ns.clone(),
        });
    }
    Ok(Definition {
        doc,
        original,
        layers,
        steps,
        files: reader.files,
        kind: entry.kind.clone(),
        shared: shared_files,
        own,
        in_base: false,
        read,
        notes: Vec::new(),
    })
}

/// The steps of one kustomization (or component) file itself, in kustomize's order; its
/// components are layers of their own (see [`crate::manifest::Layer`]).
fn layer_steps(
    reader: &mut Reader<'_, '_>,
    file: &str,
    identity: &mut Identity,
    steps: &mut Vec<Step>,
) -> Result<(), Error> {
    let text = reader
        .text(file)?
        .ok_or_else(|| bad(file, "the file does not exist at this commit"))?;
    let (_, k) = kustomize::parse(&text, file)?;
    let dir = dir_of(file);
    // Strategic merge patches listed as files or inline texts.
    if let Some(items) = k.get("patchesStrategicMerge").and_then(Value::as_array) {
        for (i, item) in items.iter().enumerate() {
            let Some(s) = item.as_str() else { continue };
            let at = FieldPath::keys(["patchesStrategicMerge"]).index(i);
            let is_file = join_path(&dir, s)
                .map(|p| reader.snap.kind(&p).ok().flatten() == Some(EntryKind::File))
                .unwrap_or(false)
                && !s.contains('\n');
            if is_file {
                let path = join_path(&dir, s).unwrap_or_default();
                smp_file_steps(reader, &path, None, identity, steps)?;
            } else if let Ok(v) = splice::parse_document(s)
                && identity.named_by(&v)
            {
                steps.push(Step::Patch(Patch {
                    json6902: false,
                    text: PatchText::Inline {
                        file: file.to_string(),
                        at: at.clone(),
                    },
                    origin: format!("{file} ({at})"),
                }));
            }
        }
    }
    // `patches`: a file or inline text, strategic merge or JSON 6902, with an optional target.
    if let Some(items) = k.get("patches").and_then(Value::as_array) {
        for (i, item) in items.iter().enumerate() {
            let target = item.get("target");
            if let Some(t) = target
                && !identity.matches_target(t, file)?
            {
                continue;
            }
            if let Some(p) = item.get("path").and_then(Value::as_str) {
                let Some(path) = join_path(&dir, p) else {
                    continue;
                };
                smp_file_steps(reader, &path, target, identity, steps)?;
            } else if let Some(p) = item.get("patch").and_then(Value::as_str) {
                let at = FieldPath::keys(["patches"]).index(i).key("patch");
                let v = splice::parse_document(p).map_err(|e| {
                    bad(
                        file,
                        format!("the inline patch at {at} is not valid YAML: {e}"),
                    )
                })?;
                let json6902 = v.is_array();
                if !json6902 && target.is_none() && !identity.named_by(&v) {
                    continue;
                }
                steps.push(Step::Patch(Patch {
                    json6902,
                    text: PatchText::Inline {
                        file: file.to_string(),
                        at: at.clone(),
                    },
                    origin: format!("{file} ({at})"),
                }));
            }
        }
    }
    if let Some(items) = k.get("patchesJson6902").and_then(Value::as_array) {
        for (i, item) in items.iter().enumerate() {
            let selected = match item.get("target") {
                Some(t) => identity.matches_target(t, file)?,
                None => false,
            };
            if !selected {
                continue;
            }
            if let Some(p) = item.get("path").and_then(Value::as_str) {
                let Some(path) = join_path(&dir, p) else {
                    continue;
                };
                if reader.text(&path)?.is_none() {
                    return Err(bad(
                        file,
                        format!("patchesJson6902[{i}] names {p}, which does not exist"),
                    ));
                }
                steps.push(Step::Patch(Patch {
                    json6902: true,
                    text: PatchText::File {
                        path: path.clone(),
                        index: 0,
                    },
                    origin: path,
                }));
            } else if item.get("patch").is_some_and(Value::is_string) {
                let at = FieldPath::keys(["patchesJson6902"]).index(i).key("patch");
                steps.push(Step::Patch(Patch {
                    json6902: true,
                    text: PatchText::Inline {
                        file: file.to_string(),
                        at: at.clone(),
                    },
                    origin: format!("{file} ({at})"),
                }));
            }
        }
    }
    if let Some(items) = k.get("replicas").and_then(Value::as_array) {
        for (index, item) in items.iter().enumerate() {
            let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
            if identity.names.iter().any(|n| n == name) {
                steps.push(Step::Replicas {
                    file: file.to_string(),
                    index,
                });
            }
        }
    }
    if let Some(items) = k.get("images").and_then(Value::as_array) {
        for index in 0..items.len() {
            steps.push(Step::Images {
                file: file.to_string(),
                index,
            });
        }
    }
    let common = string_map(k.get("commonLabels"));
    if !common.is_empty() {
        identity.labels.extend(common.clone());
        steps.push(Step::Labels {
            file: file.to_string(),
            field: "commonLabels".into(),
            labels: common,
            selectors: true,
            templates: true,
        });
    }
    if let Some(sets) = k.get("labels").and_then(Value::as_array) {
        for (i, set) in sets.iter().enumerate() {
            let pairs = string_map(set.get("pairs"));
            if pairs.is_empty() {
                continue;
            }
            let selectors = set.get("includeSelectors").and_then(Value::as_bool) == Some(true);
            let templates =
                selectors || set.get("includeTemplates").and_then(Value::as_bool) == Some(true);
            identity.labels.extend(pairs.clone());
            steps.push(Step::Labels {
                file: file.to_string(),
                field: format!("labels[{i}]"),
                labels: pairs,
                selectors,
                templates,
            });
        }
    }
    let annotations = string_map(k.get("commonAnnotations"));
    if !annotations.is_empty() {
        identity.annotations.extend(annotations.clone());
        steps.push(Step::Annotations {
            file: file.to_string(),
            annotations,
        });
    }
    let prefix = k
        .get("namePrefix")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let suffix = k
        .get("nameSuffix")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if (!prefix.is_empty() || !suffix.is_empty()) && !NOT_PREFIXED.contains(&identity.kind.as_str())
    {
        let renamed: Vec<String> = identity
            .names
            .iter()
            .map(|n| format!("{prefix}{n}{suffix}"))
            .collect();
        identity.names.extend(renamed);
        steps.push(Step::Name {
            file: file.to_string(),
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
        });
    }
    if let Some(ns) = k
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        identity.namespace = Some(ns.to_string());
        steps.push(Step::Namespace {
            file: file.to_string(),
            namespace: ns.to_string(),
        });
    }
    Ok(())
}

/// The documents of a strategic merge patch file that apply to the object (a file can hold
/// several patches; a JSON 6902 file is one list of operations).
fn smp_file_steps(
    reader: &mut Reader<'_, '_>,
    path: &str,
    target: Option<&Value>,
    identity: &Identity,
    steps: &mut Vec<Step>,
) -> Result<(), Error> {
    let text = reader
        .text(path)?
        .ok_or_else(|| bad(path, "the patch file does not exist at this commit"))?;
    for d in splice::find_documents(&text) {
        if d.is_empty() {
            continue;
        }
        let v = splice::parse_document(&text[d.range.clone()])?;
        let json6902 = v.is_array();
        let applies = if json6902 {
            target.is_some()
        } else {
            target.is_some() || identity.named_by(&v)
        };
        if applies {
            steps.push(Step::Patch(Patch {
                json6902,
                text: PatchText::File {
                    path: path.to_string(),
                    index: d.index,
                },
                origin: path.to_string(),
            }));
        }
    }
    Ok(())
}

fn nth_doc(text: &str, index: usize) -> Option<DocSpan> {
    splice::find_documents(text)
        .into_iter()
        .find(|d| d.index == index)
}

/// An image reference split as kustomize does: name, tag, digest.
fn split_image(image: &str) -> (String, Option<String>, Option<String>) {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d.to_string())),
        None => (image, None),
    };
    // A tag is after the last `:` that comes after the last `/` (a registry port is not a tag).
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].rfind(':') {
        Some(i) => (
            rest[..slash + i].to_string(),
            Some(rest[slash + i + 1..].to_string()),
            digest,
        ),
        None => (rest.to_string(), None, digest),
    }
}

fn join_image(name: &str, tag: Option<&str>, digest: Option<&str>) -> String {
    match (tag, digest) {
        (_, Some(d)) => format!("{name}@{d}"),
        (Some(t), None) => format!("{name}:{t}"),
        (None, None) => name.to_string(),
    }
}

/// Kustomize's image transformer on one image, if the entry names it.
fn transform_image(image: &str, entry: &Value) -> Option<String> {
    let (name, tag, digest) = split_image(image);
    if entry.get("name").and_then(Value::as_str) != Some(name.as_str()) {
        return None;
    }
    let new_name = entry
        .get("newName")
        .and_then(Value::as_str)
        .unwrap_or(&name);
    let new_tag = entry.get("newTag").map(|t| match t {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let new_digest = entry.get("digest").and_then(Value::as_str);
    let (t, d) = match (new_digest, new_tag) {
        (Some(d), _) => (None, Some(d.to_string())),
        (None, Some(t)) => (Some(t), None),
        (None, None) => (tag, digest),
    };
    Some(join_image(new_name, t.as_deref(), d.as_deref()))
}

/// The image fields of a pod template: (path, value).
fn image_fields(obj: &Value, kind: &str) -> Vec<(FieldPath, String)> {
    let Some(spec) = splice::pod_spec_path(kind) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        let path = spec.clone().key(list);
        if let Some(items) = obj.pointer(&path.to_pointer()).and_then(Value::as_array) {
            for (i, c) in items.iter().enumerate() {
                if let Some(img) = c.get("image").and_then(Value::as_str) {
                    out.push((path.clone().index(i).key("image"), img.to_string()));
                }
            }
        }
    }
    out
}

fn is_workload(kind: &str) -> bool {
    splice::pod_spec_path(kind).is_some() && kind != "Pod"
}

fn set_at(obj: &mut Value, path: &[&str], value: Value) {
    let mut cur = obj;
    for (i, k) in path.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(m) = cur else { return };
        if i + 1 == path.len() {
            m.insert((*k).to_string(), value);
            return;
        }
        cur = m
            .entry((*k).to_string())
            .or_insert(Value::Object(Map::new()));
    }
}

fn merge_into(obj: &mut Value, path: &[&str], pairs: &Map<String, Value>) {
    for (k, v) in pairs {
        let mut full: Vec<&str> = path.to_vec();
        full.push(k);
        set_at(obj, &full, v.clone());
    }
}

/// Where a change goes.
#[derive(Debug, Clone, PartialEq)]
enum Route {
    /// The document itself, at this path.
    Base(FieldPath),
    /// Step `step` (a patch), at this path inside the patch text.
    Patch(usize, FieldPath),
    /// A kustomization file's own fields (replicas / images entries).
    Kustomization(String),
}

impl Definition {
    /// Which source changed which fields on the way from the document to the object: for each
    /// step of the build that changes something (a patch, an `images` or `replicas` entry,
    /// common labels or annotations), the paths it changed, in build order. A field's value
    /// comes from the last setter whose path covers it, else from the document. The owner's own
    /// renames (name prefix, target namespace) are left out.
    pub fn setters(&self) -> Result<Vec<Setter>, Error> {
        self.setters_from(&self.states()?)
    }

    /// [`Definition::setters`] and [`Definition::effective`] from one replay of the layers.
    pub fn setters_and_effective(&self) -> Result<(Vec<Setter>, Value), Error> {
        let mut states = self.states()?;
        let setters = self.setters_from(&states)?;
        Ok((setters, states.pop().unwrap_or(Value::Null)))
    }

    fn setters_from(&self, states: &[Value]) -> Result<Vec<Setter>, Error> {
        let mut out = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let (file, what) = match step {
                Step::Patch(p) => match &p.text {
                    PatchText::File { path, .. } => (path.clone(), "patch".to_string()),
                    PatchText::Inline { file, at } => (file.clone(), at.to_string()),
                },
                Step::Replicas { file, index } => (file.clone(), format!("replicas[{index}]")),
                Step::Images { file, index } => (file.clone(), format!("images[{index}]")),
                Step::Labels { file, field, .. } => (file.clone(), field.clone()),
                Step::Annotations { file, .. } => (file.clone(), "commonAnnotations".into()),
                Step::Namespace { .. } | Step::Name { .. } => continue,
            };
            let (Some(before), Some(after)) = (states.get(i), states.get(i + 1)) else {
                continue;
            };
            for change in splice::changes_between(before, after) {
                out.push(Setter {
                    path: change.path().clone(),
                    file: file.clone(),
                    what: what.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Other owners on the cluster that build from the same repository (`(who, path)`, e.g.
    /// `("Flux Kustomization flux-system/staging", "apps/staging")`): the files of this
    /// definition their builds read are shared with them too — a base another cluster's
    /// Kustomization applies directly, or the same overlay applied twice.
    pub fn also_built_by(
        &mut self,
        snap: &Snapshot<'_>,
        builds: &[(String, String)],
    ) -> Result<(), Error> {
        if builds.is_empty() {
            return Ok(());
        }
        let graph = shared::Graph::of(snap)?;
        for file in &self.read {
            let node = if is_kustomization_file(file) {
                shared::kustomization_dir(file)
            } else {
                file.clone()
            };
            for (who, path) in builds {
                if graph.builds(path, &node) {
                    let others = self.shared.entry(file.clone()).or_default();
                    if !others.contains(who) {
                        others.push(who.clone());
                    }
                }
            }
        }
        if self
            .own
            .as_ref()
            .is_some_and(|o| self.shared.contains_key(&o.file))
        {
            self.own = None;
        }
        Ok(())
    }

    /// Whether other builds in the repository read the object's document too (a shared base).
    pub fn shares_document(&self) -> bool {
        self.shared.contains_key(&self.doc.file)
    }

    /// Whether the object is exactly its document: no patch or transformer changes its content
    /// (a namespace or name prefix only renames it).
    pub fn is_plain(&self) -> Result<bool, Error> {
        let states = self.states()?;
        for (i, s) in self.steps.iter().enumerate() {
            match s {
                Step::Namespace { .. } | Step::Name { .. } => {}
                Step::Patch(_) | Step::Replicas { .. } => return Ok(false),
                _ if states[i] != states[i + 1] => return Ok(false),
                _ => {}
            }
        }
        Ok(true)
    }

    /// Files that shape the object besides its own file (for messages).
    pub fn sources(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.steps {
            let o = match s {
                Step::Patch(p) => p.origin.clone(),
                Step::Replicas { file, index } => format!("{file} (replicas[{index}])"),
                Step::Images { .. } => continue,
                Step::Labels { file, field, .. } => format!("{file} ({field})"),
                Step::Annotations { file, .. } => format!("{file} (commonAnnotations)"),
                Step::Namespace { file, .. } => format!("{file} (namespace)"),
                Step::Name { file, .. } => format!("{file} (namePrefix/nameSuffix)"),
            };
            if !out.contains(&o) {
                out.push(o);
            }
        }
        out
    }

    /// The document's span and value as read, while its file has no edit.
    fn unedited(&self) -> Option<&(DocSpan, Value)> {
        (!self.files.is_edited(&self.doc.file)).then_some(&self.original)
    }

    /// The text and span of the object's document now.
    pub fn base_doc(&self) -> Result<(String, DocSpan), Error> {
        let text = self
            .files
            .get(&self.doc.file)
            .ok_or_else(|| bad(&self.doc.file, "the file is gone"))?
            .to_string();
        if let Some((span, _)) = self.unedited() {
            return Ok((text, span.clone()));
        }
        let span = self.doc.span(&text).ok_or_else(|| {
            bad(
                &self.doc.file,
                format!("no document of {} {} in it", self.doc.kind, self.doc.name),
            )
        })?;
        Ok((text, span))
    }

    fn patch_value(&self, p: &Patch) -> Result<Value, Error> {
        match &p.text {
            PatchText::File { path, index } => {
                let text = self
                    .files
                    .get(path)
                    .ok_or_else(|| bad(path, "the patch file is gone"))?;
                let span = nth_doc(text, *index)
                    .ok_or_else(|| bad(path, format!("it has no document {index}")))?;
                Ok(splice::parse_document(&text[span.range])?)
            }
            PatchText::Inline { file, at } => {
                let s = self.inline_text(file, at)?;
                Ok(splice::parse_document(&s)?)
            }
        }
    }

    fn inline_text(&self, file: &str, at: &FieldPath) -> Result<String, Error> {
        let text = self
            .files
            .get(file)
            .ok_or_else(|| bad(file, "the kustomization file is gone"))?;
        let (_, k) = kustomize::parse(text, file)?;
        k.pointer(&at.to_pointer())
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad(file, format!("{at} is not a text")))
    }

    fn kustomization_value(&self, file: &str) -> Result<Value, Error> {
        let text = self
            .files
            .get(file)
            .ok_or_else(|| bad(file, "the kustomization file is gone"))?;
        Ok(kustomize::parse(text, file)?.1)
    }

    /// The object the sources give now, and the object before each step (`states[i]` is the
    /// object before step `i`; the last is the result).
    fn states(&self) -> Result<Vec<Value>, Error> {
        let mut v = match self.unedited() {
            Some((_, doc)) => doc.clone(),
            None => {
                let (text, span) = self.base_doc()?;
                splice::parse_document(&text[span.range])?
            }
        };
        let mut states = vec![v.clone()];
        for step in &self.steps {
            match step {
                Step::Patch(p) => {
                    let pv = self.patch_value(p)?;
                    if p.json6902 {
                        splice::json_patch(&mut v, &pv).map_err(|e| {
                            bad(&p.origin, format!("the JSON patch does not apply: {e}"))
                        })?;
                    } else {
                        let mut patch = pv;
                        // The identity fields of a patch only select; they are not changes.
                        if let Some(m) = patch.as_object_mut() {
                            m.remove("apiVersion");
                            m.remove("kind");
                        }
                        if let Some(meta) = patch.get_mut("metadata").and_then(Value::as_object_mut)
                        {
                            meta.remove("name");
                            meta.remove("namespace");
                        }
                        splice::strategic_merge_patch(&mut v, &patch);
                    }
                }
                Step::Replicas { file, index } => {
                    let k = self.kustomization_value(file)?;
                    if let Some(count) = k.pointer(&format!("/replicas/{index}/count")) {
                        set_at(&mut v, &["spec", "replicas"], count.clone());
                    }
                }
                Step::Images { file, index } => {
                    let k = self.kustomization_value(file)?;
                    if let Some(entry) = k.pointer(&format!("/images/{index}")) {
                        for (path, img) in image_fields(&v, &self.kind) {
                            if let Some(new) = transform_image(&img, entry)
                                && let Some(slot) = v.pointer_mut(&path.to_pointer())
                            {
                                *slot = Value::String(new);
                            }
                        }
                    }
                }
                Step::Labels {
                    labels,
                    selectors,
                    templates,
                    ..
                } => {
                    merge_into(&mut v, &["metadata", "labels"], labels);
                    if is_workload(&self.kind) {
                        if *selectors {
                            merge_into(&mut v, &["spec", "selector", "matchLabels"], labels);
                        }
                        if *templates {
                            merge_into(&mut v, &["spec", "template", "metadata", "labels"], labels);
                        }
                    }
                }
                Step::Annotations { annotations, .. } => {
                    merge_into(&mut v, &["metadata", "annotations"], annotations);
                    if is_workload(&self.kind) {
                        merge_into(
                            &mut v,
                            &["spec", "template", "metadata", "annotations"],
                            annotations,
                        );
                    }
                }
                Step::Namespace { namespace, .. } => {
                    if self.kind != "Namespace" {
                        set_at(
                            &mut v,
                            &["metadata", "namespace"],
                            Value::String(namespace.clone()),
                        );
                    }
                }
                Step::Name { prefix, suffix, .. } => {
                    if !NOT_PREFIXED.contains(&self.kind.as_str())
                        && let Some(Value::String(n)) = v.pointer_mut("/metadata/name")
                    {
                        *n = format!("{prefix}{n}{suffix}");
                    }
                }
            }
            states.push(v.clone());
        }
        Ok(states)
    }

    /// The object as the sources define it now.
    pub fn effective(&self) -> Result<Value, Error> {
        Ok(self.states()?.pop().unwrap_or(Value::Null))
    }

    /// Writes the change from `old` (the effective object now) to `new` into the sources; on
    /// success [`Definition::files`] holds the new texts. Fails without changing anything when
    /// a field is set for every object of a layer, or when the sources would not give `new`.
    pub fn route(&mut self, old: &Value, new: &Value) -> Result<(), Error> {
        self.notes.clear();
        let changes = splice::changes_between(old, new);
        if changes.is_empty() {
            return Ok(());
        }
        let states = self.states()?;
        // Each route with the change to the object it comes from.
        let mut routes: Vec<(Route, Change, &Change)> = Vec::new();
        for c in &changes {
            for (route, change) in self.route_one(&states, old, c)? {
                routes.push((route, change, c));
            }
        }
        // Changes that would land in a file other builds read too: in the own overlay instead
        // (unless --in-base), said either way. What moves is the change to the object, not its
        // rewrite for the shared file.
        let mut moved: Vec<(Change, String)> = Vec::new();
        let mut kept = Vec::new();
        for (route, change, object_change) in routes {
            let file = self.route_file(&route);
            match self.shared.get(&file) {
                Some(others) if self.in_base => {
                    let note = format!(
                        "note: {file} is also built by {}: the change to {} reaches them too (--in-base)",
                        others.join(", "),
                        change.path()
                    );
                    if !self.notes.contains(&note) {
                        self.notes.push(note);
                    }
                    kept.push((route, change, object_change));
                }
                Some(others) => {
                    if !moved.iter().any(|(c, _)| c == object_change) {
                        moved.push((
                            object_change.clone(),
                            format!("{file} (also built by {})", others.join(", ")),
                        ));
                    }
                }
                None => kept.push((route, change, object_change)),
            }
        }
        // A change moved to the own overlay is written there alone.
        let kept: Vec<(Route, Change)> = kept
            .into_iter()
            .filter(|(_, _, o)| !moved.iter().any(|(c, _)| c == *o))
            .map(|(route, change, _)| (route, change))
            .collect();
        let saved = self.files.clone();
        let saved_steps = self.steps.clone();
        let result = self
            .apply_routes(kept)
            .and_then(|()| self.write_in_own_overlay(&states, old, moved));
        if let Err(e) = result {
            self.files = saved;
            self.steps = saved_steps;
            return Err(e);
        }
        let now = self.effective();
        match now {
            Ok(v) if &v == new => Ok(()),
            Ok(v) => {
                let left: Vec<String> = splice::changes_between(&v, new)
                    .iter()
                    .map(|c| c.path().to_string())
                    .collect();
                self.files = saved;
                self.steps = saved_steps;
                Err(ChangeError::KustomizeRoute {
                    file: self.doc.file.clone(),
                    paths: left.join(", "),
                    sources: self.sources().join(", "),
                }
                .into())
            }
            Err(e) => {
                self.files = saved;
                self.steps = saved_steps;
                Err(e)
            }
        }
    }

    /// The file a route writes.
    fn route_file(&self, route: &Route) -> String {
        match route {
            Route::Base(_) => self.doc.file.clone(),
            Route::Kustomization(file) => file.clone(),
            Route::Patch(i, _) => match self.steps.get(*i) {
                Some(Step::Patch(Patch {
                    text: PatchText::File { path, .. },
                    ..
                })) => path.clone(),
                Some(Step::Patch(Patch {
                    text: PatchText::Inline { file, .. },
                    ..
                })) => file.clone(),
                _ => self.doc.file.clone(),
            },
        }
    }

    /// Writes changes that belong to shared files into the own overlay: an `images` entry of it
    /// for an image it already names, else one JSON 6902 patch for the object.
    fn write_in_own_overlay(
        &mut self,
        states: &[Value],
        old: &Value,
        moved: Vec<(Change, String)>,
    ) -> Result<(), Error> {
        let Some((first, from)) = moved.first() else {
            return Ok(());
        };
        let Some(own) = self.own.clone() else {
            return Err(ChangeError::SharedField {
                path: first.path().to_string(),
                file: from.clone(),
                why: "and the object has no overlay of its own to change it in (no kustomization file at its build path that other builds do not read)".into(),
            }.into());
        };
        let entering = &states[own.from];
        let mut ops: Vec<Value> = Vec::new();
        let mut kustomization: Vec<Change> = Vec::new();
        let mut wheres: Vec<String> = Vec::new();
        for (change, from) in &moved {
            let path = map_path(old, entering, change.path().segments())
                .unwrap_or_else(|| change.path().clone());
            if !wheres.contains(from) {
                wheres.push(from.clone());
            }
            // An image the own overlay's `images` entry already names: change the entry.
            if let Some(c) = self.own_image_entry(&own, entering, &path, change)? {
                kustomization.extend(c);
                continue;
            }
            ops.push(json6902_op(entering, &path, change));
        }
        if !ops.is_empty() {
            let k = self.kustomization_value(&own.file)?;
            let index = k
                .get("patches")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let name = entering
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or(&self.doc.name)
                .to_string();
            let text = ops
                .iter()
                .map(|op| {
                    let pointer = op["path"].as_str().unwrap_or_default();
                    // A pointer of plain characters stays plain; anything else is quoted.
                    let pointer = if pointer
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/_.~-".contains(c))
                    {
                        pointer.to_string()
                    } else {
                        Value::String(pointer.to_string()).to_string()
                    };
                    let mut line = format!(
                        "- op: {}\n  path: {pointer}",
                        op["op"].as_str().unwrap_or("add")
                    );
                    if let Some(v) = op.get("value") {
                        line.push_str(&format!("\n  value: {v}"));
                    }
                    line.push('\n');
                    line
                })
                .collect::<String>();
            // The target first, then the patch, as people write them. kustomize reads the name
            // as an anchored regular expression: a dot is escaped so it selects this name only;
            // the namespace, when the object has one there, narrows it further.
            let mut target =
                serde_json::json!({"kind": self.doc.kind, "name": name.replace('.', "\\.")});
            if let Some(ns) = entering
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
            {
                target["namespace"] = Value::String(ns.to_string());
            }
            let item = serde_json::json!({ "target": target });
            kustomization.push(if k.get("patches").is_none() {
                Change::set(FieldPath::keys(["patches"]), Value::Array(vec![item]))
            } else {
                Change::set(FieldPath::keys(["patches"]).index(index), item)
            });
            let at = FieldPath::keys(["patches"]).index(index).key("patch");
            kustomization.push(Change::set(at.clone(), Value::String(text)));
            // Where kustomize applies `patches`: before the overlay's own JSON 6902 patches,
            // replicas and images entries, labels, annotations, namespace and name prefix.
            let insert_at = (own.from..own.end)
                .find(|&i| match &self.steps[i] {
                    Step::Replicas { file, .. }
                    | Step::Images { file, .. }
                    | Step::Labels { file, .. }
                    | Step::Annotations { file, .. }
                    | Step::Namespace { file, .. }
                    | Step::Name { file, .. } => *file == own.file,
                    Step::Patch(Patch {
                        text: PatchText::Inline { file, at },
                        ..
                    }) => *file == own.file && at.to_string().starts_with("patchesJson6902"),
                    Step::Patch(_) => false,
                })
                .unwrap_or(own.end);
            self.steps.insert(
                insert_at,
                Step::Patch(Patch {
                    json6902: true,
                    text: PatchText::Inline {
                        file: own.file.clone(),
                        at: at.clone(),
                    },
                    origin: format!("{} ({at})", own.file),
                }),
            );
        }
        let text = self
            .files
            .get(&own.file)
            .ok_or_else(|| bad(&own.file, "the kustomization file is gone"))?
            .to_string();
        let (span, _) = kustomize::parse(&text, &own.file)?;
        let new = splice::apply_changes_to_file(&text, &span, &kustomization)?;
        self.files.set(&own.file, new);
        self.notes.push(format!(
            "note: {} is set in {}; the change is written in {}, for this overlay only (--in-base changes the shared place for all of them)",
            moved
                .iter()
                .map(|(c, _)| c.path().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            wheres.join(", "),
            own.file
        ));
        Ok(())
    }

    /// The changes to the own overlay's `images` entry that names this container's image.
    fn own_image_entry(
        &self,
        own: &OwnOverlay,
        entering: &Value,
        path: &FieldPath,
        change: &Change,
    ) -> Result<Option<Vec<Change>>, Error> {
        let is_image = path.segments().last().is_some_and(|s| s.same_key("image"));
        let (
            true,
            Change::Set {
                value: Value::String(new_image),
                ..
            },
        ) = (is_image, change)
        else {
            return Ok(None);
        };
        let Some(current) = entering.pointer(&path.to_pointer()).and_then(Value::as_str) else {
            return Ok(None);
        };
        let (current_name, _, _) = split_image(current);
        let k = self.kustomization_value(&own.file)?;
        let entries = k
            .get("images")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.get("name").and_then(Value::as_str) == Some(current_name.as_str()))
            .map(|(index, entry)| image_entry_changes(entry, index, new_image)))
    }

    /// Where one change goes.
    fn route_one(
        &self,
        states: &[Value],
        old: &Value,
        change: &Change,
    ) -> Result<Vec<(Route, Change)>, Error> {
        let path = change.path().clone();
        let segs = path.segments();
        // Identity fields are never changed here.
        let refuse = |file: &str, why: String| {
            ChangeError::LayerField {
                path: path.to_string(),
                file: file.to_string(),
                why,
            }
            .into()
        };
        // Walk the steps from the last applied back to the first.
        for (i, step) in self.steps.iter().enumerate().rev() {
            match step {
                Step::Namespace { file, .. } if key_path(segs) == ["metadata", "namespace"] => {
                    return Err(refuse(file, "the namespace of every object there".into()));
                }
                Step::Name { file, .. } if key_path(segs) == ["metadata", "name"] => {
                    return Err(refuse(
                        file,
                        "the name prefix or suffix of every object there".into(),
                    ));
                }
                Step::Labels {
                    file,
                    field,
                    labels,
                    ..
                } => {
                    if let Some(k) = label_key(segs, "labels")
                        && labels.contains_key(&k)
                    {
                        return Err(refuse(
                            file,
                            format!("{field}, which labels every object of that kustomization"),
                        ));
                    }
                }
                Step::Annotations {
                    file, annotations, ..
                } => {
                    if let Some(k) = label_key(segs, "annotations")
                        && annotations.contains_key(&k)
                    {
                        return Err(refuse(
                            file,
                            "commonAnnotations, which annotates every object of that kustomization"
                                .into(),
                        ));
                    }
                }
                Step::Replicas { file, index } if key_path(segs) == ["spec", "replicas"] => {
                    return Ok(vec![(
                        Route::Kustomization(file.clone()),
                        match change {
                            Change::Set { value, .. } => Change::set(
                                FieldPath::keys(["replicas"]).index(*index).key("count"),
                                value.clone(),
                            ),
                            _ => {
                                return Err(refuse(
                                    file,
                                    format!("replicas[{index}], which sets the replica count"),
                                ));
                            }
                        },
                    )]);
                }
                Step::Images { file, index } => {
                    let before = &states[i];
                    let after = &states[i + 1];
                    let before_img = before.pointer(&path.to_pointer()).and_then(Value::as_str);
                    let after_img = after.pointer(&path.to_pointer()).and_then(Value::as_str);
                    let is_image = segs.last().is_some_and(|s| s.same_key("image"));
                    let k = self.kustomization_value(file)?;
                    let entry = k
                        .pointer(&format!("/images/{index}"))
                        .cloned()
                        .unwrap_or_default();
                    // The entry sets the image even when it pins what the document already says
                    // (a tag equal to the base's): a change elsewhere would be pinned back.
                    let pins = before_img.is_some_and(|img| {
                        entry.get("name").and_then(Value::as_str)
                            == Some(split_image(img).0.as_str())
                            && ["newName", "newTag", "digest"]
                                .iter()
                                .any(|k| entry.get(*k).is_some())
                    });
                    if is_image && before_img.is_some() && (before_img != after_img || pins) {
                        let Change::Set {
                            value: Value::String(new_image),
                            ..
                        } = change
                        else {
                            return Err(refuse(
                                file,
                                format!("images[{index}], which sets this image"),
                            ));
                        };
                        return Ok(image_entry_changes(&entry, *index, new_image)
                            .into_iter()
                            .map(|c| (Route::Kustomization(file.clone()), c))
                            .collect());
                    }
                }
                Step::Patch(p) => {
                    let pv = self.patch_value(p)?;
                    if p.json6902 {
                        if let Some(r) = json6902_route(&pv, change, &p.origin, &path)? {
                            return Ok(vec![(Route::Patch(i, r.clone()), change.clone_to(r))]);
                        }
                    } else if let Some(r) = smp_route(&states[i + 1], &pv, change, segs) {
                        if matches!(change, Change::Delete { .. }) {
                            // Delete it wherever it is set, so that it is gone for good.
                            let mut all = vec![(Route::Patch(i, r.clone()), change.clone_to(r))];
                            all.extend(self.deletes_before(states, i, change)?);
                            return Ok(all);
                        }
                        return Ok(vec![(Route::Patch(i, r.clone()), change.clone_to(r))]);
                    }
                }
                _ => {}
            }
        }
        // Not set by any step: the document itself.
        let base = &states[0];
        let mapped = map_path(old, base, segs).ok_or_else(|| ChangeError::KustomizeRoute {
            file: self.doc.file.clone(),
            paths: path.to_string(),
            sources: self.sources().join(", "),
        })?;
        Ok(vec![(Route::Base(mapped.clone()), change.clone_to(mapped))])
    }

    /// A delete also removes the field from earlier patches and the document.
    fn deletes_before(
        &self,
        states: &[Value],
        upto: usize,
        change: &Change,
    ) -> Result<Vec<(Route, Change)>, Error> {
        let segs = change.path().segments();
        let mut out = Vec::new();
        for (i, step) in self.steps.iter().enumerate().take(upto) {
            if let Step::Patch(p) = step
                && !p.json6902
            {
                let pv = self.patch_value(p)?;
                if let Some(r) = smp_route(&states[i + 1], &pv, change, segs) {
                    out.push((Route::Patch(i, r.clone()), change.clone_to(r)));
                }
            }
        }
        if let Some(r) = map_path(&states[states.len() - 1], &states[0], segs)
            && get(&states[0], r.segments()).is_some()
        {
            out.push((Route::Base(r.clone()), change.clone_to(r)));
        }
        Ok(out)
    }

    fn apply_routes(&mut self, routes: Vec<(Route, Change)>) -> Result<(), Error> {
        let mut base = Vec::new();
        let mut patches: BTreeMap<usize, Vec<Change>> = BTreeMap::new();
        let mut kustomizations: BTreeMap<String, Vec<Change>> = BTreeMap::new();
        for (route, change) in routes {
            match route {
                Route::Base(_) => base.push(change),
                Route::Patch(i, _) => patches.entry(i).or_default().push(change),
                Route::Kustomization(file) => kustomizations.entry(file).or_default().push(change),
            }
        }
        if !base.is_empty() {
            let (text, span) = self.base_doc()?;
            let new = splice::apply_changes_to_file(&text, &span, &base)?;
            self.files.set(&self.doc.file.clone(), new);
        }
        for (i, changes) in patches {
            let Some(Step::Patch(p)) = self.steps.get(i).cloned() else {
                continue;
            };
            match &p.text {
                PatchText::File { path, index } => {
                    let text = self
                        .files
                        .get(path)
                        .ok_or_else(|| bad(path, "the patch file is gone"))?
                        .to_string();
                    let span = nth_doc(&text, *index)
                        .ok_or_else(|| bad(path, format!("it has no document {index}")))?;
                    let new = splice::apply_changes_to_file(&text, &span, &changes)?;
                    self.files.set(path, new);
                }
                PatchText::Inline { file, at } => {
                    let inner = self.inline_text(file, at)?;
                    let new_inner = splice::apply_changes(&inner, &changes)?;
                    kustomizations
                        .entry(file.clone())
                        .or_default()
                        .push(Change::set(at.clone(), Value::String(new_inner)));
                }
            }
        }
        for (file, changes) in kustomizations {
            let text = self
                .files
                .get(&file)
                .ok_or_else(|| bad(&file, "the kustomization file is gone"))?
                .to_string();
            let (span, _) = kustomize::parse(&text, &file)?;
            let new = splice::apply_changes_to_file(&text, &span, &changes)?;
            self.files.set(&file, new);
        }
        Ok(())
    }
}

trait ChangeExt {
    fn clone_to(&self, path: FieldPath) -> Change;
}

impl ChangeExt for Change {
    fn clone_to(&self, path: FieldPath) -> Change {
        match self {
            Change::Set { value, .. } => Change::set(path, value.clone()),
            Change::Insert { value, .. } => Change::insert(path, value.clone()),
            Change::Delete { .. } => Change::delete(path),
        }
    }
}

trait SegExt {
    fn same_key(&self, k: &str) -> bool;
}

impl SegExt for PathSegment {
    fn same_key(&self, k: &str) -> bool {
        matches!(self, PathSegment::Key(s) if s == k)
    }
}

fn key_path(segs: &[PathSegment]) -> Vec<String> {
    segs.iter()
        .map(|s| match s {
            PathSegment::Key(k) => k.clone(),
            PathSegment::Index(i) => i.to_string(),
        })
        .collect()
}

/// `metadata.<field>.<key>` (or the same under the selector or pod template): the key.
fn label_key(segs: &[PathSegment], field: &str) -> Option<String> {
    let keys = key_path(segs);
    let k: Vec<&str> = keys.iter().map(String::as_str).collect();
    match k.as_slice() {
        ["metadata", f, key] if *f == field => Some((*key).to_string()),
        ["spec", "template", "metadata", f, key] if *f == field => Some((*key).to_string()),
        ["spec", "selector", "matchLabels", key] if field == "labels" => Some((*key).to_string()),
        _ => None,
    }
}

/// The value at a path of an object, if there is one.
pub fn value_at<'v>(v: &'v Value, segs: &[PathSegment]) -> Option<&'v Value> {
    get(v, segs)
}

/// The value at `segs` in `v`, to change it.
pub fn value_at_mut<'v>(v: &'v mut Value, segs: &[PathSegment]) -> Option<&'v mut Value> {
    let mut cur = v;
    for s in segs {
        cur = match (cur, s) {
            (Value::Object(m), PathSegment::Key(k)) => m.get_mut(k)?,
            (Value::Array(a), PathSegment::Index(i)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn get<'v>(v: &'v Value, segs: &[PathSegment]) -> Option<&'v Value> {
    let mut cur = v;
    for s in segs {
        cur = match (cur, s) {
            (Value::Object(m), PathSegment::Key(k)) => m.get(k)?,
            (Value::Array(a), PathSegment::Index(i)) => a.get(*i)?,
            (Value::Array(a), PathSegment::Key(k)) => a.get(k.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Applies one change to a JSON value: `Set` creates missing parent maps (an index equal to a
/// list's length appends), `Insert` inserts a list item, `Delete` removes a key or item. Returns
/// false when the path runs into something else.
pub(super) fn apply_change(root: &mut Value, change: &Change) -> bool {
    let segs = change.path().segments();
    let Some((last, parents)) = segs.split_last() else {
        if let Change::Set { value, .. } = change {
            *root = value.clone();
            return true;
        }
        return false;
    };
    let mut cur = root;
    for s in parents {
        let next = match (cur, s) {
            (Value::Object(m), PathSegment::Key(k)) => {
                if !matches!(change, Change::Set { .. }) && !m.contains_key(k) {
                    return matches!(change, Change::Delete { .. });
                }
                m.entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()))
            }
            (Value::Array(a), PathSegment::Index(i)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return matches!(change, Change::Delete { .. }),
            },
            (v @ Value::Null, PathSegment::Key(k)) if matches!(change, Change::Set { .. }) => {
                *v = Value::Object(Map::new());
                let Value::Object(m) = v else { return false };
                m.entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()))
            }
            _ => return matches!(change, Change::Delete { .. }),
        };
        cur = next;
    }
    match (cur, last, change) {
        (Value::Object(m), PathSegment::Key(k), Change::Set { value, .. }) => {
            m.insert(k.clone(), value.clone());
            true
        }
        (Value::Object(m), PathSegment::Key(k), Change::Delete { .. }) => {
            m.remove(k);
            true
        }
        (Value::Array(a), PathSegment::Index(i), Change::Set { value, .. }) => {
            if *i < a.len() {
                a[*i] = value.clone();
                true
            } else if *i == a.len() {
                a.push(value.clone());
                true
            } else {
                false
            }
        }
        (Value::Array(a), PathSegment::Index(i), Change::Insert { value, .. }) if *i <= a.len() => {
            a.insert(*i, value.clone());
            true
        }
        (Value::Array(a), PathSegment::Index(i), Change::Delete { .. }) => {
            if *i < a.len() {
                a.remove(*i);
            }
            true
        }
        (v @ Value::Null, PathSegment::Key(k), Change::Set { value, .. }) => {
            let mut m = Map::new();
            m.insert(k.clone(), value.clone());
            *v = Value::Object(m);
            true
        }
        (_, _, Change::Delete { .. }) => true,
        _ => false,
    }
}

fn merge_key_of(item: &Value) -> Option<(&'static str, &Value)> {
    MERGE_KEYS
        .iter()
        .find_map(|k| item.get(*k).map(|v| (*k, v)))
}

/// The path in `to` of the field at `segs` in `from`: the same keys, and list items matched by
/// their merge key (`name`, …), else by position when both lists are as long. A path to a
/// field that does not exist yet maps through its existing parents.
pub(super) fn map_path(from: &Value, to: &Value, segs: &[PathSegment]) -> Option<FieldPath> {
    let mut out = FieldPath::root();
    let (mut f, mut t) = (Some(from), Some(to));
    for s in segs {
        match s {
            PathSegment::Key(k) => {
                out = out.key(k.clone());
                f = f.and_then(|v| v.get(k));
                t = t.and_then(|v| v.get(k));
            }
            PathSegment::Index(i) => {
                let (fl, tl) = (f.and_then(Value::as_array), t.and_then(Value::as_array));
                let j = match (fl, tl) {
                    (Some(fl), Some(tl)) => match fl.get(*i).and_then(merge_key_of) {
                        Some((key, id)) => tl
                            .iter()
                            .position(|it| it.get(key) == Some(id))
                            .or_else(|| (*i >= fl.len()).then_some(tl.len())),
                        None if fl.len() == tl.len() => Some(*i),
                        // A new item appended at the end.
                        None if *i >= fl.len() => Some(tl.len()),
                        None => None,
                    },
                    (None, Some(tl)) => Some((*i).min(tl.len())),
                    (_, None) => Some(*i),
                }?;
                out = out.index(j);
                f = fl.and_then(|a| a.get(*i));
                t = tl.and_then(|a| a.get(j));
            }
        }
    }
    Some(out)
}

/// Where a strategic merge patch sets the field at `segs` of `eff` (the object right after the
/// patch): the path inside the patch, if the patch sets it (or an ancestor that it replaces
/// whole). For a new field, the patch counts when it holds the closest existing parent map.
fn smp_route(
    eff: &Value,
    patch: &Value,
    change: &Change,
    segs: &[PathSegment],
) -> Option<FieldPath> {
    let mut out = FieldPath::root();
    let (mut e, mut p) = (Some(eff), patch);
    for (n, s) in segs.iter().enumerate() {
        let rest = || {
            FieldPath(
                out.0
                    .iter()
                    .cloned()
                    .chain(segs[n..].iter().cloned())
                    .collect(),
            )
        };
        match (p, s) {
            (Value::Object(m), PathSegment::Key(k)) => {
                if n == 0 && matches!(k.as_str(), "apiVersion" | "kind") {
                    return None;
                }
                match m.get(k) {
                    Some(next) => {
                        out = out.key(k.clone());
                        p = next;
                        e = e.and_then(|v| v.get(k));
                    }
                    None => {
                        // A new key under a map the patch holds: only for a field the object
                        // does not have yet, directly under a map the patch writes.
                        let new_field = e.and_then(|v| v.get(k)).is_none();
                        let is_set = matches!(change, Change::Set { .. } | Change::Insert { .. });
                        if new_field && is_set && n + 1 == segs.len() && n > 0 {
                            return Some(out.key(k.clone()));
                        }
                        return None;
                    }
                }
            }
            (Value::Array(items), PathSegment::Index(i)) => {
                let el = e.and_then(Value::as_array);
                let eitem = el.and_then(|a| a.get(*i));
                match eitem.and_then(merge_key_of) {
                    Some((key, id)) if items.iter().all(|it| it.get(key).is_some()) => {
                        let j = items.iter().position(|it| it.get(key) == Some(id))?;
                        out = out.index(j);
                        p = &items[j];
                        e = eitem;
                    }
                    // The patch replaces the whole list: it sets every item.
                    _ => return Some(rest()),
                }
            }
            // The patch deletes (null) or sets a whole value at an ancestor.
            (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_), _) => {
                return Some(rest());
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Where a JSON 6902 patch sets the field: `[op index, "value", rest…]` of the last `add` or
/// `replace` whose path is the field or a parent of it. A field the patch removes, copies or
/// moves is refused.
fn json6902_route(
    ops: &Value,
    change: &Change,
    origin: &str,
    path: &FieldPath,
) -> Result<Option<FieldPath>, Error> {
    let Some(ops) = ops.as_array() else {
        return Ok(None);
    };
    let segs = key_path(path.segments());
    for (i, op) in ops.iter().enumerate().rev() {
        let Some(p) = op.get("path").and_then(Value::as_str) else {
            continue;
        };
        let Some(op_path) = FieldPath::from_pointer(p) else {
            continue;
        };
        let op_segs = key_path(op_path.segments());
        let prefix = op_segs.len() <= segs.len() && op_segs == segs[..op_segs.len()];
        if !prefix {
            continue;
        }
        match op.get("op").and_then(Value::as_str) {
            Some("add" | "replace") if op_segs.last().is_some_and(|l| l != "-") => {
                let mut out = FieldPath::root().index(i).key("value");
                for s in &path.segments()[op_segs.len()..] {
                    out.0.push(s.clone());
                }
                if matches!(change, Change::Delete { .. }) && out.segments().len() == 2 {
                    return Err(ChangeError::LayerField {
                        path: path.to_string(),
                        file: origin.to_string(),
                        why: format!(
                            "operation {i} of a JSON patch, which adds it; remove the operation by hand"
                        ),
                    }.into());
                }
                return Ok(Some(out));
            }
            Some(other) => {
                return Err(ChangeError::LayerField {
                    path: path.to_string(),
                    file: origin.to_string(),
                    why: format!("operation {i} ({other}) of a JSON patch; edit the patch by hand"),
                }
                .into());
            }
            None => continue,
        }
    }
    Ok(None)
}

/// The changes to a kustomize `images` entry that make it give `new_image`.
/// A JSON 6902 operation making `change` on `object` (the object as the overlay receives it):
/// `replace` where the field is, `add` of the missing part where it is not, `remove`.
fn json6902_op(object: &Value, path: &FieldPath, change: &Change) -> Value {
    let pointer = |segs: &[PathSegment]| -> String {
        segs.iter()
            .map(|s| match s {
                PathSegment::Key(k) => format!("/{}", k.replace('~', "~0").replace('/', "~1")),
                PathSegment::Index(i) => format!("/{i}"),
            })
            .collect()
    };
    let segs = path.segments();
    match change {
        Change::Delete { .. } => serde_json::json!({"op": "remove", "path": pointer(segs)}),
        Change::Insert { value, .. } => {
            serde_json::json!({"op": "add", "path": pointer(segs), "value": value})
        }
        Change::Set { value, .. } => {
            if get(object, segs).is_some() {
                return serde_json::json!({"op": "replace", "path": pointer(segs), "value": value});
            }
            // The deepest part that exists; add the rest below it as one value.
            let mut depth = segs.len();
            while depth > 0 && get(object, &segs[..depth - 1]).is_none() {
                depth -= 1;
            }
            let mut nested = value.clone();
            for seg in segs[depth.max(1)..].iter().rev() {
                let key = match seg {
                    PathSegment::Key(k) => k.clone(),
                    PathSegment::Index(i) => i.to_string(),
                };
                let mut m = Map::new();
                m.insert(key, nested);
                nested = Value::Object(m);
            }
            serde_json::json!({"op": "add", "path": pointer(&segs[..depth.max(1)]), "value": nested})
        }
    }
}

fn image_entry_changes(entry: &Value, index: usize, new_image: &str) -> Vec<Change> {
    let base = FieldPath::keys(["images"]).index(index);
    let (name, tag, digest) = split_image(new_image);
    let current_name = entry
        .get("newName")
        .or_else(|| entry.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut out = Vec::new();
    if name != current_name {
        out.push(Change::set(
            base.clone().key("newName"),
            Value::String(name),
        ));
    }
    match (tag, digest) {
        (_, Some(d)) => {
            out.push(Change::set(base.clone().key("digest"), Value::String(d)));
            if entry.get("newTag").is_some() {
                out.push(Change::delete(base.clone().key("newTag")));
            }
        }
        (Some(t), None) => {
            out.push(Change::set(base.clone().key("newTag"), Value::String(t)));
            if entry.get("digest").is_some() {
                out.push(Change::delete(base.clone().key("digest")));
            }
        }
        (None, None) => {
            for k in ["newTag", "digest"] {
                if entry.get(k).is_some() {
                    out.push(Change::delete(base.clone().key(k)));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_patch_operations_replace_add_the_missing_part_or_remove() {
        let obj = serde_json::json!({"metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "a"}]}}}});
        let path = |segs: &[&str]| {
            FieldPath(
                segs.iter()
                    .map(|s| match s.parse::<usize>() {
                        Ok(i) => PathSegment::Index(i),
                        Err(_) => PathSegment::Key((*s).to_string()),
                    })
                    .collect(),
            )
        };
        let set = |segs: &[&str], v: Value| {
            let p = path(segs);
            json6902_op(&obj, &p, &Change::set(p.clone(), v))
        };
        assert_eq!(
            set(
                &["spec", "template", "spec", "containers", "0", "image"],
                "b".into()
            ),
            serde_json::json!({"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "b"})
        );
        assert_eq!(
            set(
                &["metadata", "labels", "app.kubernetes.io/part-of"],
                "shop".into()
            ),
            serde_json::json!({"op": "add", "path": "/metadata/labels/app.kubernetes.io~1part-of", "value": "shop"})
        );
        assert_eq!(
            set(&["metadata", "annotations", "team"], "a".into()),
            serde_json::json!({"op": "add", "path": "/metadata/annotations", "value": {"team": "a"}})
        );
        let p = path(&["metadata", "labels", "app"]);
        assert_eq!(
            json6902_op(&obj, &p, &Change::delete(p.clone())),
            serde_json::json!({"op": "remove", "path": "/metadata/labels/app"})
        );
    }
    use serde_json::json;

    #[test]
    fn images_split_and_transform() {
        assert_eq!(
            split_image("registry:5000/web:1.2"),
            ("registry:5000/web".into(), Some("1.2".into()), None)
        );
        assert_eq!(
            split_image("web@sha256:abc"),
            ("web".into(), None, Some("sha256:abc".into()))
        );
        let e = json!({"name": "ghcr.io/acme/web", "newTag": "1.8.1"});
        assert_eq!(
            transform_image("ghcr.io/acme/web:1.0", &e).as_deref(),
            Some("ghcr.io/acme/web:1.8.1")
        );
        assert_eq!(transform_image("other:1.0", &e), None);
        assert_eq!(
            image_entry_changes(&e, 0, "ghcr.io/acme/web:1.8.2"),
            vec![Change::set(
                FieldPath::keys(["images"]).index(0).key("newTag"),
                json!("1.8.2")
            )]
        );
    }

    #[test]
    fn paths_map_through_named_items() {
        let from = json!({"c": [{"name": "a", "x": 1}, {"name": "b", "x": 2}]});
        let to = json!({"c": [{"name": "b", "x": 2}]});
        let p = FieldPath::keys(["c"]).index(1).key("x");
        assert_eq!(
            map_path(&from, &to, p.segments()),
            Some(FieldPath::keys(["c"]).index(0).key("x"))
        );
        let patch = json!({"spec": {"c": [{"name": "b", "x": 5}]}});
        let eff = json!({"spec": {"c": [{"name": "a", "x": 1}, {"name": "b", "x": 5}]}});
        let change = Change::set(FieldPath::keys(["spec", "c"]).index(1).key("x"), json!(6));
        assert_eq!(
            smp_route(&eff, &patch, &change, change.path().segments()),
            Some(FieldPath::keys(["spec", "c"]).index(0).key("x"))
        );
        let change = Change::set(FieldPath::keys(["spec", "c"]).index(0).key("x"), json!(6));
        assert_eq!(
            smp_route(&eff, &patch, &change, change.path().segments()),
            None
        );
    }
}
