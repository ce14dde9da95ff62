//! Flux `ExternalArtifact`s made by an `ArtifactGenerator` (source-watcher): which Git directory a
//! Kustomization's path inside the artifact is, through the generator's copy rules, and whether
//! the file found there is really the one the artifact holds.
//!
//! The copy semantics are source-watcher's: `@alias/dir/**` copies what is below `dir` to below
//! the destination; any other glob keeps each match's whole path below the destination (a matched
//! directory is copied with everything in it); a path without glob characters copies that file
//! (to `dest/<its name>` when `to` ends with `/`, else to `dest`) or that directory (to
//! `dest/<its name>/`). Rules run in order, a later one overwriting what an earlier one wrote;
//! `strategy: Merge` merges YAML files instead. `exclude` patterns drop files and directories.
//!
//! Only what maps back to one Git file is answered. Several sources in one directory, a rename, a
//! merge, a source that is not a Git repository: the reason is given, naming the rule, never a
//! guess.

use serde_json::Value;

use crate::git::{EntryKind, Snapshot, join_path, normalize_path};

/// One of the generator's `spec.sources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    pub alias: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// How a rule selects what it copies.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// `dir/**`: everything below `dir`, below the destination.
    Contents(String),
    /// Any other glob: each match keeps its whole path. `root` is the part before the first
    /// segment with glob characters.
    Glob { root: String },
    /// No glob characters: one file or one directory.
    Path(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Strategy {
    Overwrite,
    Merge,
    /// `Extract` (tarballs) and anything newer: not followed.
    Other(String),
}

/// One entry of an artifact's `copy` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// 1-based, as a person counts the entries.
    number: usize,
    from: String,
    to: String,
    alias: String,
    pattern: String,
    /// Normalized destination in the artifact (`""` is its root).
    dest: String,
    /// `to` names a directory (ends with `/`, or is the root).
    dest_dir: bool,
    exclude: Vec<String>,
    strategy: Strategy,
    shape: Shape,
}

impl Rule {
    /// `copy rule 2 ("@repo/deploy/**" → "@artifact/")`, for messages.
    fn describe(&self) -> String {
        format!(
            "copy rule {} (\"{}\" → \"{}\")",
            self.number, self.from, self.to
        )
    }

    /// Where in the artifact everything this rule writes lies (a directory or one file).
    fn region(&self) -> String {
        match &self.shape {
            Shape::Contents(_) => self.dest.clone(),
            Shape::Glob { root } => join(&self.dest, root),
            Shape::Path(p) if self.dest_dir => join(&self.dest, base(p)),
            // A directory lands at `dest/<name>`, a file at `dest`: both below `dest`.
            Shape::Path(_) => self.dest.clone(),
        }
    }

    /// The rule as a move of one tree: Git path `src/x` becomes artifact path `dest/x`.
    /// `is_dir` tells whether a plain path is a directory.
    fn translation(&self, is_dir: &dyn Fn(&str, &str) -> bool) -> (String, String) {
        match &self.shape {
            Shape::Contents(dir) => (dir.clone(), self.dest.clone()),
            Shape::Glob { .. } => (String::new(), self.dest.clone()),
            Shape::Path(p) if self.dest_dir || is_dir(&self.alias, p) => {
                (p.clone(), join(&self.dest, base(p)))
            }
            Shape::Path(p) => (p.clone(), self.dest.clone()),
        }
    }
}

/// The generator's sources, with their namespaces filled in (`namespace` is the generator's).
pub fn sources(generator: &Value, namespace: &str) -> Vec<SourceRef> {
    let s = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    generator
        .pointer("/spec/sources")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|v| {
                    Some(SourceRef {
                        alias: s(v, "alias")?,
                        kind: s(v, "kind")?,
                        namespace: s(v, "namespace").unwrap_or_else(|| namespace.to_string()),
                        name: s(v, "name")?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The copy rules of one entry of the generator's `spec.artifacts`.
pub fn rules(artifact: &Value) -> Result<Vec<Rule>, String> {
    let list = artifact
        .get("copy")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or("it has no copy rules")?;
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let number = i + 1;
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
        let (from, to) = (text("from"), text("to"));
        let bad = |why: &str| format!("copy rule {number} (\"{from}\" → \"{to}\") {why}");
        let (alias, pattern) = from
            .strip_prefix('@')
            .and_then(|f| f.split_once('/'))
            .ok_or_else(|| bad("does not copy from @alias/path"))?;
        let dest = to
            .strip_prefix("@artifact/")
            .ok_or_else(|| bad("does not copy to @artifact/path"))?;
        let dest = normalize_path(dest).ok_or_else(|| bad("copies out of the artifact"))?;
        let shape = if has_glob(pattern) {
            match pattern.strip_suffix("/**") {
                Some(dir) if !has_glob(dir) => Shape::Contents(
                    normalize_path(dir).ok_or_else(|| bad("climbs out of its source"))?,
                ),
                _ => Shape::Glob {
                    root: selection_root(pattern),
                },
            }
        } else {
            Shape::Path(normalize_path(pattern).ok_or_else(|| bad("climbs out of its source"))?)
        };
        let strategy = match text("strategy") {
            "" | "Overwrite" => Strategy::Overwrite,
            "Merge" => Strategy::Merge,
            other => Strategy::Other(other.to_string()),
        };
        out.push(Rule {
            number,
            from: from.to_string(),
            to: to.to_string(),
            alias: alias.to_string(),
            pattern: pattern.to_string(),
            dest_dir: to.ends_with('/') || dest.is_empty(),
            dest,
            exclude: v
                .get("exclude")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            strategy,
            shape,
        });
    }
    Ok(out)
}

/// A plain path is taken for a directory unless its name has an extension (`values.yaml`), until
/// the Git tree says (see [`Copies::verify`]).
pub fn guess_dir(_alias: &str, path: &str) -> bool {
    !base(path).trim_start_matches('.').contains('.')
}

/// How a Kustomization's path in an artifact maps to one Git directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copies {
    /// The source alias the path comes from (a `GitRepository`).
    pub alias: String,
    /// The Kustomization's path in the artifact (normalized).
    pub path: String,
    /// The same directory in Git.
    pub git_path: String,
    /// The rules that fill the path.
    used: Vec<usize>,
    rules: Vec<Rule>,
    sources: Vec<SourceRef>,
    /// Git `src/x` is artifact `dest/x` for every rule used.
    src: String,
    dest: String,
}

/// Maps `path` (in the artifact) to a Git directory through `rules`: every rule that writes into
/// `path` must copy from the same Git source and move its files the same way.
pub fn map(
    rules: &[Rule],
    sources: &[SourceRef],
    path: &str,
    is_dir: &dyn Fn(&str, &str) -> bool,
) -> Result<Copies, String> {
    let used: Vec<&Rule> = rules
        .iter()
        .filter(|r| {
            let region = r.region();
            under(&region, path) || under(path, &region)
        })
        .collect();
    let Some(first) = used.first() else {
        return Err(format!(
            "none of its copy rules puts anything at {}",
            dot(path)
        ));
    };
    for r in &used {
        if let Strategy::Other(s) = &r.strategy {
            return Err(format!(
                "{} uses strategy {s}, which is not followed back to Git",
                r.describe()
            ));
        }
        match sources.iter().find(|s| s.alias == r.alias) {
            None => {
                return Err(format!(
                    "{} copies from @{}, which is none of its sources",
                    r.describe(),
                    r.alias
                ));
            }
            Some(s) if s.kind != "GitRepository" => {
                return Err(format!(
                    "{} copies from @{}, the {} {}/{}, which is not a Git repository",
                    r.describe(),
                    r.alias,
                    s.kind,
                    s.namespace,
                    s.name
                ));
            }
            Some(_) => {}
        }
    }
    let (src, dest) = reduce(first.translation(is_dir));
    for r in &used[1..] {
        if r.alias != first.alias {
            return Err(format!(
                "{} and {} both put files into {}, from @{} and from @{}: what Flux applied there is merged from two sources, so no one Git directory holds it",
                first.describe(),
                r.describe(),
                dot(path),
                first.alias,
                r.alias
            ));
        }
        if reduce(r.translation(is_dir)) != (src.clone(), dest.clone()) {
            let (s, d) = r.translation(is_dir);
            return Err(format!(
                "{} puts {} of @{} at {} of the artifact, a different move than {}, so {} is no copy of one Git directory",
                r.describe(),
                dot(&s),
                r.alias,
                dot(&d),
                first.describe(),
                dot(path)
            ));
        }
        if r.strategy == Strategy::Merge {
            return Err(format!(
                "{} merges YAML files into what other rules copied to {}, so a file there may be put together from several Git files",
                r.describe(),
                dot(path)
            ));
        }
    }
    let Some(rest) = strip(path, &dest) else {
        let (s, d) = first.translation(is_dir);
        return Err(format!(
            "{} puts {} of @{} at {} of the artifact, a different path, so the artifact's {} is no Git directory",
            first.describe(),
            dot(&s),
            first.alias,
            dot(&d),
            dot(path)
        ));
    };
    Ok(Copies {
        alias: first.alias.clone(),
        path: path.to_string(),
        git_path: join(&src, rest),
        used: used.iter().map(|r| r.number).collect(),
        rules: rules.to_vec(),
        sources: sources.to_vec(),
        src,
        dest,
    })
}

/// What a Git tree holds, as far as the checks need (a [`Snapshot`], or a list in tests).
pub trait Files {
    fn kind(&self, path: &str) -> Result<Option<EntryKind>, String>;
}

impl Files for Snapshot<'_> {
    fn kind(&self, path: &str) -> Result<Option<EntryKind>, String> {
        Snapshot::kind(self, path).map_err(|e| crate::error::chain(&e))
    }
}

/// Whether one rule writes one artifact path.
enum Write {
    No,
    /// From this Git path of the rule's source.
    Yes(String),
    /// Perhaps: why it cannot be told.
    Maybe(String),
}

impl Copies {
    /// The rules used, for the trace: `copy rule 1 ("@repo/deploy/**" → "@artifact/")`.
    pub fn rules_used(&self) -> String {
        self.rules
            .iter()
            .filter(|r| self.used.contains(&r.number))
            .map(Rule::describe)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks, in the Git tree of the applied commit, that the artifact's `file` (a Git path found
    /// by building [`Copies::git_path`]) is that very Git file: the path maps as planned, and the
    /// last rule writing the file's place in the artifact copies it from there. The kustomization
    /// file at the build's root (which decides what the build reads) is checked the same way.
    pub fn verify(&self, files: &dyn Files, file: &str) -> Result<(), String> {
        let real = map(&self.rules, &self.sources, &self.path, &|alias, p| {
            if alias == self.alias {
                matches!(files.kind(p), Ok(Some(EntryKind::Dir)))
            } else {
                guess_dir(alias, p)
            }
        })?;
        if real.git_path != self.git_path {
            return Err(format!(
                "{} of the artifact is {} in Git at this commit, not {}: {} copies a path without a trailing /, and whether it is a file or a directory decides where it lands",
                dot(&self.path),
                dot(&real.git_path),
                dot(&self.git_path),
                self.rules_used()
            ));
        }
        for name in crate::manifest::kustomize::KUSTOMIZATION_FILES {
            let k = join(&self.git_path, name);
            if matches!(files.kind(&k), Ok(Some(EntryKind::File))) {
                self.check(files, &k)?;
            }
        }
        self.check(files, file)
    }

    fn check(&self, files: &dyn Files, file: &str) -> Result<(), String> {
        let Some(rest) = strip(file, &self.src) else {
            return Err(format!(
                "{file} is outside {}, where the artifact's {} comes from in Git",
                dot(&self.src),
                dot(&self.dest)
            ));
        };
        let place = join(&self.dest, rest);
        let mut last: Option<(&Rule, String)> = None;
        let mut doubt: Option<String> = None;
        for r in &self.rules {
            match self.writes(r, &place, files) {
                Write::No => {}
                Write::Yes(src) => {
                    if r.strategy == Strategy::Merge && (last.is_some() || doubt.is_some()) {
                        return Err(format!(
                            "{} of the artifact is merged from several files ({} merges {src} into it), so no one Git file is what Flux applied",
                            dot(&place),
                            r.describe()
                        ));
                    }
                    last = Some((r, src));
                    doubt = None;
                }
                Write::Maybe(why) => doubt = Some(why),
            }
        }
        if let Some(why) = doubt {
            return Err(format!("{} of the artifact: {why}", dot(&place)));
        }
        match last {
            None => Err(format!(
                "{file} is not in the artifact: no copy rule takes it to {}, or an exclude pattern drops it",
                dot(&place)
            )),
            Some((r, src)) if src != file => Err(format!(
                "{} of the artifact is {src} in Git ({}), not {file}",
                dot(&place),
                r.describe()
            )),
            Some(_) => Ok(()),
        }
    }

    /// Whether `r` writes the artifact path `place`, and from which Git path.
    fn writes(&self, r: &Rule, place: &str, files: &dyn Files) -> Write {
        if !under(place, &r.region()) {
            return Write::No;
        }
        if r.alias != self.alias || matches!(r.strategy, Strategy::Other(_)) {
            return Write::Maybe(format!(
                "{} may write it too, from @{}",
                r.describe(),
                r.alias
            ));
        }
        let is_file = |p: &str| files.kind(p).map(|k| k == Some(EntryKind::File));
        let src = match &r.shape {
            Shape::Contents(dir) => match strip(place, &r.dest) {
                Some(rest) if !rest.is_empty() => join(dir, rest),
                _ => return Write::No,
            },
            Shape::Glob { .. } => {
                let Some(m) = strip(place, &r.dest).filter(|m| !m.is_empty()) else {
                    return Write::No;
                };
                // source-watcher reads `**` within a pattern as `*` (Go's fs.Glob); a version
                // reading it as any depth would copy more: both must agree.
                let (Some(shallow), Some(deep)) = (
                    prefix_matches(&r.pattern, m, false),
                    prefix_matches(&r.pattern, m, true),
                ) else {
                    return Write::Maybe(format!(
                        "{} has a pattern this plugin cannot read",
                        r.describe()
                    ));
                };
                if shallow != deep {
                    return Write::Maybe(format!(
                        "whether {} copies {m} depends on how the source-watcher version reads ** inside a pattern",
                        r.describe()
                    ));
                }
                if !shallow {
                    return Write::No;
                }
                m.to_string()
            }
            Shape::Path(p) => match files.kind(p) {
                Ok(Some(EntryKind::File)) => {
                    let target = if r.dest_dir {
                        join(&r.dest, base(p))
                    } else {
                        let earlier_dir = self
                            .rules
                            .iter()
                            .take_while(|e| e.number < r.number)
                            .any(|e| {
                                let region = e.region();
                                region != r.dest
                                    && (under(&region, &r.dest) || under(&r.dest, &region))
                            });
                        if earlier_dir {
                            return Write::Maybe(format!(
                                "{} copies the file {p} to {} or, when an earlier rule made that a directory, into it",
                                r.describe(),
                                dot(&r.dest)
                            ));
                        }
                        r.dest.clone()
                    };
                    if target != place {
                        return Write::No;
                    }
                    p.clone()
                }
                Ok(Some(EntryKind::Dir)) => {
                    let root = join(&r.dest, base(p));
                    match strip(place, &root) {
                        Some(rest) if !rest.is_empty() => join(p, rest),
                        _ => return Write::No,
                    }
                }
                Ok(_) => return Write::No,
                Err(e) => return Write::Maybe(format!("reading {p} in Git failed: {e}")),
            },
        };
        match is_file(&src) {
            Ok(true) => {}
            Ok(false) => return Write::No,
            Err(e) => return Write::Maybe(format!("reading {src} in Git failed: {e}")),
        }
        if let Some(pattern) = excluded(&r.exclude, &src) {
            return Write::Maybe(format!(
                "{} may leave out {src} (exclude pattern {pattern:?})",
                r.describe()
            ));
        }
        Write::Yes(src)
    }
}

// ---- paths ----

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', ']'])
}

/// The segments of a pattern before the first one with glob characters.
fn selection_root(pattern: &str) -> String {
    let parts: Vec<&str> = pattern
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .take_while(|p| !has_glob(p))
        .collect();
    parts.join("/")
}

fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn join(dir: &str, rest: &str) -> String {
    join_path(dir, rest).unwrap_or_else(|| format!("{dir}/{rest}"))
}

/// `./path` for messages (`./` for the root).
fn dot(path: &str) -> String {
    format!("./{path}")
}

/// Whether `path` is `dir` or below it (everything is below the root `""`).
fn under(path: &str, dir: &str) -> bool {
    strip(path, dir).is_some()
}

/// `path` relative to `dir` (`""` when they are the same), if it is below it.
fn strip<'p>(path: &'p str, dir: &str) -> Option<&'p str> {
    if dir.is_empty() {
        return Some(path);
    }
    if path == dir {
        return Some("");
    }
    path.strip_prefix(dir)?.strip_prefix('/')
}

/// A move `src/x → dest/x` with the common trailing segments taken off, so that
/// `apps/base → base` and `apps/prod → prod` are the same move, `apps → ./`.
fn reduce((src, dest): (String, String)) -> (String, String) {
    let mut s: Vec<&str> = src.split('/').filter(|p| !p.is_empty()).collect();
    let mut d: Vec<&str> = dest.split('/').filter(|p| !p.is_empty()).collect();
    while let (Some(a), Some(b)) = (s.last(), d.last()) {
        if a != b {
            break;
        }
        s.pop();
        d.pop();
    }
    (s.join("/"), d.join("/"))
}

/// A pattern drops `src` when it matches it, any directory above it, or any trailing part of
/// those (source-watcher versions match against the path in the source, the path below what the
/// rule selects, and the name): read the widest way, so a file is never taken for copied when a
/// version leaves it out. Returns the pattern.
fn excluded<'a>(patterns: &'a [String], src: &str) -> Option<&'a str> {
    if patterns.is_empty() {
        return None;
    }
    let segments: Vec<&str> = src.split('/').collect();
    for end in 1..=segments.len() {
        for start in 0..end {
            let part = segments[start..end].join("/");
            for p in patterns {
                if glob(p, &part, true) != Some(false) {
                    return Some(p);
                }
            }
        }
    }
    None
}

/// Whether the pattern matches `m` or a directory above it (a matched directory is copied whole).
/// Without `deep`, the match has as many segments as the pattern (Go's fs.Glob).
fn prefix_matches(pattern: &str, m: &str, deep: bool) -> Option<bool> {
    let segments: Vec<&str> = m.split('/').collect();
    for end in 1..=segments.len() {
        if glob(pattern, &segments[..end].join("/"), deep)? {
            return Some(true);
        }
    }
    Some(false)
}

// ---- globs ----

/// The most alternatives `{a,b}` may expand to.
const MAX_ALTERNATIVES: usize = 256;

/// Whether `path` matches the glob `pattern`: `*` and `?` within one segment, `[…]` classes (`!`
/// or `^` negates), `\` escapes. With `deep` (doublestar, as exclude patterns are read), a `**`
/// segment matches any number of segments and `{a,b}` are alternatives; without (Go's
/// path.Match), `**` is `*` and braces are literal. `None` when the pattern cannot be read.
pub(crate) fn glob(pattern: &str, path: &str, deep: bool) -> Option<bool> {
    let path: Vec<Vec<char>> = path.split('/').map(|s| s.chars().collect()).collect();
    let alternatives = if deep {
        expand(pattern)?
    } else {
        vec![pattern.to_string()]
    };
    for alt in alternatives {
        let segments: Vec<Vec<char>> = alt.split('/').map(|s| s.chars().collect()).collect();
        if segments_match(&segments, &path, deep)? {
            return Some(true);
        }
    }
    Some(false)
}

fn segments_match(pattern: &[Vec<char>], path: &[Vec<char>], deep: bool) -> Option<bool> {
    let Some((first, rest)) = pattern.split_first() else {
        return Some(path.is_empty());
    };
    if deep && first.as_slice() == ['*', '*'] {
        for skip in 0..=path.len() {
            if segments_match(rest, &path[skip..], deep)? {
                return Some(true);
            }
        }
        return Some(false);
    }
    match path.split_first() {
        Some((segment, path_rest)) if name_match(first, segment)? => {
            segments_match(rest, path_rest, deep)
        }
        _ => Some(false),
    }
}

/// One segment against one pattern segment.
fn name_match(p: &[char], s: &[char]) -> Option<bool> {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if let Some(&c) = p.get(pi) {
            match c {
                '*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                '[' => {
                    let (hit, next) = class(p, pi, s[si])?;
                    if hit {
                        pi = next;
                        si += 1;
                        continue;
                    }
                }
                '\\' => {
                    let &lit = p.get(pi + 1)?;
                    if lit == s[si] {
                        pi += 2;
                        si += 1;
                        continue;
                    }
                }
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return Some(false),
        }
    }
    while p.get(pi) == Some(&'*') {
        pi += 1;
    }
    Some(pi == p.len())
}

/// The class at `p[start] == '['` against `c`: whether it matches, and where the pattern goes on.
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let &ch = p.get(i)?;
        if ch == ']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            ch
        };
        i += 1;
        let hi = if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&n| n != ']') {
            i += 1;
            let h = if p.get(i) == Some(&'\\') {
                i += 1;
                *p.get(i)?
            } else {
                *p.get(i)?
            };
            i += 1;
            h
        } else {
            lo
        };
        if lo <= c && c <= hi {
            hit = true;
        }
    }
}

/// `{a,b}` alternatives spelled out; `None` past [`MAX_ALTERNATIVES`].
fn expand(pattern: &str) -> Option<Vec<String>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut open = None;
    let mut depth = 0usize;
    let mut commas = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '{' => {
                if depth == 0 {
                    open = Some(i);
                    commas.clear();
                }
                depth += 1;
            }
            ',' if depth == 1 => commas.push(i),
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0
                    && let Some(o) = open
                {
                    let head: String = chars[..o].iter().collect();
                    let tail: String = chars[i + 1..].iter().collect();
                    let mut bounds = vec![o];
                    bounds.extend(&commas);
                    bounds.push(i);
                    let mut out = Vec::new();
                    for w in bounds.windows(2) {
                        let alt: String = chars[w[0] + 1..w[1]].iter().collect();
                        for rest in expand(&format!("{head}{alt}{tail}"))? {
                            out.push(rest);
                            if out.len() > MAX_ALTERNATIVES {
                                return None;
                            }
                        }
                    }
                    return Some(out);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Some(vec![pattern.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A Git tree as a list of files.
    struct Tree(Vec<&'static str>);

    impl Files for Tree {
        fn kind(&self, path: &str) -> Result<Option<EntryKind>, String> {
            if self.0.contains(&path) {
                return Ok(Some(EntryKind::File));
            }
            let dir = self
                .0
                .iter()
                .any(|f| path.is_empty() || f.starts_with(&format!("{path}/")));
            Ok(dir.then_some(EntryKind::Dir))
        }
    }

    fn git(alias: &str) -> SourceRef {
        SourceRef {
            alias: alias.into(),
            kind: "GitRepository".into(),
            namespace: "flux-system".into(),
            name: alias.into(),
        }
    }

    fn copies(copy: Value, path: &str, sources: &[SourceRef]) -> Result<Copies, String> {
        let rules = rules(&json!({"name": "app", "copy": copy}))?;
        map(&rules, sources, path, &guess_dir)
    }

    #[test]
    fn globs() {
        assert_eq!(glob("*.md", "README.md", false), Some(true));
        assert_eq!(glob("*.md", "docs/README.md", false), Some(false));
        assert_eq!(glob("**/*.md", "docs/a/README.md", true), Some(true));
        assert_eq!(glob("**/*.md", "README.md", true), Some(true));
        assert_eq!(
            glob("deploy/**/*.yaml", "deploy/a/b.yaml", false),
            Some(true)
        );
        assert_eq!(
            glob("deploy/**/*.yaml", "deploy/a/b/c.yaml", false),
            Some(false)
        );
        assert_eq!(
            glob("deploy/**/*.yaml", "deploy/a/b/c.yaml", true),
            Some(true)
        );
        assert_eq!(glob("[a-c]?.y*ml", "b1.yaml", false), Some(true));
        assert_eq!(glob("[!a-c]?.yaml", "b1.yaml", false), Some(false));
        assert_eq!(glob("*.{yaml,yml}", "x.yml", true), Some(true));
        assert_eq!(glob("*.{yaml,yml}", "x.yml", false), Some(false));
        assert_eq!(glob("a\\*b", "a*b", false), Some(true));
        assert_eq!(glob("[abc", "a", false), None);
    }

    #[test]
    fn a_directory_copied_to_the_root_is_that_directory() {
        let c = copies(
            json!([{"from": "@repo/deploy/app/**", "to": "@artifact/"}]),
            "",
            &[git("repo")],
        )
        .unwrap();
        assert_eq!(
            (c.alias.as_str(), c.git_path.as_str()),
            ("repo", "deploy/app")
        );
        let tree = Tree(vec![
            "deploy/app/kustomization.yaml",
            "deploy/app/deployment.yaml",
            "deploy/other/x.yaml",
        ]);
        assert_eq!(c.verify(&tree, "deploy/app/deployment.yaml"), Ok(()));
        assert!(
            c.verify(&tree, "deploy/other/x.yaml")
                .unwrap_err()
                .starts_with("deploy/other/x.yaml is outside ./deploy/app")
        );
    }

    #[test]
    fn flux_example_base_and_overlay_move_the_same_way() {
        // The official Flux example: apps/base and apps/production, side by side in the artifact.
        let copy = json!([
            {"from": "@monorepo/apps/base/**", "to": "@artifact/base/"},
            {"from": "@monorepo/apps/production/**", "to": "@artifact/production/"}
        ]);
        let c = copies(copy.clone(), "production", &[git("monorepo")]).unwrap();
        assert_eq!(c.git_path, "apps/production");
        let tree = Tree(vec![
            "apps/base/podinfo/release.yaml",
            "apps/production/kustomization.yaml",
        ]);
        assert_eq!(c.verify(&tree, "apps/base/podinfo/release.yaml"), Ok(()));
        // Into a subdirectory, a single file with a trailing slash.
        let c = copies(
            json!([
                {"from": "@repo/deploy/app/**", "to": "@artifact/app/"},
                {"from": "@repo/deploy/extra.yaml", "to": "@artifact/"}
            ]),
            "app",
            &[git("repo")],
        )
        .unwrap();
        assert_eq!(c.git_path, "deploy/app");
        let c = copies(
            json!([{"from": "@repo/deploy/app/config.yaml", "to": "@artifact/config.yaml"},
                   {"from": "@repo/deploy/app/**", "to": "@artifact/"}]),
            "",
            &[git("repo")],
        )
        .unwrap();
        assert_eq!(c.git_path, "deploy/app");
    }

    #[test]
    fn what_does_not_map_back_to_one_git_directory_is_named() {
        let err = copies(
            json!([
                {"from": "@repo/deploy/app/**", "to": "@artifact/"},
                {"from": "@config/env/prod/**", "to": "@artifact/"}
            ]),
            "",
            &[git("repo"), git("config")],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "copy rule 1 (\"@repo/deploy/app/**\" → \"@artifact/\") and copy rule 2 (\"@config/env/prod/**\" → \"@artifact/\") both put files into ./, from @repo and from @config: what Flux applied there is merged from two sources, so no one Git directory holds it"
        );
        let err = copies(
            json!([{"from": "@repo/deploy/prod.yaml", "to": "@artifact/values.yaml"}]),
            "",
            &[git("repo")],
        )
        .unwrap_err();
        assert!(
            err.contains("puts ./deploy/prod.yaml of @repo at ./values.yaml"),
            "{err}"
        );
        let oci = SourceRef {
            kind: "OCIRepository".into(),
            ..git("chart")
        };
        let err = copies(
            json!([{"from": "@chart/**", "to": "@artifact/"}]),
            "",
            &[oci],
        )
        .unwrap_err();
        assert!(
            err.ends_with("the OCIRepository flux-system/chart, which is not a Git repository"),
            "{err}"
        );
        let err = copies(
            json!([{"from": "@repo/a/**", "to": "@artifact/"},
                   {"from": "@repo/b/**", "to": "@artifact/", "strategy": "Merge"}]),
            "",
            &[git("repo")],
        )
        .unwrap_err();
        assert!(err.contains("a different move"), "{err}");
        let err = copies(
            json!([{"from": "@repo/a/**", "to": "@artifact/a/"}]),
            "b",
            &[git("repo")],
        )
        .unwrap_err();
        assert_eq!(err, "none of its copy rules puts anything at ./b");
    }

    #[test]
    fn excluded_overwritten_and_merged_files_are_not_taken_for_the_git_file() {
        let tree = Tree(vec![
            "deploy/app/deployment.yaml",
            "deploy/app/README.md",
            "deploy/app/values.yaml",
            "envs/prod/values.yaml",
        ]);
        let c = copies(
            json!([{"from": "@repo/deploy/app/**", "to": "@artifact/", "exclude": ["*.md"]}]),
            "",
            &[git("repo")],
        )
        .unwrap();
        assert_eq!(c.verify(&tree, "deploy/app/deployment.yaml"), Ok(()));
        let err = c.verify(&tree, "deploy/app/README.md").unwrap_err();
        assert!(err.contains("may leave out deploy/app/README.md"), "{err}");
        // A later rule overwrites values.yaml with another Git file.
        let c = copies(
            json!([{"from": "@repo/deploy/app/**", "to": "@artifact/"},
                   {"from": "@repo/envs/prod/values.yaml", "to": "@artifact/values.yaml", "strategy": "Merge"}]),
            "",
            &[git("repo")],
        );
        assert!(c.is_err(), "a rename into ./ is refused at once: {c:?}");
        let c = copies(
            json!([{"from": "@repo/deploy/app/**", "to": "@artifact/app/"},
                   {"from": "@repo/envs/prod/values.yaml", "to": "@artifact/app/values.yaml"}]),
            "other",
            &[git("repo")],
        );
        assert!(c.is_err());
        // Globs keep the whole path.
        let c = copies(
            json!([{"from": "@repo/deploy/app/*.yaml", "to": "@artifact/"}]),
            "deploy/app",
            &[git("repo")],
        )
        .unwrap();
        assert_eq!(c.git_path, "deploy/app");
        assert_eq!(c.verify(&tree, "deploy/app/deployment.yaml"), Ok(()));
        assert!(c.verify(&tree, "deploy/app/README.md").is_err());
        // The kustomization at the build's root decides what the build reads: it must be the
        // artifact's too.
        let tree = Tree(vec![
            "deploy/app/kustomization.yaml",
            "deploy/app/deployment.yaml",
        ]);
        let c = copies(
            json!([{"from": "@repo/deploy/app/*.yaml", "to": "@artifact/", "exclude": ["kustomization.yaml"]}]),
            "deploy/app",
            &[git("repo")],
        )
        .unwrap();
        let err = c.verify(&tree, "deploy/app/deployment.yaml").unwrap_err();
        assert!(
            err.contains("may leave out deploy/app/kustomization.yaml"),
            "{err}"
        );
    }

    #[test]
    fn a_plain_path_is_a_file_or_a_directory_as_git_says() {
        // No trailing slash, no extension: taken for a directory (`dest/<name>/`).
        let c = copies(
            json!([{"from": "@repo/deploy/app", "to": "@artifact/web"}]),
            "web/app",
            &[git("repo")],
        )
        .unwrap();
        assert_eq!(c.git_path, "deploy/app");
        let tree = Tree(vec!["deploy/app/deployment.yaml"]);
        assert_eq!(c.verify(&tree, "deploy/app/deployment.yaml"), Ok(()));
        // Were it a file in Git, ./web would be that file: the mapping is refused, not guessed.
        let tree = Tree(vec!["deploy/app"]);
        assert!(c.verify(&tree, "deploy/app").is_err());
    }
}
