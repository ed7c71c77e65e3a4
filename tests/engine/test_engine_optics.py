"""optics: scikit-learn's OPTICS (ordering, reachability and xi labels), without scikit-learn.

Where the arithmetic is exact (integer coordinates) every array equals
scikit-learn's; on real-valued data the labels do, while the ordering may
differ at near-ties that scikit-learn itself breaks by rounding noise (see
the module doc of recluster.engine.optics).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from engine_support import modules_loaded
from sklearn.cluster import OPTICS  # type: ignore[import-untyped]

from recluster.engine import optics
from recluster.engine.synthetic import hard_embeddings

INF = np.inf
Rows = Callable[[], npt.NDArray[np.float32]]

# A line of rows, hand-checkable with min_samples=2 (core = distance to the nearest other
# row). Row 0 reaches 2 and 6 at its core distance 1: a tie, which goes to the lower index.
LINE = np.array([[0, 0], [10, 0], [1, 0], [11, 0], [3, 0], [30, 0], [-1, 0]], dtype=np.float32)


def densities(seed: int = 0, d: int = 8) -> npt.NDArray[np.float32]:
    """Three blobs of different spreads (0.1, 0.5, 1.5) and sizes, plus uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, size=(3, d))
    parts = [
        centres[i] + rng.normal(scale=spread, size=(size, d))
        for i, (spread, size) in enumerate([(0.1, 150), (0.5, 150), (1.5, 100)])
    ]
    parts.append(rng.uniform(-12, 12, size=(20, d)))
    return np.vstack(parts).astype(np.float32)


def with_duplicates(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Rows plus a copy of every third and every seventh one: exact ties of distances."""
    return np.ascontiguousarray(np.vstack([rows, rows[::3], rows[::7]]))


def quantised_embeddings(n: int = 600) -> npt.NDArray[np.float32]:
    """hard_embeddings × 64 rounded to integers: 384-D, yet every distance computed exactly."""
    return np.round(hard_embeddings(n, 384, seed=3).matrix * 64).astype(np.float32)


def integer_grid() -> npt.NDArray[np.float32]:
    """Two groups of 2-D integer points, with many repeated rows and equal distances."""
    rng = np.random.default_rng(0)
    return np.vstack(
        [rng.integers(0, 20, size=(200, 2)), rng.integers(40, 60, size=(100, 2))]
    ).astype(np.float32)


def scikit_learns(
    rows: npt.NDArray[np.float32], min_samples: int, max_eps: float = INF, xi: float = 0.05
) -> OPTICS:
    return OPTICS(min_samples=min_samples, max_eps=max_eps, xi=xi).fit(rows)


def test_optics_orders_a_line_as_worked_out_by_hand() -> None:
    graph = optics.optics_graph(LINE, 2)
    assert graph.ordering.tolist() == [0, 2, 6, 4, 1, 3, 5]
    assert graph.core_distances.tolist() == [1, 1, 1, 1, 2, 19, 1]
    assert graph.reachability.tolist() == [INF, 7, 1, 1, 2, 19, 1]
    assert graph.predecessor.tolist() == [-1, 4, 0, 1, 2, 3, 0]
    assert_same_graph(graph, scikit_learns(LINE, 2))


def test_max_eps_bounds_core_distances_and_the_rows_reached() -> None:
    """Row 5's core distance (19) passes max_eps; row 1 is 7 from the rows processed
    before it, so nothing reaches it and the lowest unprocessed row comes next."""
    graph = optics.optics_graph(LINE, 2, max_eps=5.0)
    assert graph.ordering.tolist() == [0, 2, 6, 4, 1, 3, 5]
    assert graph.core_distances.tolist() == [1, 1, 1, 1, 2, INF, 1]
    assert graph.reachability.tolist() == [INF, INF, 1, 1, 2, INF, 1]
    assert graph.predecessor.tolist() == [-1, -1, 0, 1, 2, -1, 0]
    assert_same_graph(graph, scikit_learns(LINE, 2, max_eps=5.0))


def assert_same_graph(graph: optics.OpticsGraph, model: OPTICS) -> None:
    assert graph.ordering.tolist() == model.ordering_.tolist()
    assert graph.predecessor.tolist() == model.predecessor_.tolist()
    assert graph.reachability.tolist() == model.reachability_.tolist()  # inf == inf
    assert graph.core_distances.tolist() == model.core_distances_.tolist()


EXACT_CASES = [
    pytest.param(quantised_embeddings, 5, INF, id="embeddings-ms5"),
    pytest.param(quantised_embeddings, 10, INF, id="embeddings-ms10"),
    pytest.param(lambda: with_duplicates(quantised_embeddings()), 5, INF, id="duplicates"),
    pytest.param(lambda: with_duplicates(quantised_embeddings()), 5, 30.0, id="duplicates-max-eps"),
    pytest.param(integer_grid, 5, INF, id="grid"),
    pytest.param(integer_grid, 5, 2.0, id="grid-max-eps"),
]


@pytest.mark.parametrize(("make", "min_samples", "max_eps"), EXACT_CASES)
@pytest.mark.parametrize("memory_bytes", [optics.DISTANCE_ROWS_BYTES, 1], ids=["whole", "rows"])
def test_graph_equals_scikit_learns_where_the_arithmetic_is_exact(
    make: Rows, min_samples: int, max_eps: float, memory_bytes: int
) -> None:
    """Ordering, predecessors, reachability and core distances, value for value: with the
    whole distance matrix and with rows computed on the fly (a 128-row cache)."""
    rows = make()
    graph = optics.optics_graph(rows, min_samples, max_eps, memory_bytes=memory_bytes)
    model = scikit_learns(rows, min_samples, max_eps)
    assert_same_graph(graph, model)
    labels = optics.xi_labels(graph.ordering, optics.xi_clusters(graph, min_samples))
    assert labels.tolist() == model.labels_.tolist()


LABEL_CASES = [
    pytest.param(densities, 5, INF, 0.05, id="densities-ms5"),
    pytest.param(densities, 10, INF, 0.05, id="densities-ms10"),
    pytest.param(densities, 5, INF, 0.2, id="densities-xi0.2"),
    pytest.param(densities, 20, INF, 0.1, id="densities-ms20-xi0.1"),
    pytest.param(lambda: with_duplicates(densities()), 5, INF, 0.05, id="duplicates-ms5"),
    pytest.param(lambda: with_duplicates(densities()), 10, INF, 0.05, id="duplicates-ms10"),
    pytest.param(lambda: hard_embeddings(800, 384, seed=3).matrix, 5, INF, 0.05, id="hard-ms5"),
    pytest.param(lambda: hard_embeddings(800, 384, seed=3).matrix, 10, INF, 0.1, id="hard-xi0.1"),
    pytest.param(lambda: hard_embeddings(800, 384, seed=3).matrix, 15, INF, 0.02, id="hard-ms15"),
    pytest.param(lambda: hard_embeddings(800, 384, seed=3).matrix, 10, 0.45, 0.05, id="hard-eps"),
]


@pytest.mark.parametrize(("make", "min_samples", "max_eps", "xi"), LABEL_CASES)
def test_labels_equal_scikit_learns(
    make: Rows, min_samples: int, max_eps: float, xi: float
) -> None:
    """Exactly the same labels, on real-valued data; core distances to rounding error."""
    rows = make()
    model = scikit_learns(rows, min_samples, max_eps, xi)
    ours = optics.optics(rows, min_samples=min_samples, max_eps=max_eps, xi=xi)
    assert ours.tolist() == model.labels_.tolist()
    assert len(set(ours.tolist())) > 3  # clusters and noise, not a degenerate case
    graph = optics.optics_graph(rows, min_samples, max_eps)
    np.testing.assert_allclose(graph.core_distances, model.core_distances_, rtol=1e-9)


def test_labels_of_on_the_fly_rows_equal_scikit_learns() -> None:
    """The path above DISTANCE_ROWS_BYTES (here a 128-row cache) on real-valued data."""
    rows = hard_embeddings(1_000, 384, seed=4).matrix
    model = scikit_learns(rows, 10)
    graph = optics.optics_graph(rows, 10, memory_bytes=1)
    labels = optics.xi_labels(graph.ordering, optics.xi_clusters(graph, 10))
    assert labels.tolist() == model.labels_.tolist()


@pytest.mark.parametrize("max_eps", [INF, 0.45])
def test_rows_computed_ahead_are_nearly_all_used(max_eps: float) -> None:
    """On the fly, rows are computed a batch at a time for the rows likely to come next;
    nearly every one must be used before the cache (512 rows here) drops it."""
    rows = hard_embeddings(1_000, 384, seed=4).matrix
    on_the_fly = optics.optics_graph(rows, 10, max_eps, memory_bytes=8 * 1_000 * 512)
    assert on_the_fly.rows_computed <= 1_100
    assert optics.optics_graph(rows, 10, max_eps).rows_computed == 1_000


def test_min_cluster_size_defaults_to_min_samples() -> None:
    rows = densities()
    graph = optics.optics_graph(rows, 5)
    assert optics.xi_clusters(graph, 5) == optics.xi_clusters(graph, 5, min_cluster_size=5)
    assert optics.xi_clusters(graph, 5) != optics.xi_clusters(graph, 5, min_cluster_size=40)


def test_min_samples_below_two_is_refused_as_by_scikit_learn() -> None:
    with pytest.raises(ValueError, match="min_samples"):
        optics.optics(LINE, min_samples=1)


def test_optics_imports_no_scikit_learn() -> None:
    """A fresh Job must not pay scikit-learn's import (seconds) for optics."""
    assert modules_loaded("sklearn", {"algorithm": "optics", "min_samples": 5}) == []
