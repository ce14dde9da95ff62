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

/// An error and its causes on one line (`a: b: c`), each cause once: a cause whose text an
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
        let text = text.replace('\n', "; ");
        let text = text.trim().to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}
