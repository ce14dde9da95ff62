"""The release (scripts/release.sh, issue 14): the archives as a person installs them — unpacked
into an empty directory that is alone on PATH with kubectl — drive `kubectl gitops version`,
`status` and completion through kubectl itself against the local control plane; the krew
manifest passes krew's own manifest rules with the sha256 of the archive actually built; the
packaged chart installs with the Helm SDK; the release workflow passes GitHub's workflow schema.

The release build shares its target dir with scripts/build-image.sh (test_image.py builds the
same webhook first), so only kubectl-gitops is an extra release build.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from conftest import REPO, Cluster, workspace_version

VERSION = workspace_version()
TAG = f"v{VERSION}"
PLUGIN_ARCHIVE = f"kubectl-gitops_{TAG}_linux_amd64.tar.gz"
WEBHOOK_ARCHIVE = f"gitops-guard-webhook_{TAG}_linux_amd64.tar.gz"
RELEASE_NAMESPACE = "guard-from-package"


@dataclass
class Release:
    dir: Path
    log: str


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    out = tmp_path_factory.mktemp("release") / "dist"
    run = subprocess.run(
        ["bash", str(REPO / "scripts" / "release.sh"), VERSION, str(out)],
        capture_output=True,
        text=True,
        timeout=3600,  # a cold static release build of both binaries
    )
    assert run.returncode == 0, f"scripts/release.sh failed:\n{run.stderr[-6000:]}"
    assert run.stdout.strip().splitlines()[-1] == str(out), run.stdout
    return Release(out, run.stderr)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def head_commit() -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


# ---- krew's manifest rules (kubernetes-sigs/krew: pkg/index/validation and
# cmd/validate-krew-manifest), written down here ----

KREW_API_VERSION = "krew.googlecontainertools.github.com/v1alpha2"
# The <os, arch> pairs krew installs on; a platform must match one, and no pair two platforms.
KREW_PLATFORMS = [
    (os_, arch)
    for os_ in ("linux", "darwin", "windows")
    for arch in ("386", "amd64", "arm", "arm64", "ppc64le", "s390x")
]
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
# Kubernetes' semantic version with krew's leading v (k8s.io/apimachinery ParseSemantic).
KREW_SEMVER = re.compile(
    r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)


def selector_matches(selector: dict[str, Any], os_: str, arch: str) -> bool:
    labels = {"os": os_, "arch": arch}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        value, op, values = labels.get(expr["key"]), expr["operator"], expr.get("values") or []
        if (op == "In" and value not in values) or (op == "NotIn" and value in values):
            return False
        if (op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
            return False
    return True


def krew_problems(manifest: dict[str, Any], file_name: str) -> list[str]:
    """What krew (validation.ValidatePlugin and validate-krew-manifest) would refuse."""
    problems = []
    name = file_name.removesuffix(".yaml")
    if not file_name.endswith(".yaml"):
        problems.append(f"manifest file {file_name} does not end in .yaml")
    if manifest.get("apiVersion") != KREW_API_VERSION:
        problems.append(f"apiVersion {manifest.get('apiVersion')!r} is not {KREW_API_VERSION}")
    if manifest.get("kind") != "Plugin":
        problems.append(f"kind {manifest.get('kind')!r} is not Plugin")
    if not re.fullmatch(r"[\w-]+", name) or name.upper() in WINDOWS_RESERVED:
        problems.append(f"plugin name {name!r} is not allowed")
    if (manifest.get("metadata") or {}).get("name") != name:
        problems.append(f"metadata.name is not the file's name {name!r}")
    spec = manifest.get("spec") or {}
    short = spec.get("shortDescription") or ""
    if not short:
        problems.append("no shortDescription")
    if "\n" in short or "\r" in short:
        problems.append("shortDescription has a line break")
    if not KREW_SEMVER.match(str(spec.get("version") or "")):
        problems.append(f"version {spec.get('version')!r} is not a semantic version with a leading v")
    # krew-index's line-length rules (warnings there): 80 columns, 70 for shortDescription.
    for field, limit in (("description", 80), ("caveats", 80), ("shortDescription", 70)):
        for line in str(spec.get(field) or "").splitlines():
            if len(line) > limit and " " in line.strip():
                problems.append(f"{field} has a line over {limit} characters: {line!r}")
    platforms = spec.get("platforms") or []
    if not platforms:
        problems.append("no platforms")
    for i, p in enumerate(platforms):
        where = f"platforms[{i}]"
        uri = p.get("uri") or ""
        if not uri.startswith("https://"):
            problems.append(f"{where}.uri {uri!r} is not https")
        if not re.fullmatch(r"[a-f0-9]{64}", str(p.get("sha256") or "")):
            problems.append(f"{where}.sha256 is not 64 lowercase hex digits")
        if not p.get("bin"):
            problems.append(f"{where}.bin is not set")
        if "files" in p:
            if not p["files"]:
                problems.append(f"{where}.files is empty (leave it out or list files)")
            for f in p["files"] or []:
                if not f.get("from") or not f.get("to"):
                    problems.append(f"{where}.files needs from and to: {f}")
        sel = p.get("selector")
        if not sel or (not sel.get("matchLabels") and not sel.get("matchExpressions")):
            problems.append(f"{where}.selector is empty")
            continue
        keys = [*(sel.get("matchLabels") or {})] + [e.get("key") for e in sel.get("matchExpressions") or []]
        if any(k not in ("os", "arch") for k in keys):
            problems.append(f"{where}.selector uses keys other than os and arch: {keys}")
        if not any(selector_matches(sel, o, a) for o, a in KREW_PLATFORMS):
            problems.append(f"{where}.selector matches no platform krew supports")
    for o, a in KREW_PLATFORMS:
        matching = [i for i, p in enumerate(platforms) if p.get("selector") and selector_matches(p["selector"], o, a)]
        if len(matching) > 1:
            problems.append(f"platforms {matching} overlap on {o}/{a}")
    return problems


def archive_names(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


# ---- the release itself ----


def test_release_has_static_archives_chart_image_and_sums(release: Release) -> None:
    files = {p.relative_to(release.dir).as_posix() for p in release.dir.rglob("*") if p.is_file()}
    expected = {
        PLUGIN_ARCHIVE,
        WEBHOOK_ARCHIVE,
        f"gitops-guard-{VERSION}.tgz",
        "plugins/gitops.yaml",
        "SHA256SUMS",
    }
    assert expected <= files, files
    if shutil.which("buildah"):
        assert f"gitops-guard-webhook-{VERSION}.oci.tar" in files, release.log
    # No arm64 toolchain here: the release says so instead of pretending.
    rustup = shutil.which("rustup")
    installed = subprocess.run([rustup, "target", "list", "--installed"], capture_output=True, text=True).stdout if rustup else ""
    if "aarch64-unknown-linux-gnu" not in installed.split():
        assert "linux/arm64: not built: this toolchain cannot cross-compile it" in release.log
        assert not any("arm64" in f for f in files), files

    sums = dict(
        reversed(line.split(None, 1)) for line in (release.dir / "SHA256SUMS").read_text().splitlines()
    )
    assert set(sums) == files - {"SHA256SUMS"}
    for name, digest in sums.items():
        assert sha256(release.dir / name) == digest, name

    plugin = archive_names(release.dir / PLUGIN_ARCHIVE)
    assert set(plugin) == {"kubectl-gitops", "kubectl_complete-gitops", "LICENSE", "README.md"}
    webhook = archive_names(release.dir / WEBHOOK_ARCHIVE)
    assert set(webhook) == {"gitops-guard-webhook", "LICENSE", "README.md"}
    for members in (plugin, webhook):
        for m in members.values():
            assert m.uid == 0 and m.gid == 0, m.name
            assert m.mode == (0o755 if not m.name.endswith(("LICENSE", ".md")) else 0o644), m.name
    # The same tree twice gives the same archives (names sorted, fixed owner and times).
    assert len({m.mtime for m in plugin.values()}) == 1


def test_binaries_are_static_and_say_which_build_they_are(release: Release, tmp_path: Path) -> None:
    for archive, binary in ((PLUGIN_ARCHIVE, "kubectl-gitops"), (WEBHOOK_ARCHIVE, "gitops-guard-webhook")):
        with tarfile.open(release.dir / archive) as tar:
            tar.extractall(tmp_path / binary, filter="data")
        path = tmp_path / binary / binary
        program_headers = subprocess.run(["readelf", "-lW", str(path)], capture_output=True, text=True, check=True)
        assert "INTERP" not in program_headers.stdout, f"{binary} needs a dynamic loader"
        dynamic = subprocess.run(["readelf", "-dW", str(path)], capture_output=True, text=True, check=True)
        assert "(NEEDED)" not in dynamic.stdout, f"{binary} needs shared libraries:\n{dynamic.stdout}"
        version = subprocess.run([str(path), "--version"], capture_output=True, text=True, env={})
        assert version.returncode == 0 and VERSION in version.stdout, version
    client = subprocess.run(
        [str(tmp_path / "kubectl-gitops" / "kubectl-gitops"), "version", "--client"], capture_output=True, text=True, env={}
    )
    assert client.stdout == f"kubectl-gitops {VERSION} (commit {head_commit()[:12]})\n", client


# ---- installed from the archive, alone on PATH with kubectl ----


@pytest.fixture(scope="module")
def installed(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin archive unpacked into an empty directory, as the README's one line does."""
    bin_dir = tmp_path_factory.mktemp("bin")
    subprocess.run(["tar", "-xzf", str(release.dir / PLUGIN_ARCHIVE), "-C", str(bin_dir)], check=True)
    return bin_dir


def user_env(cluster: Cluster, bin_dir: Path, tmp: Path, kubeconfig: str | None = None) -> dict[str, str]:
    """The plugin's directory alone on PATH, plus a directory holding only kubectl."""
    kubectl_dir = tmp / "kubectl-only"
    kubectl_dir.mkdir(exist_ok=True)
    link = kubectl_dir / "kubectl"
    if not link.exists():
        kubectl = shutil.which("kubectl")
        assert kubectl, "kubectl is not on PATH"
        link.symlink_to(kubectl)
    return {
        "PATH": f"{bin_dir}:{kubectl_dir}",
        "HOME": str(tmp / "home"),
        "KUBECONFIG": kubeconfig or cluster.kubeconfig,
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "KUBECACHEDIR": str(tmp / "cache" / "kube"),
    }


def run(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def objects(cluster: Cluster) -> Iterator[str]:
    ns = "release-check"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("create", "configmap", "web-env", "-n", ns, "--from-literal=A=1")
    cluster.kubectl("create", "configmap", "worker-env", "-n", ns, "--from-literal=A=1")
    yield ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_plugin_from_the_archive_runs_through_kubectl(
    cluster: Cluster, installed: Path, objects: str, tmp_path: Path
) -> None:
    env = user_env(cluster, installed, tmp_path)
    listed = run(env, "kubectl", "plugin", "list", cwd=tmp_path)
    assert f"{installed}/kubectl-gitops" in listed.stdout, listed

    version = run(env, "kubectl", "gitops", "version", cwd=tmp_path)
    assert version.returncode == 0, version
    assert version.stdout.splitlines() == [
        f"kubectl-gitops {VERSION} (commit {head_commit()[:12]})",
        "guard: not reachable (no ValidatingWebhookConfiguration has the webhook guard.gitops-guard.dev: "
        "is the guard installed? (helm install gitops-guard …, see the chart's README))",
    ], version

    status = run(env, "kubectl", "gitops", "status", "configmaps", "-n", objects, "--all", cwd=tmp_path)
    assert status.returncode == 0, status
    rows = [line.split() for line in status.stdout.splitlines()[1:]]
    assert sorted(r[0] for r in rows) == ["configmap/web-env", "configmap/worker-env"], status.stdout

    # A server named by host name: the static binary resolves it (glibc's files/dns, built in).
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    for c in config["clusters"]:
        c["cluster"]["server"] = c["cluster"]["server"].replace("127.0.0.1", "localhost")
        ca = c["cluster"].get("certificate-authority")
        if ca and not os.path.isabs(ca):
            c["cluster"]["certificate-authority"] = str(Path(cluster.kubeconfig).parent / ca)
    for u in config["users"]:
        for key in ("client-certificate", "client-key"):
            value = u["user"].get(key)
            if value and not os.path.isabs(value):
                u["user"][key] = str(Path(cluster.kubeconfig).parent / value)
    by_name = tmp_path / "localhost.kubeconfig"
    by_name.write_text(yaml.safe_dump(config))
    named = run(user_env(cluster, installed, tmp_path, str(by_name)), "kubectl", "gitops", "status", "configmaps", "-n", objects, "--all", cwd=tmp_path)
    assert named.returncode == 0 and "configmap/web-env" in named.stdout, named


def completions(out: str) -> tuple[list[str], str]:
    lines = [line for line in out.splitlines() if line]
    assert lines and lines[-1].startswith(":"), out
    return [line.split("\t")[0] for line in lines[:-1]], lines[-1]


def test_kubectl_completes_the_plugin(cluster: Cluster, installed: Path, objects: str, tmp_path: Path) -> None:
    env = user_env(cluster, installed, tmp_path)
    # What kubectl runs for `kubectl gitops st<TAB>`: the helper, with the words after `gitops`.
    direct = run(env, "kubectl_complete-gitops", "st", cwd=tmp_path)
    assert direct.returncode == 0, direct
    assert completions(direct.stdout) == (["status"], ":4"), direct.stdout

    # And kubectl itself (its hidden __complete, as the shells call it) finds and runs the helper.
    for words, expected in [
        (["st"], ["status"]),
        (["status", "-o", "w"], ["wide"]),
        (["status", "--sel"], ["--selector"]),
        (["status", "-n", objects, "configm"], ["configmaps"]),
        (["status", "-n", objects, "configmaps/w"], ["configmaps/web-env", "configmaps/worker-env"]),
        (["trace", "-n", objects, "configmap", "web-env", ""], []),
        (["trace", "-n", objects, "configmap", "we"], ["web-env"]),
        (["status", "-n", "release-c"], [objects]),
    ]:
        out = run(env, "kubectl", "__complete", "gitops", *words, cwd=tmp_path)
        assert out.returncode == 0, out
        got, directive = completions(out.stdout)
        assert got == expected, (words, out.stdout, out.stderr)
        assert directive == ":4", (words, out.stdout)


# ---- the krew manifest ----


def test_krew_manifest_follows_krews_rules(release: Release) -> None:
    path = release.dir / "plugins" / "gitops.yaml"
    manifest = yaml.safe_load(path.read_text())
    assert krew_problems(manifest, path.name) == []
    spec = manifest["spec"]
    assert spec["version"] == TAG
    assert "admission webhook" in spec["caveats"] and "kubectl_complete-gitops" in spec["caveats"]
    (platform,) = spec["platforms"]  # linux/amd64 is all this machine builds
    assert platform["selector"] == {"matchLabels": {"os": "linux", "arch": "amd64"}}
    assert platform["uri"] == f"https://github.com/gitops-guard/gitops-guard/releases/download/{TAG}/{PLUGIN_ARCHIVE}"
    assert platform["sha256"] == sha256(release.dir / PLUGIN_ARCHIVE)
    members = archive_names(release.dir / PLUGIN_ARCHIVE)
    assert platform["bin"] in members
    assert {f["from"] for f in platform["files"]} <= set(members)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda m: m["spec"].update(version=VERSION), "is not a semantic version with a leading v"),
        (lambda m: m["spec"]["platforms"][0].update(sha256="ABC"), "sha256 is not 64 lowercase hex digits"),
        (lambda m: m["spec"]["platforms"][0].update(uri="http://example.com/x.tar.gz"), "is not https"),
        (lambda m: m["spec"]["platforms"][0].pop("bin"), "bin is not set"),
        (lambda m: m["spec"]["platforms"][0].update(files=[]), "files is empty"),
        (lambda m: m["spec"]["platforms"][0]["selector"]["matchLabels"].update(distro="debian"), "keys other than os and arch"),
        (lambda m: m["spec"]["platforms"][0]["selector"]["matchLabels"].update(os="plan9"), "matches no platform"),
        (lambda m: m["spec"]["platforms"].append(copy.deepcopy(m["spec"]["platforms"][0])), "overlap on linux/amd64"),
        (lambda m: m["metadata"].update(name="kubectl-gitops"), "metadata.name is not the file's name"),
        (lambda m: m["spec"].update(shortDescription="two\nlines"), "shortDescription has a line break"),
    ],
)
def test_the_krew_rules_refuse_what_krew_refuses(release: Release, edit: Any, problem: str) -> None:
    manifest = yaml.safe_load((release.dir / "plugins" / "gitops.yaml").read_text())
    edit(manifest)
    problems = krew_problems(manifest, "gitops.yaml")
    assert any(problem in p for p in problems), problems


# ---- the packaged chart ----


def test_packaged_chart_installs_with_the_helm_sdk(
    cluster: Cluster, release: Release, installed: Path, tmp_path: Path
) -> None:
    package = release.dir / f"gitops-guard-{VERSION}.tgz"
    with helm_python.Chart.load(package) as chart:
        meta = chart.metadata
    assert (meta["version"], meta["appVersion"]) == (VERSION, VERSION), meta
    with helm_python.Config(kubeconfig_path=cluster.kubeconfig, namespace=RELEASE_NAMESPACE) as helm:
        rel = helm.install(str(package), "guard", namespace=RELEASE_NAMESPACE, create_namespace=True, timeout=120)
        try:
            assert rel["status"] == "deployed", rel.get("status")
            deployment = cluster.get("deployment", "-n", RELEASE_NAMESPACE, "guard-gitops-guard")
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            assert container["image"].endswith(f"/gitops-guard-webhook:{VERSION}"), container["image"]
            # No kubelet here: the guard never runs, and version says where it looked and why.
            env = user_env(cluster, installed, tmp_path)
            version = run(env, "kubectl", "gitops", "version", cwd=tmp_path)
            assert version.returncode == 0, version
            guard = version.stdout.splitlines()[1]
            assert guard.startswith(
                f"guard: not reachable (service {RELEASE_NAMESPACE}/guard-gitops-guard through the API server: "
            ), guard
            # 1.20 without an endpoints controller: the Service has no Endpoints object at all.
            assert f'services "guard-gitops-guard" not found; check that the guard runs: kubectl get pods,endpoints -n {RELEASE_NAMESPACE})' in guard, guard
        finally:
            helm.uninstall("guard", ignore_not_found=True, timeout=120)
            cluster.kubectl("delete", "namespace", RELEASE_NAMESPACE, "--wait=false", check=False)


# ---- the release workflow ----

WORKFLOW = REPO / ".github" / "workflows" / "release.yml"


def check_workflow(path: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("check-jsonschema")
    assert tool, "check-jsonschema is missing: pip install -r charts/tests/requirements.txt"
    return subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(path)], capture_output=True, text=True, timeout=120
    )


def test_release_workflow_is_valid_and_publishes_the_release(tmp_path: Path) -> None:
    checked = check_workflow(WORKFLOW)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    flow = yaml.safe_load(WORKFLOW.read_text())
    on = flow[True] if True in flow else flow["on"]  # YAML 1.1 reads `on` as true
    assert on == {"push": {"tags": ["v*"]}}
    (job,) = flow["jobs"].values()
    script = "\n".join(step.get("run", "") for step in job["steps"])
    assert 'scripts/release.sh "$GITHUB_REF_NAME" "$OUT"' in script
    for published in ('"$OUT"/*.tar.gz', '"$OUT"/*.tgz', '"$OUT"/SHA256SUMS', '"$OUT"/plugins/gitops.yaml', "skopeo copy", "helm_python.push"):
        assert published in script, published
    # The lint catches a broken workflow.
    broken = yaml.safe_load(WORKFLOW.read_text())
    del broken["jobs"]["release"]["runs-on"]
    bad = tmp_path / "release.yml"
    bad.write_text(yaml.safe_dump(broken))
    assert check_workflow(bad).returncode != 0
