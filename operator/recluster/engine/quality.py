"""Quality score: silhouette on a bounded, seeded sample of the clustered rows.

Silhouette is O(n²·D). On a 5k-row sample it costs about 0.15 s at D=384
on two cores whatever the collection size (10k rows: 0.6 s, a sixth of the
k-means budget for 1M rows), and its sampling error (well under ±0.01 on the
mean) is far below what separates a good clustering from a bad one. Small
collections sample fewer rows (`quality_rows`), so that the score never
costs more than the clustering.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse  # type: ignore[import-untyped]

from .preprocess import sample_rows

QUALITY_SAMPLE_ROWS = 5_000
MIN_QUALITY_SAMPLE_ROWS = 1_000


ONE_PASS_ALGORITHMS = frozenset({"dbscan"})
"""Algorithms whose whole clustering is one pass over the N² distances, the silhouette's own
cost on N rows (measured: dbscan on 1,000 × 384 in 37 ms, the silhouette of all 1,000 rows in
42 ms; bench_quality.py, section "others")."""


def quality_rows(n_rows: int, algorithm: str | None = None) -> int:
    """Rows the silhouette samples for a collection of ``n_rows``: a quarter, 1,000 to 5,000.

    For the `ONE_PASS_ALGORITHMS`, also at most half the rows (a quarter of
    the clustering's distance work): that changes only collections under
    2,000 rows, where the sample would otherwise be every row (at 1,000
    rows: 500, sampling error about ±0.015 on the mean).

    The score must not cost more than the clustering (issue 13): a small
    collection's k-means takes a fraction of a second, and a 5,000-row
    silhouette (19 GFLOP at D=384) took longer than that. A quarter of the
    rows keeps the silhouette's cost below the clustering's at every size
    measured (docs/benchmarks.md), and its sampling error on the mean stays
    about ±0.01 at 1,000 rows.
    """
    rows = min(QUALITY_SAMPLE_ROWS, max(MIN_QUALITY_SAMPLE_ROWS, n_rows // 4))
    if algorithm in ONE_PASS_ALGORITHMS:
        rows = min(rows, max(3, n_rows // 2))
    return rows


_CHUNK = 1_024
_DENSE_INDICATOR_MAX_K = 512


def silhouette(
    matrix: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int32],
    *,
    max_rows: int = QUALITY_SAMPLE_ROWS,
    random_state: int = 42,
) -> float | None:
    """Mean silhouette (Euclidean) of clustered rows, noise excluded; None if undefined.

    Undefined means fewer than two clusters, or as many clusters as sampled
    rows, among the non-noise rows of the sample.
    """
    clustered = np.flatnonzero(labels >= 0)
    if clustered.size < 3:
        return None
    picked = clustered[sample_rows(clustered.size, max_rows, random_state)]
    sample_labels = labels[picked]
    n_labels = np.unique(sample_labels).size
    if n_labels < 2 or n_labels >= picked.size:
        return None
    _, dense_labels = np.unique(sample_labels, return_inverse=True)
    rows = matrix[picked]
    rows -= rows.mean(axis=0)  # small norms: less cancellation in |x|² + |y|² - 2x·y
    return float(np.clip(silhouette_exact(rows, dense_labels), -1.0, 1.0))


def silhouette_exact(rows: npt.NDArray[np.float32], labels: npt.NDArray[np.intp]) -> float:
    """Mean silhouette of ``rows`` with labels 0..K-1 (scikit-learn's definition).

    Same result as ``sklearn.metrics.silhouette_score``, about 3× faster: the
    distances are float32 sgemm blocks, and the per-cluster sums are one sparse
    product per block, O(n²) whatever K is.
    """
    n = rows.shape[0]
    k = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    members: npt.NDArray[np.float32] | scipy.sparse.csr_matrix
    if k <= _DENSE_INDICATOR_MAX_K:  # a dense n × K indicator: one more sgemm
        members = np.zeros((n, k), dtype=np.float32)
        members[np.arange(n), labels] = 1.0
    else:  # a sparse one keeps the product O(n²) for any K
        members = scipy.sparse.csr_matrix(
            (np.ones(n, dtype=np.float32), (np.arange(n), labels)), shape=(n, k)
        )
    sq_norms = np.einsum("ij,ij->i", rows, rows)
    scores = np.empty(n, dtype=np.float64)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        block = rows[start:stop]
        dist = sq_norms[start:stop, None] + sq_norms[None, :] - 2 * (block @ rows.T)
        np.sqrt(np.maximum(dist, 0, out=dist), out=dist)
        per_cluster = np.asarray(dist @ members, dtype=np.float64)  # chunk × K
        own = labels[start:stop]
        index = np.arange(stop - start)
        own_size = sizes[own]
        a = per_cluster[index, own] / np.maximum(own_size - 1, 1)
        per_cluster /= sizes[None, :]
        per_cluster[index, own] = np.inf
        b = per_cluster.min(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.where(own_size > 1, (b - a) / np.maximum(a, b), 0.0)
        scores[start:stop] = np.nan_to_num(s)
    return float(scores.mean())
