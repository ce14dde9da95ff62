//! The binary's command line: `--version`, and refusing to start on bad files with an error that
//! names them (before it tries to reach any API server).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is how it fails

use std::process::Command;

fn webhook() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitops-guard-webhook"));
    for var in [
        "GITOPS_GUARD_CONFIG",
        "GITOPS_GUARD_TLS_CERT",
        "GITOPS_GUARD_TLS_KEY",
        "GITOPS_GUARD_LISTEN",
        "GITOPS_GUARD_PROBE_LISTEN",
        "GITOPS_GUARD_LOG_FORMAT",
        "KUBECONFIG",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn version() {
    let out = webhook().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("gitops-guard-webhook {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_bad_config_file_stops_it_with_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "flux:\n  namepsace: flux-system\n").unwrap();
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();

    let out = webhook()
        .arg("--config")
        .arg(&config)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .args(["--listen", "127.0.0.1:0", "--probe-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&config.display().to_string()), "{stderr}");
    assert!(stderr.contains("namepsace"), "{stderr}");

    // The same through the environment, with JSON logs.
    let out = webhook()
        .env("GITOPS_GUARD_CONFIG", &config)
        .env("GITOPS_GUARD_TLS_CERT", &cert)
        .env("GITOPS_GUARD_TLS_KEY", dir.path().join("missing.key"))
        .env("GITOPS_GUARD_LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert!(
        line["message"].as_str().unwrap().contains("config.yaml"),
        "{line}"
    );
}

#[test]
fn a_missing_flag_is_a_usage_error() {
    let out = webhook().args(["--config", "x.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tls-cert"), "{stderr}");
}
