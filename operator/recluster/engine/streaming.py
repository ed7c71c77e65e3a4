"""k-means over a collection too large for memory: one block at a time, bounded memory.

The sample fit and the passes are `kmeans`'s own (`fit_sample`, `assign`);
this module only streams: a reservoir sample on the first pass, mini-batch
passes, and a last pass that assigns and takes the member means.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from .kmeans import (
    DEFAULT_FULL_PASSES,
    MIN_SAMPLE_ROWS,
    SAMPLE_POINTS_PER_CLUSTER,
    BlocksFactory,
    assign,
    fit_sample,
)
from .preprocess import l2_normalize
from .quality import silhouette
from .result import ClusteringResult, cluster_means


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
