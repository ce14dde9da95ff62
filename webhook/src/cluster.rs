//! What the webhook asks the API server, besides its watches: the object behind a scale request
//! (through a short-lived cache), and the Events it records for break-glass changes.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gitops_guard_core::object::Fields;
use gitops_guard_core::{AdmissionRequest, Object};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::Error;
use crate::handler::api_version_of;

/// How long the hot path waits for the API server to return a live object (a scale parent).
/// Well below the webhook's own timeout (the chart: 3 s), so a slow lookup is answered as a
/// refusal, never left to the API server's failurePolicy.
pub const PARENT_TIMEOUT: Duration = Duration::from_secs(1);

/// The component named in recorded Events.
pub const COMPONENT: &str = "gitops-guard";

/// A Kubernetes client from `kubeconfig` (a path, or several joined like `KUBECONFIG`), else the
/// in-cluster service account (or whatever `kube::Config::infer` finds).
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, Error> {
    let config = match kubeconfig {
        Some(paths) => {
            let bad = |why: String| Error::Kubeconfig {
                path: paths.to_path_buf(),
                why,
            };
            let mut merged: Option<Kubeconfig> = None;
            for path in std::env::split_paths(paths.as_os_str()) {
                if path.as_os_str().is_empty() {
                    continue;
                }
                let one = Kubeconfig::read_from(&path).map_err(|e| Error::Kubeconfig {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
                merged = Some(match merged {
                    None => one,
                    Some(m) => m.merge(one).map_err(|e| bad(e.to_string()))?,
                });
            }
            let kubeconfig = merged.ok_or_else(|| bad("no file named".into()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| bad(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::KubeClient(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(|e| Error::KubeClient(e.to_string()))
}

/// The object behind a `<resource>/scale` request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParentRef {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ParentRef {
    pub fn of(req: &AdmissionRequest<'_>) -> ParentRef {
        ParentRef {
            group: req.resource.group.clone(),
            version: req.resource.version.clone(),
            resource: req.resource.resource.clone(),
            namespace: req.namespace.clone(),
            name: req.object_name().to_string(),
        }
    }

    /// The API path of the object.
    pub fn path(&self) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        if self.namespace.is_empty() {
            format!("{base}/{}/{}", self.resource, self.name)
        } else {
            format!(
                "{base}/namespaces/{}/{}/{}",
                self.namespace, self.resource, self.name
            )
        }
    }
}

impl fmt::Display for ParentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resource = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        if self.namespace.is_empty() {
            write!(f, "{resource}/{}", self.name)
        } else {
            write!(f, "{resource}/{} in {}", self.name, self.namespace)
        }
    }
}

/// Reads the parent object as JSON text; `None` if it does not exist.
pub async fn fetch_parent(
    client: &kube::Client,
    parent: &ParentRef,
) -> Result<Option<String>, String> {
    let request = http::Request::get(parent.path())
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(PARENT_TIMEOUT, client.request_text(request)).await {
        Err(_) => Err(format!(
            "no answer from the API server within {}s",
            PARENT_TIMEOUT.as_secs()
        )),
        Ok(Ok(text)) => Ok(Some(text)),
        Ok(Err(kube::Error::Api(status))) if status.code == 404 => Ok(None),
        Ok(Err(e)) => Err(e.to_string()),
    }
}

/// A parent's JSON text, or `None` for "does not exist".
pub type ParentText = Option<Arc<str>>;

/// Scale parents read recently: the HPA and `kubectl scale` loops ask about the same object often.
#[derive(Debug, Default)]
pub struct ParentCache {
    entries: Mutex<HashMap<ParentRef, (Instant, ParentText)>>,
}

/// Entries beyond which expired ones are dropped.
const PARENT_CACHE_SOFT_LIMIT: usize = 1024;

impl ParentCache {
    pub fn new() -> ParentCache {
        ParentCache::default()
    }

    /// A cached answer younger than `ttl`: `Some(None)` is a cached "does not exist".
    pub fn get(&self, key: &ParentRef, ttl: Duration) -> Option<ParentText> {
        if ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let (at, value) = entries.get(key)?;
        (at.elapsed() < ttl).then(|| value.clone())
    }

    pub fn put(&self, key: ParentRef, value: ParentText, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= PARENT_CACHE_SOFT_LIMIT {
                entries.retain(|_, (at, _)| at.elapsed() < ttl);
            }
            entries.insert(key, (Instant::now(), value));
        }
    }
}

/// The object an Event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTarget {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

fn uid_of(obj: &Object<'_>) -> Option<String> {
    let meta = Fields::parse(obj.fields.get("metadata")?)?;
    serde_json::from_str::<String>(meta.get("uid")?.get()).ok()
}

impl EventTarget {
    /// The object a request changes (for a scale request: its parent).
    pub fn of(req: &AdmissionRequest<'_>, scale_parent: Option<&Object<'_>>) -> EventTarget {
        match scale_parent {
            Some(p) => EventTarget {
                api_version: p.api_version.clone(),
                kind: p.kind.clone(),
                namespace: req.namespace.clone(),
                name: p.name.clone(),
                uid: uid_of(p).unwrap_or_default(),
            },
            None => EventTarget {
                api_version: api_version_of(&req.kind.group, &req.kind.version),
                kind: req.kind.kind.clone(),
                namespace: req.namespace.clone(),
                name: req.object_name().to_string(),
                uid: req
                    .old_object
                    .as_ref()
                    .and_then(uid_of)
                    .or_else(|| req.object.as_ref().and_then(uid_of))
                    .unwrap_or_default(),
            },
        }
    }
}

/// Longest Event message recorded (longer texts are cut).
const MAX_MESSAGE: usize = 1024;

/// The Event recorded for a break-glass change.
pub fn break_glass_event(target: &EventTarget, message: &str, now: jiff::Timestamp) -> Event {
    // Cluster-scoped objects get their Events in `default`, as kubectl and client-go do.
    let namespace = if target.namespace.is_empty() {
        "default".to_string()
    } else {
        target.namespace.clone()
    };
    let mut message = message.to_string();
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    let nanos = now.as_nanosecond();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", target.name, nanos)),
            namespace: Some(namespace),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some(target.api_version.clone()).filter(|s| !s.is_empty()),
            kind: Some(target.kind.clone()),
            name: Some(target.name.clone()),
            namespace: Some(target.namespace.clone()).filter(|s| !s.is_empty()),
            uid: Some(target.uid.clone()).filter(|s| !s.is_empty()),
            ..ObjectReference::default()
        },
        reason: Some("BreakGlass".into()),
        message: Some(message),
        type_: Some("Warning".into()),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Event::default()
    }
}

/// Creates the Event.
pub async fn record_event(client: kube::Client, event: Event) -> Result<(), kube::Error> {
    let namespace = event.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(client, &namespace);
    api.create(&PostParams::default(), &event).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent(group: &str, ns: &str) -> ParentRef {
        ParentRef {
            group: group.into(),
            version: "v1".into(),
            resource: if group.is_empty() {
                "replicationcontrollers".into()
            } else {
                "deployments".into()
            },
            namespace: ns.into(),
            name: "web".into(),
        }
    }

    #[test]
    fn parent_paths_and_names() {
        assert_eq!(
            parent("apps", "prod").path(),
            "/apis/apps/v1/namespaces/prod/deployments/web"
        );
        assert_eq!(
            parent("", "prod").path(),
            "/api/v1/namespaces/prod/replicationcontrollers/web"
        );
        assert_eq!(parent("apps", "").path(), "/apis/apps/v1/deployments/web");
        assert_eq!(
            parent("apps", "prod").to_string(),
            "deployments.apps/web in prod"
        );
    }

    #[test]
    fn parent_cache_expires_and_caches_absence() {
        let cache = ParentCache::new();
        let key = parent("apps", "prod");
        let ttl = Duration::from_millis(50);
        assert_eq!(cache.get(&key, ttl), None);
        cache.put(key.clone(), None, ttl);
        assert_eq!(cache.get(&key, ttl), Some(None));
        cache.put(key.clone(), Some(Arc::from("{}")), ttl);
        assert_eq!(cache.get(&key, ttl), Some(Some(Arc::from("{}"))));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&key, ttl), None);
        cache.put(key.clone(), None, Duration::ZERO);
        assert_eq!(cache.get(&key, Duration::ZERO), None);
    }

    #[test]
    fn events_follow_the_legacy_namespace_rule() {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let target = EventTarget {
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: "ClusterRole".into(),
            namespace: String::new(),
            name: "viewer".into(),
            uid: String::new(),
        };
        let e = break_glass_event(&target, &"x".repeat(2000), now);
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(e.involved_object.namespace, None);
        assert_eq!(e.message.as_ref().map(String::len), Some(MAX_MESSAGE));
        assert_eq!(e.reason.as_deref(), Some("BreakGlass"));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["source"]["component"], "gitops-guard");
        assert_eq!(v["firstTimestamp"], "2027-01-15T08:00:00Z");
    }
}
