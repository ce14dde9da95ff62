//! YAML streams read with line numbers, for finding manifests and for mapping blamed lines onto
//! fields. A view of the plugin's one YAML model, the editor's byte-positioned tree
//! (`splice::tree`): documents are split and parsed as the editor splits and parses them, so
//! reading and editing agree on which document is which and on what every value is (anchors,
//! aliases, merge keys, tags, duplicate keys).

use serde_json::Value;

use crate::splice::Error;
use crate::splice::documents::{content_line, marker, split};
use crate::splice::tree::{self, Kind, Tree};

/// One document of a stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// 0-based position in the stream, as a YAML parser counts documents (an empty one, a `---`
    /// followed by nothing or by comments only, counts: `---` separated files are numbered by
    /// people from the top); the editor's [`crate::splice::DocSpan::index`] counts the same.
    pub index: usize,
    /// First and last line (1-based) of the document's content (an explicit document starts on
    /// the line after its `---`).
    pub first_line: usize,
    pub last_line: usize,
    tree: Tree,
    lines: LineIndex,
}

impl Document {
    /// The document's content; `None` for an empty document.
    pub fn root(&self) -> Option<Node<'_>> {
        let root = self.tree.root.as_ref()?;
        // A document without content parses as a null scalar.
        let empty = matches!(root.kind, Kind::Scalar { .. }) && self.tree.json(root).is_null();
        (!empty).then(|| Node::new(self, root))
    }
}

/// Where the lines of a document's text start, to turn byte offsets into line numbers.
#[derive(Debug, Clone)]
struct LineIndex {
    /// Byte offset of each line's start.
    starts: Vec<usize>,
    /// The line number (1-based) of the text's first line in the file.
    first: usize,
}

impl LineIndex {
    fn new(text: &str, first: usize) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts, first }
    }

    fn line(&self, pos: usize) -> usize {
        self.first + self.starts.partition_point(|&s| s <= pos).saturating_sub(1)
    }
}

/// A node of a document, with the (1-based) line its value starts on.
#[derive(Debug, Clone, Copy)]
pub struct Node<'d> {
    doc: &'d Document,
    node: &'d tree::Node,
    /// Where the value is written: the alias for a value reached through one, the first content
    /// line of a block scalar, else the node's start.
    at: usize,
}

/// Why a stream is not valid YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Parses every document of a YAML stream.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut docs = Vec::new();
    let mut line = 1;
    let mut consumed = 0;
    for (index, range) in split(text).into_iter().enumerate() {
        line += text[consumed..range.start].matches('\n').count();
        consumed = range.start;
        let doc_text = &text[range];
        let tree = tree::parse(doc_text).map_err(|e| match e {
            Error::YamlSyntax {
                line: l,
                column,
                message,
            } => YamlError {
                line: line + l.saturating_sub(1),
                column,
                message,
            },
            other => YamlError {
                line,
                column: 1,
                message: other.to_string(),
            },
        })?;
        let (first_line, last_line) = content_lines(doc_text, line);
        docs.push(Document {
            index,
            first_line,
            last_line,
            tree,
            lines: LineIndex::new(doc_text, line),
        });
    }
    Ok(docs)
}

/// The first and last line of a document's content: after its `---` (else its first content
/// line) up to its last line that is not blank, a comment or a marker.
fn content_lines(doc_text: &str, first: usize) -> (usize, usize) {
    let mut start = None;
    let mut last = None;
    for (i, l) in doc_text.lines().enumerate() {
        let n = first + i;
        if start.is_none() && marker(l, "---") {
            start = Some(n + 1);
        }
        if content_line(l) && !marker(l, "---") {
            start.get_or_insert(n);
            last = Some(n);
        }
    }
    let start = start.unwrap_or(first);
    (start, last.unwrap_or(start).max(start))
}

impl<'d> Node<'d> {
    fn new(doc: &'d Document, node: &'d tree::Node) -> Self {
        match (&node.kind, doc.tree.deref(node)) {
            (Kind::Alias(_), Some(target)) => Node {
                doc,
                node: target,
                at: node.start,
            },
            (
                Kind::Scalar {
                    block: Some(block), ..
                },
                _,
            ) => Node {
                doc,
                node,
                at: block.content_start,
            },
            _ => Node {
                doc,
                node,
                at: node.start,
            },
        }
    }

    /// The (1-based) line the value starts on (a block scalar: its first content line).
    pub fn line(&self) -> usize {
        self.doc.lines.line(self.at)
    }

    /// The node as JSON, as the editor reads it (plain scalars typed as YAML 1.2 does, tags,
    /// aliases and merge keys applied).
    pub fn to_json(&self) -> Value {
        self.doc.tree.json(self.node)
    }

    /// The value of a mapping key (the last entry of that name, else a merged one).
    pub fn get(&self, key: &str) -> Option<Node<'d>> {
        let entry = self.doc.tree.lookup(self.node, key)?;
        Some(Node::new(self.doc, &entry.value))
    }

    /// The line of a mapping key.
    pub fn key_line(&self, key: &str) -> Option<usize> {
        let entry = self.doc.tree.lookup(self.node, key)?;
        Some(self.doc.lines.line(entry.key.start))
    }

    /// A scalar's text (plain, quoted or block).
    pub fn as_str(self) -> Option<&'d str> {
        match &self.node.kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Whether the node is a scalar.
    pub fn is_scalar(&self) -> bool {
        matches!(self.node.kind, Kind::Scalar { .. })
    }

    /// Whether the node is a `|` or `>` block scalar.
    pub fn is_block(&self) -> bool {
        matches!(self.node.kind, Kind::Scalar { block: Some(_), .. })
    }

    /// Items of a sequence.
    pub fn items(self) -> Vec<Node<'d>> {
        self.node
            .items()
            .unwrap_or_default()
            .iter()
            .map(|i| Node::new(self.doc, &i.node))
            .collect()
    }

    /// A string at a path of mapping keys.
    pub fn str_at(self, path: &[&str]) -> Option<&'d str> {
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
        let root = d0.root().unwrap();
        assert_eq!(
            (d0.first_line, d0.last_line),
            (2, 11),
            "content lines, after the leading comment"
        );
        assert_eq!(root.key_line("kind"), Some(3));
        assert_eq!(root.get("kind").unwrap().line(), 3);
        let script = root.get("data").unwrap().get("script").unwrap();
        assert_eq!(
            script.line(),
            8,
            "a block scalar's node starts at its first content line"
        );
        assert!(script.is_block());
        assert_eq!(script.as_str(), Some("line one\nline two\n"));
        assert_eq!(
            root.to_json()["data"],
            json!({"script": "line one\nline two\n", "n": 3, "q": "3"})
        );
        let d1 = &docs[1];
        assert_eq!((d1.first_line, d1.last_line), (13, 21));
        let r1 = d1.root().unwrap();
        assert_eq!(r1.str_at(&["metadata", "name"]), Some("b"));
        assert_eq!(r1.get("metadata").unwrap().get("name").unwrap().line(), 15);
        assert_eq!(r1.to_json()["spec"]["list"], json!(["one", "two", "two"]));
        assert_eq!(
            r1.get("spec").unwrap().get("list").unwrap().items()[2].line(),
            21
        );
        assert!(docs[2].root().is_none(), "empty document");
        assert_eq!(docs[3].root().unwrap().str_at(&["kind"]), Some("Last"));
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
        ] {
            let docs = parse_documents(&format!("v: {text}\n")).unwrap();
            assert_eq!(docs[0].root().unwrap().to_json()["v"], want, "{text}");
        }
    }

    #[test]
    fn invalid_yaml_names_the_line() {
        let err = parse_documents("a: b\nc: [unclosed\n").unwrap_err();
        assert!(err.line >= 2, "{err}");
    }

    /// The reading of every document (JSON and kind) next to the editor's reading of the same
    /// document of the file.
    fn both_readings(text: &str) -> Vec<(Option<Value>, Value)> {
        let read = parse_documents(text).unwrap();
        let edit = crate::splice::find_documents(text);
        assert_eq!(read.len(), edit.len(), "document count of {text:?}");
        read.iter()
            .zip(&edit)
            .map(|(r, e)| {
                assert_eq!(r.index, e.index);
                let edited = crate::splice::parse_document(&text[e.range.clone()]).unwrap();
                (r.root().map(|n| n.to_json()), edited)
            })
            .collect()
    }

    #[test]
    fn reading_and_editing_count_documents_alike() {
        for text in [
            "# top\n---\n# only a comment\n---\nkind: A\n",
            "kind: A\n---\n---\nkind: B\n",
            "kind: A\n...\n# between\n---\nkind: B\n...\n",
            "kind: A\n...\nkind: B\n",
            "%YAML 1.2\n---\nkind: A\n---\n",
            "kind: A\n---\n# only a comment\n---\nkind: B\n# trailing\n",
        ] {
            for (read, edited) in both_readings(text) {
                assert_eq!(read.unwrap_or(Value::Null), edited, "{text:?}");
            }
        }
        // Comment-only documents count: the object after one is document 2 for both.
        let text = "# top\n---\n# only a comment\n---\nkind: A\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].root().unwrap().str_at(&["kind"]), Some("A"));
        assert_eq!((docs[1].first_line, docs[1].last_line), (5, 5));
        assert_eq!(
            crate::splice::find_documents(text)[1].kind.as_deref(),
            Some("A")
        );
    }

    #[test]
    fn the_document_read_is_the_document_edited() {
        // Two objects of the same kind and name, one without a namespace, after a document of
        // comments only: the editor falls back to the index the reader found, and must land on
        // the same document.
        let text = "# generated\n---\n# nothing here yet\n---\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata: {a: '1'}\n---\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: other\ndata: {a: '2'}\n";
        let read = parse_documents(text).unwrap();
        let index = read
            .iter()
            .position(|d| {
                d.root()
                    .is_some_and(|r| r.str_at(&["metadata", "namespace"]).is_none())
            })
            .unwrap();
        let doc = crate::change::target::DocRef {
            file: "cm.yaml".into(),
            index,
            kind: "ConfigMap".into(),
            name: "cfg".into(),
            namespace: None,
        };
        let span = doc.span(text).unwrap();
        let edited = crate::splice::parse_document(&text[span.range.clone()]).unwrap();
        assert_eq!(
            edited["data"]["a"],
            json!("1"),
            "edited {:?}",
            &text[span.range]
        );
    }

    #[test]
    fn reading_and_editing_agree_on_values() {
        let text = "\
base: &base {image: web, port: 80}
other: &other {port: 81, tier: front}
app:
  <<: [*base, *other]
  port: 8080
alias: *base
tagged: {n: !!int \"3\", s: !!str 3, b: !!bool \"true\"}
dup: {k: first, k: second}
? [complex, key]
: value
";
        let [(read, edited)] = both_readings(text).try_into().unwrap();
        assert_eq!(read, Some(edited.clone()));
        assert_eq!(
            edited["app"],
            json!({"image": "web", "port": 8080, "tier": "front"})
        );
        assert_eq!(edited["tagged"], json!({"n": 3, "s": "3", "b": true}));
        assert_eq!(edited["dup"], json!({"k": "second"}));
        let docs = parse_documents(text).unwrap();
        let root = docs[0].root().unwrap();
        let app = root.get("app").unwrap();
        // A merged key reads as the merge gives it, its key on the anchor's line.
        assert_eq!(app.get("image").unwrap().to_json(), json!("web"));
        assert_eq!(app.key_line("image"), Some(1));
        assert_eq!(app.get("tier").unwrap().line(), 2);
        assert_eq!(app.get("port").unwrap().to_json(), json!(8080));
        // An alias is read where it is written; what is inside it, where the anchor is.
        let alias = root.get("alias").unwrap();
        assert_eq!((alias.line(), alias.str_at(&["image"])), (6, Some("web")));
        assert_eq!(root.get("dup").unwrap().str_at(&["k"]), Some("second"));
        assert_eq!(
            root.str_at(&["tagged", "s"]),
            Some("3"),
            "the text of a tagged scalar"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let nested = |depth: usize| format!("a: {}1{}\n", "[".repeat(depth), "]".repeat(depth));
        let err = parse_documents(&nested(200)).unwrap_err();
        assert!(err.message.contains("levels deep"), "{err}");
        // The top mapping is the first level: the error is at the 128th `[`.
        assert_eq!((err.line, err.column), (1, 3 + 128));
        // Deeper still, the parser itself stops first.
        assert!(parse_documents(&nested(100_000)).is_err());
        assert!(crate::splice::apply_changes(&nested(200), &[]).is_err());
        assert!(parse_documents(&nested(100)).is_ok());
    }
}
