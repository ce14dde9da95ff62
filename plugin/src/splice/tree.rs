//! A YAML document as a tree of nodes that know their byte positions in the text.

use std::collections::{BTreeMap, HashMap};

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::Value;

use super::Error;
use super::path::PathSegment;
use super::scalar::{Style, resolve_plain};

/// Where the parts of a block scalar (`|` / `>`) are.
#[derive(Debug, Clone)]
pub(crate) struct BlockScalar {
    /// The `|` or `>`.
    pub header: usize,
    /// End of the indicator (`|-`, `>2+` …).
    pub header_end: usize,
    /// Start of the first line after the header line.
    pub content_start: usize,
    /// Just after the last line break that belongs to the scalar (or the end of the text).
    pub content_end: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Scalar {
        value: String,
        style: Style,
        /// An empty plain scalar that is not written at all (`key:` with nothing after it).
        implicit: bool,
        block: Option<BlockScalar>,
    },
    Map {
        entries: Vec<Entry>,
        flow: bool,
    },
    Seq {
        items: Vec<Item>,
        flow: bool,
    },
    Alias(usize),
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: Node,
    pub value: Node,
    /// The `:` after the key (block mappings; absent for explicit `? key` entries).
    pub colon: Option<usize>,
    /// The key as a string.
    pub name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub node: Node,
    /// The `-` of a block sequence item.
    pub dash: Option<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Start including properties (`&anchor`, `!tag`).
    pub prop_start: usize,
    /// Start of the node itself: first key/dash of a block collection, `{`/`[` of a flow one,
    /// the first character of a scalar (the `|`/`>` header of a block scalar).
    pub start: usize,
    /// End of the last character that belongs to the node (block scalars: of their last
    /// non-blank content line, or the last kept line break for `|+`).
    pub end: usize,
    pub anchor: usize,
    pub tag: Option<String>,
}

impl Node {
    pub(crate) fn is_flow_collection(&self) -> bool {
        matches!(
            self.kind,
            Kind::Map { flow: true, .. } | Kind::Seq { flow: true, .. }
        )
    }

    pub(crate) fn entries(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Map { entries, .. } => Some(entries),
            _ => None,
        }
    }

    pub(crate) fn items(&self) -> Option<&[Item]> {
        match &self.kind {
            Kind::Seq { items, .. } => Some(items),
            _ => None,
        }
    }

    /// A short description for error messages.
    pub(crate) fn construct(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar { .. } => "a scalar",
            Kind::Map { flow: true, .. } => "a flow mapping",
            Kind::Map { .. } => "a mapping",
            Kind::Seq { flow: true, .. } => "a flow sequence",
            Kind::Seq { .. } => "a sequence",
            Kind::Alias(_) => "an alias",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AnchorDef {
    pub name: String,
    pub path: Vec<PathSegment>,
}

#[derive(Debug, Clone)]
pub(crate) struct Tree {
    pub root: Option<Node>,
    pub anchors: BTreeMap<usize, AnchorDef>,
    /// Where aliases are used: their path and anchor id.
    pub aliases: Vec<(Vec<PathSegment>, usize)>,
}

impl Tree {
    /// The paths at which an anchor is used through aliases.
    pub(crate) fn alias_paths(&self, anchor: usize) -> Vec<Vec<PathSegment>> {
        self.aliases
            .iter()
            .filter(|(_, a)| *a == anchor)
            .map(|(p, _)| p.clone())
            .collect()
    }
}

/// How deeply collections may nest: deeper input is refused with an error instead of exhausting
/// the stack (the tree is built, read and written by recursive walks).
pub(crate) const MAX_DEPTH: usize = 128;

/// Parses the text of one YAML document (it may start with comments and `---`).
pub(crate) fn parse(text: &str) -> Result<Tree, Error> {
    let offsets = (!text.is_ascii()).then(|| {
        let mut v: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        v.push(text.len());
        v
    });
    let to_byte = |ci: usize| match &offsets {
        None => ci.min(text.len()),
        Some(v) => v.get(ci).copied().unwrap_or(text.len()),
    };
    let mut events = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Some(r) = parser.next_event() {
        let (ev, span) = r.map_err(|e| Error::YamlSyntax {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
        events.push((ev, to_byte(span.start.index()), to_byte(span.end.index())));
    }
    let documents = events
        .iter()
        .filter(|(e, _, _)| matches!(e, Event::DocumentStart(_)))
        .count();
    if documents > 1 {
        return Err(Error::MultipleDocuments { count: documents });
    }
    let mut b = Builder {
        text,
        events,
        next: 0,
        last_end: 0,
        path: Vec::new(),
        depth: 0,
        anchors: BTreeMap::new(),
        aliases: Vec::new(),
    };
    let mut root = None;
    while b.next < b.events.len() {
        match &b.events[b.next].0 {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {
                b.next += 1;
            }
            Event::DocumentStart(_) => {
                let (_, _, e) = b.take();
                b.last_end = e;
                if !matches!(
                    b.events.get(b.next).map(|x| &x.0),
                    Some(Event::DocumentEnd) | None
                ) {
                    root = Some(b.node()?);
                }
            }
            _ => root = Some(b.node()?),
        }
    }
    Ok(Tree {
        root,
        anchors: b.anchors,
        aliases: b.aliases,
    })
}

struct Builder<'a> {
    text: &'a str,
    events: Vec<(Event<'a>, usize, usize)>,
    next: usize,
    last_end: usize,
    path: Vec<PathSegment>,
    /// Collections open around the node being built.
    depth: usize,
    anchors: BTreeMap<usize, AnchorDef>,
    aliases: Vec<(Vec<PathSegment>, usize)>,
}

fn unexpected(text: &str, at: usize, what: &str) -> Error {
    let before = &text[..at.min(text.len())];
    Error::YamlSyntax {
        line: before.matches('\n').count() + 1,
        column: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
        message: what.to_string(),
    }
}

impl<'a> Builder<'a> {
    fn take(&mut self) -> (Event<'a>, usize, usize) {
        let (ev, s, e) = self.events.get(self.next).cloned().unwrap_or((
            Event::StreamEnd,
            self.text.len(),
            self.text.len(),
        ));
        self.next += 1;
        self.last_end = self.last_end.max(e);
        (ev, s, e)
    }

    fn peek(&self) -> Option<&Event<'a>> {
        self.events.get(self.next).map(|x| &x.0)
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Skips `&anchor` / `!tag` properties (and the blanks after them) from `pos`.
    fn skip_props(&self, mut pos: usize, limit: usize) -> usize {
        let b = self.bytes();
        while pos < limit && pos < b.len() && (b[pos] == b'&' || b[pos] == b'!') {
            while pos < b.len() && !b[pos].is_ascii_whitespace() {
                pos += 1;
            }
            while pos < b.len() && b[pos].is_ascii_whitespace() {
                pos += 1;
            }
        }
        pos
    }

    fn register_anchor(&mut self, anchor: usize, prop_start: usize, start: usize) {
        if anchor == 0 {
            return;
        }
        let props = &self.text[prop_start..start.max(prop_start)];
        let name = props
            .find('&')
            .map(|i| {
                props[i + 1..]
                    .split(|c: char| c.is_whitespace() || ",[]{}".contains(c))
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default();
        self.anchors.insert(
            anchor,
            AnchorDef {
                name,
                path: self.path.clone(),
            },
        );
    }

    fn node(&mut self) -> Result<Node, Error> {
        let collection = matches!(
            self.peek(),
            Some(Event::MappingStart(..) | Event::SequenceStart(..))
        );
        if !collection {
            return self.leaf_or_collection();
        }
        if self.depth >= MAX_DEPTH {
            let at = self.events.get(self.next).map_or(self.text.len(), |x| x.1);
            return Err(unexpected(
                self.text,
                at,
                &format!(
                    "collections nested more than {MAX_DEPTH} levels deep, which kubectl gitops does not read; flatten the document"
                ),
            ));
        }
        self.depth += 1;
        let node = self.leaf_or_collection();
        self.depth -= 1;
        node
    }

    fn leaf_or_collection(&mut self) -> Result<Node, Error> {
        let prev_end = self.last_end;
        let (ev, s, e) = self.take();
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let tag = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                let start = self.skip_props(s, e);
                self.register_anchor(anchor, s, start);
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted => Style::SingleQuoted,
                    ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
                    ScalarStyle::Literal => Style::Literal,
                    ScalarStyle::Folded => Style::Folded,
                };
                if matches!(style, Style::Literal | Style::Folded) {
                    let from = if start != s { start } else { prev_end };
                    let block = self.block_scalar(from, s, e)?;
                    let keep = self.text[block.header..block.header_end].contains('+');
                    let content = &self.text[block.content_start..block.content_end];
                    let end = if keep && content.ends_with('\n') {
                        block.content_end - 1
                    } else {
                        let trimmed = content.trim_end().len();
                        if trimmed == 0 {
                            block.header_end
                        } else {
                            block.content_start + trimmed
                        }
                    };
                    return Ok(Node {
                        prop_start: if start != s { s } else { block.header },
                        start: block.header,
                        end,
                        anchor,
                        tag,
                        kind: Kind::Scalar {
                            value: value.into_owned(),
                            style,
                            implicit: false,
                            block: Some(block),
                        },
                    });
                }
                let implicit = style == Style::Plain && value.is_empty() && start >= e;
                Ok(Node {
                    prop_start: s,
                    start: start.min(e),
                    end: e,
                    anchor,
                    tag,
                    kind: Kind::Scalar {
                        value: value.into_owned(),
                        style,
                        implicit,
                        block: None,
                    },
                })
            }
            Event::Alias(id) => {
                self.aliases.push((self.path.clone(), id));
                Ok(Node {
                    prop_start: s,
                    start: s,
                    end: e,
                    anchor: 0,
                    tag: None,
                    kind: Kind::Alias(id),
                })
            }
            Event::MappingStart(anchor, tag) => {
                let tag = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                // A flow mapping's event covers its `{`; a block mapping's is empty or only
                // covers its properties.
                let flow = self.text[s..e].trim_end().ends_with('{');
                let start = if flow {
                    s + self.text[s..e].trim_end().len() - 1
                } else {
                    self.skip_props(s, self.text.len())
                };
                self.register_anchor(anchor, s, start);
                let mut entries = Vec::new();
                let mut end = start;
                loop {
                    match self.peek() {
                        Some(Event::MappingEnd) => {
                            let (_, from, to) = self.take();
                            if flow {
                                // The event may cover blanks after the closing bracket.
                                end = from + self.text[from..to].trim_end().len();
                            }
                            break;
                        }
                        None | Some(Event::StreamEnd) => {
                            return Err(unexpected(self.text, start, "unterminated mapping"));
                        }
                        _ => {}
                    }
                    let key = self.node()?;
                    let name = match &key.kind {
                        Kind::Scalar { value, .. } => value.clone(),
                        _ => format!("<{} key>", key.construct()),
                    };
                    let colon = self.colon_after(key.end);
                    self.path.push(PathSegment::Key(name.clone()));
                    let mut value = self.node()?;
                    self.path.pop();
                    if let (Kind::Scalar { implicit: true, .. }, Some(c)) = (&value.kind, colon) {
                        value.prop_start = c + 1;
                        value.start = c + 1;
                        value.end = c + 1;
                    }
                    if !flow {
                        end = end.max(key.end).max(value.end);
                    }
                    entries.push(Entry {
                        key,
                        value,
                        colon,
                        name,
                    });
                }
                let start = if flow {
                    start
                } else {
                    entries.first().map_or(start, |e| e.key.prop_start)
                };
                Ok(Node {
                    prop_start: s.min(start),
                    start,
                    end,
                    anchor,
                    tag,
                    kind: Kind::Map { entries, flow },
                })
            }
            Event::SequenceStart(anchor, tag) => {
                let tag = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                let flow = self.text[s..e].trim_end().ends_with('[');
                let start = if flow {
                    s + self.text[s..e].trim_end().len() - 1
                } else {
                    self.skip_props(s, self.text.len())
                };
                self.register_anchor(anchor, s, start);
                let mut items = Vec::new();
                let mut end = start;
                loop {
                    match self.peek() {
                        Some(Event::SequenceEnd) => {
                            let (_, from, to) = self.take();
                            if flow {
                                // The event may cover blanks after the closing bracket.
                                end = from + self.text[from..to].trim_end().len();
                            }
                            break;
                        }
                        None | Some(Event::StreamEnd) => {
                            return Err(unexpected(self.text, start, "unterminated sequence"));
                        }
                        _ => {}
                    }
                    self.path.push(PathSegment::Index(items.len()));
                    let mut node = self.node()?;
                    self.path.pop();
                    let dash = if flow {
                        None
                    } else {
                        self.dash_before(node.prop_start)
                    };
                    if let (Kind::Scalar { implicit: true, .. }, Some(d)) = (&node.kind, dash) {
                        node.prop_start = d + 1;
                        node.start = d + 1;
                        node.end = d + 1;
                    }
                    if !flow {
                        end = end.max(node.end);
                    }
                    items.push(Item { node, dash });
                }
                let start = if flow {
                    start
                } else {
                    items.first().and_then(|i| i.dash).unwrap_or(start)
                };
                Ok(Node {
                    prop_start: s.min(start),
                    start,
                    end,
                    anchor,
                    tag,
                    kind: Kind::Seq { items, flow },
                })
            }
            _ => Err(unexpected(self.text, s, "unexpected YAML event")),
        }
    }

    /// The `:` after a mapping key ending at `pos`, on the same line.
    fn colon_after(&self, pos: usize) -> Option<usize> {
        let b = self.bytes();
        let mut i = pos;
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        (b.get(i) == Some(&b':')).then_some(i)
    }

    /// The `-` of a block sequence item that starts at `pos`.
    fn dash_before(&self, pos: usize) -> Option<usize> {
        let b = self.bytes();
        let mut i = pos;
        while i > 0 && matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r') {
            i -= 1;
        }
        (i > 0 && b[i - 1] == b'-').then(|| i - 1)
    }

    /// Finds the header of a block scalar whose content the parser reported at `s..e`.
    fn block_scalar(&self, from: usize, s: usize, e: usize) -> Result<BlockScalar, Error> {
        let b = self.bytes();
        let mut i = from.min(b.len());
        let limit = s.max(from).min(b.len());
        let header = loop {
            if i >= limit {
                return Err(unexpected(
                    self.text,
                    s,
                    "block scalar without a | or > header",
                ));
            }
            match b[i] {
                b'|' | b'>' => break i,
                b'#' if i == 0 || b[i - 1].is_ascii_whitespace() => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                b'&' | b'!' => {
                    while i < b.len() && !b[i].is_ascii_whitespace() {
                        i += 1;
                    }
                }
                _ => i += 1,
            }
        };
        let mut header_end = header + 1;
        while header_end < b.len()
            && header_end < header + 3
            && (b[header_end].is_ascii_digit() || b[header_end] == b'+' || b[header_end] == b'-')
        {
            header_end += 1;
        }
        let content_start = self.text[header_end..]
            .find('\n')
            .map_or(self.text.len(), |n| header_end + n + 1);
        let e = e.max(content_start).min(b.len());
        let content_end = if e == b.len() && !self.text.ends_with('\n') {
            e
        } else {
            self.text[content_start..e]
                .rfind('\n')
                .map_or(content_start, |n| content_start + n + 1)
        };
        Ok(BlockScalar {
            header,
            header_end,
            content_start,
            content_end,
        })
    }
}

/// The JSON value of a document (`null` when it is empty).
pub(crate) fn to_json(tree: &Tree) -> Value {
    let mut anchors = HashMap::new();
    tree.root
        .as_ref()
        .map_or(Value::Null, |r| node_json(r, &mut anchors))
}

/// The JSON value of one node of a parsed tree, with the values of the anchors met before it
/// (aliases to anchors not in `anchors` read as `null`).
pub(crate) fn node_json(node: &Node, anchors: &mut HashMap<usize, Value>) -> Value {
    json_of(node, anchors, None)
}

fn json_of(node: &Node, anchors: &mut HashMap<usize, Value>, tree: Option<&Tree>) -> Value {
    let v = match &node.kind {
        Kind::Scalar { value, style, .. } => scalar_json(value, *style, node.tag.as_deref()),
        Kind::Alias(id) => match (anchors.get(id), tree) {
            (Some(v), _) => v.clone(),
            (None, Some(tree)) => {
                // An alias inside its own anchor reads as null, as the editor reads it.
                anchors.insert(*id, Value::Null);
                match tree.deref(node) {
                    Some(n) => json_of(n, anchors, Some(tree)),
                    None => Value::Null,
                }
            }
            (None, None) => Value::Null,
        },
        Kind::Seq { items, .. } => Value::Array(
            items
                .iter()
                .map(|i| json_of(&i.node, anchors, tree))
                .collect(),
        ),
        Kind::Map { entries, .. } => {
            let mut map = serde_json::Map::new();
            let mut merged = Vec::new();
            for e in entries {
                let v = json_of(&e.value, anchors, tree);
                if is_merge_key(&e.key) {
                    match v {
                        Value::Array(list) => merged.extend(list),
                        other => merged.push(other),
                    }
                } else {
                    map.insert(e.name.clone(), v);
                }
            }
            for m in merged {
                if let Value::Object(m) = m {
                    for (k, v) in m {
                        map.entry(k).or_insert(v);
                    }
                }
            }
            Value::Object(map)
        }
    };
    if node.anchor != 0 {
        anchors.insert(node.anchor, v.clone());
    }
    v
}

/// The node at a path of the tree as it is written (aliases are not followed).
pub(crate) fn resolve<'t>(root: &'t Node, path: &[PathSegment]) -> Option<&'t Node> {
    let mut cur = root;
    for seg in path {
        cur = match &cur.kind {
            Kind::Map { entries, .. } => {
                &entries.iter().rev().find(|e| e.name == seg.as_key())?.value
            }
            Kind::Seq { items, .. } => &items.get(seg.as_index(items.len())?)?.node,
            _ => return None,
        };
    }
    Some(cur)
}

impl Tree {
    /// The JSON value of a node of this tree (aliases read as their anchors' values).
    pub(crate) fn json(&self, node: &Node) -> Value {
        json_of(node, &mut HashMap::new(), Some(self))
    }

    /// The node an alias stands for; any other node is itself.
    pub(crate) fn deref<'t>(&'t self, node: &'t Node) -> Option<&'t Node> {
        match node.kind {
            Kind::Alias(id) => resolve(self.root.as_ref()?, &self.anchors.get(&id)?.path),
            _ => Some(node),
        }
    }

    /// The entry that gives `key` its value in a mapping, as [`Tree::json`] reads it: the last
    /// entry of that name, else the first mapping merged in with `<<` that has it.
    pub(crate) fn lookup<'t>(&'t self, map: &'t Node, key: &str) -> Option<&'t Entry> {
        // Mappings to search, in the order their keys count; a bound stops merge cycles.
        let mut stack = vec![map];
        let mut budget = 1024usize;
        while let Some(node) = stack.pop() {
            budget = budget.checked_sub(1)?;
            let Some(entries) = self.deref(node).and_then(Node::entries) else {
                continue;
            };
            if let Some(e) = entries
                .iter()
                .rev()
                .find(|e| e.name == key && !is_merge_key(&e.key))
            {
                return Some(e);
            }
            let mut sources = Vec::new();
            for e in entries.iter().filter(|e| is_merge_key(&e.key)) {
                match self.deref(&e.value).and_then(Node::items) {
                    Some(items) => sources.extend(items.iter().map(|i| &i.node)),
                    None => sources.push(&e.value),
                }
            }
            stack.extend(sources.into_iter().rev());
        }
        None
    }
}

pub(crate) fn is_merge_key(key: &Node) -> bool {
    matches!(&key.kind, Kind::Scalar { value, style: Style::Plain, .. } if value == "<<")
}

fn scalar_json(value: &str, style: Style, tag: Option<&str>) -> Value {
    let core = tag.and_then(|t| t.strip_prefix("tag:yaml.org,2002:"));
    match core {
        Some("str") => Value::String(value.to_string()),
        Some("int" | "float" | "bool" | "null") => resolve_plain(value),
        _ if style == Style::Plain => resolve_plain(value),
        _ => Value::String(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        match parse(text) {
            Ok(t) => to_json(&t),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn anchors_aliases_and_merge_keys_expand() {
        let v = json("a: &x {k: 1}\nb: *x\nc:\n  <<: *x\n  j: 2\n");
        assert_eq!(
            v,
            serde_json::json!({"a": {"k": 1}, "b": {"k": 1}, "c": {"k": 1, "j": 2}})
        );
    }

    #[test]
    fn positions_are_bytes_even_after_multibyte_text() {
        let text = "a: \"héllo\"\nb: 2\n";
        let tree = parse(text).unwrap_or_else(|e| panic!("{e}"));
        let root = tree.root.unwrap_or_else(|| panic!("no root"));
        let entries = root.entries().unwrap_or_default();
        assert_eq!(&text[entries[1].value.start..entries[1].value.end], "2");
        assert_eq!(
            &text[entries[0].value.start..entries[0].value.end],
            "\"héllo\""
        );
    }

    #[test]
    fn block_scalar_parts_are_found() {
        let text = "a: |-  # c\n  x\n  y\n\nb: 1\n";
        let tree = parse(text).unwrap_or_else(|e| panic!("{e}"));
        let root = tree.root.unwrap_or_else(|| panic!("no root"));
        let v = &root.entries().unwrap_or_default()[0].value;
        let Kind::Scalar { block: Some(b), .. } = &v.kind else {
            panic!("not a block scalar")
        };
        assert_eq!(&text[b.header..b.header_end], "|-");
        assert_eq!(&text[b.content_start..b.content_end], "  x\n  y\n\n");
        assert_eq!(&text[v.start..v.end], "|-  # c\n  x\n  y");
    }

    #[test]
    fn implicit_null_values_sit_after_the_colon() {
        let text = "a:\nb: 1\n";
        let tree = parse(text).unwrap_or_else(|e| panic!("{e}"));
        let root = tree.root.clone().unwrap_or_else(|| panic!("no root"));
        let v = &root.entries().unwrap_or_default()[0].value;
        assert_eq!(v.start, 2);
        assert_eq!(to_json(&tree), serde_json::json!({"a": null, "b": 1}));
    }
}
