//! What every verb sets up: the guard config, an async runtime for the cluster, the cluster
//! connection with discovery, the namespace, and the repository finder.

use std::path::{Path, PathBuf};

use clap::Args;
use gitops_guard_core::Config;
use serde_json::Value;

use crate::Error;
use crate::cluster::{self, Cluster, Resource};
use crate::git::RepoFinder;
use crate::git::cache::default_cache_dir;

/// Options every verb takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Path to the kubeconfig file to use (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace (default: the context's namespace).
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// A clone of a source repository to read instead of the cache (repeatable). Matched to
    /// sources by its remotes; a single --repo is used for every source when no remote matches.
    #[arg(long = "repo", global = true, value_name = "PATH")]
    pub repos: Vec<PathBuf>,
    /// The guard's config file (for agent and Argo CD settings); default: built-in defaults.
    #[arg(long = "guard-config", global = true, value_name = "FILE")]
    pub guard_config: Option<PathBuf>,
}

/// A verb's working state.
pub struct Session {
    pub rt: tokio::runtime::Runtime,
    pub cluster: Cluster,
    pub config: Config,
    /// `-n`, else the context's namespace.
    pub namespace: String,
    pub finder: RepoFinder,
}

/// Ends the life of what a command read without freeing it, when the process exits right
/// after: the operating system takes the memory back at once, where freeing tens of thousands
/// of objects piece by piece takes a noticeable part of a second (about 0.4 s of `audit -A`
/// over 10,000 objects).
pub fn left_to_exit<T>(value: T) {
    std::mem::forget(value);
}

/// The guard config from `--guard-config`, else the defaults.
pub fn load_config(path: Option<&Path>) -> Result<Config, Error> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    Config::from_yaml(&text).map_err(|source| Error::GuardConfig {
        path: path.display().to_string(),
        source,
    })
}

/// The one-thread async runtime a command drives the cluster client with.
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            path: "the async runtime".into(),
            source,
        })
}

impl Session {
    pub fn open(global: &Global) -> Result<Session, Error> {
        let config = load_config(global.guard_config.as_deref())?;
        let rt = runtime()?;
        let mut cluster = rt.block_on(cluster::connect(
            global.kubeconfig.as_deref(),
            global.context.as_deref(),
        ))?;
        rt.block_on(cluster.discover())?;
        let namespace = global
            .namespace
            .clone()
            .unwrap_or_else(|| cluster.default_namespace.clone());
        let cwd = std::env::current_dir().ok();
        let finder = RepoFinder::new(&global.repos, cwd.as_deref(), default_cache_dir())?;
        Ok(Session {
            rt,
            cluster,
            config,
            namespace,
            finder,
        })
    }

    /// Makes sure discovery knows these TYPE arguments if the server serves them (a cached
    /// discovery is refreshed for a TYPE it lacks).
    pub fn know_types<'a>(
        &mut self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Error> {
        for name in names {
            self.rt.block_on(self.cluster.refresh_if_unknown(name))?;
        }
        Ok(())
    }

    /// One object named `TYPE` + `NAME` in the session's namespace.
    pub fn get(&self, type_name: &str, name: &str) -> Result<(Resource, Value), Error> {
        let r = self.cluster.resolve_type(type_name)?.clone();
        let ns = r.namespaced.then_some(self.namespace.as_str());
        let found = self.rt.block_on(self.cluster.get(&r, ns, name))?;
        match found {
            Some(v) => Ok((r, v)),
            None => Err(crate::cluster::Error::NotFound {
                resource: match ns {
                    Some(ns) => format!("{}/{name} in {ns}", r.display_kind()),
                    None => format!("{}/{name}", r.display_kind()),
                },
            }
            .into()),
        }
    }
}
