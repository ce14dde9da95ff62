//! The admission hot path without HTTP: decode → decide → encode. Synchronous and allocation-light;
//! the only I/O of a request (the parent of a scale request) happens before, in [`crate::app`].

use gitops_guard_core::review::encode_response;
use gitops_guard_core::{
    AdmissionRequest, Config, Decision, Lookup, Object, Operation, Verdict, decide,
};
use std::sync::Arc;

use tracing::{debug, info};

use crate::Error;
use crate::logging::{DenialKey, DenialLog};
use crate::metrics::Metrics;

/// A decision and the AdmissionReview response that carries it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub decision: Decision,
    /// The JSON response body.
    pub body: Vec<u8>,
}

/// Decides a decoded request and encodes the response.
pub fn answer(
    req: &AdmissionRequest<'_>,
    scale_parent: Option<&Object<'_>>,
    config: &Config,
    lookup: &dyn Lookup,
    now: jiff::Timestamp,
) -> Answer {
    let decision = decide(req, scale_parent, config, lookup, now);
    let body = encode_response(&req.api_version, &req.uid, &decision);
    Answer { decision, body }
}

/// The whole path for a request that needs no scale parent: decode, decide, encode.
pub fn handle(
    body: &[u8],
    config: &Config,
    lookup: &dyn Lookup,
    now: jiff::Timestamp,
) -> Result<Answer, Error> {
    let req = AdmissionRequest::decode(body)?;
    Ok(answer(&req, None, config, lookup, now))
}

pub use gitops_guard_core::decide::{needs_live_object, needs_parent};

/// An AdmissionReview response refusing the request for a reason other than a decision (the
/// guard could not find out what it needed, or was busy or slow: 429 and 504 ask the API server to
/// retry), with an HTTP-like `code` such as 500.
pub fn error_response(api_version: &str, uid: &str, code: u16, message: &str) -> Vec<u8> {
    let api_version = if api_version.is_empty() {
        "admission.k8s.io/v1"
    } else {
        api_version
    };
    let review = serde_json::json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "response": {
            "uid": uid,
            "allowed": false,
            "status": {
                "code": code,
                "reason": match code {
                    413 => "RequestEntityTooLarge",
                    429 => "TooManyRequests",
                    504 => "Timeout",
                    500.. => "InternalError",
                    _ => "BadRequest",
                },
                "message": message,
            },
        },
    });
    serde_json::to_vec(&review).unwrap_or_default()
}

/// The request's apiVersion for messages: `apps/v1`, or `v1` for the core group.
pub fn api_version_of(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// One log line per decision: info for deny and warn, debug for allow. Repeats of a denial or
/// warning within [`crate::logging::DENIAL_LOG_WINDOW`] are counted by `denials` instead (see
/// [`DenialLog`]).
pub fn log_decision(
    req: &AdmissionRequest<'_>,
    decision: &Decision,
    denials: &Arc<DenialLog>,
    metrics: &Metrics,
) {
    let operation = match req.operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    };
    let subresource_kind;
    let kind = if req.sub_resource.is_empty() {
        req.kind.kind.as_str()
    } else {
        subresource_kind = format!("{}/{}", req.resource.resource, req.sub_resource);
        subresource_kind.as_str()
    };
    let name = req.object_name();
    if decision.verdict == Verdict::Allow {
        debug!(
            uid = %req.uid,
            operation = %operation,
            kind = %kind,
            namespace = %req.namespace,
            name = %name,
            user = %req.user.username,
            dry_run = req.dry_run,
            verdict = %decision.verdict.as_str(),
            reason = %decision.reason.as_str(),
            "admission decision"
        );
        return;
    }
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    let key = DenialKey {
        user: &req.user.username,
        operation,
        kind,
        namespace: &req.namespace,
        name,
        verdict: decision.verdict.as_str(),
        reason: decision.reason.as_str(),
    };
    if !denials.admit(key, metrics) {
        return;
    }
    let message = decision
        .message
        .as_deref()
        .or(decision.warnings.first().map(String::as_str))
        .unwrap_or_default();
    info!(
        uid = %req.uid,
        operation = %operation,
        kind = %kind,
        namespace = %req.namespace,
        name = %name,
        user = %req.user.username,
        dry_run = req.dry_run,
        verdict = %decision.verdict.as_str(),
        reason = %decision.reason.as_str(),
        owner = %OwnerText(decision),
        detail = %OneLine(message),
        "admission decision"
    );
}

/// The decision's owner, or nothing.
struct OwnerText<'a>(&'a Decision);

impl std::fmt::Display for OwnerText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0.owner {
            Some(owner) => std::fmt::Display::fmt(owner, f),
            None => Ok(()),
        }
    }
}

/// A message with its line breaks as spaces.
struct OneLine<'a>(&'a str);

impl std::fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = self.0.split('\n');
        if let Some(first) = parts.next() {
            f.write_str(first)?;
        }
        for part in parts {
            f.write_str(" ")?;
            f.write_str(part)?;
        }
        Ok(())
    }
}
