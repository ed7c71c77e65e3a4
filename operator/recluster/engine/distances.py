"""Euclidean distances by BLAS (|x|² + |y|² - 2x·y) with the ties a direct computation has.

The engine's quadratic algorithms (agglomerative, mean_shift, dbscan) compute
distances as matrix products, which are many times faster than scipy's
``pdist`` or scikit-learn's radius queries; these helpers keep them as close
to a direct computation as rounding allows.

Invariants:

- Rows are centred before the products (less cancellation when the data sit
  far from the origin), on an origin rounded to a power of two no larger
  than the data's spread (`distance_origin`). Subtracting it is exact, so
  rows on an integer lattice keep integer coordinates and exact products:
  their equal distances stay equal, as ``pdist``'s do, and a pair exactly at
  a radius stays within it.
- Identical rows are at distance exactly 0 (`condensed_distances`), as in
  ``pdist``: the products alone leave a rounding residue there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

DISTANCE_BLOCK_BYTES = 1 << 26
"""Size of one block of distances that `block_rows` sizes (64 MB)."""
SPREAD_SAMPLE_ROWS = 4_096
"""Rows (evenly strided) on which `distance_origin` measures the spread: only its scale matters."""
CONDENSED_BLOCK_ROWS = 512
"""Rows per block of `condensed_distances`: small against N, so the blocks' products
cover little more than the upper triangle; 128 MB of float64 at 32,768 rows."""


def distance_origin(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Where to centre rows before distance products: the mean, rounded to a power-of-two grid.

    The grid step is the largest power of two not above the rows' RMS spread
    about their mean, so the origin is within one spread of the mean (the
    cancellation stays small) and has few significant bits (see the module's
    invariants: exact subtraction, lattices kept exact).
    """
    mean = matrix.mean(axis=0, dtype=np.float64)
    sample = matrix[:: max(1, matrix.shape[0] // SPREAD_SAMPLE_ROWS)]
    spread = float(np.sqrt(np.mean((sample - mean) ** 2))) if sample.size else 0.0
    if not spread > 0:  # every row the same (or no rows): any origin is exact
        return np.zeros(matrix.shape[1], dtype=np.float64)
    step = 2.0 ** np.floor(np.log2(spread))
    return np.asarray(np.round(mean / step) * step, dtype=np.float64)


def centred_rows(
    matrix: npt.NDArray[np.float32], dtype: type[np.floating[Any]] = np.float32
) -> npt.NDArray[Any]:
    """``matrix`` minus its `distance_origin`, in ``dtype``, C-contiguous.

    In float64 the difference is exact; in float32 it is the exact difference
    rounded once (exact on a lattice of small integers).
    """
    origin = distance_origin(matrix)
    return np.ascontiguousarray(np.subtract(matrix, origin.astype(dtype), dtype=dtype))


def block_rows(n_columns: int, itemsize: int = 4) -> int:
    """Rows of a block of distances to ``n_columns`` that fit in DISTANCE_BLOCK_BYTES (>= 1)."""
    return int(max(1, DISTANCE_BLOCK_BYTES // (itemsize * max(n_columns, 1))))


def squared_norms(rows: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """|x|² of every row, in the rows' dtype."""
    return np.asarray(np.einsum("ij,ij->i", rows, rows))


def squared_distances(
    rows: npt.NDArray[Any],
    rows_sq: npt.NDArray[Any],
    other: npt.NDArray[Any],
    other_sq: npt.NDArray[Any],
) -> npt.NDArray[Any]:
    """len(rows) × len(other) squared distances |x|² + |y|² - 2x·y: one BLAS product, unclamped.

    ``rows_sq`` and ``other_sq`` are the rows' `squared_norms`. Rounding can
    leave a tiny negative value where a distance is about zero.
    """
    d2: npt.NDArray[Any] = rows @ other.T
    d2 *= -2
    d2 += rows_sq[:, None]
    d2 += other_sq[None, :]
    return d2


def row_bytes(rows: npt.NDArray[Any]) -> npt.NDArray[np.void]:
    """Each row as one opaque value, so that np.unique finds equal rows in one fast sort
    (bit for bit: faster than ``np.unique(axis=0)``, which compares field by field)."""
    rows = np.ascontiguousarray(rows)
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)


def copy_groups(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.int64] | None:
    """A group id per row, equal for identical rows; None when every row is distinct."""
    # + 0.0 turns -0.0 into 0.0: rows differing only in the sign of a zero are copies too
    distinct, group = np.unique(row_bytes(matrix + np.float32(0.0)), return_inverse=True)
    if distinct.size == matrix.shape[0]:
        return None
    return np.asarray(group, dtype=np.int64).reshape(-1)


def condensed_distances(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """``scipy.spatial.distance.pdist(matrix)``, computed by float64 BLAS in row blocks.

    The pairs (i, j), i < j, in pdist's order (row-major upper triangle):
    N(N-1)/2 float64, the only N²-sized array. Block of rows [start, stop)
    against the rows from ``start`` on, so the products cover the upper
    triangle once (half of the N × N). pdist itself is single-threaded and
    not vectorised across pairs: it was most of agglomerative's time.
    """
    n = matrix.shape[0]
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    rows = centred_rows(matrix, np.float64)
    sq = squared_norms(rows)
    groups = copy_groups(matrix)
    for start in range(0, n - 1, CONDENSED_BLOCK_ROWS):
        stop = min(n - 1, start + CONDENSED_BLOCK_ROWS)  # the last row has no pair after it
        d2 = squared_distances(rows[start:stop], sq[start:stop], rows[start:], sq[start:])
        np.maximum(d2, 0, out=d2)
        if groups is not None:
            d2[groups[start:stop, None] == groups[None, start:]] = 0
        np.sqrt(d2, out=d2)
        for i in range(start, stop):
            first = i * n - i * (i + 1) // 2  # where row i's pairs start
            out[first : first + n - 1 - i] = d2[i - start, i - start + 1 :]
    return out
