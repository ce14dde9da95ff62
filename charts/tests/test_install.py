"""Install and upgrade the chart with the Helm v4 SDK's real install into a local control plane
(kube-apiserver 1.20.2, no controllers, no kubelet: pods never run, so the guard is "down" the
whole time). That is exactly the situation the safety design is for: with the guard unreachable,
only the writes it is meant to stop fail; everything needed to repair or remove it still works.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from conftest import Cluster, cargo_binary
from render import CHART, NAMESPACE, RELEASE, manifest_objects

WEBHOOK_CALL_FAILED = 'failed calling webhook "guard.gitops-guard.dev"'
ENTRIES = [
    "argocd-annotations",
    "argocd-namespaces",
    "custody",
    "enforce-all",
    "flux-helm",
    "flux-kustomize",
    "neighbours",
    "neighbours-unlabelled",
    "scale",
]


def scalable_crd(group: str, kind: str, plural: str) -> dict[str, Any]:
    """A CustomResourceDefinition with a scale subresource, like Argo Rollouts' Rollout."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                }
            ],
        },
    }


def scale_rules(cluster: Cluster) -> set[tuple[str, str]]:
    hook = webhook_configs(cluster)["scale"]["webhooks"][0]
    return {(g, r) for rule in hook["rules"] for g in rule["apiGroups"] for r in rule["resources"]}


def role_gets(cluster: Cluster) -> set[tuple[str, str]]:
    role = cluster.get("clusterrole", RELEASE)
    return {
        (g, r) for rule in role["rules"] if "get" in rule["verbs"] for g in rule["apiGroups"] for r in rule["resources"]
    }


@pytest.fixture(scope="module")
def helm(cluster: Cluster) -> Iterator[helm_python.Config]:
    with helm_python.Config(kubeconfig_path=cluster.kubeconfig, namespace=NAMESPACE) as cfg:
        yield cfg


@pytest.fixture(scope="module")
def installed(cluster: Cluster, helm: helm_python.Config) -> Iterator[dict[str, Any]]:
    # Argo Rollouts' kind, installed before the chart: scale discovery must route rollouts/scale.
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(scalable_crd("argoproj.io", "Rollout", "rollouts")))
    cluster.kubectl("wait", "--for=condition=Established", "crd/rollouts.argoproj.io", "--timeout=60s")
    release = helm.install(str(CHART), RELEASE, namespace=NAMESPACE, create_namespace=True, timeout=120)
    try:
        yield release
    finally:
        helm.uninstall(RELEASE, ignore_not_found=True, timeout=120)


def webhook_configs(cluster: Cluster) -> dict[str, dict[str, Any]]:
    items = cluster.get("validatingwebhookconfigurations", "-l", f"app.kubernetes.io/instance={RELEASE}")[
        "items"
    ]
    return {i["metadata"]["name"].removeprefix(f"{RELEASE}-"): i for i in items}


def tls_secret(cluster: Cluster) -> dict[str, str]:
    data: dict[str, str] = cluster.get("secret", "-n", NAMESPACE, f"{RELEASE}-tls")["data"]
    return data


def create(cluster: Cluster, manifest: dict[str, Any]) -> Any:
    return cluster.kubectl("create", "-f", "-", check=False, stdin=json.dumps(manifest))


def configmap(name: str, namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "data": {"k": "v"},
    }


def deployment(name: str, namespace: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }


def test_install_creates_the_guard(cluster: Cluster, installed: dict[str, Any]) -> None:
    # The SDK rendered with the cluster's own version (1.20): no matchConditions, policy/v1beta1.
    objs = manifest_objects(installed["manifest"])
    kinds = sorted({o["kind"] for o in objs})
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "ServiceAccount",
        "ValidatingWebhookConfiguration",
    ]
    pdb = next(o for o in objs if o["kind"] == "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1beta1"
    # On by default, and accepted by the API server as rendered.
    np = cluster.get("networkpolicy", "-n", NAMESPACE, RELEASE)
    assert np["spec"]["ingress"] == [{"ports": [{"port": "webhook", "protocol": "TCP"}]}]

    dep = cluster.get("deployment", "-n", NAMESPACE, RELEASE)
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert cluster.get("poddisruptionbudget", "-n", NAMESPACE, RELEASE)["spec"]["maxUnavailable"] == 1
    config = yaml.safe_load(
        cluster.get("configmap", "-n", NAMESPACE, f"{RELEASE}-config")["data"]["config.yaml"]
    )
    assert config["mode"] == "enforce"
    role = cluster.get("clusterrole", RELEASE)
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs == {"get", "list", "watch", "create"}

    configs = webhook_configs(cluster)
    assert sorted(configs) == ENTRIES
    ca = tls_secret(cluster)["ca.crt"]
    for name, cfg in configs.items():
        (hook,) = cfg["webhooks"]
        assert hook["name"] == "guard.gitops-guard.dev"
        assert hook["clientConfig"]["caBundle"] == ca, name
        assert hook["timeoutSeconds"] == 3
        assert "matchConditions" not in hook, name  # 1.20 has no matchConditions
        # 1.20 lets anyone set kubernetes.io/metadata.name: the guard excludes namespaces by name.
        assert "kubernetes.io/metadata.name" not in json.dumps(hook["namespaceSelector"]), name
        assert "app.kubernetes.io/part-of" not in json.dumps(hook["objectSelector"]), name
    assert configs["custody"]["webhooks"][0]["failurePolicy"] == "Fail"
    assert configs["neighbours"]["webhooks"][0]["failurePolicy"] == "Ignore"
    # The API server accepted the CONNECT rules (exec, attach, port-forward).
    connect = [r for r in configs["neighbours"]["webhooks"][0]["rules"] if r["operations"] == ["CONNECT"]]
    assert connect and set(connect[0]["resources"]) == {"pods/exec", "pods/attach", "pods/portforward"}
    assert {"kube-system", NAMESPACE} <= set(config["excludedNamespaces"])
    assert base64.b64decode(ca).startswith(b"-----BEGIN CERTIFICATE-----")


# What doctor finds on the chart as installed here (release gitops-guard in gitops-guard, 1.20, no
# guard Pod, the local cluster's own bindings set aside), in its order; certificate dates as "…".
EXPECTED_DOCTOR: list[tuple[str, str, str, str]] = [
    ("ok", "guard", "ValidatingWebhookConfiguration gitops-guard-argocd-annotations", "failurePolicy Ignore, timeoutSeconds 3"),
    ("ok", "guard", "ValidatingWebhookConfiguration gitops-guard-argocd-namespaces", "failurePolicy Ignore, timeoutSeconds 3"),
    ("warn", "guard", "ValidatingWebhookConfiguration gitops-guard-custody", "failurePolicy Fail, and Kubernetes 1.20 has no matchConditions (1.28+)"),
    ("warn", "guard", "ValidatingWebhookConfiguration gitops-guard-enforce-all", "failurePolicy Fail, and Kubernetes 1.20 has no matchConditions (1.28+)"),
    ("warn", "guard", "ValidatingWebhookConfiguration gitops-guard-flux-helm", "failurePolicy Fail, and Kubernetes 1.20 has no matchConditions (1.28+)"),
    ("warn", "guard", "ValidatingWebhookConfiguration gitops-guard-flux-kustomize", "failurePolicy Fail, and Kubernetes 1.20 has no matchConditions (1.28+)"),
    ("ok", "guard", "ValidatingWebhookConfiguration gitops-guard-neighbours", "failurePolicy Ignore, timeoutSeconds 3"),
    ("ok", "guard", "ValidatingWebhookConfiguration gitops-guard-neighbours-unlabelled", "failurePolicy Ignore, timeoutSeconds 3"),
    ("ok", "guard", "ValidatingWebhookConfiguration gitops-guard-scale", "failurePolicy Ignore, timeoutSeconds 3"),
    ("fail", "guard", "Service gitops-guard/gitops-guard", "no ready endpoints: no guard Pod is answering"),
    ("ok", "guard", "scale", "the /scale of every kind that has one (5) is routed to the guard"),
    ("ok", "guard", "status", "the /status of every kind the guard protects (4) is routed to the guard"),
    ("warn", "guard", "Deployment gitops-guard/gitops-guard", "0 of 2 replicas ready"),
    ("ok", "guard", "ConfigMap gitops-guard/gitops-guard-config", "the guard's config: its agents and system identities are the trusted ones below"),
    ("ok", "guard", "ValidatingWebhookConfiguration gitops-guard-argocd-annotations", "CA (caBundle of 9 configurations) gitops-guard-ca valid until …"),
    ("ok", "guard", "Secret gitops-guard/gitops-guard-tls", "serving certificate gitops-guard.gitops-guard.svc valid until …"),
    ("warn", "access", "check guard (answering)", "not run: no managed object to try a dry run on (no owner lists one)"),
    ("warn", "become-agent", "Group system:masters", "members pass every RBAC check: they can do everything listed here"),
    ("ok", "become-agent", "RBAC", "nobody but Kubernetes and the agents can impersonate service accounts of the agents and Kubernetes"),
    ("ok", "become-agent", "RBAC", "nobody but Kubernetes and the agents can impersonate users the guard trusts"),
    ("ok", "become-agent", "RBAC", "nobody but Kubernetes and the agents can impersonate groups the guard trusts"),
    ("ok", "become-agent", "RBAC", "nobody but Kubernetes and the agents can create Pods in argocd, flux-system, kube-system"),
    ("ok", "become-agent", "RBAC", "nobody but Kubernetes and the agents can create or change workloads in argocd, flux-system, kube-system"),
    ("ok", "become-agent", "RBAC", "nobody but Kubernetes and the agents can exec into or debug Pods in argocd, flux-system, kube-system"),
    ("ok", "become-agent", "RBAC", "nobody but Kubernetes and the agents can read Secrets in argocd, flux-system, kube-system"),
    ("ok", "become-agent", "RBAC", "nobody but Kubernetes and the agents can create tokens for service accounts of the agents and Kubernetes"),
    ("ok", "become-agent", "RBAC", "nobody but Kubernetes and the agents can create ServiceAccounts in argocd, flux-system, kube-system"),
    ("ok", "become-agent", "RBAC", "nobody but Kubernetes and the agents can approve client certificates"),
    ("ok", "switch-off", "RBAC", "nobody but Kubernetes and the agents can change or delete ValidatingWebhookConfigurations of the guard"),
    ("ok", "switch-off", "RBAC", "nobody but Kubernetes and the agents can create MutatingWebhookConfigurations"),
    ("ok", "switch-off", "RBAC", "nobody but Kubernetes and the agents can change or delete the guard's Deployment, Service, Secret, ConfigMap or namespace gitops-guard"),
]
# The local cluster's own cluster-admin bindings (scripts/local-cluster.sh): the test cluster's,
# not the chart's, so doctor runs without them.
LOCAL_BINDINGS = ["local-cluster:developers", "local-cluster:ci-bot", "local-cluster:service-accounts"]


def doctor(cluster: Cluster, cache: Path) -> tuple[int, list[dict[str, str]]]:
    """`kubectl gitops doctor -o json` as the admin, with the local cluster's own bindings set
    aside for the run (and put back)."""
    saved = [cluster.get("clusterrolebinding", name) for name in LOCAL_BINDINGS]
    cluster.kubectl("delete", "clusterrolebinding", *LOCAL_BINDINGS)
    try:
        out = subprocess.run(
            [str(cargo_binary("kubectl-gitops")), "doctor", "-o", "json", "--kubeconfig", cluster.kubeconfig],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "XDG_CACHE_HOME": str(cache), "KUBECACHEDIR": str(cache / "kube")},
        )
    finally:
        for b in saved:
            restored = {k: b[k] for k in ("apiVersion", "kind", "roleRef", "subjects")}
            restored["metadata"] = {"name": b["metadata"]["name"]}
            cluster.kubectl("apply", "-f", "-", stdin=json.dumps(restored))
    try:
        findings: list[dict[str, str]] = json.loads(out.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"doctor -o json is not JSON ({e}):\n{out.stdout}{out.stderr}") from e
    return out.returncode, findings


def test_doctor_finds_only_the_missing_guard(
    cluster: Cluster, installed: dict[str, Any], tmp_path: Path
) -> None:
    """`kubectl gitops doctor` on the chart as installed on 1.20: its rules, selectors, RBAC and
    certificates are sound; the one fail is that no guard Pod answers (none runs here), and on
    1.20 (no matchConditions) each Fail entry is an availability warn."""
    code, findings = doctor(cluster, tmp_path)
    rows = [(f["severity"], f["check"], f["subject"], f["finding"]) for f in findings]
    assert code == 1, rows
    fails = [r for r in rows if r[0] == "fail"]
    assert fails == [
        ("fail", "guard", f"Service {NAMESPACE}/{RELEASE}", "no ready endpoints: no guard Pod is answering")
    ], rows
    fail_entries = ["custody", "enforce-all", "flux-helm", "flux-kustomize"]
    unavailable = "failurePolicy Fail, and Kubernetes 1.20 has no matchConditions (1.28+)"
    assert [r[2] for r in rows if r[3] == unavailable] == [
        f"ValidatingWebhookConfiguration {RELEASE}-{name}" for name in fail_entries
    ], rows
    ignore_entries = sorted(set(ENTRIES) - set(fail_entries))
    assert [r for r in rows if r[0] == "ok" and r[3].startswith("failurePolicy")] == [
        ("ok", "guard", f"ValidatingWebhookConfiguration {RELEASE}-{name}", "failurePolicy Ignore, timeoutSeconds 3")
        for name in ignore_entries
    ], rows
    # Every kind with a /scale (Rollouts' too) and the protected statuses are routed; no selector
    # lets writes past the guard.
    assert ("ok", "guard", "scale", "the /scale of every kind that has one (5) is routed to the guard") in rows
    assert ("ok", "guard", "status", "the /status of every kind the guard protects (4) is routed to the guard") in rows
    assert not [r for r in rows if "Selector" in r[3]], rows
    # The chart's certificates, config, replicas and disruption budget.
    assert [r for r in rows if r[2] == f"Deployment {NAMESPACE}/{RELEASE}"] == [
        ("warn", "guard", f"Deployment {NAMESPACE}/{RELEASE}", "0 of 2 replicas ready")
    ], rows
    assert ("ok", "guard", f"ConfigMap {NAMESPACE}/{RELEASE}-config",
            "the guard's config: its agents and system identities are the trusted ones below") in rows
    # The guard's own service account and RBAC are no way around it.
    assert not [r for r in rows if RELEASE in r[2] and r[1] in ("become-agent", "switch-off")], rows
    dated = [(s, c, subj, re.sub(r"valid until \d{4}-\d\d-\d\d$", "valid until …", f)) for s, c, subj, f in rows]
    assert dated == EXPECTED_DOCTOR, rows


def test_guard_down_blocks_only_managed_objects(cluster: Cluster, installed: dict[str, Any]) -> None:
    """No pod serves the guard here. Fail entries refuse their writes; nothing else is affected."""
    cluster.kubectl("create", "namespace", "team")
    flux = {
        "kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
    }

    # A Flux-managed object: failurePolicy Fail, so the write is refused while the guard is away.
    out = create(cluster, configmap("managed", "team", flux))
    assert out.returncode != 0 and WEBHOOK_CALL_FAILED in out.stderr, out.stderr
    out = create(cluster, configmap("managed-helm", "team", {"helm.toolkit.fluxcd.io/name": "web"}))
    assert out.returncode != 0 and WEBHOOK_CALL_FAILED in out.stderr, out.stderr

    # No label lets a write past the guard: the chart's own label excludes nothing.
    out = create(cluster, configmap("self", "team", {**flux, "app.kubernetes.io/part-of": "gitops-guard"}))
    assert out.returncode != 0 and WEBHOOK_CALL_FAILED in out.stderr, out.stderr

    # What Kubernetes writes beneath managed objects never waits on the guard (neighbours: Ignore),
    # even with the labels it copies from a managed object.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "team", "labels": flux},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    assert create(cluster, pod).returncode == 0
    cluster.kubectl("label", "pod", "-n", "team", "web-1", "app=web")
    cluster.kubectl("delete", "pod", "-n", "team", "web-1", "--wait=false")

    # Everything else goes through: unowned objects (Ignore), scaling (Ignore).
    assert create(cluster, configmap("plain", "team")).returncode == 0
    assert create(cluster, deployment("web", "team")).returncode == 0
    cluster.kubectl("scale", "-n", "team", "deployment/web", "--replicas=3")
    assert cluster.get("deployment", "-n", "team", "web")["spec"]["replicas"] == 3

    # A namespace labelled for enforce-all: its unlabelled objects are protected (Fail) too.
    cluster.kubectl("create", "namespace", "prod")
    cluster.kubectl("label", "namespace", "prod", "gitops-guard.dev/enforce=all")
    cluster.kubectl("annotate", "namespace", "prod", "gitops-guard.dev/enforce=all")
    out = create(cluster, configmap("plain", "prod"))
    assert out.returncode != 0 and WEBHOOK_CALL_FAILED in out.stderr, out.stderr

    # On 1.20 (as here) kubernetes.io/metadata.name is an ordinary label, so the API server
    # excludes no namespace; the guard excludes kube-system and its own namespace by name. With the
    # guard down, unowned writes there still go through (Ignore) and Flux-labelled ones fail
    # closed like anywhere else, whatever the namespace's labels say.
    assert create(cluster, configmap("infra-plain", "kube-system")).returncode == 0
    assert create(cluster, configmap("guard-plain", NAMESPACE)).returncode == 0
    out = create(cluster, configmap("infra", "kube-system", flux))
    assert out.returncode != 0 and WEBHOOK_CALL_FAILED in out.stderr, out.stderr
    cluster.kubectl("create", "namespace", "relabelled")
    cluster.kubectl(
        "label", "namespace", "relabelled", "kubernetes.io/metadata.name=kube-system", "--overwrite"
    )
    out = create(cluster, configmap("hidden", "relabelled", flux))
    assert out.returncode != 0 and WEBHOOK_CALL_FAILED in out.stderr, out.stderr

    # The switch is always reachable: webhook configurations are never sent to the guard.
    for name in ENTRIES:
        cluster.kubectl("delete", "validatingwebhookconfiguration", f"{RELEASE}-{name}", "--dry-run=server")


def test_upgrade_keeps_the_generated_ca(
    cluster: Cluster, helm: helm_python.Config, installed: dict[str, Any]
) -> None:
    before = tls_secret(cluster)
    checksum = cluster.get("deployment", "-n", NAMESPACE, RELEASE)["spec"]["template"]["metadata"][
        "annotations"
    ]["checksum/tls"]

    # An upgrade that changes something, while the guard is down: it must still go through.
    release = helm.upgrade(
        str(CHART), RELEASE, {"webhook": {"timeoutSeconds": 5}}, namespace=NAMESPACE, timeout=120
    )
    assert release["revision"] == 2 and release["status"] == "deployed"
    assert tls_secret(cluster) == before
    configs = webhook_configs(cluster)
    assert sorted(configs) == ENTRIES
    for name, cfg in configs.items():
        assert cfg["webhooks"][0]["clientConfig"]["caBundle"] == before["ca.crt"], name
        assert cfg["webhooks"][0]["timeoutSeconds"] == 5, name
    dep = cluster.get("deployment", "-n", NAMESPACE, RELEASE)
    assert dep["spec"]["template"]["metadata"]["annotations"]["checksum/tls"] == checksum

    # Rotation, as the chart documents it: delete the Secret and upgrade.
    cluster.kubectl("delete", "secret", "-n", NAMESPACE, f"{RELEASE}-tls")
    helm.upgrade(str(CHART), RELEASE, {"webhook": {"timeoutSeconds": 5}}, namespace=NAMESPACE, timeout=120)
    after = tls_secret(cluster)
    assert after["ca.crt"] != before["ca.crt"]
    for name, cfg in webhook_configs(cluster).items():
        assert cfg["webhooks"][0]["clientConfig"]["caBundle"] == after["ca.crt"], name
    dep = cluster.get("deployment", "-n", NAMESPACE, RELEASE)
    assert dep["spec"]["template"]["metadata"]["annotations"]["checksum/tls"] != checksum


def test_audit_mode_upgrade_stops_blocking(
    cluster: Cluster, helm: helm_python.Config, installed: dict[str, Any]
) -> None:
    cluster.kubectl("create", "namespace", "audit-team")
    flux = {"kustomize.toolkit.fluxcd.io/name": "apps"}
    out = create(cluster, configmap("before", "audit-team", flux))
    assert out.returncode != 0 and WEBHOOK_CALL_FAILED in out.stderr, out.stderr

    helm.upgrade(
        str(CHART),
        RELEASE,
        {"config": {"mode": "audit"}},
        namespace=NAMESPACE,
        reuse_values=True,
        timeout=120,
    )
    assert {c["webhooks"][0]["failurePolicy"] for c in webhook_configs(cluster).values()} == {"Ignore"}
    config = yaml.safe_load(
        cluster.get("configmap", "-n", NAMESPACE, f"{RELEASE}-config")["data"]["config.yaml"]
    )
    assert config["mode"] == "audit"
    assert create(cluster, configmap("after", "audit-team", flux)).returncode == 0


def test_scale_discovery_routes_custom_resources(
    cluster: Cluster, helm: helm_python.Config, installed: dict[str, Any]
) -> None:
    """A CRD with a scale subresource, present at install, has its /scale routed and its kind
    readable by the guard; one installed later after the next upgrade."""
    assert ("argoproj.io", "rollouts/scale") in scale_rules(cluster)
    assert ("apps", "deployments/scale") in scale_rules(cluster)
    assert ("argoproj.io", "rollouts") in role_gets(cluster)
    # The owner and source kinds are never scale targets; Argo CD's Applications have no scale.
    assert not any(r.startswith("applications") for _, r in scale_rules(cluster))

    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(scalable_crd("example.com", "Widget", "widgets")))
    cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=60s")
    assert ("example.com", "widgets/scale") not in scale_rules(cluster)
    # A new Config, as each `helm upgrade` run is: a Config keeps the capabilities (served API
    # groups) it read first, while lookup always asks the API server.
    with helm_python.Config(kubeconfig_path=cluster.kubeconfig, namespace=NAMESPACE) as fresh:
        fresh.upgrade(str(CHART), RELEASE, namespace=NAMESPACE, reuse_values=True, timeout=120)
    assert ("example.com", "widgets/scale") in scale_rules(cluster)
    assert ("example.com", "widgets") in role_gets(cluster)
    # At install the label entries route every served group, the CRDs' included.
    kustomize = webhook_configs(cluster)["flux-kustomize"]["webhooks"][0]["rules"]
    assert any("example.com" in r["apiGroups"] and r["resources"] == ["*", "*/status"] for r in kustomize)
    assert not any("coordination.k8s.io" in r["apiGroups"] or "events.k8s.io" in r["apiGroups"] for r in kustomize)

    # Discovery off: only the static targets.
    helm.upgrade(
        str(CHART),
        RELEASE,
        {"webhook": {"scale": {"discover": False}}},
        namespace=NAMESPACE,
        reuse_values=True,
        timeout=120,
    )
    assert {g for g, _ in scale_rules(cluster)} == {"", "apps"}
    assert ("example.com", "widgets") not in role_gets(cluster)
    # Rollouts stay readable: the guard watches them as a workload kind, scale or not.
    assert ("argoproj.io", "rollouts") in role_gets(cluster)
    helm.upgrade(
        str(CHART),
        RELEASE,
        {"webhook": {"scale": {"discover": True}}},
        namespace=NAMESPACE,
        reuse_values=True,
        timeout=120,
    )


def test_uninstall_removes_every_webhook(
    cluster: Cluster, helm: helm_python.Config, installed: dict[str, Any]
) -> None:
    helm.uninstall(RELEASE, timeout=120)
    assert webhook_configs(cluster) == {}
    assert cluster.kubectl("get", "clusterrole", RELEASE, check=False).returncode != 0
    flux = {"kustomize.toolkit.fluxcd.io/name": "apps"}
    assert create(cluster, configmap("after-uninstall", "team", flux)).returncode == 0
