"""Recluster: a Kubernetes operator that keeps embedding collections clustered.

Importing the package sets `THREAD_POOL_ENVIRONMENT` into the process's
environment (each name only where it is unset, so a user's own setting wins).
It must happen here, before anything imports numpy, faiss, scikit-learn or
numba: their thread pools read it once, when they load. Every entry point
(`recluster run-job`, the operator, the gateway, Ray workers) imports this
package first.
"""

import os

__version__ = "0.1.0"

THREAD_POOL_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}
"""Idle threads of the OpenMP thread pools sleep instead of spinning.

faiss, scikit-learn and numba each bring an OpenMP runtime; with the default
(active) wait policy the threads of one spin after each parallel region and starve
the next library on a 2-core Job: a float32 matmul right after a faiss search ran
at 27 GFLOP/s, 56 with PASSIVE.

OpenBLAS's own pool is deliberately left at its default (its workers spin 2^28
cycles, ~0.1 s, after each call). Session 4 set OPENBLAS_THREAD_TIMEOUT=4 here
(k-means passes after a threaded sgemm ran at 56 % of the sgemm peak instead of
40 %), and it deadlocked: with the workers going to sleep after every call, four
threads calling small sgemms at once stalled for good in 3 of 7 runs of 24-60 s
(benchmarks/bench_blas_threads.py), a caller spinning in OpenBLAS's exec_blas on a
worker that never woke; at the default, none of 3 runs of 60 s stalled. The operator
hit it in a drift check (test_dev, one `make test` run in five: gdb showed the store
thread in exec_blas after 600 s of CPU). Removing the timeout did not end it: session 6
saw the same hang at OpenBLAS's default (and bench_blas_threads.py stalled in 1 of 3
runs of 120 s under load), so the operator now runs BLAS on one thread while its store
threads exist (controller/ports.py, ThreadedStore's rule). Jobs keep OpenBLAS's threads:
a Job calls BLAS from one thread at a time, or from threads limited to one BLAS thread
each (engine/kmeans.py)."""

for _name, _value in THREAD_POOL_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)
