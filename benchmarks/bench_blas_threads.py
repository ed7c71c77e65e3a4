"""Do threads calling OpenBLAS at once keep going? (why THREAD_POOL_ENVIRONMENT has no
OPENBLAS_THREAD_TIMEOUT: recluster/__init__.py, docs/benchmarks.md "OpenBLAS").

Four threads of small sgemms (the drift check's rows × centroids, and a 300 × 300
square) in a fresh process with the given OPENBLAS_THREAD_TIMEOUT; every 5 s the
parent checks that the iteration counts grew. A stall (no thread progressing) is
reported with the counts and exits 3. Run it a few times per value: the deadlock is
a race, hit after a random number of calls. Measured in session 5 (2 cores): at 4,
3 of 7 runs of 24-60 s stalled; at the default, none of 3 runs of 60 s.

    benchmarks/bench_blas_threads.py --timeout 4 --seconds 60
    benchmarks/bench_blas_threads.py --timeout 28 --seconds 60   # OpenBLAS's default
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import os, sys, threading, time
import recluster
import numpy as np
seconds = float(sys.argv[1])
counts = [0] * 4
def work(i):
    rng = np.random.default_rng(i)
    rows = rng.random((2000, 64), dtype=np.float32)
    centroids = rng.random((64, 9), dtype=np.float32)
    square = rng.random((300, 300), dtype=np.float32)
    while True:
        rows @ centroids
        square @ square
        counts[i] += 1
for i in range(4):
    threading.Thread(target=work, args=(i,), daemon=True).start()
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
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if args.timeout:
        env["OPENBLAS_THREAD_TIMEOUT"] = args.timeout
    done = subprocess.run([sys.executable, "-c", CHILD, str(args.seconds)], env=env, check=False)
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
