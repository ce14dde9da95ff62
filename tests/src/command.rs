//! Running external commands (kubectl, openssl, scripts) with a deadline, and their output.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What kubectl prints before the guard's message when the webhook denies a request:
/// `Error from server: admission webhook "guard.gitops-guard.dev" denied the request: <message>`
/// (after `Error from server (Forbidden): error when applying patch: ...` for `kubectl apply`).
pub const DENIED_PREFIX: &str = "admission webhook \"guard.gitops-guard.dev\" denied the request: ";

/// Exit code and output of a finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    /// Exit code; -1 when the process was killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for messages.
    pub command: String,
}

impl Out {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Panics (showing the command, exit code and both streams) unless the command succeeded.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        if !self.success() {
            panic!("expected success:\n{self}");
        }
        self
    }

    /// Panics (showing both streams) if the command succeeded.
    #[track_caller]
    pub fn fails(&self) -> &Self {
        if self.success() {
            panic!("expected a failure:\n{self}");
        }
        self
    }

    /// The guard's message when the webhook denied the request: everything in stderr after
    /// [`DENIED_PREFIX`], trimmed (the message is two lines; `kubectl edit` adds its own lines after it).
    pub fn denial(&self) -> Option<&str> {
        let at = self.stderr.find(DENIED_PREFIX)?;
        Some(self.stderr[at + DENIED_PREFIX.len()..].trim())
    }

    /// Panics unless the command failed because the guard denied it; returns the guard's message
    /// (see [`Out::denial`]).
    #[track_caller]
    pub fn denied(&self) -> &str {
        match self.denial() {
            Some(message) if !self.success() => message,
            _ => panic!("expected a denial by the guard webhook:\n{self}"),
        }
    }

    /// Warnings kubectl printed (`Warning: <text>` lines on stderr), without the `Warning: ` prefix.
    pub fn warnings(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter_map(|line| line.strip_prefix("Warning: "))
            .collect()
    }

    /// stdout parsed as JSON (for `-o json`); panics if it is not JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        writeln!(f, "exit code: {}", self.code)?;
        writeln!(f, "--- stdout:\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr:\n{}", self.stderr.trim_end())
    }
}

/// `program arg arg ...` for messages.
pub(crate) fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error just ends the output; the exit code tells what happened.
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("cannot wait for child process {}: {e}", child.id()),
        }
    }
}

/// Runs `cmd` to completion with `stdin` as its standard input (or /dev/null), collecting both
/// output streams. Kills it and panics if it runs longer than `timeout`.
pub fn run(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> Out {
    let command = display(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{command}`: {e}"));
    let writer = stdin.map(|text| {
        let pipe = child.stdin.take();
        let text = text.to_owned();
        thread::spawn(move || {
            if let Some(mut pipe) = pipe {
                // The command may exit without reading everything; its exit code tells.
                let _ = pipe.write_all(text.as_bytes());
            }
        })
    });
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_until(&mut child, Instant::now() + timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let out = Out {
        code: status.and_then(|s| s.code()).unwrap_or(-1),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        command,
    };
    if status.is_none() {
        panic!("killed after {timeout:?} without finishing:\n{out}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i32, stderr: &str) -> Out {
        Out {
            code,
            stdout: String::new(),
            stderr: stderr.to_owned(),
            command: "kubectl".to_owned(),
        }
    }

    #[test]
    fn denial_is_the_text_after_the_webhook_prefix() {
        let o = out(
            1,
            "Error from server: admission webhook \"guard.gitops-guard.dev\" denied the request: \
             deployment/web in prod is managed by Flux Kustomization flux-system/apps.\n\
             Change it in Git instead: kubectl gitops edit deployment/web -n prod\n",
        );
        assert_eq!(
            o.denied(),
            "deployment/web in prod is managed by Flux Kustomization flux-system/apps.\n\
             Change it in Git instead: kubectl gitops edit deployment/web -n prod"
        );
    }

    #[test]
    #[should_panic(expected = "expected a denial by the guard webhook")]
    fn other_failures_are_not_denials() {
        out(
            1,
            "Error from server (NotFound): deployments.apps \"web\" not found\n",
        )
        .denied();
    }

    #[test]
    fn warnings_are_the_warning_lines() {
        let o = out(
            0,
            "Warning: dry-run only: x\nconfigmap/a created (server dry run)\n",
        );
        assert_eq!(o.warnings(), vec!["dry-run only: x"]);
    }

    #[test]
    fn run_collects_both_streams_and_stdin() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "cat; echo err >&2; exit 3"]);
        let o = run(cmd, Some("in\n"), Duration::from_secs(10));
        assert_eq!(
            (o.code, o.stdout.as_str(), o.stderr.as_str()),
            (3, "in\n", "err\n")
        );
    }

    #[test]
    #[should_panic(expected = "killed after")]
    fn run_kills_what_hangs() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        run(cmd, None, Duration::from_millis(200));
    }
}
