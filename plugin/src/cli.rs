//! The command line: `kubectl gitops <verb>`, kubectl conventions throughout (`--kubeconfig`,
//! `--context`, `-n`, `-A`, `-l`, `-o`). Verbs are one clap enum so new ones (edit, scale, set
//! image, patch, label, annotate, break-glass, exceptions) slot in next to these.

use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::Error;

pub use crate::blame::BlameArgs;
pub use crate::doctor::DoctorArgs;
pub use crate::exceptions::{BreakGlassArgs, ExceptionsArgs};
pub use crate::output::{DetailFormat, Format};
pub use crate::session::{self, Global};
pub use crate::status::StatusArgs;
pub use crate::trace::TraceArgs;

/// `kubectl gitops`: which Git commit owns each live resource.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-gitops",
    bin_name = "kubectl gitops",
    version,
    about = "Which Git file and commit own each live Kubernetes object managed by Flux or Argo CD",
    long_about = None,
    after_help = "Examples:
  kubectl gitops status -n prod
  kubectl gitops status deployment/web service -n prod -o wide
  kubectl gitops trace deployment/web -n prod
  kubectl gitops blame configmap/web-env -n prod
  source <(kubectl gitops completion bash)

The Git repository of a source is read from the clone you run in (matched by its remotes), from
--repo PATH, or from a clone kept in $XDG_CACHE_HOME/kubectl-gitops/ (fetched when the applied
commit is missing).

Exit status: 0 when everything asked for was found, 1 on any error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Owner, applied revision, file and last commit of every managed object.
    #[command(after_help = "Examples:
  # every managed object in the current namespace
  kubectl gitops status
  # deployments and one service in prod, with source, path and full dates
  kubectl gitops status deployments service/web -n prod -o wide
  # everything, including unmanaged objects, in all namespaces, as JSON
  kubectl gitops status -A --all -o json
  # objects with a label
  kubectl gitops status -l app=web -n prod

DRIFT shows the newest field manager that changed a field Git does not explain
(`kubectl-edit 5m ago`); `kubectl gitops blame` shows which fields.")]
    Status(StatusArgs),
    /// The whole chain for one object: owner, source, applied commit, file, last change, link.
    #[command(after_help = "Examples:
  kubectl gitops trace deployment/web -n prod
  kubectl gitops trace deploy web -n prod -o json")]
    Trace(TraceArgs),
    /// The object's YAML, each line annotated with the Git commit or field manager that set it.
    #[command(after_help = "Examples:
  kubectl gitops blame deployment/web -n prod
  kubectl gitops blame cm/web-env -n prod --show-defaults
  kubectl gitops blame deployment/web -n prod -o json

Lines set by Git show the commit, author and age of the manifest line (git blame of the file at
the applied commit). Lines no Git line explains show the field manager and when it wrote:
the agent (kustomize-controller, helm-controller, argocd-controller), Kubernetes, or anyone
else, which is drift. Server-maintained metadata and status are left out; fields nobody set
(server defaults) only with --show-defaults.")]
    Blame(BlameArgs),
    /// Every managed object against the document Git declares for it, field by field.
    #[command(after_help = "Examples:
  kubectl gitops diff -n prod
  kubectl gitops diff deployment/web -n prod
  kubectl gitops diff -A --revision tip -o json > drift.json

Shows a unified diff per object (--- git/<file>@<commit>, +++ live/<kind>/<name>) and, for each
field, who changed it and the exception or break-glass window that allowed it; then objects Git
declares that are missing and objects in the owners' namespaces that nobody declares (strays).
Server defaults, status, server metadata, rollout restarts, HPA-owned replicas and values written
differently (1Gi and 1024Mi) are not drift.

Exit status: 0 no drift, 1 drift, 2 error.")]
    Diff(crate::diff::DiffArgs),
    /// One report for the scope: owners, objects, drift, exceptions, break-glass, coverage.
    #[command(after_help = "Examples:
  kubectl gitops audit -n prod
  kubectl gitops audit -A -o html --out audit.html
  kubectl gitops audit -A -o json --out audit.json --as-of 2026-12-01T00:00:00Z

The summary first (objects, managed, in the state Git says, drifted and why, missing, strays,
open exceptions, owners behind their source, break-glass windows, the guard), then every owner
(source, branch, applied and current revision, verified, ready, suspended, objects), every
managed object, missing object and stray (owner, file, last commit, drift, exceptions in force),
the exceptions in force, the break-glass windows of the period (--since) with what changed under
them and whether it is back in Git, and what `kubectl gitops doctor` fails.

-o json follows docs/audit-schema.json; -o html is one self-contained page (filter it with
#namespace=NS&owner=OWNER&state=STATE) that names the sha256 of the -o json bytes for the same
state. Two reports of the same state are the same bytes (--as-of prints the moment described).

Exit status: 0 everything is as Git says, 1 drift, missing objects or strays, 2 error.")]
    Audit(crate::audit::AuditArgs),
    /// Open (or close) a time-boxed, reasoned break-glass window on one object or a namespace.
    #[command(
        name = "break-glass",
        after_help = "Examples:
  kubectl gitops break-glass deployment/web -n prod --for 1h --reason \"payments down, Git host unreachable\" --ticket INC-123
  kubectl gitops break-glass ns/prod --for 30m --reason \"registry outage\"
  kubectl gitops break-glass deployment/web -n prod --close

Only members of the guard's breakGlass.groups may open, extend or close a window, for at most
breakGlass.maxDuration. Inside it their changes pass with a warning and are recorded as Events;
afterwards the object is guarded again by itself. `kubectl gitops exceptions` lists what to bring
back into Git."
    )]
    BreakGlass(BreakGlassArgs),
    /// Every active exception: allowances from Git, break-glass windows, and what changed under them.
    #[command(after_help = "Examples:
  kubectl gitops exceptions -n prod
  kubectl gitops exceptions -A -o yaml > exceptions-audit.yaml
  kubectl gitops exceptions -A --expired-within 168h

CHANGED BY HAND lists hand edits (kubectl-edit, kubectl-patch, …) made while a window was open
that the agent has not taken back yet: the things to bring back into Git.")]
    Exceptions(ExceptionsArgs),
    /// Every way around the guard in this cluster, and how to close it (reads only).
    #[command(after_help = "Examples:
  kubectl gitops doctor
  kubectl gitops doctor -o json > doctor.json
  kubectl gitops doctor --guard-config gitops-guard.yaml

Checks that the guard's webhook configurations are there (failurePolicy, timeoutSeconds, the
Service they call and its endpoints, namespace exclusions resting on a label a person can
change); who can act as an agent or Kubernetes itself (impersonate, create Pods, read Secrets or
create tokens in their namespaces); who can switch the guard off (its webhook configurations,
Deployment, Service, Secret, ConfigMap or namespace, or a new mutating webhook).

Exit status: 1 when any finding is `fail`, else 0.")]
    Doctor(DoctorArgs),
    /// Changes through a pull request: edit, scale, set image, patch, label, annotate.
    #[command(flatten)]
    Change(crate::change::ChangeCommand),
    /// This build's version and commit, and the guard's when the cluster lets it be reached.
    #[command(after_help = "Examples:
  kubectl gitops version
  kubectl gitops version --client
  kubectl gitops version -o json

The guard is found through its ValidatingWebhookConfiguration (webhook guard.gitops-guard.dev)
and asked GET /version: through the API server's service proxy when the webhook calls a
Service, directly when it calls a URL. When it cannot be reached the line says why; the exit
status is still 0.")]
    Version(crate::version::VersionArgs),
    /// Print a shell completion script (bash, zsh or fish).
    #[command(after_help = "Examples:
  source <(kubectl gitops completion bash)
  kubectl gitops completion zsh > \"${fpath[1]}/_kubectl-gitops\"
  kubectl gitops completion fish > ~/.config/fish/completions/kubectl-gitops.fish

These complete `kubectl-gitops …`. For `kubectl gitops <TAB>` (kubectl 1.26+), put the release
archive's kubectl_complete-gitops on your PATH next to kubectl-gitops: kubectl runs it, and it
runs `kubectl-gitops __complete`, which completes verbs, flags, resource types and object names
from the cluster.")]
    Completion(CompletionArgs),
}

/// Shells `completion` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// `completion` arguments.
#[derive(Debug, Clone, Args)]
pub struct CompletionArgs {
    pub shell: Shell,
}

pub use crate::object_args::type_and_name;

/// Writes a completion script for `kubectl-gitops`.
pub fn completion(shell: Shell, out: &mut dyn std::io::Write) {
    let mut cmd = Cli::command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "kubectl-gitops", out);
}

/// The hidden verb kubectl's completion helper calls.
pub const COMPLETE: &str = "__complete";

/// Runs a verb; `Ok(false)`: it ran but some of what was asked for failed (exit status 1).
pub fn run(cli: Cli) -> Result<bool, Error> {
    let Cli { global, command } = cli;
    match command {
        Command::Status(args) => crate::status::run(&global, &args),
        Command::Trace(args) => crate::trace::run(&global, &args),
        Command::Diff(args) => crate::diff::run(&global, &args).map(|code| code == 0),
        Command::Audit(args) => crate::audit::run(&global, &args).map(|code| code == 0),
        Command::Blame(args) => crate::blame::run(&global, &args),
        Command::BreakGlass(args) => crate::exceptions::run_break_glass(&global, &args),
        Command::Exceptions(args) => crate::exceptions::run(&global, &args),
        Command::Doctor(args) => crate::doctor::run(&global, &args),
        Command::Version(args) => crate::version::run(&global, &args),
        Command::Change(cmd) => crate::change::run(&global, cmd),
        Command::Completion(args) => {
            completion(args.shell, &mut std::io::stdout());
            Ok(true)
        }
    }
}

/// Parses the command line (exit 0 for --help/--version, 1 for usage errors) and runs the verb.
pub fn main() -> ExitCode {
    // gix's HTTP transport (reqwest) uses the process-wide rustls provider: ring, as kube does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // kubectl's plugin completion protocol (kubectl_complete-gitops runs `kubectl-gitops
    // __complete WORD…`): the words are the user's half-typed command line, not ours to parse.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(COMPLETE) {
        return match crate::complete::run(&args[2..], &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 1,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // diff and audit have three outcomes, as `kubectl diff`: 0 no drift, 1 drift, 2 error.
    let three_way = match &cli.command {
        Command::Diff(args) => Some(crate::diff::run(&cli.global, args)),
        Command::Audit(args) => Some(crate::audit::run(&cli.global, args)),
        _ => None,
    };
    if let Some(outcome) = three_way {
        return match outcome {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("error: {}", e.report());
                ExitCode::from(2)
            }
        };
    }
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", e.report());
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubectl_style_flags() {
        let cli = Cli::try_parse_from([
            "kubectl-gitops",
            "status",
            "deploy/web",
            "svc",
            "-n",
            "prod",
            "-o",
            "wide",
            "-l",
            "app=web",
            "--kubeconfig",
            "/tmp/kc",
            "--context",
            "dev",
        ])
        .unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("prod"));
        assert_eq!(cli.global.context.as_deref(), Some("dev"));
        let Command::Status(s) = cli.command else {
            panic!("status")
        };
        assert_eq!(s.resources, vec!["deploy/web", "svc"]);
        assert_eq!(s.output, Format::Wide);
        assert_eq!(s.selector.as_deref(), Some("app=web"));
        assert!(Cli::try_parse_from(["kubectl-gitops", "status", "-o", "xml"]).is_err());
    }

    #[test]
    fn completion_scripts_name_the_verbs() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            completion(shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.contains("status") && text.contains("blame") && text.contains("trace"),
                "{shell:?}"
            );
        }
    }
}
