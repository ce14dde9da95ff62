//! Discovery kept on disk between runs, as kubectl keeps its own (`$KUBECACHEDIR`, else
//! `~/.kube/cache`): the resources of every group version, reused while the server lists the same
//! group versions and the same CRDs (name and resourceVersion), and for at most [`TTL`]: two
//! requests instead of one per group version. A TYPE the cached list does not know is looked up
//! again on the server before it is called unknown.

use std::path::{Path, PathBuf};

use kube::api::ApiResource;
use serde::{Deserialize, Serialize};

use super::Resource;

/// How long a cached discovery is used at most.
pub const TTL: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

#[derive(Debug, Serialize, Deserialize)]
struct CachedResource {
    group: String,
    version: String,
    kind: String,
    plural: String,
    namespaced: bool,
    singular: String,
    short_names: Vec<String>,
    verbs: Vec<String>,
    scalable: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    fetched: jiff::Timestamp,
    /// Every group version the server listed, in its order, and every CRD's
    /// `crd:<name>@<resourceVersion>`: the cache is used only while the server says the same.
    group_versions: Vec<String>,
    resources: Vec<CachedResource>,
}

/// The cache file for one API server.
#[derive(Debug, Clone)]
pub struct DiscoveryCache {
    path: PathBuf,
}

impl DiscoveryCache {
    /// `$KUBECACHEDIR/kubectl-gitops/discovery/<server>.json` (else under `~/.kube/cache`);
    /// `None` when there is no home to keep it in.
    pub fn for_server(server: &str) -> Option<DiscoveryCache> {
        let base = std::env::var_os("KUBECACHEDIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube/cache")))?;
        let name: String = server
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Some(DiscoveryCache {
            path: base
                .join("kubectl-gitops/discovery")
                .join(format!("{name}.json")),
        })
    }

    /// The cached resources, when fresh at `now` and taken from the same group versions.
    pub fn load(&self, group_versions: &[String], now: jiff::Timestamp) -> Option<Vec<Resource>> {
        let text = std::fs::read(&self.path).ok()?;
        let cached: Cached = serde_json::from_slice(&text).ok()?;
        let age = now.duration_since(cached.fetched);
        if cached.group_versions != group_versions || age > TTL || age.is_negative() {
            return None;
        }
        Some(
            cached
                .resources
                .into_iter()
                .map(|r| Resource {
                    api: ApiResource {
                        api_version: if r.group.is_empty() {
                            r.version.clone()
                        } else {
                            format!("{}/{}", r.group, r.version)
                        },
                        group: r.group,
                        version: r.version,
                        kind: r.kind,
                        plural: r.plural,
                    },
                    namespaced: r.namespaced,
                    singular: r.singular,
                    short_names: r.short_names,
                    verbs: r.verbs,
                    scalable: r.scalable,
                })
                .collect(),
        )
    }

    /// Keeps `resources` (best effort: a cache that cannot be written is only slower).
    pub fn save(&self, group_versions: &[String], resources: &[Resource], now: jiff::Timestamp) {
        let cached = Cached {
            fetched: now,
            group_versions: group_versions.to_vec(),
            resources: resources
                .iter()
                .map(|r| CachedResource {
                    group: r.api.group.clone(),
                    version: r.api.version.clone(),
                    kind: r.api.kind.clone(),
                    plural: r.api.plural.clone(),
                    namespaced: r.namespaced,
                    singular: r.singular.clone(),
                    short_names: r.short_names.clone(),
                    verbs: r.verbs.clone(),
                    scalable: r.scalable,
                })
                .collect(),
        };
        let Some(dir) = self.path.parent() else {
            return;
        };
        let Ok(text) = serde_json::to_vec(&cached) else {
            return;
        };
        // Written aside and renamed, so a reader never sees half a file; the file aside is
        // created new (O_EXCL: never through a link someone left there).
        use std::io::Write as _;
        let nanos = jiff::Timestamp::now().subsec_nanosecond();
        let tmp = self
            .path
            .with_extension(format!("json.{}.{nanos}", std::process::id()));
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&text));
        if written.is_ok() && std::fs::rename(&tmp, &self.path).is_ok() {
            return;
        }
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(kind: &str) -> Resource {
        Resource {
            api: ApiResource {
                group: "apps".into(),
                version: "v1".into(),
                api_version: "apps/v1".into(),
                kind: kind.into(),
                plural: format!("{}s", kind.to_lowercase()),
            },
            namespaced: true,
            singular: kind.to_lowercase(),
            short_names: vec!["deploy".into()],
            verbs: vec!["list".into()],
            scalable: true,
        }
    }

    #[test]
    fn a_cache_is_used_while_fresh_and_from_the_same_group_versions() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiscoveryCache {
            path: dir.path().join("d/server.json"),
        };
        let gvs = vec!["v1".to_string(), "apps/v1".to_string()];
        let now: jiff::Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        assert!(cache.load(&gvs, now).is_none(), "nothing kept yet");
        cache.save(&gvs, &[resource("Deployment")], now);
        let later = now.checked_add(jiff::SignedDuration::from_mins(5)).unwrap();
        let got = cache.load(&gvs, later).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].api.api_version, "apps/v1");
        assert!(got[0].scalable);
        assert_eq!(got[0].short_names, ["deploy"]);
        // Too old, another set of group versions, a clock gone back: not used.
        let stale = now
            .checked_add(jiff::SignedDuration::from_mins(11))
            .unwrap();
        assert!(cache.load(&gvs, stale).is_none());
        assert!(cache.load(&["v1".to_string()], later).is_none());
        let earlier = now.checked_sub(jiff::SignedDuration::from_mins(1)).unwrap();
        assert!(cache.load(&gvs, earlier).is_none());
        // A damaged file is no cache.
        std::fs::write(dir.path().join("d/server.json"), "{").unwrap();
        assert!(cache.load(&gvs, later).is_none());
    }

    #[test]
    fn servers_get_file_names_of_their_own() {
        let a = DiscoveryCache::for_server("https://127.0.0.1:6443").unwrap();
        let b = DiscoveryCache::for_server("https://127.0.0.1:6444").unwrap();
        assert_ne!(a.path, b.path);
        assert!(
            a.path
                .ends_with("kubectl-gitops/discovery/https___127.0.0.1_6443.json")
        );
    }
}
