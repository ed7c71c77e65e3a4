"""The chart's manifests, and the Jobs the operator builds from its settings, meet a real apiserver.

Server-side apply with dry-run (`kubectl apply --server-side --dry-run=server`)
sends every rendered object through the real apiserver's decoding, schema
validation, defaulting and admission (PodSecurity, RBAC escalation checks,
...) without storing it, for every values combination of test_chart.py. And
the real kube-scheduler places a Job's pod by the affinity the chart gives it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import COMBINATIONS, NAMESPACE, Render, job_from_chart

from kube_support import LocalKube
from recluster.kube.errors import KubeError

NOT_SERVED = {"ServiceMonitor"}
"""Kinds of CRDs this cluster does not have (prometheus-operator's): checked offline only."""


def ensure_namespace(kube: LocalKube, name: str) -> None:
    try:
        kube.cluster.create(
            "",
            "v1",
            "namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
    except KubeError as exc:
        if exc.status != 409:
            raise


CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "Namespace", "CustomResourceDefinition"}


def in_release_namespace(document: dict[str, Any]) -> dict[str, Any]:
    """Where `helm install --namespace` puts an object whose template names none."""
    if document["kind"] in CLUSTER_SCOPED or document["metadata"].get("namespace"):
        return document
    return {**document, "metadata": {**document["metadata"], "namespace": NAMESPACE}}


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_rendered_manifests_are_accepted_by_the_apiserver(
    render: Render, kube: LocalKube, kubectl_binary: Path, combination: str
) -> None:
    rendered = render(COMBINATIONS[combination])
    namespaces = {d["metadata"].get("namespace") for d in rendered.documents} | {NAMESPACE}
    for namespace in sorted(n for n in namespaces if n):
        ensure_namespace(kube, namespace)
    served = [in_release_namespace(d) for d in rendered.documents if d["kind"] not in NOT_SERVED]
    assert served, "nothing rendered"
    # --force-conflicts: the session's fixture applied the chart's RBAC objects already
    done = subprocess.run(
        [str(kubectl_binary), "--kubeconfig", str(kube.plane.admin_kubeconfig),
         "apply", "--server-side", "--dry-run=server", "--field-manager=helm",
         "--force-conflicts", "-f", "-"],
        input=yaml.safe_dump_all(served), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    assert done.stdout.count("serverside-applied (server dry run)") == len(served)


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_the_jobs_built_from_the_chart_settings_are_accepted(
    render: Render, kube: LocalKube, combination: str
) -> None:
    """What the operator would create in a tenant's namespace, sent to the apiserver (dry run)."""
    rendered = render(COMBINATIONS[combination])
    namespace = kube.namespace_name("chart-jobs")
    kube.new_namespace(namespace)
    try:
        job = job_from_chart(rendered, namespace)
        path = kube.cluster.path("batch", "v1", "jobs", namespace)
        assert kube.admin_api is not None
        accepted = kube.admin_api.request("POST", path, job, query={"dryRun": "All"})
        assert accepted["spec"]["template"]["spec"]["containers"][0]["image"]
        # the deadline and the store's affinity survive the apiserver's decoding and defaulting
        assert accepted["spec"].get("activeDeadlineSeconds") == job["spec"].get(
            "activeDeadlineSeconds"
        )
        pod, sent = accepted["spec"]["template"]["spec"], job["spec"]["template"]["spec"]
        assert pod.get("affinity") == sent.get("affinity")
    finally:
        kube.delete_namespace(namespace)


def _scheduling(kube: LocalKube, name: str, namespace: str) -> tuple[str, str]:
    """(node the pod is bound to or "", message of its PodScheduled condition or "")."""
    pod = kube.cluster.get("", "v1", "pods", name, namespace) or {}
    scheduled = [
        c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == "PodScheduled"
    ]
    message = scheduled[0].get("message", "") if scheduled else ""
    return (pod.get("spec") or {}).get("nodeName", ""), message


def test_the_scheduler_holds_a_job_pod_to_the_operators_node(
    render: Render, kube: LocalKube
) -> None:
    """The affinity the chart gives Jobs (the default ReadWriteOnce store), read by the real
    kube-scheduler: no operator pod, no node for the Job's pod; once the operator's pod is on a
    node, the Job's pod goes to that node. The operator's namespace is a fresh one here (the
    term's `namespaces`), so that no other test's pods count."""
    rendered = render({})
    affinity = job_from_chart(rendered, NAMESPACE)["spec"]["template"]["spec"]["affinity"]
    operator_labels = rendered.one("Deployment", "rel-recluster-operator")["spec"]["template"][
        "metadata"
    ]["labels"]
    jobs, operators = kube.namespace_name("affinity-jobs"), kube.namespace_name("affinity-op")
    for namespace in (jobs, operators):
        kube.new_namespace(namespace)
    (term,) = affinity["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["namespaces"] == [NAMESPACE]
    term["namespaces"] = [operators]

    def pod(name: str, labels: dict[str, str], extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {
                "restartPolicy": "Never", "automountServiceAccountToken": False,
                "containers": [{"name": "c", "image": "recluster:test"}], **extra,
            },
        }  # fmt: skip

    try:
        kube.cluster.create("", "v1", "pods", pod("job", {}, {"affinity": affinity}), jobs)
        _, message = kube.cluster.wait_for_sync(
            lambda: _scheduling(kube, "job", jobs)[1] and _scheduling(kube, "job", jobs),
            what="the scheduler's verdict on the Job's pod",
        )
        assert "pod affinity" in message, message
        assert _scheduling(kube, "job", jobs)[0] == ""
        kube.cluster.create("", "v1", "pods", pod("operator", operator_labels, {}), operators)
        node = kube.cluster.wait_for_sync(
            lambda: _scheduling(kube, "operator", operators)[0], what="the operator's node"
        )
        placed = kube.cluster.wait_for_sync(
            lambda: _scheduling(kube, "job", jobs)[0], timeout=60, what="the Job's pod's node"
        )
        assert placed == node
    finally:
        for namespace in (jobs, operators):
            kube.delete_namespace(namespace)


def test_the_scheduler_keeps_the_operator_and_gateway_on_the_stores_node(
    render: Render, kube: LocalKube
) -> None:
    """The affinity the chart gives the operator and the gateway with the default
    ReadWriteOnce claim (test_chart_gateway_store.py), read by the real kube-scheduler: a pod
    that needs the store's node but is neither waits while no operator or gateway pod runs;
    the first of those goes anywhere (it matches its own term), and the others follow it."""
    rendered = render(COMBINATIONS["gateway"])
    namespace = kube.namespace_name("affinity-store")
    kube.new_namespace(namespace)

    def pod(name: str, deployment: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        template = rendered.one("Deployment", deployment)["spec"]["template"]
        own = template["metadata"]["labels"] if labels is None else labels
        return {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": own},
            "spec": {
                "restartPolicy": "Never", "automountServiceAccountToken": False,
                "containers": [{"name": "c", "image": "recluster:test"}],
                "affinity": template["spec"]["affinity"],
            },
        }  # fmt: skip

    try:
        pods = ("", "v1", "pods")
        kube.cluster.create(*pods, pod("stranger", "rel-recluster-gateway", {}), namespace)
        _, message = kube.cluster.wait_for_sync(
            lambda: (
                _scheduling(kube, "stranger", namespace)[1]
                and _scheduling(kube, "stranger", namespace)
            ),
            what="the scheduler's verdict on a pod that is neither",
        )
        assert "pod affinity" in message, message
        kube.cluster.create(*pods, pod("gateway", "rel-recluster-gateway"), namespace)
        node = kube.cluster.wait_for_sync(
            lambda: _scheduling(kube, "gateway", namespace)[0], timeout=60, what="gateway's node"
        )
        kube.cluster.create(*pods, pod("operator", "rel-recluster-operator"), namespace)
        for name in ("operator", "stranger"):
            placed = kube.cluster.wait_for_sync(
                lambda name=name: _scheduling(kube, name, namespace)[0],  # type: ignore[misc]
                timeout=60,
                what=f"{name}'s node",
            )
            assert placed == node, name
    finally:
        kube.delete_namespace(namespace)
