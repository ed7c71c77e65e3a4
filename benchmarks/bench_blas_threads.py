"""Do threads calling OpenBLAS at once keep going? (why THREAD_POOL_ENVIRONMENT has no
OPENBLAS_THREAD_TIMEOUT: recluster/__init__.py, docs/benchmarks.md "OpenBLAS").

Four threads of small sgemms (the drift check's rows × centroids, and a 300 × 300
square) in a fresh process with the given OPENBLAS_THREAD_TIMEOUT; every 5 s the
parent checks that the iteration counts grew. A stall (no thread progressing) is
reported with the counts and exits 3. Run it a few times per value: the deadlock is
a race, hit after a random number of calls. Measured in session 5 (2 cores): at 4,
3 of 7 runs of 24-60 s stalled; at the default, none of 3 runs of 60 s. Session 6
(load 7-10 from other work): at the default, 1 of 3 runs of 120 s stalled (after 82 s),
so the timeout only made the race likelier; with one BLAS thread (--blas-threads 1,
what the operator's store pool sets: controller/ports.py) none of 3 runs of 120 s, and
each caller made 6-10x as many calls. --fork adds a thread starting processes (as the
dev system's node agent does beside the operator): 1 caller, 3 runs of 60 s and 4
callers, 2 runs of 60 s, no stall.

    benchmarks/bench_blas_threads.py --timeout 4 --seconds 60
    benchmarks/bench_blas_threads.py --seconds 120                    # OpenBLAS's default
    benchmarks/bench_blas_threads.py --seconds 120 --blas-threads 1   # the operator's setting
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import os, subprocess, sys, threading, time
import recluster
import numpy as np
seconds = float(sys.argv[1])
callers = int(sys.argv[2])
forking = sys.argv[3] == "1"
counts = [0] * callers
def fork():
    while True:  # what the dev system's node agent does: podman, a process at a time
        subprocess.run(["true"], check=True)
def work(i):
    rng = np.random.default_rng(i)
    rows = rng.random((2000, 64), dtype=np.float32)
    centroids = rng.random((64, 9), dtype=np.float32)
    square = rng.random((300, 300), dtype=np.float32)
    while True:
        rows @ centroids
        square @ square
        counts[i] += 1
for i in range(callers):
    threading.Thread(target=work, args=(i,), daemon=True).start()
if forking:
    threading.Thread(target=fork, daemon=True).start()
start = time.time()
last = None
while time.time() - start < seconds:
    time.sleep(5)
    now = sum(counts)
    if now == last:
        print(f"STALLED after {time.time() - start:.0f} s, counts {counts}", flush=True)
        os._exit(3)
    last = now
print(f"ok for {seconds:.0f} s, counts {counts}", flush=True)
os._exit(0)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", default="", help="OPENBLAS_THREAD_TIMEOUT ('' = unset)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--callers", type=int, default=4, help="threads calling sgemm")
    parser.add_argument(
        "--fork", action="store_true", help="one more thread starting processes all the time"
    )
    parser.add_argument(
        "--blas-threads", default="", help="OPENBLAS_NUM_THREADS ('' = unset: one per core)"
    )
    args = parser.parse_args()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS")
    }
    if args.timeout:
        env["OPENBLAS_THREAD_TIMEOUT"] = args.timeout
    if args.blas_threads:
        env["OPENBLAS_NUM_THREADS"] = args.blas_threads
    child = [str(args.seconds), str(args.callers), "1" if args.fork else "0"]
    done = subprocess.run([sys.executable, "-c", CHILD, *child], env=env, check=False)
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
