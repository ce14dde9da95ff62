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
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher;
use serde_json::Value;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::{Caches, Entry, Watched};
use crate::readiness::Readiness;

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts one watch task per kind in [`Watched::all`] and registers each with `readiness`.
pub fn spawn_all(
    client: kube::Client,
    caches: Arc<Caches>,
    readiness: Arc<Readiness>,
    recheck: Duration,
) -> Vec<JoinHandle<()>> {
    Watched::all()
        .map(|kind| {
            readiness.register_cache(&kind.display());
            tokio::spawn(watch_kind(
                client.clone(),
                kind,
                caches.clone(),
                readiness.clone(),
                recheck,
            ))
        })
        .collect()
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
