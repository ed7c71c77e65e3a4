"""Which components the integration tests ran, for the least-privilege test.

What the operator and the gateway asked of the apiserver is in its audit log
(tests/kube_support.py); `tests/chart/test_rbac.py` runs last and compares it
with the Helm chart's RBAC, once the tests that exercise both have run.
"""

from __future__ import annotations

SOURCES: dict[str, int] = {"operator": 0, "gateway": 0, "rayjobs": 0}
"""rayjobs: the operator ran with ray.enabled (tests/operator/test_operator_rayjobs.py), so
the chart's RBAC to compare with is the one rendered with ray.enabled."""


def ran(component: str) -> None:
    """A test ran `component` against the session's control plane."""
    SOURCES[component] += 1
