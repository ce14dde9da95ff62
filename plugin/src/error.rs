//! The one error type of the kubectl-gitops crate. Every message names the object it is about and
//! says what the user can do next. Add variants for new modules here.

/// Everything that can go wrong in kubectl-gitops.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- splice: editing manifest files ----
    /// The manifest text is not valid YAML.
    #[error(
        "the manifest is not valid YAML (line {line}, column {column}: {message}); fix the file first"
    )]
    YamlSyntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// A single document was expected but the text holds several.
    #[error("expected one YAML document but found {count}; pass the text of a single document")]
    MultipleDocuments { count: usize },
    /// The change would go through a YAML anchor/alias that is used in other places too.
    #[error(
        "{path} is shared through the YAML anchor &{anchor} (also used at {others}); changing it here would change those places too: change all of them the same way, or edit the file by hand"
    )]
    AnchorShared {
        path: String,
        anchor: String,
        others: String,
    },
    /// The change would remove an anchor that aliases elsewhere refer to.
    #[error(
        "{path} holds the YAML anchor &{anchor}, which {others} refer to; replacing or deleting it would break them: edit the file by hand"
    )]
    AnchorRemoved {
        path: String,
        anchor: String,
        others: String,
    },
    /// The field comes from a YAML merge key (`<<: *anchor`).
    #[error(
        "{path} comes from a YAML merge key (<<) in the file; edit the merged anchor in the file by hand"
    )]
    MergeKey { path: String },
    /// The path cannot be created because something else is in the way.
    #[error("cannot set {path}: {found}")]
    PathConflict { path: String, found: String },
    /// The file uses a YAML construct that is not rewritten automatically.
    #[error(
        "cannot edit {path}: the file writes it as {construct}, which kubectl-gitops does not rewrite; edit the file by hand"
    )]
    UnsupportedYaml { path: String, construct: String },
    /// Safety net: the rewritten text did not parse back to the intended object.
    #[error(
        "editing {path} would not give the intended YAML, so the file was left unchanged; please report this as a bug and edit the file by hand"
    )]
    SpliceVerification { path: String },
    /// `set image` names a container the object does not have.
    #[error("{object} has no container named {container} ({known})")]
    NoContainer {
        object: String,
        container: String,
        known: String,
    },
    /// A JSON patch operation could not be applied.
    #[error("JSON patch operation {index} ({op} {path}): {message}")]
    JsonPatch {
        index: usize,
        op: String,
        path: String,
        message: String,
    },

    // ---- forge: opening pull requests ----
    /// The git remote URL could not be understood.
    #[error("cannot read the git remote URL {url}: {reason}")]
    RemoteUrl { url: String, reason: String },
    /// The forge serving a host is not known.
    #[error(
        "cannot tell which forge serves {host}: pass --forge github|gitlab|gitea|forgejo (and --forge-url with the API URL if it is not at the usual place)"
    )]
    UnknownForge { host: String },
    /// A `--forge` value that is not a known forge.
    #[error("unknown forge {name:?}: use github, gitlab, gitea or forgejo")]
    UnknownForgeName { name: String },
    /// A forge API URL given by the user is not usable.
    #[error("invalid forge API URL {url}: {reason}")]
    ForgeUrl { url: String, reason: String },
    /// A token would be sent in clear text.
    #[error(
        "refusing to send a token to {url} over plain http; use an https URL (plain http is only allowed for localhost)"
    )]
    InsecureForgeUrl { url: String },
    /// No token was found in the environment or through git's credential helpers.
    #[error(
        "no token for {host}: set {vars}, or configure a git credential helper for https://{host}"
    )]
    NoToken { host: String, vars: String },
    /// Running `git credential fill` failed.
    #[error("`git credential fill` for {host} failed: {message}")]
    GitCredential { host: String, message: String },
    /// The forge rejected the token (401/403).
    #[error("token rejected by {host} for {repo}: {hint}")]
    TokenRejected {
        host: String,
        repo: String,
        hint: String,
    },
    /// The repository does not exist or the token cannot see it.
    #[error(
        "repository {repo} not found on {host} (or the token cannot see it): check the git remote URL and the token's access"
    )]
    RepoNotFound { host: String, repo: String },
    /// A branch of the pull request does not exist on the forge.
    #[error(
        "branch {branch} not found in {repo} on {host}: push it first (git push -u origin {branch})"
    )]
    BranchNotFound {
        host: String,
        repo: String,
        branch: String,
    },
    /// The repository is archived (read-only).
    #[error(
        "repository {repo} on {host} is archived (read-only): unarchive it, or change the manifest where it lives now"
    )]
    RepoArchived { host: String, repo: String },
    /// The forge refused to create the pull request for another documented reason.
    #[error("{host} refused the pull request for {repo} (HTTP {status}): {message}")]
    ForgeRejected {
        host: String,
        repo: String,
        status: u16,
        message: String,
    },
    /// The pull request options are not usable.
    #[error("cannot open a pull request on {host} for {repo}: {message}")]
    InvalidPullRequest {
        host: String,
        repo: String,
        message: String,
    },
    /// A reviewer name is not known to the forge.
    #[error("reviewer {user} is not a user on {host}: check the name passed to --reviewer")]
    ReviewerNotFound { host: String, user: String },
    /// The forge could not be reached at all.
    #[error(
        "cannot reach {url}: {message}; check the network, a proxy (HTTPS_PROXY) or --forge-url"
    )]
    Network { url: String, message: String },
    /// The forge answered with something that is not what its API documents.
    #[error("unexpected answer from {url} (HTTP {status}): {message}")]
    ForgeResponse {
        url: String,
        status: u16,
        message: String,
    },

    // ---- status / trace / blame: cluster, Git repositories, manifests ----
    /// The command line is not usable (message says why and what to pass instead).
    #[error("{0}")]
    Usage(String),
    /// No usable kubeconfig.
    #[error("cannot load the kubeconfig: {message}; check --kubeconfig, $KUBECONFIG and --context")]
    Kubeconfig { message: String },
    /// A request to the API server failed.
    #[error("{action}: {message}")]
    Kube { action: String, message: String },
    /// A TYPE argument that discovery does not know.
    #[error("the server doesn't have a resource type \"{name}\" (see kubectl api-resources)")]
    UnknownResourceType { name: String },
    /// The object does not exist.
    #[error("{resource} not found")]
    NotFound { resource: String },
    /// The object has no GitOps owner.
    #[error(
        "{resource} is not managed by Flux or Argo CD: it has no kustomize.toolkit.fluxcd.io or helm.toolkit.fluxcd.io labels and no argocd.argoproj.io/tracking-id annotation"
    )]
    Unmanaged { resource: String },
    /// The owner (or its source) does not say enough to find the Git file.
    #[error("{owner}: {problem}")]
    OwnerIncomplete { owner: String, problem: String },
    /// The Git repository behind a source could not be cloned or fetched.
    #[error(
        "cannot reach the Git repository {url}: {message}; run kubectl gitops inside a clone of it, or pass --repo PATH"
    )]
    RepoUnreachable { url: String, message: String },
    /// The applied commit is not in the repository even after fetching.
    #[error(
        "commit {commit} applied by {owner} is not in {url} (fetched just now): it was probably force-pushed away or never pushed; reconcile {owner} and try again"
    )]
    CommitMissing {
        commit: String,
        owner: String,
        url: String,
    },
    /// Reading a Git repository failed.
    #[error("reading the Git repository at {repo}: {message}")]
    Git { repo: String, message: String },
    /// More than one manifest could define the object.
    #[error(
        "{resource}: {count} manifests at {commit} could define it: {candidates}; set originAnnotations (kustomize buildMetadata) so the file is recorded on the object"
    )]
    AmbiguousFile {
        resource: String,
        commit: String,
        count: usize,
        candidates: String,
    },
    /// No manifest under the owner's path defines the object.
    #[error("{resource}: no manifest under {path} at {commit} defines it ({why})")]
    FileNotFound {
        resource: String,
        path: String,
        commit: String,
        why: String,
    },
    /// A local file (kubeconfig, guard config, --repo) could not be read.
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    /// The guard config given with --guard-config is not valid.
    #[error("invalid guard config {path}: {message}")]
    GuardConfig { path: String, message: String },
    /// Writing the output failed.
    #[error("cannot write the output: {message}")]
    Output { message: String },

    // ---- change: edit / scale / set image / patch / label / annotate through a pull request ----
    /// The editor could not be run or failed.
    #[error(
        "there was a problem with the editor \"{editor}\": {message}; set KUBE_EDITOR or EDITOR to an editor that waits until the file is closed"
    )]
    Editor { editor: String, message: String },
    /// The edit was given up; the message says why and where the edited text is.
    #[error("{message}")]
    EditCancelled { message: String },
    /// The edited object is no longer the same object.
    #[error(
        "the edited object must stay {resource}: {field} changed from {from} to {to}; to rename or move an object, change the files in Git by hand"
    )]
    IdentityChanged {
        resource: String,
        field: String,
        from: String,
        to: String,
    },
    /// The API server refused the changed object in a server-side dry run.
    #[error("the change to {resource} is not valid (server-side dry-run as you): {message}")]
    DryRunRejected { resource: String, message: String },
    /// A field set in a file other builds share, with nowhere of the object's own to change it.
    #[error(
        "cannot change {path} for this object only: it is set in {file}, {why}. Pass --in-base to change it there for all of them"
    )]
    SharedField {
        path: String,
        file: String,
        why: String,
    },
    /// The owner sets the field after the build (Flux `spec.patches`, `spec.images`, `postBuild`).
    #[error(
        "cannot change {path} of {resource} in {file}: its value comes from {by}, which Flux applies after building the manifests, so a change there would be overridden (or would replace the variable for every cluster sharing the file). To change it, {fix}"
    )]
    OverriddenByOwner {
        path: String,
        resource: String,
        file: String,
        by: String,
        fix: String,
    },
    /// A field is set for every object of a kustomization layer (or by a JSON patch operation
    /// that cannot be rewritten).
    #[error("cannot change {path} here: it is set by {why} in {file}; change it there by hand")]
    LayerField {
        path: String,
        file: String,
        why: String,
    },
    /// The change could not be written into the kustomize sources so that they give the
    /// intended object.
    #[error(
        "cannot write the change to {paths} into {file} and the kustomize sources that shape it ({sources}) so that the build gives the edited object; edit those files by hand"
    )]
    KustomizeRoute {
        file: String,
        paths: String,
        sources: String,
    },
    /// A kustomization or patch file is not usable.
    #[error("{file}: {message}")]
    KustomizeSource { file: String, message: String },
    /// The object is generated by a kustomize generator.
    #[error(
        "{resource} is generated by a configMapGenerator or secretGenerator in {file}; change its files or literals there"
    )]
    GeneratedObject { resource: String, file: String },
    /// The object is rendered from a Helm chart (the message says which values key to change).
    #[error("{message}")]
    HelmRendered { message: String },
    /// The agent does not follow a branch, so there is nothing to open a pull request against.
    #[error(
        "{owner} follows {follows}, not a branch: pass --base BRANCH to propose the change on a branch (and move the tag or ref once it is merged)"
    )]
    NotABranch { owner: String, follows: String },
    /// A branch does not exist on the remote.
    #[error("the branch {branch} does not exist on {remote}")]
    BranchMissing { branch: String, remote: String },
    /// The branch to commit on is one that must not be pushed to.
    #[error(
        "refusing to commit on {branch}: {why}; changes go to a branch of their own (pass --branch NAME with another name)"
    )]
    ProtectedBranch { branch: String, why: String },
    /// The local and the remote branch have diverged.
    #[error(
        "the local branch {branch} in {dir} and the one on {remote} have diverged; bring them together there (git pull), or pass --branch with a new name"
    )]
    BranchDiverged {
        branch: String,
        remote: String,
        dir: String,
    },
    /// Running the user's git failed.
    #[error("`{command}` in {dir} failed: {message}")]
    GitCommand {
        command: String,
        dir: String,
        message: String,
    },
    /// No author identity in git config.
    #[error(
        "git does not know who you are in {repo}: run git config --global user.name \"Your Name\" and git config --global user.email you@example.com"
    )]
    NoGitIdentity { repo: String },
    /// A change that stopped part way: what succeeded, what did not, how to finish.
    #[error("{message}")]
    Incomplete { message: String },
    /// The owner chain of an object stops short (the message says where and why).
    #[error("{message}")]
    NotLocated { message: String },
}
