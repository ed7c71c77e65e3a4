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
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse  # type: ignore[import-untyped]
from threadpoolctl import ThreadpoolController, threadpool_limits  # type: ignore[import-untyped]

from .preprocess import l2_normalize, sample_rows
from .quality import silhouette
from .result import ClusteringResult, cluster_means

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
"""Restarts on the sample are cheap, and they are what protects against the
merged-pair / split-cluster local optima that cost scikit-learn's single
k-means++ start several ARI points on many-cluster data."""
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
    """Greedy k-means++ seeding (2 + ln K candidates per step, as scikit-learn)."""
    n = points.shape[0]
    trials = 2 + int(math.log(n_clusters))
    sq_norms = np.einsum("ij,ij->i", points, points)
    centers = np.empty((n_clusters, points.shape[1]), dtype=np.float32)
    first = int(rng.integers(n))
    centers[0] = points[first]
    closest = np.maximum(sq_norms - 2 * points @ points[first] + sq_norms[first], 0)
    for c in range(1, n_clusters):
        total = float(closest.sum())
        if total <= 0:  # fewer distinct points than clusters: repeat points
            centers[c:] = points[rng.integers(n, size=n_clusters - c)]
            break
        cumulative = np.cumsum(closest, dtype=np.float64)
        candidates = np.searchsorted(cumulative, rng.random(trials) * cumulative[-1])
        candidates = np.minimum(candidates, n - 1)
        dist = np.maximum(
            sq_norms[None, :] - 2 * points[candidates] @ points.T + sq_norms[candidates, None], 0
        )
        updated = np.minimum(closest[None, :], dist)
        best = int(np.argmin(updated.sum(axis=1)))
        centers[c] = points[candidates[best]]
        closest = updated[best]
    return centers


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
    with _one_blas_thread(), ThreadPoolExecutor(workers) as pool:
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


def _one_blas_thread() -> AbstractContextManager[object]:
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


def fit_sample(
    sample: npt.NDArray[np.float32],
    n_clusters: int,
    *,
    max_iter: int | None = None,
    n_init: int | None = None,
    random_state: int = 42,
    workers: int = 1,
) -> SampleFit:
    """Best of ``n_init`` runs of Lloyd on the sample, each from its own k-means++ seeds.

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
    rng = np.random.default_rng(random_state)
    tol = tolerance(sample)
    iterations = max_iter or DEFAULT_SAMPLE_ITERATIONS
    best: SampleFit | None = None
    for _ in range(n_init or DEFAULT_N_INIT):
        init = kmeans_plus_plus(sample, n_clusters, rng)
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


def blas_threads(work: int) -> threadpool_limits:
    """One BLAS thread for products of less than ``SINGLE_THREAD_WORK`` (N·K·D), else all.

    A small product finishes before a second thread is even scheduled, and
    on a shared node the wake-up can wait for a busy core: measured under
    load, 1,000 × 384 k-means took 1.08 s with two BLAS threads and 0.05 s
    with one (6,000 rows: 1.40 s against 0.24 s). scikit-learn's KMeans
    limits BLAS to one thread for the same reason.
    """
    return threadpool_limits(limits=1 if work < SINGLE_THREAD_WORK else None, user_api="blas")


class _Reservoir:
    """A uniform sample of fixed size over a stream of blocks (bottom-k random keys)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.keys = np.empty(0, dtype=np.float64)
        self.rows: npt.NDArray[np.float32] | None = None
        self.seen = 0

    def offer(self, block: npt.NDArray[np.float32]) -> None:
        keys: npt.NDArray[np.float64] = self.rng.random(size=(block.shape[0],))
        self.seen += block.shape[0]
        if self.rows is None:
            self.rows = np.empty((0, block.shape[1]), dtype=np.float32)
        if self.keys.size >= self.size:
            keep = keys < self.keys.max()
            keys, block = keys[keep], block[keep]
        all_keys = np.concatenate([self.keys, keys])
        all_rows = np.concatenate([self.rows, block])
        if all_keys.size > self.size:
            top = np.argpartition(all_keys, self.size - 1)[: self.size]
            all_keys, all_rows = all_keys[top], all_rows[top]
        self.keys, self.rows = all_keys, np.ascontiguousarray(all_rows, dtype=np.float32)


def kmeans_streaming(
    blocks_factory: BlocksFactory,
    n_clusters: int,
    *,
    normalize: bool = False,
    passes: int = DEFAULT_FULL_PASSES,
    max_iter: int | None = None,
    n_init: int | None = None,
    random_state: int = 42,
    sample_size: int | None = None,
    quality_sample_rows: int = 10_000,
) -> ClusteringResult:
    """k-means over a collection too large for memory, one block at a time.

    Memory is bounded by one block, a sample (default 256 rows per cluster,
    at least 20k) and K × D accumulators; only the int32 labels grow with N.
    Pass 0 draws a uniform sample (reservoir) and fits centroids on it; the
    next ``passes - 1`` passes are mini-batch updates (each block moves its
    centroids towards its members, weighted by running counts); the last pass
    assigns every row with the centroids fixed and accumulates the member means
    in the original space, so the result obeys centroid = mean of members.
    ``blocks_factory`` must yield the same rows in the same order on every call.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    size = sample_size or max(MIN_SAMPLE_ROWS, SAMPLE_POINTS_PER_CLUSTER * n_clusters)
    reservoir = _Reservoir(size, random_state)
    for block in blocks_factory():
        reservoir.offer(l2_normalize(block)[0] if normalize else block)
    n_rows = reservoir.seen
    if reservoir.rows is None or n_rows < n_clusters:
        raise ValueError(f"fewer documents ({n_rows}) than n_clusters ({n_clusters})")
    sample = reservoir.rows
    timings["sample"] = (time.perf_counter() - started) * 1000
    mark = time.perf_counter()
    centroids = fit_sample(
        sample, n_clusters, max_iter=max_iter, n_init=n_init, random_state=random_state
    ).centroids
    sample_labels, _ = assign(sample, centroids)
    counts = np.bincount(sample_labels, minlength=n_clusters).astype(np.float64)
    timings["fit"] = (time.perf_counter() - mark) * 1000
    mark = time.perf_counter()
    for _ in range(max(1, passes) - 1):
        moving = centroids.astype(np.float64)
        for block in blocks_factory():
            work = l2_normalize(block)[0] if normalize else block
            labels, _ = assign(work, centroids)
            sums, sizes = cluster_means(work, labels, n_clusters)
            sizes_f = sizes.astype(np.float64)
            counts += sizes_f
            step = np.where(counts > 0, sizes_f / np.maximum(counts, 1), 0.0)
            moving += step[:, None] * (sums.astype(np.float64) - moving) * (sizes_f > 0)[:, None]
            centroids = moving.astype(np.float32)
    timings["minibatch"] = (time.perf_counter() - mark) * 1000
    mark = time.perf_counter()
    all_labels = np.empty(n_rows, dtype=np.int32)
    raw_sums = np.zeros((n_clusters, sample.shape[1]), dtype=np.float64)
    sizes_total = np.zeros(n_clusters, dtype=np.int64)
    offset = 0
    for block in blocks_factory():
        work = l2_normalize(block)[0] if normalize else block
        labels, _ = assign(work, centroids)
        all_labels[offset : offset + block.shape[0]] = labels
        offset += block.shape[0]
        means, sizes = cluster_means(block, labels, n_clusters)
        raw_sums += means.astype(np.float64) * sizes[:, None]
        sizes_total += sizes
    if offset != n_rows:
        raise ValueError(f"blocks_factory yielded {offset} rows, then {n_rows}: not repeatable")
    timings["assign"] = (time.perf_counter() - mark) * 1000
    mark = time.perf_counter()
    keep = sizes_total > 0
    remap = np.cumsum(keep, dtype=np.int32) - 1
    sample_labels, _ = assign(sample, centroids)
    quality = silhouette(
        sample, remap[sample_labels], max_rows=quality_sample_rows, random_state=random_state
    )
    timings["quality"] = (time.perf_counter() - mark) * 1000
    timings["total"] = (time.perf_counter() - started) * 1000
    centroids_raw = raw_sums[keep] / sizes_total[keep][:, None]
    return ClusteringResult(
        labels=remap[all_labels] if not keep.all() else all_labels,
        centroids=centroids_raw.astype(np.float32),
        sizes=sizes_total[keep],
        quality=quality,
        timings_ms=timings,
    )
