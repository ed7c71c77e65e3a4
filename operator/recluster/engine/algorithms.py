"""The engine's entry points: check a config against the data, then cluster."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from recluster.api.clustering import ClusteringConfig

from . import density, mixture, optics, scikit, spectral
from .kmeans import kmeans
from .preprocess import as_float32_matrix, l2_normalize, reduce
from .quality import quality_rows, silhouette
from .result import ClusteringResult, cluster_means, compact_labels

DEFAULT_RANDOM_STATE = 42

MAX_ROWS: dict[str, int] = {
    "agglomerative": 30_000,  # ward/complete/average: N²/2 float64 distances (3.6 GB)
    "spectral": 20_000,  # rbf affinity: a dense N² float32 matrix (1.6 GB)
    "mean_shift": 100_000,  # O(N·seeds) neighbour queries; hours beyond this
    "optics": 200_000,  # O(N²) neighbourhood queries in high dimensions
    "gaussian_mixture": 2_000_000,
}
"""Rows above which an algorithm would exhaust a Job's memory or time; refused
up front with a message that names kmeans and hdbscan, which scale."""


class DataValidationError(ValueError):
    """The configuration cannot run on this data (raised before any work is done)."""


def random_state_of(config: ClusteringConfig) -> int:
    return DEFAULT_RANDOM_STATE if config.random_state is None else config.random_state


def validate_for_data(config: ClusteringConfig, n_rows: int, n_dims: int | None = None) -> None:
    """Raise DataValidationError when ``config`` cannot run on ``n_rows`` × ``n_dims``.

    Needs only the counts, so the job runner can call it before reading any
    embeddings and fail with a one-line reason, writing nothing.
    """
    algorithm = config.algorithm
    if n_rows < 1:
        raise DataValidationError("the collection has no documents")
    if n_rows < 2:
        raise DataValidationError(f"at least 2 documents are needed to cluster, got {n_rows}")
    if config.n_clusters is not None and n_rows < config.n_clusters:
        raise DataValidationError(
            f"fewer documents ({n_rows}) than n_clusters ({config.n_clusters})"
        )
    if algorithm == "hdbscan":
        mcs = config.min_cluster_size or density.DEFAULT_MIN_CLUSTER_SIZE
        if n_rows < mcs:
            raise DataValidationError(f"fewer documents ({n_rows}) than min_cluster_size ({mcs})")
    ms = config.min_samples
    if algorithm in ("hdbscan", "dbscan", "optics") and ms is not None and n_rows < ms:
        raise DataValidationError(
            f"fewer documents ({n_rows}) than min_samples ({config.min_samples})"
        )
    if algorithm == "spectral" and config.affinity == "nearest_neighbors":
        neighbours = config.n_neighbors or 10
        if n_rows <= neighbours:
            raise DataValidationError(
                f"spectral clustering with n_neighbors ({neighbours}) needs more documents "
                f"than that, got {n_rows}"
            )
    limit = MAX_ROWS.get(algorithm)
    if limit is not None and n_rows > limit and not _sparse_spectral(config):
        raise DataValidationError(
            f"{algorithm} is limited to {limit} documents (its cost grows with the square "
            f"of the count), got {n_rows}; use kmeans or hdbscan for large collections"
        )
    reduction = config.reduction
    if reduction is not None:
        if n_dims is not None and reduction.n_components > n_dims:
            raise DataValidationError(
                f"reduction.n_components ({reduction.n_components}) exceeds the embedding "
                f"dimension ({n_dims})"
            )
        if reduction.method == "umap" and n_rows <= reduction.n_components + 1:
            raise DataValidationError(
                f"umap to {reduction.n_components} components needs more than "
                f"{reduction.n_components + 1} documents, got {n_rows}"
            )


def _sparse_spectral(config: ClusteringConfig) -> bool:
    return config.algorithm == "spectral" and config.affinity == "nearest_neighbors"


Runner = Callable[[npt.NDArray[np.float32], ClusteringConfig, int], npt.NDArray[np.int32]]

RUNNERS: dict[str, Runner] = {
    "kmeans": lambda x, c, seed: kmeans(
        x, c.n_clusters or 8, max_iter=c.max_iter, n_init=c.n_init, random_state=seed
    ),
    "hdbscan": lambda x, c, seed: density.hdbscan(
        x,
        min_cluster_size=c.min_cluster_size,
        min_samples=c.min_samples,
        cluster_selection_epsilon=c.cluster_selection_epsilon,
        cluster_selection_method=c.cluster_selection_method,
        random_state=seed,
    ),
    "dbscan": lambda x, c, seed: density.dbscan(x, eps=c.eps, min_samples=c.min_samples),
    "optics": lambda x, c, seed: optics.optics(
        x, min_samples=c.min_samples, max_eps=c.max_eps, xi=c.xi
    ),
    "agglomerative": lambda x, c, seed: scikit.agglomerative(
        x, n_clusters=c.n_clusters, linkage=c.linkage, distance_threshold=c.distance_threshold
    ),
    "spectral": lambda x, c, seed: spectral.spectral(
        x,
        n_clusters=c.n_clusters or 8,
        affinity=c.affinity,
        n_neighbors=c.n_neighbors,
        random_state=seed,
    ),
    "gaussian_mixture": lambda x, c, seed: mixture.gaussian_mixture(
        x,
        n_clusters=c.n_clusters or 1,
        covariance_type=c.covariance_type,
        max_iter=c.max_iter,
        random_state=seed,
    ),
    "mean_shift": lambda x, c, seed: scikit.mean_shift(x, bandwidth=c.bandwidth, random_state=seed),
}


def cluster(
    matrix: npt.ArrayLike,
    config: ClusteringConfig,
    *,
    inplace: bool = False,
    quality_sample_rows: int | None = None,
) -> ClusteringResult:
    """Normalise / reduce as configured, run the algorithm, summarise the clusters.

    ``matrix`` should be a C-contiguous float32 N × D array (anything else is
    converted once). With ``inplace=True`` and ``normalize`` set, the rows are
    normalised in the caller's array (it holds unit vectors afterwards) instead
    of in a copy; centroids are still the means of the raw embeddings, rebuilt
    from the saved norms. The quality score is measured in the space the
    algorithm clustered (after normalisation and reduction).
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    raw = as_float32_matrix(matrix)
    validate_for_data(config, raw.shape[0], raw.shape[1])
    seed = random_state_of(config)

    def lap(stage: str, since: float) -> float:
        now = time.perf_counter()
        timings[stage] = (now - since) * 1000
        return now

    mark = started
    work = raw
    row_scale = None
    if config.normalize:
        work, norms = l2_normalize(raw, inplace=inplace)
        if work is raw:
            row_scale = norms
        mark = lap("normalize", mark)
    if config.reduction is not None:
        work = reduce(work, config.reduction, random_state=seed)
        mark = lap("reduce", mark)
    labels = compact_labels(RUNNERS[config.algorithm](work, config, seed))
    mark = lap("cluster", mark)
    num_clusters = int(labels.max()) + 1 if labels.size else 0
    centroids, sizes = cluster_means(raw, labels, num_clusters, row_scale=row_scale)
    mark = lap("centroids", mark)
    rows = quality_sample_rows or quality_rows(work.shape[0], config.algorithm)
    quality = silhouette(work, labels, max_rows=rows, random_state=seed)
    lap("quality", mark)
    timings["total"] = (time.perf_counter() - started) * 1000
    return ClusteringResult(
        labels=labels, centroids=centroids, sizes=sizes, quality=quality, timings_ms=timings
    )
