//! Errors of the cluster connection: the kubeconfig, API requests, discovery of resource types.

/// What can go wrong talking to the API server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable kubeconfig (the hint says what to check).
    #[error("cannot load the kubeconfig{}", .file.as_ref().map(|f| format!(": {f}")).unwrap_or_default())]
    Kubeconfig {
        /// The file given with --kubeconfig, when it is the one that failed.
        file: Option<String>,
        #[source]
        source: crate::error::BoxError,
    },
    /// A request to the API server failed.
    #[error("{action}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// An object could not be made into the request's body.
    #[error("{action}")]
    Encode {
        action: String,
        #[source]
        source: serde_json::Error,
    },
    /// A request that cannot be made or was refused for a reason the API does not return as an
    /// error (a kind the cluster does not serve, the guard's dry-run warning).
    #[error("{action}: {message}")]
    Refused { action: String, message: String },
    /// A TYPE argument that discovery does not know.
    #[error("the server doesn't have a resource type \"{name}\" (see kubectl api-resources)")]
    UnknownResourceType { name: String },
    /// Objects of a list that cannot be read (nested deeper than the JSON reader goes): the list
    /// is refused whole rather than answered without them.
    #[error(
        "cannot read {}: {reason}; kubectl gitops does not answer for {plural} without {}. Look at {}: {}",
        .objects.join(", "),
        if .objects.len() == 1 { "it" } else { "them" },
        if .objects.len() == 1 { "it" } else { "them" },
        .commands.join("; ")
    )]
    Unreadable {
        plural: String,
        /// `helmrelease/evil in team-x`
        objects: Vec<String>,
        /// `kubectl get helmrelease/evil -n team-x -o yaml`
        commands: Vec<String>,
        reason: String,
    },
    /// The object does not exist.
    #[error("{resource} not found")]
    NotFound { resource: String },
}

impl Error {
    /// What to do, said after the cause (see [`crate::error::report`]).
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Kubeconfig { .. } => Some("check --kubeconfig, $KUBECONFIG and --context"),
            _ => None,
        }
    }
}
