//! The guard's configuration: one YAML document, every key optional, documented defaults.

use serde::{Deserialize, Serialize};

use crate::Error;

/// `enforce` denies; `audit` allows with a warning and an audit annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Audit,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim() {
            "enforce" => Some(Mode::Enforce),
            "audit" => Some(Mode::Audit),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    pub mode: Mode,
    pub flux: Flux,
    pub argocd: ArgoCd,
    pub agents: Agents,
    pub system: System,
    pub operational: Operational,
    pub break_glass: BreakGlass,
    /// How long the webhook caches a scale request's parent object.
    pub scale_parent_cache_seconds: u64,
    /// Namespaces the guard never judges, decided by name (a namespace label can be changed by
    /// anyone on clusters older than 1.21, so routing alone must not decide it).
    pub excluded_namespaces: Vec<String>,
    pub custody: Custody,
    /// Controllers of custom workload kinds, trusted for what they make and keep beneath (and
    /// beside) an object of that kind that Git declares, and for nothing else: Argo Rollouts'
    /// ReplicaSets, the HorizontalPodAutoscaler KEDA makes for a ScaledObject.
    pub workload_controllers: Vec<WorkloadController>,
    /// Controllers that write `status.loadBalancer` of GitOps-managed objects of one kind (a
    /// Service's load balancer, an Ingress's address: external-dns makes DNS records of it),
    /// beside Kubernetes' own and the agents. A request counts only with the service account's
    /// groups.
    pub load_balancer_controllers: Vec<WorkloadController>,
}

/// A controller trusted for the objects beneath an object of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadController {
    /// The kind it controls (`argoproj.io`, `Rollout`).
    pub group: String,
    pub kind: String,
    /// Its service accounts (`system:serviceaccount:<namespace>:<name>`); a request counts only
    /// with the account's groups (not a user named like it).
    pub users: Vec<String>,
}

/// Chain of custody: what every owner and source must trace back to through Git.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Custody {
    /// Bootstrap roots: trust anchors. A root may be created by anyone while it does not exist
    /// (that is what bootstrapping is); after that only the agent changes it.
    pub roots: Vec<Root>,
}

/// One bootstrap root: an owner or source kind ([`crate::custody::KINDS`]), namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl Default for Custody {
    fn default() -> Self {
        let root = |kind: &str, namespace: &str, name: &str| Root {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        Custody {
            roots: vec![
                // What `flux bootstrap` creates.
                root("Kustomization", "flux-system", "flux-system"),
                root("GitRepository", "flux-system", "flux-system"),
                // What argocd-server creates when it starts.
                root("AppProject", "argocd", "default"),
            ],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Flux {
    /// Namespace Flux's controllers run in.
    pub namespace: String,
    /// Service account names of Flux's controllers (in `namespace`).
    pub controllers: Vec<String>,
    /// The controllers' `--default-service-account`: the tenant account impersonated when an owner
    /// sets no `spec.serviceAccountName`. Empty: none.
    pub default_service_account: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ArgoCd {
    /// Namespace Argo CD runs in, and where Applications live unless the tracking id names another.
    pub namespace: String,
    /// Service account names of Argo CD's agents (in `namespace`). `argocd-server` is deliberately
    /// not here: it is how UI and CLI edits by people arrive.
    pub controllers: Vec<String>,
    /// Also treat `tracking_label` as ownership (opt-in: Helm charts set that label too).
    pub label_tracking: bool,
    pub tracking_label: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Agents {
    /// Extra usernames that act as the agent for every managed object.
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct System {
    /// Kubernetes' own identities: never blocked.
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Operational {
    pub flux_reconcile: bool,
    pub flux_suspend: bool,
    pub argocd_refresh: bool,
    pub argocd_operation: bool,
    pub rollout_restart: bool,
    /// Fields of an Application's `operation.sync` that a person may set beyond a sync of the app
    /// as declared: any of `revision`, `revisions`, `source`, `sources`, `manifests`, `resources`,
    /// `syncOptions`. Empty (default): a sync carries only what Git says.
    pub argocd_sync_overrides: Vec<String>,
    /// Deleting a Pod of a managed workload (a restart: its controller makes a new one).
    pub pod_delete: bool,
    /// Evicting one (`pods/eviction`: node drains).
    pub pod_eviction: bool,
    /// `exec`, `attach` and `port-forward` into one.
    pub pod_exec: bool,
    /// `kubectl debug`: ephemeral containers added to one.
    pub pod_debug: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct BreakGlass {
    /// Groups whose members may open a break-glass window. Empty: the feature is off.
    pub groups: Vec<String>,
    /// The longest window anyone may open, e.g. `4h`, `30m`, `90s`.
    #[serde(with = "duration")]
    pub max_duration: jiff::SignedDuration,
}

/// kube-controller-manager's per-controller service accounts (`--use-service-account-credentials`).
const KUBE_CONTROLLERS: &[&str] = &[
    "attachdetach-controller",
    "bootstrap-signer",
    "certificate-controller",
    "clusterrole-aggregation-controller",
    "cronjob-controller",
    "daemon-set-controller",
    "deployment-controller",
    "disruption-controller",
    "endpoint-controller",
    "endpointslice-controller",
    "endpointslicemirroring-controller",
    "ephemeral-volume-controller",
    "expand-controller",
    "generic-garbage-collector",
    "horizontal-pod-autoscaler",
    "job-controller",
    "legacy-service-account-token-cleaner",
    "namespace-controller",
    "node-controller",
    "persistent-volume-binder",
    "pod-garbage-collector",
    "pv-protection-controller",
    "pvc-protection-controller",
    "replicaset-controller",
    "replication-controller",
    "resourcequota-controller",
    "root-ca-cert-publisher",
    "route-controller",
    "service-account-controller",
    "service-controller",
    "statefulset-controller",
    "token-cleaner",
    "ttl-after-finished-controller",
    "ttl-controller",
    "validatingadmissionpolicy-status-controller",
];

impl Default for System {
    fn default() -> Self {
        let mut users: Vec<String> = [
            "system:apiserver",
            "system:kube-controller-manager",
            "system:kube-scheduler",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        users.extend(
            KUBE_CONTROLLERS
                .iter()
                .map(|c| format!("system:serviceaccount:kube-system:{c}")),
        );
        System {
            users,
            groups: vec!["system:nodes".to_string()],
        }
    }
}

impl Default for Flux {
    fn default() -> Self {
        Flux {
            namespace: "flux-system".into(),
            controllers: [
                "kustomize-controller",
                "helm-controller",
                "source-controller",
                "notification-controller",
                "image-automation-controller",
                "image-reflector-controller",
                "source-watcher",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            default_service_account: String::new(),
        }
    }
}

impl Default for ArgoCd {
    fn default() -> Self {
        ArgoCd {
            namespace: "argocd".into(),
            controllers: vec![
                "argocd-application-controller".into(),
                "argocd-applicationset-controller".into(),
            ],
            label_tracking: false,
            tracking_label: "app.kubernetes.io/instance".into(),
        }
    }
}

impl Default for Operational {
    fn default() -> Self {
        Operational {
            flux_reconcile: true,
            flux_suspend: true,
            argocd_refresh: true,
            argocd_operation: true,
            rollout_restart: true,
            argocd_sync_overrides: Vec::new(),
            pod_delete: true,
            pod_eviction: true,
            pod_exec: true,
            pod_debug: true,
        }
    }
}

impl Default for BreakGlass {
    fn default() -> Self {
        BreakGlass {
            groups: Vec::new(),
            max_duration: jiff::SignedDuration::from_hours(4),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Enforce,
            flux: Flux::default(),
            argocd: ArgoCd::default(),
            agents: Agents::default(),
            system: System::default(),
            operational: Operational::default(),
            break_glass: BreakGlass::default(),
            scale_parent_cache_seconds: 5,
            excluded_namespaces: ["kube-system", "kube-node-lease", "kube-public"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            custody: Custody::default(),
            workload_controllers: vec![
                WorkloadController {
                    group: "argoproj.io".into(),
                    kind: "Rollout".into(),
                    users: vec!["system:serviceaccount:argo-rollouts:argo-rollouts".into()],
                },
                WorkloadController {
                    group: "keda.sh".into(),
                    kind: "ScaledObject".into(),
                    users: vec!["system:serviceaccount:keda:keda-operator".into()],
                },
                // The HTTP-01 solver Ingress cert-manager makes for a Challenge (with its host).
                WorkloadController {
                    group: "acme.cert-manager.io".into(),
                    kind: "Challenge".into(),
                    users: vec!["system:serviceaccount:cert-manager:cert-manager".into()],
                },
            ],
            load_balancer_controllers: vec![
                WorkloadController {
                    group: String::new(),
                    kind: "Service".into(),
                    users: vec![
                        // A cloud's load balancers (kube-controller-manager's service
                        // controller is Kubernetes itself: `system.users`).
                        "system:serviceaccount:kube-system:cloud-controller-manager".into(),
                        "system:serviceaccount:metallb-system:controller".into(),
                    ],
                },
                WorkloadController {
                    group: "networking.k8s.io".into(),
                    kind: "Ingress".into(),
                    users: vec!["system:serviceaccount:ingress-nginx:ingress-nginx".into()],
                },
            ],
        }
    }
}

impl Config {
    /// Parses and checks a config file's text. An empty document means all defaults.
    pub fn from_yaml(text: &str) -> Result<Config, Error> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let config: Config =
            serde_yaml_ng::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), Error> {
        if self.break_glass.max_duration <= jiff::SignedDuration::ZERO {
            return Err(Error::Config(
                "breakGlass.maxDuration must be positive, e.g. 4h".into(),
            ));
        }
        if self.flux.namespace.is_empty() || self.argocd.namespace.is_empty() {
            return Err(Error::Config(
                "flux.namespace and argocd.namespace must not be empty".into(),
            ));
        }
        if self.argocd.label_tracking && self.argocd.tracking_label.is_empty() {
            return Err(Error::Config(
                "argocd.labelTracking is on but argocd.trackingLabel is empty".into(),
            ));
        }
        for root in &self.custody.roots {
            if crate::custody::kind_named(&root.kind).is_none() {
                return Err(Error::Config(format!(
                    "custody.roots: {:?} is not an owner or source kind (one of {})",
                    root.kind,
                    crate::custody::KINDS
                        .iter()
                        .map(|k| k.kind)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if root.name.is_empty() || root.namespace.is_empty() {
                return Err(Error::Config(format!(
                    "custody.roots: {} needs a namespace and a name",
                    root.kind
                )));
            }
        }
        for field in &self.operational.argocd_sync_overrides {
            if !crate::custody::SYNC_OVERRIDES.contains(&field.as_str()) {
                return Err(Error::Config(format!(
                    "operational.argocdSyncOverrides: {field:?} is not one of {}",
                    crate::custody::SYNC_OVERRIDES.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// Durations in the config as people write them: `4h`, `30m`, `1h30m`, `90s` (or ISO 8601).
mod duration {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &jiff::SignedDuration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{d:#}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<jiff::SignedDuration, D::Error> {
        let text = String::deserialize(d)?;
        text.trim().parse::<jiff::SignedDuration>().map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not a duration like 4h or 30m: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c = Config::from_yaml("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.mode, Mode::Enforce);
        assert!(
            c.system
                .users
                .contains(&"system:serviceaccount:kube-system:generic-garbage-collector".into())
        );
        assert!(c.break_glass.groups.is_empty());
        assert_eq!(c.break_glass.max_duration.as_secs(), 4 * 3600);
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let c = Config::from_yaml(
            "mode: audit\nflux:\n  defaultServiceAccount: default\nbreakGlass:\n  groups: [sre]\n  maxDuration: 30m\n",
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Audit);
        assert_eq!(c.flux.namespace, "flux-system");
        assert_eq!(c.flux.default_service_account, "default");
        assert_eq!(c.break_glass.groups, vec!["sre".to_string()]);
        assert_eq!(c.break_glass.max_duration.as_secs(), 1800);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let cases = [
            ("mode: loose\n", "mode"),
            ("flux:\n  namepsace: x\n", "namepsace"),
            ("breakGlass:\n  maxDuration: forever\n", "forever"),
            ("breakGlass:\n  maxDuration: 0s\n", "positive"),
            (
                "argocd:\n  labelTracking: true\n  trackingLabel: ''\n",
                "trackingLabel",
            ),
            ("[not, a, map]\n", "invalid"),
        ];
        for (text, needle) in cases {
            let err = Config::from_yaml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn defaults_round_trip_through_yaml() {
        let text = serde_yaml_ng::to_string(&Config::default()).unwrap();
        assert_eq!(Config::from_yaml(&text).unwrap(), Config::default());
    }
}
