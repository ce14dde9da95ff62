//! Check `coverage`: what the guard does not see as managed, or would deny although an agent or
//! a controller does it. Argo CD tracking by label while the guard's config has that off; Flux's
//! `--default-service-account` the config does not name (or names while Flux does not use it);
//! controllers writing to managed objects that the guard does not trust. Pure: the caller reads
//! the objects.

use std::collections::BTreeMap;

use gitops_guard_core::Config;
use serde_json::Value;

use super::{Finding, Severity};

const CHECK: &str = "coverage";
/// Field managers count when they wrote this recently.
pub const RECENT_DAYS: i64 = 30;
/// At most this many managed objects are read for their field managers.
pub const MAX_OBJECTS: usize = 300;

fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn helm_upgrade(guard_namespace: &str) -> String {
    format!("helm upgrade gitops-guard charts/gitops-guard -n {guard_namespace} --reuse-values")
}

/// Argo CD's `argocd-cm` (`cm`, in the config's Argo CD namespace) against the guard's config:
/// tracking by label (`application.resourceTrackingMethod: label`, or its instance label key)
/// while the config's `argocd.labelTracking` is off, or on with another label.
pub fn label_tracking(cm: &Value, config: &Config, guard_namespace: &str) -> Option<Finding> {
    let method = str_at(cm, "/data/application.resourceTrackingMethod").unwrap_or("annotation");
    let key = str_at(cm, "/data/application.instanceLabelKey")
        .filter(|k| !k.is_empty())
        .unwrap_or("app.kubernetes.io/instance");
    let subject = format!("ConfigMap {}/argocd-cm", config.argocd.namespace);
    if method != "label" {
        return Some(Finding::new(
            Severity::Ok,
            CHECK,
            subject,
            format!("Argo CD tracks its objects by annotation ({method})"),
            "the guard sees every object Argo CD applies as managed",
            "",
        ));
    }
    if !config.argocd.label_tracking {
        return Some(Finding::new(
            Severity::Fail,
            CHECK,
            subject,
            format!(
                "Argo CD tracks its objects by label {key} (application.resourceTrackingMethod: label), and the guard's config has argocd.labelTracking off"
            ),
            "the objects Argo CD applies carry no tracking annotation: the guard does not see them as managed, and anyone may change them",
            format!(
                "{} --set config.argocd.labelTracking=true --set config.argocd.trackingLabel={key}  # or Argo CD: application.resourceTrackingMethod: annotation",
                helm_upgrade(guard_namespace)
            ),
        ));
    }
    if config.argocd.tracking_label != key {
        return Some(Finding::new(
            Severity::Fail,
            CHECK,
            subject,
            format!(
                "Argo CD tracks its objects by label {key}, the guard's config by {}",
                config.argocd.tracking_label
            ),
            "the guard looks for ownership under another label than Argo CD writes: it does not see Argo CD's objects as managed",
            format!(
                "{} --set config.argocd.trackingLabel={key}",
                helm_upgrade(guard_namespace)
            ),
        ));
    }
    Some(Finding::new(
        Severity::Ok,
        CHECK,
        subject,
        format!("Argo CD tracks its objects by label {key}, as the guard's config says"),
        "the guard sees every object Argo CD applies as managed",
        "",
    ))
}

/// A controller's `--default-service-account` from its Deployment's first container's args
/// (`--default-service-account=X` or `--default-service-account X`); `None`: not set.
pub fn default_service_account(deployment: &Value) -> Option<String> {
    let args: Vec<&str> = deployment
        .pointer("/spec/template/spec/containers/0/args")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let flag = "--default-service-account";
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
            return Some(v.to_string()).filter(|v| !v.is_empty());
        }
        if *a == flag {
            return it.next().map(|v| v.to_string()).filter(|v| !v.is_empty());
        }
    }
    None
}

/// Flux's controllers that impersonate tenants (kustomize-controller, helm-controller), as read
/// from their Deployments (`deployments`: name → Deployment), against the config's
/// `flux.defaultServiceAccount`; `owners`: the Kustomizations and HelmReleases (those without a
/// `serviceAccountName` of their own apply as the default).
pub fn flux_default_account(
    deployments: &BTreeMap<String, Value>,
    owners: &[Value],
    config: &Config,
    guard_namespace: &str,
) -> Vec<Finding> {
    let without_own: Vec<String> = owners
        .iter()
        .filter(|o| o.pointer("/spec/kubeConfig").is_none())
        .filter(|o| {
            str_at(o, "/spec/serviceAccountName")
                .filter(|s| !s.is_empty())
                .is_none()
        })
        .filter_map(|o| {
            Some(format!(
                "{} {}/{}",
                str_at(o, "/kind")?,
                str_at(o, "/metadata/namespace")?,
                str_at(o, "/metadata/name")?
            ))
        })
        .collect();
    let configured = config.flux.default_service_account.as_str();
    let mut out = Vec::new();
    for (name, deployment) in deployments {
        let subject = format!("Deployment {}/{name}", config.flux.namespace);
        let actual = default_service_account(deployment);
        let owners = |n: usize| match (without_own.len(), without_own.first()) {
            (0, _) | (_, None) => "no owner without a serviceAccountName yet".to_string(),
            (1, Some(o)) => o.clone(),
            (_, Some(o)) => format!("{o} and {} more", n - 1),
        };
        let set = |v: &str| {
            format!(
                "{} --set config.flux.defaultServiceAccount={v}",
                helm_upgrade(guard_namespace)
            )
        };
        match actual.as_deref() {
            Some(a) if a == configured => out.push(Finding::new(
                Severity::Ok,
                CHECK,
                subject,
                format!("--default-service-account={a}, as the guard's config says"),
                "the guard takes the tenant account Flux acts as for the agent of that owner",
                "",
            )),
            None if configured.is_empty() => out.push(Finding::new(
                Severity::Ok,
                CHECK,
                subject,
                "no --default-service-account, and none in the guard's config",
                "owners without a serviceAccountName apply as the controller itself, which the guard trusts",
                "",
            )),
            Some(a) => out.push(Finding::new(
                Severity::Fail,
                CHECK,
                subject,
                format!(
                    "--default-service-account={a}, but the guard's config has flux.defaultServiceAccount {}: {}",
                    if configured.is_empty() { "empty".to_string() } else { configured.to_string() },
                    owners(without_own.len())
                ),
                format!(
                    "owners without a serviceAccountName apply as <their namespace>/{a}, which the guard does not take for Flux: their applies are denied"
                ),
                set(a),
            )),
            None => out.push(Finding::new(
                Severity::Fail,
                CHECK,
                subject,
                format!(
                    "no --default-service-account, but the guard's config has flux.defaultServiceAccount {configured}: {}",
                    owners(without_own.len())
                ),
                format!(
                    "the guard takes <owner's namespace>/{configured} for Flux: before 1.29 a Pod running as it changes those owners' objects as the agent"
                ),
                set("\"\""),
            )),
        }
    }
    out
}

/// A managed object: what it is called in a finding (`deployment/web in prod`) and how to read
/// it (group, kind, namespace, name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn describe(&self) -> String {
        let kind = self.kind.to_lowercase();
        if self.namespace.is_empty() {
            format!("{kind}/{}", self.name)
        } else {
            format!("{kind}/{} in {}", self.name, self.namespace)
        }
    }
}

/// The objects the owners apply: a Kustomization's or HelmRelease's inventory
/// (`<namespace>_<name>_<group>_<Kind>`), an Application's `status.resources`; at most
/// [`MAX_OBJECTS`], in order.
pub fn managed_objects(owners: &[Value]) -> Vec<ObjectRef> {
    let mut out = Vec::new();
    for o in owners {
        let entries = o
            .pointer("/status/inventory/entries")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for e in entries {
            let Some(id) = e.get("id").and_then(Value::as_str) else {
                continue;
            };
            let parts: Vec<&str> = id.split('_').collect();
            if let [ns, name, group, kind] = parts[..] {
                out.push(ObjectRef {
                    group: group.into(),
                    kind: kind.into(),
                    namespace: ns.into(),
                    name: name.into(),
                });
            }
        }
        let resources = o
            .pointer("/status/resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for r in resources {
            let (Some(kind), Some(name)) = (str_at(r, "/kind"), str_at(r, "/name")) else {
                continue;
            };
            out.push(ObjectRef {
                group: str_at(r, "/group").unwrap_or_default().into(),
                kind: kind.into(),
                namespace: str_at(r, "/namespace").unwrap_or_default().into(),
                name: name.into(),
            });
        }
    }
    out.sort();
    out.dedup();
    out.truncate(MAX_OBJECTS);
    out
}

/// Field managers that are the agents' own or Kubernetes'.
const TRUSTED_MANAGERS: &[&str] = &[
    "kustomize-controller",
    "helm-controller",
    "argocd-controller",
    "argocd-application-controller",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-apiserver",
    "before-first-apply",
];
/// Field managers of people's tools (hand changes: `kubectl gitops exceptions` lists them).
const PEOPLE: &[&str] = &[
    "kubectl",
    "helm",
    "k9s",
    "Mozilla",
    "kustomize",
    "argocd-server",
];

/// Well-known controllers: field manager → their user.
fn known(manager: &str) -> Option<&'static str> {
    Some(match manager {
        "rollouts-controller" | "argo-rollouts" => {
            "system:serviceaccount:argo-rollouts:argo-rollouts"
        }
        "keda" | "keda-operator" => "system:serviceaccount:keda:keda-operator",
        "cainjector" | "cert-manager-cainjector" => {
            "system:serviceaccount:cert-manager:cert-manager-cainjector"
        }
        "cloud-controller-manager" => "system:cloud-controller-manager",
        _ => return None,
    })
}

/// The command that adds the controller's user (when known) to the config's `agents.users`,
/// with those the config lists already. (`workloadControllers` trusts a controller only beneath
/// its kind's objects, never for the objects Git declares.)
fn trust_fix(manager: &str, config: &Config, guard_namespace: &str) -> String {
    let mut users = config.agents.users.clone();
    users.push(known(manager).unwrap_or("<its user>").to_string());
    let command = format!(
        "{} --set 'config.agents.users={{{}}}'",
        helm_upgrade(guard_namespace),
        users.join(",")
    );
    match known(manager) {
        Some(_) => command,
        None => format!(
            "{command}  # <its user>: the username of its writes in the audit log (fieldManager {manager})"
        ),
    }
}

/// Whether the guard trusts a controller by its field manager's name: the agents' and
/// Kubernetes' own managers, and the known controllers whose user the config lists as an agent
/// or as Kubernetes'.
fn trusted_manager(manager: &str, config: &Config) -> bool {
    TRUSTED_MANAGERS.contains(&manager)
        || known(manager).is_some_and(|user| {
            config
                .agents
                .users
                .iter()
                .chain(&config.system.users)
                .any(|u| u == user)
        })
}

fn person(manager: &str) -> bool {
    PEOPLE
        .iter()
        .any(|p| manager == *p || manager.starts_with(&format!("{p}-")))
}

/// Controllers that wrote to managed objects (`objects`, as read) in the last [`RECENT_DAYS`]
/// (`now`: seconds since the epoch) and that the guard does not trust: one `warn` a manager,
/// naming it, the objects and the config key to add. Writes to `/status` are left out (the guard
/// routes the status only of owners and sources).
pub fn field_managers(
    objects: &[(ObjectRef, Value)],
    config: &Config,
    now: i64,
    guard_namespace: &str,
) -> Vec<Finding> {
    let mut writers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (obj, live) in objects {
        let entries = live
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for e in entries {
            let Some(manager) = str_at(e, "/manager") else {
                continue;
            };
            if str_at(e, "/subresource") == Some("status") {
                continue;
            }
            let recent = str_at(e, "/time")
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_some_and(|t| now - t.as_second() <= RECENT_DAYS * 86_400);
            if !recent || person(manager) || trusted_manager(manager, config) {
                continue;
            }
            let list = writers.entry(manager.to_string()).or_default();
            let d = obj.describe();
            if !list.contains(&d) {
                list.push(d);
            }
        }
    }
    if writers.is_empty() {
        return vec![Finding::new(
            Severity::Ok,
            CHECK,
            "field managers",
            format!(
                "no controller the guard does not trust wrote to the {} managed object(s) read in the last {RECENT_DAYS} days",
                objects.len()
            ),
            "the controllers that change managed objects are the agents' and Kubernetes' own, or trusted",
            "",
        )];
    }
    writers
        .into_iter()
        .map(|(manager, objects)| {
            let fix = trust_fix(&manager, config, guard_namespace);
            let shown = match objects.len() {
                0..=2 => objects.join(", "),
                n => format!("{}, {} and {} more", objects[0], objects[1], n - 2),
            };
            Finding::new(
                Severity::Warn,
                CHECK,
                format!("field manager {manager}"),
                format!("writes to managed objects ({shown}) and is not trusted: add its user to agents.users"),
                "the guard takes it for a person: its next change to them is denied (in audit mode, recorded as one)",
                fix,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 2027-01-15T00:00:00Z.
    const NOW: i64 = 1_799_971_200;

    #[test]
    fn argocd_label_tracking_against_the_config() {
        let cm = |data: Value| json!({"data": data});
        let mut on = Config::default();
        on.argocd.label_tracking = true;
        let off = Config::default();
        let label = cm(json!({"application.resourceTrackingMethod": "label"}));
        let cases = [
            (
                cm(json!({})),
                &off,
                Severity::Ok,
                "Argo CD tracks its objects by annotation (annotation)",
            ),
            (
                cm(json!({"application.resourceTrackingMethod": "annotation+label"})),
                &off,
                Severity::Ok,
                "Argo CD tracks its objects by annotation (annotation+label)",
            ),
            (
                label.clone(),
                &off,
                Severity::Fail,
                "Argo CD tracks its objects by label app.kubernetes.io/instance (application.resourceTrackingMethod: label), and the guard's config has argocd.labelTracking off",
            ),
            (
                label,
                &on,
                Severity::Ok,
                "Argo CD tracks its objects by label app.kubernetes.io/instance, as the guard's config says",
            ),
            (
                cm(
                    json!({"application.resourceTrackingMethod": "label", "application.instanceLabelKey": "argocd.argoproj.io/instance"}),
                ),
                &on,
                Severity::Fail,
                "Argo CD tracks its objects by label argocd.argoproj.io/instance, the guard's config by app.kubernetes.io/instance",
            ),
        ];
        for (cm, config, severity, finding) in cases {
            let f = label_tracking(&cm, config, "gg").unwrap();
            assert_eq!((f.severity, f.finding.as_str()), (severity, finding));
            assert_eq!(f.subject, "ConfigMap argocd/argocd-cm");
        }
        let f = label_tracking(
            &cm(json!({"application.resourceTrackingMethod": "label"})),
            &off,
            "gg",
        )
        .unwrap();
        assert_eq!(
            f.fix,
            "helm upgrade gitops-guard charts/gitops-guard -n gg --reuse-values --set config.argocd.labelTracking=true --set config.argocd.trackingLabel=app.kubernetes.io/instance  # or Argo CD: application.resourceTrackingMethod: annotation"
        );
    }

    fn controller(args: Value) -> Value {
        json!({"spec": {"template": {"spec": {"containers": [{"name": "manager", "args": args}]}}}})
    }

    #[test]
    fn flux_default_service_account_against_the_config() {
        assert_eq!(
            default_service_account(&controller(json!([
                "--watch-all-namespaces",
                "--default-service-account=default"
            ]))),
            Some("default".into())
        );
        assert_eq!(
            default_service_account(&controller(json!(["--default-service-account", "flux"]))),
            Some("flux".into())
        );
        assert_eq!(
            default_service_account(&controller(json!(["--log-level=info"]))),
            None
        );

        let owners = [
            json!({"kind": "Kustomization", "metadata": {"namespace": "team-a", "name": "apps"}, "spec": {}}),
            json!({"kind": "Kustomization", "metadata": {"namespace": "team-b", "name": "apps"}, "spec": {"serviceAccountName": "deployer"}}),
        ];
        let deployments =
            |args: Value| BTreeMap::from([("kustomize-controller".to_string(), controller(args))]);
        let mut with_default = Config::default();
        with_default.flux.default_service_account = "default".into();
        let cases = [
            (
                json!([]),
                Config::default(),
                Severity::Ok,
                "no --default-service-account, and none in the guard's config",
            ),
            (
                json!(["--default-service-account=default"]),
                with_default.clone(),
                Severity::Ok,
                "--default-service-account=default, as the guard's config says",
            ),
            (
                json!(["--default-service-account=default"]),
                Config::default(),
                Severity::Fail,
                "--default-service-account=default, but the guard's config has flux.defaultServiceAccount empty: Kustomization team-a/apps",
            ),
            (
                json!([]),
                with_default,
                Severity::Fail,
                "no --default-service-account, but the guard's config has flux.defaultServiceAccount default: Kustomization team-a/apps",
            ),
        ];
        for (args, config, severity, finding) in cases {
            let found = flux_default_account(&deployments(args), &owners, &config, "gg");
            assert_eq!(found.len(), 1);
            assert_eq!(
                (found[0].severity, found[0].finding.as_str()),
                (severity, finding)
            );
            assert_eq!(
                found[0].subject,
                "Deployment flux-system/kustomize-controller"
            );
        }
        let fix = &flux_default_account(
            &deployments(json!(["--default-service-account=default"])),
            &owners,
            &Config::default(),
            "gg",
        )[0]
        .fix;
        assert_eq!(
            fix,
            "helm upgrade gitops-guard charts/gitops-guard -n gg --reuse-values --set config.flux.defaultServiceAccount=default"
        );
        assert!(
            flux_default_account(&BTreeMap::new(), &owners, &Config::default(), "gg").is_empty()
        );
    }

    #[test]
    fn objects_of_inventories_and_applications() {
        let owners = [
            json!({"status": {"inventory": {"entries": [
                {"id": "prod_web_apps_Deployment", "v": "v1"}, {"id": "_prod__Namespace", "v": "v1"}, {"id": "bad", "v": "v1"}]}}}),
            json!({"status": {"resources": [{"group": "apps", "kind": "Deployment", "namespace": "prod", "name": "web"},
                {"kind": "Service", "namespace": "prod", "name": "web"}]}}),
        ];
        let found: Vec<String> = managed_objects(&owners)
            .iter()
            .map(ObjectRef::describe)
            .collect();
        assert_eq!(
            found,
            vec![
                "namespace/prod",
                "service/web in prod",
                "deployment/web in prod"
            ]
        );
    }

    #[test]
    fn untrusted_controllers_writing_to_managed_objects() {
        let web = ObjectRef {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: "prod".into(),
            name: "web".into(),
        };
        let entry = |manager: &str, days_ago: i64, sub: Option<&str>| {
            let t = jiff::Timestamp::from_second(NOW - days_ago * 86_400).unwrap();
            let mut e = json!({"manager": manager, "operation": "Update", "time": t.to_string()});
            if let Some(s) = sub {
                e["subresource"] = json!(s);
            }
            e
        };
        let live = json!({"metadata": {"managedFields": [
            entry("kustomize-controller", 1, None),
            entry("kube-controller-manager", 1, None),
            entry("kubectl-edit", 1, None),
            entry("cainjector", 2, None),
            entry("rollouts-controller", 3, None),
            entry("keda-operator", 3, None),
            entry("acme-operator", 40, None),
            entry("cloud-controller-manager", 1, Some("status")),
            entry("vpa-updater", 5, None),
        ]}});
        let found = field_managers(&[(web.clone(), live)], &Config::default(), NOW, "gg");
        let rows: Vec<(Severity, &str, &str)> = found
            .iter()
            .map(|f| (f.severity, f.subject.as_str(), f.finding.as_str()))
            .collect();
        assert_eq!(
            rows,
            vec![
                (
                    Severity::Warn,
                    "field manager cainjector",
                    "writes to managed objects (deployment/web in prod) and is not trusted: add its user to agents.users"
                ),
                (
                    Severity::Warn,
                    "field manager keda-operator",
                    "writes to managed objects (deployment/web in prod) and is not trusted: add its user to agents.users"
                ),
                (
                    Severity::Warn,
                    "field manager rollouts-controller",
                    "writes to managed objects (deployment/web in prod) and is not trusted: add its user to agents.users"
                ),
                (
                    Severity::Warn,
                    "field manager vpa-updater",
                    "writes to managed objects (deployment/web in prod) and is not trusted: add its user to agents.users"
                ),
            ]
        );
        assert_eq!(
            found[0].fix,
            "helm upgrade gitops-guard charts/gitops-guard -n gg --reuse-values --set 'config.agents.users={system:serviceaccount:cert-manager:cert-manager-cainjector}'"
        );
        assert!(
            found[2].fix.ends_with(
                "--set 'config.agents.users={system:serviceaccount:argo-rollouts:argo-rollouts}'"
            ),
            "{}",
            found[2].fix
        );
        assert!(found[3].fix.contains(
            "<its user>: the username of its writes in the audit log (fieldManager vpa-updater)"
        ));

        // Trusted once the config lists it.
        let mut config = Config::default();
        config
            .agents
            .users
            .push("system:serviceaccount:cert-manager:cert-manager-cainjector".into());
        let live = json!({"metadata": {"managedFields": [entry("cainjector", 2, None)]}});
        let ok = field_managers(&[(web, live)], &config, NOW, "gg");
        assert_eq!(ok[0].severity, Severity::Ok);
    }
}
