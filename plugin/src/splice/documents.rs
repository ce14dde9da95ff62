//! Splitting a manifest file into its YAML documents.

use std::ops::Range;

use serde_json::Value;

use super::tree;

/// One YAML document of a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct DocSpan {
    /// Position among the file's documents (0-based).
    pub index: usize,
    /// Bytes of the document in the file: its `---` line, the comments before it and everything
    /// up to the next `---`. The ranges of all documents cover the whole file.
    pub range: Range<usize>,
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// Why the document could not be read, if it could not.
    pub parse_error: Option<String>,
}

impl DocSpan {
    /// Whether the document has no content (only comments or nothing).
    pub fn is_empty(&self) -> bool {
        self.kind.is_none() && self.api_version.is_none() && self.parse_error.is_none()
    }

    /// Whether this is the object `kind`/`name` (and `namespace`, when both sides know one).
    pub fn is_object(&self, kind: &str, name: &str, namespace: Option<&str>) -> bool {
        self.kind
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case(kind))
            && self.name.as_deref() == Some(name)
            && match (namespace, self.namespace.as_deref()) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            }
    }
}

/// Whether a line is the document marker `m` (`---` or `...`), maybe followed by more.
pub(crate) fn marker(line: &str, m: &str) -> bool {
    line.strip_prefix(m)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// Whether a line holds anything but a comment, blanks, a directive or a marker.
pub(crate) fn content_line(line: &str) -> bool {
    let rest = if marker(line, "---") {
        &line[3..]
    } else if marker(line, "...") || line.starts_with('%') {
        return false;
    } else {
        line
    };
    let t = rest.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// The byte ranges of a stream's documents, counted as a YAML parser counts them: every `---`
/// starts one (also when only comments follow it), and so does content at the top or after a
/// `...` without a `---`. Comments, blank lines and directives between documents belong to the
/// document after them (at the end of the text, to the one before). The ranges cover the text.
pub(crate) fn split(file_text: &str) -> Vec<Range<usize>> {
    // Cut before every `---` line and after every `...` line.
    let mut cuts = vec![0];
    let mut pos = 0;
    for line in file_text.split_inclusive('\n') {
        if marker(line, "---") && pos > 0 {
            cuts.push(pos);
        }
        pos += line.len();
        if marker(line, "...") {
            cuts.push(pos);
        }
    }
    cuts.push(file_text.len());
    cuts.dedup();
    let mut merged: Vec<Range<usize>> = Vec::new();
    let mut pending: Option<usize> = None;
    for w in cuts.windows(2) {
        let segment = &file_text[w[0]..w[1]];
        let start = pending.take().unwrap_or(w[0]);
        let explicit = marker(segment, "---");
        if explicit || segment.lines().any(content_line) {
            merged.push(start..w[1]);
        } else {
            pending = Some(start);
        }
    }
    if let Some(start) = pending {
        match merged.last_mut() {
            Some(last) => last.end = file_text.len(),
            None => merged.push(start..file_text.len()),
        }
    }
    merged
}

/// The documents of a manifest file, in order.
pub fn find_documents(file_text: &str) -> Vec<DocSpan> {
    split(file_text)
        .into_iter()
        .enumerate()
        .map(|(index, range)| describe(index, range, file_text))
        .collect()
}

fn describe(index: usize, range: Range<usize>, file_text: &str) -> DocSpan {
    let mut span = DocSpan {
        index,
        range: range.clone(),
        api_version: None,
        kind: None,
        name: None,
        namespace: None,
        parse_error: None,
    };
    match tree::parse(&file_text[range]) {
        Ok(t) => {
            let v = tree::to_json(&t);
            let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
            span.api_version = s(v.get("apiVersion"));
            span.kind = s(v.get("kind"));
            span.name = s(v.pointer("/metadata/name"));
            span.namespace = s(v.pointer("/metadata/namespace"));
        }
        Err(e) => span.parse_error = Some(e.to_string()),
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_comments_join_the_first_document() {
        let text = "# top\n---\nkind: A\nmetadata: {name: a}\n---\n# about b\nkind: B\n...\n---\nkind: C\n";
        let docs = find_documents(text);
        let kinds: Vec<_> = docs
            .iter()
            .map(|d| d.kind.clone().unwrap_or_default())
            .collect();
        assert_eq!(kinds, ["A", "B", "C"]);
        assert_eq!(
            &text[docs[0].range.clone()],
            "# top\n---\nkind: A\nmetadata: {name: a}\n"
        );
        assert_eq!(
            &text[docs[1].range.clone()],
            "---\n# about b\nkind: B\n...\n"
        );
        assert_eq!(docs[0].name.as_deref(), Some("a"));
        assert_eq!(docs.last().map(|d| d.range.end), Some(text.len()));
    }

    #[test]
    fn trailing_separator_is_an_empty_document() {
        let docs = find_documents("kind: A\n---\n");
        assert_eq!(docs.len(), 2);
        assert!(docs[1].is_empty());
    }

    #[test]
    fn broken_documents_are_reported_not_dropped() {
        let docs = find_documents("kind: A\n---\nkind: [\n");
        assert_eq!(docs.len(), 2);
        assert!(docs[1].parse_error.is_some());
    }
}
