"""A stand-in for the Job controller and the kubelet: runs each Job's command locally.

It watches the emulated API for Jobs, runs the container's command as a local
process with the container's environment, and writes back what a real cluster
would: a pod whose terminated state carries the termination message, and the
Job's Complete/Failed condition. So the operator's real code path runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..emulator.cluster import EmulatedCluster

log = logging.getLogger(__name__)
TERMINATION_LOG_LIMIT = 4096


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """Literal env values of the container; valueFrom references have no source here."""
    env = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[str(item["name"])] = str(item["value"])
        else:
            log.warning("env %s uses valueFrom, which the local executor cannot resolve", item)
    return env


class LocalJobExecutor:
    """Runs Jobs of the emulated cluster as local `python -m recluster` processes."""

    def __init__(
        self,
        cluster: EmulatedCluster,
        *,
        workdir: Path,
        max_parallel: int = 2,
        poll_interval: float = 0.2,
    ) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.slots = asyncio.Semaphore(max_parallel)
        self.poll_interval = poll_interval
        self.started: set[tuple[str, str]] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.finished = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for job in self.cluster.objects("batch", "v1", "jobs"):
                key = (str(job["metadata"]["namespace"]), str(job["metadata"]["name"]))
                done = any(
                    c.get("type") in ("Complete", "Failed")
                    for c in (job.get("status") or {}).get("conditions") or []
                )
                if key not in self.started and not done:
                    self.started.add(key)
                    task = asyncio.create_task(self._execute(dict(job)))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_interval)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _execute(self, job: dict[str, Any]) -> None:
        async with self.slots:
            meta = job["metadata"]
            namespace, name = str(meta["namespace"]), str(meta["name"])
            template = job["spec"]["template"]
            container = template["spec"]["containers"][0]
            pod_name = f"{name}-local"
            self.cluster.create(
                "", "v1", "pods",
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": pod_name,
                        "namespace": namespace,
                        "labels": dict(template["metadata"].get("labels") or {}),
                    },
                    "spec": template["spec"],
                },
            )  # fmt: skip
            self.cluster.patch_status(
                "batch", "v1", "jobs", name, {"active": 1, "startTime": _now()}, namespace
            )
            code, message = await self._run_process(container)
            terminated = {"exitCode": code, "finishedAt": _now(), "message": message}
            if code != 0:
                terminated["reason"] = "Error"
            self.cluster.patch_status(
                "", "v1", "pods", pod_name,
                {
                    "phase": "Succeeded" if code == 0 else "Failed",
                    "containerStatuses": [
                        {"name": container["name"], "state": {"terminated": terminated}}
                    ],
                },
                namespace,
            )  # fmt: skip
            at = _now()
            if code == 0:
                status: dict[str, Any] = {
                    "active": 0,
                    "succeeded": 1,
                    "completionTime": at,
                    "conditions": [
                        {"type": "Complete", "status": "True", "lastTransitionTime": at}
                    ],
                }
            else:
                status = {
                    "active": 0,
                    "failed": 1,
                    "conditions": [
                        {
                            "type": "Failed",
                            "status": "True",
                            "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit",
                            "lastTransitionTime": at,
                        }
                    ],
                }
            self.cluster.patch_status("batch", "v1", "jobs", name, status, namespace)
            self.finished += 1

    async def _run_process(self, container: dict[str, Any]) -> tuple[int, str]:
        with tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
            termination = Path(tmp) / "termination-log"
            args = [*container.get("args", []), "--termination-log", str(termination)]
            env = {**os.environ, **container_env(container)}
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "recluster", *args,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            output, _ = await process.communicate()
            code = process.returncode or 0
            for line in output.decode(errors="replace").splitlines():
                log.debug("job: %s", line)
            message = (
                termination.read_text()[:TERMINATION_LOG_LIMIT] if termination.exists() else ""
            )
            if not message:  # terminationMessagePolicy: FallbackToLogsOnError
                message = output.decode(errors="replace")[-TERMINATION_LOG_LIMIT:]
            return code, message
