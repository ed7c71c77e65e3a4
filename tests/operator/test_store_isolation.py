"""The review's two high findings (issue 12), end to end on the real control plane.

Jobs here run `recluster run-job` for real (the node agent's process runtime),
with the store on a volume mounted as the chart mounts it.

1. A trigger in tenant-a cannot read or write tenant-b's run index or
   baseline: its Job mounts only tenant-a's directory of the store volume
   (`subPathExpr: $(RECLUSTER_NAMESPACE)`, the downward API), so even a runner
   told to act for tenant-b only reaches tenant-a's data. Before, the whole
   volume was mounted and the runner's namespace decided.
   With PostgreSQL the Job's DSN is the Secret of its own namespace, a role
   row-level security holds to that namespace.
2. A trigger cannot feed a Secret into a variable the runner validates (refused
   at apply, the field named), and a Job whose store DSN carries a password
   fails with a status, history and Events without it.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import CONFIG, Harness, at, trigger

from kube_support import LocalKube
from pgserver import closed_port
from recluster.controller.settings import Settings
from recluster.core.jobs import LABEL_TRIGGER, JobRequest, build_job
from recluster.kube.errors import KubeError
from recluster.store import open_store

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(300)]

IMAGE = "recluster:local"
"""Run by the node agent's process runtime: the real `recluster run-job`."""
STORE_PATH = "/var/lib/recluster/store"
SECRET = "pw-4f1c9e7d2b"


class StoreHarness(Harness):
    """The harness, with Jobs that run for real on a store volume (the chart's way)."""

    def __init__(self, kube: LocalKube, store: Path, **settings: Any) -> None:
        super().__init__(kube, store_uri=str(store))
        self.store = store
        self.extra = settings

    def settings(self) -> Settings:
        base = super().settings()
        base.image = IMAGE
        base.job_store_uri = STORE_PATH
        base.job_volumes = [
            {"name": "store", "hostPath": {"path": str(self.store), "type": "Directory"}}
        ]
        base.job_volume_mounts = [{"name": "store", "mountPath": STORE_PATH}]
        base.job_store_volume = "store"
        for key, value in self.extra.items():
            setattr(base, key, value)
        return base


def blobs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 8)).astype(np.float32) * 5
    return (centres[np.arange(n) % 3] + rng.normal(size=(n, 8))).astype(np.float32)


def tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*")
            if p.is_file()}  # fmt: skip


async def test_a_trigger_in_one_namespace_cannot_reach_anothers_run_index_or_baseline(
    kube: LocalKube, tmp_path: Path
) -> None:
    store_dir = tmp_path / "store"
    async with StoreHarness(kube, store_dir) as h:
        tenant_a = h.namespace
        tenant_b = kube.new_namespace(kube.namespace_name("tenant-b"))
        try:
            store = open_store(str(store_dir))
            ids = [f"d{i}" for i in range(300)]
            store.append(tenant_a, "col_abc123", ids, blobs(300, 1))
            store.append(tenant_b, "col_abc123", ids, blobs(300, 2))
            store.append(tenant_b, "col_b_only", ids, blobs(300, 3))
            # tenant-b's own run: its run index and baseline drive its drift triggers
            code = await asyncio.to_thread(_run_locally, store_dir, tenant_b, "b-1", tmp_path)
            assert code == 0
            before = tree(store_dir / tenant_b)
            assert store.latest_run(tenant_b, ["col_abc123"]) == "b-1"

            # the review's reproduction is refused at apply: the namespace is not the trigger's
            forced_env = [{"name": "RECLUSTER_NAMESPACE", "value": tenant_b}]
            forced = trigger("forced", job_template={"backoffLimit": 0, "env": forced_env})
            with pytest.raises(KubeError) as refused:
                h.apply(forced)
            assert refused.value.status == 422
            assert "spec.job_template.env[0].name: Forbidden: this name is reserved" in (
                refused.value.message
            )

            # a firing in tenant-a: its Job mounts tenant-a's directory, and writes there
            await h.create(trigger("t"))
            h.clock.set(at(10, 5))
            st = await h.until(
                lambda: (
                    h.status("t").get("last_execution_status") in ("succeeded", "failed")
                    and h.status("t")
                ),
                timeout=120,
            )
            assert st["last_execution_status"] == "succeeded", st
            [job] = h.jobs("t")
            container = job["spec"]["template"]["spec"]["containers"][0]
            mount = {"name": "store", "mountPath": STORE_PATH,
                     "subPathExpr": "$(RECLUSTER_NAMESPACE)"}  # fmt: skip
            assert mount in container["volumeMounts"]
            namespace_env = [e for e in container["env"] if e["name"] == "RECLUSTER_NAMESPACE"]
            assert namespace_env == [{"name": "RECLUSTER_NAMESPACE", "valueFrom": {
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}]  # fmt: skip
            run_id = job["metadata"]["name"]
            assert store.latest_run(tenant_a, ["col_abc123"]) == run_id
            assert (store_dir / tenant_a / "runs" / run_id / "_SUCCESS").exists()

            # tenant-b's collections are not tenant-a's to read
            peek = {**CONFIG, "collection_ids": ["col_b_only"]}
            await h.create(trigger("peek", execution_config=peek))
            h.clock.set(at(10, 10))
            st = await h.until(
                lambda: (
                    h.status("peek").get("last_execution_status") == "failed" and h.status("peek")
                ),
                timeout=120,
            )
            assert st["last_execution_error"] == (
                f"collection 'col_b_only' not found in namespace '{tenant_a}'"
            )

            # a runner told to act for tenant-b (other code in tenant-a's pod) still
            # reaches only tenant-a's directory: the mount, not the runner, decides
            forged = _forged_job(h, tenant_b)
            h.cluster.create("batch", "v1", "jobs", forged, tenant_a)
            done = await h.job_finished(forged)
            conditions = {c["type"] for c in done["status"]["conditions"]}
            assert "Complete" in conditions, done["status"]
            assert tree(store_dir / tenant_b) == before, "tenant-b's files are as they were"
            assert store.latest_run(tenant_b, ["col_abc123"]) == "b-1"
            baseline = store.read_baseline(tenant_b, ["col_abc123"])
            assert baseline is not None and baseline.run_id == "b-1"
            assert (store_dir / tenant_a / "runs" / "forged-run" / "_SUCCESS").exists()
        finally:
            kube.delete_namespace(tenant_b)


def _run_locally(store_dir: Path, namespace: str, run_id: str, tmp_path: Path) -> int:
    """tenant-b's own earlier run, by the runner on the whole store (as the operator sees it)."""
    import json
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "recluster", "run-job", "--run-id", run_id,
         "--namespace", namespace, "--store", str(store_dir),
         "--termination-log", str(tmp_path / f"{run_id}.log")],
        env={**os.environ, "RECLUSTER_EXECUTION_CONFIG": json.dumps(CONFIG)},
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    return done.returncode


def _forged_job(h: StoreHarness, namespace: str) -> dict[str, Any]:
    """The Job the operator builds for tenant-a, its runner told `--namespace <tenant-b>`."""
    from recluster.api.clustering import ExecutionConfig

    config = ExecutionConfig.model_validate(CONFIG)
    request = JobRequest(name="forged-run", execution="forged", scheduled_at=None,
                         reason="manual", execution_config=config)  # fmt: skip
    meta = {"name": "forged", "namespace": h.namespace, "uid": "none"}
    job = build_job(meta, None, request, h.settings().job_settings())
    job["metadata"].pop("ownerReferences")
    labels = {k: v for k, v in job["metadata"]["labels"].items() if k != LABEL_TRIGGER}
    job["metadata"]["labels"] = labels
    job["spec"]["template"]["metadata"]["labels"] = dict(labels)
    job["spec"]["backoffLimit"] = 0
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["args"] = ["run-job", "--namespace", namespace]
    return job


async def test_no_secret_reaches_status_history_or_events(kube: LocalKube, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    dsn = f"postgresql://tenant@127.0.0.1:{closed_port()}/vectors?password={SECRET}"
    async with StoreHarness(
        kube, store_dir, store_uri_secret=("store-dsn", "uri"),
        job_volumes=[], job_volume_mounts=[], job_store_volume=None,
    ) as h:  # fmt: skip
        # a Secret fed to a variable the runner validates: refused at apply, field named
        exfiltrate = trigger("exfiltrate", job_template={"backoffLimit": 0, "env": [
            {"name": "RECLUSTER_MEMORY_LIMIT",
             "valueFrom": {"secretKeyRef": {"name": "store-dsn", "key": "uri"}}}]})  # fmt: skip
        with pytest.raises(KubeError) as refused:
            h.apply(exfiltrate)
        assert refused.value.status == 422
        assert "spec.job_template.env[0].name: Forbidden: this name is reserved" in (
            refused.value.message
        )

        # the store's DSN, with its password, comes from a Secret in the namespace
        h.cluster.create("", "v1", "secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "store-dsn"},
            "data": {"uri": base64.b64encode(dsn.encode()).decode()}}, h.namespace)  # fmt: skip
        await h.create(trigger("t"))
        h.clock.set(at(10, 5))
        st = await h.until(
            lambda: h.status("t").get("last_execution_status") == "failed" and h.status("t"),
            timeout=120,
        )
        assert st["last_execution_error"].startswith("store unreachable: store postgresql://")
        [job] = h.jobs("t")
        assert SECRET not in str(job), "the Job carries a secretKeyRef, not the DSN"
        events = await h.until(lambda: h.events("Failed"))
        seen = [str(st), *(str(e) for e in events)]
        assert st["history"] and any("store unreachable" in str(x) for x in st["history"])
        for text in seen:
            assert SECRET not in text
        assert "password=***" in st["last_execution_error"], "redacted, not dropped"


async def test_with_postgresql_a_job_uses_its_own_namespaces_role(
    kube: LocalKube, pg_url: str, tmp_path: Path
) -> None:
    """One credential per namespace: the Job's DSN is the Secret of its own namespace,
    whose role row-level security holds to that namespace, even for a runner told
    another namespace (with the install's DSN, that runner wrote tenant-b's index)."""
    import uuid

    import psycopg

    from recluster.store.postgres import PostgresStore
    from recluster.store.tenancy import postgres_role_name

    suffix = uuid.uuid4().hex[:6]
    owner, database = f"install_{suffix}", f"e2e_{suffix}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {owner} LOGIN CREATEROLE")
        conn.execute(f"CREATE DATABASE {database} OWNER {owner}")
    host = pg_url.split("@", 1)[1].rsplit("/", 1)[0]
    owner_url = f"postgresql://{owner}@{host}/{database}"
    async with StoreHarness(
        kube, tmp_path, store_uri=owner_url, store_uri_secret=("recluster-store", "uri"),
        job_volumes=[], job_volume_mounts=[], job_store_volume=None,
    ) as h:  # fmt: skip
        tenant_a = h.namespace
        tenant_b = kube.new_namespace(kube.namespace_name("tenant-b"))
        try:
            install = PostgresStore(owner_url)
            ids = [f"d{i}" for i in range(300)]
            install.append(tenant_a, "col_abc123", ids, blobs(300, 1))
            install.append(tenant_b, "col_abc123", ids, blobs(300, 2))
            role = postgres_role_name(tenant_a)
            install.grant_namespace(tenant_a, role)
            h.cluster.create("", "v1", "secrets", {
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "recluster-store"},
                "data": {"uri": base64.b64encode(
                    f"postgresql://{role}@{host}/{database}".encode()).decode()}},
                tenant_a)  # fmt: skip

            await h.create(trigger("t"))
            h.clock.set(at(10, 5))
            st = await h.until(
                lambda: (
                    h.status("t").get("last_execution_status") in ("succeeded", "failed")
                    and h.status("t")
                ),
                timeout=120,
            )
            assert st["last_execution_status"] == "succeeded", st
            [job] = h.jobs("t")
            assert install.latest_run(tenant_a, ["col_abc123"]) == job["metadata"]["name"]

            forged = _forged_job(h, tenant_b)
            h.cluster.create("batch", "v1", "jobs", forged, tenant_a)
            done = await h.job_finished(forged)
            assert "Failed" in {c["type"] for c in done["status"]["conditions"]}
            [pod] = h.cluster.objects("", "v1", "pods", tenant_a, labels="job-name=forged-run")
            message = pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
            assert f"collection 'col_abc123' not found in namespace '{tenant_b}'" in message
            assert install.latest_run(tenant_b, ["col_abc123"]) is None, "nothing for tenant-b"
            install.close()
        finally:
            kube.delete_namespace(tenant_b)
