//! Finding the file that defines an object, on real Git repositories in Flux and Argo CD layouts,
//! checked against what real kustomize (`kubectl kustomize`) builds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

#[path = "support/git.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use gix::ObjectId;
use kubectl_gitops::git::{Repo, RepoOrigin};
use kubectl_gitops::manifest::{self, Build, Found, Index, Renderer, Wanted};
use support::{commit_all, git, init, write};

fn build(path: &str) -> Build {
    Build {
        path: path.into(),
        renderer: Renderer::Flux,
        name_prefix: String::new(),
        name_suffix: String::new(),
        namespace: None,
        default_namespace: None,
    }
}

fn index(dir: &Path, b: &Build) -> Index {
    let repo = Repo::open(dir, RepoOrigin::Explicit).unwrap();
    let head = ObjectId::from_hex(git(dir, &["rev-parse", "HEAD"]).trim().as_bytes()).unwrap();
    let snap = repo.snapshot(head).unwrap();
    manifest::index(&snap, b).unwrap()
}

fn wanted(group: &str, kind: &str, ns: &str, name: &str) -> Wanted {
    Wanted {
        group: group.into(),
        kind: kind.into(),
        namespace: ns.into(),
        name: name.into(),
    }
}

fn one<'a>(found: Found<'a>, what: &str) -> &'a manifest::Entry {
    match found {
        Found::One(e) => e,
        other => panic!("{what}: expected one file, got {other:?}"),
    }
}

/// A Flux-style repository: bases, an overlay with prefix and namespace, an overlay of that
/// overlay with a suffix, a component, a generator, a multi-document file and cluster-scoped kinds.
fn fleet(dir: &Path) {
    init(dir);
    write(
        dir,
        "apps/base/web/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n",
    );
    write(
        dir,
        "apps/base/web/multi.yaml",
        "# service and config\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  a: b\n---\n",
    );
    write(
        dir,
        "apps/base/web/kustomization.yaml",
        "resources:\n- deployment.yaml\n- multi.yaml\n",
    );
    write(
        dir,
        "apps/base/cluster/cluster.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: web\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: web-reader\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions: [{name: v1, served: true, storage: true}]\n",
    );
    write(
        dir,
        "apps/base/cluster/kustomization.yaml",
        "resources: [cluster.yaml]\n",
    );
    write(
        dir,
        "apps/components/monitoring/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources:\n- servicemonitor.yaml\n",
    );
    write(
        dir,
        "apps/components/monitoring/servicemonitor.yaml",
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: web\nspec: {}\n",
    );
    write(
        dir,
        "apps/prod/kustomization.yaml",
        "namePrefix: prod-\nnamespace: prod\nresources:\n- ../base/web\n- ../base/cluster\ncomponents:\n- ../components/monitoring\nconfigMapGenerator:\n- name: web-env\n  literals: [LOG=debug]\n",
    );
    write(
        dir,
        "apps/prod-eu/kustomization.yaml",
        "nameSuffix: -eu\nnamespace: prod-eu\nresources:\n- ../prod\n",
    );
    commit_all(dir, "fleet", "Ana Ruiz", 1_000);
}

/// Every object real kustomize builds from `overlay` is found in the file kustomize's own origin
/// annotation names.
fn assert_matches_kustomize(dir: &Path, overlay: &str) {
    // A copy of the overlay's kustomization with originAnnotations, built by real kustomize.
    let oracle_dir = dir.join(format!("{overlay}-oracle"));
    std::fs::create_dir_all(&oracle_dir).unwrap();
    let k = std::fs::read_to_string(dir.join(overlay).join("kustomization.yaml")).unwrap();
    // The copy sits next to the overlay (same depth), so its relative paths stay valid.
    std::fs::write(
        oracle_dir.join("kustomization.yaml"),
        format!("{k}buildMetadata: [originAnnotations]\n"),
    )
    .unwrap();
    let out = Command::new("kubectl")
        .args(["kustomize", oracle_dir.to_str().unwrap()])
        .output()
        .expect("run kubectl kustomize");
    std::fs::remove_dir_all(&oracle_dir).unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).unwrap();
    let objects: Vec<serde_json::Value> = rendered
        .split("\n---\n")
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect();
    assert!(
        objects.len() >= 7,
        "kustomize built {} objects",
        objects.len()
    );
    let idx = index(dir, &build(overlay));
    for o in &objects {
        let api_version = o["apiVersion"].as_str().unwrap();
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let kind = o["kind"].as_str().unwrap();
        let name = o["metadata"]["name"].as_str().unwrap();
        let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
        let origin: serde_json::Value = serde_yaml_ng::from_str(
            o["metadata"]["annotations"]["config.kubernetes.io/origin"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let want_file = match origin.get("path").and_then(|p| p.as_str()) {
            Some(p) => kubectl_gitops::git::join_path(overlay, p).unwrap(),
            None => {
                kubectl_gitops::git::join_path(overlay, origin["configuredIn"].as_str().unwrap())
                    .unwrap()
            }
        };
        let e = one(
            idx.find(&wanted(group, kind, ns, name), None),
            &format!("{kind}/{name} in {ns:?}"),
        );
        assert_eq!(e.file, want_file, "{kind}/{name}");
    }
}

#[test]
fn overlays_prefixes_namespaces_components_and_generators_match_kustomize() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fleet(dir);
    assert_matches_kustomize(dir, "apps/prod");
    assert_matches_kustomize(dir, "apps/prod-eu");
}

#[test]
fn documents_lines_and_renames_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fleet(dir);
    let idx = index(dir, &build("apps/prod-eu"));
    let cm = one(
        idx.find(
            &wanted("", "ConfigMap", "prod-eu", "prod-web-config-eu"),
            None,
        ),
        "configmap",
    );
    assert_eq!(
        (cm.file.as_str(), cm.doc, cm.first_line, cm.last_line),
        ("apps/base/web/multi.yaml", Some(1), 10, 15)
    );
    assert_eq!(cm.source_name, "web-config");
    let svc = one(
        idx.find(&wanted("", "Service", "prod-eu", "prod-web-eu"), None),
        "service",
    );
    assert_eq!(
        (svc.doc, svc.first_line),
        (Some(0), 2),
        "after the leading comment"
    );
    // Not prefixed: Namespace (renamed by the namespace transformer), CRD; ClusterRole is.
    one(
        idx.find(&wanted("", "Namespace", "", "prod-eu"), None),
        "namespace",
    );
    one(
        idx.find(
            &wanted(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                "",
                "widgets.example.com",
            ),
            None,
        ),
        "crd",
    );
    one(
        idx.find(
            &wanted(
                "rbac.authorization.k8s.io",
                "ClusterRole",
                "",
                "prod-web-reader-eu",
            ),
            None,
        ),
        "clusterrole",
    );
    // The generated ConfigMap: hash suffix, defined by the kustomization's generator entry.
    let generated = one(
        idx.find(
            &wanted("", "ConfigMap", "prod-eu", "prod-web-env-eu-7k2hd5cmkb"),
            None,
        ),
        "generated",
    );
    assert_eq!(
        (generated.file.as_str(), generated.doc),
        ("apps/prod/kustomization.yaml", None)
    );
    // Wrong namespace, wrong prefix: nothing.
    assert_eq!(
        idx.find(&wanted("apps", "Deployment", "prod", "prod-web-eu"), None),
        Found::None
    );
    assert_eq!(
        idx.find(&wanted("apps", "Deployment", "prod-eu", "web"), None),
        Found::None
    );
}

#[test]
fn flux_without_kustomization_includes_everything_below() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir);
    write(
        dir,
        "clusters/prod/apps/a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: prod\n",
    );
    write(
        dir,
        "clusters/prod/apps/deep/b.yml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: prod\n",
    );
    write(dir, "clusters/prod/apps/README.md", "not yaml\n");
    write(dir, "clusters/prod/apps/values.yaml", "replicaCount: 2\n");
    write(
        dir,
        "clusters/prod/apps/kust/kustomization.yaml",
        "namePrefix: k-\nresources: [c.yaml]\n",
    );
    write(
        dir,
        "clusters/prod/apps/kust/c.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: prod\n",
    );
    write(
        dir,
        "clusters/prod/apps/kust/ignored.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ignored\n  namespace: prod\n",
    );
    write(
        dir,
        "clusters/prod/apps/broken.yaml",
        "apiVersion: v1\nkind: [unclosed\n",
    );
    commit_all(dir, "layout", "Li Wei", 1_000);
    let idx = index(dir, &build("clusters/prod/apps"));
    assert_eq!(
        one(idx.find(&wanted("", "ConfigMap", "prod", "b"), None), "b").file,
        "clusters/prod/apps/deep/b.yml"
    );
    assert_eq!(
        one(idx.find(&wanted("", "ConfigMap", "prod", "k-c"), None), "c").file,
        "clusters/prod/apps/kust/c.yaml"
    );
    assert_eq!(
        idx.find(&wanted("", "ConfigMap", "prod", "ignored"), None),
        Found::None,
        "not listed by its kustomization"
    );
    assert!(
        idx.notes
            .iter()
            .any(|n| n.contains("broken.yaml") && n.contains("not valid YAML")),
        "{:?}",
        idx.notes
    );
    // Flux's targetNamespace overrides every document's namespace.
    let mut b = build("clusters/prod/apps");
    b.namespace = Some("staging".into());
    b.name_prefix = "s-".into();
    let idx = index(dir, &b);
    assert_eq!(
        one(
            idx.find(&wanted("", "ConfigMap", "staging", "s-a"), None),
            "a"
        )
        .file,
        "clusters/prod/apps/a.yaml"
    );
    assert_eq!(
        idx.find(&wanted("", "ConfigMap", "prod", "a"), None),
        Found::None
    );
}

#[test]
fn argo_directories_recurse_only_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir);
    write(
        dir,
        "web/a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
    );
    write(
        dir,
        "web/sub/b.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
    );
    commit_all(dir, "web", "CI Bot", 1_000);
    let mut b = build("web");
    b.renderer = Renderer::ArgoDirectory { recurse: false };
    b.default_namespace = Some("prod".into());
    let idx = index(dir, &b);
    assert_eq!(
        one(idx.find(&wanted("", "ConfigMap", "prod", "a"), None), "a")
            .namespace
            .as_deref(),
        Some("prod")
    );
    assert_eq!(
        idx.find(&wanted("", "ConfigMap", "prod", "b"), None),
        Found::None
    );
    b.renderer = Renderer::ArgoDirectory { recurse: true };
    let idx = index(dir, &b);
    one(
        idx.find(&wanted("", "ConfigMap", "prod", "b"), None),
        "b recursed",
    );
}

#[test]
fn several_candidates_are_ambiguous_unless_the_origin_annotation_says() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir);
    // Two files define the same ConfigMap without a namespace (Flux would fail to apply one of
    // them; people do copy files).
    write(
        dir,
        "apps/one.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n",
    );
    write(
        dir,
        "apps/two.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n",
    );
    // One names the namespace: it wins over files that name none.
    write(
        dir,
        "apps/ns.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: same\n  namespace: prod\n",
    );
    write(
        dir,
        "apps/nons.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: same\n",
    );
    commit_all(dir, "dups", "Ana Ruiz", 1_000);
    let idx = index(dir, &build("apps"));
    match idx.find(&wanted("", "ConfigMap", "prod", "dup"), None) {
        Found::Many(list) => {
            let files: Vec<&str> = list.iter().map(|e| e.file.as_str()).collect();
            assert_eq!(files, vec!["apps/one.yaml", "apps/two.yaml"]);
        }
        other => panic!("expected ambiguity, got {other:?}"),
    }
    assert_eq!(
        one(
            idx.find(&wanted("", "ConfigMap", "prod", "same"), None),
            "exact ns"
        )
        .file,
        "apps/ns.yaml"
    );
    let by_origin = idx.find(
        &wanted("", "ConfigMap", "prod", "dup"),
        Some("path: two.yaml\n"),
    );
    assert_eq!(one(by_origin, "origin").file, "apps/two.yaml");
}

#[test]
fn remote_resources_and_helm_charts_are_noted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir);
    write(
        dir,
        "apps/kustomization.yaml",
        "resources:\n- https://github.com/org/repo//deploy?ref=v1\n- missing.yaml\n",
    );
    write(
        dir,
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 1.0.0\n",
    );
    commit_all(dir, "remote", "Ana Ruiz", 1_000);
    let idx = index(dir, &build("apps"));
    assert!(
        idx.notes
            .iter()
            .any(|n| n.contains("remote resource https://github.com/org/repo")),
        "{:?}",
        idx.notes
    );
    assert!(
        idx.notes
            .iter()
            .any(|n| n.contains("missing.yaml") && n.contains("does not exist")),
        "{:?}",
        idx.notes
    );
    let idx = index(dir, &build("charts/web"));
    assert!(
        idx.notes.iter().any(|n| n.contains("Helm chart")),
        "{:?}",
        idx.notes
    );
    let idx = index(dir, &build("nope"));
    assert!(
        idx.notes.iter().any(|n| n.contains("nope does not exist")),
        "{:?}",
        idx.notes
    );
}
