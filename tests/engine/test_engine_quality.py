"""The quality score: scikit-learn's silhouette, on a bounded sample, noise excluded."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from engine_support import Blobs, make_blobs
from sklearn.metrics import silhouette_score  # type: ignore[import-untyped]

from recluster.engine.quality import silhouette, silhouette_exact


def test_exact_silhouette_matches_sklearn() -> None:
    rows, truth = make_blobs(n=500, k=5, d=6, std=2.5)
    labels = truth.copy()
    labels[:7] = 4  # some misassigned rows, and one singleton cluster below
    labels[10] = 5
    ours = silhouette_exact(rows, labels.astype(np.intp))
    assert ours == pytest.approx(silhouette_score(rows, labels), abs=1e-5)


def test_many_clusters_use_the_sparse_indicator() -> None:
    rows, truth = make_blobs(n=3_000, k=600, d=4, std=0.1, box=5.0)
    _, labels = np.unique(truth, return_inverse=True)
    ours = silhouette_exact(rows, labels.astype(np.intp))
    # float32 distances (scikit-learn upcasts to float64): agreement to ~1e-4.
    assert ours == pytest.approx(silhouette_score(rows, labels), abs=5e-4)


def test_bounds_and_ordering(blobs: Blobs) -> None:
    rows, truth = blobs
    good = silhouette(rows, truth.astype(np.int32))
    shuffled = silhouette(rows, np.random.default_rng(0).permutation(truth).astype(np.int32))
    assert good is not None and shuffled is not None
    assert 0.7 < good <= 1.0
    assert -1.0 <= shuffled < 0.05


def test_noise_is_excluded(blobs: Blobs) -> None:
    rows, truth = blobs
    labels = truth.astype(np.int32)
    noisy_rows = np.vstack([rows, np.full((5, rows.shape[1]), 1e3, dtype=np.float32)])
    noisy_labels = np.concatenate([labels, np.full(5, -1, dtype=np.int32)])
    assert silhouette(noisy_rows, noisy_labels) == pytest.approx(silhouette(rows, labels))


def test_sample_is_bounded_and_seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    import recluster.engine.quality as quality

    rows, truth = make_blobs(n=4_000, k=4, d=6, std=2.0)
    labels = truth.astype(np.int32)
    measured: list[int] = []

    def counting(sample: npt.NDArray[np.float32], dense: npt.NDArray[np.intp]) -> float:
        measured.append(sample.shape[0])
        return silhouette_exact(sample, dense)

    monkeypatch.setattr(quality, "silhouette_exact", counting)
    a = silhouette(rows, labels, max_rows=500, random_state=1)
    b = silhouette(rows, labels, max_rows=500, random_state=1)
    full = silhouette(rows, labels, max_rows=10_000)
    assert measured == [500, 500, 4_000], "the O(n²) score ran on the bounded sample"
    assert a == b
    assert a is not None and full is not None and a == pytest.approx(full, abs=0.03)
    assert silhouette(rows, labels, max_rows=500, random_state=2) != a  # the seed picks it


def test_undefined_cases_return_none() -> None:
    rows = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    assert silhouette(rows, np.zeros(10, dtype=np.int32)) is None  # one cluster
    assert silhouette(rows, np.full(10, -1, dtype=np.int32)) is None  # all noise
    assert silhouette(rows[:3], np.arange(3, dtype=np.int32)) is None  # singletons only


def test_the_silhouette_sample_shrinks_with_the_collection() -> None:
    """A quarter of the rows, 1,000 to 5,000: the score never outweighs a small clustering."""
    from recluster.engine.quality import quality_rows

    assert [quality_rows(n) for n in (500, 6_000, 16_000, 1_000_000)] == [
        1_000,
        1_500,
        4_000,
        5_000,
    ]


def test_a_one_pass_clustering_samples_at_most_half_its_rows() -> None:
    """dbscan's clustering is one pass of N² distances, as a silhouette of all N rows is."""
    from recluster.engine.quality import quality_rows

    assert [quality_rows(n, "dbscan") for n in (10, 1_000, 1_999, 2_000, 6_000)] == [
        5,
        500,
        999,
        1_000,
        1_500,
    ]
    assert [quality_rows(n, "kmeans") for n in (1_000, 6_000)] == [1_000, 1_500]


def test_dbscan_scores_a_sample_of_a_small_collection() -> None:
    """The result's score is the silhouette of half the rows (seeded), not of all of them."""
    from recluster.api.clustering import ClusteringConfig
    from recluster.engine import cluster
    from recluster.engine.quality import silhouette

    rows, _ = make_blobs(n=600, k=4, d=8, std=0.5)
    result = cluster(rows, ClusteringConfig(algorithm="dbscan", eps=1.5, min_samples=5))
    assert np.count_nonzero(result.labels >= 0) > 300 and result.num_clusters == 4
    assert result.quality == silhouette(rows, result.labels, max_rows=300, random_state=42)
    assert result.quality != silhouette(rows, result.labels, max_rows=600, random_state=42)
