//! `kubectl gitops blame`: the live object's YAML, each line explained by the Git line that set it
//! (git blame of the manifest at the applied commit, mapped onto the live fields), or else by the
//! field manager that wrote it (`managedFields`). Fields only a person (or script) explains are
//! drift. Fields nobody set (server defaults) are left out unless asked for; server-maintained
//! metadata and `status` are always left out.

pub mod fields;

use std::collections::HashMap;

use clap::Args;
use gitops_guard_core::diff::Seg;
use gitops_guard_core::{Config, decide};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Error;
use crate::change::overrides::{Overrides, OwnerSetter};
use crate::change::target::{self, Setter};
use crate::git::CommitInfo;
use crate::locate::{self, Drift, Location};
use crate::manifest::Transform;
use crate::manifest::yaml::{Document, Node, parse_documents};
use crate::object_args::type_and_name;
use crate::output::{self, DetailFormat};
use crate::session::{Global, Session};
use crate::splice::PathSegment;
use fields::{Manager, Role, Step};

/// `blame` arguments.
#[derive(Debug, Clone, Args)]
pub struct BlameArgs {
    /// TYPE/NAME, or TYPE NAME.
    #[arg(value_name = "TYPE/NAME")]
    pub resource: String,
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: DetailFormat,
    /// Also print fields nobody set (server defaults).
    #[arg(long)]
    pub show_defaults: bool,
}

/// Metadata the server maintains: never printed.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
    "deletionGracePeriodSeconds",
];

/// Annotations written by tools, not configuration.
const TOOL_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

/// Why a line has its value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "by", rename_all = "camelCase")]
pub enum Origin {
    /// A line of the manifest (1-based line in the file).
    Git { line: usize },
    /// The build renamed it (name prefix/suffix, namespace transformer).
    Build { what: String },
    /// A field manager wrote it.
    #[serde(rename_all = "camelCase")]
    Manager {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        time: Option<jiff::Timestamp>,
        #[serde(skip)]
        role: Role,
        /// The manifest sets this field, to another value, at this line (a server-normalized
        /// value, an overlay's patch or transformer, or a change the manager did not record).
        #[serde(skip_serializing_if = "Option::is_none")]
        differs_from_line: Option<usize>,
    },
    /// An overlay of the build: a patch, or an `images`/`replicas` entry or common labels of a
    /// kustomization, in `file`; `what` says which.
    Overlay { file: String, what: String },
    /// The owner after the build: a Flux Kustomization's `spec.patches`, `spec.images` or a
    /// `postBuild` variable (`what` says which).
    Owner { what: String },
    /// Nobody: a server default (or a field of a header line).
    None,
}

/// One line of the live object's YAML.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub text: String,
    /// Dotted path of the field (`spec.template.spec.containers[web].image`).
    pub field: String,
    pub origin: Origin,
    /// A leaf value (not a map/list header).
    #[serde(skip)]
    pub leaf: bool,
}

impl Line {
    /// Drift: a value only a person or script explains.
    pub fn is_drift(&self) -> bool {
        self.leaf
            && matches!(
                self.origin,
                Origin::Manager {
                    role: Role::Other,
                    ..
                }
            )
    }
}

/// What the build's overlays do to the document: who set each field, and the object they give;
/// then what the owner itself sets after the build (Flux `spec.patches`, `spec.images`,
/// `postBuild` variables).
pub struct Overlays {
    pub setters: Vec<Setter>,
    pub effective: Value,
    pub owner: Vec<OwnerSetter>,
}

/// What [`explain`] needs besides the live object.
pub struct Context<'a> {
    pub config: &'a Config,
    /// The document in Git, when the object is defined by one.
    pub git: Option<Node<'a>>,
    /// The overlays between the document and the object, when the build has any.
    pub overlays: Option<&'a Overlays>,
    pub transform: &'a Transform,
    /// Also print fields nobody set (server defaults).
    pub show_defaults: bool,
}

struct Explainer<'a> {
    cx: &'a Context<'a>,
    managers: Vec<Manager>,
    /// The live object's API group and kind.
    group: &'a str,
    kind: &'a str,
}

/// A key as YAML writes it.
fn yaml_key(k: &str) -> String {
    yaml_scalar(&Value::String(k.to_string()))
}

/// A scalar as YAML writes it on one line.
pub fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "\"\"".into(),
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        _ => serde_yaml_ng::to_string(v)
            .map(|s| s.trim_end_matches('\n').to_string())
            .unwrap_or_else(|_| v.to_string()),
    }
}

fn is_block_string(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.contains('\n') && !s.trim().is_empty())
}

fn scalar_equal(git: &Value, live: &Value) -> bool {
    if git == live {
        return true;
    }
    match (git, live) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            s == &n.to_string()
        }
        _ => false,
    }
}

/// The Git node for a list item: same `name` (strategic merge key) else same index.
fn git_item<'g>(git: Node<'g>, index: usize, item: &Value) -> Option<Node<'g>> {
    let items = git.items();
    for key in ["name", "containerPort", "mountPath", "port", "ip"] {
        if let Some(want) = item.get(key) {
            return items
                .into_iter()
                .find(|g| g.get(key).is_some_and(|n| scalar_equal(&n.to_json(), want)));
        }
    }
    items.get(index).copied()
}

fn step_text(step: &Step<'_>) -> String {
    match step {
        Step::Key(k) => {
            if k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                format!(".{k}")
            } else {
                format!("[{k:?}]")
            }
        }
        Step::Item(i, item) => match item.get("name").and_then(Value::as_str) {
            Some(n) => format!("[{n}]"),
            None => format!("[{i}]"),
        },
    }
}

fn field_text(path: &[Step<'_>]) -> String {
    let s: String = path.iter().map(step_text).collect();
    s.trim_start_matches('.').to_string()
}

impl<'a> Explainer<'a> {
    /// A field the guard lets anyone change (operational), as configured for this kind.
    fn operational(&self, path: &[Step<'_>]) -> bool {
        let segs: Vec<Seg> = path
            .iter()
            .map(|s| match s {
                Step::Key(k) => Seg::Key((*k).to_string()),
                Step::Item(i, _) => Seg::Index(*i),
            })
            .collect();
        decide::is_operational(self.cx.config, self.group, self.kind, &segs)
    }

    /// Who wrote a field that Git does not explain: the newest non-agent owner wins (drift), else
    /// the agent, else Kubernetes.
    fn manager_of(&self, path: &[Step<'_>], differs_from_line: Option<usize>) -> Origin {
        let mut best: Option<&Manager> = None;
        let rank = |m: &Manager| match fields::role(self.cx.config, &m.name) {
            Role::Other | Role::Operational => 2,
            Role::Agent => 1,
            Role::System => 0,
        };
        for m in &self.managers {
            if !m.owns(path) {
                continue;
            }
            best = match best {
                None => Some(m),
                Some(b) if rank(m) > rank(b) || (rank(m) == rank(b) && m.time > b.time) => Some(m),
                Some(b) => Some(b),
            };
        }
        match best {
            Some(m) => Origin::Manager {
                name: m.name.clone(),
                time: m.time,
                role: match fields::role(self.cx.config, &m.name) {
                    Role::Other if self.operational(path) => Role::Operational,
                    role => role,
                },
                differs_from_line,
            },
            None => Origin::None,
        }
    }

    fn leaf_origin(&self, path: &[Step<'_>], live: &Value, git: Option<Node<'_>>) -> Origin {
        let metadata_field = match path {
            [Step::Key("metadata"), Step::Key(f)] => Some(*f),
            _ => None,
        };
        if let Some(g) = git {
            let gv = g.to_json();
            if scalar_equal(&gv, live) {
                return Origin::Git { line: g.line() };
            }
            if metadata_field == Some("name")
                && let (Some(gs), Some(ls)) = (gv.as_str(), live.as_str())
                && format!(
                    "{}{gs}{}",
                    self.cx.transform.prefix, self.cx.transform.suffix
                ) == ls
            {
                return Origin::Git { line: g.line() };
            }
        }
        match metadata_field {
            Some("name") => {
                return Origin::Build {
                    what: if self.cx.transform.prefix.is_empty()
                        && self.cx.transform.suffix.is_empty()
                    {
                        "name".into()
                    } else {
                        "namePrefix/nameSuffix".into()
                    },
                };
            }
            Some("namespace") => {
                return Origin::Build {
                    what: if self.cx.transform.namespace.as_deref() == live.as_str() {
                        "namespace transformer".into()
                    } else {
                        "namespace".into()
                    },
                };
            }
            _ => {}
        }
        if path.len() == 1 && matches!(path[0], Step::Key("apiVersion") | Step::Key("kind")) {
            return Origin::Build {
                what: "type".into(),
            };
        }
        // A value an overlay gives (a patch, an images entry): that overlay, not the agent.
        if let Some(o) = self.cx.overlays {
            let segs: Vec<PathSegment> = path
                .iter()
                .map(|s| match s {
                    Step::Key(k) => PathSegment::Key((*k).to_string()),
                    Step::Item(i, _) => PathSegment::Index(*i),
                })
                .collect();
            // Changed after the build by what the owner sets (Flux's own patches, images,
            // postBuild variables): the live value is not what the manifests give.
            // (Only what the agent applied: a person's later change there is drift.)
            let built = target::value_at(&o.effective, &segs);
            let by_agent = matches!(
                self.manager_of(path, None),
                Origin::Manager {
                    role: Role::Agent,
                    ..
                } | Origin::None
            );
            if by_agent
                && built.is_none_or(|b| !scalar_equal(b, live))
                && let Some(s) = o.owner.iter().rev().find(|s| {
                    s.path.len() <= segs.len() && s.path.iter().zip(&segs).all(|(a, b)| a == b)
                })
            {
                return Origin::Owner {
                    what: s.what.clone(),
                };
            }
            if let Some(setter) = target::setter_of(&o.setters, &segs)
                && target::value_at(&o.effective, &segs).is_some_and(|v| scalar_equal(v, live))
            {
                return Origin::Overlay {
                    file: setter.file.clone(),
                    what: setter.what.clone(),
                };
            }
        }
        let differs = git.filter(Node::is_scalar).map(|g| g.line());
        self.manager_of(path, differs)
    }

    fn visible(&self, origin: &Origin) -> bool {
        self.cx.show_defaults || !matches!(origin, Origin::None)
    }

    /// Lines for `value` at `path` written as the value of a key (`key: …`) at `indent`.
    fn entry<'v>(
        &self,
        (key, key_line): (&str, Option<usize>),
        value: &'v Value,
        git: Option<Node<'_>>,
        path: &mut Vec<Step<'v>>,
        indent: usize,
        out: &mut Vec<Line>,
    ) {
        let pad = " ".repeat(indent);
        let header_origin = match key_line {
            Some(l) => Origin::Git { line: l },
            None => Origin::None,
        };
        match value {
            Value::Object(map) if !map.is_empty() => {
                let mut inner = Vec::new();
                self.map(map, git, path, indent + 2, &mut inner);
                if inner.is_empty() {
                    return;
                }
                out.push(Line {
                    text: format!("{pad}{}:", yaml_key(key)),
                    field: field_text(path),
                    origin: header_origin,
                    leaf: false,
                });
                out.extend(inner);
            }
            Value::Array(items) if !items.is_empty() => {
                let mut inner = Vec::new();
                self.list(items, git, path, indent, &mut inner);
                if inner.is_empty() {
                    return;
                }
                out.push(Line {
                    text: format!("{pad}{}:", yaml_key(key)),
                    field: field_text(path),
                    origin: header_origin,
                    leaf: false,
                });
                out.extend(inner);
            }
            v if is_block_string(v) => {
                let origin = self.leaf_origin(path, v, git);
                if !self.visible(&origin) {
                    return;
                }
                let s = v.as_str().unwrap_or_default();
                let indicator = if s.ends_with('\n') { "|" } else { "|-" };
                let block = git.is_some_and(|g| g.is_block());
                // A block scalar's node starts at its first content line; the header is the key's.
                let header = match (&origin, block, key_line) {
                    (Origin::Git { .. }, true, Some(l)) => Origin::Git { line: l },
                    (o, _, _) => o.clone(),
                };
                out.push(Line {
                    text: format!("{pad}{}: {indicator}", yaml_key(key)),
                    field: field_text(path),
                    origin: header,
                    leaf: true,
                });
                for (i, l) in s.lines().enumerate() {
                    let line_origin = match (&origin, block) {
                        (Origin::Git { line }, true) => Origin::Git { line: line + i },
                        (o, _) => o.clone(),
                    };
                    out.push(Line {
                        text: if l.is_empty() {
                            String::new()
                        } else {
                            format!("{pad}  {l}")
                        },
                        field: field_text(path),
                        origin: line_origin,
                        leaf: true,
                    });
                }
            }
            v => {
                let origin = self.leaf_origin(path, v, git);
                if !self.visible(&origin) {
                    return;
                }
                out.push(Line {
                    text: format!("{pad}{}: {}", yaml_key(key), yaml_scalar(v)),
                    field: field_text(path),
                    origin,
                    leaf: true,
                });
            }
        }
    }

    fn map<'v>(
        &self,
        map: &'v Map<String, Value>,
        git: Option<Node<'_>>,
        path: &mut Vec<Step<'v>>,
        indent: usize,
        out: &mut Vec<Line>,
    ) {
        // Keys in sorted order, as `kubectl get -o yaml` prints them.
        let mut keys: Vec<(&'v String, &'v Value)> = map.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in keys {
            if path.is_empty() && k == "status" {
                continue;
            }
            if path.len() == 1
                && matches!(path[0], Step::Key("metadata"))
                && SERVER_METADATA.contains(&k.as_str())
            {
                continue;
            }
            if path.len() == 2
                && matches!(path[0], Step::Key("metadata"))
                && matches!(path[1], Step::Key("annotations"))
                && TOOL_ANNOTATIONS.contains(&k.as_str())
            {
                continue;
            }
            let g = git.and_then(|g| g.get(k));
            let key_line = git.and_then(|g| g.key_line(k));
            path.push(Step::Key(k));
            self.entry((k, key_line), v, g, path, indent, out);
            path.pop();
        }
    }

    fn list<'v>(
        &self,
        items: &'v [Value],
        git: Option<Node<'_>>,
        path: &mut Vec<Step<'v>>,
        indent: usize,
        out: &mut Vec<Line>,
    ) {
        let pad = " ".repeat(indent);
        for (i, item) in items.iter().enumerate() {
            let g = git.and_then(|g| git_item(g, i, item));
            path.push(Step::Item(i, item));
            match item {
                Value::Object(map) if !map.is_empty() => {
                    let mut inner = Vec::new();
                    self.map(map, g, path, indent + 2, &mut inner);
                    if let Some(first) = inner.first_mut() {
                        // `- ` takes the place of the first entry's indentation.
                        first.text = format!("{pad}- {}", first.text.trim_start());
                    }
                    out.extend(inner);
                }
                v => {
                    let origin = self.leaf_origin(path, v, g);
                    if self.visible(&origin) {
                        let text = if is_block_string(v) {
                            serde_json::to_string(v).unwrap_or_default()
                        } else {
                            yaml_scalar(v)
                        };
                        out.push(Line {
                            text: format!("{pad}- {text}"),
                            field: field_text(path),
                            origin,
                            leaf: true,
                        });
                    }
                }
            }
            path.pop();
        }
    }
}

/// The live object's YAML, line by line, each with its origin.
pub fn explain(live: &Value, cx: &Context<'_>) -> Vec<Line> {
    let api_version = live
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let ex = Explainer {
        cx,
        managers: fields::managers(live),
        group: api_version.rsplit_once('/').map_or("", |(g, _)| g),
        kind: live.get("kind").and_then(Value::as_str).unwrap_or_default(),
    };
    let mut out = Vec::new();
    if let Some(map) = live.as_object() {
        let mut path = Vec::new();
        ex.map(map, cx.git, &mut path, 0, &mut out);
    }
    out
}

/// The drifted fields among explained lines, newest first.
pub fn drift(lines: &[Line]) -> Vec<Drift> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<(Option<jiff::Timestamp>, Drift)> = Vec::new();
    for l in lines.iter().filter(|l| l.is_drift()) {
        if seen.contains_key(&l.field) {
            continue;
        }
        if let Origin::Manager { name, time, .. } = &l.origin {
            seen.insert(l.field.clone(), out.len());
            out.push((
                *time,
                Drift {
                    field: l.field.clone(),
                    manager: name.clone(),
                    time: time.map(|t| t.to_string()),
                },
            ));
        }
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.0));
    out.into_iter().map(|(_, d)| d).collect()
}

/// One printed line with everything known about it (JSON/YAML output).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlamedLine {
    pub text: String,
    pub field: String,
    /// `git`, `overlay`, `owner`, `build`, `manager` or `none`.
    pub by: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<jiff::Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub what: Option<String>,
    /// The manifest line that sets this field to another value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differs_from_line: Option<usize>,
    pub drift: bool,
}

/// The blame of one object (JSON/YAML output).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blame {
    pub location: Location,
    pub lines: Vec<BlamedLine>,
}

/// Joins explained lines with the commits that wrote the Git lines (and, for lines an overlay
/// sets, the last commit of that overlay's file).
pub fn blamed(
    lines: &[Line],
    line_commits: &[Option<CommitInfo>],
    overlay_commits: &HashMap<String, CommitInfo>,
) -> Vec<BlamedLine> {
    lines
        .iter()
        .map(|l| {
            let mut b = BlamedLine {
                text: l.text.clone(),
                field: l.field.clone(),
                by: "none",
                file_line: None,
                commit: None,
                manager: None,
                time: None,
                what: None,
                differs_from_line: None,
                drift: l.is_drift(),
            };
            match &l.origin {
                Origin::Git { line } => {
                    b.by = "git";
                    b.file_line = Some(*line);
                    b.commit = line_commits.get(line.saturating_sub(1)).cloned().flatten();
                }
                Origin::Build { what } => {
                    b.by = "build";
                    b.what = Some(what.clone());
                }
                Origin::Owner { what } => {
                    b.by = "owner";
                    b.what = Some(what.clone());
                }
                Origin::Overlay { file, what } => {
                    b.by = "overlay";
                    b.what = Some(if what == "patch" {
                        file.clone()
                    } else {
                        format!("{file} ({what})")
                    });
                    b.commit = overlay_commits.get(file).cloned();
                }
                Origin::Manager {
                    name,
                    time,
                    differs_from_line,
                    ..
                } => {
                    b.by = "manager";
                    b.manager = Some(name.clone());
                    b.time = *time;
                    b.differs_from_line = *differs_from_line;
                }
                Origin::None => {}
            }
            b
        })
        .collect()
}

fn annotation(b: &BlamedLine, now: jiff::Timestamp) -> String {
    match b.by {
        "git" => match &b.commit {
            Some(c) => {
                let author: String = c.author.chars().take(16).collect();
                format!("{} {author:<16} {:>4}", c.short(), output::age(c.date, now))
            }
            None => format!("line {}", b.file_line.unwrap_or_default()),
        },
        "build" | "owner" => format!("({})", b.what.clone().unwrap_or_default()),
        "overlay" => {
            let what = b.what.clone().unwrap_or_default();
            match &b.commit {
                Some(c) => {
                    let author: String = c.author.chars().take(16).collect();
                    format!(
                        "{} {author:<16} {:>4} {what}",
                        c.short(),
                        output::age(c.date, now)
                    )
                }
                None => what,
            }
        }
        "manager" => {
            let when = b
                .time
                .map(|t| format!(" {} ago", output::age(t, now)))
                .unwrap_or_default();
            let name = b.manager.clone().unwrap_or_default();
            match (b.drift, b.differs_from_line) {
                (true, _) => format!("{name}{when} (drift)"),
                (false, Some(line)) => format!("{name}{when} (≠ line {line})"),
                (false, None) => format!("{name}{when}"),
            }
        }
        _ => String::new(),
    }
}

/// The annotated YAML as text.
pub fn render(blame: &Blame, now: jiff::Timestamp) -> String {
    let l = &blame.location;
    let mut out = String::new();
    let mut head = format!("# {}", l.object.describe());
    if let Some(owner) = &l.owner {
        head.push_str(&format!(", managed by {owner}"));
    }
    out.push_str(&head);
    out.push('\n');
    if let (Some(file), Some(rev)) = (&l.file, &l.revision) {
        let doc = match l.document {
            Some(d) => format!(" (document {})", d + 1),
            None => String::new(),
        };
        out.push_str(&format!("# {file}{doc} at {}\n", rev.display()));
    }
    if let (Some(chart), false) = (&l.chart, l.values.is_empty()) {
        out.push_str(&format!(
            "# rendered by this template of the Helm chart {chart} (values from {}): lines are explained by field managers, not mapped to the template\n",
            l.values.join(", ")
        ));
    } else if let Some(chart) = &l.chart {
        out.push_str(&format!(
            "# installed by the Helm chart {chart}: lines are explained by field managers, not mapped to chart templates\n"
        ));
    } else if l.file.is_some() && l.document.is_none() {
        out.push_str(
            "# generated by a kustomize generator: lines are explained by field managers\n",
        );
    }
    let notes: Vec<String> = blame.lines.iter().map(|b| annotation(b, now)).collect();
    let width = notes.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    for (b, n) in blame.lines.iter().zip(&notes) {
        out.push_str(&format!("{n:<width$} │ {}\n", b.text));
    }
    let drifted: Vec<&BlamedLine> = blame.lines.iter().filter(|b| b.drift).collect();
    if !drifted.is_empty() {
        let mut fields: Vec<String> = Vec::new();
        for b in &drifted {
            let f = format!(
                "{} ({})",
                b.field,
                annotation(b, now).trim_end_matches(" (drift)")
            );
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
        out.push_str(&format!(
            "\n{} field{} not from Git: {}\n",
            fields.len(),
            if fields.len() == 1 { "" } else { "s" },
            fields.join(", ")
        ));
    }
    out
}

/// What a Flux Kustomization owner sets after the build, on the object as the manifests give it.
fn owner_setters(session: &Session, location: &Location, built: &Value) -> Vec<OwnerSetter> {
    let Some(owner) = location
        .owner
        .as_ref()
        .filter(|o| o.kind == gitops_guard_core::OwnerKind::Kustomization)
    else {
        return Vec::new();
    };
    let ks = session.rt.block_on(session.cluster.get_kind(
        gitops_guard_core::custody::KUSTOMIZE,
        "Kustomization",
        &owner.namespace,
        &owner.name,
    ));
    match ks
        .ok()
        .flatten()
        .as_ref()
        .and_then(Overrides::of_kustomization)
    {
        Some(o) => o.setters(built),
        None => Vec::new(),
    }
}

/// Runs `blame`.
pub fn run(global: &Global, args: &BlameArgs) -> Result<bool, Error> {
    let (type_name, name) = type_and_name(&args.resource, args.name.as_deref())?;
    let mut session = Session::open(global)?;
    session.know_types([type_name.as_str()])?;
    let (_, live) = session.get(&type_name, &name)?;
    let location = locate::resolve(
        &session.rt,
        &session.cluster,
        &mut session.finder,
        live,
        &session.config,
    )?;
    // The manifest and who wrote each of its lines.
    let mut doc: Option<Document> = None;
    let mut line_commits: Vec<Option<CommitInfo>> = Vec::new();
    let mut overlays: Option<Overlays> = None;
    let mut overlay_commits: HashMap<String, CommitInfo> = HashMap::new();
    if let (Some(dir), Some(commit), Some(file)) = (
        &location.repository,
        &location.applied_commit,
        &location.file,
    ) && let Some(repo) = session.finder.by_dir(dir)
        && let Ok(id) = gix::ObjectId::from_hex(commit.as_bytes())
    {
        let bytes = repo.snapshot(id)?.read(file)?.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        if let (Some(index), None) = (location.document, &location.chart) {
            doc = parse_documents(&text)
                .ok()
                .and_then(|d| d.into_iter().nth(index));
        }
        // The overlays between the document and the object (patches, images and replicas
        // entries), and the last commit of each of their files.
        if let (Some((build, entry)), None) = (&location.built_from, &location.chart) {
            let snap = repo.snapshot(id)?;
            if let Ok(def) = target::define(&snap, build, entry)
                && let (Ok(setters), Ok(effective)) = (def.setters(), def.effective())
            {
                let owner = owner_setters(&session, &location, &effective);
                let mut files: Vec<String> = setters.iter().map(|s| s.file.clone()).collect();
                files.sort();
                files.dedup();
                let (found, _) = repo.last_commits(id, &files)?;
                for (f, c) in files.iter().zip(found) {
                    if let Some(info) = c.and_then(|c| repo.commit_info(c).ok()) {
                        overlay_commits.insert(f.clone(), info);
                    }
                }
                if !setters.is_empty() || !owner.is_empty() {
                    overlays = Some(Overlays {
                        setters,
                        effective,
                        owner,
                    });
                }
            }
        }
        let per_line = repo.blame(id, file)?;
        let mut infos: HashMap<gix::ObjectId, Option<CommitInfo>> = HashMap::new();
        for c in per_line {
            let info = infos
                .entry(c)
                .or_insert_with(|| repo.commit_info(c).ok())
                .clone();
            line_commits.push(info);
        }
    }
    let cx = Context {
        config: &session.config,
        git: doc.as_ref().and_then(Document::root),
        overlays: overlays.as_ref(),
        transform: &location.transform,
        show_defaults: args.show_defaults,
    };
    let lines = explain(&location.live, &cx);
    let mut location = location;
    location.drift = drift(&lines);
    let blame = Blame {
        lines: blamed(&lines, &line_commits, &overlay_commits),
        location,
    };
    let mut stdout = std::io::stdout().lock();
    match args.output {
        DetailFormat::Text => output::text(&mut stdout, &render(&blame, jiff::Timestamp::now()))?,
        DetailFormat::Json => output::json(&mut stdout, &blame)?,
        DetailFormat::Yaml => output::yaml(&mut stdout, &blame)?,
    }
    match blame.location.error_line() {
        Some(line) => {
            eprintln!("{line}");
            Ok(false)
        }
        None => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::yaml::parse_documents;
    use serde_json::json;

    fn live() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "prod-web",
                "namespace": "prod",
                "uid": "123",
                "resourceVersion": "9",
                "labels": {"app": "web", "kustomize.toolkit.fluxcd.io/name": "apps"},
                "managedFields": [
                    {"manager": "kustomize-controller", "operation": "Apply", "time": "2026-01-01T00:00:00Z",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}, "f:kustomize.toolkit.fluxcd.io/name": {}}},
                                  "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}}},
                    {"manager": "kubectl-edit", "operation": "Update", "time": "2026-01-02T00:00:00Z",
                     "fieldsV1": {"f:spec": {"f:replicas": {}}}}
                ]
            },
            "spec": {
                "replicas": 5,
                "revisionHistoryLimit": 10,
                "template": {"spec": {"containers": [{"name": "web", "image": "web:2", "terminationMessagePath": "/dev/termination-log"}]}}
            },
            "status": {"replicas": 5}
        })
    }

    const GIT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  template:
    spec:
      containers:
      - name: web
        image: web:2
";

    #[test]
    fn lines_are_explained_by_git_agent_or_drift() {
        let docs = parse_documents(GIT).unwrap();
        let cfg = Config::default();
        let t = Transform {
            prefix: "prod-".into(),
            suffix: String::new(),
            namespace: Some("prod".into()),
        };
        let cx = Context {
            config: &cfg,
            git: docs[0].root(),
            overlays: None,
            transform: &t,
            show_defaults: false,
        };
        let lines = explain(&live(), &cx);
        let text: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            text,
            vec![
                "apiVersion: apps/v1",
                "kind: Deployment",
                "metadata:",
                "  labels:",
                "    app: web",
                "    kustomize.toolkit.fluxcd.io/name: apps",
                "  name: prod-web",
                "  namespace: prod",
                "spec:",
                "  replicas: 5",
                "  template:",
                "    spec:",
                "      containers:",
                "      - image: web:2",
                "        name: web",
            ]
        );
        let by_text = |t: &str| {
            lines
                .iter()
                .find(|l| l.text.trim() == t)
                .unwrap()
                .origin
                .clone()
        };
        assert_eq!(by_text("apiVersion: apps/v1"), Origin::Git { line: 1 });
        assert_eq!(by_text("name: prod-web"), Origin::Git { line: 4 });
        assert_eq!(
            by_text("namespace: prod"),
            Origin::Build {
                what: "namespace transformer".into()
            }
        );
        assert_eq!(by_text("app: web"), Origin::Git { line: 6 });
        assert!(
            matches!(by_text("kustomize.toolkit.fluxcd.io/name: apps"), Origin::Manager { ref name, role: Role::Agent, .. } if name == "kustomize-controller")
        );
        assert!(
            matches!(by_text("replicas: 5"), Origin::Manager { ref name, role: Role::Other, .. } if name == "kubectl-edit")
        );
        assert_eq!(by_text("name: web"), Origin::Git { line: 12 });
        assert_eq!(by_text("- image: web:2"), Origin::Git { line: 13 });
        assert_eq!(
            drift(&lines),
            vec![Drift {
                field: "spec.replicas".into(),
                manager: "kubectl-edit".into(),
                time: Some("2026-01-02T00:00:00Z".into())
            }]
        );

        let all = Context {
            show_defaults: true,
            ..cx
        };
        let with_defaults = explain(&live(), &all);
        assert!(
            with_defaults
                .iter()
                .any(|l| l.text == "  revisionHistoryLimit: 10" && l.origin == Origin::None)
        );
        assert!(
            !with_defaults
                .iter()
                .any(|l| l.text.contains("uid") || l.text.contains("status"))
        );
    }

    #[test]
    fn a_rollout_restart_is_not_drift_unless_the_guard_forbids_it() {
        let docs = parse_documents(GIT).unwrap();
        let t = Transform::default();
        let live = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "managedFields": [
                {"manager": "kubectl-rollout", "operation": "Update", "time": "2026-03-10T11:00:00Z",
                 "fieldsV1": {"f:spec": {"f:template": {"f:metadata": {"f:annotations": {
                    "f:kubectl.kubernetes.io/restartedAt": {}}}}}}}
            ]},
            "spec": {"replicas": 2, "template": {
                "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-03-10T11:00:00Z"}},
                "spec": {"containers": [{"name": "web", "image": "web:2"}]}}}
        });
        let drift_with = |cfg: &Config| {
            let cx = Context {
                config: cfg,
                git: docs[0].root(),
                overlays: None,
                transform: &t,
                show_defaults: false,
            };
            drift(&explain(&live, &cx))
        };
        assert_eq!(drift_with(&Config::default()), vec![]);
        // With rollout restarts turned off in the guard's config, the same line is drift.
        let mut strict = Config::default();
        strict.operational.rollout_restart = false;
        let d = drift_with(&strict);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].manager, "kubectl-rollout");
    }

    #[test]
    fn block_strings_map_line_by_line() {
        let git = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: env\ndata:\n  script: |\n    one\n    two\n";
        let docs = parse_documents(git).unwrap();
        let cfg = Config::default();
        let t = Transform::default();
        let cx = Context {
            config: &cfg,
            git: docs[0].root(),
            overlays: None,
            transform: &t,
            show_defaults: false,
        };
        let live = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"env"},"data":{"script":"one\ntwo\n"}});
        let lines = explain(&live, &cx);
        let at = lines.iter().position(|l| l.text == "  script: |").unwrap();
        let tail: Vec<(String, Origin)> = lines[at..at + 3]
            .iter()
            .map(|l| (l.text.clone(), l.origin.clone()))
            .collect();
        assert_eq!(
            tail,
            vec![
                ("  script: |".to_string(), Origin::Git { line: 6 }),
                ("    one".to_string(), Origin::Git { line: 7 }),
                ("    two".to_string(), Origin::Git { line: 8 }),
            ]
        );
    }
}
