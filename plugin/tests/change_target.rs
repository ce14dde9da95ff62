//! Where a change goes in Git: the object's own document, the overlay patch that sets the field
//! (strategic merge or JSON 6902, in a file or inline), or the kustomization's `images` /
//! `replicas` entry — always as the smallest diff, and always so that `kubectl kustomize` then
//! builds exactly the edited object. Real repositories built with git in temp dirs; the builds
//! are checked against the real `kubectl kustomize`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

#[path = "support/git.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use kubectl_gitops::Error;
use kubectl_gitops::change::error::Error as ChangeError;
use kubectl_gitops::change::target::{self, Definition};
use kubectl_gitops::git::{Repo, RepoOrigin};
use kubectl_gitops::manifest::{self, Build, Found, Renderer, Wanted};
use kubectl_gitops::splice;
use serde_json::{Value, json};

const BASE_KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
";

const BASE_DEPLOYMENT: &str = "\
# The web frontend. Owned by team payments.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2 # the base default; overlays set their own
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:1.8.0
          ports:
            - containerPort: 8080
          resources:
            limits:
              memory: 256Mi
        - name: proxy
          image: envoyproxy/envoy:v1.30
";

const PROD_KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: prod
resources:
  - ../base
patches:
  - path: memory.yaml
  # The proxy follows the platform team's rollout.
  - target:
      kind: Deployment
      name: web
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/1/image
        value: envoyproxy/envoy:v1.31
images:
  - name: ghcr.io/acme/web
    newTag: 1.8.1
replicas:
  - name: web
    count: 3
commonLabels:
  env: prod
";

const PROD_MEMORY: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          resources:
            limits:
              memory: 512Mi # prod needs more
";

const STAGING_KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namePrefix: staging-
resources:
  - ../base
patchesStrategicMerge:
  - replicas.yaml
patchesJson6902:
  - target:
      group: apps
      version: v1
      kind: Deployment
      name: web
    path: envoy.json
";

const STAGING_REPLICAS: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
";

// One operation per line: `splice` rewrites a flow collection that spans several lines onto one.
const STAGING_ENVOY: &str = "[{\"op\": \"replace\", \"path\": \"/spec/template/spec/containers/1/image\", \"value\": \"envoyproxy/envoy:v1.29\"}]\n";

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    commit: String,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("platform");
    support::init(&dir);
    for (path, text) in [
        ("apps/base/kustomization.yaml", BASE_KUSTOMIZATION),
        ("apps/base/deployment.yaml", BASE_DEPLOYMENT),
        ("apps/prod/kustomization.yaml", PROD_KUSTOMIZATION),
        ("apps/prod/memory.yaml", PROD_MEMORY),
        ("apps/staging/kustomization.yaml", STAGING_KUSTOMIZATION),
        ("apps/staging/replicas.yaml", STAGING_REPLICAS),
        ("apps/staging/envoy.json", STAGING_ENVOY),
    ] {
        support::write(&dir, path, text);
    }
    let commit = support::commit_all(&dir, "apps", "Ana", 0);
    Fixture {
        _tmp: tmp,
        dir,
        commit,
    }
}

fn flux(path: &str) -> Build {
    Build {
        path: path.into(),
        renderer: Renderer::Flux,
        name_prefix: String::new(),
        name_suffix: String::new(),
        namespace: None,
        default_namespace: None,
    }
}

/// The definition of deployment `name` in `namespace` built from `path`.
fn define(f: &Fixture, path: &str, name: &str, namespace: &str) -> Definition {
    let repo = Repo::open(&f.dir, RepoOrigin::Explicit).expect("open");
    let id = repo.commit_id(&f.commit).expect("id").expect("commit");
    let snap = repo.snapshot(id).expect("snapshot");
    let build = flux(path);
    let index = manifest::index(&snap, &build).expect("index");
    let wanted = Wanted {
        group: "apps".into(),
        kind: "Deployment".into(),
        namespace: namespace.into(),
        name: name.into(),
    };
    let entry = match index.find(&wanted, None) {
        Found::One(e) => e.clone(),
        other => panic!("{name}: {other:?}"),
    };
    target::define(&snap, &build, &entry).expect("define")
}

/// What `kubectl kustomize DIR` builds for the Deployment, after writing `files` into the work
/// tree.
fn kustomize(f: &Fixture, def: &Definition, overlay: &str) -> Value {
    for c in def.files.changes() {
        std::fs::write(f.dir.join(&c.path), &c.new).expect("write");
    }
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let out = Command::new(kubectl)
        .args(["kustomize", &f.dir.join(overlay).display().to_string()])
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Put the work tree back.
    support::git(&f.dir, &["checkout", "--", "."]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    splice::find_documents(&text)
        .iter()
        .find(|d| d.kind.as_deref() == Some("Deployment"))
        .map(|d| splice::parse_document(&text[d.range.clone()]).expect("parse"))
        .expect("a Deployment in the build")
}

/// Line diff size between two texts (removed, added).
fn counts(a: &str, b: &str) -> (usize, usize) {
    let fc = kubectl_gitops::change::diff::FileChange {
        path: "x".into(),
        old: a.into(),
        new: b.into(),
    };
    fc.counts()
}

/// Routes `edit` (applied to the effective object) and checks: only `file` changed, by exactly
/// one removed and one added line (or `lines`), and kustomize builds the edited object.
fn route_and_check(
    f: &Fixture,
    overlay: &str,
    name: &str,
    ns: &str,
    edit: impl Fn(&mut Value),
    file: &str,
    lines: (usize, usize),
) -> Definition {
    let mut def = define(f, overlay, name, ns);
    let old = def.effective().expect("effective");
    let mut new = old.clone();
    edit(&mut new);
    def.route(&old, &new).expect("route");
    let changes = def.files.changes();
    let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, [file], "only {file} changes");
    assert_eq!(
        counts(&changes[0].old, &changes[0].new),
        lines,
        "{}",
        changes[0].new
    );
    assert_eq!(
        kustomize(f, &def, overlay),
        new,
        "kustomize builds the edited object"
    );
    def
}

fn container(v: &mut Value, i: usize) -> &mut Value {
    &mut v["spec"]["template"]["spec"]["containers"][i]
}

#[test]
fn the_effective_object_is_what_kustomize_builds() {
    let f = fixture();
    for (overlay, name, ns) in [
        ("apps/prod", "web", "prod"),
        ("apps/staging", "staging-web", "default"),
    ] {
        let def = define(&f, overlay, name, ns);
        assert!(!def.is_plain().unwrap(), "{overlay} patches the object");
        assert_eq!(
            def.effective().unwrap(),
            kustomize(&f, &def, overlay),
            "{overlay}"
        );
    }
    let base = define(&f, "apps/base", "web", "default");
    assert!(base.is_plain().unwrap());
    assert_eq!(base.layers, ["apps/base/kustomization.yaml"]);
}

#[test]
fn a_field_set_by_an_overlay_patch_file_changes_there() {
    let f = fixture();
    let def = route_and_check(
        &f,
        "apps/prod",
        "web",
        "prod",
        |v| container(v, 0)["resources"]["limits"]["memory"] = json!("768Mi"),
        "apps/prod/memory.yaml",
        (1, 1),
    );
    let new = &def.files.changes()[0].new;
    assert!(new.contains("memory: 768Mi # prod needs more\n"), "{new}");
}

#[test]
fn a_field_only_the_shared_base_sets_is_written_in_the_own_overlay_unless_in_base() {
    let f = fixture();
    let port = |v: &mut Value| container(v, 0)["ports"][0]["containerPort"] = json!(9090);
    // By default: a JSON patch in prod's own kustomization; staging, which shares the base,
    // builds what it built before.
    let staging_before = kustomize(
        &f,
        &define(&f, "apps/staging", "staging-web", "default"),
        "apps/staging",
    );
    let def = route_and_check(
        &f,
        "apps/prod",
        "web",
        "prod",
        port,
        "apps/prod/kustomization.yaml",
        (0, 7),
    );
    let new = &def.files.changes()[0].new;
    assert!(
        new.contains(
            "  - target:\n      kind: Deployment\n      name: web\n    patch: |\n      - op: replace\n        path: /spec/template/spec/containers/0/ports/0/containerPort\n        value: 9090\n"
        ),
        "{new}"
    );
    assert_eq!(
        def.notes,
        [
            "note: spec.template.spec.containers[0].ports[0].containerPort is set in apps/base/deployment.yaml (also built by apps/staging); the change is written in apps/prod/kustomization.yaml, for this overlay only (--in-base changes the shared place for all of them)"
        ]
    );
    assert_eq!(kustomize(&f, &def, "apps/staging"), staging_before);

    // --in-base: in the base, said.
    let mut def = define(&f, "apps/prod", "web", "prod");
    def.in_base = true;
    let old = def.effective().expect("effective");
    let mut new = old.clone();
    port(&mut new);
    def.route(&old, &new).expect("route");
    let changes = def.files.changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path, "apps/base/deployment.yaml");
    assert_eq!(counts(&changes[0].old, &changes[0].new), (1, 1));
    assert!(changes[0].new.starts_with("# The web frontend."));
    assert_eq!(
        def.notes,
        [
            "note: apps/base/deployment.yaml is also built by apps/staging: the change to spec.template.spec.containers[0].ports[0].containerPort reaches them too (--in-base)"
        ]
    );
    assert_eq!(kustomize(&f, &def, "apps/prod"), new);
}

#[test]
fn an_image_the_own_overlay_pins_changes_in_its_entry_even_at_the_base_tag() {
    let f = fixture();
    // prod's images entry pins the base's own tag: the image is the base's, but the entry is
    // the overlay's place for it.
    let prod = PROD_KUSTOMIZATION.replace("newTag: 1.8.1", "newTag: 1.8.0");
    support::write(&f.dir, "apps/prod/kustomization.yaml", &prod);
    let commit = support::commit_all(&f.dir, "pin the base tag", "Ana", 1);
    let f = Fixture { commit, ..f };
    let def = route_and_check(
        &f,
        "apps/prod",
        "web",
        "prod",
        |v| container(v, 0)["image"] = json!("ghcr.io/acme/web:1.9.0"),
        "apps/prod/kustomization.yaml",
        (1, 1),
    );
    assert!(
        def.files.changes()[0].new.contains("    newTag: 1.9.0\n"),
        "{}",
        def.files.changes()[0].new
    );
}

#[test]
fn images_and_replicas_entries_of_the_overlay_change_there() {
    let f = fixture();
    let def = route_and_check(
        &f,
        "apps/prod",
        "web",
        "prod",
        |v| container(v, 0)["image"] = json!("ghcr.io/acme/web:1.8.2"),
        "apps/prod/kustomization.yaml",
        (1, 1),
    );
    // A tag written plain stays plain: Go's YAML readers read 1.8.2 as a string.
    assert!(def.files.changes()[0].new.contains("    newTag: 1.8.2\n"));
    let def = route_and_check(
        &f,
        "apps/prod",
        "web",
        "prod",
        |v| v["spec"]["replicas"] = json!(6),
        "apps/prod/kustomization.yaml",
        (1, 1),
    );
    assert!(def.files.changes()[0].new.contains("    count: 6\n"));
}

#[test]
fn an_inline_json_patch_changes_inside_its_block() {
    let f = fixture();
    let def = route_and_check(
        &f,
        "apps/prod",
        "web",
        "prod",
        |v| container(v, 1)["image"] = json!("envoyproxy/envoy:v1.32"),
        "apps/prod/kustomization.yaml",
        (1, 1),
    );
    let new = &def.files.changes()[0].new;
    assert!(
        new.contains("        value: envoyproxy/envoy:v1.32\n"),
        "{new}"
    );
    assert!(new.contains("  # The proxy follows the platform team's rollout.\n"));
}

#[test]
fn legacy_patch_fields_and_json_files_change_in_place() {
    let f = fixture();
    route_and_check(
        &f,
        "apps/staging",
        "staging-web",
        "default",
        |v| v["spec"]["replicas"] = json!(2),
        "apps/staging/replicas.yaml",
        (1, 1),
    );
    let def = route_and_check(
        &f,
        "apps/staging",
        "staging-web",
        "default",
        |v| container(v, 1)["image"] = json!("envoyproxy/envoy:v1.30.1"),
        "apps/staging/envoy.json",
        (1, 1),
    );
    assert!(
        def.files.changes()[0]
            .new
            .contains("\"value\": \"envoyproxy/envoy:v1.30.1\"")
    );
}

#[test]
fn a_new_field_goes_into_the_patch_that_holds_its_parent() {
    let f = fixture();
    let def = route_and_check(
        &f,
        "apps/prod",
        "web",
        "prod",
        |v| container(v, 0)["resources"]["limits"]["cpu"] = json!("500m"),
        "apps/prod/memory.yaml",
        (0, 1),
    );
    assert!(
        def.files.changes()[0]
            .new
            .contains("              cpu: 500m\n")
    );
}

#[test]
fn fields_a_layer_sets_for_every_object_are_refused() {
    let f = fixture();
    let mut def = define(&f, "apps/prod", "web", "prod");
    let old = def.effective().unwrap();
    let mut new = old.clone();
    new["metadata"]["labels"]["env"] = json!("production");
    let err = def.route(&old, &new).expect_err("commonLabels");
    assert!(
        matches!(err, Error::Change(ChangeError::LayerField { .. })),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("metadata.labels.env"), "{text}");
    assert!(text.contains("commonLabels"), "{text}");
    assert!(text.contains("apps/prod/kustomization.yaml"), "{text}");
    assert!(def.files.changes().is_empty(), "nothing written");
}

#[test]
fn the_plain_document_of_a_base_changes_by_one_line() {
    let f = fixture();
    let def = define(&f, "apps/base", "web", "default");
    let (text, span) = def.base_doc().unwrap();
    let mut v = splice::parse_document(&text[span.range.clone()]).unwrap();
    v["spec"]["replicas"] = json!(4);
    let new = splice::update_document(&text, &span, &v).unwrap();
    assert_eq!(counts(&text, &new), (1, 1));
    assert!(new.contains("  replicas: 4 # the base default; overlays set their own\n"));
    assert!(Path::new(&f.dir).join("apps/base/deployment.yaml").exists());
}

/// Which source set each field on the way from the base document: what `blame` and `trace`
/// name instead of the base file when an overlay sets the value.
#[test]
fn each_field_is_traced_to_the_patch_or_entry_that_set_it_last() {
    let f = fixture();
    let def = define(&f, "apps/prod", "web", "prod");
    let setters = def.setters().unwrap();
    let at = |segs: &[&str]| -> Option<(String, String)> {
        let path: Vec<splice::PathSegment> = segs
            .iter()
            .map(|s| match s.parse::<usize>() {
                Ok(i) => splice::PathSegment::Index(i),
                Err(_) => splice::PathSegment::Key((*s).to_string()),
            })
            .collect();
        target::setter_of(&setters, &path).map(|s| (s.file.clone(), s.what.clone()))
    };
    let pair = |f: &str, w: &str| Some((f.to_string(), w.to_string()));
    assert_eq!(
        at(&[
            "spec",
            "template",
            "spec",
            "containers",
            "0",
            "resources",
            "limits",
            "memory"
        ]),
        pair("apps/prod/memory.yaml", "patch")
    );
    assert_eq!(
        at(&["spec", "template", "spec", "containers", "1", "image"]),
        pair("apps/prod/kustomization.yaml", "patches[1].patch")
    );
    assert_eq!(
        at(&["spec", "template", "spec", "containers", "0", "image"]),
        pair("apps/prod/kustomization.yaml", "images[0]")
    );
    assert_eq!(
        at(&["spec", "replicas"]),
        pair("apps/prod/kustomization.yaml", "replicas[0]")
    );
    assert_eq!(
        at(&["metadata", "labels", "env"]),
        pair("apps/prod/kustomization.yaml", "commonLabels")
    );
    // Set by the base document alone.
    assert_eq!(
        at(&[
            "spec",
            "template",
            "spec",
            "containers",
            "0",
            "ports",
            "0",
            "containerPort"
        ]),
        None
    );
}

/// An overlay `images` entry that pins the base's own tag still owns the image: `set image`
/// changes the entry (a change in the base would be pinned back, and was refused), and a new
/// registry becomes the entry's `newName`, not a change to the base.
#[test]
fn an_images_entry_pinning_the_base_tag_takes_the_change() {
    let f = fixture();
    let prod = PROD_KUSTOMIZATION.replace("newTag: 1.8.1", "newTag: 1.8.0");
    support::write(&f.dir, "apps/prod/kustomization.yaml", &prod);
    // prod is the only overlay: the base is not shared.
    support::git(&f.dir, &["rm", "-q", "-r", "apps/staging"]);
    let commit = support::commit_all(&f.dir, "prod only, pinned", "Ana", 1);
    let f = Fixture { commit, ..f };
    let def = route_and_check(
        &f,
        "apps/prod",
        "web",
        "prod",
        |v| container(v, 0)["image"] = json!("ghcr.io/acme/web:1.9.0"),
        "apps/prod/kustomization.yaml",
        (1, 1),
    );
    assert!(def.notes.is_empty(), "{:?}", def.notes);
    let def = route_and_check(
        &f,
        "apps/prod",
        "web",
        "prod",
        |v| container(v, 0)["image"] = json!("registry.acme.io/web:1.8.0"),
        "apps/prod/kustomization.yaml",
        (0, 1),
    );
    assert!(
        def.files.changes()[0].new.contains(
            "  - name: ghcr.io/acme/web\n    newTag: 1.8.0\n    newName: registry.acme.io/web\n"
        ),
        "{}",
        def.files.changes()[0].new
    );
}

/// A kustomization file needs no apiVersion or kind (kustomize reads it anyway): its patches,
/// entries and resources count the same.
#[test]
fn a_kustomization_without_apiversion_and_kind_is_read() {
    let f = fixture();
    let bare = PROD_KUSTOMIZATION
        .replace("apiVersion: kustomize.config.k8s.io/v1beta1\n", "")
        .replace("kind: Kustomization\n", "");
    support::write(&f.dir, "apps/prod/kustomization.yaml", &bare);
    let commit = support::commit_all(&f.dir, "no apiVersion", "Ana", 1);
    let f = Fixture { commit, ..f };
    assert_eq!(
        define(&f, "apps/prod", "web", "prod").layers,
        [
            "apps/base/kustomization.yaml",
            "apps/prod/kustomization.yaml"
        ]
    );
    route_and_check(
        &f,
        "apps/prod",
        "web",
        "prod",
        |v| container(v, 0)["resources"]["limits"]["memory"] = json!("768Mi"),
        "apps/prod/memory.yaml",
        (1, 1),
    );
}

/// A component two overlays use is shared like a base: its images entry is not changed for one
/// overlay's object (the other overlay would change too); the change goes in the overlay.
#[test]
fn a_component_two_overlays_use_is_not_changed_for_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("platform");
    support::init(&dir);
    for (path, text) in [
        ("apps/base/kustomization.yaml", BASE_KUSTOMIZATION),
        ("apps/base/deployment.yaml", BASE_DEPLOYMENT),
        (
            "components/pin/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nimages:\n  - name: ghcr.io/acme/web\n    newTag: 1.8.5\n",
        ),
        (
            "apps/prod/kustomization.yaml",
            "resources:\n  - ../base\ncomponents:\n  - ../../components/pin\n",
        ),
        (
            "apps/staging/kustomization.yaml",
            "resources:\n  - ../base\ncomponents:\n  - ../../components/pin\n",
        ),
    ] {
        support::write(&dir, path, text);
    }
    let commit = support::commit_all(&dir, "component", "Ana", 0);
    let f = Fixture {
        _tmp: tmp,
        dir,
        commit,
    };
    let staging_before = kustomize(
        &f,
        &define(&f, "apps/staging", "web", "default"),
        "apps/staging",
    );
    let def = route_and_check(
        &f,
        "apps/prod",
        "web",
        "default",
        |v| container(v, 0)["image"] = json!("ghcr.io/acme/web:1.9.0"),
        "apps/prod/kustomization.yaml",
        (0, 8),
    );
    assert!(
        def.notes[0].contains("components/pin/kustomization.yaml (also built by apps/staging)"),
        "{:?}",
        def.notes
    );
    assert_eq!(kustomize(&f, &def, "apps/staging"), staging_before);
}
