"""Where a trigger's report is: the pure choice of run, and the shell that fetches the file.

`pick_run` is pure (a trigger object in, a run id out; unit-tested without a
server). `report_location` is the shell behind `recluster report` (and the
kubectl plugin): it reads the trigger with the caller's kubeconfig, then the
report from the store. A report in a local Parquet store is already a file:
its path is the answer; from any other store it is written to `output`.

This module imports neither the engine nor matplotlib: the CLI stays quick.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..store import artifacts as layouts
from ..store.base import CollectionStore
from ..store.parquet import ParquetStore


class NoReport(Exception):
    """The message says why there is no report to show (one line)."""


def pick_run(trigger: Mapping[str, Any], run_id: str | None = None) -> str:
    """`run_id` if the trigger's history names it, else its newest succeeded run."""
    name = (trigger.get("metadata") or {}).get("name", "?")
    history = (trigger.get("status") or {}).get("history") or []
    if run_id is not None:
        if not any(h.get("job_id") == run_id for h in history):
            raise NoReport(f"run {run_id!r} is not in the history of trigger {name!r}")
        return run_id
    for entry in history:  # newest first
        if entry.get("status") == "succeeded" and entry.get("job_id"):
            return str(entry["job_id"])
    raise NoReport(f"trigger {name!r} has no succeeded run yet")


def local_artifact_path(
    store: CollectionStore, namespace: str, run_id: str, name: str
) -> Path | None:
    """The file of an artifact in a local Parquet store (None for other stores)."""
    if isinstance(store, ParquetStore) and "://" not in store.location:
        path = Path(store.location) / namespace / "runs" / run_id / "artifacts" / name
        return path if path.is_file() else None
    return None


def report_location(
    store: CollectionStore, namespace: str, run_id: str, output: Path | None = None
) -> Path:
    """The report's path: in a local store as it is, otherwise written to `output`."""
    listed = store.list_artifacts(namespace, run_id)
    if layouts.REPORT_HTML not in listed:
        raise NoReport(
            f"run {run_id!r} has no report (written before reports existed, or its artifacts"
            " failed: see the Job's log)"
        )
    local = local_artifact_path(store, namespace, run_id, layouts.REPORT_HTML)
    if local is not None and output is None:
        return local.resolve()
    target = output or Path(f"recluster-report-{namespace}-{run_id}.html")
    target.write_bytes(store.read_artifact(namespace, run_id, layouts.REPORT_HTML))
    return target.resolve()
