"""`kubectl recluster ...`: the console script as a kubectl plugin, through the real kubectl.

The plugin is found the way kubectl finds any plugin: an executable named
`kubectl-recluster` on PATH (here the project's installed console script). It
runs as a user bound to the built-in `edit` role in the harness's namespace only,
with a kubeconfig of its own whose context names that namespace.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from harness import Harness, trigger
from test_kubectl import editor

from kube_support import LocalKube

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(180)]
SUMMARY = {"num_clusters": 3, "num_documents": 500, "execution_time_ms": 1500}


class Plugin:
    """`kubectl recluster ARGS --kubeconfig CONFIG` with the plugin on PATH."""

    def __init__(self, kubectl: Path, kubeconfig: Path, directory: Path) -> None:
        script = shutil.which("kubectl-recluster", path=str(Path(sys.executable).parent))
        if script is None:
            pytest.fail("kubectl-recluster is not installed: pip install -e . (pyproject scripts)")
        directory.mkdir()
        (directory / "kubectl-recluster").symlink_to(script)
        self.kubectl, self.kubeconfig = kubectl, kubeconfig
        self.env = {**os.environ, "PATH": f"{directory}{os.pathsep}{os.environ['PATH']}"}
        self.env.pop("KUBECONFIG", None)

    async def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.kubectl), "recluster", *args, "--kubeconfig", str(self.kubeconfig)]
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=60, env=self.env
        )
        if ok and done.returncode != 0:
            pytest.fail(f"kubectl recluster {' '.join(args)}: {done.returncode}\n{done.stderr}")
        if not ok:
            assert done.returncode != 0, done.stdout
        return done


async def test_kubectl_recluster_pauses_runs_and_reports_a_trigger(
    kube: LocalKube, kubectl_binary: Path, tmp_path: Path
) -> None:
    async with Harness(kube) as h:
        user = editor(kube, kubectl_binary, h.namespace, tmp_path)
        plugin = Plugin(kubectl_binary, user.kubeconfig, tmp_path / "bin")
        listed = await asyncio.to_thread(
            subprocess.run, [str(kubectl_binary), "plugin", "list"], capture_output=True,
            text=True, env=plugin.env,
        )  # fmt: skip
        assert str(tmp_path / "bin" / "kubectl-recluster") in listed.stdout
        await h.create(trigger("nightly"))

        # pause and resume: the spec's status, in the context's namespace
        done = await plugin("pause", "nightly")
        assert done.stdout.strip() == "clustertrigger.recluster.io/nightly paused"
        assert h.trigger("nightly")["spec"]["status"] == "paused"
        await h.until(lambda: h.status("nightly").get("status") == "paused")
        upcoming = (await plugin("next", "nightly", "--from", "2026-11-28T10:00:30Z",
                                 "--count", "2")).stdout.splitlines()  # fmt: skip
        assert upcoming == [
            "nightly  (paused: nothing fires until resumed; when resumed:)",
            "nightly  2026-11-28T10:05:00+00:00 (UTC)  2026-11-28T10:05:00Z",
            "nightly  2026-11-28T10:10:00+00:00 (UTC)  2026-11-28T10:10:00Z",
        ]
        done = await plugin("resume", "nightly", "-n", h.namespace)
        assert done.stdout.strip() == "clustertrigger.recluster.io/nightly resumed"
        await h.until(lambda: h.status("nightly").get("status") == "active")

        # run: a manual execution, as the gateway's execute requests it
        assert "No executions of nightly yet." in (await plugin("history", "nightly")).stdout
        done = await plugin("run", "nightly")
        value = done.stdout.strip().rpartition("recluster.io/execute-now=")[2].rstrip(")")
        assert done.stdout.startswith("clustertrigger.recluster.io/nightly execution requested")
        [job] = await h.until(lambda: h.jobs("nightly"), what="the manual Job")
        assert job["metadata"]["annotations"]["recluster.io/reason"] == "manual"
        await h.until(lambda: h.status("nightly").get("last_manual_execution") == value)
        await h.finish_job(job, ok=True, summary=SUMMARY)
        await h.until(lambda: h.status("nightly").get("last_execution_status") == "succeeded")

        rows = [line.split() for line in (await plugin("history", "nightly")).stdout.splitlines()]
        assert rows[0] == ["JOB", "REASON", "STATUS", "TRIGGERED", "DURATION", "CLUSTERS",
                           "DOCUMENTS", "ERROR"]  # fmt: skip
        assert rows[1][:3] == [job["metadata"]["name"], "manual", "succeeded"]
        assert rows[1][4:] == ["1.5s", "3", "500"]
        failed_only = (await plugin("history", "nightly", "--status", "failed")).stdout
        assert failed_only.strip() == "No failed executions of nightly."

        # what the gateway refuses, refused here with its words
        h.patch_spec("nightly", {"status": "disabled"})
        refused = await plugin("run", "nightly", ok=False)
        assert "trigger 'nightly' is disabled: manual executions are refused" in refused.stderr
        missing = await plugin("pause", "nope", ok=False)
        assert f"trigger 'nope' not found in namespace '{h.namespace}'" in missing.stderr
        elsewhere = await plugin("pause", "nightly", "-n", "default", ok=False)
        assert "forbidden" in elsewhere.stderr, elsewhere.stderr
        # --context: another context of the same kubeconfig, naming another namespace
        config = yaml.safe_load(user.kubeconfig.read_text())
        mine = next(c for c in config["contexts"] if c["name"] == config["current-context"])
        other = {"name": "other", "context": {**mine["context"], "namespace": "default"}}
        user.kubeconfig.write_text(
            yaml.safe_dump({**config, "contexts": [*config["contexts"], other]})
        )
        elsewhere = await plugin("history", "nightly", "--context", "other", ok=False)
        assert "forbidden" in elsewhere.stderr, elsewhere.stderr
        ours = await plugin("history", "nightly", "--context", mine["name"])
        assert job["metadata"]["name"] in ours.stdout
