//! Checks `become-agent` and `switch-off`: who, by the cluster's RBAC, can act as an identity the
//! guard trusts, and who can take the guard out of the way. Pure: the roles and bindings are read
//! by the caller ([`super::rbac::Policy`]).
//!
//! Left out: Kubernetes' own subjects (users and groups named `system:…` other than the broad
//! groups every account is in, and the configured `system` identities, kube-controller-manager's
//! controllers among them), the agents themselves, and `system:masters` (which RBAC never
//! checks: one `warn` for it instead of one line per capability).

use std::collections::{BTreeMap, BTreeSet};

use gitops_guard_core::Config;
use gitops_guard_core::identity::service_account;

use super::guard::Location;
use super::rbac::{Binding, Policy, Request, Subject};
use super::{Finding, Severity};

/// Groups named `system:…` that are not Kubernetes' own components but everyone (or every
/// service account): a grant to them is a grant to all of those.
fn broad_group(name: &str) -> bool {
    matches!(
        name,
        "system:authenticated" | "system:unauthenticated" | "system:serviceaccounts"
    ) || name.starts_with("system:serviceaccounts:")
}

/// The identities the guard trusts: service accounts (namespace, name), users, groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trusted {
    pub service_accounts: BTreeSet<(String, String)>,
    pub users: BTreeSet<String>,
    pub groups: BTreeSet<String>,
}

impl Trusted {
    /// Flux's and Argo CD's controllers, `agents` and `system` from the guard's config.
    pub fn from_config(config: &Config) -> Trusted {
        let mut t = Trusted::default();
        for c in &config.flux.controllers {
            t.service_accounts
                .insert((config.flux.namespace.clone(), c.clone()));
        }
        for c in &config.argocd.controllers {
            t.service_accounts
                .insert((config.argocd.namespace.clone(), c.clone()));
        }
        for u in config.agents.users.iter().chain(&config.system.users) {
            match service_account(u) {
                Some((ns, name)) => {
                    t.service_accounts.insert((ns.into(), name.into()));
                }
                None => {
                    t.users.insert(u.clone());
                }
            }
        }
        t.groups.extend(
            config
                .agents
                .groups
                .iter()
                .chain(&config.system.groups)
                .cloned(),
        );
        t
    }

    /// The agents alone: Flux's and Argo CD's controllers and `agents` from the config, without
    /// Kubernetes' own identities.
    pub fn agents(config: &Config) -> Trusted {
        let mut only = config.clone();
        only.system.users.clear();
        only.system.groups.clear();
        Trusted::from_config(&only)
    }

    /// Whether the subject is one of these identities by name (no `system:` rule).
    pub fn names(&self, s: &Subject) -> bool {
        match s.kind.as_str() {
            "ServiceAccount" => s.namespace.as_ref().is_some_and(|ns| {
                self.service_accounts
                    .contains(&(ns.clone(), s.name.clone()))
            }),
            "User" => match service_account(&s.name) {
                Some((ns, name)) => self
                    .service_accounts
                    .contains(&(ns.to_string(), name.to_string())),
                None => self.users.contains(&s.name),
            },
            "Group" => self.groups.contains(&s.name),
            _ => false,
        }
    }

    /// The namespaces the trusted service accounts live in.
    pub fn namespaces(&self) -> BTreeSet<String> {
        self.service_accounts
            .iter()
            .map(|(ns, _)| ns.clone())
            .collect()
    }

    /// Whether the subject is one of them, or Kubernetes' own (see the module docs).
    pub fn exempt(&self, s: &Subject) -> bool {
        match s.kind.as_str() {
            "ServiceAccount" => s.namespace.as_ref().is_some_and(|ns| {
                self.service_accounts
                    .contains(&(ns.clone(), s.name.clone()))
            }),
            "User" => match service_account(&s.name) {
                Some((ns, name)) => self
                    .service_accounts
                    .contains(&(ns.to_string(), name.to_string())),
                None => self.users.contains(&s.name) || s.name.starts_with("system:"),
            },
            "Group" => {
                s.name == "system:masters"
                    || self.groups.contains(&s.name)
                    || (s.name.starts_with("system:") && !broad_group(&s.name))
            }
            _ => false,
        }
    }
}

/// The kinds Kubernetes' controllers make Pods from (group, resource).
const WORKLOADS: &[(&str, &str)] = &[
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("", "replicationcontrollers"),
];

/// One thing a subject must not be able to do, as the requests that do it.
struct Capability {
    check: &'static str,
    severity: Severity,
    /// `impersonate`, `create Pods in`: the finding reads "can {action} {targets}".
    action: &'static str,
    /// For the `ok` line: "the agents' service accounts".
    targets_ok: String,
    why: &'static str,
    /// Each request and what it targets (a name, a namespace).
    requests: Vec<(Request, String)>,
}

/// The targets as a short list, in the order of the capability's requests.
fn list(targets: &[String]) -> String {
    let v: Vec<&str> = targets.iter().map(String::as_str).collect();
    match v.len() {
        0..=3 => v.join(", "),
        n => format!("{}, {} and {} more", v[0], v[1], n - 2),
    }
}

/// The command that takes the subject out of the binding.
pub fn fix(binding: &Binding, subject: &Subject) -> String {
    let (kind, ns) = match &binding.namespace {
        Some(ns) => ("rolebinding", format!(" -n {ns}")),
        None => ("clusterrolebinding", String::new()),
    };
    if binding.subjects.iter().all(|s| s == subject) {
        return format!("kubectl delete {kind} {}{ns}", binding.name);
    }
    let i = binding
        .subjects
        .iter()
        .position(|s| s == subject)
        .unwrap_or(0);
    format!(
        "kubectl patch {kind} {}{ns} --type=json -p '[{{\"op\":\"test\",\"path\":\"/subjects/{i}/name\",\"value\":\"{}\"}},{{\"op\":\"remove\",\"path\":\"/subjects/{i}\"}}]'",
        binding.name, subject.name
    )
}

fn evaluate(policy: &Policy, trusted: &Trusted, cap: &Capability) -> Vec<Finding> {
    // (subject, binding) → targets
    let mut grants: BTreeMap<(Subject, usize), Vec<String>> = BTreeMap::new();
    for (req, target) in &cap.requests {
        for g in policy.who_can(req) {
            if !trusted.exempt(&g.subject) {
                let targets = grants.entry((g.subject, g.binding)).or_default();
                if !targets.contains(target) {
                    targets.push(target.clone());
                }
            }
        }
    }
    if grants.is_empty() {
        return vec![Finding::new(
            Severity::Ok,
            cap.check,
            "RBAC",
            format!(
                "nobody but Kubernetes and the agents can {} {}",
                cap.action, cap.targets_ok
            ),
            cap.why,
            "",
        )];
    }
    grants
        .into_iter()
        .filter_map(|((subject, b), targets)| {
            let binding = policy.bindings.get(b)?;
            Some(Finding::new(
                cap.severity,
                cap.check,
                subject.to_string(),
                format!(
                    "can {} {} ({} → {})",
                    cap.action,
                    list(&targets),
                    binding.display(),
                    binding.role_display()
                ),
                cap.why,
                fix(binding, &subject),
            ))
        })
        .collect()
}

fn masters() -> Finding {
    Finding::new(
        Severity::Warn,
        "become-agent",
        "Group system:masters",
        "members pass every RBAC check: they can do everything listed here",
        "a client certificate with O=system:masters cannot be taken back by any binding, only by a new cluster CA",
        "issue no certificates with O=system:masters; bind people by name (kubectl create clusterrolebinding NAME --clusterrole=cluster-admin --user=USER)",
    )
}

/// Who, by RBAC, may make any of these requests (`User ana`, `Group developers`), Kubernetes'
/// own subjects and the agents left out.
pub fn who_may(policy: &Policy, config: &Config, requests: &[Request]) -> Vec<String> {
    let trusted = Trusted::from_config(config);
    requests
        .iter()
        .flat_map(|r| policy.who_can(r))
        .filter(|g| !trusted.exempt(&g.subject))
        .map(|g| g.subject.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Check `become-agent`: who can act as an identity the guard trusts.
pub fn become_agent(policy: &Policy, config: &Config) -> Vec<Finding> {
    let trusted = Trusted::from_config(config);
    let check = "become-agent";
    let sa_target = |ns: &str, name: &str| format!("{ns}/{name}");
    let mut caps = vec![
        Capability {
            check,
            severity: Severity::Fail,
            action: "impersonate service accounts",
            targets_ok: "of the agents and Kubernetes".into(),
            why: "with --as=<the agent> their changes reach the guard as the agent's own",
            requests: trusted
                .service_accounts
                .iter()
                .map(|(ns, name)| {
                    (
                        Request::new("impersonate", "", "serviceaccounts")
                            .in_namespace(ns)
                            .named(name),
                        sa_target(ns, name),
                    )
                })
                .collect(),
        },
        Capability {
            check,
            severity: Severity::Fail,
            action: "impersonate users",
            targets_ok: "the guard trusts".into(),
            why: "with --as=<a trusted user> their changes reach the guard as an agent's or Kubernetes' own",
            requests: trusted
                .users
                .iter()
                .map(|u| (Request::new("impersonate", "", "users").named(u), u.clone()))
                .collect(),
        },
        Capability {
            check,
            severity: Severity::Fail,
            action: "impersonate groups",
            targets_ok: "the guard trusts".into(),
            why: "with --as-group=<a trusted group> their changes reach the guard as an agent's or Kubernetes' own",
            requests: trusted
                .groups
                .iter()
                .map(|g| {
                    (
                        Request::new("impersonate", "", "groups").named(g),
                        g.clone(),
                    )
                })
                .collect(),
        },
    ];
    let namespaces = trusted.namespaces();
    let in_each_of = |verbs: &[&str], group: &str, resource: &str| -> Vec<(Request, String)> {
        namespaces
            .iter()
            .flat_map(|ns| {
                verbs.iter().map(move |v| {
                    (
                        Request::new(v, group, resource).in_namespace(ns),
                        ns.to_string(),
                    )
                })
            })
            .collect()
    };
    let in_each = |verbs: &[&str], resource: &str| in_each_of(verbs, "", resource);
    let ns_list = namespaces.iter().cloned().collect::<Vec<_>>().join(", ");
    caps.push(Capability {
        check,
        severity: Severity::Fail,
        action: "create Pods in",
        targets_ok: ns_list.clone(),
        why: "a Pod that names an agent's service account runs with its token: what it does passes as the agent",
        requests: in_each(&["create"], "pods"),
    });
    caps.push(Capability {
        check,
        severity: Severity::Fail,
        action: "create or change workloads in",
        targets_ok: ns_list.clone(),
        why: "Kubernetes' controllers make Pods from a workload's template: one naming an agent's service account runs with its token",
        requests: WORKLOADS
            .iter()
            .flat_map(|(group, resource)| in_each_of(&["create", "update", "patch"], group, resource))
            .collect(),
    });
    caps.push(Capability {
        check,
        severity: Severity::Fail,
        action: "exec into or debug Pods in",
        targets_ok: ns_list.clone(),
        why: "inside an agent's Pod (kubectl exec, kubectl debug) its service account token is one cat away",
        requests: [
            in_each(&["create", "get"], "pods/exec"),
            in_each(&["update", "patch"], "pods/ephemeralcontainers"),
        ]
        .concat(),
    });
    caps.push(Capability {
        check,
        severity: Severity::Fail,
        action: "read Secrets in",
        targets_ok: ns_list.clone(),
        why: "before 1.24 every service account has a token Secret: reading it is logging in as the agent",
        requests: in_each(&["get", "list", "watch"], "secrets"),
    });
    caps.push(Capability {
        check,
        severity: Severity::Fail,
        action: "create tokens for service accounts",
        targets_ok: "of the agents and Kubernetes".into(),
        why: "a token minted for an agent's service account is the agent's credential",
        requests: trusted
            .service_accounts
            .iter()
            .map(|(ns, name)| {
                (
                    Request::new("create", "", "serviceaccounts/token")
                        .in_namespace(ns)
                        .named(name),
                    sa_target(ns, name),
                )
            })
            .collect(),
    });
    caps.push(Capability {
        check,
        severity: Severity::Warn,
        action: "create ServiceAccounts in",
        targets_ok: ns_list,
        why: "a service account named like an agent that is not installed is that agent, once it has a token",
        requests: in_each(&["create"], "serviceaccounts"),
    });
    let mut out = vec![masters()];
    for cap in caps.iter().filter(|c| !c.requests.is_empty()) {
        out.extend(evaluate(policy, &trusted, cap));
    }
    out.extend(approve_client_certificates(policy, &trusted));
    out
}

/// The tenant service accounts Flux acts as: each Kustomization's and HelmRelease's
/// `spec.serviceAccountName` in its own namespace, else the controllers'
/// `--default-service-account` (`default_sa`, empty: none). Owners that deploy to another cluster
/// (`spec.kubeConfig`) act there, not here.
pub fn tenant_accounts(
    owners: &[serde_json::Value],
    default_sa: &str,
) -> BTreeSet<(String, String)> {
    owners
        .iter()
        .filter(|o| o.pointer("/spec/kubeConfig").is_none())
        .filter_map(|o| {
            let ns = o.pointer("/metadata/namespace")?.as_str()?;
            let sa = o
                .pointer("/spec/serviceAccountName")
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or(default_sa);
            (!sa.is_empty()).then(|| (ns.to_string(), sa.to_string()))
        })
        .collect()
}

/// The destination service accounts Argo CD impersonates for Applications (an AppProject's
/// `destinationServiceAccounts`, matched as the guard matches them).
pub fn destination_accounts(
    applications: &[serde_json::Value],
    projects: &[serde_json::Value],
) -> BTreeSet<(String, String)> {
    applications
        .iter()
        .filter_map(|app| {
            let project = app
                .pointer("/spec/project")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("default");
            let p = projects.iter().find(|p| {
                p.pointer("/metadata/name")
                    .and_then(serde_json::Value::as_str)
                    == Some(project)
            })?;
            let user = gitops_guard_core::owner::argo_owner_info(app, Some(p)).service_account?;
            let (ns, name) = service_account(&user)?;
            Some((ns.to_string(), name.to_string()))
        })
        .collect()
}

/// Check `become-agent` for tenants: who can act as a service account Flux impersonates for an
/// owner (`tenants`). By impersonation always; below 1.29 (`minor`) also with a credential of
/// the account's own (a Pod, a workload, exec, its token Secret, a minted token), which the guard
/// can only tell apart from impersonation from 1.29 on.
pub fn tenants(
    policy: &Policy,
    config: &Config,
    tenants: &BTreeSet<(String, String)>,
    minor: Option<u32>,
) -> Vec<Finding> {
    if tenants.is_empty() {
        return Vec::new();
    }
    let mut trusted = Trusted::from_config(config);
    trusted.service_accounts.extend(tenants.iter().cloned());
    let check = "become-agent";
    let mut caps = vec![Capability {
        check,
        severity: Severity::Fail,
        action: "impersonate tenant service accounts",
        targets_ok: "(the accounts Flux and Argo CD act as for their owners)".into(),
        why: "Flux acts as a tenant's service account (Argo CD as a destination's) by impersonation: with --as=<it>, changes to those objects pass as the agent's",
        requests: tenants
            .iter()
            .map(|(ns, name)| {
                (
                    Request::new("impersonate", "", "serviceaccounts")
                        .in_namespace(ns)
                        .named(name),
                    format!("{ns}/{name}"),
                )
            })
            .collect(),
    }];
    if minor.is_none_or(|m| m < 29) {
        let namespaces: BTreeSet<&String> = tenants.iter().map(|(ns, _)| ns).collect();
        let mut requests = Vec::new();
        for ns in namespaces {
            let mut add = |verb: &str, group: &str, resource: &str| {
                requests.push((
                    Request::new(verb, group, resource).in_namespace(ns),
                    ns.clone(),
                ))
            };
            add("create", "", "pods");
            for (group, resource) in WORKLOADS {
                for verb in ["create", "update", "patch"] {
                    add(verb, group, resource);
                }
            }
            for verb in ["create", "get"] {
                add(verb, "", "pods/exec");
            }
            for verb in ["get", "list", "watch"] {
                add(verb, "", "secrets");
            }
        }
        for (ns, name) in tenants {
            requests.push((
                Request::new("create", "", "serviceaccounts/token")
                    .in_namespace(ns)
                    .named(name),
                ns.clone(),
            ));
        }
        caps.push(Capability {
            check,
            severity: Severity::Fail,
            action: "get a tenant service account's credential in",
            targets_ok: "tenant namespaces".into(),
            why: "before 1.29 the guard cannot tell a tenant account's own token (a Pod's, a Secret's, a minted one) from Flux acting as it",
            requests,
        });
    }
    caps.iter()
        .flat_map(|cap| evaluate(policy, &trusted, cap))
        .collect()
}

/// Who may approve a CertificateSigningRequest for a client certificate: both `update` on
/// `certificatesigningrequests/approval` and `approve` on the signer
/// `kubernetes.io/kube-apiserver-client` (or `kubernetes.io/*`), as the API server checks them.
/// Such a person can give themselves a certificate with any name and groups.
fn approve_client_certificates(policy: &Policy, trusted: &Trusted) -> Vec<Finding> {
    let group = "certificates.k8s.io";
    let approval = Request::new("update", group, "certificatesigningrequests/approval");
    let signers = [
        Request::new("approve", group, "signers").named("kubernetes.io/kube-apiserver-client"),
        Request::new("approve", group, "signers").named("kubernetes.io/*"),
    ];
    let why = "an approved client certificate can carry any name and groups: an agent's, or system:masters";
    // subject → the bindings that give each half
    let mut halves: BTreeMap<Subject, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for g in policy.who_can(&approval) {
        halves.entry(g.subject).or_default().0.push(g.binding);
    }
    for g in signers.iter().flat_map(|r| policy.who_can(r)) {
        halves.entry(g.subject).or_default().1.push(g.binding);
    }
    let mut out = Vec::new();
    for (subject, (mut a, mut b)) in halves {
        if a.is_empty() || b.is_empty() || trusted.exempt(&subject) {
            continue;
        }
        a.dedup();
        b.sort();
        b.dedup();
        let via: Vec<usize> = a
            .iter()
            .chain(&b)
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let bindings: Vec<&Binding> = via.iter().filter_map(|i| policy.bindings.get(*i)).collect();
        out.push(Finding::new(
            Severity::Fail,
            "become-agent",
            subject.to_string(),
            format!(
                "can approve client certificates ({})",
                bindings
                    .iter()
                    .map(|b| format!("{} → {}", b.display(), b.role_display()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            why,
            bindings
                .iter()
                .map(|b| fix(b, &subject))
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    if out.is_empty() {
        out.push(Finding::new(
            Severity::Ok,
            "become-agent",
            "RBAC",
            "nobody but Kubernetes and the agents can approve client certificates",
            why,
            "",
        ));
    }
    out
}

/// Check `switch-off`: who can change or delete the guard's webhook configurations (named
/// `configs`) and objects (at `location`, when the webhooks call a Service), or create a mutating
/// webhook; and, when the webhooks leave namespaces out by a label a person can change
/// (`relabel`: how bad that is), who may relabel namespaces.
pub fn switch_off(
    policy: &Policy,
    config: &Config,
    configs: &[String],
    location: Option<&Location>,
    relabel: Option<Severity>,
) -> Vec<Finding> {
    let trusted = Trusted::from_config(config);
    let check = "switch-off";
    let change = ["update", "patch", "delete"];
    let admission = "admissionregistration.k8s.io";
    let mut caps = Vec::new();
    if !configs.is_empty() {
        let mut requests: Vec<(Request, String)> = configs
            .iter()
            .flat_map(|c| {
                change.iter().map(move |v| {
                    (
                        Request::new(v, admission, "validatingwebhookconfigurations").named(c),
                        c.clone(),
                    )
                })
            })
            .collect();
        requests.push((
            Request::new(
                "deletecollection",
                admission,
                "validatingwebhookconfigurations",
            ),
            "all (deletecollection)".into(),
        ));
        caps.push(Capability {
            check,
            severity: Severity::Fail,
            action: "change or delete ValidatingWebhookConfigurations",
            targets_ok: "of the guard".into(),
            why: "without its webhook configurations the API server sends the guard nothing",
            requests,
        });
    }
    caps.push(Capability {
        check,
        severity: Severity::Fail,
        action: "create",
        targets_ok: "MutatingWebhookConfigurations".into(),
        why: "a mutating webhook runs first and can strip the ownership labels the guard's entries select on",
        requests: vec![(
            Request::new("create", admission, "mutatingwebhookconfigurations"),
            "MutatingWebhookConfigurations".into(),
        )],
    });
    if let Some(loc) = location {
        let ns = &loc.namespace;
        let objects = [
            ("apps", "deployments", loc.fullname.clone(), "Deployment"),
            (
                "apps",
                "deployments/scale",
                loc.fullname.clone(),
                "Deployment",
            ),
            ("", "services", loc.fullname.clone(), "Service"),
            ("", "secrets", format!("{}-tls", loc.fullname), "Secret"),
            (
                "",
                "configmaps",
                format!("{}-config", loc.fullname),
                "ConfigMap",
            ),
        ];
        let mut requests = Vec::new();
        for (group, resource, name, kind) in objects {
            let verbs: &[&str] = if resource.ends_with("/scale") {
                &["update", "patch"]
            } else {
                &change
            };
            for v in verbs {
                requests.push((
                    Request::new(v, group, resource)
                        .in_namespace(ns)
                        .named(&name),
                    format!("{kind} {ns}/{name}"),
                ));
            }
        }
        requests.push((
            Request::new("delete", "", "namespaces").named(ns),
            format!("Namespace {ns}"),
        ));
        caps.push(Capability {
            check,
            severity: Severity::Fail,
            action: "change or delete",
            targets_ok: format!("the guard's Deployment, Service, Secret, ConfigMap or namespace {ns}"),
            why: "scaled to zero, pointed elsewhere, given another config or certificate, or deleted, the guard stops judging",
            requests,
        });
    }
    if let Some(severity) = relabel {
        caps.push(Capability {
            check,
            severity,
            action: "relabel",
            targets_ok: "Namespaces".into(),
            why: "the guard's webhooks leave namespaces out by a label: relabelling one takes it out of the guard's view",
            requests: ["update", "patch"]
                .iter()
                .map(|v| (Request::new(v, "", "namespaces"), "Namespaces".to_string()))
                .collect(),
        });
    }
    let agents = Trusted::agents(config);
    let mut out: Vec<Finding> = caps
        .iter()
        .flat_map(|cap| evaluate(policy, &trusted, cap))
        .collect();
    out.extend(
        caps.iter()
            .flat_map(|cap| agents_can(policy, &agents, config, cap)),
    );
    out
}

/// The agents among those who can do what `cap` names: left out of [`evaluate`] (the guard
/// trusts them, so it never stops them), but a commit they apply can switch the guard off, so
/// each is a `warn` (not a `fail`: an agent that applies the guard itself needs these rights).
fn agents_can(
    policy: &Policy,
    agents: &Trusted,
    config: &Config,
    cap: &Capability,
) -> Vec<Finding> {
    let mut grants: BTreeMap<(Subject, usize), Vec<String>> = BTreeMap::new();
    for (req, target) in &cap.requests {
        for g in policy.who_can(req) {
            if agents.names(&g.subject) {
                let targets = grants.entry((g.subject, g.binding)).or_default();
                if !targets.contains(target) {
                    targets.push(target.clone());
                }
            }
        }
    }
    grants
        .into_iter()
        .filter_map(|((subject, b), targets)| {
            let binding = policy.bindings.get(b)?;
            Some(Finding::new(
                Severity::Warn,
                cap.check,
                subject.to_string(),
                format!(
                    "an agent, can {} {} ({} → {})",
                    cap.action,
                    list(&targets),
                    binding.display(),
                    binding.role_display()
                ),
                "the guard trusts its agents, so a commit they apply can switch the guard off: the guard's own manifests need the strictest review in Git",
                agent_fix(&subject, config),
            ))
        })
        .collect()
}

/// How to keep an agent's applies of tenants' commits away from the guard: Flux impersonates a
/// tenant account for every owner without one of its own (`--default-service-account`), Argo CD
/// a destination's service account (sync impersonation).
fn agent_fix(subject: &Subject, config: &Config) -> String {
    let sa = match subject.kind.as_str() {
        "ServiceAccount" => subject
            .namespace
            .as_deref()
            .map(|ns| (ns.to_string(), subject.name.clone())),
        _ => service_account(&subject.name).map(|(ns, n)| (ns.to_string(), n.to_string())),
    };
    match sa {
        Some((ns, name)) if ns == config.flux.namespace && config.flux.controllers.contains(&name) => format!(
            "kubectl -n {ns} patch deployment {name} --type=json -p '[{{\"op\":\"add\",\"path\":\"/spec/template/spec/containers/0/args/-\",\"value\":\"--default-service-account=default\"}}]'  # through Git; tenants' owners then apply as their namespace's default account (and set flux.defaultServiceAccount: default in the guard's config); keep the guard's manifests under review (CODEOWNERS)"
        ),
        Some((ns, name)) if ns == config.argocd.namespace && config.argocd.controllers.contains(&name) => format!(
            "kubectl -n {ns} patch configmap argocd-cm --type=merge -p '{{\"data\":{{\"application.sync.impersonation.enabled\":\"true\"}}}}'  # through Git; then give each AppProject destinationServiceAccounts without these rights; keep the guard's manifests under review (CODEOWNERS)"
        ),
        _ => "keep the guard's manifests under review in Git (CODEOWNERS on their path); the agent needs these rights only if it applies the guard itself".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::rbac::Role;
    use super::*;
    use serde_json::json;

    fn policy(objects: &[serde_json::Value]) -> Policy {
        let mut p = Policy::default();
        for o in objects {
            if o["kind"].as_str().is_some_and(|k| k.ends_with("Binding")) {
                p.bindings.push(Binding::from_json(o));
            } else {
                p.roles.push(Role::from_json(o));
            }
        }
        p
    }

    fn cluster_role(name: &str, rules: serde_json::Value) -> serde_json::Value {
        json!({"kind": "ClusterRole", "metadata": {"name": name}, "rules": rules})
    }

    fn crb(name: &str, role: &str, subjects: serde_json::Value) -> serde_json::Value {
        json!({"kind": "ClusterRoleBinding", "metadata": {"name": name},
               "roleRef": {"kind": "ClusterRole", "name": role}, "subjects": subjects})
    }

    fn failing(findings: &[Finding]) -> Vec<(String, String)> {
        findings
            .iter()
            .filter(|f| f.severity == Severity::Fail)
            .map(|f| (f.subject.clone(), f.finding.clone()))
            .collect()
    }

    #[test]
    fn exempts_kubernetes_and_the_agents_only() {
        let t = Trusted::from_config(&Config::default());
        let exempt = [
            Subject::service_account("flux-system", "kustomize-controller"),
            Subject::service_account("kube-system", "replicaset-controller"),
            Subject::user("system:kube-controller-manager"),
            Subject::user("system:serviceaccount:flux-system:helm-controller"),
            Subject::group("system:nodes"),
            Subject::group("system:masters"),
        ];
        for s in exempt {
            assert!(t.exempt(&s), "{s}");
        }
        let reported = [
            Subject::user("mallory"),
            Subject::group("ci"),
            Subject::group("system:authenticated"),
            Subject::group("system:serviceaccounts"),
            Subject::group("system:serviceaccounts:flux-system"),
            Subject::service_account("flux-system", "tenant"),
            Subject::service_account("kube-system", "kube-dns"),
            Subject::user("system:serviceaccount:apps:builder"),
        ];
        for s in reported {
            assert!(!t.exempt(&s), "{s}");
        }
    }

    #[test]
    fn become_agent_rows() {
        let p = policy(&[
            cluster_role(
                "impersonator",
                json!([{"verbs": ["impersonate"], "apiGroups": [""], "resources": ["serviceaccounts"]}]),
            ),
            crb(
                "mallory-impersonates",
                "impersonator",
                json!([{"kind": "User", "name": "mallory"}]),
            ),
            json!({"kind": "Role", "metadata": {"name": "pods", "namespace": "flux-system"},
                   "rules": [{"verbs": ["create"], "apiGroups": [""], "resources": ["pods"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "ci-pods", "namespace": "flux-system"},
                   "roleRef": {"kind": "Role", "name": "pods"},
                   "subjects": [{"kind": "User", "name": "ana"}, {"kind": "Group", "name": "ci"}]}),
            // Kubernetes' own and the agents' grants are not findings.
            cluster_role(
                "cluster-admin",
                json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]),
            ),
            crb(
                "cluster-admin",
                "cluster-admin",
                json!([{"kind": "Group", "name": "system:masters"}]),
            ),
            crb(
                "flux",
                "cluster-admin",
                json!([{"kind": "ServiceAccount", "name": "kustomize-controller", "namespace": "flux-system"}]),
            ),
            cluster_role(
                "system:controller:replicaset-controller",
                json!([{"verbs": ["create"], "apiGroups": [""], "resources": ["pods"]}]),
            ),
            crb(
                "system:controller:replicaset-controller",
                "system:controller:replicaset-controller",
                json!([{"kind": "ServiceAccount", "name": "replicaset-controller", "namespace": "kube-system"}]),
            ),
            json!({"kind": "Role", "metadata": {"name": "deployer", "namespace": "argocd"},
                   "rules": [{"verbs": ["patch"], "apiGroups": ["apps"], "resources": ["deployments"]},
                             {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/exec"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "deployer", "namespace": "argocd"},
                   "roleRef": {"kind": "Role", "name": "deployer"},
                   "subjects": [{"kind": "ServiceAccount", "name": "pipeline", "namespace": "ci"}]}),
            // Impersonating someone else only is fine.
            cluster_role(
                "impersonate-bob",
                json!([{"verbs": ["impersonate"], "apiGroups": [""], "resources": ["serviceaccounts", "users"], "resourceNames": ["bob"]}]),
            ),
            crb(
                "eve-bob",
                "impersonate-bob",
                json!([{"kind": "User", "name": "eve"}]),
            ),
        ]);
        let findings = become_agent(&p, &Config::default());
        assert_eq!(
            failing(&findings),
            vec![
                (
                    "User mallory".to_string(),
                    "can impersonate service accounts argocd/argocd-application-controller, argocd/argocd-applicationset-controller and 42 more (ClusterRoleBinding mallory-impersonates → ClusterRole impersonator)".to_string()
                ),
                (
                    "Group ci".to_string(),
                    "can create Pods in flux-system (RoleBinding flux-system/ci-pods → Role pods)".to_string()
                ),
                (
                    "User ana".to_string(),
                    "can create Pods in flux-system (RoleBinding flux-system/ci-pods → Role pods)".to_string()
                ),
                (
                    "ServiceAccount ci/pipeline".to_string(),
                    "can create or change workloads in argocd (RoleBinding argocd/deployer → Role deployer)".to_string()
                ),
                (
                    "ServiceAccount ci/pipeline".to_string(),
                    "can exec into or debug Pods in argocd (RoleBinding argocd/deployer → Role deployer)".to_string()
                ),
            ]
        );
        let ci = findings.iter().find(|f| f.subject == "Group ci").unwrap();
        assert_eq!(
            ci.fix,
            "kubectl patch rolebinding ci-pods -n flux-system --type=json -p '[{\"op\":\"test\",\"path\":\"/subjects/1/name\",\"value\":\"ci\"},{\"op\":\"remove\",\"path\":\"/subjects/1\"}]'"
        );
        let mallory = findings
            .iter()
            .find(|f| f.subject == "User mallory")
            .unwrap();
        assert_eq!(
            mallory.fix,
            "kubectl delete clusterrolebinding mallory-impersonates"
        );
        // The rest is ok, and system:masters gets its one warning.
        assert_eq!(findings[0].subject, "Group system:masters");
        assert_eq!(findings[0].severity, Severity::Warn);
        let oks: Vec<&str> = findings
            .iter()
            .filter(|f| f.severity == Severity::Ok)
            .map(|f| f.finding.as_str())
            .collect();
        assert!(oks.contains(&"nobody but Kubernetes and the agents can read Secrets in argocd, flux-system, kube-system"), "{oks:?}");
        assert!(
            oks.contains(
                &"nobody but Kubernetes and the agents can impersonate groups the guard trusts"
            ),
            "{oks:?}"
        );
    }

    #[test]
    fn relabelling_namespaces_counts_only_with_a_label_exclusion() {
        let p = policy(&[
            cluster_role(
                "ns-labeller",
                json!([{"verbs": ["patch"], "apiGroups": [""], "resources": ["namespaces"]}]),
            ),
            crb(
                "tenants",
                "ns-labeller",
                json!([{"kind": "Group", "name": "tenants"}]),
            ),
        ]);
        let rows = |relabel| failing(&switch_off(&p, &Config::default(), &[], None, relabel));
        assert_eq!(
            rows(Some(Severity::Fail)),
            vec![(
                "Group tenants".to_string(),
                "can relabel Namespaces (ClusterRoleBinding tenants → ClusterRole ns-labeller)"
                    .to_string()
            )]
        );
        assert!(rows(None).is_empty());
        let warned = switch_off(&p, &Config::default(), &[], None, Some(Severity::Warn));
        assert!(
            warned
                .iter()
                .any(|f| f.severity == Severity::Warn && f.subject == "Group tenants")
        );
    }

    #[test]
    fn approving_client_certificates_takes_both_rights() {
        let p = policy(&[
            cluster_role(
                "approver",
                json!([{"verbs": ["update"], "apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval"]}]),
            ),
            cluster_role(
                "client-signer",
                json!([{"verbs": ["approve"], "apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": ["kubernetes.io/*"]}]),
            ),
            cluster_role(
                "kubelet-signer",
                json!([{"verbs": ["approve"], "apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": ["kubernetes.io/kubelet-serving"]}]),
            ),
            crb(
                "approvers",
                "approver",
                json!([{"kind": "User", "name": "carol"}, {"kind": "User", "name": "dave"}]),
            ),
            crb(
                "carol-signs",
                "client-signer",
                json!([{"kind": "User", "name": "carol"}]),
            ),
            crb(
                "dave-signs",
                "kubelet-signer",
                json!([{"kind": "User", "name": "dave"}]),
            ),
            crb(
                "frank-signs",
                "client-signer",
                json!([{"kind": "User", "name": "frank"}]),
            ),
        ]);
        let findings = approve_client_certificates(&p, &Trusted::from_config(&Config::default()));
        assert_eq!(
            failing(&findings),
            vec![(
                "User carol".to_string(),
                "can approve client certificates (ClusterRoleBinding approvers → ClusterRole approver; ClusterRoleBinding carol-signs → ClusterRole client-signer)".to_string()
            )]
        );
        assert_eq!(
            findings[0].fix,
            "kubectl patch clusterrolebinding approvers --type=json -p '[{\"op\":\"test\",\"path\":\"/subjects/0/name\",\"value\":\"carol\"},{\"op\":\"remove\",\"path\":\"/subjects/0\"}]'; kubectl delete clusterrolebinding carol-signs"
        );
        let none = approve_client_certificates(&Policy::default(), &Trusted::default());
        assert_eq!(none[0].severity, Severity::Ok);
    }

    #[test]
    fn tenant_accounts_of_flux_owners() {
        let owners = [
            json!({"metadata": {"namespace": "team-a"}, "spec": {"serviceAccountName": "reconciler"}}),
            json!({"metadata": {"namespace": "team-b"}, "spec": {}}),
            json!({"metadata": {"namespace": "team-c"}, "spec": {"serviceAccountName": "x", "kubeConfig": {}}}),
        ];
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(
            tenant_accounts(&owners, ""),
            pairs(&[("team-a", "reconciler")])
        );
        assert_eq!(
            tenant_accounts(&owners, "default"),
            pairs(&[("team-a", "reconciler"), ("team-b", "default")])
        );
    }

    #[test]
    fn who_can_act_as_a_tenant() {
        let p = policy(&[
            json!({"kind": "Role", "metadata": {"name": "edit", "namespace": "team-a"},
                   "rules": [{"verbs": ["impersonate"], "apiGroups": [""], "resources": ["serviceaccounts"]},
                             {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "devs", "namespace": "team-a"},
                   "roleRef": {"kind": "Role", "name": "edit"},
                   "subjects": [{"kind": "Group", "name": "team-a-devs"},
                                {"kind": "ServiceAccount", "name": "reconciler", "namespace": "team-a"}]}),
        ]);
        let tenants: BTreeSet<(String, String)> =
            [("team-a".to_string(), "reconciler".to_string())]
                .into_iter()
                .collect();
        let rows = |minor| {
            failing(&super::tenants(
                &p,
                &Config::default(),
                &tenants,
                Some(minor),
            ))
        };
        assert_eq!(
            rows(20),
            vec![
                (
                    "Group team-a-devs".to_string(),
                    "can impersonate tenant service accounts team-a/reconciler (RoleBinding team-a/devs → Role edit)".to_string()
                ),
                (
                    "Group team-a-devs".to_string(),
                    "can get a tenant service account's credential in team-a (RoleBinding team-a/devs → Role edit)".to_string()
                ),
            ]
        );
        assert_eq!(rows(29).len(), 1, "from 1.29 only impersonation counts");
        assert!(super::tenants(&p, &Config::default(), &BTreeSet::new(), Some(20)).is_empty());
    }

    #[test]
    fn switch_off_rows() {
        let p = policy(&[
            cluster_role(
                "vwc-deleter",
                json!([{"verbs": ["delete"], "apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"]}]),
            ),
            crb(
                "eve",
                "vwc-deleter",
                json!([{"kind": "User", "name": "eve"}]),
            ),
            cluster_role(
                "scaler",
                json!([{"verbs": ["patch"], "apiGroups": ["apps"], "resources": ["deployments/scale"]}]),
            ),
            crb("ops", "scaler", json!([{"kind": "Group", "name": "ops"}])),
            cluster_role(
                "other-vwc",
                json!([{"verbs": ["*"], "apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"], "resourceNames": ["other"]}]),
            ),
            crb("bob", "other-vwc", json!([{"kind": "User", "name": "bob"}])),
        ]);
        let loc = Location {
            namespace: "gitops-guard".into(),
            fullname: "gitops-guard".into(),
        };
        let findings = switch_off(
            &p,
            &Config::default(),
            &["gitops-guard-custody".into()],
            Some(&loc),
            None,
        );
        assert_eq!(
            failing(&findings),
            vec![
                (
                    "User eve".to_string(),
                    "can change or delete ValidatingWebhookConfigurations gitops-guard-custody (ClusterRoleBinding eve → ClusterRole vwc-deleter)".to_string()
                ),
                (
                    "Group ops".to_string(),
                    "can change or delete Deployment gitops-guard/gitops-guard (ClusterRoleBinding ops → ClusterRole scaler)".to_string()
                ),
            ]
        );
        assert_eq!(
            findings
                .iter()
                .filter(|f| f.severity == Severity::Ok)
                .map(|f| f.finding.as_str())
                .collect::<Vec<_>>(),
            vec!["nobody but Kubernetes and the agents can create MutatingWebhookConfigurations"]
        );
    }

    #[test]
    fn agents_that_can_switch_the_guard_off_are_warned_about() {
        let p = policy(&[
            cluster_role(
                "vwc-deleter",
                json!([{"verbs": ["delete"], "apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"]}]),
            ),
            crb(
                "flux",
                "vwc-deleter",
                json!([{"kind": "ServiceAccount", "namespace": "flux-system", "name": "kustomize-controller"}]),
            ),
            crb(
                "argo",
                "vwc-deleter",
                json!([{"kind": "ServiceAccount", "namespace": "argocd", "name": "argocd-application-controller"}]),
            ),
            crb(
                "ci",
                "vwc-deleter",
                json!([{"kind": "User", "name": "ci-deployer"}]),
            ),
            // Kubernetes' own: never a row.
            crb(
                "kcm",
                "vwc-deleter",
                json!([{"kind": "User", "name": "system:kube-controller-manager"}]),
            ),
        ]);
        let mut config = Config::default();
        config.agents.users.push("ci-deployer".into());
        let findings = switch_off(&p, &config, &["gg-custody".into()], None, None);
        let agents: Vec<(Severity, &str, &str)> = findings
            .iter()
            .filter(|f| f.finding.starts_with("an agent"))
            .map(|f| (f.severity, f.subject.as_str(), f.finding.as_str()))
            .collect();
        assert_eq!(
            agents,
            vec![
                (
                    Severity::Warn,
                    "ServiceAccount argocd/argocd-application-controller",
                    "an agent, can change or delete ValidatingWebhookConfigurations gg-custody (ClusterRoleBinding argo → ClusterRole vwc-deleter)"
                ),
                (
                    Severity::Warn,
                    "ServiceAccount flux-system/kustomize-controller",
                    "an agent, can change or delete ValidatingWebhookConfigurations gg-custody (ClusterRoleBinding flux → ClusterRole vwc-deleter)"
                ),
                (
                    Severity::Warn,
                    "User ci-deployer",
                    "an agent, can change or delete ValidatingWebhookConfigurations gg-custody (ClusterRoleBinding ci → ClusterRole vwc-deleter)"
                ),
            ]
        );
        let fix = |subject: &str| {
            findings
                .iter()
                .find(|f| f.subject == subject && f.finding.starts_with("an agent"))
                .map(|f| f.fix.clone())
                .unwrap_or_default()
        };
        assert!(fix("ServiceAccount flux-system/kustomize-controller").starts_with(
            "kubectl -n flux-system patch deployment kustomize-controller --type=json -p '[{\"op\":\"add\",\"path\":\"/spec/template/spec/containers/0/args/-\",\"value\":\"--default-service-account=default\"}]'"
        ));
        assert!(fix("ServiceAccount argocd/argocd-application-controller").starts_with(
            "kubectl -n argocd patch configmap argocd-cm --type=merge -p '{\"data\":{\"application.sync.impersonation.enabled\":\"true\"}}'"
        ));
        // Nobody else: the ok row stays.
        assert!(findings.iter().any(|f| f.severity == Severity::Ok
            && f.finding == "nobody but Kubernetes and the agents can change or delete ValidatingWebhookConfigurations of the guard"));
        assert!(
            !findings
                .iter()
                .any(|f| f.subject.contains("kube-controller-manager"))
        );
    }

    #[test]
    fn destination_accounts_of_argo_cd_projects() {
        let app = |name: &str, project: &str, ns: &str| {
            json!({"metadata": {"namespace": "argocd", "name": name},
                   "spec": {"project": project, "destination": {"server": "https://kubernetes.default.svc", "namespace": ns}}})
        };
        let projects = [
            json!({"metadata": {"name": "team-b"}, "spec": {"destinationServiceAccounts": [
                {"server": "https://kubernetes.default.svc", "namespace": "team-b", "defaultServiceAccount": "deployer"},
                {"server": "*", "namespace": "*", "defaultServiceAccount": "argocd:fallback"}]}}),
            json!({"metadata": {"name": "default"}, "spec": {}}),
        ];
        let found = destination_accounts(
            &[
                app("b", "team-b", "team-b"),
                app("c", "team-b", "other"),
                app("d", "default", "team-d"),
                app("e", "missing", "team-e"),
            ],
            &projects,
        );
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            vec![
                ("argocd".to_string(), "fallback".to_string()),
                ("team-b".to_string(), "deployer".to_string())
            ]
        );
    }
}
