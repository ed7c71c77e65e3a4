"""hdbscan against the reference implementation, on hard generated data and real embeddings.

Generated: `synthetic.hard_embeddings`: overlapping topic pairs separated
only along directions that carry little variance, anisotropic topics,
Zipf-skewed sizes and 5 % uniform noise (issue 13's class of failure).
Real: 1,000 MiniLM embeddings of Debian package descriptions
(tests/data/debian-packages-minilm-sample.npz, a sample of the benchmark's
corpus, see benchmarks/corpus.py), with many near-duplicates. The reference
is the `hdbscan` package (a test dependency). Each case is small enough for
the reference to take a second or two.
"""

from __future__ import annotations

from pathlib import Path

import hdbscan as reference  # type: ignore[import-untyped]
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score  # type: ignore[import-untyped]

from recluster.engine import density, neighbours
from recluster.engine.synthetic import hard_embeddings

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "debian-packages-minilm-sample.npz"


def reference_labels(matrix: np.ndarray, min_cluster_size: int) -> np.ndarray:
    return np.asarray(reference.HDBSCAN(min_cluster_size=min_cluster_size).fit_predict(matrix))


@pytest.fixture(scope="module")
def hard() -> tuple[np.ndarray, np.ndarray]:
    data = hard_embeddings(2_500, 96, 16, seed=5, topic_distance=1.0, pair_distance=0.5)
    return data.matrix, reference_labels(data.matrix, 15)


def test_small_collections_get_the_exact_algorithm(hard: tuple[np.ndarray, np.ndarray]) -> None:
    matrix, expected = hard
    labels = density.hdbscan(matrix, min_cluster_size=15)
    assert np.unique(expected[expected >= 0]).size >= 8  # the data has structure to find
    assert adjusted_rand_score(expected, labels) > 0.999
    assert np.array_equal(labels < 0, expected < 0)  # the same rows are noise


@pytest.fixture
def graph_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small data through the k-NN graph path: IVF search, verification, bridged pieces."""
    monkeypatch.setattr(density, "EXACT_MST_ROWS", 100)
    monkeypatch.setattr(neighbours, "EXACT_KNN_MAX_ROWS", 100)


@pytest.mark.usefixtures("graph_path")
def test_the_graph_path_agrees_with_the_reference(hard: tuple[np.ndarray, np.ndarray]) -> None:
    matrix, expected = hard
    labels = density.hdbscan(matrix, min_cluster_size=15)
    assert adjusted_rand_score(expected, labels) > 0.99


def test_neighbour_search_widens_until_the_sample_checks_out(
    hard: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search that misses neighbours is detected on the sample and redone wider."""
    monkeypatch.setattr(neighbours, "EXACT_KNN_MAX_ROWS", 100)
    monkeypatch.setattr(neighbours, "IVF_NPROBE", 1)
    matrix, _ = hard
    distances, ids, report = neighbours.knn_search(matrix, 31, 15)
    first, last = report.attempts[0], report.final
    assert first.recall < neighbours.MIN_RECALL  # one list of ~100 misses neighbours
    assert len(report.attempts) > 1
    assert last.recall >= neighbours.MIN_RECALL and last.core_error <= neighbours.MAX_CORE_ERROR
    rows = np.arange(0, matrix.shape[0], 50)
    true_d, _ = neighbours.exact_neighbours(matrix, rows, 31)
    np.testing.assert_allclose(distances[rows, 14], true_d[:, 14], rtol=1e-3)
    assert (ids[:, 0] >= 0).all()


def test_a_projection_is_used_only_when_few_components_carry_the_data() -> None:
    rng = np.random.default_rng(0)
    low_rank = (rng.normal(size=(3_000, 8)) @ rng.normal(size=(8, 256))).astype(np.float32)
    full_rank = rng.normal(size=(3_000, 256)).astype(np.float32)
    pca = neighbours.fit_pca(low_rank, 256)
    assert neighbours.choose_dims(pca) == neighbours.MIN_GRAPH_DIMS
    assert neighbours.choose_dims(neighbours.fit_pca(full_rank, 256)) is None


@pytest.fixture(scope="module")
def real() -> np.ndarray:
    return np.ascontiguousarray(np.load(SAMPLE)["embeddings"], dtype=np.float32)


@pytest.mark.parametrize("min_cluster_size", [5, 10])
def test_real_embeddings_exact_path_matches_the_reference(
    real: np.ndarray, min_cluster_size: int
) -> None:
    expected = reference_labels(real, min_cluster_size)
    labels = density.hdbscan(real, min_cluster_size=min_cluster_size)
    assert np.unique(expected[expected >= 0]).size >= 2
    assert adjusted_rand_score(expected, labels) > 0.99


@pytest.mark.usefixtures("graph_path")
def test_real_embeddings_graph_path_matches_the_reference(real: np.ndarray) -> None:
    expected = reference_labels(real, 5)
    assert adjusted_rand_score(expected, density.hdbscan(real, min_cluster_size=5)) > 0.95


def test_min_samples_counts_other_points_as_the_reference_does(real: np.ndarray) -> None:
    """scikit-learn's HDBSCAN counts the point itself: one neighbour less than the reference."""
    from sklearn.cluster import HDBSCAN  # type: ignore[import-untyped]

    expected = reference_labels(real, 5)
    ours = density.hdbscan(real, min_cluster_size=5)
    theirs = HDBSCAN(min_cluster_size=5, min_samples=6, copy=True).fit_predict(real)
    assert adjusted_rand_score(expected, ours) > 0.99
    assert adjusted_rand_score(theirs, ours) > 0.99  # the same once the count is shifted
