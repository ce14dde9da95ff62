//! A change to an object that an Argo CD Application renders from a Helm chart in Git: each
//! changed field is written as the values key the chart's template reads for it
//! ([`super::map_field`]), in the values the Application gives Helm — the last of the chart's
//! `values.yaml` and the `helm.valueFiles` that sets the key, else the last value file listed,
//! else the chart's `values.yaml`. A key the Application sets itself (`helm.values`,
//! `helm.valuesObject`, `helm.parameters`) is refused with the command that edits the
//! Application; a field no values key reaches is refused, naming the template and its line.

use serde_json::{Map, Value};

use super::{
    ChartTemplate, Mapping, Names, Template, Which, field_line, map_field, split_repo_tag,
};
use crate::Error;
use crate::change::diff::FileChange;
use crate::change::locate::Followed;
use crate::change::{
    AttemptError, Context, EditorText, Outcome, PrTarget, Prepared, cleaned, to_yaml, warn,
};
use crate::git::{Repo, Snapshot};
use crate::locate::ArgoHelm;
use crate::locate::error::Error as LocateError;
use crate::locate::helm::{ChartValues, Origin, Values};
use crate::manifest::{Build, Wanted};
use crate::splice::{self, Change, FieldPath};

/// The chart as the change sees it at the tip of the branch.
struct Rendering<'c> {
    dir: &'c str,
    label: String,
    /// The template that renders the object, else every template of the top chart that can
    /// render its kind (a values key counts when they all agree).
    templates: Vec<&'c ChartTemplate>,
    /// The lines of the template's part that renders the object.
    lines: Option<(usize, usize)>,
    /// Why the template cannot be told, when it cannot.
    unknown: Option<String>,
    values: &'c Values,
}

/// One values key to write.
struct Write {
    key: String,
    /// `None` removes the key.
    value: Option<Value>,
    /// The field it makes (`spec.replicas`).
    field: String,
}

impl Context {
    /// The manifests of the owner's builds — or, for an Argo CD source whose path is a Helm
    /// chart, the values the source gives the chart.
    pub(in crate::change) fn manifests_or_values(
        &self,
        builds: &[(Followed, Build)],
    ) -> Result<(), Error> {
        for (i, (source, build)) in builds.iter().enumerate() {
            let Some(h) = self.located.charts.get(i).and_then(Option::as_ref) else {
                continue;
            };
            if self.renders_chart(source, build, h) {
                return self.values_change(source, build, h);
            }
        }
        self.manifests(builds)
    }

    /// Whether the source renders a chart, read in the clone without fetching: at the applied
    /// commit, else at the clone's view of the branch. When the clone cannot tell, the
    /// manifests are tried (they say so when they meet a chart).
    fn renders_chart(&self, source: &Followed, build: &Build, h: &ArgoHelm) -> bool {
        let Ok((ws, origin)) = self.workspace(source) else {
            return false;
        };
        let Ok(repo) = Repo::open(&ws.dir, origin) else {
            return false;
        };
        let applied = self
            .located
            .applied
            .as_ref()
            .and_then(|r| r.commit.as_deref())
            .and_then(|c| repo.commit_id(c).ok().flatten());
        let Some(id) =
            applied.or_else(|| repo.resolve_reference(source.branch.as_deref().unwrap_or("HEAD")))
        else {
            return false;
        };
        repo.snapshot(id)
            .map_err(Error::from)
            .and_then(|snap| h.renders(&snap, &build.path))
            .unwrap_or(false)
    }

    fn values_change(&self, source: &Followed, build: &Build, h: &ArgoHelm) -> Result<(), Error> {
        let place = self.place(source)?;
        let pr_target = if self.flags.dry_run {
            PrTarget::default()
        } else {
            place.repo.identity()?;
            self.pr_target(source, &place.ws)?
        };
        let git_repo = Repo::open(&place.ws.dir, place.origin)?;
        let snap = git_repo.snapshot(place.start)?;
        let dir = build.path.as_str();
        let at = format!(
            "{}@{}",
            place.branch_name(),
            crate::git::revision::short(&place.start.to_string())
        );
        let Some(cv) = crate::locate::helm::read(&snap, dir, h)? else {
            return Err(LocateError::NotLocated {
                message: format!(
                    "{}: {} renders ./{dir} as a Helm chart, but there is no chart there at {at}",
                    self.located.resource_in(),
                    self.located.applier
                ),
            }
            .into());
        };
        let r = self.rendering(&cv, dir, h);
        for n in &r.values.notes {
            warn(n);
        }
        let old = cleaned(&self.located.live);
        let validate = !self.flags.dry_run;
        let mut notes: Vec<String> = Vec::new();
        let editor = || {
            EditorText {
            initial: to_yaml(&old),
            about: vec![
                format!(
                    "This is {} as it runs now; {} renders it from the Helm chart ./{dir} ({}) at {at}.",
                    self.located.resource_in(),
                    self.located.applier,
                    r.label
                ),
                "Each field you change is written as the values key the chart's template reads for it, in the values the Application gives Helm;".into(),
                "saving proposes that as a pull request. The live object does not change.".into(),
            ],
            nl: "\n",
        }
        };
        let outcome = self.outcome(&old, editor, |new: &Value| {
            notes.clear();
            self.prepare_values(&snap, &r, h, &old, new, validate, &mut notes)
        });
        for n in &notes {
            eprintln!("{n}");
        }
        let (prepared, edited) = match outcome.map_err(AttemptError::into_error)? {
            Outcome::Ready(p, edited) => (p, edited),
            Outcome::Nothing => return Ok(()),
        };
        self.propose(
            source,
            &place,
            pr_target,
            &old,
            &prepared,
            edited.as_deref(),
        )
    }

    /// The template behind the object, with the values at the tip.
    fn rendering<'c>(&self, cv: &'c ChartValues, dir: &'c str, h: &ArgoHelm) -> Rendering<'c> {
        let (chart, values) = (&cv.chart, &cv.values);
        let wanted = Wanted {
            group: self.located.group().to_string(),
            kind: self.located.kind().to_string(),
            namespace: self.located.namespace.clone().unwrap_or_default(),
            name: self.located.name.clone(),
        };
        let names = Names {
            release: &h.release,
            namespace: &h.namespace,
            values: values.complete.then_some(&values.merged),
        };
        let (templates, lines, unknown) = match super::which_template(chart, &wanted, &names) {
            Which::One(t, doc) => (vec![t], doc.map(|d| (d.first_line, d.last_line)), None),
            Which::Unknown(why) => {
                let needle = format!("kind: {}", wanted.kind);
                let of_kind = chart
                    .templates
                    .iter()
                    .filter(|t| t.values_key.is_empty())
                    .filter(|t| t.template.text.lines().any(|l| l.trim() == needle))
                    .collect();
                (of_kind, None, Some(why))
            }
        };
        Rendering {
            dir,
            label: chart.label(),
            templates,
            lines,
            unknown,
            values,
        }
    }

    /// Writes the change into the value files, checks it and validates it against the cluster.
    #[allow(clippy::too_many_arguments)]
    fn prepare_values(
        &self,
        snap: &Snapshot<'_>,
        r: &Rendering<'_>,
        h: &ArgoHelm,
        old: &Value,
        new: &Value,
        validate: bool,
        notes: &mut Vec<String>,
    ) -> Result<Prepared, AttemptError> {
        self.check_identity(old, new)?;
        let changes = splice::changes_between(old, new);
        let (writes, mut refusals) = self.writes(r, &changes, notes);
        // Where each key is written: the layer whose value wins.
        let mut files: Vec<(String, Vec<Change>)> = Vec::new();
        for w in &writes {
            if w.value.is_some()
                && crate::change::helm::value_at(&r.values.merged, &w.key) == w.value.as_ref()
            {
                continue;
            }
            match place_of(r.values, &w.key) {
                Err(field) => refusals.push(format!(
                    "{} comes from the values key {}, which {} sets in {}.helm.{field} (over the value files); change it there: {}",
                    w.field,
                    w.key,
                    h.app(),
                    h.field,
                    h.edit_command()
                )),
                Ok(Placed::Elsewhere(f)) => refusals.push(format!(
                    "{} comes from the values key {}, which the value file {f} may set; it is not in this repository: change it there",
                    w.field, w.key
                )),
                Ok(Placed::File { file, defaults }) => {
                    notes.push(format!(
                        "{} comes from the values key {}: written in {file}",
                        w.field, w.key
                    ));
                    if defaults && !h.value_files.is_empty() {
                        notes.push(format!(
                            "Note: {file} holds the chart's defaults: every Application that renders ./{} without its own {} changes too",
                            r.dir, w.key
                        ));
                    }
                    let path = FieldPath::keys(w.key.split('.'));
                    let change = match &w.value {
                        Some(v) => Change::set(path, v.clone()),
                        None => Change::delete(path),
                    };
                    match files.iter_mut().find(|(f, _)| f == &file) {
                        Some((_, list)) => list.push(change),
                        None => files.push((file, vec![change])),
                    }
                }
            }
        }
        if !refusals.is_empty() {
            return Err(AttemptError::Fatal(self.refusal(r, &refusals)));
        }
        let mut out = Vec::new();
        for (file, list) in files {
            let old_text = snap
                .read(&file)
                .map_err(|e| AttemptError::Fatal(e.into()))?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let new_text = if splice::parse_document(&old_text)
                .map_err(|e| AttemptError::Fatal(e.into()))?
                .is_object()
            {
                splice::apply_changes(&old_text, &list)
                    .map_err(|e| AttemptError::Fatal(e.into()))?
            } else {
                // An empty (or absent) values file: written anew.
                let mut v = Value::Object(Map::new());
                for c in &list {
                    crate::change::target::apply_change(&mut v, c);
                }
                format!("{old_text}{}", to_yaml(&v))
            };
            if new_text != old_text {
                out.push(FileChange {
                    path: file,
                    old: old_text,
                    new: new_text,
                });
            }
        }
        if validate && !out.is_empty() {
            self.validate(old, &changes)?;
        }
        Ok(Prepared {
            new: new.clone(),
            changes,
            files: out,
            validated: validate,
        })
    }

    /// The values keys behind the changes; and why for the fields none reaches.
    fn writes(
        &self,
        r: &Rendering<'_>,
        changes: &[Change],
        notes: &mut Vec<String>,
    ) -> (Vec<Write>, Vec<String>) {
        let tpl: Vec<Template> = r.templates.iter().map(|t| t.template.clone()).collect();
        // A subchart's template reads its values under the subchart's key.
        let top = |key: &str| match r.templates.as_slice() {
            [one] => one.values_key_of(key),
            _ => key.to_string(),
        };
        let mut writes = Vec::new();
        let mut refusals = Vec::new();
        if let Some(why) = &r.unknown {
            notes.push(format!(
                "Which template of the chart renders {} cannot be told ({why}); a values key counts only when every template of kind {} reads the same one",
                self.located.resource(),
                self.located.kind()
            ));
        }
        for c in changes {
            let path = c.path();
            let field = path.to_string();
            let value = match c {
                Change::Set { value, .. } | Change::Insert { value, .. } => Some(value.clone()),
                Change::Delete { .. } => None,
            };
            match (map_field(&tpl, path.segments()), value) {
                (Some(Mapping::Scalar(keys)), Some(v)) if keys.len() == 1 => writes.push(Write {
                    key: top(&keys[0]),
                    value: Some(v),
                    field,
                }),
                (Some(Mapping::Scalar(keys)), Some(Value::String(img)))
                    if keys.len() == 2
                        && keys[0].ends_with("repository")
                        && keys[1].ends_with("tag") =>
                {
                    match split_repo_tag(&img) {
                        Some((repo, tag)) => {
                            writes.push(Write {
                                key: top(&keys[0]),
                                value: Some(Value::String(repo)),
                                field: field.clone(),
                            });
                            writes.push(Write {
                                key: top(&keys[1]),
                                value: Some(Value::String(tag)),
                                field,
                            });
                        }
                        None => refusals.push(format!(
                            "{field} comes from the values keys {} and {}, but {img} has no tag to write in {}",
                            keys[0], keys[1], keys[1]
                        )),
                    }
                }
                (Some(Mapping::Scalar(keys)), _) => refusals.push(format!(
                    "{field} comes from the values keys {} together, which a change cannot be split into",
                    keys.join(", ")
                )),
                (Some(Mapping::Block(key)), v) => writes.push(Write {
                    key: top(&key),
                    value: v,
                    field,
                }),
                (None, _) => refusals.push(self.unmapped(r, path)),
            }
        }
        (writes, refusals)
    }

    /// Why no values key reaches a field: the template line that writes it, if one does.
    fn unmapped(&self, r: &Rendering<'_>, path: &FieldPath) -> String {
        match (r.templates.as_slice(), &r.unknown) {
            ([t], None) => {
                let within = r.lines.unwrap_or((1, usize::MAX));
                match field_line(&t.template.text, path.segments(), within) {
                    Some((n, text, k)) if k == path.segments().len() => format!(
                        "{path}: no values key sets it; {} writes it literally at line {n} (`{text}`)",
                        t.template.path
                    ),
                    Some((n, text, k)) => format!(
                        "{path}: no values key sets it; {} writes {} literally at line {n} (`{text}`)",
                        t.template.path,
                        FieldPath(path.segments()[..k].to_vec())
                    ),
                    None => format!(
                        "{path}: the template {} does not write it from a values key",
                        t.template.path
                    ),
                }
            }
            _ => format!(
                "{path}: no values key of the chart's templates of kind {} sets it",
                self.located.kind()
            ),
        }
    }

    fn refusal(&self, r: &Rendering<'_>, refusals: &[String]) -> Error {
        let mut m = format!(
            "cannot change {}: {} renders it from the Helm chart ./{} ({}), and",
            self.located.resource_in(),
            self.located.applier,
            r.dir,
            r.label
        );
        for l in refusals {
            m.push_str(&format!("\n  {l}"));
        }
        m.push_str("\nNothing was changed.");
        LocateError::HelmRendered { message: m }.into()
    }
}

/// Where a values key is written.
enum Placed {
    /// A file of the repository; `defaults`: the chart's `values.yaml`.
    File { file: String, defaults: bool },
    /// A value file that is not in the repository may set it.
    Elsewhere(String),
}

/// The layer that sets `key` (or, for a key nobody sets, its nearest parent), last wins; for a
/// key nobody sets, the last value file listed, else the chart's `values.yaml`. `Err`: the
/// Application sets it itself, in this field of its `helm`.
fn place_of(values: &Values, key: &str) -> Result<Placed, &'static str> {
    let parts: Vec<&str> = key.split('.').collect();
    let winner = (1..=parts.len())
        .rev()
        .find_map(|n| values.setters(&parts[..n].join(".")).last().copied());
    let origin = match winner {
        Some(l) => l.origin.clone(),
        None => values
            .layers
            .iter()
            .rev()
            .find(|l| matches!(l.origin, Origin::File(_) | Origin::Defaults(_)))
            .map(|l| l.origin.clone())
            .unwrap_or(Origin::Defaults(String::new())),
    };
    match origin {
        Origin::Defaults(file) => Ok(Placed::File {
            file,
            defaults: true,
        }),
        Origin::File(file) => Ok(Placed::File {
            file,
            defaults: false,
        }),
        Origin::Elsewhere(f) => Ok(Placed::Elsewhere(f)),
        Origin::Inline(field) => Err(field),
        Origin::Parameters(field) => Err(field),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locate::helm::Layer;
    use serde_json::json;

    fn values(layers: Vec<(Origin, Option<Value>)>) -> Values {
        Values {
            complete: layers.iter().all(|(_, v)| v.is_some()),
            layers: layers
                .into_iter()
                .map(|(origin, values)| Layer { origin, values })
                .collect(),
            merged: Value::Null,
            notes: Vec::new(),
        }
    }

    fn file(p: &Result<Placed, &'static str>) -> String {
        match p {
            Ok(Placed::File { file, defaults }) => {
                format!("{file}{}", if *defaults { " (defaults)" } else { "" })
            }
            Ok(Placed::Elsewhere(f)) => format!("elsewhere {f}"),
            Err(field) => format!("application {field}"),
        }
    }

    /// The key is written where its value wins: the last layer that sets it; a key nobody sets
    /// goes to the last value file listed; the Application's own values are not files.
    #[test]
    fn a_key_is_written_where_its_value_comes_from() {
        let v = values(vec![
            (
                Origin::Defaults("c/values.yaml".into()),
                Some(json!({"replicaCount": 1, "image": {"tag": "1"}, "resources": {}})),
            ),
            (
                Origin::File("c/values-eu.yaml".into()),
                Some(json!({"image": {"tag": "2"}})),
            ),
            (
                Origin::File("c/values-prod.yaml".into()),
                Some(json!({"image": {"tag": "3"}})),
            ),
            (
                Origin::File("c/values-last.yaml".into()),
                Some(json!({"ingress": {"enabled": true}})),
            ),
            (
                Origin::Parameters("parameters"),
                Some(json!({"service": {"port": "8080"}})),
            ),
        ]);
        assert_eq!(
            file(&place_of(&v, "replicaCount")),
            "c/values.yaml (defaults)"
        );
        assert_eq!(file(&place_of(&v, "image.tag")), "c/values-prod.yaml");
        assert_eq!(
            file(&place_of(&v, "nodeSelector.zone")),
            "c/values-last.yaml"
        );
        assert_eq!(
            file(&place_of(&v, "resources.limits.memory")),
            "c/values.yaml (defaults)"
        );
        assert_eq!(
            file(&place_of(&v, "service.port")),
            "application parameters"
        );
        let inline = values(vec![
            (
                Origin::Defaults("c/values.yaml".into()),
                Some(json!({"a": 1})),
            ),
            (Origin::Elsewhere("$values/prod.yaml".into()), None),
            (Origin::Inline("valuesObject"), Some(json!({"b": 2}))),
        ]);
        assert_eq!(file(&place_of(&inline, "b")), "application valuesObject");
        // A file that could not be read may set anything.
        assert_eq!(file(&place_of(&inline, "a")), "elsewhere $values/prod.yaml");
        let bare = values(vec![(
            Origin::Defaults("c/values.yaml".into()),
            Some(Value::Null),
        )]);
        assert_eq!(file(&place_of(&bare, "x")), "c/values.yaml (defaults)");
    }
}
