"""Normalisation and reduction: exact where claimed, in place when asked."""

from __future__ import annotations

import numpy as np
import pytest
from engine_support import Blobs, make_blobs

from recluster.engine.preprocess import (
    as_float32_matrix,
    fit_pca,
    l2_normalize,
    pca_reduce,
    sample_rows,
    umap_reduce,
)


def test_l2_normalize_copy_and_norms() -> None:
    rows = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    out, norms = l2_normalize(rows)
    assert out is not rows
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(norms, [5.0, 0.0, 1.0])
    np.testing.assert_array_equal(rows[0], [3.0, 4.0])  # input untouched


def test_l2_normalize_inplace_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    import recluster.engine.preprocess as preprocess

    monkeypatch.setattr(preprocess, "CHUNK_ROWS", 7)
    rows = np.random.default_rng(0).normal(size=(50, 5)).astype(np.float32) * 10
    original = rows.copy()
    out, norms = l2_normalize(rows, inplace=True)
    assert out is rows
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(norms, np.linalg.norm(original, axis=1), rtol=1e-5)
    # every chunk was scaled by its own rows' norms: the originals come back
    np.testing.assert_allclose(out * norms[:, None], original, rtol=1e-5)


def test_as_float32_matrix_copies_only_when_needed() -> None:
    rows = np.zeros((4, 3), dtype=np.float32)
    assert as_float32_matrix(rows) is rows
    assert as_float32_matrix(rows.astype(np.float64)).dtype == np.float32
    assert as_float32_matrix(np.asfortranarray(rows)).flags.c_contiguous
    with pytest.raises(ValueError, match="2-D"):
        as_float32_matrix(np.zeros(3))


def test_sample_rows_is_sorted_unique_and_seeded() -> None:
    a = sample_rows(1_000, 100, 5)
    assert a.size == 100 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, sample_rows(1_000, 100, 5))
    assert not np.array_equal(a, sample_rows(1_000, 100, 6))
    np.testing.assert_array_equal(sample_rows(10, 100, 5), np.arange(10))


def test_pca_matches_sklearn_subspace_and_variance(blobs: Blobs) -> None:
    from sklearn.decomposition import PCA  # type: ignore[import-untyped]

    rows, _ = blobs
    ours = fit_pca(rows, 3)
    theirs = PCA(n_components=3).fit(rows.astype(np.float64))
    # Same directions up to sign.
    overlap = np.abs(ours.components.T @ theirs.components_.T)
    np.testing.assert_allclose(np.diag(overlap), 1.0, atol=1e-4)
    np.testing.assert_allclose(
        ours.explained_variance_ratio, theirs.explained_variance_ratio_, rtol=1e-4
    )
    np.testing.assert_allclose(ours.components.T @ ours.components, np.eye(3), atol=1e-5)
    projected = ours.transform(rows)
    assert projected.dtype == np.float32 and projected.shape == (300, 3)
    np.testing.assert_allclose(projected.mean(axis=0), 0.0, atol=1e-3)
    np.testing.assert_allclose(
        np.abs(projected), np.abs(theirs.transform(rows.astype(np.float64))), atol=1e-3
    )


def test_pca_on_a_sample_finds_the_dominant_directions() -> None:
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(5_000, 20)).astype(np.float32)
    rows[:, 3] *= 30  # two dominant axes
    rows[:, 11] *= 20
    model = fit_pca(rows, 2, max_sample_rows=500)
    top = np.argmax(np.abs(model.components), axis=0)
    np.testing.assert_array_equal(top, [3, 11])
    assert model.components[3, 0] > 0 and model.components[11, 1] > 0  # fixed signs


def test_pca_full_rank_is_a_rotation(blobs: Blobs) -> None:
    rows, _ = blobs
    out = pca_reduce(rows, rows.shape[1])
    centred = rows - rows.mean(axis=0)
    d_in = np.linalg.norm(centred[:50, None] - centred[None, :50], axis=-1)
    d_out = np.linalg.norm(out[:50, None] - out[None, :50], axis=-1)
    np.testing.assert_allclose(d_in, d_out, atol=1e-3)
    with pytest.raises(ValueError, match="n_components"):
        fit_pca(rows, rows.shape[1] + 1)


def test_umap_separates_blobs_in_two_dimensions() -> None:
    rows, truth = make_blobs(n=240, k=3, d=12, std=0.5, seed=2)
    embedded = umap_reduce(rows, 2, random_state=1)
    assert embedded.shape == (240, 2) and embedded.dtype == np.float32
    centers = np.array([embedded[truth == c].mean(axis=0) for c in range(3)])
    spread = max(float(embedded[truth == c].std(axis=0).max()) for c in range(3))
    gaps = [np.linalg.norm(centers[a] - centers[b]) for a in range(3) for b in range(a)]
    assert min(gaps) > 3 * spread
    np.testing.assert_array_equal(embedded, umap_reduce(rows, 2, random_state=1))
