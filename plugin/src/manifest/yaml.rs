//! YAML streams as documents of nodes that remember their line, for finding manifests and for
//! mapping blamed lines onto fields.

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::Value;

/// How a scalar is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    /// `|` or `>` block; the node's line is its first content line.
    Block,
}

/// A node and the (1-based) line its value starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub value: NodeValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Scalar {
        text: String,
        style: Style,
    },
    /// Entries in document order: key text, the key's line, the value.
    Map(Vec<(String, usize, Node)>),
    Seq(Vec<Node>),
}

/// One document of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 0-based position in the stream (empty documents count, as kustomize skips them but `---`
    /// separated files are numbered by people from the top).
    pub index: usize,
    /// First and last line (1-based) of the document's content.
    pub first_line: usize,
    pub last_line: usize,
    /// `None` for an empty document.
    pub root: Option<Node>,
}

/// Why a stream is not valid YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

enum Frame {
    Map {
        line: usize,
        anchor: usize,
        entries: Vec<(String, usize, Node)>,
        key: Option<(String, usize)>,
    },
    Seq {
        line: usize,
        anchor: usize,
        items: Vec<Node>,
    },
}

fn key_text(node: &Node) -> String {
    match &node.value {
        NodeValue::Scalar { text, .. } => text.clone(),
        other => serde_json::to_string(&to_json_value(other)).unwrap_or_default(),
    }
}

/// Parses every document of a YAML stream.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, Node> = std::collections::HashMap::new();
    let mut root: Option<Node> = None;
    let mut doc_first = 1usize;
    let mut doc_last = 0usize;
    let total_lines = text.lines().count().max(1);
    // Lines that hold a document separator or end marker, to bound documents.
    let mut boundaries: Vec<usize> = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.starts_with("---") || l.starts_with("...") {
            boundaries.push(i + 1);
        }
    }

    // Attach a finished node to its parent (or make it the document root).
    fn attach(
        stack: &mut [Frame],
        root: &mut Option<Node>,
        anchors: &mut std::collections::HashMap<usize, Node>,
        node: Node,
        anchor: usize,
    ) {
        if anchor > 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => *root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some((key_text(&node), node.line)),
                Some((k, line)) => entries.push((k, line, node)),
            },
        }
    }

    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| YamlError {
            line: e.marker().line(),
            message: e.info().to_string(),
        })?;
        let line = span.start.line().max(1);
        match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                root = None;
                anchors.clear();
                // The document's content starts after its `---` (if any).
                doc_first = line;
                if boundaries.contains(&line) {
                    doc_first = line + 1;
                }
                doc_last = doc_first.saturating_sub(1);
            }
            Event::DocumentEnd => {
                // Its last content line: the line before the next separator, trimmed of blanks.
                let next_boundary = boundaries
                    .iter()
                    .copied()
                    .find(|&b| b >= doc_first && b > doc_last)
                    .unwrap_or(total_lines + 1);
                let mut last = next_boundary.saturating_sub(1).max(doc_last);
                let lines: Vec<&str> = text.lines().collect();
                while last > doc_first
                    && lines
                        .get(last - 1)
                        .is_none_or(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
                {
                    last -= 1;
                }
                // An empty document parses as a null scalar.
                let root = root.take().filter(|r| {
                    !matches!(&r.value, NodeValue::Scalar { text, style: Style::Plain } if matches!(text.as_str(), "" | "~" | "null"))
                });
                docs.push(Document {
                    index: docs.len(),
                    first_line: doc_first,
                    last_line: last.max(doc_first),
                    root,
                });
            }
            Event::Alias(id) => {
                let node = anchors.get(&id).cloned().unwrap_or(Node {
                    line,
                    value: NodeValue::Scalar {
                        text: String::new(),
                        style: Style::Plain,
                    },
                });
                let node = Node { line, ..node };
                doc_last = doc_last.max(line);
                attach(&mut stack, &mut root, &mut anchors, node, 0);
            }
            Event::Scalar(text, style, anchor, tag) => {
                let forced_string = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let style = match style {
                    ScalarStyle::Plain if !forced_string => Style::Plain,
                    ScalarStyle::Plain | ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
                        Style::Quoted
                    }
                    ScalarStyle::Literal | ScalarStyle::Folded => Style::Block,
                };
                doc_last = doc_last.max(span.end.line());
                let node = Node {
                    line,
                    value: NodeValue::Scalar {
                        text: text.into_owned(),
                        style,
                    },
                };
                attach(&mut stack, &mut root, &mut anchors, node, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                doc_last = doc_last.max(line);
                stack.push(Frame::Seq {
                    line,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, _) => {
                doc_last = doc_last.max(line);
                stack.push(Frame::Map {
                    line,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = stack.pop() else { continue };
                let (node, anchor) = match frame {
                    Frame::Seq {
                        line,
                        anchor,
                        items,
                    } => (
                        Node {
                            line,
                            value: NodeValue::Seq(items),
                        },
                        anchor,
                    ),
                    Frame::Map {
                        line,
                        anchor,
                        entries,
                        ..
                    } => (
                        Node {
                            line,
                            value: NodeValue::Map(entries),
                        },
                        anchor,
                    ),
                };
                attach(&mut stack, &mut root, &mut anchors, node, anchor);
            }
        }
    }
    Ok(docs)
}

/// A plain scalar's value under the YAML 1.2 core schema: the one resolver the plugin has (the
/// editor's), so reading a file and editing it never disagree on what a value is.
pub fn plain_scalar(text: &str) -> Value {
    crate::splice::resolve_plain(text)
}

fn to_json_value(value: &NodeValue) -> Value {
    match value {
        NodeValue::Scalar { text, style } => match style {
            Style::Plain => plain_scalar(text),
            _ => Value::String(text.clone()),
        },
        NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
        NodeValue::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, _, v)| (k.clone(), v.to_json()))
                .collect(),
        ),
    }
}

impl Node {
    /// The node as JSON (plain scalars typed as YAML 1.2 does).
    pub fn to_json(&self) -> Value {
        to_json_value(&self.value)
    }

    /// The value of a mapping key.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Map(entries) => entries.iter().find(|(k, _, _)| k == key).map(|(_, _, v)| v),
            _ => None,
        }
    }

    /// The line of a mapping key.
    pub fn key_line(&self, key: &str) -> Option<usize> {
        match &self.value {
            NodeValue::Map(entries) => entries
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, l, _)| *l),
            _ => None,
        }
    }

    /// A scalar's text (plain or quoted).
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Items of a sequence.
    pub fn items(&self) -> &[Node] {
        match &self.value {
            NodeValue::Seq(items) => items,
            _ => &[],
        }
    }

    /// A string at a path of mapping keys.
    pub fn str_at(&self, path: &[&str]) -> Option<&str> {
        path.iter().try_fold(self, |n, k| n.get(k))?.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_lines_and_values() {
        let text = "\
# leading comment
apiVersion: v1
kind: ConfigMap
metadata:
  name: a
data:
  script: |
    line one
    line two
  n: 3
  q: \"3\"
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: b, labels: {x: y}}
spec:
  replicas: 2
  list:
  - one
  - &anchor two
  - *anchor
---
---
kind: Last
";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 4);
        let d0 = &docs[0];
        let root = d0.root.as_ref().unwrap();
        assert_eq!(
            (d0.first_line, d0.last_line),
            (2, 11),
            "content lines, after the leading comment"
        );
        assert_eq!(root.key_line("kind"), Some(3));
        assert_eq!(root.get("kind").unwrap().line, 3);
        let script = root.get("data").unwrap().get("script").unwrap();
        assert_eq!(
            script.line, 8,
            "a block scalar's node starts at its first content line"
        );
        assert_eq!(
            script.value,
            NodeValue::Scalar {
                text: "line one\nline two\n".into(),
                style: Style::Block
            }
        );
        assert_eq!(
            root.to_json()["data"],
            json!({"script": "line one\nline two\n", "n": 3, "q": "3"})
        );
        let d1 = &docs[1];
        assert_eq!((d1.first_line, d1.last_line), (13, 21));
        let r1 = d1.root.as_ref().unwrap();
        assert_eq!(r1.str_at(&["metadata", "name"]), Some("b"));
        assert_eq!(r1.get("metadata").unwrap().get("name").unwrap().line, 15);
        assert_eq!(r1.to_json()["spec"]["list"], json!(["one", "two", "two"]));
        assert_eq!(
            r1.get("spec").unwrap().get("list").unwrap().items()[2].line,
            21
        );
        assert!(docs[2].root.is_none(), "empty document");
        assert_eq!(
            docs[3].root.as_ref().unwrap().str_at(&["kind"]),
            Some("Last")
        );
        assert_eq!(docs[3].first_line, 24);
    }

    #[test]
    fn scalars_typed_like_yaml_1_2() {
        for (text, want) in [
            ("3", json!(3)),
            ("-3", json!(-3)),
            ("3.5", json!(3.5)),
            ("1e3", json!(1000.0)),
            ("true", json!(true)),
            ("False", json!(false)),
            ("~", json!(null)),
            ("", json!(null)),
            ("0x1F", json!(31)),
            ("512Mi", json!("512Mi")),
            ("500m", json!("500m")),
            ("1.2.3", json!("1.2.3")),
            ("yes", json!("yes")),
            ("-", json!("-")),
        ] {
            assert_eq!(plain_scalar(text), want, "{text}");
        }
    }

    #[test]
    fn invalid_yaml_names_the_line() {
        let err = parse_documents("a: b\nc: [unclosed\n").unwrap_err();
        assert!(err.line >= 2, "{err}");
    }
}
