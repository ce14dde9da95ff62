//! The pure part of `diff`: the object as Git defines it against the live object, field by field.
//! No I/O: `audit` and other verbs call [`compare`] with what they read.
//!
//! What is NOT drift is decided here and only here, each by one rule ([`NotDrift`]):
//! top-level `status`; the metadata the API server maintains ([`SERVER_METADATA`]); annotations
//! and labels Kubernetes, kubectl and the agents write ([`SKIPPED_KEYS`]); a field Git does not
//! set that only the agent, Kubernetes' own controllers or nobody (an API-server default) wrote;
//! an operational change the guard lets anyone make (`decide::is_operational`: `kubectl rollout
//! restart`'s annotation, reconcile requests, suspend); `spec.replicas` of an object an
//! autoscaler targets; values written differently that the API server reads alike (quantities
//! `1Gi`/`1024Mi`/`0.5`/`500m`, `"1"`/`1`); and an empty value Git writes (`{}`, `[]`, `null`)
//! that the API server drops.

use gitops_guard_core::Config;
use gitops_guard_core::decide;
use gitops_guard_core::diff::{FieldPath, Seg, path_string};
use gitops_guard_core::exception::{self, Window};
use serde::Serialize;
use serde_json::Value;

use crate::blame::fields::{self, Manager, Role, Step};

/// Metadata the API server maintains.
pub const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Labels and annotations (by key, or by prefix ending in `/` or `-`) that Kubernetes, kubectl,
/// the agents and the guard's break-glass windows write on their own: never drift, whoever wrote
/// them (a window is an exception `exceptions` and `audit` report, not configuration).
pub const SKIPPED_KEYS: &[&str] = &[
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
    "kustomize.toolkit.fluxcd.io/",
    "helm.toolkit.fluxcd.io/",
    "argocd.argoproj.io/tracking-id",
    "argocd.argoproj.io/instance",
    "meta.helm.sh/",
    "app.kubernetes.io/managed-by",
    "gitops-guard.dev/break-glass-",
];

/// How a field differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Change {
    /// Git sets it; the live value differs.
    Changed { git: Value, live: Value },
    /// Git sets it; the live object lacks it.
    Missing { git: Value },
    /// Git does not set it; a person (or script) added it.
    Added { live: Value },
}

/// One field that differs, who wrote the live value, and what allows it (if anything).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDiff {
    /// `spec.replicas`, `spec.template.spec.containers[0].image` (indexes of the live list).
    pub field: String,
    #[serde(flatten)]
    pub change: Change,
    /// The field manager that owns the live value (a person's before the agent's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<jiff::Timestamp>,
    /// The exception or break-glass window that allowed the change, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_by: Option<String>,
    #[serde(skip)]
    pub path: Vec<Seg>,
    /// Where the field is in Git's document (an added list item: index [`APPEND`]).
    #[serde(skip)]
    pub at: Vec<Seg>,
}

/// The exceptions in force on an object: `allow-fields`, `allow: manual`, break-glass windows on
/// it and on its namespace (read as core reads them).
#[derive(Debug, Clone, Default)]
pub struct Exceptions {
    pub manual: bool,
    pub allow_fields: Vec<FieldPath>,
    /// `(where, window)` with the window's opening dated from managedFields.
    pub windows: Vec<(String, Window)>,
    /// The longest window the guard accepts (`breakGlass.maxDuration`).
    pub max_window: Option<jiff::SignedDuration>,
}

fn annotations(v: &Value) -> std::collections::BTreeMap<String, String> {
    v.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn window_of(v: &Value) -> Option<Window> {
    let mut w = Window::from_annotations(&annotations(v))?;
    w.opened = v
        .pointer("/metadata/managedFields")
        .and_then(exception::window_opened);
    Some(w)
}

impl Exceptions {
    /// The exceptions on `live` and on its `namespace` object (when read).
    pub fn of(live: &Value, namespace: Option<&Value>, config: &Config) -> Exceptions {
        let ann = annotations(live);
        let mut windows = Vec::new();
        if let Some(w) = window_of(live) {
            windows.push(("the object's break-glass window".to_string(), w));
        }
        if let Some(w) = namespace.and_then(window_of) {
            windows.push(("the namespace's break-glass window".to_string(), w));
        }
        Exceptions {
            manual: exception::allows_manual(&ann),
            allow_fields: exception::allow_fields(&ann).unwrap_or_default(),
            windows,
            max_window: Some(config.break_glass.max_duration),
        }
    }

    /// What allows a change at `path` made at `time` (by someone other than the agent).
    fn allows(&self, path: &[Seg], time: Option<jiff::Timestamp>) -> Option<String> {
        if self.manual {
            return Some("gitops-guard.dev/allow: manual".into());
        }
        if let Some(p) = self.allow_fields.iter().find(|p| p.covers(path)) {
            return Some(format!("gitops-guard.dev/allow-fields: {p}"));
        }
        let t = time?;
        self.windows.iter().find_map(|(on, w)| {
            let opened = w.opened.as_deref()?.parse::<jiff::Timestamp>().ok()?;
            let until = w.until().ok()?;
            let max = self.max_window?;
            let valid = !w.by.is_empty()
                && !w.reason.is_empty()
                && until <= opened.checked_add(max).unwrap_or(jiff::Timestamp::MAX);
            (valid && opened <= t && t <= until).then(|| {
                let ticket = w
                    .ticket
                    .as_ref()
                    .map(|t| format!(", ticket {t}"))
                    .unwrap_or_default();
                format!(
                    "{on} (opened by {} until {}: {}{ticket})",
                    w.by, w.until, w.reason
                )
            })
        })
    }
}

/// What [`compare`] needs besides the two objects.
pub struct Inputs<'a> {
    pub config: &'a Config,
    pub exceptions: &'a Exceptions,
    /// An autoscaler (HorizontalPodAutoscaler) targets the object: it owns `spec.replicas`.
    pub autoscaled: bool,
}

/// Keys of list items that identify them (strategic merge keys of the common kinds).
const MERGE_KEYS: &[&str] = &[
    "name",
    "containerPort",
    "mountPath",
    "devicePath",
    "port",
    "ip",
];

/// Keys under which values are resource quantities.
const QUANTITY_MAPS: &[&str] = &[
    "limits",
    "requests",
    "hard",
    "capacity",
    "allocatable",
    "overhead",
];

fn is_quantity_path(path: &[Seg]) -> bool {
    let n = path.len();
    matches!(path.last(), Some(Seg::Key(k)) if k == "sizeLimit" || k == "storage")
        || (n >= 2 && matches!(&path[n - 2], Seg::Key(k) if QUANTITY_MAPS.contains(&k.as_str())))
}

/// A Kubernetes quantity (`1Gi`, `500m`, `0.5`, `1e3`) as a number.
pub fn quantity(text: &str) -> Option<f64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s => {
            let e: i32 = s.strip_prefix(['e', 'E'])?.parse().ok()?;
            10f64.powi(e)
        }
    };
    Some(n * factor)
}

fn number_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Whether Git's value and the live one are the same value as the API server reads them.
pub fn same_value(path: &[Seg], git: &Value, live: &Value) -> bool {
    if git == live {
        return true;
    }
    match (git, live) {
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => return true,
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s))
            if s.trim() == n.to_string() =>
        {
            return true;
        }
        _ => {}
    }
    if is_quantity_path(path)
        && let (Some(a), Some(b)) = (number_text(git), number_text(live))
        && let (Some(a), Some(b)) = (quantity(&a), quantity(&b))
    {
        let scale = a.abs().max(b.abs()).max(1e-12);
        return ((a - b) / scale).abs() < 1e-9;
    }
    false
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn skipped_key(key: &str) -> bool {
    SKIPPED_KEYS.iter().any(|s| {
        if s.ends_with('/') || s.ends_with('-') {
            key.starts_with(s)
        } else {
            key == *s
        }
    })
}

/// Whether a path is left out of the comparison altogether: `status`, server metadata, the
/// labels and annotations of [`SKIPPED_KEYS`].
pub fn skipped(path: &[Seg]) -> bool {
    match path {
        [Seg::Key(k)] => k == "status",
        [Seg::Key(m), Seg::Key(k)] => m == "metadata" && SERVER_METADATA.contains(&k.as_str()),
        [Seg::Key(m), Seg::Key(map), Seg::Key(k)] => {
            m == "metadata" && (map == "labels" || map == "annotations") && skipped_key(k)
        }
        _ => false,
    }
}

struct Walker<'a, 'l> {
    inputs: &'a Inputs<'a>,
    managers: Vec<Manager>,
    group: &'l str,
    kind: &'l str,
}

impl Walker<'_, '_> {
    /// The manager that owns `steps` (a person's first, then the agent's, then Kubernetes'; the
    /// newest among equals) and its role.
    fn owner(&self, steps: &[Step<'_>]) -> Option<(&Manager, Role)> {
        let rank = |r: Role| match r {
            Role::Other | Role::Operational => 2,
            Role::Agent => 1,
            Role::System => 0,
        };
        let mut best: Option<(&Manager, Role)> = None;
        for m in &self.managers {
            if !m.owns(steps) {
                continue;
            }
            let role = fields::role(self.inputs.config, &m.name);
            best = match best {
                Some((b, br))
                    if rank(br) > rank(role) || (rank(br) == rank(role) && b.time >= m.time) =>
                {
                    Some((b, br))
                }
                _ => Some((m, role)),
            };
        }
        best
    }

    fn operational(&self, path: &[Seg]) -> bool {
        decide::is_operational(self.inputs.config, self.group, self.kind, path)
    }

    fn autoscaled(&self, path: &[Seg]) -> bool {
        self.inputs.autoscaled
            && matches!(path, [Seg::Key(s), Seg::Key(r)] if s == "spec" && r == "replicas")
    }

    fn report(&self, n: &Node<'_, '_>, change: Change) -> Option<FieldDiff> {
        let path = &n.path;
        let owner = self.owner(&n.steps);
        let (manager, time, role) = match owner {
            Some((m, r)) => (Some(m.name.clone()), m.time, Some(r)),
            None => (None, None, None),
        };
        if matches!(role, Some(Role::Other)) && self.operational(path) {
            return None;
        }
        if let Change::Added { .. } = change
            && role != Some(Role::Other)
        {
            // A field Git does not set that the agent, Kubernetes or nobody (a default) wrote.
            return None;
        }
        let allowed_by = match role {
            Some(Role::Agent) | Some(Role::System) => None,
            _ => self.inputs.exceptions.allows(path, time),
        };
        Some(FieldDiff {
            field: path_string(path),
            change,
            manager,
            time,
            allowed_by,
            path: path.clone(),
            at: n.at.clone(),
        })
    }
}

/// The merge key shared by every item of a list of maps (`name` for containers).
fn merge_key(items: &[Value]) -> Option<&'static str> {
    MERGE_KEYS.iter().copied().find(|k| {
        !items.is_empty()
            && items
                .iter()
                .all(|i| i.get(k).is_some_and(|v| !v.is_object() && !v.is_array()))
    })
}

/// An index in [`FieldDiff::at`] that means "after the last item" (an item Git lacks).
pub const APPEND: usize = usize::MAX;

/// One step of the walk: the live path (what is reported), the path in the Git document (where
/// [`view`] writes), the steps for managedFields, and the two values.
struct Node<'g, 'l> {
    path: Vec<Seg>,
    at: Vec<Seg>,
    steps: Vec<Step<'l>>,
    git: Option<&'g Value>,
    live: Option<&'l Value>,
}

impl<'g, 'l> Node<'g, 'l> {
    fn child(
        &self,
        live: Seg,
        at: Seg,
        step: Step<'l>,
        git: Option<&'g Value>,
        l: Option<&'l Value>,
    ) -> Node<'g, 'l> {
        let mut path = self.path.clone();
        path.push(live);
        let mut a = self.at.clone();
        a.push(at);
        let mut steps = self.steps.clone();
        steps.push(step);
        Node {
            path,
            at: a,
            steps,
            git,
            live: l,
        }
    }
}

/// The fields where `live` differs from `git` (the object as Git defines it at the revision,
/// after overlays and what the owner sets), with who wrote each and what allows it. Walks with
/// its own stack (no recursion on input); fields in the order of the object, keys sorted.
pub fn compare(git: &Value, live: &Value, inputs: &Inputs<'_>) -> Vec<FieldDiff> {
    let api_version = live
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let w = Walker {
        inputs,
        managers: fields::managers(live),
        group: api_version.rsplit_once('/').map_or("", |(g, _)| g),
        kind: live.get("kind").and_then(Value::as_str).unwrap_or_default(),
    };
    let mut out = Vec::new();
    let mut stack = vec![Node {
        path: Vec::new(),
        at: Vec::new(),
        steps: Vec::new(),
        git: Some(git),
        live: Some(live),
    }];
    while let Some(n) = stack.pop() {
        if skipped(&n.path) {
            continue;
        }
        let mut children: Vec<Node<'_, '_>> = Vec::new();
        match (n.git, n.live) {
            (None, None) => {}
            (Some(g), None) => {
                if !is_empty(g) {
                    out.extend(w.report(&n, Change::Missing { git: g.clone() }));
                }
            }
            (Some(Value::Object(gm)), Some(Value::Object(lm))) => {
                let mut keys: Vec<&String> = gm.keys().chain(lm.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    children.push(n.child(
                        Seg::Key(k.clone()),
                        Seg::Key(k.clone()),
                        Step::Key(k),
                        gm.get(k),
                        lm.get(k),
                    ));
                }
            }
            (None, Some(Value::Object(lm))) => {
                let mut keys: Vec<&String> = lm.keys().collect();
                keys.sort();
                for k in keys {
                    children.push(n.child(
                        Seg::Key(k.clone()),
                        Seg::Key(k.clone()),
                        Step::Key(k),
                        None,
                        lm.get(k),
                    ));
                }
            }
            (None, Some(l)) => {
                out.extend(w.report(&n, Change::Added { live: l.clone() }));
            }
            (Some(Value::Array(ga)), Some(Value::Array(la))) => match merge_key(ga) {
                Some(key) => {
                    let mut matched = vec![false; la.len()];
                    let mut missing = Vec::new();
                    for (j, gi) in ga.iter().enumerate() {
                        let want = gi.get(key);
                        let found = la.iter().enumerate().find(|(i, li)| {
                            !matched[*i]
                                && match (want, li.get(key)) {
                                    (Some(a), Some(b)) => same_value(&[], a, b),
                                    _ => false,
                                }
                        });
                        match found {
                            Some((i, li)) => {
                                matched[i] = true;
                                children.push(n.child(
                                    Seg::Index(i),
                                    Seg::Index(j),
                                    Step::Item(i, li),
                                    Some(gi),
                                    Some(li),
                                ));
                            }
                            None => {
                                let mut m = n.child(
                                    Seg::Index(j),
                                    Seg::Index(j),
                                    Step::Key(""),
                                    Some(gi),
                                    None,
                                );
                                m.steps.pop();
                                missing.push(m);
                            }
                        }
                    }
                    for (i, li) in la.iter().enumerate() {
                        if !matched[i] {
                            // An item Git lacks: reported whole, when a person added it.
                            let a = n.child(
                                Seg::Index(i),
                                Seg::Index(APPEND),
                                Step::Item(i, li),
                                None,
                                Some(li),
                            );
                            out.extend(w.report(&a, Change::Added { live: li.clone() }));
                        }
                    }
                    children.extend(missing);
                }
                None if ga.len() == la.len() => {
                    for (i, (gi, li)) in ga.iter().zip(la).enumerate() {
                        children.push(n.child(
                            Seg::Index(i),
                            Seg::Index(i),
                            Step::Item(i, li),
                            Some(gi),
                            Some(li),
                        ));
                    }
                }
                None => {
                    out.extend(w.report(
                        &n,
                        Change::Changed {
                            git: Value::Array(ga.clone()),
                            live: Value::Array(la.clone()),
                        },
                    ));
                }
            },
            (Some(g), Some(l)) => {
                if !same_value(&n.path, g, l) && !w.autoscaled(&n.path) {
                    out.extend(w.report(
                        &n,
                        Change::Changed {
                            git: g.clone(),
                            live: l.clone(),
                        },
                    ));
                }
            }
        }
        // Depth first, in key order.
        stack.extend(children.into_iter().rev());
    }
    out
}

/// What the live object is, seen through Git's document: `git` with every difference applied
/// (changed values set, missing fields removed, added ones inserted). Its YAML against Git's is
/// the diff a person reads, without the defaults and metadata that are not drift.
pub fn view(git: &Value, diffs: &[FieldDiff]) -> Value {
    let mut v = git.clone();
    // Removals last, deepest and highest index first, so that indexes stay right.
    let mut order: Vec<&FieldDiff> = diffs.iter().collect();
    order.sort_by_key(|d| matches!(d.change, Change::Missing { .. }));
    let (sets, mut removals): (Vec<&FieldDiff>, Vec<&FieldDiff>) = order
        .into_iter()
        .partition(|d| !matches!(d.change, Change::Missing { .. }));
    removals.sort_by_key(|d| std::cmp::Reverse(seg_order(&d.at)));
    for d in sets {
        let value = match &d.change {
            Change::Changed { live, .. } | Change::Added { live } => live.clone(),
            Change::Missing { .. } => continue,
        };
        set_at(&mut v, &d.at, value);
    }
    for d in removals {
        remove_at(&mut v, &d.at);
    }
    v
}

fn seg_order(p: &[Seg]) -> Vec<(usize, String)> {
    p.iter()
        .map(|s| match s {
            Seg::Key(k) => (0, k.clone()),
            Seg::Index(i) => (*i, String::new()),
        })
        .collect()
}

fn set_at(v: &mut Value, at: &[Seg], value: Value) {
    let Some((last, parents)) = at.split_last() else {
        *v = value;
        return;
    };
    let mut cur = v;
    for s in parents {
        cur = match s {
            Seg::Key(k) => {
                if !cur.is_object() {
                    *cur = Value::Object(Default::default());
                }
                match cur.as_object_mut() {
                    Some(m) => m.entry(k.clone()).or_insert(Value::Null),
                    None => return,
                }
            }
            Seg::Index(i) => match cur.get_mut(*i) {
                Some(next) => next,
                None => return,
            },
        };
    }
    match last {
        Seg::Key(k) => {
            if !cur.is_object() {
                *cur = Value::Object(Default::default());
            }
            if let Some(m) = cur.as_object_mut() {
                m.insert(k.clone(), value);
            }
        }
        Seg::Index(APPEND) => {
            if !cur.is_array() {
                *cur = Value::Array(Vec::new());
            }
            if let Some(a) = cur.as_array_mut() {
                a.push(value);
            }
        }
        Seg::Index(i) => {
            if let Some(slot) = cur.get_mut(*i) {
                *slot = value;
            }
        }
    }
}

fn remove_at(v: &mut Value, at: &[Seg]) {
    let Some((last, parents)) = at.split_last() else {
        return;
    };
    let mut cur = v;
    for s in parents {
        let next = match s {
            Seg::Key(k) => cur.get_mut(k.as_str()),
            Seg::Index(i) => cur.get_mut(*i),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(m)) => {
            m.remove(k);
        }
        (Seg::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
