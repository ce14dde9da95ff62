"""Shared fixtures: the repository layout, a throwaway local control plane, kubectl."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCAL_CLUSTER = REPO / "scripts" / "local-cluster.sh"


@dataclass
class Cluster:
    """A local kube-apiserver started by scripts/local-cluster.sh (no kubelet, no controllers)."""

    dir: Path
    env: dict[str, str]

    @property
    def kubeconfig(self) -> str:
        return self.env["KUBECONFIG"]

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {shlex.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def get(self, *args: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.kubectl("get", "-o", "json", *args).stdout)
        return out


def _read_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :]
        if "=" not in line or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        parts = shlex.split(value)
        env[key] = parts[0] if parts else ""
    return env


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One local control plane (kube-apiserver 1.20.2 + etcd) for the session; always torn down."""
    assert LOCAL_CLUSTER.is_file(), (
        f"{LOCAL_CLUSTER} is missing: the install tests need the local control plane "
        "(docs/architecture.md, Scripts)"
    )
    state = tmp_path_factory.mktemp("local-cluster") / "cluster"
    up = subprocess.run(
        ["bash", str(LOCAL_CLUSTER), "up", str(state)],
        capture_output=True,
        text=True,
        timeout=3600,  # the first run builds kube-apiserver
        # If this test process dies, the script's watchdog stops the cluster.
        env={**os.environ, "GG_CLUSTER_OWNER_PID": str(os.getpid())},
    )
    try:
        assert up.returncode == 0, f"local-cluster.sh up failed:\n{up.stdout}{up.stderr}"
        env = _read_env(state / "env")
        assert Path(env["KUBECONFIG"]).is_file(), env
        yield Cluster(dir=state, env=env)
    finally:
        subprocess.run(
            ["bash", str(LOCAL_CLUSTER), "down", str(state)],
            capture_output=True,
            text=True,
            timeout=300,
        )


def cargo_binary(name: str) -> Path:
    """A binary of the workspace as `cargo build --workspace --bins` leaves it (scripts/test-all
    builds them before the chart tests), in $CARGO_TARGET_DIR or ./target."""
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    binary = target / "debug" / name
    assert binary.is_file(), (
        f"{binary} does not exist: build it first (cargo build --workspace --bins, as scripts/test-all does)"
    )
    return binary


def workspace_version() -> str:
    """[workspace.package] version in Cargo.toml: the webhook's version and the image tag."""
    in_section = False
    for line in (REPO / "Cargo.toml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            in_section = stripped == "[workspace.package]"
            continue
        if in_section and stripped.startswith("version"):
            return stripped.split("=", 1)[1].strip().strip('"')
    raise AssertionError("no version in [workspace.package] of Cargo.toml")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
