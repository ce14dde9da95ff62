//! Policy exceptions end to end: Git-delivered allowances and break-glass windows, with real
//! kubectl against a real kube-apiserver and the webhook registered.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gitops_guard_tests::{APPS, Cluster, KUSTOMIZE_CONTROLLER, Out, User, Webhook};

const KC: &str = KUSTOMIZE_CONTROLLER;
/// Break-glass windows here last at most 20 s, so expiry is tested without waiting for hours.
const CONFIG: &str = "breakGlass:\n  groups: [sre]\n  maxDuration: 20s\n";

struct Env {
    cluster: Cluster,
    _webhook: Webhook,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let cluster = Cluster::start();
        cluster.install_crds();
        // The bootstrap roots, and Kustomization flux-system/apps from Git (applied by
        // kustomize-controller for the root): the owner of every Deployment here.
        cluster.bootstrap();
        cluster.flux_apply(APPS).ok();
        // People in the sre group may do anything RBAC-wise; only the guard stops them.
        cluster
            .kubectl(
                User::Admin,
                &[
                    "create",
                    "clusterrolebinding",
                    "sre-admin",
                    "--clusterrole=cluster-admin",
                    "--group=sre",
                ],
            )
            .ok();
        let webhook = Webhook::start(&cluster, CONFIG);
        Env {
            cluster,
            _webhook: webhook,
        }
    })
}

fn deployment(ns: &str, annotations: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\n  labels:\n    app: web\n    kustomize.toolkit.fluxcd.io/name: apps\n    kustomize.toolkit.fluxcd.io/namespace: flux-system\n  annotations: {{{annotations}}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - name: web\n        image: ghcr.io/acme/web:1.8.1\n"
    )
}

fn setup(ns: &str, annotations: &str) {
    let env = env();
    env.cluster
        .kubectl(User::Admin, &["create", "namespace", ns])
        .ok();
    env.cluster
        .kubectl_as_stdin(
            KC,
            &[
                "apply",
                "--server-side",
                "--field-manager=kustomize-controller",
                "-f",
                "-",
            ],
            &deployment(ns, annotations),
        )
        .ok();
}

/// kubectl as `user` in the `sre` break-glass group (impersonated by the admin).
fn sre(user: &str, args: &[&str]) -> Out {
    let mut all = vec!["--as-group=sre", "--as-group=system:authenticated"];
    all.extend_from_slice(args);
    env().cluster.kubectl_as(user, &all)
}

fn dev(args: &[&str]) -> Out {
    env().cluster.kubectl(User::Developer, args)
}

fn rfc3339_in(secs: i64) -> String {
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("+{secs} seconds"),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn jsonpath(ns: &str, path: &str) -> String {
    env()
        .cluster
        .kubectl(
            User::Admin,
            &[
                "get",
                "deployment/web",
                "-n",
                ns,
                "-o",
                &format!("jsonpath={path}"),
            ],
        )
        .ok()
        .stdout
        .clone()
}

#[test]
fn git_delivered_allow_fields_lets_scale_through_but_not_an_image_change() {
    setup("allow", "gitops-guard.dev/allow-fields: spec.replicas");
    dev(&["scale", "deployment/web", "-n", "allow", "--replicas=5"]).ok();
    assert_eq!(jsonpath("allow", "{.spec.replicas}"), "5");
    let out = dev(&[
        "set",
        "image",
        "deployment/web",
        "web=ghcr.io/acme/web:2",
        "-n",
        "allow",
    ]);
    let msg = out.denied();
    assert!(
        msg.starts_with(
            "deployment/web in allow is managed by Flux Kustomization flux-system/apps"
        ),
        "{out}"
    );
    assert!(
        msg.contains("Only spec.replicas may be changed by hand here (gitops-guard.dev/allow-fields); this change also touches: spec.template.spec.containers[0].image"),
        "{out}"
    );
    // Widening the allowance by hand is a change like any other.
    let out = dev(&[
        "annotate",
        "--overwrite",
        "deployment/web",
        "-n",
        "allow",
        "gitops-guard.dev/allow-fields=spec",
    ]);
    assert!(
        out.denied().contains("gitops-guard.dev/allow-fields"),
        "{out}"
    );
}

#[test]
fn allowances_added_by_hand_do_not_count() {
    setup("forged", "");
    let out = dev(&[
        "annotate",
        "deployment/web",
        "-n",
        "forged",
        "gitops-guard.dev/allow=manual",
    ]);
    out.denied();
    let out = dev(&[
        "annotate",
        "deployment/web",
        "-n",
        "forged",
        "gitops-guard.dev/allow-fields=spec.replicas",
    ]);
    out.denied();
}

#[test]
fn break_glass_window_lets_members_through_with_a_warning_and_expires() {
    setup("incident", "");
    let until = rfc3339_in(12);
    let open = |user: &str| -> Vec<String> {
        vec![
            "annotate".into(),
            "--overwrite".into(),
            "deployment/web".into(),
            "-n".into(),
            "incident".into(),
            format!("gitops-guard.dev/break-glass-until={until}"),
            "gitops-guard.dev/break-glass-reason=payments outage".into(),
            "gitops-guard.dev/break-glass-ticket=INC-123".into(),
            format!("gitops-guard.dev/break-glass-by={user}"),
        ]
    };
    // A non-member cannot open a window.
    let args = open("ana");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = dev(&args);
    assert!(
        out.denied()
            .starts_with("break-glass on deployment/web in incident refused: only members of sre"),
        "{out}"
    );
    // Nor can a member open one longer than the maximum.
    let long = rfc3339_in(3600);
    let out = sre(
        "sam",
        &[
            "annotate",
            "deployment/web",
            "-n",
            "incident",
            &format!("gitops-guard.dev/break-glass-until={long}"),
            "gitops-guard.dev/break-glass-reason=x",
            "gitops-guard.dev/break-glass-by=sam",
        ],
    );
    assert!(out.denied().contains("may last at most 20s"), "{out}");
    // Nor without a reason.
    let out = sre(
        "sam",
        &[
            "annotate",
            "deployment/web",
            "-n",
            "incident",
            &format!("gitops-guard.dev/break-glass-until={until}"),
            "gitops-guard.dev/break-glass-by=sam",
        ],
    );
    assert!(out.denied().contains("needs a reason"), "{out}");

    // A member opens it.
    let args = open("sam");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sre("sam", &args);
    out.ok();
    assert_eq!(
        out.warnings(),
        vec![format!("break-glass window on deployment/web in incident opened by sam until {until}: payments outage [INC-123]").as_str()],
        "{out}"
    );
    // Inside the window a member's change passes, with a warning and an Event.
    let out = sre(
        "kim",
        &[
            "set",
            "image",
            "deployment/web",
            "web=ghcr.io/acme/web:hotfix",
            "-n",
            "incident",
        ],
    );
    out.ok();
    assert!(
        out.warnings().iter().any(|w| w.starts_with(
            "break-glass: deployment/web in incident changed by kim under the window opened by sam"
        )),
        "{out}"
    );
    assert_eq!(
        jsonpath("incident", "{.spec.template.spec.containers[0].image}"),
        "ghcr.io/acme/web:hotfix"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = env()
            .cluster
            .kubectl(
                User::Admin,
                &["get", "events", "-n", "incident", "-o", "json"],
            )
            .ok()
            .json();
        let found = events["items"].as_array().unwrap().iter().any(|e| {
            e["reason"] == "BreakGlass"
                && e["involvedObject"]["name"] == "web"
                && e["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("changed by kim")
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no BreakGlass Event for deployment/web: {events}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A non-member is still denied inside the window.
    dev(&["scale", "deployment/web", "-n", "incident", "--replicas=9"]).denied();
    // A member's `kubectl scale` passes too: the window is on the Deployment, not on the Scale
    // object the request carries.
    let out = sre(
        "kim",
        &["scale", "deployment/web", "-n", "incident", "--replicas=3"],
    );
    out.ok();
    assert!(
        out.warnings().iter().any(|w| w.starts_with(
            "break-glass: deployment/web in incident changed by kim under the window opened by sam"
        )),
        "{out}"
    );
    assert_eq!(jsonpath("incident", "{.spec.replicas}"), "3");
    // After the window the object is guarded again, without anyone closing it.
    let wait = {
        let end = until.parse::<String>().unwrap();
        let out = std::process::Command::new("date")
            .args(["-u", "-d", &end, "+%s"])
            .output()
            .unwrap();
        let end: u64 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        end.saturating_sub(now) + 1
    };
    std::thread::sleep(Duration::from_secs(wait));
    let out = sre(
        "kim",
        &[
            "set",
            "image",
            "deployment/web",
            "web=ghcr.io/acme/web:again",
            "-n",
            "incident",
        ],
    );
    assert!(
        out.denied().starts_with(
            "deployment/web in incident is managed by Flux Kustomization flux-system/apps"
        ),
        "{out}"
    );
}

/// `kubectl gitops ...` (this build's plugin) with the given kubeconfig.
fn gitops(kubeconfig: &std::path::Path, args: &[&str]) -> Out {
    env()
        .cluster
        .kubectl_with(kubeconfig, &[], &[&["gitops"], args].concat())
}

#[test]
fn the_plugin_opens_lists_and_closes_windows() {
    setup("plugin-bg", "gitops-guard.dev/allow-fields: spec.replicas");
    let sam = member_kubeconfig("sam");
    let ana = env().cluster.kubeconfig(User::Developer);
    let target = ["break-glass", "deployment/web", "-n", "plugin-bg"];

    // No reason, no window.
    let out = gitops(&sam, &[&target[..], &["--for", "15s"]].concat());
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("--reason"), "{out}");
    // Not a member: the guard refuses, and the plugin says why.
    let out = gitops(
        &ana,
        &[&target[..], &["--for", "15s", "--reason", "x"]].concat(),
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("only members of sre may open, extend or close a break-glass window"),
        "{out}"
    );
    // Longer than the guard allows.
    let out = gitops(
        &sam,
        &[&target[..], &["--for", "5h", "--reason", "x"]].concat(),
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("may last at most 20s"), "{out}");

    // A member opens it: the plugin finds out who sam is and records it.
    let out = gitops(
        &sam,
        &[
            &target[..],
            &[
                "--for",
                "15s",
                "--reason",
                "payments outage",
                "--ticket",
                "INC-9",
            ],
        ]
        .concat(),
    );
    out.ok();
    assert!(
        out.stdout
            .starts_with("break-glass window open on deployment/web in plugin-bg until ")
            && out
                .stdout
                .contains("opened by sam: payments outage [INC-9]"),
        "{out}"
    );
    assert_eq!(
        jsonpath(
            "plugin-bg",
            "{.metadata.annotations.gitops-guard\\.dev/break-glass-by}"
        ),
        "sam"
    );
    // A member's hand change under it, and the listing of what to bring back into Git.
    sre(
        "kim",
        &[
            "set",
            "image",
            "deployment/web",
            "web=ghcr.io/acme/web:hotfix",
            "-n",
            "plugin-bg",
        ],
    )
    .ok();
    let out = gitops(&ana, &["exceptions", "-n", "plugin-bg", "-o", "json"]);
    out.ok();
    let items = out.json()["items"].as_array().unwrap().clone();
    let kinds: Vec<&str> = items
        .iter()
        .map(|i| i["exception"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["allow-fields", "break-glass"], "{out}");
    assert_eq!(items[0]["detail"], "spec.replicas");
    assert_eq!(items[1]["detail"], "by sam: payments outage [INC-9]");
    assert!(
        items[1]["state"]
            .as_str()
            .unwrap()
            .starts_with("active, ends in"),
        "{out}"
    );
    assert_eq!(
        items[1]["changed"][0]["resource"], "deployment/web",
        "{out}"
    );
    assert_eq!(items[1]["changed"][0]["manager"], "kubectl-set", "{out}");
    let table = gitops(&ana, &["exceptions", "-n", "plugin-bg"]);
    table.ok();
    assert!(
        table
            .stdout
            .starts_with("RESOURCE         NAMESPACE   EXCEPTION      STATE"),
        "{table}"
    );

    // Closing it early: its end moves to now and its record stays, so the hot-fix that is still
    // live is still listed as something to bring back into Git.
    let out = gitops(
        &sam,
        &[
            "break-glass",
            "deployment/web",
            "-n",
            "plugin-bg",
            "--close",
        ],
    );
    out.ok();
    assert!(
        out.stdout
            .starts_with("break-glass window on deployment/web in plugin-bg closed (ended "),
        "{out}"
    );
    let ended: jiff::Timestamp = jsonpath(
        "plugin-bg",
        "{.metadata.annotations.gitops-guard\\.dev/break-glass-until}",
    )
    .parse()
    .unwrap();
    assert!(ended <= jiff::Timestamp::now(), "{ended}");
    let out = gitops(&ana, &["exceptions", "-n", "plugin-bg", "-o", "json"]);
    let items = out.ok().json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2, "{out}");
    assert!(
        items[1]["state"].as_str().unwrap().starts_with("expired "),
        "{out}"
    );
    assert_eq!(items[1]["detail"], "by sam: payments outage [INC-9]");
    assert_eq!(items[1]["changed"][0]["manager"], "kubectl-set", "{out}");
    // Closed means closed: a member's change is denied again.
    let out = sre(
        "kim",
        &[
            "set",
            "image",
            "deployment/web",
            "web=ghcr.io/acme/web:hotfix2",
            "-n",
            "plugin-bg",
        ],
    );
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("is managed by"), "{out}");
    // Closing again says so and changes nothing.
    let out = gitops(
        &sam,
        &[
            "break-glass",
            "deployment/web",
            "-n",
            "plugin-bg",
            "--close",
        ],
    );
    out.ok();
    assert!(out.stdout.contains("already ended at"), "{out}");
}

/// A window annotation is not a way around the guard: a member's request that opens (or closes)
/// a window and changes anything else in the same request — strips the owner's labels, changes
/// the image — is refused whole; the window alone, then the change under it, passes.
#[test]
fn a_window_change_carries_nothing_else_through() {
    setup("bg-alone", "");
    let until = rfc3339_in(15);
    let window = |extra: &str| {
        format!(
            r#"{{"metadata":{{"annotations":{{"gitops-guard.dev/break-glass-until":"{until}","gitops-guard.dev/break-glass-reason":"payments outage","gitops-guard.dev/break-glass-by":"sam"}}{extra}}}}}"#
        )
    };
    // Opening a window and taking the object out of Flux's hands in one request.
    let strip = window(r#","labels":{"kustomize.toolkit.fluxcd.io/name":null}"#);
    let out = sre(
        "sam",
        &[
            "patch",
            "deployment/web",
            "-n",
            "bg-alone",
            "--type=merge",
            "-p",
            &strip,
        ],
    );
    assert!(
        out.denied().contains(
            "a request that opens, extends or closes a window changes nothing else, and this one also changes metadata.labels"
        ),
        "{out}"
    );
    // The neighbour: the window alone, then the hot-fix under it.
    sre(
        "sam",
        &[
            "patch",
            "deployment/web",
            "-n",
            "bg-alone",
            "--type=merge",
            "-p",
            &window(""),
        ],
    )
    .ok();
    sre(
        "sam",
        &[
            "set",
            "image",
            "deployment/web",
            "web=ghcr.io/acme/web:hotfix",
            "-n",
            "bg-alone",
        ],
    )
    .ok();
    // Closing it and changing the image again in one request.
    let now = rfc3339_in(0);
    let close_and_change = format!(
        r#"{{"metadata":{{"annotations":{{"gitops-guard.dev/break-glass-until":"{now}"}}}},"spec":{{"template":{{"spec":{{"containers":[{{"name":"web","image":"evil:1"}}]}}}}}}}}"#
    );
    let out = sre(
        "kim",
        &[
            "patch",
            "deployment/web",
            "-n",
            "bg-alone",
            "--type=strategic",
            "-p",
            &close_and_change,
        ],
    );
    assert!(out.denied().contains("changes nothing else"), "{out}");
}

/// A kubeconfig acting as `user` in the `sre` group.
fn member_kubeconfig(user: &str) -> std::path::PathBuf {
    env()
        .cluster
        .impersonating_kubeconfig(user, &["sre", "system:authenticated"])
}
