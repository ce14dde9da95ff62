//! `kubectl gitops break-glass`: open or close a time-boxed, reasoned break-glass window on one
//! object or one namespace. The guard checks every rule again; this command makes it easy to get
//! right (the expiry computed from `--for`, the opener's own username in `break-glass-by`).

use std::io::Write;

use gitops_guard_core::exception::{
    BREAK_GLASS_BY, BREAK_GLASS_REASON, BREAK_GLASS_TICKET, BREAK_GLASS_UNTIL,
};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use crate::Error;
use crate::cluster::{Cluster, Resource};

/// What to open a window on.
#[derive(Debug, Clone)]
pub struct Target {
    pub resource: Resource,
    pub namespace: Option<String>,
    pub name: String,
}

impl Target {
    /// `deployment/web in prod`, `namespace/prod`.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) if self.resource.namespaced => {
                format!("{}/{} in {ns}", self.resource.display_kind(), self.name)
            }
            _ => format!("{}/{}", self.resource.display_kind(), self.name),
        }
    }

    fn api(&self, cluster: &Cluster) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) if self.resource.namespaced => {
                Api::namespaced_with(cluster.client.clone(), ns, &self.resource.api)
            }
            _ => Api::all_with(cluster.client.clone(), &self.resource.api),
        }
    }
}

/// `TYPE/NAME` (in `namespace`), or `ns/NAME` / `namespace/NAME` for a whole namespace.
pub async fn target(cluster: &mut Cluster, arg: &str, namespace: &str) -> Result<Target, Error> {
    let arg = match arg.split_once('/') {
        Some(("ns", name)) => format!("namespace/{name}"),
        _ => arg.to_string(),
    };
    let (kind, name) = crate::object_args::type_and_name(&arg, None).map_err(|_| {
        Error::Usage(format!(
            "break-glass takes TYPE/NAME (deployment/web) or ns/NAME for a whole namespace, not {arg:?}"
        ))
    })?;
    let (kind, name) = (kind.as_str(), name.as_str());
    cluster.discover().await?;
    cluster.refresh_if_unknown(kind).await?;
    let resource = cluster.resolve_type(kind)?.clone();
    let namespace = resource.namespaced.then(|| namespace.to_string());
    Ok(Target {
        resource,
        namespace,
        name: name.to_string(),
    })
}

/// Who the API server says we are: SelfSubjectReview where the server has it (1.27+), else what
/// the guard answers to a dry-run window without `break-glass-by` (it names the requester).
pub async fn whoami(cluster: &Cluster, target: &Target, probe: &Value) -> Result<String, Error> {
    for version in ["v1", "v1beta1", "v1alpha1"] {
        let body = json!({"apiVersion": format!("authentication.k8s.io/{version}"), "kind": "SelfSubjectReview"});
        let request = http::Request::post(format!(
            "/apis/authentication.k8s.io/{version}/selfsubjectreviews"
        ))
        .header("Content-Type", "application/json")
        .body(body.to_string().into_bytes());
        let Ok(request) = request else { continue };
        if let Ok(review) = cluster.client.request::<Value>(request).await
            && let Some(user) = review
                .pointer("/status/userInfo/username")
                .and_then(Value::as_str)
        {
            return Ok(user.to_string());
        }
    }
    // The guard's answer to a dry run says "set it to \"<username>\"" as a warning.
    let params = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let request = kube::core::Request::new(url_path(target))
        .patch(&target.name, &params, &Patch::Merge(probe))
        .map_err(|e| Error::Invalid {
            what: "cannot build the dry-run request".into(),
            source: e.into(),
        })?;
    let response = cluster
        .client
        .send(request.map(kube::client::Body::from))
        .await
        .map_err(|source| crate::cluster::Error::Kube {
            action: format!(
                "asking the guard who you are (dry run on {})",
                target.describe()
            ),
            source,
        })?;
    // Warning headers: `299 - "text"`, quotes inside escaped.
    let warnings: Vec<String> = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|w| {
            let text = String::from_utf8_lossy(w.as_bytes());
            let text = text.trim();
            let text = text.strip_prefix("299 - ").unwrap_or(text);
            let text = text
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(text);
            text.replace("\\\"", "\"")
        })
        .collect();
    for text in &warnings {
        if let Some(user) = text
            .split("set it to \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .filter(|u| !u.is_empty())
        {
            return Ok(user.to_string());
        }
    }
    // The guard would refuse the window for another reason: say that one.
    if let Some(refusal) = warnings.iter().find(|w| w.contains("break-glass on ")) {
        let why = refusal
            .split_once("would be denied: ")
            .map_or(refusal.as_str(), |(_, why)| why);
        return Err(crate::cluster::Error::Refused {
            action: format!("cannot open a break-glass window on {}", target.describe()),
            message: why.to_string(),
        }
        .into());
    }
    Err(Error::Usage(format!(
        "cannot tell who you are: the cluster has no SelfSubjectReview API and the guard did not answer a dry run on {}; set the window by hand with kubectl annotate {} {BREAK_GLASS_BY}=<your username> …",
        target.describe(),
        target.describe().replace(" in ", " -n ")
    )))
}

fn url_path(target: &Target) -> String {
    let r = &target.resource.api;
    let base = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    match &target.namespace {
        Some(ns) if target.resource.namespaced => {
            format!("{base}/namespaces/{ns}/{}", r.plural)
        }
        _ => format!("{base}/{}", r.plural),
    }
}

/// The annotations that open a window.
pub fn window_patch(until: &str, reason: &str, ticket: Option<&str>, by: &str) -> Value {
    json!({"metadata": {"annotations": {
        BREAK_GLASS_UNTIL: until,
        BREAK_GLASS_REASON: reason,
        BREAK_GLASS_TICKET: ticket,
        BREAK_GLASS_BY: by,
    }}})
}

/// Opens (or extends) a window for `duration` from `now`.
pub async fn open(
    cluster: &Cluster,
    target: &Target,
    duration: jiff::SignedDuration,
    reason: &str,
    ticket: Option<&str>,
    now: jiff::Timestamp,
    out: &mut dyn Write,
) -> Result<(), Error> {
    if reason.trim().is_empty() {
        return Err(Error::Usage(
            "a break-glass window needs a reason: --reason \"what is broken and why Git cannot fix it now\"".into(),
        ));
    }
    if duration <= jiff::SignedDuration::ZERO {
        return Err(Error::Usage(format!(
            "--for must be a positive duration like 1h or 30m, not {duration:#}"
        )));
    }
    let until = now
        .checked_add(duration)
        .and_then(|t| t.round(jiff::Unit::Second))
        .map_err(|e| Error::Invalid {
            what: format!("--for {duration:#} is too long"),
            source: e.into(),
        })?
        .to_string();
    let probe = window_patch(&until, reason, ticket, "");
    let by = whoami(cluster, target, &probe).await?;
    let patch = window_patch(&until, reason, ticket, &by);
    target
        .api(cluster)
        .patch(&target.name, &params(), &Patch::Merge(&patch))
        .await
        .map_err(|e| refused(target, "open a break-glass window on", e))?;
    let ticket = ticket.map(|t| format!(" [{t}]")).unwrap_or_default();
    writeln!(
        out,
        "break-glass window open on {} until {until} ({duration:#} from now), opened by {by}: {reason}{ticket}\nChanges by members of the break-glass groups pass with a warning and are recorded as Events; the window closes by itself.\nBring every change back into Git afterwards: kubectl gitops exceptions",
        target.describe()
    )
    .map_err(|e| Error::Output(e.into()))
}

/// The field manager of the window's own writes, as `kubectl gitops exceptions` knows it.
pub const FIELD_MANAGER: &str = "kubectl-gitops-break-glass";

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// How far ahead of the API server this machine's clock may be when a window is closed: the
/// window's end is set this much before now (or at the newest change to the object, if later).
const CLOCK_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_secs(5);

/// Closes a window early: its end moves to now, and its reason, opener and ticket stay, so that
/// `kubectl gitops exceptions` still lists it, and the hand changes made under it, as ended.
pub async fn close(
    cluster: &Cluster,
    target: &Target,
    now: jiff::Timestamp,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let api = target.api(cluster);
    let live = api
        .get_opt(&target.name)
        .await
        .map_err(|e| refused(target, "read", e))?
        .ok_or_else(|| crate::cluster::Error::NotFound {
            resource: target.describe(),
        })?;
    let live = serde_json::to_value(&live).map_err(|e| Error::Output(e.into()))?;
    let annotation = |key: &str| {
        live.pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let Some(until) = annotation(BREAK_GLASS_UNTIL) else {
        return Err(Error::Usage(format!(
            "{} has no break-glass window to close (kubectl gitops exceptions -n {} lists them)",
            target.describe(),
            target.namespace.as_deref().unwrap_or("default")
        )));
    };
    // The newest change the API server recorded is a time it has passed (second precision).
    let newest_change = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("time")?.as_str()?.parse::<jiff::Timestamp>().ok())
        .max();
    let mut end = now.checked_sub(CLOCK_SKEW).unwrap_or(now);
    if let Some(t) = newest_change {
        end = end.max(t);
    }
    let end = end
        .round(
            jiff::TimestampRound::new()
                .smallest(jiff::Unit::Second)
                .mode(jiff::RoundMode::Trunc),
        )
        .unwrap_or(end);
    if until.parse::<jiff::Timestamp>().is_ok_and(|u| u <= end) {
        writeln!(
            out,
            "break-glass window on {} already ended at {until}",
            target.describe()
        )
        .map_err(|e| Error::Output(e.into()))?;
        return Ok(());
    }
    let patch = json!({"metadata": {"annotations": {BREAK_GLASS_UNTIL: end.to_string()}}});
    api.patch(&target.name, &params(), &Patch::Merge(&patch))
        .await
        .map_err(|e| refused(target, "close the break-glass window on", e))?;
    writeln!(
        out,
        "break-glass window on {} closed (ended {end}); kubectl gitops exceptions still lists it, with what was changed under it, until that is back in Git",
        target.describe()
    )
    .map_err(|e| Error::Output(e.into()))
}

fn refused(target: &Target, what: &str, source: kube::Error) -> Error {
    crate::cluster::Error::Kube {
        action: format!("cannot {what} {}", target.describe()),
        source,
    }
    .into()
}
