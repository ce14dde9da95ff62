//! AdmissionReview in and out (`admission.k8s.io/v1`), decoding only what a decision needs.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::decide::Decision;
use crate::identity::UserInfo;
use crate::object::tape::{MAX_VALUES, Refused, View};
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
    /// Decodes an AdmissionReview body, nested at any depth. Every failure is an
    /// [`Error::Review`] (or [`Error::Object`]) that says what is wrong; the webhook refuses such a
    /// review, addressing the refusal to the uid [`Envelope::recover`] finds.
    pub fn decode(body: &'a [u8]) -> Result<AdmissionRequest<'a>, Error> {
        // The fast path takes only what it can prove valid; serde_json judges everything else, so
        // both give the same request, and every error is serde_json's — but for a body of more
        // values than the scanner holds, which is refused as it is.
        if let Ok(text) = std::str::from_utf8(body) {
            match Raw::scan(text) {
                Ok(doc) => {
                    if let Some(request) = scanned_request(&doc) {
                        return Ok(request);
                    }
                }
                Err(Refused::TooManyValues) => {
                    return Err(Error::Review(format!(
                        "it holds more than {MAX_VALUES} JSON values, more than the guard reads \
                         (a review of objects that etcd can store holds far fewer)"
                    )));
                }
                Err(Refused::Invalid) => {}
            }
        }
        decode_serde(body)
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
#[cfg(test)]
fn decode_scanned<'a>(body: &'a [u8]) -> Option<AdmissionRequest<'a>> {
    scanned_request(&Raw::document(std::str::from_utf8(body).ok()?)?)
}

/// [`decode_scanned`] on the scanned body.
fn scanned_request<'a>(doc: &Raw<'a>) -> Option<AdmissionRequest<'a>> {
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

/// What can be read of an AdmissionReview that cannot be decoded (larger than the guard reads,
/// truncated, not valid JSON, not valid UTF-8, ...): enough to address a refusal to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The review's `apiVersion` when it is one the guard answers, else `admission.k8s.io/v1`.
    pub api_version: String,
    /// `request.uid`.
    pub uid: String,
}

/// Longest `request.uid` recovered from a review that cannot be decoded (the API server's are
/// 36-character UUIDs).
pub const MAX_UID: usize = 128;

impl Envelope {
    /// Reads `apiVersion` and `request.uid` from the start of `body`, without decoding anything
    /// else: every other value is skipped by its brackets and quotes, so the objects may be
    /// truncated, invalid or nested at any depth. The API server writes `kind`, `apiVersion` and
    /// then `request` with its `uid` first, so the first few hundred bytes of any review it sends
    /// are enough. `None` if the body is not a JSON object, says it is not an AdmissionReview, or
    /// has no usable uid (missing, not a string, empty, or longer than [`MAX_UID`]) before it
    /// ends or stops making sense.
    pub fn recover(body: &[u8]) -> Option<Envelope> {
        let mut c = Cursor { b: body, i: 0 };
        let (mut api_version, mut uid) = (None, None);
        c.ws();
        c.eat(b'{')?;
        c.ws();
        if c.peek() == Some(b'}') {
            return None;
        }
        loop {
            let key = c.string()?;
            c.ws();
            c.eat(b':')?;
            c.ws();
            match key {
                br#""apiVersion""# if api_version.is_none() && c.peek() == Some(b'"') => {
                    api_version = Some(c.string()?);
                }
                br#""kind""# if c.peek() == Some(b'"') => {
                    if c.string()? != br#""AdmissionReview""# {
                        return None;
                    }
                }
                br#""request""# if uid.is_none() => {
                    uid = Some(c.request_uid()?);
                    if api_version.is_some() {
                        break;
                    }
                    // `apiVersion` may still follow; without it the answer is v1.
                    if c.skip_members().is_none() {
                        break;
                    }
                }
                _ => c.skip_value()?,
            }
            c.ws();
            match c.next() {
                Some(b',') => c.ws(),
                _ => break,
            }
        }
        let uid: String = serde_json::from_slice(uid?).ok()?;
        if uid.is_empty() || uid.len() > MAX_UID {
            return None;
        }
        let api_version = api_version
            .and_then(|v| serde_json::from_slice::<String>(v).ok())
            .filter(|v| supported(v))
            .unwrap_or_else(|| "admission.k8s.io/v1".to_string());
        Some(Envelope { api_version, uid })
    }
}

/// A forgiving reader of JSON bytes for [`Envelope::recover`]: it checks only what it reads.
struct Cursor<'b> {
    b: &'b [u8],
    i: usize,
}

impl<'b> Cursor<'b> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    /// A string at the cursor, with its quotes; `None` if there is none or it does not end.
    fn string(&mut self) -> Option<&'b [u8]> {
        let start = self.i;
        self.eat(b'"')?;
        loop {
            match self.next()? {
                b'"' => return self.b.get(start..self.i),
                b'\\' => {
                    self.next()?;
                }
                _ => {}
            }
        }
    }

    /// Past the value at the cursor, counting brackets (not checking them); `None` if the body
    /// ends first.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.checked_sub(1)?;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                let start = self.i;
                while self.peek().is_some_and(|c| {
                    !matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
                }) {
                    self.i += 1;
                }
                (self.i > start && self.i < self.b.len()).then_some(())
            }
        }
    }

    /// The quoted `uid` of the `request` object at the cursor (its first `uid` member), leaving
    /// the cursor just after it.
    fn request_uid(&mut self) -> Option<&'b [u8]> {
        self.eat(b'{')?;
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            if key == br#""uid""# {
                return self.string();
            }
            self.skip_value()?;
            self.ws();
            self.eat(b',')?;
        }
    }

    /// Past the rest of the object the cursor is in (after one of its values).
    fn skip_members(&mut self) -> Option<()> {
        loop {
            self.ws();
            match self.next()? {
                b'}' => return Some(()),
                b',' => {
                    self.ws();
                    self.string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.skip_value()?;
                }
                _ => return None,
            }
        }
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

    /// A review of an UPDATE whose objects hold `spec.deep`, a value nested `depth` levels (the
    /// API server accepts about 10,000).
    fn deep_review(depth: usize) -> String {
        let object = |leaf: &str| {
            format!(
                r#"{{"apiVersion":"example.com/v1","kind":"Widget","metadata":{{"name":"w","namespace":"prod","labels":{{"kustomize.toolkit.fluxcd.io/name":"apps","kustomize.toolkit.fluxcd.io/namespace":"flux-system"}}}},"spec":{{"deep":{}{leaf}{}}}}}"#,
                r#"{"a":["#.repeat(depth / 2),
                "]}".repeat(depth / 2)
            )
        };
        format!(
            r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{"uid":"deep-1","kind":{{"group":"example.com","version":"v1","kind":"Widget"}},"resource":{{"group":"example.com","version":"v1","resource":"widgets"}},"name":"w","namespace":"prod","operation":"UPDATE","userInfo":{{"username":"ana"}},"object":{},"oldObject":{},"options":{}{}}}}}"#,
            object("1"),
            object("2"),
            "[".repeat(depth),
            "]".repeat(depth),
        )
    }

    #[test]
    fn deep_values_decode_on_both_paths_alike() {
        for depth in [200, 10_000, 100_000] {
            let body = deep_review(depth);
            // The scanner keeps its own stack; serde_json skips (as a raw value) without its
            // recursion limit of 128. Both read the same request.
            assert!(same_as_serde(body.as_bytes()), "{depth}");
            let r = AdmissionRequest::decode(body.as_bytes()).unwrap();
            assert_eq!(r.uid, "deep-1");
            let o = r.object.as_ref().unwrap();
            assert_eq!(o.label("kustomize.toolkit.fluxcd.io/name"), Some("apps"));
            assert!(o.fields.get("spec").unwrap().get().len() > depth * 3);
            // Through serde_json only (an ignored string that is not UTF-8 sends it there).
            let mut bytes = body
                .replace(r#""username":"ana""#, r#""username":"ana","x":"?""#)
                .into_bytes();
            let at = bytes.windows(3).position(|w| w == br#""?""#).unwrap() + 1;
            bytes[at] = 0xff;
            assert!(decode_scanned(&bytes).is_none());
            let r = AdmissionRequest::decode(&bytes).unwrap();
            assert_eq!(r.object.unwrap().name, "w");
        }
        // Unbalanced, a million levels deep: an error, not a crash, on both paths.
        let open = format!(
            r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{"uid":"u","object":{}"#,
            r#"{"a":["#.repeat(500_000)
        );
        assert!(decode_scanned(open.as_bytes()).is_none());
        let err = AdmissionRequest::decode(open.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("EOF"), "{err}");
        assert_eq!(
            Envelope::recover(open.as_bytes()).map(|e| e.uid).as_deref(),
            Some("u")
        );
    }

    #[test]
    fn a_review_of_more_values_than_the_scanner_holds_is_refused() {
        let n = crate::object::tape::MAX_VALUES;
        let body = format!(
            r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{"uid":"many","kind":{{}},"resource":{{}},"operation":"CREATE","object":{{"metadata":{{"name":"x"}},"data":[{}]}}}}}}"#,
            vec!["0"; n].join(",")
        );
        let err = AdmissionRequest::decode(body.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 4194304 JSON values"), "{err}");
        assert_eq!(
            Envelope::recover(body.as_bytes()).map(|e| e.uid).as_deref(),
            Some("many")
        );
        // Through serde_json (a body that is not UTF-8 somewhere): the objects' metadata is read
        // or refused, never taken for none.
        let mut body = body.replace(r#""operation":"CREATE""#, r#""operation":"CREATE","x":"?""#);
        let at = body.find(r#""?""#).unwrap() + 1;
        body.replace_range(at..at + 1, "\u{ff}");
        let bytes: Vec<u8> = body
            .bytes()
            .map(|b| if b == 0xc3 { 0xff } else { b })
            .collect();
        let r = AdmissionRequest::decode(&bytes).unwrap();
        assert_eq!(r.object.unwrap().name, "x");
        let huge_meta = format!(
            r#"{{"metadata":{{"name":"x","labels":{{}},"managedFields":[{}]}}}}"#,
            vec!["0"; n].join(",")
        );
        let fields: Fields<'_> = serde_json::from_str(&huge_meta).unwrap();
        let err = Object::from_fields(fields).unwrap_err().to_string();
        assert!(err.contains("metadata holds more than"), "{err}");
    }

    #[test]
    fn the_envelope_of_an_undecodable_review_is_recovered() {
        let v1 = |uid: &str| {
            Some(Envelope {
                api_version: "admission.k8s.io/v1".into(),
                uid: uid.into(),
            })
        };
        assert_eq!(Envelope::recover(REAL.as_bytes()), v1("7f1c"));
        assert_eq!(Envelope::recover(UPDATE.as_bytes()), v1("u-1"));
        // Cut anywhere after the uid: still addressable. Before it: not.
        let uid_end = REAL.find(r#""7f1c""#).unwrap() + r#""7f1c""#.len();
        for end in 0..REAL.len() {
            let got = Envelope::recover(&REAL.as_bytes()[..end]);
            assert_eq!(got.is_some(), end >= uid_end, "{end}: {got:?}");
        }
        // Anything after the uid may be broken.
        let mut broken = REAL.as_bytes()[..uid_end].to_vec();
        broken.extend_from_slice(b",\"object\":{\"a\":\xff\xfe[[[}}}}");
        assert_eq!(Envelope::recover(&broken), v1("7f1c"));

        let cases: [(&str, Option<(&str, &str)>); 17] = [
            (
                r#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"a"}}"#,
                Some(("admission.k8s.io/v1beta1", "a")),
            ),
            // apiVersion after the request, and the request's other members in any order.
            (
                r#"{"request":{"kind":{"x":[1,{"y":"}"}]},"name":"n\"]","uid":"b"},"apiVersion":"admission.k8s.io/v1beta1"}"#,
                Some(("admission.k8s.io/v1beta1", "b")),
            ),
            (
                r#"{"request":{"uid":"b2","object":{"a":1}},"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#,
                Some(("admission.k8s.io/v1beta1", "b2")),
            ),
            // An apiVersion the guard does not answer in: answered in v1.
            (
                r#"{"apiVersion":"v1","kind":"AdmissionReview","request":{"uid":"c"}}"#,
                Some(("admission.k8s.io/v1", "c")),
            ),
            (
                r#"{"apiVersion":5,"request":{"uid":"d"}}"#,
                Some(("admission.k8s.io/v1", "d")),
            ),
            (
                r#" {"request" : { "uid" : "\u0065" } } "#,
                Some(("admission.k8s.io/v1", "e")),
            ),
            // The first uid counts.
            (
                r#"{"request":{"uid":"f","uid":"g"}}"#,
                Some(("admission.k8s.io/v1", "f")),
            ),
            (r#"{"kind":"Pod","request":{"uid":"h"}}"#, None),
            (r#"{"request":{"uid":""}}"#, None),
            (r#"{"request":{"uid":5}}"#, None),
            (r#"{"request":{"name":"x"}}"#, None),
            (r#"{"request":null}"#, None),
            (r#"{"uid":"top-level"}"#, None),
            (r#"[{"request":{"uid":"i"}}]"#, None),
            (r#"{"request":{"uid":"\ud800"}}"#, None),
            ("{}", None),
            ("", None),
        ];
        for (body, want) in cases {
            let want = want.map(|(api_version, uid)| Envelope {
                api_version: api_version.into(),
                uid: uid.into(),
            });
            assert_eq!(Envelope::recover(body.as_bytes()), want, "{body}");
        }
        let long = format!(r#"{{"request":{{"uid":"{}"}}}}"#, "u".repeat(MAX_UID + 1));
        assert_eq!(Envelope::recover(long.as_bytes()), None);
        let long_enough = format!(r#"{{"request":{{"uid":"{}"}}}}"#, "u".repeat(MAX_UID));
        assert!(Envelope::recover(long_enough.as_bytes()).is_some());
        // A uid that is not UTF-8 is none.
        assert_eq!(Envelope::recover(b"{\"request\":{\"uid\":\"\xff\"}}"), None);
        // Nested a million levels deep before the uid: skipped by counting, not recursing.
        let deep = format!(
            r#"{{"request":{{"options":{}{},"uid":"j"}}}}"#,
            "[".repeat(1_000_000),
            "]".repeat(1_000_000)
        );
        assert_eq!(Envelope::recover(deep.as_bytes()), v1("j"));
    }

    /// Nothing known about owners or namespaces.
    struct Unknown;

    impl crate::Lookup for Unknown {
        fn owner(&self, _: &crate::OwnerRef) -> Option<crate::OwnerInfo> {
            None
        }
        fn namespace(&self, _: &str) -> Option<crate::NamespaceInfo> {
            None
        }
    }

    /// A person's UPDATE of a Flux-managed Widget with `allow-fields: {allowed}`, changing the
    /// leaf of `spec.deep` (`depth` levels of maps and lists) and, if `sibling`, `spec.sibling`.
    fn deep_update(depth: usize, allowed: &str, sibling: bool) -> String {
        let object = |leaf: &str, sibling: &str| {
            format!(
                r#"{{"apiVersion":"example.com/v1","kind":"Widget","metadata":{{"name":"w","namespace":"prod","labels":{{"kustomize.toolkit.fluxcd.io/name":"apps","kustomize.toolkit.fluxcd.io/namespace":"flux-system"}},"annotations":{{"gitops-guard.dev/allow-fields":"{allowed}"}}}},"spec":{{"sibling":{sibling},"deep":{}{leaf}{}}}}}"#,
                r#"{"a":["#.repeat(depth / 2),
                "]}".repeat(depth / 2)
            )
        };
        format!(
            r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{"uid":"deep-2","kind":{{"group":"example.com","version":"v1","kind":"Widget"}},"resource":{{"group":"example.com","version":"v1","resource":"widgets"}},"name":"w","namespace":"prod","operation":"UPDATE","userInfo":{{"username":"ana","groups":["developers","system:authenticated"]}},"object":{},"oldObject":{}}}}}"#,
            object("2", if sibling { "2" } else { "1" }),
            object("1", "1"),
        )
    }

    #[test]
    fn a_change_ten_thousand_levels_deep_is_decided_on_a_small_stack() {
        // On a thread with a quarter of the usual stack: nothing on the way recurses per level.
        let run = || {
            let now = "2026-11-21T12:00:00Z".parse().unwrap();
            let decide = |body: &str| {
                let r = AdmissionRequest::decode(body.as_bytes()).unwrap();
                crate::decide(&r, None, &crate::Config::default(), &Unknown, now)
            };
            for depth in [10_000, 100_000] {
                // allow-fields covering a sibling: the deep change is denied, and named (cut short).
                let d = decide(&deep_update(depth, "spec.sibling", false));
                assert_eq!(d.verdict, crate::Verdict::Deny, "{d:?}");
                let message = d.message.unwrap();
                assert!(
                    message.contains("Only spec.sibling may be changed by hand here")
                        && message.contains("this change also touches: spec.deep.a[0].a[0].a[0]")
                        && message.len() < 2000,
                    "{message}"
                );
                // Covering the deep value: allowed; a sibling changed with it is not.
                let d = decide(&deep_update(depth, "spec.deep", false));
                assert_eq!(
                    (d.verdict, d.reason),
                    (crate::Verdict::Allow, crate::Reason::AllowFields),
                    "{d:?}"
                );
                let d = decide(&deep_update(depth, "spec.deep", true));
                assert_eq!(d.verdict, crate::Verdict::Deny, "{d:?}");
                assert!(
                    d.message
                        .unwrap()
                        .contains("this change also touches: spec.sibling"),
                );
                // No exception: denied as managed.
                let d = decide(&deep_update(depth, "", false));
                assert_eq!(d.verdict, crate::Verdict::Deny, "{d:?}");
            }
        };
        std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(run)
            .unwrap()
            .join()
            .unwrap();
    }
}
