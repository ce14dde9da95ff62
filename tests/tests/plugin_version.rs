//! `kubectl gitops version` end to end, through kubectl itself: the guard registered by URL (as
//! the harness registers it) answers `GET /version` on its TLS port and the plugin names it; with
//! no guard registered the line says why and the command still succeeds.

use gitops_guard_tests::{Cluster, User, Webhook};
use serde_json::Value;

#[test]
fn version_names_the_guard_that_answers_and_says_why_when_none_does() {
    let cluster = Cluster::start();
    let workspace = env!("CARGO_PKG_VERSION");

    let none = cluster.kubectl(User::Developer, &["gitops", "version"]);
    none.ok();
    let lines: Vec<&str> = none.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("kubectl-gitops {workspace} (commit ")),
        "{none:?}"
    );
    assert_eq!(
        lines[1],
        "guard: not reachable (no ValidatingWebhookConfiguration has the webhook guard.gitops-guard.dev: is the guard installed? (helm install gitops-guard …, see the chart's README))",
        "{none:?}"
    );

    let webhook = Webhook::start(&cluster, "mode: enforce\n");
    let out = cluster.kubectl(User::Developer, &["gitops", "version"]);
    out.ok();
    let guard = out.stdout.lines().nth(1).unwrap_or_default().to_string();
    assert!(
        guard.starts_with(&format!("guard: gitops-guard-webhook {workspace} (commit "))
            && guard.ends_with(&format!(
                " via https://127.0.0.1:{}/version",
                webhook.port()
            )),
        "{out:?}"
    );

    let json = cluster.kubectl(User::Developer, &["gitops", "version", "-o", "json"]);
    json.ok();
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["client"]["version"], workspace);
    assert_eq!(v["guard"]["version"], workspace);
    assert_eq!(v["client"]["commit"], v["guard"]["commit"], "one build");

    // --client asks nothing of the cluster.
    let client = cluster.kubectl(User::Developer, &["gitops", "version", "--client"]);
    client.ok();
    assert_eq!(client.stdout.lines().count(), 1, "{client:?}");

    // The guard stops; its configuration stays behind, pointing at a closed port.
    drop(webhook);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("https://127.0.0.1:{closed}/validate");
    let config = format!(
        r#"{{"apiVersion":"admissionregistration.k8s.io/v1","kind":"ValidatingWebhookConfiguration",
        "metadata":{{"name":"left-behind"}},
        "webhooks":[{{"name":"guard.gitops-guard.dev","clientConfig":{{"url":"{url}"}},
          "rules":[{{"apiGroups":["example.com"],"apiVersions":["*"],"operations":["CREATE"],"resources":["nothing"]}}],
          "failurePolicy":"Ignore","sideEffects":"None","admissionReviewVersions":["v1"]}}]}}"#
    );
    cluster
        .kubectl_stdin(User::Admin, &["apply", "-f", "-"], &config)
        .ok();
    let down = cluster.kubectl(User::Developer, &["gitops", "version"]);
    down.ok();
    let line = down.stdout.lines().nth(1).unwrap_or_default();
    assert!(
        line.starts_with("guard: not reachable (https://127.0.0.1:") && line.contains("/version: "),
        "{down:?}"
    );
}
