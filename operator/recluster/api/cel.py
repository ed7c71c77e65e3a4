"""CEL rules of the CRDs, generated from the same tables the pydantic validators read.

Each rule is what the apiserver evaluates at admission (`x-kubernetes-validations`).
Rules only test presence (`has`) and compare enum strings, so their cost is
constant and far inside the apiserver's budget.
"""

from __future__ import annotations

from typing import Any

from .clustering import (
    ALGORITHM_PARAMETERS,
    COMMON_PARAMETERS,
    OPTICS_MIN_SAMPLES,
    RAY_ALGORITHMS,
    RAY_UNSUPPORTED_PARAMETERS,
    ClusteringConfig,
    optics_min_samples_message,
)
from .jobtemplate import RESERVED_ENV_NAMES, RESERVED_ENV_PREFIXES
from .notifications import URL_RULES
from .schedule import SCHEDULE_FIELDS

Rule = dict[str, Any]

MAX_TRIGGER_NAME = 52
"""ClusterTrigger names are capped like CronJob names: Job names append a suffix."""


def _quoted(values: list[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def trigger_spec_rules() -> list[Rule]:
    """Rules on ClusterTrigger.spec: the seed's cross-field requirements."""
    rules: list[Rule] = [
        {
            "rule": "has(self.cluster_id) || has(self.execution_config)",
            "message": "one of cluster_id or execution_config is required",
            "fieldPath": ".execution_config",
            "reason": "FieldValueRequired",
        },
        {
            "rule": "!has(self.cluster_id) || !has(self.execution_config)",
            "message": "cluster_id and execution_config are mutually exclusive: give one",
            "fieldPath": ".cluster_id",
            "reason": "FieldValueForbidden",
        },
    ]
    for trigger_type, fields in SCHEDULE_FIELDS.items():
        for name in fields:
            rules.append(
                {
                    "rule": (
                        f"self.trigger_type != '{trigger_type}' || has(self.schedule_config.{name})"
                    ),
                    "message": (
                        f"schedule_config.{name} is required when trigger_type is {trigger_type}"
                    ),
                    "fieldPath": f".schedule_config.{name}",
                    "reason": "FieldValueRequired",
                }
            )
    for trigger_type, fields in SCHEDULE_FIELDS.items():
        for name in fields:
            rules.append(
                {
                    "rule": (
                        f"!has(self.schedule_config.{name}) || "
                        f"self.trigger_type == '{trigger_type}'"
                    ),
                    "message": (
                        f"schedule_config.{name} belongs to trigger_type {trigger_type} only"
                    ),
                    "fieldPath": f".schedule_config.{name}",
                    "reason": "FieldValueForbidden",
                }
            )
    return rules


def clustering_config_rules() -> list[Rule]:
    """Rules on execution_config.config: which parameters each algorithm takes."""
    rules: list[Rule] = []
    for algorithm, rule in ALGORITHM_PARAMETERS.items():
        for name in rule.required:
            rules.append(
                {
                    "rule": f"self.algorithm != '{algorithm}' || has(self.{name})",
                    "message": f"{name} is required when algorithm is {algorithm}",
                    "fieldPath": f".{name}",
                    "reason": "FieldValueRequired",
                }
            )
    parameters = [name for name in ClusteringConfig.model_fields if name not in COMMON_PARAMETERS]
    for name in parameters:
        owners = [a for a, r in ALGORITHM_PARAMETERS.items() if name in r.allowed]
        rules.append(
            {
                "rule": f"!has(self.{name}) || self.algorithm in {_quoted(owners)}",
                "message": f"{name} is a parameter of {', '.join(owners)} only",
                "fieldPath": f".{name}",
                "reason": "FieldValueForbidden",
            }
        )
    rules.append(
        {
            "rule": (
                "self.algorithm != 'agglomerative' || "
                "has(self.n_clusters) != has(self.distance_threshold)"
            ),
            "message": "agglomerative needs exactly one of n_clusters and distance_threshold",
            "fieldPath": ".n_clusters",
            "reason": "FieldValueInvalid",
        }
    )
    rules.append(
        {
            "rule": (
                "self.algorithm != 'optics' || !has(self.min_samples) || "
                f"self.min_samples >= {OPTICS_MIN_SAMPLES}"
            ),
            "message": optics_min_samples_message(),
            "fieldPath": ".min_samples",
            "reason": "FieldValueInvalid",
        }
    )
    return rules


def execution_config_rules() -> list[Rule]:
    """Rules on execution_config: what runtime ray allows (clustering.runtime_problems)."""
    ray = "has(self.runtime) && self.runtime == 'ray'"
    rules: list[Rule] = [
        {
            "rule": f"!has(self.ray) || ({ray})",
            "message": "ray is only used with runtime ray",
            "fieldPath": ".ray",
            "reason": "FieldValueForbidden",
        },
        {
            "rule": f"!({ray}) || self.config.algorithm in {_quoted(list(RAY_ALGORITHMS))}",
            "message": f"runtime ray runs {', '.join(RAY_ALGORITHMS)} only (use runtime job)",
            "fieldPath": ".config.algorithm",
            "reason": "FieldValueInvalid",
        },
    ]
    for name in RAY_UNSUPPORTED_PARAMETERS:
        rules.append(
            {
                "rule": f"!({ray}) || !has(self.config.{name})",
                "message": f"config.{name} is not supported with runtime ray",
                "fieldPath": f".config.{name}",
                "reason": "FieldValueForbidden",
            }
        )
    return rules


def ray_config_rules() -> list[Rule]:
    """Rules on execution_config.ray: an existing cluster, or the run's own (RayConfig)."""
    return [
        {
            "rule": f"!has(self.cluster_selector) || !has(self.{name})",
            "message": f"{name} is not used with cluster_selector (the existing RayCluster "
            "has its own)",
            "fieldPath": f".{name}",
            "reason": "FieldValueForbidden",
        }
        for name in ("workers", "worker_resources")
    ]


def env_var_rules() -> list[Rule]:
    """Rules on job_template.env items: the reserved names (jobtemplate.reserved_env)."""
    starts = " || ".join(f"self.name.startsWith('{p}')" for p in RESERVED_ENV_PREFIXES)
    return [
        {
            "rule": f"!({starts} || self.name in {_quoted(list(RESERVED_ENV_NAMES))})",
            "message": (
                "this name is reserved: the install sets the Job's identity, store "
                "credentials and runtime environment ("
                + ", ".join(RESERVED_ENV_PREFIXES)
                + "..., "
                + ", ".join(RESERVED_ENV_NAMES[:4])
                + ", ...)"
            ),
            "fieldPath": ".name",
            "reason": "FieldValueForbidden",
        },
        {
            "rule": "!has(self.value) || !has(self.valueFrom)",
            "message": "give value or valueFrom, not both",
            "fieldPath": ".valueFrom",
            "reason": "FieldValueInvalid",
        },
    ]


def env_source_rule() -> Rule:
    """job_template.env[].valueFrom: exactly one source (jobtemplate.EnvVarSource)."""
    sources = ("secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef")
    present = ", ".join(f"has(self.{s})" for s in sources)
    return {
        "rule": f"[{present}].filter(x, x).size() == 1",
        "message": "give exactly one of " + ", ".join(sources),
        "reason": "FieldValueInvalid",
    }


def webhook_rules() -> list[Rule]:
    """Rules on notifications.webhooks items: the URL rules of notifications.URL_RULES."""
    rules: list[Rule] = []
    for pattern, must_match, reason in URL_RULES:
        escaped = pattern.replace("\\", "\\\\")
        test = f"self.url.matches('{escaped}')"
        rules.append(
            {
                "rule": test if must_match else f"!{test}",
                "message": f"url {reason}",
                "fieldPath": ".url",
                "reason": "FieldValueInvalid",
            }
        )
    return rules
