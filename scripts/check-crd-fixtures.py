#!/usr/bin/env python3
"""Check the test CRD fixtures against upstream CRDs.

    scripts/check-crd-fixtures.py UPSTREAM_DIR [FIXTURE_DIR]

Every CustomResourceDefinition in FIXTURE_DIR (default: tests/fixtures/crds of this checkout) must
have an upstream CRD of the same metadata.name somewhere under UPSTREAM_DIR (searched recursively,
*.yaml / *.yml, multi-document files allowed), and both must agree on group, scope, names (kind,
listKind, plural, singular, shortNames, categories), the served/storage flag of every version and
the subresources of every version. Schemas are not compared: the fixtures accept any object.

A development check (scripts/test-all runs it when ../shared/crds exists), not a test.
Exit status 0 when everything matches, 1 on differences, 2 on usage or read errors.
"""

import pathlib
import sys

try:
    import yaml
except ImportError:
    sys.exit("check-crd-fixtures: needs PyYAML (pip install pyyaml, or apt-get install python3-yaml)")

NAME_KEYS = ("kind", "listKind", "plural", "singular", "shortNames", "categories")


def load_crds(directory):
    crds = {}
    files = sorted(p for p in pathlib.Path(directory).rglob("*") if p.suffix in (".yaml", ".yml"))
    for path in files:
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except (OSError, yaml.YAMLError) as err:
            sys.exit(f"check-crd-fixtures: cannot read {path}: {err}")
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                crds[doc["metadata"]["name"]] = (path, doc)
    return crds


def summary(crd):
    spec = crd["spec"]
    names = spec.get("names", {})
    facts = {
        "group": spec.get("group"),
        "scope": spec.get("scope"),
    }
    for key in NAME_KEYS:
        value = names.get(key)
        if key in ("shortNames", "categories"):
            value = sorted(value or [])
        if key == "listKind" and value is None:
            value = names.get("kind", "") + "List"  # the apiserver's default
        facts[f"names.{key}"] = value
    for version in spec.get("versions", []):
        prefix = f"version {version['name']}"
        facts[f"{prefix} served"] = bool(version.get("served"))
        facts[f"{prefix} storage"] = bool(version.get("storage"))
        subresources = version.get("subresources") or {}
        facts[f"{prefix} subresources"] = sorted(subresources)
        if "scale" in subresources:
            facts[f"{prefix} scale"] = subresources["scale"]
    return facts


def main(argv):
    if len(argv) not in (2, 3):
        print("usage: scripts/check-crd-fixtures.py UPSTREAM_DIR [FIXTURE_DIR]", file=sys.stderr)
        return 2
    upstream_dir = pathlib.Path(argv[1])
    fixture_dir = (
        pathlib.Path(argv[2])
        if len(argv) == 3
        else pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "crds"
    )
    for d in (upstream_dir, fixture_dir):
        if not d.is_dir():
            print(f"check-crd-fixtures: {d} is not a directory", file=sys.stderr)
            return 2
    upstream = load_crds(upstream_dir)
    fixtures = load_crds(fixture_dir)
    if not fixtures:
        print(f"check-crd-fixtures: no CRDs in {fixture_dir}", file=sys.stderr)
        return 2
    problems = []
    for name, (path, fixture) in sorted(fixtures.items()):
        if name not in upstream:
            problems.append(f"{path}: {name} has no upstream CRD under {upstream_dir}")
            continue
        up_path, up = upstream[name]
        mine, theirs = summary(fixture), summary(up)
        for key in sorted(set(mine) | set(theirs)):
            if mine.get(key) != theirs.get(key):
                problems.append(
                    f"{path}: {name}: {key} is {mine.get(key)!r}, upstream ({up_path}) has {theirs.get(key)!r}"
                )
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"check-crd-fixtures: {len(problems)} difference(s); fix the fixtures in {fixture_dir}", file=sys.stderr)
        return 1
    print(f"check-crd-fixtures: {len(fixtures)} fixture CRDs match {upstream_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
