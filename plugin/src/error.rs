//! The crate's error: one error type per subsystem, defined in its module ([`splice::Error`],
//! [`forge::Error`], [`cluster::Error`], [`git::Error`], [`locate::Error`], [`change::Error`]),
//! wrapped here with the few errors no subsystem owns (the command line, local files, output).
//!
//! A variant made from an underlying error (kube, I/O, gix, HTTP, serde) keeps it as its
//! `#[source]` and does not repeat its text: [`report`] prints the whole chain once, in order
//! (`what failed: cause: cause`), then what to do when the message has that apart
//! ([`Error::hint`]). Every message names the object it is about and says what the user can do.
//!
//! [`splice::Error`]: crate::splice::Error
//! [`forge::Error`]: crate::forge::Error
//! [`cluster::Error`]: crate::cluster::Error
//! [`git::Error`]: crate::git::Error
//! [`locate::Error`]: crate::locate::error::Error
//! [`change::Error`]: crate::change::error::Error

/// An underlying error of a type the variant does not name (gix's many error types, serde's).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in kubectl-gitops.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is not usable (message says why and what to pass instead).
    #[error("{0}")]
    Usage(String),
    /// Something given (an argument, a patch, a live object) is not usable; the cause says why.
    #[error("{what}")]
    Invalid {
        what: String,
        #[source]
        source: BoxError,
    },
    /// Writing the output failed.
    #[error("cannot write the output")]
    Output(#[source] BoxError),
    /// A local file (guard config, a patch file, the editor's file) could not be read or written.
    #[error("cannot read {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A local file (a report written with --out) could not be written.
    #[error("cannot write {path}; check that its directory exists and that you may write there")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The guard config given with --guard-config is not valid.
    #[error("invalid guard config {path}")]
    GuardConfig {
        path: String,
        #[source]
        source: gitops_guard_core::Error,
    },
    #[error(transparent)]
    Splice(#[from] crate::splice::Error),
    #[error(transparent)]
    Forge(#[from] crate::forge::Error),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::Error),
    #[error(transparent)]
    Git(#[from] crate::git::Error),
    #[error(transparent)]
    Locate(#[from] crate::locate::error::Error),
    #[error(transparent)]
    Change(#[from] crate::change::error::Error),
}

impl Error {
    /// What to do, when the message does not end with it because a cause follows.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Forge(e) => e.hint(),
            Error::Cluster(e) => e.hint(),
            Error::Git(e) => e.hint(),
            Error::Change(e) => e.hint(),
            _ => None,
        }
    }

    /// The message the user reads: [`report`].
    pub fn report(&self) -> String {
        report(self)
    }
}

/// An error and its causes on one line (`a: b: c`), each cause once, then the hint (`; do
/// this`). This is how every error reaches the user (the binary's `error: …`, a row's error).
pub fn report(e: &Error) -> String {
    let text = chain(e);
    match e.hint() {
        Some(hint) => format!("{text}; {hint}"),
        None => text,
    }
}

/// An error and its causes (`a: b: c`), each cause once: a cause whose text an
/// earlier message already holds (libraries that print their source in their own message) is
/// left out. An API server's refusal is its status message alone.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = match err.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(status)) => {
                // kube's message repeats the status and its Debug form; the status's own
                // message is what kubectl prints.
                next = None;
                status.message.clone()
            }
            _ => {
                next = err.source();
                err.to_string()
            }
        };
        // A message of several lines (what succeeded and what did not, one line per field)
        // keeps them: only the links of the chain share a line.
        let text = text.trim().to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::{change, cluster, forge, git, locate, splice};

    fn kube_refusal() -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(
                "deployments.apps \"web\" is forbidden: User \"ana\" cannot get resource",
                "Forbidden",
            )
            .with_code(403)
            .boxed(),
        )
    }

    /// An error that prints its cause in its own message too, as kube's and many others do.
    #[derive(Debug, thiserror::Error)]
    #[error("fetching origin: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn the_chain_is_printed_once_in_order_then_what_to_do() {
        let e: Error = git::Error::RepoUnreachable {
            url: "https://git.example.com/shop.git".into(),
            what: Some("the cache clone has no origin remote".into()),
            source: Some(Box::new(Repeats(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            )))),
        }
        .into();
        assert_eq!(
            e.to_string(),
            "cannot reach the Git repository https://git.example.com/shop.git: the cache clone has no origin remote",
            "the message itself does not repeat its cause"
        );
        assert_eq!(
            e.report(),
            "cannot reach the Git repository https://git.example.com/shop.git: the cache clone has no origin remote: fetching origin: connection refused; run kubectl gitops inside a clone of it, or pass --repo PATH"
        );

        // kube's message for a refusal holds the status twice (and its Debug form): the user
        // reads what kubectl prints, once.
        let e: Error = cluster::kube_error("listing deployments", kube_refusal()).into();
        assert_eq!(
            e.report(),
            "listing deployments: deployments.apps \"web\" is forbidden: User \"ana\" cannot get resource"
        );
        let e: Error = cluster::kube_error(
            "getting deployment/web",
            kube::Error::ReadEvents(std::io::Error::other("broken pipe")),
        )
        .into();
        assert_eq!(
            e.report(),
            "getting deployment/web: Error reading events stream: broken pipe"
        );
    }

    #[test]
    fn the_source_of_a_kube_or_io_failure_is_the_underlying_error() {
        let e: Error = cluster::kube_error("getting deployment/web", kube_refusal()).into();
        let source = e.source().expect("a source");
        match source.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(status)) => assert_eq!(status.code, 403),
            other => panic!("{other:?}"),
        }

        let e = Error::Io {
            path: "/tmp/patch.yaml".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
        assert_eq!(e.to_string(), "cannot read /tmp/patch.yaml");

        let e: Error = change::error::Error::Editor {
            editor: "vi".into(),
            message: "cannot start it".into(),
            source: Some(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        }
        .into();
        let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(std::io::Error::kind),
            Some(std::io::ErrorKind::PermissionDenied)
        );
        assert!(
            e.report().ends_with(
                "; set KUBE_EDITOR or EDITOR to an editor that waits until the file is closed"
            ),
            "{}",
            e.report()
        );
    }

    #[test]
    fn every_subsystem_error_converts_into_the_crate_error() {
        fn convert(e: impl Into<Error>) -> Error {
            e.into()
        }
        let splice = convert(splice::Error::MergeKey {
            path: "spec.template".into(),
        });
        assert!(matches!(
            splice,
            Error::Splice(splice::Error::MergeKey { .. })
        ));
        let forge = convert(forge::Error::UnknownForge {
            host: "git.acme.io".into(),
        });
        assert!(matches!(
            forge,
            Error::Forge(forge::Error::UnknownForge { .. })
        ));
        let cluster = convert(cluster::Error::NotFound {
            resource: "deployment/web in shop".into(),
        });
        assert!(matches!(
            cluster,
            Error::Cluster(cluster::Error::NotFound { .. })
        ));
        let git = convert(git::Error::NoGitIdentity {
            repo: "/src/shop".into(),
        });
        assert!(matches!(git, Error::Git(git::Error::NoGitIdentity { .. })));
        let locate = convert(locate::error::Error::Unmanaged {
            resource: "deployment/web in shop".into(),
        });
        assert!(matches!(
            locate,
            Error::Locate(locate::error::Error::Unmanaged { .. })
        ));
        let change = convert(change::error::Error::NotABranch {
            owner: "Flux Kustomization flux-system/apps".into(),
            follows: "tag v1.2.0".into(),
        });
        assert!(matches!(
            change,
            Error::Change(change::error::Error::NotABranch { .. })
        ));
        // The crate's error says what the subsystem's says.
        assert_eq!(cluster.report(), "deployment/web in shop not found",);
        assert_eq!(
            forge.to_string(),
            "cannot tell which forge serves git.acme.io: pass --forge github|gitlab|gitea|forgejo (and --forge-url with the API URL if it is not at the usual place)"
        );
    }
}
