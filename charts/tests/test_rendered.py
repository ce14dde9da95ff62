"""The committed render (charts/gitops-guard/rendered/) must match what the chart renders.

Regenerate with: python3 charts/tests/render.py --write
"""

from __future__ import annotations

from render import RENDERED, drift, render


def test_committed_render_is_current() -> None:
    assert RENDERED.is_dir(), (
        "charts/gitops-guard/rendered/ is missing: python3 charts/tests/render.py --write"
    )
    diff = drift()
    assert diff == "", (
        "the chart's render drifted from the committed copy; run `python3 charts/tests/render.py --write`:\n"
        + diff
    )


def test_only_generated_certificate_fields_are_normalised() -> None:
    """Two renders differ only in the generated certificate fields, which the copy masks."""
    a = render()["gitops-guard/templates/webhook.yaml"].splitlines()
    b = render()["gitops-guard/templates/webhook.yaml"].splitlines()
    differing = {x.split(":", 1)[0].strip() for x, y in zip(a, b, strict=True) if x != y}
    assert differing == {"ca.crt", "tls.crt", "tls.key", "caBundle"}
    committed = (RENDERED / "webhook.yaml").read_text()
    assert "GENERATED-AT-INSTALL" in committed and "LS0t" not in committed
