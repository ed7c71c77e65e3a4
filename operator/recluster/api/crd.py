"""Generate the CustomResourceDefinitions from the pydantic models.

Pydantic emits JSON Schema (draft 2020-12); a CRD wants a *structural*
OpenAPI v3 schema: every node typed, no `$ref`, no `anyOf` of differing
shapes, `nullable` instead of null unions (we simply drop them: the
apiserver prunes nulls of non-nullable fields), boolean `exclusiveMinimum`.
This module does that translation and adds the CEL rules of `cel.py`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .cel import (
    MAX_TRIGGER_NAME,
    clustering_config_rules,
    env_source_rule,
    env_var_rules,
    execution_config_rules,
    ray_config_rules,
    trigger_spec_rules,
    webhook_rules,
)
from .definition import ClusterDefinitionSpec, ClusterDefinitionStatus
from .trigger import API_GROUP, API_VERSION, ClusterTriggerSpec, ClusterTriggerStatus

Schema = dict[str, Any]

# Order of keys in the emitted schema, for readable diffs and `kubectl explain`.
_KEY_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "required",
    "properties",
    "additionalProperties",
    "items",
)
_DROPPED = {"title", "examples", "propertyNames"}
_MAX_TIMESTAMP_LENGTH = 64


class StructuralSchemaError(ValueError):
    """A model uses a construct a structural CRD schema cannot express."""


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Inline `$ref`s and collapse `X | None` unions to X, keeping outer annotations."""
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").split("/")[-1]]
        node = {**target, **node}
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o != {"type": "null"}]
        if node.get("x-kubernetes-int-or-string"):
            return node
        if len(options) != 1:
            raise StructuralSchemaError(f"union of several shapes is not structural: {options}")
        inner = _resolve(options[0], defs)
        node = {**inner, **{k: v for k, v in node.items() if k != "default" or v is not None}}
    return node


def to_structural(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Translate one pydantic JSON Schema node into a structural OpenAPI v3 node."""
    node = _resolve(node, defs)
    out: Schema = {}
    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
        node.pop("anyOf", None)
    for key, value in node.items():
        if key in _DROPPED or (key == "default" and value is None):
            continue
        if key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = to_structural(value, defs)
            continue
        if key == "properties":
            out[key] = {name: to_structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = to_structural(value, defs)
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = value
    if out.get("format") == "date-time":
        out.setdefault("maxLength", _MAX_TIMESTAMP_LENGTH)
    if "enum" in out and out.get("type") == "string":
        out.setdefault("maxLength", max(len(v) for v in out["enum"]))
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    ordered = {k: out.pop(k) for k in _KEY_ORDER if k in out}
    return {**ordered, **out}


def model_schema(model: type[BaseModel]) -> Schema:
    """The structural schema of a pydantic model (by alias, validation mode)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return to_structural(raw, defs)


def _execution_config_rules(execution: Schema) -> None:
    execution["x-kubernetes-validations"] = execution_config_rules()
    execution["properties"]["config"]["x-kubernetes-validations"] = clustering_config_rules()
    execution["properties"]["ray"]["x-kubernetes-validations"] = ray_config_rules()


def _trigger_schema() -> Schema:
    spec = model_schema(ClusterTriggerSpec)
    spec["x-kubernetes-validations"] = trigger_spec_rules()
    _execution_config_rules(spec["properties"]["execution_config"])
    env_item = spec["properties"]["job_template"]["properties"]["env"]["items"]
    env_item["x-kubernetes-validations"] = env_var_rules()
    env_item["properties"]["valueFrom"]["x-kubernetes-validations"] = [env_source_rule()]
    webhook = spec["properties"]["notifications"]["properties"]["webhooks"]["items"]
    webhook["x-kubernetes-validations"] = webhook_rules()
    status = model_schema(ClusterTriggerStatus)
    return _root(
        "ClusterTrigger: when to re-cluster embedding collections, and what to run.",
        spec,
        status,
        max_name_length=MAX_TRIGGER_NAME,
    )


def _definition_schema() -> Schema:
    spec = model_schema(ClusterDefinitionSpec)
    _execution_config_rules(spec["properties"]["execution_config"])
    status = model_schema(ClusterDefinitionStatus)
    return _root(
        "ClusterDefinition: a saved execution configuration that triggers reference by cluster_id.",
        spec,
        status,
    )


def _root(
    description: str, spec: Schema, status: Schema, max_name_length: int | None = None
) -> Schema:
    metadata: Schema = {"type": "object"}
    if max_name_length:
        # The only metadata restriction a CRD may state: Job names append a suffix.
        metadata["properties"] = {"name": {"type": "string", "maxLength": max_name_length}}
    root: Schema = {
        "description": description,
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": metadata,
            "spec": spec,
            "status": status,
        },
    }
    return root


def _crd(
    kind: str,
    plural: str,
    short: str,
    schema: Schema,
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{API_GROUP}",
            "annotations": {"recluster.io/generated-by": "recluster crds (do not edit)"},
        },
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["recluster"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def _column(name: str, path: str, kind: str, description: str, priority: int = 0) -> Any:
    column: dict[str, Any] = {
        "name": name,
        "type": kind,
        "jsonPath": path,
        "description": description,
    }
    if priority:
        column["priority"] = priority
    return column


def cluster_trigger_crd() -> dict[str, Any]:
    """The ClusterTrigger CRD."""
    columns = [
        _column("Type", ".spec.trigger_type", "string", "Trigger type"),
        _column("Schedule", ".status.schedule", "string", "When it fires (cron, every, threshold)"),
        _column("Status", ".status.status", "string", "Current status"),
        # a string, not a date: kubectl shows a date column as an age, "<invalid>" when future
        _column("Next", ".status.next_scheduled_at", "string", "Next scheduled execution (UTC)"),
        _column("Last", ".status.last_triggered_at", "date", "Last time the trigger fired"),
        _column("Executions", ".status.execution_count", "integer", "Total executions"),
        _column("Failures", ".status.consecutive_failures", "integer", "Consecutive failures"),
        _column("Age", ".metadata.creationTimestamp", "date", "Age"),
        _column("Job", ".status.last_execution_job_id", "string", "Last Job", priority=1),
        _column("Description", ".spec.description", "string", "Description", priority=1),
    ]
    return _crd("ClusterTrigger", "clustertriggers", "ctr", _trigger_schema(), columns)


def cluster_definition_crd() -> dict[str, Any]:
    """The ClusterDefinition CRD."""
    columns = [
        _column("Cluster-ID", ".spec.cluster_id", "string", "Id triggers reference"),
        _column("Algorithm", ".spec.execution_config.config.algorithm", "string", "Algorithm"),
        _column("Age", ".metadata.creationTimestamp", "date", "Age"),
    ]
    return _crd("ClusterDefinition", "clusterdefinitions", "cdef", _definition_schema(), columns)


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, as committed under crds/ and charts/recluster/crds/."""
    return {
        f"{API_GROUP}_clustertriggers.yaml": cluster_trigger_crd(),
        f"{API_GROUP}_clusterdefinitions.yaml": cluster_definition_crd(),
    }


HEADER = "# Generated by `recluster crds` from the pydantic models. Do not edit.\n"


class _PlainDumper(yaml.SafeDumper):
    """No anchors and aliases: a schema shared by two fields is written out twice."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(crd: dict[str, Any]) -> str:
    """YAML text of one CRD, stable across runs."""
    text = yaml.dump(crd, Dumper=_PlainDumper, sort_keys=False, width=100, allow_unicode=True)
    return HEADER + text


def write_crds(directories: list[Path]) -> list[Path]:
    """Write every CRD into each directory; return the paths written."""
    written = []
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
        for name, crd in all_crds().items():
            path = directory / name
            path.write_text(render(copy.deepcopy(crd)))
            written.append(path)
    return written


def schema_of(kind: str) -> Schema:
    """The openAPIV3Schema of a kind ('ClusterTrigger' or 'ClusterDefinition')."""
    crd = cluster_trigger_crd() if kind == "ClusterTrigger" else cluster_definition_crd()
    schema: Schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema
