"""Spectral clustering with scikit-learn's semantics, without scikit-learn.

The same mathematics as ``SpectralClustering(n_clusters, affinity,
n_neighbors, random_state, assign_labels="cluster_qr")`` (gamma 1.0):

1. The affinity: ``rbf``, exp(-gamma·|x - y|²) for every pair (dense,
   float32, one syrk and an in-cache exp per block of rows); or
   ``nearest_neighbors``, the k-NN connectivity graph including each row
   itself, symmetrised as 0.5·(C + Cᵀ) (sparse; exact k-NN up to
   ``neighbours.EXHAUSTIVE_FALLBACK_MAX_ROWS`` rows, a checked search above).
2. The normalised Laplacian L = I - D^-1/2·A·D^-1/2 as
   ``scipy.sparse.csgraph.laplacian(normed=True)`` defines it: the
   affinity's diagonal ignored, an isolated row's degree taken as 1.
3. Its ``n_clusters`` eigenvectors of smallest eigenvalue, found as the
   largest of D^-1/2·A·D^-1/2 by :mod:`recluster.engine.eigensolver`
   (blocks of products with the affinity; scikit-learn's ARPACK in
   shift-invert mode factorises the N × N Laplacian, O(N³)); each divided by
   sqrt(degree) and its sign fixed so that its largest entry is positive.
4. Labels by cluster_qr (Damle, Minden and Ying 2019): a pivoted QR of the
   embedding's transpose picks one representative row per cluster, an SVD
   turns them into a rotation, and each row goes to its largest rotated
   coordinate. Deterministic; invariant to any rotation of the embedding,
   so the labels depend only on the eigenvectors' span.

Invariants: no scikit-learn import (it costs seconds in a fresh Job); the
labels agree with scikit-learn's up to numbering where the eigenvectors are
well determined (tests/engine/test_engine_spectral.py measures how far on
hard data); the same ``random_state`` gives the same labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.linalg  # type: ignore[import-untyped]
import scipy.sparse  # type: ignore[import-untyped]

from .eigensolver import MAX_BASIS_BLOCKS, Float64s, largest_eigenvectors
from .kmeans import blas_threads
from .neighbours import EXHAUSTIVE_FALLBACK_MAX_ROWS, exact_neighbours, knn_search

RBF_GAMMA = 1.0
"""scikit-learn's SpectralClustering default."""
DEFAULT_AFFINITY = "rbf"
DEFAULT_NEIGHBOURS = 10
"""scikit-learn's SpectralClustering default for ``nearest_neighbors``."""
SPARSE_BASIS_BLOCKS = 4
"""Basis blocks between restarts for the sparse (k-NN) operator, whose product is
cheap beside the basis's own steps: measured at 50,000 rows of hard data (loaded
machine), 3 / 4 / 8 / 12 blocks took 26 / 23 / 20 / 20 passes and 11 / 9-12 / 16 / 21 s."""
_BLOCK_BYTES = 1 << 20
"""Bytes of the dense affinity transformed at a time (a block of rows): they stay in cache."""


@dataclass(frozen=True)
class NormalisedAffinity:
    """D^-1/2·A·D^-1/2 kept as A (zero diagonal) and sqrt(D) (isolated rows: 1)."""

    affinity: npt.NDArray[np.float32] | scipy.sparse.csr_matrix
    sqrt_degrees: Float64s

    @property
    def rows(self) -> int:
        return int(self.sqrt_degrees.shape[0])

    def matmat(self, block: Float64s) -> Float64s:
        """D^-1/2·A·D^-1/2 times ``block``: the product in float32 (sgemm, or sparse)."""
        scaled = (block / self.sqrt_degrees[:, None]).astype(np.float32)
        entries = self.affinity.size  # a sparse matrix's stored entries, a dense one's all
        with blas_threads(entries * block.shape[1]):
            product = np.asarray(self.affinity @ scaled, dtype=np.float64)
        product /= self.sqrt_degrees[:, None]
        return product


def normalised(
    affinity: npt.NDArray[np.float32] | scipy.sparse.csr_matrix, degrees: Float64s
) -> NormalisedAffinity:
    """Wrap an affinity with zero diagonal and its degrees (row sums) as scipy's normed Laplacian
    sees them: a row without neighbours keeps degree 1, so it maps to eigenvalue 0 (L: 1)."""
    return NormalisedAffinity(affinity, np.where(degrees > 0, np.sqrt(degrees), 1.0))


def rbf_affinity(matrix: npt.NDArray[np.float32], gamma: float = RBF_GAMMA) -> NormalisedAffinity:
    """exp(-gamma·|x - y|²) for every pair, float32, diagonal zeroed.

    One syrk gives every dot product (exactly symmetric: the exponent is
    formed from symmetric terms only, so the affinity is too); then each
    block of rows becomes its kernel values and row sums while in cache.
    Rows are centred first: distances are unchanged and |x|² + |y|² - 2x·y
    cancels less.
    """
    rows = np.ascontiguousarray(matrix - matrix.mean(axis=0), dtype=np.float32)
    n = rows.shape[0]
    half_norms = (gamma * np.einsum("ij,ij->i", rows, rows)).astype(np.float32)
    with blas_threads(n * n * rows.shape[1]):
        affinity: npt.NDArray[np.float32] = rows @ rows.T
    degrees = np.empty(n, dtype=np.float64)
    step = max(1, _BLOCK_BYTES // (4 * n))
    offsets = np.empty((step, n), dtype=np.float32)
    for start in range(0, n, step):
        stop = min(n, start + step)
        block = affinity[start:stop]
        both = offsets[: stop - start]
        np.add.outer(half_norms[start:stop], half_norms, out=both)
        block *= np.float32(2 * gamma)
        block -= both  # -gamma·|x - y|²
        np.minimum(block, 0, out=block)  # rounding can make a tiny distance negative
        np.exp(block, out=block)
        block[np.arange(stop - start), np.arange(start, stop)] = 0
        degrees[start:stop] = block.sum(axis=1, dtype=np.float64)
    return normalised(affinity, degrees)


def knn_affinity(
    matrix: npt.NDArray[np.float32], n_neighbors: int, *, random_state: int = 42
) -> NormalisedAffinity:
    """0.5·(C + Cᵀ) for the k-NN connectivity C (each row and its n_neighbors - 1 nearest
    others), sparse, float32, diagonal dropped: 1 for mutual neighbours, 0.5 for one-way.

    The neighbours are exact (faiss's exhaustive search, as scikit-learn's brute force)
    up to ``EXHAUSTIVE_FALLBACK_MAX_ROWS`` rows, where that search is still affordable:
    measured at 50,000 × 384 on hard data, 17-36 s against 64 s for the checked search,
    whose IVF needed a second, wider attempt. Above, the checked search (recall ≥ 0.99).
    """
    n = matrix.shape[0]
    if n <= EXHAUSTIVE_FALLBACK_MAX_ROWS:
        _, neighbours = exact_neighbours(matrix, np.arange(n), n_neighbors)
    else:
        _, neighbours, _ = knn_search(
            matrix, n_neighbors, max(1, n_neighbors - 1), random_state=random_state
        )
    found = neighbours >= 0  # the checked search may miss a few
    connectivity = scipy.sparse.csr_matrix(
        (
            np.ones(int(found.sum()), dtype=np.float32),
            (np.repeat(np.arange(n), found.sum(axis=1)), neighbours[found]),
        ),
        shape=(n, n),
    )
    affinity = (0.5 * (connectivity + connectivity.T)).tocsr()
    affinity -= scipy.sparse.diags(affinity.diagonal()).tocsr()
    affinity.eliminate_zeros()
    degrees = np.asarray(affinity.sum(axis=1), dtype=np.float64).reshape(-1)
    return normalised(affinity, degrees)


def spectral_embedding(
    operator: NormalisedAffinity, n_components: int, *, random_state: int = 42
) -> Float64s:
    """The Laplacian's ``n_components`` eigenvectors of smallest eigenvalue, divided by
    sqrt(degree), each with its largest-magnitude entry positive: N × n_components,
    smallest eigenvalue first (scikit-learn's ``spectral_embedding(drop_first=False)``)."""
    sparse = scipy.sparse.issparse(operator.affinity)
    _, vectors = largest_eigenvectors(
        operator.matmat,
        operator.rows,
        n_components,
        random_state=random_state,
        basis_blocks=SPARSE_BASIS_BLOCKS if sparse else MAX_BASIS_BLOCKS,
    )
    embedding = vectors / operator.sqrt_degrees[:, None]
    peaks = np.abs(embedding).argmax(axis=0)
    embedding *= np.sign(embedding[peaks, np.arange(n_components)])
    return embedding


def cluster_qr(embedding: Float64s) -> npt.NDArray[np.int32]:
    """Labels from an N × k embedding: pivoted QR picks k rows, an SVD their rotation."""
    k = embedding.shape[1]
    with blas_threads(embedding.shape[0] * k * k):
        _, pivots = scipy.linalg.qr(embedding.T, mode="r", pivoting=True)
        left, _, right = np.linalg.svd(embedding[pivots[:k]].T)
        rotated = np.abs(embedding @ (left @ right))
    return np.asarray(rotated.argmax(axis=1), dtype=np.int32)


def spectral(
    matrix: npt.NDArray[np.float32],
    *,
    n_clusters: int,
    affinity: str | None = None,
    n_neighbors: int | None = None,
    random_state: int = 42,
) -> npt.NDArray[np.int32]:
    """Spectral clustering labels (see the module docstring for the steps)."""
    kind = affinity or DEFAULT_AFFINITY
    if kind == "rbf":
        operator = rbf_affinity(matrix)
    elif kind == "nearest_neighbors":
        operator = knn_affinity(
            matrix, n_neighbors or DEFAULT_NEIGHBOURS, random_state=random_state
        )
    else:
        raise ValueError(f"unknown affinity {kind!r}: rbf or nearest_neighbors")
    return cluster_qr(spectral_embedding(operator, n_clusters, random_state=random_state))
