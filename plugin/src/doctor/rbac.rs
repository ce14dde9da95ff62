//! RBAC as the API server's RBAC authorizer evaluates it, for `doctor`: who (which subjects of
//! which bindings) may make a request. Pure: the roles and bindings are read once, then asked.
//!
//! Rules match as in Kubernetes (`k8s.io/kubernetes/pkg/apis/rbac/v1/evaluation_helpers.go`):
//! verb `*` or equal; API group `*` or equal; resource `*`, equal to `resource[/subresource]`, or
//! `*/subresource`; resourceNames empty, or naming the object (a request without a name, such
//! as a create or a list, is never allowed by a rule with resourceNames). A RoleBinding only grants
//! in its own namespace, never on cluster-scoped resources. Aggregated ClusterRoles get the rules of
//! the ClusterRoles their selectors match (as the aggregation controller fills them in), besides
//! whatever rules they already hold.

use std::collections::{BTreeMap, BTreeSet};

use gitops_guard_core::workload::Selector;
use serde::Deserialize;
use serde_json::Value;

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
}

/// A request as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub verb: String,
    /// `""` for the core group.
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    /// `None`: a cluster-scoped resource.
    pub namespace: Option<String>,
    /// `None`: create, list, deletecollection, or any object of the kind.
    pub name: Option<String>,
}

impl Request {
    pub fn new(verb: &str, group: &str, resource: &str) -> Request {
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r.to_string(), Some(s.to_string())),
            None => (resource.to_string(), None),
        };
        Request {
            verb: verb.into(),
            group: group.into(),
            resource,
            subresource,
            namespace: None,
            name: None,
        }
    }

    pub fn in_namespace(mut self, namespace: &str) -> Request {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn named(mut self, name: &str) -> Request {
        self.name = Some(name.into());
        self
    }
}

/// Whether one rule allows the request.
pub fn rule_allows(rule: &Rule, req: &Request) -> bool {
    let verb = rule.verbs.iter().any(|v| v == "*" || *v == req.verb);
    let group = rule.api_groups.iter().any(|g| g == "*" || *g == req.group);
    let combined = match &req.subresource {
        Some(s) => format!("{}/{s}", req.resource),
        None => req.resource.clone(),
    };
    let resource = rule.resources.iter().any(|r| {
        r == "*"
            || *r == combined
            || req
                .subresource
                .as_ref()
                .is_some_and(|s| r.strip_prefix("*/") == Some(s.as_str()))
    });
    let name = rule.resource_names.is_empty()
        || req
            .name
            .as_ref()
            .is_some_and(|n| rule.resource_names.contains(n));
    verb && group && resource && name
}

/// A subject of a binding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

impl Subject {
    pub fn user(name: &str) -> Subject {
        Subject {
            kind: "User".into(),
            name: name.into(),
            namespace: None,
        }
    }

    pub fn group(name: &str) -> Subject {
        Subject {
            kind: "Group".into(),
            name: name.into(),
            namespace: None,
        }
    }

    pub fn service_account(namespace: &str, name: &str) -> Subject {
        Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(namespace.into()),
        }
    }

    /// The username the API server gives a service account, else the name.
    pub fn username(&self) -> String {
        match (&*self.kind, &self.namespace) {
            ("ServiceAccount", Some(ns)) => format!("system:serviceaccount:{ns}:{}", self.name),
            _ => self.name.clone(),
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) if self.kind == "ServiceAccount" => {
                write!(f, "ServiceAccount {ns}/{}", self.name)
            }
            _ => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// A Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Role {
    pub name: String,
    /// `None`: a ClusterRole.
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub rules: Vec<Rule>,
    /// `aggregationRule.clusterRoleSelectors` (ClusterRoles only), in core's selector model (an
    /// empty selector selects every ClusterRole, as the aggregation controller reads it).
    pub aggregation: Vec<Selector>,
}

/// A RoleBinding or ClusterRoleBinding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub name: String,
    /// `None`: a ClusterRoleBinding.
    pub namespace: Option<String>,
    /// `Role` or `ClusterRole`.
    pub role_kind: String,
    pub role_name: String,
    pub subjects: Vec<Subject>,
}

impl Binding {
    /// `ClusterRoleBinding NAME` or `RoleBinding NS/NAME`.
    pub fn display(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("RoleBinding {ns}/{}", self.name),
            None => format!("ClusterRoleBinding {}", self.name),
        }
    }

    /// `ClusterRole NAME` or `Role NAME`.
    pub fn role_display(&self) -> String {
        format!("{} {}", self.role_kind, self.role_name)
    }
}

fn meta(obj: &Value, key: &str) -> Option<String> {
    obj.pointer(&format!("/metadata/{key}"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

impl Role {
    /// From a Role or ClusterRole as the API returns it.
    pub fn from_json(obj: &Value) -> Role {
        Role {
            name: meta(obj, "name").unwrap_or_default(),
            namespace: meta(obj, "namespace"),
            labels: obj
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default(),
            rules: obj
                .get("rules")
                .and_then(|r| serde_json::from_value(r.clone()).ok())
                .unwrap_or_default(),
            aggregation: obj
                .pointer("/aggregationRule/clusterRoleSelectors")
                .and_then(Value::as_array)
                .map(|selectors| {
                    selectors
                        .iter()
                        .map(|s| Selector::of_label_selector(Some(s), true))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

impl Binding {
    /// From a RoleBinding or ClusterRoleBinding as the API returns it.
    pub fn from_json(obj: &Value) -> Binding {
        Binding {
            name: meta(obj, "name").unwrap_or_default(),
            namespace: meta(obj, "namespace"),
            role_kind: obj
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            role_name: obj
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            subjects: obj
                .get("subjects")
                .and_then(|s| serde_json::from_value(s.clone()).ok())
                .unwrap_or_default(),
        }
    }
}

/// One way a subject gets a request allowed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub subject: Subject,
    /// Index into [`Policy::bindings`].
    pub binding: usize,
}

/// Every role and binding of the cluster.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub roles: Vec<Role>,
    pub bindings: Vec<Binding>,
}

impl Policy {
    fn cluster_role(&self, name: &str) -> Option<&Role> {
        self.roles
            .iter()
            .find(|r| r.namespace.is_none() && r.name == name)
    }

    /// A ClusterRole's rules, with those of the ClusterRoles it aggregates (recursively).
    fn cluster_role_rules<'a>(&'a self, name: &str, seen: &mut BTreeSet<String>) -> Vec<&'a Rule> {
        if !seen.insert(name.to_string()) {
            return Vec::new();
        }
        let Some(role) = self.cluster_role(name) else {
            return Vec::new();
        };
        let mut rules: Vec<&Rule> = role.rules.iter().collect();
        for selector in &role.aggregation {
            for other in self.roles.iter().filter(|r| {
                r.namespace.is_none() && r.name != role.name && selector.matches(&r.labels)
            }) {
                rules.extend(self.cluster_role_rules(&other.name, seen));
            }
        }
        rules
    }

    /// The rules a binding grants.
    pub fn rules_of(&self, binding: &Binding) -> Vec<&Rule> {
        match (binding.role_kind.as_str(), &binding.namespace) {
            ("ClusterRole", _) => self.cluster_role_rules(&binding.role_name, &mut BTreeSet::new()),
            ("Role", Some(ns)) => self
                .roles
                .iter()
                .filter(|r| r.namespace.as_deref() == Some(ns) && r.name == binding.role_name)
                .flat_map(|r| r.rules.iter())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the binding allows the request (for its subjects).
    pub fn binding_allows(&self, binding: &Binding, req: &Request) -> bool {
        let applies = match &binding.namespace {
            None => true,
            Some(ns) => req.namespace.as_deref() == Some(ns.as_str()),
        };
        applies && self.rules_of(binding).iter().any(|r| rule_allows(r, req))
    }

    /// Every (subject, binding) that allows the request.
    pub fn who_can(&self, req: &Request) -> Vec<Grant> {
        let mut out = Vec::new();
        for (i, b) in self.bindings.iter().enumerate() {
            if self.binding_allows(b, req) {
                out.extend(b.subjects.iter().map(|s| Grant {
                    subject: s.clone(),
                    binding: i,
                }));
            }
        }
        out
    }

    /// Whether this subject may make the request (through any binding naming it directly).
    pub fn allowed(&self, subject: &Subject, req: &Request) -> bool {
        self.who_can(req).iter().any(|g| &g.subject == subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Rule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        Rule {
            verbs: v(verbs),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: v(names),
        }
    }

    #[test]
    fn rules_times_requests() {
        let imp_sa = Request::new("impersonate", "", "serviceaccounts")
            .in_namespace("flux-system")
            .named("kustomize-controller");
        let create_pods = Request::new("create", "", "pods").in_namespace("flux-system");
        let token = Request::new("create", "", "serviceaccounts/token")
            .in_namespace("flux-system")
            .named("kustomize-controller");
        let delete_vwc = Request::new(
            "delete",
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
        )
        .named("gitops-guard-custody");
        let scale = Request::new("update", "apps", "deployments/scale")
            .in_namespace("gitops-guard")
            .named("gitops-guard");
        let cases: Vec<(Rule, &Request, bool, &str)> = vec![
            (
                rule(&["impersonate"], &[""], &["serviceaccounts"], &[]),
                &imp_sa,
                true,
                "plain",
            ),
            (
                rule(&["*"], &["*"], &["*"], &[]),
                &imp_sa,
                true,
                "cluster-admin",
            ),
            (
                rule(&["impersonate"], &["*"], &["serviceaccounts"], &[]),
                &imp_sa,
                true,
                "any group",
            ),
            (
                rule(
                    &["impersonate"],
                    &[""],
                    &["serviceaccounts"],
                    &["kustomize-controller"],
                ),
                &imp_sa,
                true,
                "named",
            ),
            (
                rule(
                    &["impersonate"],
                    &[""],
                    &["serviceaccounts"],
                    &["helm-controller"],
                ),
                &imp_sa,
                false,
                "other name",
            ),
            (
                rule(&["impersonate"], &[""], &["users"], &[]),
                &imp_sa,
                false,
                "users is not serviceaccounts",
            ),
            (
                rule(&["impersonate"], &["apps"], &["serviceaccounts"], &[]),
                &imp_sa,
                false,
                "wrong group",
            ),
            (
                rule(&["get", "list"], &[""], &["serviceaccounts"], &[]),
                &imp_sa,
                false,
                "wrong verb",
            ),
            (
                rule(&["create"], &[""], &["pods"], &[]),
                &create_pods,
                true,
                "create pods",
            ),
            (
                rule(&["create"], &[""], &["pods"], &["web"]),
                &create_pods,
                false,
                "names never allow create",
            ),
            (
                rule(&["create"], &[""], &["pods/exec"], &[]),
                &create_pods,
                false,
                "a subresource is not the resource",
            ),
            (
                rule(&["create"], &[""], &["serviceaccounts"], &[]),
                &token,
                false,
                "the resource is not its subresource",
            ),
            (
                rule(&["create"], &[""], &["serviceaccounts/token"], &[]),
                &token,
                true,
                "subresource",
            ),
            (
                rule(&["create"], &[""], &["*/token"], &[]),
                &token,
                true,
                "*/subresource",
            ),
            (
                rule(&["create"], &[""], &["*"], &[]),
                &token,
                true,
                "* covers subresources",
            ),
            (
                rule(
                    &["delete"],
                    &["admissionregistration.k8s.io"],
                    &["validatingwebhookconfigurations"],
                    &[],
                ),
                &delete_vwc,
                true,
                "delete vwc",
            ),
            (
                rule(
                    &["delete"],
                    &["admissionregistration.k8s.io"],
                    &["mutatingwebhookconfigurations"],
                    &[],
                ),
                &delete_vwc,
                false,
                "mutating is not validating",
            ),
            (
                rule(&["update"], &["apps"], &["deployments"], &[]),
                &scale,
                false,
                "deployments is not deployments/scale",
            ),
            (
                rule(&["update"], &["apps"], &["*/scale"], &["gitops-guard"]),
                &scale,
                true,
                "*/scale named",
            ),
        ];
        for (r, req, want, what) in cases {
            assert_eq!(rule_allows(&r, req), want, "{what}: {r:?} × {req:?}");
        }
    }

    fn policy() -> Policy {
        let roles = [
            json!({"kind": "ClusterRole", "metadata": {"name": "impersonator"},
                   "rules": [{"verbs": ["impersonate"], "apiGroups": [""], "resources": ["serviceaccounts"]}]}),
            json!({"kind": "Role", "metadata": {"name": "pods", "namespace": "flux-system"},
                   "rules": [{"verbs": ["create"], "apiGroups": [""], "resources": ["pods"]}]}),
            json!({"kind": "ClusterRole", "metadata": {"name": "edit-ish"},
                   "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"aggregate-to-edit-ish": "true"}}]}}),
            json!({"kind": "ClusterRole", "metadata": {"name": "secrets-reader", "labels": {"aggregate-to-edit-ish": "true"}},
                   "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"]}]}),
        ];
        let bindings = [
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "mallory"},
                   "roleRef": {"kind": "ClusterRole", "name": "impersonator"},
                   "subjects": [{"kind": "User", "name": "mallory"}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "ci", "namespace": "flux-system"},
                   "roleRef": {"kind": "Role", "name": "pods"},
                   "subjects": [{"kind": "Group", "name": "ci"}]}),
            // A RoleBinding of a ClusterRole: only in its namespace.
            json!({"kind": "RoleBinding", "metadata": {"name": "dev", "namespace": "apps"},
                   "roleRef": {"kind": "ClusterRole", "name": "impersonator"},
                   "subjects": [{"kind": "User", "name": "dev"}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "reader", "namespace": "flux-system"},
                   "roleRef": {"kind": "ClusterRole", "name": "edit-ish"},
                   "subjects": [{"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}]}),
        ];
        Policy {
            roles: roles.iter().map(Role::from_json).collect(),
            bindings: bindings.iter().map(Binding::from_json).collect(),
        }
    }

    #[test]
    fn bindings_grant_where_they_are() {
        let p = policy();
        let imp = |ns: &str| {
            Request::new("impersonate", "", "serviceaccounts")
                .in_namespace(ns)
                .named("kustomize-controller")
        };
        assert!(p.allowed(&Subject::user("mallory"), &imp("flux-system")));
        assert!(!p.allowed(&Subject::user("dev"), &imp("flux-system")));
        assert!(p.allowed(&Subject::user("dev"), &imp("apps")));
        let pods = |ns: &str| Request::new("create", "", "pods").in_namespace(ns);
        assert!(p.allowed(&Subject::group("ci"), &pods("flux-system")));
        assert!(!p.allowed(&Subject::group("ci"), &pods("argocd")));
        assert!(!p.allowed(&Subject::user("mallory"), &pods("flux-system")));
        // Cluster-scoped: a RoleBinding never grants it.
        let users = Request::new("impersonate", "", "users").named("admin");
        assert!(p.who_can(&users).is_empty());
        // Aggregated rules count.
        let secrets = Request::new("list", "", "secrets").in_namespace("flux-system");
        assert!(p.allowed(&Subject::service_account("ci", "builder"), &secrets));
        assert_eq!(
            p.who_can(&imp("flux-system")),
            vec![Grant {
                subject: Subject::user("mallory"),
                binding: 0
            }]
        );
    }

    #[test]
    fn aggregation_selects_as_kubernetes_does() {
        // ClusterRole secrets-reader, labelled a=1, is aggregated into the bound one when its
        // selector selects it.
        let cases = [
            (json!({}), true),
            (json!({"matchLabels": {"a": "1"}}), true),
            (json!({"matchLabels": {"a": "2"}}), false),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "3"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "b", "operator": "NotIn", "values": ["1"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "b", "operator": "Exists"}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "b", "operator": "DoesNotExist"}]}),
                true,
            ),
        ];
        for (sel, want) in cases {
            let roles = [
                json!({"kind": "ClusterRole", "metadata": {"name": "aggregated"},
                       "aggregationRule": {"clusterRoleSelectors": [sel]}}),
                json!({"kind": "ClusterRole", "metadata": {"name": "secrets-reader", "labels": {"a": "1"}},
                       "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]}),
            ];
            let binding = json!({"kind": "ClusterRoleBinding", "metadata": {"name": "m"},
                "roleRef": {"kind": "ClusterRole", "name": "aggregated"},
                "subjects": [{"kind": "User", "name": "mallory"}]});
            let p = Policy {
                roles: roles.iter().map(Role::from_json).collect(),
                bindings: vec![Binding::from_json(&binding)],
            };
            let get = Request::new("get", "", "secrets").in_namespace("flux-system");
            assert_eq!(
                p.allowed(&Subject::user("mallory"), &get),
                want,
                "{}",
                roles[0]
            );
        }
    }
}
