//! The break-glass part of `audit`: the windows opened in the period, from the guard's
//! `gitops-guard.dev/break-glass-*` annotations (which stay on the object after the window ends)
//! and from the `BreakGlass` Events the guard records for each change made under one (which
//! outlive a window whose annotations were removed, for as long as the cluster keeps Events).
//! Pure: the caller lists the objects and Events.

use std::collections::BTreeMap;

use gitops_guard_core::exception::{self, Window};
use regex::Regex;
use serde::Serialize;
use serde_json::Value;

/// One change made under a window.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowChange {
    /// `deployment/web`.
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The user (from the guard's Event) or field manager (from managedFields) that changed it.
    pub by: String,
    /// `changed`, `created`, `deleted`.
    pub operation: String,
    /// When (UTC).
    pub at: String,
    /// `event` (the guard's BreakGlass Event) or `managedFields` (a hand edit still on the object).
    pub evidence: &'static str,
}

/// Whether an object changed under a window is back in the state Git says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackInGit {
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// `yes` (in sync with Git), `no` (still drifted), `gone` (no longer in the cluster) or
    /// `not compared` (not managed, or not comparable).
    pub state: &'static str,
    /// The fields still not as Git says.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// One break-glass window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowReport {
    /// What it was opened on: `deployment/web`, `namespace/prod`.
    pub on: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Who opened it (`break-glass-by`).
    pub by: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// When it was opened (the managedFields entry that wrote it), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened: Option<String>,
    pub until: String,
    /// As of the report: `open`, `closed`, `not honoured` (the guard does not count it: nothing
    /// dates it, it names nobody, or it runs past breakGlass.maxDuration), `invalid` (its end is
    /// not a time) or `record only` (only Events tell of it: its annotations are gone).
    pub state: String,
    pub changes: Vec<WindowChange>,
    pub back_in_git: Vec<BackInGit>,
}

/// Whether an object is back as Git says: `(namespace, kind, name)` → a [`BackInGit`] state and
/// the fields that still differ.
pub type BackInGitFn<'a> = &'a dyn Fn(&str, &str, &str) -> (&'static str, Vec<String>);
/// An object's hand edits between two times still on it: `(manager, time)`.
pub type HandChangesFn<'a> =
    &'a dyn Fn(&Value, jiff::Timestamp, jiff::Timestamp) -> Vec<(String, String)>;
/// `(kind, namespace, name)`, `(namespace, by, until)`.
type Triple = (String, String, String);

/// A change the guard's Event records: (user, operation, window by, until, reason, ticket).
struct Recorded {
    user: String,
    operation: String,
    by: String,
    until: String,
    reason: String,
    ticket: Option<String>,
}

/// Reads the guard's Event message (`core::decide::break_glass`): `break-glass: <what> <op> by
/// <user> under the window opened by <by> until <until> (<reason>[ [<ticket>]]); …`.
fn parse_message(re: &Regex, message: &str) -> Option<Recorded> {
    let c = re.captures(message)?;
    let rest = c.name("rest")?.as_str();
    let (reason, ticket) = match rest.strip_suffix(']').and_then(|r| r.rsplit_once(" [")) {
        Some((reason, ticket)) => (reason.to_string(), Some(ticket.to_string())),
        None => (rest.to_string(), None),
    };
    Some(Recorded {
        user: c.name("user")?.as_str().to_string(),
        operation: c.name("op")?.as_str().to_string(),
        by: c.name("by")?.as_str().to_string(),
        until: c.name("until")?.as_str().to_string(),
        reason,
        ticket,
    })
}

fn text<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A guard BreakGlass Event as core/v1 or events.k8s.io/v1 shows it: (kind, namespace, name,
/// time, message).
fn event_fields(e: &Value) -> Option<(String, String, String, String, String)> {
    let reason = text(e, "/reason")?;
    let component = text(e, "/source/component")
        .or_else(|| text(e, "/deprecatedSource/component"))
        .or_else(|| text(e, "/reportingComponent"))
        .or_else(|| text(e, "/reportingController"));
    if reason != "BreakGlass" || component != Some("gitops-guard") {
        return None;
    }
    let involved = e.get("involvedObject").or_else(|| e.get("regarding"))?;
    let time = text(e, "/firstTimestamp")
        .or_else(|| text(e, "/deprecatedFirstTimestamp"))
        .or_else(|| text(e, "/eventTime"))
        .or_else(|| text(e, "/metadata/creationTimestamp"))
        .unwrap_or_default();
    Some((
        text(involved, "/kind").unwrap_or_default().to_string(),
        text(involved, "/namespace").unwrap_or_default().to_string(),
        text(involved, "/name").unwrap_or_default().to_string(),
        normalize_time(time),
        text(e, "/message")
            .or_else(|| text(e, "/note"))
            .unwrap_or_default()
            .to_string(),
    ))
}

/// A time as RFC 3339 UTC with whole seconds (`2026-11-21T12:00:00Z`), or as given.
pub fn normalize_time(t: &str) -> String {
    t.parse::<jiff::Timestamp>()
        .ok()
        .and_then(|ts| jiff::Timestamp::from_second(ts.as_second()).ok())
        .map(|ts| ts.to_string())
        .unwrap_or_else(|| t.to_string())
}

fn annotations(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default()
}

/// The windows of `objects` (namespaces included) and of the guard's Events among them that
/// were open at some time between `since` and `as_of`, each with what changed under it.
/// `back_in_git` is asked, for `(namespace, kind, name)`, whether that object is as Git says
/// (a [`BackInGit`] state and the fields that still differ); `hand_changes` gives an object's hand edits between two
/// times that are still on it.
pub fn windows(
    objects: &[Value],
    as_of: jiff::Timestamp,
    since: jiff::Timestamp,
    max_window: jiff::SignedDuration,
    back_in_git: BackInGitFn<'_>,
    hand_changes: HandChangesFn<'_>,
) -> Vec<WindowReport> {
    // Key: (namespace of the window's scope, by, until).
    let mut found: BTreeMap<Triple, WindowReport> = BTreeMap::new();
    // (kind, namespace, name) of the objects changed under each window.
    let mut touched: BTreeMap<Triple, Vec<Triple>> = BTreeMap::new();
    for obj in objects {
        let ann = annotations(obj);
        let Some(mut w) = Window::from_annotations(&ann) else {
            continue;
        };
        w.opened = obj
            .pointer("/metadata/managedFields")
            .and_then(exception::window_opened);
        let kind = text(obj, "/kind").unwrap_or_default();
        let name = text(obj, "/metadata/name").unwrap_or_default();
        let is_namespace = kind == "Namespace" && text(obj, "/apiVersion") == Some("v1");
        let scope_ns = if is_namespace {
            name.to_string()
        } else {
            text(obj, "/metadata/namespace")
                .unwrap_or_default()
                .to_string()
        };
        let until = w.until();
        let state = match &until {
            Err(_) => "invalid".to_string(),
            Ok(_) if w.counts_at_rest_within(as_of, max_window) => "open".to_string(),
            Ok(_) if w.is_open(as_of) => "not honoured".to_string(),
            Ok(u) if *u < since => continue,
            Ok(_) => "closed".to_string(),
        };
        let mut changes = Vec::new();
        if let Ok(u) = until {
            let from = w
                .opened
                .as_deref()
                .and_then(|o| o.parse::<jiff::Timestamp>().ok())
                .unwrap_or_else(|| u.checked_sub(max_window).unwrap_or(jiff::Timestamp::MIN));
            let end = u.min(as_of);
            let under: Vec<&Value> = if is_namespace {
                objects
                    .iter()
                    .filter(|o| text(o, "/metadata/namespace") == Some(name))
                    .collect()
            } else {
                vec![obj]
            };
            for o in under {
                for (manager, at) in hand_changes(o, from, end) {
                    changes.push(WindowChange {
                        resource: format!(
                            "{}/{}",
                            text(o, "/kind").unwrap_or_default().to_lowercase(),
                            text(o, "/metadata/name").unwrap_or_default()
                        ),
                        namespace: text(o, "/metadata/namespace")
                            .unwrap_or_default()
                            .to_string(),
                        by: manager,
                        operation: "changed".into(),
                        at: normalize_time(&at),
                        evidence: "managedFields",
                    });
                }
            }
        }
        let key = (scope_ns.clone(), w.by.clone(), w.until.clone());
        for c in &changes {
            touched.entry(key.clone()).or_default().push((
                kind_of_resource(&c.resource),
                c.namespace.clone(),
                name_of_resource(&c.resource),
            ));
        }
        found.insert(
            key,
            WindowReport {
                on: format!("{}/{name}", kind.to_lowercase()),
                namespace: if is_namespace {
                    String::new()
                } else {
                    scope_ns
                },
                by: w.by.clone(),
                reason: w.reason.clone(),
                ticket: w.ticket.clone(),
                opened: w.opened.as_deref().map(normalize_time),
                until: w.until.clone(),
                state,
                changes,
                back_in_git: Vec::new(),
            },
        );
    }
    let Ok(re) = Regex::new(
        r"^break-glass: .+? (?P<op>changed|created|deleted) by (?P<user>\S+) under the window opened by (?P<by>.*?) until (?P<until>\S+) \((?P<rest>.*)\); ",
    ) else {
        return found.into_values().collect();
    };
    for e in objects {
        let Some((kind, ns, name, time, message)) = event_fields(e) else {
            continue;
        };
        let Some(r) = parse_message(&re, &message) else {
            continue;
        };
        if let Ok(t) = time.parse::<jiff::Timestamp>()
            && (t < since || t > as_of)
        {
            continue;
        }
        let key = (ns.clone(), r.by.clone(), r.until.clone());
        let entry = found.entry(key.clone()).or_insert_with(|| WindowReport {
            on: format!("namespace/{ns}"),
            namespace: String::new(),
            by: r.by.clone(),
            reason: r.reason.clone(),
            ticket: r.ticket.clone(),
            opened: None,
            until: r.until.clone(),
            state: "record only".into(),
            changes: Vec::new(),
            back_in_git: Vec::new(),
        });
        if entry.state == "record only" && entry.on == format!("namespace/{ns}") {
            // Only Events tell of it: the window was on this object or its namespace; an Event
            // cannot say which. Name the object the first Event is about.
            entry.on = format!("{}/{name}", kind.to_lowercase());
            entry.namespace = ns.clone();
        }
        entry.changes.push(WindowChange {
            resource: format!("{}/{name}", kind.to_lowercase()),
            namespace: ns.clone(),
            by: r.user,
            operation: r.operation,
            at: time,
            evidence: "event",
        });
        touched
            .entry(key)
            .or_default()
            .push((kind.to_lowercase(), ns, name));
    }
    let mut out: Vec<WindowReport> = Vec::new();
    for (key, mut w) in found {
        w.changes.sort();
        w.changes.dedup();
        let mut objects = touched.remove(&key).unwrap_or_default();
        objects.sort();
        objects.dedup();
        for (kind, ns, name) in objects {
            let (state, fields) = back_in_git(&ns, &kind, &name);
            w.back_in_git.push(BackInGit {
                resource: format!("{kind}/{name}"),
                namespace: ns,
                state,
                fields,
            });
        }
        out.push(w);
    }
    out.sort_by(|a, b| {
        (&a.namespace, &a.on, &a.until, &a.by).cmp(&(&b.namespace, &b.on, &b.until, &b.by))
    });
    out
}

fn kind_of_resource(r: &str) -> String {
    r.split_once('/').map_or("", |(k, _)| k).to_string()
}

fn name_of_resource(r: &str) -> String {
    r.split_once('/').map_or(r, |(_, n)| n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn no_hand_changes(_: &Value, _: jiff::Timestamp, _: jiff::Timestamp) -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn a_window_with_the_change_the_guard_recorded_and_whether_git_has_it_back() {
        let objects = vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "cart", "namespace": "shop", "annotations": {
                    "gitops-guard.dev/break-glass-until": "2026-11-21T13:00:00Z",
                    "gitops-guard.dev/break-glass-reason": "checkout down (payments)",
                    "gitops-guard.dev/break-glass-ticket": "INC-7",
                    "gitops-guard.dev/break-glass-by": "sam"},
                "managedFields": [{"manager": "kubectl-gitops-break-glass", "operation": "Update",
                    "time": "2026-11-21T11:50:00Z",
                    "fieldsV1": {"f:metadata": {"f:annotations": {"f:gitops-guard.dev/break-glass-until": {}}}}}]}}),
            json!({"apiVersion": "v1", "kind": "Event", "reason": "BreakGlass",
                "metadata": {"name": "cart.1", "namespace": "shop"},
                "source": {"component": "gitops-guard"},
                "involvedObject": {"kind": "Deployment", "namespace": "shop", "name": "cart"},
                "firstTimestamp": "2026-11-21T11:55:00Z",
                "message": "break-glass: deployment/cart in shop changed by kim under the window opened by sam until 2026-11-21T13:00:00Z (checkout down (payments) [INC-7]); it is managed by Flux Kustomization flux-system/shop: bring the change back into Git"}),
            // Another component's Event with the same reason is not the guard's.
            json!({"apiVersion": "v1", "kind": "Event", "reason": "BreakGlass",
                "metadata": {"name": "x", "namespace": "shop"}, "source": {"component": "someone"},
                "involvedObject": {"kind": "Deployment", "namespace": "shop", "name": "cart"},
                "message": "break-glass: deployment/cart in shop changed by eve under the window opened by eve until 2026-11-21T13:00:00Z (x); y"}),
        ];
        let back = |ns: &str, kind: &str, name: &str| {
            assert_eq!((ns, kind, name), ("shop", "deployment", "cart"));
            ("no", vec!["spec.replicas".to_string()])
        };
        let w = windows(
            &objects,
            t("2026-11-21T12:00:00Z"),
            t("2026-11-01T00:00:00Z"),
            jiff::SignedDuration::from_hours(4),
            &back,
            &no_hand_changes,
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].on, "deployment/cart");
        assert_eq!(w[0].state, "open");
        assert_eq!(w[0].reason, "checkout down (payments)");
        assert_eq!(w[0].ticket.as_deref(), Some("INC-7"));
        assert_eq!(w[0].opened.as_deref(), Some("2026-11-21T11:50:00Z"));
        assert_eq!(w[0].changes.len(), 1);
        assert_eq!(w[0].changes[0].by, "kim");
        assert_eq!(w[0].changes[0].evidence, "event");
        assert_eq!(w[0].back_in_git[0].state, "no");
        assert_eq!(w[0].back_in_git[0].fields, vec!["spec.replicas"]);

        // Closed before the period: left out; closed within it: `closed`.
        let w = windows(
            &objects[..1],
            t("2026-11-23T12:00:00Z"),
            t("2026-11-22T00:00:00Z"),
            jiff::SignedDuration::from_hours(4),
            &back,
            &no_hand_changes,
        );
        assert!(w.is_empty(), "{w:?}");
        let w = windows(
            &objects[..1],
            t("2026-11-23T12:00:00Z"),
            t("2026-11-21T00:00:00Z"),
            jiff::SignedDuration::from_hours(4),
            &back,
            &no_hand_changes,
        );
        assert_eq!(w[0].state, "closed");
    }

    #[test]
    fn a_window_only_events_remember() {
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "Event", "reason": "BreakGlass",
            "metadata": {"name": "web.1", "namespace": "prod"},
            "source": {"component": "gitops-guard"},
            "involvedObject": {"kind": "ConfigMap", "namespace": "prod", "name": "env"},
            "firstTimestamp": "2026-11-21T11:55:00Z",
            "message": "break-glass: configmap/env in prod deleted by kim under the window opened by sam until 2026-11-21T13:00:00Z (registry down); ConfigMap comes from Git: bring the change back into Git"}),
        ];
        let w = windows(
            &objects,
            t("2026-11-21T12:00:00Z"),
            t("2026-11-01T00:00:00Z"),
            jiff::SignedDuration::from_hours(4),
            &|_, _, _| ("not compared", Vec::new()),
            &no_hand_changes,
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].state, "record only");
        assert_eq!(w[0].on, "configmap/env");
        assert_eq!(w[0].ticket, None);
        assert_eq!(w[0].changes[0].operation, "deleted");
        assert_eq!(w[0].back_in_git[0].state, "not compared");
    }
}
