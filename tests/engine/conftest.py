"""Small generated data with known structure for the engine tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

Blobs = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]


def make_blobs(
    n: int = 300, k: int = 4, d: int = 8, std: float = 0.4, seed: int = 3, box: float = 5.0
) -> Blobs:
    """Isotropic Gaussian blobs, float32, with their true labels."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-box, box, size=(k, d))
    truth = np.arange(n) % k
    rng.shuffle(truth)
    rows = centers[truth] + rng.normal(scale=std, size=(n, d))
    return np.ascontiguousarray(rows, dtype=np.float32), truth


@pytest.fixture
def blobs() -> Blobs:
    return make_blobs()


@pytest.fixture
def blobs_with_outliers() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Blobs plus 10 far-away isolated points, labelled -1 in the truth."""
    rows, truth = make_blobs()
    rng = np.random.default_rng(7)
    directions = rng.normal(size=(10, rows.shape[1]))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    outliers = (directions * rng.uniform(40, 60, size=(10, 1))).astype(np.float32)
    return (
        np.ascontiguousarray(np.vstack([rows, outliers])),
        np.concatenate([truth, -np.ones(10, dtype=np.int64)]),
    )
