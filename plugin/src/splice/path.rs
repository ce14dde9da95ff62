//! Field paths inside an object, the changes made at them, and applying changes to a JSON value.

use std::fmt;

use serde_json::Value;

/// One step of a [`FieldPath`]: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

impl PathSegment {
    /// The segment as a mapping key (an index `3` is the key `"3"`).
    pub(crate) fn as_key(&self) -> String {
        match self {
            PathSegment::Key(k) => k.clone(),
            PathSegment::Index(i) => i.to_string(),
        }
    }

    /// The segment as a sequence index for a sequence of `len` items (`-` means "append").
    pub(crate) fn as_index(&self, len: usize) -> Option<usize> {
        match self {
            PathSegment::Index(i) => Some(*i),
            PathSegment::Key(k) if k == "-" => Some(len),
            PathSegment::Key(k) => {
                if !k.is_empty()
                    && k.bytes().all(|b| b.is_ascii_digit())
                    && (k == "0" || !k.starts_with('0'))
                {
                    k.parse().ok()
                } else {
                    None
                }
            }
        }
    }

    /// `Key("3")` and `Index(3)` name the same place.
    pub(crate) fn same(&self, other: &PathSegment) -> bool {
        self.as_key() == other.as_key()
    }
}

/// A path to a field inside one object, e.g. `spec.template.spec.containers[0].image`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<PathSegment>);

impl FieldPath {
    /// The whole object.
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// Parses a JSON pointer (RFC 6901, e.g. `/spec/template/metadata/annotations/a~1b`).
    /// Every segment becomes a key; digits address sequence items when the value there is a list.
    pub fn from_pointer(pointer: &str) -> Option<Self> {
        if pointer.is_empty() {
            return Some(Self::root());
        }
        let rest = pointer.strip_prefix('/')?;
        Some(FieldPath(
            rest.split('/')
                .map(|s| PathSegment::Key(s.replace("~1", "/").replace("~0", "~")))
                .collect(),
        ))
    }

    /// Builds a path from keys, e.g. `FieldPath::keys(["spec", "replicas"])`.
    pub fn keys<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        FieldPath(
            keys.into_iter()
                .map(|k| PathSegment::Key(k.into()))
                .collect(),
        )
    }

    /// This path with a key appended.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.0.push(PathSegment::Key(key.into()));
        self
    }

    /// This path with a sequence index appended.
    pub fn index(mut self, index: usize) -> Self {
        self.0.push(PathSegment::Index(index));
        self
    }

    pub fn segments(&self) -> &[PathSegment] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON pointer form (`/spec/replicas`).
    pub fn to_pointer(&self) -> String {
        self.0
            .iter()
            .map(|s| format!("/{}", s.as_key().replace('~', "~0").replace('/', "~1")))
            .collect()
    }

    pub(crate) fn join(&self, tail: &[PathSegment]) -> FieldPath {
        let mut v = self.0.clone();
        v.extend_from_slice(tail);
        FieldPath(v)
    }

    /// Same place, treating `Key("0")` and `Index(0)` alike.
    pub(crate) fn same(&self, other: &FieldPath) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| a.same(b))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the whole document");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSegment::Index(n) => write!(f, "[{n}]")?,
                PathSegment::Key(k) => {
                    let simple = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if simple {
                        if i > 0 {
                            f.write_str(".")?;
                        }
                        f.write_str(k)?;
                    } else {
                        write!(f, "[{}]", Value::String(k.clone()))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// One field-level change to an object.
///
/// A list of changes is applied in order, each to the result of the ones before it (so the
/// indices of later changes already account for earlier insertions and deletions).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Set the field to a value, creating missing parent maps. On a sequence, the index equal to
    /// the length appends.
    Set { path: FieldPath, value: Value },
    /// Insert a new sequence item before the given index (or append at the length).
    Insert { path: FieldPath, value: Value },
    /// Remove a map key or a sequence item (nothing happens when it does not exist).
    Delete { path: FieldPath },
}

impl Change {
    pub fn set(path: FieldPath, value: Value) -> Self {
        Change::Set { path, value }
    }

    pub fn insert(path: FieldPath, value: Value) -> Self {
        Change::Insert { path, value }
    }

    pub fn delete(path: FieldPath) -> Self {
        Change::Delete { path }
    }

    pub fn path(&self) -> &FieldPath {
        match self {
            Change::Set { path, .. } | Change::Insert { path, .. } | Change::Delete { path } => {
                path
            }
        }
    }

    pub(crate) fn with_path(&self, path: FieldPath) -> Change {
        match self {
            Change::Set { value, .. } => Change::Set {
                path,
                value: value.clone(),
            },
            Change::Insert { value, .. } => Change::Insert {
                path,
                value: value.clone(),
            },
            Change::Delete { .. } => Change::Delete { path },
        }
    }

    /// The same operation (and value) at a place, ignoring where.
    pub(crate) fn same_operation(&self, other: &Change) -> bool {
        match (self, other) {
            (Change::Set { value: a, .. }, Change::Set { value: b, .. })
            | (Change::Insert { value: a, .. }, Change::Insert { value: b, .. }) => a == b,
            (Change::Delete { .. }, Change::Delete { .. }) => true,
            _ => false,
        }
    }
}

/// What a change cannot do to a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JsonPathError {
    /// How many segments of the path exist.
    pub depth: usize,
    pub found: String,
}

pub(crate) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// The value at a path, if any.
pub(crate) fn get<'v>(root: &'v Value, path: &[PathSegment]) -> Option<&'v Value> {
    let mut cur = root;
    for seg in path {
        cur = match cur {
            Value::Object(m) => m.get(&seg.as_key())?,
            Value::Array(a) => a.get(seg.as_index(a.len())?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Applies one change to a JSON value with the same rules [`apply_changes`](super::apply_changes)
/// uses for the YAML text.
pub(crate) fn apply_json(root: &mut Value, change: &Change) -> Result<(), JsonPathError> {
    let path = change.path().segments();
    let Some((last, parents)) = path.split_last() else {
        return match change {
            Change::Set { value, .. } => {
                *root = value.clone();
                Ok(())
            }
            _ => Err(JsonPathError {
                depth: 0,
                found: "the whole document cannot be inserted or deleted".into(),
            }),
        };
    };
    let mut cur = root;
    for (depth, seg) in parents.iter().enumerate() {
        if cur.is_null() && matches!(change, Change::Set { .. }) {
            *cur = Value::Object(serde_json::Map::new());
        }
        cur = match cur {
            Value::Object(m) => {
                let key = seg.as_key();
                if !m.contains_key(&key) {
                    if matches!(change, Change::Delete { .. }) {
                        return Ok(());
                    }
                    m.insert(key.clone(), Value::Null);
                }
                m.get_mut(&key).ok_or_else(|| JsonPathError {
                    depth,
                    found: "missing".into(),
                })?
            }
            Value::Array(a) => {
                let len = a.len();
                match seg.as_index(len) {
                    Some(i) if i < len => &mut a[i],
                    _ if matches!(change, Change::Delete { .. }) => return Ok(()),
                    _ => {
                        return Err(JsonPathError {
                            depth,
                            found: format!(
                                "the list at {} has {len} items",
                                FieldPath(path[..depth].to_vec())
                            ),
                        });
                    }
                }
            }
            other => {
                if matches!(change, Change::Delete { .. }) {
                    return Ok(());
                }
                return Err(JsonPathError {
                    depth,
                    found: format!(
                        "the value at {} is {}",
                        FieldPath(path[..depth].to_vec()),
                        describe(other)
                    ),
                });
            }
        };
    }
    let depth = parents.len();
    if cur.is_null() && matches!(change, Change::Set { .. }) {
        *cur = match last.as_index(0) {
            Some(0) if matches!(last, PathSegment::Index(_)) => Value::Array(Vec::new()),
            _ => Value::Object(serde_json::Map::new()),
        };
    }
    match (cur, change) {
        (Value::Object(m), Change::Set { value, .. }) => {
            m.insert(last.as_key(), value.clone());
            Ok(())
        }
        (Value::Object(m), Change::Delete { .. }) => {
            m.remove(&last.as_key());
            Ok(())
        }
        (Value::Array(a), Change::Delete { .. }) => {
            if let Some(i) = last.as_index(a.len()).filter(|i| *i < a.len()) {
                a.remove(i);
            }
            Ok(())
        }
        (Value::Array(a), Change::Set { value, .. }) => {
            let len = a.len();
            match last.as_index(len) {
                Some(i) if i < len => {
                    a[i] = value.clone();
                    Ok(())
                }
                Some(i) if i == len => {
                    a.push(value.clone());
                    Ok(())
                }
                _ => Err(JsonPathError {
                    depth,
                    found: format!(
                        "the list at {} has {len} items",
                        FieldPath(path[..depth].to_vec())
                    ),
                }),
            }
        }
        (Value::Array(a), Change::Insert { value, .. }) => {
            let len = a.len();
            match last.as_index(len) {
                Some(i) if i <= len => {
                    a.insert(i, value.clone());
                    Ok(())
                }
                _ => Err(JsonPathError {
                    depth,
                    found: format!(
                        "the list at {} has {len} items",
                        FieldPath(path[..depth].to_vec())
                    ),
                }),
            }
        }
        (Value::Object(_), Change::Insert { .. }) => Err(JsonPathError {
            depth,
            found: format!(
                "the value at {} is a map, not a list",
                FieldPath(path[..depth].to_vec())
            ),
        }),
        (_, Change::Delete { .. }) => Ok(()),
        (other, _) => Err(JsonPathError {
            depth,
            found: format!(
                "the value at {} is {}",
                FieldPath(path[..depth].to_vec()),
                describe(other)
            ),
        }),
    }
}
