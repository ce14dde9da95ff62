//! `metadata.managedFields`: which field manager owns which live field, and when it last wrote.

use serde_json::{Map, Value};

use gitops_guard_core::Config;

/// One managedFields entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Manager {
    pub name: String,
    pub operation: String,
    pub time: Option<jiff::Timestamp>,
    fields: Value,
}

/// What kind of writer a field manager is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The GitOps agent (Flux's controllers, Argo CD's): writes what Git says.
    Agent,
    /// Kubernetes itself (controllers, scheduler, kubelet).
    System,
    /// Anyone else: a person or a script. Values only they explain are drift.
    Other,
    /// A person or a script making an operational change the guard lets anyone make
    /// (`kubectl rollout restart`, a reconcile request): not configuration, so not drift.
    Operational,
}

/// Field managers of Kubernetes components.
const SYSTEM_MANAGERS: &[&str] = &[
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-apiserver",
    "kube-proxy",
    "cloud-controller-manager",
];

/// The role of a manager name: Flux's and Argo CD's controllers (from the guard config) and
/// `argocd-controller` (Argo CD's server-side apply manager) are agents.
pub fn role(config: &Config, manager: &str) -> Role {
    let agent = config.flux.controllers.iter().any(|c| c == manager)
        || config.argocd.controllers.iter().any(|c| c == manager)
        || matches!(manager, "argocd-controller" | "before-first-apply");
    if agent {
        Role::Agent
    } else if SYSTEM_MANAGERS.contains(&manager) {
        Role::System
    } else {
        Role::Other
    }
}

/// A step into a live value: a map key, or a list item (its index and value).
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Key(&'a str),
    Item(usize, &'a Value),
}

/// The managedFields of a live object (status subresource writes left out: a `scale`
/// subresource write, `kubectl scale` on 1.22+, changes `spec.replicas` and counts).
pub fn managers(live: &Value) -> Vec<Manager> {
    let Some(list) = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter(|m| m.get("subresource").and_then(Value::as_str) != Some("status"))
        .filter_map(|m| {
            Some(Manager {
                name: m.get("manager")?.as_str()?.to_string(),
                operation: m
                    .get("operation")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                time: m
                    .get("time")
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse().ok()),
                fields: m.get("fieldsV1").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// Does a `k:{...}` key describe this list item?
fn key_matches(key_json: &str, item: &Value) -> bool {
    let Ok(Value::Object(want)) = serde_json::from_str::<Value>(key_json) else {
        return false;
    };
    want.iter().all(|(k, v)| item.get(k) == Some(v))
}

fn child<'f>(node: &'f Map<String, Value>, step: Step<'_>) -> Option<&'f Value> {
    match step {
        Step::Key(k) => node.get(&format!("f:{k}")),
        Step::Item(i, item) => node.iter().find_map(|(k, v)| {
            if let Some(json) = k.strip_prefix("k:") {
                key_matches(json, item).then_some(v)
            } else if let Some(json) = k.strip_prefix("v:") {
                (serde_json::from_str::<Value>(json).ok().as_ref() == Some(item)).then_some(v)
            } else if let Some(idx) = k.strip_prefix("i:") {
                (idx.parse::<usize>().ok() == Some(i)).then_some(v)
            } else {
                None
            }
        }),
    }
}

impl Manager {
    /// Whether this manager owns the field at `path` (or a whole list/map containing it, for
    /// atomic lists and maps).
    pub fn owns(&self, path: &[Step<'_>]) -> bool {
        let mut node = &self.fields;
        for step in path {
            let Some(map) = node.as_object() else {
                return false;
            };
            if map.is_empty() {
                // An atomic field owned as a whole.
                return true;
            }
            match child(map, *step) {
                Some(next) => node = next,
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scale_writes_count_and_status_writes_do_not() {
        let live = serde_json::json!({"metadata": {"managedFields": [
            {"manager": "kubectl", "operation": "Update", "subresource": "scale",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
             "fieldsV1": {"f:status": {"f:replicas": {}}}},
            {"manager": "kustomize-controller", "operation": "Apply", "fieldsV1": {}}
        ]}});
        let names: Vec<String> = managers(&live).into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["kubectl", "kustomize-controller"]);
    }

    #[test]
    fn ownership_through_keys_sets_and_atomic_lists() {
        let live = json!({"metadata":{"managedFields":[
            {"manager":"kustomize-controller","operation":"Apply","time":"2026-01-01T00:00:00Z","fieldsV1":{
                "f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:args":{}}}}}},
                "f:metadata":{"f:finalizers":{"v:\"a\"":{}}}}},
            {"manager":"kubectl-edit","operation":"Update","time":"2026-01-02T00:00:00Z","fieldsV1":{"f:spec":{"f:replicas":{}}}},
            {"manager":"kube-controller-manager","operation":"Update","subresource":"status","fieldsV1":{"f:status":{}}}
        ]}});
        let ms = managers(&live);
        assert_eq!(ms.len(), 2, "status subresource writes are left out");
        let web = json!({"name":"web","image":"x"});
        let image = [
            Step::Key("spec"),
            Step::Key("template"),
            Step::Key("spec"),
            Step::Key("containers"),
            Step::Item(0, &web),
            Step::Key("image"),
        ];
        assert!(ms[0].owns(&image));
        assert!(!ms[1].owns(&image));
        let other = json!({"name":"sidecar"});
        let sidecar = [
            Step::Key("spec"),
            Step::Key("template"),
            Step::Key("spec"),
            Step::Key("containers"),
            Step::Item(1, &other),
            Step::Key("image"),
        ];
        assert!(!ms[0].owns(&sidecar));
        let arg = json!("--verbose");
        let args = [
            Step::Key("spec"),
            Step::Key("template"),
            Step::Key("spec"),
            Step::Key("containers"),
            Step::Item(0, &web),
            Step::Key("args"),
            Step::Item(0, &arg),
        ];
        assert!(ms[0].owns(&args), "atomic list owned as a whole");
        let a = json!("a");
        assert!(ms[0].owns(&[
            Step::Key("metadata"),
            Step::Key("finalizers"),
            Step::Item(3, &a)
        ]));
        assert!(ms[1].owns(&[Step::Key("spec"), Step::Key("replicas")]));
        assert_eq!(
            ms[1].time.map(|t| t.to_string()).as_deref(),
            Some("2026-01-02T00:00:00Z")
        );
    }

    #[test]
    fn roles() {
        let cfg = Config::default();
        assert_eq!(role(&cfg, "kustomize-controller"), Role::Agent);
        assert_eq!(role(&cfg, "helm-controller"), Role::Agent);
        assert_eq!(role(&cfg, "argocd-controller"), Role::Agent);
        assert_eq!(role(&cfg, "kube-controller-manager"), Role::System);
        assert_eq!(role(&cfg, "kubectl-edit"), Role::Other);
        assert_eq!(role(&cfg, "kubectl-client-side-apply"), Role::Other);
    }
}
