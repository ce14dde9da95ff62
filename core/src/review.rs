//! AdmissionReview in and out (`admission.k8s.io/v1`), decoding only what a decision needs.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::decide::Decision;
use crate::identity::UserInfo;
use crate::object::tape::View;
use crate::object::{Fields, Object, Raw};

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
        // The fast path takes only what it can prove valid; serde_json judges everything else, so
        // both give the same request, and every error is serde_json's.
        match decode_scanned(body) {
            Some(request) => Ok(request),
            None => decode_serde(body),
        }
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

/// The body read by serde_json, which validates it as it goes.
fn decode_serde(body: &[u8]) -> Result<AdmissionRequest<'_>, Error> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(Error::Review("the body is not a JSON object".into()));
    }
    let review: ReviewIn<'_> =
        serde_json::from_slice(body).map_err(|e| Error::Review(e.to_string()))?;
    if review.kind.as_deref() != Some("AdmissionReview") {
        return Err(Error::Review(format!(
            "kind is {:?}, expected \"AdmissionReview\"",
            review.kind.unwrap_or_default()
        )));
    }
    let api_version = review.api_version.unwrap_or_default();
    if !supported(&api_version) {
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

fn supported(api_version: &str) -> bool {
    api_version == "admission.k8s.io/v1" || api_version == "admission.k8s.io/v1beta1"
}

/// The body scanned once by the object scanner, the few small envelope fields read with the same
/// types serde_json reads in [`decode_serde`]. `None` for anything that is not a valid, complete
/// request exactly as `decode_serde` would read it (malformed JSON, a missing or duplicated field,
/// a wrong type, ...): `decode_serde` then says what is wrong.
fn decode_scanned<'a>(body: &'a [u8]) -> Option<AdmissionRequest<'a>> {
    let doc = Raw::document(std::str::from_utf8(body).ok()?)?;
    let mut no_scratch = None;
    let review = doc.view(&mut no_scratch);
    const REVIEW: [&str; 3] = ["apiVersion", "kind", "request"];
    let [api_version, kind, request] = pick(review, REVIEW)?;
    if read::<Option<String>>(kind)?.as_deref() != Some("AdmissionReview") {
        return None;
    }
    let api_version = read::<Option<String>>(api_version)?.unwrap_or_default();
    if !supported(&api_version) {
        return None;
    }
    const REQUEST: [&str; 11] = [
        "uid",
        "kind",
        "resource",
        "subResource",
        "name",
        "namespace",
        "operation",
        "userInfo",
        "object",
        "oldObject",
        "dryRun",
    ];
    let [
        uid,
        kind,
        resource,
        sub_resource,
        name,
        namespace,
        operation,
        user,
        object,
        old_object,
        dry_run,
    ] = pick(request?, REQUEST)?;
    let uid: String = read(Some(uid?))?;
    if uid.is_empty() {
        return None;
    }
    let object_of = |view: Option<View<'_, 'a>>| -> Option<Option<Object<'a>>> {
        match view {
            None => Some(None),
            Some(v) if v.is_null() => Some(None),
            Some(v) => Object::from_fields(Fields::parse(&doc.inside(v))?)
                .ok()
                .map(Some),
        }
    };
    Some(AdmissionRequest {
        api_version,
        uid,
        kind: read(Some(kind?))?,
        resource: read(Some(resource?))?,
        sub_resource: read::<Option<String>>(sub_resource)?.unwrap_or_default(),
        name: read::<Option<String>>(name)?.unwrap_or_default(),
        namespace: read::<Option<String>>(namespace)?.unwrap_or_default(),
        operation: read(Some(operation?))?,
        user: match user {
            Some(u) => read(Some(u))?,
            None => UserInfo::default(),
        },
        object: object_of(object)?,
        old_object: object_of(old_object)?,
        dry_run: read::<Option<bool>>(dry_run)?.unwrap_or(false),
    })
}

/// The values of an object's members named `names` (others are ignored, as serde ignores unknown
/// fields). `None` if it is not an object, or a name is there twice (serde_json refuses that).
fn pick<'t, 'a, const N: usize>(
    object: View<'t, 'a>,
    names: [&str; N],
) -> Option<[Option<View<'t, 'a>>; N]> {
    let mut found = [None; N];
    for (key, value) in object.members()? {
        let key = key.decode()?;
        if let Some(i) = names.iter().position(|n| *n == key)
            && found[i].replace(value).is_some()
        {
            return None;
        }
    }
    Some(found)
}

/// A small envelope field read as serde_json would; a missing one as `null` (so only `Option`
/// types accept it). `None` if serde_json refuses it.
fn read<'de, T: Deserialize<'de>>(value: Option<View<'_, 'de>>) -> Option<T> {
    serde_json::from_str(value.map_or("null", |v| v.text)).ok()
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

    /// A review as the API server sends it: metadata with managedFields, a last-applied annotation
    /// full of escapes, unicode, nested lists; some whitespace.
    const REAL: &str = r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"7f1c",
 "kind":{"group":"apps","version":"v1","kind":"Deployment"},"resource":{"group":"apps","version":"v1","resource":"deployments"},
 "requestKind":{"group":"apps","version":"v1","kind":"Deployment"},"name":"web","namespace":"prod","operation":"UPDATE",
 "userInfo":{"username":"ana","uid":"u","groups":["developers","system:authenticated"],"extra":{"k":["v"]}},
 "object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"prod","generation":8,
  "labels":{"app.kubernetes.io/name":"web","kustomize.toolkit.fluxcd.io/name":"apps","kustomize.toolkit.fluxcd.io/namespace":"flux-system"},
  "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"apps/v1\",\"metadata\":{\"name\":\"web\"}}\n","gitops-guard.dev/allow":"manual","note":"caf\u00e9 😀"},
  "managedFields":[{"manager":"kustomize-controller","operation":"Apply","fieldsV1":{"f:metadata":{"f:labels":{".":{},"f:app":{}}}}}]},
  "spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"web","image":"ghcr.io/acme/web:1.4.3","args":["-v",  "--x=1"]}]}}},
  "status":{"replicas":2}},
 "oldObject":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"prod","generation":7,"labels":null},
  "spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"web","image":"ghcr.io/acme/web:1.4.2"}]}}}},
 "dryRun":false,"options":{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1"}}}"#;

    /// What the fast path decodes, serde_json decodes the same; what it leaves, serde_json judges.
    fn same_as_serde(body: &[u8]) -> bool {
        let serde = decode_serde(body).map(|r| format!("{r:?}"));
        match decode_scanned(body) {
            Some(fast) => {
                assert_eq!(Ok(format!("{fast:?}")), serde.map_err(|e| e.to_string()));
                true
            }
            None => false,
        }
    }

    fn outcome(r: Result<AdmissionRequest<'_>, Error>) -> Result<String, String> {
        r.map(|r| format!("{r:?}")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_scanned_request_is_the_one_serde_json_reads() {
        assert!(same_as_serde(REAL.as_bytes()));
        assert!(same_as_serde(UPDATE.as_bytes()));
        let r = AdmissionRequest::decode(REAL.as_bytes()).unwrap();
        let o = r.object.as_ref().unwrap();
        assert_eq!(o.annotation("note"), Some("café 😀"));
        assert_eq!(
            o.annotation("kubectl.kubernetes.io/last-applied-configuration"),
            Some("{\"apiVersion\":\"apps/v1\",\"metadata\":{\"name\":\"web\"}}\n")
        );
        assert_eq!(o.label("kustomize.toolkit.fluxcd.io/name"), Some("apps"));
        assert!(r.old_object.as_ref().unwrap().labels.is_empty());
        assert_eq!(r.user.groups, ["developers", "system:authenticated"]);
        assert!(!r.dry_run);
    }

    #[test]
    fn truncated_and_mutated_reviews_decode_as_serde_json_decodes_them() {
        let body = REAL.as_bytes();
        for end in 0..body.len() {
            let cut = &body[..end];
            assert!(!same_as_serde(cut));
            assert_eq!(
                outcome(AdmissionRequest::decode(cut)),
                outcome(decode_serde(cut))
            );
        }
        let (mut fast, mut total) = (0, 0);
        for at in 0..body.len() {
            for with in [b'"', b'\\', b'{', b']', b',', b' ', b'1', b'x', 0xff] {
                let mut mutated = body.to_vec();
                mutated[at] = with;
                total += 1;
                if same_as_serde(&mutated) {
                    fast += 1;
                }
                assert_eq!(
                    outcome(AdmissionRequest::decode(&mutated)),
                    outcome(decode_serde(&mutated))
                );
            }
        }
        // Many mutations land in strings and keep the review valid.
        assert!(fast > total / 5, "{fast} of {total}");
    }

    #[test]
    fn envelope_edge_cases_decode_as_serde_json_decodes_them() {
        let with = |request: &str| {
            format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{{request}}}}}"#
            )
        };
        let base = r#""uid":"x","kind":{},"resource":{},"operation":"CREATE""#;
        let cases = [
            (
                with(&format!(r#"{base},"uid":"y""#)),
                Some("duplicate field `uid`"),
            ),
            (with(&format!(r#"{base},"object":5"#)), Some("invalid type")),
            (with(&format!(r#"{base},"object":null"#)), None),
            (
                with(&format!(r#"{base},"userInfo":null"#)),
                Some("invalid type"),
            ),
            (
                with(&format!(r#"{base},"dryRun":"yes""#)),
                Some("invalid type"),
            ),
            (
                with(r#""u\u0069d":"x","kind":{},"resource":{},"operation":"CREATE""#),
                None,
            ),
            (
                with(
                    r#""uid":"x","kind":["apps","v1","Deployment"],"resource":{},"operation":"CREATE""#,
                ),
                None,
            ),
            (with(&format!(r#"{base},"\ud800":1"#)), Some("hex escape")),
            (
                with(&format!(
                    r#"{base},"object":{{"metadata":{{"annotations":{{"a":"\ud800"}}}}}}"#
                )),
                Some("metadata.annotations"),
            ),
            (
                with(&format!(
                    r#"{base},"object":{{"metadata":{{"labels":{{"a":"1","a":"2"}}}}}}"#
                )),
                None,
            ),
            (
                format!(
                    r#"{{"kind":"AdmissionReview","kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{{base}}}}}"#
                ),
                Some("duplicate field `kind`"),
            ),
            (
                format!(
                    " \n{{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1beta1\",\"request\":{{{base}}}}}\t"
                ),
                None,
            ),
        ];
        for (body, error) in cases {
            let got = outcome(AdmissionRequest::decode(body.as_bytes()));
            assert_eq!(got, outcome(decode_serde(body.as_bytes())), "{body}");
            match error {
                Some(needle) => {
                    let err = got.unwrap_err();
                    assert!(err.contains(needle), "{body}: {err}");
                }
                None => assert!(same_as_serde(body.as_bytes()), "{body}"),
            }
        }
        let labels = with(&format!(
            r#"{base},"object":{{"metadata":{{"labels":{{"a":"1","a":"2"}}}}}}"#
        ));
        let r = AdmissionRequest::decode(labels.as_bytes()).unwrap();
        assert_eq!(r.object.unwrap().label("a"), Some("2"));
    }

    #[test]
    fn invalid_utf8_in_a_field_the_guard_ignores_is_still_accepted() {
        // serde_json skips ignored strings without checking their UTF-8; the fast path needs a
        // str, so it leaves such a body to serde_json, which accepts it as before.
        let mut body = UPDATE.as_bytes().to_vec();
        let marker = br#""options":{"kind":""#;
        let at = body
            .windows(marker.len())
            .position(|w| w == marker)
            .unwrap()
            + marker.len();
        body[at] = 0xff;
        assert!(decode_scanned(&body).is_none());
        let r = AdmissionRequest::decode(&body).unwrap();
        assert_eq!(r.uid, "u-1");
    }
}
