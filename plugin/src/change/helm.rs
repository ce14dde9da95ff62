//! Objects rendered from a Helm chart have no manifest to change: their fields come from the
//! release's values. When the chart is in Git, its templates say which values key writes a
//! field (`replicas: {{ .Values.replicaCount }}`, `{{- toYaml .Values.resources | nindent 12 }}`);
//! the change is then explained as the values change that makes it, with the command that
//! proposes that change. Fields no values key reaches are refused with a clear message.
//!
//! The chart itself ([`read_chart`]): its templates (and those of subcharts vendored under
//! `charts/`), the dependencies Git does not hold, and which template renders an object
//! ([`which_template`]: the kind, and the `metadata.name` read as a pattern — `{{ .Release.Name }}`,
//! `{{ .Chart.Name }}`, `{{ .Values.x }}` filled in, anything else a wildcard). Argo CD
//! Applications whose source is such a chart get their values written in Git by [`values`].

pub mod values;

use serde_json::{Map, Value};

use super::locate::HelmChart;
use crate::Error;
use crate::git::{EntryKind, Snapshot, join_path};
use crate::locate::error::Error as LocateError;
use crate::manifest::Wanted;
use crate::splice::{Change, PathSegment};

/// One template file of the chart.
#[derive(Debug, Clone)]
pub struct Template {
    pub path: String,
    pub text: String,
}

/// The chart's templates that can produce objects of `kind`.
pub fn templates(snap: &Snapshot<'_>, chart_dir: &str, kind: &str) -> Result<Vec<Template>, Error> {
    let needle = format!("kind: {kind}");
    Ok(template_files(snap, chart_dir)?
        .into_iter()
        .filter(|t| t.path.ends_with(".yaml") || t.path.ends_with(".yml"))
        .filter(|t| t.text.lines().any(|l| l.trim() == needle))
        .collect())
}

/// Every file Helm renders from the chart's `templates/` (all but `_` partials and `NOTES.txt`),
/// in path order.
fn template_files(snap: &Snapshot<'_>, chart_dir: &str) -> Result<Vec<Template>, Error> {
    let dir = join_path(chart_dir, "templates").unwrap_or_default();
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let Some(list) = snap.list(&d)? else { continue };
        for (name, k) in list {
            let path = join_path(&d, &name).unwrap_or_default();
            match k {
                EntryKind::Dir => stack.push(path),
                EntryKind::File if !name.starts_with('_') && name != "NOTES.txt" => {
                    if let Some(bytes) = snap.read(&path)? {
                        let text = String::from_utf8_lossy(&bytes).into_owned();
                        out.push(Template { path, text });
                    }
                }
                _ => {}
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// A chart directory in Git, read as far as telling which template renders an object.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Repository-relative directory.
    pub dir: String,
    pub name: String,
    pub version: String,
    /// The chart's templates, then those of the subcharts vendored under `charts/`.
    pub templates: Vec<ChartTemplate>,
    /// Dependencies whose templates Git does not hold (from a chart repository, packaged `.tgz`
    /// files): objects may come from them as well.
    pub outside: Vec<String>,
}

/// One template of a chart or of one of its vendored subcharts.
#[derive(Debug, Clone)]
pub struct ChartTemplate {
    pub template: Template,
    /// Where the template's `.Values` are in the top chart's values: `""` for the chart's own
    /// templates, the subchart's name (or alias) for a subchart's.
    pub values_key: String,
    /// `.Chart.Name` in the template.
    pub chart: String,
}

impl ChartTemplate {
    /// A values key the template reads (`image.tag`), as a key of the top chart's values
    /// (`redis.image.tag` in a subchart; `global.…` is shared).
    pub fn values_key_of(&self, key: &str) -> String {
        if self.values_key.is_empty() || key == "global" || key.starts_with("global.") {
            key.to_string()
        } else {
            format!("{}.{key}", self.values_key)
        }
    }
}

impl Chart {
    /// `helm-guestbook@0.1.0`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// The YAML of a chart file as JSON (`Null` when it is not valid YAML).
fn yaml_value(bytes: &[u8]) -> Value {
    crate::splice::parse_document(&String::from_utf8_lossy(bytes)).unwrap_or(Value::Null)
}

fn text_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Reads the chart at `dir`; `None` when there is no `Chart.yaml` there.
pub fn read_chart(snap: &Snapshot<'_>, dir: &str) -> Result<Option<Chart>, Error> {
    read_chart_as(snap, dir, "", 0)
}

fn read_chart_as(
    snap: &Snapshot<'_>,
    dir: &str,
    values_key: &str,
    depth: usize,
) -> Result<Option<Chart>, Error> {
    let Some(bytes) = snap.read(&join_path(dir, "Chart.yaml").unwrap_or_default())? else {
        return Ok(None);
    };
    let meta = yaml_value(&bytes);
    let name = text_at(&meta, "name")
        .map(str::to_string)
        .unwrap_or_else(|| dir.rsplit('/').next().unwrap_or(dir).to_string());
    let version = text_at(&meta, "version").unwrap_or("?").to_string();
    // Helm 3 lists dependencies in Chart.yaml, Helm 2 charts in requirements.yaml.
    let mut deps_doc = meta.get("dependencies").cloned();
    if deps_doc.is_none()
        && let Some(req) = snap.read(&join_path(dir, "requirements.yaml").unwrap_or_default())?
    {
        deps_doc = yaml_value(&req).get("dependencies").cloned();
    }
    let deps: Vec<(String, Option<String>, String)> = deps_doc
        .as_ref()
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|d| {
                    Some((
                        text_at(d, "name")?.to_string(),
                        text_at(d, "alias").map(str::to_string),
                        text_at(d, "repository").unwrap_or("?").to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut templates: Vec<ChartTemplate> = template_files(snap, dir)?
        .into_iter()
        .map(|template| ChartTemplate {
            template,
            values_key: values_key.to_string(),
            chart: name.clone(),
        })
        .collect();
    let mut outside = Vec::new();
    let mut vendored = Vec::new();
    let charts_dir = join_path(dir, "charts").unwrap_or_default();
    for (entry, kind) in snap.list(&charts_dir)?.unwrap_or_default() {
        let path = join_path(&charts_dir, &entry).unwrap_or_default();
        match kind {
            EntryKind::Dir => {
                let Some(sub_meta) =
                    snap.read(&join_path(&path, "Chart.yaml").unwrap_or_default())?
                else {
                    continue;
                };
                let sub_name = text_at(&yaml_value(&sub_meta), "name")
                    .unwrap_or(entry.as_str())
                    .to_string();
                let mut keys: Vec<String> = deps
                    .iter()
                    .filter(|(n, _, _)| n == &sub_name)
                    .map(|(n, alias, _)| alias.clone().unwrap_or_else(|| n.clone()))
                    .collect();
                if keys.is_empty() {
                    keys.push(sub_name.clone());
                }
                vendored.push(sub_name);
                if depth >= 4 {
                    outside.push(format!("{path} (nested too deep)"));
                    continue;
                }
                for key in keys {
                    let full = if values_key.is_empty() {
                        key
                    } else {
                        format!("{values_key}.{key}")
                    };
                    if let Some(sub) = read_chart_as(snap, &path, &full, depth + 1)? {
                        templates.extend(sub.templates);
                        outside.extend(sub.outside);
                    }
                }
            }
            EntryKind::File if entry.ends_with(".tgz") => {
                outside.push(format!("{path} (a packaged chart)"));
            }
            _ => {}
        }
    }
    for (dep, _, repository) in &deps {
        if !vendored.contains(dep) {
            outside.push(format!("{dep} from {repository}"));
        }
    }
    Ok(Some(Chart {
        dir: dir.to_string(),
        name,
        version,
        templates,
        outside,
    }))
}

/// One `---` separated part of a template file, as far as its text tells what it renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateDoc {
    /// 0-based, counting the parts with content.
    pub index: usize,
    /// First and last line (1-based) of its content.
    pub first_line: usize,
    pub last_line: usize,
    pub api_version: Option<String>,
    pub kind: Option<String>,
    /// `metadata.name` as written (`{{ .Release.Name }}-guestbook`).
    pub name: Option<String>,
    pub namespace: Option<String>,
}

/// A line that is only a template action (`{{- if .Values.ingress.enabled }}`).
fn action_only(line: &str) -> bool {
    let t = line.trim();
    t.starts_with("{{") && t.ends_with("}}")
}

/// A line with YAML content: not blank, not a comment, not only a template action.
fn content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#') && !action_only(line)
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The scalar after `key:` as written: quotes removed, a trailing comment dropped.
fn scalar_text(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(rest) = v.strip_prefix(q)
            && let Some(end) = rest.find(q)
        {
            return rest[..end].to_string();
        }
    }
    match v.find(" #") {
        Some(i) if !v[..i].contains("{{") || v[..i].contains("}}") => v[..i].trim().to_string(),
        _ => v.to_string(),
    }
}

/// The parts of a template file.
pub fn documents(text: &str) -> Vec<TemplateDoc> {
    let lines: Vec<&str> = text.lines().collect();
    let mut docs = Vec::new();
    let mut start = 0;
    for i in 0..=lines.len() {
        let boundary = i == lines.len()
            || lines[i]
                .strip_prefix("---")
                .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t', '\r']));
        if !boundary {
            continue;
        }
        let part = &lines[start..i];
        if let Some(d) = read_part(part, start, docs.len()) {
            docs.push(d);
        }
        start = i + 1;
    }
    docs
}

fn read_part(part: &[&str], offset: usize, index: usize) -> Option<TemplateDoc> {
    let first = part.iter().position(|l| content(l))?;
    let last = part.iter().rposition(|l| content(l))?;
    let mut doc = TemplateDoc {
        index,
        first_line: offset + first + 1,
        last_line: offset + last + 1,
        api_version: None,
        kind: None,
        name: None,
        namespace: None,
    };
    for (n, line) in part.iter().enumerate() {
        if indent(line) > 0 || !content(line) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "apiVersion" => doc.api_version = Some(scalar_text(value)),
            "kind" => doc.kind = Some(scalar_text(value)),
            "metadata" => {
                let mut child: Option<usize> = None;
                for l in &part[n + 1..] {
                    if !content(l) {
                        continue;
                    }
                    let ind = indent(l);
                    if ind == 0 {
                        break;
                    }
                    let want = *child.get_or_insert(ind);
                    if ind != want {
                        continue;
                    }
                    if let Some((k, v)) = l.trim().split_once(':') {
                        match k {
                            "name" => doc.name = Some(scalar_text(v)),
                            "namespace" => doc.namespace = Some(scalar_text(v)),
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Some(doc)
}

/// What the `{{ … }}` in a name can be read as.
pub struct Names<'a> {
    /// `.Release.Name`.
    pub release: &'a str,
    /// `.Release.Namespace`.
    pub namespace: &'a str,
    /// The top chart's values as the release gets them; `None` when some could not be read
    /// (then `.Values` are wildcards).
    pub values: Option<&'a Value>,
}

/// The value at a dotted key.
pub fn value_at<'v>(values: &'v Value, key: &str) -> Option<&'v Value> {
    key.split('.')
        .filter(|k| !k.is_empty())
        .try_fold(values, |v, k| v.get(k))
}

/// One template action as text, if it is one this reading knows (`.Release.Name`,
/// `.Release.Namespace`, `.Chart.Name`, `.Values.a.b`, a quoted string).
fn eval(action: &str, t: &ChartTemplate, names: &Names<'_>) -> Option<String> {
    let a = action
        .trim()
        .trim_start_matches('-')
        .trim_end_matches('-')
        .trim();
    let a = a.strip_prefix('$').unwrap_or(a);
    match a {
        ".Release.Name" => return Some(names.release.to_string()),
        ".Release.Namespace" => return Some(names.namespace.to_string()),
        ".Chart.Name" => return Some(t.chart.clone()),
        _ => {}
    }
    if let Some(s) = a.strip_prefix('"').and_then(|r| r.strip_suffix('"'))
        && !s.contains(['"', '\\'])
    {
        return Some(s.to_string());
    }
    let key = a.strip_prefix(".Values.")?;
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return None;
    }
    match value_at(names.values?, &t.values_key_of(key))? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A written `metadata.name` as a glob (`*-guestbook` for `{{ include "x.fullname" . }}-guestbook`)
/// and whether it is exact (every action read).
pub fn name_pattern(raw: &str, t: &ChartTemplate, names: &Names<'_>) -> (String, bool) {
    let mut out = String::new();
    let mut exact = true;
    let mut rest = raw;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            out.push('*');
            return (out, false);
        };
        match eval(&after[..j], t, names) {
            Some(s) => out.push_str(&s),
            None => {
                if !out.ends_with('*') {
                    out.push('*');
                }
                exact = false;
            }
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    (out, exact)
}

fn same_group(a: &str, b: &str) -> bool {
    a == b || (matches!(a, "apps" | "extensions") && matches!(b, "apps" | "extensions"))
}

/// Which template renders an object.
#[derive(Debug, Clone)]
pub enum Which<'c> {
    /// This template, and the part of it (`None`: one of several parts of this file).
    One(&'c ChartTemplate, Option<TemplateDoc>),
    /// No one template can be named: why.
    Unknown(String),
}

/// The template of `chart` that renders `wanted`: the one whose kind and name (read with
/// `names`) match exactly, else the only one whose name pattern matches when nothing outside Git
/// can render it too. Anything else is said, never guessed.
pub fn which_template<'c>(chart: &'c Chart, wanted: &Wanted, names: &Names<'_>) -> Which<'c> {
    let mut exact: Vec<(&ChartTemplate, TemplateDoc)> = Vec::new();
    let mut loose: Vec<(&ChartTemplate, TemplateDoc)> = Vec::new();
    for t in &chart.templates {
        for d in documents(&t.template.text) {
            let Some(kind) = &d.kind else { continue };
            let kind_read = !kind.contains("{{");
            if kind_read && kind != &wanted.kind {
                continue;
            }
            if let Some(av) = d.api_version.as_deref().filter(|a| !a.contains("{{")) {
                let group = av.rsplit_once('/').map_or("", |(g, _)| g);
                if !same_group(group, &wanted.group) {
                    continue;
                }
            }
            if let Some(ns) = d.namespace.as_deref().filter(|n| !n.contains("{{"))
                && !wanted.namespace.is_empty()
                && ns != wanted.namespace
            {
                continue;
            }
            let (pattern, name_read) = match &d.name {
                Some(raw) => name_pattern(raw, t, names),
                None => ("*".to_string(), false),
            };
            if !gitops_guard_core::owner::glob(&pattern, &wanted.name) {
                continue;
            }
            if kind_read && name_read {
                exact.push((t, d));
            } else {
                loose.push((t, d));
            }
        }
    }
    let what = format!("{}/{}", wanted.kind.to_lowercase(), wanted.name);
    let one_file = |list: &[(&'c ChartTemplate, TemplateDoc)]| -> Option<Which<'c>> {
        let (t, d) = list.first()?;
        if list.iter().all(|(o, _)| o.template.path == t.template.path) {
            Some(Which::One(t, (list.len() == 1).then(|| d.clone())))
        } else {
            None
        }
    };
    let files = |list: &[(&ChartTemplate, TemplateDoc)]| {
        let mut f: Vec<&str> = list.iter().map(|(t, _)| t.template.path.as_str()).collect();
        f.dedup();
        f.join(", ")
    };
    if !exact.is_empty() {
        return one_file(&exact).unwrap_or_else(|| {
            Which::Unknown(format!(
                "{} templates render {what}: {}",
                exact.len(),
                files(&exact)
            ))
        });
    }
    let outside = if chart.outside.is_empty() {
        String::new()
    } else {
        format!(
            "; the dependencies {} are not in Git and may render it",
            chart.outside.join(", ")
        )
    };
    if loose.is_empty() {
        return Which::Unknown(if chart.outside.is_empty() {
            format!(
                "no template of the chart renders a {} named like {}",
                wanted.kind, wanted.name
            )
        } else {
            format!(
                "no template of the chart in Git renders it: it comes from a dependency not in Git ({})",
                chart.outside.join(", ")
            )
        });
    }
    if chart.outside.is_empty()
        && let Some(w) = one_file(&loose)
    {
        return w;
    }
    Which::Unknown(format!(
        "its name is not written literally in {} (the name is made by the chart's helpers){outside}",
        files(&loose)
    ))
}

/// The line of a template that writes the field at `path` (1-based, as written), or the line of
/// its nearest parent the template writes, and how many segments of `path` that line is; searched
/// in the lines `within`.
pub fn field_line(
    text: &str,
    path: &[PathSegment],
    within: (usize, usize),
) -> Option<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let (from, to) = (within.0.max(1) - 1, within.1.min(lines.len()));
    let mut at = from;
    let mut depth: Option<usize> = None;
    let mut found = None;
    for (i, seg) in path.iter().enumerate() {
        let PathSegment::Key(k) = seg else { continue };
        let hit = (at..to).find(|&n| {
            let l = lines[n];
            let ind = indent(l);
            let t = l.trim_start().trim_start_matches("- ");
            t.strip_prefix(k.as_str())
                .is_some_and(|r| r.starts_with(':'))
                && depth.is_none_or(|d| ind > d)
        });
        let Some(n) = hit else { break };
        depth = Some(indent(lines[n]));
        at = n + 1;
        found = Some((n + 1, lines[n].trim().to_string(), i + 1));
    }
    found
}

/// The `.Values.…` references on a template line.
fn values_refs(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find(".Values.") {
        let after = &rest[i + ".Values.".len()..];
        let key: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        let key = key.trim_end_matches('.').to_string();
        if !key.is_empty() && !out.contains(&key) {
            out.push(key);
        }
        rest = after;
    }
    out
}

/// Which values keys write a field: `(keys, whole)` where `whole` means the key holds the field
/// itself (a scalar substitution) rather than a block it is part of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// The field is the value of these keys (`image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"`).
    Scalar(Vec<String>),
    /// The field is inside a block written from one key (`toYaml .Values.resources`): the key
    /// path of the field.
    Block(String),
}

/// The values key(s) behind the field at `path`, if the templates show one.
pub fn map_field(templates: &[Template], path: &[PathSegment]) -> Option<Mapping> {
    let keys: Vec<(usize, &str)> = path
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            PathSegment::Key(k) => Some((i, k.as_str())),
            PathSegment::Index(_) => None,
        })
        .collect();
    let (last_i, last) = *keys.last()?;
    let leaf_is_last = last_i + 1 == path.len();
    // The field itself written from values.
    if leaf_is_last {
        let mut found: Vec<Vec<String>> = Vec::new();
        for t in templates {
            for line in t.text.lines() {
                if let Some(v) = line
                    .trim_start()
                    .trim_start_matches("- ")
                    .strip_prefix(&format!("{last}:"))
                    && !v.trim().is_empty()
                {
                    let refs = values_refs(v);
                    if !refs.is_empty() && !found.contains(&refs) {
                        found.push(refs);
                    }
                }
            }
        }
        if found.len() == 1 {
            return found.pop().map(Mapping::Scalar);
        }
        if found.len() > 1 {
            return None;
        }
    }
    // A block the field is inside, written with toYaml from one key.
    for &(i, k) in keys.iter().rev() {
        let mut hits: Vec<String> = Vec::new();
        for t in templates {
            let lines: Vec<&str> = t.text.lines().collect();
            for (n, line) in lines.iter().enumerate() {
                let Some(v) = line
                    .trim_start()
                    .trim_start_matches("- ")
                    .strip_prefix(&format!("{k}:"))
                else {
                    continue;
                };
                let next = lines[n + 1..]
                    .iter()
                    .find(|l| !l.trim().is_empty())
                    .copied()
                    .unwrap_or("");
                let block = if v.trim().is_empty() { next } else { v };
                if !(block.contains("toYaml") || block.contains("with .Values")) {
                    continue;
                }
                if let Some(r) = values_refs(block).into_iter().next()
                    && !hits.contains(&r)
                {
                    hits.push(r);
                }
            }
        }
        if hits.len() == 1 {
            let mut key = hits.remove(0);
            let rest = &path[i + 1..];
            if rest.iter().any(|s| matches!(s, PathSegment::Index(_))) {
                return None;
            }
            for s in rest {
                if let PathSegment::Key(k) = s {
                    key.push('.');
                    key.push_str(k);
                }
            }
            return Some(Mapping::Block(key));
        }
    }
    None
}

fn set_dotted(values: &mut Map<String, Value>, key: &str, v: Value) {
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = values;
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            cur.insert((*p).to_string(), v);
            return;
        }
        let next = cur
            .entry((*p).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        let Value::Object(m) = next else { return };
        cur = m;
    }
}

/// Splits `repo:tag` (a registry port is not a tag; a digest stays with the tag).
fn split_repo_tag(image: &str) -> Option<(String, String)> {
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    let colon = image[slash..].find(':')? + slash;
    Some((image[..colon].to_string(), image[colon + 1..].to_string()))
}

/// The refusal for a Helm-rendered object: which values key(s) would make the change, and the
/// command that proposes it; or why no values key reaches a field.
pub fn explain(
    resource_in: &str,
    chart: &HelmChart,
    templates: Option<&[Template]>,
    changes: &[Change],
) -> Error {
    let mut lines = Vec::new();
    let mut values = Map::new();
    let mut unmapped = Vec::new();
    for c in changes {
        let path = c.path();
        let mapping = templates.and_then(|t| map_field(t, path.segments()));
        let new_value = match c {
            Change::Set { value, .. } | Change::Insert { value, .. } => Some(value.clone()),
            Change::Delete { .. } => None,
        };
        match (mapping, new_value) {
            (Some(Mapping::Scalar(keys)), Some(v)) if keys.len() == 1 => {
                lines.push(format!("{path} comes from the values key {}", keys[0]));
                set_dotted(&mut values, &keys[0], v);
            }
            (Some(Mapping::Scalar(keys)), Some(Value::String(img)))
                if keys.len() == 2
                    && keys[0].ends_with("repository")
                    && keys[1].ends_with("tag") =>
            {
                lines.push(format!(
                    "{path} comes from the values keys {} and {}",
                    keys[0], keys[1]
                ));
                if let Some((repo, tag)) = split_repo_tag(&img) {
                    set_dotted(&mut values, &keys[0], Value::String(repo));
                    set_dotted(&mut values, &keys[1], Value::String(tag));
                }
            }
            (Some(Mapping::Scalar(keys)), _) => {
                lines.push(format!(
                    "{path} comes from the values keys {}",
                    keys.join(", ")
                ));
                unmapped.push(path.to_string());
            }
            (Some(Mapping::Block(key)), v) => {
                lines.push(format!("{path} comes from the values key {key}"));
                set_dotted(&mut values, &key, v.unwrap_or(Value::Null));
            }
            (None, _) => unmapped.push(path.to_string()),
        }
    }
    let mut m = format!(
        "{resource_in} is rendered by {} from {}; there is no manifest to change.",
        chart.owner, chart.chart
    );
    for l in &lines {
        m.push_str(&format!("\n  {l}"));
    }
    if !unmapped.is_empty() {
        m.push_str(&format!(
            "\nNo values key of the chart sets {} ({}); change the chart's templates instead, or edit the release: {}",
            unmapped.join(", "),
            if templates.is_some() {
                "its templates write them literally or in a way kubectl gitops cannot follow"
            } else {
                "the chart is not in a Git repository kubectl gitops can read"
            },
            chart.values_command.replacen(" patch ", " edit ", 1),
        ));
    } else if !values.is_empty() {
        let mut patch = Value::Object(values);
        for k in chart.values_field.iter().rev() {
            let mut m = Map::new();
            m.insert(k.clone(), patch);
            patch = Value::Object(m);
        }
        m.push_str(&format!(
            "\nPropose the change to the release's values instead:\n  {} --type merge -p '{}'",
            chart.values_command, patch
        ));
    }
    LocateError::HelmRendered { message: m }.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::splice::FieldPath;
    use serde_json::json;

    fn tpl() -> Vec<Template> {
        vec![Template {
            path: "charts/web/templates/deployment.yaml".into(),
            text: "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: {{ .Values.replicaCount }}\n  template:\n    spec:\n      containers:\n        - name: web\n          image: \"{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}\"\n          resources:\n            {{- toYaml .Values.resources | nindent 12 }}\n          ports:\n            - containerPort: 8080\n".into(),
        }]
    }

    #[test]
    fn fields_map_to_values_keys() {
        let t = tpl();
        assert_eq!(
            map_field(&t, FieldPath::keys(["spec", "replicas"]).segments()),
            Some(Mapping::Scalar(vec!["replicaCount".into()]))
        );
        let img = FieldPath::keys(["spec", "template", "spec", "containers"])
            .index(0)
            .key("image");
        assert_eq!(
            map_field(&t, img.segments()),
            Some(Mapping::Scalar(vec![
                "image.repository".into(),
                "image.tag".into()
            ]))
        );
        let mem = FieldPath::keys(["spec", "template", "spec", "containers"])
            .index(0)
            .key("resources")
            .key("limits")
            .key("memory");
        assert_eq!(
            map_field(&t, mem.segments()),
            Some(Mapping::Block("resources.limits.memory".into()))
        );
        let port = FieldPath::keys(["spec", "template", "spec", "containers"])
            .index(0)
            .key("ports")
            .index(0)
            .key("containerPort");
        assert_eq!(map_field(&t, port.segments()), None);
    }

    fn chart(templates: &[(&str, &str)], outside: &[&str]) -> Chart {
        Chart {
            dir: "guestbook".into(),
            name: "guestbook".into(),
            version: "0.1.0".into(),
            templates: templates
                .iter()
                .map(|(path, text)| ChartTemplate {
                    template: Template {
                        path: format!("guestbook/templates/{path}"),
                        text: text.to_string(),
                    },
                    values_key: String::new(),
                    chart: "guestbook".into(),
                })
                .collect(),
            outside: outside.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn wanted(kind: &str, group: &str, name: &str) -> Wanted {
        Wanted {
            group: group.into(),
            kind: kind.into(),
            namespace: "prod".into(),
            name: name.into(),
        }
    }

    fn which_file(c: &Chart, w: &Wanted, values: Option<&Value>) -> Result<String, String> {
        let names = Names {
            release: "shop",
            namespace: "prod",
            values,
        };
        match which_template(c, w, &names) {
            Which::One(t, _) => Ok(t.template.path.rsplit('/').next().unwrap().to_string()),
            Which::Unknown(why) => Err(why),
        }
    }

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-guestbook\n  labels:\n    {{- include \"guestbook.labels\" . | nindent 4 }}\nspec:\n  replicas: {{ .Values.replicaCount }}\n";
    const WORKER: &str = "{{- if .Values.worker.enabled }}\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: \"{{ .Release.Name }}-{{ .Values.worker.name }}\"\n  namespace: prod\nspec:\n  replicas: 1\n{{- end }}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {{ include \"guestbook.fullname\" . }}\n";

    #[test]
    fn template_parts_say_kind_and_name() {
        let docs = documents(WORKER);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].kind.as_deref(), Some("Deployment"));
        assert_eq!(
            docs[0].name.as_deref(),
            Some("{{ .Release.Name }}-{{ .Values.worker.name }}")
        );
        assert_eq!(docs[0].namespace.as_deref(), Some("prod"));
        assert_eq!((docs[0].first_line, docs[0].last_line), (2, 8));
        assert_eq!(docs[1].index, 1);
        assert_eq!(docs[1].kind.as_deref(), Some("Service"));
        assert_eq!((docs[1].first_line, docs[1].last_line), (11, 14));
    }

    #[test]
    fn the_template_is_told_by_kind_and_name() {
        let c = chart(&[("deployment.yaml", DEPLOY), ("worker.yaml", WORKER)], &[]);
        let values = json!({"worker": {"name": "jobs"}});
        let deploy = wanted("Deployment", "apps", "shop-guestbook");
        assert_eq!(
            which_file(&c, &deploy, Some(&values)).as_deref(),
            Ok("deployment.yaml")
        );
        let worker = wanted("Deployment", "apps", "shop-jobs");
        assert_eq!(
            which_file(&c, &worker, Some(&values)).as_deref(),
            Ok("worker.yaml")
        );
        // Values that could not all be read: the worker's name is a pattern, still one match.
        assert_eq!(which_file(&c, &worker, None).as_deref(), Ok("worker.yaml"));
        // A name made by a helper: the only Service template.
        let svc = wanted("Service", "", "shop-guestbook");
        assert_eq!(which_file(&c, &svc, None).as_deref(), Ok("worker.yaml"));
        // ... unless a dependency outside Git may render Services too.
        let c2 = chart(
            &[("deployment.yaml", DEPLOY), ("worker.yaml", WORKER)],
            &["redis from https://charts.example.com"],
        );
        let e = which_file(&c2, &svc, None).unwrap_err();
        assert!(
            e.contains("not written literally in guestbook/templates/worker.yaml"),
            "{e}"
        );
        assert!(e.contains("redis from https://charts.example.com"), "{e}");
        // An exact name still wins.
        assert_eq!(
            which_file(&c2, &deploy, None).as_deref(),
            Ok("deployment.yaml")
        );
        // Nothing renders it.
        let other = wanted("ConfigMap", "", "shop-guestbook");
        assert!(which_file(&c, &other, None).is_err());
        let wrong_group = wanted("Deployment", "example.com", "shop-guestbook");
        assert!(which_file(&c, &wrong_group, None).is_err());
        // Two templates for one name: said, not guessed.
        let c3 = chart(&[("a.yaml", DEPLOY), ("b.yaml", DEPLOY)], &[]);
        let e = which_file(&c3, &deploy, None).unwrap_err();
        assert!(
            e.contains("2 templates render deployment/shop-guestbook"),
            "{e}"
        );
    }

    #[test]
    fn the_line_that_writes_a_field() {
        let path = FieldPath::keys(["spec", "replicas"]);
        assert_eq!(
            field_line(WORKER, path.segments(), (2, 8)),
            Some((8, "replicas: 1".into(), 2))
        );
        let label = FieldPath::keys(["metadata", "labels", "team"]);
        assert_eq!(
            field_line(DEPLOY, label.segments(), (1, 8)),
            Some((5, "labels:".into(), 2))
        );
    }

    #[test]
    fn explanation_gives_the_values_patch() {
        let chart = HelmChart {
            owner: "Flux HelmRelease prod/web".into(),
            values_command: "kubectl gitops patch helmrelease/web -n prod".into(),
            values_field: vec!["spec".into(), "values".into()],
            git: None,
            chart: "the chart charts/web".into(),
        };
        let t = tpl();
        let e = explain(
            "deployment/web in prod",
            &chart,
            Some(&t),
            &[Change::set(FieldPath::keys(["spec", "replicas"]), json!(6))],
        )
        .to_string();
        assert!(
            e.contains("spec.replicas comes from the values key replicaCount"),
            "{e}"
        );
        assert!(e.contains(r#"kubectl gitops patch helmrelease/web -n prod --type merge -p '{"spec":{"values":{"replicaCount":6}}}'"#), "{e}");
        let e = explain(
            "deployment/web in prod",
            &chart,
            None,
            &[Change::set(
                FieldPath::keys(["spec", "paused"]),
                json!(true),
            )],
        )
        .to_string();
        assert!(
            e.contains("No values key of the chart sets spec.paused"),
            "{e}"
        );
        assert!(
            e.contains("kubectl gitops edit helmrelease/web -n prod"),
            "{e}"
        );
    }
}
