//! `kubectl gitops exceptions`: every active exception to the guard, and what was changed under it.
//!
//! Git-delivered allowances (`allow-fields`, `allow: manual`), open and recently expired break-glass
//! windows (who, why, until when), and the objects changed by hand under a window that still carry
//! those changes — the list of things to bring back into Git. A change "still carries" a hand edit
//! while a non-agent field manager (`kubectl-edit`, `kubectl-patch`, …) owns fields of the object:
//! when the agent re-applies from Git it takes those fields back and the entry disappears.

pub mod break_glass;

use std::io::Write;

use clap::Args;
use gitops_guard_core::exception::{self, Window};
use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::cluster::Cluster;
use crate::output::{self, Table, age};
use crate::session::{Global, Session};

/// `break-glass` arguments.
#[derive(Debug, Clone, Args)]
pub struct BreakGlassArgs {
    /// TYPE/NAME, or ns/NAME for every object in a namespace.
    #[arg(value_name = "TYPE/NAME")]
    pub resource: String,
    /// How long the window stays open, e.g. 30m, 1h (at most the guard's breakGlass.maxDuration).
    #[arg(long = "for", value_name = "DURATION", default_value = "1h")]
    pub duration: String,
    /// Why Git cannot be used right now (required to open a window).
    #[arg(long, required_unless_present = "close")]
    pub reason: Option<String>,
    /// An incident or ticket reference.
    #[arg(long)]
    pub ticket: Option<String>,
    /// End the window now.
    #[arg(long, conflicts_with_all = ["reason", "ticket"])]
    pub close: bool,
}

/// `exceptions` arguments.
#[derive(Debug, Clone, Args)]
pub struct ExceptionsArgs {
    /// Look in all namespaces (and at cluster-scoped objects).
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: crate::exceptions::Format,
    /// Also list windows that ended less than this long ago.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub expired_within: String,
}

/// Field managers of the agents and of Kubernetes itself: changes by them are not hand edits.
const MACHINE_MANAGERS: &[&str] = &[
    "kustomize-controller",
    "helm-controller",
    "argocd-controller",
    "argocd-application-controller",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-apiserver",
    "before-first-apply",
];

/// One exception in force (or a window that ended recently).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExceptionRow {
    /// `deployment/web`, `namespace/prod`.
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `allow-fields`, `allow-manual` or `break-glass`.
    pub exception: &'static str,
    /// `active`, `expired 12m ago`, `invalid: …`.
    pub state: String,
    /// The allowed fields, or the window's opener, reason and ticket.
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Hand changes made while the window was open that Git has not taken back yet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<HandChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandChange {
    /// `deployment/web` (in the row's namespace).
    pub resource: String,
    pub manager: String,
    pub time: String,
}

fn meta<'v>(obj: &'v Value, key: &str) -> Option<&'v str> {
    obj.pointer(&format!("/metadata/{key}"))
        .and_then(Value::as_str)
}

fn annotations(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default()
}

fn resource_name(obj: &Value) -> String {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object")
        .to_lowercase();
    format!("{kind}/{}", meta(obj, "name").unwrap_or_default())
}

/// Whether a managedFields entry holds nothing but the guard's own annotations (a break-glass
/// window's `gitops-guard.dev/break-glass-*`, whoever wrote them): bookkeeping, not a change to
/// what runs.
fn only_guard_annotations(entry: &Value) -> bool {
    let Some(fields) = entry.pointer("/fieldsV1").and_then(Value::as_object) else {
        return false;
    };
    let only =
        |map: &serde_json::Map<String, Value>, key: &str| map.len() == 1 && map.contains_key(key);
    let Some(metadata) = fields.get("f:metadata").and_then(Value::as_object) else {
        return false;
    };
    let Some(annotations) = metadata.get("f:annotations").and_then(Value::as_object) else {
        return false;
    };
    only(fields, "f:metadata")
        && only(metadata, "f:annotations")
        && !annotations.is_empty()
        && annotations
            .keys()
            .all(|k| k.starts_with("f:gitops-guard.dev/") || k == ".")
}

/// Hand changes to `obj` between `from` and `to` still present in its managedFields.
pub fn hand_changes(obj: &Value, from: jiff::Timestamp, to: jiff::Timestamp) -> Vec<HandChange> {
    let Some(entries) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| {
            let manager = e.get("manager").and_then(Value::as_str)?;
            let time_text = e.get("time").and_then(Value::as_str)?;
            let time = time_text.parse::<jiff::Timestamp>().ok()?;
            let by_hand = !MACHINE_MANAGERS.contains(&manager)
                // A status write is the controller's; a scale write (1.22+) is a hand change.
                && e.get("subresource").and_then(Value::as_str) != Some("status")
                && !only_guard_annotations(e);
            (by_hand && time >= from && time <= to).then(|| HandChange {
                resource: resource_name(obj),
                manager: manager.to_string(),
                time: time_text.to_string(),
            })
        })
        .collect()
}

/// The exceptions carried by these objects (namespaces included), as of `now`. Windows that
/// ended more than `expired_within` ago are left out; `max_window` bounds how far back a window's
/// changes are looked for (the guard's `breakGlass.maxDuration`).
pub fn collect(
    objects: &[Value],
    now: jiff::Timestamp,
    expired_within: jiff::SignedDuration,
    max_window: jiff::SignedDuration,
) -> Vec<ExceptionRow> {
    let mut rows = Vec::new();
    for obj in objects {
        let ann = annotations(obj);
        let is_namespace = obj.get("kind").and_then(Value::as_str) == Some("Namespace")
            && obj.get("apiVersion").and_then(Value::as_str) == Some("v1");
        let namespace = meta(obj, "namespace").map(str::to_string);
        if ann.contains_key(exception::ALLOW_FIELDS) {
            let (state, detail) = match exception::allow_fields(&ann) {
                Ok(paths) => (
                    "active".to_string(),
                    paths
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                Err(e) => (
                    format!("invalid: {e}"),
                    ann[exception::ALLOW_FIELDS].clone(),
                ),
            };
            rows.push(ExceptionRow {
                resource: resource_name(obj),
                namespace: namespace.clone(),
                exception: "allow-fields",
                state,
                detail,
                until: None,
                changed: Vec::new(),
            });
        }
        if exception::allows_manual(&ann) {
            rows.push(ExceptionRow {
                resource: resource_name(obj),
                namespace: namespace.clone(),
                exception: "allow-manual",
                state: "active".into(),
                detail: "opted out of the guard entirely".into(),
                until: None,
                changed: Vec::new(),
            });
        }
        if let Some(mut w) = Window::from_annotations(&ann) {
            // Dated as the guard dates it: by the managedFields entry that wrote it.
            w.opened = obj
                .pointer("/metadata/managedFields")
                .and_then(exception::window_opened);
            rows.extend(window_row(
                obj,
                objects,
                &w,
                is_namespace,
                now,
                expired_within,
                max_window,
            ));
        }
    }
    rows
}

fn window_row(
    obj: &Value,
    objects: &[Value],
    w: &Window,
    is_namespace: bool,
    now: jiff::Timestamp,
    expired_within: jiff::SignedDuration,
    max_window: jiff::SignedDuration,
) -> Option<ExceptionRow> {
    let until = w.until();
    let state = match &until {
        Err(e) => format!("invalid: {e}"),
        Ok(u) if w.counts_at_rest_within(now, max_window) => {
            format!("active, ends in {}", age(now, *u))
        }
        Ok(_) if w.is_open(now) => format!(
            "not honoured: {}",
            match &w.opened {
                None => "nothing records when it was opened".to_string(),
                Some(_) if w.by.is_empty() => "it names nobody as its opener".to_string(),
                Some(o) =>
                    format!("opened {o}, it runs past breakGlass.maxDuration ({max_window:#})"),
            }
        ),
        Ok(u) if *u <= now => {
            if now.duration_since(*u) > expired_within {
                return None;
            }
            format!("expired {} ago", age(*u, now))
        }
        Ok(_) => "invalid: no reason given".into(),
    };
    let changed = match until {
        Ok(u) => {
            let from = u.checked_sub(max_window).unwrap_or(jiff::Timestamp::MIN);
            if is_namespace {
                let ns = meta(obj, "name").unwrap_or_default();
                objects
                    .iter()
                    .filter(|o| meta(o, "namespace") == Some(ns))
                    .flat_map(|o| hand_changes(o, from, u))
                    .collect()
            } else {
                hand_changes(obj, from, u)
            }
        }
        Err(_) => Vec::new(),
    };
    let ticket = w
        .ticket
        .as_deref()
        .map(|t| format!(" [{t}]"))
        .unwrap_or_default();
    Some(ExceptionRow {
        resource: resource_name(obj),
        namespace: meta(obj, "namespace").map(str::to_string),
        exception: "break-glass",
        state,
        detail: format!(
            "by {}: {}{ticket}",
            if w.by.is_empty() { "?" } else { &w.by },
            w.reason
        ),
        until: Some(w.until.clone()),
        changed,
    })
}

/// Output formats of `exceptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Prints the rows as kubectl would: an aligned table, or a JSON/YAML list for audits.
pub fn print(rows: &[ExceptionRow], format: Format, out: &mut dyn Write) -> Result<(), Error> {
    let items = serde_json::json!({ "items": rows });
    match format {
        Format::Json => output::json(out, &items),
        Format::Yaml => output::yaml(out, &items),
        Format::Table if rows.is_empty() => output::text(out, "No exceptions found.\n"),
        Format::Table => {
            let mut table = Table::new(&[
                "RESOURCE",
                "NAMESPACE",
                "EXCEPTION",
                "STATE",
                "DETAIL",
                "CHANGED BY HAND (bring back into Git)",
            ]);
            for r in rows {
                let changed = if r.changed.is_empty() {
                    "-".to_string()
                } else {
                    r.changed
                        .iter()
                        .map(|c| format!("{} by {} at {}", c.resource, c.manager, c.time))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                table.push(vec![
                    r.resource.clone(),
                    r.namespace.clone().unwrap_or_else(|| "-".into()),
                    r.exception.to_string(),
                    r.state.clone(),
                    r.detail.clone(),
                    changed,
                ]);
            }
            output::text(out, &table.render())
        }
    }
}

/// Lists every object in `namespace` (all namespaces when `None`), and the namespaces themselves,
/// and collects their exceptions.
pub async fn list(
    cluster: &mut Cluster,
    namespace: Option<&str>,
    now: jiff::Timestamp,
    expired_within: jiff::SignedDuration,
    max_window: jiff::SignedDuration,
) -> Result<Vec<ExceptionRow>, Error> {
    cluster.discover().await?;
    let mut objects = Vec::new();
    let resources: Vec<_> = cluster
        .listable(namespace.is_some())
        .into_iter()
        .cloned()
        .collect();
    for r in &resources {
        objects.extend(cluster.list_lenient(r, namespace, None).await?);
    }
    if let Some(ns) = namespace {
        let ns_resource = cluster.resolve_type("namespaces")?.clone();
        if let Some(obj) = cluster.get(&ns_resource, None, ns).await? {
            objects.push(obj);
        }
    }
    Ok(collect(&objects, now, expired_within, max_window))
}

fn duration(flag: &str, text: &str) -> Result<jiff::SignedDuration, Error> {
    text.trim().parse::<jiff::SignedDuration>().map_err(|_| {
        Error::Usage(format!(
            "{flag} takes a duration like 30m or 4h, not {text:?}"
        ))
    })
}

/// `kubectl gitops exceptions`.
pub fn run(global: &Global, args: &ExceptionsArgs) -> Result<bool, Error> {
    let expired_within = duration("--expired-within", &args.expired_within)?;
    let mut session = Session::open(global)?;
    let namespace = (!args.all_namespaces).then(|| session.namespace.clone());
    let max_window = session.config.break_glass.max_duration;
    let rows = session.rt.block_on(list(
        &mut session.cluster,
        namespace.as_deref(),
        jiff::Timestamp::now(),
        expired_within,
        max_window,
    ))?;
    print(&rows, args.output, &mut std::io::stdout().lock())?;
    Ok(true)
}

/// `kubectl gitops break-glass`.
pub fn run_break_glass(global: &Global, args: &BreakGlassArgs) -> Result<bool, Error> {
    let mut session = Session::open(global)?;
    let namespace = session.namespace.clone();
    let target = session.rt.block_on(break_glass::target(
        &mut session.cluster,
        &args.resource,
        &namespace,
    ))?;
    let mut stdout = std::io::stdout().lock();
    if args.close {
        session.rt.block_on(break_glass::close(
            &session.cluster,
            &target,
            jiff::Timestamp::now(),
            &mut stdout,
        ))?;
    } else {
        let reason = args.reason.clone().unwrap_or_default();
        session.rt.block_on(break_glass::open(
            &session.cluster,
            &target,
            duration("--for", &args.duration)?,
            &reason,
            args.ticket.as_deref(),
            jiff::Timestamp::now(),
            &mut stdout,
        ))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> jiff::Timestamp {
        "2026-11-21T12:00:00Z".parse().unwrap()
    }

    fn hours(h: i64) -> jiff::SignedDuration {
        jiff::SignedDuration::from_hours(h)
    }

    #[test]
    fn collects_allowances_windows_and_hand_changes() {
        let objects = vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod",
                "annotations": {"gitops-guard.dev/allow-fields": "spec.replicas"}}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "manual", "namespace": "prod",
                "annotations": {"gitops-guard.dev/allow": "manual"}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "prod",
            "annotations": {"gitops-guard.dev/break-glass-until": "2026-11-21T13:00:00Z",
                            "gitops-guard.dev/break-glass-reason": "db outage",
                            "gitops-guard.dev/break-glass-ticket": "INC-7",
                            "gitops-guard.dev/break-glass-by": "sam"},
            "managedFields": [
                {"manager": "kustomize-controller", "operation": "Apply", "time": "2026-11-21T11:00:00Z"},
                // The window's own write (dates it) is bookkeeping, not a hand change.
                {"manager": "kubectl-gitops-break-glass", "operation": "Update", "time": "2026-11-21T11:50:00Z",
                 "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:gitops-guard.dev/break-glass-until": {}}}}},
                {"manager": "kubectl-set", "operation": "Update", "time": "2026-11-21T11:50:00Z",
                 "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}}},
                {"manager": "kubectl-edit", "operation": "Update", "time": "2026-11-20T11:50:00Z"},
                {"manager": "kubectl-patch", "operation": "Update", "time": "2026-11-21T11:55:00Z", "subresource": "status"},
                // `kubectl scale` on 1.22+: a write to the scale subresource, a hand change.
                {"manager": "kubectl", "operation": "Update", "time": "2026-11-21T11:56:00Z", "subresource": "scale",
                 "fieldsV1": {"f:spec": {"f:replicas": {}}}}
            ]}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "staging",
                "annotations": {"gitops-guard.dev/break-glass-until": "2026-11-21T11:30:00Z",
                                "gitops-guard.dev/break-glass-reason": "registry down",
                                "gitops-guard.dev/break-glass-by": "kim"}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker", "namespace": "staging",
                "managedFields": [{"manager": "kubectl-scale", "operation": "Update", "time": "2026-11-21T11:10:00Z"}]}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "old",
                "annotations": {"gitops-guard.dev/break-glass-until": "2026-11-19T11:30:00Z",
                                "gitops-guard.dev/break-glass-reason": "long ago", "gitops-guard.dev/break-glass-by": "kim"}}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "plain", "namespace": "prod"}}),
            // Written while the guard was away: nothing dates it, so the guard does not honour it.
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "forged", "namespace": "prod",
                "annotations": {"gitops-guard.dev/break-glass-until": "2099-01-01T00:00:00Z",
                                "gitops-guard.dev/break-glass-reason": "x", "gitops-guard.dev/break-glass-by": "eve"}}}),
        ];
        let rows = collect(&objects, now(), hours(24), hours(4));
        let summary: Vec<(String, &str, String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r.resource.clone(),
                    r.exception,
                    r.state.clone(),
                    r.detail.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "deployment/web".into(),
                    "allow-fields",
                    "active".into(),
                    "spec.replicas".into()
                ),
                (
                    "configmap/manual".into(),
                    "allow-manual",
                    "active".into(),
                    "opted out of the guard entirely".into()
                ),
                (
                    "deployment/api".into(),
                    "break-glass",
                    "active, ends in 60m".into(),
                    "by sam: db outage [INC-7]".into()
                ),
                (
                    "namespace/staging".into(),
                    "break-glass",
                    "expired 30m ago".into(),
                    "by kim: registry down".into()
                ),
                (
                    "configmap/forged".into(),
                    "break-glass",
                    "not honoured: nothing records when it was opened".into(),
                    "by eve: x".into()
                ),
            ]
        );
        assert_eq!(
            rows[2].changed,
            vec![
                HandChange {
                    resource: "deployment/api".into(),
                    manager: "kubectl-set".into(),
                    time: "2026-11-21T11:50:00Z".into()
                },
                HandChange {
                    resource: "deployment/api".into(),
                    manager: "kubectl".into(),
                    time: "2026-11-21T11:56:00Z".into()
                }
            ],
            "only hand edits within the window count (a scale write too); status writes and agents do not"
        );
        assert_eq!(rows[3].changed[0].resource, "deployment/worker");
        assert_eq!(rows[3].changed[0].manager, "kubectl-scale");
    }

    #[test]
    fn invalid_annotations_are_shown_not_hidden() {
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "a",
            "annotations": {"gitops-guard.dev/allow-fields": "spec..x",
                            "gitops-guard.dev/break-glass-until": "soon", "gitops-guard.dev/break-glass-reason": "r"}}}),
        ];
        let rows = collect(&objects, now(), hours(24), hours(4));
        assert!(rows[0].state.starts_with("invalid:"), "{rows:?}");
        assert!(rows[1].state.contains("RFC 3339"), "{rows:?}");
    }

    #[test]
    fn table_and_json_output() {
        let rows = vec![ExceptionRow {
            resource: "deployment/web".into(),
            namespace: Some("prod".into()),
            exception: "allow-fields",
            state: "active".into(),
            detail: "spec.replicas".into(),
            until: None,
            changed: Vec::new(),
        }];
        let mut out = Vec::new();
        print(&rows, Format::Table, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "RESOURCE         NAMESPACE   EXCEPTION      STATE    DETAIL          CHANGED BY HAND (bring back into Git)\n\
             deployment/web   prod        allow-fields   active   spec.replicas   -\n"
        );
        let mut out = Vec::new();
        print(&rows, Format::Json, &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["items"][0]["exception"], "allow-fields");
        let mut out = Vec::new();
        print(&[], Format::Table, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "No exceptions found.\n");
    }
}
