//! The three patch forms `kubectl patch` knows, applied to a JSON object. Apply one to the parsed
//! document, then write the result back with [`update_document`](super::update_document).

use serde_json::Value;

use super::Error;
use super::path::{FieldPath, PathSegment};

/// JSON merge patch (RFC 7386, `kubectl patch --type merge`).
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Fields by which lists of objects are merged, the way Kubernetes' strategic merge patch merges
/// `containers`, `env`, `volumes` (`name`), `volumeMounts` (`mountPath`), `ports`
/// (`containerPort` / `port`), `hostAliases` (`ip`), `volumeDevices` (`devicePath`) and
/// `conditions` (`type`).
const MERGE_KEYS: &[&str] = &[
    "name",
    "mountPath",
    "devicePath",
    "containerPort",
    "port",
    "ip",
    "type",
];

/// A strategic-merge-like patch (`kubectl patch --type strategic`, the default): like a merge
/// patch, but lists of objects that share a merge key (`name`, `mountPath`, `containerPort`, …)
/// are merged item by item, and `$patch: delete` / `$patch: replace` are honoured.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut m = p.clone();
            m.remove("$patch");
            *target = Value::Object(m);
            return;
        }
        Some("delete") => {
            *target = Value::Null;
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Array(items) => {
                let merged = match t.get(k) {
                    Some(Value::Array(existing)) => merge_list(existing, items),
                    _ => items
                        .iter()
                        .filter(|i| i.get("$patch").is_none())
                        .cloned()
                        .collect(),
                };
                t.insert(k.clone(), Value::Array(merged));
            }
            Value::Object(_) => {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                strategic_merge_patch(slot, v);
                if slot.is_null() {
                    t.remove(k);
                }
            }
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
}

fn merge_list(existing: &[Value], patch: &[Value]) -> Vec<Value> {
    let key = MERGE_KEYS.iter().find(|k| {
        !patch.is_empty()
            && patch.iter().all(|i| i.get(**k).is_some())
            && existing.iter().all(|i| i.get(**k).is_some())
    });
    let Some(key) = key else {
        return patch.to_vec();
    };
    let mut out = existing.to_vec();
    for item in patch {
        let id = item.get(*key);
        let pos = out.iter().position(|e| e.get(*key) == id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge_patch(&mut out[i], item),
            (None, false) => {
                let mut v = Value::Null;
                strategic_merge_patch(&mut v, item);
                out.push(v);
            }
        }
    }
    out
}

/// JSON patch (RFC 6902, `kubectl patch --type json`).
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), Error> {
    let Value::Array(ops) = ops else {
        return Err(Error::JsonPatch {
            index: 0,
            op: String::new(),
            path: String::new(),
            message: "a JSON patch is a list of operations".into(),
        });
    };
    for (index, op) in ops.iter().enumerate() {
        let name = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        let err = |message: &str| Error::JsonPatch {
            index,
            op: name.to_string(),
            path: path.to_string(),
            message: message.to_string(),
        };
        let at =
            FieldPath::from_pointer(path).ok_or_else(|| err("the path is not a JSON pointer"))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| err("missing \"value\""))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .and_then(FieldPath::from_pointer)
                .ok_or_else(|| err("missing or invalid \"from\""))
        };
        match name {
            "add" => add(target, &at, value()?).map_err(|m| err(&m))?,
            "remove" => {
                remove(target, &at).map_err(|m| err(&m))?;
            }
            "replace" => {
                remove(target, &at).map_err(|m| err(&m))?;
                add(target, &at, value()?).map_err(|m| err(&m))?;
            }
            "move" => {
                let v = remove(target, &from()?).map_err(|m| err(&m))?;
                add(target, &at, v).map_err(|m| err(&m))?;
            }
            "copy" => {
                let src = from()?;
                let v = target
                    .pointer(&src.to_pointer())
                    .cloned()
                    .ok_or_else(|| err("\"from\" does not exist"))?;
                add(target, &at, v).map_err(|m| err(&m))?;
            }
            "test" => {
                if target.pointer(&at.to_pointer()) != Some(&value()?) {
                    return Err(err("the value there is different"));
                }
            }
            _ => return Err(err("unknown operation")),
        }
    }
    Ok(())
}

fn parent_and_last<'v>(
    target: &'v mut Value,
    at: &FieldPath,
) -> Result<(&'v mut Value, PathSegment), String> {
    let Some((last, parents)) = at.segments().split_last() else {
        return Err("the whole document cannot be the target".into());
    };
    let mut cur = target;
    for seg in parents {
        cur = match cur {
            Value::Object(m) => m.get_mut(&seg.as_key()),
            Value::Array(a) => {
                let len = a.len();
                seg.as_index(len).and_then(|i| a.get_mut(i))
            }
            _ => None,
        }
        .ok_or_else(|| format!("{} does not exist", FieldPath(parents.to_vec())))?;
    }
    Ok((cur, last.clone()))
}

fn add(target: &mut Value, at: &FieldPath, value: Value) -> Result<(), String> {
    if at.is_root() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = parent_and_last(target, at)?;
    match parent {
        Value::Object(m) => {
            m.insert(last.as_key(), value);
            Ok(())
        }
        Value::Array(a) => match last.as_index(a.len()) {
            Some(i) if i <= a.len() => {
                a.insert(i, value);
                Ok(())
            }
            _ => Err(format!(
                "index out of range (the list has {} items)",
                a.len()
            )),
        },
        _ => Err("the parent is not a map or a list".into()),
    }
}

fn remove(target: &mut Value, at: &FieldPath) -> Result<Value, String> {
    let (parent, last) = parent_and_last(target, at)?;
    match parent {
        Value::Object(m) => m
            .remove(&last.as_key())
            .ok_or_else(|| "the field does not exist".to_string()),
        Value::Array(a) => match last.as_index(a.len()) {
            Some(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(format!(
                "index out of range (the list has {} items)",
                a.len()
            )),
        },
        _ => Err("the parent is not a map or a list".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_sets_and_removes() {
        let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut v, &json!({"a": null, "b": {"c": 5}}));
        assert_eq!(v, json!({"b": {"c": 5, "d": 3}}));
    }

    #[test]
    fn strategic_patch_merges_containers_by_name() {
        let mut v =
            json!({"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]});
        strategic_merge_patch(
            &mut v,
            &json!({"containers": [{"name": "b", "image": "y:2"}, {"name": "a", "$patch": "delete"}]}),
        );
        assert_eq!(v, json!({"containers": [{"name": "b", "image": "y:2"}]}));
    }

    #[test]
    fn json_patch_operations() {
        let mut v = json!({"a": [1, 2], "b": {"c": 1}});
        let ops = json!([
            {"op": "add", "path": "/a/1", "value": 9},
            {"op": "replace", "path": "/b/c", "value": 2},
            {"op": "move", "from": "/b/c", "path": "/d"},
            {"op": "test", "path": "/d", "value": 2},
            {"op": "remove", "path": "/a/0"}
        ]);
        if let Err(e) = json_patch(&mut v, &ops) {
            panic!("{e}");
        }
        assert_eq!(v, json!({"a": [9, 2], "b": {}, "d": 2}));
        let bad = json_patch(&mut v, &json!([{"op": "test", "path": "/d", "value": 3}]));
        assert!(bad.is_err_and(|e| e.to_string().contains("operation 0 (test /d)")));
    }
}
