//! A Kubernetes object decoded only as far as a decision needs.
//!
//! The text is scanned once, by a validating scanner that records where every value lies (a
//! "tape", see `tape.rs`); the object's fields, its `metadata`, and anything a field diff
//! ([`crate::diff`]) descends into are then split from that record without reading the text again.
//! Only a few metadata strings are copied out; labels and annotations stay borrowed, and a value
//! with escapes is unescaped the first time someone asks for it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::Error;

pub(crate) mod tape;

use tape::{Tape, View};

/// The text of one JSON value, known to be valid JSON, with (when it came from a scanned
/// document) the record of where everything inside it lies.
#[derive(Clone)]
pub struct Raw<'a> {
    text: &'a str,
    /// The scanned document and this value's node in it.
    at: Option<(Arc<Tape>, u32)>,
}

impl fmt::Debug for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

impl<'a> Raw<'a> {
    /// The value's JSON text (like [`RawValue::get`]).
    pub fn get(&self) -> &'a str {
        self.text
    }

    /// Scans a whole JSON document; `None` if it is not valid JSON (or too large to scan).
    pub(crate) fn document(text: &'a str) -> Option<Raw<'a>> {
        Raw::scan(text).ok()
    }

    /// [`Raw::document`], saying why a text was refused.
    pub(crate) fn scan(text: &'a str) -> Result<Raw<'a>, tape::Refused> {
        let tape = tape::scan(text)?;
        let root = tape.nodes.first().ok_or(tape::Refused::Invalid)?;
        Ok(Raw {
            // Without the whitespace around it, as every value's text.
            text: text
                .get(root.start as usize..root.end as usize)
                .ok_or(tape::Refused::Invalid)?,
            at: Some((Arc::new(tape), 0)),
        })
    }

    /// A view of this value. A value that came without a tape is scanned into `scratch` first (its
    /// text is valid JSON, so that only fails beyond the scanner's limits, and then the view is
    /// opaque: a diff counts it as changed as a whole, and [`Object::from_fields`] refuses opaque
    /// metadata).
    pub(crate) fn view<'s>(&'s self, scratch: &'s mut Option<Tape>) -> View<'s, 'a> {
        match &self.at {
            Some((tape, idx)) => View::new(Some(tape), *idx, self.text),
            None => {
                *scratch = tape::parse(self.text);
                View::new(scratch.as_ref(), 0, self.text)
            }
        }
    }

    /// A value inside this one (`view` must be a view of this value's tape).
    pub(crate) fn inside(&self, view: View<'_, 'a>) -> Raw<'a> {
        Raw {
            text: view.text,
            at: self
                .at
                .as_ref()
                .map(|(tape, _)| (Arc::clone(tape), view.idx())),
        }
    }

    fn first_byte(&self) -> Option<u8> {
        self.text.as_bytes().first().copied()
    }

    /// An array's elements, split from the tape (a value without one is scanned first); `None` if
    /// this is not an array (or, without a tape, cannot be scanned).
    pub(crate) fn items(&self) -> Option<Vec<Raw<'a>>> {
        if self.first_byte()? != b'[' {
            return None;
        }
        let doc;
        let this = if self.at.is_some() {
            self
        } else {
            doc = Raw::document(self.text)?;
            &doc
        };
        let mut scratch = None;
        let items = this.view(&mut scratch).items()?;
        Some(items.map(|v| this.inside(v)).collect())
    }

    /// The value as serde_json reads a `String`: `None` for anything but a string it decodes.
    pub(crate) fn string(&self) -> Option<Cow<'a, str>> {
        string_value(self.text)
    }

    pub(crate) fn is_null(&self) -> bool {
        self.text == "null"
    }
}

impl<'a> From<&'a RawValue> for Raw<'a> {
    fn from(raw: &'a RawValue) -> Raw<'a> {
        Raw {
            text: raw.get(),
            at: None,
        }
    }
}

/// The contents of a JSON string value (like serde_json reading an `Option<String>`: `null`,
/// other values and undecodable escapes give `None`), borrowed unless it has escapes.
fn string_value(json: &str) -> Option<Cow<'_, str>> {
    let inner = json.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(json).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// A JSON object's entries in document order, values left as raw JSON.
#[derive(Debug, Clone, Default)]
pub struct Fields<'a>(pub Vec<(Cow<'a, str>, Raw<'a>)>);

impl<'a> Fields<'a> {
    pub fn get(&self, key: &str) -> Option<&Raw<'a>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Parses a raw JSON span as an object's fields; `None` if it is not an object.
    pub fn parse(raw: &Raw<'a>) -> Option<Fields<'a>> {
        if raw.first_byte()? != b'{' {
            return None;
        }
        if raw.at.is_none() {
            return match Raw::document(raw.text) {
                Some(doc) => Fields::parse(&doc),
                // Beyond the scanner: as serde_json reads it.
                None => serde_json::from_str(raw.text).ok(),
            };
        }
        let mut scratch = None;
        let fields = raw.view(&mut scratch).fields()?;
        Some(Fields(
            fields
                .into_iter()
                .map(|(key, value)| (key, raw.inside(value)))
                .collect(),
        ))
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'a>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(6));
                while let Some((k, v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    out.push((k.0, Raw::from(v)));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A string-to-string map such as `metadata.labels` or `metadata.annotations`, borrowed from the
/// object's text. Like a map, a key given twice means its last value.
#[derive(Clone, Default)]
pub struct StrMap<'a> {
    entries: Vec<(Cow<'a, str>, StrValue<'a>)>,
    /// The entries' positions ordered by key (then position), made on the first lookup in a map
    /// of more than a few keys, so that looking every key of a large map up is not quadratic.
    sorted: OnceLock<Vec<usize>>,
}

impl fmt::Debug for StrMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StrMap").field(&self.entries).finish()
    }
}

/// Maps with more keys than this are looked up through an index.
const SCAN_KEYS: usize = 16;

#[derive(Debug, Clone)]
enum StrValue<'a> {
    Plain(Cow<'a, str>),
    /// A JSON string literal with escapes (that serde_json decodes), decoded when first asked for.
    Escaped {
        json: &'a str,
        text: OnceLock<String>,
    },
}

impl StrValue<'_> {
    fn as_str(&self) -> &str {
        match self {
            StrValue::Plain(s) => s,
            StrValue::Escaped { json, text } => {
                text.get_or_init(|| serde_json::from_str::<String>(json).unwrap_or_default())
            }
        }
    }
}

impl<'a> StrMap<'a> {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let entry = if self.entries.len() <= SCAN_KEYS {
            self.entries.iter().rev().find(|(k, _)| k == key)
        } else {
            let key_at = |i: &usize| self.entries.get(*i).map(|(k, _)| k.as_ref());
            let sorted = self.sorted.get_or_init(|| {
                let mut sorted: Vec<usize> = (0..self.entries.len()).collect();
                sorted.sort_by(|a, b| key_at(a).cmp(&key_at(b)).then(a.cmp(b)));
                sorted
            });
            // The last position of `key`: just before the first one past it.
            let past = sorted.partition_point(|i| key_at(i).is_some_and(|k| k <= key));
            let last = sorted.get(past.checked_sub(1)?)?;
            self.entries.get(*last).filter(|(k, _)| k == key)
        };
        entry.map(|(_, v)| v.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys in document order (a key given twice appears twice).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_ref())
    }

    /// The entries in document order (a key given twice appears twice; the later one counts).
    /// Values with escapes are decoded here, so [`StrMap::get`] is cheaper for a few keys.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v.as_str()))
    }

    /// Reads `null` or an object of strings; `None` for anything else.
    fn read(view: View<'_, 'a>) -> Option<StrMap<'a>> {
        if view.is_null() {
            return Some(StrMap::default());
        }
        let mut out = Vec::new();
        for (key, value) in view.members()? {
            let json = value.text;
            let inner = json.strip_prefix('"')?.strip_suffix('"')?;
            let value = if !inner.contains('\\') {
                StrValue::Plain(Cow::Borrowed(inner))
            } else if inner.contains("\\u") {
                // A `\u` escape may be a lone surrogate, which serde_json refuses: decode now.
                StrValue::Plain(Cow::Owned(serde_json::from_str::<String>(json).ok()?))
            } else {
                StrValue::Escaped {
                    json,
                    text: OnceLock::new(),
                }
            };
            out.push((key.decode()?, value));
        }
        Some(StrMap {
            entries: out,
            sorted: OnceLock::new(),
        })
    }
}

impl From<BTreeMap<String, String>> for StrMap<'_> {
    fn from(map: BTreeMap<String, String>) -> Self {
        StrMap {
            entries: map
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), StrValue::Plain(Cow::Owned(v))))
                .collect(),
            sorted: OnceLock::new(),
        }
    }
}

/// An object as the guard sees it.
#[derive(Debug, Clone, Default)]
pub struct Object<'a> {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub labels: StrMap<'a>,
    pub annotations: StrMap<'a>,
    pub deletion_timestamp: Option<String>,
    /// Top-level fields (including `metadata`) as raw JSON, for field diffs.
    pub fields: Fields<'a>,
}

fn string_of(json: Option<&str>) -> String {
    json.and_then(string_value)
        .map(Cow::into_owned)
        .unwrap_or_default()
}

/// `metadata.labels` or `metadata.annotations`: `null`/missing is empty, anything but an object of
/// strings is an error.
fn map_of<'a>(value: Option<View<'_, 'a>>, what: &str) -> Result<StrMap<'a>, Error> {
    let Some(value) = value else {
        return Ok(StrMap::default());
    };
    if let Some(map) = StrMap::read(value) {
        return Ok(map);
    }
    // Let serde_json say what is wrong (and judge anything the scanner left to it).
    serde_json::from_str::<Option<BTreeMap<String, String>>>(value.text)
        .map(|m| StrMap::from(m.unwrap_or_default()))
        .map_err(|e| Error::Object(format!("metadata.{what}: {e}")))
}

impl<'a> Object<'a> {
    /// Builds the view from an object's top-level fields.
    pub fn from_fields(fields: Fields<'a>) -> Result<Object<'a>, Error> {
        let mut scratch = None;
        let meta = match fields.get("metadata") {
            None => Vec::new(),
            Some(raw) => {
                let view = raw.view(&mut scratch);
                if view.is_opaque() && raw.first_byte() == Some(b'{') {
                    // Unread metadata would look like none: no owner, no exception.
                    return Err(Error::Object(format!(
                        "metadata holds more than {} values, more than the guard reads",
                        tape::MAX_VALUES
                    )));
                }
                view.fields().unwrap_or_default()
            }
        };
        let get = |key: &str| meta.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
        let text = |key: &str| get(key).map(|v| v.text);
        Ok(Object {
            api_version: string_of(fields.get("apiVersion").map(Raw::get)),
            kind: string_of(fields.get("kind").map(Raw::get)),
            name: string_of(text("name")),
            namespace: string_of(text("namespace")),
            labels: map_of(get("labels"), "labels")?,
            annotations: map_of(get("annotations"), "annotations")?,
            deletion_timestamp: Some(string_of(text("deletionTimestamp")))
                .filter(|s| !s.is_empty()),
            fields,
        })
    }

    /// Parses a whole object from JSON text (used for scale parents and by the plugin).
    pub fn from_json(text: &'a str) -> Result<Object<'a>, Error> {
        let scanned = Raw::document(text).and_then(|doc| Fields::parse(&doc));
        let fields = match scanned {
            Some(fields) => fields,
            None => serde_json::from_str(text).map_err(|e| Error::Object(e.to_string()))?,
        };
        Object::from_fields(fields)
    }

    /// The API group, from `apiVersion` (`""` for the core group).
    pub fn group(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_metadata_and_keeps_fields_raw() {
        let text = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"prod",
            "labels":{"a":"1"},"annotations":{"b":"2"},"managedFields":[{"manager":"x"}]},
            "spec":{"replicas":2}}"#;
        let o = Object::from_json(text).unwrap();
        assert_eq!(o.group(), "apps");
        assert_eq!(o.kind, "Deployment");
        assert_eq!((o.name.as_str(), o.namespace.as_str()), ("web", "prod"));
        assert_eq!(o.label("a"), Some("1"));
        assert_eq!(o.annotation("b"), Some("2"));
        assert_eq!(o.deletion_timestamp, None);
        assert_eq!(o.fields.get("spec").unwrap().get(), r#"{"replicas":2}"#);
    }

    #[test]
    fn null_labels_and_escaped_keys_are_fine() {
        let text = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","labels":null,
            "deletionTimestamp":"2026-01-01T00:00:00Z"},"data":{"k\"ey":"v"}}"#;
        let o = Object::from_json(text).unwrap();
        assert_eq!(o.group(), "");
        assert!(o.labels.is_empty());
        assert_eq!(
            o.deletion_timestamp.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        let data = Fields::parse(o.fields.get("data").unwrap()).unwrap();
        assert_eq!(data.0[0].0, "k\"ey");
    }

    #[test]
    fn bad_label_values_are_errors_not_panics() {
        let err = Object::from_json(r#"{"metadata":{"labels":{"a":1}}}"#).unwrap_err();
        assert!(err.to_string().contains("metadata.labels"), "{err}");
        assert!(Object::from_json("[1,2]").is_err());
    }

    /// The object as the scanner reads it, and as serde_json's fields (the path taken for a text
    /// the scanner refuses) read it: the same, or the same error.
    fn both_ways(text: &str) -> Result<String, String> {
        let scanned = Object::from_json(text).map(|o| format!("{o:?}"));
        let serde = serde_json::from_str::<Fields<'_>>(text)
            .map_err(|e| Error::Object(e.to_string()))
            .and_then(Object::from_fields)
            .map(|o| format!("{o:?}"));
        let (scanned, serde) = (
            scanned.map_err(|e| e.to_string()),
            serde.map_err(|e| e.to_string()),
        );
        assert_eq!(scanned, serde, "{text}");
        scanned
    }

    #[test]
    fn labels_and_annotations_read_like_a_map_of_strings() {
        let text = r#"{"metadata":{"name":"a\u0062","labels":{"x":"1","x":"2","k\"ey":"v"},
            "annotations":{"last":"{\"a\":[\"b\\n\"]}","u":"caf\u00e9","raw":"ü😀","empty":""}}}"#;
        both_ways(text).unwrap();
        let o = Object::from_json(text).unwrap();
        assert_eq!(o.name, "ab");
        // A key given twice: the last value, as in a map.
        assert_eq!(o.label("x"), Some("2"));
        assert_eq!(o.label("k\"ey"), Some("v"));
        assert_eq!(o.annotation("last"), Some("{\"a\":[\"b\\n\"]}"));
        assert_eq!(o.annotation("u"), Some("café"));
        assert_eq!(o.annotation("raw"), Some("ü😀"));
        assert_eq!(o.annotation("empty"), Some(""));
        assert_eq!(o.annotation("missing"), None);
        assert_eq!(
            o.annotations.keys().collect::<Vec<_>>(),
            ["last", "u", "raw", "empty"]
        );
        let all: BTreeMap<&str, &str> = o.labels.iter().collect();
        assert_eq!(all, BTreeMap::from([("x", "2"), ("k\"ey", "v")]));
    }

    #[test]
    fn metadata_maps_that_are_not_maps_of_strings_are_errors_as_before() {
        for (text, needle) in [
            (r#"{"metadata":{"labels":{"a":null}}}"#, "metadata.labels"),
            (r#"{"metadata":{"labels":["a"]}}"#, "metadata.labels"),
            (r#"{"metadata":{"labels":"a"}}"#, "metadata.labels"),
            (
                r#"{"metadata":{"annotations":{"a":{"b":"c"}}}}"#,
                "metadata.annotations",
            ),
            (
                r#"{"metadata":{"annotations":{"a":"\ud800"}}}"#,
                "metadata.annotations",
            ),
            (
                r#"{"metadata":{"annotations":{"\udc00":"a"}}}"#,
                "metadata.annotations",
            ),
            (r#"{"metadata":{"name":"x"}"#, "EOF"),
            ("[]", "invalid type"),
        ] {
            let err = both_ways(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn odd_metadata_reads_as_before() {
        for text in [
            r#"{}"#,
            r#"{"metadata":null}"#,
            r#"{"metadata":[1]}"#,
            r#"{"metadata":{"name":1,"namespace":null,"deletionTimestamp":""}}"#,
            r#"{"metadata":{"name":"a","name":"b"}}"#,
            r#"{"metadata":{"\ud800":1,"name":"n","labels":{"a":1}}}"#,
            r#"{"kind":"K","kind":"L","apiVersion":"g/v1","metadata":{"labels":null,"annotations":{}}}"#,
            " {\n\"metadata\" : { \"name\" : \"web\" , \"labels\" : { \"a\" : \"1\" } } }\n",
        ] {
            both_ways(text).unwrap();
        }
        // metadata with an undecodable key is no metadata (as serde_json refused it as a map).
        let o = Object::from_json(r#"{"metadata":{"\ud800":1,"name":"n"}}"#).unwrap();
        assert_eq!(o.name, "");
        let o = Object::from_json(r#"{"metadata":{"name":"a","name":"b"}}"#).unwrap();
        assert_eq!(o.name, "a");
    }

    #[test]
    fn large_maps_are_looked_up_like_small_ones() {
        // Past a few keys a lookup goes through an index; a key given twice still means its
        // last value, and a missing key is missing.
        for n in [3, 16, 17, 200] {
            let mut labels: Vec<String> = (0..n).map(|i| format!(r#""k{i}":"v{i}""#)).collect();
            labels.push(r#""k1":"again""#.into());
            labels.push(r#""k\u0030":"escaped""#.into());
            let text = format!(r#"{{"metadata":{{"labels":{{{}}}}}}}"#, labels.join(","));
            let o = Object::from_json(&text).unwrap();
            assert_eq!(o.label("k1"), Some("again"), "{n}");
            assert_eq!(o.label("k0"), Some("escaped"), "{n}");
            assert_eq!(o.label("k2"), Some("v2"), "{n}");
            assert_eq!(
                o.label(&format!("k{}", n - 1)),
                Some(format!("v{}", n - 1).as_str())
            );
            assert_eq!(o.label("k"), None);
            assert_eq!(o.label(&format!("k{n}")), None);
            assert_eq!(o.label(""), None);
            assert_eq!(o.labels.keys().count(), n + 2);
        }
    }

    #[test]
    fn fields_of_nested_values_need_no_new_scan() {
        let o = Object::from_json(r#"{"spec":{"template":{"spec":{"containers":[]}}}}"#).unwrap();
        let spec = Fields::parse(o.fields.get("spec").unwrap()).unwrap();
        let template = Fields::parse(spec.get("template").unwrap()).unwrap();
        let inner = template.get("spec").unwrap();
        assert_eq!(inner.get(), r#"{"containers":[]}"#);
        // Still the document's tape, not a new one.
        let (Some((doc_tape, _)), Some((tape, _))) = (&o.fields.0[0].1.at, &inner.at) else {
            panic!("values from a scanned document carry its tape");
        };
        assert!(Arc::ptr_eq(doc_tape, tape));
        assert!(
            Fields::parse(&Raw::from(
                serde_json::from_str::<&RawValue>("[1]").unwrap()
            ))
            .is_none()
        );
    }
}
