"""The container image: scripts/build-image.sh builds it (static binary, FROM scratch, buildah, no
Docker daemon, nothing pulled) into an OCI archive; the binary taken out of its only layer runs
(`--version`) and serves TLS with the certificate and config the chart generates."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, Cluster, workspace_version
from render import NAMESPACE, RELEASE, objects, render

IMAGE = "ghcr.io/gitops-guard/gitops-guard-webhook"
BINARY = "gitops-guard-webhook"
USER = 65532


@dataclass
class Image:
    archive: Path
    index: dict[str, Any]
    manifest: dict[str, Any]
    config: dict[str, Any]
    layer_members: list[tarfile.TarInfo]
    binary: Path


def _blob(archive: tarfile.TarFile, digest: str) -> bytes:
    algo, hexdigest = digest.split(":", 1)
    member = archive.extractfile(f"blobs/{algo}/{hexdigest}")
    assert member is not None, digest
    return member.read()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    out = tmp_path_factory.mktemp("image")
    build = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-image.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=3600,  # a cold static release build
    )
    assert build.returncode == 0, f"scripts/build-image.sh failed:\n{build.stderr[-5000:]}"
    archive = Path(build.stdout.strip().splitlines()[-1])
    assert archive.is_file() and archive.parent == out, build.stdout

    with tarfile.open(archive) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        (entry,) = index["manifests"]
        manifest = json.loads(_blob(tar, entry["digest"]))
        config = json.loads(_blob(tar, manifest["config"]["digest"]))
        (layer,) = manifest["layers"]  # FROM scratch: the binary is the only layer
        data = _blob(tar, layer["digest"])
    mode = "r:gz" if layer["mediaType"].endswith("+gzip") else "r:"
    with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as layer_tar:
        members = layer_tar.getmembers()
        binary = out / BINARY
        src = layer_tar.extractfile(BINARY)
        assert src is not None, [m.name for m in members]
        binary.write_bytes(src.read())
    binary.chmod(0o755)
    return Image(archive, index, manifest, config, members, binary)


def _has_program_interpreter(path: Path) -> bool:
    """Whether an ELF file asks for a dynamic loader (a PT_INTERP program header)."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2, "not a 64-bit ELF file"
    endian = "<" if data[5] == 1 else ">"
    (phoff,) = struct.unpack_from(endian + "Q", data, 0x20)
    phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    return any(struct.unpack_from(endian + "I", data, phoff + i * phentsize)[0] == 3 for i in range(phnum))


def test_image_is_one_static_binary_running_as_non_root(image: Image) -> None:
    version = workspace_version()
    (entry,) = image.index["manifests"]
    # Tagged as the chart's default image (image.repository : appVersion).
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == f"{IMAGE}:{version}"
    cfg = image.config["config"]
    assert cfg["User"] == f"{USER}:{USER}"
    assert cfg["Entrypoint"] == [f"/{BINARY}"]
    assert set(cfg["ExposedPorts"]) == {"8443/tcp", "8080/tcp"}
    assert cfg["Labels"]["org.opencontainers.image.version"] == version
    assert image.config["os"] == "linux" and image.config["architecture"] == "amd64"
    files = [m for m in image.layer_members if not m.isdir()]
    assert [m.name for m in files] == [BINARY]
    assert files[0].uid == 0 and files[0].mode & 0o222 == 0, "the binary must not be writable by its user"
    assert not _has_program_interpreter(image.binary), "dynamically linked: it would not start FROM scratch"


def test_binary_from_the_layer_reports_its_version(image: Image) -> None:
    out = subprocess.run([str(image.binary), "--version"], capture_output=True, text=True, timeout=30, env={})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{BINARY} {workspace_version()}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def served(image: Image, cluster: Cluster) -> Iterator[dict[str, Any]]:
    """The binary from the image, as the chart runs it: the chart's generated certificate and
    ConfigMap, its flags, a non-root user, and the local cluster as its API server."""
    objs = objects(render())
    secret = next(o for o in objs if o["kind"] == "Secret")["data"]
    config = next(o for o in objs if o["kind"] == "ConfigMap")["data"]["config.yaml"]
    # A world-traversable directory: the server runs as uid 65532, like in the pod.
    run = Path(tempfile.mkdtemp(prefix="gitops-guard-image-"))
    try:
        run.chmod(0o755)
        for name, text in [
            ("tls.crt", base64.b64decode(secret["tls.crt"]).decode()),
            ("tls.key", base64.b64decode(secret["tls.key"]).decode()),
            ("config.yaml", config),
            ("kubeconfig", Path(cluster.kubeconfig).read_text()),
        ]:
            (run / name).write_text(text)
            (run / name).chmod(0o644)
        shutil.copy(image.binary, run / BINARY)
        listen, probes = _free_port(), _free_port()
        log = open(run / "webhook.log", "w")
        proc = subprocess.Popen(
            [
                "setpriv",
                f"--reuid={USER}",
                f"--regid={USER}",
                "--clear-groups",
                "--",
                str(run / BINARY),
                f"--config={run / 'config.yaml'}",
                f"--tls-cert={run / 'tls.crt'}",
                f"--tls-key={run / 'tls.key'}",
                f"--listen=127.0.0.1:{listen}",
                f"--probe-listen=127.0.0.1:{probes}",
                f"--kubeconfig={run / 'kubeconfig'}",
                "--log-format=json",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={},
        )
        try:
            yield {
                "proc": proc,
                "listen": listen,
                "probes": probes,
                "ca": base64.b64decode(secret["ca.crt"]).decode(),
                "log": run / "webhook.log",
            }
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            log.close()
    finally:
        shutil.rmtree(run, ignore_errors=True)


def _until(what: str, check: Any, served: dict[str, Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        assert served["proc"].poll() is None, f"the webhook exited:\n{served['log'].read_text()}"
        try:
            return check()
        except (OSError, AssertionError) as e:
            last = e
            time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout}s ({last}):\n{served['log'].read_text()}")


def test_binary_from_the_layer_serves_the_charts_certificate(served: dict[str, Any]) -> None:
    service_name = f"{RELEASE}.{NAMESPACE}.svc"  # the name the API server verifies

    def handshake() -> dict[str, Any]:
        ctx = ssl.create_default_context(cadata=served["ca"])
        with socket.create_connection(("127.0.0.1", served["listen"]), timeout=5) as sock:
            with ctx.wrap_socket(sock, server_hostname=service_name) as tls:
                cert = tls.getpeercert()
                assert cert is not None
                return {"version": tls.version(), "cert": cert}

    result = _until("TLS handshake", handshake, served)
    assert result["version"] in ("TLSv1.2", "TLSv1.3")
    assert ("DNS", service_name) in result["cert"]["subjectAltName"]

    # Verification is real: another CA is refused.
    other = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", served["listen"]), timeout=5) as sock:
        with pytest.raises(ssl.SSLCertVerificationError):
            other.wrap_socket(sock, server_hostname=service_name)

    # The probe port answers liveness on plain HTTP, as the chart's livenessProbe expects.
    def healthz() -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{served['probes']}/healthz", timeout=5) as r:
            status: int = r.status
            return status

    assert _until("/healthz", healthz, served) == 200


def _review(uid: str, labels: dict[str, str]) -> dict[str, Any]:
    meta = {"name": "web", "namespace": "team", "labels": labels}
    old = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"replicas": "1"}}
    new = {**old, "data": {"replicas": "5"}}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "requestKind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "requestResource": {"group": "", "version": "v1", "resource": "configmaps"},
            "name": "web",
            "namespace": "team",
            "operation": "UPDATE",
            "userInfo": {"username": "ana", "groups": ["developers", "system:authenticated"]},
            "object": new,
            "oldObject": old,
            "dryRun": False,
        },
    }


def test_binary_from_the_layer_answers_admission_reviews(served: dict[str, Any]) -> None:
    """Ready on the chart's readinessProbe path, then deciding with the chart's config file."""

    def readyz() -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{served['probes']}/readyz", timeout=5) as r:
            status: int = r.status
            return status

    assert _until("/readyz", readyz, served, timeout=60) == 200

    ctx = ssl.create_default_context(cadata=served["ca"])
    ctx.check_hostname = False  # urllib connects to 127.0.0.1; the handshake test checks the name

    def post(review: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            f"https://127.0.0.1:{served['listen']}/validate",
            data=json.dumps(review).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            body: dict[str, Any] = json.loads(r.read())
        assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
        assert body["response"]["uid"] == review["request"]["uid"]
        return body["response"]

    allowed = post(_review("11111111-0000-0000-0000-000000000001", {}))
    assert allowed["allowed"] is True, allowed
    flux = {
        "kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
    }
    denied = post(_review("11111111-0000-0000-0000-000000000002", flux))
    assert denied["allowed"] is False, denied  # the chart's config: mode enforce
    assert denied["status"]["message"].startswith(
        "configmap/web in team is managed by Flux Kustomization flux-system/apps"
    ), denied


def test_build_needs_no_base_image() -> None:
    containerfile = (REPO / "Containerfile").read_text()
    froms = [line.split()[1] for line in containerfile.splitlines() if line.upper().startswith("FROM ")]
    assert froms == ["scratch"]
    assert os.access(REPO / "scripts" / "build-image.sh", os.X_OK)
