"""`recluster report`: which run (pure), where its report is, the command on the real cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from kube_support import LocalKube
from recluster.api.clustering import ExecutionConfig
from recluster.cli import main
from recluster.jobrunner.runner import JobInput, Runner
from recluster.report.locate import NoReport, pick_run, report_location
from recluster.store import RunNotFound, open_store

GROUP, VERSION = "recluster.io", "v1alpha1"


def trigger(history: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": "nightly"}, "status": {"history": history}}


HISTORY = [
    {"job_id": "nightly-3", "status": "running"},
    {"job_id": "nightly-2", "status": "succeeded"},
    {"job_id": "nightly-1", "status": "succeeded"},
    {"status": "skipped"},
]


def test_the_newest_succeeded_run_or_the_one_asked_for() -> None:
    assert pick_run(trigger(HISTORY)) == "nightly-2"
    assert pick_run(trigger(HISTORY), "nightly-1") == "nightly-1"
    with pytest.raises(NoReport, match="run 'other-1' is not in the history of trigger 'nightly'"):
        pick_run(trigger(HISTORY), "other-1")
    with pytest.raises(NoReport, match="trigger 'nightly' has no succeeded run yet"):
        pick_run(trigger(HISTORY[:1]))
    with pytest.raises(NoReport, match="no succeeded run"):
        pick_run({"metadata": {"name": "nightly"}})


def write_run(store_uri: str, namespace: str, run_id: str) -> None:
    rng = np.random.default_rng(0)
    with open_store(store_uri) as store:
        store.append(namespace, "docs", [f"d{i}" for i in range(200)], rng.normal(size=(200, 8)))
        config = ExecutionConfig.model_validate(
            {"collection_ids": ["docs"], "config": {"algorithm": "kmeans", "n_clusters": 3}}
        )
        Runner(JobInput(config, run_id, namespace, store_uri), store, log=lambda _: None).run()


def test_a_local_report_is_its_own_file_others_are_written(tmp_path: Path) -> None:
    uri = str(tmp_path / "store")
    write_run(uri, "ns", "nightly-2")
    with open_store(uri) as store:
        found = report_location(store, "ns", "nightly-2")
        assert found == tmp_path / "store/ns/runs/nightly-2/artifacts/report.html"
        copy = report_location(store, "ns", "nightly-2", tmp_path / "out.html")
        assert copy.read_bytes() == found.read_bytes()
        with pytest.raises(RunNotFound, match="run 'never' not found"):
            report_location(store, "ns", "never")


def test_the_command_finds_the_latest_report(kube: LocalKube, tmp_path: Path) -> None:
    namespace = kube.new_namespace(kube.namespace_name("report"))
    try:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterTrigger",
            "metadata": {"name": "nightly", "namespace": namespace},
            "spec": {"trigger_type": "cron",
                     "schedule_config": {"cron_expression": "0 2 * * *", "timezone": "UTC"},
                     "execution_config": {"collection_ids": ["docs"],
                                          "config": {"algorithm": "kmeans", "n_clusters": 3}}},
        }  # fmt: skip
        kube.cluster.create(GROUP, VERSION, "clustertriggers", body, namespace)
        history = [{"job_id": "nightly-2", "status": "succeeded",
                    "triggered_at": "2026-01-02T02:00:00Z"},
                   {"job_id": "nightly-1", "status": "succeeded",
                    "triggered_at": "2026-01-01T02:00:00Z"}]  # fmt: skip
        kube.cluster.patch_status(
            GROUP, VERSION, "clustertriggers", "nightly", {"history": history}, namespace
        )
        store = str(tmp_path / "store")
        write_run(store, namespace, "nightly-2")
        kubeconfig = str(kube.plane.admin_kubeconfig)
        args = ["report", "nightly", "-n", namespace, "--store", store, "--kubeconfig", kubeconfig]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert (
            result.output.strip()
            == (Path(store) / namespace / "runs/nightly-2/artifacts/report.html").as_uri()
        )
        result = CliRunner().invoke(main, [*args, "--run", "nightly-1"])
        assert result.exit_code == 1
        assert "not found" in result.output  # nightly-1 wrote no results
        result = CliRunner().invoke(main, [*args[:3], "missing", *args[4:]])
        assert result.exit_code == 1
        assert "trigger 'nightly' not found in namespace 'missing'" in result.output
    finally:
        kube.delete_namespace(namespace)
