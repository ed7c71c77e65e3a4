"""What an install lets a trigger's job_template choose: the job policy (pure).

The operator creates every Job with its own permissions, so a trigger's
author must not be able to choose, through job_template, more than the
install allows: another image, another service account, nodes reserved for
other teams, or Secrets and ConfigMaps of its namespace that the Job should
not read (issue 12: "a trigger cannot do more than its author may").

Rules:

1. Secure by default: an empty policy allows nothing beyond the install's own
   settings (no image, no service account, no node selector, no toleration,
   no Secret or ConfigMap reference in job_template).
2. An allowed image or name ending in `*` allows every value with that prefix.
3. Each violation is one line naming the field and the value.

The same rules are rendered by the Helm chart into a ValidatingAdmissionPolicy
(templates/job-policy.yaml), so that `kubectl apply` is refused up front; the
operator checks again (`violations`) because an admission policy can be off,
and refuses to fire a trigger that breaks the policy (Ready=False,
JobTemplateNotAllowed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api.jobtemplate import JobTemplate

REASON = "JobTemplateNotAllowed"


@dataclass(frozen=True)
class JobPolicy:
    images: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()
    node_selectors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Label key -> allowed values; the key "*" stands for any other key."""
    toleration_keys: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    config_maps: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobPolicy:
        """From the install's JSON (camelCase, as the chart's values name them)."""
        known = {"images", "serviceAccounts", "nodeSelectors", "tolerationKeys", "secrets",
                 "configMaps"}  # fmt: skip
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown job policy fields: {', '.join(unknown)}")

        def names(key: str) -> tuple[str, ...]:
            value = data.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"job policy {key} must be a list of strings")
            return tuple(value)

        selectors = data.get("nodeSelectors") or {}
        if not isinstance(selectors, dict) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in selectors.values()
        ):
            raise ValueError("job policy nodeSelectors must map label keys to lists of values")
        return cls(
            images=names("images"),
            service_accounts=names("serviceAccounts"),
            node_selectors={str(k): tuple(v) for k, v in selectors.items()},
            toleration_keys=names("tolerationKeys"),
            secrets=names("secrets"),
            config_maps=names("configMaps"),
        )


PERMISSIVE = JobPolicy(
    images=("*",), service_accounts=("*",), node_selectors={"*": ("*",)},
    toleration_keys=("*",), secrets=("*",), config_maps=("*",),
)  # fmt: skip
"""Everything allowed (tests; single-tenant installs that opt in)."""


def allowed(value: str, patterns: Iterable[str]) -> bool:
    """Rule 2: exact values, or prefixes written with a trailing `*`."""
    return any(value == p or (p.endswith("*") and value.startswith(p[:-1])) for p in patterns)


def _listing(patterns: Iterable[str]) -> str:
    shown = list(patterns)
    return ", ".join(shown) if shown else "none"


def violations(template: JobTemplate | None, policy: JobPolicy) -> list[str]:
    """Every choice of job_template the policy does not allow, one line each (rule 3)."""
    if template is None:
        return []
    found: list[str] = []
    if template.image is not None and not allowed(template.image, policy.images):
        found.append(f"job_template.image {template.image!r} is not allowed "
                     f"(allowed: {_listing(policy.images)})")  # fmt: skip
    account = template.serviceAccountName
    if account is not None and not allowed(account, policy.service_accounts):
        found.append(f"job_template.serviceAccountName {account!r} is not allowed "
                     f"(allowed: {_listing(policy.service_accounts)})")  # fmt: skip
    for key, value in sorted((template.nodeSelector or {}).items()):
        values = policy.node_selectors.get(key, policy.node_selectors.get("*", ()))
        if not allowed(value, values):
            found.append(f"job_template.nodeSelector {key}={value} is not allowed")
    for index, toleration in enumerate(template.tolerations or []):
        key = toleration.key or ""  # an empty key tolerates every taint: only "*" allows it
        if not allowed(key, policy.toleration_keys):
            found.append(f"job_template.tolerations[{index}] key {key!r} is not allowed")
    for index, env in enumerate(template.env or []):
        source = env.valueFrom
        if source is None:
            continue
        if source.secretKeyRef is not None and not allowed(source.secretKeyRef.name,
                                                           policy.secrets):  # fmt: skip
            found.append(f"job_template.env[{index}].valueFrom.secretKeyRef: Secret "
                         f"{source.secretKeyRef.name!r} is not allowed")  # fmt: skip
        if source.configMapKeyRef is not None and not allowed(source.configMapKeyRef.name,
                                                              policy.config_maps):  # fmt: skip
            found.append(f"job_template.env[{index}].valueFrom.configMapKeyRef: ConfigMap "
                         f"{source.configMapKeyRef.name!r} is not allowed")  # fmt: skip
    return found
