"""k nearest neighbours in the full space, found fast and checked, for hdbscan's graph.

HDBSCAN's clusters are decided by the core distances (distance to the
min_samples-th neighbour) and by which points are each other's neighbours.
Any shortcut that changes those changes the clusters, so this module
treats its shortcuts as candidates generators only:

1. **Where to search.** A PCA projection makes the search cheaper, but only
   when few components carry the data (``choose_dims``: the smallest number
   of components keeping ``GRAPH_VARIANCE`` of the variance, none when that
   is more than a quarter of D). Above ``EXACT_KNN_MAX_ROWS`` rows an IVF index
   replaces the exhaustive search.
2. **Distances are always full-space.** The candidates (twice as many as
   needed) are re-ranked by their exact distances in the original space; the
   graph's edge weights and core distances are never projected ones.
3. **Verified on a sample.** The exact neighbours of ``VERIFY_ROWS`` seeded
   rows are computed by brute force over all rows; if the graph holds less
   than ``MIN_RECALL`` of them, or a core distance of the sample is off by
   more than ``MAX_CORE_ERROR``, the search is redone with twice the
   dimensions (then the full space), then with a wider IVF probe, and at
   last exhaustively, which is exact by construction (up to
   ``EXHAUSTIVE_FALLBACK_MAX_ROWS`` rows; above, the widest attempt is kept
   and its recall logged as a warning).

The outcome of each attempt is kept in a ``GraphReport`` (logged by the
caller), so a run says how close to exact its graph was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .preprocess import PCAModel, fit_pca, sample_rows

log = logging.getLogger(__name__)

EXACT_KNN_MAX_ROWS = 32_768
"""Up to here the exhaustive search (faiss: sgemm blocks, exact) is used: on hard
data an IVF search needs a quarter of its lists probed to find 99 % of the
neighbours, and then costs as much (measured at 20k × 384: 3.7 s both), and a
projection to 128 of 384 dimensions still missed 3 % of them."""
EXHAUSTIVE_FALLBACK_MAX_ROWS = 131_072
"""Largest collection for which a failed check ends in the exhaustive search
(N²·D: about a minute at D=384 here); above, the widest IVF attempt is kept and
its measured recall logged."""
GRAPH_VARIANCE = 0.95
"""Share of the variance a projection must keep to be tried at all."""
MIN_GRAPH_DIMS = 16
PCA_FIT_ROWS = 20_000
IVF_NPROBE = 16
VERIFY_ROWS = 256
MIN_RECALL = 0.99
"""Share of the sample's true k nearest neighbours the graph must contain."""
MAX_CORE_ERROR = 0.01
"""Largest relative error of a sampled core distance that is accepted."""
_RERANK_CHUNK = 512


@dataclass
class Attempt:
    dims: int | None
    """Dimensions of the search space; None = the full space."""
    nprobe: int | None
    """IVF lists probed; None = exhaustive search."""
    recall: float
    core_error: float


@dataclass
class GraphReport:
    """How the graph was found: every attempt, the last one accepted."""

    attempts: list[Attempt] = field(default_factory=list)

    @property
    def final(self) -> Attempt:
        return self.attempts[-1]


def choose_dims(pca: PCAModel) -> int | None:
    """Components that keep GRAPH_VARIANCE of the variance, or None when a projection won't pay.

    ``pca`` holds all components. Only a projection to a quarter of D or
    less is tried: measured on hard data (issue 13), a projection to half of
    D found no more of the true neighbours than an IVF search in the full
    space, and the failed attempt cost a whole search.
    """
    d = pca.components.shape[0]
    kept = np.cumsum(pca.explained_variance_ratio)
    dims = int(np.searchsorted(kept, GRAPH_VARIANCE) + 1)
    dims = max(MIN_GRAPH_DIMS, -(-dims // 8) * 8)
    return dims if 4 * dims <= d else None


def _project(
    matrix: npt.NDArray[np.float32], pca: PCAModel | None, dims: int | None
) -> npt.NDArray[np.float32]:
    if dims is None or pca is None:
        return matrix
    leading = PCAModel(
        pca.mean,
        np.ascontiguousarray(pca.components[:, :dims]),
        pca.explained_variance_ratio[:dims],
    )
    return leading.transform(matrix)


def _search(
    space: npt.NDArray[np.float32], k: int, nprobe: int | None, random_state: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Squared distances and ids of each row's k nearest rows in ``space`` (itself included).

    Missing neighbours (IVF lists too short) are (inf, -1).
    """
    import faiss  # here, not at the top: importing it costs ~0.6 s in a fresh Job

    n, d = space.shape
    index: faiss.Index
    if nprobe is None:
        index = faiss.IndexFlatL2(d)
    else:
        nlist = max(16, int(2 * np.sqrt(n)))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
        ivf.cp.seed = random_state
        ivf.cp.min_points_per_centroid = 1
        train = sample_rows(n, 64 * nlist, random_state)
        ivf.train(np.ascontiguousarray(space[train]))
        ivf.nprobe = min(nprobe, nlist)
        index = ivf
    index.add(space)
    d2, ids = index.search(space, min(n, k))
    return np.asarray(d2, dtype=np.float32), np.asarray(ids, dtype=np.int64)


def rerank(
    matrix: npt.NDArray[np.float32], candidates: npt.NDArray[np.int64], k: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """The k nearest of each row's candidates by exact distance in ``matrix``, ascending.

    Missing candidates (-1) sort last as (inf, -1).
    """
    n, c = candidates.shape
    k = min(k, c)
    sq = np.einsum("ij,ij->i", matrix, matrix)
    out_d = np.empty((n, k), dtype=np.float32)
    out_i = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, _RERANK_CHUNK):
        stop = min(n, start + _RERANK_CHUNK)
        ids = candidates[start:stop]
        safe = np.maximum(ids, 0)
        dots = np.einsum("rcd,rd->rc", matrix[safe], matrix[start:stop])
        d2 = np.maximum(sq[start:stop, None] + sq[safe] - 2 * dots, 0)
        d2[ids < 0] = np.inf
        order = np.argsort(d2, axis=1, kind="stable")[:, :k]
        out_d[start:stop] = np.sqrt(np.take_along_axis(d2, order, axis=1))
        out_i[start:stop] = np.take_along_axis(ids, order, axis=1)
    return out_d, out_i


def exact_neighbours(
    matrix: npt.NDArray[np.float32], rows: npt.NDArray[np.int64], k: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Exact k nearest rows of ``matrix[rows]`` among all rows, by brute force."""
    import faiss

    index = faiss.IndexFlatL2(matrix.shape[1])
    index.add(matrix)
    d2, ids = index.search(np.ascontiguousarray(matrix[rows]), min(k, matrix.shape[0]))
    return np.sqrt(np.maximum(d2, 0)), ids


def verify(
    matrix: npt.NDArray[np.float32],
    distances: npt.NDArray[np.float32],
    neighbours: npt.NDArray[np.int64],
    min_samples: int,
    *,
    random_state: int = 42,
) -> tuple[float, float]:
    """(recall of the true k-NN, largest relative core-distance error) on a seeded sample."""
    n, k = neighbours.shape
    rows = sample_rows(n, VERIFY_ROWS, random_state + 1)
    true_d, true_i = exact_neighbours(matrix, rows, k)
    found = 0
    for got, want in zip(neighbours[rows], true_i, strict=True):
        found += np.intersect1d(got[got >= 0], want[want >= 0]).size
    recall = found / max(1, int((true_i >= 0).sum()))
    col = min(min_samples, k - 1)  # the core distance's column (itself first)
    truth = true_d[:, col].astype(np.float64)
    error = np.abs(distances[rows, col] - truth) / np.maximum(truth, 1e-12)
    return recall, float(np.max(error)) if error.size else 0.0


def knn_search(
    matrix: npt.NDArray[np.float32],
    n_neighbors: int,
    min_samples: int,
    *,
    random_state: int = 42,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], GraphReport]:
    """Full-space distances and ids of each row's nearest rows (itself first), checked.

    See the module docstring for the search order and the acceptance test.
    """
    n = matrix.shape[0]
    k = min(n, n_neighbors)
    report = GraphReport()
    if n <= EXACT_KNN_MAX_ROWS:
        d2, neighbours = _search(matrix, k, None, random_state)
        report.attempts.append(Attempt(None, None, 1.0, 0.0))
        return np.sqrt(np.maximum(d2, 0)), neighbours, report
    pca: PCAModel | None = None
    dims: int | None = None
    if matrix.shape[1] > 2 * MIN_GRAPH_DIMS:
        pca = fit_pca(
            matrix, matrix.shape[1], random_state=random_state, max_sample_rows=PCA_FIT_ROWS
        )
        dims = choose_dims(pca)
    nprobe: int | None = IVF_NPROBE
    while True:
        space = _project(matrix, pca, dims)
        wanted = k if dims is None else min(n, 2 * k)
        _, ids = _search(space, wanted, nprobe, random_state)
        distances, neighbours = rerank(matrix, ids, k)
        if nprobe is None:  # exhaustive in the full space: exact
            report.attempts.append(Attempt(None, None, 1.0, 0.0))
            break
        recall, core_error = verify(
            matrix, distances, neighbours, min_samples, random_state=random_state
        )
        report.attempts.append(Attempt(dims, nprobe, recall, core_error))
        if recall >= MIN_RECALL and core_error <= MAX_CORE_ERROR:
            break
        if dims is not None:
            dims = 2 * dims if 8 * dims <= matrix.shape[1] else None
        elif nprobe < 8 * IVF_NPROBE:
            nprobe *= 4
        elif n <= EXHAUSTIVE_FALLBACK_MAX_ROWS:
            nprobe = None
        else:
            log.warning(
                "hdbscan graph: %d rows, too many for an exhaustive search; going on with"
                " recall %.4f (core distances within %.1f %%)",
                n,
                recall,
                100 * core_error,
            )
            break
    log.info(
        "hdbscan graph: %s",
        ", ".join(
            f"dims={a.dims or 'all'} nprobe={a.nprobe or 'exhaustive'}"
            f" recall={a.recall:.4f} core_error={a.core_error:.4f}"
            for a in report.attempts
        ),
    )
    return distances, neighbours, report
