//! What a Flux Kustomization does to every object after building its path: `spec.patches`,
//! `spec.images` and `postBuild` variable substitution. A change written into the manifests at a
//! field one of these sets would change nothing (Flux overrides it again) or, for a substituted
//! variable, would replace the variable for every cluster that shares the file. Such changes are
//! refused, naming where the value really comes from.

use serde_json::Value;

use crate::Error;
use crate::change::error::Error as ChangeError;
use crate::locate::error::Error as LocateError;
use crate::patch_target;
use crate::splice::{self, Change, PathSegment};

use super::target;

/// The owner's own transformations, read from the live Kustomization.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `kustomization/apps -n flux-system`, to edit the owner itself.
    pub owner: String,
    /// `spec.patches` items (`patch` text and `target`).
    pub patches: Vec<Value>,
    /// `spec.images` items.
    pub images: Vec<Value>,
    /// Where postBuild variables come from: `spec.postBuild.substitute` and each
    /// `substituteFrom` (`ConfigMap flux-system/cluster-vars`); empty without postBuild.
    pub variables_from: Vec<String>,
}

impl Overrides {
    /// The overrides of a Flux Kustomization (`None` when it has none).
    pub fn of_kustomization(ks: &Value) -> Option<Overrides> {
        let list = |p: &str| {
            ks.pointer(p)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let mut variables_from = Vec::new();
        if ks
            .pointer("/spec/postBuild/substitute")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
        {
            variables_from.push("its spec.postBuild.substitute".to_string());
        }
        let namespace = ks
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for from in list("/spec/postBuild/substituteFrom") {
            let kind = from
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("ConfigMap");
            let name = from.get("name").and_then(Value::as_str).unwrap_or("?");
            variables_from.push(format!("{kind} {namespace}/{name}"));
        }
        let o = Overrides {
            owner: format!(
                "kustomization/{} -n {namespace}",
                ks.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            ),
            patches: list("/spec/patches"),
            images: list("/spec/images"),
            variables_from,
        };
        (!o.patches.is_empty() || !o.images.is_empty() || !o.variables_from.is_empty()).then_some(o)
    }

    /// Refuses `changes` (from `old`, the object as the manifests give it, to `new`) at fields
    /// the owner sets after the build. `resource` names the object (`deployment/web in prod`),
    /// `file` the manifest the change would be written to.
    pub fn check(
        &self,
        old: &Value,
        new: &Value,
        changes: &[Change],
        resource: &str,
        file: &str,
    ) -> Result<(), Error> {
        let refuse = |path: &str, by: String, fix: String| {
            ChangeError::OverriddenByOwner {
                path: path.to_string(),
                resource: resource.to_string(),
                file: file.to_string(),
                by,
                fix,
            }
            .into()
        };
        let edit_owner = format!("kubectl gitops edit {}", self.owner);
        // postBuild: a value that is a variable in Git (unless the object opts out).
        if !self.variables_from.is_empty() && !substitution_disabled(old) {
            for c in changes {
                let segs = c.path().segments();
                if let Some(text) = string_at_or_above(old, segs)
                    && let Some(var) = variable_in(text)
                {
                    return Err(refuse(
                        &c.path().to_string(),
                        format!(
                            "the postBuild variable ${{{var}}} (written {text:?} in Git; its value comes from {})",
                            self.variables_from.join(", ")
                        ),
                        "change the variable where it is set (every cluster sharing the file keeps its own value), or write the value in place of the variable by hand if that is what you mean".into(),
                    ));
                }
            }
        }
        // spec.patches: apply each that targets the object to the changed object; a changed
        // field that comes out different is the patch's.
        for (i, p) in self.patches.iter().enumerate() {
            let selected = targets(p.get("target"), new).map_err(|e| LocateError::OwnerIncomplete {
                owner: self.owner.clone(),
                problem: format!(
                    "spec.patches[{i}] does not apply: {e}, and Flux applies nothing of it until that is fixed in Git ({edit_owner})"
                ),
            })?;
            let Some(after) = selected.then(|| patched(p, new)).flatten() else {
                continue;
            };
            for c in changes {
                let segs = c.path().segments();
                if target::value_at(&after, segs) != target::value_at(new, segs) {
                    return Err(refuse(
                        &c.path().to_string(),
                        format!("spec.patches[{i}] of the Flux Kustomization it comes from"),
                        format!("change the patch: {edit_owner}"),
                    ));
                }
            }
        }
        // spec.images: an image whose name an entry rewrites.
        for (i, entry) in self.images.iter().enumerate() {
            let Some(name) = entry.get("name").and_then(Value::as_str) else {
                continue;
            };
            let rewrites = ["newName", "newTag", "digest"]
                .iter()
                .any(|k| entry.get(*k).is_some());
            if !rewrites {
                continue;
            }
            for c in changes {
                let segs = c.path().segments();
                let is_image = matches!(segs.last(), Some(PathSegment::Key(k)) if k == "image");
                let named = |v: &Value| {
                    target::value_at(v, segs)
                        .and_then(Value::as_str)
                        .is_some_and(|image| image_name(image) == name)
                };
                if is_image && (named(old) || named(new)) {
                    return Err(refuse(
                        &c.path().to_string(),
                        format!(
                            "spec.images[{i}] (name: {name}) of the Flux Kustomization it comes from"
                        ),
                        format!("change the image entry: {edit_owner}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A field the owner sets after the build, and how (for `blame`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerSetter {
    pub path: Vec<PathSegment>,
    /// `spec.patches[0] of kustomization/apps -n flux-system`, `the postBuild variable ${TEAM}…`.
    pub what: String,
}

impl Overrides {
    /// The fields the owner sets on `built` (the object as the manifests give it): each
    /// targeting `spec.patches` item in turn, each `spec.images` entry naming an image of it, and
    /// every string holding a `${VAR}` that `postBuild` substitutes.
    pub fn setters(&self, built: &Value) -> Vec<OwnerSetter> {
        let mut out = Vec::new();
        let mut state = built.clone();
        for (i, p) in self.patches.iter().enumerate() {
            let Some(next) = patched(p, &state) else {
                continue;
            };
            for c in splice::changes_between(&state, &next) {
                out.push(OwnerSetter {
                    path: c.path().segments().to_vec(),
                    what: format!("spec.patches[{i}] of {}", self.owner),
                });
            }
            state = next;
        }
        for (i, entry) in self.images.iter().enumerate() {
            let Some(name) = entry.get("name").and_then(Value::as_str) else {
                continue;
            };
            visit_strings(&state, &mut |path, text| {
                if matches!(path.last(), Some(PathSegment::Key(k)) if k == "image")
                    && image_name(text) == name
                {
                    out.push(OwnerSetter {
                        path: path.to_vec(),
                        what: format!("spec.images[{i}] of {}", self.owner),
                    });
                }
            });
        }
        if !self.variables_from.is_empty() && !substitution_disabled(built) {
            visit_strings(built, &mut |path, text| {
                if let Some(var) = variable_in(text) {
                    out.push(OwnerSetter {
                        path: path.to_vec(),
                        what: format!(
                            "the postBuild variable ${{{var}}} of {} (from {})",
                            self.owner,
                            self.variables_from.join(", ")
                        ),
                    });
                }
            });
        }
        out
    }
}

impl Overrides {
    /// `built` (the object as the manifests give it) as the owner applies it: its targeting
    /// `spec.patches` in turn, its `spec.images` (`newName`, `newTag`, `digest`), and `postBuild`
    /// variables from `variables` (else their `${VAR:=default}`; a variable with neither stays
    /// as written, and [`Overrides::setters`] names it).
    pub fn apply(
        &self,
        built: &Value,
        variables: &std::collections::BTreeMap<String, String>,
    ) -> Value {
        let mut state = built.clone();
        for p in &self.patches {
            if let Some(next) = patched(p, &state) {
                state = next;
            }
        }
        let mut rewrites: Vec<(Vec<PathSegment>, String)> = Vec::new();
        visit_strings(&state, &mut |path, text| {
            if !matches!(path.last(), Some(PathSegment::Key(k)) if k == "image") {
                return;
            }
            let name = image_name(text);
            let Some(entry) = self
                .images
                .iter()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
            else {
                return;
            };
            let field = |k: &str| {
                entry
                    .get(k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            };
            let rest = &text[name.len()..];
            let old_tag = rest
                .split('@')
                .next()
                .and_then(|t| t.strip_prefix(':'))
                .map(str::to_string);
            let mut image = field("newName").unwrap_or(name).to_string();
            match (field("newTag"), old_tag) {
                (Some(t), _) => image.push_str(&format!(":{t}")),
                (None, Some(t)) => image.push_str(&format!(":{t}")),
                (None, None) => {}
            }
            if let Some(d) = field("digest") {
                image.push_str(&format!("@{d}"));
            } else if let Some((_, d)) = rest.split_once('@') {
                image.push_str(&format!("@{d}"));
            }
            rewrites.push((path.to_vec(), image));
        });
        for (path, image) in rewrites {
            if let Some(slot) = target::value_at_mut(&mut state, &path) {
                *slot = Value::String(image);
            }
        }
        if !self.variables_from.is_empty() && !substitution_disabled(built) {
            let mut subs: Vec<(Vec<PathSegment>, String)> = Vec::new();
            visit_strings(&state, &mut |path, text| {
                if variable_in(text).is_some() {
                    subs.push((path.to_vec(), substitute(text, variables)));
                }
            });
            for (path, text) in subs {
                if let Some(slot) = target::value_at_mut(&mut state, &path) {
                    *slot = Value::String(text);
                }
            }
        }
        state
    }
}

/// `text` with its `${VAR}` and `${VAR:=default}` replaced (`$${VAR}` is kept as `${VAR}`); a
/// variable without a value or default stays as written.
fn substitute(text: &str, variables: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if at > 0 && rest.as_bytes().get(at - 1) == Some(&b'$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let inner_start = at + 2;
        let Some(end) = rest[inner_start..].find('}') else {
            out.push_str(&rest[at..]);
            return out;
        };
        let inner = &rest[inner_start..inner_start + end];
        let (name, default) = match inner.split_once(":=") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match variables.get(name).map(String::as_str).or(default) {
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[at..inner_start + end + 1]),
        }
        rest = &rest[inner_start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// Calls `f` with the path and text of every string in `v` (an explicit stack: no recursion on
/// input, however deep).
fn visit_strings(v: &Value, f: &mut dyn FnMut(&[PathSegment], &str)) {
    let mut stack: Vec<(Vec<PathSegment>, &Value)> = vec![(Vec::new(), v)];
    while let Some((at, v)) = stack.pop() {
        match v {
            Value::String(s) => f(&at, s),
            Value::Object(m) => {
                for (k, v) in m.iter().rev() {
                    let mut p = at.clone();
                    p.push(PathSegment::Key(k.clone()));
                    stack.push((p, v));
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate().rev() {
                    let mut p = at.clone();
                    p.push(PathSegment::Index(i));
                    stack.push((p, v));
                }
            }
            _ => {}
        }
    }
}

/// The string at `segs`, or at the nearest string above it (a field inside a substituted block).
fn string_at_or_above<'v>(v: &'v Value, segs: &[PathSegment]) -> Option<&'v str> {
    (0..=segs.len())
        .rev()
        .find_map(|n| target::value_at(v, &segs[..n]).and_then(Value::as_str))
}

/// The first `${VAR}` (or `${VAR:=default}`) in a text, by its name; `$${VAR}` is Flux's escape
/// for a literal `${VAR}`, not a variable.
fn variable_in(text: &str) -> Option<&str> {
    let mut from = 0;
    let start = loop {
        let at = from + text.get(from..)?.find("${")?;
        if at > 0 && text.as_bytes().get(at - 1) == Some(&b'$') {
            from = at + 2;
            continue;
        }
        break at + 2;
    };
    let rest = &text[start..];
    let end = rest.find('}')?;
    let inner = &rest[..end];
    let name = inner.split([':', '=', '-']).next().unwrap_or(inner);
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(name)
}

/// Whether the object opts out of postBuild substitution (the label or annotation
/// `kustomize.toolkit.fluxcd.io/substitute: disabled`).
fn substitution_disabled(obj: &Value) -> bool {
    ["labels", "annotations"].iter().any(|m| {
        obj.pointer(&format!("/metadata/{m}"))
            .and_then(|v| v.get("kustomize.toolkit.fluxcd.io/substitute"))
            .and_then(Value::as_str)
            == Some("disabled")
    })
}

/// `ghcr.io/acme/web:1.2@sha256:…` → `ghcr.io/acme/web`.
fn image_name(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => no_digest,
    }
}

/// `state` after one `spec.patches` item, when it targets the object and applies (a target
/// kustomize refuses fails the whole build: it sets nothing).
fn patched(p: &Value, state: &Value) -> Option<Value> {
    if !targets(p.get("target"), state).unwrap_or(false) {
        return None;
    }
    let patch = p
        .get("patch")
        .and_then(Value::as_str)
        .and_then(|t| splice::parse_document(t).ok())?;
    let mut next = state.clone();
    match &patch {
        Value::Array(_) => splice::json_patch(&mut next, &patch).ok()?,
        _ => splice::strategic_merge_patch(&mut next, &patch),
    }
    Some(next)
}

/// Whether a Flux patch `target` selects the object (no target: every object).
fn targets(target: Option<&Value>, obj: &Value) -> Result<bool, patch_target::InvalidTarget> {
    target.map_or(Ok(true), |t| patch_target::selects_object(t, obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::splice::FieldPath;
    use serde_json::json;

    fn ks(spec: Value) -> Value {
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
               "metadata": {"name": "apps", "namespace": "flux-system"}, "spec": spec})
    }

    fn web(replicas: Value, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                   {"name": "web", "image": image}]}}}})
    }

    fn path(segs: &[&str]) -> FieldPath {
        FieldPath(
            segs.iter()
                .map(|s| match s.parse::<usize>() {
                    Ok(i) => PathSegment::Index(i),
                    Err(_) => PathSegment::Key((*s).to_string()),
                })
                .collect(),
        )
    }

    fn replicas_to(n: u64) -> Vec<Change> {
        vec![Change::set(path(&["spec", "replicas"]), json!(n))]
    }

    fn image_to(image: &str) -> Vec<Change> {
        vec![Change::set(
            path(&["spec", "template", "spec", "containers", "0", "image"]),
            json!(image),
        )]
    }

    fn check(o: &Overrides, old: &Value, new: &Value, changes: &[Change]) -> Result<(), String> {
        o.check(
            old,
            new,
            changes,
            "deployment/web in prod",
            "apps/web/deployment.yaml",
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_field_the_owner_patches_is_refused_naming_the_patch() {
        let cases = [
            (
                "no target: every object",
                json!({"patch": "spec:\n  replicas: 3\n"}),
                true,
            ),
            (
                "a target by kind and name",
                json!({"patch": "spec:\n  replicas: 3\n", "target": {"kind": "Deployment", "name": "web"}}),
                true,
            ),
            (
                "a target by label",
                json!({"patch": "- op: replace\n  path: /spec/replicas\n  value: 3\n", "target": {"labelSelector": "app=web"}}),
                true,
            ),
            (
                "another object",
                json!({"patch": "spec:\n  replicas: 3\n", "target": {"kind": "Deployment", "name": "api"}}),
                false,
            ),
            (
                "another field",
                json!({"patch": "metadata:\n  annotations:\n    a: b\n"}),
                false,
            ),
        ];
        for (what, patch, refused) in cases {
            let o = Overrides::of_kustomization(&ks(json!({"patches": [patch]}))).unwrap();
            let got = check(
                &o,
                &web(json!(2), "web:1"),
                &web(json!(5), "web:1"),
                &replicas_to(5),
            );
            assert_eq!(got.is_err(), refused, "{what}: {got:?}");
            if let Err(e) = got {
                assert!(
                    e.contains("spec.patches[0]")
                        && e.contains("kubectl gitops edit kustomization/apps -n flux-system"),
                    "{what}: {e}"
                );
            }
        }
    }

    #[test]
    fn an_image_the_owner_rewrites_is_refused() {
        let o = Overrides::of_kustomization(&ks(json!({"images": [
            {"name": "ghcr.io/acme/web", "newTag": "2.0.0"}
        ]})))
        .unwrap();
        let e = check(
            &o,
            &web(json!(2), "ghcr.io/acme/web:1.0.0"),
            &web(json!(2), "ghcr.io/acme/web:1.1.0"),
            &image_to("ghcr.io/acme/web:1.1.0"),
        )
        .unwrap_err();
        assert!(e.contains("spec.images[0] (name: ghcr.io/acme/web)"), "{e}");
        // Another image is the manifests' own.
        check(
            &o,
            &web(json!(2), "ghcr.io/acme/api:1.0.0"),
            &web(json!(2), "ghcr.io/acme/api:1.1.0"),
            &image_to("ghcr.io/acme/api:1.1.0"),
        )
        .unwrap();
    }

    #[test]
    fn a_variable_substituted_after_the_build_is_refused_naming_where_it_comes_from() {
        let o = Overrides::of_kustomization(&ks(json!({"postBuild": {
            "substitute": {"REPLICAS": "3"},
            "substituteFrom": [{"kind": "ConfigMap", "name": "cluster-vars"}]
        }})))
        .unwrap();
        let e = check(
            &o,
            &web(json!("${REPLICAS:=2}"), "web:1"),
            &web(json!(5), "web:1"),
            &replicas_to(5),
        )
        .unwrap_err();
        assert!(
            e.contains("${REPLICAS}")
                && e.contains("its spec.postBuild.substitute, ConfigMap flux-system/cluster-vars"),
            "{e}"
        );
        // An object that opts out of substitution keeps its text as written.
        let mut opted_out = web(json!("${REPLICAS:=2}"), "web:1");
        opted_out["metadata"]["annotations"] =
            json!({"kustomize.toolkit.fluxcd.io/substitute": "disabled"});
        let mut opted_out_new = opted_out.clone();
        opted_out_new["spec"]["replicas"] = json!(5);
        check(&o, &opted_out, &opted_out_new, &replicas_to(5)).unwrap();
        // A plain value in the same object is the manifests' own.
        check(
            &o,
            &web(json!(2), "web:1"),
            &web(json!(5), "web:1"),
            &replicas_to(5),
        )
        .unwrap();
        // No postBuild, patches or images: nothing to check.
        assert_eq!(
            Overrides::of_kustomization(&ks(json!({"path": "./apps"}))),
            None
        );
    }

    #[test]
    fn what_the_owner_sets_is_found_on_the_built_object() {
        let o = Overrides::of_kustomization(&ks(json!({
            "patches": [{"patch": "spec:\n  replicas: 4\n", "target": {"kind": "Deployment"}}],
            "images": [{"name": "ghcr.io/acme/web", "newTag": "2.0.0"}],
            "postBuild": {"substitute": {"TEAM": "billing"}}
        })))
        .unwrap();
        let mut built = web(json!(2), "ghcr.io/acme/web:1.0.0");
        built["metadata"]["annotations"] = json!({"team": "${TEAM:=payments}", "plain": "x"});
        let set: Vec<(String, String)> = o
            .setters(&built)
            .into_iter()
            .map(|s| (FieldPath(s.path).to_string(), s.what))
            .collect();
        assert_eq!(
            set,
            [
                (
                    "spec.replicas".to_string(),
                    "spec.patches[0] of kustomization/apps -n flux-system".to_string()
                ),
                (
                    "spec.template.spec.containers[0].image".to_string(),
                    "spec.images[0] of kustomization/apps -n flux-system".to_string()
                ),
                (
                    "metadata.annotations.team".to_string(),
                    "the postBuild variable ${TEAM} of kustomization/apps -n flux-system (from its spec.postBuild.substitute)".to_string()
                ),
            ]
        );
    }

    #[test]
    fn image_names_lose_tag_and_digest_but_not_a_registry_port() {
        assert_eq!(image_name("ghcr.io/acme/web:1.2"), "ghcr.io/acme/web");
        assert_eq!(image_name("reg:5000/web"), "reg:5000/web");
        assert_eq!(image_name("reg:5000/web:1@sha256:abc"), "reg:5000/web");
        assert_eq!(variable_in("x-${CLUSTER_NAME}-y"), Some("CLUSTER_NAME"));
        assert_eq!(variable_in("${A:-b}"), Some("A"));
        assert_eq!(variable_in("$HOME"), None);
        // Flux's escape for a literal ${…}.
        assert_eq!(variable_in("$${LITERAL} and ${REAL}"), Some("REAL"));
        assert_eq!(variable_in("$${LITERAL}"), None);
    }
}
