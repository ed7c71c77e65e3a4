"""validate_for_data: clear errors from counts alone, before any data is read."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from recluster.api.clustering import ClusteringConfig
from recluster.engine import DataValidationError, cluster, validate_for_data

PCA_64 = {"method": "pca", "n_components": 64}
UMAP_5 = {"method": "umap", "n_components": 5}


@pytest.mark.parametrize(
    ("params", "n_rows", "n_dims", "message"),
    [
        ({"algorithm": "kmeans", "n_clusters": 5}, 0, None, "the collection has no documents"),
        ({"algorithm": "dbscan"}, 1, None, "at least 2 documents are needed to cluster, got 1"),
        (
            {"algorithm": "kmeans", "n_clusters": 5},
            3,
            None,
            r"fewer documents \(3\) than n_clusters \(5\)",
        ),
        (
            {"algorithm": "gaussian_mixture", "n_clusters": 10},
            9,
            None,
            r"fewer documents \(9\) than n_clusters \(10\)",
        ),
        ({"algorithm": "hdbscan"}, 4, None, r"fewer documents \(4\) than min_cluster_size \(5\)"),
        (
            {"algorithm": "optics", "min_samples": 20},
            10,
            None,
            r"fewer documents \(10\) than min_samples \(20\)",
        ),
        (
            {"algorithm": "spectral", "n_clusters": 2, "affinity": "nearest_neighbors"},
            10,
            None,
            r"n_neighbors \(10\) needs more documents than that, got 10",
        ),
        (
            {"algorithm": "agglomerative", "n_clusters": 3},
            50_000,
            None,
            "agglomerative is limited to 30000 documents",
        ),
        (
            {
                "algorithm": "kmeans",
                "n_clusters": 2,
                "reduction": {"method": "pca", "n_components": 64},
            },
            100,
            32,
            r"reduction.n_components \(64\) exceeds the embedding dimension \(32\)",
        ),
        (
            {
                "algorithm": "kmeans",
                "n_clusters": 2,
                "reduction": {"method": "umap", "n_components": 5},
            },
            6,
            None,
            "umap to 5 components needs more than 6 documents, got 6",
        ),
    ],
)
def test_errors(params: dict[str, Any], n_rows: int, n_dims: int | None, message: str) -> None:
    config = ClusteringConfig.model_validate(params)
    with pytest.raises(DataValidationError, match=message):
        validate_for_data(config, n_rows, n_dims)


@pytest.mark.parametrize(
    ("params", "n_rows"),
    [
        ({"algorithm": "kmeans", "n_clusters": 5}, 5),
        ({"algorithm": "hdbscan", "min_cluster_size": 2}, 2),
        ({"algorithm": "spectral", "n_clusters": 2, "affinity": "nearest_neighbors"}, 100_000),
        ({"algorithm": "hdbscan"}, 50_000_000),
    ],
)
def test_accepted(params: dict[str, Any], n_rows: int) -> None:
    validate_for_data(ClusteringConfig.model_validate(params), n_rows, 384)


def test_cluster_validates_before_work_and_is_a_value_error() -> None:
    rows = np.zeros((3, 4), dtype=np.float32)
    original = rows.copy()
    config = ClusteringConfig(algorithm="kmeans", n_clusters=5, normalize=True)
    with pytest.raises(ValueError, match=r"fewer documents \(3\) than n_clusters \(5\)"):
        cluster(rows, config, inplace=True)
    np.testing.assert_array_equal(rows, original)
