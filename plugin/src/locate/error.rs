//! Errors of following an object to its Git file: the owner, its source, the file, the commit.

/// Why an object could not be followed to the file that defines it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no GitOps owner.
    #[error(
        "{resource} is not managed by Flux or Argo CD: it has no kustomize.toolkit.fluxcd.io or helm.toolkit.fluxcd.io labels and no argocd.argoproj.io/tracking-id annotation"
    )]
    Unmanaged { resource: String },
    /// The owner (or its source) does not say enough to find the Git file.
    #[error("{owner}: {problem}")]
    OwnerIncomplete { owner: String, problem: String },
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
    /// The object is rendered from a Helm chart (the message says which values key to change).
    #[error("{message}")]
    HelmRendered { message: String },
    /// The owner chain of an object stops short (the message says where and why).
    #[error("{message}")]
    NotLocated { message: String },
}
