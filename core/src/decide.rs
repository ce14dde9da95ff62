//! The one decision: may this request change this object?

use std::collections::BTreeMap;
use std::sync::LazyLock;

use crate::config::{Config, Mode};
use crate::diff::{FieldPath, Report, disallowed_changes_of};
use crate::exception::{self, Window};
use crate::identity::Identity;
use crate::object::{Fields, Object};
use crate::owner::{NamespaceInfo, OwnerInfo, OwnerKind, OwnerRef, owners_of, short_revision};
use crate::review::{AdmissionRequest, Operation};

/// What the guard knows about the cluster: owners and namespaces (the webhook's watch caches).
pub trait Lookup {
    fn owner(&self, owner: &OwnerRef) -> Option<OwnerInfo>;
    fn namespace(&self, name: &str) -> Option<NamespaceInfo>;
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
    argocd_refresh: FieldPath,
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
        argocd_refresh: annotation("argocd.argoproj.io/refresh"),
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
        out.push(&paths.argocd_refresh);
    }
    if ops.argocd_operation && group == "argoproj.io" && kind == "Application" {
        out.push(&paths.argocd_operation);
    }
    if ops.rollout_restart {
        out.push(&paths.rollout_restart);
    }
    out
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

/// Requests allowed whatever the objects say: Kubernetes itself, CONNECT, and subresources other
/// than scale.
fn decided_without_objects(req: &AdmissionRequest<'_>, config: &Config) -> Option<Reason> {
    if Identity::of(&req.user, config) == Identity::System {
        return Some(Reason::System);
    }
    if req.operation == Operation::Connect {
        return Some(Reason::Connect);
    }
    match req.sub_resource.as_str() {
        "" | "scale" => None,
        "status" => Some(Reason::Status),
        _ => Some(Reason::Subresource),
    }
}

/// Whether deciding `req` needs the object behind a `<resource>/scale` request (which the caller
/// looks up). Kubernetes' own components (the HPA scales every few seconds) are decided without
/// it, so they cost no API call.
pub fn needs_scale_parent(req: &AdmissionRequest<'_>, config: &Config) -> bool {
    req.sub_resource == "scale" && decided_without_objects(req, config).is_none()
}

/// Decides one admission request.
///
/// `scale_parent` is the object behind a `<resource>/scale` request (the Scale object carries no
/// labels); the webhook looks it up. `now` is for break-glass windows.
pub fn decide(
    req: &AdmissionRequest<'_>,
    scale_parent: Option<&Object<'_>>,
    config: &Config,
    cluster: &dyn Lookup,
    now: jiff::Timestamp,
) -> Decision {
    if let Some(reason) = decided_without_objects(req, config) {
        return Decision::allow(reason);
    }
    let identity = Identity::of(&req.user, config);
    let scale = req.sub_resource == "scale";

    // The objects that say who manages the resource: for scale, the parent.
    let (old, new) = if scale {
        match scale_parent {
            Some(p) => (Some(p), Some(p)),
            None => return Decision::allow(Reason::Unmanaged),
        }
    } else {
        (req.old_object.as_ref(), req.object.as_ref())
    };
    let group = req.resource.group.as_str();
    let kind = if scale {
        scale_parent.map(|p| p.kind.as_str()).unwrap_or_default()
    } else {
        req.kind.kind.as_str()
    };
    let name = req.object_name();
    // For a Namespace object the API server sends its own name as the request's namespace; the
    // object itself is cluster-scoped.
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
    owners.sort();
    owners.dedup();

    // A namespace's mode, window and state also apply to the Namespace object itself.
    let ns_info = if req.namespace.is_empty() {
        NamespaceInfo::default()
    } else {
        cluster.namespace(&req.namespace).unwrap_or_default()
    };
    if owners.is_empty() && ns_info.enforce_all && !is_runtime_record(group, kind) && !is_namespace
    {
        owners.push(OwnerRef {
            kind: OwnerKind::Namespace,
            namespace: namespace.to_string(),
            name: namespace.to_string(),
        });
    }

    let member = exception::is_break_glass_member(&req.user.groups, config);
    let old_ann = &guard_annotations(old);
    let new_ann = &guard_annotations(new);
    let window_change = !scale
        && req.operation == Operation::Update
        && exception::BREAK_GLASS_KEYS
            .iter()
            .any(|k| old_ann.get(*k) != new_ann.get(*k));

    if owners.is_empty() {
        // A namespace-wide break-glass window is opened on the Namespace, which need not be
        // managed itself: nobody outside the group may open or forge one.
        if is_namespace && window_change {
            return break_glass_change(req, new_ann, member, config, now, &ns_info, None, name);
        }
        return Decision::allow(Reason::Unmanaged);
    }

    let deleting_old = old.is_some_and(|o| o.deletion_timestamp.is_some());
    match req.operation {
        Operation::Delete if deleting_old || ns_info.terminating => {
            return Decision::allow(Reason::Terminating);
        }
        Operation::Update if deleting_old => return Decision::allow(Reason::Terminating),
        _ => {}
    }

    let username = req.user.username.as_str();
    let infos: Vec<Option<OwnerInfo>> = owners.iter().map(|o| cluster.owner(o)).collect();
    let foreign = owners
        .iter()
        .zip(&infos)
        .find(|(o, info)| !identity.is_agent_for(username, o, info.as_ref()));
    let Some((owner, info)) = foreign else {
        return Decision::allow(Reason::Agent);
    };
    let revision = info.as_ref().and_then(|i| i.revision.as_deref());
    let message = deny_message(kind, name, namespace, owner, revision);

    // Decided in Git: honoured only when already on the live object.
    if req.operation != Operation::Create && exception::allows_manual(old_ann) {
        return Decision::allow(Reason::AllowManual);
    }

    // Break-glass windows.
    if window_change {
        return break_glass_change(
            req,
            new_ann,
            member,
            config,
            now,
            &ns_info,
            Some(owner),
            name,
        )
        .finish(req, &ns_info, config, &message);
    }
    if member {
        let object_window = match req.operation {
            Operation::Create => None,
            _ => Window::from_annotations(old_ann),
        };
        let open = object_window
            .filter(|w| w.is_open(now))
            .or_else(|| ns_info.break_glass.clone().filter(|w| w.is_open(now)));
        if let Some(w) = open {
            return under_window(req, kind, name, namespace, &w, owner);
        }
    }

    // Field-level exceptions: operational changes, and allow-fields from Git.
    if req.operation == Operation::Update {
        let (diff_old, diff_new) = if scale {
            (req.old_object.as_ref(), req.object.as_ref())
        } else {
            (old, new)
        };
        let no_fields = Fields::default();
        let fo = diff_old.map(|o| &o.fields).unwrap_or(&no_fields);
        let fnew = diff_new.map(|o| &o.fields).unwrap_or(&no_fields);
        let mut allowed: Vec<&FieldPath> = SERVER_PATHS.iter().collect();
        allowed.extend(operational_paths(config, group, kind));
        let guard_changes = exception::changed_guard_annotations(old_ann, new_ann);
        if guard_changes.is_empty()
            && disallowed_changes_of(fo, fnew, &allowed, Report::First).is_empty()
        {
            return Decision::allow(Reason::Operational);
        }
        match exception::allow_fields(old_ann) {
            Ok(list) if !list.is_empty() => {
                let listed = list
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                allowed.extend(&list);
                let mut offending = disallowed_changes_of(fo, fnew, &allowed, Report::All(8));
                offending.extend(
                    guard_changes
                        .iter()
                        .map(|k| format!("metadata.annotations['{k}']")),
                );
                if offending.is_empty() {
                    return Decision::allow(Reason::AllowFields);
                }
                let message = format!(
                    "{message}\nOnly {listed} may be changed by hand here ({}); this change also touches: {}",
                    exception::ALLOW_FIELDS,
                    offending.join(", ")
                );
                return denied(Reason::Managed, message, owner).finish(req, &ns_info, config, "");
            }
            Ok(_) => {}
            Err(e) => {
                let message = format!(
                    "{message}\n(the object's {} annotation is invalid and was ignored: {e})",
                    exception::ALLOW_FIELDS
                );
                return denied(Reason::Managed, message, owner).finish(req, &ns_info, config, "");
            }
        }
    }

    denied(Reason::Managed, message, owner).finish(req, &ns_info, config, "")
}

fn denied(reason: Reason, message: String, owner: &OwnerRef) -> Decision {
    Decision {
        verdict: Verdict::Deny,
        reason,
        message: Some(message),
        warnings: Vec::new(),
        audit_annotations: Vec::new(),
        owner: Some(owner.clone()),
        event: None,
    }
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

/// A request that opens, extends, changes or closes a break-glass window.
#[allow(clippy::too_many_arguments)]
fn break_glass_change(
    req: &AdmissionRequest<'_>,
    new_ann: &BTreeMap<String, String>,
    member: bool,
    config: &Config,
    now: jiff::Timestamp,
    ns: &NamespaceInfo,
    owner: Option<&OwnerRef>,
    name: &str,
) -> Decision {
    let kind = req.kind.kind.to_lowercase();
    let what = if req.namespace.is_empty() || kind == "namespace" {
        format!("{kind}/{name}")
    } else {
        format!("{kind}/{name} in {}", req.namespace)
    };
    let refuse = |why: String| {
        let d = Decision {
            verdict: Verdict::Deny,
            reason: Reason::BreakGlassRefused,
            message: Some(format!("break-glass on {what} refused: {why}")),
            warnings: Vec::new(),
            audit_annotations: Vec::new(),
            owner: owner.cloned(),
            event: None,
        };
        d.finish(req, ns, config, "")
    };
    if config.break_glass.groups.is_empty() {
        return refuse("break-glass is off (no breakGlass.groups in the guard's config)".into());
    }
    if !member {
        return refuse(format!(
            "only members of {} may open, extend or close a break-glass window",
            config.break_glass.groups.join(", ")
        ));
    }
    match Window::from_annotations(new_ann) {
        Some(w) => {
            if let Err(why) = w.check_opening(&req.user.username, now, config) {
                return refuse(why);
            }
            let ticket = w
                .ticket
                .as_deref()
                .map(|t| format!(" [{t}]"))
                .unwrap_or_default();
            let text = format!(
                "break-glass window on {what} opened by {} until {}: {}{ticket}",
                req.user.username, w.until, w.reason
            );
            recorded(text, owner.cloned())
        }
        None => {
            let text = format!(
                "break-glass window on {what} closed by {}",
                req.user.username
            );
            recorded(text, owner.cloned())
        }
    }
}

/// A change by a break-glass member inside an open window.
fn under_window(
    req: &AdmissionRequest<'_>,
    kind: &str,
    name: &str,
    namespace: &str,
    w: &Window,
    owner: &OwnerRef,
) -> Decision {
    let kind = kind.to_lowercase();
    let what = if namespace.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{kind}/{name} in {namespace}")
    };
    let ticket = w
        .ticket
        .as_deref()
        .map(|t| format!(" [{t}]"))
        .unwrap_or_default();
    let op = match req.operation {
        Operation::Create => "created",
        Operation::Delete => "deleted",
        _ => "changed",
    };
    let text = format!(
        "break-glass: {what} {op} by {} under the window opened by {} until {} ({}{ticket}); it is managed by {owner}: bring the change back into Git",
        req.user.username, w.by, w.until, w.reason
    );
    recorded(text, Some(owner.clone()))
}

/// A break-glass action: allowed, with the text as a warning, an audit annotation and an Event.
fn recorded(text: String, owner: Option<OwnerRef>) -> Decision {
    Decision {
        verdict: Verdict::Warn,
        reason: Reason::BreakGlass,
        message: None,
        warnings: vec![text.clone()],
        audit_annotations: vec![("break-glass".into(), text.clone())],
        owner,
        event: Some(text),
    }
}

#[cfg(test)]
mod tests;
