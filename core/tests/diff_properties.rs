//! Property test of the field diff (`core::diff`) against a reference diff written plainly on
//! `serde_json::Value`, recursing, for shallow documents (a few levels of maps and lists, keys
//! that print plainly and keys that need quoting) and random allowed paths.
//!
//! The rules the reference spells out (those of `disallowed_changes_of`): a member changed when
//! its value is not the same (a member missing on one side counts as `null`); members in the old
//! object's order, then those only the new one has; where the walk descends (every change when
//! reporting all, else only where an allowed path lies below), maps (a missing or null side
//! counting as an empty map) are compared member by member and lists of the same length element
//! by element; any other change is reported at its own path; a path an allowed pattern covers
//! (`[*]` matching any index) is never reported.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

use gitops_guard_core::Object;
use gitops_guard_core::diff::{FieldPath, PatSeg, Report, disallowed_changes};
use gitops_guard_core::object::Fields;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Map, Value};

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// The reference: every change outside `allowed`, in document order, not cut short.
fn reference(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    allowed: &[Vec<PatSeg>],
    deep: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    members(Some(old), Some(new), allowed, deep, &mut path, &mut out);
    out
}

fn text(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

/// The same value text, or both missing or null.
fn same(old: Option<&Value>, new: Option<&Value>) -> bool {
    match (old, new) {
        (Some(a), Some(b)) => text(a) == text(b),
        (a, b) => a.is_none_or(Value::is_null) && b.is_none_or(Value::is_null),
    }
}

fn matches(p: &PatSeg, s: &Step) -> bool {
    match (p, s) {
        (PatSeg::Key(a), Step::Key(b)) => a == b,
        (PatSeg::Index(a), Step::Index(b)) => a == b,
        (PatSeg::AnyIndex, Step::Index(_)) => true,
        _ => false,
    }
}

fn prefix_matches(pattern: &[PatSeg], path: &[Step]) -> bool {
    pattern.iter().zip(path).all(|(p, s)| matches(p, s))
}

fn covered(allowed: &[Vec<PatSeg>], path: &[Step]) -> bool {
    allowed
        .iter()
        .any(|p| p.len() <= path.len() && prefix_matches(p, path))
}

fn allowed_below(allowed: &[Vec<PatSeg>], path: &[Step]) -> bool {
    allowed
        .iter()
        .any(|p| p.len() > path.len() && prefix_matches(p, path))
}

fn members(
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
    allowed: &[Vec<PatSeg>],
    deep: bool,
    path: &mut Vec<Step>,
    out: &mut Vec<String>,
) {
    let empty = Map::new();
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    for (k, o) in old {
        if !same(Some(o), new.get(k)) {
            path.push(Step::Key(k.clone()));
            value(Some(o), new.get(k), allowed, deep, path, out);
            path.pop();
        }
    }
    for (k, n) in new {
        if !old.contains_key(k) && !same(None, Some(n)) {
            path.push(Step::Key(k.clone()));
            value(None, Some(n), allowed, deep, path, out);
            path.pop();
        }
    }
}

fn value(
    old: Option<&Value>,
    new: Option<&Value>,
    allowed: &[Vec<PatSeg>],
    deep: bool,
    path: &mut Vec<Step>,
    out: &mut Vec<String>,
) {
    if same(old, new) || covered(allowed, path) {
        return;
    }
    if deep || allowed_below(allowed, path) {
        let map_like = |v: Option<&Value>| v.is_none_or(|v| v.is_object() || v.is_null());
        let is_map = |v: Option<&Value>| v.is_some_and(Value::is_object);
        if (is_map(old) || is_map(new)) && map_like(old) && map_like(new) {
            let (o, n) = (
                old.and_then(Value::as_object),
                new.and_then(Value::as_object),
            );
            return members(o, n, allowed, deep, path, out);
        }
        if let (Some(Value::Array(a)), Some(Value::Array(b))) = (old, new)
            && a.len() == b.len()
        {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                path.push(Step::Index(i));
                value(Some(x), Some(y), allowed, deep, path, out);
                path.pop();
            }
            return;
        }
    }
    out.push(print(path));
}

/// A path as the guard prints it: `spec.template.containers[0].image`, `metadata.labels['a/b']`.
fn print(path: &[Step]) -> String {
    let mut s = String::new();
    for (i, step) in path.iter().enumerate() {
        match step {
            Step::Key(k) => {
                let plain = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !plain {
                    s.push_str(&format!("['{k}']"));
                } else {
                    if i > 0 {
                        s.push('.');
                    }
                    s.push_str(k);
                }
            }
            Step::Index(n) => s.push_str(&format!("[{n}]")),
        }
    }
    s
}

// ---- documents --------------------------------------------------------------------------------

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-c]",
        1 => "[a-z0-9_-]{2,5}",
        1 => prop_oneof![Just("a.b"), Just("x/y"), Just(""), Just("<&>"), Just("é"), Just("it's")]
            .prop_map(String::from),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::from),
        3 => (0..4i64).prop_map(Value::from),
        1 => prop_oneof![Just(0.0), Just(-0.0), Just(1.5)].prop_map(Value::from),
        2 => "[xy]{0,2}".prop_map(Value::from),
    ]
}

fn doc_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn document() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::btree_map(key(), doc_value(), 0..5).prop_map(|m| m.into_iter().collect())
}

/// `v` with a few random edits (values replaced, members added or removed, lists grown).
fn edit(v: &Value, choices: &mut impl Iterator<Item = u32>) -> Value {
    let c = choices.next().unwrap_or(0);
    match v {
        Value::Object(m) if !c.is_multiple_of(4) => {
            let mut m = m.clone();
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                match choices.next().unwrap_or(0) % 6 {
                    0 => {
                        m.remove(&k);
                    }
                    1 | 2 => {
                        let inner = edit(&m[&k], choices);
                        m.insert(k, inner);
                    }
                    _ => {}
                }
            }
            if c.is_multiple_of(5) {
                m.insert(
                    ["a", "b", "c", "x/y"][c as usize / 5 % 4].into(),
                    Value::from(c % 3),
                );
            }
            Value::Object(m)
        }
        Value::Array(items) if !c.is_multiple_of(4) => {
            let mut items: Vec<Value> = items
                .iter()
                .map(|i| {
                    if choices.next().unwrap_or(0).is_multiple_of(3) {
                        edit(i, choices)
                    } else {
                        i.clone()
                    }
                })
                .collect();
            if c.is_multiple_of(7) {
                items.push(Value::Null);
            }
            Value::Array(items)
        }
        _ => match c % 6 {
            0 => Value::Null,
            1 => Value::from(c % 3),
            2 => serde_json::json!({"a": c % 2}),
            3 => serde_json::json!([c % 2]),
            4 => Value::from("x"),
            _ => v.clone(),
        },
    }
}

/// Allowed paths: walks into the documents, with indices sometimes `[*]`, sometimes a step off.
fn patterns(docs: [&Value; 2], choices: &[u32]) -> Vec<Vec<PatSeg>> {
    choices
        .chunks(4)
        .map(|c| {
            let mut v = docs[c[0] as usize % 2];
            let mut p = Vec::new();
            for &step in &c[1..] {
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        let (k, inner) = m.iter().nth(step as usize % m.len()).unwrap();
                        p.push(PatSeg::Key(k.clone()));
                        v = inner;
                    }
                    Value::Array(items) if !items.is_empty() => {
                        let i = step as usize % items.len();
                        p.push(if step % 3 == 0 {
                            PatSeg::AnyIndex
                        } else {
                            PatSeg::Index(i)
                        });
                        v = &items[i];
                    }
                    _ => p.push(PatSeg::Key("c".into())),
                }
                if step % 5 == 0 {
                    break;
                }
            }
            p
        })
        .collect()
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
    #![proptest_config(config(5000))]

    #[test]
    fn the_field_diff_reports_what_a_plain_diff_of_values_reports(
        old in document(),
        edits in proptest::collection::vec(any::<u32>(), 1..40),
        pattern_choices in proptest::collection::vec(any::<u32>(), 0..12),
        limit in 1..6usize,
    ) {
        let old_v = Value::Object(old.clone());
        let new = match edit(&old_v, &mut edits.into_iter()) {
            Value::Object(m) => m,
            other => {
                let mut m = old.clone();
                m.insert("b".into(), other);
                m
            }
        };
        let new_v = Value::Object(new.clone());
        let allowed = patterns([&old_v, &new_v], &pattern_choices);
        let paths: Vec<FieldPath> = allowed.iter().cloned().map(FieldPath).collect();

        let (old_text, new_text) = (text(&old_v), text(&new_v));
        // Read by the scanner (as the decoder reads a review's objects) and by serde_json.
        let scanned = (
            Object::from_json(&old_text).map(|o| o.fields),
            Object::from_json(&new_text).map(|o| o.fields),
        );
        let by_serde: (Fields<'_>, Fields<'_>) =
            (serde_json::from_str(&old_text).unwrap(), serde_json::from_str(&new_text).unwrap());

        let all = reference(&old, &new, &allowed, true);
        let first = reference(&old, &new, &allowed, false);
        for (o, n) in [(&by_serde.0, &by_serde.1)]
            .into_iter()
            .chain(scanned.0.as_ref().ok().zip(scanned.1.as_ref().ok()))
        {
            let got = disallowed_changes(o, n, &paths, Report::All(limit));
            let want: Vec<String> = all.iter().take(limit).cloned().collect();
            prop_assert_eq!(got, want, "all, {} -> {} allowing {:?}", old_text, new_text, paths);
            let got = disallowed_changes(o, n, &paths, Report::First);
            let want: Vec<String> = first.iter().take(1).cloned().collect();
            prop_assert_eq!(got, want, "first, {} -> {} allowing {:?}", old_text, new_text, paths);
        }
    }
}
