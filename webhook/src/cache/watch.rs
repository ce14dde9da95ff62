//! Kubernetes watches that feed [`Caches`](super::Caches).
//!
//! One task per watched kind ([`Watched::all`]: every owner and source kind of the chain of custody,
//! and Namespaces). A custom resource whose CRD is not installed (discovery says so, or the list
//! answers 404) counts as an empty, synced cache and as not served
//! ([`Caches::absent`](super::Caches::absent)); discovery is asked again every `recheck` so a CRD
//! installed later starts being watched (and counts as served once listed), and a CRD removed later
//! empties the cache.
//!
//! Objects are decoded shallow ([`Shallow`]: only what the caches read, whatever the size or depth
//! of the rest) and reduced as they arrive ([`Caches::prepare`](super::Caches::prepare)), also while
//! an initial list is buffered; lists are read [`PAGE_SIZE`] objects at a time.
//!
//! Faults: a list, watch or discovery that fails before the cache's first sync keeps `/readyz`
//! at 503 with the reason; after it, the cache is *degraded* (`/readyz` says why, still 200, see
//! [`Readiness`]; metric `gitops_guard_cache_degraded`) until a relist, or until the API server
//! answers the watch again (seen on the watch's own client, [`Observed`]: kube's watcher resumes
//! from the last resourceVersion and yields nothing until something changes). Every failure counts
//! in `gitops_guard_cache_watch_errors_total`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroupList, APIResourceList};
use kube::api::{Api, ApiResource, GroupVersionKind};
use kube::runtime::watcher;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::shallow::Shallow;
use super::{Caches, Entry, Watched};
use crate::metrics::Metrics;
use crate::readiness::Readiness;

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Objects per list page. A page's body is read whole before it is decoded (kube reads the
/// response, then decodes it; decoding keeps only the [`Shallow`] parts), so the page size bounds
/// the memory a list takes: kube's default page, 500 objects, is 50 MB when each holds 100 KB of
/// Helm values, and 750 MiB when each is at etcd's 1.5 MiB limit, past the chart's memory limit
/// (256 Mi). 50 objects is 5 MB and 75 MiB in those cases; listing 10,000 owners then takes 200
/// requests instead of 20, a few milliseconds each on top of the same transfer.
pub const PAGE_SIZE: u32 = 50;

/// How often the served resources are discovered again (for which have a status subresource).
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);

/// Starts one watch task per kind in [`Watched::all`] and registers each with `readiness`, and
/// the discovery of which resources have a status subresource.
pub fn spawn_all(
    client: kube::Client,
    caches: Arc<Caches>,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    recheck: Duration,
) -> Vec<JoinHandle<()>> {
    let health = Health::new(readiness.clone(), metrics.clone(), DISCOVERY, "discovery");
    let discovery = tokio::spawn(discover_status_loop(client.clone(), caches.clone(), health));
    let watches = Watched::all().map(|kind| {
        let health = Health::new(
            readiness.clone(),
            metrics.clone(),
            &kind.display(),
            kind.gvk().2,
        );
        tokio::spawn(watch_kind(
            client.clone(),
            kind,
            caches.clone(),
            health,
            recheck,
        ))
    });
    std::iter::once(discovery).chain(watches).collect()
}

/// What one cache tells `/readyz` and the metrics.
#[derive(Debug, Clone)]
struct Health {
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    /// The name in `/readyz` (`HelmRelease (helm.toolkit.fluxcd.io/v2)`).
    name: String,
    /// The `cache` label of the metrics (`HelmRelease`).
    label: &'static str,
    /// Held while the state and the gauge change, so the gauge shows the last state.
    update: Arc<Mutex<()>>,
    /// The watch was established since the last failure (the retry delay starts over).
    established: Arc<AtomicBool>,
}

impl Health {
    fn new(
        readiness: Arc<Readiness>,
        metrics: Arc<Metrics>,
        name: &str,
        label: &'static str,
    ) -> Health {
        readiness.register_cache(name);
        metrics.cache_degraded(label, false);
        Health {
            readiness,
            metrics,
            name: name.to_string(),
            label,
            update: Arc::new(Mutex::new(())),
            established: Arc::new(AtomicBool::new(false)),
        }
    }

    fn change(&self, what: impl FnOnce(&Readiness, &str)) {
        let _held = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        what(&self.readiness, &self.name);
        self.metrics
            .cache_degraded(self.label, self.readiness.is_degraded(&self.name));
    }

    /// Listed everything (or the kind is not installed).
    fn synced(&self) {
        self.change(|r, name| r.cache_synced(name));
    }

    /// A list, watch or discovery failed.
    fn failed(&self, why: String) {
        self.metrics.watch_error(self.label);
        self.change(|r, name| r.cache_error(name, why));
    }

    /// The API server answered the watch.
    fn established(&self) {
        self.established.store(true, Ordering::Release);
        self.change(|r, name| r.cache_recovered(name));
    }

    /// Whether the watch was established since this was last asked.
    fn take_established(&self) -> bool {
        self.established.swap(false, Ordering::AcqRel)
    }
}

/// An error with its causes: `watch failed: error trying to connect: Connection refused`.
fn describe(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// A watch's own client: the shared client, noticing when the API server answers a watch request
/// (`watch=true`) with success. kube's watcher, resuming after a failure, yields no event for that.
#[derive(Clone)]
struct Observed {
    client: kube::Client,
    health: Health,
}

impl Observed {
    fn client(client: kube::Client, health: Health) -> kube::Client {
        let namespace = client.default_namespace().to_string();
        kube::Client::new(Observed { client, health }, namespace)
    }
}

fn is_watch(uri: &http::Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

impl tower::Service<http::Request<kube::client::Body>> for Observed {
    type Response = http::Response<kube::client::Body>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Self::Response, kube::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), kube::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<kube::client::Body>) -> Self::Future {
        let watch = is_watch(request.uri());
        let (client, health) = (self.client.clone(), self.health.clone());
        Box::pin(async move {
            let response = client.send(request).await?;
            if watch && response.status().is_success() {
                health.established();
            }
            Ok(response)
        })
    }
}

async fn get<T: serde::de::DeserializeOwned>(
    client: &kube::Client,
    path: &str,
) -> Result<T, String> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    client
        .request::<T>(request)
        .await
        .map_err(|e| e.to_string())
}

/// Every resource the API server serves, by `(group, plural)`, and whether it has a status
/// subresource in some version. A group-version that does not answer (an aggregated API that is
/// down) is left out: its resources count as having one, as before discovery.
pub async fn discover_status(
    client: &kube::Client,
) -> Result<HashMap<(String, String), bool>, String> {
    let mut lists = vec![(String::new(), "/api/v1".to_string())];
    let groups: APIGroupList = get(client, "/apis").await?;
    for group in groups.groups {
        for version in group.versions {
            lists.push((
                group.name.clone(),
                format!("/apis/{}", version.group_version),
            ));
        }
    }
    let mut out: HashMap<(String, String), bool> = HashMap::new();
    for (group, path) in lists {
        let list: APIResourceList = match get(client, &path).await {
            Ok(list) => list,
            Err(e) => {
                debug!(path = %path, error = %e, "discovery of a group-version failed; skipped");
                continue;
            }
        };
        for resource in list.resources {
            match resource.name.split_once('/') {
                Some((plural, "status")) => {
                    out.insert((group.clone(), plural.to_string()), true);
                }
                Some(_) => {}
                None => {
                    out.entry((group.clone(), resource.name)).or_insert(false);
                }
            }
        }
    }
    Ok(out)
}

/// The readiness entry of the discovery: the guard decides with it.
const DISCOVERY: &str = "API discovery (status subresources)";

async fn discover_status_loop(client: kube::Client, caches: Arc<Caches>, health: Health) {
    loop {
        match discover_status(&client).await {
            Ok(found) => {
                caches.set_status_subresources(found);
                health.synced();
            }
            Err(e) => {
                warn!(error = %e, "API discovery failed; status subresources as before");
                health.failed(format!("API discovery failed: {e}"));
            }
        }
        tokio::time::sleep(DISCOVERY_INTERVAL).await;
    }
}

fn api_resource(kind: Watched, version: &str) -> ApiResource {
    let (group, _, k, plural) = kind.gvk();
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, k), plural)
}

/// The version the API server serves `kind` in (the first of [`Watched::versions`] it serves),
/// or `None` when it serves none (the CRD is not installed).
async fn served(client: &kube::Client, kind: Watched) -> Result<Option<&'static str>, String> {
    let versions = kind.versions();
    if !kind.is_crd() {
        return Ok(versions.first().copied());
    }
    let (group, _, _, plural) = kind.gvk();
    for version in versions {
        let path = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let request = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        match client.request::<APIResourceList>(request).await {
            Ok(list) if list.resources.iter().any(|r| r.name == plural) => {
                return Ok(Some(version));
            }
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(None)
}

fn is_not_found(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 404,
        watcher::Error::WatchError(s) => s.code == 404,
        _ => false,
    }
}

async fn watch_kind(
    client: kube::Client,
    kind: Watched,
    caches: Arc<Caches>,
    health: Health,
    recheck: Duration,
) {
    let name = kind.display();
    let watch_client = Observed::client(client.clone(), health.clone());
    let mut absent_logged = false;
    let mut backoff = Duration::from_secs(1);
    loop {
        let version = match served(&client, kind).await {
            Ok(Some(version)) => {
                if absent_logged {
                    info!(kind = %name, "the CRD is installed now; watching it");
                    absent_logged = false;
                }
                version
            }
            Ok(None) => {
                if !absent_logged {
                    info!(
                        kind = %name,
                        recheck_seconds = recheck.as_secs(),
                        "not served (its CRD is not installed): no such objects; checking again periodically"
                    );
                    absent_logged = true;
                }
                caches.absent(kind);
                health.synced();
                tokio::time::sleep(recheck).await;
                continue;
            }
            Err(e) => {
                warn!(kind = %name, error = %e, "API discovery failed; retrying");
                health.failed(format!("API discovery failed: {e}"));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };

        let resource = api_resource(kind, version);
        let api: Api<Shallow> = Api::all_with(watch_client.clone(), &resource);
        let stream = watcher(api, watcher::Config::default().page_size(PAGE_SIZE));
        futures::pin_mut!(stream);
        let mut buffer: Option<Vec<Entry>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => buffer = Some(Vec::new()),
                Ok(watcher::Event::InitApply(o)) => {
                    if let Some(buf) = buffer.as_mut() {
                        buf.push(caches.prepare(kind, o.into_value()));
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let objects = buffer.take().unwrap_or_default();
                    let count = objects.len();
                    caches.replace_entries(kind, objects);
                    health.synced();
                    backoff = Duration::from_secs(1);
                    info!(kind = %name, objects = count, "cache synced");
                }
                Ok(watcher::Event::Apply(o)) => caches.apply(kind, o.into_value()),
                Ok(watcher::Event::Delete(o)) => caches.delete(kind, o.value()),
                Err(e) if kind.is_crd() && is_not_found(&e) => {
                    debug!(kind = %name, error = %e, "the resource is gone; asking discovery");
                    break;
                }
                Err(e) => {
                    let why = describe(&e);
                    warn!(kind = %name, error = %why, "watch failed; retrying");
                    health.failed(why);
                    if health.take_established() {
                        backoff = Duration::from_secs(1);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
