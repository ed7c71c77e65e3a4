"""dbscan: scikit-learn's DBSCAN labels, computed without importing scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from engine_support import make_blobs, modules_loaded
from scipy.spatial.distance import cdist  # type: ignore[import-untyped]
from sklearn.cluster import DBSCAN  # type: ignore[import-untyped]

from recluster.engine import density
from recluster.engine.synthetic import hard_embeddings


@pytest.mark.parametrize(("eps", "min_samples"), [(0.8, 5), (1.2, 10), (0.5, 3), (3.0, 40)])
def test_dbscan_gives_scikit_learns_labels(eps: float, min_samples: int) -> None:
    rows, _ = make_blobs(n=500, k=5, d=6, std=0.5)
    noise = np.random.default_rng(1).uniform(-8, 8, size=(40, 6)).astype(np.float32)
    rows = np.ascontiguousarray(np.vstack([rows, noise]))
    theirs = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(rows)
    assert density.dbscan(rows, eps=eps, min_samples=min_samples).tolist() == theirs.tolist()


def test_dbscan_on_embeddings_matches_scikit_learn() -> None:
    made = hard_embeddings(2_000, 384, 10, seed=4)
    theirs = DBSCAN(eps=0.45, min_samples=10).fit_predict(made.matrix)
    ours = density.dbscan(made.matrix, eps=0.45, min_samples=10)
    assert np.unique(ours[ours >= 0]).size >= 5
    assert ours.tolist() == theirs.tolist()


def test_a_border_row_joins_the_first_cluster_that_reaches_it() -> None:
    # Two dense runs on a line, and one row (index 0) within eps of a core row of each.
    line = [0.0, -1.0, -1.1, -1.2, -1.3, 1.0, 1.1, 1.2, 1.3]
    rows = np.array([[x, 0.0] for x in line], dtype=np.float32)
    ours = density.dbscan(rows, eps=1.05, min_samples=4)
    theirs = DBSCAN(eps=1.05, min_samples=4).fit_predict(rows)
    assert ours.tolist() == theirs.tolist()
    assert ours[0] == ours[1] != ours[5]


def test_everything_is_noise_without_a_core_row() -> None:
    rows = np.eye(5, dtype=np.float32) * 10
    assert density.dbscan(rows, eps=1.0, min_samples=2).tolist() == [-1] * 5


@pytest.mark.parametrize("block_rows", [7, 64, 1_024])
def test_radius_graph_is_the_brute_force_graph(
    block_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each block computes its pairs with the rows from its first on; the graph gets both
    directions and every row itself. The radius sits in a gap of the distances, so float32
    and float64 must agree on every pair."""
    matrix = hard_embeddings(700, 384, 10, seed=4).matrix
    exact = cdist(matrix.astype(np.float64), matrix.astype(np.float64))
    pairs = np.sort(exact[np.triu_indices(matrix.shape[0], k=1)])
    gap = np.flatnonzero(np.diff(pairs) > 2e-5)  # the radius goes in the middle of one
    middles = (pairs[gap] + pairs[gap + 1]) / 2
    radius = float(middles[np.argmin(np.abs(middles - 0.45))])  # dbscan's eps on such data
    margin = float(np.abs(exact - radius).min())
    assert margin > 1e-5 and abs(radius - 0.45) < 0.01
    monkeypatch.setattr(density, "radius_block_rows", lambda n: block_rows)
    graph = density.radius_graph(matrix, radius)
    expected = exact <= radius
    assert graph.shape == expected.shape and graph.nnz == np.count_nonzero(expected)
    assert np.array_equal(graph.toarray(), expected)


@pytest.mark.parametrize(
    ("dims", "values", "eps", "min_samples"), [(3, 6, 1.0, 4), (16, 3, 3.0, 8)]
)
def test_dbscan_on_a_lattice_counts_rows_at_exactly_eps(
    dims: int, values: int, eps: float, min_samples: int
) -> None:
    """Integer rows (with copies) have many pairs exactly eps apart, which scikit-learn counts
    as neighbours (distance <= eps): the float32 products must not round them out."""
    lattice = np.random.default_rng(0).integers(0, values, size=(400, dims))
    rows = np.ascontiguousarray(lattice.astype(np.float32) + np.float32(100.0))
    theirs = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(rows)
    assert density.dbscan(rows, eps=eps, min_samples=min_samples).tolist() == theirs.tolist()


def test_radius_blocks_stay_within_their_memory() -> None:
    assert density.radius_block_rows(1_000) == 1_024
    rows = density.radius_block_rows(1_000_000)
    assert 16 <= rows < 1_024
    assert rows * 1_000_000 * 4 <= density.RADIUS_BLOCK_BYTES
    assert density.radius_block_rows(100_000_000) == 16


def test_dbscan_imports_no_scikit_learn() -> None:
    assert modules_loaded("sklearn", {"algorithm": "dbscan", "eps": 3.0}) == []


def test_only_the_neighbour_searches_import_faiss() -> None:
    """faiss costs ~0.6 s to import in a fresh Job: k-means, dbscan and the scikit-learn
    algorithms never pay it; a neighbour search does (the check's positive control)."""
    configs = (
        {"algorithm": "kmeans", "n_clusters": 3},
        {"algorithm": "dbscan", "eps": 3.0},
        {"algorithm": "gaussian_mixture", "n_clusters": 3},
    )
    assert modules_loaded("faiss", *configs) == []
    search = "from recluster.engine.neighbours import exact_neighbours\n"
    search += "exact_neighbours(rows, np.arange(5), 3)"
    assert "faiss" in modules_loaded("faiss", then=search)
