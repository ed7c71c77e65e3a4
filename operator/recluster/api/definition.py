"""ClusterDefinition: what a trigger's cluster_id points to.

The seed's ids ("cluster_xyz789") contain underscores, which Kubernetes
object names forbid. So a ClusterDefinition carries the id in
`spec.cluster_id`; when that is absent, its metadata.name is its id.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .base import Identifier, Model
from .clustering import ExecutionConfig
from .trigger import Condition, Description, ObjectMeta


class ClusterDefinitionSpec(Model):
    """A saved execution configuration that triggers reference by cluster_id."""

    cluster_id: Identifier | None = Field(
        default=None,
        description=(
            "The id triggers use in cluster_id, e.g. 'cluster_xyz789'. Defaults to the "
            "object's name. Must be unique within the namespace."
        ),
        examples=["cluster_xyz789"],
    )
    execution_config: ExecutionConfig = Field(
        description="Collections and algorithm that referencing triggers inherit at each firing."
    )
    description: Description | None = Field(
        default=None, description="Human-readable description of this cluster."
    )


class ClusterDefinitionStatus(Model):
    """Observed state of a ClusterDefinition."""

    model_config = ConfigDict(extra="ignore")

    observedGeneration: int | None = None
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class ClusterDefinition(Model):
    """A ClusterDefinition object as applied with kubectl."""

    apiVersion: Literal["recluster.io/v1alpha1"] = "recluster.io/v1alpha1"
    kind: Literal["ClusterDefinition"] = "ClusterDefinition"
    metadata: ObjectMeta
    spec: ClusterDefinitionSpec
    status: ClusterDefinitionStatus | None = None

    @property
    def cluster_id(self) -> str:
        """The id a trigger's cluster_id must equal to reference this definition."""
        return self.spec.cluster_id or self.metadata.name or ""
