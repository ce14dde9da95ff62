//! AdmissionReview in and out (`admission.k8s.io/v1`), decoding only what a decision needs.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::decide::Decision;
use crate::identity::UserInfo;
use crate::object::{Fields, Object};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct GroupVersionKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct GroupVersionResource {
    pub group: String,
    pub version: String,
    pub resource: String,
}

/// The request part of an AdmissionReview.
#[derive(Debug, Clone)]
pub struct AdmissionRequest<'a> {
    /// `apiVersion` of the review, echoed in the response.
    pub api_version: String,
    pub uid: String,
    pub kind: GroupVersionKind,
    pub resource: GroupVersionResource,
    /// `""` for the main resource, else `status`, `scale`, …
    pub sub_resource: String,
    pub name: String,
    pub namespace: String,
    pub operation: Operation,
    pub user: UserInfo,
    pub object: Option<Object<'a>>,
    pub old_object: Option<Object<'a>>,
    pub dry_run: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn<'a> {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(borrow)]
    request: Option<RequestIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn<'a> {
    uid: String,
    kind: GroupVersionKind,
    resource: GroupVersionResource,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    operation: Operation,
    #[serde(default)]
    user_info: UserInfo,
    #[serde(borrow, default)]
    object: Option<Fields<'a>>,
    #[serde(borrow, default)]
    old_object: Option<Fields<'a>>,
    #[serde(default)]
    dry_run: Option<bool>,
}

impl<'a> AdmissionRequest<'a> {
    /// Decodes an AdmissionReview body. Every failure is an [`Error::Review`] that says what is
    /// wrong, for an HTTP 400.
    pub fn decode(body: &'a [u8]) -> Result<AdmissionRequest<'a>, Error> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            return Err(Error::Review("the body is not a JSON object".into()));
        }
        let review: ReviewIn<'a> =
            serde_json::from_slice(body).map_err(|e| Error::Review(e.to_string()))?;
        if review.kind.as_deref() != Some("AdmissionReview") {
            return Err(Error::Review(format!(
                "kind is {:?}, expected \"AdmissionReview\"",
                review.kind.unwrap_or_default()
            )));
        }
        let api_version = review.api_version.unwrap_or_default();
        if api_version != "admission.k8s.io/v1" && api_version != "admission.k8s.io/v1beta1" {
            return Err(Error::Review(format!(
                "apiVersion {api_version:?} is not admission.k8s.io/v1"
            )));
        }
        let r = review
            .request
            .ok_or_else(|| Error::Review("no request in the AdmissionReview".into()))?;
        if r.uid.is_empty() {
            return Err(Error::Review("request.uid is empty".into()));
        }
        let object = r.object.map(Object::from_fields).transpose()?;
        let old_object = r.old_object.map(Object::from_fields).transpose()?;
        Ok(AdmissionRequest {
            api_version,
            uid: r.uid,
            kind: r.kind,
            resource: r.resource,
            sub_resource: r.sub_resource.unwrap_or_default(),
            name: r.name.unwrap_or_default(),
            namespace: r.namespace.unwrap_or_default(),
            operation: r.operation,
            user: r.user_info,
            object,
            old_object,
            dry_run: r.dry_run.unwrap_or(false),
        })
    }

    /// The object's name, from the request or (on CREATE with generateName) the object.
    pub fn object_name(&self) -> &str {
        if !self.name.is_empty() {
            return &self.name;
        }
        self.object
            .as_ref()
            .or(self.old_object.as_ref())
            .map(|o| o.name.as_str())
            .unwrap_or_default()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'d> {
    api_version: &'d str,
    kind: &'static str,
    response: ResponseOut<'d>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'d> {
    uid: &'d str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut<'d>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'d [String],
    #[serde(skip_serializing_if = "<[(String, String)]>::is_empty", with = "pairs")]
    audit_annotations: &'d [(String, String)],
}

#[derive(Serialize)]
struct StatusOut<'d> {
    code: u16,
    reason: &'static str,
    message: &'d str,
}

mod pairs {
    use serde::Serializer;
    use serde::ser::SerializeMap;

    pub fn serialize<S: Serializer>(v: &&[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(v.len()))?;
        for (k, val) in v.iter() {
            map.serialize_entry(k, val)?;
        }
        map.end()
    }
}

/// Encodes the AdmissionReview response for a decision.
pub fn encode_response(api_version: &str, uid: &str, decision: &Decision) -> Vec<u8> {
    let allowed = decision.allowed();
    let status = (!allowed).then(|| StatusOut {
        code: 403,
        reason: "Forbidden",
        message: decision.message.as_deref().unwrap_or_default(),
    });
    let out = ReviewOut {
        api_version,
        kind: "AdmissionReview",
        response: ResponseOut {
            uid,
            allowed,
            status,
            warnings: &decision.warnings,
            audit_annotations: &decision.audit_annotations,
        },
    };
    // Serializing these plain structs cannot fail; fall back to a deny that says so if it did.
    serde_json::to_vec(&out).unwrap_or_else(|e| {
        format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":{},"allowed":false,"status":{{"code":500,"message":{}}}}}}}"#,
            serde_json::Value::from(uid),
            serde_json::Value::from(format!("gitops-guard could not encode its answer: {e}"))
        )
        .into_bytes()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPDATE: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
        "uid":"u-1","kind":{"group":"apps","version":"v1","kind":"Deployment"},
        "resource":{"group":"apps","version":"v1","resource":"deployments"},
        "name":"web","namespace":"prod","operation":"UPDATE",
        "userInfo":{"username":"ana","groups":["developers"],"extra":{"x":["y"]}},
        "object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"prod"}},
        "oldObject":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"prod"}},
        "dryRun":true,"options":{"kind":"UpdateOptions"}}}"#;

    #[test]
    fn decodes_what_a_decision_needs() {
        let r = AdmissionRequest::decode(UPDATE.as_bytes()).unwrap();
        assert_eq!(r.uid, "u-1");
        assert_eq!(r.operation, Operation::Update);
        assert_eq!(r.kind.kind, "Deployment");
        assert_eq!(r.resource.resource, "deployments");
        assert_eq!(r.user.username, "ana");
        assert!(r.dry_run);
        assert_eq!(r.object.as_ref().unwrap().name, "web");
        assert_eq!(r.object_name(), "web");
    }

    #[test]
    fn malformed_reviews_are_errors() {
        let cases = [
            ("", "EOF"),
            ("{", "EOF"),
            ("[]", "not a JSON object"),
            (
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#,
                "expected \"AdmissionReview\"",
            ),
            (
                r#"{"apiVersion":"v1","kind":"AdmissionReview"}"#,
                "apiVersion",
            ),
            (
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
                "no request",
            ),
            (
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"","kind":{},"resource":{},"operation":"CREATE"}}"#,
                "uid",
            ),
            (
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{},"resource":{},"operation":"PATCH"}}"#,
                "unknown variant",
            ),
            (
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{},"resource":{},"operation":"CREATE","object":{"metadata":{"labels":{"a":["b"]}}}}}"#,
                "metadata.labels",
            ),
        ];
        for (body, needle) in cases {
            let err = AdmissionRequest::decode(body.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{body}: {err}");
        }
    }
}
