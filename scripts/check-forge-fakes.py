#!/usr/bin/env python3
"""Check the fake forge servers of the plugin tests against the forges' published API contracts.

    scripts/check-forge-fakes.py CONTRACT_DIR [--fixtures DIR] [--recordings DIR | --no-run]

CONTRACT_DIR holds pruned copies of GitHub's OpenAPI description (github.json), Gitea's and
Forgejo's Swagger descriptions (gitea.json, forgejo.json) and GitLab's merge-request contract
(gitlab-merge-requests.md); see its README.md. Two things are checked:

1. The canonical response bodies the fakes answer with (plugin/tests/fixtures/forge/*/*.json)
   validate against the contract's schemas, and carry no field the schema does not define.
2. Every exchange the fakes recorded while `cargo test -p kubectl-gitops --test forge` ran
   (GITOPS_GUARD_FORGE_RECORD=DIR makes them write one JSON file per request): the method and
   path are a documented operation with correctly percent-encoded path parameters, the request
   body validates against the operation's request schema (no undocumented fields; Gitea/Forgejo
   also need head, base and title), the status is documented, and the response body validates
   against the schema documented for that status. Calls outside the pruned contracts (requesting
   reviewers, GitLab's user lookup) are listed, not checked.

By default the script runs the forge tests itself to record the exchanges; --recordings reads an
existing directory instead and --no-run checks the fixtures only.

A development check (scripts/test-all runs it when ../shared/forge-contracts exists), not a test.
Needs openapi-schema-validator; when it is missing the script installs a pinned copy into a
virtualenv under ~/.cache/gitops-guard/ and re-runs itself there.
Exit status 0 when everything conforms, 1 on violations, 2 on usage or setup errors.
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parent.parent
VALIDATOR_PIN = "openapi-schema-validator==0.9.0"
VENV = pathlib.Path.home() / ".cache" / "gitops-guard" / "forge-check-venv"


def ensure_validator():
    try:
        import openapi_schema_validator  # noqa: F401
        import referencing  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("GITOPS_GUARD_FORGE_CHECK_VENV") == "1":
        sys.exit(f"check-forge-fakes: {VALIDATOR_PIN} is still missing in {VENV}")
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"check-forge-fakes: installing {VALIDATOR_PIN} into {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", VALIDATOR_PIN], check=True)
    env = dict(os.environ, GITOPS_GUARD_FORGE_CHECK_VENV="1")
    os.execve(str(python), [str(python), __file__, *sys.argv[1:]], env)


ensure_validator()

from openapi_schema_validator import OAS30Validator  # noqa: E402
from referencing import Registry, Resource  # noqa: E402
from referencing.jsonschema import DRAFT4  # noqa: E402

PROBLEMS = []
NOTES = []


def problem(where, what):
    PROBLEMS.append(f"{where}: {what}")


class Contract:
    """One forge's description: schemas by pointer, operations by method and path template."""

    def __init__(self, name, doc, base_uri):
        self.name = name
        self.doc = doc
        self.uri = base_uri
        self.registry = Registry().with_resource(base_uri, Resource.from_contents(doc, default_specification=DRAFT4))

    def resolve(self, schema):
        while isinstance(schema, dict) and "$ref" in schema:
            ref = schema["$ref"]
            pointer = ref.split("#", 1)[1]
            node = self.doc
            for part in pointer.strip("/").split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            schema = node
        return schema

    def validate(self, where, schema, instance):
        """Schema validation (OpenAPI 3.0 rules) plus a check for undocumented fields."""
        wrapped = dict(schema)
        if "$ref" in wrapped:
            wrapped = {"$ref": self.uri + wrapped["$ref"]}
        else:
            wrapped = self._absolute(wrapped)
        validator = OAS30Validator(wrapped, registry=self.registry, format_checker=OAS30Validator.FORMAT_CHECKER)
        for err in sorted(validator.iter_errors(instance), key=lambda e: list(e.path)):
            path = "/".join(str(p) for p in err.absolute_path)
            problem(where, f"{self.name} schema: at /{path}: {err.message[:300]}")
        self.unknown_fields(where, schema, instance, "")

    def _absolute(self, schema):
        if isinstance(schema, dict):
            return {k: (self.uri + v if k == "$ref" and v.startswith("#") else self._absolute(v)) for k, v in schema.items()}
        if isinstance(schema, list):
            return [self._absolute(v) for v in schema]
        return schema

    def unknown_fields(self, where, schema, instance, path):
        schema = self.resolve(schema)
        if not isinstance(schema, dict):
            return
        if isinstance(instance, dict):
            props = {}
            subs = [schema] + [self.resolve(s) for key in ("allOf", "anyOf", "oneOf") for s in schema.get(key, [])]
            for s in subs:
                props.update(self.resolve(s).get("properties", {}) if isinstance(s, dict) else {})
            open_ended = any(isinstance(s, dict) and s.get("additionalProperties") not in (None, False) for s in subs)
            if not props:
                return
            for key, value in instance.items():
                if key in props:
                    self.unknown_fields(where, props[key], value, f"{path}/{key}")
                elif not open_ended:
                    problem(where, f"{self.name} schema: /{path.lstrip('/')}{'/' if path else ''}{key} is not a documented field")
        elif isinstance(instance, list) and "items" in schema:
            for i, item in enumerate(instance):
                self.unknown_fields(where, schema["items"], item, f"{path}/{i}")


def load_contracts(directory):
    d = pathlib.Path(directory)
    try:
        github = json.loads((d / "github.json").read_text())
        gitea = json.loads((d / "gitea.json").read_text())
        forgejo = json.loads((d / "forgejo.json").read_text())
        gitlab_md = (d / "gitlab-merge-requests.md").read_text()
    except (OSError, json.JSONDecodeError) as err:
        sys.exit(f"check-forge-fakes: cannot read the contracts in {d}: {err}")
    gitlab = {"definitions": {}}
    for block in re.findall(r"```json\n(.*?)\n```", gitlab_md, flags=re.S):
        obj = json.loads(block)
        for key, value in obj.items():
            if key.startswith("/api/v4/"):
                gitlab.setdefault("paths", {})[key] = value
            else:
                gitlab["definitions"][key] = value
    props = re.search(r"`API_Entities_MergeRequest` \(201 body\) properties, in order: (.*?)\. id/iid", gitlab_md, flags=re.S)
    mr_fields = set()
    if props:
        for name in re.split(r",\s*", props.group(1).replace("\n", " ")):
            mr_fields.add(name.split("{")[0].strip())
    list_params = re.search(r"Query params \(all optional\): (.*?)\.\s+Responses", gitlab_md, flags=re.S)
    gitlab_list_params = set()
    if list_params:
        text = re.sub(r"\([^)]*\)", "", list_params.group(1).replace("\n", " "))
        for name in re.split(r",\s*", text):
            name = name.strip()
            if name and " " not in name and "[" not in name:
                gitlab_list_params.add(name.split("(")[0])
    return {
        "github": Contract("github", github, "urn:forge-contract:github"),
        "gitea": Contract("gitea", gitea, "urn:forge-contract:gitea"),
        "forgejo": Contract("forgejo", forgejo, "urn:forge-contract:forgejo"),
        "gitlab": Contract("gitlab", gitlab, "urn:forge-contract:gitlab"),
    }, mr_fields, gitlab_list_params


def check_message_url(where, body):
    """Gitea documents error answers as `message`/`url` (as headers); its bodies carry the same."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        problem(where, "error body needs a string message")
    for key, value in (body or {}).items():
        if key not in ("message", "url", "errors"):
            problem(where, f"error body field {key} is not documented")
        elif key == "url" and not isinstance(value, str):
            problem(where, "url must be a string")


def check_gitlab_mr(where, body, mr_fields):
    if not isinstance(body, dict):
        problem(where, "merge request must be an object")
        return
    for key in body:
        if key not in mr_fields:
            problem(where, f"gitlab: {key} is not a documented API_Entities_MergeRequest field")
    for key in ("id", "iid", "project_id"):
        if not isinstance(body.get(key), int) or isinstance(body.get(key), bool):
            problem(where, f"gitlab: {key} must be an integer (int32)")
    if not isinstance(body.get("web_url"), str):
        problem(where, "gitlab: web_url must be a string")


GH = "#/components/schemas/"
FIXTURE_SCHEMAS = {
    "github/pull-request.json": ("github", GH + "pull-request"),
    "github/pull-request-simple.json": ("github", GH + "pull-request-simple"),
    "github/error-already-exists.json": ("github", GH + "validation-error"),
    "github/error-invalid-head.json": ("github", GH + "validation-error"),
    "github/error-missing-field.json": ("github", GH + "validation-error"),
    "github/error-bad-credentials.json": ("github", GH + "basic-error"),
    "github/error-not-found.json": ("github", GH + "basic-error"),
    "github/error-archived.json": ("github", GH + "basic-error"),
    "gitea/pull-request.json": ("gitea", "#/definitions/PullRequest"),
    "gitea/repository.json": ("gitea", "#/definitions/Repository"),
    "forgejo/pull-request.json": ("forgejo", "#/definitions/PullRequest"),
    "forgejo/repository.json": ("forgejo", "#/definitions/Repository"),
    "forgejo/error-already-exists.json": ("forgejo", "#/definitions/APIError"),
    "forgejo/error-archived.json": ("forgejo", "#/definitions/APIRepoArchivedError"),
    "forgejo/error-not-found.json": ("forgejo", "#/definitions/APINotFound"),
    "forgejo/error-validation.json": ("forgejo", "#/definitions/APIValidationError"),
    "forgejo/error-unauthorized.json": ("forgejo", "#/definitions/APIError"),
}


def check_fixtures(contracts, mr_fields, fixtures):
    seen = 0
    for path in sorted(pathlib.Path(fixtures).rglob("*.json")):
        rel = path.relative_to(fixtures).as_posix()
        body = json.loads(path.read_text())
        where = f"fixture {rel}"
        seen += 1
        if rel in FIXTURE_SCHEMAS:
            forge, pointer = FIXTURE_SCHEMAS[rel]
            contracts[forge].validate(where, {"$ref": pointer}, body)
        elif rel.startswith("gitea/error-"):
            check_message_url(where, body)
        elif rel == "gitlab/merge-request.json":
            check_gitlab_mr(where, body, mr_fields)
        elif rel.startswith("gitlab/"):
            NOTES.append(f"{where}: no GitLab schema for it in the contract copy (shape not checked)")
        else:
            problem(where, "no contract schema is assigned to this fixture (add it to FIXTURE_SCHEMAS)")
    return seen


# (forge, method, path template) -> operation facts the recordings are checked against.
def operations(contracts):
    gh = contracts["github"].doc["paths"]
    ops = {}
    for method, template in (("GET", "/repos/{owner}/{repo}"), ("GET", "/repos/{owner}/{repo}/pulls"), ("POST", "/repos/{owner}/{repo}/pulls")):
        op = gh[template][method.lower()]
        responses = {}
        for status, resp in op["responses"].items():
            resp = contracts["github"].resolve(resp)
            schema = resp.get("content", {}).get("application/json", {}).get("schema")
            responses[int(status)] = schema
        request = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        params = [contracts["github"].resolve(p) for p in op.get("parameters", [])]
        ops[("github", method, template)] = {
            "responses": responses,
            "request": request,
            "query": {p["name"] for p in params if p.get("in") == "query"},
        }
    for forge in ("gitea", "forgejo"):
        paths = contracts[forge].doc["paths"]
        for method, template in (("GET", "/repos/{owner}/{repo}"), ("GET", "/repos/{owner}/{repo}/pulls"), ("POST", "/repos/{owner}/{repo}/pulls")):
            op = paths[template][method.lower()]
            responses = {}
            for status, resp in op["responses"].items():
                resp = contracts[forge].resolve(resp)
                responses[int(status)] = resp.get("schema")
            body = [p for p in op.get("parameters", []) if p.get("in") == "body"]
            ops[(forge, method, template)] = {
                "responses": responses,
                "request": body[0]["schema"] if body else None,
                "query": {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"},
            }
    gl = contracts["gitlab"].doc.get("paths", {}).get("/api/v4/projects/{id}/merge_requests", {}).get("post")
    if gl:
        ops[("gitlab", "POST", "/projects/{id}/merge_requests")] = {
            "responses": {int(s): None for s in gl["responses"]},
            "request": {"$ref": "#/definitions/postApiV4ProjectsIdMergeRequests"},
            "query": set(),
        }
    return ops


# Answers real forges give that the pruned operations do not list (a bad token, an unknown
# repository); their bodies are still checked against the forge's error shape.
UNDOCUMENTED_OK = {("github", 401), ("github", 404), ("gitea", 401), ("forgejo", 401)}


def template_regex(template):
    return re.compile("^" + re.sub(r"\\\{[a-z_]+\\\}", "([^/]+)", re.escape(template)) + "$")


def encoded_like_client(segment):
    return urllib.parse.quote(urllib.parse.unquote(segment), safe="-._~").upper() == segment.upper()


def check_recordings(contracts, mr_fields, gitlab_list_params, recordings):
    ops = operations(contracts)
    files = sorted(pathlib.Path(recordings).glob("*.json"))
    if not files:
        problem("recordings", f"no recorded exchanges in {recordings}")
        return 0
    skipped = {}
    for path in files:
        rec = json.loads(path.read_text())
        forge, method, raw = rec["forge"], rec["method"], rec["path"]
        where = f"{path.name} ({forge} {method} {raw} -> {rec['status']})"
        contract = contracts[forge]
        match = None
        for (f, m, template), op in ops.items():
            if f == forge and m == method:
                found = template_regex(template).match(raw)
                if found:
                    match = (template, op, found.groups())
        if match is None:
            if forge == "gitlab" and method == "GET" and re.match(r"^/projects/[^/]+/merge_requests$", raw):
                for name in rec.get("query", {}):
                    if name not in gitlab_list_params:
                        problem(where, f"gitlab list: query parameter {name} is not documented")
                key = "gitlab GET /projects/{id}/merge_requests (parameters checked; no response schema in the contract copy)"
            else:
                generic = re.sub(r"/[0-9]+(/|$)", r"/N\1", raw)
                key = f"{forge} {method} {generic}"
            skipped[key] = skipped.get(key, 0) + 1
            continue
        template, op, params = match
        for value in params:
            if not encoded_like_client(value):
                problem(where, f"path parameter {value!r} is not percent-encoded")
        for name in rec.get("query", {}):
            if name not in op["query"]:
                problem(where, f"query parameter {name} is not documented for {method} {template}")
        if op["request"] is not None:
            body = rec.get("request")
            if body is None:
                problem(where, "request has no JSON body")
            else:
                contract.validate(where + " request", op["request"], body)
                if forge in ("gitea", "forgejo"):
                    for field in ("head", "base", "title"):
                        if not isinstance(body.get(field), str) or not body.get(field):
                            problem(where, f"request needs a non-empty string {field}")
        status = rec["status"]
        if status not in op["responses"] and (forge, status) not in UNDOCUMENTED_OK:
            problem(where, f"status {status} is not documented for {method} {template} ({sorted(op['responses'])})")
        schema = op["responses"].get(status)
        response = rec.get("response")
        if forge == "github" and status in (401, 403, 404) and schema is None:
            schema = {"$ref": GH + "basic-error"}
        if forge == "forgejo" and status == 401:
            schema = {"$ref": "#/definitions/APIError"}
        if schema is not None:
            contract.validate(where + " response", schema, response)
        elif forge == "gitea" and status >= 400:
            check_message_url(where + " response", response)
        elif forge == "gitlab" and status == 201:
            check_gitlab_mr(where + " response", response, mr_fields)
    for key, count in sorted(skipped.items()):
        NOTES.append(f"not in the contract copy, not checked: {key} x{count}")
    return len(files)


def record(recordings):
    env = dict(os.environ, GITOPS_GUARD_FORGE_RECORD=str(recordings))
    env.setdefault("CARGO_TARGET_DIR", str(pathlib.Path.home() / ".cache" / "gitops-guard" / "target"))
    cmd = ["cargo", "test", "-q", "-p", "kubectl-gitops", "--test", "forge"]
    print(f"check-forge-fakes: recording: {' '.join(cmd)}", file=sys.stderr)
    result = subprocess.run(cmd, cwd=ROOT, env=env)
    if result.returncode != 0:
        sys.exit(2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("contracts")
    parser.add_argument("--fixtures", default=str(ROOT / "plugin" / "tests" / "fixtures" / "forge"))
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--recordings")
    group.add_argument("--no-run", action="store_true")
    args = parser.parse_args()
    contracts, mr_fields, gitlab_list_params = load_contracts(args.contracts)
    fixtures = check_fixtures(contracts, mr_fields, args.fixtures)
    exchanges = 0
    if not args.no_run:
        if args.recordings:
            exchanges = check_recordings(contracts, mr_fields, gitlab_list_params, args.recordings)
        else:
            with tempfile.TemporaryDirectory(prefix="forge-recordings-") as tmp:
                record(tmp)
                exchanges = check_recordings(contracts, mr_fields, gitlab_list_params, tmp)
    for note in NOTES:
        print(f"note: {note}")
    if PROBLEMS:
        for p in PROBLEMS:
            print(f"VIOLATION {p}")
        print(f"check-forge-fakes: {len(PROBLEMS)} violation(s) in {fixtures} fixtures and {exchanges} recorded exchanges")
        return 1
    print(f"check-forge-fakes: {fixtures} fixtures and {exchanges} recorded exchanges conform to the contracts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
