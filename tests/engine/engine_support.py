"""Small generated data with known structure for the engine tests (imported by name:
a test module importing ``conftest`` gets whichever conftest.py pytest loaded last)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

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
