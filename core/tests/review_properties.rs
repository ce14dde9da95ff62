//! Property tests of the review decoder (`AdmissionRequest::decode`) against serde_json, and of
//! `decide` against the API server's escaping.
//!
//! Reviews are generated as `serde_json::Value`s (envelope fields of the right type or of any
//! other, objects with metadata, random values around them) and written out in several styles:
//! compact, with whitespace and shuffled members, with `<`, `>`, `&` escaped as the API server
//! writes them, with characters spelled as `\uXXXX` escapes, with duplicated members; some are
//! then cut or mutated character by character. For every body:
//!
//! - whatever the decoder accepts, serde_json accepts as a `Value`, and the decoder read the same
//!   uid, apiVersion, kind, resource, subresource, names, operation, user, dry-run flag and
//!   objects (every top-level field's value, the name, namespace, labels and annotations);
//! - the fast path (one scan of the body) and the serde_json path give the same request.
//!
//! Where the decoder deliberately differs from serde_json reading the body into a `Value`:
//! - depth: serde_json's `Value` refuses values nested deeper than 128; the decoder reads any depth
//!   (it keeps its own stack; so do serde_json's `RawValue` skips the serde path uses), which the
//!   unit tests in `core/src/review.rs` check to 100,000 levels;
//! - lone UTF-16 surrogate escapes (`"\ud800"`) in values the decoder keeps raw or ignores are
//!   accepted, as serde_json itself accepts them there; in the envelope's strings (uid, names,
//!   user) and in labels and annotations they are refused, as by serde_json; an object's
//!   `metadata.name` or `namespace` that is not a readable string (another type, or such an
//!   escape) reads as empty;
//! - duplicate members: the envelope refuses them (serde_json's derived structs do), a duplicate
//!   label or annotation means its last value (as in a `Value`), but a duplicate member of an
//!   object or its `metadata` means its first value where the `Value` keeps the last. The API
//!   server writes objects from its own structs and never sends a duplicate member.
//! - invalid UTF-8 inside an ignored string is accepted (serde_json skips such strings unchecked);
//! - as with serde_json reading into the envelope's structs, `kind`, `resource` and `userInfo` may
//!   also be given as arrays of their fields in order (serde's sequence form of a struct).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

use std::collections::BTreeMap;

use gitops_guard_core::diff::{FieldPath, PatSeg};
use gitops_guard_core::object::Fields;
use gitops_guard_core::review::encode_response;
use gitops_guard_core::{
    AdmissionRequest, Config, Lookup, NamespaceInfo, Operation, OwnerInfo, OwnerKind, OwnerRef,
    decide,
};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Map, Value, json};

// ---- values ----------------------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{0,6}",
        2 => "[ -~]{0,8}",
        1 => proptest::collection::vec(any::<char>(), 0..4).prop_map(|v| v.into_iter().collect()),
        1 => Just("<b>a & b</b>".to_string()),
        1 => Just("café 😀 \u{2028}".to_string()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z]{1,5}",
        1 => text(),
        1 => Just("kind".to_string()),
        1 => Just("uid".to_string()),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Usually a value of the expected shape, sometimes any value at all.
fn or_any<S: Strategy<Value = Value> + 'static>(good: S) -> BoxedStrategy<Value> {
    prop_oneof![9 => good, 1 => value()].boxed()
}

fn string_value() -> BoxedStrategy<Value> {
    or_any(text().prop_map(Value::from))
}

fn object_of(members: Vec<(&'static str, Option<Value>)>) -> Value {
    Value::Object(
        members
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?)))
            .collect(),
    )
}

fn string_map() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        3 => "[a-z]{1,4}",
        1 => Just("kustomize.toolkit.fluxcd.io/name".to_string()),
        1 => Just("gitops-guard.dev/allow-fields".to_string()),
        1 => text(),
    ];
    proptest::collection::btree_map(key, text(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k, v.into())).collect()))
}

/// An object as Kubernetes stores it: metadata, then random content.
fn k8s_object() -> impl Strategy<Value = Value> {
    let metadata = (
        proptest::option::weighted(0.9, string_value()),
        proptest::option::weighted(0.8, string_value()),
        proptest::option::weighted(0.7, or_any(string_map())),
        proptest::option::weighted(0.7, or_any(string_map())),
        proptest::option::weighted(0.3, value()),
    )
        .prop_map(|(name, namespace, labels, annotations, managed)| {
            object_of(vec![
                ("name", name),
                ("namespace", namespace),
                ("labels", labels),
                ("annotations", annotations),
                ("managedFields", managed),
            ])
        });
    (
        proptest::option::weighted(0.9, or_any(metadata)),
        proptest::option::weighted(0.8, value()),
        proptest::option::weighted(0.3, value()),
        proptest::option::of(string_value()),
    )
        .prop_map(|(metadata, spec, data, api_version)| {
            object_of(vec![
                ("apiVersion", api_version),
                ("kind", Some("Widget".into())),
                ("metadata", metadata),
                ("spec", spec),
                ("data", data),
            ])
        })
}

fn gvk(last: &'static str) -> BoxedStrategy<Value> {
    or_any(
        (
            proptest::option::weighted(0.9, string_value()),
            proptest::option::weighted(0.9, string_value()),
            proptest::option::weighted(0.9, string_value()),
        )
            .prop_map(move |(g, v, k)| object_of(vec![("group", g), ("version", v), (last, k)])),
    )
}

fn user_info() -> BoxedStrategy<Value> {
    or_any(
        (
            proptest::option::weighted(0.9, string_value()),
            proptest::option::weighted(
                0.7,
                or_any(proptest::collection::vec(text(), 0..3).prop_map(|v| json!(v))),
            ),
            proptest::option::weighted(0.3, value()),
            proptest::option::weighted(0.3, string_value()),
        )
            .prop_map(|(username, groups, extra, uid)| {
                object_of(vec![
                    ("username", username),
                    ("groups", groups),
                    ("extra", extra),
                    ("uid", uid),
                ])
            }),
    )
}

fn object_or_null() -> impl Strategy<Value = Value> {
    prop_oneof![1 => Just(Value::Null), 6 => k8s_object(), 1 => value()]
}

fn review() -> impl Strategy<Value = Value> {
    let operation = prop_oneof![
        Just(json!("CREATE")),
        Just(json!("UPDATE")),
        Just(json!("DELETE")),
        Just(json!("CONNECT")),
        Just(json!("PATCH")),
        value(),
    ];
    let uid = prop_oneof![8 => "[a-f0-9-]{1,12}".prop_map(Value::from), 1 => Just(json!("")), 1 => value()];
    let request = (
        (
            uid,
            gvk("kind"),
            gvk("resource"),
            proptest::option::weighted(0.3, string_value()),
            proptest::option::weighted(0.8, string_value()),
            proptest::option::weighted(0.8, string_value()),
            operation,
        ),
        (
            proptest::option::weighted(0.9, user_info()),
            proptest::option::weighted(0.8, object_or_null()),
            proptest::option::weighted(0.6, object_or_null()),
            proptest::option::weighted(0.5, or_any(any::<bool>().prop_map(Value::from))),
            proptest::option::weighted(0.3, value()),
        ),
    )
        .prop_map(
            |(
                (uid, kind, resource, sub, name, namespace, op),
                (user, object, old, dry, options),
            )| {
                object_of(vec![
                    ("uid", Some(uid)),
                    ("kind", Some(kind)),
                    ("resource", Some(resource)),
                    ("subResource", sub),
                    ("name", name),
                    ("namespace", namespace),
                    ("operation", Some(op)),
                    ("userInfo", user),
                    ("object", object),
                    ("oldObject", old),
                    ("dryRun", dry),
                    ("options", options),
                ])
            },
        );
    let api_version = prop_oneof![
        6 => Just(json!("admission.k8s.io/v1")),
        2 => Just(json!("admission.k8s.io/v1beta1")),
        1 => string_value(),
    ];
    let kind = prop_oneof![9 => Just(json!("AdmissionReview")), 1 => string_value()];
    (
        proptest::option::weighted(0.97, api_version),
        proptest::option::weighted(0.97, kind),
        proptest::option::weighted(0.97, or_any(request)),
        proptest::option::weighted(0.2, value()),
    )
        .prop_map(|(api_version, kind, request, extra)| {
            object_of(vec![
                ("apiVersion", api_version),
                ("kind", kind),
                ("request", request),
                ("extra", extra),
            ])
        })
}

// ---- writing JSON ----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Style {
    /// As serde_json writes it.
    Compact,
    /// Whitespace between tokens, members shuffled, now and then one written twice.
    Loose,
    /// `<`, `>`, `&` (and U+2028/2029) as `\u003c`... as the API server's encoder writes them.
    ApiServer,
    /// Characters spelled as `\uXXXX` (surrogate pairs past the BMP) or short escapes at random.
    Escapes,
}

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![
        Just(Style::Compact),
        Just(Style::Loose),
        Just(Style::ApiServer),
        Just(Style::Escapes)
    ]
}

/// A JSON writer driven by a small seeded generator.
struct Writer {
    style: Style,
    rng: u64,
    out: String,
}

impl Writer {
    fn write(style: Style, seed: u64, v: &Value) -> String {
        if let Style::Compact = style {
            return serde_json::to_string(v).unwrap();
        }
        let mut w = Writer {
            style,
            rng: seed | 1,
            out: String::new(),
        };
        w.value(v);
        w.out
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }

    fn ws(&mut self) {
        if let Style::Loose = self.style {
            let pick = [" ", "", "\n  ", "\t", "\r\n"][(self.next() % 5) as usize];
            self.out.push_str(pick);
        }
    }

    fn value(&mut self, v: &Value) {
        self.ws();
        match v {
            Value::Object(map) => {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                if let Style::Loose = self.style {
                    for i in (1..members.len()).rev() {
                        let j = (self.next() % (i as u64 + 1)) as usize;
                        members.swap(i, j);
                    }
                    // Now and then a member written twice (the second time its value or null).
                    if !members.is_empty() && self.one_in(8) {
                        let i = (self.next() % members.len() as u64) as usize;
                        let (k, v) = members[i];
                        members.insert(i, (k, if self.one_in(2) { &Value::Null } else { v }));
                    }
                }
                self.out.push('{');
                for (i, (k, v)) in members.into_iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.ws();
                    self.string(k);
                    self.ws();
                    self.out.push(':');
                    self.value(v);
                }
                self.ws();
                self.out.push('}');
            }
            Value::Array(items) => {
                self.out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.value(v);
                }
                self.ws();
                self.out.push(']');
            }
            Value::String(s) => self.string(s),
            other => self.out.push_str(&other.to_string()),
        }
        self.ws();
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            let escape = match self.style {
                Style::ApiServer => matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}'),
                Style::Escapes => self.one_in(3),
                _ => false,
            };
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' if !escape || self.one_in(2) => self.out.push_str("\\n"),
                '\t' if !escape || self.one_in(2) => self.out.push_str("\\t"),
                '/' if escape && self.one_in(2) => self.out.push_str("\\/"),
                c if escape || (c as u32) < 0x20 => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        self.out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
}

/// Character-level damage: cuts, deletions, insertions of JSON punctuation, repeated slices.
fn mutate(text: &str, edits: &[(u8, usize, usize)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for &(op, a, b) in edits {
        if chars.is_empty() {
            break;
        }
        let (a, b) = (a % chars.len(), b % chars.len());
        match op % 4 {
            0 => chars.truncate(a),
            1 => {
                chars.remove(a);
            }
            2 => chars.insert(
                a,
                ['{', '}', '[', ']', ',', ':', '"', '\\', ' ', '0', 'u', 'e'][b % 12],
            ),
            _ => {
                let (from, to) = (a.min(b), a.max(b).min(a.min(b) + 40));
                let slice: Vec<char> = chars[from..to].to_vec();
                let at = (a + b) % chars.len();
                chars.splice(at..at, slice);
            }
        }
    }
    chars.into_iter().collect()
}

fn body() -> impl Strategy<Value = String> {
    (
        review(),
        style(),
        any::<u64>(),
        proptest::option::weighted(
            0.3,
            proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 1..4),
        ),
    )
        .prop_map(|(review, style, seed, edits)| {
            let text = Writer::write(style, seed, &review);
            match edits {
                Some(edits) => mutate(&text, &edits),
                None => text,
            }
        })
}

// ---- what serde_json reads -------------------------------------------------------------------

/// A member the decoder read as serde_json reads an `Option<String>` with a default: missing or
/// null is `""`; the decoder accepted the body, so anything else is a string.
fn opt_string(v: Option<&Value>) -> &str {
    match v {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s,
        Some(other) => panic!("the decoder accepted {other} as a string"),
    }
}

/// A member read as a `String` with a default (missing is `""`, null is refused).
fn string(v: Option<&Value>) -> &str {
    match v {
        None => "",
        Some(Value::String(s)) => s,
        Some(other) => panic!("the decoder accepted {other} as a string"),
    }
}

/// Whether an object has a key given twice, at its top or in its `metadata`.
fn has_duplicate_members(fields: &Fields<'_>) -> bool {
    let dup = |fields: &Fields<'_>| {
        let mut keys: Vec<&str> = fields.0.iter().map(|(k, _)| k.as_ref()).collect();
        keys.sort_unstable();
        keys.windows(2).any(|w| w[0] == w[1])
    };
    dup(fields)
        || fields
            .0
            .iter()
            .filter(|(k, _)| k == "metadata")
            .filter_map(|(_, m)| serde_json::from_str::<Fields<'_>>(m.get()).ok())
            .any(|m| dup(&m))
}

fn check_object(what: &str, got: Option<&gitops_guard_core::Object<'_>>, want: Option<&Value>) {
    let want = match want {
        None | Some(Value::Null) => {
            assert!(got.is_none(), "{what}: read an object from null");
            return;
        }
        Some(Value::Object(map)) => map,
        Some(other) => panic!("{what}: the decoder accepted {other} as an object"),
    };
    let got = got.unwrap_or_else(|| panic!("{what}: an object read as none"));
    // Every top-level field's value, as serde_json reads its text (a key given twice: its last).
    let mut fields = Map::new();
    for (k, raw) in &got.fields.0 {
        let v: Value = serde_json::from_str(raw.get()).unwrap();
        fields.insert(k.to_string(), v);
    }
    assert_eq!(&fields, want, "{what}");
    // A member given twice: the decoder reads its first, a `Value` keeps its last.
    if has_duplicate_members(&got.fields) {
        return;
    }
    let meta = want.get("metadata").and_then(Value::as_object);
    let member = |k: &str| meta.and_then(|m| m.get(k));
    let as_string = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    assert_eq!(got.name, as_string(member("name")), "{what}.metadata.name");
    assert_eq!(
        got.namespace,
        as_string(member("namespace")),
        "{what}.metadata.namespace"
    );
    for (map, got) in [("labels", &got.labels), ("annotations", &got.annotations)] {
        let want: BTreeMap<&str, &str> = match member(map) {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    let v = v.as_str().unwrap_or_else(|| {
                        panic!("{what}: the decoder accepted {v} in metadata.{map}")
                    });
                    (k.as_str(), v)
                })
                .collect(),
            Some(other) => panic!("{what}: the decoder accepted {other} as metadata.{map}"),
        };
        let got_map: BTreeMap<&str, &str> = got.keys().map(|k| (k, got.get(k).unwrap())).collect();
        assert_eq!(got_map, want, "{what}.metadata.{map}");
    }
}

/// The members of a struct serde_json read: from an object by name, or (serde's sequence form of
/// a struct, which serde_json accepts too) from an array in the fields' order.
fn members<'v, const N: usize>(v: &'v Value, names: [&str; N]) -> [Option<&'v Value>; N] {
    match v {
        Value::Object(m) => names.map(|n| m.get(n)),
        Value::Array(items) => {
            let mut i = 0;
            names.map(|_| {
                i += 1;
                items.get(i - 1)
            })
        }
        other => panic!("the decoder accepted {other} as a struct"),
    }
}

/// The decoded request holds what serde_json reads from the same body.
fn check_agrees(req: &AdmissionRequest<'_>, v: &Value) {
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(Some(req.api_version.as_str()), v["apiVersion"].as_str());
    let r = v["request"].as_object().expect("a request object");
    assert_eq!(Some(req.uid.as_str()), r["uid"].as_str());
    assert!(!req.uid.is_empty());
    let [group, version, kind] = members(&r["kind"], ["group", "version", "kind"]);
    assert_eq!(req.kind.group, string(group));
    assert_eq!(req.kind.version, string(version));
    assert_eq!(req.kind.kind, string(kind));
    let [group, version, resource] = members(&r["resource"], ["group", "version", "resource"]);
    assert_eq!(req.resource.group, string(group));
    assert_eq!(req.resource.version, string(version));
    assert_eq!(req.resource.resource, string(resource));
    assert_eq!(req.sub_resource, opt_string(r.get("subResource")));
    assert_eq!(req.name, opt_string(r.get("name")));
    assert_eq!(req.namespace, opt_string(r.get("namespace")));
    let operation = match req.operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    };
    assert_eq!(r["operation"], operation);
    let [username, groups, _] = match r.get("userInfo") {
        None => [None; 3],
        Some(u) => members(u, ["username", "groups", "extra"]),
    };
    assert_eq!(req.user.username, string(username));
    let groups: Vec<String> = match groups {
        None => Vec::new(),
        Some(g) => serde_json::from_value(g.clone()).expect("groups are strings"),
    };
    assert_eq!(req.user.groups, groups);
    let dry_run = match r.get("dryRun") {
        None | Some(Value::Null) => false,
        Some(d) => d.as_bool().expect("dryRun is a bool"),
    };
    assert_eq!(req.dry_run, dry_run);
    check_object("object", req.object.as_ref(), r.get("object"));
    check_object("oldObject", req.old_object.as_ref(), r.get("oldObject"));
}

/// The body with an ignored member holding bytes that are not UTF-8 put first: the decoder cannot
/// take its fast path (which needs a `str`) and reads it through serde_json.
fn through_serde(body: &str) -> Option<Vec<u8>> {
    let start = body.find(|c: char| !c.is_ascii_whitespace())?;
    let rest = body[start..].strip_prefix('{')?;
    let mut out = b"{\"x-serde-path\":\"\xff\",".to_vec();
    out.extend_from_slice(rest.as_bytes());
    Some(out)
}

fn outcome(r: Result<AdmissionRequest<'_>, gitops_guard_core::Error>) -> Result<String, ()> {
    r.map(|r| format!("{r:?}")).map_err(drop)
}

/// `cases` cases from a fixed seed, so that CI runs the same cases every time; set
/// `PROPTEST_RNG_SEED` (proptest's own variable) to explore other ones.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let rng_seed = if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
        default.rng_seed
    } else {
        proptest::test_runner::RngSeed::Fixed(0x6769_746f_7073)
    };
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed,
        ..default
    }
}

proptest! {
    #![proptest_config(config(3000))]

    /// What the decoder accepts, serde_json accepts, and both read the same request.
    #[test]
    fn the_decoder_reads_what_serde_json_reads(body in body()) {
        let decoded = AdmissionRequest::decode(body.as_bytes());
        if let Ok(req) = &decoded {
            match serde_json::from_str::<Value>(&body) {
                Ok(v) => check_agrees(req, &v),
                // serde_json itself accepts a lone surrogate escape where it skips a value or
                // keeps it raw, and the decoder reads the review's objects raw.
                Err(e) => prop_assert!(e.to_string().contains("surrogate"), "{e}: {body}"),
            }
        }
        // The fast path and the serde_json path read the same request, or both refuse it. (A
        // refusal may differ only in the position it names.)
        // (Decoded afresh: reading labels above filled caches that `Debug` shows.)
        if let Some(slow) = through_serde(&body) {
            let fast = AdmissionRequest::decode(body.as_bytes());
            let slow = AdmissionRequest::decode(&slow);
            prop_assert_eq!(outcome(fast), outcome(slow), "{}", body);
        }
    }
}

// ---- escaping changes nothing decided --------------------------------------------------------

struct Owners;

impl Lookup for Owners {
    fn owner(&self, owner: &OwnerRef) -> Option<OwnerInfo> {
        (owner.kind == OwnerKind::Kustomization
            && owner.namespace == "flux-system"
            && owner.name == "apps")
            .then(|| OwnerInfo {
                revision: Some("main@sha1:3f2a9c1e8b7d6a5f4e3d2c1b0a99887766554433".into()),
                service_account: None,
            })
    }

    fn namespace(&self, _: &str) -> Option<NamespaceInfo> {
        None
    }
}

/// A change to a random part of `v`: a value replaced, a member added or removed.
fn changed(v: &Value, seed: u64, depth: usize) -> Value {
    match v {
        Value::Object(m) if !m.is_empty() && depth < 6 && !seed.is_multiple_of(5) => {
            let mut m = m.clone();
            let i = (seed / 5) as usize % m.len();
            let key = m.keys().nth(i).unwrap().clone();
            match seed % 7 {
                0 => {
                    m.remove(&key);
                }
                1 => {
                    m.insert(format!("{key}<&>"), json!("<new>"));
                }
                _ => {
                    let inner = changed(&m[&key], seed / 7, depth + 1);
                    m.insert(key, inner);
                }
            }
            Value::Object(m)
        }
        Value::Array(items) if !items.is_empty() && depth < 6 && !seed.is_multiple_of(5) => {
            let mut items = items.clone();
            let i = (seed / 5) as usize % items.len();
            items[i] = changed(&items[i], seed / 7, depth + 1);
            Value::Array(items)
        }
        Value::String(s) => json!(format!("{s}&<>")),
        _ => json!(format!("<{seed}>")),
    }
}

/// A path into `v` (down to `len` steps), for `allow-fields`.
fn some_path(v: &Value, seed: u64, len: usize) -> Vec<PatSeg> {
    let mut path = Vec::new();
    let (mut v, mut seed) = (v, seed);
    while path.len() < len {
        match v {
            Value::Object(m) if !m.is_empty() => {
                let (k, inner) = m.iter().nth(seed as usize % m.len()).unwrap();
                path.push(PatSeg::Key(k.clone()));
                v = inner;
            }
            Value::Array(items) if !items.is_empty() => {
                let i = seed as usize % items.len();
                path.push(if seed % 3 == 0 {
                    PatSeg::AnyIndex
                } else {
                    PatSeg::Index(i)
                });
                v = &items[i];
            }
            _ => break,
        }
        seed /= 7;
    }
    path
}

fn managed_review(spec: &Value, new_spec: &Value, allow: &str, note: &str, user: &str) -> Value {
    let object = |spec: &Value| {
        json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {
                "name": "w", "namespace": "prod",
                "labels": {
                    "kustomize.toolkit.fluxcd.io/name": "apps",
                    "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
                    "note": "a&b"
                },
                "annotations": {"gitops-guard.dev/allow-fields": allow, "note": note},
                "managedFields": [{"manager": "kustomize-controller", "operation": "Apply",
                    "apiVersion": "example.com/v1", "time": "2026-11-20T09:14:02Z",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:<x>": {}}}}]
            },
            "spec": spec,
        })
    };
    json!({
        "kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "esc-1", "kind": {"group": "example.com", "version": "v1", "kind": "Widget"},
            "resource": {"group": "example.com", "version": "v1", "resource": "widgets"},
            "name": "w", "namespace": "prod", "operation": "UPDATE",
            "userInfo": {"username": user, "groups": ["developers", "system:authenticated"]},
            "object": object(new_spec), "oldObject": object(spec), "dryRun": false
        }
    })
}

proptest! {
    #![proptest_config(config(1000))]

    /// The API server writes `<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026`: a review written
    /// that way is decided exactly as the same review written plainly, and answered with the same
    /// bytes.
    #[test]
    fn escaping_as_the_api_server_does_changes_nothing_decided(
        spec in value(),
        seed in any::<u64>(),
        paths in proptest::collection::vec((any::<u64>(), 1..4usize), 0..3),
        note in text(),
        user in prop_oneof![
            Just("ana"), Just("system:serviceaccount:flux-system:kustomize-controller")
        ],
    ) {
        let new_spec = changed(&spec, seed, 0);
        let allow: Vec<String> = paths
            .iter()
            .map(|(s, len)| {
                let mut p = vec![PatSeg::Key("spec".into())];
                p.extend(some_path(if s % 2 == 0 { &spec } else { &new_spec }, *s, *len));
                FieldPath(p).to_string()
            })
            .collect();
        let review = managed_review(&spec, &new_spec, &allow.join(", "), &note, user);
        let now = "2026-11-21T12:00:00Z".parse().unwrap();
        let config = Config::default();
        let plain = serde_json::to_string(&review).unwrap();
        let escaped = Writer::write(Style::ApiServer, seed, &review);
        prop_assert!(!plain.contains("\\u003c") && escaped.len() >= plain.len());
        let decide_body = |body: &str| {
            let req = AdmissionRequest::decode(body.as_bytes()).unwrap();
            let decision = decide(&req, None, &config, &Owners, now);
            let answer = encode_response(&req.api_version, &req.uid, &decision);
            (decision, answer)
        };
        let (d1, a1) = decide_body(&plain);
        let (d2, a2) = decide_body(&escaped);
        prop_assert_eq!(&d1, &d2, "{}", escaped);
        prop_assert_eq!(a1, a2);
    }
}
