"""Uninstall in the documented order leaves nothing Terminating (review item 1).

`helm uninstall` (the operator is gone), then `kubectl delete -f
charts/recluster/crds/`: with no finalizer on the triggers, the CRDs, the
triggers, their Jobs and pods and their namespace all go. This test deletes
CRDs, so it has a control plane of its own.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from harness import Harness, at, trigger

from helm_support import CHART, NAMESPACE, RELEASE, Helm
from kube_support import LocalKube

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def own_kube(
    helm: Helm, kube: LocalKube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalKube]:
    """A second control plane (the session's `kube` built the binaries already)."""
    done = helm.run("template", RELEASE, CHART, "--namespace", NAMESPACE, "--set",
                    "gateway.enabled=true")  # fmt: skip
    rendered = [d for d in yaml.safe_load_all(done.stdout) if d]
    local = LocalKube(tmp_path_factory.mktemp("uninstall"), rendered)
    try:
        local.start()
        yield local
    finally:
        local.stop()


async def test_uninstall_in_the_documented_order_leaves_nothing_terminating(
    own_kube: LocalKube, kubectl_binary: Path
) -> None:
    kube = own_kube
    h = Harness(kube)
    async with h:
        await h.create(trigger("nightly"))
        await h.create(trigger("hourly", "interval", schedule={"interval_seconds": 3600}))
        h.clock.set(at(10, 5))
        [job] = await h.until(lambda: h.jobs("nightly"), what="a Job")
        await h.until(lambda: h.cluster.objects("", "v1", "pods", h.namespace), what="its pod")
        # installed long before it is uninstalled: the collector knows the kind by then
        await asyncio.to_thread(kube.wait_until_collected)
        await h.stop_operator()  # helm uninstall: the operator is gone

        def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(kubectl_binary), "--kubeconfig", str(kube.plane.admin_kubeconfig), *args],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip

        deleted = await asyncio.to_thread(
            kubectl, "delete", "-f", str(ROOT / "charts/recluster/crds/"), "--timeout=90s"
        )
        assert deleted.returncode == 0, deleted.stderr
        assert "customresourcedefinition.apiextensions.k8s.io" in deleted.stdout
        crds = h.cluster.objects("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert not [c for c in crds if c["spec"]["group"] == "recluster.io"]
        # the garbage collector takes the Jobs whose owner went with the CRD
        await h.until(lambda: not h.jobs(), timeout=90, what="the Jobs to be collected")
        await h.until(
            lambda: not h.cluster.objects("", "v1", "pods", h.namespace),
            what="their pods to go",
        )
        assert job["metadata"]["name"]
    # the harness deleted its namespace: it must go completely
    await h.until(
        lambda: h.cluster.get("", "v1", "namespaces", h.namespace) is None,
        timeout=90,
        what="the namespace to be gone",
    )
    terminating = [
        n["metadata"]["name"] for n in h.cluster.objects("", "v1", "namespaces")
        if n.get("status", {}).get("phase") == "Terminating"
    ]  # fmt: skip
    assert terminating == []
