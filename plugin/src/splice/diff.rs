//! The field-level difference between two objects, as changes that apply in order.

use serde_json::Value;

use super::path::{Change, FieldPath};

/// The changes that turn `old` into `new`. Key order is ignored. Lists are aligned (by the
/// `name` of their items when every item has a distinct one, otherwise by equal items) so that
/// adding or removing one item is one insertion or deletion, not a change of every later item.
pub fn changes_between(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    diff(&FieldPath::root(), old, new, &mut out);
    out
}

fn diff(path: &FieldPath, old: &Value, new: &Value, out: &mut Vec<Change>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                match b.get(k) {
                    None => out.push(Change::delete(path.clone().key(k))),
                    Some(vb) => diff(&path.clone().key(k), va, vb, out),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    out.push(Change::set(path.clone().key(k), vb.clone()));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => diff_lists(path, a, b, out),
        _ if old != new => out.push(Change::set(path.clone(), new.clone())),
        _ => {}
    }
}

/// How list items are recognised across the two versions.
fn identities(a: &[Value], b: &[Value]) -> (Vec<String>, Vec<String>) {
    let names = |list: &[Value]| -> Option<Vec<String>> {
        let names: Option<Vec<String>> = list
            .iter()
            .map(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let names = names?;
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        (sorted.len() == names.len()).then_some(names)
    };
    if let (Some(x), Some(y)) = (names(a), names(b)) {
        return (x, y);
    }
    let whole = |list: &[Value]| list.iter().map(Value::to_string).collect();
    (whole(a), whole(b))
}

/// Longest common subsequence of two identity lists, as index pairs.
fn lcs(a: &[String], b: &[String]) -> Vec<(usize, usize)> {
    let (n, m) = (a.len(), b.len());
    if n.saturating_mul(m) > 4_000_000 {
        return Vec::new();
    }
    let mut t = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            t[i][j] = if a[i] == b[j] {
                t[i + 1][j + 1] + 1
            } else {
                t[i + 1][j].max(t[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut pairs = Vec::new();
    while i < n && j < m {
        if a[i] == b[j] {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if t[i + 1][j] >= t[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

fn diff_lists(path: &FieldPath, a: &[Value], b: &[Value], out: &mut Vec<Change>) {
    let (ia, ib) = identities(a, b);
    let anchors = lcs(&ia, &ib);
    // Pair the items between two matches position by position: a changed item is an edit.
    let mut pairs = Vec::new();
    let (mut pi, mut pj) = (0, 0);
    for &(i, j) in anchors.iter().chain(std::iter::once(&(a.len(), b.len()))) {
        let gap = (i - pi).min(j - pj);
        for k in 0..gap {
            pairs.push((pi + k, pj + k));
        }
        if i < a.len() && j < b.len() {
            pairs.push((i, j));
        }
        pi = i + 1;
        pj = j + 1;
    }
    let kept_old: Vec<bool> = (0..a.len())
        .map(|i| pairs.iter().any(|p| p.0 == i))
        .collect();
    let kept_new: Vec<bool> = (0..b.len())
        .map(|j| pairs.iter().any(|p| p.1 == j))
        .collect();
    for i in (0..a.len()).rev() {
        if !kept_old[i] {
            out.push(Change::delete(path.clone().index(i)));
        }
    }
    for j in 0..b.len() {
        if !kept_new[j] {
            out.push(Change::insert(path.clone().index(j), b[j].clone()));
        }
    }
    for (i, j) in pairs {
        diff(&path.clone().index(j), &a[i], &b[j], out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::splice::path::apply_json;
    use serde_json::json;

    fn check(old: Value, new: Value) -> Vec<Change> {
        let changes = changes_between(&old, &new);
        let mut v = old;
        for c in &changes {
            if let Err(e) = apply_json(&mut v, c) {
                panic!("{c:?}: {e:?}");
            }
        }
        assert_eq!(v, new);
        changes
    }

    #[test]
    fn one_field_is_one_change() {
        let c = check(
            json!({"spec": {"replicas": 1, "x": [1, 2]}}),
            json!({"spec": {"x": [1, 2], "replicas": 3}}),
        );
        assert_eq!(
            c,
            vec![Change::set(FieldPath::keys(["spec", "replicas"]), json!(3))]
        );
    }

    #[test]
    fn named_items_are_matched_by_name() {
        let c = check(
            json!([{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]),
            json!([{"name": "b", "image": "3"}]),
        );
        assert_eq!(
            c,
            vec![
                Change::delete(FieldPath::root().index(0)),
                Change::set(FieldPath::root().index(0).key("image"), json!("3")),
            ]
        );
    }

    #[test]
    fn inserts_and_changes_in_one_list() {
        check(json!([1, 2, 3, 4]), json!([0, 1, 9, 3, 5, 6]));
        check(json!([]), json!([1, 2]));
        check(json!([1, 2]), json!([]));
        check(json!(["a", "b"]), json!(["b", "a"]));
    }
}
