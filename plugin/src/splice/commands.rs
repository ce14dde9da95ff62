//! Changes for the kubectl-style commands that edit a workload's pod template.

use serde_json::Value;

use super::Error;
use super::path::{Change, FieldPath};

/// Where the pod spec is in an object of a workload kind (`spec` of a Pod,
/// `spec.template.spec` of a Deployment, StatefulSet, DaemonSet, ReplicaSet,
/// ReplicationController or Job, `spec.jobTemplate.spec.template.spec` of a CronJob).
pub fn pod_spec_path(kind: &str) -> Option<FieldPath> {
    match kind {
        "Pod" => Some(FieldPath::keys(["spec"])),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => Some(FieldPath::keys(["spec", "template", "spec"])),
        "CronJob" => Some(FieldPath::keys([
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
        ])),
        _ => None,
    }
}

/// The changes `kubectl set image KIND/NAME CONTAINER=IMAGE …` makes: each named container (in
/// `initContainers` or `containers`) gets the image; the name `*` means every container.
pub fn set_image_changes(
    object: &Value,
    images: &[(String, String)],
) -> Result<Vec<Change>, Error> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let what = format!("{}/{name}", kind.to_ascii_lowercase());
    let Some(spec_path) = pod_spec_path(kind) else {
        return Err(Error::NoContainer {
            object: what,
            container: images.first().map(|(c, _)| c.clone()).unwrap_or_default(),
            known: format!("{kind} has no pod template"),
        });
    };
    let spec = object.pointer(&spec_path.to_pointer());
    let mut changes = Vec::new();
    let mut known = Vec::new();
    for (container, image) in images {
        let mut found = false;
        for list in ["initContainers", "containers"] {
            let Some(items) = spec.and_then(|s| s.get(list)).and_then(Value::as_array) else {
                continue;
            };
            for (i, c) in items.iter().enumerate() {
                let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
                if !known.contains(&cname.to_string()) {
                    known.push(cname.to_string());
                }
                if container == "*" || cname == container {
                    found = true;
                    changes.push(Change::set(
                        spec_path.clone().key(list).index(i).key("image"),
                        Value::String(image.clone()),
                    ));
                }
            }
        }
        if !found {
            return Err(Error::NoContainer {
                object: what,
                container: container.clone(),
                known: if known.is_empty() {
                    "it has no containers".into()
                } else {
                    format!("its containers are {}", known.join(", "))
                },
            });
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": {"spec": {
            "initContainers": [{"name": "migrate", "image": "api:1"}],
            "containers": [{"name": "web", "image": "web:1"}, {"name": "proxy", "image": "envoy:1"}]
        }}}})
    }

    #[test]
    fn named_and_all_containers() {
        let c = set_image_changes(&deployment(), &[("proxy".into(), "envoy:2".into())])
            .unwrap_or_default();
        assert_eq!(
            c,
            vec![Change::set(
                FieldPath::keys(["spec", "template", "spec", "containers"])
                    .index(1)
                    .key("image"),
                json!("envoy:2")
            )]
        );
        let all =
            set_image_changes(&deployment(), &[("*".into(), "x:9".into())]).unwrap_or_default();
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn unknown_container_names_the_ones_there_are() {
        let err = set_image_changes(&deployment(), &[("nginx".into(), "nginx:1".into())]);
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("deployment/web has no container named nginx (its containers are migrate, web, proxy)".into())
        );
    }
}
