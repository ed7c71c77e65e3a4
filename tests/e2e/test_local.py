"""End to end on this machine: the chart installed with helm, every pod in a podman container.

Run with `make e2e-local` (or `make e2e`, which also runs the kind test where
Docker exists). Needs podman (with runc; tools/image/containers.conf), the
image `localhost/recluster:dev` (`make image`), the control plane's binaries
(`make kube`) and helm (tools/get_helm.py); anything missing skips, with the
reason.

No emulation of Kubernetes is left: the upstream apiserver, controller
manager and scheduler run on loopback; the node agent (the kubelet's stand-in)
runs each pod as a podman container of its image, with its volumes, user,
read-only root and limits (docs/localkube.md). What it does:

1. start the control plane with the node agent in container mode, and a
   hostPath PersistentVolume bound to the chart's store claim;
2. `helm install` the chart (image.repository=localhost/recluster, tag dev,
   pullPolicy Never, the default Parquet store): the operator runs in its
   container with the chart ServiceAccount's projected token, in-cluster;
3. load sample collections with a one-shot Job of the image, apply examples/
   with schedules shortened to seconds, keep appending documents;
4. wait until the cron, interval and event triggers show execution_count >= 1
   with a succeeded execution, and find each run's results in the store;
5. fetch each run's artifacts and report through the gateway's HTTP API
   (gateway.enabled: its pod mounts the chart's claim read-only and shares the
   host's network, so the test calls it on loopback with an API key Secret).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import (
    CHART,
    FEED_DOCUMENTS,
    LOAD_SAMPLES,
    MUST_EXECUTE,
    NAMESPACE,
    OPERATOR,
    RELEASE,
    STORE,
    STORE_CLAIM,
    WAIT_SECONDS,
    example_bodies,
    helper_job,
    succeeded_jobs,
)

from helm_support import Helm
from kube_support import NODE, LocalKube, user_of
from podman_support import RECLUSTER_IMAGE, podman_missing, recluster_image_missing
from recluster.devsystem.system import collections_of
from recluster.gateway import make_api_key_secret
from recluster.localkube.binaries import BinariesUnavailable, ensure_binaries
from recluster.localkube.podman import PodmanRuntime
from recluster.localkube.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]
IMAGE_REPOSITORY, IMAGE_TAG = RECLUSTER_IMAGE.rsplit(":", 1)
IMAGE_USER = 10001
"""The image's user (Dockerfile USER): the store volume must be writable by it."""
JOBS = ("batch", "v1", "jobs")
GATEWAY = f"{RELEASE}-gateway"


@dataclass
class Installed:
    kube: LocalKube
    store: Path
    timings: dict[str, float]
    gateway: str
    """The gateway's base URL (its pod shares this machine's network)."""
    api_key: str
    """A key of the gateway for NAMESPACE."""

    def jobs(self, labels: str | None = None) -> list[dict[str, Any]]:
        return self.kube.cluster.objects(*JOBS, NAMESPACE, labels)

    def triggers(self) -> dict[str, dict[str, Any]]:
        items = self.kube.cluster.objects("recluster.io", "v1alpha1", "clustertriggers", NAMESPACE)
        return {t["metadata"]["name"]: t.get("status") or {} for t in items}

    def container_log(self, pod: dict[str, Any], lines: int = 60) -> str:
        """What `kubectl logs` would show: the node agent keeps each container's output."""
        assert self.kube.agent is not None
        meta = pod["metadata"]
        pods = self.kube.agent.config.workdir / "pods"
        directory = f"{meta['namespace']}_{meta['name']}_{meta['uid']}"
        found = sorted(pods.glob(f"{directory}/containers/*/*.log"))
        text = "\n".join(p.read_text(errors="replace") for p in found)
        return "\n".join(text.splitlines()[-lines:])

    def diagnostics(self) -> str:
        cluster = self.kube.cluster
        parts = []
        for pod in cluster.objects("", "v1", "pods", NAMESPACE):
            status = pod.get("status") or {}
            states = [c.get("state") for c in status.get("containerStatuses") or []]
            parts.append(f"pod {pod['metadata']['name']}: {status.get('phase')} {states}")
            if "operator" in pod["metadata"]["name"] or status.get("phase") == "Failed":
                parts.append(self.container_log(pod))
        for event in cluster.objects("", "v1", "events", NAMESPACE)[-30:]:
            parts.append(f"event {event.get('reason')}: {event.get('message')}")
        parts.append(json.dumps(self.triggers(), indent=1)[-6000:])
        return "\n".join(parts)

    def wait_job(self, name: str, timeout: float = 600) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            found = self.kube.cluster.get(*JOBS, name, NAMESPACE) or {}
            conditions = (found.get("status") or {}).get("conditions") or []
            ended = [c for c in conditions if c["type"] in ("Complete", "Failed")]
            return found if any(c["status"] == "True" for c in ended) else None

        done = self.kube.cluster.wait_for_sync(finished, timeout, f"Job {name} to finish")
        conditions = {c["type"]: c["status"] for c in done["status"]["conditions"]}
        assert conditions.get("Complete") == "True", (conditions, self.diagnostics())
        return done


def _why_not(runtime: PodmanRuntime) -> str | None:
    return podman_missing(runtime) or recluster_image_missing(runtime)


@pytest.fixture(scope="module")
def installed(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """The control plane with a container node, the chart installed and ready, samples loaded."""
    workdir = tmp_path_factory.mktemp("e2e-local")
    runtime = PodmanRuntime(NODE, owner=str(workdir))
    reason = _why_not(runtime)
    if reason:
        pytest.skip(f"the local end-to-end test needs podman and the image: {reason}")
    try:
        ensure_binaries()
    except BinariesUnavailable as exc:
        pytest.skip(f"no Kubernetes binaries: {exc}")
    timings: dict[str, float] = {}
    began = time.monotonic()
    kube = LocalKube(workdir, [], runtime=runtime)
    try:
        kube.start()
        timings["control plane"] = time.monotonic() - began
        store = workdir / "store"
        store.mkdir()
        # what a provisioner's volume gives the pods (a hostPath keeps the host's owner)
        os.chown(store, IMAGE_USER, IMAGE_USER)
        kube.cluster.create("", "v1", "persistentvolumes", {
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "e2e-store"},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain",
                     "hostPath": {"path": str(store), "type": "Directory"},
                     "claimRef": {"namespace": NAMESPACE, "name": STORE_CLAIM}},
        })  # fmt: skip
        # the gateway's API key: a Secret in the release namespace (docs/gateway.md)
        kube.new_namespace(NAMESPACE)
        api_key, secret = make_api_key_secret("e2e", [NAMESPACE])
        kube.cluster.create("", "v1", "secrets", secret, NAMESPACE)
        gateway_port = free_port()
        step = time.monotonic()
        helm.run(
            "upgrade", "--install", RELEASE, CHART, "--kubeconfig", kube.plane.admin_kubeconfig,
            "--namespace", NAMESPACE, "--create-namespace",
            "--set", f"image.repository={IMAGE_REPOSITORY}", "--set", f"image.tag={IMAGE_TAG}",
            "--set", "image.pullPolicy=Never", "--set", "operator.eventPollSeconds=5",
            # pods share the host's network: ports nothing else on this machine uses
            "--set", f"operator.healthPort={free_port()}", "--set", f"metrics.port={free_port()}",
            # 2 CPUs: five triggers' Jobs at the default 500m would queue
            "--set", "job.resources.requests.cpu=100m",
            "--set", "job.resources.requests.memory=256Mi",
            "--set", "gateway.enabled=true", "--set", "gateway.replicas=1",
            "--set", f"gateway.port={gateway_port}",
            "--wait", "--timeout", "10m",
        )  # fmt: skip
        timings["helm install --wait"] = time.monotonic() - step
        local = Installed(kube, store, timings, f"http://127.0.0.1:{gateway_port}", api_key)
        step = time.monotonic()
        bodies = example_bodies()
        job = helper_job("load-samples", RECLUSTER_IMAGE, LOAD_SAMPLES, *collections_of(bodies))
        kube.cluster.create(*JOBS, job, NAMESPACE)
        local.wait_job("load-samples")
        timings["load samples (a Job)"] = time.monotonic() - step
        yield local
    finally:
        kube.stop()
        runtime.clean_up()
        print("\nlocal end-to-end timings (s):", {k: round(v, 1) for k, v in timings.items()})


def test_the_operator_runs_in_its_container_with_the_charts_service_account(
    installed: Installed,
) -> None:
    cluster = installed.kube.cluster
    pods = cluster.objects("", "v1", "pods", NAMESPACE, "app.kubernetes.io/component=operator")
    assert len(pods) == 1
    operator = pods[0]
    status = operator["status"]
    assert status["phase"] == "Running"
    container = status["containerStatuses"][0]
    assert container["ready"] is True and container["containerID"].startswith("podman://")
    assert operator["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    # in-cluster: the projected token of the chart's ServiceAccount, nothing else
    account = operator["spec"]["serviceAccountName"]
    assert account == OPERATOR
    installed.kube.sync_audit()
    users = {e.user for e in installed.kube.audit.entries() if e.resource == "clustertriggers"}
    assert user_of(account, NAMESPACE) in users
    leases = cluster.objects("coordination.k8s.io", "v1", "leases", NAMESPACE)
    holders = [l["spec"].get("holderIdentity") or "" for l in leases]  # noqa: E741
    assert any(h.startswith(operator["metadata"]["name"]) for h in holders), holders


@pytest.fixture(scope="module")
def executed(installed: Installed) -> dict[str, dict[str, Any]]:
    """examples/ applied, documents fed, until every trigger of MUST_EXECUTE has succeeded
    once: the triggers' status."""
    cluster = installed.kube.cluster
    bodies = example_bodies()
    step = time.monotonic()
    for body in sorted(bodies, key=lambda b: b["kind"] != "ClusterDefinition"):
        cluster.apply(body, NAMESPACE)
    feeder = helper_job("feed-documents", RECLUSTER_IMAGE, FEED_DOCUMENTS, *collections_of(bodies))
    cluster.create(*JOBS, feeder, NAMESPACE)

    deadline = time.monotonic() + WAIT_SECONDS
    succeeded: dict[str, str] = {}
    triggers: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        triggers = installed.triggers()
        succeeded = succeeded_jobs(triggers)
        if set(succeeded) == set(MUST_EXECUTE):
            break
        time.sleep(5)  # polling the triggers' status, as a user watching kubectl get would
    else:
        counts = {n: s.get("execution_count") for n, s in triggers.items()}
        pytest.fail(
            f"after {WAIT_SECONDS}s: succeeded {sorted(succeeded)}, execution counts {counts}\n"
            + installed.diagnostics()
        )
    installed.timings["examples: every trigger executed"] = time.monotonic() - step
    return triggers


def test_examples_execute_in_containers_and_write_results(
    installed: Installed, executed: dict[str, dict[str, Any]]
) -> None:
    cluster = installed.kube.cluster
    triggers = executed
    succeeded = succeeded_jobs(triggers)
    for name in MUST_EXECUTE:
        ready = [c for c in triggers[name].get("conditions", []) if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", (name, ready)
    assert triggers["drift-over-30-percent"].get("last_condition_check_at")

    # the results, in the store's directory on this machine (the volume's hostPath)
    runs = installed.store / NAMESPACE / "runs"
    for name, job_id in succeeded.items():
        run = runs / job_id
        assert (run / "_SUCCESS").exists(), (name, sorted(runs.glob("*")))
        files = {p.name for p in run.iterdir()}
        assert {"assignments.parquet", "clusters.parquet", "summary.json"} <= files, (name, files)
        summary = json.loads((run / "summary.json").read_text())
        assert summary["num_clusters"] >= 1, (name, summary)
        assert run.stat().st_uid == 10001, "written by the image's user, in its container"

    jobs = installed.jobs("recluster.io/trigger")
    assert jobs
    for job in jobs:
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == RECLUSTER_IMAGE
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    pods = cluster.objects("", "v1", "pods", NAMESPACE, "recluster.io/trigger")
    finished = [p for p in pods if p["status"].get("phase") == "Succeeded"]
    assert finished, [p["status"].get("phase") for p in pods]
    for pod in finished:
        state = pod["status"]["containerStatuses"][0]
        assert state["containerID"].startswith("podman://")
        assert state["state"]["terminated"]["reason"] == "Completed"


def test_the_gateway_serves_runs_artifacts_and_report_from_the_mounted_store(
    installed: Installed, executed: dict[str, dict[str, Any]]
) -> None:
    """Through the gateway's HTTP API, as a REST client with an API key: each succeeded
    run's artifacts (the files byte for byte as the Job wrote them to the volume) and its
    report. The gateway's pod has the chart's claim read-only, on the operator's node."""
    cluster = installed.kube.cluster
    (pod,) = cluster.objects("", "v1", "pods", NAMESPACE, "app.kubernetes.io/component=gateway")
    assert pod["status"]["phase"] == "Running", installed.diagnostics()
    mounts = pod["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "store", "mountPath": STORE, "readOnly": True} in mounts
    operator = cluster.objects("", "v1", "pods", NAMESPACE, "app.kubernetes.io/component=operator")
    assert pod["spec"]["nodeName"] == operator[0]["spec"]["nodeName"]

    headers = {"Authorization": f"Bearer {installed.api_key}", "X-Namespace": NAMESPACE}
    succeeded = succeeded_jobs(executed)
    with httpx.Client(base_url=installed.gateway, headers=headers, timeout=30) as client:
        for name, job_id in succeeded.items():
            base = f"/v1/clusters/triggers/{name}/runs"
            runs = client.get(base)
            assert runs.status_code == 200, (name, runs.text)
            listed = {r["run_id"]: r for r in runs.json()["results"]}
            assert listed[job_id]["artifacts_url"] == f"{base}/{job_id}/artifacts"

            artifacts = client.get(f"{base}/{job_id}/artifacts")
            assert artifacts.status_code == 200, (name, artifacts.text)
            body = artifacts.json()
            assert body["run_id"] == job_id and body["num_clusters"] >= 1, body
            files = {f["name"]: f for f in body["files"]}
            assert "centroids.parquet" in files, files
            on_disk = installed.store / NAMESPACE / "runs" / job_id / "artifacts"
            for file in files.values():
                served = client.get(file["url"])
                assert served.status_code == 200, (file, served.text)
                assert served.content == (on_disk / file["name"]).read_bytes(), file["name"]

            report = client.get(f"{base}/latest/report")
            assert report.status_code == 200, (name, report.text)
            assert report.headers["content-type"].startswith("text/html")
            assert b"<html" in report.content[:2000].lower()
