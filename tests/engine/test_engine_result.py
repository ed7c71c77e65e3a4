"""Result helpers: label compaction, raw-space means, warm-up wiring."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from recluster.api.clustering import ClusteringConfig
from recluster.engine.result import ClusteringResult, cluster_means, compact_labels


def test_compact_labels_renumbers_and_keeps_noise() -> None:
    labels = np.array([5, 5, -1, 2, 9, 2], dtype=np.int64)
    np.testing.assert_array_equal(compact_labels(labels), [1, 1, -1, 0, 2, 0])
    assert compact_labels(labels).dtype == np.int32
    already = np.array([0, 1, 1, -1], dtype=np.int32)
    np.testing.assert_array_equal(compact_labels(already), already)
    np.testing.assert_array_equal(compact_labels(np.array([-1, -1])), [-1, -1])


def test_cluster_means_with_row_scale_recovers_raw_means(monkeypatch: object) -> None:
    import recluster.engine.result as result_module

    result_module._CENTROID_CHUNK_ROWS = 3  # exercise chunking
    try:
        rng = np.random.default_rng(0)
        raw = rng.normal(size=(10, 4)).astype(np.float32) * 7
        labels = np.array([0, 1, -1, 1, 0, 2, 2, -1, 0, 1], dtype=np.int32)
        norms = np.linalg.norm(raw, axis=1).astype(np.float32)
        unit = raw / norms[:, None]
        means, sizes = cluster_means(unit, labels, 3, row_scale=norms)
        np.testing.assert_array_equal(sizes, [3, 3, 2])
        for c in range(3):
            np.testing.assert_allclose(means[c], raw[labels == c].mean(axis=0), rtol=1e-5)
    finally:
        result_module._CENTROID_CHUNK_ROWS = 131072


def test_result_properties() -> None:
    result = ClusteringResult(
        labels=np.array([0, 0, 1, -1], dtype=np.int32),
        centroids=np.zeros((2, 3), dtype=np.float32),
        sizes=np.array([2, 1], dtype=np.int64),
        quality=None,
    )
    assert (result.num_clusters, result.num_documents, result.noise_fraction) == (2, 4, 0.25)
    assert result.summary()["quality_score"] is None


def test_numba_kernels_are_cached_so_warmup_can_prebuild_them() -> None:
    """warmup relies on fast_hdbscan's kernels being cache=True (on-disk cache)."""
    from fast_hdbscan import core_graph, precomputed  # type: ignore[import-untyped]
    from numba.core.caching import NullCache

    from recluster.engine import lloyd_kernels, warmup
    from recluster.engine.kmeans import kmeans

    ours = (lloyd_kernels.nearest_and_sum_into, lloyd_kernels.nearest_distance_into)
    for kernel in (precomputed._core_distances_csr, core_graph.boruvka_mst, *ours):
        assert not isinstance(kernel._cache, NullCache), kernel
    warmup.warmup()
    # What warmup compiled is what a large k-means uses: nothing new to compile in a Job.
    compiled = [list(kernel.signatures) for kernel in ours]
    assert all(len(signatures) == 1 for signatures in compiled)
    rows = np.random.default_rng(0).standard_normal((30_000, 200), dtype=np.float32)
    kmeans(rows, 20)
    assert [list(kernel.signatures) for kernel in ours] == compiled


def test_warmup_runs_the_numba_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path warmup exists for: hdbscan with cluster_selection_epsilon > 0."""
    from recluster.engine import warmup

    configs: list[ClusteringConfig] = []
    real = warmup.cluster

    def spy(matrix: Any, config: ClusteringConfig) -> Any:
        configs.append(config)
        return real(matrix, config)

    monkeypatch.setattr(warmup, "cluster", spy)
    seconds = warmup.warmup()
    assert list(seconds) == ["hdbscan_epsilon", "kmeans_parallel", "map_umap"]
    [config] = configs
    assert config.algorithm == "hdbscan" and (config.cluster_selection_epsilon or 0) > 0
    # the map's UMAP epoch kernel: switched to the disk cache, then compiled (so saved)
    import umap.layouts  # type: ignore[import-untyped]
    from numba.core.caching import FunctionCache

    epoch = umap.layouts._nb_optimize_layout_euclidean_single_epoch
    assert isinstance(epoch._cache, FunctionCache) and epoch.signatures
