//! `kubectl gitops version`: this build (version and the Git commit it was built from) and the
//! guard's, read from the guard itself (`GET /version`) where its webhook configuration says it
//! runs: through the API server's service proxy for a `service` client config, or directly for a
//! `url` one (trusting the configuration's caBundle). A guard that cannot be reached is a line
//! that says why, never a failure: the command exits 0 whenever the client part could be printed.

use std::time::Duration;

use base64::Engine;
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::cluster::{self, Cluster};
use crate::doctor::guard::{WEBHOOK_NAME, guard_configurations};
use crate::session::Global;

/// This build's version (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Git commit this build was made from: `GITOPS_GUARD_COMMIT` at build time (scripts/release.sh
/// sets it), `None` for a plain `cargo build`.
pub const COMMIT: Option<&str> = option_env!("GITOPS_GUARD_COMMIT");

/// How long the guard (and the API server on the way) may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `version` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VersionFormat {
    Text,
    Json,
}

/// `version` arguments.
#[derive(Debug, Clone, Args)]
pub struct VersionArgs {
    /// Print the client's version only (no cluster access).
    #[arg(long)]
    pub client: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: VersionFormat,
}

/// One build: its version and commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Build {
    pub version: String,
    pub commit: Option<String>,
}

impl Build {
    fn this() -> Build {
        Build {
            version: VERSION.to_string(),
            commit: COMMIT.map(str::to_string),
        }
    }

    fn describe(&self) -> String {
        match &self.commit {
            Some(c) => format!("{} (commit {})", self.version, &c[..c.len().min(12)]),
            None => format!("{} (commit unknown: not a release build)", self.version),
        }
    }
}

/// What `version` found out about the guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Guard {
    /// It answered: its build, and the way it was reached.
    Reached {
        #[serde(flatten)]
        build: Build,
        via: String,
    },
    /// It did not: why (`{"notReachable": "why"}`).
    NotReached {
        #[serde(rename = "notReachable")]
        why: String,
    },
}

/// Where the guard's webhook configuration says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `clientConfig.service`: reached through the API server's service proxy.
    Service {
        namespace: String,
        name: String,
        port: u16,
    },
    /// `clientConfig.url`, with the configuration's caBundle (PEM).
    Url { url: String, ca_pem: Vec<u8> },
}

impl Endpoint {
    fn describe(&self) -> String {
        match self {
            Endpoint::Service {
                namespace,
                name,
                port,
            } => format!("service {namespace}/{name}:{port}"),
            Endpoint::Url { url, .. } => url.clone(),
        }
    }
}

/// The guard's endpoint in the ValidatingWebhookConfigurations: the first webhook named
/// [`WEBHOOK_NAME`] in the guard's configurations.
pub fn endpoint(configs: &[Value]) -> Result<Endpoint, String> {
    let guard = guard_configurations(configs);
    let webhook = guard
        .iter()
        .filter_map(|c| c.get("webhooks").and_then(Value::as_array))
        .flatten()
        .find(|w| w.get("name").and_then(Value::as_str) == Some(WEBHOOK_NAME))
        .ok_or_else(|| {
            format!(
                "no ValidatingWebhookConfiguration has the webhook {WEBHOOK_NAME}: is the guard installed? (helm install gitops-guard …, see the chart's README)"
            )
        })?;
    let client = webhook
        .get("clientConfig")
        .ok_or_else(|| format!("the webhook {WEBHOOK_NAME} has no clientConfig"))?;
    if let Some(s) = client.get("service") {
        let field = |k: &str| s.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(namespace), Some(name)) = (field("namespace"), field("name")) else {
            return Err(format!(
                "the webhook {WEBHOOK_NAME}'s clientConfig.service has no namespace or name"
            ));
        };
        let port = s
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(443);
        return Ok(Endpoint::Service {
            namespace,
            name,
            port,
        });
    }
    let url = client.get("url").and_then(Value::as_str).ok_or_else(|| {
        format!("the webhook {WEBHOOK_NAME}'s clientConfig has neither service nor url")
    })?;
    let ca_pem = match client.get("caBundle").and_then(Value::as_str) {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("the webhook {WEBHOOK_NAME}'s caBundle is not base64: {e}"))?,
        None => Vec::new(),
    };
    Ok(Endpoint::Url {
        url: version_url(url)?,
        ca_pem,
    })
}

/// `https://host:port/anything` → `https://host:port/version`.
fn version_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("the webhook {WEBHOOK_NAME}'s url {url} is not https"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!(
            "the webhook {WEBHOOK_NAME}'s url {url} has no host"
        ));
    }
    Ok(format!("https://{host}/version"))
}

fn parse_build(body: &str, from: &str) -> Result<Build, String> {
    serde_json::from_str(body).map_err(|e| {
        format!("{from} answered GET /version with something else than the guard's version ({e}): an older guard, or not the guard")
    })
}

async fn via_service(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    port: u16,
) -> Result<String, String> {
    let path = format!("/api/v1/namespaces/{namespace}/services/https:{name}:{port}/proxy/version");
    let request = http::Request::get(&path)
        .body(Vec::new())
        .map_err(|e| format!("cannot make the request {path}: {e}"))?;
    match tokio::time::timeout(TIMEOUT, cluster.client.request_text(request)).await {
        Err(_) => Err(format!(
            "service {namespace}/{name} did not answer within {}s through the API server",
            TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(format!(
            "service {namespace}/{name} through the API server: {}; check that the guard runs: kubectl get pods,endpoints -n {namespace}",
            crate::error::report(&cluster::kube_error("GET /version", e).into())
        )),
        Ok(Ok(body)) => Ok(body),
    }
}

fn via_url(url: &str, ca_pem: &[u8]) -> Result<String, String> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(ca_pem) {
        if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
            certs.push(c);
        }
    }
    let roots = if certs.is_empty() {
        ureq::tls::RootCerts::PlatformVerifier
    } else {
        ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs))
    };
    let tls = ureq::tls::TlsConfig::builder().root_certs(roots).build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(TIMEOUT))
        .user_agent(concat!("kubectl-gitops/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| format!("{url}: {e}"))?;
    response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("{url}: {e}"))
}

/// Asks the cluster where the guard is and the guard which version it runs.
pub async fn guard(cluster: &mut Cluster) -> Guard {
    match reach(cluster).await {
        Ok((build, via)) => Guard::Reached { build, via },
        Err(why) => Guard::NotReached { why },
    }
}

async fn reach(cluster: &mut Cluster) -> Result<(Build, String), String> {
    let report = |e: Error| e.report();
    tokio::time::timeout(TIMEOUT, cluster.discover())
        .await
        .map_err(|_| {
            format!(
                "the API server did not answer within {}s; check --kubeconfig, $KUBECONFIG and --context",
                TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| report(e.into()))?;
    let group = "admissionregistration.k8s.io";
    let kind = "ValidatingWebhookConfiguration";
    let r = cluster
        .resource_for(group, kind)
        .cloned()
        .ok_or_else(|| format!("the cluster does not serve {kind}s ({group})"))?;
    let configs = cluster
        .list(&r, None, None)
        .await
        .map_err(|e| report(e.into()))?;
    let endpoint = endpoint(&configs)?;
    let via = endpoint.describe();
    let body = match &endpoint {
        Endpoint::Service {
            namespace,
            name,
            port,
        } => via_service(cluster, namespace, name, *port).await?,
        Endpoint::Url { url, ca_pem } => {
            let (url, ca_pem) = (url.clone(), ca_pem.clone());
            tokio::task::spawn_blocking(move || via_url(&url, &ca_pem))
                .await
                .map_err(|e| format!("asking {via}: {e}"))??
        }
    };
    Ok((parse_build(&body, &via)?, via))
}

/// The lines `version` prints.
pub fn text(client: &Build, guard: Option<&Guard>) -> String {
    let mut out = format!("kubectl-gitops {}\n", client.describe());
    match guard {
        None => {}
        Some(Guard::Reached { build, via }) => {
            out.push_str(&format!(
                "guard: gitops-guard-webhook {} via {via}\n",
                build.describe()
            ));
        }
        Some(Guard::NotReached { why }) => {
            out.push_str(&format!("guard: not reachable ({why})\n"));
        }
    }
    out
}

/// Runs `version`: always `Ok(true)` once the client's version is printed.
pub fn run(global: &Global, args: &VersionArgs) -> Result<bool, Error> {
    let client = Build::this();
    let guard = if args.client {
        None
    } else {
        let rt = crate::session::runtime()?;
        Some(rt.block_on(async {
            match cluster::connect(global.kubeconfig.as_deref(), global.context.as_deref()).await {
                Ok(mut c) => guard(&mut c).await,
                Err(e) => Guard::NotReached {
                    why: Error::from(e).report(),
                },
            }
        }))
    };
    let out = match args.output {
        VersionFormat::Text => text(&client, guard.as_ref()),
        VersionFormat::Json => {
            let mut v = serde_json::json!({ "client": client });
            if let Some(g) = &guard {
                v["guard"] = serde_json::to_value(g).map_err(|e| Error::Output(e.into()))?;
            }
            serde_json::to_string_pretty(&v).map_err(|e| Error::Output(e.into()))? + "\n"
        }
    };
    use std::io::Write;
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| Error::Output(e.into()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(client: Value) -> Value {
        json!({"metadata": {"name": "gitops-guard"},
               "webhooks": [{"name": WEBHOOK_NAME, "clientConfig": client}]})
    }

    #[test]
    fn finds_the_guard_behind_a_service_or_a_url() {
        let other = json!({"metadata": {"name": "x"}, "webhooks": [{"name": "other.example.com",
            "clientConfig": {"url": "https://10.0.0.1/"}}]});
        let svc = config(
            json!({"service": {"namespace": "gitops-guard", "name": "gg", "path": "/validate"}}),
        );
        assert_eq!(
            endpoint(&[other.clone(), svc]).unwrap(),
            Endpoint::Service {
                namespace: "gitops-guard".into(),
                name: "gg".into(),
                port: 443
            }
        );
        let url = config(json!({"url": "https://127.0.0.1:8443/validate?x=1", "caBundle": "LS0t"}));
        assert_eq!(
            endpoint(&[url]).unwrap(),
            Endpoint::Url {
                url: "https://127.0.0.1:8443/version".into(),
                ca_pem: b"---".to_vec()
            }
        );
        let why = endpoint(&[other]).unwrap_err();
        assert!(why.contains("is the guard installed"), "{why}");
    }

    #[test]
    fn says_why_the_guard_was_not_reached() {
        let client = Build {
            version: "1.2.3".into(),
            commit: Some("0123456789abcdef0123".into()),
        };
        let out = text(
            &client,
            Some(&Guard::NotReached {
                why: "no endpoints".into(),
            }),
        );
        assert_eq!(
            out,
            "kubectl-gitops 1.2.3 (commit 0123456789ab)\nguard: not reachable (no endpoints)\n"
        );
        let json = serde_json::to_value(Guard::Reached {
            build: client.clone(),
            via: "service a/b:443".into(),
        })
        .unwrap();
        assert_eq!(json["version"], "1.2.3");
        assert_eq!(json["via"], "service a/b:443");
        let json = serde_json::to_value(Guard::NotReached { why: "x".into() }).unwrap();
        assert_eq!(json, json!({"notReachable": "x"}));
    }
}
