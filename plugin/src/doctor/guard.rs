//! Check `guard`: the guard's ValidatingWebhookConfigurations are there, fail closed where the
//! chart means them to, answer quickly, call a Service that exists and has endpoints, and exclude
//! no namespace by a label a person can change. Pure: the objects are read by the caller.

use std::collections::BTreeMap;

// The namespace label the API server sets itself from 1.21 on.
use gitops_guard_core::owner::NAMESPACE_NAME_LABEL as NAME_LABEL;
use serde_json::Value;

use super::{Finding, Severity};

/// The webhook name of every guard entry (chart and test harness).
pub const WEBHOOK_NAME: &str = "guard.gitops-guard.dev";
/// The label the chart puts on everything it installs.
const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "gitops-guard");
/// The chart's entries whose failurePolicy is `Ignore` by default (values.yaml): an outage must
/// not block Kubernetes itself there.
const IGNORE_BY_DESIGN: &[&str] = &[
    "argocd-annotations",
    "argocd-namespaces",
    "neighbours",
    "neighbours-unlabelled",
    "scale",
];
/// timeoutSeconds above this holds every routed write that long when the guard is slow.
const MAX_TIMEOUT: i64 = 5;
const CHECK: &str = "guard";

fn name(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn webhooks(config: &Value) -> &[Value] {
    config
        .get("webhooks")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The guard's configurations among all ValidatingWebhookConfigurations: those with a webhook
/// named [`WEBHOOK_NAME`] or labelled as part of gitops-guard.
pub fn guard_configurations(all: &[Value]) -> Vec<Value> {
    all.iter()
        .filter(|c| {
            webhooks(c)
                .iter()
                .any(|w| w.get("name").and_then(Value::as_str) == Some(WEBHOOK_NAME))
                || c.pointer("/metadata/labels")
                    .and_then(|l| l.get(PART_OF.0))
                    .and_then(Value::as_str)
                    == Some(PART_OF.1)
        })
        .cloned()
        .collect()
}

/// Where the guard runs: the namespace and name of the Service its webhooks call (the chart
/// names the Deployment and Service `<fullname>`, the ConfigMap `<fullname>-config`, the Secret
/// `<fullname>-tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub namespace: String,
    pub fullname: String,
}

fn service_of(webhook: &Value) -> Option<(String, String)> {
    let s = webhook.pointer("/clientConfig/service")?;
    Some((
        s.get("namespace")?.as_str()?.to_string(),
        s.get("name")?.as_str()?.to_string(),
    ))
}

/// Every Service the guard's webhooks call, once each.
pub fn services(configs: &[Value]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = configs
        .iter()
        .flat_map(|c| webhooks(c).iter().filter_map(service_of))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The guard's location, from the first Service its webhooks call.
pub fn location(configs: &[Value]) -> Option<Location> {
    services(configs)
        .into_iter()
        .next()
        .map(|(namespace, fullname)| Location {
            namespace,
            fullname,
        })
}

/// A Service the webhooks call, as read (`Err`: it could not be read).
#[derive(Debug, Clone)]
pub struct ServiceState {
    pub namespace: String,
    pub name: String,
    pub service: Result<Option<Value>, String>,
    pub endpoints: Result<Option<Value>, String>,
}

fn ready_addresses(endpoints: &Value) -> usize {
    endpoints
        .get("subsets")
        .and_then(Value::as_array)
        .map(|subsets| {
            subsets
                .iter()
                .filter_map(|s| s.get("addresses").and_then(Value::as_array))
                .map(Vec::len)
                .sum()
        })
        .unwrap_or(0)
}

fn service_finding(s: &ServiceState) -> Finding {
    let subject = format!("Service {}/{}", s.namespace, s.name);
    let install = format!(
        "helm upgrade --install gitops-guard charts/gitops-guard -n {}",
        s.namespace
    );
    match (&s.service, &s.endpoints) {
        (Err(e), _) | (Ok(Some(_)), Err(e)) => Finding::new(
            Severity::Warn,
            CHECK,
            subject,
            format!("not checked: {e}"),
            "whether the guard answers is unknown",
            format!(
                "kubectl get service,endpoints {} -n {}",
                s.name, s.namespace
            ),
        ),
        (Ok(None), _) => Finding::new(
            Severity::Fail,
            CHECK,
            subject,
            "the Service the webhooks call does not exist",
            "no write routed to the guard is checked: Fail entries refuse them, Ignore entries let them through",
            install,
        ),
        (Ok(Some(_)), Ok(endpoints)) => {
            let ready = endpoints.as_ref().map_or(0, ready_addresses);
            if ready == 0 {
                Finding::new(
                    Severity::Fail,
                    CHECK,
                    subject,
                    "no ready endpoints: no guard Pod is answering",
                    "Fail entries refuse every routed write and Ignore entries let them through unchecked",
                    format!(
                        "kubectl get pods -n {} -l app.kubernetes.io/part-of=gitops-guard; kubectl describe deployment {} -n {}",
                        s.namespace, s.name, s.namespace
                    ),
                )
            } else {
                Finding::new(
                    Severity::Ok,
                    CHECK,
                    subject,
                    format!("exists, {ready} ready endpoint(s)"),
                    "the webhooks reach the guard through it",
                    "",
                )
            }
        }
    }
}

/// The label keys of a namespaceSelector, with the JSON pointer of each requirement (from the
/// webhook) and whether it is a matchLabels entry.
fn selector_requirements(selector: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for key in labels.keys() {
            let escaped = key.replace('~', "~0").replace('/', "~1");
            out.push((
                key.clone(),
                format!("/namespaceSelector/matchLabels/{escaped}"),
            ));
        }
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for (j, e) in exprs.iter().enumerate() {
            if let Some(key) = e.get("key").and_then(Value::as_str) {
                out.push((
                    key.to_string(),
                    format!("/namespaceSelector/matchExpressions/{j}"),
                ));
            }
        }
    }
    out
}

/// The findings of one webhook of one configuration.
fn webhook_findings(
    config: &str,
    index: usize,
    webhook: &Value,
    minor: Option<u32>,
) -> Vec<Finding> {
    let subject = format!("ValidatingWebhookConfiguration {config}");
    let mut out = Vec::new();
    let policy = webhook
        .get("failurePolicy")
        .and_then(Value::as_str)
        .unwrap_or("Fail");
    let by_design = IGNORE_BY_DESIGN
        .iter()
        .any(|suffix| config.ends_with(&format!("-{suffix}")));
    if policy == "Ignore" && !by_design {
        out.push(Finding::new(
            Severity::Warn,
            CHECK,
            &subject,
            "failurePolicy Ignore",
            "while the guard is down or slow, every write this entry routes passes unchecked",
            format!(
                "kubectl patch validatingwebhookconfiguration {config} --type=json -p '[{{\"op\":\"replace\",\"path\":\"/webhooks/{index}/failurePolicy\",\"value\":\"Fail\"}}]'  # or helm: webhook.failurePolicy=Fail"
            ),
        ));
    }
    let conditions = webhook
        .get("matchConditions")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    if policy == "Fail" && !conditions {
        let (finding, fix) = match minor {
            Some(m) if m >= 28 => (
                "failurePolicy Fail without matchConditions".to_string(),
                "helm upgrade gitops-guard charts/gitops-guard --reuse-values  # the chart renders matchConditions from 1.28 on".to_string(),
            ),
            _ => (
                format!(
                    "failurePolicy Fail, and {} has no matchConditions (1.28+)",
                    minor.map_or("this server".to_string(), |m| format!("Kubernetes 1.{m}"))
                ),
                format!(
                    "keep two guard replicas and a PodDisruptionBudget; in an outage, kubectl delete validatingwebhookconfiguration {config} switches this entry off"
                ),
            ),
        };
        out.push(Finding::new(
            Severity::Warn,
            CHECK,
            &subject,
            finding,
            "while the guard is down, every write this entry routes is refused, Kubernetes' own controllers' and the agents' too",
            fix,
        ));
    }
    let timeout = webhook
        .get("timeoutSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(10);
    if timeout > MAX_TIMEOUT {
        out.push(Finding::new(
            Severity::Warn,
            CHECK,
            &subject,
            format!("timeoutSeconds {timeout}"),
            format!("a slow guard holds every routed write for up to {timeout}s before the failurePolicy decides"),
            format!(
                "kubectl patch validatingwebhookconfiguration {config} --type=json -p '[{{\"op\":\"replace\",\"path\":\"/webhooks/{index}/timeoutSeconds\",\"value\":3}}]'  # or helm: webhook.timeoutSeconds=3"
            ),
        ));
    }
    let selector = webhook
        .get("namespaceSelector")
        .cloned()
        .unwrap_or(Value::Null);
    for (key, pointer) in selector_requirements(&selector) {
        let remove = format!(
            "kubectl patch validatingwebhookconfiguration {config} --type=json -p '[{{\"op\":\"remove\",\"path\":\"/webhooks/{index}{pointer}\"}}]'"
        );
        if key == NAME_LABEL && minor.is_none_or(|m| m < 21) {
            let version = minor.map_or("this server's version is unknown".to_string(), |m| {
                format!("this server is 1.{m}")
            });
            out.push(Finding::new(
                Severity::Fail,
                CHECK,
                &subject,
                format!("namespaceSelector excludes namespaces by {NAME_LABEL} ({version})"),
                format!(
                    "before 1.21 {NAME_LABEL} is an ordinary label: whoever may label a namespace (kubectl label ns prod {NAME_LABEL}=kube-system --overwrite) takes it out of the guard's view"
                ),
                format!("{remove}  # and list those namespaces in the guard config's excludedNamespaces (the chart does both on < 1.21)"),
            ));
        }
    }
    out
}

/// How bad the worst namespace exclusion by `kubernetes.io/metadata.name` before 1.21 is, if any
/// webhook has one (for the `switch-off` check of who may relabel namespaces; other labels are
/// [`super::selectors`]').
pub fn label_exclusion(configs: &[Value], minor: Option<u32>) -> Option<Severity> {
    configs
        .iter()
        .flat_map(|c| {
            webhooks(c)
                .iter()
                .enumerate()
                .flat_map(|(i, w)| webhook_findings(name(c), i, w, minor))
                .collect::<Vec<_>>()
        })
        .filter(|f| f.finding.starts_with("namespaceSelector"))
        .map(|f| f.severity)
        .max()
}

/// Check `guard`. `minor`: the server's minor version (`20` for 1.20), if known.
pub fn check(configs: &[Value], minor: Option<u32>, services: &[ServiceState]) -> Vec<Finding> {
    if configs.is_empty() {
        return vec![Finding::new(
            Severity::Fail,
            CHECK,
            "ValidatingWebhookConfiguration",
            format!(
                "none of the guard's (webhook {WEBHOOK_NAME}, or labelled {}={})",
                PART_OF.0, PART_OF.1
            ),
            "the API server sends the guard nothing: every change passes",
            "helm upgrade --install gitops-guard charts/gitops-guard -n gitops-guard --create-namespace",
        )];
    }
    let mut out = Vec::new();
    let mut sorted: Vec<&Value> = configs.iter().collect();
    sorted.sort_by_key(|c| name(c));
    for config in sorted {
        let cname = name(config);
        let mut problems = Vec::new();
        let mut summary: BTreeMap<&str, String> = BTreeMap::new();
        for (i, w) in webhooks(config).iter().enumerate() {
            problems.extend(webhook_findings(cname, i, w, minor));
            summary.insert(
                "failurePolicy",
                w.get("failurePolicy")
                    .and_then(Value::as_str)
                    .unwrap_or("Fail")
                    .to_string(),
            );
            summary.insert(
                "timeoutSeconds",
                w.get("timeoutSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(10)
                    .to_string(),
            );
        }
        if problems.is_empty() {
            out.push(Finding::new(
                Severity::Ok,
                CHECK,
                format!("ValidatingWebhookConfiguration {cname}"),
                format!(
                    "failurePolicy {}, timeoutSeconds {}",
                    summary.get("failurePolicy").map_or("?", String::as_str),
                    summary.get("timeoutSeconds").map_or("?", String::as_str),
                ),
                "the API server routes writes to the guard as the chart sets it up",
                "",
            ));
        }
        out.extend(problems);
        for w in webhooks(config) {
            if let Some(url) = w.pointer("/clientConfig/url").and_then(Value::as_str) {
                out.push(Finding::new(
                    Severity::Ok,
                    CHECK,
                    format!("ValidatingWebhookConfiguration {cname}"),
                    format!("calls {url} (not checked)"),
                    "a URL outside the cluster's Services is not checked for an answer",
                    "",
                ));
            }
        }
    }
    out.extend(services.iter().map(service_finding));
    out
}

/// Check `guard`, availability: the guard's Deployment runs more than one ready replica, and a
/// PodDisruptionBudget keeps a drain from taking them all.
pub fn availability(loc: &Location, deployment: Option<&Value>, pdbs: &[Value]) -> Vec<Finding> {
    let subject = format!("Deployment {}/{}", loc.namespace, loc.fullname);
    let Some(d) = deployment else {
        return vec![Finding::new(
            Severity::Warn,
            CHECK,
            subject,
            "not found (the Service's Pods run under another name?)",
            "replicas and disruption budget are unknown",
            format!(
                "kubectl get deployments -n {} -l app.kubernetes.io/part-of=gitops-guard",
                loc.namespace
            ),
        )];
    };
    let replicas = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let ready = d
        .pointer("/status/readyReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut out = Vec::new();
    let scale = format!(
        "kubectl scale deployment {} -n {} --replicas=2  # through Git, or helm: replicaCount=2",
        loc.fullname, loc.namespace
    );
    if replicas < 2 {
        out.push(Finding::new(
            Severity::Warn,
            CHECK,
            &subject,
            format!("{replicas} replica(s)"),
            "a rollout or a node drain leaves the guard away: Fail entries refuse, Ignore entries pass unchecked",
            scale,
        ));
    } else if ready < replicas {
        out.push(Finding::new(
            Severity::Warn,
            CHECK,
            &subject,
            format!("{ready} of {replicas} replicas ready"),
            "one more Pod lost and the guard is away",
            format!(
                "kubectl describe deployment {} -n {}",
                loc.fullname, loc.namespace
            ),
        ));
    }
    if pdbs.is_empty() {
        out.push(Finding::new(
            Severity::Warn,
            CHECK,
            &subject,
            "no PodDisruptionBudget in its namespace",
            "a node drain may evict every guard Pod at once",
            format!(
                "kubectl create poddisruptionbudget {} -n {} --selector=app.kubernetes.io/part-of=gitops-guard --min-available=1  # or helm: the chart's PodDisruptionBudget",
                loc.fullname, loc.namespace
            ),
        ));
    }
    if out.is_empty() {
        out.push(Finding::new(
            Severity::Ok,
            CHECK,
            subject,
            format!("{ready} of {replicas} replicas ready, with a PodDisruptionBudget"),
            "the guard stays while one Pod is rescheduled",
            "",
        ));
    }
    out
}

/// The kinds the GitOps owners apply (`Kind.group`, from a Kustomization's inventory or an
/// Application's resources, as the guard reads them), with how many objects of each.
pub fn managed_kinds(owners: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for o in owners {
        let Some(kind) = o
            .get("kind")
            .and_then(Value::as_str)
            .and_then(gitops_guard_core::custody::kind_named)
        else {
            continue;
        };
        for k in gitops_guard_core::custody::custody_info(kind, o, Vec::new()).applies {
            *out.entry(k).or_insert(0) += 1;
        }
    }
    out
}

/// A served resource: group, version (the one discovery prefers), plural, whether it is
/// namespaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespaced: bool,
}

impl Served {
    /// `plural.group` (`plural` in the core group), as kubectl names it.
    pub fn resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// Whether a webhook's rules route writes (UPDATE) of the resource itself, as the API server
/// matches rules (selectors aside: the owners' objects carry the labels the entries select on).
pub fn routes_writes(webhook: &Value, target: &Served) -> bool {
    routes_resource(webhook, target, "UPDATE")
}

/// Whether a webhook's rules send the API server's `operation` on the resource itself (no
/// subresource) to it: resources `*`, `*/*` or its plural, apiVersions only with
/// `matchPolicy: Exact`; selectors aside.
pub fn routes_resource(webhook: &Value, target: &Served, operation: &str) -> bool {
    let exact = webhook.get("matchPolicy").and_then(Value::as_str) == Some("Exact");
    webhook
        .get("rules")
        .and_then(Value::as_array)
        .is_some_and(|rules| {
            rules.iter().any(|rule| {
                let has = |key: &str, wanted: &[&str]| {
                    strings(rule, key)
                        .iter()
                        .any(|v| wanted.contains(&v.as_str()))
                };
                let scope = rule.get("scope").and_then(Value::as_str).unwrap_or("*");
                has("operations", &[operation, "*"])
                    && has("apiGroups", &["*", &target.group])
                    && (!exact || has("apiVersions", &["*", &target.version]))
                    && has("resources", &["*", "*/*", &target.plural])
                    && match scope {
                        "Namespaced" => target.namespaced,
                        "Cluster" => !target.namespaced,
                        _ => true,
                    }
            })
        })
}

/// Check `guard`, coverage: every kind the owners apply is routed to the guard by some webhook.
/// `resolve`: `Kind.group` → the served resource (`None`: not served, left out).
pub fn kind_coverage(
    configs: &[Value],
    kinds: &BTreeMap<String, usize>,
    resolve: impl Fn(&str) -> Option<Served>,
) -> Vec<Finding> {
    if configs.is_empty() || kinds.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut routed = 0;
    for (kind, count) in kinds {
        let Some(target) = resolve(kind) else {
            continue;
        };
        if configs
            .iter()
            .flat_map(webhooks)
            .any(|w| routes_writes(w, &target))
        {
            routed += 1;
            continue;
        }
        let resource = target.resource();
        out.push(Finding::new(
            Severity::Fail,
            CHECK,
            kind.clone(),
            format!("{count} managed object(s) of this kind; no webhook of the guard routes {resource}"),
            "changes to them never reach the guard: anyone allowed to edit them edits what Git declares",
            format!("helm upgrade gitops-guard charts/gitops-guard --reuse-values --set webhook.labelledResources=all  # or list {resource} in webhook.rules"),
        ));
    }
    if out.is_empty() {
        out.push(Finding::new(
            Severity::Ok,
            CHECK,
            "managed kinds",
            format!("every kind the owners apply ({routed}) is routed to the guard"),
            "changes to managed objects reach the guard",
            "",
        ));
    }
    out
}

/// A kind with a `/scale` subresource, as discovery lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalable {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespaced: bool,
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a webhook's rules send the API server's `operation` on `<plural>/<subresource>` of
/// `group` (at `version`) to it, as the API server matches rules: resources `*/<subresource>`,
/// `*/*`, `<plural>/<subresource>` or `<plural>/*` (a bare `*` is no subresource), apiVersions
/// only with `matchPolicy: Exact`.
pub fn routes_subresource(
    webhook: &Value,
    group: &str,
    version: &str,
    plural: &str,
    subresource: &str,
    namespaced: bool,
    operation: &str,
) -> bool {
    let exact = webhook.get("matchPolicy").and_then(Value::as_str) == Some("Exact");
    webhook
        .get("rules")
        .and_then(Value::as_array)
        .is_some_and(|rules| {
            rules.iter().any(|rule| {
                let has = |key: &str, wanted: &[&str]| {
                    strings(rule, key)
                        .iter()
                        .any(|v| wanted.contains(&v.as_str()))
                };
                let scope = rule.get("scope").and_then(Value::as_str).unwrap_or("*");
                has("operations", &[operation, "*"])
                    && has("apiGroups", &["*", group])
                    && (!exact || has("apiVersions", &["*", version]))
                    && has(
                        "resources",
                        &[
                            &format!("*/{subresource}"),
                            "*/*",
                            &format!("{plural}/{subresource}"),
                            &format!("{plural}/*"),
                        ],
                    )
                    && match scope {
                        "Namespaced" => namespaced,
                        "Cluster" => !namespaced,
                        _ => true,
                    }
            })
        })
}

/// Whether a webhook's rules send the API server's UPDATE of `<plural>/scale` to it (see
/// [`routes_subresource`]).
pub fn routes_scale(webhook: &Value, target: &Scalable) -> bool {
    routes_subresource(
        webhook,
        &target.group,
        &target.version,
        &target.plural,
        "scale",
        target.namespaced,
        "UPDATE",
    )
}

/// A status subresource the guard protects, as the cluster serves its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    pub target: Served,
    /// Why a hand-written status matters, in one line.
    pub why: String,
    /// The chart's neighbours entry routes it (else the custody entry, from `webhook.rules`).
    pub neighbours: bool,
}

/// The statuses the guard protects, among the kinds the cluster serves (`resolve`: `Kind.group`
/// → the served resource): the `/status` of every owner and source kind that has one (core's
/// custody vocabulary), a StatefulSet's, a Pod's, a Service's and an Ingress's.
pub fn protected_statuses(resolve: impl Fn(&str) -> Option<Served>) -> Vec<Protected> {
    let mut out: Vec<Protected> = gitops_guard_core::custody::KINDS
        .iter()
        .filter(|k| k.status_subresource)
        .filter_map(|k| {
            let target = resolve(&format!("{}.{}", k.kind, k.group))?;
            Some(Protected {
                target,
                why: format!(
                    "the guard and the agents trust what the status of {} says (a source's artifact and digest, an inventory): written by hand, it points them at what Git does not say",
                    k.noun
                ),
                neighbours: false,
            })
        })
        .collect();
    for (kind, why) in [
        (
            "StatefulSet.apps",
            "a StatefulSet's status says which revision its Pods are made from: written by hand, Pods come from a revision Git does not declare",
        ),
        (
            "Pod",
            "a Pod's status (its podIP, its readiness) steers a Service's traffic: only the kubelet writes it",
        ),
        (
            "Service",
            "a Service's status.loadBalancer is where its traffic arrives (external-dns publishes it): only Kubernetes, the agents and loadBalancerControllers write it on a managed one",
        ),
        (
            "Ingress.networking.k8s.io",
            "an Ingress's status.loadBalancer is where its traffic arrives (external-dns publishes it): only the agents and loadBalancerControllers write it on a managed one",
        ),
    ] {
        if let Some(target) = resolve(kind) {
            out.push(Protected {
                target,
                why: why.to_string(),
                neighbours: true,
            });
        }
    }
    out
}

/// Check `guard`, coverage of the protected statuses: a webhook of the guard routes the UPDATE
/// (the only write of a `/status`) of each. `namespace`: the guard's, for the fix.
pub fn status_coverage(
    configs: &[Value],
    protected: &[Protected],
    namespace: &str,
) -> Vec<Finding> {
    if configs.is_empty() {
        return Vec::new();
    }
    let routes = |p: &Protected, operation: &str| {
        configs.iter().flat_map(webhooks).any(|w| {
            routes_subresource(
                w,
                &p.target.group,
                &p.target.version,
                &p.target.plural,
                "status",
                p.target.namespaced,
                operation,
            )
        })
    };
    let mut out = Vec::new();
    for p in protected.iter().filter(|p| !routes(p, "UPDATE")) {
        let resource = p.target.resource();
        let finding = if ["CREATE", "DELETE", "CONNECT"]
            .iter()
            .any(|op| routes(p, op))
        {
            "a webhook of the guard routes its /status, but not for UPDATE (its only write)"
        } else {
            "no webhook of the guard routes UPDATE of its /status"
        };
        let fix = if p.neighbours {
            format!(
                "helm upgrade gitops-guard charts/gitops-guard -n {namespace} --reuse-values --set webhook.neighbours.enabled=true  # the neighbours entries route UPDATE of pods/status, statefulsets/status, services/status and ingresses/status"
            )
        } else {
            let group = &p.target.group;
            let plural = &p.target.plural;
            format!(
                "helm upgrade gitops-guard charts/gitops-guard -n {namespace} -f values.yaml  # with this in values.yaml's webhook.rules (the custody entry routes it, operations CREATE, UPDATE, DELETE): - {{apiGroups: [{group}], resources: [{plural}, {plural}/status]}}"
            )
        };
        out.push(Finding::new(
            Severity::Fail,
            CHECK,
            format!("{resource}/status"),
            finding,
            p.why.clone(),
            fix,
        ));
    }
    if out.is_empty() && !protected.is_empty() {
        out.push(Finding::new(
            Severity::Ok,
            CHECK,
            "status",
            format!(
                "the /status of every kind the guard protects ({}) is routed to the guard",
                protected.len()
            ),
            "a status written by hand reaches the guard",
            "",
        ));
    }
    out
}

/// Check `guard`, coverage of `/scale`: every kind with a scale subresource is routed by one of
/// the guard's webhooks (`kubectl scale` carries no labels, so only an entry without an
/// objectSelector on ownership labels sees it: the chart's `scale` entry).
pub fn scale_coverage(configs: &[Value], scalable: &[Scalable], namespace: &str) -> Vec<Finding> {
    if configs.is_empty() {
        return Vec::new();
    }
    let missing: Vec<&Scalable> = scalable
        .iter()
        .filter(|t| {
            !configs
                .iter()
                .flat_map(webhooks)
                .any(|w| routes_scale(w, t))
        })
        .collect();
    if missing.is_empty() {
        return vec![Finding::new(
            Severity::Ok,
            CHECK,
            "scale",
            format!(
                "the /scale of every kind that has one ({}) is routed to the guard",
                scalable.len()
            ),
            "kubectl scale of a managed object reaches the guard",
            "",
        )];
    }
    missing
        .into_iter()
        .map(|t| {
            let resource = if t.group.is_empty() {
                t.plural.clone()
            } else {
                format!("{}.{}", t.plural, t.group)
            };
            Finding::new(
                Severity::Warn,
                CHECK,
                format!("{resource}/scale"),
                "no webhook of the guard routes its /scale",
                format!("kubectl scale {resource} changes replicas of a managed object without the guard seeing it"),
                format!(
                    "helm upgrade gitops-guard charts/gitops-guard -n {namespace} --reuse-values  # the chart routes the /scale of every CRD installed before it runs (webhook.scale.discover)"
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vwc(name: &str, webhook: Value) -> Value {
        json!({"metadata": {"name": name}, "webhooks": [webhook]})
    }

    fn webhook(extra: Value) -> Value {
        let mut w = json!({"name": WEBHOOK_NAME, "failurePolicy": "Fail", "timeoutSeconds": 3,
            "matchConditions": [{"name": "skip-kubernetes", "expression": "true"}],
            "clientConfig": {"service": {"namespace": "gitops-guard", "name": "gitops-guard"}}});
        if let (Some(w), Some(extra)) = (w.as_object_mut(), extra.as_object()) {
            w.extend(extra.clone());
        }
        w
    }

    fn severities(findings: &[Finding]) -> Vec<(Severity, String)> {
        findings
            .iter()
            .map(|f| (f.severity, f.finding.clone()))
            .collect()
    }

    #[test]
    fn finds_the_guard_by_webhook_name_or_label() {
        let all = vec![
            vwc("gitops-guard-custody", webhook(json!({}))),
            vwc("other", json!({"name": "other.example.com"})),
            json!({"metadata": {"name": "relabelled", "labels": {"app.kubernetes.io/part-of": "gitops-guard"}},
                   "webhooks": [{"name": "renamed"}]}),
        ];
        let configs = guard_configurations(&all);
        let found: Vec<&str> = configs.iter().map(name).collect();
        assert_eq!(found, vec!["gitops-guard-custody", "relabelled"]);
        assert_eq!(
            location(&guard_configurations(&all)),
            Some(Location {
                namespace: "gitops-guard".into(),
                fullname: "gitops-guard".into()
            })
        );
    }

    #[test]
    fn severity_of_each_setting() {
        let ok = check(&[vwc("gg-custody", webhook(json!({})))], Some(20), &[]);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].severity, Severity::Ok);
        assert_eq!(ok[0].subject, "ValidatingWebhookConfiguration gg-custody");

        let ignore = webhook(json!({"failurePolicy": "Ignore"}));
        assert_eq!(
            severities(&check(&[vwc("gg-custody", ignore.clone())], Some(20), &[])),
            vec![(Severity::Warn, "failurePolicy Ignore".to_string())]
        );
        // The chart's Ignore entries are Ignore by design.
        assert_eq!(
            check(&[vwc("gg-neighbours", ignore)], Some(20), &[])[0].severity,
            Severity::Ok
        );
        let slow = webhook(json!({"timeoutSeconds": 30}));
        assert_eq!(
            severities(&check(&[vwc("gg-custody", slow)], Some(20), &[])),
            vec![(Severity::Warn, "timeoutSeconds 30".to_string())]
        );
        // Unset: the API server's defaults, failurePolicy Fail and timeoutSeconds 10.
        let unset = json!({"name": WEBHOOK_NAME});
        assert_eq!(
            severities(&check(&[vwc("gg-custody", unset)], Some(20), &[])),
            vec![
                (
                    Severity::Warn,
                    "failurePolicy Fail, and Kubernetes 1.20 has no matchConditions (1.28+)"
                        .to_string()
                ),
                (Severity::Warn, "timeoutSeconds 10".to_string())
            ]
        );
        assert_eq!(check(&[], Some(20), &[])[0].severity, Severity::Fail);
    }

    #[test]
    fn fail_without_match_conditions_blocks_kubernetes_too() {
        let bare = webhook(json!({"matchConditions": []}));
        let old = check(&[vwc("gg-custody", bare.clone())], Some(20), &[]);
        assert_eq!(
            severities(&old),
            vec![(
                Severity::Warn,
                "failurePolicy Fail, and Kubernetes 1.20 has no matchConditions (1.28+)"
                    .to_string()
            )]
        );
        assert!(
            old[0]
                .fix
                .contains("kubectl delete validatingwebhookconfiguration gg-custody")
        );
        assert_eq!(
            severities(&check(&[vwc("gg-custody", bare)], Some(30), &[])),
            vec![(
                Severity::Warn,
                "failurePolicy Fail without matchConditions".to_string()
            )]
        );
        let ignore = webhook(json!({"matchConditions": [], "failurePolicy": "Ignore"}));
        assert_eq!(
            check(&[vwc("gg-neighbours", ignore)], Some(20), &[])[0].severity,
            Severity::Ok
        );
    }

    #[test]
    fn namespace_name_label_is_trusted_from_1_21() {
        let by_name = webhook(json!({"namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]}}));
        let old = check(&[vwc("gg-custody", by_name.clone())], Some(20), &[]);
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].severity, Severity::Fail);
        assert_eq!(
            old[0].finding,
            "namespaceSelector excludes namespaces by kubernetes.io/metadata.name (this server is 1.20)"
        );
        assert!(old[0].fix.starts_with(
            "kubectl patch validatingwebhookconfiguration gg-custody --type=json -p '[{\"op\":\"remove\",\"path\":\"/webhooks/0/namespaceSelector/matchExpressions/0\"}]'"
        ));
        assert_eq!(
            check(&[vwc("gg-custody", by_name.clone())], None, &[])[0].severity,
            Severity::Fail
        );
        assert_eq!(
            check(&[vwc("gg-custody", by_name)], Some(21), &[])[0].severity,
            Severity::Ok
        );

        // Other labels: see super::selectors (whether changing one takes writes past the guard).
        let team = webhook(json!({"namespaceSelector": {"matchLabels": {"team/x": "a"}}}));
        assert_eq!(
            check(&[vwc("gg-enforce-all", team)], Some(30), &[])[0].severity,
            Severity::Ok
        );
    }

    #[test]
    fn scale_is_routed_as_the_api_server_matches_rules() {
        let rollouts = Scalable {
            group: "argoproj.io".into(),
            version: "v1alpha1".into(),
            plural: "rollouts".into(),
            namespaced: true,
        };
        let rule = |groups: Value, resources: Value, extra: Value| {
            let mut r = json!({"apiGroups": groups, "apiVersions": ["*"], "resources": resources,
                "operations": ["UPDATE"], "scope": "Namespaced"});
            if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
                r.extend(extra.clone());
            }
            webhook(json!({"rules": [r]}))
        };
        let cases = [
            (
                rule(json!(["argoproj.io"]), json!(["rollouts/scale"]), json!({})),
                true,
            ),
            (rule(json!(["*"]), json!(["*/scale"]), json!({})), true),
            (rule(json!(["*"]), json!(["*/*"]), json!({})), true),
            (
                rule(json!(["argoproj.io"]), json!(["rollouts/*"]), json!({})),
                true,
            ),
            (rule(json!(["*"]), json!(["*"]), json!({})), false),
            (
                rule(json!(["argoproj.io"]), json!(["rollouts"]), json!({})),
                false,
            ),
            (rule(json!(["apps"]), json!(["*/scale"]), json!({})), false),
            (
                rule(
                    json!(["*"]),
                    json!(["*/scale"]),
                    json!({"operations": ["CREATE"]}),
                ),
                false,
            ),
            (
                rule(
                    json!(["*"]),
                    json!(["*/scale"]),
                    json!({"scope": "Cluster"}),
                ),
                false,
            ),
            (
                rule(
                    json!(["*"]),
                    json!(["*/scale"]),
                    json!({"apiVersions": ["v1"]}),
                ),
                true,
            ),
        ];
        for (w, want) in cases {
            assert_eq!(routes_scale(&w, &rollouts), want, "{w}");
        }
        let mut exact = rule(
            json!(["*"]),
            json!(["*/scale"]),
            json!({"apiVersions": ["v1"]}),
        );
        exact["matchPolicy"] = json!("Exact");
        assert!(!routes_scale(&exact, &rollouts));

        let deployments = Scalable {
            group: "apps".into(),
            version: "v1".into(),
            plural: "deployments".into(),
            namespaced: true,
        };
        let configs = [vwc(
            "gg-scale",
            rule(json!(["apps"]), json!(["deployments/scale"]), json!({})),
        )];
        let found = scale_coverage(&configs, &[deployments.clone(), rollouts.clone()], "gg");
        assert_eq!(
            found
                .iter()
                .map(|f| (f.severity, f.subject.as_str()))
                .collect::<Vec<_>>(),
            vec![(Severity::Warn, "rollouts.argoproj.io/scale")]
        );
        assert!(
            found[0]
                .fix
                .starts_with("helm upgrade gitops-guard charts/gitops-guard -n gg --reuse-values")
        );
        let all = scale_coverage(&configs, &[deployments], "gg");
        assert_eq!(all[0].severity, Severity::Ok);
        assert!(scale_coverage(&[], &[rollouts], "gg").is_empty());
    }

    #[test]
    fn protected_statuses_are_routed_for_update() {
        let resolve = |k: &str| {
            let (group, plural) = match k {
                "GitRepository.source.toolkit.fluxcd.io" => {
                    ("source.toolkit.fluxcd.io", "gitrepositories")
                }
                // Argo CD's Application keeps its status in the object: no subresource.
                "Application.argoproj.io" => ("argoproj.io", "applications"),
                "StatefulSet.apps" => ("apps", "statefulsets"),
                "Pod" => ("", "pods"),
                "Service" => ("", "services"),
                "Ingress.networking.k8s.io" => ("networking.k8s.io", "ingresses"),
                _ => return None,
            };
            Some(Served {
                group: group.into(),
                version: "v1".into(),
                plural: plural.into(),
                namespaced: true,
            })
        };
        let protected = protected_statuses(resolve);
        assert_eq!(
            protected
                .iter()
                .map(|p| p.target.resource())
                .collect::<Vec<_>>(),
            vec![
                "gitrepositories.source.toolkit.fluxcd.io",
                "statefulsets.apps",
                "pods",
                "services",
                "ingresses.networking.k8s.io"
            ]
        );
        let rule = |groups: Value, resources: Value, operations: Value| {
            json!({"apiGroups": groups, "apiVersions": ["*"], "resources": resources,
                "operations": operations, "scope": "Namespaced"})
        };
        let custody = vwc(
            "gg-custody",
            webhook(
                json!({"rules": [rule(json!(["source.toolkit.fluxcd.io"]), json!(["*", "*/status"]), json!(["CREATE", "UPDATE", "DELETE"]))]}),
            ),
        );
        let neighbours = vwc(
            "gg-neighbours",
            webhook(json!({"rules": [
                rule(json!([""]), json!(["pods/ephemeralcontainers", "pods/status"]), json!(["UPDATE"])),
                rule(json!(["apps"]), json!(["statefulsets/status"]), json!(["UPDATE"]))]})),
        );
        let load_balancers = vwc(
            "gg-neighbours-unlabelled",
            webhook(json!({"rules": [
                rule(json!([""]), json!(["services/status"]), json!(["UPDATE"])),
                rule(json!(["networking.k8s.io"]), json!(["ingresses/status"]), json!(["UPDATE"]))]})),
        );
        let found = |configs: &[Value]| {
            status_coverage(configs, &protected, "gg")
                .into_iter()
                .map(|f| (f.severity, f.subject, f.finding))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            found(&[custody.clone(), neighbours.clone(), load_balancers.clone()]),
            vec![(
                Severity::Ok,
                "status".to_string(),
                "the /status of every kind the guard protects (5) is routed to the guard"
                    .to_string()
            )]
        );
        // The custody entry routes the sources but not their status.
        let bare = vwc(
            "gg-custody",
            webhook(
                json!({"rules": [rule(json!(["source.toolkit.fluxcd.io"]), json!(["*"]), json!(["CREATE", "UPDATE", "DELETE"]))]}),
            ),
        );
        let missing = status_coverage(
            &[bare, neighbours.clone(), load_balancers.clone()],
            &protected,
            "gg",
        );
        assert_eq!(
            missing
                .iter()
                .map(|f| (f.severity, f.subject.as_str(), f.finding.as_str()))
                .collect::<Vec<_>>(),
            vec![(
                Severity::Fail,
                "gitrepositories.source.toolkit.fluxcd.io/status",
                "no webhook of the guard routes UPDATE of its /status"
            )]
        );
        assert!(
            missing[0].why.contains("a Flux source"),
            "{}",
            missing[0].why
        );
        assert_eq!(
            missing[0].fix,
            "helm upgrade gitops-guard charts/gitops-guard -n gg -f values.yaml  # with this in values.yaml's webhook.rules (the custody entry routes it, operations CREATE, UPDATE, DELETE): - {apiGroups: [source.toolkit.fluxcd.io], resources: [gitrepositories, gitrepositories/status]}"
        );
        // Routed, but only for an operation a status never sees.
        let create_only = vwc(
            "gg-neighbours",
            webhook(json!({"rules": [
                rule(json!([""]), json!(["pods/status"]), json!(["CREATE"])),
                rule(json!(["apps"]), json!(["statefulsets/*"]), json!(["*"]))]})),
        );
        assert_eq!(
            found(&[custody.clone(), create_only, load_balancers]),
            vec![(
                Severity::Fail,
                "pods/status".to_string(),
                "a webhook of the guard routes its /status, but not for UPDATE (its only write)"
                    .to_string()
            )]
        );
        // Without the neighbours entry: both of its statuses, and how to turn it on.
        let off = status_coverage(&[custody], &protected, "gg");
        assert_eq!(
            off.iter().map(|f| f.subject.as_str()).collect::<Vec<_>>(),
            vec![
                "statefulsets.apps/status",
                "pods/status",
                "services/status",
                "ingresses.networking.k8s.io/status"
            ]
        );
        assert!(off[1].fix.starts_with(
            "helm upgrade gitops-guard charts/gitops-guard -n gg --reuse-values --set webhook.neighbours.enabled=true"
        ));
        assert!(status_coverage(&[], &protected, "gg").is_empty());
    }

    #[test]
    fn availability_of_the_deployment() {
        let loc = Location {
            namespace: "gg".into(),
            fullname: "guard".into(),
        };
        let pdb = [json!({"metadata": {"name": "guard"}})];
        let deployment = |replicas: i64, ready: i64| json!({"spec": {"replicas": replicas}, "status": {"readyReplicas": ready}});
        let found = |d: Option<&Value>, pdbs: &[Value]| {
            availability(&loc, d, pdbs)
                .into_iter()
                .map(|f| (f.severity, f.finding))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            found(Some(&deployment(2, 2)), &pdb),
            vec![(
                Severity::Ok,
                "2 of 2 replicas ready, with a PodDisruptionBudget".to_string()
            )]
        );
        assert_eq!(
            found(Some(&deployment(1, 1)), &pdb),
            vec![(Severity::Warn, "1 replica(s)".to_string())]
        );
        assert_eq!(
            found(Some(&deployment(3, 2)), &[]),
            vec![
                (Severity::Warn, "2 of 3 replicas ready".to_string()),
                (
                    Severity::Warn,
                    "no PodDisruptionBudget in its namespace".to_string()
                )
            ]
        );
        assert_eq!(found(None, &pdb)[0].0, Severity::Warn);
    }

    #[test]
    fn worst_label_exclusion() {
        let by = |key: &str| {
            vwc(
                "gg",
                webhook(json!({"namespaceSelector": {"matchExpressions": [
                {"key": key, "operator": "NotIn", "values": ["kube-system"]}]}})),
            )
        };
        let name = by("kubernetes.io/metadata.name");
        assert_eq!(
            label_exclusion(&[name.clone(), by("team")], Some(20)),
            Some(Severity::Fail)
        );
        // From 1.21 the name label is the API server's; other labels are the selectors check's.
        assert_eq!(label_exclusion(&[name, by("team")], Some(21)), None);
        assert_eq!(
            label_exclusion(&[vwc("gg", webhook(json!({})))], Some(20)),
            None
        );
    }

    #[test]
    fn kinds_the_owners_apply_are_routed() {
        let owners = [
            json!({"kind": "Kustomization", "metadata": {"namespace": "team-a", "name": "apps"},
                   "status": {"inventory": {"entries": [
                       {"id": "team-a_web_apps_Deployment", "v": "v1"},
                       {"id": "team-a_api_apps_Deployment", "v": "v1"},
                       {"id": "team-a_web-env__ConfigMap", "v": "v1"}]}}}),
            json!({"kind": "Application", "metadata": {"namespace": "argocd", "name": "web"},
                   "status": {"resources": [{"group": "networking.k8s.io", "kind": "Ingress", "namespace": "prod", "name": "web"}]}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "not-an-owner"}}),
        ];
        let kinds = managed_kinds(&owners);
        let as_vec = |m: &BTreeMap<String, usize>| {
            m.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>()
        };
        assert_eq!(
            as_vec(&kinds),
            vec![
                ("ConfigMap".to_string(), 1),
                ("Deployment.apps".to_string(), 2),
                ("Ingress.networking.k8s.io".to_string(), 1)
            ]
        );
        let resolve = |k: &str| {
            let (group, plural) = match k {
                "ConfigMap" => ("", "configmaps"),
                "Deployment.apps" => ("apps", "deployments"),
                "Ingress.networking.k8s.io" => ("networking.k8s.io", "ingresses"),
                _ => return None,
            };
            Some(Served {
                group: group.into(),
                version: "v1".into(),
                plural: plural.into(),
                namespaced: true,
            })
        };
        let rules = json!({"rules": [
            {"apiGroups": ["", "apps"], "resources": ["configmaps", "deployments"], "operations": ["CREATE", "UPDATE", "DELETE"], "scope": "*"},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "operations": ["UPDATE"]}]});
        let found = kind_coverage(&[vwc("gg-flux-kustomize", webhook(rules))], &kinds, resolve);
        assert_eq!(
            found
                .iter()
                .map(|f| (f.severity, f.subject.as_str(), f.finding.as_str()))
                .collect::<Vec<_>>(),
            vec![(
                Severity::Fail,
                "Ingress.networking.k8s.io",
                "1 managed object(s) of this kind; no webhook of the guard routes ingresses.networking.k8s.io"
            )]
        );
        let everything =
            json!({"rules": [{"apiGroups": ["*"], "resources": ["*"], "operations": ["*"]}]});
        let all = kind_coverage(&[vwc("gg", webhook(everything))], &kinds, resolve);
        assert_eq!(
            (all[0].severity, all[0].finding.as_str()),
            (
                Severity::Ok,
                "every kind the owners apply (3) is routed to the guard"
            )
        );
        assert!(kind_coverage(&[], &kinds, resolve).is_empty());
    }

    #[test]
    fn service_and_endpoints() {
        let state = |service: Option<Value>, endpoints: Option<Value>| ServiceState {
            namespace: "gg".into(),
            name: "guard".into(),
            service: Ok(service),
            endpoints: Ok(endpoints),
        };
        let svc = json!({"metadata": {"name": "guard"}});
        let eps = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}]});
        let not_ready = json!({"subsets": [{"notReadyAddresses": [{"ip": "10.0.0.1"}]}]});
        let cases = [
            (
                state(Some(svc.clone()), Some(eps)),
                Severity::Ok,
                "exists, 2 ready endpoint(s)",
            ),
            (
                state(Some(svc.clone()), Some(not_ready)),
                Severity::Fail,
                "no ready endpoints: no guard Pod is answering",
            ),
            (
                state(Some(svc), None),
                Severity::Fail,
                "no ready endpoints: no guard Pod is answering",
            ),
            (
                state(None, None),
                Severity::Fail,
                "the Service the webhooks call does not exist",
            ),
        ];
        for (s, severity, finding) in cases {
            let f = service_finding(&s);
            assert_eq!((f.severity, f.finding.as_str()), (severity, finding));
            assert_eq!(f.subject, "Service gg/guard");
        }
    }
}
