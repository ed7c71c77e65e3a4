"""The TriggerReconciler with fake ports: what it asks of Kubernetes, in what order, no server."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from recluster.controller.caches import Caches
from recluster.controller.fakes import FakeCluster, FakeStore
from recluster.controller.metrics import Metrics
from recluster.controller.ports import ThreadedStore
from recluster.controller.reconciler import TriggerReconciler
from recluster.controller.settings import Settings
from recluster.kube.errors import KubeError

pytestmark = pytest.mark.asyncio
NS = "team-a"
CONFIG = {"collection_ids": ["col_abc123"], "config": {"algorithm": "kmeans", "n_clusters": 3}}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def trigger(name: str = "t", **spec: Any) -> dict[str, Any]:
    body = {
        "trigger_type": "cron",
        "schedule_config": {"cron_expression": "*/5 * * * *", "timezone": "UTC"},
        "execution_config": CONFIG,
        **spec,
    }
    return {"apiVersion": "recluster.io/v1alpha1", "kind": "ClusterTrigger",
            "metadata": {"name": name, "namespace": NS,
                         "creationTimestamp": "2026-11-28T10:00:00Z"},
            "spec": body}  # fmt: skip


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.caches = Caches()
        self.cluster = FakeCluster(self.caches)
        self.store = FakeStore()
        settings = Settings(image="recluster:test", store_uri="/data", clock=self.clock)
        self.reconciler = TriggerReconciler(
            settings, self.cluster, self.store, self.caches, Metrics()
        )

    def status(self, name: str = "t") -> dict[str, Any]:
        return dict(self.caches.triggers[(NS, name)].get("status") or {})

    def at(self, minute: int, second: int = 0) -> None:
        self.clock.now = self.clock.now.replace(minute=minute, second=second)


async def test_replace_deletes_the_running_job_before_it_creates_the_next() -> None:
    w = World()
    w.cluster.put_trigger(trigger(concurrency_policy="Replace"))
    await w.reconciler.reconcile((NS, "t"))
    w.at(5)
    await w.reconciler.reconcile((NS, "t"))
    [first] = [name for call, name in w.cluster.calls if call == "create_job"]
    w.cluster.calls.clear()
    w.at(10)
    await w.reconciler.reconcile((NS, "t"))
    jobs = [(call, name) for call, name in w.cluster.calls if call.endswith("_job")]
    assert jobs[0] == ("delete_job", first)
    assert jobs[1][0] == "create_job" and jobs[1][1] != first


async def test_a_refused_job_is_failed_create_not_a_firing() -> None:
    w = World()
    w.cluster.put_trigger(trigger())
    await w.reconciler.reconcile((NS, "t"))
    w.at(5)
    quota = 'jobs.batch "t-1" is forbidden: exceeded quota: jobs, requested: count/jobs.batch=1'
    w.cluster.fail("create_job", KubeError(403, "Forbidden", quota), times=2)
    outcome = await w.reconciler.reconcile((NS, "t"))
    assert outcome.failed, "the key backs off"
    st = w.status()
    assert st.get("execution_count", 0) == 0 and "last_execution_job_id" not in st
    ready = st["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "FailedCreate")
    assert quota in ready["message"]
    assert [(t, r) for t, r, _ in w.cluster.events] == [("Warning", "FailedCreate")]
    # the same refusal again: no second Event; then the apiserver accepts
    assert (await w.reconciler.reconcile((NS, "t"))).failed
    assert len(w.cluster.events) == 1
    outcome = await w.reconciler.reconcile((NS, "t"))
    assert not outcome.failed
    st = w.status()
    assert st["execution_count"] == 1
    assert (st["conditions"][0]["status"], st["conditions"][0]["reason"]) == ("True", "Active")


async def test_server_errors_back_off_without_a_condition() -> None:
    w = World()
    w.cluster.put_trigger(trigger())
    await w.reconciler.reconcile((NS, "t"))
    w.at(5)
    w.cluster.fail("create_job", KubeError(503, "ServiceUnavailable", "etcd leader changed"))
    assert (await w.reconciler.reconcile((NS, "t"))).failed
    assert w.status()["conditions"][0]["reason"] == "Active"
    assert w.cluster.events == []


async def test_jobs_belong_by_controller_uid_not_by_label() -> None:
    w = World()
    created = w.cluster.put_trigger(trigger(successful_jobs_history_limit=1))
    labels = {"recluster.io/trigger": "t", "recluster.io/execution": "x"}
    # a user's Job with our label, and one of an older trigger of the same name
    w.cluster.put_job({"metadata": {"name": "users-job", "namespace": NS, "labels": labels}})
    older = {"apiVersion": "recluster.io/v1alpha1", "kind": "ClusterTrigger", "name": "t",
             "uid": "uid-of-a-deleted-trigger", "controller": True}  # fmt: skip
    complete = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    w.cluster.put_job({
        "metadata": {"name": "t-old", "namespace": NS, "labels": labels,
                     "ownerReferences": [older]},
        "status": complete,
    })  # fmt: skip
    done = {"succeeded": 1, "completionTime": "2026-11-28T10:00:10Z",
            "conditions": [{"type": "Complete", "status": "True"}]}  # fmt: skip
    for minute in (0, 5, 10, 15):
        w.at(minute, 1)
        await w.reconciler.reconcile((NS, "t"))
        for job in w.caches.jobs_of(created["metadata"]["uid"]):
            job["status"] = done  # the Job controller, quickly
    deleted = [name for call, name in w.cluster.calls if call == "delete_job"]
    assert "users-job" not in deleted and "t-old" not in deleted
    assert w.status()["execution_count"] == 3, "only its own Jobs count"
    assert {j["metadata"]["name"] for j in w.caches.jobs_of(created["metadata"]["uid"])} <= {
        name for call, name in w.cluster.calls if call == "create_job"
    }


async def test_a_status_conflict_reads_the_trigger_again_and_decides_again() -> None:
    w = World()
    w.cluster.put_trigger(trigger())
    w.cluster.fail("write_status", KubeError(409, "Conflict", "the object has been modified"))
    outcome = await w.reconciler.reconcile((NS, "t"))
    assert not outcome.failed
    calls = [call for call, _ in w.cluster.calls]
    assert calls == ["write_status", "read_trigger", "write_status"]
    assert w.status()["next_scheduled_at"] == "2026-11-28T10:05:00Z"


async def test_legacy_finalizers_are_removed() -> None:
    w = World()
    body = trigger()
    body["metadata"]["finalizers"] = ["recluster.io/cleanup", "example.com/keep"]
    w.cluster.put_trigger(body)
    await w.reconciler.reconcile((NS, "t"))
    assert w.caches.triggers[(NS, "t")]["metadata"]["finalizers"] == ["example.com/keep"]
    assert ("remove_finalizers", "t") in w.cluster.calls


async def test_a_deleted_trigger_is_forgotten() -> None:
    w = World()
    outcome = await w.reconciler.reconcile((NS, "gone"))
    assert outcome.requeue_after is None and not outcome.failed
    assert w.cluster.calls == []


async def test_a_slow_measurement_does_not_hold_up_other_store_calls() -> None:
    """Store calls run in a bounded pool: one drift check blocks one thread, not the rest."""
    release = threading.Event()
    opened: list[Any] = []

    class Slow:
        def count(self, namespace: str, collection: str) -> int:
            return 42

        def close(self) -> None:
            pass

    def opener(uri: str) -> Any:
        store = Slow()
        opened.append(store)
        return store

    store = ThreadedStore("memory://", workers=2, opener=opener)
    try:
        blocked = asyncio.get_running_loop().run_in_executor(
            store.pool, lambda: release.wait(30)
        )  # a drift measurement that takes its time
        counted = await asyncio.wait_for(store.count(NS, "col_abc123"), 10)
        assert counted == 42 and not blocked.done()
    finally:
        release.set()
        await blocked
        store.close()
    assert len(opened) == 1, "each thread opens its own store, once"


def blas_thread_counts() -> set[int]:
    from threadpoolctl import threadpool_info  # type: ignore[import-untyped]

    return {int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"}


async def test_the_store_pool_runs_blas_on_one_thread_until_it_is_closed() -> None:
    """Drift measurements call BLAS from several pool threads at once; OpenBLAS's threaded
    server deadlocks under concurrent callers (ThreadedStore's rule), so while the pool
    exists BLAS runs on one thread, and closing the pool gives the process its setting back."""
    from threadpoolctl import threadpool_limits

    class Counting:
        def count(self, namespace: str, collection: str) -> int:
            (threads,) = blas_thread_counts()  # read inside a pool thread, as a measurement runs
            return threads

        def close(self) -> None:
            pass

    with threadpool_limits(limits=2, user_api="blas"):  # a 2-core default, on any machine
        store = ThreadedStore("memory://", workers=2, opener=lambda uri: cast(Any, Counting()))
        try:
            assert await asyncio.wait_for(store.count(NS, "col_abc123"), 10) == 1
            assert blas_thread_counts() == {1}, "the limit holds for the whole process"
        finally:
            store.close()
        assert blas_thread_counts() == {2}


class WatchOutrunsTheWrite(FakeCluster):
    """The watch brings our status write and a user's later spec edit before the write's
    response: the cache already holds the edit when write_status returns."""

    async def write_status(
        self, namespace: str, name: str, patch: Any, resource_version: str
    ) -> dict[str, Any]:
        written = await super().write_status(namespace, name, patch, resource_version)
        meta = {**written["metadata"], "resourceVersion": self._version()}
        edited = {**written, "spec": {**written["spec"], "status": "paused"}, "metadata": meta}
        self.caches.triggers[(namespace, name)] = edited
        return written


async def test_a_status_write_never_puts_back_an_older_trigger_than_the_watch_brought() -> None:
    w = World()
    w.cluster = WatchOutrunsTheWrite(w.caches)
    w.reconciler.cluster = w.cluster
    w.cluster.put_trigger(trigger())
    await w.reconciler.reconcile((NS, "t"))
    assert w.caches.triggers[(NS, "t")]["spec"]["status"] == "paused"
    await w.reconciler.reconcile((NS, "t"))
    assert w.status()["status"] == "paused"


async def test_the_namespaces_store_directory_is_made_before_its_job(tmp_path: Any) -> None:
    """The kubelet would make a missing sub-path as root, which the Job's user cannot write."""
    w = World()
    settings = Settings(
        image="recluster:test", store_uri="/data", clock=w.clock,
        job_volumes=[{"name": "store", "emptyDir": {}}],
        job_volume_mounts=[{"name": "store", "mountPath": "/data"}], job_store_volume="store",
    )  # fmt: skip
    order: list[str] = []

    class Recording(FakeStore):
        async def prepare_namespace(self, namespace: str) -> None:
            order.append(f"prepare {namespace}")

    original = w.cluster.create_job

    async def create_job(job: Any) -> bool:
        order.append(f"create {job['metadata']['name']}")
        return await original(job)

    w.cluster.create_job = create_job  # type: ignore[method-assign]
    w.reconciler = TriggerReconciler(settings, w.cluster, Recording(), w.caches, Metrics())
    w.cluster.put_trigger(trigger())
    await w.reconciler.reconcile((NS, "t"))
    w.at(5)
    await w.reconciler.reconcile((NS, "t"))
    assert [o.split()[0] for o in order] == ["prepare", "create"] and order[0] == f"prepare {NS}"

    store = ThreadedStore(str(tmp_path / "store"), workers=1)
    try:
        await store.prepare_namespace(NS)
        assert (tmp_path / "store" / NS).is_dir()
    finally:
        store.close()
    remote = ThreadedStore("s3://bucket/prefix", workers=1)
    try:
        await remote.prepare_namespace(NS)  # object stores have no directories: nothing
    finally:
        remote.close()
