//! `kubectl gitops doctor`: the ways around the guard in this cluster, and how to close them.
//!
//! Reads only (get/list, SelfSubjectAccessReviews for what the caller may read) and prints
//! findings, each `ok`, `warn` or `fail`, with its subject, why it matters and the fix:
//! - `guard`: the guard's ValidatingWebhookConfigurations (webhook `guard.gitops-guard.dev`, or
//!   labelled `app.kubernetes.io/part-of=gitops-guard`), their failurePolicy, timeoutSeconds,
//!   namespace exclusions resting on a label a person can change, the Service they call and its
//!   endpoints, that the `/scale` of every kind with one is routed, the guard's replicas and
//!   PodDisruptionBudget ([`guard`]);
//! - `become-agent`: who can act as an identity the guard trusts (impersonate it, run a Pod as it,
//!   read or mint its token) ([`access`]);
//! - `switch-off`: who can change or delete the guard's webhook configurations, Deployment,
//!   Service, Secret, ConfigMap or namespace, or create a mutating webhook ([`access`]);
//! - `guard` also: a dry run on a managed object that the guard must answer ([`answer`]), and the
//!   CA's and serving certificate's expiry ([`certificate`]);
//! - `coverage`: Argo CD label tracking, Flux's `--default-service-account` and untrusted field
//!   managers of managed objects, against the guard's config ([`coverage`]);
//! - `access`: checks that could not run for lack of rights.
//!
//! RBAC is evaluated from the roles and bindings themselves ([`rbac`]), aggregated ClusterRoles
//! included.

pub mod access;
pub mod answer;
pub mod certificate;
pub mod coverage;
pub mod guard;
pub mod rbac;
pub mod selectors;

use std::io::Write;

use clap::Args;
use gitops_guard_core::custody;
use gitops_guard_core::owner::{HELM_NAME, HELM_NAMESPACE, KUSTOMIZE_NAME, KUSTOMIZE_NAMESPACE};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::cluster::Cluster;
use crate::output::{self, Table};
use crate::session::{Global, Session};

/// `doctor` arguments.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Format,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warn,
    Fail,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Ok => "ok",
            Severity::Warn => "warn",
            Severity::Fail => "fail",
        })
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// `guard`, `become-agent`, `switch-off` or `access`.
    pub check: &'static str,
    /// What it is about: `User mallory`, `ValidatingWebhookConfiguration gitops-guard-custody`.
    pub subject: String,
    /// What was found.
    pub finding: String,
    /// Why it matters, in one line.
    pub why: String,
    /// A command or YAML snippet that closes it (empty for `ok`).
    pub fix: String,
}

impl Finding {
    pub fn new(
        severity: Severity,
        check: &'static str,
        subject: impl Into<String>,
        finding: impl Into<String>,
        why: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            severity,
            check,
            subject: subject.into(),
            finding: finding.into(),
            why: why.into(),
            fix: fix.into(),
        }
    }
}

/// Whether `doctor` exits 0: no finding is `fail`.
pub fn passes(findings: &[Finding]) -> bool {
    findings.iter().all(|f| f.severity != Severity::Fail)
}

/// Output formats of `doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Prints the findings: a table, or a JSON/YAML list.
pub fn print(findings: &[Finding], format: Format, out: &mut dyn Write) -> Result<(), Error> {
    match format {
        Format::Json => output::json(out, &findings),
        Format::Yaml => output::yaml(out, &findings),
        Format::Table => {
            let mut table = Table::new(&["STATUS", "CHECK", "SUBJECT", "FINDING", "WHY", "FIX"]);
            for f in findings {
                table.push(vec![
                    f.severity.to_string(),
                    f.check.to_string(),
                    f.subject.clone(),
                    f.finding.clone(),
                    f.why.clone(),
                    f.fix.clone(),
                ]);
            }
            output::text(out, &table.render())
        }
    }
}

/// What the caller may do, from a SelfSubjectAccessReview (`None`: the review itself failed).
async fn can_i(
    cluster: &Cluster,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> Option<bool> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: namespace.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
    api.create(&PostParams::default(), &review)
        .await
        .ok()
        .and_then(|r| r.status.map(|s| s.allowed))
}

/// Which of `needs` (verb, group, resource) the caller may not do in all namespaces, as a finding
/// that says `check` did not run; `None` when all are allowed, or the API server did not answer
/// the review (a webhook that is down may refuse it: the check is tried, and says its errors).
async fn could_not_run(
    cluster: &Cluster,
    check: &'static str,
    needs: &[(&str, &str, &str)],
) -> Option<Finding> {
    let mut missing = Vec::new();
    for (verb, group, resource) in needs {
        if can_i(cluster, verb, group, resource, None).await == Some(false) {
            let g = if group.is_empty() {
                String::new()
            } else {
                format!(".{group}")
            };
            missing.push(format!("{verb} {resource}{g}"));
        }
    }
    (!missing.is_empty()).then(|| {
        Finding::new(
            Severity::Warn,
            "access",
            format!("check {check}"),
            format!("not run: you may not {} (in all namespaces)", missing.join(", ")),
            "what this check looks for is unknown, not absent",
            format!(
                "run doctor as someone who may (kubectl auth can-i {} -A), e.g. with a ClusterRole granting get/list on them",
                missing.first().map(String::as_str).unwrap_or_default()
            ),
        )
    })
}

async fn list_all(cluster: &Cluster, group: &str, kind: &str) -> Result<Vec<Value>, Error> {
    let Some(r) = cluster.resource_for(group, kind).cloned() else {
        return Err(crate::cluster::Error::Refused {
            action: format!("listing {kind}"),
            message: format!("the cluster does not serve {kind} ({group})"),
        }
        .into());
    };
    Ok(cluster.list(&r, None, None).await?)
}

async fn get_one(
    cluster: &Cluster,
    group: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, Error> {
    let Some(r) = cluster.resource_for(group, kind).cloned() else {
        return Ok(None);
    };
    Ok(cluster.get(&r, Some(namespace), name).await?)
}

/// The server's minor version from /version (`20` of 1.20, `20+` read as 20).
async fn server_minor(cluster: &Cluster) -> Option<u32> {
    let info = cluster.client.apiserver_version().await.ok()?;
    if info.major.trim_end_matches('+') != "1" {
        return None;
    }
    let digits: String = info
        .minor
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Every object of these kinds (group, kind) the cluster serves; a kind that cannot be listed is
/// said as `check` not having run.
async fn list_kinds(
    cluster: &Cluster,
    kinds: &[(&str, &str)],
    check: &str,
    findings: &mut Vec<Finding>,
) -> Vec<Value> {
    let mut out = Vec::new();
    for (group, kind) in kinds {
        let Some(r) = cluster.resource_for(group, kind).cloned() else {
            continue;
        };
        match cluster.list(&r, None, None).await {
            Ok(objects) => out.extend(objects),
            Err(e) => findings.push(Finding::new(
                Severity::Warn,
                "access",
                format!("check {check}"),
                format!("not run for {kind}s: {}", crate::error::chain(&e)),
                "what it looks for is unknown, not absent",
                format!("kubectl auth can-i list {} -A", r.api.plural),
            )),
        }
    }
    out
}

/// `Kind.group` → the resource the cluster serves for it.
fn served(cluster: &Cluster, kind_dot_group: &str) -> Option<guard::Served> {
    let (kind, group) = kind_dot_group
        .split_once('.')
        .unwrap_or((kind_dot_group, ""));
    let r = cluster.resource_for(group, kind)?;
    Some(guard::Served {
        group: r.api.group.clone(),
        version: r.api.version.clone(),
        plural: r.api.plural.clone(),
        namespaced: r.namespaced,
    })
}

/// The guard's config from its ConfigMap (`data["config.yaml"]`, as the chart writes it).
pub fn config_from_configmap(cm: &Value) -> Result<gitops_guard_core::Config, String> {
    let text = cm
        .pointer("/data/config.yaml")
        .and_then(Value::as_str)
        .ok_or("it has no config.yaml")?;
    gitops_guard_core::Config::from_yaml(text).map_err(|e| e.to_string())
}

/// The config the checks trust: `given` (from `--guard-config`), else the guard's ConfigMap
/// `<fullname>-config` when it can be read, else the defaults (with a finding saying which).
async fn effective_config(
    cluster: &Cluster,
    given: Option<&gitops_guard_core::Config>,
    location: Option<&guard::Location>,
    findings: &mut Vec<Finding>,
) -> gitops_guard_core::Config {
    if let Some(c) = given {
        return c.clone();
    }
    let Some(loc) = location else {
        return gitops_guard_core::Config::default();
    };
    let name = format!("{}-config", loc.fullname);
    let subject = format!("ConfigMap {}/{name}", loc.namespace);
    let fallback = "the built-in defaults are assumed for the agents and Kubernetes' identities";
    let fix = "kubectl gitops doctor --guard-config FILE  # the guard's config file";
    match get_one(cluster, "", "ConfigMap", &loc.namespace, &name).await {
        Ok(Some(cm)) => match config_from_configmap(&cm) {
            Ok(config) => {
                findings.push(Finding::new(
                    Severity::Ok,
                    "guard",
                    subject,
                    "the guard's config: its agents and system identities are the trusted ones below",
                    "the checks below trust whom the guard trusts",
                    "",
                ));
                config
            }
            Err(e) => {
                findings.push(Finding::new(
                    Severity::Warn,
                    "guard",
                    subject,
                    format!("not read: {e}"),
                    fallback,
                    fix,
                ));
                gitops_guard_core::Config::default()
            }
        },
        Ok(None) => {
            findings.push(Finding::new(
                Severity::Warn,
                "guard",
                subject,
                "not found",
                fallback,
                fix,
            ));
            gitops_guard_core::Config::default()
        }
        Err(e) => {
            findings.push(Finding::new(
                Severity::Warn,
                "guard",
                subject,
                format!("not read: {}", e.report()),
                fallback,
                fix,
            ));
            gitops_guard_core::Config::default()
        }
    }
}

/// Runs every check against the cluster. `given`: the config from `--guard-config`, if any
/// (else the guard's own ConfigMap is read).
pub async fn diagnose(
    cluster: &Cluster,
    given: Option<&gitops_guard_core::Config>,
) -> Result<Vec<Finding>, Error> {
    let mut findings = Vec::new();
    let minor = server_minor(cluster).await;
    // The owners: Flux's (tenant accounts, managed kinds) and Argo CD's (managed kinds).
    let mut owner_findings = Vec::new();
    let flux_owners = list_kinds(
        cluster,
        &[
            (custody::KUSTOMIZE, "Kustomization"),
            (custody::HELM, "HelmRelease"),
        ],
        "guard (managed kinds), become-agent (tenants)",
        &mut owner_findings,
    )
    .await;
    let applications = list_kinds(
        cluster,
        &[(custody::ARGO, "Application")],
        "guard (managed kinds)",
        &mut owner_findings,
    )
    .await;

    // The guard is there.
    let vwc_group = "admissionregistration.k8s.io";
    let mut location = None;
    let mut guard_configs = Vec::new();
    let mut relabel = None;
    let mut configs_read = Vec::new();
    if let Some(f) = could_not_run(
        cluster,
        "guard",
        &[("list", vwc_group, "validatingwebhookconfigurations")],
    )
    .await
    {
        findings.push(f);
    } else {
        let all = list_all(cluster, vwc_group, "ValidatingWebhookConfiguration").await?;
        let configs = guard::guard_configurations(&all);
        location = guard::location(&configs);
        let mut services = Vec::new();
        for (ns, name) in guard::services(&configs) {
            let service = get_one(cluster, "", "Service", &ns, &name).await;
            let endpoints = get_one(cluster, "", "Endpoints", &ns, &name).await;
            services.push(guard::ServiceState {
                namespace: ns,
                name,
                service: service.map_err(|e| e.report()),
                endpoints: endpoints.map_err(|e| e.report()),
            });
        }
        findings.extend(guard::check(&configs, minor, &services));
        relabel = guard::label_exclusion(&configs, minor);
        let scalable: Vec<guard::Scalable> = cluster
            .listable(false)
            .into_iter()
            .filter(|r| r.scalable)
            .map(|r| guard::Scalable {
                group: r.api.group.clone(),
                version: r.api.version.clone(),
                plural: r.api.plural.clone(),
                namespaced: r.namespaced,
            })
            .collect();
        let namespace = location
            .as_ref()
            .map_or("gitops-guard", |l| l.namespace.as_str());
        findings.extend(guard::scale_coverage(&configs, &scalable, namespace));
        findings.extend(guard::status_coverage(
            &configs,
            &guard::protected_statuses(|k| served(cluster, k)),
            namespace,
        ));
        let owners: Vec<Value> = flux_owners.iter().chain(&applications).cloned().collect();
        findings.extend(guard::kind_coverage(
            &configs,
            &guard::managed_kinds(&owners),
            |k| served(cluster, k),
        ));
        if let Some(loc) = &location {
            let pdbs = match cluster
                .resource_for("policy", "PodDisruptionBudget")
                .cloned()
            {
                Some(r) => cluster
                    .list_lenient(&r, Some(&loc.namespace), None)
                    .await
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            match get_one(cluster, "apps", "Deployment", &loc.namespace, &loc.fullname).await {
                Ok(deployment) => {
                    findings.extend(guard::availability(loc, deployment.as_ref(), &pdbs))
                }
                Err(e) => findings.push(Finding::new(
                    Severity::Warn,
                    "guard",
                    format!("Deployment {}/{}", loc.namespace, loc.fullname),
                    format!("not read: {}", e.report()),
                    "replicas and disruption budget are unknown",
                    format!("kubectl auth can-i get deployments -n {}", loc.namespace),
                )),
            }
        }
        guard_configs = configs
            .iter()
            .filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        configs_read = configs;
    }

    findings.extend(owner_findings);
    let config = &effective_config(cluster, given, location.as_ref(), &mut findings).await;

    // Labels a person can change that take writes past the guard.
    let mut ownership: std::collections::BTreeSet<String> = [
        KUSTOMIZE_NAME,
        KUSTOMIZE_NAMESPACE,
        HELM_NAME,
        HELM_NAMESPACE,
    ]
    .map(String::from)
    .into();
    if config.argocd.label_tracking {
        ownership.insert(config.argocd.tracking_label.clone());
    }
    let targets: Vec<guard::Served> = cluster
        .listable(false)
        .into_iter()
        .map(|r| guard::Served {
            group: r.api.group.clone(),
            version: r.api.version.clone(),
            plural: r.api.plural.clone(),
            namespaced: r.namespaced,
        })
        .collect();
    let (holes, too_many) = selectors::holes(&configs_read, &targets, minor, &ownership);
    let relabel = relabel.max(selectors::relabel_severity(&holes));
    let mut relabellers = None;
    let now = jiff::Timestamp::now().as_second();
    findings.extend(certificates(cluster, &configs_read, location.as_ref(), now).await);

    // The guard answers, and sees what it should.
    let owners: Vec<Value> = flux_owners.iter().chain(&applications).cloned().collect();
    let managed = read_objects(cluster, &coverage::managed_objects(&owners)).await;
    if !configs_read.is_empty() {
        findings.push(dry_run(cluster, &managed).await);
    }
    let guard_ns = location
        .as_ref()
        .map_or("gitops-guard", |l| l.namespace.as_str());
    if let Ok(Some(cm)) = get_one(
        cluster,
        "",
        "ConfigMap",
        &config.argocd.namespace,
        "argocd-cm",
    )
    .await
    {
        findings.extend(coverage::label_tracking(&cm, config, guard_ns));
    }
    let mut flux_deployments = std::collections::BTreeMap::new();
    for name in ["kustomize-controller", "helm-controller"] {
        if let Ok(Some(d)) =
            get_one(cluster, "apps", "Deployment", &config.flux.namespace, name).await
        {
            flux_deployments.insert(name.to_string(), d);
        }
    }
    findings.extend(coverage::flux_default_account(
        &flux_deployments,
        &flux_owners,
        config,
        guard_ns,
    ));
    if !managed.is_empty() {
        findings.extend(coverage::field_managers(&managed, config, now, guard_ns));
    }

    // Who can become the agent, and who can switch the guard off.
    let rbac_group = "rbac.authorization.k8s.io";
    let needs = [
        ("list", rbac_group, "clusterroles"),
        ("list", rbac_group, "clusterrolebindings"),
        ("list", rbac_group, "roles"),
        ("list", rbac_group, "rolebindings"),
    ];
    if let Some(f) = could_not_run(cluster, "become-agent, switch-off", &needs).await {
        findings.push(f);
    } else {
        let mut policy = rbac::Policy::default();
        for kind in ["ClusterRole", "Role"] {
            for obj in list_all(cluster, rbac_group, kind).await? {
                policy.roles.push(rbac::Role::from_json(&obj));
            }
        }
        for kind in ["ClusterRoleBinding", "RoleBinding"] {
            for obj in list_all(cluster, rbac_group, kind).await? {
                policy.bindings.push(rbac::Binding::from_json(&obj));
            }
        }
        findings.extend(access::become_agent(&policy, config));
        let mut tenants =
            access::tenant_accounts(&flux_owners, &config.flux.default_service_account);
        let projects = list_kinds(
            cluster,
            &[(custody::ARGO, "AppProject")],
            "become-agent (destination accounts)",
            &mut findings,
        )
        .await;
        tenants.extend(access::destination_accounts(&applications, &projects));
        findings.extend(access::tenants(&policy, config, &tenants, minor));
        findings.extend(access::switch_off(
            &policy,
            config,
            &guard_configs,
            location.as_ref(),
            relabel,
        ));
        relabellers = Some(access::who_may(
            &policy,
            config,
            &[
                rbac::Request::new("update", "", "namespaces"),
                rbac::Request::new("patch", "", "namespaces"),
            ],
        ));
    }
    findings.extend(selectors::findings(
        &holes,
        &too_many,
        relabellers.as_deref(),
    ));
    Ok(findings)
}

/// The managed objects as they are live (those that can be read; gone ones are left out).
async fn read_objects(
    cluster: &Cluster,
    objects: &[coverage::ObjectRef],
) -> Vec<(coverage::ObjectRef, Value)> {
    let mut out = Vec::new();
    for o in objects {
        let Some(r) = cluster.resource_for(&o.group, &o.kind).cloned() else {
            continue;
        };
        let ns = (r.namespaced && !o.namespace.is_empty()).then_some(o.namespace.as_str());
        if let Ok(Some(live)) = cluster.get(&r, ns, &o.name).await {
            out.push((o.clone(), live));
        }
    }
    out
}

/// The certificates: the CA in the guard's webhook configurations and the serving certificate
/// in its `<fullname>-tls` Secret (when the caller may read it).
async fn certificates(
    cluster: &Cluster,
    configs: &[Value],
    location: Option<&guard::Location>,
    now: i64,
) -> Vec<Finding> {
    let (ns, fullname) = location.map_or(("gitops-guard", "gitops-guard"), |l| {
        (l.namespace.as_str(), l.fullname.as_str())
    });
    let fix = certificate::renew_fix(ns, fullname);
    let mut out = certificate::ca_bundles(configs, now, &fix);
    let Some(loc) = location else {
        return out;
    };
    let name = format!("{}-tls", loc.fullname);
    let subject = format!("Secret {}/{name}", loc.namespace);
    if can_i(cluster, "get", "", "secrets", Some(&loc.namespace)).await == Some(false) {
        out.push(Finding::new(
            Severity::Warn,
            "access",
            "check guard (serving certificate)",
            format!("not run: you may not get secrets in {}", loc.namespace),
            "whether the guard's serving certificate is still valid is unknown",
            format!("kubectl auth can-i get secret/{name} -n {}", loc.namespace),
        ));
        return out;
    }
    if let Ok(Some(secret)) = get_one(cluster, "", "Secret", &loc.namespace, &name).await {
        out.extend(certificate::serving(&secret, &subject, now, &fix));
    }
    out
}

/// Check `guard`, answering: a server-side dry run of an annotation on the first managed object
/// the caller may patch (see [`answer`]).
async fn dry_run(cluster: &Cluster, managed: &[(coverage::ObjectRef, Value)]) -> Finding {
    let not_run = |finding: String, fix: String| {
        Finding::new(
            Severity::Warn,
            "access",
            "check guard (answering)",
            finding,
            "whether the API server really calls the guard is unknown",
            fix,
        )
    };
    let Some((object, r)) = managed.iter().find_map(|(o, _)| {
        cluster
            .resource_for(&o.group, &o.kind)
            .cloned()
            .map(|r| (o, r))
    }) else {
        return not_run(
            "not run: no managed object to try a dry run on (no owner lists one)".into(),
            "kubectl get kustomizations,helmreleases,applications -A".into(),
        );
    };
    let ns = (r.namespaced && !object.namespace.is_empty()).then_some(object.namespace.as_str());
    let plural = if r.api.group.is_empty() {
        r.api.plural.clone()
    } else {
        format!("{}.{}", r.api.plural, r.api.group)
    };
    let ns_flag = ns.map(|n| format!(" -n {n}")).unwrap_or_default();
    let patch = format!(
        "kubectl annotate {plural} {}{ns_flag} {}=dry-run --dry-run=server",
        object.name,
        answer::PROBE_ANNOTATION
    );
    if can_i(cluster, "patch", &r.api.group, &r.api.plural, ns).await == Some(false) {
        return not_run(
            format!("not run: you may not patch {}", object.describe()),
            format!("kubectl auth can-i patch {plural}/{}{ns_flag}", object.name),
        );
    }
    let base = if r.api.group.is_empty() {
        format!("/api/{}", r.api.version)
    } else {
        format!("/apis/{}/{}", r.api.group, r.api.version)
    };
    let path = match ns {
        Some(n) => format!("{base}/namespaces/{n}/{}", r.api.plural),
        None => format!("{base}/{}", r.api.plural),
    };
    let probe =
        serde_json::json!({"metadata": {"annotations": {answer::PROBE_ANNOTATION: "dry-run"}}});
    let params = kube::api::PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let request = match kube::core::Request::new(path).patch(
        &object.name,
        &params,
        &kube::api::Patch::Merge(&probe),
    ) {
        Ok(r) => r,
        Err(e) => return not_run(format!("not run: {e}"), patch),
    };
    let response = match cluster
        .client
        .send(request.map(kube::client::Body::from))
        .await
    {
        Ok(r) => r,
        Err(e) => return not_run(format!("not run: {e}"), patch),
    };
    let status = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|w| answer::warning_text(&String::from_utf8_lossy(w.as_bytes())))
        .collect();
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .unwrap_or_default();
    let message = if (200..300).contains(&status) {
        String::new()
    } else {
        serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned())
    };
    answer::finding(
        &object.describe(),
        &answer::Answer {
            status,
            warnings,
            message,
        },
        &patch,
    )
}

/// `kubectl gitops doctor`.
pub fn run(global: &Global, args: &DoctorArgs) -> Result<bool, Error> {
    let session = Session::open(global)?;
    let findings = session.rt.block_on(diagnose(
        &session.cluster,
        global.guard_config.is_some().then_some(&session.config),
    ))?;
    print(&findings, args.output, &mut std::io::stdout().lock())?;
    Ok(passes(&findings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(severity: Severity) -> Finding {
        Finding::new(severity, "guard", "s", "f", "w", "x")
    }

    #[test]
    fn reads_the_config_the_chart_writes() {
        let cm = serde_json::json!({"data": {"config.yaml": "agents:\n  users: [ci-deployer]\n"}});
        assert_eq!(
            config_from_configmap(&cm).unwrap().agents.users,
            vec!["ci-deployer".to_string()]
        );
        assert!(config_from_configmap(&serde_json::json!({"data": {}})).is_err());
        let bad = serde_json::json!({"data": {"config.yaml": "nonsense: 1\n"}});
        assert!(config_from_configmap(&bad).is_err());
    }

    #[test]
    fn fails_only_on_fail() {
        assert!(passes(&[]));
        assert!(passes(&[finding(Severity::Ok), finding(Severity::Warn)]));
        assert!(!passes(&[finding(Severity::Ok), finding(Severity::Fail)]));
    }

    #[test]
    fn prints_a_table_and_a_list() {
        let findings = vec![Finding::new(
            Severity::Fail,
            "become-agent",
            "User mallory",
            "can impersonate",
            "why",
            "kubectl delete clusterrolebinding m",
        )];
        let mut t = Vec::new();
        print(&findings, Format::Table, &mut t).unwrap();
        assert_eq!(
            String::from_utf8(t).unwrap(),
            "STATUS   CHECK          SUBJECT        FINDING           WHY   FIX\n\
             fail     become-agent   User mallory   can impersonate   why   kubectl delete clusterrolebinding m\n"
        );
        let mut j = Vec::new();
        print(&findings, Format::Json, &mut j).unwrap();
        let v: Value = serde_json::from_slice(&j).unwrap();
        assert_eq!(v[0]["severity"], "fail");
        assert_eq!(v[0]["subject"], "User mallory");
        let mut y = Vec::new();
        print(&findings, Format::Yaml, &mut y).unwrap();
        assert!(
            String::from_utf8(y)
                .unwrap()
                .starts_with("- severity: fail\n")
        );
    }
}
