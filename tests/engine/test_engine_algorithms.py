"""Every algorithm recovers known clusters; the result's invariants hold."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from engine_support import Blobs, make_blobs
from sklearn.metrics import adjusted_rand_score  # type: ignore[import-untyped]

from recluster.api.clustering import ClusteringConfig, Reduction
from recluster.engine import NOISE, ClusteringResult, cluster

CASES: list[tuple[dict[str, Any], float]] = [
    ({"algorithm": "kmeans", "n_clusters": 4}, 0.99),
    ({"algorithm": "hdbscan", "min_cluster_size": 10}, 0.99),
    ({"algorithm": "dbscan", "eps": 1.5, "min_samples": 5}, 0.99),
    ({"algorithm": "optics", "min_samples": 10}, 0.95),
    ({"algorithm": "agglomerative", "n_clusters": 4}, 0.99),
    ({"algorithm": "agglomerative", "distance_threshold": 20.0}, 0.99),
    ({"algorithm": "agglomerative", "n_clusters": 4, "linkage": "average"}, 0.99),
    ({"algorithm": "spectral", "n_clusters": 4}, 0.99),
    ({"algorithm": "spectral", "n_clusters": 4, "affinity": "nearest_neighbors"}, 0.99),
    ({"algorithm": "gaussian_mixture", "n_clusters": 4}, 0.99),
    ({"algorithm": "gaussian_mixture", "n_clusters": 4, "covariance_type": "diag"}, 0.99),
    ({"algorithm": "mean_shift", "bandwidth": 2.0}, 0.99),
]


def check_invariants(result: ClusteringResult, rows: np.ndarray) -> None:
    labels = result.labels
    assert labels.dtype == np.int32 and labels.shape == (rows.shape[0],)
    assert labels.min() >= NOISE
    assert set(np.unique(labels[labels >= 0])) == set(range(result.num_clusters))
    assert result.centroids.dtype == np.float32
    assert result.centroids.shape == (result.num_clusters, rows.shape[1])
    assert result.sizes.sum() == (labels >= 0).sum()
    for c in range(result.num_clusters):
        members = rows[labels == c]
        assert result.sizes[c] == members.shape[0]
        np.testing.assert_allclose(result.centroids[c], members.mean(axis=0), atol=1e-4)
    assert result.noise_fraction == pytest.approx((labels == NOISE).mean())
    assert result.quality is None or -1.0 <= result.quality <= 1.0
    assert {"cluster", "centroids", "quality", "total"} <= result.timings_ms.keys()


@pytest.mark.parametrize(("params", "min_ari"), CASES, ids=lambda p: str(p))
def test_recovers_blobs(blobs: Blobs, params: dict[str, Any], min_ari: float) -> None:
    rows, truth = blobs
    result = cluster(rows, ClusteringConfig.model_validate(params))
    assert adjusted_rand_score(truth, result.labels) >= min_ari
    check_invariants(result, rows)
    assert result.quality is not None and result.quality > 0.7  # well-separated blobs


def test_mean_shift_estimates_its_bandwidth() -> None:
    rows, truth = make_blobs(n=400, k=3, d=4, std=0.3, box=10.0)
    result = cluster(rows, ClusteringConfig(algorithm="mean_shift"))
    assert adjusted_rand_score(truth, result.labels) > 0.95


@pytest.mark.parametrize(
    "params",
    [
        {"algorithm": "hdbscan", "min_cluster_size": 10},
        {"algorithm": "dbscan", "eps": 1.5, "min_samples": 5},
        {"algorithm": "optics", "min_samples": 10},
    ],
    ids=lambda p: p["algorithm"],
)
def test_density_methods_label_outliers_as_noise(
    blobs_with_outliers: Blobs, params: dict[str, Any]
) -> None:
    rows, truth = blobs_with_outliers
    result = cluster(rows, ClusteringConfig.model_validate(params))
    outliers = truth == -1
    assert (result.labels[outliers] == NOISE).all()
    assert adjusted_rand_score(truth[~outliers], result.labels[~outliers]) > 0.95
    assert result.noise_fraction == pytest.approx(outliers.mean(), abs=0.02)
    check_invariants(result, rows)


def two_pairs_of_blobs() -> Blobs:
    """Four tight blobs in two pairs: 3 apart within a pair, 40 between the pairs."""
    rng = np.random.default_rng(0)
    centres = np.zeros((4, 8))
    centres[:, 0] = [0, 3, 40, 43]
    truth = np.arange(400) % 4
    rows = centres[truth] + rng.normal(scale=0.4, size=(400, 8))
    return np.ascontiguousarray(rows, dtype=np.float32), truth


def blobs_per_cluster(result: ClusteringResult, truth: npt.NDArray[np.int64]) -> list[list[int]]:
    """For each found cluster, the true blobs its rows come from (noise left out)."""
    return sorted(
        sorted({int(t) for t in truth[result.labels == c]}) for c in range(result.num_clusters)
    )


def test_hdbscan_leaf_selection_and_epsilon() -> None:
    rows, truth = two_pairs_of_blobs()
    hdbscan: dict[str, Any] = {"algorithm": "hdbscan", "min_cluster_size": 10}
    # excess of mass keeps the pairs (the more persistent clusters) ...
    eom = cluster(rows, ClusteringConfig.model_validate(hdbscan))
    assert blobs_per_cluster(eom, truth) == [[0, 1], [2, 3]]
    # ... leaf selection refines them into the four blobs, never mixing two
    leaf_config = {**hdbscan, "cluster_selection_method": "leaf"}
    leaf = cluster(rows, ClusteringConfig.model_validate(leaf_config))
    assert blobs_per_cluster(leaf, truth) == [[0], [1], [2], [3]]
    # an epsilon above the gap within a pair (3) and below the one between pairs (40)
    # merges the leaves of each pair again
    merged_config = {**leaf_config, "cluster_selection_epsilon": 10.0}
    merged = cluster(rows, ClusteringConfig.model_validate(merged_config))
    assert blobs_per_cluster(merged, truth) == [[0, 1], [2, 3]]
    assert merged.noise_fraction == 0.0


def test_hdbscan_high_dimensional_data_matches_truth() -> None:
    rows, truth = make_blobs(n=1_200, k=6, d=96, std=1.0, box=3.0)
    result = cluster(rows, ClusteringConfig(algorithm="hdbscan", min_cluster_size=15))
    assert adjusted_rand_score(truth, result.labels) > 0.98
    check_invariants(result, rows)


def test_hdbscan_ivf_path_for_larger_collections() -> None:
    rows, truth = make_blobs(n=9_000, k=8, d=16, std=0.5, box=5.0)
    result = cluster(rows, ClusteringConfig(algorithm="hdbscan", min_cluster_size=20))
    assert adjusted_rand_score(truth, result.labels) > 0.98


@pytest.mark.parametrize(
    "params",
    [
        {"algorithm": "kmeans", "n_clusters": 4},
        {"algorithm": "hdbscan", "min_cluster_size": 10},
        {"algorithm": "spectral", "n_clusters": 4},
        {"algorithm": "gaussian_mixture", "n_clusters": 4},
        {"algorithm": "kmeans", "n_clusters": 4, "reduction": {"method": "pca", "n_components": 3}},
    ],
    ids=lambda p: p["algorithm"],
)
def test_same_seed_same_result(params: dict[str, Any]) -> None:
    rows, _ = make_blobs(n=300, k=4, d=8, std=1.5)  # overlapping: seeds matter
    config = ClusteringConfig.model_validate({**params, "random_state": 7})
    first, second = cluster(rows, config), cluster(rows, config)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.centroids, second.centroids)
    assert first.quality == second.quality


def test_kmeans_seed_changes_sample_and_init_but_not_clear_structure(blobs: Blobs) -> None:
    rows, truth = blobs
    for seed in (0, 1, 2):
        result = cluster(
            rows, ClusteringConfig(algorithm="kmeans", n_clusters=4, random_state=seed)
        )
        assert adjusted_rand_score(truth, result.labels) == pytest.approx(1.0)


def test_kmeans_with_subsampling_finds_every_blob() -> None:
    """Above the sample size, k-means fits on a sample then assigns every row.

    Against scikit-learn's KMeans (speed and ARI, same run): benchmarks/bench_engine.py.
    """
    rows, truth = make_blobs(n=30_000, k=30, d=16, std=1.0, box=6.0, seed=11)
    for seed in (0, 1, 2):
        result = cluster(
            rows, ClusteringConfig(algorithm="kmeans", n_clusters=30, random_state=seed)
        )
        assert result.num_clusters == 30 and (result.labels != NOISE).all()
        assert adjusted_rand_score(truth, result.labels) > 0.99, seed
        check_invariants(result, rows)


def test_normalize_clusters_directions_but_centroids_stay_raw() -> None:
    """Two directions, each at two very different scales: normalised k-means
    must group by direction, and centroids must be raw-space member means."""
    rng = np.random.default_rng(0)
    directions = np.eye(6, dtype=np.float32)[:2]
    truth = np.arange(400) % 2
    scale = np.where(np.arange(400) % 4 < 2, 1.0, 100.0)[:, None]
    rows = (directions[truth] + rng.normal(scale=0.05, size=(400, 6))) * scale
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    original = rows.copy()
    config = ClusteringConfig(algorithm="kmeans", n_clusters=2, normalize=True)
    result = cluster(rows, config)
    np.testing.assert_array_equal(rows, original)  # not inplace: input untouched
    assert adjusted_rand_score(truth, result.labels) == pytest.approx(1.0)
    check_invariants(result, original)
    assert "normalize" in result.timings_ms

    inplace = cluster(rows, config, inplace=True)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)  # normalised
    np.testing.assert_array_equal(inplace.labels, result.labels)
    np.testing.assert_allclose(inplace.centroids, result.centroids, rtol=1e-4, atol=1e-3)


def test_reduction_changes_clustering_space_not_centroid_space(blobs: Blobs) -> None:
    rows, truth = blobs
    result = cluster(
        rows,
        ClusteringConfig(
            algorithm="kmeans", n_clusters=4, reduction=Reduction(method="pca", n_components=2)
        ),
    )
    assert adjusted_rand_score(truth, result.labels) > 0.99
    assert result.centroids.shape == (4, rows.shape[1])
    assert "reduce" in result.timings_ms
    check_invariants(result, rows)


def test_umap_reduction_keeps_clusters() -> None:
    rows, truth = make_blobs(n=300, k=3, d=10, std=0.5, seed=5)
    result = cluster(
        rows,
        ClusteringConfig(
            algorithm="kmeans",
            n_clusters=3,
            reduction=Reduction(method="umap", n_components=2),
            random_state=3,
        ),
    )
    assert adjusted_rand_score(truth, result.labels) > 0.99
    check_invariants(result, rows)


def test_quality_is_none_with_a_single_cluster() -> None:
    rows, _ = make_blobs(n=200, k=1, d=4, std=0.3)
    result = cluster(rows, ClusteringConfig(algorithm="dbscan", eps=5.0))
    assert result.num_clusters == 1
    assert result.quality is None


def test_all_noise_gives_no_clusters() -> None:
    rows = np.ascontiguousarray(np.eye(20, dtype=np.float32) * 100)
    result = cluster(rows, ClusteringConfig(algorithm="dbscan", eps=0.5, min_samples=3))
    assert result.num_clusters == 0
    assert result.noise_fraction == 1.0
    assert result.centroids.shape == (0, 20)
    assert result.quality is None


def test_non_float32_input_is_accepted(blobs: Blobs) -> None:
    rows, truth = blobs
    result = cluster(rows.astype(np.float64), ClusteringConfig(algorithm="kmeans", n_clusters=4))
    assert adjusted_rand_score(truth, result.labels) == pytest.approx(1.0)
    assert result.centroids.dtype == np.float32


def test_summary_is_json_ready(blobs: Blobs) -> None:
    import json

    rows, _ = blobs
    summary = cluster(rows, ClusteringConfig(algorithm="kmeans", n_clusters=4)).summary()
    decoded = json.loads(json.dumps(summary))
    assert decoded["num_clusters"] == 4 and decoded["num_documents"] == 300
    assert decoded["noise_fraction"] == 0.0
    assert 0.7 < decoded["quality_score"] <= 1.0
