//! `kubectl gitops audit`: one report for a namespace or the whole cluster that answers "is
//! everything running in the state Git says?" — a summary; every owner (source, applied revision
//! against the source's current one, verification, Ready, suspended, objects); every object (owner,
//! file, last commit, drift as `diff` finds it, the exceptions in force); the break-glass windows
//! of the period and what changed under them; and the guard's coverage (`doctor`'s findings).
//!
//! The report is deterministic for the same cluster and repository state: everything is sorted,
//! times are UTC, and the moment it describes is printed only when given (`--as-of`). `-o json`
//! follows `docs/audit-schema.json`; `-o html` is one self-contained page that carries the sha256
//! of the exact bytes `-o json` writes for the same state ([`html`]).

pub mod html;
pub mod owners;
pub mod windows;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use gitops_guard_core::custody::{ARGO, HELM, KUSTOMIZE, SOURCE};
use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::blame::fields::{self, Role};
use crate::cluster::{Cluster, Seed};
use crate::diff::compare::FieldDiff;
use crate::diff::{self, ObjectDiff, Scan};
use crate::doctor::{self, Finding, Severity};
use crate::git::CommitInfo;
use crate::locate::ObjectRef;
use crate::output::{self, Table};
use crate::session::{Global, Session};
use owners::OwnerReport;
use windows::WindowReport;

/// `audit` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Table,
    Json,
    Html,
}

/// `audit` arguments.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Every namespace (and cluster-scoped objects); else the namespace of -n or the context.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Output format: a table, the JSON report (docs/audit-schema.json) or one HTML page.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: AuditFormat,
    /// Write the report to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The moment the report describes (RFC 3339, e.g. 2026-12-01T00:00:00Z): which windows and
    /// exceptions are open, and the end of the period. Printed in the report; default: now (not
    /// printed, so two reports of the same state are the same bytes).
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,
    /// The period: break-glass windows open at any time this long before --as-of.
    #[arg(long, value_name = "DURATION", default_value = "720h")]
    pub since: String,
}

/// The JSON document (`docs/audit-schema.json`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `gitops-guard.dev/audit/v1`.
    pub api_version: &'static str,
    pub scope: Scope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    /// `--since`, as given.
    pub period: String,
    pub summary: Summary,
    pub owners: Vec<OwnerReport>,
    pub objects: Vec<ObjectReport>,
    /// Unmanaged objects in guarded namespaces that no person made (not strays).
    pub unmanaged: Vec<ObjectRef>,
    pub exceptions: Vec<ExceptionReport>,
    pub break_glass: Vec<WindowReport>,
    pub coverage: Coverage,
}

pub const API_VERSION: &str = "gitops-guard.dev/audit/v1";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    pub all_namespaces: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Namespaces in scope where an owner declares objects.
    pub guarded_namespaces: Vec<String>,
}

/// What an auditor reads first.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Live objects considered: managed ones, and every other object in a guarded namespace.
    pub objects: usize,
    pub managed: usize,
    /// Managed objects in the state Git says.
    pub in_sync: usize,
    pub drifted: usize,
    /// Drifted objects by why (see [`Why`]).
    pub drift_reasons: BTreeMap<String, usize>,
    /// Objects Git declares that are not in the cluster.
    pub missing: usize,
    /// Unmanaged objects in guarded namespaces a person made.
    pub strays: usize,
    /// Other unmanaged objects in guarded namespaces (made by Kubernetes or the agents).
    pub unmanaged: usize,
    pub not_compared: usize,
    pub errors: usize,
    pub open_exceptions: usize,
    pub owners: usize,
    pub owners_behind: usize,
    pub owners_suspended: usize,
    pub owners_not_ready: usize,
    pub break_glass_windows: usize,
}

/// Why an object drifted, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Why {
    /// A person (or script) changed a field, and nothing allowed it.
    Hand,
    /// A field differs and the record names only the agent or Kubernetes (e.g. a `kubectl
    /// scale` before Kubernetes 1.22, which records no field manager).
    Unrecorded,
    /// Changed under a break-glass window (managedFields within it, or the guard's Event).
    BreakGlass,
    /// Allowed by `allow-fields` or `allow: manual`.
    Exception,
}

impl Why {
    pub fn label(self) -> &'static str {
        match self {
            Why::Hand => "changed by hand",
            Why::Unrecorded => "changed, writer not recorded",
            Why::BreakGlass => "changed under break-glass",
            Why::Exception => "allowed by an exception",
        }
    }
}

/// Why `fields` differ from Git; `under_window`: the guard recorded a break-glass change of the
/// object.
pub fn why(
    config: &gitops_guard_core::Config,
    fields: &[FieldDiff],
    under_window: bool,
) -> Option<Why> {
    fields
        .iter()
        .map(|f| match &f.allowed_by {
            Some(a) if a.contains("break-glass") => Why::BreakGlass,
            Some(_) => Why::Exception,
            None => match f.manager.as_deref().map(|m| fields::role(config, m)) {
                Some(Role::Other) | Some(Role::Operational) => Why::Hand,
                _ if under_window => Why::BreakGlass,
                _ => Why::Unrecorded,
            },
        })
        .min()
}

/// One object in the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReport {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// `deployment/web`.
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `in-sync`, `drift`, `missing`, `stray`, `not-compared` or `error`.
    pub state: &'static str,
    /// For `drift`: why ([`Why::label`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The commit compared with (what the owner applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compared_commit: Option<String>,
    /// The last commit that changed the object's document or an overlay patching it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_commit: Option<CommitInfo>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldDiff>,
    /// Exceptions in force on it (as of the report).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One exception in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionReport {
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `allow-fields`, `allow-manual` or `break-glass`.
    pub exception: &'static str,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// The guard's coverage: is it there, does it answer, and what `doctor` finds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Coverage {
    /// A ValidatingWebhookConfiguration of the guard is registered.
    pub installed: bool,
    pub webhook_configurations: Vec<String>,
    /// `yes`, `no` or `unknown` (doctor's dry run on a managed object).
    pub answering: &'static str,
    pub fail: usize,
    pub warn: usize,
    pub ok: usize,
    /// Every finding, `fail` first.
    pub findings: Vec<Finding>,
    /// Why the checks could not run, when they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Coverage {
    /// `installed (NAMES), answering: yes`, or why not.
    pub fn guard(&self) -> String {
        if self.installed {
            format!(
                "installed ({}), answering: {}",
                self.webhook_configurations.join(", "),
                self.answering
            )
        } else {
            "not installed: no ValidatingWebhookConfiguration of the guard".into()
        }
    }
}

fn parse_duration(flag: &str, text: &str) -> Result<jiff::SignedDuration, Error> {
    text.trim().parse::<jiff::SignedDuration>().map_err(|_| {
        Error::Usage(format!(
            "{flag} takes a duration like 30m or 720h, not {text:?}"
        ))
    })
}

fn parse_time(text: &str) -> Result<jiff::Timestamp, Error> {
    text.trim().parse::<jiff::Timestamp>().map_err(|_| {
        Error::Usage(format!(
            "--as-of takes an RFC 3339 time like 2026-12-01T00:00:00Z, not {text:?}"
        ))
    })
}

/// The exceptions an object carries that are in force at `as_of`.
fn in_force(
    e: &diff::compare::Exceptions,
    as_of: jiff::Timestamp,
    max: jiff::SignedDuration,
) -> Vec<String> {
    let mut out = Vec::new();
    if e.manual {
        out.push("allow: manual".to_string());
    }
    if !e.allow_fields.is_empty() {
        out.push(format!(
            "allow-fields: {}",
            e.allow_fields
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (on, w) in &e.windows {
        if w.counts_at_rest_within(as_of, max) {
            let on = on.trim_start_matches("the ");
            out.push(format!("{on} by {} until {}", w.by, w.until));
        }
    }
    out
}

/// The owners in the cluster and what each points at: a Kustomization and its source, a
/// HelmRelease, its source and its HelmChart, an Application and its AppProject.
#[derive(Default)]
struct OwnerObjects {
    kustomizations: Vec<(Value, Option<Value>)>,
    helm_releases: Vec<(Value, Option<Value>, Option<Value>)>,
    applications: Vec<(Value, Option<Value>)>,
}

/// Reads [`OwnerObjects`]; each source, chart and project is read once however many owners name it.
async fn read_owners(cluster: &Cluster, argocd_namespace: &str) -> Result<OwnerObjects, Error> {
    async fn list(cluster: &Cluster, group: &str, kind: &str) -> Result<Vec<Value>, Error> {
        match cluster.resource_for(group, kind).cloned() {
            Some(r) => Ok(cluster.list(&r, None, None).await?),
            None => Ok(Vec::new()),
        }
    }
    let mut seen: HashMap<(String, String, String, String), Option<Value>> = HashMap::new();
    let mut get = async |group: &str, kind: &str, ns: &str, name: &str| -> Option<Value> {
        let key = (
            group.to_string(),
            kind.to_string(),
            ns.to_string(),
            name.to_string(),
        );
        if let Some(v) = seen.get(&key) {
            return v.clone();
        }
        let v = match cluster.resource_for(group, kind) {
            Some(_) => cluster.get_kind(group, kind, ns, name).await.ok().flatten(),
            None => None,
        };
        seen.insert(key, v.clone());
        v
    };
    let mut out = OwnerObjects::default();
    for ks in list(cluster, KUSTOMIZE, "Kustomization").await? {
        let source = match owners::source_ref(&ks, "/spec/sourceRef") {
            Some((kind, ns, name)) => get(SOURCE, &kind, &ns, &name).await,
            None => None,
        };
        out.kustomizations.push((ks, source));
    }
    for hr in list(cluster, HELM, "HelmRelease").await? {
        let (source, chart) = match owners::helm_source_ref(&hr) {
            Some((kind, ns, name)) => {
                let (hr_ns, hr_name) = namespace_name(&hr);
                // source-controller names the HelmChart `<namespace>-<name>`, in the source's
                // namespace.
                let chart_name = format!("{hr_ns}-{hr_name}");
                (
                    get(SOURCE, &kind, &ns, &name).await,
                    get(SOURCE, "HelmChart", &ns, &chart_name).await,
                )
            }
            None => (None, None),
        };
        out.helm_releases.push((hr, source, chart));
    }
    for app in list(cluster, ARGO, "Application").await? {
        let project = app
            .pointer("/spec/project")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        let app_ns = namespace_name(&app).0.to_string();
        let project_obj = match get(ARGO, "AppProject", &app_ns, &project).await {
            Some(p) => Some(p),
            None => get(ARGO, "AppProject", argocd_namespace, &project).await,
        };
        out.applications.push((app, project_obj));
    }
    Ok(out)
}

/// An object's namespace and name (empty when missing).
fn namespace_name(v: &Value) -> (&str, &str) {
    let at = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default();
    (at("/metadata/namespace"), at("/metadata/name"))
}

/// One report per owner in scope: those in the namespace of `-n` (every one with `-A`) and
/// those that own an object in scope.
fn owners(
    objects: OwnerObjects,
    namespace: &str,
    all_namespaces: bool,
    items: &[ObjectDiff],
) -> Vec<OwnerReport> {
    let named: BTreeSet<&str> = items.iter().filter_map(|i| i.owner.as_deref()).collect();
    let in_scope = |r: &OwnerReport| {
        all_namespaces || r.namespace == namespace || named.contains(r.owner.as_str())
    };
    let mut out = Vec::new();
    for (ks, source) in &objects.kustomizations {
        out.push(owners::kustomization(ks, source.as_ref()));
    }
    for (hr, source, chart) in &objects.helm_releases {
        let (hr_ns, hr_name) = namespace_name(hr);
        let owner = format!("Flux HelmRelease {hr_ns}/{hr_name}");
        let count = items
            .iter()
            .filter(|i| i.owner.as_deref() == Some(owner.as_str()))
            .count();
        out.push(owners::helm_release(
            hr,
            source.as_ref(),
            chart.as_ref(),
            count,
        ));
    }
    for (app, project) in &objects.applications {
        out.push(owners::application(app, project.as_ref()));
    }
    out.retain(|r| in_scope(r));
    out.sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
    out
}

/// The guard's coverage, from `doctor`'s checks.
async fn coverage(cluster: &Cluster, given: Option<&gitops_guard_core::Config>) -> Coverage {
    let mut c = Coverage {
        installed: false,
        webhook_configurations: Vec::new(),
        answering: "unknown",
        fail: 0,
        warn: 0,
        ok: 0,
        findings: Vec::new(),
        error: None,
    };
    if let Some(r) = cluster
        .resource_for(
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
        )
        .cloned()
    {
        match cluster.list(&r, None, None).await {
            Ok(all) => {
                let mut names: Vec<String> = doctor::guard::guard_configurations(&all)
                    .iter()
                    .filter_map(|v| v.pointer("/metadata/name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect();
                names.sort();
                c.installed = !names.is_empty();
                c.webhook_configurations = names;
            }
            Err(e) => c.error = Some(Error::from(e).report()),
        }
    }
    match doctor::diagnose(cluster, given).await {
        Ok(mut findings) => {
            findings.sort_by(|a, b| {
                (
                    std::cmp::Reverse(a.severity),
                    a.check,
                    &a.subject,
                    &a.finding,
                )
                    .cmp(&(
                        std::cmp::Reverse(b.severity),
                        b.check,
                        &b.subject,
                        &b.finding,
                    ))
            });
            for f in &findings {
                match f.severity {
                    Severity::Fail => c.fail += 1,
                    Severity::Warn => c.warn += 1,
                    Severity::Ok => c.ok += 1,
                }
                if f.check == "guard" && f.subject.starts_with("dry run on ") {
                    c.answering = match f.severity {
                        Severity::Ok => "yes",
                        Severity::Fail => "no",
                        Severity::Warn => "unknown",
                    };
                }
            }
            if !c.installed {
                c.answering = "no";
            }
            c.findings = findings;
        }
        Err(e) => c.error = Some(e.report()),
    }
    c
}

/// Builds the report for the scope.
pub fn build(
    session: &mut Session,
    all_namespaces: bool,
    as_of: jiff::Timestamp,
    as_of_given: bool,
    since_text: &str,
    given_config: bool,
) -> Result<Report, Error> {
    let since = parse_duration("--since", since_text)?;
    let period_start = as_of.checked_sub(since).unwrap_or(jiff::Timestamp::MIN);
    // What needs only the cluster (the owners and their sources, the guard's coverage and its
    // Events) is read on a thread of its own while this one compares every object with Git.
    let aside = Aside {
        seed: session.cluster.seed(),
        given: given_config.then(|| session.config.clone()),
        events_in: (!all_namespaces).then(|| session.namespace.clone()),
        argocd_namespace: session.config.argocd.namespace.clone(),
    };
    std::thread::scope(|scope| {
        let aside = scope.spawn(move || aside.read());
        build_with(
            session,
            all_namespaces,
            as_of,
            as_of_given,
            since_text,
            period_start,
            // A panic there is one here, as if it had run on this thread.
            || {
                aside
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            },
        )
    })
}

/// What [`build`] reads from the cluster beside the comparison.
struct Aside {
    seed: Seed,
    given: Option<gitops_guard_core::Config>,
    /// The namespace of `-n` (Events of every namespace with `-A`).
    events_in: Option<String>,
    /// Where AppProjects are looked for when not beside their Application.
    argocd_namespace: String,
}

/// What [`Aside`] read.
struct AsideReport {
    owners: OwnerObjects,
    coverage: Coverage,
    /// The guard's BreakGlass Events.
    events: Vec<Value>,
}

impl Aside {
    fn read(self) -> Result<AsideReport, Error> {
        let rt = crate::session::runtime()?;
        rt.block_on(async {
            let cluster = self.seed.connect()?;
            let owners = read_owners(&cluster, &self.argocd_namespace).await?;
            let coverage = coverage(&cluster, self.given.as_ref()).await;
            // The guard's BreakGlass Events (listings leave Events out): core/v1, as the guard
            // records.
            let mut events = Vec::new();
            if let Some(r) = cluster.resource_for("", "Event").cloned() {
                events.extend(
                    cluster
                        .list_lenient(&r, self.events_in.as_deref(), None)
                        .await?
                        .into_iter()
                        .filter(|e| e.get("reason").and_then(Value::as_str) == Some("BreakGlass")),
                );
            }
            Ok(AsideReport {
                owners,
                coverage,
                events,
            })
        })
    }
}

fn build_with(
    session: &mut Session,
    all_namespaces: bool,
    as_of: jiff::Timestamp,
    as_of_given: bool,
    since_text: &str,
    period_start: jiff::Timestamp,
    aside: impl FnOnce() -> Result<AsideReport, Error>,
) -> Result<Report, Error> {
    let Scan {
        items,
        mut listed,
        guarded,
        unmanaged,
        located,
    } = diff::scan(session, &[], all_namespaces, "applied")?;
    crate::session::left_to_exit(located);
    let max_window = session.config.break_glass.max_duration;
    // The namespace objects carry namespace-wide windows: with -n, read the one namespace.
    if !all_namespaces
        && let Some(r) = session.cluster.resource_for("", "Namespace").cloned()
        && let Ok(Some(ns)) = session
            .rt
            .block_on(session.cluster.get(&r, None, &session.namespace))
    {
        listed.push(ns);
    }
    let AsideReport {
        owners: owner_objects,
        coverage,
        events,
    } = aside()?;
    let owners = owners(owner_objects, &session.namespace, all_namespaces, &items);

    // Break-glass windows of the period, and whether what changed under them is back in Git.
    let by_key: BTreeMap<(String, String, String), &ObjectDiff> = items
        .iter()
        .map(|i| {
            (
                (
                    i.object.namespace.clone(),
                    i.object.kind.to_lowercase(),
                    i.object.name.clone(),
                ),
                i,
            )
        })
        .collect();
    let back = |ns: &str, kind: &str, name: &str| -> (&'static str, Vec<String>) {
        match by_key.get(&(ns.to_string(), kind.to_string(), name.to_string())) {
            Some(i) if i.state == "in-sync" => ("yes", Vec::new()),
            Some(i) if i.state == "missing" => ("gone", Vec::new()),
            Some(i) if i.state == "drift" => {
                ("no", i.fields.iter().map(|f| f.field.clone()).collect())
            }
            Some(i) if i.state == "stray" => ("no", Vec::new()),
            _ => ("not compared", Vec::new()),
        }
    };
    let hand = |obj: &Value, from: jiff::Timestamp, to: jiff::Timestamp| {
        crate::exceptions::hand_changes(obj, from, to)
            .into_iter()
            .map(|h| (h.manager, h.time))
            .collect()
    };
    // Exceptions in force.
    let mut exceptions: Vec<ExceptionReport> =
        crate::exceptions::collect(&listed, as_of, jiff::SignedDuration::ZERO, max_window)
            .into_iter()
            .filter(|r| r.state.starts_with("active"))
            .map(|r| ExceptionReport {
                resource: r.resource,
                namespace: r.namespace,
                exception: r.exception,
                detail: r.detail,
                until: r.until,
            })
            .collect();
    exceptions.sort_by(|a, b| {
        (&a.namespace, &a.resource, a.exception).cmp(&(&b.namespace, &b.resource, b.exception))
    });
    // The objects and the guard's Events: the windows of the period and what changed under
    // them.
    let mut with_events = listed;
    with_events.extend(events);
    let break_glass = windows::windows(&with_events, as_of, period_start, max_window, &back, &hand);
    let recorded: BTreeSet<(String, String)> = break_glass
        .iter()
        .flat_map(|w| &w.changes)
        .filter(|c| c.evidence == "event")
        .map(|c| (c.namespace.clone(), c.resource.clone()))
        .collect();

    let config = &session.config;
    let objects: Vec<ObjectReport> = items
        .iter()
        .map(|i| {
            let under_window =
                recorded.contains(&(i.object.namespace.clone(), i.object.resource()));
            ObjectReport {
                namespace: i.object.namespace.clone(),
                api_version: i.object.api_version.clone(),
                kind: i.object.kind.clone(),
                name: i.object.name.clone(),
                resource: i.object.resource(),
                owner: i.owner.clone(),
                state: i.state,
                why: (i.state == "drift")
                    .then(|| why(config, &i.fields, under_window))
                    .flatten()
                    .map(Why::label),
                file: i.file.clone(),
                compared_commit: i.commit.clone(),
                last_commit: i.last_commit.clone(),
                fields: i.fields.clone(),
                exceptions: in_force(&i.exceptions, as_of, max_window),
                note: i.note.clone(),
                error: i.error.clone(),
            }
        })
        .collect();

    let mut summary = Summary {
        owners: owners.len(),
        owners_behind: owners
            .iter()
            .filter(|o| o.up_to_date == Some(false))
            .count(),
        owners_suspended: owners.iter().filter(|o| o.suspended).count(),
        owners_not_ready: owners.iter().filter(|o| o.ready != Some(true)).count(),
        open_exceptions: exceptions.len(),
        break_glass_windows: break_glass.len(),
        unmanaged: unmanaged.len(),
        ..Summary::default()
    };
    for o in &objects {
        match o.state {
            "in-sync" => summary.in_sync += 1,
            "drift" => {
                summary.drifted += 1;
                *summary
                    .drift_reasons
                    .entry(o.why.unwrap_or(Why::Unrecorded.label()).to_string())
                    .or_default() += 1;
            }
            "missing" => summary.missing += 1,
            "stray" => summary.strays += 1,
            "not-compared" => summary.not_compared += 1,
            _ => summary.errors += 1,
        }
    }
    summary.managed = objects
        .iter()
        .filter(|o| !matches!(o.state, "missing" | "stray"))
        .count();
    summary.objects = summary.managed + summary.strays + summary.unmanaged;
    crate::session::left_to_exit(by_key);
    crate::session::left_to_exit((with_events, items));

    Ok(Report {
        api_version: API_VERSION,
        scope: Scope {
            all_namespaces,
            namespace: (!all_namespaces).then(|| session.namespace.clone()),
            guarded_namespaces: guarded.into_iter().collect(),
        },
        as_of: as_of_given.then(|| as_of.to_string()),
        period: since_text.to_string(),
        summary,
        owners,
        objects,
        unmanaged,
        exceptions,
        break_glass,
        coverage,
    })
}

/// The exit status: 2 when anything could not be compared, or the guard's coverage could not be
/// read; 1 when anything drifted, is missing or is a stray; else 0.
pub fn exit_code(report: &Report) -> u8 {
    if report.summary.errors > 0 || report.coverage.error.is_some() {
        2
    } else if report.summary.drifted + report.summary.missing + report.summary.strays > 0 {
        1
    } else {
        0
    }
}

/// The exact bytes of `-o json`: pretty JSON and a newline.
pub fn json_bytes(report: &Report) -> Result<String, Error> {
    let mut text = serde_json::to_string_pretty(report).map_err(|e| Error::Output(e.into()))?;
    text.push('\n');
    Ok(text)
}

/// The sha256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

/// The summary lines (table output and the page's summary read the same words).
pub fn summary_lines(r: &Report) -> Vec<(&'static str, String)> {
    let s = &r.summary;
    let reasons = if s.drift_reasons.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            s.drift_reasons
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let guard = if r.coverage.installed {
        format!(
            "installed, answering: {}; doctor: {} fail, {} warn, {} ok",
            r.coverage.answering, r.coverage.fail, r.coverage.warn, r.coverage.ok
        )
    } else {
        format!(
            "NOT installed; doctor: {} fail, {} warn, {} ok",
            r.coverage.fail, r.coverage.warn, r.coverage.ok
        )
    };
    let open = r.break_glass.iter().filter(|w| w.state == "open").count();
    vec![
        ("objects", s.objects.to_string()),
        ("managed", s.managed.to_string()),
        ("in the state Git says", s.in_sync.to_string()),
        ("drifted", format!("{}{reasons}", s.drifted)),
        (
            "missing (in Git, not in the cluster)",
            s.missing.to_string(),
        ),
        (
            "strays (unmanaged in guarded namespaces)",
            s.strays.to_string(),
        ),
        ("not compared", s.not_compared.to_string()),
        ("errors", s.errors.to_string()),
        ("open exceptions", s.open_exceptions.to_string()),
        (
            "owners",
            format!(
                "{} ({} behind their source, {} suspended, {} not ready)",
                s.owners, s.owners_behind, s.owners_suspended, s.owners_not_ready
            ),
        ),
        (
            "break-glass windows",
            format!("{} ({open} open)", s.break_glass_windows),
        ),
        ("guard", guard),
    ]
}

fn yes_no(b: Option<bool>) -> String {
    match b {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => "unknown".into(),
    }
}

/// A revision as tables show it: `main@sha1:3f2a9c1`.
fn short_revision(r: Option<&str>) -> String {
    match r {
        None => "-".into(),
        Some(r) => match r.rsplit_once(':') {
            Some((head, sha)) if sha.len() == 40 => format!("{head}:{}", &sha[..7]),
            _ if r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit()) => r[..7].to_string(),
            _ => r.to_string(),
        },
    }
}

/// The owners table.
pub fn owners_table(r: &Report) -> Table {
    let mut t = Table::new(&[
        "OWNER",
        "SOURCE",
        "BRANCH",
        "APPLIED",
        "CURRENT",
        "UP TO DATE",
        "VERIFIED",
        "READY",
        "SUSPENDED",
        "OBJECTS",
    ]);
    for o in &r.owners {
        let src = o.source.as_ref();
        t.push(vec![
            o.owner.clone(),
            src.map(|s| dash(&s.url)).unwrap_or_else(|| "-".into()),
            src.and_then(|s| s.branch.clone())
                .unwrap_or_else(|| "-".into()),
            short_revision(o.applied_revision.as_deref()),
            short_revision(o.current_revision.as_deref()),
            yes_no(o.up_to_date),
            o.verified.state.to_string(),
            yes_no(o.ready),
            if o.suspended { "yes" } else { "no" }.into(),
            o.objects.to_string(),
        ]);
    }
    t
}

/// The objects table.
pub fn objects_table(r: &Report) -> Table {
    let mut t = Table::new(&[
        "NAMESPACE",
        "RESOURCE",
        "OWNER",
        "STATE",
        "WHY",
        "FIELDS",
        "FILE",
        "LAST COMMIT",
        "AUTHOR",
        "DATE",
        "EXCEPTIONS",
    ]);
    for o in &r.objects {
        let why = o
            .why
            .map(str::to_string)
            .or_else(|| o.note.clone())
            .or_else(|| o.error.clone())
            .unwrap_or_default();
        t.push(vec![
            dash(&o.namespace),
            o.resource.clone(),
            o.owner.clone().unwrap_or_else(|| "-".into()),
            o.state.to_string(),
            dash(&why),
            dash(
                &o.fields
                    .iter()
                    .map(|f| f.field.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            o.file.clone().unwrap_or_else(|| "-".into()),
            o.last_commit
                .as_ref()
                .map_or("-".into(), |c| c.short().to_string()),
            o.last_commit
                .as_ref()
                .map_or("-".into(), |c| c.author.clone()),
            o.last_commit
                .as_ref()
                .map_or("-".into(), |c| c.date.to_string()),
            dash(&o.exceptions.join("; ")),
        ]);
    }
    t
}

/// The open exceptions table.
pub fn exceptions_table(r: &Report) -> Table {
    let mut t = Table::new(&["NAMESPACE", "RESOURCE", "EXCEPTION", "DETAIL", "UNTIL"]);
    for e in &r.exceptions {
        t.push(vec![
            e.namespace.clone().unwrap_or_else(|| "-".into()),
            e.resource.clone(),
            e.exception.to_string(),
            dash(&e.detail),
            e.until.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t
}

/// `kim changed deployment/web at …` for a window's changes.
pub fn change_text(c: &windows::WindowChange) -> String {
    format!("{} {} {} at {}", c.by, c.operation, c.resource, c.at)
}

/// `deployment/web: no (spec.replicas)`.
pub fn back_text(b: &windows::BackInGit) -> String {
    if b.fields.is_empty() {
        format!("{}: {}", b.resource, b.state)
    } else {
        format!("{}: {} ({})", b.resource, b.state, b.fields.join(", "))
    }
}

/// The break-glass windows table.
pub fn windows_table(r: &Report) -> Table {
    let mut t = Table::new(&[
        "NAMESPACE",
        "ON",
        "BY",
        "REASON",
        "TICKET",
        "OPENED",
        "UNTIL",
        "STATE",
        "CHANGES",
        "BACK IN GIT",
    ]);
    for w in &r.break_glass {
        t.push(vec![
            dash(&w.namespace),
            w.on.clone(),
            dash(&w.by),
            dash(&w.reason),
            w.ticket.clone().unwrap_or_else(|| "-".into()),
            w.opened.clone().unwrap_or_else(|| "-".into()),
            w.until.clone(),
            w.state.clone(),
            dash(
                &w.changes
                    .iter()
                    .map(change_text)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            dash(
                &w.back_in_git
                    .iter()
                    .map(back_text)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        ]);
    }
    t
}

/// The coverage table: what doctor fails (warnings and passes are counted in the summary and
/// listed in the JSON and HTML reports).
pub fn coverage_table(r: &Report) -> Table {
    let mut t = Table::new(&["STATUS", "CHECK", "SUBJECT", "FINDING"]);
    for f in r
        .coverage
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Fail)
    {
        t.push(vec![
            f.severity.to_string(),
            f.check.to_string(),
            f.subject.clone(),
            f.finding.clone(),
        ]);
    }
    t
}

fn section(out: &mut String, title: &str, table: &Table, empty: &str) {
    out.push('\n');
    out.push_str(title);
    out.push('\n');
    if table.rows.is_empty() {
        out.push_str(empty);
        out.push('\n');
    } else {
        out.push_str(&table.render());
    }
}

/// The table output: the summary, then a section per part of the report.
pub fn render_table(r: &Report) -> String {
    let mut out = String::new();
    let scope = match &r.scope.namespace {
        Some(ns) => format!("namespace {ns}"),
        None => "all namespaces".into(),
    };
    let as_of = r
        .as_of
        .as_ref()
        .map(|t| format!(", as of {t}"))
        .unwrap_or_default();
    out.push_str(&format!(
        "GitOps audit of {scope}{as_of} (break-glass period: {})\n\nSUMMARY\n",
        r.period
    ));
    let lines = summary_lines(r);
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (k, v) in lines {
        out.push_str(&format!("{:<width$}  {v}\n", format!("{k}:")));
    }
    section(&mut out, "OWNERS", &owners_table(r), "No owners in scope.");
    section(
        &mut out,
        "OBJECTS",
        &objects_table(r),
        "No managed objects in scope.",
    );
    section(
        &mut out,
        "EXCEPTIONS IN FORCE",
        &exceptions_table(r),
        "No exceptions in force.",
    );
    section(
        &mut out,
        "BREAK-GLASS WINDOWS",
        &windows_table(r),
        "No break-glass windows in the period.",
    );
    let guard = r.coverage.guard();
    out.push_str(&format!("\nGUARD COVERAGE\nguard: {guard}\n"));
    if let Some(e) = &r.coverage.error {
        out.push_str(&format!("error: {e}\n"));
    }
    let fails = coverage_table(r);
    if fails.rows.is_empty() {
        out.push_str("doctor finds nothing that fails.\n");
    } else {
        out.push_str(&fails.render());
    }
    out
}

/// Runs `audit`; the exit status: 0 everything is as Git says, 1 drift, missing objects or
/// strays, 2 errors.
pub fn run(global: &Global, args: &AuditArgs) -> Result<u8, Error> {
    // Arguments first: a bad one costs no cluster round trip.
    parse_duration("--since", &args.since)?;
    let as_of = args.as_of.as_deref().map(parse_time).transpose()?;
    let mut session = Session::open(global)?;
    let report = build(
        &mut session,
        args.all_namespaces,
        as_of.unwrap_or_else(jiff::Timestamp::now),
        as_of.is_some(),
        &args.since,
        global.guard_config.is_some(),
    )?;
    let text = match args.output {
        AuditFormat::Json => json_bytes(&report)?,
        AuditFormat::Table => render_table(&report),
        AuditFormat::Html => html::page(&report, &sha256_hex(json_bytes(&report)?.as_bytes())),
    };
    match &args.out {
        Some(path) => std::fs::write(path, text).map_err(|source| Error::Write {
            path: path.display().to_string(),
            source,
        })?,
        None => output::text(&mut std::io::stdout().lock(), &text)?,
    }
    for o in &report.objects {
        if let Some(e) = &o.error {
            eprintln!("error: {e}");
        }
    }
    if let Some(e) = &report.coverage.error {
        eprintln!("error: the guard's coverage: {e}");
    }
    let code = exit_code(&report);
    crate::session::left_to_exit(report);
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::compare::Change;
    use serde_json::json;

    fn field(manager: Option<&str>, allowed_by: Option<&str>) -> FieldDiff {
        FieldDiff {
            field: "spec.replicas".into(),
            change: Change::Changed {
                git: json!(2),
                live: json!(5),
            },
            manager: manager.map(str::to_string),
            time: None,
            allowed_by: allowed_by.map(str::to_string),
            path: Vec::new(),
            at: Vec::new(),
        }
    }

    #[test]
    fn why_an_object_drifted_the_worst_reason_first() {
        let config = gitops_guard_core::Config::default();
        let hand = field(Some("kubectl-edit"), None);
        let agent = field(Some("kustomize-controller"), None);
        let window = field(
            Some("kubectl-patch"),
            Some("the object's break-glass window (opened by sam until …)"),
        );
        let allowed = field(
            Some("kubectl-scale"),
            Some("gitops-guard.dev/allow-fields: spec.replicas"),
        );
        assert_eq!(
            why(&config, std::slice::from_ref(&allowed), false),
            Some(Why::Exception)
        );
        assert_eq!(
            why(&config, &[window.clone(), allowed.clone()], false),
            Some(Why::BreakGlass)
        );
        assert_eq!(
            why(&config, std::slice::from_ref(&agent), false),
            Some(Why::Unrecorded)
        );
        assert_eq!(
            why(&config, std::slice::from_ref(&agent), true),
            Some(Why::BreakGlass),
            "the guard's Event says who changed it, under which window"
        );
        assert_eq!(why(&config, &[window, hand, agent], true), Some(Why::Hand));
        assert_eq!(why(&config, &[], false), None);
    }

    #[test]
    fn revisions_are_shortened_like_the_deny_message() {
        let sha = "3f2a9c1d0e5b7a8c9d0e1f2a3b4c5d6e7f8a9b0c";
        assert_eq!(
            short_revision(Some(&format!("main@sha1:{sha}"))),
            "main@sha1:3f2a9c1"
        );
        assert_eq!(short_revision(Some(sha)), "3f2a9c1");
        assert_eq!(short_revision(Some("18.1.0")), "18.1.0");
        assert_eq!(short_revision(None), "-");
    }

    #[test]
    fn sha256_is_the_standard_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
