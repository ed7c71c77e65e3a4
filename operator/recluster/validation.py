"""`recluster validate`: everything the cluster would refuse, found before a GitOps sync.

Three layers, reported together without repeating a field:
1. the pydantic models (every seed rule, the clearest messages);
2. the CRD as the apiserver applies it (schema, defaults, CEL rules), so a
   manifest that passes here is one `kubectl apply` admits;
3. what no schema can check: cron syntax, IANA zones, object names, and the
   cluster_id references between the given files.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from .api.admission import admit, join_path
from .api.base import name_problem, namespace_problem
from .api.cel import MAX_TRIGGER_NAME
from .api.definition import ClusterDefinition
from .api.trigger import GROUP_VERSION, ClusterTrigger
from .core.schedule import ScheduleError, validate_cron_expression, validate_timezone
from .manifests import Document

KINDS: dict[str, type[BaseModel]] = {
    "ClusterTrigger": ClusterTrigger,
    "ClusterDefinition": ClusterDefinition,
}
MAX_DEFINITION_NAME = 253


@dataclass(frozen=True)
class Finding:
    """One line of `recluster validate` output."""

    file: str
    obj: str
    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        prefix = "note: " if self.severity == "note" else ""
        where = ": ".join(p for p in (self.file, self.obj, self.path) if p)
        return f"{prefix}{where}: {self.message}"


def _pydantic_message(error: Any) -> str:
    kind, message = error["type"], error["msg"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "rule":
        return str(message)
    return str(message).removeprefix("Value error, ")


def _model_problems(model: type[BaseModel], body: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        model.model_validate(body)
    except ValidationError as exc:
        return [(join_path(e["loc"]), _pydantic_message(e)) for e in exc.errors()]
    return []


def _semantic_problems(kind: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """Checks a schema cannot express, run on a body the models accept."""
    problems: list[tuple[str, str]] = []
    meta = body.get("metadata") or {}
    if "generateName" not in meta or "name" in meta:
        limit = MAX_TRIGGER_NAME if kind == "ClusterTrigger" else MAX_DEFINITION_NAME
        if reason := name_problem(meta.get("name"), limit):
            problems.append(("metadata.name", reason))
    if reason := namespace_problem(meta.get("namespace")):
        problems.append(("metadata.namespace", reason))
    if kind == "ClusterTrigger":
        schedule = body["spec"]["schedule_config"]
        if (expression := schedule.get("cron_expression")) is not None:
            try:
                validate_cron_expression(expression)
            except ScheduleError as exc:
                problems.append(("spec.schedule_config.cron_expression", str(exc)))
        if (zone := schedule.get("timezone")) is not None:
            try:
                validate_timezone(zone)
            except ScheduleError as exc:
                problems.append(("spec.schedule_config.timezone", str(exc)))
    return problems


def document_findings(doc: Document) -> list[Finding]:
    """Problems of one document on its own (references between files come later)."""
    label = f"{doc.kind}/{doc.name}" if doc.kind else f"document {doc.index + 1}"
    if doc.error:
        return [Finding(doc.file, "", "", doc.error)]
    body = doc.body
    if not isinstance(body, dict):
        return [Finding(doc.file, label, "", "not a mapping (expected a Kubernetes object)")]
    api_version = str(body.get("apiVersion", ""))
    if doc.kind not in KINDS:
        if api_version.startswith("recluster.io/"):
            return [Finding(doc.file, label, "kind", f"unknown kind {doc.kind!r} in recluster.io")]
        return []  # other resources of a GitOps repository are none of our business
    if api_version != GROUP_VERSION:
        return [Finding(doc.file, label, "apiVersion", f"must be {GROUP_VERSION}")]
    problems = _model_problems(KINDS[doc.kind], body)
    reported = {path for path, _ in problems}
    for problem in admit(doc.kind, body):
        if problem.path not in reported:
            problems.append((problem.path, f"{problem.message} (refused at admission)"))
            reported.add(problem.path)
    if not problems:
        problems = _semantic_problems(doc.kind, body)
    return [Finding(doc.file, label, path, message) for path, message in problems]


def _cluster_id(body: dict[str, Any]) -> str:
    return str(body["spec"].get("cluster_id") or body["metadata"].get("name") or "")


def reference_findings(documents: list[Document], valid: set[int]) -> list[Finding]:
    """cluster_id references between the given files (valid: indexes of sound documents)."""
    findings: list[Finding] = []
    definitions: dict[tuple[str | None, str], list[Document]] = defaultdict(list)
    for i, doc in enumerate(documents):
        if i in valid and doc.kind == "ClusterDefinition":
            definitions[(doc.namespace, _cluster_id(doc.body))].append(doc)
    for (namespace, cluster_id), docs in definitions.items():
        for doc in docs[1:]:
            findings.append(
                Finding(
                    doc.file,
                    f"ClusterDefinition/{doc.name}",
                    "spec.cluster_id",
                    f"cluster_id {cluster_id!r} is already defined by ClusterDefinition/"
                    f"{docs[0].name} in {docs[0].file}"
                    + (f" (namespace {namespace})" if namespace else ""),
                )
            )
    for i, doc in enumerate(documents):
        if i not in valid or doc.kind != "ClusterTrigger":
            continue
        wanted = doc.body["spec"].get("cluster_id")
        if wanted is None:
            continue
        found = [
            d
            for (namespace, cid), docs in definitions.items()
            for d in docs
            if cid == wanted and (namespace == doc.namespace or None in (namespace, doc.namespace))
        ]
        if not found:
            findings.append(
                Finding(
                    doc.file,
                    f"ClusterTrigger/{doc.name}",
                    "spec.cluster_id",
                    f"cluster_id {wanted!r} is not defined in the given files "
                    "(the cluster may hold it; the trigger will not fire until it exists)",
                    severity="note",
                )
            )
    return findings


def validate_documents(documents: list[Document]) -> list[Finding]:
    """All findings for a set of documents, in file order."""
    findings: list[Finding] = []
    valid: set[int] = set()
    for i, doc in enumerate(documents):
        found = document_findings(doc)
        findings += found
        if not found and doc.kind in KINDS:
            valid.add(i)
    return findings + reference_findings(documents, valid)
