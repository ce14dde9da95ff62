//! Kubernetes watches that feed [`Caches`](super::Caches).
//!
//! One task per watched kind ([`Watched::all`]: every owner and source kind of the chain of custody,
//! and Namespaces). A custom resource whose CRD is not installed (discovery says so, or the list
//! answers 404) counts as an empty, synced cache and as not served
//! ([`Caches::absent`](super::Caches::absent)); discovery is asked again every `recheck` so a CRD
//! installed later starts being watched (and counts as served once listed), and a CRD removed later
//! empties the cache.
//!
//! Objects are reduced as they arrive ([`Caches::prepare`](super::Caches::prepare)), also while an
//! initial list is buffered, so a list of large objects is never held whole.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroupList, APIResourceList};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher;
use serde_json::Value;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::{Caches, Entry, Watched};
use crate::readiness::Readiness;

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How often the served resources are discovered again (for which have a status subresource).
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);

/// Starts one watch task per kind in [`Watched::all`] and registers each with `readiness`, and
/// the discovery of which resources have a status subresource.
pub fn spawn_all(
    client: kube::Client,
    caches: Arc<Caches>,
    readiness: Arc<Readiness>,
    recheck: Duration,
) -> Vec<JoinHandle<()>> {
    readiness.register_cache(DISCOVERY);
    let discovery = tokio::spawn(discover_status_loop(
        client.clone(),
        caches.clone(),
        readiness.clone(),
    ));
    let watches = Watched::all().map(|kind| {
        readiness.register_cache(&kind.display());
        tokio::spawn(watch_kind(
            client.clone(),
            kind,
            caches.clone(),
            readiness.clone(),
            recheck,
        ))
    });
    std::iter::once(discovery).chain(watches).collect()
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

async fn discover_status_loop(
    client: kube::Client,
    caches: Arc<Caches>,
    readiness: Arc<Readiness>,
) {
    loop {
        match discover_status(&client).await {
            Ok(found) => {
                caches.set_status_subresources(found);
                readiness.cache_synced(DISCOVERY);
            }
            Err(e) => {
                warn!(error = %e, "API discovery failed; status subresources as before");
                readiness.cache_error(DISCOVERY, e);
            }
        }
        tokio::time::sleep(DISCOVERY_INTERVAL).await;
    }
}

fn api_resource(kind: Watched) -> ApiResource {
    let (group, version, k, plural) = kind.gvk();
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, k), plural)
}

/// Whether the API server serves `kind` (its CRD is installed).
async fn served(client: &kube::Client, kind: Watched) -> Result<bool, String> {
    if !kind.is_crd() {
        return Ok(true);
    }
    let (group, version, _, plural) = kind.gvk();
    let request = http::Request::get(format!("/apis/{group}/{version}"))
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    match client.request::<APIResourceList>(request).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == plural)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(e.to_string()),
    }
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

fn to_value(object: &DynamicObject) -> Option<Value> {
    serde_json::to_value(object).ok()
}

async fn watch_kind(
    client: kube::Client,
    kind: Watched,
    caches: Arc<Caches>,
    readiness: Arc<Readiness>,
    recheck: Duration,
) {
    let name = kind.display();
    let resource = api_resource(kind);
    let mut absent_logged = false;
    let mut backoff = Duration::from_secs(1);
    loop {
        match served(&client, kind).await {
            Ok(true) => {
                if absent_logged {
                    info!(kind = %name, "the CRD is installed now; watching it");
                    absent_logged = false;
                }
            }
            Ok(false) => {
                if !absent_logged {
                    info!(
                        kind = %name,
                        recheck_seconds = recheck.as_secs(),
                        "the CRD is not installed: no such owners; checking again periodically"
                    );
                    absent_logged = true;
                }
                caches.absent(kind);
                readiness.cache_synced(&name);
                tokio::time::sleep(recheck).await;
                continue;
            }
            Err(e) => {
                warn!(kind = %name, error = %e, "API discovery failed; retrying");
                readiness.cache_error(&name, e);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }

        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let stream = watcher(api, watcher::Config::default());
        futures::pin_mut!(stream);
        let mut buffer: Option<Vec<Entry>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => buffer = Some(Vec::new()),
                Ok(watcher::Event::InitApply(o)) => {
                    if let (Some(buf), Some(v)) = (buffer.as_mut(), to_value(&o)) {
                        buf.push(caches.prepare(kind, v));
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let objects = buffer.take().unwrap_or_default();
                    let count = objects.len();
                    caches.replace_entries(kind, objects);
                    readiness.cache_synced(&name);
                    backoff = Duration::from_secs(1);
                    info!(kind = %name, objects = count, "cache synced");
                }
                Ok(watcher::Event::Apply(o)) => {
                    if let Some(v) = to_value(&o) {
                        caches.apply(kind, v);
                    }
                }
                Ok(watcher::Event::Delete(o)) => {
                    if let Some(v) = to_value(&o) {
                        caches.delete(kind, &v);
                    }
                }
                Err(e) if kind.is_crd() && is_not_found(&e) => {
                    debug!(kind = %name, error = %e, "the resource is gone; asking discovery");
                    break;
                }
                Err(e) => {
                    warn!(kind = %name, error = %e, "watch failed; retrying");
                    readiness.cache_error(&name, e.to_string());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
