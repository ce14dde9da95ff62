//! Applying one change to the text of a document by replacing, inserting or removing only the
//! bytes of the nodes involved.

use std::collections::HashMap;

use serde_json::Value;

use super::Error;
use super::emit::{
    DocStyle, col, comment_after, insertion_point, line_end_excl, line_end_incl, line_start,
    needs_block, next_comment_indent,
};
use super::path::{Change, FieldPath, PathSegment, apply_json, describe};
use super::scalar::{self, Style};
use super::tree::{Kind, Node, Tree, node_json};

/// One text replacement.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

/// How a node hangs in its parent.
enum Ctx {
    Root,
    /// Value of a block mapping entry whose key is at `key_col` and whose `:` is at `colon`.
    MapValue {
        key_col: usize,
        colon: usize,
    },
    /// Item of a block sequence whose `-` is at `dash`.
    SeqItem {
        dash_col: usize,
        dash: usize,
    },
}

/// One step of a walk: the child `index` of `parent`.
#[derive(Clone, Copy)]
struct Step<'t> {
    parent: &'t Node,
    index: usize,
}

struct Walk<'t> {
    /// `nodes[0]` is the root, `nodes[i]` the node at `path[..i]`.
    nodes: Vec<&'t Node>,
    steps: Vec<Step<'t>>,
}

fn child<'t>(node: &'t Node, seg: &PathSegment) -> Option<(usize, &'t Node)> {
    match &node.kind {
        Kind::Map { entries, .. } => {
            let key = seg.as_key();
            entries
                .iter()
                .enumerate()
                .rev()
                .find(|(_, e)| e.name == key)
                .map(|(i, e)| (i, &e.value))
        }
        Kind::Seq { items, .. } => {
            let i = seg.as_index(items.len())?;
            items.get(i).map(|it| (i, &it.node))
        }
        _ => None,
    }
}

fn walk<'t>(root: &'t Node, path: &[PathSegment]) -> Walk<'t> {
    let mut w = Walk {
        nodes: vec![root],
        steps: Vec::new(),
    };
    let mut cur = root;
    for seg in path {
        let Some((index, next)) = child(cur, seg) else {
            break;
        };
        w.steps.push(Step { parent: cur, index });
        w.nodes.push(next);
        cur = next;
    }
    w
}

pub(crate) struct Editor<'a> {
    pub text: &'a str,
    pub tree: &'a Tree,
    pub style: &'a DocStyle,
    pub anchors: HashMap<usize, Value>,
}

fn unsupported(path: &[PathSegment], construct: &str) -> Error {
    Error::UnsupportedYaml {
        path: FieldPath(path.to_vec()).to_string(),
        construct: construct.to_string(),
    }
}

/// Builds `{a: {b: value}}` for the missing tail `[a, b]` of a path.
fn nest(path: &FieldPath, tail: &[PathSegment], value: Value) -> Result<Value, Error> {
    let mut v = value;
    for seg in tail.iter().rev() {
        v = match seg {
            PathSegment::Index(0) => Value::Array(vec![v]),
            PathSegment::Key(k) if k == "-" => Value::Array(vec![v]),
            PathSegment::Key(k) => {
                let mut m = serde_json::Map::new();
                m.insert(k.clone(), v);
                Value::Object(m)
            }
            PathSegment::Index(i) => {
                return Err(Error::PathConflict {
                    path: path.to_string(),
                    found: format!("item {i} of a list that does not exist yet cannot be set"),
                });
            }
        };
    }
    Ok(v)
}

impl Editor<'_> {
    /// Applies one change (whose path does not go through an alias) and returns the new text.
    pub(crate) fn apply(&mut self, change: &Change) -> Result<String, Error> {
        let path = change.path().segments();
        let Some(root) = &self.tree.root else {
            return match change {
                Change::Set { value, .. } => {
                    let v = nest(change.path(), path, value.clone())?;
                    let mut out = self.text.to_string();
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push_str(self.style.nl);
                    }
                    out.push_str(&self.style.block(&v, 0));
                    out.push_str(self.style.nl);
                    Ok(out)
                }
                _ => Ok(self.text.to_string()),
            };
        };
        let w = walk(root, path);
        let depth = w.nodes.len() - 1;
        for n in &w.nodes[..depth] {
            if matches!(n.kind, Kind::Alias(_)) {
                return Err(unsupported(path, "an alias"));
            }
        }
        // Inside a flow collection: rewrite the outermost one on the path.
        let exists = depth == path.len();
        let container_limit = if exists { depth } else { depth + 1 };
        if let Some(j) = (0..container_limit).find(|&j| w.nodes[j].is_flow_collection()) {
            let target = w.nodes[j];
            let empty = target.entries().is_some_and(<[_]>::is_empty)
                || target.items().is_some_and(<[_]>::is_empty);
            let convert = !exists && j == depth && empty;
            if !convert {
                return self.rewrite_flow(&w, j, change);
            }
        }
        let edit = match change {
            Change::Delete { .. } => {
                if !exists {
                    return Ok(self.text.to_string());
                }
                let Some(step) = w.steps.last() else {
                    return Err(Error::PathConflict {
                        path: change.path().to_string(),
                        found: "the whole document cannot be deleted this way".into(),
                    });
                };
                self.delete(&w, *step, path)?
            }
            Change::Set { value, .. } if exists => {
                let ctx = self.ctx(&w, depth, path)?;
                self.replace(&ctx, w.nodes[depth], value)?
            }
            Change::Set { value, .. } | Change::Insert { value, .. } => {
                let anc = w.nodes[depth];
                let rest = &path[depth..];
                let insert_before = matches!(change, Change::Insert { .. }) && exists;
                match &anc.kind {
                    _ if insert_before => {
                        // Insert at an existing index: the item is the last walked node.
                        let step = w.steps[depth - 1];
                        if step.parent.items().is_none() {
                            return Err(Error::PathConflict {
                                path: change.path().to_string(),
                                found: format!(
                                    "the value at {} is a map, not a list",
                                    FieldPath(path[..depth - 1].to_vec())
                                ),
                            });
                        }
                        self.insert_item(step.parent, step.index, value, path)?
                    }
                    Kind::Map { .. }
                        if !rest.is_empty() && anc.entries().is_some_and(|e| !e.is_empty()) =>
                    {
                        let v = nest(change.path(), &rest[1..], value.clone())?;
                        self.insert_entry(anc, &rest[0].as_key(), &v, path)?
                    }
                    Kind::Seq { items, .. } if !items.is_empty() => {
                        let len = items.len();
                        match rest[0].as_index(len) {
                            Some(i) if i == len => {
                                let v = nest(change.path(), &rest[1..], value.clone())?;
                                self.insert_item(anc, len, &v, path)?
                            }
                            _ => {
                                return Err(Error::PathConflict {
                                    path: change.path().to_string(),
                                    found: format!(
                                        "the list at {} has {len} items",
                                        FieldPath(path[..depth].to_vec())
                                    ),
                                });
                            }
                        }
                    }
                    Kind::Map { .. } | Kind::Seq { .. } => {
                        // An empty collection: replace it with the new content.
                        let v = nest(change.path(), rest, value.clone())?;
                        let ctx = self.ctx(&w, depth, path)?;
                        self.replace(&ctx, anc, &v)?
                    }
                    Kind::Scalar {
                        value: s, style, ..
                    } if *style == Style::Plain && scalar::resolve_plain(s).is_null() => {
                        let v = nest(change.path(), rest, value.clone())?;
                        let ctx = self.ctx(&w, depth, path)?;
                        self.replace(&ctx, anc, &v)?
                    }
                    _ => {
                        let found = node_json(anc, &mut self.anchors);
                        return Err(Error::PathConflict {
                            path: change.path().to_string(),
                            found: format!(
                                "the value at {} is {}",
                                FieldPath(path[..depth].to_vec()),
                                describe(&found)
                            ),
                        });
                    }
                }
            }
        };
        let mut out = String::with_capacity(self.text.len() + edit.text.len());
        out.push_str(&self.text[..edit.start]);
        out.push_str(&edit.text);
        out.push_str(&self.text[edit.end..]);
        Ok(out)
    }

    /// The context of `w.nodes[depth]` in its parent.
    fn ctx(&self, w: &Walk<'_>, depth: usize, path: &[PathSegment]) -> Result<Ctx, Error> {
        if depth == 0 {
            return Ok(Ctx::Root);
        }
        let step = w.steps[depth - 1];
        match &step.parent.kind {
            Kind::Map { entries, .. } => {
                let e = &entries[step.index];
                let colon = e
                    .colon
                    .ok_or_else(|| unsupported(path, "an explicit key (? key)"))?;
                Ok(Ctx::MapValue {
                    key_col: col(self.text, e.key.prop_start),
                    colon,
                })
            }
            Kind::Seq { items, .. } => {
                let dash = items[step.index]
                    .dash
                    .ok_or_else(|| unsupported(path, "a sequence item without a dash"))?;
                Ok(Ctx::SeqItem {
                    dash_col: col(self.text, dash),
                    dash,
                })
            }
            _ => Err(unsupported(path, step.parent.construct())),
        }
    }

    fn rewrite_flow(&mut self, w: &Walk<'_>, j: usize, change: &Change) -> Result<String, Error> {
        let node = w.nodes[j];
        let path = change.path().segments();
        let mut value = node_json(node, &mut self.anchors);
        let rel = change.with_path(FieldPath(path[j..].to_vec()));
        apply_json(&mut value, &rel).map_err(|e| Error::PathConflict {
            path: change.path().to_string(),
            found: e.found,
        })?;
        let emitted = self
            .style
            .flow(self.text, Some(node), &value, &mut self.anchors);
        let start = if node.anchor != 0 && node.prop_start < node.start {
            node.start
        } else {
            node.prop_start
        };
        let mut out = String::with_capacity(self.text.len() + emitted.len());
        out.push_str(&self.text[..start]);
        out.push_str(&emitted);
        out.push_str(&self.text[node.end..]);
        Ok(out)
    }

    /// Replaces the value `old` with `v`.
    fn replace(&self, ctx: &Ctx, old: &Node, v: &Value) -> Result<Edit, Error> {
        let text = self.text;
        let base_col = match ctx {
            Ctx::Root => 0,
            Ctx::MapValue { key_col, .. } => *key_col,
            Ctx::SeqItem { dash_col, .. } => *dash_col,
        };
        // A literal block would swallow a more indented comment that follows it.
        let mut local = self.style.clone();
        if next_comment_indent(text, old.end).is_some_and(|i| i > base_col) {
            local.literal = false;
        }
        let st = &local;
        let anchor_text = if old.anchor != 0 {
            self.tree
                .anchors
                .get(&old.anchor)
                .map(|a| format!("&{} ", a.name))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let (anchor_pos, base) = match ctx {
            Ctx::Root => (old.prop_start, 0),
            Ctx::MapValue { key_col, colon } => (colon + 1, *key_col),
            Ctx::SeqItem { dash_col, dash } => (dash + 1, *dash_col),
        };
        let (old_style, implicit, block) = match &old.kind {
            Kind::Scalar {
                style,
                implicit,
                block,
                ..
            } => (Some(*style), *implicit, block.as_ref()),
            _ => (None, false, None),
        };
        // A block scalar stays a block scalar when it gets a new string.
        if let (Some(b), Value::String(s)) = (block, v)
            && let Some(edit) = self.rewrite_block_scalar(old, b, s)
        {
            return Ok(edit);
        }
        let inline_old = matches!(old.kind, Kind::Alias(_))
            || old.is_flow_collection()
            || (old_style.is_some() && block.is_none());
        if !needs_block(v) {
            let prefer = match old_style {
                Some(Style::Literal | Style::Folded) | None => Style::Plain,
                Some(s) => s,
            };
            let scalar = st.inline(v, prefer);
            if implicit {
                let lead = if matches!(ctx, Ctx::Root) { "" } else { " " };
                return Ok(Edit {
                    start: anchor_pos,
                    end: anchor_pos,
                    text: format!("{lead}{anchor_text}{scalar}"),
                });
            }
            if inline_old {
                let start = if old.tag.is_some()
                    || matches!(old.kind, Kind::Alias(_))
                    || old.is_flow_collection()
                {
                    old.prop_start
                } else {
                    old.start
                };
                let keep_anchor = if start == old.prop_start {
                    anchor_text
                } else {
                    String::new()
                };
                return Ok(Edit {
                    start,
                    end: old.end,
                    text: format!("{keep_anchor}{scalar}"),
                });
            }
            // A block collection or block scalar becomes one inline value.
            let comment = comment_after(text, anchor_pos).filter(|_| !matches!(ctx, Ctx::Root));
            let lead = if matches!(ctx, Ctx::Root) { "" } else { " " };
            let tail = comment.map(|c| format!(" {c}")).unwrap_or_default();
            let start = if matches!(ctx, Ctx::Root) {
                old.prop_start
            } else {
                anchor_pos
            };
            // A comment after the last line of the old value went with that value.
            return Ok(Edit {
                start,
                end: line_end_excl(text, old.end),
                text: format!("{lead}{anchor_text}{scalar}{tail}"),
            });
        }
        // The new value needs lines of its own.
        let (start, end, comment) = if inline_old || implicit {
            (
                anchor_pos,
                line_end_excl(text, old.end),
                comment_after(text, old.end),
            )
        } else {
            let end = line_end_excl(text, old.end);
            (anchor_pos, end, comment_after(text, anchor_pos))
        };
        let comment = comment.map(|c| format!(" {c}")).unwrap_or_default();
        let body = match ctx {
            Ctx::Root => {
                let b = st.block(v, 0);
                return Ok(Edit {
                    start: old.prop_start,
                    end: line_end_excl(text, old.end),
                    text: format!("{anchor_text}{b}"),
                });
            }
            Ctx::MapValue { .. } => {
                let after = st.after_key(v, base);
                attach_comment(&after, &anchor_text, &comment, st.nl)
            }
            Ctx::SeqItem { .. } => {
                let after = st.after_dash(v, base);
                attach_comment(&after, &anchor_text, &comment, st.nl)
            }
        };
        Ok(Edit {
            start,
            end,
            text: body,
        })
    }

    /// Re-writes a `|`/`>` scalar with a new string, keeping its header comment and indentation.
    fn rewrite_block_scalar(
        &self,
        old: &Node,
        b: &super::tree::BlockScalar,
        s: &str,
    ) -> Option<Edit> {
        let text = self.text;
        let nl = self.style.nl;
        let content = &text[b.content_start..b.content_end];
        let indent = content
            .split('\n')
            .find(|l| !l.trim().is_empty())
            .map(|l| l.len() - l.trim_start_matches(' ').len())
            .filter(|n| *n > 0)
            .unwrap_or_else(|| col(text, old.start) + self.style.unit);
        let folded = matches!(
            old.kind,
            Kind::Scalar {
                style: Style::Folded,
                ..
            }
        );
        let body = s.trim_end_matches('\n');
        let trailing = s.len() - body.len();
        let chomp = match trailing {
            0 => "-",
            1 => "",
            _ => "+",
        };
        let lines: Vec<String> = if folded && !body.contains('\n') {
            let old_lines: Vec<&str> = content
                .lines()
                .map(|l| l.trim_end_matches('\r'))
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.get(indent..).unwrap_or(""))
                .collect();
            let pad = " ".repeat(indent);
            let mut lines: Vec<String> = scalar::refold(&old_lines, body)?
                .into_iter()
                .map(|l| format!("{pad}{l}"))
                .collect();
            for _ in 1..trailing.max(1) {
                lines.push(String::new());
            }
            lines
        } else {
            let (_, lines) = scalar::literal_block(s, indent)?;
            lines
        };
        let header = if folded && !body.contains('\n') {
            ">"
        } else {
            "|"
        };
        let keep = text[b.header..b.header_end].contains('+');
        let region_end = if keep {
            b.content_end
        } else {
            line_end_incl(text, old.end)
        };
        let ends_with_nl = text[..region_end].ends_with('\n');
        let mut out = format!("{header}{chomp}");
        out.push_str(&text[b.header_end..b.content_start]);
        if b.content_start == b.header_end || !text[..b.content_start].ends_with('\n') {
            out.push_str(nl);
        }
        out.push_str(&lines.join(nl));
        if ends_with_nl {
            out.push_str(nl);
        }
        Some(Edit {
            start: b.header,
            end: region_end.max(b.content_start),
            text: out,
        })
    }

    fn insert_entry(
        &self,
        map: &Node,
        key: &str,
        v: &Value,
        path: &[PathSegment],
    ) -> Result<Edit, Error> {
        let entries = map.entries().unwrap_or_default();
        let Some(first) = entries.first() else {
            return Err(unsupported(path, "an empty mapping"));
        };
        if entries.iter().any(|e| e.colon.is_none()) {
            return Err(unsupported(path, "a mapping with explicit keys (? key)"));
        }
        let c = col(self.text, first.key.prop_start);
        let line = format!(
            "{}{}:{}",
            " ".repeat(c),
            scalar::key(key, self.style.quote, false),
            self.style.after_key(v, c)
        );
        Ok(self.insert_line_after(map.end, c, &line))
    }

    /// New lines at column `col` after the line holding `pos`.
    fn insert_line_after(&self, pos: usize, col: usize, line: &str) -> Edit {
        let at = insertion_point(self.text, pos, col);
        let nl = self.style.nl;
        let text = if self.text[..at].ends_with('\n') {
            format!("{line}{nl}")
        } else {
            format!("{nl}{line}")
        };
        Edit {
            start: at,
            end: at,
            text,
        }
    }

    fn insert_item(
        &self,
        seq: &Node,
        index: usize,
        v: &Value,
        path: &[PathSegment],
    ) -> Result<Edit, Error> {
        let items = seq.items().unwrap_or_default();
        let Some(first_dash) = items.first().and_then(|i| i.dash) else {
            return Err(unsupported(path, "an empty sequence"));
        };
        let c = col(self.text, first_dash);
        let line = format!("{}-{}", " ".repeat(c), self.style.after_dash(v, c));
        if index >= items.len() {
            return Ok(self.insert_line_after(seq.end, c, &line));
        }
        let dash = items[index]
            .dash
            .ok_or_else(|| unsupported(path, "a sequence item without a dash"))?;
        let mut ls = line_start(self.text, dash);
        if !self.text[ls..dash].trim().is_empty() {
            return Err(unsupported(path, "a nested sequence on one line (- - x)"));
        }
        // A comment right above the item belongs to it: insert above the comment.
        let floor = index
            .checked_sub(1)
            .map_or(seq.start, |p| line_end_incl(self.text, items[p].node.end));
        while ls > floor {
            let prev = line_start(self.text, ls - 1);
            if !self.text[prev..ls].trim_start().starts_with('#') {
                break;
            }
            ls = prev;
        }
        Ok(Edit {
            start: ls,
            end: ls,
            text: format!("{line}{}", self.style.nl),
        })
    }

    fn delete(&self, w: &Walk<'_>, step: Step<'_>, path: &[PathSegment]) -> Result<Edit, Error> {
        let parent = step.parent;
        let parent_depth = w.nodes.len() - 2;
        match &parent.kind {
            Kind::Map { entries, .. } => {
                if entries.len() == 1 {
                    let ctx = self.ctx(w, parent_depth, path)?;
                    return self.replace(&ctx, parent, &Value::Object(serde_json::Map::new()));
                }
                let e = &entries[step.index];
                if e.colon.is_none() {
                    return Err(unsupported(path, "an explicit key (? key)"));
                }
                let ks = e.key.prop_start;
                let ls = line_start(self.text, ks);
                // Comment lines indented under the entry go with it.
                let end =
                    insertion_point(self.text, e.value.end.max(e.key.end), col(self.text, ks));
                if self.text[ls..ks].trim().is_empty() {
                    return Ok(Edit {
                        start: ls,
                        end,
                        text: String::new(),
                    });
                }
                // The first key of a `- key: value` item: pull the next key up to the dash line.
                match entries.get(step.index + 1) {
                    Some(next) if next.key.prop_start >= end => Ok(Edit {
                        start: ks,
                        end: next.key.prop_start,
                        text: String::new(),
                    }),
                    _ => Err(unsupported(path, "several keys on one line")),
                }
            }
            Kind::Seq { items, .. } => {
                if items.len() == 1 {
                    let ctx = self.ctx(w, parent_depth, path)?;
                    return self.replace(&ctx, parent, &Value::Array(Vec::new()));
                }
                let it = &items[step.index];
                let dash = it
                    .dash
                    .ok_or_else(|| unsupported(path, "a sequence item without a dash"))?;
                let ls = line_start(self.text, dash);
                if !self.text[ls..dash].trim().is_empty() {
                    return Err(unsupported(path, "a nested sequence on one line (- - x)"));
                }
                Ok(Edit {
                    start: ls,
                    end: insertion_point(
                        self.text,
                        it.node.end.max(dash + 1),
                        col(self.text, dash),
                    ),
                    text: String::new(),
                })
            }
            _ => Err(unsupported(path, parent.construct())),
        }
    }
}

/// Puts a preserved `# comment` at the end of the first line of an emitted value.
fn attach_comment(after: &str, anchor_text: &str, comment: &str, nl: &str) -> String {
    let anchor = anchor_text.trim_end();
    let (first, rest) = match after.find(nl) {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    let first = if anchor.is_empty() {
        first.to_string()
    } else if first.is_empty() {
        format!(" {anchor}")
    } else {
        format!(" {anchor}{first}")
    };
    format!("{first}{comment}{rest}")
}
