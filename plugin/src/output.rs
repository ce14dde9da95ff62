//! Printing: kubectl-style tables, ages (`3d`, `5m`), and JSON/YAML documents.

use std::io::Write;

use clap::ValueEnum;
use serde::Serialize;

use crate::Error;

/// Output formats of `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Wide,
    Json,
    Yaml,
}

/// Output formats of `trace` and `blame`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DetailFormat {
    Text,
    Json,
    Yaml,
}

/// A table: a header row and rows of cells, printed with columns separated by at least three
/// spaces (as kubectl prints). The last column is not padded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as text; trailing empty cells of a row are left out.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths = vec![0usize; columns];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let last = row.iter().rposition(|c| !c.is_empty()).map_or(0, |i| i + 1);
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(last) {
                line.push_str(cell);
                if i + 1 < last {
                    let pad = widths[i] - cell.chars().count() + 3;
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// How long ago, the way kubectl prints ages: `45s`, `5m`, `3h`, `3d`, `2y`.
pub fn age(then: jiff::Timestamp, now: jiff::Timestamp) -> String {
    let secs = now.as_second().saturating_sub(then.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 120 * 60 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 2 * 365 * 86400 => format!("{}d", s / 86400),
        s => format!("{}y", s / (365 * 86400)),
    }
}

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize>(out: &mut dyn Write, value: &T) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Output(e.into()))?;
    writeln!(out, "{text}").map_err(|e| Error::Output(e.into()))
}

/// Prints `value` as YAML.
pub fn yaml<T: Serialize>(out: &mut dyn Write, value: &T) -> Result<(), Error> {
    let text = serde_yaml_ng::to_string(value).map_err(|e| Error::Output(e.into()))?;
    write!(out, "{text}").map_err(|e| Error::Output(e.into()))
}

/// Writes text, mapping I/O errors (a closed pipe) to [`Error::Output`].
pub fn text(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::Output(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_like_kubectl_and_drops_trailing_empties() {
        let mut t = Table::new(&["RESOURCE", "OWNER", "FILE"]);
        t.push(vec![
            "deployment/web".into(),
            "Kustomization flux-system/apps".into(),
            "a.yaml".into(),
        ]);
        t.push(vec![
            "secret/manual".into(),
            "(unmanaged)".into(),
            String::new(),
        ]);
        assert_eq!(
            t.render(),
            "RESOURCE         OWNER                            FILE\n\
             deployment/web   Kustomization flux-system/apps   a.yaml\n\
             secret/manual    (unmanaged)\n"
        );
    }

    #[test]
    fn ages() {
        let now: jiff::Timestamp = "2026-03-10T12:00:00Z".parse().unwrap();
        let ago = |s: i64| {
            age(
                jiff::Timestamp::from_second(now.as_second() - s).unwrap(),
                now,
            )
        };
        assert_eq!(ago(5), "5s");
        assert_eq!(ago(300), "5m");
        assert_eq!(ago(2 * 3600), "2h");
        assert_eq!(ago(3 * 86400), "3d");
        assert_eq!(ago(41 * 86400), "41d");
        assert_eq!(ago(3 * 365 * 86400), "3y");
        assert_eq!(ago(-50), "0s", "clock skew is not negative");
    }

    #[test]
    fn json_and_yaml() {
        #[derive(Serialize)]
        struct Row {
            file: &'static str,
            document: usize,
        }
        let mut j = Vec::new();
        json(
            &mut j,
            &vec![Row {
                file: "a.yaml",
                document: 1,
            }],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(j).unwrap(),
            "[\n  {\n    \"file\": \"a.yaml\",\n    \"document\": 1\n  }\n]\n"
        );
        let mut y = Vec::new();
        yaml(
            &mut y,
            &Row {
                file: "a.yaml",
                document: 1,
            },
        )
        .unwrap();
        assert_eq!(String::from_utf8(y).unwrap(), "file: a.yaml\ndocument: 1\n");
    }
}
