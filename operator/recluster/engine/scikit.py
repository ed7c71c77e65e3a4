"""Algorithms with scikit-learn's semantics: agglomerative, spectral,
gaussian_mixture and mean_shift. They are quadratic in time or memory, so the
engine caps the rows they accept (see ``algorithms.MAX_ROWS``).

Invariants:

- Same result as scikit-learn's estimator with the same parameters (its
  defaults otherwise), up to label numbering, or a documented, measured
  difference (mean_shift's seeds). The tests pin each against scikit-learn.
- Never slower than that estimator in a fresh Job (issue 13;
  benchmarks/bench_quality.py, section "others"). Importing
  ``sklearn.cluster`` costs 1.5-3 s in a fresh process, more than these
  algorithms take on thousands of rows; so agglomerative, whose tree
  scikit-learn itself builds with SciPy, calls SciPy directly and imports
  no scikit-learn.

No ``n_jobs=-1``: joblib's process pool costs seconds to start in a fresh
Job, more than these algorithms take on the sizes they accept.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .distances import condensed_distances
from .preprocess import sample_rows

BANDWIDTH_SAMPLE_ROWS = 2_000
MEAN_SHIFT_SEED_ROWS = 1_000
"""Mean shift starts from at most this many rows (a seeded sample), each climbing to its mode."""
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


def spectral(
    matrix: npt.NDArray[np.float32],
    *,
    n_clusters: int,
    affinity: str | None = None,
    n_neighbors: int | None = None,
    random_state: int = 42,
) -> npt.NDArray[np.int32]:
    from sklearn.cluster import SpectralClustering  # type: ignore[import-untyped]

    model = SpectralClustering(
        n_clusters=n_clusters,
        affinity=affinity or "rbf",
        n_neighbors=n_neighbors or 10,
        random_state=random_state,
        assign_labels="cluster_qr",  # deterministic, no k-means restarts
    )
    return np.asarray(model.fit_predict(matrix), dtype=np.int32)


def gaussian_mixture(
    matrix: npt.NDArray[np.float32],
    *,
    n_clusters: int,
    covariance_type: str | None = None,
    max_iter: int | None = None,
    random_state: int = 42,
) -> npt.NDArray[np.int32]:
    """A Gaussian mixture with one component per requested cluster."""
    from sklearn.mixture import GaussianMixture  # type: ignore[import-untyped]

    model = GaussianMixture(
        n_components=n_clusters,
        covariance_type=covariance_type or "full",
        max_iter=max_iter or 100,
        random_state=random_state,
    )
    return np.asarray(model.fit_predict(matrix), dtype=np.int32)


def mean_shift(
    matrix: npt.NDArray[np.float32], *, bandwidth: float | None = None, random_state: int = 42
) -> npt.NDArray[np.int32]:
    """Mean shift from up to ``MEAN_SHIFT_SEED_ROWS`` seeds; a missing bandwidth is estimated.

    The bandwidth estimate and the seeds use seeded samples (all rows when
    there are fewer: then this is scikit-learn's ``MeanShift()`` exactly).
    scikit-learn's default seeds every row, each climbing with neighbour
    queries over all rows: O(N²) per iteration. Its ``bin_seeding`` (used
    here before) fails on embeddings: in hundreds of dimensions every
    coordinate of a unit vector rounds to the same bin, the one seed is the
    origin, and no row lies within a bandwidth of it ("No point was within
    bandwidth"). A row as seed always has itself within the bandwidth, and a
    cluster with at least a few rows per thousand is seeded.
    """
    from sklearn.cluster import MeanShift, estimate_bandwidth

    if bandwidth is None:
        picked = sample_rows(matrix.shape[0], BANDWIDTH_SAMPLE_ROWS, random_state)
        bandwidth = float(estimate_bandwidth(matrix[picked], random_state=random_state))
        if bandwidth <= 0:  # all sampled rows identical
            bandwidth = 1.0
    seeds = matrix[mean_shift_seeds(matrix.shape[0], random_state)]
    model = MeanShift(bandwidth=bandwidth, seeds=seeds)
    return np.asarray(model.fit_predict(matrix), dtype=np.int32)


def mean_shift_seeds(n_rows: int, random_state: int = 42) -> npt.NDArray[np.int64]:
    """Rows mean shift starts from: all of them up to MEAN_SHIFT_SEED_ROWS, else a seeded sample."""
    return sample_rows(n_rows, MEAN_SHIFT_SEED_ROWS, random_state)
