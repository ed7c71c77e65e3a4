"""Least privilege, proven: the chart grants exactly what the operator and gateway use.

The integration tests run the operator and the gateway on the real control
plane with the tokens of the chart's ServiceAccounts, bound only to the RBAC
objects the chart renders: a missing grant fails there as a 403. This test
runs after all of them (see `tests/conftest.py`) and reads the apiserver's
audit log: every (API group, resource, verb) the components asked for, in
both directions against the rendered RBAC.
"""

from __future__ import annotations

import pytest
from chart_support import NAMESPACE, Render, Rendered
from test_chart import COMBINATIONS, GATEWAY, OPERATOR

import audit_registry
from kube_support import LocalKube, user_of


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


# Checked by an admission plugin, never requested: OwnerReferencesPermissionEnforcement lets
# a Job name its trigger with blockOwnerDeletion only if its creator may update this.
ADMISSION_ONLY = {("recluster.io", "clustertriggers/finalizers", "update")}


@pytest.mark.parametrize("values", ["gateway", "namespaced-gateway"])
def test_chart_rbac_is_exactly_what_the_components_use(
    render: Render, kube: LocalKube, values: str
) -> None:
    if not (audit_registry.SOURCES["operator"] and audit_registry.SOURCES["gateway"]):
        pytest.skip("run with the operator and gateway integration tests (make test does)")
    kube.sync_audit()
    chosen = dict(COMBINATIONS["gateway"])
    if values == "namespaced-gateway":
        chosen["watchNamespaces"] = ["team-a", "team-b"]
    if audit_registry.SOURCES["rayjobs"]:  # the operator ran with ray.enabled
        chosen["ray"] = {"enabled": True}
    rendered = render(chosen)
    for component, account in (("operator", OPERATOR), ("gateway", GATEWAY)):
        user = user_of(account, NAMESPACE)
        used = kube.audit.rules(user)
        grants = granted(rendered, account)
        if component == "operator":
            assert grants >= ADMISSION_ONLY
            grants -= ADMISSION_ONLY
        assert used - grants == set(), f"{component} uses what the chart does not grant"
        assert grants - used == set(), f"the chart grants {component} what it never uses"
        refused = {e.rule for e in kube.audit.entries() if e.user == user and e.decision != "allow"}
        assert refused == set(), f"the apiserver's authorizers refused {component}"
