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
            let by_serde = disallowed_changes(&fields(old), &fields(new), &paths(allowed), report);
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

/// The walk as it was written first, recursing once per level: the reference the iterative walk
/// must agree with (on values shallow enough for it).
mod reference {
    use super::super::*;

    struct Ctx<'p> {
        allowed: &'p [&'p FieldPath],
        deep: bool,
        limit: usize,
    }

    pub fn disallowed_changes(
        old: &Fields<'_>,
        new: &Fields<'_>,
        allowed: &[FieldPath],
        report: Report,
    ) -> Vec<String> {
        let allowed: Vec<&FieldPath> = allowed.iter().collect();
        let mut out = Vec::new();
        let mut path = Vec::new();
        let limit = match report {
            Report::First => 1,
            Report::All(n) => n.max(1),
        };
        let ctx = Ctx {
            allowed: &allowed,
            deep: matches!(report, Report::All(_)),
            limit,
        };
        diff_fields(old, new, &ctx, &mut path, &mut out);
        out
    }

    fn diff_fields(
        old: &Fields<'_>,
        new: &Fields<'_>,
        ctx: &Ctx<'_>,
        path: &mut Vec<Seg>,
        out: &mut Vec<String>,
    ) {
        let top =
            |old: Option<&Raw<'_>>, new: Option<&Raw<'_>>, path: &mut Vec<Seg>, out: &mut _| {
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
}

/// A small deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const KEYS: [&str; 6] = ["a", "b", "c", "spec", "x.y", "n"];

fn random_value(rng: &mut Rng, depth: usize) -> serde_json::Value {
    use serde_json::Value;
    let pick = if depth == 0 {
        rng.below(4)
    } else {
        rng.below(7)
    };
    match pick {
        0 => Value::Null,
        1 => Value::from(rng.below(3)),
        2 => Value::from(["x", "y", "<&>", "ü"][rng.below(4)]),
        3 => Value::Bool(rng.below(2) == 0),
        4 | 5 => {
            let mut map = serde_json::Map::new();
            for _ in 0..rng.below(4) {
                map.insert(
                    KEYS[rng.below(KEYS.len())].to_string(),
                    random_value(rng, depth - 1),
                );
            }
            Value::Object(map)
        }
        _ => Value::Array(
            (0..rng.below(3))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
    }
}

/// `v` with a few random changes somewhere inside.
fn mutate(rng: &mut Rng, v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    if rng.below(5) == 0 {
        return random_value(rng, 2);
    }
    match v {
        Value::Object(map) => {
            let mut map = map.clone();
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if rng.below(3) == 0 {
                    let changed = mutate(rng, &map[&key]);
                    map.insert(key, changed);
                }
            }
            match rng.below(6) {
                0 => {
                    map.insert(KEYS[rng.below(KEYS.len())].into(), random_value(rng, 2));
                }
                1 => {
                    map.remove(KEYS[rng.below(KEYS.len())]);
                }
                _ => {}
            }
            Value::Object(map)
        }
        Value::Array(items) => {
            let mut items: Vec<Value> = items
                .iter()
                .map(|x| {
                    if rng.below(2) == 0 {
                        mutate(rng, x)
                    } else {
                        x.clone()
                    }
                })
                .collect();
            if rng.below(6) == 0 {
                items.push(random_value(rng, 1));
            }
            Value::Array(items)
        }
        other => other.clone(),
    }
}

/// Every path in `v` (as patterns), some with `[*]` for an index.
fn patterns_in(
    rng: &mut Rng,
    v: &serde_json::Value,
    at: &mut Vec<PatSeg>,
    out: &mut Vec<FieldPath>,
) {
    if !at.is_empty() {
        out.push(FieldPath(at.clone()));
    }
    match v {
        serde_json::Value::Object(map) => {
            for (k, x) in map {
                at.push(PatSeg::Key(k.clone()));
                patterns_in(rng, x, at, out);
                at.pop();
            }
        }
        serde_json::Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                at.push(if rng.below(2) == 0 {
                    PatSeg::AnyIndex
                } else {
                    PatSeg::Index(i)
                });
                patterns_in(rng, x, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

#[test]
fn the_iterative_walk_reports_what_the_recursive_one_did() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut changes = 0;
    for round in 0..3000 {
        let mut old = serde_json::Map::new();
        for _ in 0..1 + rng.below(4) {
            old.insert(
                KEYS[rng.below(KEYS.len())].into(),
                random_value(&mut rng, 4),
            );
        }
        let old = serde_json::Value::Object(old);
        let mut new = mutate(&mut rng, &old);
        if !new.is_object() {
            new = serde_json::json!({"a": new});
        }
        let mut candidates = Vec::new();
        patterns_in(&mut rng, &old, &mut Vec::new(), &mut candidates);
        patterns_in(&mut rng, &new, &mut Vec::new(), &mut candidates);
        let allowed: Vec<FieldPath> = (0..rng.below(3))
            .filter(|_| !candidates.is_empty())
            .map(|_| candidates[rng.below(candidates.len())].clone())
            .collect();
        // Compact as the API server sends it, and now and then pretty (whitespace shifts the
        // offsets the walk reuses).
        let text = |v: &serde_json::Value, rng: &mut Rng| {
            if rng.below(4) == 0 {
                serde_json::to_string_pretty(v).unwrap()
            } else {
                serde_json::to_string(v).unwrap()
            }
        };
        let (old_text, new_text) = (text(&old, &mut rng), text(&new, &mut rng));
        // Both objects in one scanned document, as in a review.
        let doc = format!(r#"{{"old":{old_text},"new":{new_text}}}"#);
        let scanned = crate::Object::from_json(&doc).unwrap();
        let part = |key| Fields::parse(scanned.fields.get(key).unwrap()).unwrap();
        let (so, sn) = (part("old"), part("new"));
        for report in [Report::First, Report::All(3), Report::All(1000)] {
            let want = reference::disallowed_changes(
                &fields(&old_text),
                &fields(&new_text),
                &allowed,
                report,
            );
            let by_serde =
                disallowed_changes(&fields(&old_text), &fields(&new_text), &allowed, report);
            let by_scan = disallowed_changes(&so, &sn, &allowed, report);
            assert_eq!(
                by_serde, want,
                "round {round} {report:?} {allowed:?}\n{old_text}\n{new_text}"
            );
            assert_eq!(
                by_scan, want,
                "round {round} {report:?} {allowed:?}\n{old_text}\n{new_text}"
            );
            changes += want.len();
        }
    }
    assert!(changes > 1000, "{changes}");
}

#[test]
fn duplicate_keys_and_whitespace_walk_as_before() {
    let cases = [
        (r#"{"a":{"x":1,"x":2}}"#, r#"{"a":{"x":1,"x":2}}"#),
        (r#"{"a":{"x":1,"x":2}}"#, r#"{"a":{"x":2,"x":1}}"#),
        (r#"{"a":{"x":1,"x":2,"y":3}}"#, r#"{"a":{"x":1,"y":4}}"#),
        (r#"{"a":{"x":[1, 2],"y":3}}"#, r#"{"a":{"x":[1,2], "y":3}}"#),
        (r#"{"a":{"x":[1, 2],"y":3}}"#, r#"{"a":{"y":3,"x":[1,3]}}"#),
        (r#"{"a":1,"a":2}"#, r#"{"a":2}"#),
        (r#"{"a":{"k\"":1}}"#, r#"{"a":{"k\u0022":2}}"#),
    ];
    for (old, new) in cases {
        for allowed in [vec![], vec!["a.x"], vec!["a.y"], vec!["a.z"]] {
            for report in [Report::First, Report::All(10)] {
                let allowed = paths(&allowed);
                assert_eq!(
                    disallowed_changes(&fields(old), &fields(new), &allowed, report),
                    reference::disallowed_changes(&fields(old), &fields(new), &allowed, report),
                    "{old} {new} {allowed:?} {report:?}"
                );
            }
        }
    }
}

/// `{"sibling":S,"deep":{"a":{"a":…{"a":LEAF}…}}}` with `depth` levels of `a`.
fn deep_object(depth: usize, leaf: &str, sibling: &str) -> String {
    format!(
        r#"{{"spec":{{"sibling":{sibling},"deep":{}{leaf}{}}}}}"#,
        r#"{"a":"#.repeat(depth),
        "}".repeat(depth)
    )
}

#[test]
fn values_nested_ten_thousand_levels_deep_are_compared_not_crashed_on() {
    for depth in [10_000, 100_000] {
        let old = deep_object(depth, "1", "1");
        let new = deep_object(depth, "2", "1");
        let (o, n) = (
            crate::Object::from_json(&old).unwrap(),
            crate::Object::from_json(&new).unwrap(),
        );
        let (fo, fnew) = (&o.fields, &n.fields);
        // allow-fields covering a sibling: the deep change is not allowed.
        let sibling = paths(&["spec.sibling"]);
        assert_eq!(
            disallowed_changes(fo, fnew, &sibling, Report::First),
            ["spec.deep"]
        );
        let all = disallowed_changes(fo, fnew, &sibling, Report::All(8));
        assert_eq!(all.len(), 1);
        assert!(
            all[0].starts_with("spec.deep.a.a.a.a."),
            "{}",
            &all[0][..40]
        );
        assert!(all[0].ends_with('…') && all[0].len() <= MAX_PATH_TEXT + '…'.len_utf8());
        // Covering the deep value: allowed.
        let deep = paths(&["spec.deep"]);
        assert!(disallowed_changes(fo, fnew, &deep, Report::First).is_empty());
        assert!(disallowed_changes(fo, fnew, &deep, Report::All(8)).is_empty());
        // A path into it, as deep as the change.
        let exact = FieldPath(
            [PatSeg::Key("spec".into()), PatSeg::Key("deep".into())]
                .into_iter()
                .chain(std::iter::repeat_n(PatSeg::Key("a".into()), depth))
                .collect(),
        );
        assert!(
            disallowed_changes(fo, fnew, std::slice::from_ref(&exact), Report::First).is_empty()
        );
        // A pattern covers everything below it.
        let mut short = exact.clone();
        short.0.pop();
        assert!(disallowed_changes(fo, fnew, &[short], Report::All(8)).is_empty());
        // A sibling changed next to an allowed deep change is still caught.
        let new_sibling = deep_object(depth, "2", "2");
        let ns = crate::Object::from_json(&new_sibling).unwrap();
        assert_eq!(
            disallowed_changes(fo, &ns.fields, &deep, Report::All(8)),
            ["spec.sibling"]
        );
        // Without a tape (values read by serde_json, scanned when the walk gets to them).
        assert_eq!(
            disallowed_changes(&fields(&old), &fields(&new), &sibling, Report::First),
            ["spec.deep"]
        );
        assert!(disallowed_changes(&fields(&old), &fields(&new), &deep, Report::All(8)).is_empty());
    }
}

#[test]
fn deep_lists_and_a_change_at_every_level() {
    let depth = 20_000;
    let old = format!(r#"{{"l":{}0{}}}"#, "[1,".repeat(depth), "]".repeat(depth));
    let new = format!(r#"{{"l":{}0{}}}"#, "[2,".repeat(depth), "]".repeat(depth));
    let all = disallowed_changes(&fields(&old), &fields(&new), &[], Report::All(8));
    assert_eq!(
        all,
        [
            "l[0]",
            "l[1][0]",
            "l[1][1][0]",
            "l[1][1][1][0]",
            "l[1][1][1][1][0]",
            "l[1][1][1][1][1][0]",
            "l[1][1][1][1][1][1][0]",
            "l[1][1][1][1][1][1][1][0]",
        ]
    );
    // A pattern as deep as the list leads the walk all the way down, and covers the last level.
    let any = FieldPath(
        std::iter::once(PatSeg::Key("l".into()))
            .chain(std::iter::repeat_n(PatSeg::AnyIndex, depth + 1))
            .collect(),
    );
    let first = disallowed_changes(&fields(&old), &fields(&new), &[any], Report::First);
    assert_eq!(first, ["l[0]"]);
    assert_eq!(
        disallowed_changes(
            &fields(&old),
            &fields(&new),
            &paths(&["l[1]"]),
            Report::All(8)
        ),
        ["l[0]"]
    );
}

/// The walk is linear in the size of the objects: a long value at the bottom of a deep chain is
/// not compared again at every level, and a wide map is searched through an index.
#[test]
fn deep_and_wide_values_take_linear_time() {
    let started = std::time::Instant::now();
    let blob = "<".repeat(1 << 20);
    let old = deep_object(10_000, &format!(r#""{blob}x""#), "1");
    let new = deep_object(10_000, &format!(r#""{blob}y""#), "1");
    let (o, n) = (
        crate::Object::from_json(&old).unwrap(),
        crate::Object::from_json(&new).unwrap(),
    );
    let sibling = paths(&["spec.sibling"]);
    assert_eq!(
        disallowed_changes(&o.fields, &n.fields, &sibling, Report::All(8)).len(),
        1
    );
    assert!(
        disallowed_changes(&o.fields, &n.fields, &paths(&["spec.deep"]), Report::All(8)).is_empty()
    );

    let wide = |last: u32| {
        let mut text = String::from(r#"{"data":{"#);
        for i in 0..200_000 {
            text.push_str(&format!(r#""k{i}":"v","#));
        }
        text.push_str(&format!(r#""last":"{last}"}}}}"#));
        text
    };
    let (old, new) = (wide(1), wide(2));
    let (o, n) = (
        crate::Object::from_json(&old).unwrap(),
        crate::Object::from_json(&new).unwrap(),
    );
    assert_eq!(
        disallowed_changes(&o.fields, &n.fields, &paths(&["data.k0"]), Report::All(8)),
        ["data.last"]
    );
    assert!(
        disallowed_changes(&o.fields, &n.fields, &paths(&["data.last"]), Report::First).is_empty()
    );
    // Quadratic work here would take minutes.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn long_paths_are_cut_in_reports() {
    let key = "k".repeat(5000);
    let old = format!(r#"{{"spec":{{"{key}":1}}}}"#);
    let new = format!(r#"{{"spec":{{"{key}":2}}}}"#);
    let got = disallowed_changes(&fields(&old), &fields(&new), &[], Report::All(8));
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("spec.kkk") && got[0].ends_with('…'),
        "{}",
        got[0]
    );
    assert_eq!(got[0].len(), MAX_PATH_TEXT + '…'.len_utf8());
    // Multi-byte characters are cut whole.
    let path = [Seg::Key("ü".repeat(600))];
    let text = path_string(&path);
    assert!(text.ends_with('…') && text.len() <= MAX_PATH_TEXT + 3);
    assert_eq!(
        path_string(&[Seg::Key("spec".into()), Seg::Index(3)]),
        "spec[3]"
    );
}
