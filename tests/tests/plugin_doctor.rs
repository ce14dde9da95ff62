//! `kubectl gitops doctor` end to end on the local control plane (1.20): the guard's webhook
//! configuration as the chart names it, calling a Service with endpoints; RBAC that lets `mallory`
//! impersonate service accounts, group `ci` create Pods in flux-system and `eve` delete webhook
//! configurations, each reported as `fail` with its binding and fix (exit 1); a namespaceSelector on
//! `kubernetes.io/metadata.name`, flagged on this server; and the same cluster without those
//! bindings, which reports only `ok` and `warn` (exit 0).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use gitops_guard_tests::{Cluster, Out, User, Webhook, run_command, target_profile_dir};
use serde_json::{Value, json};

fn plugin_binary() -> PathBuf {
    let bin = target_profile_dir().join("kubectl-gitops");
    assert!(
        bin.exists(),
        "{} does not exist: build it first (`cargo build --workspace --bins`, as scripts/test-all does)",
        bin.display()
    );
    bin
}

/// Runs kubectl-gitops as the admin (group system:masters) in a scratch directory.
fn gitops(cluster: &Cluster, dir: &Path, args: &[&str]) -> Out {
    gitops_as(&cluster.kubeconfig(User::Admin), dir, args)
}

/// Runs kubectl-gitops with this kubeconfig in a scratch directory.
fn gitops_as(kubeconfig: &Path, dir: &Path, args: &[&str]) -> Out {
    let mut cmd = Command::new(plugin_binary());
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("KUBECACHEDIR", dir.join("cache/kube"))
        .env_remove("KUBECONFIG");
    run_command(cmd, None, Duration::from_secs(120))
}

fn apply(cluster: &Cluster, yaml: &str) {
    cluster
        .kubectl_stdin(User::Admin, &["apply", "-f", "-"], yaml)
        .ok();
}

/// The guard as the chart installs it on 1.20, in namespace gitops-guard, release gitops-guard:
/// ValidatingWebhookConfiguration gitops-guard-custody (webhook guard.gitops-guard.dev) calling
/// Service gitops-guard/gitops-guard, which has one ready endpoint. Its rules route a group nobody
/// serves, so nothing is ever sent to the (absent) guard; gitops-guard-neighbours (Ignore) routes
/// the statuses of Pods and StatefulSets, which nothing here writes. `namespace_selector`: the
/// custody webhook's namespaceSelector as YAML (`{}` for none).
fn install_guard(cluster: &Cluster, namespace_selector: &str) {
    apply(
        cluster,
        r#"apiVersion: v1
kind: Namespace
metadata: {name: gitops-guard}
---
apiVersion: v1
kind: Namespace
metadata: {name: flux-system}
---
apiVersion: v1
kind: Service
metadata: {name: gitops-guard, namespace: gitops-guard}
spec:
  ports: [{name: https, port: 443, targetPort: 8443}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: gitops-guard, namespace: gitops-guard}
subsets:
- addresses: [{ip: 10.0.0.10}]
  ports: [{name: https, port: 8443}]
"#,
    );
    apply(
        cluster,
        &format!(
            r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: gitops-guard-custody
  labels: {{app.kubernetes.io/part-of: gitops-guard, app.kubernetes.io/instance: gitops-guard}}
webhooks:
- name: guard.gitops-guard.dev
  clientConfig:
    service: {{namespace: gitops-guard, name: gitops-guard, path: /validate, port: 443}}
  rules:
  - apiGroups: ["doctor.test.invalid"]
    apiVersions: ["*"]
    resources: ["widgets"]
    operations: [CREATE, UPDATE, DELETE]
    scope: Namespaced
  failurePolicy: Fail
  matchPolicy: Equivalent
  sideEffects: NoneOnDryRun
  timeoutSeconds: 3
  admissionReviewVersions: [v1]
  namespaceSelector: {namespace_selector}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: gitops-guard-neighbours
  labels: {{app.kubernetes.io/part-of: gitops-guard, app.kubernetes.io/instance: gitops-guard}}
webhooks:
- name: guard.gitops-guard.dev
  clientConfig:
    service: {{namespace: gitops-guard, name: gitops-guard, path: /validate, port: 443}}
  rules:
  - {{apiGroups: [""], apiVersions: ["*"], resources: [pods/status], operations: [UPDATE], scope: Namespaced}}
  - {{apiGroups: [apps], apiVersions: ["*"], resources: [statefulsets/status], operations: [UPDATE], scope: Namespaced}}
  - {{apiGroups: [""], apiVersions: ["*"], resources: [services/status], operations: [UPDATE], scope: Namespaced}}
  - {{apiGroups: [networking.k8s.io], apiVersions: ["*"], resources: [ingresses/status], operations: [UPDATE], scope: Namespaced}}
  failurePolicy: Ignore
  matchPolicy: Equivalent
  sideEffects: NoneOnDryRun
  timeoutSeconds: 3
  admissionReviewVersions: [v1]
"#
        ),
    );
}

/// Removes the local cluster's own cluster-admin bindings (ana, developers, ci-bot, every
/// service account): a cluster where only the admin (system:masters) holds such rights.
fn remove_local_cluster_bindings(cluster: &Cluster) {
    cluster
        .kubectl(
            User::Admin,
            &[
                "delete",
                "clusterrolebinding",
                "local-cluster:developers",
                "local-cluster:ci-bot",
                "local-cluster:service-accounts",
            ],
        )
        .ok();
}

const BAD_RBAC: &str = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: doctor-impersonate}
rules:
- {apiGroups: [""], resources: [serviceaccounts], verbs: [impersonate]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: mallory-impersonates}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: doctor-impersonate}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: mallory}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-creator, namespace: flux-system}
rules:
- {apiGroups: [""], resources: [pods], verbs: [create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ci-pods, namespace: flux-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-creator}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: ci}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: webhook-deleter}
rules:
- {apiGroups: [admissionregistration.k8s.io], resources: [validatingwebhookconfigurations], verbs: [delete]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: eve-deletes-webhooks}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: webhook-deleter}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: eve}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: namespace-labeller}
rules:
- {apiGroups: [""], resources: [namespaces], verbs: [patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: tenants-label-namespaces}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: namespace-labeller}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: tenants}
"#;

fn findings(out: &Out) -> Vec<Value> {
    serde_json::from_str::<Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor -o json is not JSON ({e}):\n{out}"))
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("doctor -o json is not a list:\n{out}"))
}

/// The finding about `subject` in `check`, with its why left out (asserted non-empty).
fn row(findings: &[Value], check: &str, subject: &str) -> Value {
    row_starting(findings, check, subject, "")
}

/// The finding about `subject` in `check` that starts with `prefix`, without its why.
fn row_starting(findings: &[Value], check: &str, subject: &str, prefix: &str) -> Value {
    let matching: Vec<&Value> = findings
        .iter()
        .filter(|f| f["check"] == check && f["subject"] == subject)
        .filter(|f| f["finding"].as_str().is_some_and(|t| t.starts_with(prefix)))
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one {check} row for {subject} starting {prefix:?}: {findings:#?}"
    );
    let mut f = matching[0].clone();
    assert!(f["why"].as_str().is_some_and(|w| !w.is_empty()), "{f}");
    f.as_object_mut().map(|o| o.remove("why"));
    f
}

/// `doctor -o json` is exactly `tests/fixtures/<name>` (the schema README.md documents, as a
/// golden file); `GITOPS_GUARD_BLESS=1` writes it instead.
fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    if std::env::var_os("GITOPS_GUARD_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == actual,
        "{} is not what doctor prints; if the change is meant, run\n  GITOPS_GUARD_BLESS=1 cargo test -p gitops-guard-tests --test plugin_doctor\n(first difference at line {})\n{actual}",
        path.display(),
        committed
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || committed.lines().count().min(actual.lines().count()) + 1,
                |i| i + 1
            )
    );
}

#[test]
fn doctor_names_who_can_become_the_agent_or_switch_the_guard_off() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    install_guard(
        &cluster,
        r#"{matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}]}"#,
    );
    apply(&cluster, BAD_RBAC);
    // A tenant: Flux acts as team-a's reconciler account for its Kustomization, and the team's
    // developers may impersonate it.
    cluster.install_crds();
    apply(
        &cluster,
        r#"apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: team-a}
spec:
  interval: 10m
  prune: true
  path: ./team-a
  serviceAccountName: reconciler
  sourceRef: {kind: GitRepository, name: team-a}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: impersonate-accounts, namespace: team-a}
rules:
- {apiGroups: [""], resources: [serviceaccounts], verbs: [impersonate]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: team-a-devs, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: impersonate-accounts}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: team-a-devs}
"#,
    );
    // The guard's config (its ConfigMap, as the chart writes it) makes ci-deployer an agent: its
    // cluster-admin binding is the agent's, not a way around the guard.
    apply(
        &cluster,
        r#"apiVersion: v1
kind: ConfigMap
metadata: {name: gitops-guard-config, namespace: gitops-guard}
data:
  config.yaml: |
    agents:
      users: [ci-deployer]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: gitops-guard, namespace: gitops-guard}
spec:
  replicas: 1
  selector: {matchLabels: {app.kubernetes.io/part-of: gitops-guard}}
  template:
    metadata: {labels: {app.kubernetes.io/part-of: gitops-guard}}
    spec:
      containers: [{name: guard, image: gitops-guard:test}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ci-deployer}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: ci-deployer}
"#,
    );

    // What the tenant's Kustomization applied (its inventory).
    cluster
        .patch_status(
            User::Admin,
            "kustomizations.kustomize.toolkit.fluxcd.io",
            "team-a",
            "apps",
            r#"{"inventory": {"entries": [
                {"id": "team-a_web_apps_Deployment", "v": "v1"},
                {"id": "team-a_api_apps_Deployment", "v": "v1"},
                {"id": "team-a_web-env__ConfigMap", "v": "v1"}]}}"#,
        )
        .ok();

    let out = gitops(&cluster, dir.path(), &["doctor", "-o", "json"]);
    assert_eq!(out.code, 1, "a fail finding exits 1:\n{out}");
    let all = findings(&out);
    assert_eq!(
        row_starting(
            &all,
            "become-agent",
            "User mallory",
            "can impersonate service accounts"
        ),
        json!({
            "severity": "fail",
            "check": "become-agent",
            "subject": "User mallory",
            "finding": "can impersonate service accounts argocd/argocd-application-controller, argocd/argocd-applicationset-controller and 42 more (ClusterRoleBinding mallory-impersonates → ClusterRole doctor-impersonate)",
            "fix": "kubectl delete clusterrolebinding mallory-impersonates",
        })
    );
    assert_eq!(
        row(&all, "become-agent", "Group ci"),
        json!({
            "severity": "fail",
            "check": "become-agent",
            "subject": "Group ci",
            "finding": "can create Pods in flux-system (RoleBinding flux-system/ci-pods → Role pod-creator)",
            "fix": "kubectl delete rolebinding ci-pods -n flux-system",
        })
    );
    assert_eq!(
        row(&all, "switch-off", "User eve"),
        json!({
            "severity": "fail",
            "check": "switch-off",
            "subject": "User eve",
            "finding": "can change or delete ValidatingWebhookConfigurations gitops-guard-custody, gitops-guard-neighbours (ClusterRoleBinding eve-deletes-webhooks → ClusterRole webhook-deleter)",
            "fix": "kubectl delete clusterrolebinding eve-deletes-webhooks",
        })
    );
    // The exclusion by kubernetes.io/metadata.name, an ordinary label on 1.20.
    assert_eq!(
        row_starting(
            &all,
            "guard",
            "ValidatingWebhookConfiguration gitops-guard-custody",
            "namespaceSelector"
        ),
        json!({
            "severity": "fail",
            "check": "guard",
            "subject": "ValidatingWebhookConfiguration gitops-guard-custody",
            "finding": "namespaceSelector excludes namespaces by kubernetes.io/metadata.name (this server is 1.20)",
            "fix": "kubectl patch validatingwebhookconfiguration gitops-guard-custody --type=json -p '[{\"op\":\"remove\",\"path\":\"/webhooks/0/namespaceSelector/matchExpressions/0\"}]'  # and list those namespaces in the guard config's excludedNamespaces (the chart does both on < 1.21)",
        })
    );
    // Kinds the owners apply that no webhook routes: a fail each.
    assert_eq!(
        row(&all, "guard", "Deployment.apps"),
        json!({
            "severity": "fail",
            "check": "guard",
            "subject": "Deployment.apps",
            "finding": "2 managed object(s) of this kind; no webhook of the guard routes deployments.apps",
            "fix": "helm upgrade gitops-guard charts/gitops-guard --reuse-values --set webhook.labelledResources=all  # or list deployments.apps in webhook.rules",
        })
    );
    assert_eq!(row(&all, "guard", "ConfigMap")["severity"], "fail");
    // mallory may impersonate any service account, the tenant's too.
    assert_eq!(
        row_starting(
            &all,
            "become-agent",
            "User mallory",
            "can impersonate tenant service accounts"
        )["finding"],
        "can impersonate tenant service accounts team-a/reconciler (ClusterRoleBinding mallory-impersonates → ClusterRole doctor-impersonate)"
    );
    assert_eq!(
        row(&all, "become-agent", "Group team-a-devs"),
        json!({
            "severity": "fail",
            "check": "become-agent",
            "subject": "Group team-a-devs",
            "finding": "can impersonate tenant service accounts team-a/reconciler (RoleBinding team-a/team-a-devs → Role impersonate-accounts)",
            "fix": "kubectl delete rolebinding team-a-devs -n team-a",
        })
    );
    // With that exclusion, whoever may relabel a namespace takes it out of the guard's view.
    assert_eq!(
        row(&all, "switch-off", "Group tenants"),
        json!({
            "severity": "fail",
            "check": "switch-off",
            "subject": "Group tenants",
            "finding": "can relabel Namespaces (ClusterRoleBinding tenants-label-namespaces → ClusterRole namespace-labeller)",
            "fix": "kubectl delete clusterrolebinding tenants-label-namespaces",
        })
    );
    // The local cluster's own cluster-admin bindings are found too (every service account is
    // bound to cluster-admin there).
    let fails: Vec<&str> = all
        .iter()
        .filter(|f| f["severity"] == "fail")
        .filter_map(|f| f["subject"].as_str())
        .collect();
    for subject in [
        "User ana",
        "Group developers",
        "User ci-bot",
        "Group system:serviceaccounts",
    ] {
        assert!(fails.contains(&subject), "{subject} in {fails:?}");
    }
    // Never Kubernetes' own controllers, the agents (ci-deployer, from the guard's ConfigMap) or
    // system:masters as a fail.
    assert!(
        !fails.iter().any(|s| s.contains("kube-system/")
            || s.contains("system:masters")
            || s.contains("ci-deployer")),
        "{fails:?}"
    );
    assert_eq!(
        row(&all, "guard", "ConfigMap gitops-guard/gitops-guard-config")["severity"],
        "ok"
    );
    // One replica and no PodDisruptionBudget.
    let deployment: Vec<(&str, &str)> = all
        .iter()
        .filter(|f| f["subject"] == "Deployment gitops-guard/gitops-guard")
        .filter_map(|f| Some((f["severity"].as_str()?, f["finding"].as_str()?)))
        .collect();
    assert_eq!(
        deployment,
        vec![
            ("warn", "1 replica(s)"),
            ("warn", "no PodDisruptionBudget in its namespace")
        ]
    );

    // The table says the same, one finding a line.
    let table = gitops(&cluster, dir.path(), &["doctor"]);
    assert_eq!(table.code, 1, "{table}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(
        lines[0].starts_with("STATUS   CHECK ")
            && lines[0].contains("SUBJECT")
            && lines[0].ends_with("FIX"),
        "{}",
        table.stdout
    );
    for (subject, fix) in [
        (
            "User mallory",
            "kubectl delete clusterrolebinding mallory-impersonates",
        ),
        (
            "Group ci",
            "kubectl delete rolebinding ci-pods -n flux-system",
        ),
        (
            "User eve",
            "kubectl delete clusterrolebinding eve-deletes-webhooks",
        ),
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with("fail ")
                && l.contains(&format!("   {subject}   "))
                && l.ends_with(fix)),
            "a fail line for {subject}:\n{}",
            table.stdout
        );
    }
}

#[test]
fn doctor_on_a_cluster_without_those_bindings_reports_no_fail() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    install_guard(&cluster, "{}");
    remove_local_cluster_bindings(&cluster);

    let out = gitops(&cluster, dir.path(), &["doctor", "-o", "json"]);
    assert_eq!(out.code, 0, "no fail finding exits 0:\n{out}");
    golden("doctor-clean.json", &out.stdout);
    let all = findings(&out);
    assert!(all.iter().all(|f| f["severity"] != "fail"), "{all:#?}");
    for name in ["mallory", "Group ci", "eve"] {
        assert!(
            !all.iter()
                .any(|f| f["subject"].as_str().is_some_and(|s| s.contains(name))),
            "{name}: {all:#?}"
        );
    }
    // The ok rows are there.
    let oks: Vec<(&str, &str)> = all
        .iter()
        .filter(|f| f["severity"] == "ok")
        .filter_map(|f| Some((f["subject"].as_str()?, f["finding"].as_str()?)))
        .collect();
    for expected in [
        (
            "Service gitops-guard/gitops-guard",
            "exists, 1 ready endpoint(s)",
        ),
        (
            "RBAC",
            "nobody but Kubernetes and the agents can impersonate service accounts of the agents and Kubernetes",
        ),
        (
            "RBAC",
            "nobody but Kubernetes and the agents can create Pods in argocd, flux-system, kube-system",
        ),
        (
            "RBAC",
            "nobody but Kubernetes and the agents can change or delete ValidatingWebhookConfigurations of the guard",
        ),
        (
            "RBAC",
            "nobody but Kubernetes and the agents can create MutatingWebhookConfigurations",
        ),
        (
            "RBAC",
            "nobody but Kubernetes and the agents can approve client certificates",
        ),
        // No Flux or Argo CD kinds here: the statuses of Pods, StatefulSets, Services and
        // Ingresses.
        (
            "status",
            "the /status of every kind the guard protects (4) is routed to the guard",
        ),
    ] {
        assert!(oks.contains(&expected), "{expected:?} in {oks:#?}");
    }
    // failurePolicy Fail on 1.20: no matchConditions, so a down guard blocks Kubernetes too.
    assert_eq!(
        row(
            &all,
            "guard",
            "ValidatingWebhookConfiguration gitops-guard-custody"
        ),
        json!({
            "severity": "warn",
            "check": "guard",
            "subject": "ValidatingWebhookConfiguration gitops-guard-custody",
            "finding": "failurePolicy Fail, and Kubernetes 1.20 has no matchConditions (1.28+)",
            "fix": "keep two guard replicas and a PodDisruptionBudget; in an outage, kubectl delete validatingwebhookconfiguration gitops-guard-custody switches this entry off",
        })
    );
    // The webhook routes no /scale: kubectl scale goes past the guard (a warning).
    assert_eq!(
        row(&all, "guard", "deployments.apps/scale"),
        json!({
            "severity": "warn",
            "check": "guard",
            "subject": "deployments.apps/scale",
            "finding": "no webhook of the guard routes its /scale",
            "fix": "helm upgrade gitops-guard charts/gitops-guard -n gitops-guard --reuse-values  # the chart routes the /scale of every CRD installed before it runs (webhook.scale.discover)",
        })
    );
    assert_eq!(
        row(&all, "guard", "Deployment gitops-guard/gitops-guard")["finding"],
        "not found (the Service's Pods run under another name?)"
    );
    // No ConfigMap: the defaults are trusted, and said so.
    assert_eq!(
        row(&all, "guard", "ConfigMap gitops-guard/gitops-guard-config"),
        json!({
            "severity": "warn",
            "check": "guard",
            "subject": "ConfigMap gitops-guard/gitops-guard-config",
            "finding": "not found",
            "fix": "kubectl gitops doctor --guard-config FILE  # the guard's config file",
        })
    );
    // system:masters: one warning, not a line per capability.
    assert_eq!(
        all.iter()
            .filter(|f| f["subject"] == "Group system:masters")
            .count(),
        1
    );

    // Someone who may read the webhook configurations, Services and Endpoints but not RBAC: the
    // guard check runs, the RBAC checks say they did not run.
    apply(
        &cluster,
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: doctor-auditor}
rules:
- {apiGroups: [admissionregistration.k8s.io], resources: [validatingwebhookconfigurations], verbs: [get, list]}
- {apiGroups: [""], resources: [services, endpoints], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: doctor-auditor}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: doctor-auditor}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: auditor}
"#,
    );
    let auditor = cluster.cert_kubeconfig("auditor", "auditor", &[]);
    let out = gitops_as(&auditor, dir.path(), &["doctor", "-o", "json"]);
    assert_eq!(out.code, 0, "checks that did not run are no fail:\n{out}");
    let all = findings(&out);
    assert_eq!(
        row(&all, "access", "check become-agent, switch-off"),
        json!({
            "severity": "warn",
            "check": "access",
            "subject": "check become-agent, switch-off",
            "finding": "not run: you may not list clusterroles.rbac.authorization.k8s.io, list clusterrolebindings.rbac.authorization.k8s.io, list roles.rbac.authorization.k8s.io, list rolebindings.rbac.authorization.k8s.io (in all namespaces)",
            "fix": "run doctor as someone who may (kubectl auth can-i list clusterroles.rbac.authorization.k8s.io -A), e.g. with a ClusterRole granting get/list on them",
        })
    );
    assert!(
        all.iter()
            .all(|f| f["check"] == "guard" || f["check"] == "access"),
        "{all:#?}"
    );
    assert_eq!(
        row(&all, "guard", "Service gitops-guard/gitops-guard")["severity"],
        "ok"
    );
}

/// A self-signed certificate (PEM, base64) named `cn` that ends `days` from today (midnight UTC;
/// negative: it has ended).
fn certificate(cn: &str, days: i64) -> String {
    let end = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * days))
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let mut params =
        rcgen::CertificateParams::new(vec!["gitops-guard.gitops-guard.svc".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after =
        rcgen::date_time_ymd(i32::from(end.year()), end.month() as u8, end.day() as u8);
    let key = rcgen::KeyPair::generate().unwrap();
    base64::engine::general_purpose::STANDARD.encode(params.self_signed(&key).unwrap().pem())
}

#[test]
fn doctor_finds_what_the_guard_does_not_see() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    cluster.install_crds();
    install_guard(&cluster, "{}");
    // The CA the API server trusts ends in 10 days; the serving certificate has ended.
    cluster
        .kubectl(
            User::Admin,
            &[
                "patch",
                "validatingwebhookconfiguration",
                "gitops-guard-custody",
                "--type=json",
                "-p",
                &format!(
                    r#"[{{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":"{}"}}]"#,
                    certificate("doctor-ca", 10)
                ),
            ],
        )
        .ok();
    apply(
        &cluster,
        &format!(
            r#"apiVersion: v1
kind: Secret
metadata: {{name: gitops-guard-tls, namespace: gitops-guard}}
type: kubernetes.io/tls
data: {{tls.crt: {}, tls.key: ""}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: argocd}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: argocd-cm, namespace: argocd}}
data: {{application.resourceTrackingMethod: label}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: kustomize-controller, namespace: flux-system}}
spec:
  selector: {{matchLabels: {{app: kustomize-controller}}}}
  template:
    metadata: {{labels: {{app: kustomize-controller}}}}
    spec:
      serviceAccountName: kustomize-controller
      containers:
      - {{name: manager, image: ghcr.io/fluxcd/kustomize-controller:v1, args: [--watch-all-namespaces, --default-service-account=default]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: flux-cluster-admin}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
subjects:
- {{kind: ServiceAccount, name: kustomize-controller, namespace: flux-system}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: team-a}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: apps, namespace: team-a}}
spec: {{interval: 10m, prune: true, path: ./team-a, sourceRef: {{kind: GitRepository, name: team-a}}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: team-b}}
---
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {{name: team-b, namespace: argocd}}
spec:
  sourceRepos: ['*']
  destinations: [{{server: '*', namespace: team-b}}]
  destinationServiceAccounts: [{{server: '*', namespace: team-b, defaultServiceAccount: deployer}}]
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: b, namespace: argocd}}
spec:
  project: team-b
  source: {{repoURL: 'https://github.com/acme/team-b.git', path: deploy}}
  destination: {{server: 'https://kubernetes.default.svc', namespace: team-b}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-creator, namespace: team-b}}
rules:
- {{apiGroups: [""], resources: [pods], verbs: [create]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: team-b-devs, namespace: team-b}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-creator}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: team-b-devs}}
"#,
            certificate("gitops-guard", -1)
        ),
    );
    // A Deployment the tenant's Kustomization applied, written since by cert-manager's
    // cainjector (its field manager).
    cluster
        .kubectl_stdin(
            User::Admin,
            &[
                "apply",
                "--server-side",
                "--field-manager=cainjector",
                "-f",
                "-",
            ],
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team-a, labels: {app: web}}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: ghcr.io/acme/web:1.8.1}]
"#,
        )
        .ok();
    cluster
        .patch_status(
            User::Admin,
            "kustomizations.kustomize.toolkit.fluxcd.io",
            "team-a",
            "apps",
            r#"{"inventory": {"entries": [{"id": "team-a_web_apps_Deployment", "v": "v1"}]}}"#,
        )
        .ok();

    // A webhook of the guard that leaves out namespaces labelled team=sandbox and objects
    // labelled skip-guard: anyone who may set those labels takes writes past the guard.
    apply(
        &cluster,
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: gitops-guard-tenants
  labels: {app.kubernetes.io/part-of: gitops-guard}
webhooks:
- name: guard.gitops-guard.dev
  clientConfig:
    service: {namespace: gitops-guard, name: gitops-guard, path: /validate, port: 443}
  rules:
  - {apiGroups: [""], apiVersions: ["*"], resources: [resourcequotas], operations: [CREATE, UPDATE, DELETE], scope: Namespaced}
  failurePolicy: Fail
  sideEffects: None
  timeoutSeconds: 3
  admissionReviewVersions: [v1]
  namespaceSelector: {matchExpressions: [{key: team, operator: NotIn, values: [sandbox]}]}
  objectSelector: {matchExpressions: [{key: skip-guard, operator: DoesNotExist}]}
"#,
    );

    let out = gitops(&cluster, dir.path(), &["doctor", "-o", "json"]);
    assert_eq!(out.code, 1, "{out}");
    let all = findings(&out);
    let tenants = "ValidatingWebhookConfiguration gitops-guard-tenants";
    assert_eq!(
        row_starting(&all, "guard", tenants, "namespaceSelector"),
        json!({
            "severity": "fail",
            "check": "guard",
            "subject": tenants,
            "finding": "namespaceSelector rests on the namespace label team, which a person can change: in a namespace with team=sandbox, writes of resourcequotas reach no webhook of the guard",
            "fix": "kubectl patch validatingwebhookconfiguration gitops-guard-tenants --type=json -p '[{\"op\":\"remove\",\"path\":\"/webhooks/0/namespaceSelector/matchExpressions/0\"}]'  # exclude namespaces by name instead: the guard config's excludedNamespaces (and, from 1.21, kubernetes.io/metadata.name)",
        })
    );
    // Who may set it: the local cluster's cluster-admins, by RBAC (Flux's controller is an agent).
    assert_eq!(
        all.iter()
            .find(|f| f["subject"] == tenants
                && f["finding"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("namespaceSelector")))
            .map(|f| f["why"].clone()),
        Some(json!(
            "Group developers, Group system:serviceaccounts and 2 more (may update or patch namespaces) can take a namespace out of the guard's view (kubectl label namespace NAME team=sandbox --overwrite)"
        ))
    );
    assert_eq!(
        row_starting(&all, "guard", tenants, "objectSelector"),
        json!({
            "severity": "fail",
            "check": "guard",
            "subject": tenants,
            "finding": "objectSelector rests on the object label skip-guard, which a person can change: an object with skip-guard set (to a value no selector names) reaches no webhook of the guard (resourcequotas)",
            "fix": "kubectl patch validatingwebhookconfiguration gitops-guard-tenants --type=json -p '[{\"op\":\"remove\",\"path\":\"/webhooks/0/objectSelector/matchExpressions/0\"}]'  # select on ownership labels only (the chart's entries do): changing those is itself judged by the guard",
        })
    );
    let ca = row_starting(
        &all,
        "guard",
        "ValidatingWebhookConfiguration gitops-guard-custody",
        "CA (caBundle) doctor-ca expires in ",
    );
    assert_eq!(ca["severity"], "warn", "{ca}");
    assert!(
        ca["fix"].as_str().unwrap().starts_with(
            "kubectl delete secret gitops-guard-tls -n gitops-guard && helm upgrade gitops-guard charts/gitops-guard -n gitops-guard --reuse-values"
        ),
        "{ca}"
    );
    let serving = row(&all, "guard", "Secret gitops-guard/gitops-guard-tls");
    assert_eq!(serving["severity"], "fail", "{serving}");
    assert!(
        serving["finding"]
            .as_str()
            .unwrap()
            .starts_with("serving certificate gitops-guard expired on "),
        "{serving}"
    );
    // The sources' statuses (their artifact and digest) are not routed: a fail each, with the
    // custody rule to add; those of Pods and StatefulSets are.
    assert_eq!(
        row(
            &all,
            "guard",
            "gitrepositories.source.toolkit.fluxcd.io/status"
        ),
        json!({
            "severity": "fail",
            "check": "guard",
            "subject": "gitrepositories.source.toolkit.fluxcd.io/status",
            "finding": "no webhook of the guard routes UPDATE of its /status",
            "fix": "helm upgrade gitops-guard charts/gitops-guard -n gitops-guard -f values.yaml  # with this in values.yaml's webhook.rules (the custody entry routes it, operations CREATE, UPDATE, DELETE): - {apiGroups: [source.toolkit.fluxcd.io], resources: [gitrepositories, gitrepositories/status]}",
        })
    );
    assert_eq!(
        row(
            &all,
            "guard",
            "kustomizations.kustomize.toolkit.fluxcd.io/status"
        )["severity"],
        "fail"
    );
    for routed in ["pods/status", "statefulsets.apps/status"] {
        assert!(
            !all.iter().any(|f| f["subject"] == routed),
            "{routed}: {all:#?}"
        );
    }
    // The guard's rules do not route Deployments: the dry run passes without a word from it.
    assert_eq!(
        row(&all, "guard", "dry run on deployment/web in team-a"),
        json!({
            "severity": "fail",
            "check": "guard",
            "subject": "dry run on deployment/web in team-a",
            "finding": "an annotation (gitops-guard.dev/doctor-probe) on a managed object passed a dry run without a word from the guard",
            "fix": "kubectl annotate deployments.apps web -n team-a gitops-guard.dev/doctor-probe=dry-run --dry-run=server  # shows the same; kubectl get validatingwebhookconfigurations -l app.kubernetes.io/part-of=gitops-guard -o yaml",
        })
    );
    assert_eq!(
        row(&all, "coverage", "ConfigMap argocd/argocd-cm"),
        json!({
            "severity": "fail",
            "check": "coverage",
            "subject": "ConfigMap argocd/argocd-cm",
            "finding": "Argo CD tracks its objects by label app.kubernetes.io/instance (application.resourceTrackingMethod: label), and the guard's config has argocd.labelTracking off",
            "fix": "helm upgrade gitops-guard charts/gitops-guard -n gitops-guard --reuse-values --set config.argocd.labelTracking=true --set config.argocd.trackingLabel=app.kubernetes.io/instance  # or Argo CD: application.resourceTrackingMethod: annotation",
        })
    );
    assert_eq!(
        row(
            &all,
            "coverage",
            "Deployment flux-system/kustomize-controller"
        ),
        json!({
            "severity": "fail",
            "check": "coverage",
            "subject": "Deployment flux-system/kustomize-controller",
            "finding": "--default-service-account=default, but the guard's config has flux.defaultServiceAccount empty: Kustomization team-a/apps",
            "fix": "helm upgrade gitops-guard charts/gitops-guard -n gitops-guard --reuse-values --set config.flux.defaultServiceAccount=default",
        })
    );
    assert_eq!(
        row(&all, "coverage", "field manager cainjector"),
        json!({
            "severity": "warn",
            "check": "coverage",
            "subject": "field manager cainjector",
            "finding": "writes to managed objects (deployment/web in team-a) and is not trusted: add its user to agents.users",
            "fix": "helm upgrade gitops-guard charts/gitops-guard -n gitops-guard --reuse-values --set 'config.agents.users={system:serviceaccount:cert-manager:cert-manager-cainjector}'",
        })
    );
    // Argo CD acts as team-b/deployer for Application b: who may run a Pod there has its token.
    assert_eq!(
        row(&all, "become-agent", "Group team-b-devs"),
        json!({
            "severity": "fail",
            "check": "become-agent",
            "subject": "Group team-b-devs",
            "finding": "can get a tenant service account's credential in team-b (RoleBinding team-b/team-b-devs → Role pod-creator)",
            "fix": "kubectl delete rolebinding team-b-devs -n team-b",
        })
    );
    // Flux's controller is an agent: it may switch the guard off, said as a warn.
    let agent = row_starting(
        &all,
        "switch-off",
        "ServiceAccount flux-system/kustomize-controller",
        "an agent, can change or delete ValidatingWebhookConfigurations",
    );
    assert_eq!(agent["severity"], "warn", "{agent}");
    assert_eq!(
        agent["finding"],
        "an agent, can change or delete ValidatingWebhookConfigurations gitops-guard-custody, gitops-guard-neighbours and 2 more (ClusterRoleBinding flux-cluster-admin → ClusterRole cluster-admin)"
    );
}

#[test]
fn doctor_sees_whether_the_guard_answers() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    cluster.install_crds();
    cluster.bootstrap();
    cluster
        .kubectl(User::Admin, &["create", "namespace", "prod"])
        .ok();
    cluster.flux_apps(
        r#"{"lastAppliedRevision": "main@sha1:3f2a9c1", "inventory": {"entries": [{"id": "prod_web_apps_Deployment", "v": "v1"}]}}"#,
    );
    cluster
        .flux_apply(
            r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: prod
  labels: {app: web, kustomize.toolkit.fluxcd.io/name: apps, kustomize.toolkit.fluxcd.io/namespace: flux-system}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: ghcr.io/acme/web:1.8.1}]
"#,
        )
        .ok();
    let webhook = Webhook::start(&cluster, "mode: enforce\n");

    let out = gitops(&cluster, dir.path(), &["doctor", "-o", "json"]);
    let all = findings(&out);
    let answered = row(&all, "guard", "dry run on deployment/web in prod");
    assert_eq!(answered["severity"], "ok", "{answered}");
    assert!(
        answered["finding"]
            .as_str()
            .unwrap()
            .starts_with("the guard answered: dry-run only: the real change would be denied: deployment/web in prod is managed by Flux"),
        "{answered}"
    );
    // The dry run changed nothing.
    let annotations = cluster.kubectl(
        User::Admin,
        &[
            "get",
            "deployment",
            "web",
            "-n",
            "prod",
            "-o",
            "jsonpath={.metadata.annotations}",
        ],
    );
    assert!(
        !annotations.stdout.contains("doctor-probe"),
        "{annotations}"
    );

    // The guard stops answering (its process is gone; its configuration still calls it).
    let killed = Command::new("kill")
        .args(["-9", &webhook.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(500));
    let out = gitops(&cluster, dir.path(), &["doctor", "-o", "json"]);
    assert_eq!(out.code, 1, "{out}");
    let all = findings(&out);
    let down = row(&all, "guard", "dry run on deployment/web in prod");
    assert_eq!(down["severity"], "fail", "{down}");
    assert!(
        down["finding"].as_str().unwrap().starts_with(
            "the API server could not call the guard: Internal error occurred: failed calling webhook \"guard.gitops-guard.dev\""
        ),
        "{down}"
    );
    assert!(
        down["fix"].as_str().unwrap().starts_with(
            "kubectl annotate deployments.apps web -n prod gitops-guard.dev/doctor-probe=dry-run --dry-run=server  # again once the guard answers"
        ),
        "{down}"
    );
    drop(webhook);
}
