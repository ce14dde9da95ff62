//! The chain of custody and the Argo CD sync check, as tables.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;

fn k(ns: &str, name: &str) -> OwnerRef {
    OwnerRef {
        kind: OwnerKind::Kustomization,
        namespace: ns.into(),
        name: name.into(),
    }
}

fn info(owners: Vec<OwnerRef>, source: Option<ObjectRef>) -> CustodyInfo {
    CustodyInfo {
        owners,
        sources: source.into_iter().collect(),
        ..Default::default()
    }
}

#[test]
fn what_traces_back_to_a_root() {
    let git = |ns: &str, n: &str| Some(ObjectRef::new("GitRepository", ns, n));
    let mut known: HashMap<ObjectRef, CustodyInfo> = HashMap::new();
    let mut add = |kind: &str, ns: &str, name: &str, i: CustodyInfo| {
        known.insert(ObjectRef::new(kind, ns, name), i);
    };
    let root = k("flux-system", "flux-system");
    add(
        "Kustomization",
        "flux-system",
        "tenants",
        info(vec![root.clone()], git("flux-system", "flux-system")),
    );
    add(
        "Kustomization",
        "team-a",
        "apps",
        info(vec![k("flux-system", "tenants")], git("team-a", "team-a")),
    );
    add(
        "GitRepository",
        "team-a",
        "team-a",
        info(vec![k("flux-system", "tenants")], None),
    );
    add(
        "Kustomization",
        "team-x",
        "hand-made",
        info(vec![], git("flux-system", "flux-system")),
    );
    add(
        "Kustomization",
        "team-x",
        "stray-source",
        info(vec![root.clone()], git("team-x", "hand-made")),
    );
    add("GitRepository", "team-x", "hand-made", info(vec![], None));
    add(
        "Kustomization",
        "loop",
        "a",
        info(vec![k("loop", "b")], None),
    );
    add(
        "Kustomization",
        "loop",
        "b",
        info(vec![k("loop", "a")], None),
    );
    add(
        "Kustomization",
        "self",
        "me",
        info(vec![k("self", "me")], None),
    );
    // A chain longer than MAX_CHAIN from the root.
    for i in 0..=MAX_CHAIN {
        let by = if i == 0 {
            root.clone()
        } else {
            k("deep", &format!("d{}", i - 1))
        };
        add(
            "Kustomization",
            "deep",
            &format!("d{i}"),
            info(vec![by], None),
        );
    }
    // Two owners: one from Git is enough.
    add(
        "Kustomization",
        "team-a",
        "shared",
        info(vec![k("team-x", "hand-made"), k("team-a", "apps")], None),
    );
    // Made by a generator that comes from Git: an ApplicationSet's Application, an
    // ArtifactGenerator's ExternalArtifact (which reads two sources).
    let app = |ns: &str, n: &str| OwnerRef {
        kind: OwnerKind::Application,
        namespace: ns.into(),
        name: n.into(),
    };
    add(
        "ApplicationSet",
        "argocd",
        "tenants",
        info(vec![app("argocd", "platform")], None),
    );
    add(
        "Application",
        "argocd",
        "tenant-a",
        CustodyInfo {
            generator: Some(ObjectRef::new("ApplicationSet", "argocd", "tenants")),
            ..Default::default()
        },
    );
    add("ApplicationSet", "argocd", "hand-made", info(vec![], None));
    add(
        "Application",
        "argocd",
        "from-hand-made",
        CustodyInfo {
            generator: Some(ObjectRef::new("ApplicationSet", "argocd", "hand-made")),
            ..Default::default()
        },
    );
    // An Application's AppProject is a link too (it decides where and as whom Argo CD applies).
    let project = |ns: &str, n: &str| Some(ObjectRef::new("AppProject", ns, n));
    add(
        "AppProject",
        "argocd",
        "team",
        info(vec![app("argocd", "platform")], None),
    );
    add("AppProject", "argocd", "rogue", info(vec![], None));
    for (ns, name, in_project) in [
        ("argocd", "in-git-project", "team"),
        ("argocd", "in-root-project", "default"),
        ("argocd", "in-hand-made-project", "rogue"),
        // Named from another namespace (apps in any namespace): the project is Argo CD's.
        ("team-b", "elsewhere", "team"),
    ] {
        add(
            "Application",
            ns,
            name,
            CustodyInfo {
                owners: vec![app("argocd", "platform")],
                project: project(ns, in_project),
                ..Default::default()
            },
        );
    }
    add(
        "ArtifactGenerator",
        "flux-system",
        "bundle",
        CustodyInfo {
            owners: vec![root.clone()],
            sources: vec![
                ObjectRef::new("GitRepository", "flux-system", "flux-system"),
                ObjectRef::new("GitRepository", "team-a", "team-a"),
            ],
            ..Default::default()
        },
    );
    add(
        "ArtifactGenerator",
        "flux-system",
        "mixed",
        CustodyInfo {
            owners: vec![root.clone()],
            sources: vec![
                ObjectRef::new("GitRepository", "flux-system", "flux-system"),
                ObjectRef::new("GitRepository", "team-x", "hand-made"),
            ],
            ..Default::default()
        },
    );
    add(
        "ExternalArtifact",
        "flux-system",
        "bundle",
        CustodyInfo {
            generator: Some(ObjectRef::new("ArtifactGenerator", "flux-system", "bundle")),
            ..Default::default()
        },
    );
    add(
        "ExternalArtifact",
        "flux-system",
        "mixed",
        CustodyInfo {
            generator: Some(ObjectRef::new("ArtifactGenerator", "flux-system", "mixed")),
            ..Default::default()
        },
    );
    let mut config = Config::default();
    config.custody.roots.push(crate::config::Root {
        kind: "Application".into(),
        namespace: "argocd".into(),
        name: "platform".into(),
    });
    let lookup = |o: &ObjectRef| known.get(o).cloned();
    let cases = [
        (
            "the root itself",
            ObjectRef::new("Kustomization", "flux-system", "flux-system"),
            true,
        ),
        (
            "a root source",
            ObjectRef::new("GitRepository", "flux-system", "flux-system"),
            true,
        ),
        (
            "applied by the root",
            ObjectRef::new("Kustomization", "flux-system", "tenants"),
            true,
        ),
        (
            "two links from the root, own source in Git",
            ObjectRef::new("Kustomization", "team-a", "apps"),
            true,
        ),
        (
            "made by hand",
            ObjectRef::new("Kustomization", "team-x", "hand-made"),
            false,
        ),
        (
            "in Git but reading a hand-made source",
            ObjectRef::new("Kustomization", "team-x", "stray-source"),
            false,
        ),
        (
            "a cycle",
            ObjectRef::new("Kustomization", "loop", "a"),
            false,
        ),
        (
            "labelled by itself",
            ObjectRef::new("Kustomization", "self", "me"),
            false,
        ),
        (
            "never seen",
            ObjectRef::new("Kustomization", "nowhere", "x"),
            false,
        ),
        (
            "within the chain limit",
            ObjectRef::new("Kustomization", "deep", &format!("d{}", MAX_CHAIN - 2)),
            true,
        ),
        (
            "past the chain limit",
            ObjectRef::new("Kustomization", "deep", &format!("d{MAX_CHAIN}")),
            false,
        ),
        (
            "an Application from Git in an AppProject from Git",
            ObjectRef::new("Application", "argocd", "in-git-project"),
            true,
        ),
        (
            "an Application from Git in the root AppProject",
            ObjectRef::new("Application", "argocd", "in-root-project"),
            true,
        ),
        (
            "an Application from Git in a hand-made AppProject",
            ObjectRef::new("Application", "argocd", "in-hand-made-project"),
            false,
        ),
        (
            "an Application in another namespace: its AppProject is in Argo CD's",
            ObjectRef::new("Application", "team-b", "elsewhere"),
            true,
        ),
        (
            "one of two owners from Git",
            ObjectRef::new("Kustomization", "team-a", "shared"),
            true,
        ),
    ];
    for (what, object, want) in cases {
        assert_eq!(traces_to_root(&object, &lookup, &config), want, "{what}");
    }
}

#[test]
fn custody_info_reads_sources_projects_and_namespaces() {
    let ks = json!({"metadata":{"name":"apps","namespace":"flux-system"},
        "spec":{"sourceRef":{"kind":"GitRepository","name":"repo"},"targetNamespace":"prod"},
        "status":{"inventory":{"entries":[{"id":"web_web_apps_Deployment","v":"v1"},{"id":"_prod__Namespace","v":"v1"}]}}});
    let i = custody_info(kind_named("Kustomization").unwrap(), &ks, vec![]);
    assert_eq!(
        i.sources,
        [ObjectRef::new("GitRepository", "flux-system", "repo")]
    );
    assert_eq!(i.namespaces, ["flux-system", "prod", "web"]);
    let hr = json!({"metadata":{"name":"web","namespace":"prod"},
        "spec":{"chart":{"spec":{"chart":"web","sourceRef":{"kind":"HelmRepository","name":"charts","namespace":"flux-system"}}}}});
    let i = custody_info(kind_named("HelmRelease").unwrap(), &hr, vec![]);
    assert_eq!(
        i.sources,
        [ObjectRef::new("HelmRepository", "flux-system", "charts")]
    );
    let hr_values = json!({"metadata":{"name":"web","namespace":"prod"},
        "spec":{"valuesFrom":[{"kind":"ConfigMap","name":"web-values"},{"kind":"Secret","name":"web-secrets","valuesKey":"v"}]}});
    let i = custody_info(kind_named("HelmRelease").unwrap(), &hr_values, vec![]);
    assert_eq!(
        i.inputs,
        [
            ObjectRef::new("ConfigMap", "prod", "web-values"),
            ObjectRef::new("Secret", "prod", "web-secrets")
        ]
    );
    let ks_vars = json!({"metadata":{"name":"apps","namespace":"flux-system"},
        "spec":{"postBuild":{"substitute":{"a":"b"},"substituteFrom":[{"kind":"ConfigMap","name":"cluster-vars"},{"kind":"Secret","name":"cluster-secrets","optional":true}]}}});
    let i = custody_info(kind_named("Kustomization").unwrap(), &ks_vars, vec![]);
    assert_eq!(
        i.inputs,
        [
            ObjectRef::new("ConfigMap", "flux-system", "cluster-vars"),
            ObjectRef::new("Secret", "flux-system", "cluster-secrets")
        ]
    );
    let hr_ref = json!({"metadata":{"name":"web","namespace":"prod"},"spec":{"chartRef":{"kind":"OCIRepository","name":"web"}}});
    let i = custody_info(kind_named("HelmRelease").unwrap(), &hr_ref, vec![]);
    assert_eq!(i.sources, [ObjectRef::new("OCIRepository", "prod", "web")]);
    let chart = json!({"metadata":{"name":"shop","namespace":"flux-system"},
        "spec":{"chart":"./charts/shop","sourceRef":{"kind":"GitRepository","name":"platform"}}});
    let i = custody_info(kind_named("HelmChart").unwrap(), &chart, vec![]);
    assert_eq!(
        i.sources,
        [ObjectRef::new("GitRepository", "flux-system", "platform")]
    );
    let repo = json!({"metadata":{"name":"apps","namespace":"flux-system"},
        "spec":{"url":"https://git.example/apps.git","include":[
            {"repository":{"name":"shared"},"fromPath":"deploy","toPath":"shared"},
            {"repository":{}}]}});
    let i = custody_info(kind_named("GitRepository").unwrap(), &repo, vec![]);
    assert_eq!(
        i.sources,
        [ObjectRef::new("GitRepository", "flux-system", "shared")]
    );
    let app = json!({"metadata":{"name":"web","namespace":"argocd"},
        "spec":{"destination":{"namespace":"shop"}},"status":{"resources":[{"kind":"Service","namespace":"shop-db","name":"db"}]}});
    let i = custody_info(kind_named("Application").unwrap(), &app, vec![]);
    assert_eq!(
        i.project,
        Some(ObjectRef::new("AppProject", "argocd", "default"))
    );
    assert_eq!(i.namespaces, ["argocd", "shop", "shop-db"]);
}

#[test]
fn argo_sync_carries_only_what_git_says() {
    let spec = json!({"source":{"repoURL":"https://git.example/app.git","targetRevision":"main"}});
    let multi = json!({"sources":[{"targetRevision":"main"},{"targetRevision":"v1.2.0"}]});
    let head = json!({"source":{"repoURL":"https://git.example/app.git"}});
    let none: Vec<String> = Vec::new();
    let cases = [
        (
            "sync as declared",
            json!({"sync":{"revision":"main","prune":true}}),
            &spec,
            &none,
            vec![],
        ),
        (
            "sync without a revision",
            json!({"sync":{}}),
            &spec,
            &none,
            vec![],
        ),
        (
            "HEAD where nothing is declared",
            json!({"sync":{"revision":"HEAD"}}),
            &head,
            &none,
            vec![],
        ),
        (
            "another revision",
            json!({"sync":{"revision":"evil-branch"}}),
            &spec,
            &none,
            vec!["revision"],
        ),
        (
            "inline manifests",
            json!({"sync":{"manifests":["kind: Pod"]}}),
            &spec,
            &none,
            vec!["manifests"],
        ),
        (
            "another source",
            json!({"sync":{"source":{"repoURL":"https://evil"}}}),
            &spec,
            &none,
            vec!["source"],
        ),
        (
            "sync options",
            json!({"sync":{"syncOptions":["Replace=true"]}}),
            &spec,
            &none,
            vec!["syncOptions"],
        ),
        (
            "a subset of resources",
            json!({"sync":{"resources":[{"kind":"Deployment","name":"web"}]}}),
            &spec,
            &none,
            vec!["resources"],
        ),
        (
            "multi-source as declared",
            json!({"sync":{"revisions":["main","v1.2.0"]}}),
            &multi,
            &none,
            vec![],
        ),
        (
            "multi-source, another revision",
            json!({"sync":{"revisions":["main","v9"]}}),
            &multi,
            &none,
            vec!["revisions"],
        ),
        (
            "empty lists are nothing",
            json!({"sync":{"syncOptions":[],"resources":[]}}),
            &spec,
            &none,
            vec![],
        ),
        (
            "allowed by config",
            json!({"sync":{"syncOptions":["Replace=true"],"manifests":["x"]}}),
            &spec,
            &vec!["syncOptions".to_string()],
            vec!["manifests"],
        ),
        ("no sync at all", json!({"info":[]}), &spec, &none, vec![]),
    ];
    for (what, op, spec, allowed, want) in cases {
        assert_eq!(
            sync_overrides(&op, spec, &Value::Null, allowed),
            want,
            "{what}"
        );
    }
    // argocd-server resolves the target to the commit the controller reports, and copies the
    // declared sync options in.
    let declared = json!({"source":{"targetRevision":"main"},"syncPolicy":{"syncOptions":["CreateNamespace=true"]}});
    let status = json!({"sync":{"revision":"3f2a9c1e","revisions":[]}});
    let multi_status = json!({"sync":{"revisions":["aaa1","bbb2"]}});
    let cases = [
        (
            "the reported commit",
            json!({"sync":{"revision":"3f2a9c1e"}}),
            &declared,
            &status,
            vec![],
        ),
        (
            "another commit",
            json!({"sync":{"revision":"0000bad"}}),
            &declared,
            &status,
            vec!["revision"],
        ),
        (
            "the declared options",
            json!({"sync":{"syncOptions":["CreateNamespace=true"]}}),
            &declared,
            &status,
            vec![],
        ),
        (
            "one more option",
            json!({"sync":{"syncOptions":["CreateNamespace=true","Replace=true"]}}),
            &declared,
            &status,
            vec!["syncOptions"],
        ),
        (
            "multi-source reported commits",
            json!({"sync":{"revisions":["aaa1","v1.2.0"]}}),
            &multi,
            &multi_status,
            vec![],
        ),
        (
            "multi-source, a commit not reported",
            json!({"sync":{"revisions":["aaa1","ccc3"]}}),
            &multi,
            &multi_status,
            vec!["revisions"],
        ),
    ];
    for (what, op, spec, status, want) in cases {
        assert_eq!(sync_overrides(&op, spec, status, &none), want, "{what}");
    }
}

#[test]
fn controllers_count_only_when_installed() {
    let served = |names: &'static [&'static str]| move |k: &Kind| names.contains(&k.kind);
    let cases = [
        (
            Agent::Flux,
            "kustomize-controller",
            &["Kustomization"][..],
            true,
        ),
        (
            Agent::Flux,
            "kustomize-controller",
            &["GitRepository"][..],
            false,
        ),
        (
            Agent::Flux,
            "image-automation-controller",
            &["Kustomization"][..],
            false,
        ),
        (
            Agent::Flux,
            "image-reflector-controller",
            &["ImagePolicy"][..],
            true,
        ),
        (
            Agent::ArgoCd,
            "argocd-applicationset-controller",
            &["Application"][..],
            false,
        ),
        (
            Agent::ArgoCd,
            "argocd-application-controller",
            &["Application"][..],
            true,
        ),
        // A name the guard does not know was configured on purpose.
        (Agent::Flux, "my-flux-fork", &[][..], true),
    ];
    for (agent, name, kinds, want) in cases {
        assert_eq!(
            controller_installed(agent, name, served(kinds)),
            want,
            "{name} with {kinds:?}"
        );
    }
}

#[test]
fn owners_and_their_objects_convert_both_ways() {
    for kind in [
        OwnerKind::Kustomization,
        OwnerKind::HelmRelease,
        OwnerKind::Application,
    ] {
        let owner = OwnerRef {
            kind,
            namespace: "team-a".into(),
            name: "apps".into(),
        };
        let object = ObjectRef::of_owner(&owner).unwrap();
        assert_eq!(object.as_owner(), Some(owner));
    }
    assert_eq!(ObjectRef::new("GitRepository", "a", "b").as_owner(), None);
    let namespace = OwnerRef {
        kind: OwnerKind::Namespace,
        namespace: "prod".into(),
        name: "prod".into(),
    };
    assert_eq!(ObjectRef::of_owner(&namespace), None);
}

#[test]
fn every_kind_is_known_once() {
    for (i, a) in KINDS.iter().enumerate() {
        assert!(
            KINDS[i + 1..].iter().all(|b| b.kind != a.kind),
            "{} twice",
            a.kind
        );
        assert_eq!(kind_of(a.group, a.kind), Some(a));
        assert_eq!(kind_of_resource(a.group, a.plural), Some(a));
    }
    assert_eq!(kind_of("apps", "Deployment"), None);
    assert!(!kind_named("Application").unwrap().status_subresource);
}
