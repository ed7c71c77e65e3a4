"""Algorithms with scikit-learn's semantics: agglomerative and mean_shift
(spectral, optics and gaussian_mixture have modules of their own). They are
quadratic in time or memory, so the engine caps the rows they accept (see
``algorithms.MAX_ROWS``).

Invariants:

- Same result as scikit-learn's estimator with the same parameters (its
  defaults otherwise), up to label numbering, or a documented, measured
  difference (mean_shift's seeds). The tests pin each against scikit-learn.
- Never slower than that estimator in a fresh Job (issue 13;
  benchmarks/bench_quality.py, section "others"). Importing
  ``sklearn.cluster`` costs 1.5-3 s in a fresh process, more than these
  algorithms take on thousands of rows; so agglomerative, whose tree
  scikit-learn itself builds with SciPy, calls SciPy directly, and
  mean_shift is computed here (matrix products, `distances`): neither
  imports scikit-learn.

No ``n_jobs=-1``: joblib's process pool costs seconds to start in a fresh
Job, more than these algorithms take on the sizes they accept.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .distances import (
    block_rows,
    centred_rows,
    condensed_distances,
    row_bytes,
    squared_distances,
    squared_norms,
)
from .preprocess import sample_rows

BANDWIDTH_SAMPLE_ROWS = 2_000
"""Rows (a seeded sample) on which mean shift estimates a missing bandwidth."""
BANDWIDTH_QUANTILE = 0.3
"""scikit-learn's estimate_bandwidth default: the distance to the nearest 30 % of rows."""
MEAN_SHIFT_SEED_ROWS = 1_000
"""Mean shift starts from at most this many rows (a seeded sample), each climbing to its mode."""
MEAN_SHIFT_MAX_ITER = 300
"""scikit-learn's MeanShift default: the steps after which a seed stops anyway."""
MEAN_SHIFT_TOLERANCE = 1e-3
"""scikit-learn's: a seed has converged after a step of at most this fraction of the bandwidth."""
DEFAULT_AGGLOMERATIVE_CLUSTERS = 2
"""scikit-learn's AgglomerativeClustering default."""


def agglomerative(
    matrix: npt.NDArray[np.float32],
    *,
    n_clusters: int | None = None,
    linkage: str | None = None,
    distance_threshold: float | None = None,
) -> npt.NDArray[np.int32]:
    """Hierarchical clustering, cut at ``n_clusters`` or at ``distance_threshold``.

    scikit-learn's AgglomerativeClustering (no connectivity) builds its tree
    with ``scipy.cluster.hierarchy`` (ward: ``ward``; complete and average:
    ``linkage``; single: its own minimum spanning tree, the same tree up to
    ties) and then cuts it; this does both with SciPy alone (`cut_tree`),
    which saves importing scikit-learn (see the module's invariants). SciPy
    gets the pairwise distances rather than the rows: its own ``pdist`` was
    most of the time, BLAS computes the same distances several times faster
    (`condensed_distances`, with pdist's exact zeros and lattice ties).
    """
    from scipy.cluster.hierarchy import linkage as build_tree  # type: ignore[import-untyped]

    tree = build_tree(condensed_distances(matrix), method=linkage or "ward")
    heights = tree[:, 2]
    if distance_threshold is not None:
        clusters = int(np.count_nonzero(heights >= distance_threshold)) + 1
    else:
        clusters = n_clusters or DEFAULT_AGGLOMERATIVE_CLUSTERS
    return cut_tree(tree[:, :2].astype(np.int64), matrix.shape[0], clusters)


def cut_tree(
    children: npt.NDArray[np.int64], n_leaves: int, clusters: int
) -> npt.NDArray[np.int32]:
    """Flat labels of a merge tree, undoing its last ``clusters - 1`` merges.

    Labels are 0..clusters-1, numbered in order of their first row.

    ``children`` is SciPy's linkage layout: merge ``j`` joins nodes
    ``children[j]`` into node ``n_leaves + j``. Keeping the first
    ``n_leaves - clusters`` merges is scikit-learn's ``_hc_cut`` (which
    splits the latest merge first). Each leaf's root is found by pointer
    jumping: O(N log N), no Python loop over the merges.
    """
    kept = max(0, n_leaves - clusters)
    parent = np.arange(2 * n_leaves - 1, dtype=np.int64)
    parent[children[:kept].reshape(-1)] = np.repeat(n_leaves + np.arange(kept), 2)
    while True:
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            break
        parent = jumped
    _, first, inverse = np.unique(parent[:n_leaves], return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))  # numbered in order of their first row
    return np.asarray(rank[inverse], dtype=np.int32)


def mean_shift(
    matrix: npt.NDArray[np.float32], *, bandwidth: float | None = None, random_state: int = 42
) -> npt.NDArray[np.int32]:
    """Mean shift from up to ``MEAN_SHIFT_SEED_ROWS`` seeds; a missing bandwidth is estimated.

    scikit-learn's ``MeanShift`` with a flat kernel, computed without it:
    every seed moves to the mean of the rows within ``bandwidth`` of it
    until it moves at most MEAN_SHIFT_TOLERANCE × bandwidth, or for
    MEAN_SHIFT_MAX_ITER shifts (`climb`); the modes are then thinned as
    scikit-learn does (`distinct_modes`) and every row takes its nearest
    mode. scikit-learn moves one seed at a time, a radius query per seed and
    step in Python (5-6 s for 1,000 × 384); here all moving seeds step
    together, two matrix products per block of rows.

    The bandwidth estimate and the seeds use seeded samples (all rows when
    there are fewer: then this is scikit-learn's ``MeanShift()``, up to
    float32 rounding). scikit-learn's default seeds every row: O(N²) per
    step. Its ``bin_seeding`` (used here before) fails on embeddings: in
    hundreds of dimensions every coordinate of a unit vector rounds to the
    same bin, the one seed is the origin, and no row lies within a bandwidth
    of it ("No point was within bandwidth"). A row as seed always has itself
    within the bandwidth, and a cluster with at least a few rows per
    thousand is seeded.
    """
    if bandwidth is None:
        picked = sample_rows(matrix.shape[0], BANDWIDTH_SAMPLE_ROWS, random_state)
        bandwidth = estimate_bandwidth(matrix[picked])
        if bandwidth <= 0:  # all sampled rows identical
            bandwidth = 1.0
    rows = centred_rows(matrix)
    sq = squared_norms(rows)
    seeds = rows[mean_shift_seeds(matrix.shape[0], random_state)]
    centres, intensity = climb(rows, sq, seeds, bandwidth)
    modes = distinct_modes(centres, intensity, bandwidth)
    return nearest_mode(rows, sq, modes)


def mean_shift_seeds(n_rows: int, random_state: int = 42) -> npt.NDArray[np.int64]:
    """Rows mean shift starts from: all of them up to MEAN_SHIFT_SEED_ROWS, else a seeded sample."""
    return sample_rows(n_rows, MEAN_SHIFT_SEED_ROWS, random_state)


def estimate_bandwidth(
    matrix: npt.NDArray[np.float32], quantile: float = BANDWIDTH_QUANTILE
) -> float:
    """scikit-learn's ``estimate_bandwidth(matrix)``: the mean distance to the k-th nearest row.

    k = int(quantile × N) (at least 1), each row counting as its own nearest.
    The k-th nearest is found with float32 products, then its distance is
    computed directly in float64: only candidates equal to float32 rounding
    (relative to the rows' spread) can swap, which moves the estimate by as
    little (1e-6 relative on blobs 50 times further apart than their size).
    """
    n = int(matrix.shape[0])
    kth = max(1, int(n * quantile)) - 1  # 0-based; the row itself is at 0
    rows = centred_rows(matrix)
    sq = squared_norms(rows)
    exact = np.asarray(matrix, dtype=np.float64)
    step = block_rows(n)
    total = 0.0
    for start in range(0, n, step):
        stop = min(n, start + step)
        d2 = squared_distances(rows[start:stop], sq[start:stop], rows, sq)
        d2[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # itself, first
        other = np.argpartition(d2, kth, axis=1)[:, kth]
        gap = exact[start:stop] - exact[other]
        total += float(np.sqrt(np.einsum("ij,ij->i", gap, gap)).sum())
    return total / n


def climb(
    rows: npt.NDArray[np.float32],
    sq: npt.NDArray[np.float32],
    seeds: npt.NDArray[np.float32],
    bandwidth: float,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Where every seed stops, and how many rows were within ``bandwidth`` at its last step.

    A step moves a seed to the mean of the rows within ``bandwidth`` of it
    (``sq``: the rows' squared norms); a seed stops after a step of at most
    MEAN_SHIFT_TOLERANCE × bandwidth, or after MEAN_SHIFT_MAX_ITER steps
    (one more mean, as scikit-learn counts). All moving seeds step at once.
    Seeds at the same place have the same future, so each distinct place is
    computed once: seeds reaching a mode by the same rows merge, and the
    later steps cost little. An intensity of 0 (no row in reach) marks a
    seed scikit-learn drops; a row as seed always has one.
    """
    limit = np.float32(bandwidth) ** 2
    enough = MEAN_SHIFT_TOLERANCE * bandwidth
    position = seeds.copy()
    centres = np.zeros_like(seeds)
    intensity = np.zeros(seeds.shape[0], dtype=np.int64)
    moving = np.arange(seeds.shape[0])
    for step in range(MEAN_SHIFT_MAX_ITER + 1):
        places = position[moving]
        _, first, seed_place = np.unique(row_bytes(places), return_index=True, return_inverse=True)
        seed_place = seed_place.reshape(-1)
        here = places[first]
        counts, means = _means_within(rows, sq, here, limit)
        shift = np.linalg.norm(means - here, axis=1)
        done = ((shift <= enough) | (counts == 0) | (step == MEAN_SHIFT_MAX_ITER))[seed_place]
        centres[moving[done]] = means[seed_place[done]]
        intensity[moving[done]] = counts[seed_place[done]]
        position[moving] = means[seed_place]
        moving = moving[~done]
        if moving.size == 0:
            break
    return centres, intensity


def _means_within(
    rows: npt.NDArray[np.float32],
    sq: npt.NDArray[np.float32],
    points: npt.NDArray[np.float32],
    limit: np.float32,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """For each point: how many rows lie within sqrt(limit), and their mean (0 when none)."""
    points_sq = squared_norms(points)
    counts = np.zeros(points.shape[0], dtype=np.int64)
    sums = np.zeros_like(points)
    step = block_rows(points.shape[0])  # blocks of rows, all points: one product each
    for start in range(0, rows.shape[0], step):
        stop = min(rows.shape[0], start + step)
        within = squared_distances(points, points_sq, rows[start:stop], sq[start:stop]) <= limit
        counts += np.count_nonzero(within, axis=1)
        sums += within.astype(np.float32) @ rows[start:stop]
    means = sums / np.maximum(counts, 1).astype(np.float32)[:, None]
    return counts, means


def distinct_modes(
    centres: npt.NDArray[np.float32], intensity: npt.NDArray[np.int64], bandwidth: float
) -> npt.NDArray[np.float32]:
    """The seeds' end points scikit-learn keeps as cluster centres, in its order.

    Equal end points count once; they are sorted by intensity, then by their
    coordinates, both decreasing; then each, in that order, unless already
    dropped, drops every later one within ``bandwidth`` of it (a
    near-duplicate with fewer rows). Seeds with no row in reach are ignored.
    """
    reached = intensity > 0
    centres, intensity = centres[reached], intensity[reached]
    _, first = np.unique(row_bytes(centres), return_index=True)
    centres, intensity = centres[first], intensity[first]
    order = np.lexsort((*centres[:, ::-1].T, intensity))[::-1]  # the last key sorts first
    centres = centres[order]
    exact = centres.astype(np.float64)
    exact_sq = squared_norms(exact)
    near = squared_distances(exact, exact_sq, exact, exact_sq) <= bandwidth**2
    kept = np.ones(centres.shape[0], dtype=bool)
    for i in range(centres.shape[0]):
        if kept[i]:  # later ones only: a rounding asymmetry must not drop a kept one
            kept[i + 1 :] &= ~near[i, i + 1 :]
    return np.ascontiguousarray(centres[kept])


def nearest_mode(
    rows: npt.NDArray[np.float32], sq: npt.NDArray[np.float32], modes: npt.NDArray[np.float32]
) -> npt.NDArray[np.int32]:
    """Index of each row's nearest mode (the first of equals)."""
    labels = np.empty(rows.shape[0], dtype=np.int32)
    modes_sq = squared_norms(modes)
    step = block_rows(modes.shape[0])
    for start in range(0, rows.shape[0], step):
        stop = min(rows.shape[0], start + step)
        d2 = squared_distances(rows[start:stop], sq[start:stop], modes, modes_sq)
        labels[start:stop] = np.argmin(d2, axis=1)
    return labels
