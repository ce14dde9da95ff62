//! Check `guard`, selectors: whether a webhook's objectSelector or namespaceSelector lets a kind
//! it routes past every webhook of the guard once a person sets or removes the label it rests on.
//! Pure: the webhook configurations and the served kinds are read by the caller.
//!
//! A label counts when a person can change it: any label of the object but the ownership labels
//! (changing those is itself a write the guard judges: the old object carries them), and any
//! namespace label but `kubernetes.io/metadata.name` (an ordinary label before 1.21, said by
//! [`super::guard`] already). For each served kind and each operation that writes labels (CREATE,
//! UPDATE), every combination of the labels the guard's selectors name is tried — absent, each
//! value they name, another value — and a label is a way through when changing it alone takes a
//! write that some webhook routes to one that no webhook routes, as the API server matches
//! selectors (core's selector model).

use std::collections::{BTreeMap, BTreeSet};

use gitops_guard_core::owner::NAMESPACE_NAME_LABEL;
use gitops_guard_core::workload::Selector;
use serde_json::{Value, json};

use super::guard::{Served, routes_resource};
use super::{Finding, Severity};

const CHECK: &str = "guard";
/// A value none of the selectors names.
const OTHER: &str = "doctor-any-other-value";
/// The most label combinations tried per kind: beyond it the kind is said as not checked.
const MAX_STATES: usize = 1024;

/// Which labels a selector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// The object's own labels (objectSelector).
    Object,
    /// Its namespace's labels (namespaceSelector).
    Namespace,
}

/// One webhook of the guard, its selectors parsed.
struct Entry<'a> {
    config: &'a str,
    index: usize,
    webhook: &'a Value,
    fail: bool,
    object: Selector,
    namespace: Selector,
    /// The label keys each selector names, with the JSON pointer (under the webhook) of the
    /// first requirement on each, and the values it names.
    keys: BTreeMap<(Side, String), (String, BTreeSet<String>)>,
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn requirements(
    selector: Option<&Value>,
    side: Side,
    out: &mut BTreeMap<(Side, String), (String, BTreeSet<String>)>,
) {
    let field = match side {
        Side::Object => "objectSelector",
        Side::Namespace => "namespaceSelector",
    };
    let Some(selector) = selector else {
        return;
    };
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in labels {
            let entry = out.entry((side, key.clone())).or_insert_with(|| {
                (
                    format!("/{field}/matchLabels/{}", escape(key)),
                    BTreeSet::new(),
                )
            });
            if let Some(v) = value.as_str() {
                entry.1.insert(v.to_string());
            }
        }
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for (j, e) in exprs.iter().enumerate() {
            let Some(key) = e.get("key").and_then(Value::as_str) else {
                continue;
            };
            let entry = out
                .entry((side, key.to_string()))
                .or_insert_with(|| (format!("/{field}/matchExpressions/{j}"), BTreeSet::new()));
            for v in e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                entry.1.insert(v.to_string());
            }
        }
    }
}

fn entries(configs: &[Value]) -> Vec<Entry<'_>> {
    let everything = json!({});
    let mut out = Vec::new();
    for c in configs {
        let config = c
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let hooks = c
            .get("webhooks")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (index, webhook) in hooks.iter().enumerate() {
            // A missing selector, like `{}`, selects everything.
            let selector = |field: &str| {
                Selector::of_label_selector(
                    Some(
                        webhook
                            .get(field)
                            .filter(|v| v.is_object())
                            .unwrap_or(&everything),
                    ),
                    true,
                )
            };
            let mut keys = BTreeMap::new();
            requirements(webhook.get("objectSelector"), Side::Object, &mut keys);
            requirements(webhook.get("namespaceSelector"), Side::Namespace, &mut keys);
            out.push(Entry {
                config,
                index,
                webhook,
                fail: webhook.get("failurePolicy").and_then(Value::as_str) != Some("Ignore"),
                object: selector("objectSelector"),
                namespace: selector("namespaceSelector"),
                keys,
            });
        }
    }
    out
}

/// A label that lets writes past the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hole {
    pub config: String,
    /// The webhook's index in its configuration.
    pub index: usize,
    pub side: Side,
    pub key: String,
    /// The requirement's JSON pointer under the webhook.
    pub pointer: String,
    /// The webhook's failurePolicy is Fail.
    pub fail: bool,
    /// A value of the label that takes writes past the guard (`None`: removing it).
    pub value: Option<String>,
    /// The kinds (`plural.group`) whose writes get past, sorted.
    pub resources: BTreeSet<String>,
}

impl Hole {
    /// How bad it is: `fail` on a Fail entry, else `warn`.
    pub fn severity(&self) -> Severity {
        if self.fail {
            Severity::Fail
        } else {
            Severity::Warn
        }
    }
}

/// Whether a person can change this label (see the module docs). `ownership`: the object labels
/// that say who owns it.
fn changeable(side: Side, key: &str, ownership: &BTreeSet<String>) -> bool {
    match side {
        Side::Object => !ownership.contains(key),
        Side::Namespace => key != NAMESPACE_NAME_LABEL,
    }
}

/// Every label a person can change that lets writes of a served kind (`targets`) past every
/// webhook of the guard (`configs`). `minor`: the server's minor version; `ownership`: the
/// ownership labels. Kinds with more label combinations than can be tried are returned apart
/// (`plural.group`).
pub fn holes(
    configs: &[Value],
    targets: &[Served],
    minor: Option<u32>,
    ownership: &BTreeSet<String>,
) -> (Vec<Hole>, Vec<String>) {
    let all = entries(configs);
    let immutable_name = minor.is_some_and(|m| m >= 21);
    let mut found: BTreeMap<(String, usize, Side, String), Hole> = BTreeMap::new();
    let mut too_many = Vec::new();
    for target in targets {
        // A Namespace's own labels are what a namespaceSelector reads for it; other
        // cluster-scoped objects have no namespace to select on.
        let is_namespace = target.group.is_empty() && target.plural == "namespaces";
        let side_of = |side: Side| match side {
            Side::Namespace if is_namespace => Side::Object,
            s => s,
        };
        for operation in ["CREATE", "UPDATE"] {
            let routing: Vec<&Entry> = all
                .iter()
                .filter(|e| routes_resource(e.webhook, target, operation))
                .collect();
            let open = |e: &Entry| {
                e.keys.keys().any(|(side, key)| {
                    changeable(*side, key, ownership)
                        && (target.namespaced || is_namespace || *side == Side::Object)
                })
            };
            if !routing.iter().any(|e| open(e)) {
                continue;
            }
            // The labels the selectors name and the values tried for each.
            let mut domain: BTreeMap<(Side, String), Vec<Option<String>>> = BTreeMap::new();
            for e in &routing {
                for ((side, key), (_, values)) in &e.keys {
                    if *side == Side::Namespace && !target.namespaced && !is_namespace {
                        continue;
                    }
                    let d = domain.entry((side_of(*side), key.clone())).or_default();
                    d.extend(values.iter().cloned().map(Some));
                }
            }
            for ((side, key), values) in domain.iter_mut() {
                let fixed_name = *side == Side::Namespace && key == NAMESPACE_NAME_LABEL;
                if !(fixed_name && immutable_name) {
                    values.push(None);
                }
                values.push(Some(OTHER.to_string()));
                values.sort();
                values.dedup();
            }
            let keys: Vec<(Side, String)> = domain.keys().cloned().collect();
            let sizes: Vec<usize> = keys.iter().map(|k| domain[k].len()).collect();
            let states = sizes.iter().try_fold(1usize, |acc, n| {
                acc.checked_mul(*n).filter(|t| *t <= MAX_STATES)
            });
            let Some(states) = states else {
                too_many.push(target.resource());
                break;
            };
            let labels = |digits: &[usize]| {
                let mut object = BTreeMap::new();
                let mut namespace = BTreeMap::new();
                for (i, (side, key)) in keys.iter().enumerate() {
                    if let Some(Some(v)) = domain[&(*side, key.clone())].get(digits[i]) {
                        match side {
                            Side::Object => object.insert(key.clone(), v.clone()),
                            Side::Namespace => namespace.insert(key.clone(), v.clone()),
                        };
                    }
                }
                (object, namespace)
            };
            let matches = |e: &Entry, digits: &[usize]| {
                let (object, namespace) = labels(digits);
                e.object.matches(&object)
                    && if is_namespace {
                        e.namespace.matches(&object)
                    } else if target.namespaced {
                        e.namespace.matches(&namespace)
                    } else {
                        true
                    }
            };
            let mut digits = vec![0usize; keys.len()];
            for _ in 0..states {
                for e in routing.iter().filter(|e| matches(e, &digits)) {
                    for ((side, key), (pointer, _)) in &e.keys {
                        if !changeable(*side, key, ownership)
                            || (*side == Side::Namespace && !target.namespaced && !is_namespace)
                        {
                            continue;
                        }
                        let Some(i) = keys
                            .iter()
                            .position(|k| *k == (side_of(*side), key.clone()))
                        else {
                            continue;
                        };
                        for alt in 0..sizes[i] {
                            if alt == digits[i] {
                                continue;
                            }
                            let mut changed = digits.clone();
                            changed[i] = alt;
                            if routing.iter().any(|other| matches(other, &changed)) {
                                continue;
                            }
                            let value = domain[&keys[i]].get(alt).cloned().flatten();
                            found
                                .entry((e.config.to_string(), e.index, *side, key.clone()))
                                .or_insert_with(|| Hole {
                                    config: e.config.to_string(),
                                    index: e.index,
                                    side: *side,
                                    key: key.clone(),
                                    pointer: pointer.clone(),
                                    fail: e.fail,
                                    value,
                                    resources: BTreeSet::new(),
                                })
                                .resources
                                .insert(target.resource());
                        }
                    }
                }
                // The next combination (mixed radix).
                for (d, size) in digits.iter_mut().zip(&sizes) {
                    *d += 1;
                    if *d < *size {
                        break;
                    }
                    *d = 0;
                }
            }
        }
    }
    (found.into_values().collect(), too_many)
}

/// The worst hole in a namespaceSelector, if any (for `switch-off`'s who may relabel namespaces).
pub fn relabel_severity(holes: &[Hole]) -> Option<Severity> {
    holes
        .iter()
        .filter(|h| h.side == Side::Namespace)
        .map(Hole::severity)
        .max()
}

fn short_list(items: &[String]) -> String {
    match items.len() {
        0..=3 => items.join(", "),
        n => format!("{}, {} and {} more", items[0], items[1], n - 2),
    }
}

/// The findings for these holes. `relabellers`: who, by RBAC, may update or patch namespaces
/// (Kubernetes' own and the agents left out; `None`: RBAC could not be read).
pub fn findings(
    holes: &[Hole],
    too_many: &[String],
    relabellers: Option<&[String]>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for h in holes {
        let resources: Vec<String> = h.resources.iter().cloned().collect();
        let set = match h.value.as_deref() {
            None => format!("without {}", h.key),
            Some(OTHER) => format!("with {} set (to a value no selector names)", h.key),
            Some(v) => format!("with {}={v}", h.key),
        };
        let example = match h.value.as_deref() {
            None => format!("{}-", h.key),
            Some(OTHER) => format!("{}=x --overwrite", h.key),
            Some(v) => format!("{}={v} --overwrite", h.key),
        };
        let remove = format!(
            "kubectl patch validatingwebhookconfiguration {} --type=json -p '[{{\"op\":\"remove\",\"path\":\"/webhooks/{}{}\"}}]'",
            h.config, h.index, h.pointer
        );
        let (finding, why, fix) = match h.side {
            Side::Object => (
                format!(
                    "objectSelector rests on the object label {}, which a person can change: an object {set} reaches no webhook of the guard ({})",
                    h.key,
                    short_list(&resources)
                ),
                format!(
                    "whoever may create or update these objects can set it (kubectl label … {example}), and the guard never sees them"
                ),
                format!(
                    "{remove}  # select on ownership labels only (the chart's entries do): changing those is itself judged by the guard"
                ),
            ),
            Side::Namespace => {
                let who = match relabellers {
                    None => "whoever may update or patch namespaces (RBAC could not be read)".to_string(),
                    Some([]) => "whoever is granted update or patch on namespaces (nobody but Kubernetes and the agents is today)".to_string(),
                    Some(list) => format!("{} (may update or patch namespaces)", short_list(list)),
                };
                (
                    format!(
                        "namespaceSelector rests on the namespace label {}, which a person can change: in a namespace {set}, writes of {} reach no webhook of the guard",
                        h.key,
                        short_list(&resources)
                    ),
                    format!(
                        "{who} can take a namespace out of the guard's view (kubectl label namespace NAME {example})"
                    ),
                    format!(
                        "{remove}  # exclude namespaces by name instead: the guard config's excludedNamespaces (and, from 1.21, {NAMESPACE_NAME_LABEL})"
                    ),
                )
            }
        };
        out.push(Finding::new(
            h.severity(),
            CHECK,
            format!("ValidatingWebhookConfiguration {}", h.config),
            finding,
            why,
            fix,
        ));
    }
    for resource in too_many {
        out.push(Finding::new(
            Severity::Warn,
            "access",
            "check guard (selectors)",
            format!(
                "not run for {resource}: its webhooks' selectors name more than {MAX_STATES} label combinations"
            ),
            "whether a label lets its writes past the guard is unknown",
            "kubectl get validatingwebhookconfigurations -l app.kubernetes.io/part-of=gitops-guard -o yaml  # read the objectSelector and namespaceSelector of each",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configmaps() -> Served {
        Served {
            group: String::new(),
            version: "v1".into(),
            plural: "configmaps".into(),
            namespaced: true,
        }
    }

    fn entry(name: &str, policy: &str, object: Value, namespace: Value) -> Value {
        json!({"metadata": {"name": name}, "webhooks": [{
            "name": "guard.gitops-guard.dev", "failurePolicy": policy,
            "rules": [{"apiGroups": [""], "apiVersions": ["*"], "resources": ["configmaps"],
                       "operations": ["CREATE", "UPDATE", "DELETE"], "scope": "*"}],
            "objectSelector": object, "namespaceSelector": namespace}]})
    }

    fn unowned() -> Value {
        json!({"matchExpressions": [
            {"key": "kustomize.toolkit.fluxcd.io/name", "operator": "DoesNotExist"},
            {"key": "helm.toolkit.fluxcd.io/name", "operator": "DoesNotExist"}]})
    }

    /// The chart's entries for an ordinary kind: by ownership label, enforce-all namespaces, and
    /// everything else (argocd-annotations).
    fn chart(with_annotations: bool) -> Vec<Value> {
        let mut out = vec![
            entry(
                "gg-flux-kustomize",
                "Fail",
                json!({"matchExpressions": [{"key": "kustomize.toolkit.fluxcd.io/name", "operator": "Exists"}]}),
                json!({}),
            ),
            entry(
                "gg-flux-helm",
                "Fail",
                json!({"matchExpressions": [
                    {"key": "helm.toolkit.fluxcd.io/name", "operator": "Exists"},
                    {"key": "kustomize.toolkit.fluxcd.io/name", "operator": "DoesNotExist"}]}),
                json!({}),
            ),
            entry(
                "gg-enforce-all",
                "Fail",
                unowned(),
                json!({"matchExpressions": [{"key": "gitops-guard.dev/enforce", "operator": "In", "values": ["all"]}]}),
            ),
        ];
        if with_annotations {
            out.push(entry(
                "gg-argocd-annotations",
                "Ignore",
                unowned(),
                json!({"matchExpressions": [{"key": "gitops-guard.dev/enforce", "operator": "NotIn", "values": ["all"]}]}),
            ));
        }
        out
    }

    fn ownership() -> BTreeSet<String> {
        [
            "kustomize.toolkit.fluxcd.io/name",
            "kustomize.toolkit.fluxcd.io/namespace",
            "helm.toolkit.fluxcd.io/name",
            "helm.toolkit.fluxcd.io/namespace",
        ]
        .map(String::from)
        .into()
    }

    fn found(
        configs: &[Value],
        minor: u32,
    ) -> Vec<(String, Side, String, Option<String>, Severity)> {
        let (holes, too_many) = holes(configs, &[configmaps()], Some(minor), &ownership());
        assert!(too_many.is_empty());
        holes
            .into_iter()
            .map(|h| {
                let severity = h.severity();
                (h.config, h.side, h.key, h.value, severity)
            })
            .collect()
    }

    #[test]
    fn the_charts_entries_leave_no_label_that_takes_writes_past_the_guard() {
        // The enforce label only moves unlabelled objects between enforce-all (Fail) and
        // argocd-annotations (Ignore); ownership labels are the guard's own to judge.
        assert_eq!(found(&chart(true), 20), vec![]);
        assert_eq!(found(&chart(true), 30), vec![]);
    }

    #[test]
    fn a_namespace_label_with_nothing_behind_it_is_a_way_past() {
        // Without argocd-annotations, removing the enforce label leaves unlabelled objects to no
        // webhook at all.
        assert_eq!(
            found(&chart(false), 30),
            vec![(
                "gg-enforce-all".to_string(),
                Side::Namespace,
                "gitops-guard.dev/enforce".to_string(),
                None,
                Severity::Fail
            )]
        );
        // An Ignore entry resting on a tenant label: a warn.
        let team = entry(
            "gg-tenants",
            "Ignore",
            json!({}),
            json!({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["sandbox"]}]}),
        );
        assert_eq!(
            found(&[team], 30),
            vec![(
                "gg-tenants".to_string(),
                Side::Namespace,
                "team".to_string(),
                Some("sandbox".to_string()),
                Severity::Warn
            )]
        );
    }

    #[test]
    fn an_object_label_outside_ownership_is_a_way_past() {
        let skip = entry(
            "gg-custody",
            "Fail",
            json!({"matchExpressions": [{"key": "skip-guard", "operator": "DoesNotExist"}]}),
            json!({}),
        );
        assert_eq!(
            found(std::slice::from_ref(&skip), 30),
            vec![(
                "gg-custody".to_string(),
                Side::Object,
                "skip-guard".to_string(),
                Some(OTHER.to_string()),
                Severity::Fail
            )]
        );
        // Routed for DELETE only, it lets nothing a label decides through: writes that set
        // labels are CREATE and UPDATE.
        let mut delete_only = skip;
        delete_only["webhooks"][0]["rules"][0]["operations"] = json!(["DELETE"]);
        assert_eq!(found(&[delete_only], 30), vec![]);
        // A cluster-scoped kind has no namespace to select on.
        let nodes = Served {
            group: String::new(),
            version: "v1".into(),
            plural: "nodes".into(),
            namespaced: false,
        };
        let by_team = json!({"metadata": {"name": "gg"}, "webhooks": [{"failurePolicy": "Fail",
            "rules": [{"apiGroups": [""], "resources": ["*"], "operations": ["*"]}],
            "namespaceSelector": {"matchLabels": {"team": "a"}}}]});
        let (holes_nodes, _) = holes(
            std::slice::from_ref(&by_team),
            &[nodes],
            Some(30),
            &ownership(),
        );
        assert!(holes_nodes.is_empty(), "{holes_nodes:?}");
        let (holes_cm, _) = holes(&[by_team], &[configmaps()], Some(30), &ownership());
        assert_eq!(holes_cm.len(), 1);
        assert_eq!(
            holes_cm[0].pointer, "/namespaceSelector/matchLabels/team",
            "{holes_cm:?}"
        );
    }

    #[test]
    fn the_namespace_name_label_is_left_to_the_version_check() {
        let by_name = entry(
            "gg-custody",
            "Fail",
            json!({}),
            json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]}),
        );
        assert_eq!(found(std::slice::from_ref(&by_name), 30), vec![]);
        // Before 1.21 the guard check says it (a fail of its own), not this one.
        assert_eq!(found(&[by_name], 20), vec![]);
    }

    #[test]
    fn findings_name_the_label_who_may_set_it_and_the_fix() {
        let (h, _) = holes(&chart(false), &[configmaps()], Some(30), &ownership());
        assert_eq!(relabel_severity(&h), Some(Severity::Fail));
        let who = ["Group tenants".to_string(), "User ana".to_string()];
        let f = findings(&h, &[], Some(&who));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Fail);
        assert_eq!(
            f[0].subject,
            "ValidatingWebhookConfiguration gg-enforce-all"
        );
        assert_eq!(
            f[0].finding,
            "namespaceSelector rests on the namespace label gitops-guard.dev/enforce, which a person can change: in a namespace without gitops-guard.dev/enforce, writes of configmaps reach no webhook of the guard"
        );
        assert_eq!(
            f[0].why,
            "Group tenants, User ana (may update or patch namespaces) can take a namespace out of the guard's view (kubectl label namespace NAME gitops-guard.dev/enforce-)"
        );
        assert_eq!(
            f[0].fix,
            "kubectl patch validatingwebhookconfiguration gg-enforce-all --type=json -p '[{\"op\":\"remove\",\"path\":\"/webhooks/0/namespaceSelector/matchExpressions/0\"}]'  # exclude namespaces by name instead: the guard config's excludedNamespaces (and, from 1.21, kubernetes.io/metadata.name)"
        );
        let unknown = findings(&h, &[], None);
        assert!(
            unknown[0]
                .why
                .starts_with("whoever may update or patch namespaces (RBAC could not be read)")
        );
        assert_eq!(relabel_severity(&[]), None);
    }

    #[test]
    fn too_many_combinations_are_said_not_checked() {
        let many: Vec<Value> = (0..12)
            .map(|i| {
                entry(
                    &format!("gg-{i}"),
                    "Fail",
                    json!({"matchExpressions": [{"key": format!("k{i}"), "operator": "In", "values": ["a", "b"]}]}),
                    json!({}),
                )
            })
            .collect();
        let (h, too_many) = holes(&many, &[configmaps()], Some(30), &ownership());
        assert!(h.is_empty());
        assert_eq!(too_many, vec!["configmaps".to_string()]);
        let f = findings(&h, &too_many, None);
        assert_eq!((f[0].severity, f[0].check), (Severity::Warn, "access"));
    }
}
