"""BLAS distances: scipy's pdist, including its exact zeros and its ties."""

from __future__ import annotations

import numpy as np
import pytest
from engine_support import make_blobs
from scipy.spatial.distance import pdist  # type: ignore[import-untyped]

from recluster.engine import distances


@pytest.mark.parametrize("n", [2, 3, 600, 1_100])
def test_condensed_distances_are_pdists(n: int) -> None:
    """Sizes around CONDENSED_BLOCK_ROWS: every row's pairs land in their own place."""
    rows, _ = make_blobs(n=n, k=4, d=24, std=1.0, box=50.0)
    ours = distances.condensed_distances(rows)
    theirs = pdist(rows.astype(np.float64))
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_copies_are_exactly_zero_apart() -> None:
    rows, _ = make_blobs(n=200, k=4, d=384, std=0.05)
    copied = np.ascontiguousarray(np.vstack([rows, rows[::4]]))
    ours = distances.condensed_distances(copied)
    theirs = pdist(copied.astype(np.float64))
    assert np.array_equal(ours == 0, theirs == 0) and np.count_nonzero(theirs == 0) == 50


def test_a_signed_zero_does_not_make_a_copy_distinct() -> None:
    rows, _ = make_blobs(n=200, k=4, d=384, std=0.05)
    rows[:, 0] = 0.0
    signed = rows.copy()
    signed[:, 0] = -0.0
    ours = distances.condensed_distances(np.ascontiguousarray(np.vstack([rows, signed])))
    first, second = np.arange(200), np.arange(200) + 200  # pairs (i, i + 200) in pdist's order
    assert np.all(ours[400 * first - first * (first + 1) // 2 + second - first - 1] == 0)


def test_lattice_distances_are_exact() -> None:
    """Far from the origin too: the centring itself must not round."""
    lattice = np.random.default_rng(1).integers(0, 9, size=(400, 12)).astype(np.float32)
    for rows in (lattice, lattice - np.float32(1000.0)):
        assert np.array_equal(distances.condensed_distances(rows), pdist(rows.astype(np.float64)))
