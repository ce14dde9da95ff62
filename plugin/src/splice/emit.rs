//! Writing new values into a document in the document's own style: its line endings, indentation
//! step, sequence indentation and preferred quotes.

use std::collections::HashMap;

use serde_json::Value;

use super::scalar::{self, Quote, Style};
use super::tree::{Kind, Node, Tree, node_json};

/// The layout habits of one document.
#[derive(Debug, Clone)]
pub(crate) struct DocStyle {
    pub nl: &'static str,
    /// Indentation step of nested mappings.
    pub unit: usize,
    /// Indentation of a sequence under its key (0 for `key:\n- a`).
    pub seq_indent: usize,
    pub quote: Quote,
    /// Whether multi-line strings may be written as literal blocks (not when a more indented
    /// comment follows the place being written: it would become part of the block).
    pub literal: bool,
}

/// The column of a byte position (its distance from the start of its line).
pub(crate) fn col(text: &str, pos: usize) -> usize {
    pos - line_start(text, pos)
}

pub(crate) fn line_start(text: &str, pos: usize) -> usize {
    text[..pos.min(text.len())].rfind('\n').map_or(0, |i| i + 1)
}

/// End of the line holding `pos`, before its line break (`\r\n` or `\n`).
pub(crate) fn line_end_excl(text: &str, pos: usize) -> usize {
    let e = text[pos.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |i| pos + i);
    if e > 0 && e <= text.len() && text.as_bytes().get(e - 1) == Some(&b'\r') && e > pos {
        e - 1
    } else {
        e
    }
}

/// Start of the line after the one holding `pos` (or the end of the text).
pub(crate) fn line_end_incl(text: &str, pos: usize) -> usize {
    text[pos.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |i| pos + i + 1)
}

/// The indentation of the first comment line after the line holding `pos` (blank lines skipped),
/// if the next non-blank line is a comment.
pub(crate) fn next_comment_indent(text: &str, pos: usize) -> Option<usize> {
    let mut at = line_end_incl(text, pos);
    while at < text.len() {
        let end = line_end_incl(text, at);
        let line = &text[at..end];
        let t = line.trim();
        if t.is_empty() {
            at = end;
            continue;
        }
        return t
            .starts_with('#')
            .then(|| line.len() - line.trim_start().len());
    }
    None
}

/// Where to add lines at column `col` after the line holding `pos`: after any comment lines that
/// follow and are indented deeper (they belong to what is above).
pub(crate) fn insertion_point(text: &str, pos: usize, col: usize) -> usize {
    let mut at = line_end_incl(text, pos);
    let mut probe = at;
    while probe < text.len() {
        let end = line_end_incl(text, probe);
        let line = &text[probe..end];
        let t = line.trim();
        if t.is_empty() {
            probe = end;
            continue;
        }
        if t.starts_with('#') && line.len() - line.trim_start().len() > col {
            probe = end;
            at = end;
            continue;
        }
        break;
    }
    at
}

/// The `# comment` between `pos` and the end of its line, if that is all there is.
pub(crate) fn comment_after(text: &str, pos: usize) -> Option<&str> {
    let rest = text[pos..line_end_excl(text, pos)].trim();
    rest.starts_with('#').then_some(rest)
}

pub(crate) fn detect_style(text: &str, tree: &Tree) -> DocStyle {
    let mut units: HashMap<usize, usize> = HashMap::new();
    let mut seqs: HashMap<usize, usize> = HashMap::new();
    let mut quotes = (0usize, 0usize);
    if let Some(root) = &tree.root {
        survey(text, root, &mut units, &mut seqs, &mut quotes);
    }
    let most = |m: &HashMap<usize, usize>| {
        m.iter()
            .max_by_key(|(k, n)| (**n, usize::MAX - **k))
            .map(|(k, _)| *k)
    };
    let unit = most(&units).unwrap_or(2);
    DocStyle {
        nl: if text.contains("\r\n") { "\r\n" } else { "\n" },
        unit,
        seq_indent: most(&seqs).unwrap_or(unit),
        quote: if quotes.1 > quotes.0 {
            Quote::Single
        } else {
            Quote::Double
        },
        literal: true,
    }
}

fn survey(
    text: &str,
    node: &Node,
    units: &mut HashMap<usize, usize>,
    seqs: &mut HashMap<usize, usize>,
    quotes: &mut (usize, usize),
) {
    match &node.kind {
        Kind::Scalar { style, .. } => match style {
            Style::DoubleQuoted => quotes.0 += 1,
            Style::SingleQuoted => quotes.1 += 1,
            _ => {}
        },
        Kind::Map { entries, flow } => {
            for e in entries {
                if !flow {
                    let key_col = col(text, e.key.start);
                    match &e.value.kind {
                        Kind::Map {
                            entries: inner,
                            flow: false,
                        } => {
                            if let Some(first) = inner.first() {
                                let c = col(text, first.key.start);
                                if c > key_col
                                    && line_start(text, first.key.start)
                                        != line_start(text, e.key.start)
                                {
                                    *units.entry(c - key_col).or_default() += 1;
                                }
                            }
                        }
                        Kind::Seq { items, flow: false } => {
                            if let Some(d) = items.first().and_then(|i| i.dash) {
                                let c = col(text, d);
                                if c >= key_col {
                                    *seqs.entry(c - key_col).or_default() += 1;
                                }
                            }
                        }
                        _ => {}
                    }
                }
                survey(text, &e.value, units, seqs, quotes);
            }
        }
        Kind::Seq { items, .. } => {
            for i in items {
                survey(text, &i.node, units, seqs, quotes);
            }
        }
        Kind::Alias(_) => {}
    }
}

/// Keys of a new map in the order they are written: the usual Kubernetes leaders first, then
/// alphabetically (as `kubectl get -o yaml` writes them).
fn ordered(map: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    const FIRST: &[&str] = &["apiVersion", "kind", "metadata", "name"];
    let mut out: Vec<(&String, &Value)> =
        FIRST.iter().filter_map(|k| map.get_key_value(*k)).collect();
    let mut rest: Vec<(&String, &Value)> = map
        .iter()
        .filter(|(k, _)| !FIRST.contains(&k.as_str()))
        .collect();
    rest.sort_by(|a, b| a.0.cmp(b.0));
    out.extend(rest);
    out
}

fn is_multiline(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.contains('\n'))
}

fn is_block_collection(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !m.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty())
}

/// Does the value need lines of its own (a non-empty collection or a multi-line string)?
pub(crate) fn needs_block(v: &Value) -> bool {
    is_block_collection(v) || is_multiline(v)
}

impl DocStyle {
    pub(crate) fn inline(&self, v: &Value, prefer: Style) -> String {
        scalar::inline_scalar(v, prefer, self.quote, false)
    }

    fn pad(n: usize) -> String {
        " ".repeat(n)
    }

    /// A literal block for a multi-line string: ` |-` + lines, or `None`.
    fn literal(&self, s: &str, indent: usize) -> Option<(String, String)> {
        if !self.literal {
            return None;
        }
        let (header, lines) = scalar::literal_block(s, indent)?;
        Some((header, lines.join(self.nl)))
    }

    /// The text after `key:` for a value, for a key at column `key_col`.
    pub(crate) fn after_key(&self, v: &Value, key_col: usize) -> String {
        match v {
            Value::Object(m) if !m.is_empty() => {
                format!("{}{}", self.nl, self.block(v, key_col + self.unit))
            }
            Value::Array(a) if !a.is_empty() => {
                format!("{}{}", self.nl, self.block(v, key_col + self.seq_indent))
            }
            Value::String(s) if s.contains('\n') => match self.literal(s, key_col + self.unit) {
                Some((h, body)) => format!(" {h}{}{body}", self.nl),
                None => format!(" {}", self.inline(v, Style::Plain)),
            },
            _ => format!(" {}", self.inline(v, Style::Plain)),
        }
    }

    /// The text after the `-` of a sequence item whose dash is at column `dash_col`.
    pub(crate) fn after_dash(&self, v: &Value, dash_col: usize) -> String {
        let inner = dash_col + 2;
        match v {
            Value::Object(m) if !m.is_empty() => {
                let mut out = String::from(" ");
                for (i, (k, val)) in ordered(m).into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(self.nl);
                        out.push_str(&Self::pad(inner));
                    }
                    out.push_str(&scalar::key(k, self.quote, false));
                    out.push(':');
                    out.push_str(&self.after_key(val, inner));
                }
                out
            }
            Value::Array(a) if !a.is_empty() => {
                let mut out = String::from(" ");
                for (i, val) in a.iter().enumerate() {
                    if i > 0 {
                        out.push_str(self.nl);
                        out.push_str(&Self::pad(inner));
                    }
                    out.push('-');
                    out.push_str(&self.after_dash(val, inner));
                }
                out
            }
            Value::String(s) if s.contains('\n') => match self.literal(s, inner) {
                Some((h, body)) => format!(" {h}{}{body}", self.nl),
                None => format!(" {}", self.inline(v, Style::Plain)),
            },
            _ => format!(" {}", self.inline(v, Style::Plain)),
        }
    }

    /// A block collection written at `indent`, every line indented, no final line break.
    pub(crate) fn block(&self, v: &Value, indent: usize) -> String {
        let pad = Self::pad(indent);
        match v {
            Value::Object(m) if !m.is_empty() => ordered(m)
                .into_iter()
                .map(|(k, val)| {
                    format!(
                        "{pad}{}:{}",
                        scalar::key(k, self.quote, false),
                        self.after_key(val, indent)
                    )
                })
                .collect::<Vec<_>>()
                .join(self.nl),
            Value::Array(a) if !a.is_empty() => a
                .iter()
                .map(|val| format!("{pad}-{}", self.after_dash(val, indent)))
                .collect::<Vec<_>>()
                .join(self.nl),
            other => format!("{pad}{}", self.inline(other, Style::Plain)),
        }
    }

    /// A value in flow style, reusing the original text of every part that did not change.
    pub(crate) fn flow(
        &self,
        text: &str,
        node: Option<&Node>,
        v: &Value,
        anchors: &mut HashMap<usize, Value>,
    ) -> String {
        if let Some(n) = node
            && node_json(n, anchors) == *v
        {
            return text[n.prop_start..n.end].to_string();
        }
        let padded = node.is_some_and(|n| {
            n.is_flow_collection() && text[n.start + 1..n.end.max(n.start + 1)].starts_with(' ')
        });
        let (open_pad, close_pad) = if padded { (" ", " ") } else { ("", "") };
        match v {
            Value::Object(m) if !m.is_empty() => {
                let entries = node.and_then(|n| n.entries()).unwrap_or_default();
                let mut parts = Vec::new();
                for e in entries {
                    let Some(val) = m.get(&e.name) else { continue };
                    let implicit = matches!(e.value.kind, Kind::Scalar { implicit: true, .. });
                    if !implicit && node_json(&e.value, anchors) == *val {
                        parts.push(text[e.key.prop_start..e.value.end].to_string());
                    } else {
                        let key = &text[e.key.prop_start..e.key.end];
                        let child = (!implicit).then_some(&e.value);
                        parts.push(format!("{key}: {}", self.flow(text, child, val, anchors)));
                    }
                }
                for (k, val) in ordered(m) {
                    if !entries.iter().any(|e| &e.name == k) {
                        parts.push(format!(
                            "{}: {}",
                            scalar::key(k, self.quote, true),
                            self.flow(text, None, val, anchors)
                        ));
                    }
                }
                format!("{{{open_pad}{}{close_pad}}}", parts.join(", "))
            }
            Value::Array(a) if !a.is_empty() => {
                let items = node.and_then(|n| n.items()).unwrap_or_default();
                let parts: Vec<String> = a
                    .iter()
                    .enumerate()
                    .map(|(i, val)| self.flow(text, items.get(i).map(|it| &it.node), val, anchors))
                    .collect();
                format!("[{open_pad}{}{close_pad}]", parts.join(", "))
            }
            other => {
                let prefer = match node.map(|n| &n.kind) {
                    Some(Kind::Scalar { style, .. }) => *style,
                    _ => Style::Plain,
                };
                let prefer = if matches!(prefer, Style::Literal | Style::Folded) {
                    Style::DoubleQuoted
                } else {
                    prefer
                };
                scalar::inline_scalar(other, prefer, self.quote, true)
            }
        }
    }
}
