"""End to end on a kind cluster: image, chart, sample data, examples, executions, results.

Run with `make e2e` (pytest -m e2e). Needs `docker` with a daemon that answers,
`kind`, and `kubectl` (from PATH, else the one in the PyPI wheel tools/get_helm.py
uses); helm comes from tools/get_helm.py. Anything missing: every test here is
skipped, with the reason.

Environment:
  RECLUSTER_E2E_CLUSTER  kind cluster name (default recluster-e2e); an existing
                         cluster of that name is reused and kept, one created
                         here is deleted at the end
  RECLUSTER_E2E_IMAGE    image to load (default recluster:e2e); built from the
                         Dockerfile unless RECLUSTER_E2E_SKIP_BUILD=1
  RECLUSTER_E2E_KEEP=1   keep a cluster created here (to look around afterwards)

What it does (the same as .github/workflows/e2e.yaml, which runs this file):
1. build the image, `kind load` it, `helm install` the chart with the default
   Parquet store on a PersistentVolumeClaim, `image.pullPolicy=Never`;
2. load generated sample collections into the store with a one-shot Job
   (`recluster.devsystem.sample.ensure_sample` through `open_store`);
3. apply examples/ with schedules shortened to seconds (`recluster dev`'s own
   `shorten`), keep appending documents (for the event and drift triggers);
4. wait until the cron, interval and event triggers show execution_count >= 1
   with a succeeded execution, and find each run's results in the store.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import (
    CHART,
    FEED_DOCUMENTS,
    LOAD_SAMPLES,
    MUST_EXECUTE,
    NAMESPACE,
    OPERATOR,
    READ_RESULTS,
    RELEASE,
    ROOT,
    WAIT_SECONDS,
    example_bodies,
    helper_job,
    succeeded_jobs,
)

from recluster.devsystem.system import collections_of

CLUSTER = os.environ.get("RECLUSTER_E2E_CLUSTER", "recluster-e2e")
IMAGE = os.environ.get("RECLUSTER_E2E_IMAGE", "recluster:e2e")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]


def _load_get_helm() -> Any:
    spec = importlib.util.spec_from_file_location("get_helm", ROOT / "tools" / "get_helm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _docker_answers() -> str | None:
    """None when a Docker daemon answers, else why not."""
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker info failed: {exc}"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return f"no Docker daemon answers ({lines[-1] if lines else 'docker info failed'})"
    return None


def _why_not() -> str | None:
    """None when Docker and kind can run a cluster here, else every reason why not."""
    reasons = [f"{tool} not on PATH" for tool in ("docker", "kind") if shutil.which(tool) is None]
    if shutil.which("docker") is not None and (daemon := _docker_answers()):
        reasons.append(daemon)
    if not reasons:
        return None
    return "end-to-end tests need Docker and kind: " + "; ".join(reasons)


@dataclass
class Cluster:
    name: str
    kubectl: str
    helm: str
    created: bool

    @property
    def context(self) -> str:
        return f"kind-{self.name}"

    def run(
        self, *args: str, check: bool = True, timeout: float = 600, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(args[:6])} ... failed ({done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def kubectl_(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run(self.kubectl, "--context", self.context, *args, **kwargs)

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl_(*args, "-o", "json").stdout)

    def apply(self, documents: list[dict[str, Any]], **kwargs: Any) -> str:
        text = yaml.safe_dump_all(documents, sort_keys=False)
        return self.kubectl_("apply", "-n", NAMESPACE, "-f", "-", stdin=text, **kwargs).stdout

    def diagnostics(self) -> str:
        parts = []
        for args in (
            ("get", "ctr,cdef,jobs,pods,pvc", "-n", NAMESPACE, "-o", "wide"),
            ("get", "ctr", "-n", NAMESPACE, "-o", "yaml"),
            ("get", "events", "-n", NAMESPACE, "--sort-by=.lastTimestamp"),
            ("logs", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=operator",
             "--tail=80", "--prefix"),
        ):  # fmt: skip
            done = self.kubectl_(*args, check=False)
            parts.append(f"$ kubectl {' '.join(args)}\n{done.stdout[-6000:]}{done.stderr[-2000:]}")
        return "\n".join(parts)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    get_helm = _load_get_helm()
    try:
        helm = str(get_helm.ensure_helm(kubectl=shutil.which("kubectl") is None))
    except get_helm.HelmUnavailable as exc:
        pytest.skip(f"no helm binary: {exc}")
    kubectl = shutil.which("kubectl") or str(Path(helm).with_name("kubectl"))
    existing = subprocess.run(
        ["kind", "get", "clusters"], capture_output=True, text=True, check=True
    ).stdout.split()
    created = CLUSTER not in existing
    if created:
        subprocess.run(
            ["kind", "create", "cluster", "--name", CLUSTER, "--wait", "180s"],
            check=True,
            timeout=900,
        )
    try:
        yield Cluster(CLUSTER, kubectl, helm, created)
    finally:
        if created and os.environ.get("RECLUSTER_E2E_KEEP") != "1":
            subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER], check=False)


COUNT_PREBUILT_KERNELS = """
import glob, os
seed = os.environ["RECLUSTER_NUMBA_CACHE_SEED"]
print(len(glob.glob(os.path.join(seed, "**", "*.nbi"), recursive=True)))
"""


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Cluster:
    """The image loaded, the chart installed and ready, the sample collections loaded."""
    if os.environ.get("RECLUSTER_E2E_SKIP_BUILD") != "1":
        cluster.run("docker", "build", "-t", IMAGE, str(ROOT), timeout=3600)
    cluster.run("kind", "load", "docker-image", IMAGE, "--name", cluster.name, timeout=900)
    repository, _, tag = IMAGE.rpartition(":")
    cluster.run(
        cluster.helm, "upgrade", "--install", RELEASE, str(CHART),
        "--kube-context", cluster.context, "--namespace", NAMESPACE, "--create-namespace",
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=Never", "--set", "operator.eventPollSeconds=5",
        # a runner's kind node has 2-4 CPUs: five triggers' Jobs at the default 500m would queue
        "--set", "job.resources.requests.cpu=100m", "--set", "job.resources.requests.memory=256Mi",
        "--wait", "--timeout", "10m",
        timeout=900,
    )  # fmt: skip
    bodies = example_bodies()
    cluster.kubectl_("delete", "job", "load-samples", "-n", NAMESPACE, "--ignore-not-found")
    cluster.apply([helper_job("load-samples", IMAGE, LOAD_SAMPLES, *collections_of(bodies))])
    cluster.kubectl_(
        "wait", "-n", NAMESPACE, "job/load-samples", "--for=condition=Complete", "--timeout=300s",
        timeout=360,
    )  # fmt: skip
    return cluster


def test_the_operator_is_ready_and_leads(installed: Cluster) -> None:
    deployment = installed.json("get", "deployment", OPERATOR, "-n", NAMESPACE)
    # one replica: the default store is a ReadWriteOnce claim (docs/install.md says why)
    assert deployment["status"].get("readyReplicas") == 1
    pods = installed.json(
        "get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=operator"
    )["items"]
    names = [p["metadata"]["name"] for p in pods]
    for pod in pods:
        context = pod["spec"]["containers"][0]["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
    leases = installed.json("get", "leases", "-n", NAMESPACE)["items"]
    holders = [
        lease["spec"].get("holderIdentity") or ""
        for lease in leases
        if any((lease["spec"].get("holderIdentity") or "").startswith(n) for n in names)
    ]
    assert len(holders) == 1, f"expected one Lease held by an operator pod, got {holders}"


def test_the_apiserver_refuses_an_invalid_trigger(installed: Cluster) -> None:
    bad = {
        "apiVersion": "recluster.io/v1alpha1",
        "kind": "ClusterTrigger",
        "metadata": {"name": "no-timezone"},
        "spec": {
            "trigger_type": "cron",
            "schedule_config": {"cron_expression": "0 2 * * *"},
            "execution_config": {
                "collection_ids": ["col_abc123"],
                "config": {"algorithm": "kmeans", "n_clusters": 5},
            },
        },
    }
    done = installed.run(
        installed.kubectl, "--context", installed.context, "apply", "-n", NAMESPACE, "-f", "-",
        stdin=yaml.safe_dump(bad), check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "timezone" in done.stderr


def test_examples_execute_and_write_results(installed: Cluster) -> None:
    bodies = example_bodies()
    installed.apply(bodies)
    installed.kubectl_("delete", "job", "feed-documents", "-n", NAMESPACE, "--ignore-not-found")
    installed.apply([helper_job("feed-documents", IMAGE, FEED_DOCUMENTS, *collections_of(bodies))])

    deadline = time.monotonic() + WAIT_SECONDS
    succeeded: dict[str, str] = {}
    triggers: dict[str, Any] = {}
    while time.monotonic() < deadline:
        items = installed.json("get", "clustertriggers", "-n", NAMESPACE)["items"]
        triggers = {t["metadata"]["name"]: t.get("status") or {} for t in items}
        succeeded = succeeded_jobs(triggers)
        if set(succeeded) == set(MUST_EXECUTE):
            break
        time.sleep(5)
    else:
        counts = {n: s.get("execution_count") for n, s in triggers.items()}
        pytest.fail(
            f"after {WAIT_SECONDS}s: succeeded {sorted(succeeded)}, execution counts {counts}\n"
            + installed.diagnostics()
        )

    for name in MUST_EXECUTE:
        ready = [c for c in triggers[name].get("conditions", []) if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", (name, ready)
    drift = triggers["drift-over-30-percent"]
    assert drift.get("last_condition_check_at"), "the conditional trigger measures its metric"

    read = installed.kubectl_(
        "exec", "-n", NAMESPACE, f"deployment/{OPERATOR}", "-c", "operator", "--",
        "python", "-c", READ_RESULTS, *succeeded.values(),
    )  # fmt: skip
    results = json.loads(read.stdout)
    for name, job_id in succeeded.items():
        result = results[job_id]
        assert result["success"], (name, result)
        assert {"assignments.parquet", "clusters.parquet", "summary.json"} <= set(result["files"])
        assert result["summary"]["num_clusters"] >= 1, (name, result["summary"])

    # Jobs ran as the operator built them
    jobs = installed.json("get", "jobs", "-n", NAMESPACE, "-l", "recluster.io/trigger")["items"]
    assert jobs
    for job in jobs:
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == IMAGE
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        # the chart's defaults: a deadline, and the operator's node (the store is ReadWriteOnce)
        assert job["spec"]["activeDeadlineSeconds"] == 21600
        assert "podAffinity" in job["spec"]["template"]["spec"]["affinity"]
    # the kernels are in the image (a timing claim about them is a benchmark:
    # docs/benchmarks.md, never an assertion here)
    kernels = installed.kubectl_(
        "exec", "-n", NAMESPACE, f"deployment/{OPERATOR}", "-c", "operator", "--",
        "python", "-c", COUNT_PREBUILT_KERNELS,
    )  # fmt: skip
    assert int(kernels.stdout.strip()) >= 1, kernels.stdout
