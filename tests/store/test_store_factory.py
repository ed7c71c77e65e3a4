"""Where a run's outputs are, as the completion webhooks' payload names them (no I/O)."""

from __future__ import annotations

import os

from recluster.store.factory import run_artifacts


def test_a_local_store_names_file_urls_of_the_run() -> None:
    found = run_artifacts("/var/lib/recluster/store", "team-a", "nightly-0123456789")
    run = "file:///var/lib/recluster/store/team-a/runs/nightly-0123456789/"
    assert found == {
        "run": run,
        "assignments": run + "assignments.parquet",
        "clusters": run + "clusters.parquet",
        "summary": run + "summary.json",
    }
    relative = run_artifacts(".recluster/dev/store", "default", "r")["run"]
    assert relative == f"file://{os.path.abspath('.recluster/dev/store')}/default/runs/r/"
    assert run_artifacts("file:///data/store", "ns", "r")["run"] == "file:///data/store/ns/runs/r/"


def test_object_stores_keep_their_scheme_and_lose_credentials() -> None:
    assert run_artifacts("s3://bucket/prefix/", "ns", "r")["clusters"] == (
        "s3://bucket/prefix/ns/runs/r/clusters.parquet"
    )
    leaked = run_artifacts("s3://key:secret@bucket/prefix", "ns", "r")["run"]
    assert "secret" not in leaked and leaked.endswith("/ns/runs/r/")


def test_postgresql_names_the_database_without_its_password() -> None:
    found = run_artifacts("postgresql://recluster:hunter2@db:5432/rc", "ns", "r")
    assert found["run_id"] == "r"
    assert "hunter2" not in found["store"] and "db:5432/rc" in found["store"]
