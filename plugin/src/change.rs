//! `kubectl gitops edit | scale | set image | patch | label | annotate`: the kubectl verbs, with
//! a pull request as the result instead of a live change.
//!
//! The flow of one change:
//! 1. [`locate`]: the live object, its owner (Flux Kustomization / HelmRelease, Argo CD
//!    Application), the Git source, branch and path the owner builds, the applied revision.
//! 2. Git: the clone the command runs in (or `--repo`, or the cache clone) is brought up to the tip
//!    of the branch the agent follows with the user's own `git fetch`; [`crate::manifest`] finds
//!    the file that defines the object there, and [`target`] everything that shapes it (patches
//!    and transformers of the kustomization layers).
//! 3. The change: the editor ([`edit`]) or the verb ([`verb`]) changes the object as Git defines
//!    it; the change is written back where each field is set ([`target`], [`crate::splice`]:
//!    every other byte stays), checked (kind, name and namespace kept) and validated with a
//!    server-side dry-run as the user.
//! 4. [`commit`]: a commit on a new branch with gix (author from git config), pushed with the
//!    user's `git`, never forced and never to the agent's branch; [`pr`]: the pull request.
//!    `--dry-run` prints the diff only, `--local` only commits, `--no-pr` stops after the push.
//! 5. [`recover`]: whatever fails after the change was made, the change is saved to files, and
//!    the message says what succeeded and how to finish by hand.
//!
//! Objects rendered from a Helm chart are explained by [`helm`] (which values key would make the
//! change) instead.

pub mod commit;
pub mod diff;
pub mod edit;
pub mod error;
pub mod helm;
pub mod locate;
pub mod overrides;
pub mod pr;
pub mod recover;
pub mod shared;
pub mod target;
pub mod verb;

use std::path::PathBuf;

use serde_json::Value;

use gix::ObjectId;

use crate::Error;
use crate::change::error::Error as ChangeError;
use crate::forge::{self, Environment, Forge, ForgeKind, PullRequestOptions};
use crate::git::{RepoFinder, cache::default_cache_dir};
use crate::locate::error::Error as LocateError;
use crate::manifest::{self, Found, Wanted};
use crate::session::{Global, Session};
use crate::splice::{self, Change};

use commit::{CommitRepo, NewCommit, Workspace};
use diff::FileChange;
use locate::{Definer, Located};
use recover::Progress;
use target::Definition;
use verb::{MetaUpdate, PatchType, Verb};

/// Flags every change command takes (besides the global `--kubeconfig`, `--context`, `-n`,
/// `--repo` and `--guard-config`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ChangeFlags {
    /// Print the diff of the change and do nothing else.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit and push the branch, print the URL to open a pull request, but open none.
    #[arg(long, conflicts_with = "local")]
    pub no_pr: bool,
    /// Only commit, on a local branch: nothing is pushed.
    #[arg(long)]
    pub local: bool,
    /// The forge: github, gitlab, gitea or forgejo (default: detected from the remote URL).
    #[arg(long, value_name = "KIND")]
    pub forge: Option<String>,
    /// The forge's API URL (GitHub Enterprise, self-hosted GitLab, Gitea, Forgejo).
    #[arg(long, value_name = "URL")]
    pub forge_url: Option<String>,
    /// Open the pull request as a draft.
    #[arg(long)]
    pub draft: bool,
    /// Title of the pull request.
    #[arg(long)]
    pub title: Option<String>,
    /// Commit message (its first line is the subject); also the start of the pull request body.
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Branch to commit on (default: gitops/<user>/<kind>-<name>-<yyyymmdd-hhmm>). An existing
    /// branch gets a new commit on top, and its open pull request is reused.
    #[arg(long)]
    pub branch: Option<String>,
    /// Branch the pull request goes into (default: the branch the agent follows).
    #[arg(long)]
    pub base: Option<String>,
    /// Ask these people (or GitHub teams org/team) to review; repeat or separate with commas.
    #[arg(long = "reviewer", value_name = "LOGIN", value_delimiter = ',')]
    pub reviewers: Vec<String>,
    /// Change a field where it is set even when other overlays share that file (a base, a
    /// component): by default it is written in the object's own overlay, for it alone.
    #[arg(long)]
    pub in_base: bool,
}

/// `TYPE/NAME` or `TYPE NAME`.
#[derive(Debug, Clone, clap::Args)]
pub struct EditArgs {
    /// TYPE/NAME or TYPE NAME, as for kubectl edit.
    #[arg(required = true, num_args = 1..=2, value_name = "TYPE/NAME")]
    pub object: Vec<String>,
    #[command(flatten)]
    pub flags: ChangeFlags,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ScaleArgs {
    /// TYPE/NAME or TYPE NAME.
    #[arg(required = true, num_args = 1..=2, value_name = "TYPE/NAME")]
    pub object: Vec<String>,
    /// The new number of replicas.
    #[arg(long, required = true)]
    pub replicas: u64,
    /// Precondition: the live object must have this many replicas now.
    #[arg(long)]
    pub current_replicas: Option<u64>,
    #[command(flatten)]
    pub flags: ChangeFlags,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetImageArgs {
    /// TYPE/NAME (or TYPE NAME), then CONTAINER=IMAGE ... (`*=IMAGE` for every container). Flags
    /// may come between them, as with kubectl (`deployment/web -n prod web=…`).
    #[arg(required = true, num_args = 1.., action = clap::ArgAction::Append, value_name = "ARGS")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub flags: ChangeFlags,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum SetCommand {
    /// Propose a new container image as a pull request.
    #[command(after_help = "Examples:
  kubectl gitops set image deployment/web web=ghcr.io/acme/web:1.8.2 -n prod
  kubectl gitops set image cronjob/report '*=ghcr.io/acme/report:2.0' -n prod

See `kubectl gitops edit --help` for how the change becomes a pull request.")]
    Image(SetImageArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct PatchArgs {
    /// TYPE/NAME or TYPE NAME.
    #[arg(required = true, num_args = 1..=2, value_name = "TYPE/NAME")]
    pub object: Vec<String>,
    /// The patch (JSON or YAML).
    #[arg(short = 'p', long, required_unless_present = "patch_file")]
    pub patch: Option<String>,
    /// A file with the patch.
    #[arg(long, conflicts_with = "patch")]
    pub patch_file: Option<PathBuf>,
    /// strategic, merge or json.
    #[arg(long = "type", default_value = "strategic")]
    pub patch_type: String,
    #[command(flatten)]
    pub flags: ChangeFlags,
}

#[derive(Debug, Clone, clap::Args)]
pub struct MetaArgs {
    /// TYPE/NAME (or TYPE NAME), then KEY=VALUE to set and KEY- to remove. Flags may come between
    /// them, as with kubectl (`deployment/web -n prod team=a`).
    #[arg(required = true, num_args = 1.., action = clap::ArgAction::Append, value_name = "ARGS")]
    pub args: Vec<String>,
    /// Allow changing a key that already has a value.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub flags: ChangeFlags,
}

/// The change commands (flattened into the plugin's subcommands).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ChangeCommand {
    /// Edit the object's YAML in Git (in $KUBE_EDITOR or $EDITOR) and open a pull request.
    #[command(after_help = concat!("Examples:
  kubectl gitops edit deployment/web -n prod
  KUBE_EDITOR=nano kubectl gitops edit deploy web -n prod --draft --reviewer ana
  kubectl gitops edit deployment/web -n prod --dry-run

", "The object's file is found as `kubectl gitops status` finds it, at the tip of the branch its
Flux Kustomization or Argo CD Application follows; only what you change is rewritten (comments,
order, quoting and the other documents stay), in the overlay patch or kustomization entry that
sets a field if there is one. The change is validated with a server-side dry-run as you, committed
on a new branch (author from git config) in the clone you run in (or --repo, or a clone in
$XDG_CACHE_HOME/kubectl-gitops/), pushed with your git, and opened as a pull request on GitHub,
GitHub Enterprise, GitLab, Gitea or Forgejo (token: GITHUB_TOKEN, GITLAB_TOKEN, GITEA_TOKEN,
FORGEJO_TOKEN or git credential fill). The live object is not changed.

--dry-run prints the diff only, --local only commits, --no-pr stops after the push. When a step
fails, the change is saved to a file whose path is printed, with what succeeded and how to finish."))]
    Edit(EditArgs),
    /// Propose a new replica count as a pull request.
    #[command(after_help = "Examples:
  kubectl gitops scale deployment/web --replicas=6 -n prod
  kubectl gitops scale statefulset/db --replicas=3 --current-replicas=2 -n prod --no-pr

See `kubectl gitops edit --help` for how the change becomes a pull request.")]
    Scale(ScaleArgs),
    /// Propose a new container image as a pull request (`set image`).
    #[command(subcommand)]
    Set(SetCommand),
    /// Propose a patch (strategic, merge or json) as a pull request.
    #[command(after_help = "Examples:
  kubectl gitops patch deployment/web -n prod -p '{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"web\",\"resources\":{\"limits\":{\"memory\":\"768Mi\"}}}]}}}}'
  kubectl gitops patch deployment/web -n prod --type merge -p '{\"spec\":{\"paused\":true}}'
  kubectl gitops patch deployment/web -n prod --type json -p '[{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":4}]'

See `kubectl gitops edit --help` for how the change becomes a pull request.")]
    Patch(PatchArgs),
    /// Propose label changes as a pull request.
    #[command(after_help = "Examples:
  kubectl gitops label deployment/web team=payments -n prod
  kubectl gitops label deployment/web tier=web --overwrite -n prod
  kubectl gitops label deployment/web team- -n prod

See `kubectl gitops edit --help` for how the change becomes a pull request.")]
    Label(MetaArgs),
    /// Propose annotation changes as a pull request.
    #[command(after_help = "Examples:
  kubectl gitops annotate deployment/web acme.io/owner=payments -n prod --branch gitops/ana/owners

See `kubectl gitops edit --help` for how the change becomes a pull request.")]
    Annotate(MetaArgs),
}

/// Splits `TYPE/NAME [rest…]` or `TYPE NAME [rest…]` (see [`crate::object_args::object`]).
fn split_object(
    args: &[String],
    rest_is_pairs: bool,
) -> Result<(String, String, Vec<String>), Error> {
    crate::object_args::object(args, rest_is_pairs)
}

impl ChangeCommand {
    /// The verb, the object's TYPE and NAME, and the flags.
    fn parts(self) -> Result<(Verb, String, String, ChangeFlags), Error> {
        Ok(match self {
            ChangeCommand::Edit(a) => {
                let (t, n, rest) = split_object(&a.object, false)?;
                no_extra(&rest)?;
                (Verb::Edit, t, n, a.flags)
            }
            ChangeCommand::Scale(a) => {
                let (t, n, rest) = split_object(&a.object, false)?;
                no_extra(&rest)?;
                (
                    Verb::Scale {
                        replicas: a.replicas,
                        current: a.current_replicas,
                    },
                    t,
                    n,
                    a.flags,
                )
            }
            ChangeCommand::Set(SetCommand::Image(a)) => {
                let (t, n, rest) = split_object(&a.args, true)?;
                (
                    Verb::SetImage {
                        images: verb::parse_images(&rest)?,
                    },
                    t,
                    n,
                    a.flags,
                )
            }
            ChangeCommand::Patch(a) => {
                let (t, n, rest) = split_object(&a.object, false)?;
                no_extra(&rest)?;
                let kind: PatchType = a.patch_type.parse()?;
                let text = match (&a.patch, &a.patch_file) {
                    (Some(p), _) => p.clone(),
                    (None, Some(f)) => std::fs::read_to_string(f).map_err(|source| Error::Io {
                        path: f.display().to_string(),
                        source,
                    })?,
                    (None, None) => {
                        return Err(Error::Usage("must specify --patch or --patch-file containing the contents of the patch".into()));
                    }
                };
                let patch = verb::parse_patch(&text, kind)?;
                (Verb::Patch { kind, patch }, t, n, a.flags)
            }
            ChangeCommand::Label(a) => {
                let (t, n, rest) = split_object(&a.args, true)?;
                (
                    Verb::Label(MetaUpdate::parse(&rest, a.overwrite, true)?),
                    t,
                    n,
                    a.flags,
                )
            }
            ChangeCommand::Annotate(a) => {
                let (t, n, rest) = split_object(&a.args, true)?;
                (
                    Verb::Annotate(MetaUpdate::parse(&rest, a.overwrite, false)?),
                    t,
                    n,
                    a.flags,
                )
            }
        })
    }
}

fn no_extra(rest: &[String]) -> Result<(), Error> {
    match rest.first() {
        Some(x) => Err(Error::Usage(format!("unexpected argument {x:?}"))),
        None => Ok(()),
    }
}

fn warn(message: &str) {
    eprintln!("Warning: {message}");
}

/// Runs one change command. The cluster calls run on the session's runtime; Git and the forge
/// run outside it (they block).
pub fn run(global: &Global, cmd: ChangeCommand) -> Result<bool, Error> {
    let command_line = std::iter::once("kubectl gitops".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let (verb, type_text, name, flags) = cmd.parts()?;
    if let Some(b) = &flags.branch
        && !commit::valid_branch_name(b)
    {
        return Err(Error::Usage(format!(
            "--branch {b:?} is not a valid branch name"
        )));
    }
    let forge_kind: Option<ForgeKind> = flags.forge.as_deref().map(str::parse).transpose()?;
    let mut session = Session::open(global)?;
    if matches!(verb, Verb::Scale { .. }) {
        let cluster = &mut session.cluster;
        let resource = session.rt.block_on(async {
            cluster.discover().await?;
            cluster.refresh_if_unknown(&type_text).await?;
            cluster.resolve_type(&type_text).cloned()
        })?;
        if !resource.scalable {
            let ns = if resource.namespaced {
                format!(" -n {}", session.namespace)
            } else {
                String::new()
            };
            return Err(Error::Usage(format!(
                "{what} has no scale subresource, so there are no replicas to scale (kubectl scale refuses it too); change what sets them instead: kubectl gitops edit {what}{ns}",
                what = format!("{}/{name}", resource.api.kind.to_lowercase()),
            )));
        }
    }
    let located = session.rt.block_on(locate::locate(
        &mut session.cluster,
        &type_text,
        &name,
        &session.namespace,
        &session.config,
    ))?;
    if let Verb::Scale {
        current: Some(want),
        ..
    } = &verb
    {
        let have = located
            .live
            .pointer("/spec/replicas")
            .and_then(Value::as_u64);
        if have != Some(*want) {
            return Err(Error::Usage(format!(
                "Expected replicas to be {want}, was {}",
                have.map_or("unset".into(), |h| h.to_string())
            )));
        }
    }
    let ctx = Context {
        session,
        repos: global.repos.clone(),
        verb,
        flags,
        forge_kind,
        command_line,
        located,
    };
    match ctx.located.definer.clone() {
        Definer::Helm(chart) => ctx.helm(&chart),
        Definer::Manifests(builds) => ctx.manifests_or_values(&builds),
    }
    .map(|()| true)
}

struct Context {
    session: Session,
    /// `--repo` clones.
    repos: Vec<PathBuf>,
    verb: Verb,
    flags: ChangeFlags,
    forge_kind: Option<ForgeKind>,
    command_line: String,
    located: Located,
}

/// The live object without what the server adds (for the editor of a Helm-rendered object).
fn cleaned(live: &Value) -> Value {
    let mut v = live.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "selfLink",
        ] {
            meta.remove(k);
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    v
}

/// What a successful change attempt produced.
struct Prepared {
    new: Value,
    changes: Vec<Change>,
    files: Vec<FileChange>,
    validated: bool,
}

/// Why an attempt failed: something the user can fix in the editor, or anything else.
enum AttemptError {
    Fixable(Error),
    Fatal(Error),
}

fn fixable(e: &Error) -> bool {
    use crate::splice::Error as Splice;
    matches!(
        e,
        Error::Splice(
            Splice::YamlSyntax { .. }
                | Splice::MultipleDocuments { .. }
                | Splice::AnchorShared { .. }
                | Splice::AnchorRemoved { .. }
                | Splice::MergeKey { .. }
                | Splice::PathConflict { .. }
                | Splice::UnsupportedYaml { .. }
                | Splice::SpliceVerification { .. }
        ) | Error::Change(
            ChangeError::IdentityChanged { .. }
                | ChangeError::DryRunRejected { .. }
                | ChangeError::LayerField { .. }
                | ChangeError::KustomizeRoute { .. }
        )
    )
}

impl From<Error> for AttemptError {
    fn from(e: Error) -> Self {
        if fixable(&e) {
            AttemptError::Fixable(e)
        } else {
            AttemptError::Fatal(e)
        }
    }
}

impl From<splice::Error> for AttemptError {
    fn from(e: splice::Error) -> Self {
        Error::from(e).into()
    }
}

impl AttemptError {
    fn into_error(self) -> Error {
        match self {
            AttemptError::Fixable(e) | AttemptError::Fatal(e) => e,
        }
    }
}

fn to_yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v).unwrap_or_else(|_| format!("{v:#}\n"))
}

/// Where the change is made: the clone, its remote, branches and commits.
struct Place {
    ws: Workspace,
    origin: crate::git::RepoOrigin,
    repo: CommitRepo,
    agent_branch: String,
    base: String,
    base_tip: ObjectId,
    branch: String,
    /// Where the local branch points now (`None`: it is new).
    local: Option<ObjectId>,
    /// The commit the change is made on.
    start: ObjectId,
}

/// What `edit` shows in the editor: the object's text and the lines of the header about it.
struct EditorText<'n> {
    initial: String,
    about: Vec<String>,
    nl: &'n str,
}

/// The change a verb makes, ready to propose.
enum Outcome {
    /// Nothing to change (the user was told why).
    Nothing,
    /// The files to write and, for `edit`, the text the user saved (kept when delivering fails).
    Ready(Prepared, Option<String>),
}

impl Context {
    /// Every verb, whatever it changes (manifests, a chart's values, nothing for a Flux Helm
    /// release): `edit` runs the editor loop over `editor()`'s text, trying `prepare` on each
    /// saved object; the other verbs change `old` themselves and `prepare` the result once. A
    /// verb that changes nothing ends here.
    fn outcome<'n, F>(
        &self,
        old: &Value,
        editor: impl FnOnce() -> EditorText<'n>,
        mut prepare: F,
    ) -> Result<Outcome, AttemptError>
    where
        F: FnMut(&Value) -> Result<Prepared, AttemptError>,
    {
        if let Verb::Edit = &self.verb {
            let text = editor();
            return Ok(
                match self
                    .edit_session(&text.initial, &text.about, text.nl, old, prepare)
                    .map_err(AttemptError::Fatal)?
                {
                    Some((p, body)) => Outcome::Ready(p, Some(body)),
                    None => Outcome::Nothing,
                },
            );
        }
        let (new, notes) = self.verb.apply(old).map_err(AttemptError::Fatal)?;
        for n in notes {
            eprintln!("{n}");
        }
        if new == *old {
            println!("{}", edit::CANCELLED_NO_CHANGES);
            return Ok(Outcome::Nothing);
        }
        prepare(&new).map(|p| Outcome::Ready(p, None))
    }

    /// The end of every verb that writes files: nothing written says so, `--dry-run` prints
    /// the diff, otherwise the change is committed, pushed and proposed.
    fn propose(
        &self,
        source: &locate::Followed,
        place: &Place,
        pr_target: PrTarget,
        old: &Value,
        prepared: &Prepared,
        edited: Option<&str>,
    ) -> Result<(), Error> {
        if prepared.files.is_empty() {
            println!("{}", edit::CANCELLED_NO_CHANGES);
            return Ok(());
        }
        if self.flags.dry_run {
            print!("{}", diff::unified_all(&prepared.files));
            return Ok(());
        }
        if prepared.validated {
            println!("Validated against the cluster (server-side dry-run as you): ok");
        }
        self.drift_warnings(old, &prepared.changes);
        self.deliver(source, place, pr_target, old, prepared, edited)
    }
}

impl Context {
    /// The editor loop: opens the text, reads it back, calls `attempt` on the result; errors the
    /// user can fix reopen the editor with them in the header; an unchanged file cancels.
    fn edit_session<F>(
        &self,
        initial: &str,
        about: &[String],
        nl: &str,
        old: &Value,
        mut attempt: F,
    ) -> Result<Option<(Prepared, String)>, Error>
    where
        F: FnMut(&Value) -> Result<Prepared, AttemptError>,
    {
        let editor = edit::EditorCommand::from_env();
        let mut file = edit::EditFile::create(&self.located.resource())?;
        let mut errors: Vec<String> = Vec::new();
        let mut shown = initial.to_string();
        loop {
            let header = edit::header(about, &errors, nl);
            file.write(&format!("{header}{shown}"))?;
            editor.run(&file.path)?;
            let written = file.read()?;
            let body = edit::strip_header(&written, &header).to_string();
            if edit::is_empty(&body) {
                println!("{}", edit::CANCELLED_EMPTY);
                return Ok(None);
            }
            if body == shown {
                if errors.is_empty() {
                    println!("{}", edit::CANCELLED_NO_CHANGES);
                    return Ok(None);
                }
                let path = file.keep().to_path_buf();
                return Err(ChangeError::EditCancelled {
                    message: format!(
                        "{}\n{}\nA copy of your changes has been stored to \"{}\"",
                        edit::CANCELLED_INVALID,
                        errors.join("\n"),
                        path.display()
                    ),
                }
                .into());
            }
            let parsed = match splice::parse_document(&body) {
                Ok(v) => v,
                Err(e) => {
                    errors = vec![format!("the edited file is not valid YAML: {e}")];
                    shown = body;
                    continue;
                }
            };
            if &parsed == old {
                println!("{}", edit::CANCELLED_NO_CHANGES);
                return Ok(None);
            }
            match attempt(&parsed) {
                Ok(p) => return Ok(Some((p, body))),
                Err(AttemptError::Fixable(e)) => {
                    errors = vec![e.report()];
                    shown = body;
                }
                Err(AttemptError::Fatal(e)) => {
                    let path = file.keep().to_path_buf();
                    return Err(ChangeError::EditCancelled {
                        message: format!(
                            "{}\nA copy of your changes has been stored to \"{}\"",
                            e.report(),
                            path.display()
                        ),
                    }
                    .into());
                }
            }
        }
    }

    /// Kind, name and namespace must stay.
    fn check_identity(&self, old: &Value, new: &Value) -> Result<(), Error> {
        for (field, pointer) in [
            ("kind", "/kind"),
            ("metadata.name", "/metadata/name"),
            ("metadata.namespace", "/metadata/namespace"),
        ] {
            let (a, b) = (old.pointer(pointer), new.pointer(pointer));
            if a != b {
                let show = |v: Option<&Value>| {
                    v.map_or("(none)".to_string(), |v| match v {
                        Value::String(s) => s.clone(),
                        o => o.to_string(),
                    })
                };
                return Err(ChangeError::IdentityChanged {
                    resource: self.located.resource_in(),
                    field: field.into(),
                    from: show(a),
                    to: show(b),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Validates the change against the cluster: the live object with the same changes,
    /// replaced as a server-side dry-run as the user.
    fn validate(&self, old: &Value, changes: &[Change]) -> Result<(), Error> {
        let l = &self.located;
        for attempt in 0..2 {
            let live = if attempt == 0 {
                l.live.clone()
            } else {
                self.session
                    .rt
                    .block_on(self.session.cluster.get(
                        &l.resource,
                        l.namespace.as_deref(),
                        &l.name,
                    ))?
                    .unwrap_or_else(|| l.live.clone())
            };
            let mut object = live.clone();
            for c in changes {
                let mapped = target::map_path(old, &live, c.path().segments())
                    .map(|p| match c {
                        Change::Set { value, .. } => Change::set(p, value.clone()),
                        Change::Insert { value, .. } => Change::insert(p, value.clone()),
                        Change::Delete { .. } => Change::delete(p),
                    })
                    .unwrap_or_else(|| c.clone());
                if !target::apply_change(&mut object, &mapped) {
                    return Err(ChangeError::DryRunRejected {
                        resource: l.resource_in(),
                        message: format!("the change at {} does not fit the live object", c.path()),
                    }
                    .into());
                }
            }
            let answer = self.session.rt.block_on(locate::dry_run_replace(
                &self.session.cluster,
                &l.resource,
                l.namespace.as_deref(),
                &l.name,
                &object,
            ))?;
            match answer {
                Ok(()) => return Ok(()),
                Err(m) if attempt == 0 && m.contains("the object has been modified") => continue,
                Err(m) => {
                    return Err(ChangeError::DryRunRejected {
                        resource: l.resource_in(),
                        message: m,
                    }
                    .into());
                }
            }
        }
        Ok(())
    }

    /// Warns about changed fields whose live value is not what Git says (something else sets
    /// them: the pull request changes Git only).
    fn drift_warnings(&self, old: &Value, changes: &[Change]) {
        for c in changes {
            let Change::Set { path, .. } = c else {
                continue;
            };
            let Some(git) = old.pointer(&path.to_pointer()) else {
                continue;
            };
            let Some(mapped) = target::map_path(old, &self.located.live, path.segments()) else {
                continue;
            };
            if let Some(live) = self.located.live.pointer(&mapped.to_pointer())
                && live != git
                && !live.is_object()
                && !live.is_array()
            {
                warn(&format!(
                    "{path} is {live} on the live object but {git} in Git: something else changes it (an autoscaler, a controller or a hand edit)"
                ));
            }
        }
    }

    fn helm(&self, chart: &locate::HelmChart) -> Result<(), Error> {
        let old = cleaned(&self.located.live);
        let editor = || {
            EditorText {
            initial: to_yaml(&old),
            about: vec![
                format!(
                    "This is {} as it runs now; {} renders it from {}.",
                    self.located.resource_in(),
                    chart.owner,
                    chart.chart
                ),
                "Saving shows which values key of the release makes the change; nothing is changed.".to_string(),
            ],
            nl: "\n",
        }
        };
        // Nothing is written: the changed object only names the values keys.
        let show = |v: &Value| {
            Ok(Prepared {
                new: v.clone(),
                changes: Vec::new(),
                files: Vec::new(),
                validated: false,
            })
        };
        let new = match self
            .outcome(&old, editor, show)
            .map_err(AttemptError::into_error)?
        {
            Outcome::Ready(p, _) => p.new,
            Outcome::Nothing => return Ok(()),
        };
        let changes = splice::changes_between(&old, &new);
        if changes.is_empty() {
            println!("{}", edit::CANCELLED_NO_CHANGES);
            return Ok(());
        }
        let templates = match &chart.git {
            Some((source, dir)) => self.chart_templates(source, dir).ok(),
            None => None,
        };
        Err(helm::explain(
            &self.located.resource_in(),
            chart,
            templates.as_deref(),
            &changes,
        ))
    }

    fn chart_templates(
        &self,
        source: &locate::Followed,
        dir: &str,
    ) -> Result<Vec<helm::Template>, Error> {
        let (ws, origin) = self.workspace(source)?;
        let branch = match &source.branch {
            Some(b) => b.clone(),
            None => commit::remote_default_branch(&ws)?,
        };
        let tips = commit::remote_tips(&ws, &[branch.as_str()])?;
        let tip = tips
            .get(&branch)
            .copied()
            .ok_or_else(|| ChangeError::BranchMissing {
                branch: branch.clone(),
                remote: ws.remote.to_string(),
            })?;
        commit::fetch(&ws, &[branch.as_str()])?;
        let repo = crate::git::Repo::open(&ws.dir, origin)?;
        let snap = repo.snapshot(tip)?;
        helm::templates(&snap, dir, self.located.kind())
    }

    /// The clone to work in and where it came from: `--repo`, else the clone the command runs
    /// in when one of its remotes is the source's URL (as configured: `insteadOf` rules are
    /// for git to apply), else the cache clone.
    fn workspace(
        &self,
        source: &locate::Followed,
    ) -> Result<(Workspace, crate::git::RepoOrigin), Error> {
        let top = |dir: &std::path::Path| -> Option<PathBuf> {
            let repo = gix::discover(dir).ok()?;
            Some(repo.workdir().unwrap_or(repo.git_dir()).to_path_buf())
        };
        let mut explicit = Vec::new();
        for path in &self.repos {
            let dir = top(path).ok_or_else(|| crate::git::Error::NotARepo {
                repo: path.display().to_string(),
                source: None,
            })?;
            let remote = commit::remote_for(&dir, &source.url);
            if matches!(remote, commit::Remote::Named(_)) {
                return Ok((Workspace { dir, remote }, crate::git::RepoOrigin::Explicit));
            }
            explicit.push(Workspace { dir, remote });
        }
        // A single --repo whose remotes do not name the source: the user said which clone.
        if explicit.len() == 1
            && let Some(ws) = explicit.pop()
        {
            return Ok((ws, crate::git::RepoOrigin::Explicit));
        }
        if let Some(dir) = std::env::current_dir().ok().as_deref().and_then(top)
            && let remote @ commit::Remote::Named(_) = commit::remote_for(&dir, &source.url)
        {
            return Ok((
                Workspace { dir, remote },
                crate::git::RepoOrigin::WorkingDirectory,
            ));
        }
        let mut finder = RepoFinder::new(&[], None, default_cache_dir())?;
        let found = finder.open(&source.url, None, &self.located.applier)?;
        let dir = found.repo.dir.clone();
        let remote = commit::remote_for(&dir, &source.url);
        Ok((Workspace { dir, remote }, found.repo.origin))
    }

    /// Brings the clone up to date and picks the branch and the commit to change.
    fn place(&self, source: &locate::Followed) -> Result<Place, Error> {
        let applier = &self.located.applier;
        if let Some(what) = &source.not_a_branch
            && self.flags.base.is_none()
        {
            return Err(ChangeError::NotABranch {
                owner: applier.clone(),
                follows: what.clone(),
            }
            .into());
        }
        let (ws, origin) = self.workspace(source)?;
        let offline = self.flags.local || self.flags.dry_run;
        let agent_branch = match (&source.branch, &self.flags.base) {
            (Some(b), _) => b.clone(),
            (None, Some(base)) if source.not_a_branch.is_some() => base.clone(),
            (None, _) => commit::remote_default_branch(&ws)?,
        };
        let base = self
            .flags
            .base
            .clone()
            .unwrap_or_else(|| agent_branch.clone());
        if base != agent_branch {
            warn(&format!(
                "the pull request goes into {base}, but {applier} follows {agent_branch}: the change reaches the cluster only once {base} is merged into {agent_branch}"
            ));
        }
        let repo = CommitRepo::open(&ws.dir)?;
        let explicit = self.flags.branch.clone();
        let mut branch = explicit.clone().unwrap_or_else(|| {
            commit::default_branch(
                &repo.user_slug(),
                self.located.kind(),
                &self.located.name,
                &jiff::Zoned::now(),
            )
        });
        for (protected, why) in [
            (&agent_branch, format!("{applier} follows it")),
            (&base, "it is the base of the pull request".to_string()),
        ] {
            if &branch == protected {
                return Err(ChangeError::ProtectedBranch {
                    branch: branch.clone(),
                    why,
                }
                .into());
            }
        }
        let tips = match commit::remote_tips(&ws, &[base.as_str(), branch.as_str()]) {
            Ok(t) => t,
            Err(e) if offline => {
                warn(&format!(
                    "cannot reach {} ({}); using what the clone has",
                    ws.remote,
                    e.report()
                ));
                Default::default()
            }
            Err(e) => return Err(e),
        };
        let present: Vec<&str> = tips.keys().map(String::as_str).collect();
        if let Err(e) = commit::fetch(&ws, &present) {
            if offline {
                warn(&format!(
                    "cannot fetch from {} ({}); using what the clone has",
                    ws.remote,
                    e.report()
                ));
            } else {
                return Err(e);
            }
        }
        let repo = CommitRepo::open(&ws.dir)?;
        if explicit.is_none() {
            let stem = branch.clone();
            let mut n = 1;
            loop {
                let on_remote = if n == 1 {
                    tips.contains_key(&branch)
                } else {
                    !offline
                        && commit::remote_tips(&ws, &[branch.as_str()])
                            .map(|t| t.contains_key(&branch))
                            .unwrap_or(false)
                };
                if !on_remote && repo.local_branch(&branch).is_none() {
                    break;
                }
                n += 1;
                branch = format!("{stem}-{n}");
            }
        }
        let base_tip = match tips.get(&base) {
            Some(t) => *t,
            None => crate::git::Repo::open(&ws.dir, origin)?
                .resolve_reference(&base)
                .ok_or_else(|| ChangeError::BranchMissing {
                    branch: base.clone(),
                    remote: ws.remote.to_string(),
                })?,
        };
        let local = repo.local_branch(&branch);
        let remote_tip = tips.get(&branch).copied();
        let start = match (local, remote_tip) {
            (None, None) => base_tip,
            (None, Some(r)) => r,
            (Some(l), None) => l,
            (Some(l), Some(r)) if repo.is_ancestor(r, l) => l,
            (Some(l), Some(r)) if repo.is_ancestor(l, r) => r,
            (Some(_), Some(_)) => {
                return Err(ChangeError::BranchDiverged {
                    branch: branch.clone(),
                    remote: ws.remote.to_string(),
                    dir: ws.dir.display().to_string(),
                }
                .into());
            }
        };
        Ok(Place {
            ws,
            origin,
            repo,
            agent_branch,
            base,
            base_tip,
            branch,
            local,
            start,
        })
    }

    fn manifests(&self, builds: &[(locate::Followed, manifest::Build)]) -> Result<(), Error> {
        let mut last_err = None;
        for (source, build) in builds {
            let place = self.place(source)?;
            match self.find(&place, build) {
                Ok(Some(entry)) => return self.change(source, build, place, entry),
                Ok(None) => {}
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| {
            LocateError::NotLocated {
                message: format!(
                    "{}: no Git source of {} defines it",
                    self.located.resource_in(),
                    self.located.applier
                ),
            }
            .into()
        }))
    }

    /// The manifest entry of the object at the place's start commit. `Ok(None)`: not built from
    /// this source (multi-source applications).
    fn find(
        &self,
        place: &Place,
        build: &manifest::Build,
    ) -> Result<Option<manifest::Entry>, Error> {
        let git_repo = crate::git::Repo::open(&place.ws.dir, place.origin)?;
        let snap = git_repo.snapshot(place.start)?;
        let index = manifest::index(&snap, build)?;
        let wanted = Wanted {
            group: self.located.group().to_string(),
            kind: self.located.kind().to_string(),
            namespace: self.located.namespace.clone().unwrap_or_default(),
            name: self.located.name.clone(),
        };
        let at = format!(
            "{}@{}",
            place.branch_name(),
            crate::git::revision::short(&place.start.to_string())
        );
        match index.find(&wanted, self.located.origin.as_deref()) {
            Found::One(e) => Ok(Some(e.clone())),
            Found::None => {
                let chart = crate::git::join_path(&build.path, "Chart.yaml").unwrap_or_default();
                if snap.kind(&chart)? == Some(crate::git::EntryKind::File) {
                    return Err(LocateError::HelmRendered {
                        message: format!(
                            "{} is rendered by {} from the Helm chart at {}; there is no manifest to change: change the chart's values in the Application (spec.source.helm) or the chart's values.yaml",
                            self.located.resource_in(),
                            self.located.applier,
                            if build.path.is_empty() {
                                "the repository root"
                            } else {
                                &build.path
                            }
                        ),
                    }.into());
                }
                Err(LocateError::FileNotFound {
                    resource: self.located.resource_in(),
                    path: if build.path.is_empty() {
                        "the repository root".into()
                    } else {
                        format!("./{}", build.path)
                    },
                    commit: at,
                    why: if index.notes.is_empty() {
                        "it was probably removed or renamed since it was applied".into()
                    } else {
                        index.notes.join("; ")
                    },
                }
                .into())
            }
            Found::Many(list) => Err(LocateError::AmbiguousFile {
                resource: self.located.resource_in(),
                commit: at,
                count: list.len(),
                candidates: list
                    .iter()
                    .map(|e| e.file.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into()),
        }
    }

    fn change(
        &self,
        source: &locate::Followed,
        build: &manifest::Build,
        place: Place,
        entry: manifest::Entry,
    ) -> Result<(), Error> {
        // Before anything is changed: who commits, and where the pull request goes (nobody
        // edits in vain when the token or the git identity is missing).
        let pr_target = if self.flags.dry_run {
            PrTarget::default()
        } else {
            place.repo.identity()?;
            self.pr_target(source, &place.ws)?
        };
        let git_repo = crate::git::Repo::open(&place.ws.dir, place.origin)?;
        let snap = git_repo.snapshot(place.start)?;
        let mut def = target::define(&snap, build, &entry)?;
        def.also_built_by(&snap, &self.other_builds(source))?;
        if place.start != place.base_tip {
            eprintln!("Adding to the existing branch {}", place.branch);
        }
        self.warn_changed_since_applied(&git_repo, &def, &place.agent_branch);
        // A document other builds share is changed through the overlay (routing knows how).
        let plain = def.is_plain()? && !def.shares_document();
        let (base_text, span) = def.base_doc()?;
        let nl = if base_text.contains("\r\n") {
            "\r\n"
        } else {
            "\n"
        };
        let old = if plain {
            splice::parse_document(&base_text[span.range.clone()])?
        } else {
            def.effective()?
        };
        let where_ = format!(
            "{} at {}@{} ({})",
            def.doc.file,
            place.branch_name(),
            crate::git::revision::short(&place.start.to_string()),
            source.url
        );

        // The change.
        let validate = !self.flags.dry_run;
        let editor = || {
            let mut about = if plain {
                vec![format!(
                    "This is {} from {where_}.",
                    self.located.resource()
                )]
            } else {
                vec![
                    format!("This is {} as Git defines it: {where_},", self.located.resource()),
                    format!("changed by {}.", def.sources().join(", ")),
                    "Each field you change is written where it is set: the patch or entry that sets it, else the file.".into(),
                ]
            };
            about.push(
                "Saving proposes the change as a pull request; the live object does not change."
                    .into(),
            );
            let initial = if plain {
                base_text[span.range.clone()].to_string()
            } else {
                to_yaml(&old).replace('\n', nl)
            };
            EditorText { initial, about, nl }
        };
        let start = def.clone();
        let mut tried = def.clone();
        let outcome = self.outcome(&old, editor, |new: &Value| {
            // Every try starts from the files as they are in Git.
            tried = start.clone();
            self.prepare(&mut tried, plain, &old, new, validate)
        });
        let (prepared, edited) = match outcome {
            Ok(Outcome::Ready(p, edited)) => (p, edited),
            Ok(Outcome::Nothing) => return Ok(()),
            Err(AttemptError::Fixable(e @ Error::Change(ChangeError::DryRunRejected { .. }))) => {
                // The change was made in the files: keep it.
                let saved =
                    recover::save(&self.located.resource(), &tried.files.changes(), None).ok();
                return Err(recover::incomplete(
                    "validating the change",
                    &e,
                    &Progress::default(),
                    saved.as_ref(),
                ));
            }
            Err(e) => return Err(e.into_error()),
        };
        self.propose(
            source,
            &place,
            pr_target,
            &old,
            &prepared,
            edited.as_deref(),
        )
    }

    /// Commit, push and pull request, saving the work when a step fails.
    fn deliver(
        &self,
        source: &locate::Followed,
        place: &Place,
        pr_target: PrTarget,
        old: &Value,
        prepared: &Prepared,
        edited: Option<&str>,
    ) -> Result<(), Error> {
        let (ws, branch, base) = (&place.ws, &place.branch, &place.base);
        let save = || recover::save(&self.located.resource(), &prepared.files, edited).ok();
        let PrTarget { forge, creds } = pr_target;
        let subject = pr::Subject {
            resource: self.located.resource(),
            namespace: self.located.namespace.clone(),
            verb: self.verb.name().into(),
            owner: self.located.applier.clone(),
            applied: self.located.applied.as_ref().map(|r| r.raw.clone()),
            summary: self.verb.summary(&prepared.changes),
            fields: pr::describe_changes(old, &prepared.changes),
            command: self.command_line.clone(),
            validated: prepared.validated,
        };
        let mut progress = Progress::default();
        if prepared.validated {
            progress
                .done
                .push("validated against the cluster (server-side dry-run as you)".into());
        }
        let new_commit = NewCommit {
            files: prepared
                .files
                .iter()
                .map(|f| (f.path.clone(), f.new.clone()))
                .collect(),
            message: pr::commit_message(&subject, self.flags.message.as_deref()),
            parent: place.start,
            branch: branch.clone(),
            branch_was: place.local,
        };
        let id = match place.repo.commit(&new_commit) {
            Ok(id) => id,
            Err(e) => {
                progress
                    .not_done
                    .push("nothing was committed, pushed or opened".into());
                progress.finish.push(format!(
                    "in a clone of {}: git switch -c {branch} origin/{base}, git apply the saved patch, commit, push and open a pull request",
                    source.url
                ));
                let saved = save();
                return Err(recover::incomplete(
                    "committing the change",
                    &e,
                    &progress,
                    saved.as_ref(),
                ));
            }
        };
        let short_id = crate::git::revision::short(&id.to_string()).to_string();
        let dir = ws.dir.display().to_string();
        progress.done.push(format!(
            "committed {short_id} on the local branch {branch} in {dir}"
        ));
        let compare = forge.as_ref().map(|f| forge::compare_url(f, base, branch));
        if self.flags.local {
            println!("Committed {short_id} on branch {branch} in {dir} (not pushed: --local)");
            println!("To propose it: git -C {dir} push {} {branch}", ws.remote);
            if let Some(c) = &compare {
                println!("then open a pull request: {c}");
            }
            return Ok(());
        }
        if let Err(e) = commit::push(ws, branch) {
            progress
                .not_done
                .push(format!("the branch {branch} was not pushed"));
            progress.not_done.push("no pull request was opened".into());
            progress
                .finish
                .push(format!("git -C {dir} push {} {branch}", ws.remote));
            if let Some(c) = &compare {
                progress
                    .finish
                    .push(format!("then open a pull request: {c}"));
            }
            let saved = save();
            return Err(recover::incomplete(
                &format!("pushing the branch {branch} to {}", ws.remote),
                &e,
                &progress,
                saved.as_ref(),
            ));
        }
        println!("Pushed branch {branch} to {}", ws.remote);
        progress
            .done
            .push(format!("pushed the branch {branch} to {}", ws.remote));
        let (Some(forge), Some(creds)) = (forge, creds) else {
            if let Some(c) = &compare {
                println!("Open a pull request: {c}");
            }
            return Ok(());
        };
        let title = self
            .flags
            .title
            .clone()
            .unwrap_or_else(|| pr::default_title(&subject));
        let opts = PullRequestOptions {
            title: title.clone(),
            body: pr::body(
                &subject,
                self.flags.message.as_deref(),
                &prepared.files,
                &place.repo.user_slug(),
            ),
            head: branch.clone(),
            base: base.clone(),
            draft: self.flags.draft,
            reviewers: self.flags.reviewers.clone(),
        };
        match pr::open(&forge, &creds, &opts) {
            Ok(p) if p.reused => {
                println!(
                    "Pull request #{} from {branch} was already open; it now has the new commit",
                    p.number
                );
                println!("{}", p.url);
                Ok(())
            }
            Ok(p) => {
                println!("Opened pull request #{}: \"{title}\"", p.number);
                println!("{}", p.url);
                Ok(())
            }
            Err(e) => {
                progress.not_done.push("no pull request was opened".into());
                progress.finish.push(format!(
                    "open a pull request from {branch} into {base}: {}",
                    forge::compare_url(&forge, base, branch)
                ));
                let saved = save();
                Err(recover::incomplete(
                    &format!("opening the pull request on {}", forge.host),
                    &e,
                    &progress,
                    saved.as_ref(),
                ))
            }
        }
    }

    /// The forge and the token: both needed to open a pull request; with `--no-pr` or `--local`
    /// the forge only gives the URL to open one by hand (and may be unknown).
    fn pr_target(&self, source: &locate::Followed, ws: &Workspace) -> Result<PrTarget, Error> {
        let forge = Forge::from_remote(
            &source.url,
            self.forge_kind,
            self.flags.forge_url.as_deref(),
        );
        if self.flags.local || self.flags.no_pr {
            return Ok(PrTarget {
                forge: forge.ok(),
                creds: None,
            });
        }
        let forge = forge?;
        let creds = forge::resolve_token(&forge, &Environment::from_process().in_dir(&ws.dir))?;
        Ok(PrTarget {
            forge: Some(forge),
            creds: Some(creds),
        })
    }

    /// Writes the change into the files, checks it and validates it against the cluster.
    fn prepare(
        &self,
        def: &mut Definition,
        plain: bool,
        old: &Value,
        new: &Value,
        validate: bool,
    ) -> Result<Prepared, AttemptError> {
        self.check_identity(old, new)?;
        let changes = splice::changes_between(old, new);
        if let Some(o) = &self.located.overrides {
            o.check(
                old,
                new,
                &changes,
                &self.located.resource_in(),
                &def.doc.file,
            )?;
        }
        if plain {
            let (text, span) = def.base_doc()?;
            let updated = splice::update_document(&text, &span, new)?;
            def.files.set(&def.doc.file.clone(), updated);
        } else {
            def.in_base = self.flags.in_base;
            def.route(old, new)?;
            for note in &def.notes {
                eprintln!("{note}");
            }
        }
        let files = def.files.changes();
        if validate && !files.is_empty() {
            self.validate(old, &changes)?;
        }
        Ok(Prepared {
            new: new.clone(),
            changes,
            files,
            validated: validate,
        })
    }

    /// The other owners on the cluster that build from this repository, and their paths: for a
    /// Flux-managed object, the other Kustomizations of its GitRepository; for an Argo CD one,
    /// the other Applications with its repoURL. Best effort: what cannot be listed is left out.
    fn other_builds(&self, source: &locate::Followed) -> Vec<(String, String)> {
        use gitops_guard_core::OwnerKind;
        use gitops_guard_core::custody::{ARGO, KUSTOMIZE};
        let cluster = &self.session.cluster;
        let own = &self.located.owner;
        let list = |group: &str, kind: &str| -> Vec<Value> {
            cluster
                .resource_for(group, kind)
                .and_then(|r| self.session.rt.block_on(cluster.list(r, None, None)).ok())
                .unwrap_or_default()
        };
        let at = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
        let named = |v: &Value| Some((at(v, "/metadata/namespace")?, at(v, "/metadata/name")?));
        let mut out = Vec::new();
        match own.kind {
            OwnerKind::Kustomization => {
                let all = list(KUSTOMIZE, "Kustomization");
                // A Kustomization's GitRepository: (namespace, name).
                let source_of = |ks: &Value| -> Option<(String, String)> {
                    if at(ks, "/spec/sourceRef/kind").is_some_and(|k| k != "GitRepository") {
                        return None;
                    }
                    let (ns, _) = named(ks)?;
                    Some((
                        at(ks, "/spec/sourceRef/namespace").unwrap_or(ns),
                        at(ks, "/spec/sourceRef/name")?,
                    ))
                };
                let Some(mine) = all
                    .iter()
                    .find(|ks| named(ks) == Some((own.namespace.clone(), own.name.clone())))
                    .and_then(source_of)
                else {
                    return out;
                };
                for ks in &all {
                    let Some((ns, name)) = named(ks) else {
                        continue;
                    };
                    if (ns.as_str(), name.as_str()) == (own.namespace.as_str(), own.name.as_str())
                        || source_of(ks).as_ref() != Some(&mine)
                    {
                        continue;
                    }
                    let path = at(ks, "/spec/path").unwrap_or_else(|| "./".into());
                    if let Some(path) = crate::git::normalize_path(&path) {
                        out.push((format!("Flux Kustomization {ns}/{name}"), path));
                    }
                }
            }
            OwnerKind::Application => {
                let Some(want) = crate::git::RepoKey::of_url(&source.url) else {
                    return out;
                };
                for app in list(ARGO, "Application") {
                    let Some((ns, name)) = named(&app) else {
                        continue;
                    };
                    if (ns.as_str(), name.as_str()) == (own.namespace.as_str(), own.name.as_str()) {
                        continue;
                    }
                    let sources: Vec<Value> =
                        match app.pointer("/spec/sources").and_then(Value::as_array) {
                            Some(list) => list.clone(),
                            None => app.pointer("/spec/source").cloned().into_iter().collect(),
                        };
                    for src in sources {
                        if let (Some(url), Some(path)) = (at(&src, "/repoURL"), at(&src, "/path"))
                            && crate::git::RepoKey::of_url(&url).as_ref() == Some(&want)
                            && let Some(path) = crate::git::normalize_path(&path)
                        {
                            out.push((format!("Argo CD Application {ns}/{name}"), path));
                        }
                    }
                }
            }
            _ => {}
        }
        out
    }

    fn warn_changed_since_applied(&self, repo: &crate::git::Repo, def: &Definition, branch: &str) {
        let Some(commit) = self
            .located
            .applied
            .as_ref()
            .and_then(|r| r.commit.as_deref())
        else {
            return;
        };
        let Ok(Some(id)) = repo.commit_id(commit) else {
            warn(&format!(
                "the applied commit {} is not in the clone; cannot tell whether the files changed since",
                crate::git::revision::short(commit)
            ));
            return;
        };
        let Ok(snap) = repo.snapshot(id) else { return };
        let mut changed = Vec::new();
        for path in std::iter::once(def.doc.file.clone()).chain(def.layers.iter().cloned()) {
            let then = snap.read(&path).ok().flatten();
            let now = def.files.original(&path).map(|s| s.as_bytes().to_vec());
            if then != now {
                changed.push(path);
            }
        }
        if !changed.is_empty() {
            warn(&format!(
                "{} changed on {branch} since the revision {} applied ({}): the change is made to the newest version",
                changed.join(", "),
                self.located.applier,
                self.located
                    .applied
                    .as_ref()
                    .map(|r| r.display())
                    .unwrap_or_default()
            ));
        }
    }
}

/// Where the pull request goes, resolved before the change is made.
#[derive(Default)]
struct PrTarget {
    forge: Option<Forge>,
    creds: Option<forge::Credentials>,
}

impl Place {
    /// The branch the start commit is on, for messages.
    fn branch_name(&self) -> &str {
        if self.start == self.base_tip {
            &self.base
        } else {
            &self.branch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn object_arguments_like_kubectl() {
        assert_eq!(
            split_object(&v(&["deployment/web", "team=x"]), true).unwrap(),
            ("deployment".into(), "web".into(), v(&["team=x"]))
        );
        assert_eq!(
            split_object(&v(&["deployment", "web", "team=x"]), true).unwrap(),
            ("deployment".into(), "web".into(), v(&["team=x"]))
        );
        assert!(split_object(&v(&["deployment", "team=x"]), true).is_err());
        assert!(split_object(&v(&["deployment"]), false).is_err());
        assert!(split_object(&v(&["a/b/c"]), false).is_err());
    }

    /// Flags may come between the object and its `KEY=VALUE` / `CONTAINER=IMAGE` arguments, as
    /// with kubectl (`label deployment/web -n prod team=a`).
    #[test]
    fn flags_between_arguments_like_kubectl() {
        use clap::Parser;
        let parse = |args: &[&str]| {
            crate::cli::Cli::try_parse_from(
                std::iter::once("kubectl-gitops").chain(args.iter().copied()),
            )
        };
        let cases: &[(&[&str], &[&str])] = &[
            (
                &["label", "deployment/web", "-n", "prod", "team=a"],
                &["deployment/web", "team=a"],
            ),
            (
                &["label", "-n", "prod", "deployment/web", "team=a", "tier-"],
                &["deployment/web", "team=a", "tier-"],
            ),
            (
                &[
                    "annotate",
                    "deployment/web",
                    "note=x",
                    "-n",
                    "prod",
                    "--overwrite",
                    "owner=y",
                ],
                &["deployment/web", "note=x", "owner=y"],
            ),
            (
                &[
                    "set",
                    "image",
                    "deployment/web",
                    "-n",
                    "prod",
                    "web=ghcr.io/acme/web:2",
                ],
                &["deployment/web", "web=ghcr.io/acme/web:2"],
            ),
        ];
        for (args, want) in cases {
            let cli = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(cli.global.namespace.as_deref(), Some("prod"), "{args:?}");
            let got = match cli.command {
                crate::cli::Command::Change(
                    ChangeCommand::Label(a) | ChangeCommand::Annotate(a),
                ) => a.args,
                crate::cli::Command::Change(ChangeCommand::Set(SetCommand::Image(a))) => a.args,
                other => panic!("{args:?}: {other:?}"),
            };
            assert_eq!(got, v(want), "{args:?}");
        }
        // Still: the object and at least one change.
        let out = parse(&["label", "deployment/web", "-n", "prod"]).map(|c| match c.command {
            crate::cli::Command::Change(cmd) => cmd.parts().map(|_| ()),
            _ => Ok(()),
        });
        assert!(matches!(out, Ok(Err(_))), "{out:?}");
    }
}
