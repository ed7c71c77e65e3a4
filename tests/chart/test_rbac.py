"""Least privilege, proven: the chart grants exactly what the operator and gateway use.

Every integration test that runs the operator or the gateway against the
emulated API records the (API group, resource, verb) of each request
(`tests/audit_registry.py`); this test runs after all of them (see
`tests/conftest.py`) and compares the union with the rendered RBAC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from chart_support import NAMESPACE, Rendered
from test_chart import COMBINATIONS, GATEWAY, OPERATOR

import audit_registry

Render = Callable[[dict[str, Any]], Rendered]


def granted(rendered: Rendered, account: str) -> set[tuple[str, str, str]]:
    rules: set[tuple[str, str, str]] = set()
    for binding in rendered.all("RoleBinding") + rendered.all("ClusterRoleBinding"):
        subject = {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        if subject not in binding["subjects"]:
            continue
        ref = binding["roleRef"]
        role = rendered.one(ref["kind"], ref["name"], binding["metadata"].get("namespace"))
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    rules.update((group, resource, verb) for verb in rule["verbs"])
    return rules


@pytest.mark.parametrize("values", ["gateway", "namespaced-gateway"])
def test_chart_rbac_is_exactly_what_the_components_use(render: Render, values: str) -> None:
    if not (audit_registry.SOURCES["operator"] and audit_registry.SOURCES["gateway"]):
        pytest.skip("run with the operator and gateway integration tests (make test does)")
    chosen = dict(COMBINATIONS["gateway"])
    if values == "namespaced-gateway":
        chosen["watchNamespaces"] = ["team-a", "team-b"]
    rendered = render(chosen)
    for component, account in (("operator", OPERATOR), ("gateway", GATEWAY)):
        used = audit_registry.USED[component]
        grants = granted(rendered, account)
        assert used - grants == set(), f"{component} uses what the chart does not grant"
        assert grants - used == set(), f"the chart grants {component} what it never uses"
