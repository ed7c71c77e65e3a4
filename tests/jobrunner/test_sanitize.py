"""No secret of a Job's environment reaches its termination message or its log (issue 12, item 2).

The review's reproduction: a Secret's value fed (through job_template.env
valueFrom) to a variable the runner parses; the ValueError escaped the
runner's handler, and the log line quoting the value became the trigger's
last_execution_error, its history and a Failed Event.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from recluster.cli import main
from recluster.jobrunner.sanitize import Scrubber, unexpected
from recluster.store.factory import open_store

SECRET = "hunter2-d5f1c0ffee"
OTHER = "s3cr3t-sesame-42"
CONFIG = json.dumps({"collection_ids": ["col"], "config": {"algorithm": "kmeans", "n_clusters": 2}})


def test_secret_values_and_uri_credentials_are_scrubbed() -> None:
    scrub = Scrubber({"TOKEN": SECRET, "PATH": "/usr/bin:/bin", "SHORT": "abc",
                      "RECLUSTER_NAMESPACE": "team-alpha"})  # fmt: skip
    text = f"token {SECRET} at postgresql://u:{OTHER}@db/x?password={OTHER} in team-alpha"
    assert scrub(text) == "token *** at postgresql://u:***@db/x?password=*** in team-alpha"
    assert scrub("PATH is /usr/bin:/bin") == "PATH is /usr/bin:/bin", "public values stay"


def test_a_store_uri_names_the_store_unless_it_carries_credentials() -> None:
    public = Scrubber({"RECLUSTER_STORE_URI": "s3://bucket/recluster"})
    assert public("store s3://bucket/recluster denied") == "store s3://bucket/recluster denied"
    dsn = f"host=db user=u password={OTHER}"
    secret = Scrubber({"RECLUSTER_STORE_URI": dsn})
    assert secret(f"store {dsn} unavailable") == "store *** unavailable"


def run_job(tmp_path: Path, **env: str) -> tuple[int, str, str]:
    """`recluster run-job` as a Job runs it; returns (exit code, output, termination message)."""
    termination = tmp_path / "termination-log"
    done = subprocess.run(
        [sys.executable, "-m", "recluster", "run-job"],
        env={**os.environ, "RECLUSTER_EXECUTION_CONFIG": CONFIG, "RECLUSTER_RUN_ID": "r1",
             "RECLUSTER_NAMESPACE": "team-a", "RECLUSTER_TERMINATION_LOG": str(termination),
             **env},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr, termination.read_text()


def test_the_reviews_reproduction_a_secret_fed_to_a_parsed_variable(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    code, output, message = run_job(
        tmp_path, RECLUSTER_STORE_URI=str(store), RECLUSTER_MEMORY_LIMIT=SECRET
    )
    assert code == 1
    assert json.loads(message)["error"] == "RECLUSTER_MEMORY_LIMIT must be a whole number of bytes"
    assert SECRET not in output and SECRET not in message


def test_a_dsn_with_passwords_never_shows(tmp_path: Path) -> None:
    dsn = f"postgresql://user:{SECRET}@127.0.0.1:9/db?password={OTHER}&connect_timeout=2"
    code, output, message = run_job(tmp_path, RECLUSTER_STORE_URI=dsn)
    assert code == 1
    assert "store unreachable" in json.loads(message)["error"]
    for planted in (SECRET, OTHER):
        assert planted not in output and planted not in message


def test_an_unexpected_exception_reports_its_type_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_args: object, **_kwargs: object) -> dict[str, object]:
        raise RuntimeError(f"could not parse {SECRET}")

    monkeypatch.setattr("recluster.jobrunner.runner.run_job", explode)
    termination = tmp_path / "termination-log"
    env = {"RECLUSTER_EXECUTION_CONFIG": CONFIG, "RECLUSTER_RUN_ID": "r1",
           "RECLUSTER_STORE_URI": str(tmp_path), "RECLUSTER_TERMINATION_LOG": str(termination),
           "SOME_SECRET": SECRET}  # fmt: skip
    monkeypatch.setattr(os, "environ", {**os.environ, **env})
    result = CliRunner().invoke(main, ["run-job"], env=env)
    assert result.exit_code == 1
    error = json.loads(termination.read_text())["error"]
    assert error == unexpected(RuntimeError()) and SECRET not in error
    assert "RuntimeError: could not parse ***" in result.output
    assert SECRET not in result.output


def test_words_and_numbers_of_the_environment_never_break_the_runners_json(
    tmp_path: Path,
) -> None:
    """Rule 4: `clusters` or `status` in some variable must not turn num_clusters into num_***."""
    store = tmp_path / "store"
    with open_store(str(store)) as opened:
        rows = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
        rows[30:] += 12  # two clusters
        opened.append("team-a", "col", [f"d{i}" for i in range(60)], rows)
    config = json.dumps({"collection_ids": ["col"],
                         "config": {"algorithm": "kmeans", "n_clusters": 2}})  # fmt: skip
    code, output, message = run_job(
        tmp_path, RECLUSTER_STORE_URI=str(store), RECLUSTER_EXECUTION_CONFIG=config,
        RECLUSTER_MAP_LAYOUT="pca", TEAM_WORD="clusters", STAGE="status", TOKEN=SECRET,
    )  # fmt: skip
    assert code == 0, output
    summary = json.loads(message)
    assert summary["status"] == "succeeded" and summary["num_clusters"] == 2
    printed = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    assert printed == summary
    assert Scrubber({"TOKEN": SECRET, "WORD": "clusters"}).data(
        {"num_clusters": 2, "error": f"token {SECRET} and clusters", "ids": [SECRET, 123456]}
    ) == {"num_clusters": 2, "error": "token *** and ***", "ids": ["***", 123456]}
