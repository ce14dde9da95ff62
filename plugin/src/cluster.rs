//! Reading the cluster: kubeconfig and context like kubectl, API discovery (so TYPE arguments
//! resolve as kubectl resolves them: `deployment`, `deploy`, `deployments.apps`, `Deployment`),
//! listing and getting objects as JSON.

use std::path::Path;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

pub mod discovery_cache;
mod error;

pub use error::Error;

use discovery_cache::DiscoveryCache;

/// One resource type the server serves (in the most preferred version of its group that serves
/// it).
#[derive(Debug, Clone)]
pub struct Resource {
    pub api: ApiResource,
    pub namespaced: bool,
    pub singular: String,
    pub short_names: Vec<String>,
    pub verbs: Vec<String>,
    /// It has a `/scale` subresource (what `kubectl scale` needs).
    pub scalable: bool,
}

impl Resource {
    /// `deployment.apps`-style name used in messages.
    pub fn display_kind(&self) -> String {
        self.api.kind.to_lowercase()
    }
}

/// A connection to the cluster and what it serves.
pub struct Cluster {
    pub client: kube::Client,
    /// What the client was made from (for [`Cluster::seed`]).
    config: kube::Config,
    /// The namespace `-n` defaults to (the context's namespace, else `default`).
    pub default_namespace: String,
    resources: Vec<Resource>,
    /// Where discovery is kept between runs.
    cache: Option<DiscoveryCache>,
    /// The group resources came from the cache (a TYPE it lacks is looked up again).
    from_cache: bool,
}

/// Resources never worth listing for `status` (copies of other objects, or not objects at all).
const NOT_LISTED: &[(&str, &str)] = &[
    ("", "events"),
    ("events.k8s.io", "events"),
    ("", "endpoints"),
    ("discovery.k8s.io", "endpointslices"),
    ("", "componentstatuses"),
    ("coordination.k8s.io", "leases"),
    ("metrics.k8s.io", "pods"),
    ("metrics.k8s.io", "nodes"),
];

/// A failed request: what was asked, and kube's error as the cause.
pub fn kube_error(action: impl Into<String>, source: kube::Error) -> Error {
    Error::Kube {
        action: action.into(),
        source,
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

fn bad_kubeconfig(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Kubeconfig {
        file: None,
        source: Box::new(e),
    }
}

/// Connects with `--kubeconfig` (else `$KUBECONFIG`, `~/.kube/config`, in-cluster) and `--context`.
pub async fn connect(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Cluster, Error> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig {
                file: Some(path.display().to_string()),
                source: e.into(),
            })?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(bad_kubeconfig)?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(bad_kubeconfig)?,
        None => kube::Config::infer().await.map_err(bad_kubeconfig)?,
    };
    let cache = DiscoveryCache::for_server(&config.cluster_url.to_string());
    let mut cluster = Seed {
        config,
        resources: Vec::new(),
    }
    .connect()?;
    cluster.cache = cache;
    Ok(cluster)
}

/// What a second connection to the same cluster needs: work on another thread has to have a
/// client of its own, since a client's connections live on the runtime that made it.
pub struct Seed {
    config: kube::Config,
    resources: Vec<Resource>,
}

impl Cluster {
    pub fn seed(&self) -> Seed {
        Seed {
            config: self.config.clone(),
            resources: self.resources.clone(),
        }
    }
}

impl Seed {
    /// A connection of its own, knowing what this one's discovery found (without a discovery
    /// cache). Call it inside the runtime that will use it.
    pub fn connect(self) -> Result<Cluster, Error> {
        let client = kube::Client::try_from(self.config.clone()).map_err(bad_kubeconfig)?;
        Ok(Cluster {
            client,
            default_namespace: self.config.default_namespace.clone(),
            config: self.config,
            resources: self.resources,
            cache: None,
            from_cache: false,
        })
    }
}

fn add_list(out: &mut Vec<Resource>, group: &str, version: &str, list: APIResourceList) {
    let scalable: Vec<String> = list
        .resources
        .iter()
        .filter_map(|r| r.name.strip_suffix("/scale").map(str::to_string))
        .collect();
    for r in list.resources {
        if r.name.contains('/') {
            continue; // subresource
        }
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let scalable = scalable.contains(&r.name);
        out.push(Resource {
            api: ApiResource {
                group: group.to_string(),
                version: version.to_string(),
                api_version,
                kind: r.kind,
                plural: r.name,
            },
            namespaced: r.namespaced,
            singular: r.singular_name,
            short_names: r.short_names.unwrap_or_default(),
            verbs: r.verbs,
            scalable,
        });
    }
}

impl Cluster {
    /// Reads what the server serves: the core group and every version of every group (the
    /// groups' resources from the discovery cache while it is fresh and the server lists the same
    /// group versions).
    pub async fn discover(&mut self) -> Result<(), Error> {
        if !self.resources.is_empty() {
            return Ok(());
        }
        self.discover_from_server(false).await
    }

    /// Discovers again, past the cache, when `name` is a TYPE the cached discovery does not know
    /// (a CRD installed since): kubectl does the same before it says a type does not exist.
    pub async fn refresh_if_unknown(&mut self, name: &str) -> Result<(), Error> {
        if self.from_cache && self.resolve_type(name).is_err() {
            self.discover_from_server(true).await?;
        }
        Ok(())
    }

    async fn discover_from_server(&mut self, past_cache: bool) -> Result<(), Error> {
        let mut out = Vec::new();
        let core = self
            .client
            .list_core_api_resources("v1")
            .await
            .map_err(|e| kube_error("API discovery (/api/v1)", e))?;
        add_list(&mut out, "", "v1", core);
        let groups = self
            .client
            .list_api_groups()
            .await
            .map_err(|e| kube_error("API discovery (/apis)", e))?;
        let mut group_versions: Vec<String> = groups
            .groups
            .iter()
            .flat_map(|g| g.versions.iter().map(|v| v.group_version.clone()))
            .collect();
        // Every CRD as it is now (name and resourceVersion, metadata only): a kind added to a
        // group version the server already served changes this, so the cache is not used. Who
        // cannot list CRDs discovers without the cache.
        let crds = ApiResource {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            plural: "customresourcedefinitions".into(),
        };
        let crds = Api::<DynamicObject>::all_with(self.client.clone(), &crds)
            .list_metadata(&ListParams::default())
            .await
            .ok();
        match crds {
            Some(list) => group_versions.extend(list.items.iter().map(|c| {
                format!(
                    "crd:{}@{}",
                    c.metadata.name.as_deref().unwrap_or_default(),
                    c.metadata.resource_version.as_deref().unwrap_or_default()
                )
            })),
            None => group_versions.clear(),
        }
        let now = jiff::Timestamp::now();
        if !past_cache
            && !group_versions.is_empty()
            && let Some(cached) = self
                .cache
                .as_ref()
                .and_then(|c| c.load(&group_versions, now))
        {
            out.extend(cached.into_iter().filter(|r| !r.api.group.is_empty()));
            self.resources = out;
            self.from_cache = true;
            return Ok(());
        }
        // Every served version of every group, as `kubectl api-resources` lists them: a kind served
        // only in a version the group does not prefer (Flux's Alerts and Providers are
        // notification.toolkit.fluxcd.io/v1beta3 while the group prefers v1) is still a kind.
        let mut tasks = tokio::task::JoinSet::new();
        for (i, g) in groups.groups.into_iter().enumerate() {
            let preferred = g
                .preferred_version
                .as_ref()
                .map(|p| p.version.clone())
                .or_else(|| g.versions.first().map(|v| v.version.clone()));
            let mut versions = g.versions.clone();
            // Preferred first, then the rest in the server's order.
            versions.sort_by_key(|v| Some(&v.version) != preferred.as_ref());
            for (j, v) in versions.into_iter().enumerate() {
                let client = self.client.clone();
                let group = g.name.clone();
                tasks.spawn(async move {
                    let list = client.list_api_group_resources(&v.group_version).await;
                    ((i, j), group, v.version, list)
                });
            }
        }
        let mut lists = Vec::new();
        // A discovery missing a group version is not kept (it would hide those kinds for as
        // long as the cache lives, though the API is back).
        let mut complete = true;
        while let Some(done) = tasks.join_next().await {
            let Ok((order, group, version, list)) = done else {
                complete = false;
                continue;
            };
            // An unavailable aggregated API (metrics-server down) must not break everything.
            match list {
                Ok(list) => lists.push((order, group, version, list)),
                Err(_) => complete = false,
            }
        }
        lists.sort_by_key(|(order, ..)| *order);
        for (_, group, version, list) in lists {
            // A kind already found in a more preferred version of its group is that one.
            let mut fresh = Vec::new();
            add_list(&mut fresh, &group, &version, list);
            fresh.retain(|r| {
                !out.iter()
                    .any(|o| o.api.group == r.api.group && o.api.plural == r.api.plural)
            });
            out.extend(fresh);
        }
        if let Some(cache) = &self.cache
            && !group_versions.is_empty()
            && complete
        {
            cache.save(&group_versions, &out, now);
        }
        self.resources = out;
        self.from_cache = false;
        Ok(())
    }

    /// Resolves a TYPE like kubectl: plural, singular, short name or kind, optionally
    /// `.group` or `.version.group` qualified.
    pub fn resolve_type(&self, name: &str) -> Result<&Resource, Error> {
        let unknown = || Error::UnknownResourceType {
            name: name.to_string(),
        };
        let lower = name.to_lowercase();
        let (base, qualifier) = match lower.split_once('.') {
            Some((b, q)) => (b.to_string(), Some(q.to_string())),
            None => (lower.clone(), None),
        };
        let matches_name = |r: &Resource| {
            r.api.plural == base
                || r.singular == base
                || r.api.kind.to_lowercase() == base
                || r.short_names.iter().any(|s| s == &base)
        };
        let matches_group = |r: &Resource| match &qualifier {
            None => true,
            Some(q) => {
                q == &r.api.group
                    || q == &format!("{}.{}", r.api.version, r.api.group)
                    || (r.api.group.is_empty() && q == &r.api.version)
            }
        };
        let found: Vec<&Resource> = self
            .resources
            .iter()
            .filter(|r| matches_name(r) && matches_group(r))
            .collect();
        // Several groups serve the name (events, ingresses on old servers): kubectl's order puts
        // the core group first, and "extensions" last.
        found
            .iter()
            .find(|r| r.api.group.is_empty())
            .or_else(|| found.iter().find(|r| r.api.group != "extensions"))
            .or_else(|| found.first())
            .copied()
            .ok_or_else(unknown)
    }

    /// The resource serving `kind` in `group` (for owners and sources).
    pub fn resource_for(&self, group: &str, kind: &str) -> Option<&Resource> {
        self.resources
            .iter()
            .find(|r| r.api.group == group && r.api.kind == kind)
    }

    /// Everything `status` lists when no TYPE is given: listable resources, minus copies
    /// (events, endpoints, …) and types served twice under an old group name.
    pub fn listable(&self, namespaced_only: bool) -> Vec<&Resource> {
        self.resources
            .iter()
            .filter(|r| r.verbs.iter().any(|v| v == "list"))
            .filter(|r| !namespaced_only || r.namespaced)
            .filter(|r| !NOT_LISTED.contains(&(r.api.group.as_str(), r.api.plural.as_str())))
            .filter(|r| {
                // Served by a newer group too (extensions/ingresses on 1.20): list that one.
                !(r.api.group == "extensions"
                    && self
                        .resources
                        .iter()
                        .any(|o| o.api.group != "extensions" && o.api.kind == r.api.kind))
            })
            .collect()
    }

    fn api(&self, r: &Resource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) if r.namespaced => Api::namespaced_with(self.client.clone(), ns, &r.api),
            _ => Api::all_with(self.client.clone(), &r.api),
        }
    }

    /// Lists objects (all pages). `namespace`: `None` for all namespaces.
    pub async fn list(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().limit(500);
            if let Some(s) = selector {
                lp = lp.labels(s);
            }
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let page = self.list_page(r, namespace, &lp).await?;
            out.extend(page.items);
            token = page.next;
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// One page of a list, each object read on its own: kube reads a page whole, so one object
    /// nested deeper than serde_json's limit (128 levels: a HelmRelease's values can be) would fail
    /// it, and a lenient caller would then answer without every object of the type. The page's
    /// items are taken as raw text (serde_json skips them without a depth limit); an item that
    /// cannot be read is named in the error.
    async fn list_page(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        lp: &ListParams,
    ) -> Result<Page, Error> {
        let action = || format!("listing {}", r.api.plural);
        let ns = namespace.filter(|_| r.namespaced);
        let request =
            kube::core::Request::new(<DynamicObject as kube::Resource>::url_path(&r.api, ns))
                .list(lp)
                .map_err(|e| kube_error(action(), kube::Error::BuildRequest(e)))?;
        let text = self
            .client
            .request_text(request)
            .await
            .map_err(|e| kube_error(action(), e))?;
        let raw: RawPage = serde_json::from_str(&text)
            .map_err(|e| kube_error(action(), kube::Error::SerdeError(e)))?;
        let mut items = Vec::with_capacity(raw.items.len());
        let mut unreadable: Vec<(String, String)> = Vec::new();
        let mut reason = String::new();
        for item in &raw.items {
            match serde_json::from_str::<Value>(item.get()) {
                Ok(mut v) => {
                    if let Some(map) = v.as_object_mut() {
                        map.insert(
                            "apiVersion".into(),
                            Value::String(r.api.api_version.clone()),
                        );
                        map.insert("kind".into(), Value::String(r.api.kind.clone()));
                    }
                    items.push(v);
                }
                Err(e) => {
                    let named: Named = serde_json::from_str(item.get()).unwrap_or_default();
                    let kind = r.api.kind.to_lowercase();
                    let what = if named.metadata.namespace.is_empty() {
                        format!("{kind}/{}", named.metadata.name)
                    } else {
                        format!(
                            "{kind}/{} in {}",
                            named.metadata.name, named.metadata.namespace
                        )
                    };
                    let command = if named.metadata.namespace.is_empty() {
                        format!("kubectl get {kind}/{} -o yaml", named.metadata.name)
                    } else {
                        format!(
                            "kubectl get {kind}/{} -n {} -o yaml",
                            named.metadata.name, named.metadata.namespace
                        )
                    };
                    if reason.is_empty() {
                        reason = e.to_string();
                    }
                    unreadable.push((what, command));
                }
            }
        }
        if !unreadable.is_empty() {
            return Err(Error::Unreadable {
                plural: r.api.plural.clone(),
                objects: unreadable.iter().map(|u| u.0.clone()).collect(),
                commands: unreadable.iter().map(|u| u.1.clone()).collect(),
                reason: format!("{reason} (serde_json reads JSON nested at most 128 levels deep)"),
            });
        }
        Ok(Page {
            items,
            next: raw.metadata.continue_.filter(|t| !t.is_empty()),
        })
    }

    /// Lists, ignoring types the user may not list (403), that vanished (404) or cannot be listed
    /// (405), and metrics APIs that are down (503).
    pub async fn list_lenient(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, Error> {
        Ok(self
            .list_or_skip(r, namespace, selector)
            .await?
            .unwrap_or_default())
    }

    /// [`Cluster::list_lenient`] that says when it skipped the type (`None`) rather than
    /// listing it and finding nothing.
    pub async fn list_or_skip(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Option<Vec<Value>>, Error> {
        match self.list(r, namespace, selector).await {
            Ok(v) => Ok(Some(v)),
            // Not yours to list, gone, not listable; or a metrics API whose server is down
            // (metrics are nobody's GitOps objects).
            Err(Error::Kube { source, .. })
                if [403, 404, 405].iter().any(|c| is_status(&source, *c))
                    || (is_status(&source, 503) && r.api.group.ends_with("metrics.k8s.io")) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// One object; `None` if it does not exist.
    pub async fn get(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, Error> {
        let api = self.api(r, namespace);
        match api.get(name).await {
            Ok(obj) => Ok(Some(to_json(obj, r))),
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(kube_error(
                format!("getting {}/{name}", r.display_kind()),
                e,
            )),
        }
    }

    /// One object by group and kind (owners, sources); an error names a missing CRD.
    pub async fn get_kind(
        &self,
        group: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, Error> {
        let Some(r) = self.resource_for(group, kind) else {
            return Err(Error::Refused {
                action: format!("getting {kind} {namespace}/{name}"),
                message: format!(
                    "the cluster does not serve {kind} ({group}); is its CRD installed?"
                ),
            });
        };
        let r = r.clone();
        self.get(&r, Some(namespace), name).await
    }
}

/// One page of a list, its objects read.
struct Page {
    items: Vec<Value>,
    next: Option<String>,
}

/// A list page as the API server sends it, items unread.
#[derive(serde::Deserialize)]
struct RawPage {
    #[serde(default)]
    items: Vec<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    metadata: RawListMeta,
}

#[derive(Default, serde::Deserialize)]
struct RawListMeta {
    #[serde(default, rename = "continue")]
    continue_: Option<String>,
}

/// An object's name and namespace, the rest skipped (at any depth).
#[derive(Default, serde::Deserialize)]
struct Named {
    #[serde(default)]
    metadata: NamedMeta,
}

#[derive(Default, serde::Deserialize)]
struct NamedMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
}

/// `(group, kind)` of an object read from the cluster (its `apiVersion` and `kind`).
pub fn group_kind_of(v: &Value) -> Option<(&str, &str)> {
    let api_version = v.get("apiVersion")?.as_str()?;
    let kind = v.get("kind")?.as_str()?;
    Some((api_version.rsplit_once('/').map_or("", |(g, _)| g), kind))
}

fn to_json(obj: DynamicObject, r: &Resource) -> Value {
    let mut v = serde_json::to_value(&obj).unwrap_or(Value::Null);
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "apiVersion".into(),
            Value::String(r.api.api_version.clone()),
        );
        map.insert("kind".into(), Value::String(r.api.kind.clone()));
    }
    v
}
