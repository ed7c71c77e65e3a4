"""Fixtures of generated data with known structure for the engine tests (engine_support)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from engine_support import Blobs, make_blobs


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
