"""Scenarios of the operator, run for real: informers, queue, reconciler, real control plane."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from harness import GROUP, VERSION, Harness, trigger

from kube_support import LocalKube
from recluster.kube.client import KubeClient
from recluster.kube.errors import KubeError

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 28, hour, minute, second, tzinfo=UTC)


SUMMARY = {"num_clusters": 3, "num_documents": 500, "execution_time_ms": 1234}


async def test_create_fires_a_job_with_the_expected_spec(kube: LocalKube) -> None:
    async with Harness(kube) as h:
        body = trigger(
            "nightly",
            job_template={
                "image": "custom:1",
                "resources": {"limits": {"memory": "2Gi"}},
                "nodeSelector": {"pool": "batch"},
                "backoffLimit": 0,
                "activeDeadlineSeconds": 600,
                "env": [{"name": "OMP_NUM_THREADS", "value": "2"}],
            },
        )
        created = await h.create(body)
        status = await h.until(lambda: h.status("nightly").get("next_scheduled_at"))
        assert status == "2026-11-28T10:05:00Z"
        assert h.jobs() == []
        h.clock.set(at(10, 5, 1))
        [job] = await h.until(lambda: h.jobs("nightly"), what="a Job")
        meta = job["metadata"]
        assert meta["labels"]["recluster.io/trigger"] == "nightly"
        assert meta["labels"]["recluster.io/execution"] in meta["name"]
        assert meta["annotations"]["recluster.io/scheduled-at"] == "2026-11-28T10:05:00Z"
        owner = meta["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "ClusterTrigger", "nightly", created["metadata"]["uid"],
        )  # fmt: skip
        pod = job["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["image"] == "custom:1" and container["args"] == ["run-job"]
        assert container["resources"] == {"limits": {"memory": "2Gi"}}
        assert pod["nodeSelector"] == {"pool": "batch"}
        assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 600
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert json.loads(env["RECLUSTER_EXECUTION_CONFIG"])["collection_ids"] == ["col_abc123"]
        assert env["RECLUSTER_STORE_URI"] == "/data/store" and env["OMP_NUM_THREADS"] == "2"
        status = await h.until(lambda: h.status("nightly").get("execution_count") == 1 and
                               h.status("nightly"))  # fmt: skip
        assert status["last_execution_job_id"] == meta["name"]
        assert status["last_execution_status"] == "running"
        assert status["next_scheduled_at"] == "2026-11-28T10:10:00Z"
        assert status["namespace_id"] == h.namespace
        assert status["internal_id"] == created["metadata"]["uid"]
        [event] = await h.until(lambda: h.events("Triggered"))
        assert event["type"] == "Normal"
        assert event["message"] == f"schedule firing: created Job {meta['name']}"


async def test_outcomes_update_counters_history_and_events(kube: LocalKube) -> None:
    async with Harness(kube) as h:
        await h.create(trigger("t"))
        h.clock.set(at(10, 5))
        [first] = await h.until(lambda: h.jobs("t"))
        await h.finish_job(first, ok=False, summary={"error": "collection 'col_abc123' not found"})
        st = await h.until(lambda: h.status("t").get("consecutive_failures") == 1 and h.status("t"))
        assert st["last_execution_status"] == "failed"
        assert st["last_execution_error"] == "collection 'col_abc123' not found"
        h.clock.set(at(10, 10))
        second = await h.until(lambda: len(h.jobs("t")) == 2 and h.jobs("t")[1])
        await h.finish_job(second, ok=True, summary=SUMMARY)
        st = await h.until(
            lambda: h.status("t").get("last_execution_status") == "succeeded" and h.status("t")
        )
        assert st["consecutive_failures"] == 0 and st["execution_count"] == 2
        newest = st["history"][0]
        assert newest["job_id"] == second["metadata"]["name"]
        assert (newest["num_clusters"], newest["num_documents"]) == (3, 500)
        assert newest["execution_time_ms"] == 1234 and newest["status"] == "succeeded"
        assert st["history"][1]["error"] == "collection 'col_abc123' not found"
        [succeeded] = await h.until(lambda: h.events("Succeeded"))
        assert succeeded["message"] == (
            f"Job {second['metadata']['name']} succeeded: 3 clusters over 500 documents in 1234 ms"
        )
        [failed] = await h.until(lambda: h.events("Failed"))
        assert (failed["type"], failed["message"]) == (
            "Warning",
            f"Job {first['metadata']['name']} failed: collection 'col_abc123' not found",
        )


async def test_job_failure_reason_comes_from_the_job_when_the_pod_says_nothing(
    kube: LocalKube,
) -> None:
    async with Harness(kube) as h:
        # the Job controller ends the Job at its deadline; the pod never wrote a message
        await h.create(trigger("t", job_template={"backoffLimit": 0, "activeDeadlineSeconds": 1}))
        h.clock.set(at(10, 5))
        [job] = await h.until(lambda: h.jobs("t"))
        await h.job_finished(job)
        st = await h.until(lambda: h.status("t").get("last_execution_error") and h.status("t"))
        assert st["last_execution_error"] == (
            "DeadlineExceeded: Job was active longer than specified deadline"
        )


async def test_max_failures_then_a_spec_edit_recovers(kube: LocalKube) -> None:
    async with Harness(kube) as h:
        await h.create(trigger("t", max_consecutive_failures=2))
        for minute in (5, 10):
            h.clock.set(at(10, minute))
            job = await h.until(lambda m=minute: len(h.jobs("t")) == m // 5 and h.jobs("t")[-1])
            await h.finish_job(job, ok=False)
            # the next slot must not find this Job still running (Forbid would skip it)
            await h.until(lambda m=minute: h.status("t").get("consecutive_failures") == m // 5)
        st = await h.until(lambda: h.status("t").get("status") == "failed" and h.status("t"))
        assert "next_scheduled_at" not in st
        ready = st["conditions"][0]
        assert (ready["status"], ready["reason"]) == ("False", "MaxConsecutiveFailures")
        h.clock.set(at(10, 15))
        await h.reconciled("t")
        assert len(h.jobs("t")) <= 2  # the failed Job may be pruned; none is created
        assert h.status("t")["execution_count"] == 2
        h.patch_spec("t", {"schedule_config": {"cron_expression": "*/10 * * * *"}})
        st = await h.until(lambda: h.status("t").get("status") == "active" and h.status("t"))
        assert st["consecutive_failures"] == 0
        assert st["next_scheduled_at"] == "2026-11-28T10:20:00Z"
        await h.reconciled("t")
        assert h.status("t")["execution_count"] == 2, "no spurious run after the edit"
        [recovered] = await h.until(lambda: h.events("Recovered"))
        assert recovered["message"] == "the spec changed: firing resumes"
        stopped = {e["message"] for e in h.events("MaxConsecutiveFailures")}
        assert "2 consecutive failures: the trigger stops firing until its spec changes" in stopped


async def test_restart_between_job_creation_and_status_adopts_the_job(kube: LocalKube) -> None:
    async with Harness(kube) as h:
        await h.create(trigger("t"))
        await h.until(lambda: h.status("t").get("next_scheduled_at"))
        await h.stop_operator()

        class Crashing(KubeClient):
            """Creates the Job, then dies before the status write reaches the API."""

            async def patch_status(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
                raise KubeError(503, "ServiceUnavailable", "operator killed here")

        crashing = Crashing(h.client.credentials, keep_alive=False)  # type: ignore[union-attr]
        h.clock.set(at(10, 5, 2))
        await h.start_operator(crashing)
        [job] = await h.until(lambda: h.jobs("t"), what="the Job of the first operator")
        # the status write was tried and refused (a retried reconcile), not merely late
        await h.until(lambda: h.reconcile_errors("t") >= 1, what="the refused status write")
        assert h.status("t").get("execution_count", 0) == 0, "the status write never happened"
        await h.stop_operator()
        await h.start_operator()
        st = await h.until(lambda: h.status("t").get("execution_count") == 1 and h.status("t"))
        assert [j["metadata"]["name"] for j in h.jobs("t")] == [job["metadata"]["name"]]
        assert st["last_execution_job_id"] == job["metadata"]["name"]
        await h.finish_job(job, ok=True, summary=SUMMARY)
        st = await h.until(
            lambda: h.status("t").get("last_execution_status") == "succeeded" and h.status("t")
        )
        assert st["execution_count"] == 1 and len(h.jobs("t")) == 1


@pytest.mark.parametrize(
    ("deadline", "expect_job"), [(None, True), (600, True), (10, False)], ids=str
)
async def test_downtime_across_three_slots(
    kube: LocalKube, deadline: int | None, expect_job: bool
) -> None:
    async with Harness(kube) as h:
        spec: dict[str, Any] = {} if deadline is None else {"starting_deadline_seconds": deadline}
        await h.create(trigger("t", **spec))
        await h.until(lambda: h.status("t").get("next_scheduled_at") == "2026-11-28T10:05:00Z")
        await h.stop_operator()
        h.clock.set(at(10, 15, 20))  # 10:05, 10:10 and 10:15 pass while the operator is down
        await h.start_operator()
        await h.until(lambda: h.status("t").get("next_scheduled_at") == "2026-11-28T10:20:00Z")
        await h.reconciled("t")
        jobs = h.jobs("t")
        if expect_job:
            [job] = jobs
            assert job["metadata"]["annotations"]["recluster.io/scheduled-at"] == (
                "2026-11-28T10:15:00Z"
            )
            assert job["metadata"]["annotations"]["recluster.io/reason"] == "catch_up"
        else:
            assert jobs == []
        [missed] = await h.until(lambda: h.events("MissedSchedule"))
        assert missed["type"] == "Warning"
        if expect_job:  # caught up: the latest of the three runs once
            assert missed["message"] == (
                "missed 3 firings while not running; running the latest "
                "(due at 2026-11-28T10:15:00Z) once"
            )
        else:  # 20 s late with a 10 s deadline: none runs
            assert missed["message"] == (
                "missed 3 firing(s), the latest due at 2026-11-28T10:15:00Z: 20s late, "
                "beyond starting_deadline_seconds=10; not run"
            )


@pytest.mark.parametrize("policy", ["Forbid", "Replace"])
async def test_concurrency_policy_while_a_job_runs(kube: LocalKube, policy: str) -> None:
    async with Harness(kube) as h:
        await h.create(trigger("t", concurrency_policy=policy))
        h.clock.set(at(10, 5))
        [first] = await h.until(lambda: h.jobs("t"))
        h.clock.set(at(10, 10))
        await h.until(lambda: h.status("t").get("next_scheduled_at") == "2026-11-28T10:15:00Z")
        st = h.status("t")
        if policy == "Forbid":
            assert [j["metadata"]["name"] for j in h.jobs("t")] == [first["metadata"]["name"]]
            assert st["execution_count"] == 1 and st["history"][0]["status"] == "skipped"
            [skipped] = await h.until(lambda: h.events("SkippedConcurrent"))
            assert skipped["message"] == (
                f"skipped a schedule firing: Job {first['metadata']['name']} is still running"
            )
        else:
            jobs = await h.until(
                lambda: (
                    len(h.jobs("t")) == 1
                    and h.jobs("t")[0]["metadata"]["name"] != first["metadata"]["name"]
                    and h.jobs("t")
                )
            )
            assert st["execution_count"] == 2
            statuses = {e["job_id"]: e["status"] for e in st["history"]}
            assert statuses[first["metadata"]["name"]] == "cancelled"
            assert statuses[jobs[0]["metadata"]["name"]] == "running"


async def test_pause_resume_and_disable(kube: LocalKube) -> None:
    async with Harness(kube) as h:
        await h.create(trigger("t", status="paused"))
        st = await h.until(lambda: h.status("t").get("status") == "paused" and h.status("t"))
        assert st["next_scheduled_at"] == "2026-11-28T10:05:00Z"
        assert st["conditions"][0]["reason"] == "Paused"
        h.clock.set(at(10, 20, 1))
        await h.until(lambda: h.status("t").get("next_scheduled_at") == "2026-11-28T10:25:00Z")
        assert h.jobs("t") == []
        h.patch_spec("t", {"status": "active"})
        await h.until(lambda: h.status("t").get("status") == "active")
        await h.reconciled("t")
        assert h.jobs("t") == [], "resume does not replay the paused period"
        h.clock.set(at(10, 25))
        await h.until(lambda: h.jobs("t"))
        h.patch_spec("t", {"status": "disabled"})
        st = await h.until(lambda: h.status("t").get("status") == "disabled" and h.status("t"))
        assert "next_scheduled_at" not in st
        h.clock.set(at(11, 0))
        await h.reconciled("t")
        assert len(h.jobs("t")) == 1


async def test_manual_execution_via_annotation(kube: LocalKube) -> None:
    async with Harness(kube) as h:
        await h.create(trigger("t", status="paused"))
        await h.until(lambda: h.status("t").get("status") == "paused")
        h.annotate("t", "recluster.io/execute-now", "2026-11-28T10:01:00Z")
        [job] = await h.until(lambda: h.jobs("t"))
        assert job["metadata"]["annotations"]["recluster.io/reason"] == "manual"
        st = await h.until(lambda: h.status("t").get("execution_count") == 1 and h.status("t"))
        assert st["last_manual_execution"] == "2026-11-28T10:01:00Z"
        await h.reconciled("t")
        assert len(h.jobs("t")) == 1, "the same value fires once"
        await h.finish_job(job, ok=True, summary=SUMMARY)
        await h.until(lambda: h.status("t").get("last_execution_status") == "succeeded")
        h.annotate("t", "recluster.io/execute-now", "second")
        await h.until(lambda: len(h.jobs("t")) == 2)


async def test_cluster_definition_inheritance_and_absence(kube: LocalKube) -> None:
    async with Harness(kube) as h:
        await h.create(trigger("t", "interval", cluster_id="cluster_xyz789",
                        schedule={"start_immediately": True}))  # fmt: skip
        st = await h.until(lambda: h.status("t").get("conditions") and h.status("t"))
        ready = st["conditions"][0]
        assert (ready["status"], ready["reason"]) == ("False", "ClusterDefinitionNotFound")
        assert "cluster_xyz789" in ready["message"]
        [missing] = await h.until(lambda: h.events("ClusterDefinitionNotFound"))
        assert (missing["type"], missing["message"]) == ("Warning", ready["message"])
        await h.reconciled("t")
        assert h.jobs("t") == []
        h.apply(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ClusterDefinition",
                "metadata": {"name": "cluster-xyz789"},
                "spec": {
                    "cluster_id": "cluster_xyz789",
                    "execution_config": {
                        "collection_ids": ["col_products"],
                        "config": {"algorithm": "hdbscan", "min_cluster_size": 10},
                    },
                },
            }
        )
        [job] = await h.until(lambda: h.jobs("t"))
        env = {
            e["name"]: e.get("value")
            for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert json.loads(env["RECLUSTER_EXECUTION_CONFIG"]) == {
            "collection_ids": ["col_products"],
            "config": {"algorithm": "hdbscan", "min_cluster_size": 10},
        }
        st = await h.until(
            lambda: h.status("t")["conditions"][0]["status"] == "True" and h.status("t")
        )
        assert st["conditions"][0]["reason"] == "Active"


async def test_invalid_schedule_never_fires_and_says_why(kube: LocalKube) -> None:
    async with Harness(kube) as h:
        await h.create(trigger("t", schedule={"timezone": "Mars/Olympus"}))
        st = await h.until(lambda: h.status("t").get("conditions") and h.status("t"))
        ready = st["conditions"][0]
        assert (ready["status"], ready["reason"]) == ("False", "InvalidSchedule")
        assert "unknown time zone 'Mars/Olympus'" in ready["message"]
        [invalid] = await h.until(lambda: h.events("InvalidSchedule"))
        assert (invalid["type"], invalid["message"]) == ("Warning", ready["message"])
        h.clock.set(at(12, 0))
        await h.reconciled("t")
        assert h.jobs("t") == []


async def test_delete_leaves_nothing_behind(kube: LocalKube) -> None:
    """No finalizer: the trigger goes at once, the garbage collector takes its Jobs."""
    async with Harness(kube) as h:
        await h.create(trigger("t"))
        h.clock.set(at(10, 5))
        await h.until(lambda: h.jobs("t"))
        assert not h.trigger("t")["metadata"].get("finalizers")
        h.cluster.delete(GROUP, VERSION, "clustertriggers", "t", h.namespace)
        assert h.cluster.get(GROUP, VERSION, "clustertriggers", "t", h.namespace) is None
        # the collector learns of a new resource kind at its next discovery (every 30 s)
        await h.until(lambda: h.jobs("t") == [], timeout=90, what="its Jobs to be collected")
        deletes = [r for r in h.audit() if r.verb == "delete" and r.resource == "jobs"]
        assert deletes == [], "the operator left the Jobs to the garbage collector"


async def test_a_status_write_conflict_from_metadata_only_is_retried_at_once(
    kube: LocalKube,
) -> None:
    async with Harness(kube) as h:
        await h.create(trigger("t"))
        await h.stop_operator()

        class Conflicting(KubeClient):
            """The first status write meets a newer resourceVersion (someone else's patch)."""

            conflicts = 1

            async def patch_status(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
                if self.conflicts:
                    self.conflicts -= 1
                    raise KubeError(409, "Conflict", "the object has been modified")
                return await super().patch_status(*args, **kwargs)

        client = Conflicting(h.client.credentials, keep_alive=False)  # type: ignore[union-attr]
        await h.start_operator(client)
        h.clock.set(at(10, 5))
        [job] = await h.until(lambda: h.jobs("t"))
        st = await h.until(lambda: h.status("t").get("execution_count") == 1 and h.status("t"))
        assert st["last_execution_job_id"] == job["metadata"]["name"]
        assert client.conflicts == 0
        gets = [r for r in h.audit() if r.verb == "get" and r.resource == "clustertriggers"]
        assert gets, "the status was re-read after the conflict"
        assert len(h.jobs("t")) == 1
