"""The map's layouts: UMAP by default, PCA where UMAP cannot run (engine/maplayout.py)."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from recluster.engine import maplayout
from recluster.engine.artifacts import GeometryBuilder
from recluster.engine.synthetic import hard_embeddings


def centroids_of(matrix: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    return np.stack([matrix[labels == c].mean(axis=0) for c in range(k)]).astype(np.float32)


@pytest.fixture(scope="module")
def planted() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Hard embeddings: topics in pairs, shared directions, Zipf sizes, 5 % noise.
    data = hard_embeddings(1_500, 64, 8, seed=3)
    labels = data.labels.astype(np.int32)
    return data.matrix, labels, centroids_of(data.matrix, labels, 8)


def neighbourhood_kept(matrix: np.ndarray, xy: np.ndarray, k: int = 10) -> float:
    """Mean share of each row's k nearest rows (cosine) that are among its k nearest on the map."""
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    high = np.argsort(-(unit @ unit.T), axis=1)[:, 1 : k + 1]
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)
    low = np.argsort(d2, axis=1)[:, 1 : k + 1]
    return float(np.mean([np.intersect1d(h, lo).size / k for h, lo in zip(high, low, strict=True)]))


def separation(xy: np.ndarray, labels: np.ndarray) -> float:
    """Share of clustered rows whose nearest clustered row on the map has the same cluster."""
    keep = labels >= 0
    xy, labels = xy[keep], labels[keep]
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d2, np.inf)
    return float(np.mean(labels[np.argmin(d2, axis=1)] == labels))


def test_the_default_map_is_umap_and_keeps_neighbourhoods_better_than_pca(planted: tuple) -> None:
    matrix, labels, centroids = planted
    builder = GeometryBuilder(labels, centroids, seed=0)
    builder.add(0, matrix)
    umap_map = builder.finish()
    pca_map = builder.finish("pca")
    assert umap_map.layout_method == "umap" and pca_map.layout_method == "pca"
    assert umap_map.layout_xy.shape == (1_500, 2) and np.isfinite(umap_map.layout_xy).all()
    kept = neighbourhood_kept(matrix, umap_map.layout_xy)
    assert kept > 1.5 * neighbourhood_kept(matrix, pca_map.layout_xy), kept
    assert separation(umap_map.layout_xy, labels) > 0.9 > separation(pca_map.layout_xy, labels)
    # a centroid sits on one of its members, the one nearest the others
    members = umap_map.layout_xy[labels == 2]
    total = np.linalg.norm(members[:, None] - members[None, :], axis=2).sum(axis=1)
    np.testing.assert_allclose(umap_map.centroid_xy[2], members[np.argmin(total)], rtol=1e-6)


def test_too_few_rows_for_umap_get_pca(caplog: pytest.LogCaptureFixture) -> None:
    data = hard_embeddings(maplayout.UMAP_MIN_ROWS - 1, 32, 2, seed=0)
    centroids = centroids_of(data.matrix, np.maximum(data.labels, 0), 2)
    with caplog.at_level(logging.INFO, logger=maplayout.__name__):
        xy, _, method = maplayout.layout_2d(
            data.matrix, data.labels.astype(np.int32), centroids, np.ones(2, np.int64), "umap", 0
        )
    assert method == "pca" and xy.shape == (maplayout.UMAP_MIN_ROWS - 1, 2)
    assert "outside UMAP's 16..200000; PCA instead" in caplog.text


def test_a_sample_above_the_umap_limit_gets_pca(
    planted: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    matrix, labels, centroids = planted
    monkeypatch.setattr(maplayout, "UMAP_MAX_ROWS", 1_000)
    _, _, method = maplayout.layout_2d(matrix, labels, centroids, np.ones(8, np.int64), "umap", 0)
    assert method == "pca"


def test_without_umap_learn_the_map_falls_back_to_pca(
    planted: tuple, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    matrix, labels, centroids = planted
    monkeypatch.setitem(sys.modules, "umap", None)  # `import umap` raises ImportError
    xy, centres, method = maplayout.layout_2d(
        matrix, labels, centroids, np.ones(8, np.int64), "umap", 0
    )
    assert method == "pca"
    np.testing.assert_array_equal(xy, maplayout.pca(maplayout.unit_rows(matrix), 2, 0))
    assert np.isfinite(centres).all()
    assert "map: UMAP failed (ModuleNotFoundError: import of umap halted" in caplog.text
    assert "PCA instead" in caplog.text
