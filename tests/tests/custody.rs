//! Chain of custody end to end: the attack matrix.
//!
//! One table ([`cases`]) of what an attacker (or a careless hand) tries against the guard, with
//! the legitimate neighbour of each attack that must keep working. Every row runs against a real
//! kube-apiserver v1.20.2 with real kubectl and the webhook registered, and asserts the guard's
//! answer: the denial's key phrase, or success. The same table renders `docs/spoof-matrix.md`
//! ([`spoof_matrix_doc_is_current`], no cluster needed), so the document cannot drift from what is
//! tested.
//!
//! The agents are played exactly as they act: Flux's kustomize-controller applies server-side with
//! its field manager and ownership labels, source-controller writes status through the status
//! subresource, Argo CD's application controller applies with the tracking-id annotation
//! `<app>:<group>/<kind>:<ns>/<name>`. Service accounts are impersonated without groups (the API
//! server then gives them the service-account groups, as to a real token).
//!
//! The world the rows act on ([`World`]) is made before the webhook starts, like a cluster the guard
//! is installed into: the bootstrap roots, owners that come from Git (labelled by the root
//! Kustomization, as kustomize-controller labels what it applies) and hand-made owners that were
//! there before the guard (no ownership labels).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gitops_guard_tests::{Cluster, KUSTOMIZE_CONTROLLER, Out, User, Webhook};

const KC: &str = KUSTOMIZE_CONTROLLER;
const SC: &str = "system:serviceaccount:flux-system:source-controller";
const HC: &str = "system:serviceaccount:flux-system:helm-controller";
/// Its only kind (ImageUpdateAutomation) is not installed here: it does not count as Flux.
const IAC: &str = "system:serviceaccount:flux-system:image-automation-controller";
const ARGO: &str = "system:serviceaccount:argocd:argocd-application-controller";
const APPSET: &str = "system:serviceaccount:argocd:argocd-applicationset-controller";
/// How UI and CLI edits reach the cluster: a person's path, not an agent.
const ARGO_SERVER: &str = "system:serviceaccount:argocd:argocd-server";
/// The tenant account of Kustomization team-a/apps (from Git).
const TENANT_A: &str = "system:serviceaccount:team-a:reconciler";
/// The tenant account of Kustomization team-x/evil (hand-made before the guard).
const TENANT_X: &str = "system:serviceaccount:team-x:reconciler";
/// The destination account the default AppProject (a root) gives Application argocd/tenant.
const ARGO_TENANT: &str = "system:serviceaccount:argo-tenant:deployer";
/// The destination account the hand-made AppProject rogue gives Application argocd/rogue.
const ARGO_ROGUE: &str = "system:serviceaccount:argo-rogue:deployer";
const SHA: &str = "3f2a9c1e0b7d4c2a9f8e7d6c5b4a39281706f5e4";
/// The group an impostor claims (bound to cluster-admin, as an OIDC admins group would be).
const IMPOSTOR_GROUP: &str = "oidc:admins";
/// The fixture CRD left out, so image-automation-controller counts as not installed.
const NOT_INSTALLED: &str = "flux-imageupdateautomation.yaml";
/// How long a row is retried while the guard refuses it for another reason than expected (its
/// caches are fed by watches).
const SETTLE: Duration = Duration::from_secs(10);

const GUARD_CONFIG: &str = "mode: enforce
breakGlass:
  groups: [sre]
  maxDuration: 1h
custody:
  roots:
  - {kind: Kustomization, namespace: flux-system, name: flux-system}
  - {kind: GitRepository, namespace: flux-system, name: flux-system}
  - {kind: AppProject, namespace: argocd, name: default}
  - {kind: Kustomization, namespace: bootstrap, name: flux-system}
  - {kind: GitRepository, namespace: bootstrap, name: flux-system}
";

// ---------------------------------------------------------------------------------------------
// The table.

/// Who makes a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// A user of the local cluster with a kubeconfig of its own (ana, ci-bot, the admin).
    Person(User),
    /// A service account: the admin impersonates it without groups, so the API server gives it the
    /// service-account groups: it is that account.
    Sa(&'static str),
    /// A person in the break-glass group `sre` (impersonated with that group).
    Member(&'static str),
    /// A user merely named like a service account: impersonated with `--as-group=oidc:admins`.
    Impostor(&'static str),
    /// The same name in a client certificate (CN, O=oidc:admins) signed by the cluster CA.
    CertImpostor(&'static str),
}

impl Who {
    /// For the matrix document.
    fn describe(self) -> String {
        let sa = |name: &str| {
            name.strip_prefix("system:serviceaccount:")
                .unwrap_or(name)
                .to_string()
        };
        match self {
            Who::Person(User::Developer) => "person `ana`".into(),
            Who::Person(User::CiBot) => "CI job `ci-bot`".into(),
            Who::Person(User::Admin) => "cluster admin".into(),
            Who::Sa(name) => format!("service account `{}`", sa(name)),
            Who::Member(name) => format!("`{name}`, member of break-glass group `sre`"),
            Who::Impostor(name) => {
                format!("user named `{name}` in group `{IMPOSTOR_GROUP}` (impersonated)")
            }
            Who::CertImpostor(name) => format!(
                "client certificate CN=`{name}`, O=`{IMPOSTOR_GROUP}`, signed by the cluster CA"
            ),
        }
    }
}

/// What the guard must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Refused by the guard, the message containing this.
    Denied { contains: &'static str },
    /// Done, with no warning that it would have been denied.
    Allowed,
    /// Done, with a warning containing this.
    Warned { contains: &'static str },
}

/// One kubectl invocation.
#[derive(Debug, Clone)]
struct Cmd {
    who: Who,
    args: Vec<String>,
    stdin: Option<String>,
}

impl Cmd {
    fn new(who: Who, args: &[&str]) -> Cmd {
        Cmd {
            who,
            args: args.iter().map(|a| a.to_string()).collect(),
            stdin: None,
        }
    }

    fn stdin(mut self, text: impl Into<String>) -> Cmd {
        self.stdin = Some(text.into());
        self
    }

    fn display(&self) -> String {
        let mut line = format!("[{:?}] kubectl {}", self.who, self.args.join(" "));
        if let Some(stdin) = &self.stdin {
            line.push_str(&format!(" <<EOF\n{}EOF", stdin));
        }
        line
    }
}

/// One row: an attack (or its legitimate neighbour) and the guard's answer.
#[derive(Debug, Clone)]
struct Case {
    /// Unique; also the name of the case's own namespace, where it needs one.
    id: &'static str,
    /// The group of rules it exercises (a section of the matrix, see [`ROUTES`]).
    route: &'static str,
    /// One line: what the attacker tries, or what the legitimate user does.
    attack: &'static str,
    /// Who makes the attempt.
    who: Who,
    /// Done first, by the agents (or the admin); each must succeed.
    setup: Vec<Cmd>,
    /// The attempt (kubectl arguments, run as `who`).
    command: Vec<String>,
    stdin: Option<String>,
    expect: Expect,
}

fn case(
    id: &'static str,
    route: &'static str,
    attack: &'static str,
    who: Who,
    command: &[&str],
) -> Case {
    Case {
        id,
        route,
        attack,
        who,
        setup: Vec::new(),
        command: command.iter().map(|a| a.to_string()).collect(),
        stdin: None,
        expect: Expect::Allowed,
    }
}

impl Case {
    fn stdin(mut self, text: impl Into<String>) -> Case {
        self.stdin = Some(text.into());
        self
    }

    fn setup(mut self, steps: Vec<Cmd>) -> Case {
        self.setup = steps;
        self
    }

    fn denied(mut self, contains: &'static str) -> Case {
        self.expect = Expect::Denied { contains };
        self
    }

    fn allowed(mut self) -> Case {
        self.expect = Expect::Allowed;
        self
    }

    fn warned(mut self, contains: &'static str) -> Case {
        self.expect = Expect::Warned { contains };
        self
    }

    fn attempt(&self) -> Cmd {
        Cmd {
            who: self.who,
            args: self.command.clone(),
            stdin: self.stdin.clone(),
        }
    }
}

/// The routes (sections of the matrix) in order, with what they are about.
const ROUTES: &[(&str, &str)] = &[
    (
        "owners and sources",
        "Flux sources, Kustomizations, HelmReleases, image automation and Argo CD Applications, \
         ApplicationSets and AppProjects decide what the agents apply. Unlabelled ones are created, \
         changed and deleted only by their agent; operational changes (suspend, reconcile, \
         refresh) stay open to everyone; the bootstrap roots may be created once.",
    ),
    (
        "chain of custody",
        "The agent acts only for owners that come from Git: creating an object for an owner, or \
         moving it to one, needs that owner (and its source, and for Argo CD its project) to trace \
         back through ownership labels to a bootstrap root. Tenant service accounts count only \
         for owners from Git.",
    ),
    (
        "status",
        "The status of owners and sources (a source's artifact, a Kustomization's inventory, an \
         Application's sync result) is what the agents act on: only their controllers write it. \
         Ordinary kinds' status stays free.",
    ),
    (
        "Argo CD operations",
        "A sync started by hand (UI, CLI) may carry only what the Application declares in Git.",
    ),
    (
        "namespaces",
        "A namespace's name label cannot lie, one that holds GitOps-managed objects is deleted \
         only by the agent, its enforce/mode annotations count only when it comes from Git, and \
         no break-glass window can be forged into it.",
    ),
    (
        "exclusions",
        "What the guard leaves alone is decided by name, never by a label someone can set.",
    ),
    (
        "exceptions",
        "allow-fields and break-glass windows never cover ownership, the guard's own annotations, \
         finalizers or owner references, and a window counts only as long as it was opened for.",
    ),
    (
        "identity",
        "A service-account name counts only with the groups the API server gives that account, \
         and a controller only while its kinds are installed.",
    ),
    (
        "managedFields",
        "metadata.managedFields records who set each field (kubectl gitops blame, drift \
         detection): only the agent may rewrite it.",
    ),
];

// Labels and manifests.

/// The ownership labels kustomize-controller puts on what Kustomization `ns/name` applies.
fn flux(ns: &str, name: &str) -> String {
    format!("kustomize.toolkit.fluxcd.io/name: {name}, kustomize.toolkit.fluxcd.io/namespace: {ns}")
}

fn configmap(ns: &str, name: &str, labels: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{{labels}}}\n  annotations: {{{annotations}}}\ndata: {{mode: live}}\n"
    )
}

fn deployment(ns: &str, name: &str, labels: &str, annotations: &str) -> String {
    let sep = if labels.is_empty() { "" } else { ", " };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{app: {name}{sep}{labels}}}\n  annotations: {{{annotations}}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n      - name: web\n        image: ghcr.io/acme/web:1.8.1\n"
    )
}

/// A Widget or Gadget (`tests/fixtures/test-crds`), named after the first letter of its kind.
fn widget(kind: &str, ns: &str, labels: &str) -> String {
    let name = kind[..1].to_lowercase();
    format!(
        "apiVersion: example.gitops-guard.dev/v1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{{labels}}}\nspec: {{size: 1}}\n"
    )
}

fn git_repository(ns: &str, name: &str, labels: &str, url: &str) -> String {
    format!(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{{labels}}}\nspec: {{interval: 1m, url: '{url}', ref: {{branch: main}}}}\n"
    )
}

fn kustomization(ns: &str, name: &str, labels: &str, spec: &str) -> String {
    format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{{labels}}}\nspec: {{interval: 10m, prune: true, {spec}}}\n"
    )
}

fn application(name: &str, labels: &str, project: &str, destination: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\n  labels: {{{labels}}}\nspec:\n  project: {project}\n  source: {{repoURL: 'https://github.com/acme/platform.git', path: {name}/overlays/prod, targetRevision: main}}\n  destination: {{server: 'https://kubernetes.default.svc', namespace: {destination}}}\n"
    )
}

/// Server-side apply by an agent with its field manager.
fn agent_apply(agent: &'static str, manager: &str, yaml: String) -> Cmd {
    Cmd::new(
        Who::Sa(agent),
        &[
            "apply",
            "--server-side",
            &format!("--field-manager={manager}"),
            "-f",
            "-",
        ],
    )
    .stdin(yaml)
}

/// What Flux's kustomize-controller does: server-side apply, its field manager.
fn kc_apply(yaml: String) -> Cmd {
    agent_apply(KC, "kustomize-controller", yaml)
}

/// What Argo CD's application controller does.
fn argo_apply(yaml: String) -> Cmd {
    agent_apply(ARGO, "argocd-controller", yaml)
}

fn as_who(who: Who, args: &[&str]) -> Cmd {
    Cmd::new(who, args)
}

/// RFC 3339 (UTC, seconds) `secs` from now, without asking the cluster.
fn rfc3339_in(secs: u64) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        + secs;
    let (days, rest) = ((t / 86_400) as i64, t % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

const DEV: Who = Who::Person(User::Developer);
const CI: Who = Who::Person(User::CiBot);

/// Every row of the matrix, in the order they run.
fn cases() -> Vec<Case> {
    let apps = flux("flux-system", "apps");
    let apps_json = r#""kustomize.toolkit.fluxcd.io/name":"apps","kustomize.toolkit.fluxcd.io/namespace":"flux-system""#;
    let until = rfc3339_in(30 * 60);
    let open_window = |ns: &str| {
        Cmd::new(
            Who::Member("sam"),
            &[
                "annotate",
                "--overwrite",
                "deployment/web",
                "-n",
                ns,
                &format!("gitops-guard.dev/break-glass-until={until}"),
                "gitops-guard.dev/break-glass-reason=checkout is down",
                "gitops-guard.dev/break-glass-ticket=INC-42",
                "gitops-guard.dev/break-glass-by=sam",
            ],
        )
    };
    let o = "owners and sources";
    let c = "chain of custody";
    let s = "status";
    let a = "Argo CD operations";
    let n = "namespaces";
    let e = "exclusions";
    let x = "exceptions";
    let i = "identity";
    let m = "managedFields";
    vec![
        // ---- owners and sources ----------------------------------------------------------
        case(
            "flux-create",
            o,
            "create a GitRepository and a Kustomization by hand (what `flux create source git` + `flux create kustomization` do)",
            DEV,
            &["create", "-f", "-"],
        )
        .stdin(format!(
            "{}---\n{}",
            git_repository("flux-create", "evil", "", "https://github.com/mallory/evil.git"),
            kustomization("flux-create", "evil", "", "path: ./, sourceRef: {kind: GitRepository, name: evil}")
        ))
        .denied("is a Flux source: it decides what Flux applies, so only Flux may create, change or delete it"),
        case(
            "flux-create-kustomization",
            o,
            "create a Kustomization by hand that reads the root's own source",
            DEV,
            &["create", "-f", "-"],
        )
        .stdin(kustomization(
            "flux-create-kustomization",
            "sideload",
            "",
            "path: ./anything, sourceRef: {kind: GitRepository, name: flux-system, namespace: flux-system}",
        ))
        .denied("is a Flux Kustomization: it decides what Flux applies"),
        case(
            "flux-create-helmrepository",
            o,
            "a CI job creates a HelmRepository pointing at its own chart server",
            CI,
            &["create", "-f", "-"],
        )
        .stdin("apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata: {name: charts, namespace: flux-create-helmrepository}\nspec: {interval: 1h, url: 'https://charts.mallory.example'}\n")
        .denied("is a Flux source: it decides what Flux applies"),
        case(
            "flux-create-imagepolicy",
            o,
            "create an ImagePolicy by hand that would let image automation pick any tag",
            DEV,
            &["create", "-f", "-"],
        )
        .stdin("apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: any, namespace: flux-create-imagepolicy}\nspec: {imageRepositoryRef: {name: web}, policy: {alphabetical: {order: asc}}}\n")
        .denied("is a Flux image automation object: it decides what Flux applies"),
        case(
            "argo-create-application",
            o,
            "create an Argo CD Application in project default by hand",
            DEV,
            &["create", "-f", "-"],
        )
        .stdin(application("mine", "", "default", "argo-mine"))
        .denied("application/mine in argocd is an Argo CD Application: it decides what Argo CD applies, so only Argo CD may create, change or delete it"),
        case(
            "argo-create-applicationset",
            o,
            "a CI job creates an ApplicationSet by hand",
            CI,
            &["create", "-f", "-"],
        )
        .stdin("apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {name: generated, namespace: argocd}\nspec:\n  generators: [{list: {elements: [{name: x}]}}]\n  template:\n    metadata: {name: '{{name}}'}\n    spec: {project: default, source: {repoURL: 'https://github.com/mallory/evil.git', path: ., targetRevision: main}, destination: {server: 'https://kubernetes.default.svc', namespace: x}}\n")
        .denied("applicationset/generated in argocd is an Argo CD ApplicationSet: it decides what Argo CD applies"),
        case(
            "handmade-kustomization-service-account",
            o,
            "give a hand-made Kustomization (there before the guard) a more powerful spec.serviceAccountName",
            DEV,
            &["patch", "kustomizations.kustomize.toolkit.fluxcd.io/evil", "-n", "team-x", "--type=merge", "-p", r#"{"spec":{"serviceAccountName":"kustomize-controller"}}"#],
        )
        .denied("kustomization/evil in team-x is a Flux Kustomization: it decides what Flux applies"),
        case(
            "handmade-kustomization-path",
            o,
            "repoint a hand-made Kustomization's spec.path",
            DEV,
            &["patch", "kustomizations.kustomize.toolkit.fluxcd.io/evil", "-n", "team-x", "--type=merge", "-p", r#"{"spec":{"path":"./clusters/prod/secrets"}}"#],
        )
        .denied("kustomization/evil in team-x is a Flux Kustomization"),
        case(
            "handmade-kustomization-source",
            o,
            "repoint a hand-made Kustomization's spec.sourceRef at the root's repository",
            DEV,
            &["patch", "kustomizations.kustomize.toolkit.fluxcd.io/evil", "-n", "team-x", "--type=merge", "-p", r#"{"spec":{"sourceRef":{"kind":"GitRepository","name":"flux-system","namespace":"flux-system"}}}"#],
        )
        .denied("kustomization/evil in team-x is a Flux Kustomization"),
        case(
            "default-appproject-accounts",
            o,
            "add a destinationServiceAccounts entry to the default AppProject (a root) by hand",
            DEV,
            &["patch", "appprojects.argoproj.io/default", "-n", "argocd", "--type=json", "-p", r#"[{"op":"add","path":"/spec/destinationServiceAccounts/-","value":{"server":"*","namespace":"*","defaultServiceAccount":"kube-system:clusterrole-aggregation-controller"}}]"#],
        )
        .denied("appproject/default in argocd is an Argo CD AppProject: it decides what Argo CD applies"),
        case(
            "root-url",
            o,
            "point the root GitRepository flux-system/flux-system at another repository (spec.url)",
            DEV,
            &["patch", "gitrepositories.source.toolkit.fluxcd.io/flux-system", "-n", "flux-system", "--type=merge", "-p", r#"{"spec":{"url":"https://github.com/mallory/fleet.git"}}"#],
        )
        .denied("gitrepository/flux-system in flux-system is a Flux source"),
        case(
            "root-branch",
            o,
            "switch the root GitRepository to another branch",
            DEV,
            &["patch", "gitrepositories.source.toolkit.fluxcd.io/flux-system", "-n", "flux-system", "--type=merge", "-p", r#"{"spec":{"ref":{"branch":"mallory"}}}"#],
        )
        .denied("gitrepository/flux-system in flux-system is a Flux source"),
        case(
            "source-delete",
            o,
            "delete a source by hand",
            DEV,
            &["delete", "gitrepositories.source.toolkit.fluxcd.io/stale", "-n", "source-delete", "--wait=false"],
        )
        .denied("only Flux may create, change or delete it"),
        case(
            "bootstrap-root",
            o,
            "bootstrap: create the root GitRepository and Kustomization named in custody.roots while they do not exist",
            DEV,
            &["create", "-f", "-"],
        )
        .stdin(format!(
            "{}---\n{}",
            git_repository("bootstrap", "flux-system", "", "https://github.com/acme/fleet.git"),
            kustomization("bootstrap", "flux-system", "", "path: ./clusters/bootstrap, sourceRef: {kind: GitRepository, name: flux-system}")
        ))
        .warned("is a bootstrap root (custody.roots): created now, from here on only Flux changes it"),
        case(
            "bootstrap-extra",
            o,
            "create another Kustomization next to the bootstrap root, as if it were one",
            DEV,
            &["create", "-f", "-"],
        )
        .stdin(kustomization("bootstrap", "extra", "", "path: ./extra, sourceRef: {kind: GitRepository, name: flux-system}"))
        .denied("kustomization/extra in bootstrap is a Flux Kustomization"),
        case(
            "suspend-owner",
            o,
            "suspend a Kustomization (spec.suspend, operational)",
            DEV,
            &["patch", "kustomizations.kustomize.toolkit.fluxcd.io/evil", "-n", "team-x", "--type=merge", "-p", r#"{"spec":{"suspend":true}}"#],
        )
        .allowed(),
        case(
            "reconcile-owner",
            o,
            "ask Flux to reconcile a Kustomization now (reconcile.fluxcd.io/requestedAt, operational)",
            DEV,
            &["annotate", "--overwrite", "kustomizations.kustomize.toolkit.fluxcd.io/evil", "-n", "team-x", "reconcile.fluxcd.io/requestedAt=2026-11-21T12:00:00Z"],
        )
        .allowed(),
        case(
            "argo-refresh",
            o,
            "refresh an Application from the Argo CD UI (argocd.argoproj.io/refresh, operational)",
            Who::Sa(ARGO_SERVER),
            &["annotate", "--overwrite", "applications.argoproj.io/web", "-n", "argocd", "argocd.argoproj.io/refresh=hard"],
        )
        .allowed(),
        case(
            "agent-creates-source",
            o,
            "kustomize-controller applies a GitRepository that a Kustomization from Git declares",
            Who::Sa(KC),
            &["apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-"],
        )
        .stdin(git_repository("agent-creates-source", "podinfo", &apps, "https://github.com/stefanprodan/podinfo"))
        .allowed(),
        case(
            "appset-generates-application",
            o,
            "the ApplicationSet controller generates an Application",
            Who::Sa(APPSET),
            &["create", "-f", "-"],
        )
        .stdin(application("generated-1", "", "default", "generated-1"))
        .allowed(),
        case(
            "dry-run-owner",
            o,
            "try a denied owner change as a server-side dry run (what `kubectl gitops` and `kubectl diff` do)",
            DEV,
            &["create", "--dry-run=server", "-f", "-"],
        )
        .stdin(kustomization("dry-run-owner", "trial", "", "path: ./, sourceRef: {kind: GitRepository, name: flux-system, namespace: flux-system}"))
        .warned("dry-run only: the real change would be denied: kustomization/trial in dry-run-owner is a Flux Kustomization"),
        // ---- chain of custody ------------------------------------------------------------
        case(
            "tenant-of-handmade-owner",
            c,
            "the tenant account named by a hand-made Kustomization applies that owner's objects",
            Who::Sa(TENANT_X),
            &["apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-"],
        )
        .stdin(deployment("team-x", "tenant-of-handmade-owner", &flux("team-x", "evil"), ""))
        .denied("deployment/tenant-of-handmade-owner in team-x is managed by Flux Kustomization team-x/evil"),
        case(
            "tenant-of-git-owner",
            c,
            "the tenant account of a Kustomization from Git applies that owner's objects",
            Who::Sa(TENANT_A),
            &["apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-"],
        )
        .stdin(deployment("team-a", "tenant-of-git-owner", &flux("team-a", "apps"), ""))
        .allowed(),
        case(
            "agent-for-handmade-owner",
            c,
            "kustomize-controller creates an object labelled for a hand-made Kustomization",
            Who::Sa(KC),
            &["apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-"],
        )
        .stdin(configmap("agent-for-handmade-owner", "payload", &flux("team-x", "evil"), ""))
        .denied("does not come from Git (no chain of owners leads from it"),
        case(
            "agent-for-git-owner",
            c,
            "kustomize-controller creates an object for a Kustomization from Git",
            Who::Sa(KC),
            &["apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-"],
        )
        .stdin(configmap("agent-for-git-owner", "settings", &apps, ""))
        .allowed(),
        case(
            "agent-for-unsourced-owner",
            c,
            "kustomize-controller creates an object for a Kustomization from Git that reads a hand-made source",
            Who::Sa(KC),
            &["apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-"],
        )
        .stdin(configmap("agent-for-unsourced-owner", "payload", &flux("flux-system", "stray"), ""))
        .denied("Flux Kustomization flux-system/stray does not come from Git"),
        case(
            "agent-for-owner-including-handmade",
            c,
            "kustomize-controller creates an object for a Kustomization from Git whose GitRepository includes a hand-made one",
            Who::Sa(KC),
            &["apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-"],
        )
        .stdin(configmap("agent-for-owner-including-handmade", "payload", &flux("flux-system", "includes"), ""))
        .denied("Flux Kustomization flux-system/includes does not come from Git"),
        case(
            "agent-moves-between-git-owners",
            c,
            "kustomize-controller moves an object from one Kustomization from Git to another",
            Who::Sa(KC),
            &["apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-"],
        )
        .setup(vec![kc_apply(configmap("agent-moves-between-git-owners", "moving", &apps, ""))])
        .stdin(configmap("agent-moves-between-git-owners", "moving", &flux("flux-system", "infra"), ""))
        .allowed(),
        case(
            "agent-moves-to-handmade-owner",
            c,
            "kustomize-controller moves an object from a Kustomization from Git to a hand-made one",
            Who::Sa(KC),
            &["apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-"],
        )
        .setup(vec![kc_apply(configmap("agent-moves-to-handmade-owner", "stolen", &apps, ""))])
        .stdin(configmap("agent-moves-to-handmade-owner", "stolen", &flux("team-x", "evil"), ""))
        .denied("so the agent may not move configmap/stolen in agent-moves-to-handmade-owner for it"),
        case(
            "argo-for-handmade-application",
            c,
            "Argo CD's application controller creates an object tracked by a hand-made Application",
            Who::Sa(ARGO),
            &["apply", "--server-side", "--field-manager=argocd-controller", "-f", "-"],
        )
        .stdin(configmap("argo-hand", "payload", "", "argocd.argoproj.io/tracking-id: 'hand:/ConfigMap:argo-hand/payload'"))
        .denied("Argo CD Application argocd/hand does not come from Git"),
        case(
            "argo-for-git-application",
            c,
            "Argo CD's application controller creates an object for an Application from Git",
            Who::Sa(ARGO),
            &["apply", "--server-side", "--field-manager=argocd-controller", "-f", "-"],
        )
        .stdin(configmap("argo-web", "web-env", "", "argocd.argoproj.io/tracking-id: 'web:/ConfigMap:argo-web/web-env'"))
        .allowed(),
        case(
            "argo-for-application-in-handmade-project",
            c,
            "Argo CD's application controller creates an object for an Application from Git whose AppProject was made by hand",
            Who::Sa(ARGO),
            &["apply", "--server-side", "--field-manager=argocd-controller", "-f", "-"],
        )
        .stdin(configmap("argo-rogue", "payload", "", "argocd.argoproj.io/tracking-id: 'rogue:/ConfigMap:argo-rogue/payload'"))
        .denied("Argo CD Application argocd/rogue does not come from Git (no chain of owners leads from it, or from its sources or AppProject"),
        case(
            "argo-destination-account-of-handmade-project",
            c,
            "the destination account a hand-made AppProject gives an Application writes that Application's objects",
            Who::Sa(ARGO_ROGUE),
            &["apply", "--server-side", "--field-manager=argocd-controller", "-f", "-"],
        )
        .stdin(configmap("argo-rogue", "settings", "", "argocd.argoproj.io/tracking-id: 'rogue:/ConfigMap:argo-rogue/settings'"))
        .denied("configmap/settings in argo-rogue is managed by Argo CD Application argocd/rogue"),
        case(
            "argo-destination-account-of-root-project",
            c,
            "the destination account the default AppProject (a root) gives an Application from Git writes its objects",
            Who::Sa(ARGO_TENANT),
            &["apply", "--server-side", "--field-manager=argocd-controller", "-f", "-"],
        )
        .stdin(configmap("argo-tenant", "settings", "", "argocd.argoproj.io/tracking-id: 'tenant:/ConfigMap:argo-tenant/settings'"))
        .allowed(),
        // ---- status ----------------------------------------------------------------------
        case(
            "source-status-by-hand",
            s,
            "write a source's status by hand (an artifact that points at another tarball)",
            DEV,
            &["patch", "gitrepositories.source.toolkit.fluxcd.io/team-a", "-n", "team-a", "--subresource=status", "--type=merge", "-p", r#"{"status":{"artifact":{"url":"http://mallory.example/evil.tar.gz","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","revision":"main@sha1:0000000000000000000000000000000000000000"}}}"#],
        )
        .denied("the status of gitrepository/team-a in team-a is written only by Flux's controllers"),
        case(
            "source-status-by-controller",
            s,
            "source-controller writes its source's status",
            Who::Sa(SC),
            &["patch", "gitrepositories.source.toolkit.fluxcd.io/team-a", "-n", "team-a", "--subresource=status", "--type=merge", "-p", &format!(r#"{{"status":{{"artifact":{{"revision":"main@sha1:{SHA}","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"}}}}}}"#)],
        )
        .allowed(),
        case(
            "suspend-source",
            s,
            "suspend a source (spec.suspend, operational)",
            DEV,
            &["patch", "gitrepositories.source.toolkit.fluxcd.io/paused", "-n", "suspend-source", "--type=merge", "-p", r#"{"spec":{"suspend":true}}"#],
        )
        .setup(vec![kc_apply(git_repository("suspend-source", "paused", &apps, "https://github.com/acme/paused.git"))])
        .allowed(),
        case(
            "suspended-source-status-by-hand",
            s,
            "suspend a source (allowed), then write its status while source-controller is away",
            DEV,
            &["patch", "gitrepositories.source.toolkit.fluxcd.io/paused", "-n", "suspended-source-status-by-hand", "--subresource=status", "--type=merge", "-p", r#"{"status":{"artifact":{"url":"http://mallory.example/evil.tar.gz"}}}"#],
        )
        .setup(vec![
            kc_apply(git_repository("suspended-source-status-by-hand", "paused", &apps, "https://github.com/acme/paused.git")),
            as_who(DEV, &["patch", "gitrepositories.source.toolkit.fluxcd.io/paused", "-n", "suspended-source-status-by-hand", "--type=merge", "-p", r#"{"spec":{"suspend":true}}"#]),
        ])
        .denied("is written only by Flux's controllers"),
        case(
            "kustomization-inventory-by-hand",
            s,
            "forge a Kustomization's status.inventory (so Flux would prune what it never applied)",
            DEV,
            &["patch", "kustomizations.kustomize.toolkit.fluxcd.io/evil", "-n", "team-x", "--subresource=status", "--type=merge", "-p", r#"{"status":{"inventory":{"entries":[{"id":"prod_web_apps_Deployment","v":"v1"}]}}}"#],
        )
        .denied("the status of kustomization/evil in team-x is written only by Flux's controllers"),
        case(
            "applicationset-status-by-hand",
            s,
            "write an ApplicationSet's status by hand",
            DEV,
            &["patch", "applicationsets.argoproj.io/fleet", "-n", "argocd", "--subresource=status", "--type=merge", "-p", r#"{"status":{"conditions":[{"type":"ResourcesUpToDate","status":"True","message":"forged"}]}}"#],
        )
        .denied("is written only by Argo CD's controllers"),
        case(
            "deployment-status-by-hand",
            s,
            "write the status of an ordinary kind (a Deployment's)",
            DEV,
            &["patch", "deployment/web", "-n", "deployment-status-by-hand", "--subresource=status", "--type=merge", "-p", r#"{"status":{"observedGeneration":1,"replicas":2}}"#],
        )
        .setup(vec![kc_apply(deployment("deployment-status-by-hand", "web", &apps, ""))])
        .allowed(),
        case(
            "status-plants-allow-manual",
            s,
            "write gitops-guard.dev/allow: manual onto a Flux-managed Deployment through its status subresource (an API server before 1.22 keeps annotations from a status write)",
            DEV,
            &["patch", "deployment/web", "-n", "status-plants-allow-manual", "--subresource=status", "--type=merge", "-p", r#"{"metadata":{"annotations":{"gitops-guard.dev/allow":"manual"}},"status":{"replicas":2}}"#],
        )
        .setup(vec![kc_apply(deployment("status-plants-allow-manual", "web", &apps, ""))])
        .denied("a status write may change only the status, and this one also changes metadata.annotations['gitops-guard.dev/allow']"),
        case(
            "status-strips-ownership",
            s,
            "strip a Flux-managed Service's ownership labels through its status subresource (then change it as if unmanaged)",
            DEV,
            &["patch", "service/web", "-n", "status-strips-ownership", "--subresource=status", "--type=json", "-p", r#"[{"op":"replace","path":"/metadata/labels","value":{}}]"#],
        )
        .setup(vec![kc_apply(format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: status-strips-ownership\n  labels: {{{apps}}}\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 80, protocol: TCP}}]\n"
        ))])
        .denied("a status write may change only the status, and this one also changes metadata.labels"),
        case(
            "status-namespace-audit-mode",
            s,
            "annotate a namespace from Git gitops-guard.dev/mode: audit through its status subresource (every denial in it would become a warning)",
            DEV,
            &["patch", "namespace/status-namespace-audit-mode", "--subresource=status", "--type=merge", "-p", r#"{"metadata":{"annotations":{"gitops-guard.dev/mode":"audit"}}}"#],
        )
        .setup(vec![kc_apply(format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: status-namespace-audit-mode\n  labels: {{{apps}}}\n"
        ))])
        .denied("namespace/status-namespace-audit-mode: a status write may change only the status"),
        case(
            "finalize-namespace-audit-mode",
            s,
            "annotate a namespace from Git gitops-guard.dev/mode: audit through its finalize subresource (the API server keeps a finalize write's metadata on every version)",
            DEV,
            &["replace", "--raw", "/api/v1/namespaces/finalize-namespace-audit-mode/finalize", "-f", "-"],
        )
        .stdin(format!(
            r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"finalize-namespace-audit-mode","labels":{{{apps_json}}},"annotations":{{"gitops-guard.dev/mode":"audit"}}}},"spec":{{"finalizers":["kubernetes"]}}}}"#
        ))
        .setup(vec![kc_apply(format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: finalize-namespace-audit-mode\n  labels: {{{apps}}}\n"
        ))])
        .denied("namespace/finalize-namespace-audit-mode: a finalize write may change only spec.finalizers"),
        case(
            "finalize-namespace-release",
            s,
            "clear the spec.finalizers of a namespace from Git through its finalize subresource (how a stuck namespace is let go)",
            DEV,
            &["replace", "--raw", "/api/v1/namespaces/finalize-namespace-release/finalize", "-f", "-"],
        )
        .stdin(format!(
            r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"finalize-namespace-release","labels":{{{apps_json}}}}},"spec":{{"finalizers":[]}}}}"#
        ))
        .setup(vec![kc_apply(format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: finalize-namespace-release\n  labels: {{{apps}}}\n"
        ))]),
        case(
            "status-plants-exception-before-adoption",
            s,
            "write gitops-guard.dev/allow-fields onto a Deployment through its status before the agent adopts it (it would count as Git's)",
            DEV,
            &["patch", "deployment/web", "-n", "status-plants-exception-before-adoption", "--subresource=status", "--type=merge", "-p", r#"{"metadata":{"annotations":{"gitops-guard.dev/allow-fields":"spec"}}}"#],
        )
        .setup(vec![as_who(Who::Person(User::Admin), &["apply", "-f", "-"])
            .stdin(deployment("status-plants-exception-before-adoption", "web", "", ""))])
        .denied("a status write may change only the status"),
        case(
            "status-without-subresource",
            s,
            "forge the status of a Flux-managed custom resource whose kind keeps status as an ordinary field (no status subresource)",
            DEV,
            &["patch", "widgets.example.gitops-guard.dev/w", "-n", "status-without-subresource", "--type=merge", "-p", r#"{"status":{"phase":"Ready"}}"#],
        )
        .setup(vec![kc_apply(widget("Widget", "status-without-subresource", &apps))])
        .denied("widget/w in status-without-subresource is managed by Flux Kustomization flux-system/apps"),
        case(
            "status-with-subresource",
            s,
            "send a status change of a Flux-managed custom resource whose kind has a status subresource in a plain update (the API server drops it: not a change)",
            DEV,
            &["patch", "gadgets.example.gitops-guard.dev/g", "-n", "status-with-subresource", "--type=merge", "-p", r#"{"status":{"phase":"Ready"}}"#],
        )
        .setup(vec![kc_apply(widget("Gadget", "status-with-subresource", &apps))])
        .allowed(),
        case(
            "application-status-by-hand",
            s,
            "forge the status of an Application from Git in a plain update (it has no status subresource)",
            DEV,
            &["patch", "applications.argoproj.io/web", "-n", "argocd", "--type=merge", "-p", r#"{"status":{"sync":{"status":"Synced","revision":"0000000000000000000000000000000000000000"}}}"#],
        )
        .denied("application/web in argocd is managed by Flux Kustomization flux-system/flux-system"),
        case(
            "handmade-application-status-by-hand",
            s,
            "forge the status of a hand-made Application in a plain update",
            DEV,
            &["patch", "applications.argoproj.io/hand", "-n", "argocd", "--type=merge", "-p", r#"{"status":{"sync":{"status":"Synced","revision":"0000000000000000000000000000000000000000"}}}"#],
        )
        .denied("application/hand in argocd is an Argo CD Application"),
        case(
            "application-status-by-controller",
            s,
            "Argo CD's application controller writes the status of an Application from Git",
            Who::Sa(ARGO),
            &["patch", "applications.argoproj.io/web", "-n", "argocd", "--type=merge", "-p", r#"{"status":{"sync":{"status":"OutOfSync","revision":"ffffffffffffffffffffffffffffffffffffffff"}}}"#],
        )
        .allowed(),
        case(
            "handmade-application-status-by-controller",
            s,
            "Argo CD's application controller writes the status of a hand-made Application",
            Who::Sa(ARGO),
            &["patch", "applications.argoproj.io/hand", "-n", "argocd", "--type=merge", "-p", r#"{"status":{"sync":{"status":"OutOfSync"}}}"#],
        )
        .allowed(),
        // ---- Argo CD operations ----------------------------------------------------------
        case(
            "sync-with-manifests",
            a,
            "start a sync from the UI that carries inline manifests (operation.sync.manifests)",
            Who::Sa(ARGO_SERVER),
            &["patch", "applications.argoproj.io/web", "-n", "argocd", "--type=merge", "-p", r#"{"operation":{"sync":{"revision":"main","manifests":["apiVersion: v1\nkind: ConfigMap\nmetadata: {name: injected, namespace: argo-web}\n"]},"initiatedBy":{"username":"ana"}}}"#],
        )
        .denied("a sync started by hand may carry only what the Application declares in Git; this one also sets operation.sync.manifests"),
        case(
            "sync-other-revision",
            a,
            "sync an Application to a revision other than its spec.source.targetRevision",
            Who::Sa(ARGO_SERVER),
            &["patch", "applications.argoproj.io/web", "-n", "argocd", "--type=merge", "-p", r#"{"operation":{"sync":{"revision":"mallory-branch"},"initiatedBy":{"username":"ana"}}}"#],
        )
        .denied("this one also sets operation.sync.revision"),
        case(
            "sync-with-options",
            a,
            "sync with extra sync options (Replace=true, ServerSideApply=false)",
            Who::Sa(ARGO_SERVER),
            &["patch", "applications.argoproj.io/web", "-n", "argocd", "--type=merge", "-p", r#"{"operation":{"sync":{"revision":"main","syncOptions":["Replace=true","ServerSideApply=false"]},"initiatedBy":{"username":"ana"}}}"#],
        )
        .denied("this one also sets operation.sync.syncOptions"),
        case(
            "sync-other-source",
            a,
            "sync from another source (operation.sync.source)",
            DEV,
            &["patch", "applications.argoproj.io/web", "-n", "argocd", "--type=merge", "-p", r#"{"operation":{"sync":{"revision":"main","source":{"repoURL":"https://github.com/mallory/evil.git","path":".","targetRevision":"main"}},"initiatedBy":{"username":"ana"}}}"#],
        )
        .denied("this one also sets operation.sync.source"),
        case(
            "sync-some-resources",
            a,
            "sync only a chosen subset of resources (operation.sync.resources)",
            Who::Sa(ARGO_SERVER),
            &["patch", "applications.argoproj.io/web", "-n", "argocd", "--type=merge", "-p", r#"{"operation":{"sync":{"revision":"main","resources":[{"kind":"ConfigMap","name":"web-env","namespace":"argo-web"}]},"initiatedBy":{"username":"ana"}}}"#],
        )
        .denied("this one also sets operation.sync.resources"),
        case(
            "sync-as-declared",
            a,
            "sync an Application as it is declared (the UI's Sync button)",
            Who::Sa(ARGO_SERVER),
            &["patch", "applications.argoproj.io/web", "-n", "argocd", "--type=merge", "-p", r#"{"operation":{"sync":{"revision":"main"},"initiatedBy":{"username":"ana"}}}"#],
        )
        .allowed(),
        // ---- namespaces ------------------------------------------------------------------
        case(
            "delete-namespace-holding-owner",
            n,
            "delete a namespace (itself not from Git) that holds a Kustomization",
            DEV,
            &["delete", "namespace", "delete-namespace-holding-owner", "--wait=false"],
        )
        .denied("namespace/delete-namespace-holding-owner holds GitOps-managed objects, owners or sources"),
        case(
            "delete-namespace-in-inventory",
            n,
            "delete a namespace that a Flux Kustomization's inventory applies to",
            DEV,
            &["delete", "namespace", "delete-namespace-in-inventory", "--wait=false"],
        )
        .denied("holds GitOps-managed objects, owners or sources"),
        case(
            "delete-namespace-application-destination",
            n,
            "delete the destination namespace of an Argo CD Application",
            CI,
            &["delete", "namespace", "delete-namespace-application-destination", "--wait=false"],
        )
        .denied("holds GitOps-managed objects, owners or sources"),
        case(
            "delete-empty-namespace",
            n,
            "delete an empty namespace nothing refers to",
            DEV,
            &["delete", "namespace", "delete-empty-namespace", "--wait=false"],
        )
        .allowed(),
        case(
            "agent-deletes-namespace-holding-owner",
            n,
            "kustomize-controller prunes a namespace that holds owners",
            Who::Sa(KC),
            &["delete", "namespace", "agent-deletes-namespace-holding-owner", "--wait=false"],
        )
        .allowed(),
        case(
            "remove-enforce-from-git-namespace",
            n,
            "remove gitops-guard.dev/enforce from a namespace that comes from Git",
            DEV,
            &["annotate", "namespace", "remove-enforce-from-git-namespace", "gitops-guard.dev/enforce-"],
        )
        .denied("namespace/remove-enforce-from-git-namespace is managed by Flux Kustomization flux-system/apps"),
        case(
            "enforce-all-from-git",
            n,
            "create an unlabelled object in a namespace whose enforce: all comes from Git",
            DEV,
            &["create", "configmap", "note", "-n", "enforce-all-from-git", "--from-literal=a=1"],
        )
        .denied("configmap/note in enforce-all-from-git is managed by namespace enforce-all-from-git (gitops-guard.dev/enforce: all)"),
        case(
            "helmrelease-values-by-hand",
            "chain of custody",
            "edit the ConfigMap a HelmRelease from Git applies as values (valuesFrom), made by hand and not in Git",
            DEV,
            &["patch", "configmap/shop-values", "-n", "helmrelease-values-by-hand", "--type=merge", "-p", r#"{"data":{"values.yaml":"image: {repository: ghcr.io/mallory/shop}"}}"#],
        )
        .denied("applies what it holds (valuesFrom / postBuild.substituteFrom), so changing it changes what runs"),
        case(
            "unread-configmap-by-hand",
            "chain of custody",
            "edit a hand-made ConfigMap beside it that nothing applies",
            DEV,
            &["patch", "configmap/notes", "-n", "helmrelease-values-by-hand", "--type=merge", "-p", r#"{"data":{"note":"hello"}}"#],
        )
        .allowed(),
        case(
            "tenant-helm-release",
            n,
            "helm-controller, as the tenant's account, stores a release Secret (Helm's labels only) in the tenant's enforce: all namespace",
            Who::Sa("system:serviceaccount:tenant-releases:reconciler"),
            &["create", "secret", "generic", "sh.helm.release.v1.web.v1", "-n", "tenant-releases", "--type=helm.sh/release.v1", "--from-literal=release=H4sI"],
        )
        .allowed(),
        case(
            "other-tenant-helm-release",
            n,
            "another tenant's account writes in that namespace",
            Who::Sa(TENANT_A),
            &["create", "secret", "generic", "sh.helm.release.v1.evil.v1", "-n", "tenant-releases", "--type=helm.sh/release.v1", "--from-literal=release=H4sI"],
        )
        .denied("secret/sh.helm.release.v1.evil.v1 in tenant-releases is managed by namespace tenant-releases (gitops-guard.dev/enforce: all)"),
        case(
            "enforce-all-by-hand",
            n,
            "create an object in a hand-made namespace annotated enforce: all (the annotation does not count)",
            DEV,
            &["create", "configmap", "note", "-n", "enforce-all-by-hand", "--from-literal=a=1"],
        )
        .allowed(),
        case(
            "audit-mode-by-hand",
            n,
            "annotate a hand-made namespace gitops-guard.dev/mode: audit to soften the guard, then scale a Flux object in it",
            DEV,
            &["scale", "deployment/web", "-n", "audit-mode-by-hand", "--replicas=9"],
        )
        .setup(vec![kc_apply(deployment("audit-mode-by-hand", "web", &apps, ""))])
        .denied("deployment/web in audit-mode-by-hand is managed by Flux Kustomization flux-system/apps"),
        case(
            "namespace-with-forged-window",
            n,
            "create a namespace that brings its own break-glass window until 2099",
            DEV,
            &["create", "-f", "-"],
        )
        .stdin("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: forged-window\n  annotations:\n    gitops-guard.dev/break-glass-until: '2099-01-01T00:00:00Z'\n    gitops-guard.dev/break-glass-reason: forever\n    gitops-guard.dev/break-glass-by: ana\n")
        .denied("break-glass on namespace/forged-window refused"),
        case(
            "namespace-with-long-window",
            n,
            "a break-glass member creates a namespace with a window until 2099",
            Who::Member("sam"),
            &["create", "-f", "-"],
        )
        .stdin("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: long-window\n  annotations:\n    gitops-guard.dev/break-glass-until: '2099-01-01T00:00:00Z'\n    gitops-guard.dev/break-glass-reason: forever\n    gitops-guard.dev/break-glass-by: sam\n")
        .denied("break-glass on namespace/long-window refused: a break-glass window may last at most 1h"),
        case(
            "relabel-namespace-as-kube-system",
            n,
            "relabel a namespace kubernetes.io/metadata.name=kube-system (to slip past label-based exclusions)",
            DEV,
            &["label", "--overwrite", "namespace", "relabel-namespace-as-kube-system", "kubernetes.io/metadata.name=kube-system"],
        )
        .denied("the label kubernetes.io/metadata.name must be the namespace's own name"),
        case(
            "create-namespace-labelled-kube-system",
            n,
            "create a namespace labelled kubernetes.io/metadata.name=kube-system",
            DEV,
            &["create", "-f", "-"],
        )
        .stdin("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: sneaky\n  labels: {kubernetes.io/metadata.name: kube-system}\n")
        .denied("the label kubernetes.io/metadata.name must be the namespace's own name"),
        case(
            "create-namespace-labelled-own-name",
            n,
            "create a namespace labelled with its own name (what Kubernetes 1.21+ does itself)",
            DEV,
            &["create", "-f", "-"],
        )
        .stdin("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: labelled-right\n  labels: {kubernetes.io/metadata.name: labelled-right}\n")
        .allowed(),
        // ---- exclusions ------------------------------------------------------------------
        case(
            "excluded-namespace",
            e,
            "change a Flux-labelled object in kube-system (excluded by name in the guard's config)",
            DEV,
            &["patch", "configmap/flux-settings", "-n", "kube-system", "--type=merge", "-p", r#"{"data":{"mode":"hand"}}"#],
        )
        .setup(vec![kc_apply(configmap("kube-system", "flux-settings", &apps, ""))])
        .allowed(),
        case(
            "part-of-gitops-guard",
            e,
            "change a Flux-managed object labelled app.kubernetes.io/part-of=gitops-guard (the guard's own label)",
            DEV,
            &["patch", "configmap/guard-settings", "-n", "part-of-gitops-guard", "--type=merge", "-p", r#"{"data":{"mode":"hand"}}"#],
        )
        .setup(vec![kc_apply(configmap("part-of-gitops-guard", "guard-settings", &format!("{apps}, app.kubernetes.io/part-of: gitops-guard"), ""))])
        .denied("configmap/guard-settings in part-of-gitops-guard is managed by Flux Kustomization flux-system/apps"),
        // ---- exceptions ------------------------------------------------------------------
        case(
            "allow-fields-strips-ownership",
            x,
            "use allow-fields: metadata.labels (from Git) to strip the ownership label",
            DEV,
            &["label", "deployment/web", "-n", "allow-fields-strips-ownership", "kustomize.toolkit.fluxcd.io/name-"],
        )
        .setup(vec![kc_apply(deployment("allow-fields-strips-ownership", "web", &apps, "gitops-guard.dev/allow-fields: metadata.labels"))])
        .denied("this change also touches: metadata.labels['kustomize.toolkit.fluxcd.io/name']"),
        case(
            "allow-fields-strips-all-ownership",
            x,
            "use allow-fields: metadata.labels to strip both ownership labels",
            DEV,
            &["label", "deployment/web", "-n", "allow-fields-strips-all-ownership", "kustomize.toolkit.fluxcd.io/name-", "kustomize.toolkit.fluxcd.io/namespace-"],
        )
        .setup(vec![kc_apply(deployment("allow-fields-strips-all-ownership", "web", &apps, "gitops-guard.dev/allow-fields: metadata.labels"))])
        .denied("never covered by allow-fields or break-glass"),
        case(
            "allow-fields-label",
            x,
            "change an ordinary label that allow-fields: metadata.labels (from Git) covers",
            DEV,
            &["label", "deployment/web", "-n", "allow-fields-label", "team=payments"],
        )
        .setup(vec![kc_apply(deployment("allow-fields-label", "web", &apps, "gitops-guard.dev/allow-fields: metadata.labels"))])
        .allowed(),
        case(
            "allow-fields-widened-by-hand",
            x,
            "widen an allow-fields exception by hand",
            DEV,
            &["annotate", "--overwrite", "deployment/web", "-n", "allow-fields-widened-by-hand", "gitops-guard.dev/allow-fields=spec"],
        )
        .setup(vec![kc_apply(deployment("allow-fields-widened-by-hand", "web", &apps, "gitops-guard.dev/allow-fields: spec.replicas"))])
        .denied("metadata.annotations['gitops-guard.dev/allow-fields']"),
        case(
            "allow-fields-finalizer",
            x,
            "add a finalizer under allow-fields: metadata (to block Flux's prune)",
            DEV,
            &["patch", "deployment/web", "-n", "allow-fields-finalizer", "--type=merge", "-p", r#"{"metadata":{"finalizers":["mallory.example/keep"]}}"#],
        )
        .setup(vec![kc_apply(deployment("allow-fields-finalizer", "web", &apps, "gitops-guard.dev/allow-fields: metadata"))])
        .denied("this change also touches: metadata.finalizers"),
        case(
            "allow-manual-by-hand",
            x,
            "opt an object out of GitOps by hand (gitops-guard.dev/allow: manual)",
            DEV,
            &["annotate", "deployment/web", "-n", "allow-manual-by-hand", "gitops-guard.dev/allow=manual"],
        )
        .setup(vec![kc_apply(deployment("allow-manual-by-hand", "web", &apps, ""))])
        .denied("deployment/web in allow-manual-by-hand is managed by Flux Kustomization flux-system/apps"),
        case(
            "break-glass-allow-manual",
            x,
            "under an open break-glass window, set gitops-guard.dev/allow: manual",
            Who::Member("kim"),
            &["annotate", "deployment/web", "-n", "break-glass-allow-manual", "gitops-guard.dev/allow=manual"],
        )
        .setup(vec![kc_apply(deployment("break-glass-allow-manual", "web", &apps, "")), open_window("break-glass-allow-manual")])
        .denied("break-glass on deployment/web in break-glass-allow-manual refused: this change touches"),
        case(
            "break-glass-strips-ownership",
            x,
            "under an open break-glass window, strip the ownership labels",
            Who::Member("kim"),
            &["label", "deployment/web", "-n", "break-glass-strips-ownership", "kustomize.toolkit.fluxcd.io/name-", "kustomize.toolkit.fluxcd.io/namespace-"],
        )
        .setup(vec![kc_apply(deployment("break-glass-strips-ownership", "web", &apps, "")), open_window("break-glass-strips-ownership")])
        .denied("break-glass on deployment/web in break-glass-strips-ownership refused: this change touches metadata.labels"),
        case(
            "break-glass-hotfix",
            x,
            "under an open break-glass window, a member ships a hotfix image",
            Who::Member("kim"),
            &["set", "image", "deployment/web", "web=ghcr.io/acme/web:1.8.1-hotfix", "-n", "break-glass-hotfix"],
        )
        .setup(vec![kc_apply(deployment("break-glass-hotfix", "web", &apps, "")), open_window("break-glass-hotfix")])
        .warned("break-glass: deployment/web in break-glass-hotfix changed by kim under the window opened by sam"),
        case(
            "break-glass-outsider",
            x,
            "under an open break-glass window, someone outside the group changes the object",
            DEV,
            &["set", "image", "deployment/web", "web=ghcr.io/acme/web:1.8.1-hotfix", "-n", "break-glass-outsider"],
        )
        .setup(vec![kc_apply(deployment("break-glass-outsider", "web", &apps, "")), open_window("break-glass-outsider")])
        .denied("deployment/web in break-glass-outsider is managed by Flux Kustomization flux-system/apps"),
        case(
            "break-glass-window-at-rest",
            x,
            "a window until 2099 written through the agent (Git): a member relies on it",
            Who::Member("kim"),
            &["set", "image", "deployment/web", "web=ghcr.io/acme/web:1.8.1-hotfix", "-n", "break-glass-window-at-rest"],
        )
        .setup(vec![kc_apply(deployment(
            "break-glass-window-at-rest",
            "web",
            &apps,
            "gitops-guard.dev/break-glass-until: '2099-01-01T00:00:00Z', gitops-guard.dev/break-glass-reason: forever, gitops-guard.dev/break-glass-by: sam",
        ))])
        .denied("deployment/web in break-glass-window-at-rest is managed by Flux Kustomization flux-system/apps"),
        // ---- identity --------------------------------------------------------------------
        case(
            "impostor-by-impersonation",
            i,
            "act as a user named like kustomize-controller but in another group",
            Who::Impostor(KC),
            &["scale", "deployment/web", "-n", "impostor-by-impersonation", "--replicas=7"],
        )
        .setup(vec![kc_apply(deployment("impostor-by-impersonation", "web", &apps, ""))])
        .denied("is named like a service account but has not its groups"),
        case(
            "impostor-by-certificate",
            i,
            "present a client certificate whose CN is kustomize-controller's service-account name",
            Who::CertImpostor(KC),
            &["scale", "deployment/web", "-n", "impostor-by-certificate", "--replicas=7"],
        )
        .setup(vec![kc_apply(deployment("impostor-by-certificate", "web", &apps, ""))])
        .denied("is named like a service account but has not its groups"),
        case(
            "impostor-creates-source",
            i,
            "create a GitRepository as a user named like source-controller",
            Who::Impostor(SC),
            &["create", "-f", "-"],
        )
        .stdin(git_repository("impostor-creates-source", "evil", "", "https://github.com/mallory/evil.git"))
        .denied("is a Flux source"),
        case(
            "genuine-service-account",
            i,
            "kustomize-controller's own service account scales the Deployment",
            Who::Sa(KC),
            &["scale", "deployment/web", "-n", "genuine-service-account", "--replicas=7"],
        )
        .setup(vec![kc_apply(deployment("genuine-service-account", "web", &apps, ""))])
        .allowed(),
        case(
            "argocd-server-edits",
            i,
            "edit an Argo CD-managed object through argocd-server (the UI's path)",
            Who::Sa(ARGO_SERVER),
            &["patch", "configmap/ui-edit", "-n", "argo-web", "--type=merge", "-p", r#"{"data":{"mode":"hand"}}"#],
        )
        .setup(vec![argo_apply(configmap("argo-web", "ui-edit", "", "argocd.argoproj.io/tracking-id: 'web:/ConfigMap:argo-web/ui-edit'"))])
        .denied("configmap/ui-edit in argo-web is managed by Argo CD Application argocd/web"),
        case(
            "controller-not-installed",
            i,
            "use the token of a Flux controller whose CRDs are not installed (image-automation-controller)",
            Who::Sa(IAC),
            &["scale", "deployment/web", "-n", "controller-not-installed", "--replicas=7"],
        )
        .setup(vec![kc_apply(deployment("controller-not-installed", "web", &apps, ""))])
        .denied("deployment/web in controller-not-installed is managed by Flux Kustomization flux-system/apps"),
        case(
            "controller-installed",
            i,
            "helm-controller (its HelmRelease CRD installed) changes a Flux-managed object",
            Who::Sa(HC),
            &["scale", "deployment/web", "-n", "controller-installed", "--replicas=7"],
        )
        .setup(vec![kc_apply(deployment("controller-installed", "web", &apps, ""))])
        .allowed(),
        // ---- managedFields ---------------------------------------------------------------
        case(
            "managed-fields-cleared",
            m,
            "wipe a managed object's managedFields (`[{}]`) to erase who set what",
            DEV,
            &["patch", "deployment/web", "-n", "managed-fields-cleared", "--type=json", "-p", r#"[{"op":"replace","path":"/metadata/managedFields","value":[{}]}]"#],
        )
        .setup(vec![kc_apply(deployment("managed-fields-cleared", "web", &apps, ""))])
        .denied("metadata.managedFields may be rewritten only by the agent"),
        case(
            "managed-fields-attributed-to-agent",
            m,
            "scale under allow-fields and rewrite managedFields so the change looks like kustomize-controller's",
            DEV,
            &["patch", "deployment/web", "-n", "managed-fields-attributed-to-agent", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/replicas","value":5},{"op":"replace","path":"/metadata/managedFields","value":[{"manager":"kustomize-controller","operation":"Apply","apiVersion":"apps/v1","time":"2020-01-01T00:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{}}}}}}}}]}]"#],
        )
        .setup(vec![kc_apply(deployment("managed-fields-attributed-to-agent", "web", &apps, "gitops-guard.dev/allow-fields: spec.replicas"))])
        .denied("metadata.managedFields may be rewritten only by the agent"),
        case(
            "managed-fields-with-reconcile",
            m,
            "request a reconcile (operational) and wipe the Kustomization's managedFields in the same patch",
            DEV,
            &["patch", "kustomizations.kustomize.toolkit.fluxcd.io/app", "-n", "managed-fields-with-reconcile", "--type=json", "-p", r#"[{"op":"add","path":"/metadata/annotations/reconcile.fluxcd.io~1requestedAt","value":"2026-11-21T12:00:00Z"},{"op":"replace","path":"/metadata/managedFields","value":[{}]}]"#],
        )
        .setup(vec![kc_apply(kustomization("managed-fields-with-reconcile", "app", &apps, "path: ./app, sourceRef: {kind: GitRepository, name: flux-system, namespace: flux-system}").replace("  labels:", "  annotations: {team: platform}\n  labels:"))])
        .denied("metadata.managedFields may be rewritten only by the agent"),
        case(
            "reconcile-request",
            m,
            "request a reconcile without touching managedFields",
            DEV,
            &["annotate", "--overwrite", "kustomizations.kustomize.toolkit.fluxcd.io/app", "-n", "reconcile-request", "reconcile.fluxcd.io/requestedAt=2026-11-21T12:00:00Z"],
        )
        .setup(vec![kc_apply(kustomization("reconcile-request", "app", &apps, "path: ./app, sourceRef: {kind: GitRepository, name: flux-system, namespace: flux-system}"))])
        .allowed(),
        case(
            "rollout-restart",
            m,
            "restart a Flux-managed Deployment (kubectl rollout restart, operational)",
            DEV,
            &["rollout", "restart", "deployment/web", "-n", "rollout-restart"],
        )
        .setup(vec![kc_apply(deployment("rollout-restart", "web", &apps, ""))])
        .allowed(),
    ]
}

// ---------------------------------------------------------------------------------------------
// The world the rows act on, made before the guard starts.

/// Namespaces besides the cases' own.
const NAMESPACES: &[&str] = &[
    "flux-system",
    "argocd",
    "team-a",
    "team-x",
    "bootstrap",
    "argo-web",
    "argo-tenant",
    "argo-rogue",
    "argo-hand",
];

/// What `flux bootstrap` and Argo CD's installation create: the roots of custody.
fn roots() -> String {
    format!(
        "{}---\n{}---\napiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {{name: default, namespace: argocd}}\nspec:\n  sourceRepos: ['*']\n  destinations: [{{server: '*', namespace: '*'}}]\n  clusterResourceWhitelist: [{{group: '*', kind: '*'}}]\n  destinationServiceAccounts:\n  - {{server: 'https://kubernetes.default.svc', namespace: argo-tenant, defaultServiceAccount: deployer}}\n",
        git_repository(
            "flux-system",
            "flux-system",
            "",
            "https://github.com/acme/fleet.git"
        ),
        kustomization(
            "flux-system",
            "flux-system",
            "",
            "path: ./clusters/local, sourceRef: {kind: GitRepository, name: flux-system}"
        ),
    )
}

/// Owners from Git: applied by kustomize-controller for the root Kustomization.
fn from_git() -> String {
    let root = flux("flux-system", "flux-system");
    let apps = flux("flux-system", "apps");
    let in_root = |path: &str| {
        format!(
            "path: {path}, sourceRef: {{kind: GitRepository, name: flux-system, namespace: flux-system}}"
        )
    };
    [
        kustomization("flux-system", "apps", &root, &in_root("./apps")),
        kustomization("flux-system", "infra", &root, &in_root("./infra")),
        kustomization("flux-system", "holder", &root, &in_root("./holder")),
        // From Git, but reading a hand-made source.
        kustomization(
            "flux-system",
            "stray",
            &root,
            "path: ./, sourceRef: {kind: GitRepository, name: evil, namespace: team-x}",
        ),
        git_repository("team-a", "team-a", &root, "https://github.com/acme/team-a.git"),
        // From Git, but copying in a hand-made repository's content (`spec.include`).
        git_repository("team-a", "including", &root, "https://github.com/acme/including.git")
            .replace(
                "ref: {branch: main}}",
                "ref: {branch: main}, include: [{repository: {name: smuggled}, toPath: shared}]}",
            ),
        kustomization(
            "flux-system",
            "includes",
            &root,
            "path: ./, sourceRef: {kind: GitRepository, name: including, namespace: team-a}",
        ),
        kustomization(
            "team-a",
            "apps",
            &root,
            "path: ./team-a, serviceAccountName: reconciler, sourceRef: {kind: GitRepository, name: team-a}",
        ),
        kustomization(
            "agent-deletes-namespace-holding-owner",
            "app",
            &root,
            &in_root("./app"),
        ),
        application("web", &root, "default", "argo-web"),
        application("tenant", &root, "default", "argo-tenant"),
        application("rogue", &root, "rogue", "argo-rogue"),
        application(
            "dest",
            &root,
            "default",
            "delete-namespace-application-destination",
        ),
        // Namespaces whose enforce: all comes from Git.
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: remove-enforce-from-git-namespace\n  labels: {{{apps}}}\n  annotations: {{gitops-guard.dev/enforce: all}}\n"
        ),
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: enforce-all-from-git\n  labels: {{{apps}}}\n  annotations: {{gitops-guard.dev/enforce: all}}\n"
        ),
        // A HelmRelease from Git that applies the values a hand-made ConfigMap holds.
        format!(
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: shop\n  namespace: helmrelease-values-by-hand\n  labels: {{{root}}}\nspec: {{interval: 10m, chart: {{spec: {{chart: shop, sourceRef: {{kind: HelmRepository, name: charts, namespace: flux-system}}}}}}, valuesFrom: [{{kind: ConfigMap, name: shop-values}}]}}\n"
        ),
        // A tenant's namespace, enforce: all from Git, held by the tenant's Kustomization (also
        // from Git), which Flux reconciles as the tenant's account.
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tenant-releases\n  labels: {{{apps}}}\n  annotations: {{gitops-guard.dev/enforce: all}}\n"
        ),
        format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: tenant-releases\n  labels: {{{root}}}\nspec: {{interval: 10m, path: ./tenants/releases, prune: true, serviceAccountName: reconciler, sourceRef: {{kind: GitRepository, name: flux-system, namespace: flux-system}}}}\n"
        ),
    ]
    .join("---\n")
}

/// Owners and sources made by hand before the guard was installed (no ownership labels).
fn hand_made() -> String {
    [
        // Values a HelmRelease from Git applies, made by hand, and a ConfigMap nobody reads.
        configmap("helmrelease-values-by-hand", "shop-values", "", ""),
        configmap("helmrelease-values-by-hand", "notes", "", ""),
        git_repository("team-x", "evil", "", "https://github.com/mallory/evil.git"),
        git_repository("team-a", "smuggled", "", "https://github.com/mallory/smuggled.git"),
        kustomization(
            "team-x",
            "evil",
            "",
            "path: ./, serviceAccountName: reconciler, sourceRef: {kind: GitRepository, name: evil}",
        ),
        git_repository("source-delete", "stale", "", "https://github.com/acme/stale.git"),
        kustomization(
            "delete-namespace-holding-owner",
            "leftover",
            "",
            "path: ./leftover, sourceRef: {kind: GitRepository, name: flux-system, namespace: flux-system}",
        ),
        "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: rogue, namespace: argocd}\nspec:\n  sourceRepos: ['*']\n  destinations: [{server: '*', namespace: '*'}]\n  destinationServiceAccounts:\n  - {server: 'https://kubernetes.default.svc', namespace: argo-rogue, defaultServiceAccount: deployer}\n".to_string(),
        "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {name: fleet, namespace: argocd}\nspec:\n  generators: [{list: {elements: []}}]\n  template:\n    metadata: {name: '{{name}}'}\n    spec: {project: default, source: {repoURL: 'https://github.com/acme/platform.git', path: ., targetRevision: main}, destination: {server: 'https://kubernetes.default.svc', namespace: x}}\n".to_string(),
        application("hand", "", "default", "argo-hand"),
        // Namespaces a person annotated: they do not come from Git, so the annotations do not count.
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: enforce-all-by-hand\n  annotations: {gitops-guard.dev/enforce: all}\n".to_string(),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: audit-mode-by-hand\n  annotations: {gitops-guard.dev/mode: audit}\n".to_string(),
    ]
    .join("---\n")
}

struct Env {
    cluster: Cluster,
    _webhook: Webhook,
    /// Client-certificate kubeconfigs of the certificate impostors, by name.
    certs: BTreeMap<&'static str, PathBuf>,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let cluster = Cluster::start();
        cluster.install_crds_except(&[NOT_INSTALLED]);
        // Kinds of no agent, with and without a status subresource.
        cluster.install_test_crds();
        let admin = |args: &[&str]| cluster.kubectl(User::Admin, args).ok().clone();
        let admin_stdin =
            |args: &[&str], stdin: &str| cluster.kubectl_stdin(User::Admin, args, stdin).ok().clone();
        let cases = cases();
        // Every case gets a namespace of its own (unused ones cost nothing).
        let namespaces: Vec<String> = NAMESPACES
            .iter()
            .copied()
            .chain(cases.iter().map(|c| c.id))
            .map(|ns| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"))
            .collect();
        admin_stdin(&["apply", "-f", "-"], &namespaces.join("---\n"));
        // The impostors' group and the break-glass group may do anything RBAC-wise.
        for (name, group) in [("oidc-admins", IMPOSTOR_GROUP), ("sre-admin", "sre")] {
            admin(&[
                "create",
                "clusterrolebinding",
                name,
                "--clusterrole=cluster-admin",
                &format!("--group={group}"),
            ]);
        }
        admin_stdin(&["apply", "-f", "-"], &roots());
        cluster
            .kubectl_as_stdin(
                KC,
                &[
                    "apply",
                    "--server-side",
                    "--field-manager=kustomize-controller",
                    "-f",
                    "-",
                ],
                &from_git(),
            )
            .ok();
        admin_stdin(&["apply", "-f", "-"], &hand_made());
        // The status their controllers wrote.
        let revision = format!(r#"{{"lastAppliedRevision":"main@sha1:{SHA}"}}"#);
        cluster
            .patch_status_as(KC, "kustomizations", "flux-system", "apps", &revision)
            .ok();
        cluster
            .patch_status_as(
                KC,
                "kustomizations",
                "flux-system",
                "holder",
                &format!(
                    r#"{{"lastAppliedRevision":"main@sha1:{SHA}","inventory":{{"entries":[{{"id":"delete-namespace-in-inventory_web_apps_Deployment","v":"v1"}}]}}}}"#
                ),
            )
            .ok();
        cluster
            .patch_status_as(
                SC,
                "gitrepositories",
                "team-a",
                "team-a",
                &format!(
                    r#"{{"artifact":{{"revision":"main@sha1:{SHA}","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}}}}"#
                ),
            )
            .ok();
        cluster
            .kubectl_as(
                ARGO,
                &[
                    "patch",
                    "applications.argoproj.io/web",
                    "-n",
                    "argocd",
                    "--type=merge",
                    "-p",
                    r#"{"status":{"sync":{"status":"Synced","revision":"7d0e51f0a1b2c3d4e5f60718293a4b5c6d7e8f90"},"operationState":{"phase":"Succeeded","syncResult":{"revision":"7d0e51f0a1b2c3d4e5f60718293a4b5c6d7e8f90"}}}}"#,
                ],
            )
            .ok();
        let webhook = Webhook::start(&cluster, GUARD_CONFIG);
        let mut certs = BTreeMap::new();
        for c in &cases {
            if let Who::CertImpostor(name) = c.who {
                let file = format!("impostor-{}", certs.len());
                certs
                    .entry(name)
                    .or_insert_with(|| cluster.cert_kubeconfig(&file, name, &[IMPOSTOR_GROUP]));
            }
        }
        Env {
            cluster,
            _webhook: webhook,
            certs,
        }
    })
}

fn run(env: &Env, cmd: &Cmd) -> Out {
    let cluster = &env.cluster;
    let args: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
    let stdin = cmd.stdin.as_deref();
    let with_groups = |name: &str, groups: &[&str]| {
        let mut all: Vec<String> = groups.iter().map(|g| format!("--as-group={g}")).collect();
        all.extend(cmd.args.iter().cloned());
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        match stdin {
            Some(text) => cluster.kubectl_as_stdin(name, &all, text),
            None => cluster.kubectl_as(name, &all),
        }
    };
    match cmd.who {
        Who::Person(user) => match stdin {
            Some(text) => cluster.kubectl_stdin(user, &args, text),
            None => cluster.kubectl(user, &args),
        },
        Who::Sa(name) => match stdin {
            Some(text) => cluster.kubectl_as_stdin(name, &args, text),
            None => cluster.kubectl_as(name, &args),
        },
        Who::Member(name) => with_groups(name, &["sre", "system:authenticated"]),
        Who::Impostor(name) => with_groups(name, &[IMPOSTOR_GROUP, "system:authenticated"]),
        Who::CertImpostor(name) => {
            let kubeconfig = env
                .certs
                .get(name)
                .unwrap_or_else(|| panic!("no client certificate for {name}"));
            match stdin {
                Some(text) => cluster.kubectl_with_stdin(kubeconfig, &[], &args, text),
                None => cluster.kubectl_with(kubeconfig, &[], &args),
            }
        }
    }
}

/// Whether `out` is the answer `expect` asks for; otherwise what it was instead.
fn check(out: &Out, expect: &Expect) -> Result<(), String> {
    let would_deny = |out: &Out| {
        out.warnings()
            .iter()
            .find(|w| w.contains("would be denied"))
            .map(|w| w.to_string())
    };
    match expect {
        Expect::Denied { contains } => match out.denial() {
            _ if out.success() => Err(format!(
                "allowed; expected a denial containing {contains:?}"
            )),
            None => Err(format!(
                "failed, but not by the guard; expected a denial containing {contains:?}"
            )),
            Some(_) if !out.stderr.contains(contains) => {
                Err(format!("denied, but the message lacks {contains:?}"))
            }
            Some(_) => Ok(()),
        },
        Expect::Allowed if !out.success() => Err(match out.denial() {
            Some(message) => format!(
                "denied; expected it to pass: {}",
                message.lines().next().unwrap_or_default()
            ),
            None => "failed; expected it to pass".to_string(),
        }),
        Expect::Allowed => match would_deny(out) {
            Some(w) => Err(format!(
                "passed with the warning {w:?}; expected no such warning"
            )),
            None => Ok(()),
        },
        Expect::Warned { contains } if !out.success() => Err(format!(
            "failed; expected it to pass with a warning containing {contains:?}"
        )),
        Expect::Warned { contains } => {
            if out.warnings().iter().any(|w| w.contains(contains)) {
                Ok(())
            } else {
                Err(format!("passed without a warning containing {contains:?}"))
            }
        }
    }
}

/// Runs `cmd` until `accept` says yes; a refused request changed nothing, so it is retried while
/// the guard's caches settle (for up to [`SETTLE`]). Returns the last output and the verdict.
fn settle(
    env: &Env,
    cmd: &Cmd,
    accept: impl Fn(&Out) -> Result<(), String>,
) -> (Out, Result<(), String>) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let out = run(env, cmd);
        let verdict = accept(&out);
        if verdict.is_ok() || out.success() || Instant::now() >= deadline {
            return (out, verdict);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Runs one row: its set-up (each step must succeed), then the attempt, checked.
fn run_case(env: &Env, c: &Case) -> Result<(), String> {
    for step in &c.setup {
        let (out, verdict) = settle(env, step, |o| {
            if o.success() {
                Ok(())
            } else {
                Err("set-up step failed".to_string())
            }
        });
        if let Err(why) = verdict {
            return Err(format!("{why}: {}\n{out}", step.display()));
        }
    }
    let attempt = c.attempt();
    let (out, verdict) = settle(env, &attempt, |o| check(o, &c.expect));
    verdict.map_err(|why| format!("{why}\n{out}"))
}

#[test]
fn attack_matrix() {
    let env = env();
    let mut failures = Vec::new();
    let cases = cases();
    for c in &cases {
        let started = Instant::now();
        match run_case(env, c) {
            Ok(()) => eprintln!("ok    {:<48} {:?}", c.id, started.elapsed()),
            Err(why) => {
                eprintln!("FAIL  {:<48} {:?}", c.id, started.elapsed());
                failures.push(format!("--- {} ({}): {}\n{}", c.id, c.route, c.attack, why));
            }
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} of {} cases failed:\n\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The document.

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn answer(expect: &Expect) -> String {
    match expect {
        Expect::Denied { contains } => format!("denied: “{contains}”"),
        Expect::Allowed => "allowed (legitimate)".to_string(),
        Expect::Warned { contains } => {
            format!("allowed (legitimate), with the warning “{contains}”")
        }
    }
}

/// `docs/spoof-matrix.md`, rendered from the table.
fn render_matrix(cases: &[Case]) -> String {
    let mut out = String::from(
        "# Spoof matrix\n\n\
         What an attacker (or a careless hand) tries against gitops-guard, who tries it, and what \
         the guard answers. Rows answered \"allowed (legitimate)\" are the neighbours of an attack \
         that must keep working. A denial is quoted by its key phrase; kubectl prints the whole \
         message after `admission webhook \"guard.gitops-guard.dev\" denied the request:`.\n\n\
         Generated from the case table of `tests/tests/custody.rs`, which runs every row against a \
         real kube-apiserver v1.20.2 with real kubectl and the guard registered. Do not edit by \
         hand: after changing the table, run\n\n\
         ```sh\n\
         GITOPS_GUARD_BLESS=1 cargo test -p gitops-guard-tests --test custody spoof_matrix_doc_is_current\n\
         ```\n\n\
         The cluster the rows run in has the bootstrap roots (Kustomization and GitRepository \
         `flux-system/flux-system`, AppProject `argocd/default`), owners from Git (labelled \
         `kustomize.toolkit.fluxcd.io/name: flux-system` by kustomize-controller, e.g. \
         Kustomizations `flux-system/apps` and `team-a/apps`, Application `argocd/web`) and \
         owners made by hand before the guard was installed (e.g. Kustomization and GitRepository \
         `team-x/evil`, AppProject `argocd/rogue`, Application `argocd/hand`).\n",
    );
    out.push_str(&format!(
        "\n{} cases: {} attacks denied, {} legitimate neighbours allowed.\n",
        cases.len(),
        cases
            .iter()
            .filter(|c| matches!(c.expect, Expect::Denied { .. }))
            .count(),
        cases
            .iter()
            .filter(|c| !matches!(c.expect, Expect::Denied { .. }))
            .count()
    ));
    for (route, about) in ROUTES {
        out.push_str(&format!("\n## {route}\n\n{about}\n\n"));
        out.push_str("| what an attacker tries | who | what the guard answers | case |\n");
        out.push_str("|---|---|---|---|\n");
        for c in cases.iter().filter(|c| c.route == *route) {
            out.push_str(&format!(
                "| {} | {} | {} | `{}` |\n",
                cell(c.attack),
                cell(&c.who.describe()),
                cell(&answer(&c.expect)),
                c.id
            ));
        }
    }
    out
}

#[test]
fn spoof_matrix_doc_is_current() {
    let cases = cases();
    // The table itself: unique ids that can name namespaces, known routes, one line each.
    let mut ids = std::collections::BTreeSet::new();
    for c in &cases {
        assert!(ids.insert(c.id), "duplicate case id {}", c.id);
        assert!(
            c.id.len() <= 63
                && c.id
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'),
            "case id {} is not a namespace name",
            c.id
        );
        assert!(
            ROUTES.iter().any(|(r, _)| *r == c.route),
            "case {} has an unknown route {:?}",
            c.id,
            c.route
        );
        assert!(
            !c.attack.contains('\n'),
            "case {}: attack on one line",
            c.id
        );
    }
    assert!(cases.len() >= 45, "{} cases", cases.len());
    for (route, _) in ROUTES {
        let of_route = || cases.iter().filter(|c| c.route == *route);
        assert!(
            of_route().any(|c| matches!(c.expect, Expect::Denied { .. })),
            "route {route}: no attack that is denied"
        );
        assert!(
            of_route().any(|c| !matches!(c.expect, Expect::Denied { .. })),
            "route {route}: no legitimate neighbour that passes"
        );
    }

    let rendered = render_matrix(&cases);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/spoof-matrix.md");
    if std::env::var_os("GITOPS_GUARD_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &rendered)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "{} is not what the case table renders; run\n  GITOPS_GUARD_BLESS=1 cargo test -p gitops-guard-tests --test custody spoof_matrix_doc_is_current\n(first difference at line {})",
        path.display(),
        committed
            .lines()
            .zip(rendered.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || committed.lines().count().min(rendered.lines().count()) + 1,
                |i| i + 1
            )
    );
}

#[test]
fn rfc3339_in_formats_utc() {
    let t = rfc3339_in(0);
    assert_eq!(t.len(), 20, "{t}");
    assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    assert!(t.as_str() > "2025-01-01T00:00:00Z", "{t}");
}
