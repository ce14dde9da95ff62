//! A Kubernetes object decoded only as far as a decision needs.
//!
//! The top-level fields and the `metadata` fields are kept as borrowed raw JSON spans; only labels,
//! annotations and a few metadata strings are parsed. Field diffs ([`crate::diff`]) descend into the
//! raw spans lazily, so an admission request is read about once and no dynamic object is built.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::Error;

/// A JSON object's entries in document order, values left as raw JSON.
#[derive(Debug, Clone, Default)]
pub struct Fields<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Fields<'a> {
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Parses a raw JSON span as an object's fields; `None` if it is not an object.
    pub fn parse(raw: &'a RawValue) -> Option<Fields<'a>> {
        if !raw.get().trim_start().starts_with('{') {
            return None;
        }
        serde_json::from_str(raw.get()).ok()
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
                    out.push((k.0, v));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// An object as the guard sees it.
#[derive(Debug, Clone, Default)]
pub struct Object<'a> {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub deletion_timestamp: Option<String>,
    /// Top-level fields (including `metadata`) as raw JSON, for field diffs.
    pub fields: Fields<'a>,
}

fn string_of(raw: Option<&RawValue>) -> String {
    raw.and_then(|r| {
        serde_json::from_str::<Option<String>>(r.get())
            .ok()
            .flatten()
    })
    .unwrap_or_default()
}

fn map_of(raw: Option<&RawValue>, what: &str) -> Result<BTreeMap<String, String>, Error> {
    match raw {
        None => Ok(BTreeMap::new()),
        Some(r) => serde_json::from_str::<Option<BTreeMap<String, String>>>(r.get())
            .map(Option::unwrap_or_default)
            .map_err(|e| Error::Object(format!("metadata.{what}: {e}"))),
    }
}

impl<'a> Object<'a> {
    /// Builds the view from an object's top-level fields.
    pub fn from_fields(fields: Fields<'a>) -> Result<Object<'a>, Error> {
        let meta = match fields.get("metadata") {
            Some(raw) => Fields::parse(raw).unwrap_or_default(),
            None => Fields::default(),
        };
        let deletion_timestamp =
            Some(string_of(meta.get("deletionTimestamp"))).filter(|s: &String| !s.is_empty());
        Ok(Object {
            api_version: string_of(fields.get("apiVersion")),
            kind: string_of(fields.get("kind")),
            name: string_of(meta.get("name")),
            namespace: string_of(meta.get("namespace")),
            labels: map_of(meta.get("labels"), "labels")?,
            annotations: map_of(meta.get("annotations"), "annotations")?,
            deletion_timestamp,
            fields,
        })
    }

    /// Parses a whole object from JSON text (used for scale parents and by the plugin).
    pub fn from_json(text: &'a str) -> Result<Object<'a>, Error> {
        let fields: Fields<'a> =
            serde_json::from_str(text).map_err(|e| Error::Object(e.to_string()))?;
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
        self.labels.get(key).map(String::as_str)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
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
}
