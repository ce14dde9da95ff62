//! Ingresses and the hosts they claim: the vocabulary the guard reads them with, once.
//!
//! Ingress controllers merge the rules of every Ingress by host (ingress-nginx builds one server
//! per host from all Ingresses of its class, whatever their namespace, and adds each one's paths
//! to it; an Ingress's TLS section picks the certificate of the hosts it lists), and external-dns
//! and cert-manager act on each Ingress's hosts. So an Ingress that names a host another one
//! serves steers part of that host's traffic, its DNS record or its certificate.
//!
//! What counts as the same host ([`Host::overlaps`]), conservatively:
//! - hosts compare case-insensitively, without a trailing dot;
//! - a wildcard `*.example.com` (one label, as the Ingress API defines it) overlaps every host one
//!   label below `example.com` and the same wildcard; `*.example.com` and `*.b.example.com` never
//!   match the same name and do not overlap;
//! - a rule without a host and the default backend (`spec.defaultBackend`, `spec.backend` in
//!   `v1beta1`) are the catch-all ([`Host::Default`]): they overlap another catch-all only (a
//!   catch-all takes what no host claims, so claiming a host is not taking it from one);
//! - paths, `pathType`, the ingress class and the namespace are not compared: the same host is
//!   an overlap whatever the paths (one Ingress's `/` and another's `/admin` share a server, its
//!   annotations and its certificate), and a class is a string anyone sets.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::config::Config;
use crate::object::Object;
use crate::owner::{OwnerRef, owners_of};
use crate::workload::{Steered, string_map};

/// The API groups that serve Ingresses: `networking.k8s.io` (`v1`, `v1beta1`) and, before
/// Kubernetes 1.22, `extensions/v1beta1` (the same objects).
pub const GROUPS: &[&str] = &["networking.k8s.io", "extensions"];

/// The kind and the resource.
pub const KIND: &str = "Ingress";
pub const RESOURCE: &str = "ingresses";

/// Whether `group`/`kind` is an Ingress.
pub fn is_ingress(group: &str, kind: &str) -> bool {
    kind == KIND && GROUPS.contains(&group)
}

/// Whether `group`/`resource` is the Ingresses' resource.
pub fn is_ingress_resource(group: &str, resource: &str) -> bool {
    resource == RESOURCE && GROUPS.contains(&group)
}

/// One host an Ingress claims.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    /// `app.example.com` (lower case, no trailing dot).
    Exact(String),
    /// `*.example.com`: the suffix `example.com`.
    Wildcard(String),
    /// A rule without a host, or the default backend: what no host claims.
    Default,
}

impl Host {
    /// A rule's or a TLS section's host as written.
    pub fn parse(text: &str) -> Host {
        let host = text.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Host::Default;
        }
        match host.strip_prefix("*.") {
            Some(suffix) => Host::Wildcard(suffix.to_string()),
            None => Host::Exact(host),
        }
    }

    /// Whether a request could be served by both (see the module's text).
    pub fn overlaps(&self, other: &Host) -> bool {
        let under = |host: &str, suffix: &str| {
            host.strip_suffix(suffix)
                .and_then(|label| label.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.'))
        };
        match (self, other) {
            (Host::Default, Host::Default) => true,
            (Host::Default, _) | (_, Host::Default) => false,
            (Host::Exact(a), Host::Exact(b)) | (Host::Wildcard(a), Host::Wildcard(b)) => a == b,
            (Host::Exact(h), Host::Wildcard(s)) | (Host::Wildcard(s), Host::Exact(h)) => {
                under(h, s)
            }
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Exact(h) => f.write_str(h),
            Host::Wildcard(s) => write!(f, "*.{s}"),
            Host::Default => f.write_str("the default backend (no host)"),
        }
    }
}

/// The hosts an Ingress's `spec` claims: its rules' hosts (a rule without one: the catch-all),
/// its TLS sections' hosts, and the catch-all for a default backend. Sorted, without duplicates.
pub fn hosts(spec: &Value) -> Vec<Host> {
    let list = |key: &str| {
        spec.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    };
    let mut out: Vec<Host> = list("rules")
        .map(|r| Host::parse(r.get("host").and_then(Value::as_str).unwrap_or("")))
        .collect();
    out.extend(
        list("tls")
            .filter_map(|t| t.get("hosts").and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .map(Host::parse)
            .filter(|h| *h != Host::Default),
    );
    if ["defaultBackend", "backend"]
        .iter()
        .any(|k| spec.get(*k).is_some_and(|b| !b.is_null()))
    {
        out.push(Host::Default);
    }
    out.sort();
    out.dedup();
    out
}

/// The first pair of hosts, one of `ours` and one of `theirs`, that overlap.
pub fn overlap<'h>(ours: &'h [Host], theirs: &'h [Host]) -> Option<(&'h Host, &'h Host)> {
    ours.iter()
        .find_map(|a| theirs.iter().find(|b| a.overlaps(b)).map(|b| (a, b)))
}

/// What the guard keeps of one Ingress (the webhook's cache of them, cluster-wide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Who its labels and annotations say manages it (empty: nobody, unless its namespace is
    /// `enforce: all`).
    pub owners: Vec<OwnerRef>,
    pub hosts: Vec<Host>,
    /// Its `gitops-guard.dev/…` annotations (exceptions decided in Git).
    pub exceptions: BTreeMap<String, String>,
}

/// The facts of an Ingress, from the whole object (or its shallow copy).
pub fn facts(v: &Value, config: &Config) -> Facts {
    let meta = |k: &str| {
        v.get("metadata")
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let labels = string_map(v.get("metadata").and_then(|m| m.get("labels")));
    let annotations = string_map(v.get("metadata").and_then(|m| m.get("annotations")));
    let api_version = v
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let group = api_version
        .split_once('/')
        .map(|(g, _)| g.to_string())
        .unwrap_or_else(|| GROUPS[0].to_string());
    let object = Object {
        api_version,
        kind: KIND.to_string(),
        name: meta("name"),
        namespace: meta("namespace"),
        labels: labels.into(),
        annotations: annotations.clone().into(),
        ..Object::default()
    };
    Facts {
        namespace: meta("namespace"),
        name: meta("name"),
        uid: meta("uid"),
        owners: owners_of(&object, &group, KIND, config),
        hosts: hosts(v.get("spec").unwrap_or(&Value::Null)),
        exceptions: annotations
            .into_iter()
            .filter(|(k, _)| k.starts_with(crate::exception::PREFIX))
            .collect(),
    }
}

/// A managed Ingress whose host another Ingress would claim too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub ingress: Steered,
    /// Its host that the other one claims (or overlaps, for a wildcard).
    pub host: Host,
    /// The other one's host that overlaps it.
    pub by: Host,
}

/// The managed Ingresses among `facts` (any namespace) with a host that overlaps one of
/// `hosts`, but the Ingress `namespace`/`name` itself; `managed` says who manages one (empty:
/// nobody). In namespace, then name order.
pub fn claims_among<'f>(
    facts: impl Iterator<Item = &'f Facts>,
    (namespace, name): (&str, &str),
    hosts: &[Host],
    managed: impl Fn(&Facts) -> Vec<OwnerRef>,
) -> Vec<Claim> {
    let mut out: Vec<Claim> = facts
        .filter(|f| !(f.namespace == namespace && f.name == name))
        .filter_map(|f| {
            let (theirs, ours) = overlap(&f.hosts, hosts)?;
            let owners = managed(f);
            (!owners.is_empty()).then(|| Claim {
                ingress: Steered {
                    kind: KIND.to_string(),
                    namespace: f.namespace.clone(),
                    name: f.name.clone(),
                    owners,
                    exceptions: f.exceptions.clone(),
                    chain: vec![crate::custody::kind_dot_group(GROUPS[0], KIND)],
                },
                host: theirs.clone(),
                by: ours.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.ingress.namespace, &a.ingress.name).cmp(&(&b.ingress.namespace, &b.ingress.name))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hosts_overlap_as_controllers_serve_them() {
        let h = Host::parse;
        let cases = [
            ("app.example.com", "app.example.com", true),
            ("App.Example.com.", "app.example.com", true),
            ("app.example.com", "api.example.com", false),
            ("*.example.com", "app.example.com", true),
            ("app.example.com", "*.example.com", true),
            ("*.example.com", "a.b.example.com", false),
            ("*.example.com", "example.com", false),
            ("*.example.com", "*.example.com", true),
            ("*.example.com", "*.b.example.com", false),
            ("app.example.com", "xapp.example.com", false),
            ("*.example.com", "appexample.com", false),
            ("", "", true),
            ("", "app.example.com", false),
            ("*.example.com", "", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(h(a).overlaps(&h(b)), want, "{a:?} vs {b:?}");
            assert_eq!(h(b).overlaps(&h(a)), want, "{b:?} vs {a:?}");
        }
    }

    #[test]
    fn hosts_of_a_spec() {
        let v1 = json!({"defaultBackend": {"service": {"name": "s"}},
            "rules": [{"host": "b.example.com", "http": {"paths": []}}, {"http": {"paths": []}}, {"host": "b.example.com"}],
            "tls": [{"hosts": ["a.example.com", "*.example.com"], "secretName": "x"}, {"secretName": "y"}]});
        assert_eq!(
            hosts(&v1),
            vec![
                Host::Exact("a.example.com".into()),
                Host::Exact("b.example.com".into()),
                Host::Wildcard("example.com".into()),
                Host::Default,
            ]
        );
        let v1beta1 = json!({"backend": {"serviceName": "s", "servicePort": 80}});
        assert_eq!(hosts(&v1beta1), vec![Host::Default]);
        assert_eq!(hosts(&json!(null)), Vec::<Host>::new());
        assert_eq!(
            hosts(&json!({"rules": "nonsense", "tls": [1]})),
            Vec::<Host>::new()
        );
        assert_eq!(
            overlap(&hosts(&v1), &[Host::parse("c.example.com")]).map(|(a, _)| a.to_string()),
            Some("*.example.com".into())
        );
    }
}
