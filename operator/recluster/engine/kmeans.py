"""k-means: faiss Lloyd on a subsample, then full passes over every row.

Why this shape: with well-seeded centroids, Lloyd iterations on a few hundred
points per cluster already place the centroids where the full data would;
what the full data adds is the assignment of every row and exact member means.
So the expensive O(N·K·D) work is done once or twice (faiss's blocked sgemm
+ argmin), not for every iteration as scikit-learn's KMeans does, which is
where the 15-20× speed-up over it comes from. k-means++ seeding (greedy, as
scikit-learn does it) on the sample keeps the quality at least as good as
scikit-learn's default.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse  # type: ignore[import-untyped]
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

from .preprocess import sample_rows

SAMPLE_POINTS_PER_CLUSTER = 256
"""Sample size per cluster for the Lloyd iterations (faiss's own default)."""
MIN_SAMPLE_ROWS = 20_000
"""Small K still gets a sample large enough to place centroids precisely."""
DEFAULT_SAMPLE_ITERATIONS = 100
"""An upper bound: Lloyd on the sample stops when the centroids settle (TOLERANCE)."""
TOLERANCE = 1e-4
"""scikit-learn's default tol, used the same way (see `tolerance`)."""
COARSE_TOLERANCE_FACTOR = 100.0
COARSE_MAX_ITER = 20
_LLOYD_BLOCK = 8_192
SINGLE_THREAD_WORK = 100_000_000
"""N·K·D below which k-means runs its products on one BLAS thread (see `blas_threads`)."""
PARALLEL_BLOCK = 1_024
"""Rows per sgemm of a parallel pass: the block (1.5-6 MB at D=384-1,536) and its
scores are read again by the kernel right after the product. Measured at
200,000 × 768, K=40: 1,024 rows 55-76 % of peak, 256 rows 41-67 %, 4,096 rows 50-66 %."""
TASK_WORK = 1 << 26
"""Multiply-adds (rows·K·D) a parallel task does at least: ~0.5 ms on a core, so
that handing out a task (a future, a K × D float64 accumulator) costs little beside it."""
DEFAULT_N_INIT = 3
"""The fewest restarts on the sample: they are what protects against the
merged-pair / split-cluster local optima that cost scikit-learn's single
k-means++ start several ARI points on many-cluster data."""
MAX_N_INIT = 10
"""The most restarts (scikit-learn's KMeans ran 10 before its n_init='auto')."""
RESTART_WORK = 1 << 28
"""Multiply-adds (rows·K·D) of a pass over the sample below which a fit gets more than
`DEFAULT_N_INIT` restarts (see `restarts_for`)."""
DEFAULT_FULL_PASSES = 2

BlocksFactory = Callable[[], Iterable[npt.NDArray[np.float32]]]
"""Returns a fresh iterator over the collection's rows, as float32 blocks, per call."""


@dataclass(frozen=True)
class SampleFit:
    """Centroids fitted on a sample, with the sample's own inertia."""

    centroids: npt.NDArray[np.float32]
    inertia: float


def sample_size_for(n_rows: int, n_clusters: int) -> int:
    return min(n_rows, max(MIN_SAMPLE_ROWS, SAMPLE_POINTS_PER_CLUSTER * n_clusters))


def kmeans_plus_plus(
    points: npt.NDArray[np.float32], n_clusters: int, rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """Greedy k-means++ seeding (2 + ln K candidates per step, as scikit-learn): one restart."""
    return kmeans_plus_plus_restarts(points, n_clusters, rng, 1)[0]


def kmeans_plus_plus_restarts(
    points: npt.NDArray[np.float32],
    n_clusters: int,
    rng: np.random.Generator,
    restarts: int,
) -> list[npt.NDArray[np.float32]]:
    """Greedy k-means++ seeds of ``restarts`` restarts, computed together.

    The seeds are those of the restarts run one after the other on ``rng``
    (up to the float rounding of a product of another shape): a restart's
    draws are fixed in number (a first row, then ``trials`` uniforms a step),
    so they are taken up front in that order, and a fit keeps the result it
    had before the restarts were batched. What the restarts share is each
    step's product of the candidates with the sample: that product is
    memory-bound (5 candidates against 20,000 × 768 read 61 MB for 0.15
    GFLOP), so one product for every restart's candidates costs about what
    one restart's did: measured at 20,000 × 768, K=40 (the sample of a
    200,000-row fit), 0.23 s for three restarts against 0.54 s.
    """
    n, d = points.shape
    trials = 2 + int(math.log(n_clusters))
    firsts = np.empty(restarts, dtype=np.intp)
    uniforms = np.empty((restarts, max(0, n_clusters - 1), trials))
    for r in range(restarts):
        firsts[r] = int(rng.integers(n))
        uniforms[r] = rng.random((max(0, n_clusters - 1), trials))
    sq_norms = np.einsum("ij,ij->i", points, points)
    centers = np.empty((restarts, n_clusters, d), dtype=np.float32)
    centers[:, 0] = points[firsts]
    closest = np.maximum(
        sq_norms[None, :] - 2 * points[firsts] @ points.T + sq_norms[firsts, None], 0
    )
    drawing = np.ones(restarts, dtype=bool)
    for c in range(1, n_clusters):
        candidates = np.zeros((restarts, trials), dtype=np.intp)
        for r in map(int, np.flatnonzero(drawing)):
            total = float(closest[r].sum())
            if total <= 0:  # fewer distinct points than clusters: repeat points
                centers[r, c:] = points[rng.integers(n, size=n_clusters - c)]
                drawing[r] = False
                continue
            cumulative = np.cumsum(closest[r], dtype=np.float64)
            drawn = np.searchsorted(cumulative, uniforms[r, c - 1] * cumulative[-1])
            candidates[r] = np.minimum(drawn, n - 1)
        active = np.flatnonzero(drawing)
        if active.size == 0:
            break
        flat = candidates[active].reshape(-1)
        dist = np.maximum(
            sq_norms[None, :] - 2 * points[flat] @ points.T + sq_norms[flat, None], 0
        ).reshape(active.size, trials, n)
        updated = np.minimum(closest[active, None, :], dist)
        best = np.argmin(updated.sum(axis=2), axis=1)
        centers[active, c] = points[candidates[active, best]]
        closest[active] = updated[np.arange(active.size), best]
    return list(centers)


def tolerance(points: npt.NDArray[np.float32]) -> float:
    """scikit-learn's stopping rule: squared centre shifts summed ≤ 1e-4 × mean feature variance."""
    return TOLERANCE * float(np.mean(np.var(points, axis=0, dtype=np.float64)))


def _nearest(
    block: npt.NDArray[np.float32],
    centroids: npt.NDArray[np.float32],
    c_sq: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """Nearest centroid of each row, and |c|² - 2x·c for it (the squared distance minus |x|²).

    One sgemm (rows × K, in this orientation: measured 5× faster than K × rows)
    and an argmin.
    """
    scores = block @ centroids.T
    scores *= -2
    scores += c_sq
    nearest = np.argmin(scores, axis=1)
    return nearest, np.take_along_axis(scores, nearest[:, None], axis=1)[:, 0]


def lloyd_pass(
    matrix: npt.NDArray[np.float32], centroids: npt.NDArray[np.float32], workers: int = 1
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int32], float]:
    """One Lloyd iteration over ``matrix``: member sums, counts, labels under ``centroids``.

    Also the sum of the members' squared distances minus their squared norms
    (add ``squared_norm(matrix)`` for the inertia). ``workers`` > 1 runs
    `_parallel_pass` (see there); the result is the same up to float
    rounding of the sums. On one thread, block by block: the distances are
    one sgemm (rows × K) and an argmin; the members' sums a sparse one-hot
    product (O(rows·D) additions: measured 4× faster than the dense one-hot
    sgemm at K=16, whose threads wake up slowly after the argmin).
    """
    k, d = centroids.shape
    c_sq = np.einsum("ij,ij->i", centroids, centroids)
    if workers > 1:
        labels = np.empty(matrix.shape[0], dtype=np.int32)
        sums, partial = _parallel_pass(matrix, centroids, c_sq, labels, None, workers)
        return sums, np.bincount(labels, minlength=k).astype(np.int64), labels, partial
    sums = np.zeros((k, d), dtype=np.float64)
    labels = np.empty(matrix.shape[0], dtype=np.int32)
    partial = 0.0
    for start in range(0, matrix.shape[0], _LLOYD_BLOCK):
        block = matrix[start : start + _LLOYD_BLOCK]
        nearest, best = _nearest(block, centroids, c_sq)
        labels[start : start + block.shape[0]] = nearest
        partial += float(best.sum())
        # K × rows, one entry per column: built as CSC from the labels as they
        # are (CSR would sort them first; measured 2× faster for the product).
        onehot = scipy.sparse.csc_matrix(
            (
                np.ones(block.shape[0], dtype=np.float32),
                nearest,
                np.arange(block.shape[0] + 1),
            ),
            shape=(k, block.shape[0]),
        )
        sums += onehot @ block
    return sums, np.bincount(labels, minlength=k).astype(np.int64), labels, partial


def _parallel_pass(
    matrix: npt.NDArray[np.float32],
    centroids: npt.NDArray[np.float32],
    c_sq: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int32],
    distances: npt.NDArray[np.float32] | None,
    workers: int,
) -> tuple[npt.NDArray[np.float64], float]:
    """A pass over ``matrix`` on ``workers`` threads, each running BLAS on one thread.

    With ``distances`` None, a Lloyd pass: labels, and the member sums and
    Σ(|c|² - 2x·c) returned; else an assignment: labels and squared
    distances, no sums. Why threads: the sgemm releases the GIL and so do
    the numba kernels that follow it (`lloyd_kernels`), so each core runs
    product, argmin and sums of its own rows, where the one-thread pass runs
    a two-thread sgemm and then a serial argmin and sparse product (measured
    at 200,000 × 768, K=40 under load: 55-76 % of the sgemm peak against
    29-35 %). scikit-learn's KMeans is laid out the same way.

    Invariants: tasks are fixed ranges of rows (`TASK_WORK`), whatever the
    number of workers; each writes only its rows' labels and distances and
    fills its own K × D float64 accumulator, added to the total in task
    order. So the result does not depend on the thread count or on which
    thread ran what: the same input gives the same bits.
    """
    from . import lloyd_kernels  # numba: ~0.5 s to import, paid only on this path

    n = matrix.shape[0]
    k, d = centroids.shape
    task_rows = max(PARALLEL_BLOCK, -(-TASK_WORK // (k * d)) // PARALLEL_BLOCK * PARALLEL_BLOCK)
    c_sq = np.ascontiguousarray(c_sq, dtype=np.float32)
    transposed = np.ascontiguousarray(centroids, dtype=np.float32).T

    def task(first: int) -> tuple[npt.NDArray[np.float64] | None, float]:
        sums = np.zeros((k, d), dtype=np.float64) if distances is None else None
        partial = 0.0
        for start in range(first, min(n, first + task_rows), PARALLEL_BLOCK):
            stop = min(n, start + PARALLEL_BLOCK, first + task_rows)
            block = np.ascontiguousarray(matrix[start:stop], dtype=np.float32)
            scores = block @ transposed  # rows × K, C-contiguous; the GIL is released
            if sums is not None:
                partial += lloyd_kernels.nearest_and_sum_into(
                    scores, c_sq, block, labels[start:stop], sums
                )
            else:
                assert distances is not None
                lloyd_kernels.nearest_distance_into(
                    scores, c_sq, block, labels[start:stop], distances[start:stop]
                )
        return sums, partial

    total = np.zeros((k, d), dtype=np.float64)
    partial_total = 0.0
    with one_blas_thread(), ThreadPoolExecutor(workers) as pool:
        for sums, partial in pool.map(task, range(0, n, task_rows)):  # results in task order
            if sums is not None:
                total += sums
            partial_total += partial
    return total, partial_total


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """threadpoolctl's view of the loaded BLAS libraries, made once.

    Making it costs ~6 ms (it scans the loaded libraries); a limit through it ~50 µs.
    """
    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager[object]:
    """BLAS on one thread, for the whole process, while a parallel pass runs its own threads."""
    return _blas_controller().limit(limits=1, user_api="blas")  # type: ignore[no-any-return]


def parallel_workers(work: int) -> int:
    """Threads for the passes of a k-means of ``work`` = N·K·D multiply-adds.

    One below `SINGLE_THREAD_WORK` (the numpy pass: a second thread would
    cost more to wake than it saves, see `blas_threads`), else one per core
    this process may run on: the CPUs of its affinity mask, at most the
    whole cores of its cgroup's CPU quota (`cores_of_cpu_max`).
    """
    if work < SINGLE_THREAD_WORK:
        return 1
    cpus = len(os.sched_getaffinity(0))
    try:
        with open(CGROUP_CPU_MAX) as limit:
            quota = cores_of_cpu_max(limit.read())
    except OSError:
        quota = None
    return max(1, min(cpus, quota) if quota else cpus)


CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"
"""cgroup v2's CPU quota of this container: "<quota µs> <period µs>", or "max <period>"."""


def cores_of_cpu_max(text: str) -> int | None:
    """Whole cores a cgroup v2 ``cpu.max`` allows (rounded up), None when unlimited or unreadable.

    Pure (the file's text in, no I/O); `parallel_workers` reads the file. A
    Job with ``limits.cpu: 2`` on a 64-core node has "200000 100000": 2
    threads, not 64 sharing two cores' worth of quota.
    """
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, -(-quota // period))


def squared_norm(matrix: npt.NDArray[np.float32]) -> float:
    """Sum of the rows' squared norms (float64, one BLAS dot per block)."""
    flat = matrix.reshape(-1)
    total = 0.0
    for start in range(0, flat.size, _LLOYD_BLOCK * 256):
        chunk = flat[start : start + _LLOYD_BLOCK * 256]
        total += float(np.dot(chunk, chunk))
    return total


def lloyd(
    points: npt.NDArray[np.float32],
    centroids: npt.NDArray[np.float32],
    *,
    max_iter: int,
    tol: float,
    workers: int = 1,
) -> SampleFit:
    """Lloyd iterations from ``centroids`` until they move less than ``tol`` (or ``max_iter``).

    An empty cluster keeps its centroid. The inertia is that of the last
    assignment, made with the centroids before their last move (as
    scikit-learn reports it).
    """
    current = np.ascontiguousarray(centroids, dtype=np.float32)
    inertia = np.inf
    norms = squared_norm(points)
    for _ in range(max_iter):
        sums, counts, _, partial = lloyd_pass(points, current, workers)
        inertia = norms + partial
        moved = np.where(
            counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], current
        ).astype(np.float32)
        shift = float(((moved - current) ** 2).sum())
        current = moved
        if shift <= tol:
            break
    return SampleFit(current, float(inertia))


def restarts_for(sample_rows: int, n_clusters: int, dims: int) -> int:
    """k-means++ restarts of a sample fit when the config names none: more where they are cheap.

    Pure. A restart lands in a merged-pair / split-cluster optimum often
    enough that three can all miss: on 30 blobs (30,000 × 16, the engine
    tests' data) 6 of 30 seeds ended at ARI 0.96 with 3 restarts, 3 with 5,
    none with 10. On a small sample ten restarts cost a few milliseconds
    each, so a fit gets `RESTART_WORK` / (a pass's multiply-adds), between
    `DEFAULT_N_INIT` and `MAX_N_INIT`: 10 for those blobs, 7 for 5,732 ×
    384, K=16, and 3 from a 20,000-row sample at K=20, D=384 up (measured:
    6 restarts there cost 0.3-0.5 s more at 100,000 and 1M rows, for no
    better inertia).
    """
    work = max(1, sample_rows * n_clusters * dims)
    return max(DEFAULT_N_INIT, min(MAX_N_INIT, RESTART_WORK // work))


def fit_sample(
    sample: npt.NDArray[np.float32],
    n_clusters: int,
    *,
    max_iter: int | None = None,
    n_init: int | None = None,
    random_state: int = 42,
    workers: int = 1,
) -> SampleFit:
    """Best of ``n_init`` runs of Lloyd on the sample (default `restarts_for`), each from its own
    k-means++ seeds (`kmeans_plus_plus_restarts`: those of the runs one after the other).

    The runs stop at a coarse tolerance (``COARSE_TOLERANCE_FACTOR`` × the
    final one, or ``COARSE_MAX_ITER`` iterations: by then the run's optimum,
    good or bad, is decided); only the
    best one is carried on to the final tolerance, which is where most of the
    iterations go.

    Seeds are drawn from the whole sample: seeding from a subset of it (256
    rows a cluster, to save the greedy k-means++ passes) landed in worse
    optima on imbalanced topics (the drift tests' baseline: inertia 4,032
    against 3,982), and 64 rows a cluster cost 4 ARI points on 30 blobs.
    """
    restarts = n_init or restarts_for(sample.shape[0], n_clusters, sample.shape[1])
    rng = np.random.default_rng(random_state)
    tol = tolerance(sample)
    iterations = max_iter or DEFAULT_SAMPLE_ITERATIONS
    best: SampleFit | None = None
    for init in kmeans_plus_plus_restarts(sample, n_clusters, rng, restarts):
        fit = lloyd(
            sample,
            init,
            max_iter=min(iterations, COARSE_MAX_ITER),
            tol=COARSE_TOLERANCE_FACTOR * tol,
            workers=workers,
        )
        if best is None or fit.inertia < best.inertia:
            best = fit
    assert best is not None
    return lloyd(sample, best.centroids, max_iter=iterations, tol=tol, workers=workers)


def assign(
    matrix: npt.NDArray[np.float32], centroids: npt.NDArray[np.float32], workers: int = 1
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """Nearest centroid of every row and the squared distance to it (sgemm blocks).

    numpy's sgemm and an argmin: measured 2-4× faster than faiss's flat
    search for the few centroids k-means has. ``workers`` > 1: `_parallel_pass`.
    """
    c_sq = np.einsum("ij,ij->i", centroids, centroids)
    labels = np.empty(matrix.shape[0], dtype=np.int32)
    distances = np.empty(matrix.shape[0], dtype=np.float32)
    if workers > 1:
        _parallel_pass(matrix, centroids, c_sq, labels, distances, workers)
        return labels, distances
    for start in range(0, matrix.shape[0], _LLOYD_BLOCK):
        block = matrix[start : start + _LLOYD_BLOCK]
        nearest, best = _nearest(block, centroids, c_sq)
        labels[start : start + block.shape[0]] = nearest
        distances[start : start + block.shape[0]] = np.maximum(
            best + np.einsum("ij,ij->i", block, block), 0
        )
    return labels, distances


def kmeans(
    matrix: npt.NDArray[np.float32],
    n_clusters: int,
    *,
    max_iter: int | None = None,
    n_init: int | None = None,
    random_state: int = 42,
    full_passes: int = DEFAULT_FULL_PASSES,
) -> npt.NDArray[np.int32]:
    """Labels of k-means on ``matrix``: sample fit, then ``full_passes`` passes over every row.

    Each full pass but the last is a Lloyd iteration over all rows; the last
    assigns every row. When the sample is the whole matrix the fit already
    converged on every row, and only the assignment remains.
    """
    index = sample_rows(matrix.shape[0], sample_size_for(matrix.shape[0], n_clusters), random_state)
    whole = index.size == matrix.shape[0]
    sample = matrix if whole else matrix[index]
    sample_work = sample.shape[0] * n_clusters * sample.shape[1]
    with blas_threads(sample_work):
        centroids = fit_sample(
            sample,
            n_clusters,
            max_iter=max_iter,
            n_init=n_init,
            random_state=random_state,
            workers=parallel_workers(sample_work),
        ).centroids
    work = matrix.shape[0] * n_clusters * matrix.shape[1]
    workers = parallel_workers(work)
    with blas_threads(work):
        if not whole:
            for _ in range(max(1, full_passes) - 1):
                centroids = lloyd(matrix, centroids, max_iter=1, tol=0.0, workers=workers).centroids
        labels, _ = assign(matrix, centroids, workers)
    return labels


def blas_threads(work: int) -> AbstractContextManager[object]:
    """One BLAS thread for products of less than ``SINGLE_THREAD_WORK`` (N·K·D), else all.

    A small product finishes before a second thread is even scheduled, and
    on a shared node the wake-up can wait for a busy core: measured under
    load, 1,000 × 384 k-means took 1.08 s with two BLAS threads and 0.05 s
    with one (6,000 rows: 1.40 s against 0.24 s). scikit-learn's KMeans
    limits BLAS to one thread for the same reason.

    Through the cached controller (~10 µs a call, against ~2 ms for a fresh
    ``threadpool_limits``, which scans the loaded libraries): an iterative
    solver switches once or twice per product.
    """
    limit = 1 if work < SINGLE_THREAD_WORK else None
    return _blas_controller().limit(limits=limit, user_api="blas")  # type: ignore[no-any-return]
