"""`recluster convert`: the seed API's JSON request body <-> a ClusterTrigger manifest.

A manifest keeps exactly the fields the body had (nothing defaulted in), so
converting back gives the same JSON. Kubernetes-only spec fields have no
place in the REST body: they are left out with a warning.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import ValidationError

from .api.admission import join_path
from .api.base import name_problem, namespace_problem
from .api.cel import MAX_TRIGGER_NAME
from .api.trigger import GROUP_VERSION, ClusterTrigger, TriggerRequest, spec_field_names


class ConversionError(ValueError):
    """The input is not a valid request body or manifest; the message lists why."""


def _problems(exc: ValidationError, prefix: str = "") -> str:
    lines = []
    for error in exc.errors():
        path = join_path(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "required field is missing"
        lines.append(f"{prefix}{path}: {message}")
    return "\n".join(lines)


def name_from(body: dict[str, Any]) -> str:
    """A valid, stable object name for a body: its description slugified, else a hash."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(body.get("description") or "").lower()).strip("-")
    slug = slug[:MAX_TRIGGER_NAME].rstrip("-")
    if slug and slug[0].isalnum():
        return slug
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
    return f"trigger-{digest}"


def request_to_manifest(
    body: Any, name: str | None = None, namespace: str | None = None
) -> dict[str, Any]:
    """A ClusterTrigger manifest for a seed request body."""
    if not isinstance(body, dict):
        raise ConversionError("the request body must be a JSON object")
    try:
        request = TriggerRequest.model_validate(body)
    except ValidationError as exc:
        raise ConversionError(_problems(exc)) from exc
    name = name or name_from(body)
    if reason := name_problem(name, MAX_TRIGGER_NAME):
        raise ConversionError(f"metadata.name: {reason}")
    if reason := namespace_problem(namespace):
        raise ConversionError(f"metadata.namespace: {reason}")
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "ClusterTrigger",
        "metadata": metadata,
        "spec": request.model_dump(mode="json", exclude_unset=True, exclude_none=True),
    }


def manifest_to_request(manifest: Any) -> tuple[dict[str, Any], list[str]]:
    """The seed request body of a ClusterTrigger manifest, and warnings for what was left out."""
    if not isinstance(manifest, dict) or manifest.get("kind") != "ClusterTrigger":
        raise ConversionError("expected a ClusterTrigger manifest (kind: ClusterTrigger)")
    try:
        trigger = ClusterTrigger.model_validate(manifest)
    except ValidationError as exc:
        raise ConversionError(_problems(exc)) from exc
    spec = trigger.spec
    body = TriggerRequest.model_validate(
        spec.model_dump(include=set(TriggerRequest.model_fields), exclude_unset=True)
    ).model_dump(mode="json", exclude_unset=True, exclude_none=True)
    warnings = [
        f"spec.{field} has no counterpart in the REST API and is left out"
        for field in sorted(spec_field_names() & spec.model_fields_set)
    ]
    return body, warnings
