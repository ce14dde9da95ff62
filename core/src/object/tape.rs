//! A validating JSON scanner that records where every value lies (a "tape"), so that an object can
//! later be split at any depth without scanning its text again.
//!
//! It accepts exactly the texts that serde_json accepts as one JSON value (like serde_json when it
//! skips a value, it has no nesting limit: it keeps its own stack instead of recursing), so callers
//! can treat "the tape was built" as "the text is valid JSON", and leave what it refuses to
//! serde_json, which then says what is wrong — except a text of more than [`MAX_VALUES`] values,
//! which it refuses as too large ([`scan`] says which), bounding the tape's memory.

use std::borrow::Cow;

/// `key` of a value that is not an object member.
const NO_KEY: u32 = u32::MAX;
/// Set in `key` when the key has escapes.
const ESCAPED: u32 = 1 << 31;

/// One JSON value, in document order (a container comes before its contents).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Node {
    /// Byte offset of the value's first byte.
    pub start: u32,
    /// Byte offset just past the value.
    pub end: u32,
    /// Index of the first node after this value and everything inside it.
    pub next: u32,
    /// For an object member: byte offset of the key's opening quote, with [`ESCAPED`] set if the
    /// key has escapes (the key ends where whitespace and `:` before the value begin). Else
    /// [`NO_KEY`].
    pub key: u32,
}

/// Every value of one JSON document; node 0 is the whole document.
#[derive(Debug, Default)]
pub(crate) struct Tape {
    pub nodes: Vec<Node>,
}

impl Tape {
    /// The values directly inside node `idx` (members of an object, elements of an array).
    pub fn children(&self, idx: u32) -> Children<'_> {
        let end = self.nodes.get(idx as usize).map_or(0, |n| n.next);
        Children {
            nodes: &self.nodes,
            at: idx.saturating_add(1),
            end,
        }
    }
}

pub(crate) struct Children<'t> {
    nodes: &'t [Node],
    at: u32,
    end: u32,
}

impl<'t> Iterator for Children<'t> {
    type Item = (u32, &'t Node);

    fn next(&mut self) -> Option<(u32, &'t Node)> {
        if self.at >= self.end {
            return None;
        }
        let idx = self.at;
        let node = self.nodes.get(idx as usize)?;
        self.at = node.next;
        Some((idx, node))
    }
}

/// A value inside a scanned document: its text, and where its contents lie.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'t, 'a> {
    /// The value's JSON text.
    pub text: &'a str,
    /// Without a tape, the value is opaque: it has no members or items.
    tape: Option<&'t Tape>,
    idx: u32,
}

impl<'t, 'a> View<'t, 'a> {
    /// Node `idx` of `tape`, whose text is `text`.
    pub fn new(tape: Option<&'t Tape>, idx: u32, text: &'a str) -> View<'t, 'a> {
        View { tape, idx, text }
    }

    pub fn idx(&self) -> u32 {
        self.idx
    }

    pub fn is_null(&self) -> bool {
        self.text == "null"
    }

    /// Whether the view has no tape (its text could not be scanned): no members, no items.
    pub fn is_opaque(&self) -> bool {
        self.tape.is_none()
    }

    fn first_byte(&self) -> Option<u8> {
        self.text.as_bytes().first().copied()
    }

    /// The text from `start` to `end` (document offsets inside this value).
    fn inner(&self, tape: &Tape, start: u32, end: u32) -> Option<&'a str> {
        let base = tape.nodes.get(self.idx as usize)?.start;
        self.text
            .get(start.checked_sub(base)? as usize..end.checked_sub(base)? as usize)
    }

    /// An object's members in document order, keys as written; `None` if this is not an object.
    pub fn members(self) -> Option<Members<'t, 'a>> {
        let tape = self.tape?;
        (self.first_byte()? == b'{').then(|| Members {
            children: tape.children(self.idx),
            tape,
            view: self,
        })
    }

    /// An array's elements; `None` if this is not an array.
    pub fn items(self) -> Option<impl Iterator<Item = View<'t, 'a>>> {
        let tape = self.tape?;
        (self.first_byte()? == b'[').then(move || {
            tape.children(self.idx).filter_map(move |(idx, c)| {
                Some(View {
                    text: self.inner(tape, c.start, c.end)?,
                    tape: Some(tape),
                    idx,
                })
            })
        })
    }

    /// An object's members with their keys unescaped; `None` if this is not an object or a key
    /// has an escape serde_json refuses to decode (a lone surrogate), as serde_json refuses such an
    /// object as a map.
    pub fn fields(self) -> Option<Vec<(Cow<'a, str>, View<'t, 'a>)>> {
        let members = self.members()?;
        let mut out = Vec::with_capacity(16);
        for (key, value) in members {
            out.push((key.decode()?, value));
        }
        Some(out)
    }
}

/// An object member's key as written in the text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key<'a> {
    /// With its quotes.
    quoted: &'a str,
    escaped: bool,
}

impl<'a> Key<'a> {
    /// The key's text; `None` for an escape serde_json refuses to decode (a lone surrogate).
    pub fn decode(&self) -> Option<Cow<'a, str>> {
        if self.escaped {
            serde_json::from_str::<String>(self.quoted)
                .ok()
                .map(Cow::Owned)
        } else {
            let inner = self.quoted.get(1..self.quoted.len().checked_sub(1)?)?;
            Some(Cow::Borrowed(inner))
        }
    }
}

pub(crate) struct Members<'t, 'a> {
    view: View<'t, 'a>,
    tape: &'t Tape,
    children: Children<'t>,
}

impl<'t, 'a> Iterator for Members<'t, 'a> {
    type Item = (Key<'a>, View<'t, 'a>);

    fn next(&mut self) -> Option<(Key<'a>, View<'t, 'a>)> {
        let (idx, c) = self.children.next()?;
        if c.key == NO_KEY {
            return None;
        }
        // `"key" : ` up to the value. The scan let only JSON whitespace through around the `:`,
        // so trimming ASCII whitespace (a byte loop, unlike a `char` pattern) trims just that.
        let before = self.view.inner(self.tape, c.key & !ESCAPED, c.start)?;
        let key = Key {
            quoted: before.trim_ascii_end().strip_suffix(':')?.trim_ascii_end(),
            escaped: c.key & ESCAPED != 0,
        };
        let value = View {
            text: self.view.inner(self.tape, c.start, c.end)?,
            tape: Some(self.tape),
            idx,
        };
        Some((key, value))
    }
}

/// Most values one document may hold (a tape of them takes 16 bytes each, 64 MiB in all). An
/// object etcd can store (1.5 MiB by default) holds at most about 800,000 (a list of one-digit
/// numbers), so a review of two of them holds well under half of this; only text made to exhaust
/// the guard's memory holds more.
pub(crate) const MAX_VALUES: usize = 4 << 20;

/// Why a text was not scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not valid JSON (or 2 GiB or larger).
    Invalid,
    /// More than [`MAX_VALUES`] values.
    TooManyValues,
}

/// Scans `text` as one JSON document. `None` if it is not valid JSON (or is 2 GiB or larger, or
/// holds more than [`MAX_VALUES`] values).
pub(crate) fn parse(text: &str) -> Option<Tape> {
    scan(text).ok()
}

/// [`parse`], saying why a text was refused.
pub(crate) fn scan(text: &str) -> Result<Tape, Refused> {
    let b = text.as_bytes();
    if b.len() >= ESCAPED as usize {
        return Err(Refused::Invalid);
    }
    let mut nodes: Vec<Node> = Vec::new();
    match walk(b, &mut nodes) {
        Some(()) if nodes.len() <= MAX_VALUES => Ok(Tape { nodes }),
        _ if nodes.len() > MAX_VALUES => Err(Refused::TooManyValues),
        _ => Err(Refused::Invalid),
    }
}

/// The scan itself: fills `nodes`; `None` where the text stops being valid JSON, or once it holds
/// more than [`MAX_VALUES`] values.
fn walk(b: &[u8], nodes: &mut Vec<Node>) -> Option<()> {
    nodes.reserve((b.len() / 12 + 4).min(MAX_VALUES));
    // Open containers: node index, and whether it is an object.
    let mut stack: Vec<(u32, bool)> = Vec::with_capacity(16);
    let mut i = skip_ws(b, 0);
    let mut key = NO_KEY;
    'value: loop {
        // A value starts at `i`; `key` says where its key is if it is an object member.
        let start = i;
        let c = *b.get(i)?;
        match c {
            b'{' | b'[' => {
                if nodes.len() >= MAX_VALUES {
                    // One past the limit: `scan` tells this from invalid text by the count.
                    nodes.push(Node::default());
                    return None;
                }
                let idx = nodes.len() as u32;
                nodes.push(Node {
                    start: start as u32,
                    end: 0,
                    next: 0,
                    key,
                });
                let object = c == b'{';
                i = skip_ws(b, i + 1);
                let close = if object { b'}' } else { b']' };
                if b.get(i) == Some(&close) {
                    i += 1;
                    let node = nodes.get_mut(idx as usize)?;
                    node.end = i as u32;
                    node.next = idx + 1;
                } else {
                    stack.push((idx, object));
                    if object {
                        (key, i) = member_key(b, i)?;
                    } else {
                        key = NO_KEY;
                    }
                    continue 'value;
                }
            }
            _ => {
                i = match c {
                    b'"' => string_end(b, i)?,
                    b'-' | b'0'..=b'9' => number_end(b, i)?,
                    b't' => literal_end(b, i, b"true")?,
                    b'f' => literal_end(b, i, b"false")?,
                    b'n' => literal_end(b, i, b"null")?,
                    _ => return None,
                };
                if nodes.len() >= MAX_VALUES {
                    // One past the limit: `scan` tells this from invalid text by the count.
                    nodes.push(Node::default());
                    return None;
                }
                let idx = nodes.len() as u32;
                nodes.push(Node {
                    start: start as u32,
                    end: i as u32,
                    next: idx + 1,
                    key,
                });
            }
        }
        // After a value: a separator, or the end of one or more containers.
        loop {
            i = skip_ws(b, i);
            let Some(&(top, object)) = stack.last() else {
                break 'value;
            };
            match (b.get(i), object) {
                (Some(b','), _) => {
                    i = skip_ws(b, i + 1);
                    if object {
                        (key, i) = member_key(b, i)?;
                    } else {
                        key = NO_KEY;
                    }
                    continue 'value;
                }
                (Some(b'}'), true) | (Some(b']'), false) => {
                    i += 1;
                    let next = nodes.len() as u32;
                    let node = nodes.get_mut(top as usize)?;
                    node.end = i as u32;
                    node.next = next;
                    stack.pop();
                }
                _ => return None,
            }
        }
    }
    (i == b.len()).then_some(())
}

#[cfg(test)]
const JSON_WS: [char; 4] = [' ', '\n', '\r', '\t'];

#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    // Compact JSON has none: one comparison.
    if b.get(i).is_some_and(|c| *c > b' ') {
        return i;
    }
    while b
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
    {
        i += 1;
    }
    i
}

/// `"key"`, whitespace, `:`, whitespace at `i`: the key (for [`Node::key`]) and where its value
/// starts.
#[inline(always)]
fn member_key(b: &[u8], i: usize) -> Option<(u32, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let (end, escaped) = scan_string(b, i)?;
    let colon = skip_ws(b, end);
    if b.get(colon) != Some(&b':') {
        return None;
    }
    let key = if escaped {
        i as u32 | ESCAPED
    } else {
        i as u32
    };
    Some((key, skip_ws(b, colon + 1)))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Bit 7 of each byte of the result is set for bytes of `x` that are `"`, `\` or below 0x20. Bits
/// above the lowest set one may be false positives (a borrow carries into them); the lowest set one
/// is always a true match.
fn special_bytes(x: u64) -> u64 {
    let quote = x ^ (ONES * u64::from(b'"'));
    let backslash = x ^ (ONES * u64::from(b'\\'));
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v;
    let control = x.wrapping_sub(ONES * 0x20) & !x;
    (zero_in(quote) | zero_in(backslash) | control) & HIGH
}

/// The end (just past the closing quote) of the string whose opening quote is at `i`; checks its
/// escapes and that it holds no control characters. `b` is valid UTF-8, so the string is too.
#[inline]
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    scan_string(b, i).map(|(end, _)| end)
}

/// [`string_end`], and whether the string has escapes.
#[inline(always)]
fn scan_string(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    i += 1;
    loop {
        // Jump over ordinary bytes, eight at a time.
        while let Some(chunk) = b.get(i..i + 8) {
            let word = u64::from_le_bytes(chunk.try_into().ok()?);
            let special = special_bytes(word);
            if special != 0 {
                i += (special.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        match *b.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                i += match *b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                    b'u' if b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => 6,
                    _ => return None,
                }
            }
            c if c < 0x20 => return None,
            _ => i += 1,
        }
    }
}

fn digits_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// Numbers at least this long are checked to fit a double, as those with an exponent are.
const LONG_NUMBER: usize = 300;

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` at `i`: its end. A number too large for a
/// double (`1e309`, 309 digits) is refused, as serde_json and the API server refuse it; only
/// numbers with an exponent or of at least [`LONG_NUMBER`] characters can be, and only they are
/// parsed.
fn number_end(b: &[u8], i: usize) -> Option<usize> {
    let (end, exponent) = number_syntax(b, i)?;
    if exponent || end - i >= LONG_NUMBER {
        let text = std::str::from_utf8(b.get(i..end)?).ok()?;
        if !text.parse::<f64>().ok()?.is_finite() {
            return None;
        }
    }
    Some(end)
}

/// The JSON number syntax at `i`: its end, and whether it has an exponent.
fn number_syntax(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits_end(b, i + 1),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let end = digits_end(b, i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if !matches!(b.get(i), Some(b'e' | b'E')) {
        return Some((i, false));
    }
    i += 1;
    if matches!(b.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let end = digits_end(b, i);
    (end > i).then_some((end, true))
}

fn literal_end(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (b.get(i..i + word.len())? == word).then_some(i + word.len())
}

#[cfg(test)]
mod tests;
