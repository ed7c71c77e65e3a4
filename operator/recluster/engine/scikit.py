"""Algorithms run through scikit-learn as they are: agglomerative, spectral,
gaussian_mixture and mean_shift. They are quadratic in time or memory, so the
engine caps the rows they accept (see ``algorithms.MAX_ROWS``).

No ``n_jobs=-1``: joblib's process pool costs seconds to start in a fresh
Job, more than these algorithms take on the sizes they accept.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .preprocess import sample_rows

BANDWIDTH_SAMPLE_ROWS = 2_000


def agglomerative(
    matrix: npt.NDArray[np.float32],
    *,
    n_clusters: int | None = None,
    linkage: str | None = None,
    distance_threshold: float | None = None,
) -> npt.NDArray[np.int32]:
    from sklearn.cluster import AgglomerativeClustering  # type: ignore[import-untyped]

    model = AgglomerativeClustering(
        n_clusters=n_clusters if distance_threshold is None else None,
        linkage=linkage or "ward",
        distance_threshold=distance_threshold,
    )
    return np.asarray(model.fit_predict(matrix), dtype=np.int32)


def spectral(
    matrix: npt.NDArray[np.float32],
    *,
    n_clusters: int,
    affinity: str | None = None,
    n_neighbors: int | None = None,
    random_state: int = 42,
) -> npt.NDArray[np.int32]:
    from sklearn.cluster import SpectralClustering

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
    """Mean shift; a missing bandwidth is estimated on a seeded sample.

    scikit-learn's own estimate is quadratic over all rows and unseeded.
    """
    from sklearn.cluster import MeanShift, estimate_bandwidth

    if bandwidth is None:
        picked = sample_rows(matrix.shape[0], BANDWIDTH_SAMPLE_ROWS, random_state)
        bandwidth = float(estimate_bandwidth(matrix[picked], random_state=random_state))
        if bandwidth <= 0:  # all sampled rows identical
            bandwidth = 1.0
    model = MeanShift(bandwidth=bandwidth, bin_seeding=True)
    return np.asarray(model.fit_predict(matrix), dtype=np.int32)
