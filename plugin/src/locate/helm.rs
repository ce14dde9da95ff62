//! Argo CD sources that render a Helm chart kept in Git (`spec.source.path` holds a `Chart.yaml`):
//! what the Application gives Helm — release name, namespace, `helm.valueFiles`, `helm.values` /
//! `helm.valuesObject`, `helm.parameters` —, the values that comes to, layer by layer, and which
//! of the chart's templates renders an object (the chart reading of [`crate::change::helm`]).

use serde_json::{Map, Value};

use crate::Error;
use crate::change::helm::{self, Names, Which};
use crate::git::{EntryKind, Snapshot, join_path};
use crate::manifest::Wanted;

/// What an Argo CD source gives Helm when its path is a chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgoHelm {
    pub app_namespace: String,
    pub app_name: String,
    /// `spec.source.helm` is set: Argo CD renders the path with Helm whatever else it holds
    /// (otherwise a `Chart.yaml` without a kustomization file decides).
    pub explicit: bool,
    /// `helm.releaseName`, else the Application's name.
    pub release: String,
    /// The destination namespace (`.Release.Namespace`).
    pub namespace: String,
    /// `helm.valueFiles` as written (relative to the chart).
    pub value_files: Vec<String>,
    pub ignore_missing: bool,
    /// `helm.valuesObject`, else `helm.values` (YAML text) read: the field and the values.
    pub inline: Option<(&'static str, Value)>,
    /// `helm.parameters` (`--set name=value`), in order.
    pub parameters: Vec<(String, String)>,
    /// `helm.fileParameters` (`--set-file name=path`): the names and paths.
    pub file_parameters: Vec<(String, String)>,
    /// Where the source is in the Application (`spec.source`, `spec.sources[1]`).
    pub field: String,
}

fn text<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

impl ArgoHelm {
    /// What the source `source` of `app` (at `field`) gives Helm; `None` when the source is set
    /// to another type (`directory`, `kustomize`, `plugin`).
    pub fn of_source(app: &Value, source: &Value, field: String) -> Option<ArgoHelm> {
        if ["directory", "kustomize", "plugin"]
            .iter()
            .any(|k| source.get(*k).is_some_and(|v| !v.is_null()))
        {
            return None;
        }
        let helm = source.get("helm").filter(|h| !h.is_null());
        let app_name = text(app, "/metadata/name").unwrap_or_default().to_string();
        let h = helm.cloned().unwrap_or(Value::Null);
        let inline = match h.get("valuesObject").filter(|v| !v.is_null()) {
            Some(obj) => Some(("valuesObject", obj.clone())),
            None => text(&h, "/values").map(|t| {
                (
                    "values",
                    crate::splice::parse_document(t).unwrap_or(Value::Null),
                )
            }),
        };
        Some(ArgoHelm {
            app_namespace: text(app, "/metadata/namespace")
                .unwrap_or_default()
                .to_string(),
            explicit: helm.is_some(),
            release: text(&h, "/releaseName").unwrap_or(&app_name).to_string(),
            namespace: text(&h, "/namespace")
                .or_else(|| text(app, "/spec/destination/namespace"))
                .unwrap_or_default()
                .to_string(),
            value_files: h
                .get("valueFiles")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            ignore_missing: h
                .get("ignoreMissingValueFiles")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            inline,
            file_parameters: h
                .get("fileParameters")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|p| {
                            Some((
                                text(p, "/name")?.to_string(),
                                text(p, "/path").unwrap_or_default().to_string(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            parameters: h
                .get("parameters")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|p| {
                            Some((
                                text(p, "/name")?.to_string(),
                                p.get("value")
                                    .map(|v| match v {
                                        Value::String(s) => s.clone(),
                                        other => other.to_string(),
                                    })
                                    .unwrap_or_default(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            app_name,
            field,
        })
    }

    /// `Application argocd/guestbook`.
    pub fn app(&self) -> String {
        format!("Application {}/{}", self.app_namespace, self.app_name)
    }

    /// The command that changes the Application itself.
    pub fn edit_command(&self) -> String {
        format!(
            "kubectl gitops edit application/{} -n {}",
            self.app_name, self.app_namespace
        )
    }

    /// Whether Argo CD renders `dir` with Helm at this snapshot: a `Chart.yaml` there, and
    /// `helm` set or no kustomization file (which Argo CD would build instead).
    pub fn renders(&self, snap: &Snapshot<'_>, dir: &str) -> Result<bool, Error> {
        let file = |name: &str| -> Result<bool, Error> {
            Ok(snap.kind(&join_path(dir, name).unwrap_or_default())? == Some(EntryKind::File))
        };
        if !file("Chart.yaml")? {
            return Ok(false);
        }
        if self.explicit {
            return Ok(true);
        }
        Ok(crate::manifest::kustomize::kustomization_in(snap, dir)?.is_none())
    }

    /// The values Helm gets, layer by layer: the chart's `values.yaml`, each of `valueFiles`,
    /// the inline values, the parameters.
    pub fn values(&self, snap: &Snapshot<'_>, dir: &str) -> Result<Values, Error> {
        let mut layers = Vec::new();
        let defaults = join_path(dir, "values.yaml").unwrap_or_default();
        let read = |path: &str| -> Result<Option<Value>, Error> {
            Ok(snap.read(path)?.map(|b| {
                crate::splice::parse_document(&String::from_utf8_lossy(&b)).unwrap_or(Value::Null)
            }))
        };
        layers.push(Layer {
            origin: Origin::Defaults(defaults.clone()),
            values: Some(read(&defaults)?.unwrap_or(Value::Null)),
        });
        let mut notes = Vec::new();
        for f in &self.value_files {
            if f.contains("://") || f.starts_with('$') {
                notes.push(format!(
                    "the value file {f} is not in this repository and is not read"
                ));
                layers.push(Layer {
                    origin: Origin::Elsewhere(f.clone()),
                    values: None,
                });
                continue;
            }
            let Some(path) = join_path(dir, f) else {
                notes.push(format!("the value file {f} points outside the repository"));
                continue;
            };
            match read(&path)? {
                Some(v) => layers.push(Layer {
                    origin: Origin::File(path),
                    values: Some(v),
                }),
                None if self.ignore_missing => {}
                None => notes.push(format!("the value file {path} does not exist")),
            }
        }
        if let Some((field, v)) = &self.inline {
            layers.push(Layer {
                origin: Origin::Inline(field),
                values: Some(v.clone()),
            });
        }
        for (field, list) in [
            ("parameters", &self.parameters),
            ("fileParameters", &self.file_parameters),
        ] {
            if list.is_empty() {
                continue;
            }
            let mut set = Value::Object(Map::new());
            for (name, value) in list {
                set_dotted(&mut set, name, Value::String(value.clone()));
            }
            layers.push(Layer {
                origin: Origin::Parameters(field),
                values: Some(set),
            });
        }
        let mut merged = Value::Object(Map::new());
        for l in &layers {
            if let Some(v) = &l.values {
                coalesce(&mut merged, v);
            }
        }
        Ok(Values {
            complete: layers.iter().all(|l| l.values.is_some()),
            layers,
            merged,
            notes,
        })
    }
}

fn set_dotted(values: &mut Value, key: &str, v: Value) {
    let mut cur = values;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(m) = cur else { return };
        if i + 1 == parts.len() {
            m.insert((*p).to_string(), v);
            return;
        }
        cur = m
            .entry((*p).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Helm's merge of a later values layer over an earlier one: maps merge key by key, anything
/// else replaces, `null` removes.
fn coalesce(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                    continue;
                }
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        coalesce(existing, v)
                    }
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) if !o.is_null() => *b = o.clone(),
        _ => {}
    }
}

/// Where a layer of values comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The chart's `values.yaml`: its defaults, for every release of the chart.
    Defaults(String),
    /// A file of `helm.valueFiles` in the repository.
    File(String),
    /// A value file elsewhere (a URL, another source's `$ref`), not read.
    Elsewhere(String),
    /// `helm.values` or `helm.valuesObject` of the Application.
    Inline(&'static str),
    /// `helm.parameters` or `helm.fileParameters` of the Application.
    Parameters(&'static str),
}

impl Origin {
    /// The repository file of the layer, if it is one.
    pub fn file(&self) -> Option<&str> {
        match self {
            Origin::Defaults(f) | Origin::File(f) => Some(f),
            _ => None,
        }
    }
}

/// One layer of values, lowest precedence first.
#[derive(Debug, Clone)]
pub struct Layer {
    pub origin: Origin,
    /// `None` when it could not be read.
    pub values: Option<Value>,
}

/// The values an Argo CD Helm source gives its chart.
#[derive(Debug, Clone)]
pub struct Values {
    pub layers: Vec<Layer>,
    /// All layers merged, as Helm does.
    pub merged: Value,
    /// Every layer was read.
    pub complete: bool,
    /// What was not read, and why.
    pub notes: Vec<String>,
}

impl Values {
    /// The layers that set `key` (a dotted values key), lowest precedence first; a layer that
    /// could not be read counts as "may set it".
    pub fn setters(&self, key: &str) -> Vec<&Layer> {
        self.layers
            .iter()
            .filter(|l| match &l.values {
                Some(v) => helm::value_at(v, key).is_some(),
                None => true,
            })
            .collect()
    }

    /// For a hint: the files and fields the values come from (`helm-guestbook/values.yaml`,
    /// `helm.parameters`).
    pub fn describe(&self) -> Vec<String> {
        self.layers
            .iter()
            .map(|l| match &l.origin {
                Origin::Defaults(f) | Origin::File(f) | Origin::Elsewhere(f) => f.clone(),
                Origin::Inline(field) => format!("helm.{field}"),
                Origin::Parameters(field) => format!("helm.{field}"),
            })
            .collect()
    }
}

/// A chart and the values a source gives it, read once per commit for every object it renders.
#[derive(Debug, Clone)]
pub struct ChartValues {
    pub chart: helm::Chart,
    pub values: Values,
}

/// Reads the chart at `dir` and the values `h` gives it; `None` when Argo CD does not render
/// `dir` with Helm at this snapshot.
pub fn read(snap: &Snapshot<'_>, dir: &str, h: &ArgoHelm) -> Result<Option<ChartValues>, Error> {
    if !h.renders(snap, dir)? {
        return Ok(None);
    }
    let Some(chart) = helm::read_chart(snap, dir)? else {
        return Ok(None);
    };
    let values = h.values(snap, dir)?;
    Ok(Some(ChartValues { chart, values }))
}

/// What `status` finds for an object an Argo CD Helm source renders.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// `helm-guestbook@0.1.0`.
    pub chart: String,
    /// Where the values come from (files, Application fields).
    pub values: Vec<String>,
    /// The template file and the part of it; else why no one template can be named.
    pub template: Result<(String, Option<helm::TemplateDoc>), String>,
}

/// The template of the chart that renders `wanted`.
pub fn locate(cv: &ChartValues, h: &ArgoHelm, wanted: &Wanted) -> Rendered {
    let names = Names {
        release: &h.release,
        namespace: &h.namespace,
        values: cv.values.complete.then_some(&cv.values.merged),
    };
    let template = match helm::which_template(&cv.chart, wanted, &names) {
        Which::One(t, doc) => Ok((t.template.path.clone(), doc)),
        Which::Unknown(why) => Err(why),
    };
    Rendered {
        chart: cv.chart.label(),
        values: cv.values.describe(),
        template,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layers_merge_as_helm_does() {
        let mut base =
            json!({"image": {"repository": "web", "tag": "1.0"}, "replicaCount": 1, "gone": 1});
        coalesce(
            &mut base,
            &json!({"image": {"tag": "2.0"}, "gone": null, "extra": [1]}),
        );
        assert_eq!(
            base,
            json!({"image": {"repository": "web", "tag": "2.0"}, "replicaCount": 1, "extra": [1]})
        );
    }

    #[test]
    fn what_an_application_gives_helm() {
        let app = json!({"metadata": {"name": "guestbook", "namespace": "argocd"},
            "spec": {"destination": {"namespace": "prod"}}});
        let source = json!({"path": "helm-guestbook", "helm": {
            "valueFiles": ["values-prod.yaml"],
            "values": "replicaCount: 3\n",
            "parameters": [{"name": "image.tag", "value": "2.0"}]}});
        let h = ArgoHelm::of_source(&app, &source, "spec.source".into()).unwrap();
        assert!(h.explicit);
        assert_eq!(h.release, "guestbook");
        assert_eq!(h.namespace, "prod");
        assert_eq!(h.value_files, ["values-prod.yaml"]);
        assert_eq!(h.inline, Some(("values", json!({"replicaCount": 3}))));
        assert_eq!(h.parameters, [("image.tag".to_string(), "2.0".to_string())]);
        assert_eq!(
            h.edit_command(),
            "kubectl gitops edit application/guestbook -n argocd"
        );
        let dir = json!({"path": "web", "directory": {"recurse": true}});
        assert!(ArgoHelm::of_source(&app, &dir, "spec.source".into()).is_none());
        let plain = ArgoHelm::of_source(&app, &json!({"path": "web"}), "spec.source".into());
        assert!(plain.is_some_and(|h| !h.explicit && h.release == "guestbook"));
    }
}
