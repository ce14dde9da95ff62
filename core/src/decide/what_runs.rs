//! What runs, not only what is declared: the objects beneath a managed workload (its ReplicaSets,
//! Jobs and Pods) and the objects beside it that steer it (autoscalers, disruption budgets, Pods a
//! managed Service or workload would select, a managed Service's endpoints).

use serde_json::Value;

use super::break_glass::{break_glass_change, new_object_window, under_window};
use super::{Ctx, Decision, Reason, SERVER_PATHS, deny_message, operational_paths};
use crate::config::Config;
use crate::diff::{FieldPath, Report, disallowed_changes_of};
use crate::exception;
use crate::identity::Identity;
use crate::object::{Fields, Object};
use crate::owner::OwnerRef;
use crate::review::{AdmissionRequest, Operation};
use crate::workload::{self, ControllerRef, Steered, Target};

/// An operation on a Pod that is not configuration: each is allowed on the Pods of managed
/// workloads unless the guard's config turns it off (`operational.pod*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodOperation {
    /// Deleting it: its controller makes a new one (a restart).
    Delete,
    /// `pods/eviction`, as `kubectl drain` does.
    Eviction,
    /// `exec`, `attach`, `port-forward`.
    Exec,
    /// `kubectl debug`: `pods/ephemeralcontainers`.
    Debug,
}

impl PodOperation {
    /// The operation `req` is, if it is one.
    pub fn of(req: &AdmissionRequest<'_>) -> Option<PodOperation> {
        if !req.resource.group.is_empty() || req.resource.resource != "pods" {
            return None;
        }
        match (req.operation, req.sub_resource.as_str()) {
            (Operation::Delete, "") => Some(PodOperation::Delete),
            (_, "eviction") => Some(PodOperation::Eviction),
            (Operation::Connect, "exec" | "attach" | "portforward") => Some(PodOperation::Exec),
            (_, "ephemeralcontainers") => Some(PodOperation::Debug),
            _ => None,
        }
    }

    /// The word recorded in the audit annotation `operational` and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PodOperation::Delete => "pod-delete",
            PodOperation::Eviction => "pod-eviction",
            PodOperation::Exec => "pod-exec",
            PodOperation::Debug => "pod-debug",
        }
    }

    /// Whether the config allows it.
    pub fn allowed(self, config: &Config) -> bool {
        let ops = &config.operational;
        match self {
            PodOperation::Delete => ops.pod_delete,
            PodOperation::Eviction => ops.pod_eviction,
            PodOperation::Exec => ops.pod_exec,
            PodOperation::Debug => ops.pod_debug,
        }
    }

    fn describe(self) -> (&'static str, &'static str) {
        match self {
            PodOperation::Delete => ("deleting", "podDelete"),
            PodOperation::Eviction => ("evicting", "podEviction"),
            PodOperation::Exec => ("exec, attach and port-forward into", "podExec"),
            PodOperation::Debug => ("debug containers in", "podDebug"),
        }
    }
}

/// The controller an object names in `metadata.ownerReferences`.
fn controller_in(o: &Object<'_>) -> Option<ControllerRef> {
    let meta = o.fields.get("metadata")?;
    if !meta.get().contains("\"ownerReferences\"") {
        return None;
    }
    let refs = Fields::parse(meta)?.get("ownerReferences")?.get();
    workload::controller_of(&serde_json::from_str::<Value>(refs).ok()?)
}

/// The managed workload the object's `ownerReferences` lead to (for an UPDATE, what they led to
/// before, or lead to after), through the cluster's workloads.
fn managed_ancestor(c: &Ctx<'_, '_>) -> Option<Steered> {
    ancestor(c).map(|(root, _)| root)
}

/// [`managed_ancestor`], and whether the object was beneath it before the request (its old
/// object's references lead there).
fn ancestor(c: &Ctx<'_, '_>) -> Option<(Steered, bool)> {
    let objects = match c.req.operation {
        Operation::Create => [(c.new, false), (None, false)],
        Operation::Delete => [(c.old, true), (None, true)],
        _ => [(c.old, true), (c.new, false)],
    };
    objects.into_iter().find_map(|(o, before)| {
        let r = controller_in(o?)?;
        Some((c.cluster.controlled(c.namespace, &r)?, before))
    })
}

/// Whether the requester is a controller the config trusts for one of `kinds` (`Kind.group`), with
/// its service account's groups.
fn trusted_controller<'k>(c: &Ctx<'_, '_>, mut kinds: impl Iterator<Item = &'k String>) -> bool {
    let user = &c.req.user;
    user.is_genuine_service_account()
        && kinds.any(|k| {
            c.config.workload_controllers.iter().any(|w| {
                crate::custody::kind_dot_group(&w.group, &w.kind) == *k
                    && w.users.contains(&user.username)
            })
        })
}

/// The first owner of a steered object the requester is not the agent for, or `None` when it
/// is the agent of every one.
fn foreign_owner<'s>(c: &Ctx<'_, '_>, steered: &'s Steered) -> Option<&'s OwnerRef> {
    steered
        .owners
        .iter()
        .find(|o| !c.agent_for(o, c.cluster.owner(o).as_ref()))
}

fn revision_of(c: &Ctx<'_, '_>, owner: &OwnerRef) -> Option<String> {
    c.cluster.owner(owner).and_then(|i| i.revision)
}

/// Objects beneath a managed workload (its ReplicaSets, Jobs, Pods: their `ownerReferences`
/// lead to it) run what it declares: only Kubernetes' controllers and the agent make them or
/// change what they run. Deleting and evicting a Pod, exec and debug stay operational, each a
/// config choice, and are recorded.
pub(super) fn descendant(c: &Ctx<'_, '_>) -> Option<Decision> {
    let (root, before) = ancestor(c)?;
    // An UPDATE that puts an object Git manages beneath a managed workload it was not beneath (a
    // controller `ownerReference` added or changed): the object is not Git's workload's to give
    // away, so its own owners decide (`managed_object`), not the workload's allowances (its
    // `allow: manual`, Pod operations, its trusted controllers), which would otherwise reach every
    // managed object a person points at it.
    if c.req.operation == Operation::Update && !before && !c.owners.is_empty() {
        return None;
    }
    let Some(owner) = foreign_owner(c, &root) else {
        return Some(Decision::allow(Reason::Agent));
    };
    if trusted_controller(c, root.chain.iter()) {
        return Some(Decision::allow(Reason::WorkloadController));
    }
    let descends = format!(
        "{what} runs what {root} declares (its ownerReferences lead there)",
        what = c.what()
    );
    if c.window_change && c.req.operation == Operation::Create {
        return Some(new_object_window(c, Some(owner)));
    }
    if c.window_change {
        return Some(break_glass_change(c, Some(owner)));
    }
    let operation = PodOperation::of(c.req);
    if let Some(op) = operation
        && op.allowed(c.config)
    {
        let mut d = Decision::allow(Reason::PodOperation);
        d.audit_annotations
            .push(("operational".into(), op.as_str().into()));
        d.audit_annotations.push((
            "descendant-of".into(),
            format!("{root} in {} (managed by {owner})", root.namespace),
        ));
        return Some(d);
    }
    if let Some(d) = under_window(c, Some(owner)) {
        return Some(d);
    }
    if exception::allows_manual(&root.exceptions) {
        return Some(Decision::allow(Reason::AllowManual));
    }
    let root_message = deny_message(
        &root.kind,
        &root.name,
        &root.namespace,
        owner,
        revision_of(c, owner).as_deref(),
    );
    let why = match (operation, c.req.operation) {
        _ if c.req.sub_resource == "status" => format!(
            "its status is its kubelet's: the Pods of {root} receive traffic by it (podIP, readiness), so nobody else writes it"
        ),
        (Some(op), _) => {
            let (doing, key) = op.describe();
            format!(
                "{doing} the Pods of {root} is turned off in the guard's config (operational.{key}: false)"
            )
        }
        (None, Operation::Create) => format!(
            "only Kubernetes' controllers make the objects beneath {root}, from its template in Git"
        ),
        (None, Operation::Delete) => format!(
            "deleting it changes what runs (only Kubernetes' controllers replace what {root} makes)"
        ),
        _ => {
            let Some(changed) = changed_paths(c) else {
                return Some(Decision::allow(Reason::Operational));
            };
            format!(
                "only Kubernetes' controllers and the agent change what it runs; this change touches {changed}"
            )
        }
    };
    let message = format!("{descends}, and {why}.\n{root_message}");
    Some(c.deny(Reason::Descendant, message, Some(owner)))
}

/// The fields of a StatefulSet's status that its controller builds Pods from: the Pods below
/// `currentReplicas` (or the partition) are made from the revision `currentRevision` names, the
/// others from `updateRevision`; `collisionCount` names new revisions.
const REVISION_STATUS: [&str; 5] = [
    "currentRevision",
    "updateRevision",
    "currentReplicas",
    "updatedReplicas",
    "collisionCount",
];

/// The status of a managed StatefulSet is not only a report: its controller makes Pods from the
/// revision `status.currentRevision` names (an older one, or a ControllerRevision made by hand).
/// Only Kubernetes' controller and the agent write those fields; the rest of the status stays
/// free, as for every workload.
pub(super) fn revision_status(c: &Ctx<'_, '_>) -> Option<Decision> {
    if c.req.sub_resource != "status"
        || c.req.resource.group != "apps"
        || c.req.resource.resource != "statefulsets"
        || c.req.operation != Operation::Update
    {
        return None;
    }
    let (kind, name, owners) = match managed_ancestor(c) {
        Some(root) => (root.kind, root.name, root.owners),
        None if !c.owners.is_empty() => (c.kind.to_string(), c.name.to_string(), c.owners.clone()),
        None => return Some(Decision::allow(Reason::Status)),
    };
    let Some(owner) = owners
        .iter()
        .find(|o| !c.agent_for(o, c.cluster.owner(o).as_ref()))
    else {
        return Some(Decision::allow(Reason::Agent));
    };
    let status = |o: Option<&Object<'_>>| -> Result<Value, ()> {
        match o.and_then(|o| o.fields.get("status")) {
            None => Ok(Value::Null),
            Some(raw) => serde_json::from_str(raw.get()).map_err(|_| ()),
        }
    };
    let changed: Vec<String> = match (status(c.old), status(c.new)) {
        (Ok(old), Ok(new)) => REVISION_STATUS
            .iter()
            .filter(|k| old.get(**k) != new.get(**k))
            .map(|k| format!("status.{k}"))
            .collect(),
        // What cannot be read cannot be shown to leave those fields alone.
        _ => vec!["status".to_string()],
    };
    if changed.is_empty() {
        return Some(Decision::allow(Reason::Status));
    }
    if exception::allows_manual(&c.old_ann) {
        return Some(Decision::allow(Reason::AllowManual));
    }
    if let Some(d) = under_window(c, Some(owner)) {
        return Some(d);
    }
    let message = format!(
        "{what}: this status write changes {fields}, which the StatefulSet controller builds Pods from (the revision each Pod gets, and how many get it), so only Kubernetes' controller and the agent write them: by hand they would run a revision Git no longer declares, or one made by hand.\n{root}",
        what = c.what(),
        fields = changed.join(", "),
        root = deny_message(
            &kind,
            &name,
            c.namespace,
            owner,
            revision_of(c, owner).as_deref(),
        ),
    );
    Some(c.deny(Reason::RevisionStatus, message, Some(owner)))
}

/// Whether `group`/`resource` has a `status.loadBalancer`: Services and Ingresses.
pub fn has_load_balancer(group: &str, resource: &str) -> bool {
    (group.is_empty() && resource == "services")
        || crate::ingress::is_ingress_resource(group, resource)
}

/// Whether the requester is a controller the config trusts for the load-balancer status of
/// `group`/`kind` (`loadBalancerControllers`), with its service account's groups. An Ingress is
/// the same object in either of its groups.
fn load_balancer_controller(c: &Ctx<'_, '_>) -> bool {
    let user = &c.req.user;
    let same_group = |g: &str| {
        g == c.group
            || (crate::ingress::is_ingress(g, c.kind)
                && crate::ingress::is_ingress(c.group, c.kind))
    };
    user.is_genuine_service_account()
        && c.config
            .load_balancer_controllers
            .iter()
            .any(|w| w.kind == c.kind && same_group(&w.group) && w.users.contains(&user.username))
}

/// A managed Service's or Ingress's `status.loadBalancer` is where its traffic arrives:
/// external-dns makes DNS records of it, and clients follow them. Only Kubernetes (the service
/// controller), the agent and the controllers the config trusts for the kind
/// (`loadBalancerControllers`: a cloud's, MetalLB's, an ingress controller) write it; the rest of
/// the status stays free.
pub(super) fn load_balancer_status(c: &Ctx<'_, '_>) -> Option<Decision> {
    if c.req.sub_resource != "status"
        || c.req.operation != Operation::Update
        || !has_load_balancer(&c.req.resource.group, &c.req.resource.resource)
    {
        return None;
    }
    if c.owners.is_empty() {
        return Some(Decision::allow(Reason::Status));
    }
    let Some(owner) = c
        .owners
        .iter()
        .find(|o| !c.agent_for(o, c.cluster.owner(o).as_ref()))
    else {
        return Some(Decision::allow(Reason::Agent));
    };
    let load_balancer = |o: Option<&Object<'_>>| -> Result<Value, ()> {
        let Some(raw) = o.and_then(|o| o.fields.get("status")) else {
            return Ok(Value::Null);
        };
        let status: Value = serde_json::from_str(raw.get()).map_err(|_| ())?;
        Ok(status.get("loadBalancer").cloned().unwrap_or(Value::Null))
    };
    // An empty `loadBalancer: {}` is what the API server defaults; the same as none.
    let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(|m| m.is_empty());
    let changed = match (load_balancer(c.old), load_balancer(c.new)) {
        (Ok(old), Ok(new)) => old != new && !(empty(&old) && empty(&new)),
        // What cannot be read cannot be shown to leave it alone.
        _ => true,
    };
    if !changed {
        return Some(Decision::allow(Reason::Status));
    }
    if load_balancer_controller(c) {
        return Some(Decision::allow(Reason::WorkloadController));
    }
    if exception::allows_manual(&c.old_ann) {
        return Some(Decision::allow(Reason::AllowManual));
    }
    if let Some(d) = under_window(c, Some(owner)) {
        return Some(d);
    }
    let rev = revision_of(c, owner)
        .map(|r| format!(" ({})", crate::owner::short_revision(&r)))
        .unwrap_or_default();
    let message = format!(
        "{what}: this status write changes status.loadBalancer, which says where its traffic arrives (external-dns makes DNS records of it, and clients follow them), so only Kubernetes, the agent and the load-balancer controllers the guard trusts write it on a GitOps-managed {kind}.\n{kind_lower}/{name}{in_ns} is managed by {owner}{rev}. If a controller of yours writes it, list its service account under loadBalancerControllers (kind {kind}) in the guard's config.",
        what = c.what(),
        kind = c.kind,
        kind_lower = c.kind.to_lowercase(),
        name = c.name,
        in_ns = if c.namespace.is_empty() {
            String::new()
        } else {
            format!(" in {}", c.namespace)
        },
    );
    Some(c.deny(Reason::LoadBalancerStatus, message, Some(owner)))
}

/// What an UPDATE of a descendant changes beyond what the API server keeps, operational changes
/// and annotations other than the guard's; `None` when nothing else. The guard's own keys
/// (`allow`, `allow-fields`) are exceptions decided in Git: set by hand on a ReplicaSet they
/// would widen what people may do to it (an autoscaler for it) and to what lies beneath.
fn changed_paths(c: &Ctx<'_, '_>) -> Option<String> {
    static ANNOTATIONS: std::sync::LazyLock<FieldPath> =
        std::sync::LazyLock::new(|| FieldPath::keys(&["metadata", "annotations"]));
    let (fo, fnew) = c.field_sets();
    let mut allowed: Vec<&FieldPath> = SERVER_PATHS.iter().collect();
    allowed.extend(operational_paths(c.config, c.group, c.kind));
    allowed.push(&ANNOTATIONS);
    let mut changed = disallowed_changes_of(fo, fnew, &allowed, Report::All(8));
    changed.extend(
        exception::changed_guard_annotations(&c.old_ann, &c.new_ann)
            .into_iter()
            .map(|k| format!("metadata.annotations['{k}']")),
    );
    (!changed.is_empty()).then(|| changed.join(", "))
}

/// Whether an exception from Git on the steered object lets anyone steer it this way.
fn excepted(steered: &Steered, target: &Target) -> bool {
    if exception::allows_manual(&steered.exceptions) {
        return true;
    }
    let Target::Workload {
        field: Some(field), ..
    } = target
    else {
        return false;
    };
    exception::allow_fields(&steered.exceptions)
        .is_ok_and(|list| list.iter().any(|p| p.to_string() == *field))
}

/// An object that is not from Git but steers one that is: an autoscaler or VPA that targets a
/// managed workload, a disruption budget that selects its Pods, a Pod (or a workload's Pods) that
/// a managed Service or workload would select, endpoints of a managed Service. It must come from
/// Git too, or fall under an exception from Git on what it steers.
pub(super) fn neighbour(c: &Ctx<'_, '_>) -> Option<Decision> {
    if !matches!(c.req.operation, Operation::Create | Operation::Update)
        || c.scale
        || !c.req.sub_resource.is_empty()
        || c.identity == Identity::Agent
    {
        return None;
    }
    let new = c.new?;
    let spec = match new.fields.get("spec") {
        None => Value::Null,
        Some(raw) => match serde_json::from_str::<Value>(raw.get()) {
            Ok(v) => v,
            // Deeper than serde_json reads (128 levels): not a shape any steering kind has, but
            // what cannot be read cannot be shown to steer nothing.
            Err(_) if workload::steers(c.group, c.kind, new, &Value::Null).is_some() => {
                let message = format!(
                    "{}: its spec cannot be read, so the guard cannot tell what it steers",
                    c.what()
                );
                return Some(c.deny(Reason::Neighbour, message, None));
            }
            Err(_) => return None,
        },
    };
    let controller = controller_in(new);
    let targets: Vec<Target> = workload::steers(c.group, c.kind, new, &spec)
        .into_iter()
        .chain(workload::adopted(
            c.group,
            c.kind,
            new,
            controller.is_some(),
        ))
        .collect();
    if targets.is_empty() {
        return None;
    }
    // What a trusted controller makes beside what it controls (KEDA's HPA for a ScaledObject).
    if let Some(own) = &controller
        && trusted_controller(
            c,
            std::iter::once(&crate::custody::kind_dot_group(&own.group, &own.kind)),
        )
    {
        return Some(Decision::allow(Reason::WorkloadController));
    }
    let (target, first, owner) = targets.iter().find_map(|target| {
        c.cluster
            .steered(c.namespace, target)
            .into_iter()
            .filter(|s| !excepted(s, target))
            .find_map(|s| {
                let owner = foreign_owner(c, &s)?.clone();
                Some((target, s, owner))
            })
    })?;
    let (first, owner) = (&first, &owner);
    if c.window_change {
        return Some(break_glass_change(c, Some(owner)));
    }
    if let Some(d) = under_window(c, Some(owner)) {
        return Some(d);
    }
    let managed = format!(
        "{first} in {ns}, which is managed by {owner}{rev}",
        ns = first.namespace,
        rev = revision_of(c, owner)
            .map(|r| format!(" ({})", crate::owner::short_revision(&r)))
            .unwrap_or_default()
    );
    let what = c.what();
    let (how, exception_hint) = match target {
        Target::Workload {
            field: Some(field), ..
        } => (
            format!("would change {field} of {managed}"),
            format!(" or allow it there: gitops-guard.dev/allow-fields: {field} on {first} in Git"),
        ),
        Target::Workload { .. } => (format!("would change the Pods of {managed}"), String::new()),
        Target::Pods(_) if first.kind == "Service" => (
            format!("carries labels that {managed} selects: it would receive its traffic"),
            String::new(),
        ),
        Target::Pods(_) => (
            format!("carries labels that {managed} selects: it would adopt those Pods"),
            String::new(),
        ),
        Target::Selected(_) => (
            format!("selects the Pods of {managed}: it decides when they may be evicted"),
            String::new(),
        ),
        Target::Service(_) => (
            format!("sets the endpoints of {managed}: it would send its traffic elsewhere"),
            String::new(),
        ),
        Target::Adopted { .. } => (
            format!(
                "carries labels that {managed} selects, and no controller: {first} would adopt it as its own{}",
                if c.kind == "ControllerRevision" {
                    " (a StatefulSet builds Pods from the revision its status names)"
                } else {
                    " and run its Pods"
                }
            ),
            String::new(),
        ),
    };
    let ns_flag = c.ns_flag();
    let remove = match c.req.operation {
        Operation::Update => format!(
            ", or remove it: kubectl delete {}/{}{ns_flag}",
            c.kind.to_lowercase(),
            c.name
        ),
        _ => String::new(),
    };
    let message = format!(
        "{what} {how}. What steers a GitOps-managed object must come from Git too.\nAdd the {kind} to Git beside {first} (kubectl gitops status {first}{ns_flag} shows where that lives){exception_hint}{remove}",
        kind = c.kind,
    );
    Some(c.deny(Reason::Neighbour, message, Some(owner)))
}

/// A hand-made Ingress that claims a host a GitOps-managed Ingress serves (in any namespace):
/// ingress controllers merge Ingresses by host, so it would steer part of that host's traffic,
/// and external-dns and cert-manager act on its hosts. What counts as the same host is
/// [`crate::ingress`]'s to say (paths are not compared). It must come from Git too, or fall under
/// `gitops-guard.dev/allow: manual` from Git on the managed Ingress; a controller the config
/// trusts for what it controls (`workloadControllers`: cert-manager's HTTP-01 solver Ingress
/// beneath a Challenge) makes its own.
pub(super) fn host_claim(c: &Ctx<'_, '_>) -> Option<Decision> {
    if !matches!(c.req.operation, Operation::Create | Operation::Update)
        || c.scale
        || !c.req.sub_resource.is_empty()
        || c.identity == Identity::Agent
        || !crate::ingress::is_ingress(c.group, c.kind)
    {
        return None;
    }
    let new = c.new?;
    let spec = match new.fields.get("spec") {
        None => Value::Null,
        Some(raw) => match serde_json::from_str::<Value>(raw.get()) {
            Ok(v) => v,
            Err(_) => {
                let message = format!(
                    "{}: its spec cannot be read, so the guard cannot tell which hosts it claims",
                    c.what()
                );
                return Some(c.deny(Reason::Neighbour, message, None));
            }
        },
    };
    let hosts = crate::ingress::hosts(&spec);
    if hosts.is_empty() {
        return None;
    }
    if let Some(own) = controller_in(new)
        && trusted_controller(
            c,
            std::iter::once(&crate::custody::kind_dot_group(&own.group, &own.kind)),
        )
    {
        return Some(Decision::allow(Reason::WorkloadController));
    }
    let (claim, owner) = c
        .cluster
        .claims((c.namespace, c.name), &hosts)
        .into_iter()
        .filter(|claim| !exception::allows_manual(&claim.ingress.exceptions))
        .find_map(|claim| {
            let owner = foreign_owner(c, &claim.ingress)?.clone();
            Some((claim, owner))
        })?;
    let (managed, owner) = (&claim.ingress, &owner);
    if c.window_change {
        return Some(break_glass_change(c, Some(owner)));
    }
    if let Some(d) = under_window(c, Some(owner)) {
        return Some(d);
    }
    let rev = revision_of(c, owner)
        .map(|r| format!(" ({})", crate::owner::short_revision(&r)))
        .unwrap_or_default();
    let ns_flag = c.ns_flag();
    let remove = match c.req.operation {
        Operation::Update => format!(", or remove it: kubectl delete ingress/{}{ns_flag}", c.name),
        _ => String::new(),
    };
    let message = format!(
        "{what} claims {host}, which {managed} in {mns} serves, managed by {owner}{rev}: ingress controllers merge Ingresses by host (whatever the paths), so it would steer part of that host's traffic, and external-dns and cert-manager act on it. What steers a GitOps-managed object must come from Git too.\nAdd the Ingress to Git beside {managed} (kubectl gitops status {managed} -n {mns} shows where that lives), or use a host no Ingress from Git serves{remove}",
        what = c.what(),
        host = match (&claim.by, &claim.host) {
            (crate::ingress::Host::Default, _) => claim.by.to_string(),
            (by, host) if by == host => format!("the host {host}"),
            (by, host) => format!("the host {by} (overlapping {host})"),
        },
        mns = managed.namespace,
    );
    Some(c.deny(Reason::Neighbour, message, Some(owner)))
}

#[cfg(test)]
mod tests;
