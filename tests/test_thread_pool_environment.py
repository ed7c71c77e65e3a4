"""Importing recluster leaves thread pools that concurrent callers cannot deadlock
(THREAD_POOL_ENVIRONMENT)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import recluster

CONCURRENT_SGEMMS = """
import json, os, sys, threading, time
import recluster
import numpy as np

counts = [0, 0, 0, 0]
stop = threading.Event()

def work(i):
    rng = np.random.default_rng(i)
    rows = rng.random((2000, 64), dtype=np.float32)
    centroids = rng.random((64, 9), dtype=np.float32)
    square = rng.random((300, 300), dtype=np.float32)
    while not stop.is_set():
        rows @ centroids  # the drift check's product
        square @ square
        counts[i] += 1

for i in range(4):
    threading.Thread(target=work, args=(i,), daemon=True).start()
stalled = None
last = list(counts)
for window in range(int(sys.argv[1])):
    time.sleep(2)
    now = list(counts)
    if any(a == b for a, b in zip(now, last)):
        stalled = window
        break
    last = now
stop.set()
print(json.dumps({"stalled_window": stalled, "counts": counts,
                  "timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT")}))
os._exit(0)
"""


def run_probe(windows: int, **env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    done = subprocess.run(
        [sys.executable, "-c", CONCURRENT_SGEMMS, str(windows)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_importing_recluster_sets_only_the_openmp_wait_policy() -> None:
    """No OPENBLAS_THREAD_TIMEOUT: with it at 4 (session 4), threads calling OpenBLAS at
    once deadlocked after a random number of calls (benchmarks/bench_blas_threads.py: 3
    of 7 runs of 24-60 s stalled, none of 3 at the default); a test of that race would
    pass by luck as often as not, so the setting itself is what is checked."""
    assert recluster.THREAD_POOL_ENVIRONMENT == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_a_users_own_openblas_setting_is_left_alone() -> None:
    assert run_probe(1, OPENBLAS_THREAD_TIMEOUT="12")["timeout"] == "12"
