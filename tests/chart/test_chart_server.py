"""The chart's manifests, and the Jobs the operator builds from its settings, meet a real apiserver.

Server-side apply with dry-run (`kubectl apply --server-side --dry-run=server`)
sends every rendered object through the real apiserver's decoding, schema
validation, defaulting and admission (PodSecurity, RBAC escalation checks,
...) without storing it, for every values combination of test_chart.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import COMBINATIONS, NAMESPACE, Rendered, job_from_chart

from kube_support import LocalKube
from recluster.kube.errors import KubeError

Render = Callable[[dict[str, Any]], Rendered]
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
