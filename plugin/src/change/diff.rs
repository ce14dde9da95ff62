//! Unified diffs of changed files, as `git diff` shows them (for `--dry-run`, pull request bodies
//! and commit summaries).

/// One changed file: repository-relative path, old and new text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub old: String,
    pub new: String,
}

impl FileChange {
    /// Lines removed and added.
    pub fn counts(&self) -> (usize, usize) {
        let (a, b) = (lines(&self.old), lines(&self.new));
        let ops = line_ops(&a, &b);
        let removed = ops.iter().filter(|o| matches!(o, Op::Del(_))).count();
        let added = ops.iter().filter(|o| matches!(o, Op::Add(_))).count();
        (removed, added)
    }
}

fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same(usize, usize),
    Del(usize),
    Add(usize),
}

/// A minimal line diff (longest common subsequence), common prefix and suffix trimmed first so
/// that big files with a small change stay cheap.
fn line_ops(a: &[&str], b: &[&str]) -> Vec<Op> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut ops: Vec<Op> = (0..prefix).map(|i| Op::Same(i, i)).collect();
    if ma.len().saturating_mul(mb.len()) > 16_000_000 {
        // Too big to align: everything in the middle changed.
        ops.extend((0..ma.len()).map(|i| Op::Del(prefix + i)));
        ops.extend((0..mb.len()).map(|j| Op::Add(prefix + j)));
    } else {
        let (n, m) = (ma.len(), mb.len());
        let mut t = vec![vec![0u32; m + 1]; n + 1];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                t[i][j] = if ma[i] == mb[j] {
                    t[i + 1][j + 1] + 1
                } else {
                    t[i + 1][j].max(t[i][j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && ma[i] == mb[j] {
                ops.push(Op::Same(prefix + i, prefix + j));
                i += 1;
                j += 1;
            } else if i < n && (j == m || t[i + 1][j] >= t[i][j + 1]) {
                ops.push(Op::Del(prefix + i));
                i += 1;
            } else {
                ops.push(Op::Add(prefix + j));
                j += 1;
            }
        }
    }
    let (sa, sb) = (a.len() - suffix, b.len() - suffix);
    ops.extend((0..suffix).map(|k| Op::Same(sa + k, sb + k)));
    ops
}

fn push_line(out: &mut String, mark: char, line: &str) {
    out.push(mark);
    let body = line.strip_suffix('\n').unwrap_or(line);
    // A CR before the line break is part of the line (as git shows it).
    out.push_str(body);
    out.push('\n');
    if !line.ends_with('\n') {
        out.push_str("\\ No newline at end of file\n");
    }
}

/// The unified diff (3 lines of context) of one file, with `a/` and `b/` headers as git writes
/// them; empty when nothing changed.
pub fn unified(change: &FileChange) -> String {
    labelled(
        &format!(
            "diff --git a/{p} b/{p}\n--- a/{p}\n+++ b/{p}\n",
            p = change.path
        ),
        &change.old,
        &change.new,
    )
}

/// The unified diff (3 lines of context) of two texts under `--- old` / `+++ new` headers named
/// as given (`kubectl gitops diff`: `git/<file>@<commit>`, `live/<kind>/<name>`); empty when they
/// are the same.
pub fn unified_named(old_name: &str, new_name: &str, old: &str, new: &str) -> String {
    labelled(&format!("--- {old_name}\n+++ {new_name}\n"), old, new)
}

fn labelled(header: &str, old: &str, new: &str) -> String {
    let (a, b) = (lines(old), lines(new));
    let ops = line_ops(&a, &b);
    if ops.iter().all(|o| matches!(o, Op::Same(..))) {
        return String::new();
    }
    const CONTEXT: usize = 3;
    let mut out = header.to_string();
    // Group the changed ops into hunks with context.
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| !matches!(o, Op::Same(..)))
        .map(|(i, _)| i)
        .collect();
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &i in &changed {
        let start = i.saturating_sub(CONTEXT);
        let end = (i + CONTEXT + 1).min(ops.len());
        match hunks.last_mut() {
            Some(last) if start <= last.1 => last.1 = end,
            _ => hunks.push((start, end)),
        }
    }
    for (start, end) in hunks {
        let slice = &ops[start..end];
        let old_start = slice
            .iter()
            .find_map(|o| match o {
                Op::Same(i, _) | Op::Del(i) => Some(*i),
                Op::Add(_) => None,
            })
            .unwrap_or_else(|| before_old(&ops[..start]));
        let new_start = slice
            .iter()
            .find_map(|o| match o {
                Op::Same(_, j) | Op::Add(j) => Some(*j),
                Op::Del(_) => None,
            })
            .unwrap_or_else(|| before_new(&ops[..start]));
        let old_len = slice.iter().filter(|o| !matches!(o, Op::Add(_))).count();
        let new_len = slice.iter().filter(|o| !matches!(o, Op::Del(_))).count();
        let range = |s: usize, len: usize| match len {
            0 => format!("{s},0"),
            1 => format!("{}", s + 1),
            _ => format!("{},{len}", s + 1),
        };
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            range(old_start, old_len),
            range(new_start, new_len)
        ));
        for op in slice {
            match *op {
                Op::Same(i, _) => push_line(&mut out, ' ', a[i]),
                Op::Del(i) => push_line(&mut out, '-', a[i]),
                Op::Add(j) => push_line(&mut out, '+', b[j]),
            }
        }
    }
    out
}

/// The old line count before a hunk that only adds lines (`-N,0` names the line after which
/// lines are added).
fn before_old(ops: &[Op]) -> usize {
    ops.iter()
        .rev()
        .find_map(|o| match o {
            Op::Same(i, _) | Op::Del(i) => Some(i + 1),
            Op::Add(_) => None,
        })
        .unwrap_or(0)
}

fn before_new(ops: &[Op]) -> usize {
    ops.iter()
        .rev()
        .find_map(|o| match o {
            Op::Same(_, j) | Op::Add(j) => Some(j + 1),
            Op::Del(_) => None,
        })
        .unwrap_or(0)
}

/// The diffs of several files, one after the other.
pub fn unified_all(changes: &[FileChange]) -> String {
    changes.iter().map(unified).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fc(old: &str, new: &str) -> FileChange {
        FileChange {
            path: "apps/web/deployment.yaml".into(),
            old: old.into(),
            new: new.into(),
        }
    }

    #[test]
    fn one_changed_line_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\n";
        assert_eq!(
            unified(&fc(old, new)),
            "diff --git a/apps/web/deployment.yaml b/apps/web/deployment.yaml\n\
             --- a/apps/web/deployment.yaml\n+++ b/apps/web/deployment.yaml\n\
             @@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n"
        );
        assert_eq!(fc(old, new).counts(), (1, 1));
    }

    #[test]
    fn far_apart_changes_are_two_hunks_and_pure_additions_say_where() {
        let old: String = (1..=20).map(|i| format!("{i}\n")).collect();
        let new: String = (1..=20)
            .map(|i| match i {
                2 => "two\n".to_string(),
                19 => "19\nnew\n".to_string(),
                i => format!("{i}\n"),
            })
            .collect();
        let d = unified(&fc(&old, &new));
        assert!(d.contains("@@ -1,5 +1,5 @@\n 1\n-2\n+two\n"), "{d}");
        assert!(
            d.contains("@@ -17,4 +17,5 @@\n 17\n 18\n 19\n+new\n 20\n"),
            "{d}"
        );
        assert_eq!(
            unified(&fc("", "x\n")),
            "diff --git a/apps/web/deployment.yaml b/apps/web/deployment.yaml\n--- a/apps/web/deployment.yaml\n+++ b/apps/web/deployment.yaml\n@@ -0,0 +1 @@\n+x\n"
        );
    }

    #[test]
    fn no_change_no_diff_and_missing_final_newline_is_shown() {
        assert_eq!(unified(&fc("a\n", "a\n")), "");
        let d = unified(&fc("a\nb", "a\nc"));
        assert!(
            d.ends_with("-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"),
            "{d}"
        );
    }
}
