//! The field diff on two arbitrary JSON documents and a list of allowed paths (the
//! `allow-fields` annotation's text). Input: `old NUL new NUL paths`.
//!
//! Beyond "no panic, no stack overflow": a document never differs from itself (unless it gives a
//! member twice); the decision's
//! short walk finds a change exactly when the message's full walk does; reports are bounded in
//! number and length; objects read through the scanner and through serde_json diff the same;
//! allowing every top-level field allows everything.
#![no_main]

use std::collections::HashSet;
use std::fmt;

use gitops_guard_core::Object;
use gitops_guard_core::diff::{FieldPath, MAX_PATH_TEXT, Report, disallowed_changes};
use gitops_guard_core::object::Fields;
use libfuzzer_sys::fuzz_target;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

const LIMIT: usize = 8;

/// A JSON value with no member given twice in any object (and, as serde_json reads it, at most
/// 128 levels deep).
struct Unique;

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut keys = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key) {
                return Err(de::Error::custom("a member given twice"));
            }
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }
}

fn check_report(report: &[String], limit: usize) {
    assert!(report.len() <= limit, "{report:?}");
    for path in report {
        assert!(path.len() <= MAX_PATH_TEXT + '…'.len_utf8(), "{path}");
        assert!(!path.is_empty());
    }
}

fn diff(old: &Fields<'_>, new: &Fields<'_>, allowed: &[FieldPath]) -> (Vec<String>, Vec<String>) {
    let first = disallowed_changes(old, new, allowed, Report::First);
    let all = disallowed_changes(old, new, allowed, Report::All(LIMIT));
    check_report(&first, 1);
    check_report(&all, LIMIT);
    // Where the decision's walk stops descending it reports; where it finds nothing, so does the
    // message's.
    if first.is_empty() {
        assert!(all.is_empty(), "{all:?}");
    }
    if !all.is_empty() {
        assert!(!first.is_empty());
    }
    (first, all)
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let (Some(old), Some(new)) = (parts.next(), parts.next()) else {
        return;
    };
    let paths = parts.next().unwrap_or_default();
    let (Ok(old), Ok(new)) = (std::str::from_utf8(old), std::str::from_utf8(new)) else {
        return;
    };
    let allowed: Vec<FieldPath> = String::from_utf8_lossy(paths)
        .split(',')
        .filter_map(|p| FieldPath::parse(p).ok())
        .collect();
    // Read by serde_json (values scanned when the walk gets to them) ...
    let (Ok(old_serde), Ok(new_serde)) = (
        serde_json::from_str::<Fields<'_>>(old),
        serde_json::from_str::<Fields<'_>>(new),
    ) else {
        return;
    };
    let by_serde = diff(&old_serde, &new_serde, &allowed);
    // A document is the same as itself (with a member given twice, the walk compares every copy
    // with the first one: a document the API server never sends, and a difference that only
    // ever denies).
    for (doc, text) in [(&old_serde, old), (&new_serde, new)] {
        if serde_json::from_str::<Unique>(text).is_ok() {
            let report = disallowed_changes(doc, doc, &[], Report::All(LIMIT));
            assert!(report.is_empty(), "{report:?}");
        }
    }
    // ... and by the scanner, as the decoder reads a review's objects: the same.
    if let (Ok(o), Ok(n)) = (Object::from_json(old), Object::from_json(new)) {
        assert_eq!(diff(&o.fields, &n.fields, &allowed), by_serde);
    }
    // Every top-level field allowed: every change allowed.
    let tops: Vec<FieldPath> = old_serde
        .0
        .iter()
        .chain(&new_serde.0)
        .map(|(k, _)| FieldPath::keys(&[k]))
        .collect();
    assert!(disallowed_changes(&old_serde, &new_serde, &tops, Report::All(LIMIT)).is_empty());
});
