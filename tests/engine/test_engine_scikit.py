"""The algorithms with scikit-learn's semantics give scikit-learn's result by the cheaper path."""

from __future__ import annotations

import numpy as np
import pytest
from engine_support import make_blobs, modules_loaded
from sklearn.cluster import (  # type: ignore[import-untyped]
    AgglomerativeClustering,
    MeanShift,
    estimate_bandwidth,
)
from sklearn.metrics import adjusted_rand_score  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from recluster.engine import scikit
from recluster.engine.preprocess import sample_rows
from recluster.engine.synthetic import hard_embeddings


@pytest.mark.parametrize("linkage", ["ward", "complete", "average", "single"])
def test_agglomerative_gives_scikit_learns_clusters(linkage: str) -> None:
    rows, _ = make_blobs(n=400, k=6, d=16, std=1.5)
    ours = scikit.agglomerative(rows, n_clusters=6, linkage=linkage)
    theirs = AgglomerativeClustering(n_clusters=6, linkage=linkage).fit_predict(rows)
    assert np.unique(ours).tolist() == list(range(6))
    assert adjusted_rand_score(theirs, ours) == 1.0


@pytest.mark.parametrize("threshold", [5.0, 20.0, 60.0])
def test_agglomerative_distance_threshold_cuts_where_scikit_learn_does(threshold: float) -> None:
    rows, _ = make_blobs(n=300, k=5, d=8, std=1.0)
    ours = scikit.agglomerative(rows, distance_threshold=threshold)
    theirs = AgglomerativeClustering(n_clusters=None, distance_threshold=threshold).fit_predict(
        rows
    )
    assert np.unique(ours).size == np.unique(theirs).size
    assert adjusted_rand_score(theirs, ours) == 1.0


@pytest.mark.parametrize("linkage", ["ward", "complete", "average", "single"])
@pytest.mark.parametrize("n_clusters", [10, 40])
def test_agglomerative_with_copied_rows_gives_scikit_learns_clusters(
    linkage: str, n_clusters: int
) -> None:
    """30 rows, 5 copies each: asking 40 clusters splits copies, which scikit-learn
    (pdist's exact zeros, ties broken by index) does in a definite order."""
    rows, _ = make_blobs(n=30, k=3, d=16, std=1.5)
    copied = np.ascontiguousarray(np.repeat(rows, 5, axis=0))
    ours = scikit.agglomerative(copied, n_clusters=n_clusters, linkage=linkage)
    theirs = AgglomerativeClustering(n_clusters=n_clusters, linkage=linkage).fit_predict(copied)
    assert adjusted_rand_score(theirs, ours) == 1.0


@pytest.mark.parametrize("linkage", ["ward", "complete", "average", "single"])
@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_agglomerative_on_a_lattice_breaks_ties_as_scikit_learn_does(
    linkage: str, offset: float
) -> None:
    """Integer rows have many equal distances; which of them merges first shapes the tree."""
    lattice = np.random.default_rng(0).integers(0, 6, size=(300, 5)).astype(np.float32)
    rows = np.ascontiguousarray(lattice + np.float32(offset))
    for n_clusters in (5, 20):
        ours = scikit.agglomerative(rows, n_clusters=n_clusters, linkage=linkage)
        theirs = AgglomerativeClustering(n_clusters=n_clusters, linkage=linkage).fit_predict(rows)
        assert adjusted_rand_score(theirs, ours) == 1.0


def test_cut_tree_undoes_the_last_merges() -> None:
    # Leaves 0..4; merges: (0,1)->5, (2,3)->6, (5,6)->7, (4,7)->8.
    children = np.array([[0, 1], [2, 3], [5, 6], [4, 7]], dtype=np.int64)
    assert scikit.cut_tree(children, 5, 1).tolist() == [0, 0, 0, 0, 0]
    assert scikit.cut_tree(children, 5, 2).tolist() == [0, 0, 0, 0, 1]
    assert scikit.cut_tree(children, 5, 3).tolist() == [0, 0, 1, 1, 2]
    assert scikit.cut_tree(children, 5, 5).tolist() == [0, 1, 2, 3, 4]


def test_agglomerative_imports_no_scikit_learn() -> None:
    """A fresh Job must not pay scikit-learn's import (seconds) for a tree SciPy builds."""
    config = {"algorithm": "agglomerative", "n_clusters": 3}
    assert modules_loaded("sklearn", config) == []


def test_mean_shift_seeds_every_row_of_a_small_collection() -> None:
    """Up to MEAN_SHIFT_SEED_ROWS rows it is scikit-learn's MeanShift() exactly."""
    rows, _ = make_blobs(n=300, k=4, d=8)
    assert scikit.mean_shift_seeds(300).tolist() == list(range(300))
    ours = scikit.mean_shift(rows)
    theirs = MeanShift().fit_predict(rows)
    assert adjusted_rand_score(theirs, ours) == 1.0


def test_mean_shift_seeds_a_sample_of_a_large_collection() -> None:
    seeds = scikit.mean_shift_seeds(50_000, random_state=1)
    assert seeds.size == scikit.MEAN_SHIFT_SEED_ROWS
    assert np.unique(seeds).size == seeds.size and seeds.max() < 50_000
    assert seeds.tolist() == scikit.mean_shift_seeds(50_000, random_state=1).tolist()


def test_mean_shift_clusters_normalised_embeddings() -> None:
    """Bin seeding put the only seed at the origin of 384-d unit vectors and raised
    'No point was within bandwidth'; row seeds always have their own row in reach."""
    made = hard_embeddings(1_500, 384, 10, seed=5)
    labels = scikit.mean_shift(made.matrix)
    assert labels.shape == (1_500,)
    assert np.unique(labels).size >= 2


@pytest.mark.parametrize("seed", [3, 5])
@pytest.mark.parametrize("bandwidth", [None, 1.5, 3.0])
def test_mean_shift_gives_scikit_learns_labels(seed: int, bandwidth: float | None) -> None:
    """Same modes, in scikit-learn's order (intensity, then coordinates), so the same numbers."""
    rows, _ = make_blobs(n=400, k=5, d=8, std=1.0, seed=seed)
    ours = scikit.mean_shift(rows, bandwidth=bandwidth)
    theirs = MeanShift(bandwidth=bandwidth).fit_predict(rows)
    assert ours.tolist() == theirs.tolist()


def test_mean_shift_on_embeddings_gives_scikit_learns_labels() -> None:
    made = hard_embeddings(300, 384, 6, seed=5)
    # one thread: its OpenMP radius queries, one per seed and step, crawl on a busy machine
    with threadpool_limits(1):
        theirs = MeanShift().fit_predict(made.matrix)
    ours = scikit.mean_shift(made.matrix)
    assert np.unique(ours).size >= 4
    assert ours.tolist() == theirs.tolist()


def test_mean_shift_from_sampled_seeds_and_bandwidth(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the sample sizes it is MeanShift given the sampled seeds and the sample's estimate."""
    monkeypatch.setattr(scikit, "MEAN_SHIFT_SEED_ROWS", 100)
    monkeypatch.setattr(scikit, "BANDWIDTH_SAMPLE_ROWS", 150)
    rows, _ = make_blobs(n=500, k=5, d=8, std=1.0)
    seeds = rows[scikit.mean_shift_seeds(500, random_state=7)]
    bandwidth = estimate_bandwidth(rows[sample_rows(500, 150, 7)])
    theirs = MeanShift(bandwidth=bandwidth, seeds=seeds).fit_predict(rows)
    assert scikit.mean_shift(rows, random_state=7).tolist() == theirs.tolist()


def test_mean_shift_stops_a_seed_after_max_iter_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """scikit-learn computes max_iter + 1 means before it stops a seed that still moves."""
    monkeypatch.setattr(scikit, "MEAN_SHIFT_MAX_ITER", 1)
    rows, _ = make_blobs(n=300, k=4, d=8, std=1.0)
    theirs = MeanShift(bandwidth=3.0, max_iter=1).fit(rows)
    assert theirs.n_iter_ == 1  # some seeds were stopped, not converged (14 modes, 23 after 1 mean)
    assert scikit.mean_shift(rows, bandwidth=3.0).tolist() == theirs.labels_.tolist()


@pytest.mark.parametrize(
    "rows",
    [
        make_blobs(n=300, k=4, d=8)[0],
        make_blobs(n=200, k=3, d=8)[0] + np.float32(1_000.0),
        make_blobs(n=200, k=3, d=8, box=50.0)[0],
        np.ascontiguousarray(np.repeat(make_blobs(n=40, k=3, d=8)[0], 6, axis=0)),
        hard_embeddings(500, 384, 6, seed=2).matrix,
        make_blobs(n=3, k=1, d=4)[0],
        make_blobs(n=7, k=2, d=4)[0],
    ],
    ids=["blobs", "far-from-origin", "far-apart", "copies", "embeddings", "3-rows", "7-rows"],
)
def test_estimate_bandwidth_is_scikit_learns(rows: np.ndarray) -> None:
    assert scikit.estimate_bandwidth(rows) == pytest.approx(estimate_bandwidth(rows), rel=1e-5)


def test_mean_shift_imports_no_scikit_learn() -> None:
    configs = ({"algorithm": "mean_shift"}, {"algorithm": "mean_shift", "bandwidth": 2.0})
    assert modules_loaded("sklearn", *configs) == []
