//! The whole admission handler path without HTTP — decode → decide → encode — on the fixtures.
//!
//! `cargo bench -p gitops-guard-webhook --bench handler`

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gitops_guard_core::{AdmissionRequest, Config, OwnerInfo, OwnerKind, OwnerRef};
use gitops_guard_webhook::StaticLookup;
use gitops_guard_webhook::handler;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn lookup() -> StaticLookup {
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
    let (k, ki) = owner(
        OwnerKind::Kustomization,
        "flux-system",
        "apps",
        "main@sha1:3f2a9c1e8b7d6a5f4e3d2c1b0a99887766554433",
    );
    let (a, ai) = owner(
        OwnerKind::Application,
        "argocd",
        "monitoring",
        "7d0e51f0a1b2c3d4e5f60718293a4b5c6d7e8f90",
    );
    StaticLookup::new().with_owner(k, ki).with_owner(a, ai)
}

fn handler_path(c: &mut Criterion) {
    let config = Config::default();
    let lookup = lookup();
    let now = jiff::Timestamp::now();
    let mut group = c.benchmark_group("handler");
    for name in ["create-2k.json", "update-13k.json", "update-48k.json"] {
        let body = fixture(name);
        // Every fixture is a human change to a managed object: the full path down to a denial.
        let answer = handler::handle(&body, &config, &lookup, now).unwrap();
        assert!(!answer.decision.allowed(), "{name}");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name.trim_end_matches(".json"), |b| {
            b.iter(|| {
                handler::handle(black_box(&body), &config, &lookup, now).map(|a| a.body.len())
            })
        });
    }
    // The pieces of the 13 KB UPDATE, to see where the time goes.
    let body = fixture("update-13k.json");
    group.bench_function("update-13k/decode", |b| {
        b.iter(|| AdmissionRequest::decode(black_box(&body)).map(|r| r.uid.len()))
    });
    let req = AdmissionRequest::decode(&body).unwrap();
    group.bench_function("update-13k/decide+encode", |b| {
        b.iter(|| {
            handler::answer(black_box(&req), None, &config, &lookup, now)
                .body
                .len()
        })
    });
    group.finish();
}

criterion_group!(benches, handler_path);
criterion_main!(benches);
