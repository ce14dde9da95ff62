//! Objects rendered from a Helm chart have no manifest to change: their fields come from the
//! release's values. When the chart is in Git, its templates say which values key writes a
//! field (`replicas: {{ .Values.replicaCount }}`, `{{- toYaml .Values.resources | nindent 12 }}`);
//! the change is then explained as the values change that makes it, with the command that
//! proposes that change. Fields no values key reaches are refused with a clear message.

use serde_json::{Map, Value};

use super::locate::HelmChart;
use crate::Error;
use crate::git::{EntryKind, Snapshot, join_path};
use crate::splice::{Change, PathSegment};

/// One template file of the chart.
#[derive(Debug, Clone)]
pub struct Template {
    pub path: String,
    pub text: String,
}

/// The chart's templates that can produce objects of `kind`.
pub fn templates(snap: &Snapshot<'_>, chart_dir: &str, kind: &str) -> Result<Vec<Template>, Error> {
    let dir = join_path(chart_dir, "templates").unwrap_or_default();
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let Some(list) = snap.list(&d)? else { continue };
        for (name, k) in list {
            let path = join_path(&d, &name).unwrap_or_default();
            match k {
                EntryKind::Dir => stack.push(path),
                EntryKind::File if name.ends_with(".yaml") || name.ends_with(".yml") => {
                    if let Some(bytes) = snap.read(&path)? {
                        let text = String::from_utf8_lossy(&bytes).into_owned();
                        let needle = format!("kind: {kind}");
                        if text.lines().any(|l| l.trim() == needle) {
                            out.push(Template { path, text });
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
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
    Error::HelmRendered { message: m }
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
