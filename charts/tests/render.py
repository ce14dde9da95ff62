"""Render the gitops-guard chart with the Helm v4 SDK (helm_python), for the tests and for the
committed copy of the default render under charts/gitops-guard/rendered/.

    python3 charts/tests/render.py --write   # regenerate charts/gitops-guard/rendered/
    python3 charts/tests/render.py --check   # exit 1 and show a diff if it drifted (CI: the
                                             # test_rendered.py test does the same)

The committed copy is the chart rendered with default values, release "gitops-guard" in namespace
"gitops-guard", with Helm's default (recent) capabilities. With cert-manager off (the default) the
chart generates a CA and serving certificate on every offline render, so those fields are replaced
by placeholders (see normalize()) to keep the copy deterministic.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

import helm_python
import yaml
from helm_python import _native

CHART = Path(__file__).resolve().parent.parent / "gitops-guard"
RENDERED = CHART / "rendered"
RELEASE = "gitops-guard"
NAMESPACE = "gitops-guard"


def render(
    values: dict[str, Any] | None = None,
    *,
    kube_version: str | None = None,
    api_versions: list[str] | None = None,
    name: str = RELEASE,
    namespace: str = NAMESPACE,
) -> dict[str, str]:
    """Render offline; returns {template path: manifest text}.

    Without kube_version this is the SDK's public Chart.render (Helm's default capabilities). The
    pinned helm-python-sdk (0.2.2) does not expose capabilities in Chart.render, but the C library
    call it wraps, helm_render, reads `kube_version` and `api_versions` from the same options JSON
    (they are in the library's option struct, and test_render.py checks that they take effect), so
    a specific cluster version is rendered through that same call.
    """
    with helm_python.Chart.load(CHART) as chart:
        if kube_version is None and api_versions is None:
            return chart.render(values, name=name, namespace=namespace)
        opts: dict[str, Any] = {"name": name, "namespace": namespace}
        if kube_version is not None:
            opts["kube_version"] = kube_version
        if api_versions is not None:
            opts["api_versions"] = api_versions
        out = _native.call_string(
            "helm_render",
            chart._raw(),
            None if values is None else json.dumps(values),
            json.dumps(opts),
        )
        rendered: dict[str, str] = json.loads(out)
        return rendered


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in a render, in template order."""
    out: list[dict[str, Any]] = []
    for path in sorted(rendered):
        if not path.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(rendered[path]):
            if doc:
                out.append(doc)
    return out


def manifest_objects(manifest: str) -> list[dict[str, Any]]:
    """Objects in a release manifest (what an install returns)."""
    return [d for d in yaml.safe_load_all(manifest) if d]


# Fields whose values the chart generates at random when it renders without a cluster.
_GENERATED = [
    (re.compile(r"^(\s+(?:ca\.crt|tls\.crt|tls\.key|caBundle): ).+$", re.M), r"\1GENERATED-AT-INSTALL"),
    (re.compile(r"^(\s+checksum/tls: ).+$", re.M), r"\1GENERATED-AT-INSTALL"),
]


def normalize(text: str) -> str:
    for pattern, repl in _GENERATED:
        text = pattern.sub(repl, text)
    return text


def default_render_files() -> dict[str, str]:
    """The committed form of the default render: {file name under rendered/: text}."""
    files: dict[str, str] = {}
    for path, text in render().items():
        if not text.strip():
            continue  # templates switched off by default
        name = Path(path).name
        if name in files:
            raise ValueError(f"two templates render to rendered/{name}")
        files[name] = normalize(text).strip("\n") + "\n"
    return files


def committed_files() -> dict[str, str]:
    return {
        p.name: p.read_text() for p in sorted(RENDERED.iterdir()) if p.is_file() and p.name != "README.md"
    }


def drift() -> str:
    """A unified diff between the committed render and a fresh one ("" when equal)."""
    want = default_render_files()
    have = committed_files() if RENDERED.is_dir() else {}
    out: list[str] = []
    for name in sorted(set(want) | set(have)):
        a = have.get(name, "").splitlines(keepends=True)
        b = want.get(name, "").splitlines(keepends=True)
        out.extend(difflib.unified_diff(a, b, f"committed/{name}", f"rendered/{name}"))
    return "".join(out)


def write() -> None:
    RENDERED.mkdir(exist_ok=True)
    want = default_render_files()
    for p in RENDERED.iterdir():
        if p.is_file() and p.name != "README.md" and p.name not in want:
            p.unlink()
    for name, text in want.items():
        (RENDERED / name).write_text(text)


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        write()
        print(f"wrote {RENDERED}")
        return 0
    if argv == ["--check"]:
        diff = drift()
        if diff:
            sys.stdout.write(diff)
            print("\nthe committed render drifted: run python3 charts/tests/render.py --write")
            return 1
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
