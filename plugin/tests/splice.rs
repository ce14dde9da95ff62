//! Golden tests for minimal-diff manifest editing.
//!
//! Each directory under `tests/fixtures/splice/` holds `input.yaml`, `case.json` (which document,
//! what to change, the expected diff size or error) and, unless an error is expected,
//! `expected.yaml`. The output must equal `expected.yaml` byte for byte and the line diff
//! between input and output must have exactly the stated number of removed and added lines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

use std::fs;
use std::path::{Path, PathBuf};

use kubectl_gitops::splice::{
    self, Change, DocSpan, FieldPath, changes_between, find_documents, json_patch, merge_patch,
    parse_document, strategic_merge_patch,
};
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/splice")
}

/// Lines removed and added by a minimal line diff (longest common subsequence), counting a
/// changed line ending or a missing final line break as a change, as `diff -u` does.
fn diff_counts(a: &str, b: &str) -> (usize, usize) {
    let a: Vec<&str> = a.split_inclusive('\n').collect();
    let b: Vec<&str> = b.split_inclusive('\n').collect();
    let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            t[i][j] = if a[i] == b[j] {
                t[i + 1][j + 1] + 1
            } else {
                t[i + 1][j].max(t[i][j + 1])
            };
        }
    }
    let common = t[0][0];
    (a.len() - common, b.len() - common)
}

fn show_diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.split_inclusive('\n').collect();
    let b: Vec<&str> = b.split_inclusive('\n').collect();
    let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            t[i][j] = if a[i] == b[j] {
                t[i + 1][j + 1] + 1
            } else {
                t[i + 1][j].max(t[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {:?}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || t[i][j + 1] >= t[i + 1][j]) {
            out.push_str(&format!("+ {:?}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {:?}\n", a[i]));
            i += 1;
        }
    }
    out
}

fn pick<'d>(docs: &'d [DocSpan], sel: &Value) -> &'d DocSpan {
    if let Some(i) = sel.get("index").and_then(Value::as_u64) {
        return &docs[i as usize];
    }
    let kind = sel["kind"].as_str().unwrap_or_default();
    let name = sel["name"].as_str().unwrap_or_default();
    let ns = sel.get("namespace").and_then(Value::as_str);
    let found: Vec<_> = docs
        .iter()
        .filter(|d| d.is_object(kind, name, ns))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "document {sel} should be found once in {docs:?}"
    );
    found[0]
}

fn parse_changes(list: &Value) -> Vec<Change> {
    list.as_array()
        .expect("changes is a list")
        .iter()
        .map(|c| {
            let path = FieldPath::from_pointer(c["path"].as_str().expect("path")).expect("pointer");
            match c["op"].as_str().expect("op") {
                "set" => Change::set(path, c["value"].clone()),
                "insert" => Change::insert(path, c["value"].clone()),
                "delete" => Change::delete(path),
                other => panic!("unknown op {other}"),
            }
        })
        .collect()
}

/// Runs one fixture case; returns the new file text or the error message.
fn run_case(input: &str, case: &Value) -> Result<String, String> {
    let docs = find_documents(input);
    let doc = pick(&docs, &case["doc"]);
    let doc_text = &input[doc.range.clone()];
    let result = if let Some(changes) = case.get("changes") {
        splice::apply_changes_to_file(input, doc, &parse_changes(changes))
    } else if let Some(edited) = case.get("edited") {
        splice::update_document(input, doc, edited)
    } else if let Some(pairs) = case.get("set_image") {
        let obj = parse_document(doc_text).map_err(|e| e.to_string())?;
        let images: Vec<(String, String)> = pairs
            .as_array()
            .expect("set_image is a list")
            .iter()
            .map(|p| {
                (
                    p[0].as_str().expect("container").into(),
                    p[1].as_str().expect("image").into(),
                )
            })
            .collect();
        let changes = splice::set_image_changes(&obj, &images).map_err(|e| e.to_string())?;
        splice::apply_changes_to_file(input, doc, &changes)
    } else if let Some(patch) = case.get("patch") {
        let mut obj = parse_document(doc_text).map_err(|e| e.to_string())?;
        match patch["type"].as_str() {
            Some("merge") => merge_patch(&mut obj, &patch["patch"]),
            Some("strategic") => strategic_merge_patch(&mut obj, &patch["patch"]),
            Some("json") => json_patch(&mut obj, &patch["patch"]).map_err(|e| e.to_string())?,
            other => panic!("unknown patch type {other:?}"),
        }
        splice::update_document(input, doc, &obj)
    } else {
        panic!("case has no changes, edited or patch")
    };
    result.map_err(|e| e.to_string())
}

#[test]
fn golden_files() {
    let mut names: Vec<PathBuf> = fs::read_dir(fixtures())
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    assert!(names.len() >= 20, "golden cases missing: {names:?}");
    let mut failures = Vec::new();
    for dir in &names {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let input = fs::read_to_string(dir.join("input.yaml")).expect("input.yaml");
        let case: Value =
            serde_json::from_str(&fs::read_to_string(dir.join("case.json")).expect("case.json"))
                .expect("case.json is JSON");
        let result = run_case(&input, &case);
        if let Some(want) = case.get("error").and_then(Value::as_str) {
            match result {
                Err(e) if e.contains(want) => {}
                Err(e) => failures.push(format!("{name}: error {e:?} does not contain {want:?}")),
                Ok(out) => failures.push(format!("{name}: expected an error, got:\n{out}")),
            }
            continue;
        }
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let expected = fs::read_to_string(dir.join("expected.yaml")).unwrap_or_default();
        if out != expected {
            let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("splice-actual")
                .join(&name);
            fs::create_dir_all(&scratch).expect("scratch dir");
            fs::write(scratch.join("expected.yaml"), &out).expect("write actual");
            failures.push(format!(
                "{name}: output differs from expected.yaml (actual written to {}); diff from input:\n{}",
                scratch.display(),
                show_diff(&input, &out)
            ));
            continue;
        }
        let (removed, added) = diff_counts(&input, &out);
        let want = (
            case["diff"]["removed"].as_u64().unwrap_or(u64::MAX) as usize,
            case["diff"]["added"].as_u64().unwrap_or(u64::MAX) as usize,
        );
        if (removed, added) != want {
            failures.push(format!(
                "{name}: diff has -{removed} +{added} lines, expected -{} +{}",
                want.0, want.1
            ));
        }
        // Other documents of the file are untouched, and the edited one reads back as intended.
        let before = find_documents(&input);
        let after = find_documents(&out);
        assert_eq!(before.len(), after.len(), "{name}: document count changed");
        let target = pick(&before, &case["doc"]).index;
        for (b, a) in before.iter().zip(&after) {
            if b.index != target {
                assert_eq!(
                    input[b.range.clone()],
                    out[a.range.clone()],
                    "{name}: document {} changed",
                    b.index
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn one_field_change_is_one_line_in_a_realistic_file() {
    let input =
        fs::read_to_string(fixtures().join("multi-doc-set-image/input.yaml")).expect("input");
    let docs = find_documents(&input);
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0].kind.as_deref(), Some("Service"));
    assert!(input[docs[0].range.clone()].starts_with("# Generated once"));
    let doc = &docs[1];
    let mut obj = parse_document(&input[doc.range.clone()]).expect("parse");
    obj["spec"]["replicas"] = json!(7);
    let out = splice::update_document(&input, doc, &obj).expect("update");
    assert_eq!(diff_counts(&input, &out), (1, 1));
    assert!(out.contains("  replicas: 7\n"));
}

#[test]
fn editing_the_same_object_back_restores_the_file() {
    let input =
        fs::read_to_string(fixtures().join("full-edit-deployment/input.yaml")).expect("input");
    let docs = find_documents(&input);
    let original = parse_document(&input[docs[0].range.clone()]).expect("parse");
    let mut edited = original.clone();
    edited["spec"]["replicas"] = json!(9);
    let changed = splice::update_document(&input, &docs[0], &edited).expect("edit");
    let docs2 = find_documents(&changed);
    let back = splice::update_document(&changed, &docs2[0], &original).expect("edit back");
    assert_eq!(back, input);
}

#[test]
fn nothing_changes_when_the_object_is_the_same() {
    for dir in [
        "scale-comments",
        "flow-style",
        "crlf-scale",
        "block-scalars-untouched",
    ] {
        let input = fs::read_to_string(fixtures().join(dir).join("input.yaml")).expect("input");
        for doc in find_documents(&input) {
            let obj = parse_document(&input[doc.range.clone()]).expect("parse");
            assert!(changes_between(&obj, &obj).is_empty());
            assert_eq!(
                splice::update_document(&input, &doc, &obj).expect("update"),
                input
            );
        }
    }
}

#[test]
fn setting_inside_a_scalar_is_a_clear_error() {
    let text = "spec:\n  replicas: 3\n";
    let err = splice::apply_changes(
        text,
        &[Change::set(
            FieldPath::keys(["spec", "replicas", "min"]),
            json!(1),
        )],
    )
    .expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "cannot set spec.replicas.min: the value at spec.replicas is a number"
    );
}

#[test]
fn invalid_yaml_is_reported_with_its_position() {
    let err = splice::apply_changes("a: [1, 2\nb: 3\n", &[]).expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.starts_with("the manifest is not valid YAML (line "),
        "{msg}"
    );
    assert!(msg.ends_with("fix the file first"), "{msg}");
}

#[test]
fn merge_keys_are_not_edited_through() {
    let text = "base: &b\n  a: 1\nobj:\n  <<: *b\n  c: 2\n";
    let err = splice::apply_changes(text, &[Change::delete(FieldPath::keys(["obj", "a"]))])
        .expect_err("must fail");
    assert!(
        err.to_string()
            .contains("obj.a comes from a YAML merge key"),
        "{err}"
    );
    // Overriding a merged key is a new key in the mapping itself.
    let out = splice::apply_changes(
        text,
        &[Change::set(FieldPath::keys(["obj", "a"]), json!(5))],
    )
    .expect("override");
    assert_eq!(out, "base: &b\n  a: 1\nobj:\n  <<: *b\n  c: 2\n  a: 5\n");
}

#[test]
fn list_items_can_be_replaced_by_other_shapes() {
    let text = "items:\n- a\n- b: 1\n  c: 2\n- [x, y]\n";
    let out = splice::apply_changes(
        text,
        &[
            Change::set(
                FieldPath::keys(["items"]).index(0),
                json!({"k": "v", "l": [1]}),
            ),
            Change::set(FieldPath::keys(["items"]).index(1), json!("plain")),
            Change::delete(FieldPath::keys(["items"]).index(2)),
        ],
    )
    .expect("edit");
    assert_eq!(out, "items:\n- k: v\n  l:\n  - 1\n- plain\n");
}
