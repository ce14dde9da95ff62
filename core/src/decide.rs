//! The one decision: may this request change this object?

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::Value;

use crate::config::{Config, Mode};
use crate::custody::{self, CustodyInfo, ObjectRef};
use crate::diff::{FieldPath, Report, disallowed_changes_of};
use crate::exception;
use crate::identity::Identity;
use crate::ingress::Claim;
use crate::object::{Fields, Object};
use crate::owner::{NamespaceInfo, OwnerInfo, OwnerKind, OwnerRef, owners_of, short_revision};
use crate::review::{AdmissionRequest, Operation};
use crate::workload::{ControllerRef, Steered, Target};

use break_glass::{break_glass_change, new_object_window, under_window};
pub use what_runs::PodOperation;

/// What the guard knows about the cluster: owners and namespaces (the webhook's watch caches).
pub trait Lookup {
    fn owner(&self, owner: &OwnerRef) -> Option<OwnerInfo>;
    fn namespace(&self, name: &str) -> Option<NamespaceInfo>;
    /// What an owner or source object says about its own custody (who applied it, what it
    /// reads). `None`: the guard has not seen it, so it does not trace back to Git.
    fn custody(&self, _object: &ObjectRef) -> Option<CustodyInfo> {
        None
    }
    /// Whether the API server serves an owner or source kind (so its controller is installed).
    fn serves(&self, _kind: &custody::Kind) -> bool {
        true
    }
    /// The owners and sources that live in `namespace` or hold objects in it.
    fn holders(&self, _namespace: &str) -> Vec<ObjectRef> {
        Vec::new()
    }
    /// The owners that apply what a ConfigMap or Secret holds (`valuesFrom`, `substituteFrom`).
    fn readers(&self, _input: &ObjectRef) -> Vec<ObjectRef> {
        Vec::new()
    }
    /// Whether `group`/`resource` has a status subresource (API discovery). Where it has none,
    /// `status` is an ordinary field that a change to counts. Default: it has one.
    fn status_is_subresource(&self, _group: &str, _resource: &str) -> bool {
        true
    }
    /// The GitOps-managed workload that an object's controller (its `ownerReferences`) leads to,
    /// through the workloads the guard knows (a Pod's ReplicaSet, that ReplicaSet's Deployment).
    fn controlled(&self, _namespace: &str, _controller: &ControllerRef) -> Option<Steered> {
        None
    }
    /// The GitOps-managed workloads and Services in `namespace` that `target` would steer.
    fn steered(&self, _namespace: &str, _target: &Target) -> Vec<Steered> {
        Vec::new()
    }
    /// The GitOps-managed Ingresses, in every namespace, with a host that overlaps one of
    /// `hosts` (`crate::ingress::Host::overlaps`), but the Ingress `(namespace, name)` itself.
    fn claims(&self, _ingress: (&str, &str), _hosts: &[crate::ingress::Host]) -> Vec<Claim> {
        Vec::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Allowed, with warnings for the person (dry-run, audit mode, break-glass).
    Warn,
    Deny,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Warn => "warn",
            Verdict::Deny => "deny",
        }
    }
}

/// Why: one stable word per rule, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Kubernetes' own components.
    System,
    /// A status subresource write.
    Status,
    /// Another subresource (eviction, binding, …): not configuration.
    Subresource,
    /// CONNECT (exec, attach, port-forward): not a change.
    Connect,
    Unmanaged,
    /// The object or its namespace is being deleted.
    Terminating,
    Agent,
    /// Only operational fields changed (reconcile request, suspend, refresh, rollout restart), or
    /// nothing the API server does not maintain itself.
    Operational,
    /// `gitops-guard.dev/allow: manual`, from Git.
    AllowManual,
    /// Only fields listed in `gitops-guard.dev/allow-fields`, from Git.
    AllowFields,
    /// Inside a break-glass window.
    BreakGlass,
    /// A break-glass window opened, extended or forged against the rules.
    BreakGlassRefused,
    /// Would be denied, but it is a dry run.
    DryRun,
    /// Would be denied, but the mode is audit.
    Audit,
    /// Denied: a person (or CI) changing a GitOps-managed object.
    Managed,
    /// A namespace the guard never judges (`excludedNamespaces`).
    Excluded,
    /// A bootstrap root created while it did not exist.
    Bootstrap,
    /// Denied: an owner or source changed by someone other than its agent.
    Custody,
    /// Denied: the status of an owner or source written by someone other than its agent.
    AgentStatus,
    /// Denied: the agent creating or moving an object for an owner that does not come from Git.
    Unrooted,
    /// Denied: an Argo CD operation carrying more than the Application declares.
    ArgoOperation,
    /// Denied: a Namespace's `kubernetes.io/metadata.name` label that is not its name.
    NamespaceLabel,
    /// Denied: deleting a namespace that holds managed objects.
    HoldsManaged,
    /// Denied: `metadata.managedFields` rewritten by someone other than the agent.
    ManagedFields,
    /// Denied: an exception (`allow`, `allow-fields`) set by hand on an object not managed yet.
    PlantedException,
    /// Denied: a change to what an object beneath a managed workload runs (its Pods, ReplicaSets).
    Descendant,
    /// Denied: an object not from Git that steers a managed one (an autoscaler, a Pod a managed
    /// Service selects, a disruption budget).
    Neighbour,
    /// Denied: a StatefulSet's status fields that say which revision its Pods are made from,
    /// written by someone other than Kubernetes or the agent.
    RevisionStatus,
    /// Denied: `status.loadBalancer` of a managed Service or Ingress written by someone other
    /// than Kubernetes, the agent or a controller the config trusts (`loadBalancerControllers`).
    LoadBalancerStatus,
    /// Denied: a status subresource write that changes more than the status (metadata the API
    /// server would keep), by someone other than Kubernetes or an agent.
    StatusWrite,
    /// Deleting, evicting, exec or debug of a Pod of a managed workload: operational, recorded.
    PodOperation,
    /// A controller the config trusts for a custom workload kind (`workloadControllers`), acting on
    /// what it makes beneath or beside an object of that kind; or for the load-balancer status of
    /// a kind (`loadBalancerControllers`).
    WorkloadController,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::System => "system",
            Reason::Status => "status",
            Reason::Subresource => "subresource",
            Reason::Connect => "connect",
            Reason::Unmanaged => "unmanaged",
            Reason::Terminating => "terminating",
            Reason::Agent => "agent",
            Reason::Operational => "operational",
            Reason::AllowManual => "allow-manual",
            Reason::AllowFields => "allow-fields",
            Reason::BreakGlass => "break-glass",
            Reason::BreakGlassRefused => "break-glass-refused",
            Reason::DryRun => "dry-run",
            Reason::Audit => "audit",
            Reason::Managed => "managed",
            Reason::Excluded => "excluded",
            Reason::Bootstrap => "bootstrap",
            Reason::Custody => "custody",
            Reason::AgentStatus => "agent-status",
            Reason::Unrooted => "unrooted",
            Reason::ArgoOperation => "argocd-operation",
            Reason::NamespaceLabel => "namespace-label",
            Reason::HoldsManaged => "holds-managed",
            Reason::ManagedFields => "managed-fields",
            Reason::PlantedException => "planted-exception",
            Reason::Descendant => "descendant",
            Reason::Neighbour => "neighbour",
            Reason::RevisionStatus => "revision-status",
            Reason::LoadBalancerStatus => "load-balancer-status",
            Reason::StatusWrite => "status-write",
            Reason::PodOperation => "pod-operation",
            Reason::WorkloadController => "workload-controller",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: Reason,
    /// The denial message (for `Warn` after dry-run or audit: the message it would have been).
    pub message: Option<String>,
    pub warnings: Vec<String>,
    /// Keys without prefix; the API server prefixes them with the webhook's name.
    pub audit_annotations: Vec<(String, String)>,
    /// The owner named in the message.
    pub owner: Option<OwnerRef>,
    /// A change under a break-glass window: the text of a Kubernetes Event to record on the object.
    pub event: Option<String>,
}

impl Decision {
    fn allow(reason: Reason) -> Decision {
        Decision {
            verdict: Verdict::Allow,
            reason,
            message: None,
            warnings: Vec::new(),
            audit_annotations: Vec::new(),
            owner: None,
            event: None,
        }
    }

    pub fn allowed(&self) -> bool {
        self.verdict != Verdict::Deny
    }
}

/// Server-maintained fields that never count as a change.
const SERVER_FIELDS: &[&[&str]] = &[
    &["metadata", "resourceVersion"],
    &["metadata", "generation"],
    &["metadata", "managedFields"],
    &["metadata", "uid"],
    &["metadata", "creationTimestamp"],
    &["metadata", "selfLink"],
    &["metadata", "deletionTimestamp"],
    &["metadata", "deletionGracePeriodSeconds"],
    &["status"],
];

/// `status`, which counts as a change where it is no subresource.
static STATUS_PATH: LazyLock<FieldPath> = LazyLock::new(|| FieldPath::keys(&["status"]));

/// Kinds that are run-time records, not configuration: `enforce: all` does not cover them.
fn is_runtime_record(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("", "Event") | ("events.k8s.io", "Event") | ("coordination.k8s.io", "Lease")
    ) || matches!(group, "authorization.k8s.io" | "authentication.k8s.io")
}

/// [`SERVER_FIELDS`] as patterns, built once.
static SERVER_PATHS: LazyLock<Vec<FieldPath>> =
    LazyLock::new(|| SERVER_FIELDS.iter().map(|p| FieldPath::keys(p)).collect());

/// The operational paths, built once; [`operational_paths`] picks those that apply.
struct OperationalPaths {
    flux_reconcile: Vec<FieldPath>,
    flux_suspend: FieldPath,
    argocd_refresh: Vec<FieldPath>,
    argocd_operation: FieldPath,
    rollout_restart: FieldPath,
}

static OPERATIONAL_PATHS: LazyLock<OperationalPaths> = LazyLock::new(|| {
    let key = |keys: &[&str], last: &str| {
        let mut p = FieldPath::keys(keys);
        p.0.push(crate::diff::PatSeg::Key(last.to_string()));
        p
    };
    let annotation = |last: &str| key(&["metadata", "annotations"], last);
    OperationalPaths {
        flux_reconcile: [
            "reconcile.fluxcd.io/requestedAt",
            "reconcile.fluxcd.io/forceAt",
            "reconcile.fluxcd.io/resetAt",
        ]
        .into_iter()
        .map(annotation)
        .collect(),
        flux_suspend: FieldPath::keys(&["spec", "suspend"]),
        argocd_refresh: [
            "argocd.argoproj.io/refresh",
            // Argo CD 3's source hydrator asks for a hydration beside a refresh.
            "argocd.argoproj.io/hydrate",
            // argocd-notifications-controller's record of what it has sent.
            "notified.notifications.argoproj.io",
        ]
        .into_iter()
        .map(annotation)
        .collect(),
        argocd_operation: FieldPath::keys(&["operation"]),
        rollout_restart: key(
            &["spec", "template", "metadata", "annotations"],
            "kubectl.kubernetes.io/restartedAt",
        ),
    }
});

/// Operational changes that are not configuration, as configured.
fn operational_paths(config: &Config, group: &str, kind: &str) -> Vec<&'static FieldPath> {
    let ops = &config.operational;
    let paths = &*OPERATIONAL_PATHS;
    let mut out = Vec::new();
    if ops.flux_reconcile && group.ends_with("fluxcd.io") {
        out.extend(&paths.flux_reconcile);
    }
    if ops.flux_suspend && group.ends_with(".toolkit.fluxcd.io") {
        out.push(&paths.flux_suspend);
    }
    if ops.argocd_refresh && group == "argoproj.io" {
        out.extend(&paths.argocd_refresh);
    }
    if ops.argocd_operation && group == "argoproj.io" && kind == "Application" {
        out.push(&paths.argocd_operation);
    }
    if ops.rollout_restart {
        out.push(&paths.rollout_restart);
    }
    out
}

/// Whether a change at `path` of an object of `group`/`kind` is operational as configured
/// (a reconcile request, suspend, refresh, `kubectl rollout restart`): the guard lets anyone make
/// it, so it is not drift from Git either.
pub fn is_operational(config: &Config, group: &str, kind: &str, path: &[crate::diff::Seg]) -> bool {
    operational_paths(config, group, kind)
        .iter()
        .any(|p| p.covers(path))
}

/// The denial message: what manages the object, at which revision, and the command to use instead.
pub fn deny_message(
    kind: &str,
    name: &str,
    namespace: &str,
    owner: &OwnerRef,
    revision: Option<&str>,
) -> String {
    let kind = kind.to_lowercase();
    let revision = revision
        .map(|r| format!(" ({})", short_revision(r)))
        .unwrap_or_default();
    if namespace.is_empty() {
        format!(
            "{kind}/{name} is managed by {owner}{revision}.\nChange it in Git instead: kubectl gitops edit {kind}/{name}"
        )
    } else {
        format!(
            "{kind}/{name} in {namespace} is managed by {owner}{revision}.\nChange it in Git instead: kubectl gitops edit {kind}/{name} -n {namespace}"
        )
    }
}

/// The guard's own annotations (`gitops-guard.dev/…`), the only ones [`exception`] reads.
fn guard_annotations(o: Option<&Object<'_>>) -> BTreeMap<String, String> {
    let Some(o) = o else {
        return BTreeMap::new();
    };
    o.annotations
        .keys()
        .filter(|k| k.starts_with(exception::PREFIX))
        .filter_map(|k| Some((k.to_string(), o.annotation(k)?.to_string())))
        .collect()
}

fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}

/// Requests allowed whatever the objects say: Kubernetes itself, CONNECT, subresources other than
/// scale, and status writes of kinds whose status no agent trusts.
fn decided_without_objects(req: &AdmissionRequest<'_>, config: &Config) -> Option<Reason> {
    if Identity::of(&req.user, config) == Identity::System {
        return Some(Reason::System);
    }
    // Pod operations the config turns off are decided with the Pod (see `needs_parent`).
    if PodOperation::of(req).is_some_and(|op| !req.sub_resource.is_empty() && !op.allowed(config)) {
        return None;
    }
    if req.operation == Operation::Connect {
        return Some(Reason::Connect);
    }
    match req.sub_resource.as_str() {
        "" | "scale" => None,
        "status"
            if custody::kind_of_resource(&req.resource.group, &req.resource.resource).is_some() =>
        {
            None
        }
        // A Pod's status says where its Service sends traffic (`podIP`, readiness): its kubelet's.
        "status" if req.resource.group.is_empty() && req.resource.resource == "pods" => None,
        // A StatefulSet's says which revision its Pods are made from.
        "status" if req.resource.group == "apps" && req.resource.resource == "statefulsets" => None,
        // A Service's or Ingress's says where its traffic arrives (`status.loadBalancer`).
        "status" if what_runs::has_load_balancer(&req.resource.group, &req.resource.resource) => {
            None
        }
        // What else a status or finalize write changes, the API server may keep (see
        // `status_write`).
        _ if keeps_metadata(req) && !beyond_status(req).is_empty() => None,
        "status" => Some(Reason::Status),
        _ => Some(Reason::Subresource),
    }
}

/// A write whose `metadata` the API server may keep besides what the subresource is for: a
/// status write (before Kubernetes 1.22), and a Namespace's `finalize` (on every version: it
/// resets only the status, so labels and annotations sent with `spec.finalizers` are kept).
fn keeps_metadata(req: &AdmissionRequest<'_>) -> bool {
    match req.sub_resource.as_str() {
        "status" => true,
        "finalize" => req.resource.group.is_empty() && req.resource.resource == "namespaces",
        _ => false,
    }
}

/// What a status subresource write changes in `metadata` besides the fields the API server keeps
/// (field paths, at most 8): labels, annotations, finalizers, owner references. API servers before
/// 1.22 keep much of `metadata` from a status write (a Deployment's annotations and finalizers, a
/// Service's or Namespace's labels and annotations too); later ones drop it. The rest of the
/// object (its spec) every status write resets before admission.
fn beyond_status(req: &AdmissionRequest<'_>) -> Vec<String> {
    static NONE: LazyLock<Fields<'static>> = LazyLock::new(Fields::default);
    let none: &Fields<'_> = &NONE;
    let old = req.old_object.as_ref().map_or(none, |o| &o.fields);
    let new = req.object.as_ref().map_or(none, |o| &o.fields);
    let rest: Vec<FieldPath> = old
        .0
        .iter()
        .chain(&new.0)
        .map(|(k, _)| k.as_ref())
        .filter(|k| *k != "metadata")
        .map(|k| FieldPath::keys(&[k]))
        .collect();
    let allowed: Vec<&FieldPath> = SERVER_PATHS.iter().chain(&rest).collect();
    disallowed_changes_of(old, new, &allowed, Report::All(8))
}

/// Whether deciding `req` needs the object behind a subresource request (which the caller looks
/// up): a `<resource>/scale` request (the Scale object carries no labels), or exec, eviction or
/// debug of a Pod while the config turns that off (the request carries options, not the Pod).
/// Kubernetes' own components (the HPA scales every few seconds) are decided without it, so they
/// cost no API call.
pub fn needs_parent(req: &AdmissionRequest<'_>, config: &Config) -> bool {
    (req.sub_resource == "scale" || PodOperation::of(req).is_some() && !req.sub_resource.is_empty())
        && decided_without_objects(req, config).is_none()
}

/// Whether deciding `req` needs the live object (which the caller reads from the API server and
/// passes to [`decide`] as `live`): API servers before 1.23 send the old object of an UPDATE
/// without `metadata.managedFields` (kubernetes/kubernetes#106195), and the guard needs that
/// record to tell a rewrite of it, and to date a break-glass window. Only for someone other than
/// the agents changing a GitOps-managed object, an owner or a source.
pub fn needs_live_object(
    req: &AdmissionRequest<'_>,
    config: &Config,
    cluster: &dyn Lookup,
) -> bool {
    let (Some(old), Some(new)) = (req.old_object.as_ref(), req.object.as_ref()) else {
        return false;
    };
    if req.operation != Operation::Update
        || !req.sub_resource.is_empty()
        || crate::managed_fields::record_of(old).is_some()
        || decided_without_objects(req, config).is_some()
        || Identity::of(&req.user, config) != Identity::Other
    {
        return false;
    }
    let (group, kind) = (req.resource.group.as_str(), req.kind.kind.as_str());
    custody::kind_of(group, kind).is_some()
        || !owners_of(old, group, kind, config).is_empty()
        || !owners_of(new, group, kind, config).is_empty()
        || (!req.namespace.is_empty()
            && cluster
                .namespace(&req.namespace)
                .is_some_and(|n| n.enforce_all))
}

/// Everything the rules read about one request, worked out once.
struct Ctx<'r, 'a> {
    req: &'r AdmissionRequest<'a>,
    config: &'r Config,
    cluster: &'r dyn Lookup,
    now: jiff::Timestamp,
    identity: Identity,
    scale: bool,
    /// Decided with the parent the caller read ([`needs_parent`]): `old` and `new` are it.
    parent: bool,
    /// The object as the API server has it now, read by the caller when the review's old object
    /// lacks `metadata.managedFields` ([`needs_live_object`]).
    live: Option<&'r Object<'a>>,
    /// The objects that say who manages the resource (for scale: the parent, twice).
    old: Option<&'r Object<'a>>,
    new: Option<&'r Object<'a>>,
    group: &'r str,
    kind: &'r str,
    name: &'r str,
    /// `""` for cluster-scoped objects, including a Namespace itself.
    namespace: &'r str,
    is_namespace: bool,
    /// The owner or source kind this is, if it is one.
    custody: Option<&'static custody::Kind>,
    /// Who the objects say manages them (old and new on UPDATE), or, for a ConfigMap or Secret
    /// nobody applies, the owners that read it.
    owners: Vec<OwnerRef>,
    /// Of those, the owners that only read it.
    readers: Vec<OwnerRef>,
    ns_info: NamespaceInfo,
    member: bool,
    old_ann: BTreeMap<String, String>,
    new_ann: BTreeMap<String, String>,
    /// The request opens, changes or closes a break-glass window.
    window_change: bool,
}

/// One rule: a decision, or `None` to leave the request to the next rule.
type Rule = fn(&Ctx<'_, '_>) -> Option<Decision>;

/// The rules in the order they are asked; the first that decides, decides.
const RULES: &[(&str, Rule)] = &[
    ("excluded namespaces", excluded_namespace),
    ("what a status write changes besides status", status_write),
    ("status agents trust", agent_status),
    ("terminating", terminating),
    ("namespace objects", namespace_object),
    ("owners and sources", custody_kind),
    ("an owner's own controller", own_controller),
    (
        "a StatefulSet's revision status",
        what_runs::revision_status,
    ),
    (
        "a Service's or Ingress's load-balancer status",
        what_runs::load_balancer_status,
    ),
    ("beneath a managed workload", what_runs::descendant),
    ("GitOps-managed objects", managed_object),
    ("steering a managed object", what_runs::neighbour),
    ("claiming a managed Ingress's host", what_runs::host_claim),
    ("exceptions set by hand", planted_exception),
];

/// Decides one admission request.
///
/// `live` is the object as the API server has it, which the webhook reads when the review does not
/// say enough: the object behind a `<resource>/scale` request ([`needs_parent`]: the Scale
/// object carries no labels), or the object an UPDATE changes when the review's old object lacks
/// `metadata.managedFields` ([`needs_live_object`]). `now` is for break-glass windows.
pub fn decide(
    req: &AdmissionRequest<'_>,
    live: Option<&Object<'_>>,
    config: &Config,
    cluster: &dyn Lookup,
    now: jiff::Timestamp,
) -> Decision {
    if let Some(reason) = decided_without_objects(req, config) {
        let mut d = Decision::allow(reason);
        if let Some(op) = PodOperation::of(req).filter(|_| reason != Reason::System) {
            d.audit_annotations
                .push(("operational".into(), op.as_str().into()));
        }
        return d;
    }
    let scale = req.sub_resource == "scale";
    let parent = needs_parent(req, config);
    let (old, new) = if parent {
        match live {
            Some(p) => (Some(p), Some(p)),
            None => return Decision::allow(Reason::Unmanaged),
        }
    } else {
        (req.old_object.as_ref(), req.object.as_ref())
    };
    let live = if parent { None } else { live };
    let ctx = Ctx::new(req, old, new, live, scale, parent, config, cluster, now);
    RULES
        .iter()
        .find_map(|(_, rule)| rule(&ctx))
        .unwrap_or_else(|| Decision::allow(Reason::Unmanaged))
}

impl<'r, 'a> Ctx<'r, 'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        req: &'r AdmissionRequest<'a>,
        old: Option<&'r Object<'a>>,
        new: Option<&'r Object<'a>>,
        live: Option<&'r Object<'a>>,
        scale: bool,
        parent: bool,
        config: &'r Config,
        cluster: &'r dyn Lookup,
        now: jiff::Timestamp,
    ) -> Self {
        let group = req.resource.group.as_str();
        let kind = if parent {
            old.map(|p| p.kind.as_str()).unwrap_or_default()
        } else {
            req.kind.kind.as_str()
        };
        // For a Namespace object the API server sends its own name as the request's namespace;
        // the object itself is cluster-scoped.
        let is_namespace = group.is_empty() && kind == "Namespace";
        let namespace = if is_namespace {
            ""
        } else {
            req.namespace.as_str()
        };
        let mut owners: Vec<OwnerRef> = Vec::new();
        let mut add_owners = |o: Option<&Object<'_>>| {
            if let Some(o) = o {
                owners.extend(owners_of(o, group, kind, config));
            }
        };
        match req.operation {
            Operation::Create => add_owners(new),
            Operation::Delete => add_owners(old),
            Operation::Update | Operation::Connect => {
                add_owners(old);
                add_owners(new);
            }
        }
        // A ConfigMap or Secret nobody applies, whose content an owner applies, is managed by it.
        let mut readers = Vec::new();
        if owners.is_empty() && group.is_empty() && matches!(kind, "ConfigMap" | "Secret") {
            let input = ObjectRef::new(kind, namespace, req.object_name());
            readers = cluster
                .readers(&input)
                .iter()
                .filter_map(ObjectRef::as_owner)
                .collect();
            owners.extend(readers.iter().cloned());
        }
        owners.sort();
        owners.dedup();
        let ns_info = if req.namespace.is_empty() {
            NamespaceInfo::default()
        } else {
            cluster.namespace(&req.namespace).unwrap_or_default()
        };
        if owners.is_empty()
            && ns_info.enforce_all
            && !is_runtime_record(group, kind)
            && !is_namespace
        {
            owners.push(OwnerRef {
                kind: OwnerKind::Namespace,
                namespace: namespace.to_string(),
                name: namespace.to_string(),
            });
        }
        let old_ann = guard_annotations(if req.operation == Operation::Create {
            None
        } else {
            old
        });
        let new_ann = guard_annotations(if req.operation == Operation::Delete {
            old
        } else {
            new
        });
        let window_change = !scale
            && matches!(req.operation, Operation::Update | Operation::Create)
            && exception::BREAK_GLASS_KEYS
                .iter()
                .any(|k| old_ann.get(*k) != new_ann.get(*k));
        let mut identity = Identity::of(&req.user, config);
        // A controller counts only while its kinds are served (it is installed).
        if let Some((_, controller)) = crate::identity::service_account(&req.user.username) {
            let installed =
                |agent| custody::controller_installed(agent, controller, |k| cluster.serves(k));
            identity = match identity {
                Identity::FluxController if !installed(custody::Agent::Flux) => Identity::Other,
                Identity::ArgoController if !installed(custody::Agent::ArgoCd) => Identity::Other,
                other => other,
            };
        }
        Ctx {
            req,
            config,
            cluster,
            now,
            identity,
            scale,
            parent,
            live,
            old,
            new,
            group,
            kind,
            name: req.object_name(),
            namespace,
            is_namespace,
            custody: custody::kind_of(group, kind),
            owners,
            readers,
            ns_info,
            member: exception::is_break_glass_member(&req.user.groups, config),
            old_ann,
            new_ann,
            window_change,
        }
    }

    /// `deployment/web in prod`, `namespace/prod`.
    fn what(&self) -> String {
        let kind = self.kind.to_lowercase();
        if self.namespace.is_empty() {
            format!("{kind}/{}", self.name)
        } else {
            format!("{kind}/{} in {}", self.name, self.namespace)
        }
    }

    /// `-n prod` for commands, or nothing for cluster-scoped objects.
    fn ns_flag(&self) -> String {
        if self.namespace.is_empty() {
            String::new()
        } else {
            format!(" -n {}", self.namespace)
        }
    }

    /// Whether the request comes from the agent that acts on a custody kind of `agent`.
    fn is_agent_of(&self, agent: custody::Agent) -> bool {
        match self.identity {
            Identity::System | Identity::Agent => true,
            Identity::FluxController => agent == custody::Agent::Flux,
            Identity::ArgoController => agent == custody::Agent::ArgoCd,
            Identity::Other => false,
        }
    }

    /// Whether an owner or source traces back through Git to a bootstrap root.
    fn traces(&self, object: &ObjectRef) -> bool {
        custody::traces_to_root(object, &|o| self.cluster.custody(o), self.config)
    }

    /// Whether an owner traces back to a root (a namespace's `enforce: all` needs no chain: it
    /// counts only when the Namespace came from Git).
    fn owner_traces(&self, owner: &OwnerRef) -> bool {
        ObjectRef::of_owner(owner).is_none_or(|o| self.traces(&o))
    }

    /// A tenant or destination service account counts only when the owner that names it, and for
    /// Argo CD its AppProject, come from Git.
    fn tenant_counts(&self, owner: &OwnerRef) -> bool {
        let Some(object) = ObjectRef::of_owner(owner) else {
            return false;
        };
        if !self.traces(&object) {
            return false;
        }
        match self
            .cluster
            .custody(&object)
            .and_then(|c| c.project_in(self.config))
        {
            Some(project) => self.traces(&project),
            None => owner.kind != OwnerKind::Application,
        }
    }

    /// Whether the requester is the agent for `owner`.
    fn agent_for(&self, owner: &OwnerRef, info: Option<&OwnerInfo>) -> bool {
        if owner.kind == OwnerKind::Namespace && self.identity == Identity::Other {
            return self.namespace_tenant(&owner.name);
        }
        self.identity.is_agent_for(&self.req.user, owner, info)
            && (self.identity != Identity::Other
                || (self.tenant_counts(owner) && !self.req.user.has_own_credential()))
    }

    /// In an `enforce: all` namespace a tenant's account is the agent when an owner from Git that
    /// impersonates it holds the namespace: helm-controller keeps a tenant's release Secrets
    /// there as the tenant (they carry Helm's labels, not Flux's).
    fn namespace_tenant(&self, namespace: &str) -> bool {
        let user = &self.req.user;
        if !user.is_genuine_service_account() || user.has_own_credential() {
            return false;
        }
        self.cluster.holders(namespace).iter().any(|o| {
            let Some(owner) = o.as_owner() else {
                return false;
            };
            self.cluster
                .owner(&owner)
                .and_then(|i| i.service_account)
                .is_some_and(|sa| sa == user.username)
                && self.tenant_counts(&owner)
        })
    }

    /// The old object's `metadata.managedFields` as JSON text: from the review, or else from the
    /// live object (API servers before 1.23). `Err` when the live object is not the one the
    /// review changes (it changed meanwhile).
    fn old_record(&self) -> Result<Option<&'a str>, String> {
        let Some(old) = self.req.old_object.as_ref() else {
            return Ok(None);
        };
        if let Some(record) = crate::managed_fields::record_of(old) {
            return Ok(Some(record));
        }
        let Some(live) = self.live else {
            return Ok(None);
        };
        let version = |o: &Object<'_>| {
            Fields::parse(o.fields.get("metadata")?)?
                .get("resourceVersion")
                .map(|r| r.get().to_string())
        };
        if version(live) != version(old) {
            return Err("the object changed while the guard read it; try again".into());
        }
        Ok(crate::managed_fields::record_of(live))
    }

    /// The `metadata.managedFields` record that dates a break-glass window on the object: the
    /// old object's, or for a request decided with its parent (`kubectl scale`: the Scale object
    /// carries no metadata), the parent's, where the window is.
    fn window_record(&self) -> Option<&'a str> {
        if self.parent {
            return self.old.and_then(crate::managed_fields::record_of);
        }
        self.old_record().ok().flatten()
    }

    fn field_sets(&self) -> (&'r Fields<'a>, &'r Fields<'a>) {
        static NONE: LazyLock<Fields<'static>> = LazyLock::new(Fields::default);
        let (o, n) = if self.scale {
            (self.req.old_object.as_ref(), self.req.object.as_ref())
        } else {
            (self.old, self.new)
        };
        let none: &Fields<'_> = &NONE;
        (
            o.map(|o| &o.fields).unwrap_or(none),
            n.map(|o| &o.fields).unwrap_or(none),
        )
    }

    /// The fields nobody's change counts for: those the API server keeps, and `status` where it
    /// is a subresource (a kind whose status is an ordinary field keeps it guarded).
    fn server_paths(&self) -> Vec<&'static FieldPath> {
        let status_is_field = self.custody.is_some_and(|k| !k.status_subresource)
            || (!self.scale
                && !self
                    .cluster
                    .status_is_subresource(&self.req.resource.group, &self.req.resource.resource));
        SERVER_PATHS
            .iter()
            .filter(|p| !(status_is_field && **p == *STATUS_PATH))
            .collect()
    }

    /// Denied, turned into a warning for dry runs and audit mode.
    fn deny(&self, reason: Reason, message: String, owner: Option<&OwnerRef>) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            reason,
            message: Some(message),
            warnings: Vec::new(),
            audit_annotations: Vec::new(),
            owner: owner.cloned(),
            event: None,
        }
        .finish(self.req, &self.ns_info, self.config, "")
    }
}

/// Namespaces the guard never judges, by name.
fn excluded_namespace(c: &Ctx<'_, '_>) -> Option<Decision> {
    let ns = c.req.namespace.as_str();
    (!ns.is_empty() && c.config.excluded_namespaces.iter().any(|e| e == ns))
        .then(|| Decision::allow(Reason::Excluded))
}

/// A status subresource write changes the status only. API servers before 1.22 keep much of
/// `metadata` from one (a Deployment's annotations and finalizers, a Service's or Namespace's
/// labels too), and Kubernetes lets whoever may write a status do it: `gitops-guard.dev/allow:
/// manual` or `mode: audit` written that way would pass every rule that reads the object. Anyone
/// but Kubernetes and the agents changes metadata through the object itself, where the rules
/// decide it.
fn status_write(c: &Ctx<'_, '_>) -> Option<Decision> {
    if !keeps_metadata(c.req) || c.custody.is_some() || c.identity != Identity::Other {
        return None;
    }
    let changed = beyond_status(c.req);
    if changed.is_empty() {
        return None;
    }
    let (write, kept) = if c.req.sub_resource == "finalize" {
        (
            "a finalize write may change only spec.finalizers",
            "which the API server keeps (a Namespace's finalize write keeps its metadata)",
        )
    } else {
        (
            "a status write may change only the status",
            "which this API server would keep (before Kubernetes 1.22 a status write keeps labels, annotations, finalizers and owner references)",
        )
    };
    let message = format!(
        "{what}: {write}, and this one also changes {changed}, {kept}, out of the guard's sight.\nMake the change on the object itself, where the guard decides it like any other: kubectl edit {kind}/{name}{ns}",
        what = c.what(),
        changed = changed.join(", "),
        kind = c.kind.to_lowercase(),
        name = c.name,
        ns = c.ns_flag(),
    );
    Some(c.deny(Reason::StatusWrite, message, c.owners.first()))
}

/// The status of owners and sources is what agents (and the guard) take as fact: a source's
/// artifact URL and digest, an Application's sync result. Only their agent writes it.
fn agent_status(c: &Ctx<'_, '_>) -> Option<Decision> {
    if c.req.sub_resource != "status" {
        return None;
    }
    let kind = custody::kind_of_resource(&c.req.resource.group, &c.req.resource.resource)?;
    if c.is_agent_of(kind.agent) {
        return Some(Decision::allow(Reason::Status));
    }
    let message = format!(
        "the status of {} is written only by {}'s controllers: they act on it (artifact, revision, digest), so a status from anyone else would make them apply what Git never said.\nTo have it updated, ask the controller: {}",
        c.what(),
        kind.agent.name(),
        reconcile_hint(kind, c.name, &c.ns_flag()),
    );
    Some(c.deny(Reason::AgentStatus, message, None))
}

/// The command that makes an agent reconcile an owner or source now.
fn reconcile_hint(kind: &custody::Kind, name: &str, ns_flag: &str) -> String {
    match kind.agent {
        custody::Agent::Flux => format!(
            "kubectl annotate {}/{name}{ns_flag} --overwrite reconcile.fluxcd.io/requestedAt=\"$(date +%s)\"",
            kind.plural
        ),
        custody::Agent::ArgoCd => format!(
            "kubectl annotate {}/{name}{ns_flag} --overwrite argocd.argoproj.io/refresh=normal",
            kind.plural
        ),
    }
}

/// Objects that are going away: finishing a deletion is Kubernetes' business.
fn terminating(c: &Ctx<'_, '_>) -> Option<Decision> {
    let deleting_old = c.old.is_some_and(|o| o.deletion_timestamp.is_some());
    let done = match c.req.operation {
        Operation::Delete => deleting_old || c.ns_info.terminating,
        Operation::Update => deleting_old,
        _ => false,
    };
    done.then(|| Decision::allow(Reason::Terminating))
}

/// A Namespace: its name label cannot lie, one that holds managed objects is deleted only by the
/// agent, and a namespace-wide break-glass window is opened only by the group.
fn namespace_object(c: &Ctx<'_, '_>) -> Option<Decision> {
    if !c.is_namespace {
        return None;
    }
    if c.req.operation != Operation::Delete
        && let Some(label) = c
            .new
            .and_then(|n| n.label(crate::owner::NAMESPACE_NAME_LABEL))
        && label != c.name
    {
        let message = format!(
            "namespace/{name}: the label {key} must be the namespace's own name ({name:?}), not {label:?}: webhook and policy exclusions select namespaces by it.\nRemove the label or set it back: kubectl label namespace {name} {key}={name} --overwrite",
            name = c.name,
            key = crate::owner::NAMESPACE_NAME_LABEL,
        );
        return Some(c.deny(Reason::NamespaceLabel, message, None));
    }
    if c.owners.is_empty() && c.window_change {
        return Some(break_glass_change(c, None));
    }
    let info = &c.ns_info;
    let agent = matches!(
        c.identity,
        Identity::FluxController | Identity::ArgoController | Identity::Agent
    );
    if c.req.operation == Operation::Delete && c.owners.is_empty() && info.holds_managed && !agent {
        let message = format!(
            "namespace/{name} holds GitOps-managed objects, owners or sources: deleting it would delete them behind the agent's back.\nRemove them from Git instead, and let the agent prune them (then the namespace can go): kubectl gitops status -n {name}",
            name = c.name
        );
        return Some(c.deny(Reason::HoldsManaged, message, None));
    }
    None
}

/// Owners and sources (Flux sources, Kustomizations, HelmReleases, image automation, Argo CD
/// Applications, ApplicationSets, AppProjects) that carry no ownership marker: only their agent
/// creates, changes or deletes them, so every one comes from Git. A bootstrap root may be
/// created while it does not exist.
fn custody_kind(c: &Ctx<'_, '_>) -> Option<Decision> {
    let kind = c.custody?;
    if !c.owners.is_empty() {
        return None;
    }
    if c.is_agent_of(kind.agent) {
        return Some(Decision::allow(Reason::Agent));
    }
    let this = ObjectRef::new(kind.kind, c.namespace, c.name);
    if c.req.operation == Operation::Create
        && c.config
            .custody
            .roots
            .iter()
            .any(|r| r.kind == this.kind && r.namespace == this.namespace && r.name == this.name)
    {
        let mut d = Decision::allow(Reason::Bootstrap);
        d.verdict = Verdict::Warn;
        d.warnings.push(format!(
            "{} is a bootstrap root (custody.roots): created now, from here on only {} changes it",
            c.what(),
            kind.agent.name()
        ));
        return Some(d);
    }
    if c.window_change && c.req.operation == Operation::Create {
        return Some(new_object_window(c, None));
    }
    if c.window_change {
        return Some(break_glass_change(c, None));
    }
    if let Some(d) = changes_without_configuration(c, None) {
        return Some(d);
    }
    if let Some(d) = under_window(c, None) {
        return Some(d);
    }
    let verb = match c.req.operation {
        Operation::Create => "created",
        Operation::Delete => "deleted",
        _ => "changed",
    };
    let root = c
        .config
        .custody
        .roots
        .iter()
        .find(|r| custody::kind_named(&r.kind).is_some_and(|k| k.agent == kind.agent))
        .map(|r| format!("{} {}/{}", r.kind, r.namespace, r.name))
        .unwrap_or_else(|| "your bootstrap root".into());
    let current = match c.req.operation {
        Operation::Create => String::new(),
        _ => format!(
            " (its current manifest: kubectl get {}/{}{} -o yaml)",
            kind.plural,
            c.name,
            c.ns_flag()
        ),
    };
    let message = format!(
        "{what} is {noun}: it decides what {agent} applies, so only {agent} may create, change or delete it, from Git; it cannot be {verb} by hand.\nAdd it to Git instead: put its manifest in the repository that {root} syncs, commit and push{current}",
        what = c.what(),
        noun = kind.noun,
        agent = kind.agent.name(),
    );
    Some(c.deny(Reason::Custody, message, None))
}

/// What an owner's or source's own controller writes on it, whoever applied it (an Argo CD
/// Application that Flux applies, a Kustomization that Argo CD applies): its status (an ordinary
/// field on Argo CD's kinds), its finalizers, the operation it has run.
fn own_controller(c: &Ctx<'_, '_>) -> Option<Decision> {
    static BOOKKEEPING: LazyLock<[FieldPath; 2]> = LazyLock::new(|| {
        [
            FieldPath::keys(&["metadata", "finalizers"]),
            FieldPath::keys(&["operation"]),
        ]
    });
    let kind = c.custody?;
    if c.req.operation != Operation::Update || c.scale || !c.is_agent_of(kind.agent) {
        return None;
    }
    let (fo, fnew) = c.field_sets();
    let mut allowed: Vec<&FieldPath> = SERVER_PATHS.iter().collect();
    allowed.extend(operational_paths(c.config, c.group, c.kind));
    allowed.extend(BOOKKEEPING.iter());
    (exception::changed_guard_annotations(&c.old_ann, &c.new_ann).is_empty()
        && disallowed_changes_of(fo, fnew, &allowed, Report::First).is_empty())
    .then(|| Decision::allow(Reason::Agent))
}

/// Objects that their labels, tracking id or namespace say are GitOps-managed.
fn managed_object(c: &Ctx<'_, '_>) -> Option<Decision> {
    if c.owners.is_empty() {
        return None;
    }
    let infos: Vec<Option<OwnerInfo>> = c.owners.iter().map(|o| c.cluster.owner(o)).collect();
    let foreign = c
        .owners
        .iter()
        .zip(&infos)
        .find(|(o, info)| !c.agent_for(o, info.as_ref()));
    let Some((owner, info)) = foreign else {
        return Some(agent_request(c));
    };
    let revision = info
        .as_ref()
        .and_then(|i| i.revision.as_deref())
        .map(|r| format!(" ({})", short_revision(r)))
        .unwrap_or_default();
    let mut message = format!(
        "{} is managed by {owner}{revision}.\n{}",
        c.what(),
        way_forward::way_forward(c, owner)
    );
    if c.readers.contains(owner) {
        message.push_str(&format!(
            "\n(it is not in Git itself, but {owner} applies what it holds (valuesFrom / postBuild.substituteFrom), so changing it changes what runs: put it in Git, or change the owner to read one that is)"
        ));
    }
    if c.req.user.is_impostor() {
        message.push_str(&format!(
            "\n({} is named like a service account but has not its groups (system:serviceaccounts:…): it is not that account)",
            c.req.user.username
        ));
    }

    // Decided in Git: honoured only when already on the live object.
    if c.req.operation != Operation::Create && exception::allows_manual(&c.old_ann) {
        return Some(Decision::allow(Reason::AllowManual));
    }
    if c.window_change && c.req.operation == Operation::Create {
        return Some(new_object_window(c, Some(owner)));
    }
    if c.window_change {
        return Some(
            break_glass_change(c, Some(owner)).finish(c.req, &c.ns_info, c.config, &message),
        );
    }
    if let Some(d) = under_window(c, Some(owner)) {
        return Some(d);
    }
    if let Some(d) = changes_without_configuration(c, Some(owner)) {
        return Some(d);
    }
    if let Some(d) = allowed_fields(c, owner, &message) {
        return Some(d);
    }
    Some(c.deny(Reason::Managed, message, Some(owner)))
}

/// `allow` and `allow-fields` are decided in Git: set by hand on an object nobody manages yet, the
/// agent would adopt them with it (server-side apply keeps other managers' fields), and they
/// would count as Git's.
fn planted_exception(c: &Ctx<'_, '_>) -> Option<Decision> {
    if !matches!(c.req.operation, Operation::Create | Operation::Update)
        || !matches!(c.identity, Identity::Other)
    {
        return None;
    }
    let planted: Vec<&str> = exception::changed_guard_annotations(&c.old_ann, &c.new_ann)
        .into_iter()
        .filter(|k| [exception::ALLOW, exception::ALLOW_FIELDS].contains(k))
        .filter(|k| c.new_ann.contains_key(*k))
        .collect();
    if planted.is_empty() {
        return None;
    }
    let message = format!(
        "{}: {} is an exception decided in Git: it counts only when the agent applies it, so it cannot be set by hand, not even before the object is GitOps-managed (the agent would adopt it with the object).\nPut it in the object's manifest in Git instead.",
        c.what(),
        planted.join(" and ")
    );
    Some(c.deny(Reason::PlantedException, message, None))
}

/// The agent of every owner: it may act, but only for owners that come from Git. Creating an
/// object for an owner, or moving it to one, needs that owner to trace back to a bootstrap root.
fn agent_request(c: &Ctx<'_, '_>) -> Decision {
    let checks_chain = matches!(
        c.identity,
        Identity::FluxController | Identity::ArgoController | Identity::Other
    );
    if !checks_chain || c.req.operation == Operation::Delete {
        return Decision::allow(Reason::Agent);
    }
    let before: Vec<OwnerRef> = match (c.req.operation, c.old) {
        (Operation::Update, Some(o)) => owners_of(o, c.group, c.kind, c.config),
        _ => Vec::new(),
    };
    let after: Vec<OwnerRef> = c
        .new
        .map(|n| owners_of(n, c.group, c.kind, c.config))
        .unwrap_or_default();
    let unrooted = after
        .iter()
        .filter(|o| !before.contains(o))
        .find(|o| !c.owner_traces(o));
    match unrooted {
        None => Decision::allow(Reason::Agent),
        Some(owner) => {
            let verb = if before.is_empty() { "create" } else { "move" };
            let message = format!(
                "{what}: {owner} does not come from Git (no chain of owners leads from it, or from its sources or AppProject, to a bootstrap root in custody.roots), so the agent may not {verb} {what} for it.\nPut {owner} in Git, under an owner that comes from Git; its manifest: kubectl get {res}/{name} -n {ns} -o yaml",
                what = c.what(),
                res = match owner.kind {
                    OwnerKind::Kustomization => "kustomizations.kustomize.toolkit.fluxcd.io",
                    OwnerKind::HelmRelease => "helmreleases.helm.toolkit.fluxcd.io",
                    _ => "applications.argoproj.io",
                },
                name = owner.name,
                ns = owner.namespace,
            );
            c.deny(Reason::Unrooted, message, Some(owner))
        }
    }
}

/// Changes that are no configuration: the server's own fields, operational changes (each a config
/// choice), an Argo CD sync of the app as declared. `managedFields` may only evolve the way the
/// API server evolves it.
fn changes_without_configuration(c: &Ctx<'_, '_>, owner: Option<&OwnerRef>) -> Option<Decision> {
    if c.req.operation != Operation::Update {
        return None;
    }
    let (fo, fnew) = c.field_sets();
    let mut allowed = c.server_paths();
    allowed.extend(operational_paths(c.config, c.group, c.kind));
    if !exception::changed_guard_annotations(&c.old_ann, &c.new_ann).is_empty()
        || !disallowed_changes_of(fo, fnew, &allowed, Report::First).is_empty()
    {
        return None;
    }
    if let Some(d) = managed_fields_rewrite(c, owner) {
        return Some(d);
    }
    if let Some(d) = argo_operation(c, owner) {
        return Some(d);
    }
    Some(Decision::allow(Reason::Operational))
}

/// `metadata.managedFields` rewritten by someone other than the agent.
fn managed_fields_rewrite(c: &Ctx<'_, '_>, owner: Option<&OwnerRef>) -> Option<Decision> {
    let (Some(old), Some(new)) = (c.req.old_object.as_ref(), c.req.object.as_ref()) else {
        return None;
    };
    let why = match c.old_record() {
        Ok(record) => crate::managed_fields::rewrite(old, record, new, c.now)?,
        Err(why) => why,
    };
    let message = format!(
        "{}: metadata.managedFields may be rewritten only by the agent: it is the record of who set each field (kubectl gitops blame, Flux's drift detection), and this request rewrites it ({why}).\nChange the object without sending managedFields (kubectl edit, patch and apply leave it to the API server).",
        c.what()
    );
    Some(c.deny(Reason::ManagedFields, message, owner))
}

/// An Argo CD sync by a person (UI, CLI) may carry only what the Application declares.
fn argo_operation(c: &Ctx<'_, '_>, owner: Option<&OwnerRef>) -> Option<Decision> {
    if c.group != "argoproj.io" || c.kind != "Application" {
        return None;
    }
    let new = c.req.object.as_ref()?;
    let read = |key: &str| -> Result<Value, ()> {
        match new.fields.get(key) {
            None => Ok(Value::Null),
            Some(raw) => serde_json::from_str(raw.get()).map_err(|_| ()),
        }
    };
    let (Ok(operation), Ok(spec)) = (read("operation"), read("spec")) else {
        return Some(c.deny(
            Reason::ArgoOperation,
            format!(
                "{}: the operation cannot be read, so it cannot be shown to carry only what Git says",
                c.what()
            ),
            owner,
        ));
    };
    let old_operation = c
        .req
        .old_object
        .as_ref()
        .and_then(|o| o.fields.get("operation"))
        .map(|r| r.get());
    if operation.is_null() || old_operation == new.fields.get("operation").map(|r| r.get()) {
        return None;
    }
    let status = match c
        .req
        .old_object
        .as_ref()
        .and_then(|o| o.fields.get("status"))
    {
        None => Value::Null,
        Some(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
    };
    let overrides = custody::sync_overrides(
        &operation,
        &spec,
        &status,
        &c.config.operational.argocd_sync_overrides,
    );
    if overrides.is_empty() {
        return None;
    }
    let message = format!(
        "{}: a sync started by hand may carry only what the Application declares in Git; this one also sets operation.sync.{}.\nChange the Application in Git instead, or sync it as declared: argocd app sync {} (the guard's operational.argocdSyncOverrides lists what a person may add)",
        c.what(),
        overrides.join(", operation.sync."),
        if c.namespace == c.config.argocd.namespace {
            c.name.to_string()
        } else {
            format!("{}/{}", c.namespace, c.name)
        }
    );
    Some(c.deny(Reason::ArgoOperation, message, owner))
}

/// `allow-fields` from Git: only the listed paths may change, and never a protected one.
fn allowed_fields(c: &Ctx<'_, '_>, owner: &OwnerRef, message: &str) -> Option<Decision> {
    if c.req.operation != Operation::Update {
        return None;
    }
    let list = match exception::allow_fields(&c.old_ann) {
        Ok(list) if !list.is_empty() => list,
        Ok(_) => return None,
        Err(e) => {
            let message = format!(
                "{message}\n(the object's {} annotation is invalid and was ignored: {e})",
                exception::ALLOW_FIELDS
            );
            return Some(c.deny(Reason::Managed, message, Some(owner)));
        }
    };
    let listed = list
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let (fo, fnew) = c.field_sets();
    let mut allowed = c.server_paths();
    allowed.extend(operational_paths(c.config, c.group, c.kind));
    allowed.extend(&list);
    let mut offending = disallowed_changes_of(fo, fnew, &allowed, Report::All(8));
    let protected = exception::protected_changes(c.old, c.new, c.config);
    for p in &protected {
        if !offending.contains(p) {
            offending.push(p.clone());
        }
    }
    offending.extend(
        exception::changed_guard_annotations(&c.old_ann, &c.new_ann)
            .iter()
            .map(|k| format!("metadata.annotations['{k}']"))
            .filter(|p| !protected.contains(p)),
    );
    if offending.is_empty() {
        return Some(
            managed_fields_rewrite(c, Some(owner))
                .unwrap_or_else(|| Decision::allow(Reason::AllowFields)),
        );
    }
    let protected_note = if protected.is_empty() {
        String::new()
    } else {
        format!(" ({})", exception::PROTECTED)
    };
    let message = format!(
        "{message}\nOnly {listed} may be changed by hand here ({}); this change also touches: {}{protected_note}",
        exception::ALLOW_FIELDS,
        offending.join(", ")
    );
    Some(c.deny(Reason::Managed, message, Some(owner)))
}

impl Decision {
    /// Turns a denial into an allowance with a warning for dry runs and audit mode. `context` is
    /// added to a refusal message that does not already say what manages the object.
    fn finish(
        mut self,
        req: &AdmissionRequest<'_>,
        ns: &NamespaceInfo,
        config: &Config,
        context: &str,
    ) -> Decision {
        if self.verdict != Verdict::Deny {
            return self;
        }
        if !context.is_empty()
            && let Some(m) = self.message.as_mut()
        {
            *m = format!("{m}\n{context}");
        }
        let message = self.message.clone().unwrap_or_default();
        if req.dry_run {
            self.verdict = Verdict::Warn;
            self.reason = Reason::DryRun;
            self.warnings.push(format!(
                "dry-run only: the real change would be denied: {}",
                one_line(&message)
            ));
            return self;
        }
        if ns.mode.unwrap_or(config.mode) == Mode::Audit {
            self.verdict = Verdict::Warn;
            self.reason = Reason::Audit;
            self.warnings.push(format!(
                "audit mode: this change would be denied: {}",
                one_line(&message)
            ));
            self.audit_annotations
                .push(("decision".into(), "would-deny".into()));
            self.audit_annotations
                .push(("would-deny-reason".into(), one_line(&message)));
        }
        self
    }
}

mod break_glass;
mod way_forward;
mod what_runs;

#[cfg(test)]
mod tests;
