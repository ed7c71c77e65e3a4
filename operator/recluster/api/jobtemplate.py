"""job_template: how the Job of a firing is shaped.

The fields are standard Kubernetes Job/Pod fields and keep their Kubernetes
names (camelCase), so they read like the PodSpec they end up in.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from .base import MAX_SECONDS, Model

Quantity = Annotated[
    Annotated[int, Field(ge=0, le=2**63 - 1)] | str,
    Field(
        description="A Kubernetes quantity such as 500m, 2Gi or 1.",
        json_schema_extra={"x-kubernetes-int-or-string": True},
    ),
]
ShortStr = Annotated[str, StringConstraints(max_length=253)]
Label = Annotated[str, StringConstraints(max_length=317)]


class ResourceRequirements(Model):
    """Compute resources of the clustering container."""

    limits: dict[ShortStr, Quantity] | None = Field(
        default=None, description="Maximum resources, e.g. {cpu: '2', memory: 4Gi}."
    )
    requests: dict[ShortStr, Quantity] | None = Field(
        default=None, description="Guaranteed resources, e.g. {cpu: '1', memory: 2Gi}."
    )


class Toleration(Model):
    """A Pod toleration (core/v1 Toleration)."""

    key: ShortStr | None = Field(default=None, description="Taint key the toleration applies to.")
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal (default Equal)."
    )
    value: ShortStr | None = Field(default=None, description="Taint value to match (Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    tolerationSeconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SECONDS,
        description=(
            "How long a NoExecute taint is tolerated (Kubernetes treats negative values as 0)."
        ),
    )


class EnvVar(Model):
    """An environment variable of the clustering container (core/v1 EnvVar)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=253)] = Field(
        description="Name of the environment variable."
    )
    value: Annotated[str, StringConstraints(max_length=32768)] | None = Field(
        default=None, description="Literal value."
    )
    valueFrom: dict[str, Any] | None = Field(
        default=None,
        description="Source of the value (secretKeyRef, configMapKeyRef, fieldRef, ...).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class JobTemplate(Model):
    """Shape of the Job each firing creates. Every field is optional."""

    image: ShortStr | None = Field(
        default=None,
        description="Container image of the Job; defaults to the operator's own image.",
    )
    imagePullPolicy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None, description="Image pull policy of the Job's container."
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="CPU and memory requests and limits of the Job's container."
    )
    nodeSelector: dict[ShortStr, Label] | None = Field(
        default=None, description="Node labels the Job's pod must match."
    )
    tolerations: list[Toleration] | None = Field(
        default=None, max_length=64, description="Tolerations of the Job's pod."
    )
    serviceAccountName: ShortStr | None = Field(
        default=None, description="Service account the Job's pod runs as."
    )
    backoffLimit: int | None = Field(
        default=None, ge=0, le=100, description="Retries before the Job is marked failed."
    )
    activeDeadlineSeconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SECONDS,
        description="Seconds the Job may run before it is stopped.",
    )
    env: list[EnvVar] | None = Field(
        default=None, max_length=128, description="Extra environment variables."
    )
