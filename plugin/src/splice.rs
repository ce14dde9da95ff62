//! Minimal-diff editing of YAML manifest files.
//!
//! A change to one object is written back into its document by replacing, inserting or removing
//! only the bytes of the fields that changed: other documents, comments, key order, quoting,
//! indentation, flow style, line endings, block scalars and anchors stay as they were, so a
//! one-field change is a one-line diff.
//!
//! Typical use:
//! ```no_run
//! # fn demo(file: &str, edited: &serde_json::Value) -> Result<String, kubectl_gitops::splice::Error> {
//! use kubectl_gitops::splice;
//! let docs = splice::find_documents(file);
//! let doc = docs.iter().find(|d| d.is_object("Deployment", "web", Some("shop"))).unwrap();
//! splice::update_document(file, doc, edited)
//! # }
//! ```
//! Every edit is checked by reading the result back: if it does not give exactly the intended
//! object, the edit fails instead of writing something else.

mod commands;
mod diff;
pub(crate) mod documents;
mod edit;
mod emit;
mod error;
mod patch;
mod path;
mod scalar;
pub(crate) mod tree;

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

pub use commands::{pod_spec_path, set_image_changes};
pub use diff::changes_between;
pub use documents::{DocSpan, find_documents};
pub use error::Error;
pub use patch::{json_patch, merge_patch, strategic_merge_patch};
pub use path::{Change, FieldPath, PathSegment};
pub use scalar::resolve_plain;

use path::{JsonPathError, apply_json, get};
use tree::{Kind, Tree, resolve};

/// The object in one document's text (`null` for a document without content). Read with the
/// same rules the editor uses, so compare two objects read by this function only.
pub fn parse_document(doc_text: &str) -> Result<Value, Error> {
    Ok(tree::to_json(&tree::parse(doc_text)?))
}

/// Applies changes, in order, to the text of one document and returns the new text.
pub fn apply_changes(doc_text: &str, changes: &[Change]) -> Result<String, Error> {
    apply_with_line_ending(doc_text, changes, line_ending(doc_text))
}

fn line_ending(text: &str) -> &'static str {
    if text.contains("\r\n") { "\r\n" } else { "\n" }
}

fn apply_with_line_ending(
    doc_text: &str,
    changes: &[Change],
    nl: &'static str,
) -> Result<String, Error> {
    let mut text = doc_text.to_string();
    let mut pending: VecDeque<Change> = normalize(&parse_document(doc_text)?, changes)?.into();
    while let Some(change) = pending.pop_front() {
        let tree = tree::parse(&text)?;
        let before = tree::to_json(&tree);
        let mut expected = before.clone();
        apply_json(&mut expected, &change).map_err(|e| conflict(&change, &e))?;
        if expected == before {
            continue;
        }
        let (target, occurrences) = resolve_sharing(&tree, &before, &change, &mut pending)?;
        for p in &occurrences {
            apply_json(&mut expected, &change.with_path(p.clone()))
                .map_err(|e| conflict(&change, &e))?;
        }
        let mut style = emit::detect_style(&text, &tree);
        style.nl = nl;
        let mut editor = edit::Editor {
            text: &text,
            tree: &tree,
            style: &style,
            anchors: HashMap::new(),
        };
        // Fill the anchor values so that aliases read back correctly inside rewritten parts.
        if let Some(root) = &tree.root {
            tree::node_json(root, &mut editor.anchors);
        }
        let new_text = editor.apply(&target)?;
        let after = parse_document(&new_text).map_err(|_| Error::SpliceVerification {
            path: change.path().to_string(),
        })?;
        if after != expected {
            return Err(Error::SpliceVerification {
                path: change.path().to_string(),
            });
        }
        text = new_text;
    }
    Ok(text)
}

/// Applies changes to one document of a file and returns the whole new file text.
pub fn apply_changes_to_file(
    file_text: &str,
    doc: &DocSpan,
    changes: &[Change],
) -> Result<String, Error> {
    let new_doc = apply_with_line_ending(
        &file_text[doc.range.clone()],
        changes,
        line_ending(file_text),
    )?;
    Ok(replace_range(file_text, doc, &new_doc))
}

/// Writes an edited object back into its document of a file (only the fields that differ from
/// the document change) and returns the whole new file text.
pub fn update_document(file_text: &str, doc: &DocSpan, edited: &Value) -> Result<String, Error> {
    let old = parse_document(&file_text[doc.range.clone()])?;
    apply_changes_to_file(file_text, doc, &changes_between(&old, edited))
}

fn replace_range(file_text: &str, doc: &DocSpan, new_doc: &str) -> String {
    let mut out = String::with_capacity(file_text.len() + new_doc.len());
    out.push_str(&file_text[..doc.range.start]);
    out.push_str(new_doc);
    out.push_str(&file_text[doc.range.end..]);
    out
}

fn conflict(change: &Change, e: &JsonPathError) -> Error {
    Error::PathConflict {
        path: change.path().to_string(),
        found: e.found.clone(),
    }
}

/// Splits changes that set a whole map or list onto an existing map or list into the changes
/// of the fields inside, so that only those fields are rewritten.
fn normalize(doc: &Value, changes: &[Change]) -> Result<Vec<Change>, Error> {
    let mut current = doc.clone();
    let mut out = Vec::new();
    for change in changes {
        let expanded = match change {
            Change::Set { path, value } => match get(&current, path.segments()) {
                Some(old)
                    if (old.is_object() && value.is_object())
                        || (old.is_array() && value.is_array()) =>
                {
                    changes_between(old, value)
                        .into_iter()
                        .map(|c| c.with_path(path.join(c.path().segments())))
                        .collect()
                }
                _ => vec![change.clone()],
            },
            _ => vec![change.clone()],
        };
        for c in expanded {
            apply_json(&mut current, &c).map_err(|e| conflict(&c, &e))?;
            out.push(c);
        }
    }
    Ok(out)
}

/// A change that reaches into an anchored node (directly or through an alias) would change every
/// place the anchor is used. That is only done when the same change is made at all of those
/// places; the change is then made once, at the anchor. Returns the change to make and every
/// path whose value it changes.
fn resolve_sharing(
    tree: &Tree,
    doc: &Value,
    change: &Change,
    pending: &mut VecDeque<Change>,
) -> Result<(Change, Vec<FieldPath>), Error> {
    let Some(root) = &tree.root else {
        return Ok((change.clone(), Vec::new()));
    };
    let path = change.path().segments();
    let referenced = |anchor: usize| anchor != 0 && tree.aliases.iter().any(|(_, a)| *a == anchor);
    let mut crossings = Vec::new();
    let mut cur = root;
    for (i, seg) in path.iter().enumerate() {
        if let Kind::Alias(id) = cur.kind {
            crossings.push((i, id));
            match tree.anchors.get(&id).and_then(|a| resolve(root, &a.path)) {
                Some(n) => cur = n,
                None => break,
            }
        } else if referenced(cur.anchor) {
            crossings.push((i, cur.anchor));
        }
        let next = match &cur.kind {
            Kind::Map { entries, .. } => {
                let found = entries.iter().rev().find(|e| e.name == seg.as_key());
                if found.is_none()
                    && entries.iter().any(|e| tree::is_merge_key(&e.key))
                    && (i + 1 < path.len() || matches!(change, Change::Delete { .. }))
                    && get(doc, &path[..=i]).is_some()
                {
                    return Err(Error::MergeKey {
                        path: FieldPath(path[..=i].to_vec()).to_string(),
                    });
                }
                found.map(|e| &e.value)
            }
            Kind::Seq { items, .. } => seg
                .as_index(items.len())
                .and_then(|i| items.get(i))
                .map(|i| &i.node),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => break,
        }
    }
    let anchor_name = |id: usize| {
        tree.anchors
            .get(&id)
            .map(|a| a.name.clone())
            .unwrap_or_default()
    };
    // Replacing or deleting a node that holds an anchor would break the aliases to it.
    let within = |p: &[PathSegment]| {
        p.len() >= path.len() && FieldPath(p[..path.len()].to_vec()).same(change.path())
    };
    if crossings.is_empty()
        && !matches!(change, Change::Insert { .. })
        && resolve(root, path).is_some()
    {
        for (id, def) in &tree.anchors {
            if !within(&def.path) {
                continue;
            }
            let outside: Vec<String> = tree
                .alias_paths(*id)
                .into_iter()
                .filter(|p| !within(p))
                .map(|p| FieldPath(p).to_string())
                .collect();
            if !outside.is_empty() {
                return Err(Error::AnchorRemoved {
                    path: change.path().to_string(),
                    anchor: anchor_name(*id),
                    others: outside.join(", "),
                });
            }
        }
    }
    let Some(&(depth, id)) = crossings.first() else {
        return Ok((change.clone(), Vec::new()));
    };
    let Some(def) = tree.anchors.get(&id) else {
        return Err(Error::UnsupportedYaml {
            path: change.path().to_string(),
            construct: "an alias to an unknown anchor".into(),
        });
    };
    let suffix = &path[depth..];
    let mut places: Vec<FieldPath> = vec![FieldPath(def.path.clone())];
    places.extend(tree.alias_paths(id).into_iter().map(FieldPath));
    let occurrences: Vec<FieldPath> = places.iter().map(|p| p.join(suffix)).collect();
    let others: Vec<&FieldPath> = occurrences
        .iter()
        .filter(|o| !o.same(change.path()))
        .collect();
    let all_changed = crossings.len() == 1
        && others.iter().all(|o| {
            pending
                .iter()
                .any(|c| c.path().same(o) && c.same_operation(change))
        });
    if !all_changed {
        return Err(Error::AnchorShared {
            path: change.path().to_string(),
            anchor: def.name.clone(),
            others: places
                .iter()
                .filter(|p| !change.path().0.starts_with(&p.0) || p.0.is_empty())
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    pending.retain(|c| !(others.iter().any(|o| c.path().same(o)) && c.same_operation(change)));
    let target = change.with_path(FieldPath(def.path.clone()).join(suffix));
    Ok((target, occurrences))
}
