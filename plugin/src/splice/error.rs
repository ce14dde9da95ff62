//! Errors of minimal-diff YAML editing: the file, the path and what to do instead.

/// What can go wrong editing a manifest file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
}
