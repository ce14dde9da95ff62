//! decode → decide → encode on arbitrary bytes: the calls `webhook::handler::handle` makes
//! (`AdmissionRequest::decode`, `decide`, `review::encode_response`), made here on the core crate
//! alone so that the fuzz build does not compile the server's dependencies (kube, axum, rustls:
//! many minutes of a cold CI build). The owner lookup is a fixed table like the webhook's
//! `StaticLookup`, and the config one under which a human change to a Flux- or Argo CD-managed
//! object goes through the field diff, the exceptions (`allow-fields`, `allow: manual`,
//! break-glass) and the managedFields checks.
//!
//! Beyond "no panic, no stack overflow", every input must get an answer the API server can use:
//! - a decoded review: a well-formed AdmissionReview in the review's apiVersion, addressed to the
//!   request's uid, `allowed` as decided, a denial with code 403 and the decision's message;
//!   deciding again gives the same bytes; re-reading the answer never turns a denial into an allow;
//!   escaping `<`, `>` and `&` as the API server does decides the same;
//! - an undecodable one: refused (the server then answers the uid `Envelope::recover` reads, which
//!   is a uid the API server could have sent, or an HTTP 400).
#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use gitops_guard_core::review::{Envelope, MAX_UID, encode_response};
use gitops_guard_core::{
    AdmissionRequest, Config, Decision, Lookup, NamespaceInfo, OwnerInfo, OwnerKind, OwnerRef,
    decide,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Owners and namespaces the guard knows (every custody kind counts as served).
struct StaticLookup {
    owners: HashMap<OwnerRef, OwnerInfo>,
    namespaces: HashMap<String, NamespaceInfo>,
}

impl Lookup for StaticLookup {
    fn owner(&self, owner: &OwnerRef) -> Option<OwnerInfo> {
        self.owners.get(owner).cloned()
    }

    fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        self.namespaces.get(name).cloned()
    }
}

struct World {
    config: Config,
    lookup: StaticLookup,
    now: jiff::Timestamp,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let owner = |kind, namespace: &str, name: &str, revision: &str| {
        (
            OwnerRef {
                kind,
                namespace: namespace.into(),
                name: name.into(),
            },
            OwnerInfo {
                revision: Some(revision.into()),
                service_account: None,
            },
        )
    };
    let lookup = StaticLookup {
        owners: HashMap::from([
            owner(
                OwnerKind::Kustomization,
                "flux-system",
                "apps",
                "main@sha1:3f2a9c1e8b7d6a5f4e3d2c1b0a99887766554433",
            ),
            owner(OwnerKind::HelmRelease, "prod", "web", "1.2.3"),
            owner(
                OwnerKind::Application,
                "argocd",
                "monitoring",
                "7d0e51f0a1b2c3d4e5f60718293a4b5c6d7e8f90",
            ),
        ]),
        namespaces: HashMap::from([(
            "enforced".to_string(),
            NamespaceInfo {
                enforce_all: true,
                managed: true,
                ..NamespaceInfo::default()
            },
        )]),
    };
    let config = Config::from_yaml("breakGlass:\n  groups: [sre]\n").expect("config");
    World {
        config,
        lookup,
        now: "2026-11-21T12:00:00Z".parse().expect("now"),
    }
});

/// What `webhook::handler::handle` answers: a decision and the response body.
struct Answer {
    decision: Decision,
    body: Vec<u8>,
}

/// `webhook::handler::handle`: decode, decide, encode.
fn handle(data: &[u8]) -> Result<Answer, gitops_guard_core::Error> {
    let w = &*WORLD;
    let req = AdmissionRequest::decode(data)?;
    let decision = decide(&req, None, &w.config, &w.lookup, w.now);
    let body = encode_response(&req.api_version, &req.uid, &decision);
    Ok(Answer { decision, body })
}

/// Checks a decided answer against the request it answers.
fn check_answer(req: &AdmissionRequest<'_>, answer: &Answer) {
    let v: Value = serde_json::from_slice(&answer.body).expect("the answer is JSON");
    assert_eq!(v["kind"], "AdmissionReview", "{v}");
    assert_eq!(v["apiVersion"], req.api_version.as_str(), "{v}");
    assert!(!req.uid.is_empty());
    let resp = &v["response"];
    assert_eq!(resp["uid"], req.uid.as_str(), "{v}");
    let allowed = answer.decision.allowed();
    assert_eq!(resp["allowed"], allowed, "{v}");
    if allowed {
        assert!(resp.get("status").is_none(), "{v}");
    } else {
        assert_eq!(resp["status"]["code"], 403, "{v}");
        let message = answer.decision.message.as_deref().unwrap_or_default();
        assert_eq!(resp["status"]["message"], message, "{v}");
        assert!(!message.is_empty(), "a denial says why: {v}");
    }
    // Re-encoding what was read never turns a denial into an allow.
    let again: Value =
        serde_json::from_slice(&serde_json::to_vec(&v).expect("encode")).expect("decode");
    assert_eq!(again["response"]["allowed"], allowed);
    assert_eq!(again["response"]["uid"], req.uid.as_str());
}

/// `<`, `>` and `&` escaped as the API server's encoder does.
fn escape_like_the_api_server(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + json.len() / 2);
    for &b in json {
        match b {
            b'<' => out.extend_from_slice(br"\u003c"),
            b'>' => out.extend_from_slice(br"\u003e"),
            b'&' => out.extend_from_slice(br"\u0026"),
            _ => out.push(b),
        }
    }
    out
}

/// Whether the text already spells one of those characters as an escape: then escaping the rest
/// can make two different texts the same (the field diff compares texts, as the API server always
/// escapes the same way), so the comparison says nothing.
fn has_escaped_html(data: &[u8]) -> bool {
    data.windows(6).any(|w| {
        let w = w.to_ascii_lowercase();
        w == br"\u003c" || w == br"\u003e" || w == br"\u0026"
    })
}

fuzz_target!(|data: &[u8]| {
    match AdmissionRequest::decode(data) {
        Ok(req) => {
            let answer = handle(data).expect("a body that decodes is decided");
            check_answer(&req, &answer);
            // Deterministic.
            let second = handle(data).expect("decided again");
            assert_eq!(answer.body, second.body);
            // The uid a refusal would be addressed to is the request's.
            if let Some(envelope) = Envelope::recover(data) {
                assert_eq!(envelope.uid, req.uid);
                assert_eq!(envelope.api_version, req.api_version);
            }
            // Escaped as the API server escapes: decided the same, answered with the same bytes.
            if data.iter().any(|b| matches!(b, b'<' | b'>' | b'&')) && !has_escaped_html(data) {
                let escaped = escape_like_the_api_server(data);
                let other = handle(&escaped).expect("the escaped review decodes too");
                assert_eq!(answer.decision, other.decision);
                assert_eq!(answer.body, other.body);
            }
        }
        Err(_) => {
            assert!(handle(data).is_err(), "decode is deterministic");
            // The server then refuses it with an AdmissionReview addressed to the uid it can
            // recover, if any: one the API server could have sent.
            if let Some(envelope) = Envelope::recover(data) {
                assert!(!envelope.uid.is_empty() && envelope.uid.len() <= MAX_UID);
                assert!(envelope.api_version.starts_with("admission.k8s.io/v1"));
            }
        }
    }
});
