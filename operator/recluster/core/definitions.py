"""Which execution_config a firing runs: the inline one, or its ClusterDefinition's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from ..api.clustering import ExecutionConfig
from ..api.trigger import ClusterTriggerSpec


def definition_ids(name: str, spec: Mapping[str, Any]) -> str:
    """The id a ClusterDefinition answers to: spec.cluster_id, else its name."""
    return str(spec.get("cluster_id") or name)


def resolve_execution(
    spec: ClusterTriggerSpec, definitions: Iterable[Mapping[str, Any]]
) -> tuple[ExecutionConfig | None, tuple[str, str] | None]:
    """(config, None) or (None, (reason, message)).

    `definitions` are the ClusterDefinitions of the trigger's namespace whose id
    equals spec.cluster_id, as {"name": ..., "spec": {...}} mappings.
    """
    if spec.execution_config is not None:
        return spec.execution_config, None
    found = list(definitions)
    if not found:
        return None, (
            "ClusterDefinitionNotFound",
            f"no ClusterDefinition in this namespace has cluster_id {spec.cluster_id!r} "
            "(set spec.cluster_id on a ClusterDefinition, or name it so)",
        )
    if len(found) > 1:
        names = ", ".join(sorted(str(d["name"]) for d in found))
        return None, (
            "ClusterDefinitionAmbiguous",
            f"several ClusterDefinitions have cluster_id {spec.cluster_id!r}: {names}",
        )
    try:
        return ExecutionConfig.model_validate(found[0]["spec"]["execution_config"]), None
    except (KeyError, ValidationError) as exc:
        return None, (
            "ClusterDefinitionInvalid",
            f"ClusterDefinition {found[0]['name']} has no valid execution_config: {exc}",
        )
