//! What a GitOps cluster holds before anyone edits anything: the bootstrap roots, and the agents
//! applying the way they do (server-side, with their field managers).

use crate::cluster::{Cluster, User};
use crate::command::Out;

/// Flux's kustomize-controller (the admin impersonates it; the API server adds its groups).
pub const KUSTOMIZE_CONTROLLER: &str = "system:serviceaccount:flux-system:kustomize-controller";

/// The last line of a denial that names a `kubectl gitops` change command.
pub const NO_TOKEN_HINT: &str =
    "(no forge token? add --no-pr to push a branch only, or --local to commit only)";

/// The labels kustomize-controller puts on what the root Kustomization applies: "from Git".
pub const FROM_ROOT: &str = "{kustomize.toolkit.fluxcd.io/name: flux-system, kustomize.toolkit.fluxcd.io/namespace: flux-system}";

/// The bootstrap roots, as the guard's default `custody.roots` names them: what `flux bootstrap`
/// creates and the AppProject argocd-server creates when it starts.
pub const ROOTS: &str = "apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: flux-system, namespace: flux-system}
spec: {interval: 1m, url: 'https://github.com/acme/fleet.git', ref: {branch: main}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: flux-system, namespace: flux-system}
spec: {interval: 10m, path: ./clusters/prod, prune: true, sourceRef: {kind: GitRepository, name: flux-system}}
---
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: default, namespace: argocd}
spec:
  sourceRepos: ['*']
  destinations: [{server: '*', namespace: '*'}]
";

/// The owner most end-to-end objects name: Kustomization flux-system/apps, as the root
/// Kustomization applied it from Git.
pub const APPS: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
  labels: {kustomize.toolkit.fluxcd.io/name: flux-system, kustomize.toolkit.fluxcd.io/namespace: flux-system}
spec: {interval: 10m, path: ./apps, prune: true, sourceRef: {kind: GitRepository, name: flux-system}}
";

impl Cluster {
    /// [`APPS`], applied by kustomize-controller, with `status` (JSON merged into its status as
    /// kustomize-controller writes it: `{"lastAppliedRevision": "main@sha1:…"}`). Bootstrap first.
    pub fn flux_apps(&self, status: &str) {
        self.flux_apply(APPS).ok();
        self.patch_status_as(
            KUSTOMIZE_CONTROLLER,
            "kustomizations",
            "flux-system",
            "apps",
            status,
        )
        .ok();
    }

    /// Bootstrapping, as the admin: namespaces `flux-system` and `argocd`, then [`ROOTS`]. Install
    /// the CRDs first.
    pub fn bootstrap(&self) {
        for ns in ["flux-system", "argocd"] {
            self.kubectl(User::Admin, &["create", "namespace", ns]).ok();
        }
        self.kubectl_stdin(User::Admin, &["apply", "-f", "-"], ROOTS)
            .ok();
    }

    /// `yaml` applied as `agent` applies it: server-side, with its field manager.
    pub fn agent_apply(&self, agent: &str, field_manager: &str, yaml: &str) -> Out {
        let manager = format!("--field-manager={field_manager}");
        self.kubectl_as_stdin(
            agent,
            &["apply", "--server-side", &manager, "-f", "-"],
            yaml,
        )
    }

    /// `yaml` applied as kustomize-controller applies it.
    pub fn flux_apply(&self, yaml: &str) -> Out {
        self.agent_apply(KUSTOMIZE_CONTROLLER, "kustomize-controller", yaml)
    }
}
