"""`helm lint` (Helm v4 SDK) for the value sets and cluster versions users run, and the values
schema refusing what would make the guard unsafe or the webhook refuse to start."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest
import yaml

from conftest import workspace_version
from render import CHART

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "cert-manager": {"certManager": {"enabled": True}},
    "cert-manager-own-issuer": {
        "certManager": {"enabled": True, "issuerRef": {"name": "corp", "kind": "ClusterIssuer"}}
    },
    "audit": {"config": {"mode": "audit"}},
    "neighbours-off-listed-rules": {
        "webhook": {
            "labelledResources": "rules",
            "neighbours": {"enabled": False, "failurePolicy": "Ignore"},
            "scale": {"enabled": True, "failurePolicy": "Ignore", "discover": False, "targets": []},
        }
    },
    "everything-on": {
        "config": {
            "argocd": {"labelTracking": True},
            "breakGlass": {"groups": ["sre"], "maxDuration": "30m"},
            "excludedNamespaces": ["kube-system", "legacy"],
            "custody": {"roots": [{"kind": "OCIRepository", "namespace": "gitops", "name": "fleet"}]},
            "operational": {
                "argocdSyncOverrides": ["revision", "syncOptions"],
                "podDelete": False,
                "podEviction": False,
                "podExec": False,
                "podDebug": False,
            },
        },
        "webhook": {
            "custody": {"failurePolicy": "Ignore"},
            "neighbours": {"enabled": True, "failurePolicy": "Fail"},
            "scale": {
                "enabled": True,
                "failurePolicy": "Fail",
                "discover": True,
                "targets": [{"apiGroup": "argoproj.io", "resource": "rollouts"}],
            },
        },
        "serviceMonitor": {"enabled": True},
        "networkPolicy": {"enabled": True, "apiServerCIDRs": ["10.0.0.0/24"]},
        "podAntiAffinity": "hard",
        "image": {"digest": "sha256:" + "0" * 64},
    },
}


@pytest.mark.parametrize("kube", ["v1.20.2", "v1.28.0", "v1.30.0", None])
@pytest.mark.parametrize("values", VALUE_SETS)
def test_lint_is_clean(values: str, kube: str | None) -> None:
    report = helm_python.lint(CHART, VALUE_SETS[values], strict=True, kube_version=kube)
    assert report["errors"] == []
    # Severity 2 = warning, 3 = error (e.g. deprecated or removed API versions for that cluster).
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    assert report["total_charts_linted"] == 1


BAD_VALUES = [
    ({"webhook": {"failurePolicy": "Sometimes"}}, "/webhook/failurePolicy"),
    ({"webhook": {"timeoutSeconds": 31}}, "/webhook/timeoutSeconds"),
    ({"webhook": {"timeoutSeconds": 0}}, "/webhook/timeoutSeconds"),
    (
        {"webhook": {"rules": [{"apiGroups": ["admissionregistration.k8s.io"], "resources": ["*"]}]}},
        "/webhook/rules/0/apiGroups/0",
    ),
    ({"webhook": {"rules": [{"apiGroups": ["*"], "resources": ["*"]}]}}, "/webhook/rules/0/apiGroups/0"),
    ({"webhook": {"rules": [{"apiGroups": [""], "resources": ["*"]}]}}, "/webhook/rules/0/resources"),
    (
        {
            "webhook": {
                "scale": {
                    "enabled": True,
                    "failurePolicy": "Ignore",
                    "targets": [{"apiGroup": "*", "resource": "x"}],
                }
            }
        },
        "/webhook/scale/targets/0/apiGroup",
    ),
    ({"webhook": {"excludeNamespaces": ["Kube_System"]}}, "/webhook/excludeNamespaces/0"),
    ({"config": {"mode": "loose"}}, "/config/mode"),
    ({"config": {"flux": {"namepsace": "flux"}}}, "namepsace"),
    ({"config": {"breakGlass": {"maxDuration": "forever"}}}, "/config/breakGlass/maxDuration"),
    ({"config": {"excludedNamespaces": ["Kube_System"]}}, "/config/excludedNamespaces/0"),
    (
        {"config": {"custody": {"roots": [{"kind": "Deployment", "namespace": "a", "name": "b"}]}}},
        "/config/custody/roots/0/kind",
    ),
    (
        {"config": {"custody": {"roots": [{"kind": "GitRepository", "namespace": "a"}]}}},
        "/config/custody/roots/0",
    ),
    ({"config": {"custody": {"trust": "labels"}}}, "trust"),
    (
        {"config": {"operational": {"argocdSyncOverrides": ["everything"]}}},
        "/config/operational/argocdSyncOverrides/0",
    ),
    ({"webhook": {"custody": {"failurePolicy": "Sometimes"}}}, "/webhook/custody/failurePolicy"),
    ({"webhook": {"neighbours": {"enabled": True, "failurePolicy": "Sometimes"}}}, "/webhook/neighbours/failurePolicy"),
    ({"webhook": {"neighbours": {"enabled": "yes", "failurePolicy": "Ignore"}}}, "/webhook/neighbours/enabled"),
    ({"webhook": {"labelledResources": "everything"}}, "/webhook/labelledResources"),
    ({"webhook": {"scale": {"discover": "yes"}}}, "/webhook/scale/discover"),
    ({"config": {"operational": {"podExec": "sometimes"}}}, "/config/operational/podExec"),
    ({"config": {"operational": {"podLogs": True}}}, "podLogs"),
    ({"networkPolicy": {"apiServerCIDRs": ["10.0.0.0"]}}, "/networkPolicy/apiServerCIDRs/0"),
    ({"clientAuth": {"enabled": True}}, "/clientAuth/caConfigMap"),
    ({"replicaCount": 0}, "/replicaCount"),
    ({"replicaSet": 2}, "replicaSet"),
]


@pytest.mark.parametrize(("values", "where"), BAD_VALUES)
def test_schema_refuses_unsafe_values(values: dict[str, Any], where: str) -> None:
    report = helm_python.lint(CHART, values)
    assert any(where in e for e in report["errors"]), report["errors"]
    with helm_python.Chart.load(CHART) as chart, pytest.raises(helm_python.HelmValuesError) as err:
        chart.validate_schema(chart.merge_values(values))
    assert where in str(err.value)


def test_app_version_is_the_webhook_version() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["appVersion"] == workspace_version()
    with helm_python.Chart.load(CHART) as chart:
        assert chart.values["image"]["repository"] == "ghcr.io/gitops-guard/gitops-guard-webhook"
        assert chart.values["image"]["tag"] == ""  # = appVersion


def test_rendered_copy_is_not_packaged(tmp_path) -> None:
    archive = helm_python.package(CHART, destination=tmp_path)
    with helm_python.Chart.load(archive) as chart:
        names = {f["name"] for f in chart.files} | {t["name"] for t in chart.templates}
    assert not any(n.startswith("rendered/") for n in names), names
    assert "templates/webhook.yaml" in names and "README.md" in names
