//! Reading plain scalars (YAML 1.2 core schema) and writing scalars so that they read back as the
//! same value under both YAML 1.2 and the YAML 1.1 rules Kubernetes' own YAML reader follows.

use serde_json::{Number, Value};

/// How a scalar is written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

/// The value of a plain (unquoted) scalar under the YAML 1.2 core schema.
pub fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(v) = resolve_int(s) {
        return v;
    }
    if is_core_float(s)
        && let Ok(f) = s.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(s.to_string())
}

fn resolve_int(s: &str) -> Option<Value> {
    if let Some(oct) = s.strip_prefix("0o") {
        if !oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return u64::from_str_radix(oct, 8).ok().map(Value::from);
        }
        return None;
    }
    if let Some(hex) = s.strip_prefix("0x") {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return u64::from_str_radix(hex, 16).ok().map(Value::from);
        }
        return None;
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.starts_with('-') {
        if let Ok(i) = s.parse::<i64>() {
            return Some(Value::from(i));
        }
    } else if let Ok(u) = digits.parse::<u64>() {
        return Some(Value::from(u));
    }
    // Too large for 64 bits: a float, as other YAML readers do.
    s.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_core_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - f;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

/// Would a plain scalar with this text be read as something other than this string, by a YAML
/// 1.2 reader or by a YAML 1.1 reader (Kubernetes' go-yaml: `on`, `yes`, `0777`, `1_000`,
/// dates, sexagesimal numbers)?
fn ambiguous_plain(s: &str) -> bool {
    if !matches!(resolve_plain(s), Value::String(_)) {
        return true;
    }
    const YAML11_WORDS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF", "=", "<<",
    ];
    if YAML11_WORDS.contains(&s) {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(lower.as_str(), ".inf" | "+.inf" | "-.inf" | ".nan") {
        return true;
    }
    // What Go's YAML readers (go-yaml v2 for Kubernetes, v3 for kustomize) read as a number,
    // a date or a time. A version like `8.6.2` is none of these and stays plain.
    let first = s.as_bytes()[0];
    (first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.'))
        && (go_number(s) || date_like(s) || sexagesimal(s))
}

/// Whether go-yaml reads this plain scalar (its first character a digit, sign or dot) as a
/// number: it drops `_`, then tries Go's `ParseInt(s, 0, 64)` and `ParseFloat(s, 64)`.
fn go_number(s: &str) -> bool {
    let text: String = s.chars().filter(|&c| c != '_').collect::<String>();
    let lower = text.to_ascii_lowercase();
    let body = lower.strip_prefix(['+', '-']).unwrap_or(&lower);
    let digits = |d: &str, radix: u32| !d.is_empty() && d.chars().all(|c| c.is_digit(radix));
    let with_prefix =
        |prefix: &str, radix: u32| body.strip_prefix(prefix).is_some_and(|d| digits(d, radix));
    if digits(body, 10)
        || with_prefix("0x", 16)
        || with_prefix("0o", 8)
        || with_prefix("0b", 2)
        || matches!(body, "inf" | "infinity" | "nan")
    {
        return true;
    }
    // A mantissa of digits with at most one point, and at least one digit.
    let mantissa = |m: &str, radix: u32| {
        let mut parts = m.splitn(2, '.');
        let whole = parts.next().unwrap_or_default();
        let frac = parts.next().unwrap_or_default();
        (!whole.is_empty() || !frac.is_empty())
            && !frac.contains('.')
            && whole.chars().chain(frac.chars()).all(|c| c.is_digit(radix))
    };
    let exponent = |e: &str| digits(e.strip_prefix(['+', '-']).unwrap_or(e), 10);
    if let Some(hex) = body.strip_prefix("0x") {
        return hex
            .split_once('p')
            .is_some_and(|(m, e)| mantissa(m, 16) && exponent(e));
    }
    match body.split_once('e') {
        Some((m, e)) => mantissa(m, 10) && exponent(e),
        None => mantissa(body, 10),
    }
}

/// `2024-01-01…`: a YAML 1.1 timestamp.
fn date_like(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[5].is_ascii_digit()
}

/// `12:30`, `1:20:30.5`: a YAML 1.1 base-60 number.
fn sexagesimal(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    body.contains(':')
        && body.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || b":._".contains(&b))
}

fn is_special_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}' | '\u{85}')
}

/// Whether `s` must be quoted to be read back as the same string.
pub(crate) fn needs_quotes(s: &str, flow: bool) -> bool {
    if s.is_empty() || s.starts_with([' ', '\t']) || s.ends_with([' ', '\t']) {
        return true;
    }
    if s.chars().any(is_special_char) || ambiguous_plain(s) {
        return true;
    }
    let mut chars = s.chars();
    let first = chars.next().unwrap_or(' ');
    let second = chars.next();
    match first {
        ',' | '[' | ']' | '{' | '}' | '#' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%'
        | '@' | '`' => return true,
        '-' | '?' | ':' if second.is_none_or(|c| c == ' ' || (flow && ",[]{}".contains(c))) => {
            return true;
        }
        _ => {}
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return true;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return true;
    }
    flow && s.contains([',', '[', ']', '{', '}', ':'])
}

/// `"…"` with YAML escapes.
pub(crate) fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if is_special_char(c) => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `'…'`, or `None` when the string cannot be written single-quoted on one line.
pub(crate) fn single_quoted(s: &str) -> Option<String> {
    if s.chars().any(is_special_char) {
        return None;
    }
    Some(format!("'{}'", s.replace('\'', "''")))
}

/// The quote style a document prefers for strings that need quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quote {
    Double,
    Single,
}

/// A scalar value written on one line. `prefer` is the style the replaced scalar had.
pub(crate) fn inline_scalar(v: &Value, prefer: Style, quote: Quote, flow: bool) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => inline_string(s, prefer, quote, flow),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(m) if m.is_empty() => "{}".into(),
        // Callers emit non-empty collections themselves; JSON text is valid flow YAML.
        other => other.to_string(),
    }
}

pub(crate) fn inline_string(s: &str, prefer: Style, quote: Quote, flow: bool) -> String {
    match prefer {
        Style::SingleQuoted => single_quoted(s).unwrap_or_else(|| double_quoted(s)),
        Style::DoubleQuoted => double_quoted(s),
        _ if !needs_quotes(s, flow) => s.to_string(),
        _ => match quote {
            Quote::Single => single_quoted(s).unwrap_or_else(|| double_quoted(s)),
            Quote::Double => double_quoted(s),
        },
    }
}

/// A mapping key written inline.
pub(crate) fn key(s: &str, quote: Quote, flow: bool) -> String {
    inline_string(s, Style::Plain, quote, flow)
}

/// A multi-line string as a literal block scalar: the header (`|`, `|-` or `|+`) and the content
/// lines, indented by `indent` spaces. `None` when the string cannot be written that way.
pub(crate) fn literal_block(s: &str, indent: usize) -> Option<(String, Vec<String>)> {
    if s.chars()
        .any(|c| c != '\n' && c != '\t' && is_special_char(c))
    {
        return None;
    }
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    if body.is_empty() || body.starts_with([' ', '\t']) {
        return None;
    }
    let header = match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    };
    let pad = " ".repeat(indent);
    let mut lines: Vec<String> = body
        .split('\n')
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect();
    // A last content line of only spaces would be taken for indentation.
    if lines.last().is_some_and(|l| l.trim().is_empty()) {
        return None;
    }
    for _ in 1..trailing.max(1) {
        lines.push(String::new());
    }
    Some((header.to_string(), lines))
}

/// Re-wraps a one-paragraph folded scalar after its value changed from the text of `old_lines`
/// to `new`, keeping the leading and trailing lines that did not change. Returns `None` when the
/// new text cannot be written as one folded paragraph.
pub(crate) fn refold(old_lines: &[&str], new: &str) -> Option<Vec<String>> {
    if new.is_empty()
        || new.contains('\n')
        || new.starts_with([' ', '\t'])
        || new.ends_with([' ', '\t'])
        || new.chars().any(is_special_char)
    {
        return None;
    }
    let simple =
        |l: &&str| !l.is_empty() && !l.starts_with([' ', '\t']) && !l.ends_with([' ', '\t']);
    if !old_lines.iter().all(simple) {
        return None;
    }
    let width = old_lines
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .max(40);
    let n = old_lines.len();
    // Leading lines kept as they were.
    let mut p = 0;
    let mut prefix_len = 0;
    while p < n {
        let l = old_lines[p];
        let after = prefix_len + l.len();
        if new.len() > after && new[prefix_len..].starts_with(l) && new.as_bytes()[after] == b' ' {
            prefix_len = after + 1;
            p += 1;
        } else if new.len() == after && new[prefix_len..] == *l {
            prefix_len = after;
            p += 1;
        } else {
            break;
        }
    }
    // Trailing lines kept as they were.
    let mut q = 0;
    let mut suffix_start = new.len();
    while q < n - p {
        let l = old_lines[n - 1 - q];
        if suffix_start < l.len() + 1 {
            break;
        }
        let start = suffix_start - l.len();
        if start <= prefix_len || !new.is_char_boundary(start) || &new[start..suffix_start] != l {
            break;
        }
        if new.as_bytes()[start - 1] != b' ' {
            break;
        }
        suffix_start = start - 1;
        q += 1;
    }
    let middle_end = suffix_start.max(prefix_len);
    let middle = &new[prefix_len.min(middle_end)..middle_end];
    let mut lines: Vec<String> = old_lines[..p].iter().map(|s| s.to_string()).collect();
    // Keep the changed part on as many lines as it had if that does not make lines much longer.
    let had = (n - q - p).max(1);
    let middle_lines = (0..=width / 2)
        .step_by(4)
        .map(|extra| wrap(middle, width + extra))
        .find(|l| l.len() <= had)
        .unwrap_or_else(|| wrap(middle, width));
    lines.extend(middle_lines);
    lines.extend(old_lines[n - q..].iter().map(|s| s.to_string()));
    // The result must fold back to exactly the new text.
    if lines.join(" ") == new && lines.iter().all(|l| simple(&l.as_str())) {
        return Some(lines);
    }
    let lines = wrap(new, width);
    (lines.join(" ") == new && lines.iter().all(|l| simple(&l.as_str()))).then_some(lines)
}

/// Greedy word wrap at single spaces (a folded line break reads back as one space).
fn wrap(text: &str, width: usize) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut lines = Vec::new();
    let mut current = String::new();
    // Split at single spaces only; runs of spaces stay inside a word.
    let bytes = text.as_bytes();
    let mut words = Vec::new();
    let mut start = 0;
    for i in 0..bytes.len() {
        if bytes[i] == b' '
            && i > 0
            && bytes[i - 1] != b' '
            && i + 1 < bytes.len()
            && bytes[i + 1] != b' '
        {
            words.push(&text[start..i]);
            start = i + 1;
        }
    }
    words.push(&text[start..]);
    for w in words {
        if current.is_empty() {
            current.push_str(w);
        } else if current.chars().count() + 1 + w.chars().count() <= width {
            current.push(' ');
            current.push_str(w);
        } else {
            lines.push(std::mem::take(&mut current));
            current.push_str(w);
        }
    }
    lines.push(current);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_resolve_like_yaml_1_2_core() {
        assert_eq!(resolve_plain("3"), Value::from(3u64));
        assert_eq!(resolve_plain("-3"), Value::from(-3i64));
        assert_eq!(resolve_plain("1.10"), serde_json::json!(1.1));
        assert_eq!(resolve_plain("0x1f"), Value::from(31u64));
        assert_eq!(resolve_plain("~"), Value::Null);
        assert_eq!(resolve_plain("on"), Value::from("on"));
        assert_eq!(resolve_plain("1.2.3"), Value::from("1.2.3"));
        assert_eq!(resolve_plain("v1"), Value::from("v1"));
    }

    #[test]
    fn strings_that_would_change_meaning_are_quoted() {
        for s in [
            "on",
            "yes",
            "No",
            "1.10",
            "0777",
            "1_000",
            "2024-01-01",
            "12:30",
            "true",
            "null",
            "",
            " x",
            "a: b",
            "a #b",
            "- x",
            "-",
            "*x",
            "&a",
            "!t",
            "{a}",
            "[a]",
            "'",
            "\"",
            "#c",
            "---",
            "@x",
            ".inf",
            "<<",
            "1e3",
            "+1",
            "08",
            "1.",
            ".5",
            "-1.5e-3",
            "0b101",
            "0o17",
            "0x1p-2",
            "-inf",
            "1_0.5",
            "2024-1-1",
        ] {
            assert!(needs_quotes(s, false), "{s:?} should be quoted");
        }
        for s in [
            "web",
            "nginx:1.27",
            "v1.10",
            "10Gi",
            "100m",
            "a-b",
            "https://x/y",
            "a#b",
            "-x",
            "deadbeef",
            "a b",
            // Versions and tags: strings to every Go YAML reader, so written as they were.
            "8.6.3",
            "1.2.3",
            "0.0.1-rc.1",
            "1.27.3-alpine",
        ] {
            assert!(!needs_quotes(s, false), "{s:?} should stay plain");
        }
        assert!(needs_quotes("a,b", true));
        assert!(!needs_quotes("a,b", false));
    }

    #[test]
    fn double_quotes_escape_control_characters() {
        assert_eq!(double_quoted("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\x01\"");
    }

    #[test]
    fn literal_blocks_choose_chomping() {
        let (h, l) = literal_block("a\nb\n", 2).unwrap_or_default();
        assert_eq!(
            (h.as_str(), l),
            ("|", vec!["  a".to_string(), "  b".into()])
        );
        let (h, _) = literal_block("a\nb", 2).unwrap_or_default();
        assert_eq!(h, "|-");
        let (h, l) = literal_block("a\n\n", 2).unwrap_or_default();
        assert_eq!((h.as_str(), l.len()), ("|+", 2));
        assert!(literal_block(" lead\nx", 2).is_none());
    }

    #[test]
    fn refold_keeps_unchanged_lines() {
        let old = [
            "The quick brown fox",
            "jumps over the lazy",
            "dog and runs away.",
        ];
        let new = "The quick brown fox jumps over the sleepy dog and runs away.";
        let lines = refold(&old, new).unwrap_or_default();
        assert_eq!(lines[0], old[0]);
        assert_eq!(lines.last().map(String::as_str), Some(old[2]));
        assert_eq!(lines.join(" "), new);
    }
}
