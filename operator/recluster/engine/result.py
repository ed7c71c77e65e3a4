"""What one clustering run produces, independent of the algorithm that ran."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse  # type: ignore[import-untyped]

NOISE = -1
"""Label of rows that belong to no cluster (density methods only)."""

_CENTROID_CHUNK_ROWS = 131_072


@dataclass(frozen=True)
class ClusteringResult:
    """Labels, per-cluster summaries, a quality score and where the time went.

    Centroids live in the *original* embedding space (mean of the members'
    raw embeddings), whatever normalisation or reduction the algorithm saw,
    so that drift checks can compare new raw embeddings against them.
    """

    labels: npt.NDArray[np.int32]
    """One label per row, 0..num_clusters-1, or -1 for noise."""
    centroids: npt.NDArray[np.float32]
    """num_clusters × D, mean of each cluster's members in the original space."""
    sizes: npt.NDArray[np.int64]
    """Members per cluster, aligned with centroids."""
    quality: float | None
    """Silhouette on a bounded sample, in the clustering space; None when undefined."""
    timings_ms: dict[str, float] = field(default_factory=dict)
    """Milliseconds per stage (normalize, reduce, cluster, centroids, quality, total)."""

    @property
    def num_clusters(self) -> int:
        return int(self.sizes.shape[0])

    @property
    def num_documents(self) -> int:
        return int(self.labels.shape[0])

    @property
    def noise_fraction(self) -> float:
        n = self.num_documents
        return 0.0 if n == 0 else float(n - int(self.sizes.sum())) / n

    def summary(self) -> dict[str, object]:
        """JSON-ready figures for logs and the job's termination message."""
        return {
            "num_clusters": self.num_clusters,
            "num_documents": self.num_documents,
            "noise_fraction": self.noise_fraction,
            "quality_score": self.quality,
            "stage_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }


def compact_labels(labels: npt.NDArray[np.integer]) -> npt.NDArray[np.int32]:
    """Renumber labels to 0..K-1 in order of first use by id, keeping -1 as noise.

    Some algorithms leave ids unused (an empty Gaussian component); results must
    not report empty clusters.
    """
    out = np.asarray(labels, dtype=np.int32)
    valid = out >= 0
    if not valid.any():
        return np.full(out.shape, NOISE, dtype=np.int32)
    used = np.unique(out[valid])
    if used[0] == 0 and used[-1] == used.shape[0] - 1:
        return out if out is not labels else out.copy()
    remap = np.full(int(used[-1]) + 1, NOISE, dtype=np.int32)
    remap[used] = np.arange(used.shape[0], dtype=np.int32)
    return np.where(valid, remap[np.maximum(out, 0)], NOISE).astype(np.int32)


def cluster_means(
    matrix: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int32],
    num_clusters: int,
    row_scale: npt.NDArray[np.float32] | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Mean of each cluster's rows and the cluster sizes, in one pass without copies.

    ``row_scale`` multiplies each row first: after in-place L2 normalisation
    it holds the original norms, so the means are those of the raw embeddings.
    A sparse (K × chunk) indicator times each chunk of rows keeps the work O(N·D)
    and the temporaries to one chunk; sums accumulate in float64.
    """
    n, d = matrix.shape
    sums = np.zeros((num_clusters, d), dtype=np.float64)
    sizes = np.bincount(labels[labels >= 0], minlength=num_clusters).astype(np.int64)
    for start in range(0, n, _CENTROID_CHUNK_ROWS):
        stop = min(n, start + _CENTROID_CHUNK_ROWS)
        chunk_labels = labels[start:stop]
        rows = np.flatnonzero(chunk_labels >= 0)
        if rows.size == 0:
            continue
        weights = (
            np.ones(rows.size, dtype=np.float32)
            if row_scale is None
            else row_scale[start:stop][rows].astype(np.float32)
        )
        indicator = scipy.sparse.csr_matrix(
            (weights, (chunk_labels[rows], rows)), shape=(num_clusters, stop - start)
        )
        sums += indicator @ matrix[start:stop]
    means = sums / np.maximum(sizes, 1)[:, None]
    return means.astype(np.float32), sizes
