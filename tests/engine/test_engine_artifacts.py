"""Per-run geometry: distances, representatives, the map sample, layouts (engine/artifacts.py)."""

from __future__ import annotations

import numpy as np
import pytest

from recluster.engine.artifacts import (
    LAYOUT_PER_CLUSTER,
    REPRESENTATIVES,
    GeometryBuilder,
    layout_sample,
)
from recluster.engine.maplayout import pack_discs
from recluster.engine.synthetic import blobs


def centroids_of(matrix: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    return np.stack([matrix[labels == c].mean(axis=0) for c in range(k)]).astype(np.float32)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = blobs(2_000, 24, 6, seed=11, spread=2.0)
    labels = d.labels.copy()
    labels[::50] = -1  # some noise
    return d.matrix, labels, centroids_of(d.matrix, labels, 6)


def test_distances_are_cosine_distances_to_the_own_centroid(data: tuple) -> None:
    matrix, labels, centroids = data
    builder = GeometryBuilder(labels, centroids, seed=0)
    builder.add(0, matrix)
    g = builder.finish("pca")
    members = labels >= 0
    x = matrix[members] / np.linalg.norm(matrix[members], axis=1, keepdims=True)
    c = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    expected = 1 - np.einsum("ij,ij->i", x, c[labels[members]])
    np.testing.assert_allclose(g.distances[members], expected, atol=1e-5)
    assert np.isnan(g.distances[~members]).all()
    for k in range(6):
        assert g.spread[k] == pytest.approx(expected[labels[members] == k].mean(), abs=1e-5)


def test_representatives_are_the_most_central_members(data: tuple) -> None:
    matrix, labels, centroids = data
    builder = GeometryBuilder(labels, centroids, seed=0)
    builder.add(0, matrix)
    g = builder.finish("pca")
    for k, reps in enumerate(g.representatives):
        members = np.flatnonzero(labels == k)
        order = members[np.argsort(g.distances[members], kind="stable")]
        assert reps.tolist() == order[:REPRESENTATIVES].tolist()
        assert (labels[reps] == k).all()
    assert set(g.central_rows(3).tolist()) == {r for reps in g.representatives for r in reps[:3]}


def test_blocks_give_what_the_whole_matrix_gives(data: tuple) -> None:
    matrix, labels, centroids = data
    whole = GeometryBuilder(labels, centroids, seed=5, max_layout_rows=500)
    whole.add(0, matrix)
    blocked = GeometryBuilder(labels, centroids, seed=5, max_layout_rows=500)
    for start in range(0, len(matrix), 333):
        blocked.add(start, matrix[start : start + 333])
    a, b = whole.finish("clusters"), blocked.finish("clusters")
    np.testing.assert_array_equal(a.distances, b.distances)
    np.testing.assert_array_equal(a.layout_xy, b.layout_xy)
    with pytest.raises(ValueError, match="expected row 0"):
        GeometryBuilder(labels, centroids, seed=0).add(10, matrix[10:20])
    with pytest.raises(ValueError, match="only 0 of 2000 rows"):
        GeometryBuilder(labels, centroids, seed=0).finish()


def test_the_map_sample_gives_every_cluster_a_place() -> None:
    rng = np.random.default_rng(1)
    # One huge cluster and 300 tiny ones: a uniform sample would miss most of them.
    labels = np.concatenate([np.zeros(100_000), np.repeat(np.arange(1, 301), 3), [-1] * 50])
    labels = rng.permutation(labels).astype(np.int32)
    rows = layout_sample(labels, 301, seed=3, max_rows=2_000)
    assert len(rows) == 2_000 and np.all(np.diff(rows) > 0)
    counts = np.bincount(labels[rows][labels[rows] >= 0], minlength=301)
    assert counts.min() >= min(3, LAYOUT_PER_CLUSTER)
    assert np.array_equal(rows, layout_sample(labels, 301, seed=3, max_rows=2_000))
    assert not np.array_equal(rows, layout_sample(labels, 301, seed=4, max_rows=2_000))
    assert np.array_equal(layout_sample(labels[:100], 301, seed=3), np.arange(100))


def test_the_cluster_layout_keeps_discs_apart(data: tuple) -> None:
    matrix, labels, centroids = data
    builder = GeometryBuilder(labels, centroids, seed=0)
    builder.add(0, matrix)
    g = builder.finish("clusters")
    assert g.layout_method == "clusters" and np.isfinite(g.centroid_xy).all()
    sample_labels = labels[g.layout_rows]
    radius = {}
    for k in range(6):
        reach = np.linalg.norm(g.layout_xy[sample_labels == k] - g.centroid_xy[k], axis=1)
        radius[k] = reach.max()
    for i in range(6):  # members stay within their own disc, discs do not overlap
        for j in range(i + 1, 6):
            gap = np.linalg.norm(g.centroid_xy[i] - g.centroid_xy[j])
            assert gap >= (radius[i] + radius[j]) / 1.1 - 1e-6


def test_packing_separates_coincident_discs() -> None:
    centres = np.zeros((50, 2))
    radii = np.linspace(0.2, 1.0, 50)
    packed = pack_discs(centres, radii)
    dist = np.linalg.norm(packed[:, None] - packed[None], axis=2)
    need = radii[:, None] + radii[None, :]
    np.fill_diagonal(dist, np.inf)
    assert (dist >= need * 0.999).all()
