"""Safety properties of the rendered chart, for the value sets and cluster versions users run."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from typing import Any

import celpy
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from conftest import workspace_version
from render import NAMESPACE, RELEASE, objects, render

WEBHOOK_NAME = "guard.gitops-guard.dev"
ALWAYS_EXCLUDED = {"kube-system", "kube-node-lease", "kube-public", NAMESPACE}
DEFAULT_EXCLUDED = ["kube-system", "kube-node-lease", "kube-public"]
NAME_LABEL = "kubernetes.io/metadata.name"
KUSTOMIZE = "kustomize.toolkit.fluxcd.io/name"
HELM = "helm.toolkit.fluxcd.io/name"
TRACKING = "app.kubernetes.io/instance"
# The entries that select on ownership labels (and route those objects' status too).
LABEL_ENTRIES = {"flux-kustomize", "flux-helm", "argocd-labels"}
# The chart's own label on its objects: it must exclude nothing (anyone who may label can set it).
SELF = ("app.kubernetes.io/part-of", "gitops-guard")
# The groups of the GitOps owner and source kinds: routed by the custody entry only.
FLUX_CUSTODY_GROUPS = [
    "source.toolkit.fluxcd.io",
    "source.extensions.fluxcd.io",
    "kustomize.toolkit.fluxcd.io",
    "helm.toolkit.fluxcd.io",
    "image.toolkit.fluxcd.io",
]
CUSTODY_GROUPS = [*FLUX_CUSTODY_GROUPS, "argoproj.io"]
# (group, resource) of the owner and source kinds the guard traces custody through.
CUSTODY_KINDS = [
    ("source.toolkit.fluxcd.io", "gitrepositories"),
    ("source.toolkit.fluxcd.io", "ocirepositories"),
    ("source.toolkit.fluxcd.io", "helmrepositories"),
    ("source.toolkit.fluxcd.io", "helmcharts"),
    ("source.toolkit.fluxcd.io", "buckets"),
    ("source.toolkit.fluxcd.io", "externalartifacts"),
    ("source.extensions.fluxcd.io", "artifactgenerators"),
    ("kustomize.toolkit.fluxcd.io", "kustomizations"),
    ("helm.toolkit.fluxcd.io", "helmreleases"),
    ("image.toolkit.fluxcd.io", "imagerepositories"),
    ("image.toolkit.fluxcd.io", "imagepolicies"),
    ("image.toolkit.fluxcd.io", "imageupdateautomations"),
    ("argoproj.io", "applications"),
    ("argoproj.io", "applicationsets"),
    ("argoproj.io", "appprojects"),
]
KUSTOMIZATIONS = ("kustomize.toolkit.fluxcd.io", "kustomizations")
DEFAULT_ROOTS = [
    {"kind": "Kustomization", "namespace": "flux-system", "name": "flux-system"},
    {"kind": "GitRepository", "namespace": "flux-system", "name": "flux-system"},
    {"kind": "AppProject", "namespace": "argocd", "name": "default"},
]
# Cluster-scoped resources the default rules list (a namespaceSelector never skips these, except
# Namespaces, which it matches on their own labels).
CLUSTER_SCOPED = {
    "namespaces",
    "clusterroles",
    "clusterrolebindings",
    "storageclasses",
    "priorityclasses",
    "customresourcedefinitions",
    "ingressclasses",
}
FLUX_KC = "system:serviceaccount:flux-system:kustomize-controller"
FLUX_HC = "system:serviceaccount:flux-system:helm-controller"
ARGO_AC = "system:serviceaccount:argocd:argocd-application-controller"
HPA = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
RS_CONTROLLER = "system:serviceaccount:kube-system:replicaset-controller"


def sa(username: str) -> list[str]:
    """The groups the API server gives a genuine service account's token."""
    namespace = username.split(":")[2]
    return ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
# What the neighbours entries route: (group, resource, operations).
CUD = ["CREATE", "UPDATE", "DELETE"]
NEIGHBOURS_ANY = [
    ("", "pods", CUD),
    ("", "endpoints", CUD),
    ("", "pods/ephemeralcontainers", ["UPDATE"]),
    ("", "pods/status", ["UPDATE"]),
    ("", "pods/eviction", ["CREATE"]),
    ("", "pods/exec", ["CONNECT"]),
    ("", "pods/attach", ["CONNECT"]),
    ("", "pods/portforward", ["CONNECT"]),
    ("apps", "replicasets", CUD),
    # A StatefulSet adopts them by their labels and makes Pods from the one its status names.
    ("apps", "controllerrevisions", CUD),
    ("apps", "statefulsets/status", ["UPDATE"]),
    ("discovery.k8s.io", "endpointslices", CUD),
]
NEIGHBOURS_UNLABELLED = [
    ("batch", "jobs", CUD),
    ("autoscaling", "horizontalpodautoscalers", CUD),
    ("autoscaling.k8s.io", "verticalpodautoscalers", CUD),
    ("keda.sh", "scaledobjects", CUD),
    ("policy", "poddisruptionbudgets", CUD),
    ("apps", "deployments", ["CREATE", "UPDATE"]),
    ("apps", "statefulsets", ["CREATE", "UPDATE"]),
    ("apps", "daemonsets", ["CREATE", "UPDATE"]),
    ("", "replicationcontrollers", ["CREATE", "UPDATE"]),
    ("batch", "cronjobs", ["CREATE", "UPDATE"]),
    # A hand-made Ingress may claim a managed Ingress's host (controllers merge them by host).
    ("networking.k8s.io", "ingresses", ["CREATE", "UPDATE"]),
    # Where a Service's or Ingress's traffic arrives (status.loadBalancer): annotation-tracked ones.
    ("", "services/status", ["UPDATE"]),
    ("networking.k8s.io", "ingresses/status", ["UPDATE"]),
]
LOAD_BALANCER_STATUS = [("", "services/status"), ("networking.k8s.io", "ingresses/status")]
POD_SUBRESOURCES = {"pods/ephemeralcontainers", "pods/status", "pods/eviction", "pods/exec", "pods/attach", "pods/portforward"}
# Left out of every entry (values.yaml webhook.labelledResources).
LEFT_OUT = [
    ("", "events"),
    ("events.k8s.io", "events"),
    ("coordination.k8s.io", "leases"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authentication.k8s.io", "tokenreviews"),
    ("metrics.k8s.io", "pods"),
    ("custom.metrics.k8s.io", "pods"),
]

# name -> (values, kube_version); kube_version None = Helm's default (recent) capabilities.
SCENARIOS: dict[str, tuple[dict[str, Any], str | None]] = {
    "default": ({}, None),
    "kube-1.20": ({}, "v1.20.2"),
    "kube-1.27": ({}, "v1.27.9"),
    "kube-1.28": ({}, "v1.28.0"),
    "kube-1.30": ({}, "v1.30.0"),
    "cert-manager": ({"certManager": {"enabled": True}}, None),
    "cert-manager-1.20": ({"certManager": {"enabled": True}}, "v1.20.2"),
    "audit": ({"config": {"mode": "audit"}}, None),
    "label-tracking": ({"config": {"argocd": {"labelTracking": True}}}, "v1.30.0"),
}


@functools.lru_cache(maxsize=None)
def _render(values_json: str, kube_version: str | None) -> list[dict[str, Any]]:
    return objects(render(json.loads(values_json), kube_version=kube_version))


def rendered(values: dict[str, Any] | None = None, kube_version: str | None = None) -> list[dict[str, Any]]:
    return _render(json.dumps(values or {}, sort_keys=True), kube_version)


def name_label_is_trusted(kube_version: str | None) -> bool:
    """Whether the API server sets (and locks) kubernetes.io/metadata.name: 1.21 and later.
    None is Helm's default capabilities, a recent version."""
    if kube_version is None:
        return True
    major, minor = (int(x) for x in kube_version.lstrip("v").split(".")[:2])
    return (major, minor) >= (1, 21)


def config_of(objs: list[dict[str, Any]]) -> dict[str, Any]:
    """The guard's config file, as the ConfigMap carries it."""
    config: dict[str, Any] = yaml.safe_load(one(objs, "ConfigMap")["data"]["config.yaml"])
    return config


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objs, kind)
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def webhooks(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Entry (configuration name minus the release prefix) -> its single webhook."""
    out = {}
    for cfg in of_kind(objs, "ValidatingWebhookConfiguration"):
        assert len(cfg["webhooks"]) == 1, cfg["metadata"]["name"]
        out[cfg["metadata"]["name"].removeprefix(f"{RELEASE}-")] = cfg["webhooks"][0]
    return out


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics (NotIn and DoesNotExist match an absent label)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def resource_matches(pattern: str, resource: str) -> bool:
    """Kubernetes rule semantics: "*" is every resource but no subresource, "*/status" the status
    of every resource, "*/*" everything, "pods/*" every subresource of pods."""
    if pattern == "*/*":
        return True
    if "/" not in resource:
        return pattern in ("*", resource)
    if "/" not in pattern:
        return False
    res, sub = resource.split("/", 1)
    p_res, p_sub = pattern.split("/", 1)
    return p_res in ("*", res) and p_sub in ("*", sub)


def rule_matches(
    rules: list[dict[str, Any]],
    group: str,
    resource: str,
    operation: str = "UPDATE",
    cluster_scoped: bool = False,
) -> bool:
    return any(
        (group in r["apiGroups"] or "*" in r["apiGroups"])
        and any(resource_matches(p, resource) for p in r["resources"])
        and (operation in r["operations"] or "*" in r["operations"])
        and r.get("scope", "*") in ("*", "Cluster" if cluster_scoped else "Namespaced")
        for r in rules
    )


def routes(
    hooks: dict[str, dict[str, Any]],
    namespace: str | None,
    ns_labels: dict[str, str],
    obj_labels: dict[str, str],
    group: str = "apps",
    resource: str = "deployments",
    operation: str = "UPDATE",
) -> list[str]:
    """Which entries the API server would call for such a request.

    namespace None: a cluster-scoped object other than a Namespace, which a namespaceSelector
    never skips. A Namespace object (resource "namespaces") is matched on its own labels, which
    the caller passes as ns_labels. kubernetes.io/metadata.name defaults to the namespace's name
    (as the API server sets it from 1.21); ns_labels may override it (what anyone can do < 1.21).
    """
    is_namespace = group == "" and resource.split("/")[0] == "namespaces"
    cluster_scoped = namespace is None or is_namespace
    ns = {NAME_LABEL: namespace, **ns_labels} if namespace is not None else {}
    return sorted(
        name
        for name, hook in hooks.items()
        if rule_matches(hook["rules"], group, resource, operation, cluster_scoped)
        and (namespace is None or selector_matches(hook["namespaceSelector"], ns))
        and selector_matches(hook["objectSelector"], obj_labels)
    )


# --- the webhook configurations ---------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_entry_is_safe(scenario: str) -> None:
    values, kube = SCENARIOS[scenario]
    objs = rendered(values, kube)
    hooks = webhooks(objs)
    assert hooks, "no webhook configuration rendered"
    for name, hook in hooks.items():
        assert hook["name"] == WEBHOOK_NAME, name
        assert hook["sideEffects"] == "NoneOnDryRun", name
        assert hook["matchPolicy"] == "Equivalent", name
        assert hook["timeoutSeconds"] == 3, name
        assert hook["admissionReviewVersions"] == ["v1"], name
        assert hook["clientConfig"]["service"] == {
            "namespace": NAMESPACE,
            "name": RELEASE,
            "path": "/validate",
            "port": 443,
        }, name
        ns_expressions = hook["namespaceSelector"].get("matchExpressions", [])
        if name_label_is_trusted(kube):
            # The API server sets and locks the label: the exclusion is safe to route on.
            exclusion = ns_expressions[0]
            assert exclusion["key"] == NAME_LABEL
            assert exclusion["operator"] == "NotIn"
            assert ALWAYS_EXCLUDED <= set(exclusion["values"]), name
        else:
            # Anyone may set it: the guard excludes by name instead (config excludedNamespaces).
            assert NAME_LABEL not in json.dumps(hook["namespaceSelector"]), name
        # Nothing is left out by a label a person can set on the object.
        assert SELF[0] not in json.dumps(hook["objectSelector"]), name
        assert all(
            e["operator"] in ("Exists", "DoesNotExist")
            for e in hook["objectSelector"].get("matchExpressions", [])
        ), name
        for rule in hook["rules"]:
            assert "admissionregistration.k8s.io" not in rule["apiGroups"], name
            assert "*" not in rule["apiGroups"], name
            assert rule["apiVersions"] == ["*"]
        subresources = {res for r in hook["rules"] for res in r["resources"] if "/" in res}
        if name == "scale":
            assert all(res.endswith("/scale") for r in hook["rules"] for res in r["resources"])
        elif name == "neighbours":
            # The Pod subresources of exec, attach, port-forward (CONNECT), evictions and debug,
            # and a StatefulSet's status.
            assert subresources == POD_SUBRESOURCES | {"statefulsets/status"}, name
        elif name == "custody":
            # Status only, and only in the owner and source groups.
            assert subresources and all(res.endswith("/status") for res in subresources), name
            assert {g for r in hook["rules"] for g in r["apiGroups"]} <= set(CUSTODY_GROUPS), name
        elif name in LABEL_ENTRIES:
            # The status of what carries ownership labels: before 1.22 a status write keeps
            # labels, annotations, finalizers and owner references; so does a Namespace's
            # finalize write, on every version.
            assert subresources and all(
                res.endswith("/status") or res == "namespaces/finalize" for res in subresources
            ), name
            assert "statefulsets/status" not in subresources and "pods/status" not in subresources
            assert not {g for r in hook["rules"] for g in r["apiGroups"]} & set(CUSTODY_GROUPS), name
        elif name in ("neighbours-unlabelled", "enforce-all"):
            # Only where a Service's or Ingress's traffic arrives (status.loadBalancer).
            assert subresources == {r for _, r in LOAD_BALANCER_STATUS}, name
            assert not {g for r in hook["rules"] for g in r["apiGroups"]} & set(CUSTODY_GROUPS), name
        elif name == "argocd-namespaces":
            assert subresources == {"namespaces/finalize"}, name
        else:
            assert subresources == set(), name
            assert not {g for r in hook["rules"] for g in r["apiGroups"]} & set(CUSTODY_GROUPS), name
        if name != "neighbours":
            assert all("CONNECT" not in r["operations"] for r in hook["rules"]), name
        config = config_of(objs)
        assert ALWAYS_EXCLUDED <= set(config["excludedNamespaces"])


def test_default_entries_and_failure_policies() -> None:
    hooks = webhooks(rendered())
    policies = {name: hook["failurePolicy"] for name, hook in hooks.items()}
    assert policies == {
        "custody": "Fail",
        "flux-kustomize": "Fail",
        "flux-helm": "Fail",
        "enforce-all": "Fail",
        "argocd-annotations": "Ignore",
        "argocd-namespaces": "Ignore",
        "neighbours": "Ignore",
        "neighbours-unlabelled": "Ignore",
        "scale": "Ignore",
    }


def test_failure_policies_are_configurable() -> None:
    hooks = webhooks(
        rendered(
            {
                "webhook": {
                    "failurePolicy": "Ignore",
                    "timeoutSeconds": 10,
                    "argocdAnnotationTracking": {"enabled": True, "failurePolicy": "Fail"},
                    "scale": {"enabled": False, "failurePolicy": "Ignore", "targets": []},
                    "custody": {"failurePolicy": "Ignore"},
                    "neighbours": {"enabled": True, "failurePolicy": "Fail"},
                }
            }
        )
    )
    assert {n: h["failurePolicy"] for n, h in hooks.items()} == {
        "neighbours": "Fail",
        "neighbours-unlabelled": "Fail",
        "custody": "Ignore",
        "flux-kustomize": "Ignore",
        "flux-helm": "Ignore",
        "enforce-all": "Fail",
        "argocd-annotations": "Fail",
        "argocd-namespaces": "Fail",
    }
    assert {h["timeoutSeconds"] for h in hooks.values()} == {10}


def test_audit_mode_never_fails_closed() -> None:
    objs = rendered({"config": {"mode": "audit"}})
    assert {h["failurePolicy"] for h in webhooks(objs).values()} == {"Ignore"}
    config = yaml.safe_load(one(objs, "ConfigMap")["data"]["config.yaml"])
    assert config["mode"] == "audit"


@pytest.mark.parametrize("kube", [None, "v1.20.2", "v1.30.0"])
def test_entries_partition_the_objects(kube: str | None) -> None:
    """Each write reaches the guard through exactly the entry meant for it, at most once."""
    hooks = webhooks(rendered({}, kube))
    trusted = name_label_is_trusted(kube)
    enforce = {"gitops-guard.dev/enforce": "all"}
    cases = [
        # (namespace, namespace labels, object labels, expected entries)
        ("apps", {}, {KUSTOMIZE: "apps"}, ["flux-kustomize"]),
        ("apps", {}, {HELM: "web"}, ["flux-helm"]),
        ("apps", {}, {KUSTOMIZE: "apps", HELM: "web"}, ["flux-kustomize"]),
        # An unlabelled Deployment (a hand-made neighbour, or annotation-tracked): neighbours-unlabelled.
        ("apps", {}, {}, ["neighbours-unlabelled"]),
        ("apps", {}, {TRACKING: "web"}, ["neighbours-unlabelled"]),
        ("prod", enforce, {}, ["enforce-all"]),
        ("prod", enforce, {KUSTOMIZE: "apps"}, ["flux-kustomize"]),
        # The chart's own label excludes nothing: anyone who may label an object could set it.
        ("apps", {}, {KUSTOMIZE: "guard", SELF[0]: SELF[1]}, ["flux-kustomize"]),
        ("prod", enforce, {SELF[0]: SELF[1]}, ["enforce-all"]),
    ]
    # The excluded namespaces: left out by the API server where it owns kubernetes.io/metadata.name
    # (>= 1.21); below, routed like any namespace, and the guard excludes them by name.
    excluded_cases = [
        ("kube-system", {}, {KUSTOMIZE: "infra"}, ["flux-kustomize"]),
        ("kube-public", enforce, {}, ["enforce-all"]),
        ("kube-node-lease", {}, {HELM: "x"}, ["flux-helm"]),
        (NAMESPACE, {}, {KUSTOMIZE: "guard"}, ["flux-kustomize"]),
        (NAMESPACE, enforce, {}, ["enforce-all"]),
        (NAMESPACE, {}, {SELF[0]: SELF[1]}, ["neighbours-unlabelled"]),
    ]
    for namespace, ns_labels, obj_labels, want in excluded_cases:
        cases.append((namespace, ns_labels, obj_labels, want if not trusted else []))
    if not trusted:
        # A namespace relabelled as kube-system is not left out: the label is not proof of the name.
        cases.append(("prod", {NAME_LABEL: "kube-system"}, {KUSTOMIZE: "apps"}, ["flux-kustomize"]))
    for namespace, ns_labels, obj_labels, want in cases:
        got = routes(hooks, namespace, ns_labels, obj_labels)
        assert got == want, (namespace, ns_labels, obj_labels)

    # A Namespace object is matched by namespaceSelector on its own labels: labelling one for
    # enforce-all must not depend on the guard, and a Flux-managed one stays with Flux's entry.
    def namespace_object(name: str, labels: dict[str, str]) -> list[str]:
        return routes(hooks, name, labels, {NAME_LABEL: name, **labels}, "", "namespaces")

    assert namespace_object("prod", enforce) == ["argocd-namespaces"]
    assert namespace_object("apps", {}) == ["argocd-namespaces"]
    assert namespace_object("apps", {KUSTOMIZE: "apps"}) == ["flux-kustomize"]
    assert namespace_object("prod", {**enforce, KUSTOMIZE: "apps"}) == ["flux-kustomize"]
    assert namespace_object("kube-system", {KUSTOMIZE: "infra"}) == ([] if trusted else ["flux-kustomize"])
    assert namespace_object(NAMESPACE, {}) == ([] if trusted else ["argocd-namespaces"])
    # A Namespace's finalize write keeps its metadata (labels, annotations such as
    # gitops-guard.dev/mode), so it goes where the Namespace itself goes.
    def finalize(name: str, labels: dict[str, str]) -> list[str]:
        return routes(hooks, name, labels, {NAME_LABEL: name, **labels}, "", "namespaces/finalize")

    assert finalize("prod", enforce) == ["argocd-namespaces"]
    assert finalize("apps", {}) == ["argocd-namespaces"]
    assert finalize("apps", {KUSTOMIZE: "apps"}) == ["flux-kustomize"]
    assert finalize("web", {HELM: "web"}) == ["flux-helm"]
    # Cluster-scoped objects (a namespaceSelector never skips them) reach a Fail entry only with
    # an ownership label; the chart's own ClusterRole has none.
    assert routes(hooks, None, {}, {SELF[0]: SELF[1]}, "rbac.authorization.k8s.io", "clusterroles") == [
        "argocd-annotations"
    ]
    assert routes(hooks, None, {}, {KUSTOMIZE: "x"}, "rbac.authorization.k8s.io", "clusterroles") == [
        "flux-kustomize"
    ]
    # A Scale carries no labels: only the scale entry sees it, and never in excluded namespaces.
    assert routes(hooks, "apps", {}, {}, "apps", "deployments/scale") == ["scale"]
    assert routes(hooks, "prod", enforce, {}, "", "replicationcontrollers/scale") == ["scale"]
    assert routes(hooks, "kube-system", {}, {}, "apps", "deployments/scale") == ([] if trusted else ["scale"])
    assert routes(hooks, NAMESPACE, {}, {}, "apps", "deployments/scale") == ([] if trusted else ["scale"])
    # Owners and sources go to the custody entry, whatever their labels.
    for labels in ({}, {KUSTOMIZE: "flux-system"}, {HELM: "x"}, {TRACKING: "root"}):
        assert routes(hooks, "flux-system", {}, labels, "kustomize.toolkit.fluxcd.io", "kustomizations") == [
            "custody"
        ]
        assert routes(hooks, "prod", enforce, labels, "argoproj.io", "applications") == ["custody"]
    # Resources left out on purpose never reach the guard.
    for group, resource in LEFT_OUT:
        for labels in ({}, {KUSTOMIZE: "apps"}):
            assert routes(hooks, "apps", {}, labels, group, resource) == [], resource
    # What Kubernetes writes beneath managed objects, whatever its labels: the neighbours entry.
    for group, resource, operations in NEIGHBOURS_ANY:
        for labels in ({}, {KUSTOMIZE: "apps"}, {HELM: "web"}):
            for op in operations:
                assert routes(hooks, "apps", {}, labels, group, resource, op) == ["neighbours"], resource
                assert routes(hooks, "prod", enforce, labels, group, resource, op) == ["neighbours"]
    for group, resource in [
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ]:
        assert routes(hooks, None, {}, {KUSTOMIZE: "x"}, group, resource) == []


def _requests(hooks: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(group, resource) pairs to try: every resource the rules name (wildcards expanded to the
    owner and source kinds, Argo Rollouts and Flux notifications), their status and scale, and
    resources nobody routes."""
    out: set[tuple[str, str]] = set(CUSTODY_KINDS) | set(LEFT_OUT) | {
        (g, r.split("/")[0]) for g, r, _ in NEIGHBOURS_ANY + NEIGHBOURS_UNLABELLED
    } | {
        ("cert-manager.io", "certificates"),
        ("storage.k8s.io", "volumeattachments"),
        ("argoproj.io", "rollouts"),
        ("notification.toolkit.fluxcd.io", "alerts"),
        ("notification.toolkit.fluxcd.io", "receivers"),
        ("", "pods"),
        ("apps", "replicasets"),
        ("coordination.k8s.io", "leases"),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    }
    for hook in hooks.values():
        for rule in hook["rules"]:
            for group in rule["apiGroups"]:
                for res in rule["resources"]:
                    if "*" not in res:
                        out.add((group, res.split("/")[0]))
    subresources = ("", "/status", "/scale", *(p.removeprefix("pods") for p in POD_SUBRESOURCES))
    return sorted({(g, r + sub) for g, r in out for sub in subresources})


@pytest.mark.parametrize("scenario", ["kube-1.20", "kube-1.30", "label-tracking", "audit"])
def test_every_request_reaches_at_most_one_entry(scenario: str) -> None:
    """The partition, exhaustively: every (group, resource, operation), for objects with and
    without each ownership label, in ordinary, enforce-all, excluded and relabelled namespaces,
    and cluster-scoped, reaches the guard through at most one entry."""
    values, kube = SCENARIOS[scenario]
    hooks = webhooks(rendered(values, kube))
    tracking = {TRACKING: "web"}
    object_labels: list[dict[str, str]] = [
        {},
        {KUSTOMIZE: "apps"},
        {HELM: "web"},
        {KUSTOMIZE: "apps", HELM: "web"},
        tracking,
        {**tracking, HELM: "web"},
        {SELF[0]: SELF[1]},
    ]
    namespaces: list[tuple[str | None, dict[str, str]]] = [
        ("apps", {}),
        ("prod", {"gitops-guard.dev/enforce": "all"}),
        ("kube-system", {}),
        (NAMESPACE, {}),
        ("prod", {NAME_LABEL: "kube-system"}),
        (None, {}),
    ]
    seen: set[str] = set()
    for group, resource in _requests(hooks):
        kind = resource.split("/")[0]
        is_namespace = group == "" and kind == "namespaces"
        cluster_scoped = kind in CLUSTER_SCOPED and not is_namespace
        for operation in ("CREATE", "UPDATE", "DELETE", "CONNECT"):
            for namespace, ns_labels in namespaces:
                if cluster_scoped != (namespace is None):
                    continue
                for labels in object_labels:
                    # A Namespace object is matched on its own labels.
                    selected = {**ns_labels, **labels} if is_namespace else ns_labels
                    got = routes(hooks, namespace, selected, labels, group, resource, operation)
                    where = (group, resource, operation, namespace, selected, labels)
                    assert len(got) <= 1, (got, where)
                    seen.update(got)
                    if group in CUSTODY_GROUPS:
                        assert set(got) <= {"custody"}, where
                    if (group, resource) in (("", "pods/status"), ("apps", "statefulsets/status")):
                        # A Pod's podIP and readiness steer a Service, a StatefulSet's revisions
                        # its Pods: the neighbours entry's.
                        assert set(got) <= ({"neighbours"} if operation == "UPDATE" else set()), where
                    elif (group, resource) in LOAD_BALANCER_STATUS:
                        # Where a Service's or Ingress's traffic arrives: labelled or not.
                        enforced = ns_labels.get("gitops-guard.dev/enforce") == "all"
                        expected = LABEL_ENTRIES | ({"enforce-all"} if enforced else {"neighbours-unlabelled"})
                        assert set(got) <= (expected if operation == "UPDATE" else LABEL_ENTRIES), where
                    elif resource.endswith("/status") and group not in CUSTODY_GROUPS:
                        # Only what carries ownership labels: its label entry.
                        assert set(got) <= (LABEL_ENTRIES if labels else set()), where
    # The exploration reached every entry (else it proves little).
    assert seen == set(hooks)


@pytest.mark.parametrize("kube", ["v1.20.2", "v1.30.0"])
def test_custody_entry_routes_owners_sources_and_their_status(kube: str) -> None:
    """Owners and sources carry no ownership label as a rule: the custody entry takes them, and
    their status (a Flux source's artifact URL and digest), with failurePolicy Fail."""
    objs = rendered({}, kube)
    hooks = webhooks(objs)
    custody = hooks["custody"]
    assert custody["name"] == WEBHOOK_NAME
    assert custody["failurePolicy"] == "Fail"
    assert custody["objectSelector"] == {}
    assert {g for r in custody["rules"] for g in r["apiGroups"]} == set(CUSTODY_GROUPS)
    for rule in custody["rules"]:
        if rule["apiGroups"] == ["argoproj.io"]:
            # Argo CD's kinds only: Argo Rollouts and Workflows share the group.
            assert rule["resources"] == [
                "applications", "applications/status", "applicationsets",
                "applicationsets/status", "appprojects", "appprojects/status",
            ], rule
        else:
            assert rule["resources"] == ["*", "*/status"], rule
        assert rule["operations"] == ["CREATE", "UPDATE", "DELETE"], rule
        assert rule["scope"] == "Namespaced", rule
    for group in CUSTODY_GROUPS:
        if group != "argoproj.io":
            assert rule_matches(custody["rules"], group, "anything/status", "UPDATE"), group
    assert not rule_matches(custody["rules"], "argoproj.io", "rollouts", "UPDATE")
    assert not rule_matches(custody["rules"], "argoproj.io", "rollouts/status", "UPDATE")
    for group, resource in CUSTODY_KINDS:
        for operation in ("CREATE", "UPDATE", "DELETE"):
            assert routes(hooks, "flux-system", {}, {}, group, resource, operation) == ["custody"]
        assert routes(hooks, "team", {}, {}, group, f"{resource}/status") == ["custody"]
    # The same namespace exclusions as every entry, and nothing else.
    config = config_of(objs)
    if name_label_is_trusted(kube):
        exclusion = {"key": NAME_LABEL, "operator": "NotIn", "values": [*DEFAULT_EXCLUDED, NAMESPACE]}
        assert custody["namespaceSelector"] == {"matchExpressions": [exclusion]}
        assert routes(hooks, "kube-system", {}, {}, *KUSTOMIZATIONS) == []
        assert "matchConditions" in custody
    else:
        assert custody["namespaceSelector"] == {}
        assert routes(hooks, "kube-system", {}, {}, *KUSTOMIZATIONS) == ["custody"]
        assert {"kube-system", NAMESPACE} <= set(config["excludedNamespaces"])
        assert "matchConditions" not in custody


def test_custody_match_conditions_skip_kubernetes_and_agents_but_not_gitops_controllers() -> None:
    """What Flux's and Argo CD's controllers apply to owners and sources is checked too."""
    hooks = webhooks(
        rendered({"config": {"agents": {"users": ["ci-deployer"], "groups": ["gitops-agents"]}}}, "v1.30.0")
    )
    custody = hooks["custody"]
    assert [c["name"] for c in custody["matchConditions"]] == [
        "skip-kubernetes-and-agents",
        "skip-kubernetes-and-agent-groups",
    ]
    assert _skips(custody, "system:kube-controller-manager", [])
    assert _skips(custody, "system:node:worker-1", ["system:nodes"])
    assert _skips(custody, "ci-deployer", None)
    assert _skips(custody, "robot", ["gitops-agents"])
    kustomization = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system", "labels": {KUSTOMIZE: "flux-system"}},
    }
    for controller in (FLUX_KC, "system:serviceaccount:flux-system:source-controller", ARGO_AC):
        assert not _skips(custody, controller, sa(controller), kustomization, kustomization)
        assert not _skips(custody, controller, sa(controller), kustomization, None)
    assert not _skips(custody, "ana", ["developers", "system:authenticated"])


@pytest.mark.parametrize("kube", ["v1.20.2", "v1.30.0"])
def test_status_of_ordinary_kinds_is_routed_only_with_ownership_labels(kube: str) -> None:
    """A Pod's status goes to the neighbours entry (its podIP and readiness steer a Service), and a
    StatefulSet's (its controller makes Pods from the revision it names). Any other status write
    reaches the guard only for an object with ownership labels, through that label's entry: before
    1.22 a status write keeps labels, annotations, finalizers and owner references, so
    `gitops-guard.dev/allow: manual` written through deployments/status would count. Unlabelled
    objects' status (written by controllers all the time) is not routed."""
    hooks = webhooks(rendered({"config": {"argocd": {"labelTracking": True}}}, kube))
    for labels in ({}, {KUSTOMIZE: "apps"}):
        assert routes(hooks, "apps", {}, labels, "", "pods/status") == ["neighbours"]
        assert routes(hooks, "apps", {}, labels, "apps", "statefulsets/status") == ["neighbours"]
    for group, resource in [
        ("apps", "deployments/status"),
        ("apps", "daemonsets/status"),
        ("", "namespaces/status"),
        ("batch", "jobs/status"),
        ("notification.toolkit.fluxcd.io", "alerts/status"),
    ]:
        enforce = {"gitops-guard.dev/enforce": "all"}
        assert routes(hooks, "apps", {}, {}, group, resource) == [], (group, resource)
        assert routes(hooks, "prod", enforce, {}, group, resource) == [], (group, resource)
        for labels, entry in (
            ({KUSTOMIZE: "apps"}, "flux-kustomize"),
            ({HELM: "web"}, "flux-helm"),
            ({TRACKING: "web"}, "argocd-labels"),
        ):
            assert routes(hooks, "apps", {}, labels, group, resource) == [entry], (group, resource, labels)
            assert routes(hooks, "prod", enforce, labels, group, resource) == [entry]


@pytest.mark.parametrize("kube", ["v1.20.2", "v1.30.0"])
def test_load_balancer_status_of_services_and_ingresses_is_routed_whatever_their_labels(kube: str) -> None:
    """status.loadBalancer of a Service or Ingress is where its traffic arrives (external-dns
    publishes it): the guard sees every status write of one, managed or not, through exactly one
    entry: labelled ones through their label's entry, unlabelled ones (annotation-tracked, or
    hand-made) through neighbours-unlabelled, those in enforce-all namespaces through enforce-all."""
    hooks = webhooks(rendered({"config": {"argocd": {"labelTracking": True}}}, kube))
    enforce = {"gitops-guard.dev/enforce": "all"}
    for group, resource in LOAD_BALANCER_STATUS:
        assert routes(hooks, "apps", {}, {}, group, resource, "UPDATE") == ["neighbours-unlabelled"]
        assert routes(hooks, "prod", enforce, {}, group, resource, "UPDATE") == ["enforce-all"]
        for labels, entry in (
            ({KUSTOMIZE: "apps"}, "flux-kustomize"),
            ({HELM: "web"}, "flux-helm"),
            ({TRACKING: "web"}, "argocd-labels"),
        ):
            assert routes(hooks, "apps", {}, labels, group, resource, "UPDATE") == [entry]
            assert routes(hooks, "prod", enforce, labels, group, resource, "UPDATE") == [entry]
    # Hand-made Ingresses, which may claim a managed one's host: neighbours-unlabelled.
    for op in ("CREATE", "UPDATE"):
        assert routes(hooks, "apps", {}, {}, "networking.k8s.io", "ingresses", op) == ["neighbours-unlabelled"]
        assert routes(hooks, "prod", enforce, {}, "networking.k8s.io", "ingresses", op) == ["enforce-all"]
    assert routes(hooks, "apps", {}, {}, "networking.k8s.io", "ingresses", "DELETE") == ["argocd-annotations"]
    # The config lists who else writes it.
    config = yaml.safe_load(one(rendered({}, kube), "ConfigMap")["data"]["config.yaml"])
    assert {(c["group"], c["kind"]) for c in config["loadBalancerControllers"]} == {
        ("", "Service"),
        ("networking.k8s.io", "Ingress"),
    }
    assert any(c["kind"] == "Challenge" for c in config["workloadControllers"])


def test_subresources_outside_the_custody_groups_are_refused() -> None:
    import helm_python

    values = {
        "webhook": {
            "labelledResources": "rules",
            "rules": [{"apiGroups": ["apps"], "resources": ["deployments", "*/status"]}],
        }
    }
    with pytest.raises(helm_python.HelmError) as err:
        render(values)
    assert "subresource" in str(err.value) and "*/status" in str(err.value)
    # A rule mixing groups is split: the custody groups to the custody entry, the rest elsewhere.
    hooks = webhooks(
        rendered(
            {
                "webhook": {
                    "labelledResources": "rules",
                    "rules": [{"apiGroups": ["apps", "argoproj.io"], "resources": ["deployments"]}],
                }
            }
        )
    )
    assert hooks["custody"]["rules"][0]["apiGroups"] == ["argoproj.io"]
    assert hooks["flux-kustomize"]["rules"][0]["apiGroups"] == ["apps"]


@pytest.mark.parametrize("kube", ["v1.20.2", "v1.21.0", "v1.30.0"])
def test_namespace_exclusion_only_where_the_api_server_owns_the_label(kube: str) -> None:
    """Below 1.21 kubernetes.io/metadata.name is an ordinary label: relabel namespace prod as
    kube-system and an exclusion on it would hide prod from every entry. The guard excludes by
    name there; from 1.21 the API server sets and locks the label, so the entries exclude on it."""
    objs = rendered({}, kube)
    hooks = webhooks(objs)
    for name, hook in hooks.items():
        mentioned = NAME_LABEL in json.dumps(hook["namespaceSelector"])
        assert mentioned == name_label_is_trusted(kube), name
    if name_label_is_trusted(kube):
        for name, hook in hooks.items():
            expressions = hook["namespaceSelector"]["matchExpressions"]
            (exclusion,) = [e for e in expressions if e["key"] == NAME_LABEL]
            assert exclusion == {
                "key": NAME_LABEL,
                "operator": "NotIn",
                "values": [*DEFAULT_EXCLUDED, NAMESPACE],
            }, name
    # Either way the guard gets the same namespaces by name.
    assert config_of(objs)["excludedNamespaces"] == [*DEFAULT_EXCLUDED, NAMESPACE]


@pytest.mark.parametrize("kube", ["v1.20.2", "v1.30.0"])
def test_config_carries_the_exclusions_and_the_custody_roots(kube: str) -> None:
    config = config_of(rendered({}, kube))
    assert {"kube-system", NAMESPACE} <= set(config["excludedNamespaces"])
    assert len(config["excludedNamespaces"]) == len(set(config["excludedNamespaces"]))
    assert config["custody"] == {"roots": DEFAULT_ROOTS}
    assert config["operational"]["argocdSyncOverrides"] == []
    # Pod deletion, eviction, exec/attach/port-forward and debug stay operational by default.
    for key in ("podDelete", "podEviction", "podExec", "podDebug"):
        assert config["operational"][key] is True, key


def test_config_excluded_namespaces_follow_the_webhook_unless_set() -> None:
    # Left at the default: webhook.excludeNamespaces + the release namespace, deduplicated.
    objs = rendered({"webhook": {"excludeNamespaces": ["kube-system", "sandbox", NAMESPACE]}}, "v1.20.2")
    assert config_of(objs)["excludedNamespaces"] == ["kube-system", "sandbox", NAMESPACE]
    other = objects(render({}, kube_version="v1.20.2", namespace="guard"))
    assert config_of(other)["excludedNamespaces"] == [*DEFAULT_EXCLUDED, "guard"]
    # Set explicitly: used as given, plus the release namespace (the guard's own objects are
    # excluded by namespace only).
    objs = rendered({"config": {"excludedNamespaces": ["kube-system", "legacy"]}})
    assert config_of(objs)["excludedNamespaces"] == ["kube-system", "legacy", NAMESPACE]
    # (the API server's exclusion still follows webhook.excludeNamespaces)
    hooks = webhooks(objs)
    assert hooks["custody"]["namespaceSelector"]["matchExpressions"][0]["values"] == [
        *DEFAULT_EXCLUDED,
        NAMESPACE,
    ]


def test_custody_config_from_values() -> None:
    roots = [{"kind": "GitRepository", "namespace": "gitops", "name": "fleet"}]
    config = config_of(
        rendered(
            {"config": {"custody": {"roots": roots}, "operational": {"argocdSyncOverrides": ["revision"]}}}
        )
    )
    assert config["custody"] == {"roots": roots}
    assert config["operational"]["argocdSyncOverrides"] == ["revision"]
    assert config["operational"]["fluxReconcile"] is True


def test_label_tracking_adds_its_entry_and_keeps_the_partition() -> None:
    hooks = webhooks(
        rendered(
            {"config": {"argocd": {"labelTracking": True, "trackingLabel": "argocd.argoproj.io/instance"}}}
        )
    )
    assert hooks["argocd-labels"]["failurePolicy"] == "Fail"
    label = {"argocd.argoproj.io/instance": "web"}
    assert routes(hooks, "apps", {}, label) == ["argocd-labels"]
    assert routes(hooks, "apps", {}, {**label, KUSTOMIZE: "apps"}) == ["flux-kustomize"]
    assert routes(hooks, "prod", {"gitops-guard.dev/enforce": "all"}, label) == ["argocd-labels"]
    assert routes(hooks, "apps", {}, {}) == ["neighbours-unlabelled"]
    assert routes(hooks, "apps", {}, {}, "", "configmaps") == ["argocd-annotations"]


def test_optional_entries_can_be_switched_off() -> None:
    hooks = webhooks(
        rendered(
            {
                "webhook": {
                    "enforceAllNamespaces": {"enabled": False, "failurePolicy": "Fail"},
                    "argocdAnnotationTracking": {"enabled": False, "failurePolicy": "Ignore"},
                    "neighbours": {"enabled": False, "failurePolicy": "Ignore"},
                }
            }
        )
    )
    assert sorted(hooks) == ["custody", "flux-helm", "flux-kustomize", "scale"]
    assert routes(hooks, "prod", {"gitops-guard.dev/enforce": "all"}, {}) == []


def test_extra_excluded_namespaces_and_expressions() -> None:
    hooks = webhooks(
        rendered(
            {
                "webhook": {
                    "excludeNamespaces": ["kube-system", "kube-node-lease", "kube-public", "sandbox"],
                    "namespaceSelectorExpressions": [{"key": "team", "operator": "NotIn", "values": ["lab"]}],
                }
            }
        )
    )
    assert routes(hooks, "sandbox", {}, {KUSTOMIZE: "x"}) == []
    assert routes(hooks, "apps", {"team": "lab"}, {KUSTOMIZE: "x"}) == []
    assert routes(hooks, "apps", {"team": "web"}, {KUSTOMIZE: "x"}) == ["flux-kustomize"]


def test_rules_refuse_admissionregistration_and_wildcard_groups() -> None:
    import helm_python

    for groups in (["admissionregistration.k8s.io"], ["*"]):
        values = {"webhook": {"rules": [{"apiGroups": groups, "resources": ["*"]}]}}
        with pytest.raises(helm_python.HelmError) as err:
            render(values)
        assert "apiGroups" in str(err.value) or "admissionregistration" in str(err.value)


# --- descendants, neighbours and the generated rules ------------------------------------------


def _rule_set(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (g, res, op)
        for r in rules
        for g in r["apiGroups"]
        for res in r["resources"]
        for op in r["operations"]
    }


@pytest.mark.parametrize("kube", ["v1.20.2", "v1.28.0"])
def test_neighbours_entries_route_descendants_and_neighbours(kube: str) -> None:
    objs = rendered({}, kube)
    hooks = webhooks(objs)
    neighbours, unlabelled = hooks["neighbours"], hooks["neighbours-unlabelled"]
    assert _rule_set(neighbours["rules"]) == {(g, r, op) for g, r, ops in NEIGHBOURS_ANY for op in ops}
    assert _rule_set(unlabelled["rules"]) == {(g, r, op) for g, r, ops in NEIGHBOURS_UNLABELLED for op in ops}
    for hook in (neighbours, unlabelled):
        assert hook["failurePolicy"] == "Ignore"
        assert all(r["scope"] == "Namespaced" and r["apiVersions"] == ["*"] for r in hook["rules"])
    # exec/attach/port-forward and evictions carry no labels: only an empty objectSelector sees them.
    assert neighbours["objectSelector"] == {}
    assert unlabelled["objectSelector"] == {
        "matchExpressions": [
            {"key": KUSTOMIZE, "operator": "DoesNotExist"},
            {"key": HELM, "operator": "DoesNotExist"},
        ]
    }
    # The same namespace exclusions as every entry; enforce-all namespaces stay enforce-all's.
    expressions = unlabelled["namespaceSelector"].get("matchExpressions", [])
    assert {"key": "gitops-guard.dev/enforce", "operator": "NotIn", "values": ["all"]} in expressions
    trusted = name_label_is_trusted(kube)
    assert routes(hooks, "kube-system", {}, {}, "", "pods/exec", "CONNECT") == ([] if trusted else ["neighbours"])
    assert routes(hooks, NAMESPACE, {}, {}, "", "pods", "CREATE") == ([] if trusted else ["neighbours"])
    # A Pod of a managed Deployment, a hand-made Pod, labelled or not: the neighbours entry.
    for labels in ({}, {"app": "web"}, {KUSTOMIZE: "apps"}, {TRACKING: "web"}):
        assert routes(hooks, "apps", {}, labels, "", "pods", "UPDATE") == ["neighbours"]
    # Hand-made steering objects: neighbours-unlabelled; labelled ones are managed objects.
    for group, resource, operations in NEIGHBOURS_UNLABELLED:
        for op in operations:
            assert routes(hooks, "apps", {}, {}, group, resource, op) == ["neighbours-unlabelled"]
            assert routes(hooks, "apps", {}, {KUSTOMIZE: "apps"}, group, resource, op) == ["flux-kustomize"]
    # Deleting a hand-made workload is not steering anything: as before, argocd-annotations.
    assert routes(hooks, "apps", {}, {}, "apps", "deployments", "DELETE") == ["argocd-annotations"]
    assert routes(hooks, "prod", {"gitops-guard.dev/enforce": "all"}, {}, "apps", "deployments") == [
        "enforce-all"
    ]
    # matchConditions where the API server has them, as in the other entries.
    for hook in (neighbours, unlabelled):
        assert ("matchConditions" in hook) == (kube == "v1.28.0")


def test_neighbours_take_their_requests_from_the_annotation_entry() -> None:
    """At most one entry per request: argocd-annotations gives up what the neighbours entries
    take, and routes what it routed before when they are off."""
    on = webhooks(rendered())
    taken = _rule_set(on["neighbours"]["rules"]) | _rule_set(on["neighbours-unlabelled"]["rules"])
    assert not taken & _rule_set(on["argocd-annotations"]["rules"])
    assert not _rule_set(on["neighbours"]["rules"]) & _rule_set(on["enforce-all"]["rules"])
    for name in ("flux-kustomize", "flux-helm"):
        assert not any(rule_matches(on[name]["rules"], g, r, op) for g, r, op in _rule_set(on["neighbours"]["rules"]))
    off = webhooks(rendered({"webhook": {"neighbours": {"enabled": False, "failurePolicy": "Ignore"}}}))
    assert "neighbours" not in off and "neighbours-unlabelled" not in off
    annotations = _rule_set(off["argocd-annotations"]["rules"])
    for group, resource in [
        ("apps", "deployments"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("policy", "poddisruptionbudgets"),
        ("", "replicationcontrollers"),
    ]:
        assert {(group, resource, op) for op in CUD} <= annotations, resource
    assert routes(off, "apps", {}, {}, "", "pods", "CREATE") == []
    assert routes(off, "apps", {}, {}, "", "pods/exec", "CONNECT") == []


def test_user_rules_that_overlap_the_neighbours_are_split_or_refused() -> None:
    import helm_python

    rules = [
        {"apiGroups": ["", "apps"], "resources": ["configmaps", "pods", "deployments"]},
        {"apiGroups": ["example.com"], "resources": ["*"]},
    ]
    hooks = webhooks(rendered({"webhook": {"labelledResources": "rules", "rules": rules}}))
    kustomize = _rule_set(hooks["flux-kustomize"]["rules"])
    assert ("", "configmaps", "UPDATE") in kustomize and ("apps", "deployments", "UPDATE") in kustomize
    assert not any(g == "" and r == "pods" for g, r, _ in kustomize)
    assert ("example.com", "*", "DELETE") in kustomize
    annotations = _rule_set(hooks["argocd-annotations"]["rules"])
    assert ("apps", "deployments", "DELETE") in annotations
    assert ("apps", "deployments", "UPDATE") not in annotations
    # "*" in a group the neighbours route cannot be split: refused, with what to do instead.
    with pytest.raises(helm_python.HelmError) as err:
        render({"webhook": {"rules": [{"apiGroups": ["keda.sh"], "resources": ["*"]}]}})
    assert "list the resources" in str(err.value)


SERVED = [
    "v1",
    "v1/Pod",
    "apps/v1",
    "apps/v1/Deployment",
    "cert-manager.io/v1",
    "cert-manager.io/v1/Certificate",
    "metrics.k8s.io/v1beta1",
    "custom.metrics.k8s.io/v1beta2",
    "events.k8s.io/v1",
    "coordination.k8s.io/v1",
    "kustomize.toolkit.fluxcd.io/v1",
    "argoproj.io/v1alpha1",
    "argoproj.io/v1alpha1/Rollout",
    "apiregistration.k8s.io/v1",
]


def test_label_entries_route_every_served_kind_but_the_left_out_ones() -> None:
    """Only labelled objects reach the label entries, so they route every kind an agent may
    manage: every served group (CRDs included), minus the custody groups and the left-out list."""
    objs = objects(render({}, kube_version="v1.30.0", api_versions=SERVED))
    hooks = webhooks(objs)
    for name in ("flux-kustomize", "flux-helm"):
        rules = hooks[name]["rules"]
        for group, resource in [
            ("cert-manager.io", "certificates"),
            ("apiregistration.k8s.io", "apiservices"),
            ("", "persistentvolumes"),
            ("", "nodes"),
            ("storage.k8s.io", "volumeattachments"),
            ("apps", "deployments"),
            ("", "namespaces"),
        ]:
            assert rule_matches(rules, group, resource, "UPDATE", cluster_scoped=True), (name, resource)
        for group, resource in LEFT_OUT + [("admissionregistration.k8s.io", "validatingwebhookconfigurations")]:
            assert not rule_matches(rules, group, resource), (name, group, resource)
        groups = {g for r in rules for g in r["apiGroups"]}
        assert not groups & set(CUSTODY_GROUPS), name
        assert "admissionregistration.k8s.io" not in groups
        assert not any(g.endswith("metrics.k8s.io") for g in groups)
        # The core and apps groups by resource: Kubernetes writes the rest beneath managed objects.
        assert all("*" not in r["resources"] for r in rules if set(r["apiGroups"]) & {"", "apps"})
    # The custody groups reach the custody entry only (argoproj.io: Argo CD's kinds).
    for group, resource in CUSTODY_KINDS:
        assert routes(hooks, "team", {}, {KUSTOMIZE: "x"}, group, resource) == ["custody"]
    assert routes(hooks, "team", {}, {KUSTOMIZE: "x"}, "argoproj.io", "rollouts") == []
    # Offline (`helm template`): Kubernetes' built-in groups, plus the groups webhook.rules lists.
    hooks = webhooks(rendered())
    assert rule_matches(hooks["flux-kustomize"]["rules"], "rbac.authorization.k8s.io", "roles")
    assert rule_matches(hooks["flux-kustomize"]["rules"], "keda.sh", "scaledobjects")
    assert rule_matches(hooks["flux-kustomize"]["rules"], "notification.toolkit.fluxcd.io", "alerts")
    assert not rule_matches(hooks["flux-kustomize"]["rules"], "cert-manager.io", "certificates")


def test_label_entries_can_be_narrowed_to_the_listed_rules() -> None:
    rules = [{"apiGroups": ["apps"], "resources": ["deployments"]}]
    hooks = webhooks(rendered({"webhook": {"labelledResources": "rules", "rules": rules}}))
    for name in ("flux-kustomize", "flux-helm"):
        assert _rule_set(hooks[name]["rules"]) == {("apps", "deployments", op) for op in CUD}, name


# --- matchConditions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kube", "expected"),
    [("v1.20.2", False), ("v1.27.9", False), ("v1.28.0", True), ("v1.30.0", True), (None, True)],
)
def test_match_conditions_only_where_the_api_server_has_them(kube: str | None, expected: bool) -> None:
    hooks = webhooks(rendered({}, kube))
    assert {("matchConditions" in h) for h in hooks.values()} == {expected}


def test_match_conditions_can_be_switched_off() -> None:
    hooks = webhooks(rendered({"webhook": {"matchConditions": {"enabled": False}}}, "v1.30.0"))
    assert all("matchConditions" not in h for h in hooks.values())


def _skips(
    hook: dict[str, Any],
    username: str,
    groups: list[str] | None,
    obj: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    operation: str | None = None,
) -> bool:
    """Whether the API server would skip the guard for this request (a matchCondition is false).

    Evaluated with cel-python against the variables the API server binds: `request` (an
    AdmissionRequest), `object` and `oldObject` (null for DELETE and CREATE respectively).
    `groups` None leaves the field out; that must not be an error, as an erroring condition with
    failurePolicy Fail would reject the request.
    """
    user: dict[str, Any] = {"username": username}
    if groups is not None:
        user["groups"] = groups
    if obj is None and old is None:  # the object does not matter: an update of a plain object
        obj = old = _obj()
    operation = operation or (
        "UPDATE" if obj is not None and old is not None else ("CREATE" if obj is not None else "DELETE")
    )
    activation = {
        "request": celpy.json_to_cel({"uid": "x", "operation": operation, "userInfo": user}),
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(old),
    }
    env = celpy.Environment()
    results = []
    for cond in hook["matchConditions"]:
        result = env.program(env.compile(cond["expression"])).evaluate(activation)
        assert isinstance(result, celpy.celtypes.BoolType), (cond["name"], result)
        results.append(bool(result))
    return not all(results)


def _obj(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "apps"}
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta}


def test_match_conditions_skip_exactly_the_agents_of_each_entry() -> None:
    hooks = webhooks(
        rendered({"config": {"agents": {"users": ["ci-deployer"], "groups": ["gitops-agents"]}}}, "v1.30.0")
    )
    people = [
        ("ana", ["developers", "system:authenticated"]),
        ("ana", None),
        ("system:serviceaccount:argocd:argocd-server", []),
    ]
    for name, hook in hooks.items():
        for user, groups in people:
            assert not _skips(hook, user, groups), (name, user)
        # Kubernetes itself and the configured agents: skipped everywhere.
        assert _skips(hook, "system:kube-controller-manager", []), name
        assert _skips(hook, HPA, sa(HPA)), name
        assert _skips(hook, "system:node:worker-1", ["system:nodes", "system:authenticated"]), name
        assert _skips(hook, "ci-deployer", None), name
        assert _skips(hook, "robot", ["gitops-agents"]), name
    # Each tool's controllers only where the guard treats them as the agent.
    flux_obj = _obj({KUSTOMIZE: "apps"})
    for name in ("flux-kustomize", "flux-helm"):
        assert _skips(hooks[name], FLUX_KC, sa(FLUX_KC), flux_obj, flux_obj), name
        assert _skips(hooks[name], FLUX_KC, sa(FLUX_KC), None, flux_obj), name  # delete
        assert not _skips(hooks[name], ARGO_AC, sa(ARGO_AC), flux_obj, flux_obj), name
        # A create, or an update that moves the object to another owner, is the guard's to check:
        # the new owner must come from Git (chain of custody).
        assert not _skips(hooks[name], FLUX_HC, sa(FLUX_HC), flux_obj, None), name  # create
        moved = _obj({KUSTOMIZE: "evil"})
        assert not _skips(hooks[name], FLUX_KC, sa(FLUX_KC), moved, flux_obj), name
        relabelled = _obj({KUSTOMIZE: "apps", "kustomize.toolkit.fluxcd.io/namespace": "team-x"})
        assert not _skips(hooks[name], FLUX_KC, sa(FLUX_KC), relabelled, flux_obj), name
    assert not _skips(hooks["argocd-annotations"], FLUX_KC, sa(FLUX_KC))
    assert _skips(hooks["argocd-annotations"], ARGO_AC, sa(ARGO_AC))
    tracked = _obj(None, {"argocd.argoproj.io/tracking-id": "web:apps/Deployment:apps/web"})
    assert _skips(hooks["argocd-annotations"], ARGO_AC, sa(ARGO_AC), tracked, tracked)
    assert _skips(hooks["argocd-annotations"], ARGO_AC, sa(ARGO_AC), None, tracked)  # delete
    assert not _skips(hooks["argocd-annotations"], ARGO_AC, sa(ARGO_AC), tracked, None)  # create
    retracked = _obj(None, {"argocd.argoproj.io/tracking-id": "evil:apps/Deployment:apps/web"})
    assert not _skips(hooks["argocd-annotations"], ARGO_AC, sa(ARGO_AC), retracked, tracked)
    assert _skips(hooks["enforce-all"], FLUX_KC, sa(FLUX_KC), _obj(), _obj()) and _skips(
        hooks["enforce-all"], ARGO_AC, sa(ARGO_AC)
    )
    assert not _skips(hooks["scale"], FLUX_KC, sa(FLUX_KC)) and not _skips(hooks["scale"], ARGO_AC, sa(ARGO_AC))
    # Owners and sources: what the GitOps controllers apply to them is checked too.
    assert not _skips(hooks["custody"], FLUX_KC, sa(FLUX_KC)) and not _skips(hooks["custody"], ARGO_AC, sa(ARGO_AC))
    # A tenant service account (Flux impersonation) is decided by the guard, not skipped.
    assert not _skips(
        hooks["flux-kustomize"], "system:serviceaccount:team-a:reconciler", None, flux_obj, flux_obj
    )


def test_flux_controllers_still_reach_the_guard_for_objects_argo_cd_also_owns() -> None:
    """The guard denies a change by an agent that is not the agent of every owner."""
    tracking = {"argocd.argoproj.io/tracking-id": "web:apps/Deployment:apps/web"}
    both = _obj({KUSTOMIZE: "apps"}, tracking)
    flux_only = _obj({KUSTOMIZE: "apps"}, {"other": "x"})
    hooks = webhooks(rendered({}, "v1.30.0"))
    for name in ("flux-kustomize", "flux-helm"):
        assert not _skips(hooks[name], FLUX_KC, sa(FLUX_KC), both, both), name
        assert not _skips(hooks[name], FLUX_KC, sa(FLUX_KC), flux_only, both), name  # removing the annotation
        assert not _skips(hooks[name], FLUX_KC, sa(FLUX_KC), both, None), name  # create
        assert not _skips(hooks[name], FLUX_KC, sa(FLUX_KC), None, both), name  # delete
        assert _skips(hooks[name], FLUX_KC, sa(FLUX_KC), flux_only, flux_only), name
    assert not _skips(hooks["enforce-all"], FLUX_KC, sa(FLUX_KC), _obj(None, tracking), _obj(None, tracking))
    # With label tracking, Argo CD's label makes it a co-owner as well.
    hooks = webhooks(rendered({"config": {"argocd": {"labelTracking": True}}}, "v1.30.0"))
    labelled = _obj({KUSTOMIZE: "apps", "app.kubernetes.io/instance": "web"})
    assert not _skips(hooks["flux-kustomize"], FLUX_KC, sa(FLUX_KC), labelled, labelled)
    assert _skips(hooks["flux-kustomize"], FLUX_KC, sa(FLUX_KC), flux_only, flux_only)
    # ... and Flux's label makes Flux one for Argo CD's controller.
    assert not _skips(hooks["argocd-labels"], ARGO_AC, sa(ARGO_AC), labelled, labelled)
    argo_only = _obj({"app.kubernetes.io/instance": "web"})
    assert _skips(hooks["argocd-labels"], ARGO_AC, sa(ARGO_AC), argo_only, argo_only)


def test_match_conditions_skip_a_service_account_only_with_its_groups() -> None:
    """A user merely named like a service account (a static token, OIDC or x509 user called
    system:serviceaccount:flux-system:kustomize-controller) is nobody's agent and not Kubernetes:
    the API server must send its requests to the guard, which judges it so, instead of skipping
    them by the name alone. A genuine service account carries its namespace's group."""
    hooks = webhooks(rendered({}, "v1.30.0"))
    flux_obj = _obj({KUSTOMIZE: "apps"})
    impostor_groups: list[list[str] | None] = [
        None,
        [],
        ["system:authenticated"],
        ["system:serviceaccounts", "system:authenticated"],
        ["system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated"],
    ]
    for name, hook in hooks.items():
        for groups in impostor_groups:
            assert not _skips(hook, HPA, groups), (name, groups)
            assert not _skips(hook, RS_CONTROLLER, groups), (name, groups)
        assert _skips(hook, HPA, sa(HPA)), name
    for name in ("flux-kustomize", "flux-helm"):
        for groups in impostor_groups:
            assert not _skips(hooks[name], FLUX_KC, groups, flux_obj, flux_obj), (name, groups)
        assert _skips(hooks[name], FLUX_KC, sa(FLUX_KC), flux_obj, flux_obj), name


def test_match_conditions_follow_the_configured_namespaces() -> None:
    hooks = webhooks(
        rendered(
            {"config": {"flux": {"namespace": "gitops", "controllers": ["kustomize-controller"]}}}, "v1.30.0"
        )
    )
    flux_obj = _obj({KUSTOMIZE: "apps"})
    gitops_kc = "system:serviceaccount:gitops:kustomize-controller"
    assert _skips(hooks["flux-kustomize"], gitops_kc, sa(gitops_kc), flux_obj, flux_obj)
    assert not _skips(hooks["flux-kustomize"], FLUX_KC, sa(FLUX_KC), flux_obj, flux_obj)
    assert not _skips(hooks["flux-kustomize"], FLUX_HC, sa(FLUX_HC), flux_obj, flux_obj)


def test_neighbours_match_conditions_skip_kubernetes_and_the_agents() -> None:
    """On >= 1.28 the ReplicaSet controller's Pods, the HPA's and the agents' writes never reach
    the guard through the neighbours entries; a person's do, and no condition errors on a CONNECT
    (whose object has no metadata) or an eviction."""
    hooks = webhooks(rendered({"config": {"agents": {"users": ["ci-deployer"], "groups": []}}}, "v1.28.0"))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "apps", "labels": {"app": "web"}}}
    exec_options = {"apiVersion": "v1", "kind": "PodExecOptions", "command": ["sh"]}
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-1", "namespace": "apps"}}
    for name in ("neighbours", "neighbours-unlabelled"):
        hook = hooks[name]
        assert _skips(hook, RS_CONTROLLER, sa(RS_CONTROLLER), pod, None), name
        assert _skips(hook, HPA, sa(HPA)), name
        assert _skips(hook, "ci-deployer", None), name
        assert _skips(hook, FLUX_KC, sa(FLUX_KC), _obj(), _obj()), name
        assert _skips(hook, ARGO_AC, sa(ARGO_AC), _obj(), _obj()), name
        assert not _skips(hook, "ana", ["developers"], pod, pod), name
        assert not _skips(hook, "ana", ["developers"], pod, None), name
    neighbours = hooks["neighbours"]
    for user in ("ana", FLUX_KC, ARGO_AC):
        # CONNECT: `object` is the options (no metadata), `oldObject` null.
        _skips(neighbours, user, ["developers"], exec_options, None, operation="CONNECT")
        _skips(neighbours, user, None, eviction, None)
    assert not _skips(neighbours, "ana", ["developers"], exec_options, None, operation="CONNECT")
    assert not _skips(neighbours, "ana", ["developers"], eviction, None)
    assert _skips(neighbours, "system:node:worker-1", ["system:nodes"], exec_options, None, operation="CONNECT")


# --- the Deployment and its neighbours --------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_deployment_is_highly_available_and_locked_down(scenario: str) -> None:
    values, kube = SCENARIOS[scenario]
    objs = rendered(values, kube)
    dep = one(objs, "Deployment")
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert selector_matches(spec["selector"], pod_labels)
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert selector_matches(anti["podAffinityTerm"]["labelSelector"], pod_labels)
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert selector_matches(spread["labelSelector"], pod_labels)

    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}

    res = container["resources"]
    assert set(res["requests"]) >= {"cpu", "memory"} and set(res["limits"]) >= {"cpu", "memory"}

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"webhook": 8443, "probes": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}

    # Flags from docs/architecture.md, pointing at the mounted ConfigMap and Secret.
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"])
    assert args == {
        "config": "/etc/gitops-guard/config/config.yaml",
        "tls-cert": "/etc/gitops-guard/tls/tls.crt",
        "tls-key": "/etc/gitops-guard/tls/tls.key",
        "listen": "0.0.0.0:8443",
        "probe-listen": "0.0.0.0:8080",
        "request-timeout": "2500ms",
        "log-format": "json",
    }
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert all("subPath" not in m and m["readOnly"] for m in mounts.values())
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == f"{RELEASE}-config"
    assert volumes["tls"]["secret"]["secretName"] == f"{RELEASE}-tls"
    assert container["image"] == f"ghcr.io/gitops-guard/gitops-guard-webhook:{workspace_version()}"

    svc = one(objs, "Service")
    assert selector_matches({"matchLabels": svc["spec"]["selector"]}, pod_labels)
    https = next(p for p in svc["spec"]["ports"] if p["port"] == 443)
    assert https["targetPort"] == "webhook"


@pytest.mark.parametrize(
    ("kube", "api_version"), [("v1.20.2", "policy/v1beta1"), ("v1.21.0", "policy/v1"), (None, "policy/v1")]
)
def test_pod_disruption_budget(kube: str | None, api_version: str) -> None:
    objs = rendered({}, kube)
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == api_version
    assert pdb["spec"]["maxUnavailable"] == 1
    pod_labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selector_matches(pdb["spec"]["selector"], pod_labels)


def test_rbac_is_least_privilege() -> None:
    objs = rendered()
    role = one(objs, "ClusterRole")
    grants = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    read = {"get", "list", "watch"}
    # Every owner and source kind the guard traces custody through, read-only.
    expected = (
        {(group, resource, v) for group, resource in CUSTODY_KINDS for v in read}
        | {("", "namespaces", v) for v in read}
        # The guard's caches of managed workloads and Services (a Pod's owner chain, the Services
        # that select it); the scale targets' parents are among them.
        | {("apps", r, v) for r in ("deployments", "statefulsets", "daemonsets", "replicasets") for v in read}
        | {("", r, v) for r in ("replicationcontrollers", "services") for v in read}
        | {("batch", r, v) for r in ("jobs", "cronjobs") for v in read}
        # Argo Rollouts' Rollouts: a workload kind whose Pods the guard follows.
        | {("argoproj.io", "rollouts", v) for v in read}
        # Ingresses: the hosts the managed ones claim.
        | {("networking.k8s.io", "ingresses", v) for v in read}
        | {("", "pods", "get")}
        | {("", "events", "create")}
    )
    assert grants == expected
    binding = one(objs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}]
    assert not of_kind(objs, "Role") and not of_kind(objs, "RoleBinding")


def test_scale_rbac_follows_the_scale_targets() -> None:
    objs = rendered(
        {
            "webhook": {
                "scale": {
                    "enabled": True,
                    "failurePolicy": "Fail",
                    "targets": [{"apiGroup": "example.com", "resource": "widgets"}],
                }
            }
        }
    )
    role = one(objs, "ClusterRole")
    gets = {
        (g, r)
        for rule in role["rules"]
        if rule["verbs"] == ["get"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert gets == {("example.com", "widgets"), ("", "pods")}
    scale = webhooks(objs)["scale"]
    assert scale["failurePolicy"] == "Fail"
    assert scale["rules"] == [
        {
            "apiGroups": ["example.com"],
            "apiVersions": ["*"],
            "operations": ["UPDATE"],
            "resources": ["widgets/scale"],
            "scope": "Namespaced",
        }
    ]


def test_config_map_carries_the_config_from_values() -> None:
    values = {
        "config": {
            "agents": {"users": ["ci-deployer"], "groups": []},
            "breakGlass": {"groups": ["sre"], "maxDuration": "1h"},
            "argocd": {"labelTracking": True},
        }
    }
    objs = rendered(values)
    config = yaml.safe_load(one(objs, "ConfigMap")["data"]["config.yaml"])
    assert config["agents"]["users"] == ["ci-deployer"]
    assert config["breakGlass"] == {"groups": ["sre"], "maxDuration": "1h"}
    assert config["argocd"]["labelTracking"] is True
    assert config["argocd"]["trackingLabel"] == "app.kubernetes.io/instance"
    # Every key the chart writes is one the webhook knows (its config denies unknown fields).
    assert set(config) == {
        "mode",
        "flux",
        "argocd",
        "agents",
        "system",
        "operational",
        "breakGlass",
        "scaleParentCacheSeconds",
        "excludedNamespaces",
        "custody",
        "workloadControllers",
        "loadBalancerControllers",
    }


# --- certificates -----------------------------------------------------------------------------


def _pem(b64: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(b64))


def test_generated_certificate_is_trusted_by_the_ca_bundle() -> None:
    objs = rendered()
    secret = one(objs, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    data = secret["data"]
    ca, cert = _pem(data["ca.crt"]), _pem(data["tls.crt"])
    # Signed by the CA in the Secret ...
    key = ca.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(
            cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
        )
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    # ... for every name the API server may use for the Service ...
    sans = set(
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    )
    assert f"{RELEASE}.{NAMESPACE}.svc" in sans
    assert sans == {
        RELEASE,
        f"{RELEASE}.{NAMESPACE}",
        f"{RELEASE}.{NAMESPACE}.svc",
        f"{RELEASE}.{NAMESPACE}.svc.cluster.local",
    }
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    # ... and that CA is what every webhook configuration trusts.
    for name, hook in webhooks(objs).items():
        assert hook["clientConfig"]["caBundle"] == data["ca.crt"], name
    # The pods restart when the certificate changes.
    annotations = one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/tls"] == hashlib.sha256(data["tls.crt"].encode()).hexdigest()
    assert not of_kind(objs, "Certificate") and not of_kind(objs, "Issuer")


@pytest.mark.parametrize("kube", [None, "v1.20.2"])
def test_cert_manager_issues_and_injects(kube: str | None) -> None:
    objs = rendered({"certManager": {"enabled": True}}, kube)
    assert not of_kind(objs, "Secret"), "with cert-manager the chart must not generate a certificate"
    certs = {c["metadata"]["name"]: c for c in of_kind(objs, "Certificate")}
    serving = certs[f"{RELEASE}-serving"]
    assert serving["spec"]["secretName"] == f"{RELEASE}-tls"
    assert f"{RELEASE}.{NAMESPACE}.svc" in serving["spec"]["dnsNames"]
    ca_issuer = serving["spec"]["issuerRef"]
    issuers = {i["metadata"]["name"]: i for i in of_kind(objs, "Issuer")}
    assert (
        issuers[ca_issuer["name"]]["spec"]["ca"]["secretName"] == certs[f"{RELEASE}-ca"]["spec"]["secretName"]
    )
    assert certs[f"{RELEASE}-ca"]["spec"]["isCA"] is True
    for cfg in of_kind(objs, "ValidatingWebhookConfiguration"):
        assert (
            cfg["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
            == f"{NAMESPACE}/{RELEASE}-serving"
        )
        assert "caBundle" not in cfg["webhooks"][0]["clientConfig"]
    assert "annotations" not in one(objs, "Deployment")["spec"]["template"]["metadata"]


def test_cert_manager_with_your_own_issuer() -> None:
    objs = rendered(
        {
            "certManager": {
                "enabled": True,
                "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"},
            }
        }
    )
    assert not of_kind(objs, "Issuer")
    cert = one(objs, "Certificate")
    assert cert["spec"]["issuerRef"] == {
        "name": "corp-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }


# --- optional objects -------------------------------------------------------------------------


def test_service_monitor_is_off_by_default() -> None:
    objs = rendered()
    assert "ServiceMonitor" not in {o["kind"] for o in objs}


def test_network_policy_is_on_by_default_and_cannot_cut_the_api_server_off() -> None:
    objs = rendered()
    np = one(objs, "NetworkPolicy")
    pod_labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selector_matches(np["spec"]["podSelector"], pod_labels)
    # Ingress only: the guard's watches reach the API server wherever it is.
    assert np["spec"]["policyTypes"] == ["Ingress"]
    # The webhook port admits every source (no `from`); nothing admits the probe/metrics port
    # from other pods (kubelet probes come from the node, which NetworkPolicy always allows).
    assert np["spec"]["ingress"] == [{"ports": [{"port": "webhook", "protocol": "TCP"}]}]
    ports = {p["name"] for c in one(objs, "Deployment")["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
    assert {"webhook", "probes"} <= ports
    assert "NetworkPolicy" not in {o["kind"] for o in rendered({"networkPolicy": {"enabled": False}})}


def test_service_monitor_scrapes_the_probe_port() -> None:
    objs = rendered({"serviceMonitor": {"enabled": True}})
    sm = one(objs, "ServiceMonitor")
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    svc = one(objs, "Service")
    metrics = next(p for p in svc["spec"]["ports"] if p["name"] == "metrics")
    assert metrics["targetPort"] == "probes"
    assert selector_matches(sm["spec"]["selector"], svc["metadata"]["labels"])


def test_network_policy_admits_only_the_api_server_to_the_webhook_port() -> None:
    objs = rendered({"networkPolicy": {"enabled": True, "apiServerCIDRs": ["10.0.0.10/32", "10.0.0.11/32"]}})
    np = one(objs, "NetworkPolicy")
    pod_labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selector_matches(np["spec"]["podSelector"], pod_labels)
    assert np["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = np["spec"]["ingress"]
    assert rule["from"] == [{"ipBlock": {"cidr": "10.0.0.10/32"}}, {"ipBlock": {"cidr": "10.0.0.11/32"}}]
    assert rule["ports"] == [{"port": "webhook", "protocol": "TCP"}]

    scrape = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    objs = rendered(
        {"networkPolicy": {"enabled": True, "apiServerCIDRs": ["10.0.0.10/32"], "metricsFrom": [scrape]}}
    )
    rules = one(objs, "NetworkPolicy")["spec"]["ingress"]
    assert rules[1] == {"from": [scrape], "ports": [{"port": "probes", "protocol": "TCP"}]}


def test_the_guard_answers_before_the_api_server_gives_up() -> None:
    for timeout, deadline in [(3, "2500ms"), (10, "9500ms"), (1, "500ms")]:
        objs = rendered({"webhook": {"timeoutSeconds": timeout}})
        args = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        assert f"--request-timeout={deadline}" in args
        for config in (o for o in objs if o["kind"] == "ValidatingWebhookConfiguration"):
            assert all(w["timeoutSeconds"] == timeout for w in config["webhooks"])


def test_client_auth_mounts_the_ca_and_requires_client_certificates() -> None:
    container = lambda objs: one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]  # noqa: E731
    assert not any(a.startswith("--client-ca") for a in container(rendered())["args"])
    objs = rendered({"clientAuth": {"enabled": True, "caConfigMap": "apiserver-webhook-client-ca"}})
    c = container(objs)
    assert "--client-ca=/etc/gitops-guard/client-ca/ca.crt" in c["args"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "client-ca")
    assert mount == {"name": "client-ca", "mountPath": "/etc/gitops-guard/client-ca", "readOnly": True}
    volumes = one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "client-ca", "configMap": {"name": "apiserver-webhook-client-ca"}} in volumes


# --- NOTES ------------------------------------------------------------------------------------


def test_notes_say_how_to_check_the_guard() -> None:
    notes = render()["gitops-guard/templates/NOTES.txt"]
    assert "kubectl gitops doctor" in notes
    assert "--dry-run=server" in notes
    assert "dry-run only: the real change would be denied" in notes
    assert "kubernetes.io/metadata.name" not in notes
    assert SELF[0] not in notes  # no exclusion by label is promised
    assert f"Never: namespaces kube-system, kube-node-lease, kube-public, {NAMESPACE}," in notes
    assert "owners and sources" in notes
    # Below 1.21 the label is not trusted: nobody is told to add it, the guard excludes by name.
    old = render(kube_version="v1.20.2")["gitops-guard/templates/NOTES.txt"]
    assert "kubectl label namespace" not in old
    excluded = ", ".join([*DEFAULT_EXCLUDED, NAMESPACE])
    assert f"the guard allows everything in {excluded} by name" in old


def test_capabilities_reach_the_templates() -> None:
    """render()'s kube_version must really change .Capabilities (else the 1.20 cases prove nothing)."""
    default = render()["gitops-guard/templates/poddisruptionbudget.yaml"]
    old = render(kube_version="v1.20.2")["gitops-guard/templates/poddisruptionbudget.yaml"]
    assert "policy/v1\n" in default and "policy/v1beta1" in old
