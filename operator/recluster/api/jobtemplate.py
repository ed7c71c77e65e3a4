"""job_template: how the Job of a firing is shaped.

The fields are standard Kubernetes Job/Pod fields and keep their Kubernetes
names (camelCase), so they read like the PodSpec they end up in.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

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


RESERVED_ENV_PREFIXES = (
    "RECLUSTER_", "AWS_", "GOOGLE_", "AZURE_", "PG", "PYTHON", "LD_", "NUMBA_", "FSSPEC_",
    "KUBERNETES_",
)  # fmt: skip
RESERVED_ENV_NAMES = (
    "BROWSER", "HOME", "PATH", "TMPDIR", "SHELL", "USER", "HOSTNAME", "SSL_CERT_FILE",
    "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY",
    "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
)  # fmt: skip
"""Names a trigger's job_template.env may not set (issue 12): the install's store
credentials and the Job's identity (RECLUSTER_*, AWS_*, PG*), and what changes how
Python, the dynamic linker or the network stack behave (PYTHON*, LD_*, BROWSER, proxies,
CA bundles): each could read another tenant's data or run code in the image."""
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"


def reserved_env(name: str) -> str | None:
    """Why a job_template env name is refused, or None: the one home of this rule."""
    if name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES):
        return (
            f"{name} is reserved: the install sets the Job's identity, store credentials and "
            "runtime environment (names starting with "
            + ", ".join(RESERVED_ENV_PREFIXES)
            + " and "
            + ", ".join(RESERVED_ENV_NAMES[:4])
            + ", ... are refused)"
        )
    return None


class KeySelector(Model):
    """A key of a Secret or ConfigMap of the trigger's namespace."""

    name: ShortStr = Field(description="Name of the Secret or ConfigMap.")
    key: ShortStr = Field(description="The key whose value is taken.")
    optional: bool | None = Field(default=None, description="Missing is fine.")


class FieldSelector(Model):
    """A field of the Job's own pod (the downward API)."""

    fieldPath: ShortStr = Field(description="e.g. metadata.name, metadata.labels['x'].")
    apiVersion: ShortStr | None = Field(default=None, description="Default v1.")


class ResourceFieldSelector(Model):
    """A resource request or limit of the container (the downward API)."""

    resource: ShortStr = Field(description="e.g. limits.memory.")
    containerName: ShortStr | None = Field(default=None, description="Default: this one.")
    divisor: Quantity | None = Field(default=None, description="Default 1.")


class EnvVarSource(Model):
    """Where an environment variable's value comes from: exactly one source."""

    secretKeyRef: KeySelector | None = Field(
        default=None, description="A key of a Secret the install allows (see docs/security.md)."
    )
    configMapKeyRef: KeySelector | None = Field(
        default=None, description="A key of a ConfigMap the install allows."
    )
    fieldRef: FieldSelector | None = Field(default=None, description="A field of the pod.")
    resourceFieldRef: ResourceFieldSelector | None = Field(
        default=None, description="A resource of the container."
    )

    @model_validator(mode="after")
    def _one_source(self) -> EnvVarSource:
        given = [n for n in EnvVarSource.model_fields if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef"
            )
        return self


class EnvVar(Model):
    """An environment variable of the clustering container (core/v1 EnvVar)."""

    name: Annotated[
        str, StringConstraints(min_length=1, max_length=253, pattern=ENV_NAME_PATTERN)
    ] = Field(description="Name of the environment variable (not a reserved one).")
    value: Annotated[str, StringConstraints(max_length=32768)] | None = Field(
        default=None, description="Literal value."
    )
    valueFrom: EnvVarSource | None = Field(
        default=None, description="Source of the value, instead of a literal one."
    )

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if (why := reserved_env(name)) is not None:
            raise ValueError(why)
        return name

    @model_validator(mode="after")
    def _value_or_source(self) -> EnvVar:
        if self.value is not None and self.valueFrom is not None:
            raise ValueError("give value or valueFrom, not both")
        return self


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
