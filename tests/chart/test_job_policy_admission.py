"""The chart's job policy as a ValidatingAdmissionPolicy, enforced by the real apiserver.

`kubectl apply` of a trigger whose job_template asks for more than the
install allows is refused up front with the field named; the operator's own
check (tests/operator/test_job_policy.py) covers clusters without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from chart_support import CHART, Helm, values_file

from kube_support import LocalKube
from recluster.kube.errors import KubeError

GROUP, VERSION = "recluster.io", "v1alpha1"
KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def trigger(name: str, **template: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "trigger_type": "interval",
        "schedule_config": {"interval_seconds": 3600, "start_immediately": False},
        "execution_config": {"collection_ids": ["c"],
                             "config": {"algorithm": "kmeans", "n_clusters": 2}},
    }  # fmt: skip
    if template:
        spec["job_template"] = template
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterTrigger",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip


@pytest.fixture
def guarded(kube: LocalKube, helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A namespace the chart's admission policy watches (and only that one)."""
    namespace = kube.new_namespace(kube.namespace_name("policy"))
    values = {
        "watchNamespaces": [namespace],
        "job": {"policy": {"images": ["registry.example/recluster:*"], "secrets": ["hf"],
                           "nodeSelectors": {"pool": ["batch"]}}},
    }  # fmt: skip
    path = values_file(tmp_path_factory.mktemp("policy"), values)
    release = kube.namespace_name("vap")
    done = helm.run("template", release, CHART, "--namespace", "recluster", "-f", path)
    documents = [d for d in yaml.safe_load_all(done.stdout) if d and d["kind"] in KINDS]
    assert [d["kind"] for d in documents] == list(KINDS)
    plurals = {
        "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
        "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
    }
    for document in documents:
        kube.cluster.create("admissionregistration.k8s.io", "v1", plurals[document["kind"]],
                            document)  # fmt: skip
    try:
        yield namespace
    finally:
        for document in documents:
            kube.cluster.delete("admissionregistration.k8s.io", "v1", plurals[document["kind"]],
                                document["metadata"]["name"])  # fmt: skip
        kube.delete_namespace(namespace)


def refusal(kube: LocalKube, namespace: str, body: dict[str, Any]) -> str | None:
    try:
        kube.cluster.create(GROUP, VERSION, "clustertriggers", body, namespace)
    except KubeError as exc:
        return exc.message
    kube.cluster.delete(GROUP, VERSION, "clustertriggers", body["metadata"]["name"], namespace)
    return None


def test_the_apiserver_refuses_what_the_job_policy_does_not_allow(
    kube: LocalKube, guarded: str
) -> None:
    evil = trigger("evil", image="attacker.example/tool:1")
    # a new policy is enforced once the apiserver has compiled it
    message = kube.cluster.wait_for_sync(lambda: refusal(kube, guarded, evil), 60,
                                         "the admission policy to be enforced")  # fmt: skip
    assert "spec.job_template.image attacker.example/tool:1 is not allowed" in message
    cases = {
        "other-secret": trigger("a", env=[{"name": "T", "valueFrom": {
            "secretKeyRef": {"name": "admin-token", "key": "t"}}}]),
        "other-node": trigger("b", nodeSelector={"pool": "gpu"}),
        "toleration": trigger("c", tolerations=[{"operator": "Exists"}]),
        "account": trigger("d", serviceAccountName="cluster-admin-sa"),
    }  # fmt: skip
    for case, body in cases.items():
        assert refusal(kube, guarded, body), case
    claimed = trigger("claimed")
    claimed["metadata"]["annotations"] = {"recluster.io/created-by": "someone-else"}
    assert "set by the REST gateway only" in (refusal(kube, guarded, claimed) or "")
    allowed = trigger(
        "fine",
        image="registry.example/recluster:2",
        nodeSelector={"pool": "batch"},
        env=[{"name": "T", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "t"}}}],
    )
    assert refusal(kube, guarded, allowed) is None
    assert refusal(kube, guarded, trigger("plain")) is None


def test_the_admission_policy_type_checks(kube: LocalKube, guarded: str) -> None:
    """The apiserver found no type errors in the policy's CEL (a typo would disable a rule)."""
    policies = kube.cluster.objects("admissionregistration.k8s.io", "v1",
                                    "validatingadmissionpolicies")  # fmt: skip
    [ours] = [p for p in policies if p["metadata"]["name"].endswith("-recluster-job-policy")]
    checked = kube.cluster.wait_for_sync(
        lambda: (ours_now := kube.cluster.get("admissionregistration.k8s.io", "v1",
                                              "validatingadmissionpolicies",
                                              ours["metadata"]["name"]))
        and ours_now.get("status", {}).get("typeChecking") is not None and ours_now,
        60, "the policy to be type-checked",
    )  # fmt: skip
    assert checked["status"]["typeChecking"].get("expressionWarnings", []) == []
