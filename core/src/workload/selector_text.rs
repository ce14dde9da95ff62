//! The text form of a label selector (`app=web,tier in (front,back),!canary`), as Kubernetes'
//! `labels.Parse` reads it: kubectl's `-l`, kustomize's `labelSelector` / `annotationSelector`
//! in patch targets (and so Flux's `spec.patches[].target`). One [`Selector`] model serves both
//! forms.

use std::fmt;

use super::{Requirement, Selector};

/// Why a selector text is not one Kubernetes would accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError {
    pub selector: String,
    pub reason: String,
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the label selector {:?} is not valid: {}",
            self.selector, self.reason
        )
    }
}

impl std::error::Error for SelectorError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,
    NotEquals,
    Equals,
    DoubleEquals,
    Greater,
    Less,
    In,
    NotIn,
    Open,
    Close,
    Comma,
}

fn is_special(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | '(' | ')' | '!' | '=' | '<' | '>')
}

fn lex(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        chars.next();
        let two = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, one, both| {
            if chars.peek() == Some(&'=') {
                chars.next();
                both
            } else {
                one
            }
        };
        let token = match c {
            ',' => Token::Comma,
            '(' => Token::Open,
            ')' => Token::Close,
            '!' => two(&mut chars, Token::Not, Token::NotEquals),
            '=' => two(&mut chars, Token::Equals, Token::DoubleEquals),
            '>' => Token::Greater,
            '<' => Token::Less,
            c => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    if is_special(n) {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(word),
                }
            }
        };
        tokens.push(token);
    }
    tokens
}

/// A label (or annotation) key as Kubernetes accepts it: `name` or `prefix/name`, a DNS subdomain
/// prefix and a name of at most 63 alphanumerics, `-`, `_`, `.` that starts and ends with an
/// alphanumeric.
pub fn valid_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    });
    prefix_ok && !name.is_empty() && valid_label_value(name)
}

/// A label value as Kubernetes accepts it: empty, or at most 63 alphanumerics, `-`, `_`, `.`,
/// starting and ending with an alphanumeric.
pub fn valid_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

impl Selector {
    /// Reads the text form. An empty text selects everything (as `labels.Parse("")` does).
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let fail = |reason: String| SelectorError {
            selector: text.to_string(),
            reason,
        };
        let tokens = lex(text);
        if tokens.is_empty() {
            return Ok(Selector {
                everything: true,
                ..Selector::default()
            });
        }
        let mut requirements = Vec::new();
        let mut at = 0;
        let next = |at: &mut usize| {
            let t = tokens.get(*at).cloned();
            *at += 1;
            t
        };
        loop {
            let requirement = match next(&mut at) {
                Some(Token::Not) => match next(&mut at) {
                    Some(Token::Ident(key)) => Requirement {
                        key,
                        operator: "DoesNotExist".into(),
                        values: Vec::new(),
                    },
                    _ => return Err(fail("`!` must be followed by a key".into())),
                },
                Some(Token::Ident(key)) => {
                    let end = matches!(tokens.get(at), None | Some(Token::Comma));
                    if end {
                        Requirement {
                            key,
                            operator: "Exists".into(),
                            values: Vec::new(),
                        }
                    } else {
                        let op = next(&mut at);
                        let single = |at: &mut usize| match tokens.get(*at) {
                            None | Some(Token::Comma) => Some(String::new()),
                            Some(Token::Ident(v)) => {
                                *at += 1;
                                Some(v.clone())
                            }
                            _ => None,
                        };
                        let (operator, values) = match op {
                            Some(Token::Equals | Token::DoubleEquals) => (
                                "In",
                                vec![single(&mut at).ok_or_else(|| {
                                    fail(format!("{key}: `=` must be followed by a value"))
                                })?],
                            ),
                            Some(Token::NotEquals) => (
                                "NotIn",
                                vec![single(&mut at).ok_or_else(|| {
                                    fail(format!("{key}: `!=` must be followed by a value"))
                                })?],
                            ),
                            Some(op @ (Token::Greater | Token::Less)) => {
                                let value = match next(&mut at) {
                                    Some(Token::Ident(v)) if v.parse::<i64>().is_ok() => v,
                                    _ => {
                                        return Err(fail(format!(
                                            "{key}: `>` and `<` take an integer"
                                        )));
                                    }
                                };
                                (if op == Token::Greater { "Gt" } else { "Lt" }, vec![value])
                            }
                            Some(op @ (Token::In | Token::NotIn)) => {
                                if next(&mut at) != Some(Token::Open) {
                                    return Err(fail(format!(
                                        "{key}: `in` and `notin` take a list in parentheses"
                                    )));
                                }
                                let mut values = Vec::new();
                                loop {
                                    match next(&mut at) {
                                        Some(Token::Close) if values.is_empty() => {
                                            return Err(fail(format!(
                                                "{key}: the list of values is empty"
                                            )));
                                        }
                                        Some(Token::Close) => {
                                            values.push(String::new());
                                            break;
                                        }
                                        Some(Token::Ident(v)) => {
                                            values.push(v);
                                            match next(&mut at) {
                                                Some(Token::Comma) => {}
                                                Some(Token::Close) => break,
                                                _ => {
                                                    return Err(fail(format!(
                                                        "{key}: the list of values is not closed"
                                                    )));
                                                }
                                            }
                                        }
                                        Some(Token::Comma) => values.push(String::new()),
                                        _ => {
                                            return Err(fail(format!(
                                                "{key}: the list of values is not closed"
                                            )));
                                        }
                                    }
                                }
                                (if op == Token::In { "In" } else { "NotIn" }, values)
                            }
                            _ => {
                                return Err(fail(format!(
                                    "{key} must be followed by an operator (=, ==, !=, in, notin, >, <) or a comma"
                                )));
                            }
                        };
                        Requirement {
                            key,
                            operator: operator.into(),
                            values,
                        }
                    }
                }
                _ => return Err(fail("a requirement must start with a key or `!key`".into())),
            };
            if !valid_label_key(&requirement.key) {
                return Err(fail(format!("{:?} is not a valid key", requirement.key)));
            }
            if requirement.operator != "Gt"
                && requirement.operator != "Lt"
                && let Some(v) = requirement.values.iter().find(|v| !valid_label_value(v))
            {
                return Err(fail(format!(
                    "{v:?} is not a valid value for {}",
                    requirement.key
                )));
            }
            requirements.push(requirement);
            match next(&mut at) {
                None => break,
                Some(Token::Comma) if at < tokens.len() => {}
                Some(Token::Comma) => {
                    return Err(fail("a comma must be followed by a requirement".into()));
                }
                Some(_) => return Err(fail("requirements are separated by commas".into())),
            }
        }
        Ok(Selector {
            match_expressions: requirements,
            ..Selector::default()
        })
    }
}
