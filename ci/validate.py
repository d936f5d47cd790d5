#!/usr/bin/env python3
"""Validates atf's CI recipes offline, against the schemas that bundled
Python packages ship (installed into .tools/venv by scripts/test-deps.sh):

- ci/gitlab-ci.yml      GitLab's CI schema (vendored in check-jsonschema)
- ci/k8s/*.yaml         the Kubernetes schemas of kubernetes-validate
- ci/testkube/*.yaml    ci/schemas/testkube-testworkflow.schema.json
- Dockerfile            parsed by dockerfile-parse: known instructions,
                        a final stage with ENTRYPOINT ["atf"]
- ci/Jenkinsfile        no offline schema exists for a declarative
                        pipeline; checked for balanced braces and the
                        steps that publish JUnit and Allure

Prints one line per file; exits 1 when any check fails.
Usage: validate.py [ROOT]"""

import json
import pathlib
import sys

import yaml
import jsonschema
import kubernetes_validate
from check_jsonschema.builtin_schemas import get_builtin_schema
from dockerfile_parse import DockerfileParser

# The repository (or a copy of its ci/ folder and Dockerfile, given as the
# first argument).
ROOT = pathlib.Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent
K8S_VERSION = "1.30.0"
failures = []


def report(path, problems):
    rel = path.relative_to(ROOT)
    if problems:
        failures.append(rel)
        for p in problems:
            print(f"{rel}: {p}")
    else:
        print(f"{rel}: ok")


def schema_errors(schema, doc):
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    ]


def gitlab(path):
    doc = yaml.safe_load(path.read_text())
    report(path, schema_errors(get_builtin_schema("vendor.gitlab-ci"), doc))


def kubernetes(path):
    problems = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None:
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}: {e.message} at {list(e.path)}")
        except Exception as e:  # an unknown kind or version
            problems.append(f"{doc.get('kind')}: {e}")
    report(path, problems)


def testkube(path):
    schema = json.loads((ROOT / "ci/schemas/testkube-testworkflow.schema.json").read_text())
    problems = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is not None:
            problems += schema_errors(schema, doc)
    report(path, problems)


KNOWN = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
         "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
         "COMMENT"}


def dockerfile(path):
    parser = DockerfileParser(path=str(path))
    problems = []
    instructions = parser.structure
    for ins in instructions:
        if ins["instruction"] not in KNOWN:
            problems.append(f"line {ins['startline'] + 1}: unknown instruction {ins['instruction']}")
    froms = [i for i in instructions if i["instruction"] == "FROM"]
    if not froms:
        problems.append("no FROM")
    last_stage = instructions[instructions.index(froms[-1]):] if froms else []
    entry = [i for i in last_stage if i["instruction"] == "ENTRYPOINT"]
    if not entry or json.loads(entry[-1]["value"]) != ["atf"]:
        problems.append('the final stage needs ENTRYPOINT ["atf"]')
    if not any(i["instruction"] == "COPY" and "--from=" in i["value"] for i in last_stage):
        problems.append("the final stage copies nothing from the build stage")
    report(path, problems)


def jenkinsfile(path):
    text = path.read_text()
    problems = []
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            problems.append("a } closes nothing")
            break
    if depth > 0:
        problems.append(f"{depth} unclosed {{")
    for needed in ("pipeline {", "junit ", "allure ", "atf report merge", "ATF_SHARD"):
        if needed not in text:
            problems.append(f"missing `{needed.strip()}`")
    report(path, problems)


gitlab(ROOT / "ci/gitlab-ci.yml")
for p in sorted((ROOT / "ci/k8s").glob("*.yaml")):
    kubernetes(p)
for p in sorted((ROOT / "ci/testkube").glob("*.yaml")):
    testkube(p)
dockerfile(ROOT / "Dockerfile")
jenkinsfile(ROOT / "ci/Jenkinsfile")
sys.exit(1 if failures else 0)
