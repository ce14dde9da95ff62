//! The kubectl verbs as changes to an object: `scale`, `set image`, `patch`, `label` and
//! `annotate` with kubectl's arguments, checks and messages (`edit` is the editor session).

use gitops_guard_core::workload::{valid_label_key, valid_label_value};
use serde_json::{Map, Value};

use crate::Error;
use crate::splice::{self, Change};

/// How `kubectl patch --type` reads the patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Strategic,
    Merge,
    Json,
}

impl std::str::FromStr for PatchType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "strategic" => Ok(PatchType::Strategic),
            "merge" => Ok(PatchType::Merge),
            "json" => Ok(PatchType::Json),
            other => Err(Error::Usage(format!(
                "--type must be one of [json merge strategic], not \"{other}\""
            ))),
        }
    }
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Verb {
    Edit,
    Scale {
        replicas: u64,
        /// `--current-replicas`: a precondition on the live object.
        current: Option<u64>,
    },
    SetImage {
        images: Vec<(String, String)>,
    },
    Patch {
        kind: PatchType,
        patch: Value,
    },
    Label(MetaUpdate),
    Annotate(MetaUpdate),
}

/// `KEY=VALUE` and `KEY-` arguments of `label` / `annotate`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetaUpdate {
    pub set: Vec<(String, String)>,
    pub remove: Vec<String>,
    pub overwrite: bool,
}

impl Verb {
    /// The verb as typed (`set image`).
    pub fn name(&self) -> &'static str {
        match self {
            Verb::Edit => "edit",
            Verb::Scale { .. } => "scale",
            Verb::SetImage { .. } => "set image",
            Verb::Patch { .. } => "patch",
            Verb::Label(_) => "label",
            Verb::Annotate(_) => "annotate",
        }
    }

    /// What the change does, in words, for the commit subject.
    pub fn summary(&self, changes: &[Change]) -> String {
        let fields = || match changes {
            [one] => one.path().to_string(),
            many => format!("{} fields", many.len()),
        };
        match self {
            Verb::Edit => format!("edit {}", fields()),
            Verb::Scale { replicas, .. } => format!(
                "scale to {replicas} replica{}",
                if *replicas == 1 { "" } else { "s" }
            ),
            Verb::SetImage { images } => format!(
                "set image {}",
                images
                    .iter()
                    .map(|(c, i)| format!("{c}={i}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Verb::Patch { .. } => format!("patch {}", fields()),
            Verb::Label(u) => format!("label {}", u.describe()),
            Verb::Annotate(u) => format!("annotate {}", u.describe()),
        }
    }

    /// The object after the change (`Edit` returns it unchanged: the editor makes the change).
    /// `object` is the object as Git defines it.
    pub fn apply(&self, object: &Value) -> Result<(Value, Vec<String>), Error> {
        let mut out = object.clone();
        let mut notes = Vec::new();
        match self {
            Verb::Edit => {}
            Verb::Scale { replicas, .. } => {
                set(&mut out, &["spec", "replicas"], Value::from(*replicas));
            }
            Verb::SetImage { images } => {
                for c in splice::set_image_changes(object, images)? {
                    super::target::apply_change(&mut out, &c);
                }
            }
            Verb::Patch { kind, patch } => match kind {
                PatchType::Strategic => splice::strategic_merge_patch(&mut out, patch),
                PatchType::Merge => splice::merge_patch(&mut out, patch),
                PatchType::Json => splice::json_patch(&mut out, patch)?,
            },
            Verb::Label(u) => u.apply(&mut out, "labels", true, &mut notes)?,
            Verb::Annotate(u) => u.apply(&mut out, "annotations", false, &mut notes)?,
        }
        Ok((out, notes))
    }
}

fn set(obj: &mut Value, path: &[&str], value: Value) {
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

impl MetaUpdate {
    /// Parses kubectl's `KEY=VALUE` / `KEY-` arguments.
    pub fn parse(args: &[String], overwrite: bool, labels: bool) -> Result<MetaUpdate, Error> {
        let what = if labels { "label" } else { "annotation" };
        let mut u = MetaUpdate {
            overwrite,
            ..MetaUpdate::default()
        };
        for a in args {
            if let Some((k, v)) = a.split_once('=') {
                if !valid_label_key(k) {
                    return Err(Error::Usage(format!(
                        "invalid {what} key {k:?}: a key is an optional DNS subdomain prefix and '/', then at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
                    )));
                }
                if labels && !valid_label_value(v) {
                    return Err(Error::Usage(format!(
                        "invalid label value: \"{a}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)"
                    )));
                }
                u.set.push((k.to_string(), v.to_string()));
            } else if let Some(k) = a.strip_suffix('-') {
                if !valid_label_key(k) {
                    return Err(Error::Usage(format!("invalid {what} key {k:?}")));
                }
                u.remove.push(k.to_string());
            } else {
                return Err(Error::Usage(format!(
                    "invalid {what} format: {a:?}: use KEY=VALUE to set or KEY- to remove"
                )));
            }
        }
        if u.set.is_empty() && u.remove.is_empty() {
            return Err(Error::Usage(format!(
                "at least one {what} update is required"
            )));
        }
        for (k, _) in &u.set {
            if u.remove.contains(k) {
                return Err(Error::Usage(format!(
                    "can not both modify and remove the {what} {k:?} in the same command"
                )));
            }
        }
        Ok(u)
    }

    fn describe(&self) -> String {
        let mut parts: Vec<String> = self.set.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.extend(self.remove.iter().map(|k| format!("{k}-")));
        parts.join(" ")
    }

    fn apply(
        &self,
        obj: &mut Value,
        field: &str,
        labels: bool,
        notes: &mut Vec<String>,
    ) -> Result<(), Error> {
        let current = obj
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut map = current.clone();
        for (k, v) in &self.set {
            if let Some(old) = current.get(k).and_then(Value::as_str)
                && old != v
                && !self.overwrite
            {
                return Err(Error::Usage(format!(
                    "'{k}' already has a value ({old}), and --overwrite is false"
                )));
            }
            map.insert(k.clone(), Value::String(v.clone()));
        }
        for k in &self.remove {
            if map.remove(k).is_none() {
                notes.push(format!(
                    "{} \"{k}\" not found.",
                    if labels { "label" } else { "annotation" }
                ));
            }
        }
        if map == current {
            return Ok(());
        }
        if map.is_empty() {
            if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
                meta.remove(field);
            }
        } else {
            set(obj, &["metadata", field], Value::Object(map));
        }
        Ok(())
    }
}

/// Parses `CONTAINER=IMAGE` arguments of `set image`.
pub fn parse_images(args: &[String]) -> Result<Vec<(String, String)>, Error> {
    if args.is_empty() {
        return Err(Error::Usage(
            "at least one image update is required: CONTAINER_NAME=CONTAINER_IMAGE".into(),
        ));
    }
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((c, i)) if !c.is_empty() && !i.is_empty() => Ok((c.to_string(), i.to_string())),
            _ => Err(Error::Usage(format!(
                "invalid image update {a:?}: use CONTAINER_NAME=CONTAINER_IMAGE (or *=IMAGE for all containers)"
            ))),
        })
        .collect()
}

/// Reads a `-p` patch (JSON or YAML, as kubectl accepts).
pub fn parse_patch(text: &str, kind: PatchType) -> Result<Value, Error> {
    let v = splice::parse_document(text).map_err(|e| Error::Invalid {
        what: "the patch is not valid JSON or YAML".into(),
        source: e.into(),
    })?;
    match (kind, &v) {
        (PatchType::Json, Value::Array(_)) => Ok(v),
        (PatchType::Json, _) => Err(Error::Usage(
            "a --type json patch is a list of operations, e.g. '[{\"op\": \"replace\", \"path\": \"/spec/replicas\", \"value\": 3}]'".into(),
        )),
        (_, Value::Object(_)) => Ok(v),
        _ => Err(Error::Usage(
            "a merge or strategic patch is a map, e.g. '{\"spec\":{\"replicas\":3}}'".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({"kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}}})
    }

    #[test]
    fn scale_set_image_patch() {
        let (o, _) = Verb::Scale {
            replicas: 6,
            current: None,
        }
        .apply(&obj())
        .unwrap();
        assert_eq!(o["spec"]["replicas"], 6);
        let (o, _) = Verb::SetImage {
            images: vec![("web".into(), "web:2".into())],
        }
        .apply(&obj())
        .unwrap();
        assert_eq!(
            o["spec"]["template"]["spec"]["containers"][0]["image"],
            "web:2"
        );
        let p = parse_patch(r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","resources":{"limits":{"memory":"768Mi"}}}]}}}}"#, PatchType::Strategic).unwrap();
        let (o, _) = Verb::Patch {
            kind: PatchType::Strategic,
            patch: p,
        }
        .apply(&obj())
        .unwrap();
        assert_eq!(
            o["spec"]["template"]["spec"]["containers"][0]["image"],
            "web:1"
        );
        assert_eq!(
            o["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"],
            "768Mi"
        );
        assert!(parse_patch("[1]", PatchType::Merge).is_err());
        assert!(parse_patch("spec:\n  replicas: 2\n", PatchType::Merge).is_ok());
    }

    #[test]
    fn label_rules_follow_kubectl() {
        let u = MetaUpdate::parse(&["team=payments".into(), "app-".into()], false, true).unwrap();
        let (o, notes) = Verb::Label(u).apply(&obj()).unwrap();
        assert_eq!(o["metadata"]["labels"], json!({"team": "payments"}));
        assert!(notes.is_empty());
        let u = MetaUpdate::parse(&["app=api".into()], false, true).unwrap();
        assert_eq!(
            Verb::Label(u)
                .apply(&obj())
                .map_err(|e| e.to_string())
                .err()
                .as_deref(),
            Some("'app' already has a value (web), and --overwrite is false")
        );
        let u = MetaUpdate::parse(&["app=api".into()], true, true).unwrap();
        assert_eq!(
            Verb::Label(u).apply(&obj()).unwrap().0["metadata"]["labels"]["app"],
            "api"
        );
        let u = MetaUpdate::parse(&["gone-".into()], false, true).unwrap();
        let (o, notes) = Verb::Label(u).apply(&obj()).unwrap();
        assert_eq!(o, obj());
        assert_eq!(notes, ["label \"gone\" not found."]);
        assert!(MetaUpdate::parse(&["bad key=x".into()], false, true).is_err());
        assert!(MetaUpdate::parse(&["k=has space".into()], false, true).is_err());
        assert!(MetaUpdate::parse(&["k=has space".into()], false, false).is_ok());
        assert!(MetaUpdate::parse(&["example.com/team=x".into()], false, true).is_ok());
        assert!(MetaUpdate::parse(&[], false, true).is_err());
    }
}
