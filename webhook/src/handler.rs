//! The admission hot path without HTTP: decode → decide → encode. Synchronous and allocation-light;
//! the only I/O of a request (the parent of a scale request) happens before, in [`crate::app`].

use gitops_guard_core::review::encode_response;
use gitops_guard_core::{
    AdmissionRequest, Config, Decision, Lookup, Object, Operation, Verdict, decide,
};
use tracing::{debug, info};

use crate::Error;

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

pub use gitops_guard_core::decide::{needs_live_object, needs_scale_parent};

/// An AdmissionReview response refusing the request for a reason other than a decision (the
/// guard could not find out what it needed), with an HTTP-like `code` such as 500.
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

/// One log line per decision: info for deny and warn, debug for allow.
pub fn log_decision(req: &AdmissionRequest<'_>, decision: &Decision) {
    let operation = match req.operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    };
    let kind = if req.sub_resource.is_empty() {
        req.kind.kind.clone()
    } else {
        format!("{}/{}", req.resource.resource, req.sub_resource)
    };
    let message = decision
        .message
        .as_deref()
        .or(decision.warnings.first().map(String::as_str))
        .unwrap_or_default();
    match decision.verdict {
        Verdict::Allow => debug!(
            uid = %req.uid,
            operation = %operation,
            kind = %kind,
            namespace = %req.namespace,
            name = %req.object_name(),
            user = %req.user.username,
            dry_run = req.dry_run,
            verdict = %decision.verdict.as_str(),
            reason = %decision.reason.as_str(),
            "admission decision"
        ),
        Verdict::Warn | Verdict::Deny => info!(
            uid = %req.uid,
            operation = %operation,
            kind = %kind,
            namespace = %req.namespace,
            name = %req.object_name(),
            user = %req.user.username,
            dry_run = req.dry_run,
            verdict = %decision.verdict.as_str(),
            reason = %decision.reason.as_str(),
            owner = %decision.owner.as_ref().map(ToString::to_string).unwrap_or_default(),
            detail = %message.replace('\n', " "),
            "admission decision"
        ),
    }
}
