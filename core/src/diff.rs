//! Field-by-field comparison of an old and a new object, on raw JSON, descending only into the parts
//! that differ, and only as far as the allowed paths require.
//!
//! The walk keeps its own stack instead of recursing, so a value nested as deep as the API server
//! allows (about 10,000 levels) or deeper is compared like any other, and its cost stays linear in
//! the size of the objects: a value is compared with its old self by text, and a value inside one
//! that differs reuses where its parent's texts first differ instead of comparing its text again.
//! Members are found by key through an index once an object has more than a few.

use std::borrow::Cow;
use std::collections::HashMap;
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

    /// The pattern covers `path` and everything below it. (The definitions the walk's incremental
    /// matching keeps; the tests' reference walk and single-path questions use them.)
    pub fn covers(&self, path: &[Seg]) -> bool {
        self.0.len() <= path.len() && self.0.iter().zip(path).all(|(p, s)| p.matches(s))
    }

    /// Something this pattern allows lies strictly below `path`.
    #[cfg(test)]
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

fn write_key(f: &mut impl fmt::Write, key: &str, first: bool) -> fmt::Result {
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

/// Longest path text in a report, in bytes. A path through a value nested thousands of levels
/// deep, or through a huge key, is cut there and ends in `…`, so that messages stay readable.
pub const MAX_PATH_TEXT: usize = 512;

/// A concrete path in an object, printed like [`FieldPath`] (at most [`MAX_PATH_TEXT`] bytes).
pub fn path_string(path: &[Seg]) -> String {
    let mut text = Bounded {
        text: String::new(),
        max: MAX_PATH_TEXT,
    };
    let mut write = || -> fmt::Result {
        for (i, s) in path.iter().enumerate() {
            match s {
                Seg::Key(k) => write_key(&mut text, k, i == 0)?,
                Seg::Index(n) => fmt::Write::write_fmt(&mut text, format_args!("[{n}]"))?,
            }
        }
        Ok(())
    };
    if write().is_err() {
        text.text.push('…');
    }
    text.text
}

/// A string that takes at most `max` bytes, then refuses the rest (cut at a char boundary).
struct Bounded {
    text: String,
    max: usize,
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.max.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
            return Ok(());
        }
        let mut end = room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(s.get(..end).unwrap_or_default());
        Err(fmt::Error)
    }
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
///
/// What counts as a change, in the order reported: a member of an object whose value is not the
/// same text (a member missing on one side counts as `null`), first in the old object's order,
/// then members only the new one has. Where the walk descends (when reporting [`Report::All`], or
/// where an allowed path lies below), a map (or a missing or null value next to a map) is compared
/// member by member, lists of the same length element by element; anything else that changed is
/// reported at its own path.
pub fn disallowed_changes_of(
    old: &Fields<'_>,
    new: &Fields<'_>,
    allowed: &[&FieldPath],
    report: Report,
) -> Vec<String> {
    let limit = match report {
        Report::First => 1,
        Report::All(n) => n.max(1),
    };
    let mut walk = Walk {
        allowed,
        matched: vec![0; allowed.len()],
        deep: matches!(report, Report::All(_)),
        limit,
        path: Vec::new(),
        out: Vec::new(),
    };
    walk.fields(old, new);
    walk.out
}

struct Walk<'p> {
    allowed: &'p [&'p FieldPath],
    /// For each allowed pattern, how many steps of [`Walk::path`] from the start it matches (kept
    /// as the path grows and shrinks, so no pattern is matched against the whole path again).
    matched: Vec<usize>,
    deep: bool,
    limit: usize,
    /// Where the walk is.
    path: Vec<Seg>,
    out: Vec<String>,
}

/// Two values at the same path (a missing side is `None`), and the length of their texts' common
/// prefix where it is known already.
struct Pair<'t, 'a> {
    old: Option<View<'t, 'a>>,
    new: Option<View<'t, 'a>>,
    prefix: Option<usize>,
}

impl Walk<'_> {
    fn full(&self) -> bool {
        self.out.len() >= self.limit
    }

    fn push(&mut self, seg: Seg) {
        let depth = self.path.len();
        for (pattern, matched) in self.allowed.iter().zip(&mut self.matched) {
            if *matched == depth && pattern.0.get(depth).is_some_and(|p| p.matches(&seg)) {
                *matched += 1;
            }
        }
        self.path.push(seg);
    }

    fn truncate(&mut self, len: usize) {
        self.path.truncate(len);
        for matched in &mut self.matched {
            *matched = (*matched).min(len);
        }
    }

    fn pop(&mut self) {
        self.truncate(self.path.len().saturating_sub(1));
    }

    /// A pattern covers the path (and everything below it).
    fn covered(&self) -> bool {
        self.allowed
            .iter()
            .zip(&self.matched)
            .any(|(pattern, matched)| *matched == pattern.0.len())
    }

    /// Something a pattern allows lies strictly below the path.
    fn allowed_below(&self) -> bool {
        let depth = self.path.len();
        self.allowed
            .iter()
            .zip(&self.matched)
            .any(|(pattern, matched)| *matched == depth && pattern.0.len() > depth)
    }

    /// The objects' top-level fields.
    fn fields(&mut self, old: &Fields<'_>, new: &Fields<'_>) {
        let (old_keys, new_keys) = (KeyIndex::new(&old.0), KeyIndex::new(&new.0));
        for (key, old_v) in &old.0 {
            if self.full() {
                return;
            }
            let new_v = new_keys.find(&new.0, key);
            let (same, prefix) = compare(Some(old_v.get()), new_v.map(Raw::get), None);
            if !same {
                self.top(key, Some(old_v), new_v, prefix);
            }
        }
        for (key, new_v) in &new.0 {
            if self.full() {
                return;
            }
            if old_keys.find(&old.0, key).is_none() && !compare(None, Some(new_v.get()), None).0 {
                self.top(key, None, Some(new_v), None);
            }
        }
    }

    /// One top-level field that changed. Values that came without a tape are scanned only here,
    /// when the walk gets to them.
    fn top(
        &mut self,
        key: &str,
        old: Option<&Raw<'_>>,
        new: Option<&Raw<'_>>,
        prefix: Option<usize>,
    ) {
        let (mut so, mut sn) = (None, None);
        let old = old.map(|r| r.view(&mut so));
        let new = new.map(|r| r.view(&mut sn));
        self.push(Seg::Key(key.to_string()));
        self.walk(Pair { old, new, prefix });
        self.pop();
    }

    /// Everything that changed in and below `root` (at [`Walk::path`]), depth first in document
    /// order, with a stack of its own.
    fn walk<'t, 'a>(&mut self, root: Pair<'t, 'a>) {
        let base = self.path.len();
        let mut stack: Vec<Frame<'t, 'a>> = Vec::new();
        if let Some(frame) = self.visit(root) {
            stack.push(frame);
        }
        // Each frame but the root's has its step on the path.
        while let Some(frame) = stack.last_mut() {
            if self.full() {
                break;
            }
            match frame.next() {
                Some((seg, pair)) => {
                    self.push(seg);
                    match self.visit(pair) {
                        Some(inner) => stack.push(inner),
                        None => self.pop(),
                    }
                }
                None => {
                    stack.pop();
                    if !stack.is_empty() {
                        self.pop();
                    }
                }
            }
        }
        self.truncate(base);
    }

    /// Two values at [`Walk::path`]: nothing (same, or allowed), a change reported, or a frame to
    /// compare their members or elements.
    fn visit<'t, 'a>(&mut self, pair: Pair<'t, 'a>) -> Option<Frame<'t, 'a>> {
        let Pair { old, new, prefix } = pair;
        let (same, prefix) = compare(old.map(|v| v.text), new.map(|v| v.text), prefix);
        if same || self.covered() {
            return None;
        }
        let descend = self.deep || self.allowed_below();
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
                return Some(Frame::Members(MembersFrame {
                    old_keys: KeyIndex::new(&a),
                    new_keys: KeyIndex::new(&b),
                    old: a,
                    new: b,
                    parent: Parent::of(old, new, prefix),
                    at: 0,
                    added: false,
                }));
            }
            if so == Shape::List
                && sn == Shape::List
                && let (Some(a), Some(b)) = (list_items(old), list_items(new))
                && a.len() == b.len()
            {
                return Some(Frame::Items(ItemsFrame {
                    old: a,
                    new: b,
                    parent: Parent::of(old, new, prefix),
                    at: 0,
                }));
            }
        }
        self.out.push(path_string(&self.path));
        None
    }
}

/// The texts of two values being compared member by member, and the length of their common
/// prefix: a member at the same offset in both starts with that prefix's rest in common.
struct Parent<'a> {
    old: &'a str,
    new: &'a str,
    prefix: usize,
}

impl<'a> Parent<'a> {
    fn of(
        old: Option<View<'_, 'a>>,
        new: Option<View<'_, 'a>>,
        prefix: Option<usize>,
    ) -> Option<Self> {
        let (old, new) = (old?.text, new?.text);
        Some(Parent {
            old,
            new,
            prefix: prefix.unwrap_or_else(|| common_prefix(old, new)),
        })
    }

    /// The common prefix of `old` and `new`, values inside the parents, when the parents' says it:
    /// both at the same offset, and the parents the same up to there.
    fn hint(&self, old: &str, new: &str) -> Option<usize> {
        let offset = |inner: &str, outer: &str| {
            let at = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
            (at.checked_add(inner.len())? <= outer.len()).then_some(at)
        };
        let at = offset(old, self.old)?;
        (offset(new, self.new)? == at && self.prefix >= at)
            .then(|| (self.prefix - at).min(old.len()).min(new.len()))
    }
}

/// Where the walk is inside a map or a list.
enum Frame<'t, 'a> {
    Members(MembersFrame<'t, 'a>),
    Items(ItemsFrame<'t, 'a>),
}

impl<'t, 'a> Frame<'t, 'a> {
    /// The next pair of values that may differ, and its step; `None` when done.
    fn next(&mut self) -> Option<(Seg, Pair<'t, 'a>)> {
        match self {
            Frame::Members(f) => f.next(),
            Frame::Items(f) => f.next(),
        }
    }
}

type Members<'t, 'a> = Vec<(Cow<'a, str>, View<'t, 'a>)>;

struct MembersFrame<'t, 'a> {
    old: Members<'t, 'a>,
    new: Members<'t, 'a>,
    old_keys: KeyIndex<'a>,
    new_keys: KeyIndex<'a>,
    parent: Option<Parent<'a>>,
    at: usize,
    /// Past the old members: at the members only the new map has.
    added: bool,
}

impl<'t, 'a> MembersFrame<'t, 'a> {
    fn next(&mut self) -> Option<(Seg, Pair<'t, 'a>)> {
        while !self.added {
            let Some((key, old_v)) = self.old.get(self.at) else {
                (self.added, self.at) = (true, 0);
                break;
            };
            self.at += 1;
            let new_v = self.new_keys.find(&self.new, key).copied();
            let hint = match (&self.parent, new_v) {
                (Some(parent), Some(new_v)) => parent.hint(old_v.text, new_v.text),
                _ => None,
            };
            let (same, prefix) = compare(Some(old_v.text), new_v.map(|v| v.text), hint);
            if !same {
                let pair = Pair {
                    old: Some(*old_v),
                    new: new_v,
                    prefix,
                };
                return Some((Seg::Key(key.to_string()), pair));
            }
        }
        while let Some((key, new_v)) = self.new.get(self.at) {
            self.at += 1;
            if self.old_keys.find(&self.old, key).is_none()
                && !compare(None, Some(new_v.text), None).0
            {
                let pair = Pair {
                    old: None,
                    new: Some(*new_v),
                    prefix: None,
                };
                return Some((Seg::Key(key.to_string()), pair));
            }
        }
        None
    }
}

struct ItemsFrame<'t, 'a> {
    old: Vec<View<'t, 'a>>,
    new: Vec<View<'t, 'a>>,
    parent: Option<Parent<'a>>,
    at: usize,
}

impl<'t, 'a> ItemsFrame<'t, 'a> {
    fn next(&mut self) -> Option<(Seg, Pair<'t, 'a>)> {
        let (old, new) = (*self.old.get(self.at)?, *self.new.get(self.at)?);
        let i = self.at;
        self.at += 1;
        let prefix = self
            .parent
            .as_ref()
            .and_then(|p| p.hint(old.text, new.text));
        let pair = Pair {
            old: Some(old),
            new: Some(new),
            prefix,
        };
        Some((Seg::Index(i), pair))
    }
}

/// Objects with more members than this are searched through a hash index.
const SCAN_MEMBERS: usize = 16;

/// Finds an object's member by key the way a search from the start would (the first of a key given
/// twice), in constant time for objects with many members.
struct KeyIndex<'a>(Option<HashMap<Cow<'a, str>, usize>>);

impl<'a> KeyIndex<'a> {
    fn new<V>(entries: &[(Cow<'a, str>, V)]) -> KeyIndex<'a> {
        if entries.len() <= SCAN_MEMBERS {
            return KeyIndex(None);
        }
        let mut index = HashMap::with_capacity(entries.len());
        for (i, (key, _)) in entries.iter().enumerate() {
            index.entry(key.clone()).or_insert(i);
        }
        KeyIndex(Some(index))
    }

    fn find<'e, V>(&self, entries: &'e [(Cow<'a, str>, V)], key: &str) -> Option<&'e V> {
        match &self.0 {
            Some(index) => entries.get(*index.get(key)?).map(|(_, v)| v),
            None => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        }
    }
}

/// Whether two values are the same text, or both missing or `null`; for two texts of the same
/// length also the length of their common prefix (`known` if given, else measured).
fn compare(old: Option<&str>, new: Option<&str>, known: Option<usize>) -> (bool, Option<usize>) {
    match (old, new) {
        (Some(a), Some(b)) => {
            if a.len() != b.len() {
                return (false, known);
            }
            let prefix = known.unwrap_or_else(|| common_prefix(a, b));
            (prefix >= a.len(), Some(prefix))
        }
        (a, b) => (
            a.is_none_or(|a| a == "null") && b.is_none_or(|b| b == "null"),
            None,
        ),
    }
}

/// How many bytes `a` and `b` have in common from the start.
fn common_prefix(a: &str, b: &str) -> usize {
    const BLOCK: usize = 64;
    let mut at = 0;
    for (x, y) in a.as_bytes().chunks(BLOCK).zip(b.as_bytes().chunks(BLOCK)) {
        if x == y {
            at += x.len();
        } else {
            return at + x.iter().zip(y).take_while(|(p, q)| p == q).count();
        }
    }
    at
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
mod tests;
