//! What runs: the workloads that make Pods, the objects beneath them (ReplicaSets, Jobs, Pods, found
//! through `metadata.ownerReferences`) and the objects beside them that steer them (autoscalers,
//! disruption budgets, Services' endpoints, Pods a Service or a workload would select).
//!
//! The vocabulary lives here once: which kinds make Pods and where their Pod template's labels sit
//! ([`WORKLOADS`]), how a label selector selects ([`Selector`]), and what each steering kind points
//! at ([`steers`]). The webhook keeps [`Facts`] of every workload and Service in a watch cache; the
//! rules in [`crate::decide`] ask it through [`crate::Lookup`].

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::config::Config;
use crate::object::Object;
use crate::owner::{OwnerRef, owners_of};

mod selector_text;
pub use selector_text::{SelectorError, valid_label_key, valid_label_value};

/// A kind that makes Pods, or a Service (which selects them).
#[derive(Debug, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    /// Served versions, preferred first (CronJob is `batch/v1beta1` only before Kubernetes 1.21).
    pub versions: &'static [&'static str],
    pub kind: &'static str,
    pub plural: &'static str,
    /// Where the labels of the Pods it makes sit (empty for a Service).
    pub pod_labels: &'static [&'static str],
}

const TEMPLATE: &[&str] = &["spec", "template", "metadata", "labels"];

/// The kinds whose objects the guard knows by uid (to follow `ownerReferences` from a Pod to what
/// Git declares), by name (what an autoscaler targets) and by selector.
pub const WORKLOADS: &[Kind] = &[
    Kind {
        group: "apps",
        versions: &["v1"],
        kind: "Deployment",
        plural: "deployments",
        pod_labels: TEMPLATE,
    },
    Kind {
        group: "apps",
        versions: &["v1"],
        kind: "StatefulSet",
        plural: "statefulsets",
        pod_labels: TEMPLATE,
    },
    Kind {
        group: "apps",
        versions: &["v1"],
        kind: "DaemonSet",
        plural: "daemonsets",
        pod_labels: TEMPLATE,
    },
    Kind {
        group: "apps",
        versions: &["v1"],
        kind: "ReplicaSet",
        plural: "replicasets",
        pod_labels: TEMPLATE,
    },
    Kind {
        group: "",
        versions: &["v1"],
        kind: "ReplicationController",
        plural: "replicationcontrollers",
        pod_labels: TEMPLATE,
    },
    Kind {
        group: "batch",
        versions: &["v1"],
        kind: "Job",
        plural: "jobs",
        pod_labels: TEMPLATE,
    },
    // Argo Rollouts (its controller: `workloadControllers` in the guard's config).
    Kind {
        group: "argoproj.io",
        versions: &["v1alpha1"],
        kind: "Rollout",
        plural: "rollouts",
        pod_labels: TEMPLATE,
    },
    Kind {
        group: "batch",
        versions: &["v1", "v1beta1"],
        kind: "CronJob",
        plural: "cronjobs",
        pod_labels: &[
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "metadata",
            "labels",
        ],
    },
    SERVICE,
];

/// Services: what they select receives their traffic.
pub const SERVICE: Kind = Kind {
    group: "",
    versions: &["v1"],
    kind: "Service",
    plural: "services",
    pod_labels: &[],
};

impl Kind {
    /// `Deployment.apps`, `Service`.
    pub fn dot_group(&self) -> String {
        crate::custody::kind_dot_group(self.group, self.kind)
    }
}

/// The workload kind `group`/`kind`, if the guard follows it.
pub fn workload_kind(group: &str, kind: &str) -> Option<&'static Kind> {
    WORKLOADS
        .iter()
        .find(|k| k.group == group && k.kind == kind)
}

/// The owner reference with `controller: true`: the object that made this one and keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerRef {
    /// From its `apiVersion` (`""` for the core group).
    pub group: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// The controller among `metadata.ownerReferences` (a list; anything else is none).
pub fn controller_of(owner_references: &Value) -> Option<ControllerRef> {
    owner_references
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| {
            let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
            let api_version = s("apiVersion").unwrap_or_default();
            Some(ControllerRef {
                group: api_version
                    .split_once('/')
                    .map(|(g, _)| g.to_string())
                    .unwrap_or_default(),
                kind: s("kind")?,
                name: s("name").unwrap_or_default(),
                uid: s("uid")?,
            })
        })
}

/// One `matchExpressions` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: String,
    values: Vec<String>,
}

/// A label selector: a Service's `spec.selector` (a map) or a `metav1.LabelSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    match_labels: BTreeMap<String, String>,
    match_expressions: Vec<Requirement>,
    /// An empty selector that selects every Pod (a `policy/v1` PodDisruptionBudget's `{}`);
    /// otherwise an empty selector selects nothing.
    everything: bool,
}

/// The string members of a JSON object (labels, annotations, matchLabels); others are left out.
pub(crate) fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

impl Selector {
    /// A Service's selector: a map of labels; empty or missing selects nothing (such a Service's
    /// endpoints are kept by hand, [`steers`] guards them by name).
    pub fn of_map(v: Option<&Value>) -> Selector {
        Selector {
            match_labels: string_map(v),
            ..Selector::default()
        }
    }

    /// A `metav1.LabelSelector` (`matchLabels`, `matchExpressions`). `empty_selects_all`: what an
    /// empty one means for the kind reading it.
    pub fn of_label_selector(v: Option<&Value>, empty_selects_all: bool) -> Selector {
        let Some(v) = v.filter(|v| v.is_object()) else {
            return Selector::default();
        };
        let match_expressions: Vec<Requirement> = v
            .get("matchExpressions")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|r| Requirement {
                        key: r.get("key").and_then(Value::as_str).unwrap_or("").into(),
                        operator: r
                            .get("operator")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .into(),
                        values: r
                            .get("values")
                            .and_then(Value::as_array)
                            .map(|vs| {
                                vs.iter()
                                    .filter_map(|v| v.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let match_labels = string_map(v.get("matchLabels"));
        let everything =
            empty_selects_all && match_labels.is_empty() && match_expressions.is_empty();
        Selector {
            match_labels,
            match_expressions,
            everything,
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.everything && self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether Pods with `labels` are selected. An unknown operator selects nothing.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        if self.everything {
            return true;
        }
        if self.is_empty() {
            return false;
        }
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    // Only from the text form (`replicas>1`): an integer comparison.
                    "Gt" | "Lt" => value
                        .and_then(|v| v.parse::<i64>().ok())
                        .zip(r.values.first().and_then(|b| b.parse::<i64>().ok()))
                        .is_some_and(|(v, b)| if r.operator == "Gt" { v > b } else { v < b }),
                    _ => false,
                }
            })
    }
}

/// What the guard keeps of one workload or Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub kind: &'static Kind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Who its labels and annotations say manages it (empty: nobody, unless its namespace is
    /// `enforce: all`).
    pub owners: Vec<OwnerRef>,
    pub controller: Option<ControllerRef>,
    /// Which Pods it selects (a workload: the Pods it adopts; a Service: those it sends traffic to).
    pub selector: Selector,
    /// The labels of the Pods it makes.
    pub pod_labels: BTreeMap<String, String>,
    /// Its `gitops-guard.dev/…` annotations (exceptions decided in Git).
    pub exceptions: BTreeMap<String, String>,
}

fn at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// The facts of a workload or Service, from the whole object (or its shallow copy).
pub fn facts(kind: &'static Kind, v: &Value, config: &Config) -> Facts {
    let meta = |k: &str| {
        at(v, &["metadata", k])
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let labels = string_map(at(v, &["metadata", "labels"]));
    let annotations = string_map(at(v, &["metadata", "annotations"]));
    let object = Object {
        api_version: at(v, &["apiVersion"])
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        kind: kind.kind.to_string(),
        name: meta("name"),
        namespace: meta("namespace"),
        labels: labels.clone().into(),
        annotations: annotations.clone().into(),
        ..Object::default()
    };
    let selector = if kind.pod_labels.is_empty() {
        Selector::of_map(at(v, &["spec", "selector"]))
    } else if kind.group.is_empty() {
        // A ReplicationController's selector is a map, defaulted to its template's labels.
        match at(v, &["spec", "selector"]) {
            Some(s) => Selector::of_map(Some(s)),
            None => Selector::of_map(at(v, kind.pod_labels)),
        }
    } else {
        Selector::of_label_selector(at(v, &["spec", "selector"]), false)
    };
    Facts {
        kind,
        namespace: meta("namespace"),
        name: meta("name"),
        uid: meta("uid"),
        owners: owners_of(&object, kind.group, kind.kind, config),
        controller: at(v, &["metadata", "ownerReferences"]).and_then(controller_of),
        selector,
        pod_labels: string_map(at(v, kind.pod_labels)),
        exceptions: annotations
            .into_iter()
            .filter(|(k, _)| k.starts_with(crate::exception::PREFIX))
            .collect(),
    }
}

/// A managed workload or Service that a request would reach: what the guard names in its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steered {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Who manages it (never empty: a Namespace owner for an `enforce: all` namespace).
    pub owners: Vec<OwnerRef>,
    /// Its `gitops-guard.dev/…` annotations.
    pub exceptions: BTreeMap<String, String>,
    /// The kinds on the way to it from the object asked about, it included, as `Kind.group`
    /// (`ReplicaSet.apps`, `Rollout.argoproj.io`): whose controllers made what lies beneath.
    pub chain: Vec<String>,
}

impl Steered {
    pub fn of(facts: &Facts, owners: Vec<OwnerRef>) -> Steered {
        Steered {
            kind: facts.kind.kind.to_string(),
            namespace: facts.namespace.clone(),
            name: facts.name.clone(),
            owners,
            exceptions: facts.exceptions.clone(),
            chain: vec![facts.kind.dot_group()],
        }
    }
}

impl fmt::Display for Steered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.to_lowercase(), self.name)
    }
}

/// What an object of `group`/`kind` steers when it is not itself from Git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An autoscaler's or VPA's target, by kind and name.
    Workload {
        kind: String,
        name: String,
        /// The target's field it changes (`spec.replicas`), for `allow-fields`.
        field: Option<&'static str>,
    },
    /// Pods with these labels (a Pod, or the Pods a workload makes): a Service that selects them
    /// sends them traffic, a workload that selects them adopts them.
    Pods(BTreeMap<String, String>),
    /// The Pods a PodDisruptionBudget selects.
    Selected(Selector),
    /// A Service's endpoints (an Endpoints object of its name, an EndpointSlice labelled with it).
    Service(String),
    /// An object of `kind` with these labels and no controller: the workloads whose selector
    /// matches them adopt it (a Deployment or Rollout its ReplicaSets, a StatefulSet or DaemonSet
    /// its ControllerRevisions, by the object's own labels, not its Pod template's).
    Adopted {
        kind: &'static str,
        labels: BTreeMap<String, String>,
    },
}

/// The kinds Kubernetes' workload controllers adopt by their own labels when they carry no
/// controller reference, and the kinds (`Kind.group`) that adopt them. Pods are adopted too, and
/// are [`Target::Pods`] already.
const ADOPTED: &[(&str, &str, &[&str])] = &[
    (
        "apps",
        "ReplicaSet",
        &["Deployment.apps", "Rollout.argoproj.io"],
    ),
    (
        "apps",
        "ControllerRevision",
        // A StatefulSet builds Pods from the revision its status names.
        &["StatefulSet.apps", "DaemonSet.apps"],
    ),
];

/// What an object of `group`/`kind` is adopted by: when it has no controller (`controlled`
/// false) and is a kind that workloads adopt, the workloads that select its labels take it as
/// their own.
pub fn adopted(group: &str, kind: &str, object: &Object<'_>, controlled: bool) -> Option<Target> {
    if controlled {
        return None;
    }
    let (_, kind, _) = ADOPTED.iter().find(|(g, k, _)| *g == group && *k == kind)?;
    Some(Target::Adopted {
        kind,
        labels: object
            .labels
            .iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
    })
}

/// The label an EndpointSlice names its Service with.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What `object` (of `group`/`kind`, with `spec` parsed) steers, if it is a kind that steers.
pub fn steers(group: &str, kind: &str, object: &Object<'_>, spec: &Value) -> Option<Target> {
    let target = |r: Option<&Value>, default_kind: Option<&str>, field| {
        let r = r?;
        let kind = r
            .get("kind")
            .and_then(Value::as_str)
            .or(default_kind)?
            .to_string();
        let name = r.get("name").and_then(Value::as_str)?.to_string();
        Some(Target::Workload { kind, name, field })
    };
    match (group, kind) {
        ("autoscaling", "HorizontalPodAutoscaler") => {
            target(spec.get("scaleTargetRef"), None, Some("spec.replicas"))
        }
        ("keda.sh", "ScaledObject") => target(
            spec.get("scaleTargetRef"),
            Some("Deployment"),
            Some("spec.replicas"),
        ),
        ("autoscaling.k8s.io", "VerticalPodAutoscaler") => {
            target(spec.get("targetRef"), None, None)
        }
        ("policy", "PodDisruptionBudget") => {
            let v1 = object.api_version == "policy/v1";
            Some(Target::Selected(Selector::of_label_selector(
                spec.get("selector"),
                v1,
            )))
        }
        ("", "Pod") => Some(Target::Pods(
            object
                .labels
                .iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )),
        ("discovery.k8s.io", "EndpointSlice") => object
            .label(SERVICE_NAME_LABEL)
            .map(|s| Target::Service(s.into())),
        ("", "Endpoints") => Some(Target::Service(object.name.clone())),
        _ => {
            let k = workload_kind(group, kind).filter(|k| !k.pod_labels.is_empty())?;
            // `pod_labels` starts at the object's root; `spec` is given.
            let labels = string_map(at(spec, &k.pod_labels[1..]));
            Some(Target::Pods(labels))
        }
    }
}

/// Whether `facts` (a workload or Service) is what `target` steers. Only whether the names and
/// labels meet: whether it is managed is the caller's question.
pub fn reaches(facts: &Facts, target: &Target) -> bool {
    let service = facts.kind == &SERVICE;
    match target {
        Target::Workload { kind, name, .. } => {
            !service && facts.kind.kind == kind && facts.name == *name
        }
        // An empty label set is selected too, by a selector of `NotIn`/`DoesNotExist` alone.
        Target::Pods(labels) => facts.selector.matches(labels),
        Target::Selected(selector) => !service && selector.matches(&facts.pod_labels),
        Target::Service(name) => service && facts.name == *name,
        Target::Adopted { kind, labels } => {
            ADOPTED.iter().any(|(_, k, adopters)| {
                k == kind && adopters.contains(&facts.kind.dot_group().as_str())
            }) && facts.selector.matches(labels)
        }
    }
}

/// How many controllers up an `ownerReferences` chain is followed (Pod → ReplicaSet →
/// Deployment is two); a cycle ends here too.
pub const MAX_CHAIN: usize = 8;

/// The topmost managed workload a controller chain in `namespace` leads to. `by_uid` finds what the guard
/// knows of an object; `managed` says who manages it (empty: nobody). A reference leads to the
/// object with its uid whatever kind it names: Kubernetes' controllers claim what they own by uid
/// alone (a ReplicaSet whose controller reference names kind `Foo` and the Deployment's uid is
/// that Deployment's, as long as its labels match).
pub fn ancestor<'f>(
    namespace: &str,
    start: &ControllerRef,
    by_uid: impl Fn(&str) -> Option<&'f Facts>,
    managed: impl Fn(&Facts) -> Vec<OwnerRef>,
) -> Option<Steered> {
    // The topmost managed one: in an `enforce: all` namespace a ReplicaSet is managed too, but
    // its Deployment is what a person recognises and changes.
    let mut found: Option<Steered> = None;
    let mut chain = Vec::new();
    let mut next = Some(start);
    for _ in 0..MAX_CHAIN {
        let Some(f) = next
            .and_then(|r| by_uid(&r.uid))
            .filter(|f| f.namespace == namespace)
        else {
            break;
        };
        chain.push(f.kind.dot_group());
        let owners = managed(f);
        if !owners.is_empty() {
            found = Some(Steered {
                chain: chain.clone(),
                ..Steered::of(f, owners)
            });
        }
        next = f.controller.as_ref();
    }
    found
}

/// The managed workloads and Services among `facts` (one namespace's) that `target` steers, each
/// named by the managed object its chain leads to (a ReplicaSet's Deployment).
pub fn steered_among<'f>(
    facts: impl Iterator<Item = &'f Facts>,
    target: &Target,
    by_uid: impl Fn(&str) -> Option<&'f Facts> + Copy,
    managed: impl Fn(&Facts) -> Vec<OwnerRef> + Copy,
) -> Vec<Steered> {
    let mut out: Vec<Steered> = Vec::new();
    for f in facts.filter(|f| reaches(f, target)) {
        // The topmost managed one, as for a descendant: in an `enforce: all` namespace a
        // ReplicaSet is managed too, but its Deployment is what Git declares, and its exceptions
        // are Git's (the ReplicaSet's annotations are anyone's).
        let found = f
            .controller
            .as_ref()
            .and_then(|c| ancestor(&f.namespace, c, by_uid, managed))
            .or_else(|| {
                let owners = managed(f);
                (!owners.is_empty()).then(|| Steered::of(f, owners))
            });
        if let Some(s) = found
            && !out.iter().any(|o| o.kind == s.kind && o.name == s.name)
        {
            out.push(s);
        }
    }
    // Services first: where traffic goes is what a person reading the denial cares about most.
    out.sort_by_key(|s| (s.kind != SERVICE.kind, s.kind.clone(), s.name.clone()));
    out
}

#[cfg(test)]
mod tests;
