"""Importing recluster stops OpenBLAS workers spinning after each call (THREAD_POOL_ENVIRONMENT)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, os, time
import recluster
import numpy as np
from threadpoolctl import threadpool_limits

a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
burnt = 0.0
with threadpool_limits(limits=2, user_api="blas"):
    for _ in range(5):
        a @ a
        before = time.process_time()
        time.sleep(0.2)
        burnt += time.process_time() - before
print(json.dumps({"timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"), "burnt": burnt}))
"""


def probe(**env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs for two BLAS threads")
def test_after_importing_recluster_no_blas_thread_burns_cpu_between_calls() -> None:
    # Without the setting, OpenBLAS's second thread spins ~0.1 s after each call
    # (measured: 8-100 ms of CPU per 0.2 s sleep, more the quieter the machine).
    result = probe()
    assert result["timeout"] == "4"
    assert isinstance(result["burnt"], float)
    assert result["burnt"] < 0.005, f"{result['burnt']:.3f} s of CPU while sleeping"


def test_a_users_own_openblas_setting_wins() -> None:
    assert probe(OPENBLAS_THREAD_TIMEOUT="12")["timeout"] == "12"
