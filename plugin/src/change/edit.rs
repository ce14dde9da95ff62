//! The interactive editor session of `kubectl gitops edit`, modelled on `kubectl edit`: the
//! document opens in `$KUBE_EDITOR` / `$EDITOR` (else `vi`) below a comment header; errors reopen
//! the editor with the reasons in the header; an unchanged or empty file cancels.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::Error;
use crate::change::error::Error as ChangeError;

/// What kubectl says when the saved file is the same as the one it opened.
pub const CANCELLED_NO_CHANGES: &str = "Edit cancelled, no changes made.";
/// What kubectl says when the saved file holds nothing but comments.
pub const CANCELLED_EMPTY: &str = "Edit cancelled, saved file was empty.";
/// What kubectl says when the file is saved unchanged after an error.
pub const CANCELLED_INVALID: &str = "Edit cancelled, no valid changes were saved.";

/// The editor command: `$KUBE_EDITOR`, else `$EDITOR`, else `vi`, split the way kubectl splits
/// it (a command with quotes or backslashes runs through `$SHELL -c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditorCommand {
    /// The variable it came from (`KUBE_EDITOR`, `EDITOR`) or `default`.
    pub source: &'static str,
    pub text: String,
    argv: Vec<String>,
    shell: bool,
}

impl EditorCommand {
    /// Reads the editor from the process environment.
    pub fn from_env() -> EditorCommand {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> EditorCommand {
        let pick = ["KUBE_EDITOR", "EDITOR"]
            .into_iter()
            .find_map(|k| var(k).filter(|v| !v.trim().is_empty()).map(|v| (k, v)));
        let (source, text) = pick.unwrap_or(("default", "vi".to_string()));
        let text = text.trim().to_string();
        let (argv, shell) = if !text.contains(' ') {
            (vec![text.clone()], false)
        } else if !text.contains(['"', '\'', '\\']) {
            (
                text.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                false,
            )
        } else {
            let sh = var("SHELL")
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "/bin/bash".into());
            (vec![sh, "-c".into(), text.clone()], true)
        };
        EditorCommand {
            source,
            text,
            argv,
            shell,
        }
    }

    /// Runs the editor on `file` and waits for it. The terminal is passed through.
    pub fn run(&self, file: &Path) -> Result<(), Error> {
        let fail = |message: &str, source: Option<std::io::Error>| ChangeError::Editor {
            editor: self.text.clone(),
            message: message.to_string(),
            source,
        };
        let (program, args) = self
            .argv
            .split_first()
            .ok_or_else(|| fail("no editor command", None))?;
        let mut cmd = Command::new(program);
        if self.shell {
            // `sh -c "editor --flag" ` + the file, quoted for the shell.
            let mut line = OsString::from(&args[1..].join(" "));
            line.push(" ");
            line.push(shell_quote(&file.display().to_string()));
            cmd.arg(&args[0]).arg(line);
        } else {
            cmd.args(args).arg(file);
        }
        let status = cmd.status().map_err(|e| fail("cannot start it", Some(e)))?;
        if !status.success() {
            return Err(fail(&format!("it exited with {status}"), None).into());
        }
        Ok(())
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

static FILES: AtomicUsize = AtomicUsize::new(0);

/// A file in the temp directory that holds the text being edited. It is removed on drop unless
/// [`EditFile::keep`] was called (kubectl keeps it when changes could not be saved).
pub struct EditFile {
    pub path: PathBuf,
    keep: bool,
}

impl EditFile {
    /// Creates `kubectl-gitops-edit-<pid>-<n>-<what>.yaml` in the temp directory.
    pub fn create(what: &str) -> Result<EditFile, Error> {
        let dir = std::env::temp_dir();
        let safe: String = what
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        for _ in 0..100 {
            let n = FILES.fetch_add(1, Ordering::SeqCst);
            let path = dir.join(format!(
                "kubectl-gitops-edit-{}-{n}-{safe}.yaml",
                std::process::id()
            ));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Ok(EditFile { path, keep: false }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::Io {
                        path: path.display().to_string(),
                        source: e,
                    });
                }
            }
        }
        Err(Error::Io {
            path: dir.display().to_string(),
            source: std::io::Error::other("cannot create a file for the editor"),
        })
    }

    pub fn write(&self, text: &str) -> Result<(), Error> {
        let io = |source: std::io::Error| Error::Io {
            path: self.path.display().to_string(),
            source,
        };
        let mut f = std::fs::File::create(&self.path).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    pub fn read(&self) -> Result<String, Error> {
        let bytes = std::fs::read(&self.path).map_err(|source| Error::Io {
            path: self.path.display().to_string(),
            source,
        })?;
        String::from_utf8(bytes).map_err(|_| Error::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the edited file is not UTF-8 text",
            ),
        })
    }

    /// Leaves the file in place (its path is printed as the saved copy).
    pub fn keep(&mut self) -> &Path {
        self.keep = true;
        &self.path
    }
}

impl Drop for EditFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The comment header above the document, in the document's line ending: kubectl's
/// instructions, what the document is and where the change goes, and the errors of the last try.
pub fn header(about: &[String], errors: &[String], nl: &str) -> String {
    let mut lines: Vec<String> = vec![
        "Please edit the object below. Lines beginning with a '#' will be ignored,".into(),
        "and an empty file will abort the edit. If an error occurs while saving this file will be"
            .into(),
        "reopened with the relevant failures.".into(),
        String::new(),
    ];
    lines.extend(about.iter().cloned());
    if !errors.is_empty() {
        lines.push(String::new());
        for e in errors {
            for (i, l) in e.lines().enumerate() {
                lines.push(if i == 0 {
                    format!("* {l}")
                } else {
                    format!("  {l}")
                });
            }
        }
    }
    lines.push(String::new());
    lines
        .iter()
        .map(|l| {
            if l.is_empty() {
                format!("#{nl}")
            } else {
                format!("# {l}{nl}")
            }
        })
        .collect()
}

/// Removes the header comment lines [`header`] wrote (every leading line starting with `#`, up
/// to the first blank `#` line after the instructions block ends) and returns the document text.
/// The document's own leading comments are kept when the header is intact.
pub fn strip_header<'t>(text: &'t str, header: &str) -> &'t str {
    if let Some(rest) = text.strip_prefix(header) {
        return rest;
    }
    // The header was changed: drop every leading comment line.
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            pos += line.len();
        } else {
            break;
        }
    }
    &text[pos..]
}

/// Whether a text holds anything but comments and blank lines (an empty file cancels the edit).
pub fn is_empty(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn editor_comes_from_kube_editor_then_editor_then_vi() {
        let e = EditorCommand::from_vars(vars(&[("EDITOR", "nano"), ("KUBE_EDITOR", "code -w")]));
        assert_eq!(
            (e.source, e.argv.clone(), e.shell),
            (
                "KUBE_EDITOR",
                vec!["code".to_string(), "-w".to_string()],
                false
            )
        );
        let e = EditorCommand::from_vars(vars(&[("EDITOR", "nano")]));
        assert_eq!(
            (e.source, e.argv.clone()),
            ("EDITOR", vec!["nano".to_string()])
        );
        let e = EditorCommand::from_vars(vars(&[]));
        assert_eq!(
            (e.source, e.argv.clone()),
            ("default", vec!["vi".to_string()])
        );
        let e = EditorCommand::from_vars(vars(&[
            ("EDITOR", "emacs -nw --eval '(x)'"),
            ("SHELL", "/bin/sh"),
        ]));
        assert!(e.shell);
        assert_eq!(e.argv, ["/bin/sh", "-c", "emacs -nw --eval '(x)'"]);
    }

    #[test]
    fn header_round_trip_keeps_the_documents_own_comments() {
        let h = header(
            &["This is deployment/web.".into()],
            &["bad\nreally".into()],
            "\r\n",
        );
        assert!(h.contains("# This is deployment/web.\r\n"));
        assert!(h.contains("# * bad\r\n#   really\r\n"));
        let doc = "# replicas are tuned by hand\nkind: Deployment\n";
        assert_eq!(strip_header(&format!("{h}{doc}"), &h), doc);
        // A header the user changed: leading comments go, the document stays.
        assert_eq!(strip_header("# mine\n#\nkind: A\n", &h), "kind: A\n");
        assert!(is_empty("# a\n\n---\n"));
        assert!(!is_empty("# a\nkind: A\n"));
    }

    #[test]
    fn the_edit_file_is_removed_unless_kept() {
        let f = EditFile::create("deployment/web").unwrap();
        let p = f.path.clone();
        f.write("kind: A\n").unwrap();
        assert_eq!(f.read().unwrap(), "kind: A\n");
        drop(f);
        assert!(!p.exists());
        let mut f = EditFile::create("x").unwrap();
        let kept = f.keep().to_path_buf();
        drop(f);
        assert!(kept.exists());
        std::fs::remove_file(kept).unwrap();
    }
}
