"""numba kernels of the parallel k-means passes: the argmin after the distance sgemm, fused
with what the pass needs next (the member sums, or the squared distances).

Why numba: the argmin and the members' sums are O(rows·K) and O(rows·D) loops
that numpy can only do as several passes (argmin, take, a sparse one-hot
product), each single-threaded and holding the GIL part of the time; fused,
they read the block once while it is still in cache, and with ``nogil`` the
threads of `kmeans._parallel_pass` run them side by side. Measured at
200,000 × 768, K=40 under load: one Lloyd pass at 55-76 % of the sgemm peak,
against 29-35 % for the numpy pass (docs/engine.md).

Invariants (what keeps to one compiled specialisation per kernel, the one
`recluster.engine.warmup` puts into numba's cache): ``scores``, ``c_sq``,
``block`` and ``distances`` are C-contiguous float32, ``labels`` is
C-contiguous int32, ``sums`` C-contiguous float64. Ties go to the lowest
centroid index, as ``np.argmin``'s do; every value is computed in float32 as
``c_sq - 2·score``, the numpy pass's own arithmetic, so both passes pick the
same centroids.

This module is imported only by the parallel path: importing numba costs
about 0.5 s, more than a small k-means takes.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

_MINUS_TWO = np.float32(-2.0)


@numba.njit(nogil=True, cache=True)
def nearest_and_sum_into(
    scores: npt.NDArray[np.float32],
    c_sq: npt.NDArray[np.float32],
    block: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int32],
    sums: npt.NDArray[np.float64],
) -> float:
    """Nearest centroid of each row into ``labels``, each row added to its centroid's ``sums``.

    ``scores`` is block @ centroids.T. Returns Σ (|c|² - 2x·c) over the rows
    for their nearest centroid (the squared distances minus the rows' norms).
    """
    n, k = scores.shape
    d = block.shape[1]
    total = 0.0
    # The block's rows are summed in float32 first (≤ PARALLEL_BLOCK rows, as the
    # numpy pass's one-hot product does), then added to the float64 sums once:
    # measured 1.7× faster than adding every float32 row to float64 sums.
    block_sums = np.zeros((k, d), dtype=np.float32)
    for i in range(n):
        best = c_sq[0] + _MINUS_TWO * scores[i, 0]
        arg = 0
        for j in range(1, k):
            value = c_sq[j] + _MINUS_TWO * scores[i, j]
            if value < best:
                best = value
                arg = j
        labels[i] = arg
        total += best
        into = block_sums[arg]
        row = block[i]
        for t in range(d):
            into[t] += row[t]
    for c in range(k):
        for t in range(d):
            sums[c, t] += block_sums[c, t]
    return total


# reassoc: the row's squared norm is a float32 reduction, vectorised only when
# LLVM may reorder its additions (a serial chain costs ~4 cycles a float).
@numba.njit(nogil=True, cache=True, fastmath={"reassoc"})
def nearest_distance_into(
    scores: npt.NDArray[np.float32],
    c_sq: npt.NDArray[np.float32],
    block: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int32],
    distances: npt.NDArray[np.float32],
) -> None:
    """Nearest centroid of each row into ``labels``, the squared distance (≥ 0) into ``distances``.

    ``scores`` is block @ centroids.T.
    """
    n, k = scores.shape
    d = block.shape[1]
    for i in range(n):
        best = c_sq[0] + _MINUS_TWO * scores[i, 0]
        arg = 0
        for j in range(1, k):
            value = c_sq[j] + _MINUS_TWO * scores[i, j]
            if value < best:
                best = value
                arg = j
        labels[i] = arg
        norm = np.float32(0.0)
        for t in range(d):
            norm += block[i, t] * block[i, t]
        distances[i] = max(best + norm, np.float32(0.0))
