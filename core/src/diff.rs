//! Field-by-field comparison of an old and a new object, on raw JSON, descending only into the parts
//! that differ, and only as far as the allowed paths require.

use std::borrow::Cow;
use std::fmt;

use crate::Error;
use crate::object::tape::View;
use crate::object::{Fields, Raw};

/// One step in a path to a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A step in an allowed-path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatSeg {
    Key(String),
    Index(usize),
    /// `[*]`: any element of a list.
    AnyIndex,
}

impl PatSeg {
    fn matches(&self, seg: &Seg) -> bool {
        match (self, seg) {
            (PatSeg::Key(a), Seg::Key(b)) => a == b,
            (PatSeg::Index(a), Seg::Index(b)) => a == b,
            (PatSeg::AnyIndex, Seg::Index(_)) => true,
            _ => false,
        }
    }
}

/// A field path as people write it: `spec.replicas`,
/// `spec.template.spec.containers[*].image`, `metadata.annotations['example.com/key']`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath(pub Vec<PatSeg>);

impl FieldPath {
    pub fn keys(keys: &[&str]) -> FieldPath {
        FieldPath(keys.iter().map(|k| PatSeg::Key(k.to_string())).collect())
    }

    pub fn parse(text: &str) -> Result<FieldPath, Error> {
        let bad = |why: &str| Error::FieldPath {
            path: text.to_string(),
            why: why.to_string(),
        };
        let mut segs = Vec::new();
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad("empty path"));
        }
        let mut expect_key = true;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('[') {
                let close = after.find(']').ok_or_else(|| bad("unclosed '['"))?;
                let inner = &after[..close];
                let quoted = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
                if let Some(key) = quoted {
                    // A quoted key may itself contain ']' only if we look for the closing quote.
                    segs.push(PatSeg::Key(key.to_string()));
                } else if inner == "*" {
                    segs.push(PatSeg::AnyIndex);
                } else {
                    let n = inner
                        .parse::<usize>()
                        .map_err(|_| bad("a '[...]' holds a number, '*' or a quoted key"))?;
                    segs.push(PatSeg::Index(n));
                }
                rest = &after[close + 1..];
                expect_key = false;
            } else if let Some(after) = rest.strip_prefix('.') {
                if expect_key {
                    return Err(bad("empty segment"));
                }
                rest = after;
                expect_key = true;
            } else {
                if !expect_key {
                    return Err(bad("expected '.' or '['"));
                }
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                let key = &rest[..end];
                if key.is_empty() {
                    return Err(bad("empty segment"));
                }
                segs.push(PatSeg::Key(key.to_string()));
                rest = &rest[end..];
                expect_key = false;
            }
        }
        if expect_key {
            return Err(bad("ends with '.'"));
        }
        Ok(FieldPath(segs))
    }

    /// The pattern covers `path` and everything below it.
    fn covers(&self, path: &[Seg]) -> bool {
        self.0.len() <= path.len() && self.0.iter().zip(path).all(|(p, s)| p.matches(s))
    }

    /// Something this pattern allows lies strictly below `path`.
    fn below(&self, path: &[Seg]) -> bool {
        self.0.len() > path.len() && self.0.iter().zip(path).all(|(p, s)| p.matches(s))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                PatSeg::Key(k) => write_key(f, k, i == 0)?,
                PatSeg::Index(n) => write!(f, "[{n}]")?,
                PatSeg::AnyIndex => f.write_str("[*]")?,
            }
        }
        Ok(())
    }
}

fn write_key(f: &mut fmt::Formatter<'_>, key: &str, first: bool) -> fmt::Result {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        if !first {
            f.write_str(".")?;
        }
        f.write_str(key)
    } else {
        write!(f, "['{key}']")
    }
}

/// A concrete path in an object, printed like [`FieldPath`].
pub fn path_string(path: &[Seg]) -> String {
    struct P<'a>(&'a [Seg]);
    impl fmt::Display for P<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for (i, s) in self.0.iter().enumerate() {
                match s {
                    Seg::Key(k) => write_key(f, k, i == 0)?,
                    Seg::Index(n) => write!(f, "[{n}]")?,
                }
            }
            Ok(())
        }
    }
    P(path).to_string()
}

/// How much of the difference to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Stop at the first change outside the allowed paths (decisions).
    First,
    /// Every change outside the allowed paths, down to the leaves, up to this many (messages).
    All(usize),
}

/// Paths that changed between `old` and `new` (top-level fields) and that no pattern in `allowed`
/// covers. An empty result means every change is allowed.
pub fn disallowed_changes(
    old: &Fields<'_>,
    new: &Fields<'_>,
    allowed: &[FieldPath],
    report: Report,
) -> Vec<String> {
    let allowed: Vec<&FieldPath> = allowed.iter().collect();
    disallowed_changes_of(old, new, &allowed, report)
}

/// [`disallowed_changes`] with the patterns by reference (so fixed ones need not be rebuilt).
pub fn disallowed_changes_of(
    old: &Fields<'_>,
    new: &Fields<'_>,
    allowed: &[&FieldPath],
    report: Report,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    let limit = match report {
        Report::First => 1,
        Report::All(n) => n.max(1),
    };
    let ctx = Ctx {
        allowed,
        deep: matches!(report, Report::All(_)),
        limit,
    };
    diff_fields(old, new, &ctx, &mut path, &mut out);
    out
}

struct Ctx<'p> {
    allowed: &'p [&'p FieldPath],
    deep: bool,
    limit: usize,
}

fn diff_fields(
    old: &Fields<'_>,
    new: &Fields<'_>,
    ctx: &Ctx<'_>,
    path: &mut Vec<Seg>,
    out: &mut Vec<String>,
) {
    // Top-level values that came without a tape are scanned only if the diff descends into them.
    let top = |old: Option<&Raw<'_>>, new: Option<&Raw<'_>>, path: &mut Vec<Seg>, out: &mut _| {
        let (mut so, mut sn) = (None, None);
        let old = old.map(|r| r.view(&mut so));
        let new = new.map(|r| r.view(&mut sn));
        diff_value(old, new, ctx, path, out);
    };
    for (key, old_v) in &old.0 {
        if out.len() >= ctx.limit {
            return;
        }
        let new_v = new.get(key);
        if unchanged(Some(old_v.get()), new_v.map(Raw::get)) {
            continue;
        }
        path.push(Seg::Key(key.to_string()));
        top(Some(old_v), new_v, path, out);
        path.pop();
    }
    for (key, new_v) in &new.0 {
        if out.len() >= ctx.limit {
            return;
        }
        if old.get(key).is_none() && !unchanged(None, Some(new_v.get())) {
            path.push(Seg::Key(key.to_string()));
            top(None, Some(new_v), path, out);
            path.pop();
        }
    }
}

/// The members of two objects (a missing side has none).
fn diff_members<'t, 'a>(
    old: &[(Cow<'a, str>, View<'t, 'a>)],
    new: &[(Cow<'a, str>, View<'t, 'a>)],
    ctx: &Ctx<'_>,
    path: &mut Vec<Seg>,
    out: &mut Vec<String>,
) {
    fn get<'t, 'a>(fields: &[(Cow<'a, str>, View<'t, 'a>)], key: &str) -> Option<View<'t, 'a>> {
        fields.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
    for (key, old_v) in old {
        if out.len() >= ctx.limit {
            return;
        }
        let new_v = get(new, key);
        if unchanged(Some(old_v.text), new_v.map(|v| v.text)) {
            continue;
        }
        path.push(Seg::Key(key.to_string()));
        diff_value(Some(*old_v), new_v, ctx, path, out);
        path.pop();
    }
    for (key, new_v) in new {
        if out.len() >= ctx.limit {
            return;
        }
        if get(old, key).is_none() && !unchanged(None, Some(new_v.text)) {
            path.push(Seg::Key(key.to_string()));
            diff_value(None, Some(*new_v), ctx, path, out);
            path.pop();
        }
    }
}

#[derive(PartialEq)]
enum Shape {
    Map,
    List,
    Scalar,
}

fn shape(v: Option<View<'_, '_>>) -> Shape {
    match v.and_then(|r| r.text.as_bytes().first().copied()) {
        Some(b'{') => Shape::Map,
        Some(b'[') => Shape::List,
        _ => Shape::Scalar,
    }
}

fn is_null(v: Option<View<'_, '_>>) -> bool {
    v.is_none_or(|v| v.is_null())
}

/// Same text, or both missing or `null`.
fn unchanged(old: Option<&str>, new: Option<&str>) -> bool {
    match (old, new) {
        (Some(a), Some(b)) => a == b,
        (a, b) => a.is_none_or(|a| a == "null") && b.is_none_or(|b| b == "null"),
    }
}

fn diff_value<'a>(
    old: Option<View<'_, 'a>>,
    new: Option<View<'_, 'a>>,
    ctx: &Ctx<'_>,
    path: &mut Vec<Seg>,
    out: &mut Vec<String>,
) {
    if unchanged(old.map(|v| v.text), new.map(|v| v.text))
        || ctx.allowed.iter().any(|p| p.covers(path))
    {
        return;
    }
    let descend = ctx.deep || ctx.allowed.iter().any(|p| p.below(path));
    if descend {
        let (so, sn) = (shape(old), shape(new));
        // A missing or null map on one side compares as an empty map, so adding the first
        // annotation is a change to that annotation, not to `metadata.annotations` as a whole.
        let map_like = |s: &Shape, v: Option<View<'_, 'a>>| *s == Shape::Map || is_null(v);
        if (so == Shape::Map || sn == Shape::Map)
            && map_like(&so, old)
            && map_like(&sn, new)
            && let (Some(a), Some(b)) = (map_fields(&so, old), map_fields(&sn, new))
        {
            diff_members(&a, &b, ctx, path, out);
            return;
        }
        if so == Shape::List
            && sn == Shape::List
            && let (Some(a), Some(b)) = (list_items(old), list_items(new))
            && a.len() == b.len()
        {
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                if out.len() >= ctx.limit {
                    return;
                }
                path.push(Seg::Index(i));
                diff_value(Some(*x), Some(*y), ctx, path, out);
                path.pop();
            }
            return;
        }
    }
    out.push(path_string(path));
}

type Members<'t, 'a> = Vec<(Cow<'a, str>, View<'t, 'a>)>;

/// A map-shaped value's fields; a missing or null value is an empty map.
fn map_fields<'t, 'a>(shape: &Shape, v: Option<View<'t, 'a>>) -> Option<Members<'t, 'a>> {
    match v {
        Some(view) if *shape == Shape::Map => view.fields(),
        _ => Some(Vec::new()),
    }
}

fn list_items<'t, 'a>(v: Option<View<'t, 'a>>) -> Option<Vec<View<'t, 'a>>> {
    v.and_then(View::items).map(Iterator::collect)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Fields<'_> {
        serde_json::from_str(text).unwrap()
    }

    fn paths(list: &[&str]) -> Vec<FieldPath> {
        list.iter().map(|p| FieldPath::parse(p).unwrap()).collect()
    }

    #[test]
    fn field_path_parse_table() {
        let ok = [
            ("spec.replicas", "spec.replicas"),
            (
                "spec.template.spec.containers[*].image",
                "spec.template.spec.containers[*].image",
            ),
            (
                "metadata.annotations['example.com/key']",
                "metadata.annotations['example.com/key']",
            ),
            (
                "metadata.annotations[\"a.b/c\"]",
                "metadata.annotations['a.b/c']",
            ),
            ("spec.ports[0].port", "spec.ports[0].port"),
            (" data ", "data"),
        ];
        for (text, shown) in ok {
            assert_eq!(FieldPath::parse(text).unwrap().to_string(), shown, "{text}");
        }
        for bad in [
            "",
            "spec..replicas",
            "spec.",
            ".spec",
            "spec[x]",
            "spec[0",
            "a[0]b",
        ] {
            assert!(FieldPath::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn diff_table() {
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            Vec<&'a str>,
            Report,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "nothing changed",
                r#"{"spec":{"replicas":1}}"#,
                r#"{"spec":{"replicas":1}}"#,
                vec![],
                Report::All(10),
                vec![],
            ),
            (
                "replicas changed, nothing allowed, first",
                r#"{"spec":{"replicas":1,"x":2}}"#,
                r#"{"spec":{"replicas":3,"x":2}}"#,
                vec![],
                Report::First,
                vec!["spec"],
            ),
            (
                "replicas changed, nothing allowed, all",
                r#"{"spec":{"replicas":1,"x":2}}"#,
                r#"{"spec":{"replicas":3,"x":2}}"#,
                vec![],
                Report::All(10),
                vec!["spec.replicas"],
            ),
            (
                "replicas allowed",
                r#"{"spec":{"replicas":1,"x":2}}"#,
                r#"{"spec":{"replicas":3,"x":2}}"#,
                vec!["spec.replicas"],
                Report::First,
                vec![],
            ),
            (
                "replicas allowed, image not",
                r#"{"spec":{"replicas":1,"template":{"spec":{"containers":[{"name":"web","image":"a:1"}]}}}}"#,
                r#"{"spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"web","image":"a:2"}]}}}}"#,
                vec!["spec.replicas"],
                Report::All(10),
                vec!["spec.template.spec.containers[0].image"],
            ),
            (
                "image allowed through [*]",
                r#"{"spec":{"containers":[{"name":"a","image":"x:1"},{"name":"b","image":"y:1"}]}}"#,
                r#"{"spec":{"containers":[{"name":"a","image":"x:1"},{"name":"b","image":"y:2"}]}}"#,
                vec!["spec.containers[*].image"],
                Report::First,
                vec![],
            ),
            (
                "a container added is a change to the list",
                r#"{"spec":{"containers":[{"name":"a"}]}}"#,
                r#"{"spec":{"containers":[{"name":"a"},{"name":"b"}]}}"#,
                vec!["spec.containers[*].image"],
                Report::All(10),
                vec!["spec.containers"],
            ),
            (
                "first annotation added where none were",
                r#"{"metadata":{"name":"a"},"spec":{"template":{"spec":{}}}}"#,
                r#"{"metadata":{"name":"a"},"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"now"}},"spec":{}}}}"#,
                vec!["spec.template.metadata.annotations['kubectl.kubernetes.io/restartedAt']"],
                Report::First,
                vec![],
            ),
            (
                "annotations null vs map",
                r#"{"metadata":{"annotations":null}}"#,
                r#"{"metadata":{"annotations":{"a":"1"}}}"#,
                vec![],
                Report::All(10),
                vec!["metadata.annotations.a"],
            ),
            (
                "removed field",
                r#"{"spec":{"a":1,"b":2}}"#,
                r#"{"spec":{"a":1}}"#,
                vec![],
                Report::All(10),
                vec!["spec.b"],
            ),
            (
                "limit",
                r#"{"a":1,"b":1,"c":1}"#,
                r#"{"a":2,"b":2,"c":2}"#,
                vec![],
                Report::All(2),
                vec!["a", "b"],
            ),
            (
                "type change map to scalar",
                r#"{"spec":{"a":{"b":1}}}"#,
                r#"{"spec":{"a":"x"}}"#,
                vec![],
                Report::All(10),
                vec!["spec.a"],
            ),
            (
                "keys with dots are quoted",
                r#"{"metadata":{"labels":{"app.kubernetes.io/name":"a"}}}"#,
                r#"{"metadata":{"labels":{"app.kubernetes.io/name":"b"}}}"#,
                vec![],
                Report::All(10),
                vec!["metadata.labels['app.kubernetes.io/name']"],
            ),
            (
                "whitespace-only difference in an unchanged subtree is still compared by value",
                r#"{"a":{"x":1}}"#,
                r#"{"a":{ "x": 1 }}"#,
                vec![],
                Report::All(10),
                vec![],
            ),
        ];
        for (what, old, new, allowed, report, want) in cases {
            let got = disallowed_changes(&fields(old), &fields(new), &paths(&allowed), report);
            assert_eq!(got, want, "{what}");
        }
    }

    /// Fields of a scanned document (the request path) and fields read by serde_json (with no
    /// tape: each value is scanned when the diff descends into it) diff the same.
    #[test]
    fn scanned_and_serde_read_objects_diff_the_same() {
        let old = r#"{"apiVersion":"apps/v1","metadata":{"name":"web","generation":7,
            "annotations":{"a":"1","k\"ey":"x"},"labels":null,"managedFields":[{"m":"x"}]},
            "spec":{"replicas":1,"template":{"metadata":{"labels":{"app":"web"}},"spec":{
              "containers":[{"name":"web","image":"web:1","env":[{"name":"A","value":"ü"}]},{"name":"side","image":"s:1"}],
              "volumes":[],"nodeSelector":{"zone":"a"}}}},
            "status":{"ready":1},"gone":[1,2]}"#;
        let new = r#"{"apiVersion":"apps/v1","metadata":{"name":"web","generation":8,
            "annotations":{"a":"2","k\"ey":"x","kubectl.kubernetes.io/restartedAt":"now"},"labels":{"team":"x"},
            "managedFields":[{"m":"y"}]},
            "spec":{"replicas":3,"template":{"metadata":{"labels":{"app":"web"},"annotations":{"kubectl.kubernetes.io/restartedAt":"now"}},
              "spec":{"containers":[{"name":"web","image":"web:2","env":[{"name":"A","value":"ö"}]},{"name":"side","image":"s:1"}],
              "volumes":[{"name":"v"}],"nodeSelector":null}}},
            "status":{"ready":3},"added":{"x":[{"y":null}]}}"#;
        let allowed_sets = [
            vec![],
            vec!["metadata.generation", "metadata.managedFields", "status"],
            vec![
                "spec.replicas",
                "spec.template.spec.containers[*].image",
                "spec.template.metadata.annotations['kubectl.kubernetes.io/restartedAt']",
            ],
            vec![
                "metadata.annotations",
                "metadata.labels.team",
                "gone",
                "added",
            ],
            vec![
                "spec.template.spec.containers[0].env[0].value",
                "spec.template.spec.volumes",
            ],
        ];
        let scanned = |text| crate::Object::from_json(text).unwrap().fields;
        let (so, sn) = (scanned(old), scanned(new));
        for allowed in &allowed_sets {
            for report in [Report::First, Report::All(3), Report::All(100)] {
                let by_scan = disallowed_changes(&so, &sn, &paths(allowed), report);
                let by_serde =
                    disallowed_changes(&fields(old), &fields(new), &paths(allowed), report);
                assert_eq!(by_scan, by_serde, "{allowed:?} {report:?}");
            }
        }
        let all = disallowed_changes(&so, &sn, &[], Report::All(100));
        assert_eq!(
            all,
            [
                "metadata.generation",
                "metadata.annotations.a",
                "metadata.annotations['kubectl.kubernetes.io/restartedAt']",
                "metadata.labels.team",
                "metadata.managedFields[0].m",
                "spec.replicas",
                "spec.template.metadata.annotations['kubectl.kubernetes.io/restartedAt']",
                "spec.template.spec.containers[0].image",
                "spec.template.spec.containers[0].env[0].value",
                "spec.template.spec.volumes",
                "spec.template.spec.nodeSelector.zone",
                "status.ready",
                "gone",
                "added.x",
            ]
        );
    }
}
