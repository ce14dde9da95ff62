//! Which objects a kustomize patch `target` selects, and so Flux's `spec.patches[].target`, which
//! kustomize-controller hands to kustomize unchanged.
//!
//! As kustomize's `SelectorRegex` reads a target: `group`, `version`, `kind`, `name` and
//! `namespace` are regular expressions anchored at both ends (`^(?:…)$`, RE2 syntax, which the
//! `regex` crate follows); `labelSelector` and `annotationSelector` are label selectors in text
//! form (`app in (web,api),!canary`, read by core's one selector model). The name matches the name
//! as written or as the layers rename it. An object without a namespace is in `default`, unless
//! its kind is cluster-scoped (then it is kustomize's `_non_namespaceable_`, which only a pattern
//! like `.*` matches). An empty field selects anything.

use std::collections::BTreeMap;

use gitops_guard_core::workload::Selector;
use regex::Regex;
use serde_json::{Map, Value};

/// Built-in kinds kustomize's schema knows as cluster-scoped (custom kinds count as namespaced,
/// as kustomize assumes).
const CLUSTER_SCOPED: &[&str] = &[
    "APIService",
    "CSIDriver",
    "CSINode",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "ComponentStatus",
    "CustomResourceDefinition",
    "FlowSchema",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PodSecurityPolicy",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
];

/// The object a target is tried against.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    /// The names it may be matched by (as written, and as the layers rename it).
    pub names: &'a [String],
    /// Its namespace as the build gives it (`None`: not set).
    pub namespace: Option<&'a str>,
    pub labels: &'a Map<String, Value>,
    pub annotations: &'a Map<String, Value>,
}

/// A target kustomize would refuse: the build fails on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTarget {
    pub field: &'static str,
    pub reason: String,
}

impl std::fmt::Display for InvalidTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "its target's {} is not valid ({}), so kustomize cannot build it",
            self.field, self.reason
        )
    }
}

impl std::error::Error for InvalidTarget {}

fn anchored(field: &'static str, pattern: &str, text: &str) -> Result<bool, InvalidTarget> {
    let re = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| InvalidTarget {
        field,
        reason: format!("{pattern:?}: {e}"),
    })?;
    Ok(re.is_match(text))
}

fn selected(
    field: &'static str,
    text: &str,
    map: &Map<String, Value>,
) -> Result<bool, InvalidTarget> {
    let selector = Selector::parse(text).map_err(|e| InvalidTarget {
        field,
        reason: e.to_string(),
    })?;
    let values: BTreeMap<String, String> = map
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    Ok(selector.matches(&values))
}

/// The namespace kustomize matches a target's `namespace` against.
fn effective_namespace<'a>(kind: &str, namespace: Option<&'a str>) -> &'a str {
    match namespace.filter(|n| !n.is_empty()) {
        _ if CLUSTER_SCOPED.contains(&kind) => "_non_namespaceable_",
        Some(n) => n,
        None => "default",
    }
}

/// Whether `target` (a kustomize `Selector` object) selects `subject`.
pub fn selects(target: &Value, subject: &Subject<'_>) -> Result<bool, InvalidTarget> {
    let field = |k: &str| {
        target
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let regex_fields: [(&'static str, &str); 3] = [
        ("group", subject.group),
        ("version", subject.version),
        ("kind", subject.kind),
    ];
    for (name, text) in regex_fields {
        if let Some(p) = field(name)
            && !anchored(name, p, text)?
        {
            return Ok(false);
        }
    }
    if let Some(p) = field("name") {
        let mut any = false;
        for name in subject.names {
            any |= anchored("name", p, name)?;
        }
        if !any {
            return Ok(false);
        }
    }
    if let Some(p) = field("namespace")
        && !anchored(
            "namespace",
            p,
            effective_namespace(subject.kind, subject.namespace),
        )?
    {
        return Ok(false);
    }
    if let Some(s) = field("labelSelector")
        && !selected("labelSelector", s, subject.labels)?
    {
        return Ok(false);
    }
    if let Some(s) = field("annotationSelector")
        && !selected("annotationSelector", s, subject.annotations)?
    {
        return Ok(false);
    }
    Ok(true)
}

/// [`selects`] for a whole object as a build gives it.
pub fn selects_object(target: &Value, obj: &Value) -> Result<bool, InvalidTarget> {
    let at = |p: &str| obj.pointer(p).and_then(Value::as_str);
    let api_version = at("/apiVersion").unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let names: Vec<String> = at("/metadata/name")
        .map(str::to_string)
        .into_iter()
        .collect();
    let map = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (labels, annotations) = (map("/metadata/labels"), map("/metadata/annotations"));
    selects(
        target,
        &Subject {
            group,
            version,
            kind: at("/kind").unwrap_or_default(),
            names: &names,
            namespace: at("/metadata/namespace"),
            labels: &labels,
            annotations: &annotations,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn web() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web-v1.2", "labels": {"app": "web", "tier": "front"},
                            "annotations": {"team": "shop"}}})
    }

    #[test]
    fn targets_select_as_kustomize_does() {
        let cases: &[(&str, Value, bool)] = &[
            ("no fields", json!({}), true),
            ("kind", json!({"kind": "Deployment"}), true),
            ("kind is anchored", json!({"kind": "Deploy"}), false),
            (
                "kind alternatives",
                json!({"kind": "StatefulSet|Deployment"}),
                true,
            ),
            ("group of a core kind is empty", json!({"group": ""}), true),
            ("group", json!({"group": "apps", "version": "v1"}), true),
            ("group other", json!({"group": "batch"}), false),
            ("version regex", json!({"version": "v[0-9]+"}), true),
            ("name regex", json!({"name": "web-v\\d+\\.\\d+"}), true),
            (
                "a dot matches any character",
                json!({"name": "web-v1.2"}),
                true,
            ),
            ("escaped dot", json!({"name": "web-v1\\.3"}), false),
            ("name class", json!({"name": "[a-z]+-v1.2"}), true),
            (
                "name prefix only is anchored",
                json!({"name": "web"}),
                false,
            ),
            ("anchors written out", json!({"name": "^web-.*$"}), true),
            (
                "alternation is inside the anchors",
                json!({"name": "api|web-.*"}),
                true,
            ),
            (
                "no namespace is default",
                json!({"namespace": "default"}),
                true,
            ),
            (
                "no namespace is not another",
                json!({"namespace": "prod"}),
                false,
            ),
            (
                "labels, set-based",
                json!({"labelSelector": "app in (web,api),tier!=back"}),
                true,
            ),
            (
                "labels, notin",
                json!({"labelSelector": "app notin (web)"}),
                false,
            ),
            (
                "labels, absent key",
                json!({"labelSelector": "!canary"}),
                true,
            ),
            (
                "annotations",
                json!({"annotationSelector": "team=shop"}),
                true,
            ),
            (
                "annotations, other",
                json!({"annotationSelector": "team=ops"}),
                false,
            ),
        ];
        for (what, target, want) in cases {
            assert_eq!(selects_object(target, &web()), Ok(*want), "{what}");
        }
    }

    #[test]
    fn namespaces_are_matched_as_the_build_gives_them() {
        let mut prod = web();
        prod["metadata"]["namespace"] = json!("prod");
        assert_eq!(
            selects_object(&json!({"namespace": "prod|staging"}), &prod),
            Ok(true)
        );
        assert_eq!(
            selects_object(&json!({"namespace": "default"}), &prod),
            Ok(false)
        );
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}});
        assert_eq!(
            selects_object(&json!({"namespace": "default"}), &ns),
            Ok(false)
        );
        assert_eq!(selects_object(&json!({"namespace": ".*"}), &ns), Ok(true));
        let renamed = ["web".to_string(), "prod-web".to_string()];
        let none = Map::new();
        let subject = Subject {
            group: "apps",
            version: "v1",
            kind: "Deployment",
            names: &renamed,
            namespace: None,
            labels: &none,
            annotations: &none,
        };
        assert_eq!(selects(&json!({"name": "prod-web"}), &subject), Ok(true));
        assert_eq!(selects(&json!({"name": "web"}), &subject), Ok(true));
        assert_eq!(selects(&json!({"name": "api"}), &subject), Ok(false));
    }

    #[test]
    fn a_target_kustomize_refuses_says_which_field_and_why() {
        for (target, field) in [
            (json!({"name": "web-("}), "name"),
            (json!({"labelSelector": "app in ()"}), "labelSelector"),
            (json!({"annotationSelector": "a b"}), "annotationSelector"),
        ] {
            let err = selects_object(&target, &web()).expect_err("invalid");
            assert_eq!(err.field, field);
            assert!(
                err.to_string().contains("kustomize cannot build it"),
                "{err}"
            );
        }
    }
}
