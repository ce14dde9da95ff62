//! The way forward a denial shows: the `kubectl gitops` command that makes the same change through
//! Git, matched to what was denied (scale → `scale --replicas=N`, a label → `label`, an image →
//! `set image`, anything else → `edit`), or, where there is no such command, what to do instead.

use super::{Ctx, SERVER_PATHS};
use crate::diff::{Report, disallowed_changes_of};
use crate::exception;
use crate::object::{Fields, Object, StrMap};
use crate::owner::{OwnerKind, OwnerRef, is_agent_key};
use crate::review::Operation;

/// What to add after a change command: the plugin opens a pull request, which needs a forge token.
pub const NO_TOKEN_HINT: &str =
    "(no forge token? add --no-pr to push a branch only, or --local to commit only)";

/// The lines after "… is managed by …": what to run or do instead.
pub(super) fn way_forward(c: &Ctx<'_, '_>, owner: &OwnerRef) -> String {
    let what = format!("{}/{}", c.kind.to_lowercase(), c.name);
    let ns = c.ns_flag();
    if owner.kind == OwnerKind::HelmRelease {
        return format!(
            "It is rendered by Helm from {owner}: change the release's values in Git instead: kubectl gitops edit helmrelease/{}{}\n{NO_TOKEN_HINT}",
            owner.name,
            if owner.namespace.is_empty() {
                String::new()
            } else {
                format!(" -n {}", owner.namespace)
            }
        );
    }
    match c.req.operation {
        Operation::Create => {
            let from = match owner.kind {
                OwnerKind::Namespace => {
                    format!("the repository that manages namespace/{}", owner.name)
                }
                OwnerKind::Kustomization => format!(
                    "where {owner} applies from (kubectl gitops trace kustomization/{} -n {} names its source and path)",
                    owner.name, owner.namespace
                ),
                _ => format!(
                    "where {owner} applies from (kubectl gitops trace application/{} -n {} names its source and path)",
                    owner.name, owner.namespace
                ),
            };
            format!("Add it to Git instead: put its manifest {from}, commit and push")
        }
        Operation::Delete => format!(
            "Remove it from Git instead, and the agent prunes it (kubectl gitops trace {what}{ns} names its file)"
        ),
        _ => format!(
            "Change it in Git instead: kubectl gitops {}\n{NO_TOKEN_HINT}",
            command(c, &what, &ns)
        ),
    }
}

/// The change command for an UPDATE: `edit` unless the change is only labels, annotations, images
/// or replicas.
fn command(c: &Ctx<'_, '_>, what: &str, ns: &str) -> String {
    let edit = format!("edit {what}{ns}");
    let (fo, fnew) = c.field_sets();
    let allowed: Vec<_> = SERVER_PATHS.iter().collect();
    let changed = disallowed_changes_of(fo, fnew, &allowed, Report::All(64));
    if changed.is_empty() || changed.len() >= 64 {
        return edit;
    }
    let all = |p: &dyn Fn(&str) -> bool| changed.iter().all(|c| p(c));
    if all(&|p| p == "spec.replicas")
        && let Some(n) = replicas(c)
    {
        return format!("scale {what} --replicas={n}{ns}");
    }
    let (Some(old), Some(new)) = (c.old, c.new) else {
        return edit;
    };
    // The agents' and the guard's own keys are not Git's to set this way.
    let plain = |old: &StrMap<'_>, new: &StrMap<'_>| {
        changed_keys(old, new)
            .all(|k| !is_agent_key(k, c.config) && !k.starts_with(exception::PREFIX))
    };
    if all(&|p| p.starts_with("metadata.labels")) && plain(&old.labels, &new.labels) {
        return meta_command("label", what, ns, &old.labels, &new.labels);
    }
    if all(&|p| p.starts_with("metadata.annotations")) && plain(&old.annotations, &new.annotations)
    {
        return meta_command("annotate", what, ns, &old.annotations, &new.annotations);
    }
    if all(&|p| is_image_path(p))
        && let Some(images) = changed_images(old, new)
    {
        return format!("set image {what} {images}{ns}");
    }
    edit
}

/// `spec.template.spec.containers[0].image` and the like (init containers, CronJobs' job template).
fn is_image_path(path: &str) -> bool {
    let Some(rest) = path
        .strip_prefix("spec.template.spec.")
        .or_else(|| path.strip_prefix("spec.jobTemplate.spec.template.spec."))
    else {
        return false;
    };
    (rest.starts_with("containers[") || rest.starts_with("initContainers["))
        && rest.ends_with("].image")
}

/// The replicas a scale (the Scale object) or an update asks for (read through the scanned fields).
fn replicas(c: &Ctx<'_, '_>) -> Option<u64> {
    let new = c.req.object.as_ref()?;
    Fields::parse(new.fields.get("spec")?)?
        .get("replicas")?
        .get()
        .parse()
        .ok()
}

/// The keys whose value differs between `old` and `new` (added, changed or removed).
fn changed_keys<'m>(old: &'m StrMap<'_>, new: &'m StrMap<'_>) -> impl Iterator<Item = &'m str> {
    new.iter()
        .filter(|(k, v)| old.get(k) != Some(v))
        .map(|(k, _)| k)
        .chain(old.keys().filter(|k| new.get(k).is_none()))
}

/// `label deployment/web team=a tier- --overwrite -n prod`.
fn meta_command(verb: &str, what: &str, ns: &str, old: &StrMap<'_>, new: &StrMap<'_>) -> String {
    let mut args = Vec::new();
    let mut overwrite = false;
    for (k, v) in new.iter() {
        match old.get(k) {
            Some(o) if o == v => {}
            Some(_) => {
                overwrite = true;
                args.push(format!("{k}={v}"));
            }
            None => args.push(format!("{k}={v}")),
        }
    }
    args.extend(
        old.keys()
            .filter(|k| new.get(k).is_none())
            .map(|k| format!("{k}-")),
    );
    let overwrite = if overwrite { " --overwrite" } else { "" };
    format!("{verb} {what} {}{overwrite}{ns}", args.join(" "))
}

/// A container's name and image, read (through the scanned fields, without parsing anything else
/// in it) as serde_json reads it into `struct { name: String, image: Option<String> }`: `None` for
/// what serde_json refuses (not an object — or an array of exactly those two, serde's sequence
/// form —, no name, a member given twice, a value of another type); `Some(None)` without an image.
fn container_image(item: &crate::object::Raw<'_>) -> Option<Option<(String, String)>> {
    let (name, image) = match Fields::parse(item) {
        Some(fields) => {
            let one = |key: &str| {
                let mut values = fields.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
                let first = values.next();
                values.next().is_none().then_some(first)
            };
            (one("name")??.clone(), one("image")?.cloned())
        }
        None => match item.items()?.as_slice() {
            [name, image] => (name.clone(), Some(image.clone())),
            _ => return None,
        },
    };
    let name = name.string()?.into_owned();
    match image {
        None => Some(None),
        Some(image) if image.is_null() => Some(None),
        Some(image) => Some(Some((name, image.string()?.into_owned()))),
    }
}

/// `web=ghcr.io/acme/web:1.9.0 sidecar=…`: the containers whose image changed. Reads only the Pod
/// template's container lists (through the scanned fields), each container's name and image.
fn changed_images(old: &Object<'_>, new: &Object<'_>) -> Option<String> {
    let images = |o: &Object<'_>| -> Option<Vec<(String, String)>> {
        let spec = Fields::parse(o.fields.get("spec")?)?;
        let template = match spec.get("template") {
            Some(t) => Fields::parse(t)?,
            None => {
                let job = Fields::parse(spec.get("jobTemplate")?)?;
                let job_spec = Fields::parse(job.get("spec")?)?;
                Fields::parse(job_spec.get("template")?)?
            }
        };
        let pod = Fields::parse(template.get("spec")?)?;
        let mut out = Vec::new();
        for key in ["initContainers", "containers"] {
            if let Some(raw) = pod.get(key) {
                for item in raw.items()? {
                    if let Some(image) = container_image(&item)? {
                        out.push(image);
                    }
                }
            }
        }
        Some(out)
    };
    let (before, after) = (images(old)?, images(new)?);
    let changed: Vec<String> = after
        .iter()
        .filter(|(name, image)| !before.iter().any(|(n, i)| n == name && i == image))
        .map(|(name, image)| format!("{name}={image}"))
        .collect();
    (!changed.is_empty()).then(|| changed.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_reads_as_serde_json_reads_it() {
        #[derive(serde::Deserialize)]
        struct Container {
            name: String,
            image: Option<String>,
        }
        for text in [
            r#"{"name":"web","image":"web:2"}"#,
            r#"{"image":"web:2","env":[{"name":"x"}],"name":"web"}"#,
            r#"{"name":"web"}"#,
            r#"{"name":"web","image":null}"#,
            r#"{"name":"w\u0065b","image":"a\"b"}"#,
            r#"{"n\u0061me":"web","image":"web:2"}"#,
            r#"{"image":"web:2"}"#,
            r#"{"name":null,"image":"web:2"}"#,
            r#"{"name":"web","image":5}"#,
            r#"{"name":"web","name":"api","image":"web:2"}"#,
            r#"{"name":"web","image":"a","image":"b"}"#,
            r#"{"name":"\ud800","image":"a"}"#,
            r#"["web","web:2"]"#,
            r#"["web",null]"#,
            r#"["web"]"#,
            r#"["web","a","b"]"#,
            r#""web""#,
            "null",
            "5",
        ] {
            let serde = serde_json::from_str::<Container>(text)
                .ok()
                .map(|c| c.image.map(|i| (c.name, i)));
            let doc = crate::object::Raw::document(text).unwrap();
            assert_eq!(container_image(&doc), serde, "{text}");
        }
    }
}
