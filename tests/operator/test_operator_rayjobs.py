"""runtime ray on the real control plane: RayJobs under KubeRay v1.7.0's own CRD (issue 16).

The RayJob CRD is KubeRay's, read from `../shared/reference/kuberay-v1.7.0/` beside the
repository (never copied into it): the real apiserver validates every RayJob the operator
creates against KubeRay's schema. No KubeRay operator runs here: the test writes the
RayJob's status subresource as KubeRay writes it (jobDeploymentStatus, jobStatus,
reason, message, endTime), and the trigger's status must follow as it does for Jobs.
The operator runs with the token of the chart's operator ServiceAccount and the Role
the chart renders with `ray.enabled` in the test's namespace: nothing more.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Harness, trigger

import audit_registry
from helm_support import CHART, NAMESPACE, RELEASE, Helm
from kube_support import LocalKube
from recluster.api.admission import apply_defaults
from recluster.api.clustering import ExecutionConfig
from recluster.core.jobs import JobRequest
from recluster.core.rayjobs import RaySettings, build_rayjob
from recluster.jobrunner.runner import JobInput, Runner
from recluster.kube.errors import KubeError
from recluster.localkube.setup import install_crds
from recluster.store.factory import open_store

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
RAYJOB_CRD = ROOT.parent / "shared" / "reference" / "kuberay-v1.7.0" / "ray.io_rayjobs.yaml"
RAY_CONFIG = {
    "collection_ids": ["col_big"],
    "config": {"algorithm": "kmeans", "n_clusters": 3},
    "runtime": "ray",
    "ray": {"workers": 2, "worker_resources": {"limits": {"cpu": "2", "memory": "4Gi"}}},
}
RAY = RaySettings(enabled=True, image="recluster:test-ray", ttl_seconds_after_finished=30)


@pytest.fixture(scope="module")
def rayjob_crd(kube: LocalKube) -> dict[str, Any]:
    if not RAYJOB_CRD.exists():
        pytest.skip(f"KubeRay's RayJob CRD is not at {RAYJOB_CRD} (reference data, not shipped)")
    crd: dict[str, Any] = yaml.safe_load(RAYJOB_CRD.read_text())
    assert kube.admin_api is not None
    install_crds(kube.admin_api, [crd])
    return crd


def grant_ray_role(kube: LocalKube, helm: Helm, namespace: str) -> None:
    """The chart's operator Role for a watched namespace, rendered with ray.enabled."""
    done = helm.run(
        "template", RELEASE, CHART, "--namespace", NAMESPACE, "--set", "ray.enabled=true",
        "--set", f"watchNamespaces={{{namespace}}}",
    )  # fmt: skip
    documents = [d for d in yaml.safe_load_all(done.stdout) if d]
    mine = [
        d for d in documents
        if d["kind"] in ("Role", "RoleBinding") and d["metadata"].get("namespace") == namespace
        and "operator" in d["metadata"]["name"]
    ]  # fmt: skip
    role = next(d for d in mine if d["kind"] == "Role")
    assert any("rayjobs" in rule["resources"] for rule in role["rules"])
    kube.install_rbac(mine)


def rayjobs(h: Harness) -> list[dict[str, Any]]:
    found = h.cluster.objects("ray.io", "v1", "rayjobs", h.namespace)
    return sorted(found, key=lambda r: r["metadata"]["creationTimestamp"])


def kuberay_writes(h: Harness, name: str, **status: Any) -> None:
    """Patch the RayJob's status subresource, as KubeRay's controller does."""
    h.cluster.patch_status("ray.io", "v1", "rayjobs", name, status, h.namespace)


def commit_run(store_uri: str, namespace: str, run_id: str) -> None:
    """The run the RayJob's driver commits (its summary is what the operator records)."""
    config = ExecutionConfig.model_validate({**RAY_CONFIG, "runtime": None, "ray": None})
    store = open_store(store_uri)
    try:
        Runner(JobInput(config, run_id, namespace, store_uri), store, log=lambda _: None).run()
    finally:
        store.close()


async def test_rayjobs_are_validated_by_kuberays_crd_and_drive_the_outcomes(
    kube: LocalKube, helm: Helm, rayjob_crd: dict[str, Any], tmp_path: Path
) -> None:
    store_uri = str(tmp_path / "store")
    h = Harness(kube, namespaced=True, ray=RAY, store_uri=store_uri)
    await asyncio.to_thread(kube.new_namespace, h.namespace)
    h.created = True
    grant_ray_role(kube, helm, h.namespace)
    seed = open_store(store_uri)
    rows = [[float(i % 3 * 10 + j % 2) for j in range(8)] for i in range(300)]
    seed.append(h.namespace, "col_big", [f"d{i}" for i in range(300)], rows)
    seed.close()
    audit_registry.ran("rayjobs")
    async with h:
        await h.create(
            trigger("bigdata", execution_config=RAY_CONFIG, successful_jobs_history_limit=1)
        )
        # a manual run: a RayJob, not a Job, created through the real apiserver
        h.annotate("bigdata", "recluster.io/execute-now", "run-1")
        [first] = await h.until(lambda: rayjobs(h), what="the first RayJob")
        name = first["metadata"]["name"]
        assert h.jobs("bigdata") == []
        spec = first["spec"]
        # nothing of the manifest was pruned or defaulted away by KubeRay's schema
        meta = h.trigger("bigdata")["metadata"]
        request = JobRequest(name, first["metadata"]["labels"]["recluster.io/execution"], None,
                             "manual", ExecutionConfig.model_validate(RAY_CONFIG))  # fmt: skip
        built = build_rayjob(meta, None, request, h.settings().job_settings(), RAY)
        [v1] = [v for v in rayjob_crd["spec"]["versions"] if v["name"] == "v1"]
        schema = v1["schema"]["openAPIV3Schema"]["properties"]["spec"]
        assert spec == apply_defaults(schema, built["spec"])  # e.g. numOfHosts: 1
        assert spec["entrypoint"] == "recluster run-ray-job"
        assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] == 30
        [group] = spec["rayClusterSpec"]["workerGroupSpecs"]
        assert group["replicas"] == 2
        worker = group["template"]["spec"]["containers"][0]
        assert worker["image"] == "recluster:test-ray"
        assert worker["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
        owner = first["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("ClusterTrigger", "bigdata")
        st = await h.until(
            lambda: (
                h.status("bigdata").get("last_execution_job_id") == name and h.status("bigdata")
            ),
            what="the firing on the trigger's status",
        )
        assert st["last_execution_status"] == "running"

        # KubeRay's transitions: nothing finishes until the deployment is terminal
        kuberay_writes(h, name, jobDeploymentStatus="Initializing")
        kuberay_writes(h, name, jobDeploymentStatus="Running", jobStatus="RUNNING",
                       startTime="2026-11-28T10:00:40Z")  # fmt: skip
        await h.reconciled("bigdata")
        assert h.status("bigdata")["last_execution_status"] == "running"
        commit_run(store_uri, h.namespace, name)
        kuberay_writes(h, name, jobDeploymentStatus="Complete", jobStatus="SUCCEEDED",
                       endTime="2026-11-28T10:02:00Z")  # fmt: skip
        st = await h.until(
            lambda: (
                h.status("bigdata").get("last_execution_status") == "succeeded"
                and h.status("bigdata")
            ),
            what="the RayJob's success on the trigger",
        )
        assert st["execution_count"] == 1 and st["consecutive_failures"] == 0
        entry = st["history"][0]
        assert (entry["job_id"], entry["status"]) == (name, "succeeded")
        assert (entry["num_clusters"], entry["num_documents"]) == (3, 300)
        assert entry["finished_at"] == "2026-11-28T10:02:00Z"
        assert await h.until(lambda: h.events("Succeeded"))

        # a second run fails as KubeRay reports a failed driver
        h.annotate("bigdata", "recluster.io/execute-now", "run-2")
        second = await h.until(
            lambda: [r for r in rayjobs(h) if r["metadata"]["name"] != name],
            what="the second RayJob",
        )
        other = second[0]["metadata"]["name"]
        kuberay_writes(
            h, other, jobDeploymentStatus="Failed", jobStatus="FAILED", reason="AppFailed",
            message='Job entrypoint command failed with exit code 1, last available logs:\n'
                    '{"status":"failed","error":"out of memory while clustering"}\n',
            endTime="2026-11-28T10:03:00Z",
        )  # fmt: skip
        st = await h.until(
            lambda: h.status("bigdata").get("consecutive_failures") == 1 and h.status("bigdata"),
            what="the RayJob's failure on the trigger",
        )
        assert st["last_execution_status"] == "failed"
        assert st["last_execution_error"] == "out of memory while clustering"
        assert st["history"][0]["status"] == "failed" and st["execution_count"] == 2

        # a third success: the history limit (1 successful) deletes the first RayJob
        h.annotate("bigdata", "recluster.io/execute-now", "run-3")
        third = await h.until(
            lambda: [r for r in rayjobs(h) if r["metadata"]["name"] not in (name, other)],
            what="the third RayJob",
        )
        last = third[0]["metadata"]["name"]
        commit_run(store_uri, h.namespace, last)
        kuberay_writes(h, last, jobDeploymentStatus="Complete", jobStatus="SUCCEEDED",
                       endTime="2026-11-28T10:04:00Z")  # fmt: skip
        await h.until(
            lambda: name not in {r["metadata"]["name"] for r in rayjobs(h)},
            what="the oldest successful RayJob to be pruned",
        )
        assert {r["metadata"]["name"] for r in rayjobs(h)} == {other, last}


async def test_the_apiserver_refuses_a_rayjob_kuberays_schema_does_not_allow(
    kube: LocalKube, rayjob_crd: dict[str, Any]
) -> None:
    """The CRD is not a rubber stamp: a wrong type in a worker group is refused (422)."""
    namespace = kube.namespace_name("ray")
    await asyncio.to_thread(kube.new_namespace, namespace)
    try:
        body = {
            "apiVersion": "ray.io/v1", "kind": "RayJob",
            "metadata": {"name": "bad", "namespace": namespace},
            "spec": {"entrypoint": "recluster run-ray-job", "rayClusterSpec": {
                "headGroupSpec": {"template": {"spec": {"containers": [
                    {"name": "ray-head", "image": "x"}]}}},
                "workerGroupSpecs": [{"groupName": "w", "minReplicas": 1,
                                      "maxReplicas": "many", "template": {}}],
            }},
        }  # fmt: skip
        with pytest.raises(KubeError) as refused:
            kube.cluster.create("ray.io", "v1", "rayjobs", body, namespace)
        assert refused.value.status == 422 and "maxReplicas" in refused.value.message
    finally:
        await asyncio.to_thread(kube.delete_namespace, namespace)
