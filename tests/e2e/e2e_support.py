"""What the end-to-end tests share: the chart's coordinates, helper Jobs, the examples.

Both end-to-end tests (test_kind.py on a kind cluster, test_local.py on this
machine's control plane with pods in podman containers) install the chart,
load sample collections with a one-shot Job of the image, apply `examples/`
with schedules shortened to seconds (`recluster dev`'s own `shorten`), keep
appending documents, and wait for executions and their results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recluster.devsystem.system import shorten
from recluster.manifests import load_documents

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "recluster"
RELEASE = "recluster"
NAMESPACE = "recluster"
STORE = "/var/lib/recluster/store"
"""Where the chart mounts the Parquet store (values.yaml store.parquet.path)."""
STORE_CLAIM = f"{RELEASE}-store"
OPERATOR = f"{RELEASE}-operator"
# cron every minute, intervals of 30 s, event after 50 documents (see shorten)
MUST_EXECUTE = ("daily-2am", "every-6-hours", "hourly-cluster-xyz789", "after-100-documents")
WAIT_SECONDS = 600


def pod_spec(image: str, command: list[str]) -> dict[str, Any]:
    """A pod running the image like the chart's pods: non-root, read-only, store mounted."""
    return {
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "main",
                "image": image,
                "imagePullPolicy": "Never",
                "command": command,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": "store", "mountPath": STORE},
                ],
            }
        ],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "store", "persistentVolumeClaim": {"claimName": STORE_CLAIM}},
        ],
    }


def helper_job(name: str, image: str, script: str, *args: str) -> dict[str, Any]:
    """A one-shot Job running `python -c script args...` in the image."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 600,
            "template": {"spec": pod_spec(image, ["python", "-c", script, *args])},
        },
    }


LOAD_SAMPLES = f"""
import sys
from recluster.devsystem.sample import ensure_sample
from recluster.store.factory import open_store
store = open_store({STORE!r})
for cid in sys.argv[1:]:
    print(cid, ensure_sample(store, {NAMESPACE!r}, cid), flush=True)
store.close()
"""

FEED_DOCUMENTS = f"""
import sys, time
from recluster.devsystem.feeder import DocumentFeeder, FeedPace
from recluster.store.factory import open_store
store = open_store({STORE!r})
pace = FeedPace(batch=20, ramp_seconds=120)
feeder = DocumentFeeder(store, {NAMESPACE!r}, sys.argv[1:], pace)
for round_number in range(1, 31):
    feeder.feed_once(10.0 * round_number, round_number)
    print("added", feeder.added, flush=True)
    time.sleep(10)
store.close()
"""

READ_RESULTS = f"""
import json, sys
from pathlib import Path
root = Path({STORE!r}) / {NAMESPACE!r} / "runs"
found = {{}}
for run in sys.argv[1:]:
    summary = root / run / "summary.json"
    found[run] = {{
        "success": (root / run / "_SUCCESS").exists(),
        "files": sorted(p.name for p in (root / run).glob("*")) if (root / run).exists() else [],
        "summary": json.loads(summary.read_text()) if summary.exists() else None,
    }}
print(json.dumps(found))
"""


def example_bodies() -> list[dict[str, Any]]:
    """The ClusterTriggers and ClusterDefinitions of examples/, with short schedules."""
    documents = load_documents([ROOT / "examples"])
    kinds = ("ClusterTrigger", "ClusterDefinition")
    return [shorten(dict(d.body)) for d in documents if d.kind in kinds]


def succeeded_jobs(triggers: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Trigger name -> job_id of a succeeded execution, for the MUST_EXECUTE ones that have one."""
    found = {}
    for name in MUST_EXECUTE:
        status = triggers.get(name, {})
        done = [h for h in status.get("history") or [] if h.get("status") == "succeeded"]
        if status.get("execution_count", 0) >= 1 and done:
            found[name] = str(done[0]["job_id"])
    return found
