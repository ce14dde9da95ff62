//! `metadata.managedFields`: the API server's record of who set which field. `kubectl gitops
//! blame` and `exceptions` read it, and it is the evidence of a hand change. The API server keeps
//! it by itself; a client can also send a rewritten one. This module tells the two apart.
//!
//! What the API server does on its own, for one request by one field manager:
//! - it adds or updates *one* entry, the request's own, stamped with the current time;
//! - other managers' entries only lose fields, and only fields whose value the request changed
//!   (the request took them over); an entry left with no fields is dropped;
//! - past ten `Update` entries it folds the oldest into one called `ancient-changes`.
//!
//! Anything else (an entry dropped while its fields kept their values, fields added to another
//! manager, an entry dated in the past or future, several entries touched) is a rewrite.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use serde_json::Value;

use crate::object::{Fields, Object};

/// How far from the request's time the request's own entry may be dated.
const CLOCK_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);
/// fieldsV1 deeper than this is not walked (and counts as a rewrite).
const MAX_DEPTH: usize = 64;
/// The folded entry the API server makes past ten `Update` managers.
const ANCIENT: &str = "ancient-changes";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(default)]
    manager: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    subresource: String,
    #[serde(default)]
    time: Option<String>,
    #[serde(default, rename = "fieldsV1")]
    fields: Value,
}

type Key = (String, String, String, String);

impl Entry {
    fn key(&self) -> Key {
        (
            self.manager.clone(),
            self.operation.clone(),
            self.api_version.clone(),
            self.subresource.clone(),
        )
    }
}

/// An object's `metadata.managedFields` as JSON text (`None`: it has none).
pub fn record_of<'a>(o: &Object<'a>) -> Option<&'a str> {
    let meta = Fields::parse(o.fields.get("metadata")?)?;
    meta.get("managedFields")
        .map(|r| r.get())
        .filter(|t| *t != "null")
}

/// Why `new`'s `metadata.managedFields` is not what the API server would have made of the old
/// record (`old_record`: the old object's, or the live object's where the review leaves it out)
/// for one request at `now`; `None` when it is. `old` is the object before the request.
pub fn rewrite(
    old: &Object<'_>,
    old_record: Option<&str>,
    new: &Object<'_>,
    now: jiff::Timestamp,
) -> Option<String> {
    let (old_text, new_text) = (old_record, record_of(new));
    if old_text == new_text {
        return None;
    }
    let parse = |t: Option<&str>| -> Option<Vec<Entry>> {
        match t {
            None | Some("null") => Some(Vec::new()),
            Some(t) => serde_json::from_str(t).ok(),
        }
    };
    let (Some(old_entries), Some(new_entries)) = (parse(old_text), parse(new_text)) else {
        return Some("metadata.managedFields cannot be read".into());
    };
    let old_by_key: HashMap<Key, &Entry> = old_entries.iter().map(|e| (e.key(), e)).collect();
    let new_by_key: HashMap<Key, &Entry> = new_entries.iter().map(|e| (e.key(), e)).collect();

    // The request's own entry: new, re-dated, or grown. One at most, dated now.
    let mut touched = Vec::new();
    for e in &new_entries {
        let grown = match old_by_key.get(&e.key()) {
            None => true,
            Some(o) => {
                o.time != e.time || {
                    let (Some(was), Some(is)) = (leaves(&o.fields), leaves(&e.fields)) else {
                        return Some("metadata.managedFields nest too deep to check".into());
                    };
                    !is.is_subset(&was)
                }
            }
        };
        if grown && e.manager != ANCIENT {
            touched.push(e);
        }
    }
    if touched.len() > 1 {
        let names: Vec<&str> = touched.iter().map(|e| e.manager.as_str()).collect();
        return Some(format!(
            "one request changes one manager's entry, this one changes {}",
            names.join(", ")
        ));
    }
    if let Some(e) = touched.first() {
        let dated_now = e
            .time
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_some_and(|t| (t.duration_since(now)).abs() <= CLOCK_SKEW);
        if !dated_now {
            return Some(format!(
                "the entry of {} is dated {}, not now",
                e.manager,
                e.time.as_deref().unwrap_or("never")
            ));
        }
    }

    // Fields other managers lost must be fields this request changed.
    let folded = new_by_key.keys().any(|k| k.0 == ANCIENT);
    let mut values = Values::new(old, new);
    for o in &old_entries {
        let kept = new_by_key.get(&o.key());
        if kept.is_none() && folded && o.operation == "Update" {
            continue;
        }
        let (Some(was), Some(is)) = (
            leaves(&o.fields),
            kept.map_or(Some(BTreeSet::new()), |k| leaves(&k.fields)),
        ) else {
            return Some("metadata.managedFields nest too deep to check".into());
        };
        for path in was.difference(&is) {
            if !values.changed(path) {
                return Some(format!(
                    "{} no longer owns {} although its value did not change",
                    o.manager,
                    path.join(".")
                ));
            }
        }
    }
    None
}

/// The field paths a fieldsV1 set names, down to the first list element (`k:`, `v:`, `i:` keys
/// stand for elements of the list above them, which then counts as a whole). `None` past
/// [`MAX_DEPTH`].
fn leaves(fields: &Value) -> Option<BTreeSet<Vec<String>>> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<(Vec<String>, &Value)> = vec![(Vec::new(), fields)];
    while let Some((path, v)) = stack.pop() {
        if path.len() > MAX_DEPTH {
            return None;
        }
        let Some(map) = v.as_object().filter(|m| !m.is_empty()) else {
            if !path.is_empty() {
                out.insert(path);
            }
            continue;
        };
        for (k, child) in map {
            if k == "." {
                out.insert(path.clone());
            } else if let Some(name) = k.strip_prefix("f:") {
                let mut p = path.clone();
                p.push(name.to_string());
                stack.push((p, child));
            } else {
                // A list element: the list is the unit.
                out.insert(path.clone());
            }
        }
    }
    out.remove(&Vec::new());
    Some(out)
}

/// The objects' values at field paths, read from the scanned documents (no parse, no depth limit).
struct Values<'o, 'a> {
    old: &'o Object<'a>,
    new: &'o Object<'a>,
}

impl<'o, 'a> Values<'o, 'a> {
    fn new(old: &'o Object<'a>, new: &'o Object<'a>) -> Self {
        Values { old, new }
    }

    /// The JSON text at `path` in `o` (`None`: not there). Both objects come from the API
    /// server's serializer, so equal values have equal text.
    fn text_at(o: &Object<'a>, path: &[String]) -> Option<&'a str> {
        let (top, rest) = path.split_first()?;
        let mut raw = o.fields.get(top)?.clone();
        for key in rest {
            let next = Fields::parse(&raw)?.get(key)?.clone();
            raw = next;
        }
        Some(raw.get())
    }

    /// Whether the value at `path` differs between the two objects.
    fn changed(&mut self, path: &[String]) -> bool {
        Self::text_at(self.old, path) != Self::text_at(self.new, path)
    }
}

#[cfg(test)]
mod tests;
