//! No size or shape of input is a way around the guard, end to end: real kubectl against a real
//! kube-apiserver (v1.20.2), the webhook registered for every group with `failurePolicy: Fail`.
//!
//! - A Flux-managed ConfigMap as large as kubectl can send it (520,000 characters `<`, which the
//!   API server writes as six bytes each: reviews of 3 MB on CREATE and 6 MB on UPDATE, past the
//!   3 MiB the guard once read): the agent creates and updates it, a person's change is denied with
//!   the guard's own message, not a webhook error.
//! - A Flux-managed Widget with a value nested as deep as the API server accepts (JSON 10,000
//!   levels deep in all): decided without the webhook crashing, also with an `allow-fields`
//!   exception (whose field diff walks it), and the webhook goes on answering.
//! - The guard answers only the API server: started with `--client-ca`, every decision above
//!   reaches it through the API server's webhook client certificate, while a client with no
//!   certificate, or with a user's certificate from the cluster CA, is refused at the handshake.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use gitops_guard_tests::{Cluster, Out, User, Webhook, run_command};

const SHA: &str = "3f2a9c1e0b7d4c2a9f8e7d6c5b4a39281706f5e4";

struct Env {
    cluster: Cluster,
    webhook: Webhook,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let cluster = Cluster::start();
        cluster.install_crds();
        cluster.install_test_crds();
        // What `flux bootstrap` creates, and the owner it applied from Git.
        cluster.bootstrap();
        for ns in ["big", "deep"] {
            cluster
                .kubectl(User::Admin, &["create", "namespace", ns])
                .ok();
        }
        cluster.flux_apps(&format!(r#"{{"lastAppliedRevision":"main@sha1:{SHA}"}}"#));
        // Only the API server may ask: it presents its webhook client certificate
        // (local-cluster.sh's admission config), from a CA of its own.
        let client_ca = cluster.dir().join("pki/webhook-client-ca.crt");
        let webhook = Webhook::start_with_args(
            &cluster,
            "mode: enforce\n",
            &["--client-ca".as_ref(), client_ca.as_os_str()],
        );
        Env { cluster, webhook }
    })
}

/// Flux's kustomize-controller applying `manifest`.
fn agent_apply(manifest: &str) -> Out {
    env().cluster.flux_apply(manifest)
}

fn dev(args: &[&str]) -> Out {
    env().cluster.kubectl(User::Developer, args)
}

/// The denial of a person's change to a Flux-managed object: what manages it, and `way`, what to
/// do instead (`Change it in Git instead: kubectl gitops edit …`).
fn flux_message(kind_name: &str, ns: &str, way: &str) -> String {
    format!(
        "{kind_name} in {ns} is managed by Flux Kustomization flux-system/apps (main@sha1:3f2a9c1).\n{way}"
    )
}

fn first_two_lines(s: &str) -> String {
    s.lines().take(2).collect::<Vec<_>>().join("\n")
}

fn jsonpath(ns: &str, what: &str, path: &str) -> String {
    env()
        .cluster
        .kubectl(
            User::Admin,
            &["get", what, "-n", ns, "-o", &format!("jsonpath={path}")],
        )
        .ok()
        .stdout
        .clone()
}

/// The webhook process is alive, answers its probes, and logged no panic.
fn webhook_alive() {
    let webhook = &env().webhook;
    assert!(webhook.get("/healthz").contains("ok"));
    let log = webhook.log();
    assert!(
        !log.contains("panicked") && !log.contains("overflow"),
        "webhook log:\n{log}"
    );
}

/// Characters `<` in the big ConfigMap: kubectl sends JSON with each as `\u003c`, and the API
/// server takes request bodies of at most 3 MiB, so about 524,000 is the most kubectl can apply.
const BIG: usize = 520_000;

fn big_configmap(value: &str, extra: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big","namespace":"big","labels":{{"kustomize.toolkit.fluxcd.io/name":"apps","kustomize.toolkit.fluxcd.io/namespace":"flux-system"}}}},"data":{{"BIG":"{value}","LOG_LEVEL":"info"{extra}}}}}"#
    )
}

#[test]
fn a_large_flux_configmap_passes_for_the_agent_and_is_denied_to_a_person() {
    let big = "<".repeat(BIG);
    // The agent creates it (a 3 MB review) and updates it (6 MB: old and new object).
    agent_apply(&big_configmap(&big, "")).ok();
    let changed = format!("{}&", &big[1..]);
    agent_apply(&big_configmap(&changed, r#","FEATURE":"on""#)).ok();
    assert_eq!(jsonpath("big", "configmap/big", "{.data.FEATURE}"), "on");

    // A person's change is denied with the guard's own message (not a webhook error).
    let msg = flux_message(
        "configmap/big",
        "big",
        "Change it in Git instead: kubectl gitops edit configmap/big -n big",
    );
    let out = dev(&[
        "patch",
        "configmap/big",
        "-n",
        "big",
        "--type=merge",
        "-p",
        r#"{"data":{"LOG_LEVEL":"debug"}}"#,
    ]);
    assert_eq!(first_two_lines(out.denied()), msg, "patch:\n{}", cut(&out));
    let out = kubectl_edit(
        User::Developer,
        "s/LOG_LEVEL: info/LOG_LEVEL: debug/",
        &["configmap/big", "-n", "big"],
    );
    assert_eq!(first_two_lines(out.denied()), msg, "edit:\n{}", cut(&out));
    let out = dev(&["label", "configmap/big", "-n", "big", "team=x"]);
    assert_eq!(
        first_two_lines(out.denied()),
        flux_message(
            "configmap/big",
            "big",
            "Change it in Git instead: kubectl gitops label configmap/big team=x -n big"
        ),
        "label:\n{}",
        cut(&out)
    );
    assert_eq!(
        jsonpath("big", "configmap/big", "{.data.LOG_LEVEL}"),
        "info"
    );

    // The agent again, after the refusals.
    agent_apply(&big_configmap(&big, r#","FEATURE":"off""#)).ok();
    assert_eq!(jsonpath("big", "configmap/big", "{.data.FEATURE}"), "off");
    webhook_alive();
}

/// An `Out` for a message, without megabytes of `<`.
fn cut(out: &Out) -> String {
    let text = out.to_string();
    match text.char_indices().nth(4000) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// `kubectl edit` as `user` with an editor script that runs `sed_expr` over the file.
fn kubectl_edit(user: User, sed_expr: &str, args: &[&str]) -> Out {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let editor = dir.path().join("editor.sh");
    std::fs::write(&editor, format!("#!/bin/sh\nsed -i '{sed_expr}' \"$1\"\n")).unwrap();
    let mut perms = std::fs::metadata(&editor).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&editor, perms).unwrap();
    let mut edit = vec!["edit"];
    edit.extend_from_slice(args);
    env.cluster.kubectl_with(
        &env.cluster.kubeconfig(user),
        &[
            ("KUBE_EDITOR", editor.as_os_str()),
            ("TMPDIR", dir.path().as_os_str()),
        ],
        &edit,
    )
}

/// Lists nested in `spec.deep` below `spec`: with the object and `spec` around them, 10,000
/// levels, the most the API server's JSON decoding takes (one more is "exceeded max depth").
/// (Maps nested this deep are accepted too, but v1.20's managedFields bookkeeping takes time
/// exponential in their depth: beyond about 18 levels a create times out.)
const DEEP: usize = 9_998;

/// The Widget deep/w as the agent applies it: `spec.deep` is `DEEP` lists around `leaf`, and
/// a person may change `spec.x` (`allow-fields`).
fn deep_widget(leaf: &str) -> String {
    format!(
        r#"{{"apiVersion":"example.gitops-guard.dev/v1","kind":"Widget","metadata":{{"name":"w","namespace":"deep","labels":{{"kustomize.toolkit.fluxcd.io/name":"apps","kustomize.toolkit.fluxcd.io/namespace":"flux-system"}},"annotations":{{"gitops-guard.dev/allow-fields":"spec.x"}}}},"spec":{{"y":1,"deep":{}{leaf}{}}}}}"#,
        "[".repeat(DEEP),
        "]".repeat(DEEP)
    )
}

#[test]
fn a_flux_object_nested_as_deep_as_the_api_server_allows_is_decided() {
    // The API server refuses one level more: the depth tested is its limit.
    let too_deep = deep_widget("1")
        .replacen(r#""deep":"#, r#""deep":["#, 1)
        .replacen("]}}", "]]}}", 1);
    let out = env().cluster.kubectl_stdin(
        User::Admin,
        &[
            "create",
            "--raw",
            "/apis/example.gitops-guard.dev/v1/namespaces/deep/widgets?dryRun=All",
            "-f",
            "-",
        ],
        &too_deep,
    );
    assert!(
        out.stderr.contains("BadRequest") && out.stderr.contains("exceeded max depth"),
        "{}",
        cut(&out)
    );

    agent_apply(&deep_widget("1")).ok();
    // The agent's update (old and new object 10,000 levels deep in the review).
    agent_apply(&deep_widget("2")).ok();
    assert_eq!(jsonpath("deep", "widget/w", "{.spec.y}"), "1");
    webhook_alive();

    let msg = flux_message(
        "widget/w",
        "deep",
        "Change it in Git instead: kubectl gitops edit widget/w -n deep",
    );
    // A change outside the exception: the usual denial, saying what else changed.
    let out = dev(&[
        "patch",
        "widget/w",
        "-n",
        "deep",
        "--type=merge",
        "-p",
        r#"{"spec":{"y":2}}"#,
    ]);
    let message = out.denied();
    assert_eq!(first_two_lines(message), msg, "{}", cut(&out));
    assert!(
        message.contains("Only spec.x may be changed by hand here (gitops-guard.dev/allow-fields); this change also touches: spec.y"),
        "{message}"
    );
    // The exception's own field passes (the diff walks past the deep value).
    dev(&[
        "patch",
        "widget/w",
        "-n",
        "deep",
        "--type=merge",
        "-p",
        r#"{"spec":{"x":"by hand"}}"#,
    ])
    .ok();
    assert_eq!(jsonpath("deep", "widget/w", "{.spec.x}"), "by hand");
    // A change at the bottom of the deep value: denied, the path named (and cut short).
    let patch = format!(
        r#"[{{"op":"replace","path":"/spec/deep","value":{}3{}}}]"#,
        "[".repeat(DEEP),
        "]".repeat(DEEP)
    );
    let dir = tempfile::tempdir().unwrap();
    let patch_file = dir.path().join("patch.json");
    std::fs::write(&patch_file, patch).unwrap();
    let out = dev(&[
        "patch",
        "widget/w",
        "-n",
        "deep",
        "--type=json",
        "--patch-file",
        patch_file.to_str().unwrap(),
    ]);
    let message = out.denied();
    assert_eq!(first_two_lines(message), msg, "{}", cut(&out));
    assert!(
        message.contains("this change also touches: spec.deep[0][0][0][0]") && message.len() < 2000,
        "{message}"
    );
    // Deleting it by hand: denied like any managed object.
    let out = dev(&["delete", "widget/w", "-n", "deep", "--wait=false"]);
    let removal = flux_message(
        "widget/w",
        "deep",
        "Remove it from Git instead, and the agent prunes it (kubectl gitops trace widget/w -n deep names its file)",
    );
    assert_eq!(out.denied(), removal, "{}", cut(&out));

    // Still alive, still deciding.
    webhook_alive();
    agent_apply(&deep_widget("4")).ok();
    let out = dev(&["annotate", "widget/w", "-n", "deep", "note=hi"]);
    assert_eq!(
        first_two_lines(out.denied()),
        msg.replace("edit widget/w", "annotate widget/w note=hi"),
        "{}",
        cut(&out)
    );
    webhook_alive();
}

/// A review POSTed to the webhook's TLS port by `openssl s_client`, with `cert` (certificate, key)
/// as the client certificate: what came back (the HTTP response, or openssl's account of a
/// refused handshake).
fn post_review(cert: Option<(&Path, &Path)>) -> Out {
    let body = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"client-auth","kind":{"group":"","version":"v1","kind":"ConfigMap"},"resource":{"group":"","version":"v1","resource":"configmaps"},"name":"x","namespace":"big","operation":"CREATE","userInfo":{"username":"someone"},"object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"big"}}}}"#;
    let request = format!(
        "POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-quiet", "-ign_eof", "-connect"])
        .arg(format!("127.0.0.1:{}", env().webhook.port()))
        .args(["-servername", "localhost", "-CAfile"])
        .arg(env().cluster.ca_cert());
    if let Some((crt, key)) = cert {
        cmd.arg("-cert").arg(crt).arg("-key").arg(key);
    }
    run_command(cmd, Some(&request), Duration::from_secs(20))
}

#[test]
fn only_a_client_with_the_api_servers_webhook_certificate_is_answered() {
    let pki = env().cluster.dir().join("pki");
    // The API server's own certificate for webhooks: answered.
    let out = post_review(Some((
        &pki.join("webhook-client.crt"),
        &pki.join("webhook-client.key"),
    )));
    assert!(
        out.stdout.starts_with("HTTP/1.1 200") && out.stdout.contains(r#""uid":"client-auth""#),
        "{out}"
    );
    // No certificate, or one the cluster CA signed for a user (kube-apiserver's serving pair is
    // signed by that CA too): the handshake is refused, no review is read.
    let refused = [
        post_review(None),
        post_review(Some((
            &pki.join("apiserver.crt"),
            &pki.join("apiserver.key"),
        ))),
    ];
    for out in refused {
        assert!(!out.stdout.contains("HTTP/1.1"), "{out}");
        assert!(
            out.stderr.contains("alert") || out.stderr.contains("certificate"),
            "{out}"
        );
    }
    // And the API server itself still reaches it: a person's change is denied by the guard.
    agent_apply(
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"small","namespace":"big","labels":{"kustomize.toolkit.fluxcd.io/name":"apps","kustomize.toolkit.fluxcd.io/namespace":"flux-system"}},"data":{"LOG_LEVEL":"info"}}"#,
    )
    .ok();
    let out = dev(&["label", "configmap/small", "-n", "big", "team=x"]);
    assert_eq!(
        first_two_lines(out.denied()),
        flux_message(
            "configmap/small",
            "big",
            "Change it in Git instead: kubectl gitops label configmap/small team=x -n big"
        )
    );
    webhook_alive();
}
