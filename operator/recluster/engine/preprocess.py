"""Preprocessing before clustering: L2 normalisation and dimensionality reduction.

Everything works on C-contiguous float32 matrices and walks them in row chunks,
so that a 1M × 384 collection (1.5 GB) never gets a second full-size float64
temporary next to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recluster.api.clustering import Reduction

CHUNK_ROWS = 65_536
"""Rows per chunk for in-place and projection passes (a 25 MB block at D=384)."""

PCA_SAMPLE_ROWS = 100_000
"""PCA is fitted on at most this many rows: the covariance of a random sample of
100k rows pins the leading directions far more precisely than clustering needs,
and costs a fixed ~15 GFLOP whatever the collection size."""


def as_float32_matrix(matrix: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """The input as a C-contiguous float32 2-D array; no copy when it already is one."""
    out = np.ascontiguousarray(matrix, dtype=np.float32)
    if out.ndim != 2:
        raise ValueError(f"expected a 2-D matrix of embeddings, got shape {out.shape}")
    return out


def l2_normalize(
    matrix: npt.NDArray[np.float32], *, inplace: bool = False
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Scale every row to unit L2 norm; return (normalised matrix, original norms).

    With ``inplace=True`` the caller's matrix is overwritten (no second copy of
    the data); the returned norms let the engine recover the raw-space
    centroids exactly. Zero rows stay zero.
    """
    out = matrix if inplace else np.empty_like(matrix)
    norms = np.empty(matrix.shape[0], dtype=np.float32)
    for start in range(0, matrix.shape[0], CHUNK_ROWS):
        stop = min(matrix.shape[0], start + CHUNK_ROWS)
        block = matrix[start:stop]
        block_norms = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float32))
        norms[start:stop] = block_norms
        scale = np.where(block_norms > 0, 1.0 / np.maximum(block_norms, 1e-30), 1.0)
        np.multiply(block, scale[:, None].astype(np.float32), out=out[start:stop])
    return out, norms


def sample_rows(n_rows: int, size: int, seed: int) -> npt.NDArray[np.int64]:
    """Sorted indices of a deterministic uniform sample (all rows when size >= n_rows).

    Sorted so that gathering them walks the matrix forwards.
    """
    if size >= n_rows:
        return np.arange(n_rows, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_rows, size=size, replace=False)).astype(np.int64)


@dataclass(frozen=True)
class PCAModel:
    """A fitted linear projection: ``(x - mean) @ components``."""

    mean: npt.NDArray[np.float32]
    components: npt.NDArray[np.float32]
    """D × d, columns ordered by decreasing variance."""
    explained_variance_ratio: npt.NDArray[np.float64]

    def transform(self, matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Project in row chunks: one N × d output, no N × D temporary."""
        out = np.empty((matrix.shape[0], self.components.shape[1]), dtype=np.float32)
        shift = self.mean @ self.components
        for start in range(0, matrix.shape[0], CHUNK_ROWS):
            stop = min(matrix.shape[0], start + CHUNK_ROWS)
            np.matmul(matrix[start:stop], self.components, out=out[start:stop])
            out[start:stop] -= shift
        return out


def fit_pca(
    matrix: npt.NDArray[np.float32],
    n_components: int,
    *,
    random_state: int = 42,
    max_sample_rows: int = PCA_SAMPLE_ROWS,
) -> PCAModel:
    """Exact PCA of a random row sample via the D × D covariance (eigh).

    For embeddings D is a few hundred, so the covariance is tiny and its
    eigendecomposition exact and deterministic; cost is dominated by one
    sgemm over the sample. Component signs are fixed (largest entry positive)
    so that results do not flip between runs or BLAS builds.
    """
    n, d = matrix.shape
    if not 1 <= n_components <= d:
        raise ValueError(f"n_components ({n_components}) must be between 1 and {d}")
    index = sample_rows(n, max_sample_rows, random_state)
    everything = index.size == n

    def blocks() -> Iterator[npt.NDArray[np.float32]]:
        for start in range(0, index.size, CHUNK_ROWS):
            stop = min(index.size, start + CHUNK_ROWS)
            yield matrix[start:stop] if everything else matrix[index[start:stop]]

    mean = np.zeros(d, dtype=np.float64)
    for block in blocks():  # ones @ block: a BLAS column sum, float64 across blocks
        mean += np.ones(block.shape[0], dtype=np.float32) @ block
    mean /= max(index.size, 1)
    mean32 = mean.astype(np.float32)
    cov = np.zeros((d, d), dtype=np.float64)
    for block in blocks():
        centred = block - mean32
        cov += centred.T @ centred
    cov /= max(index.size - 1, 1)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    order = np.argsort(eigenvalues)[::-1][:n_components]
    components = eigenvectors[:, order]
    signs = np.sign(components[np.abs(components).argmax(axis=0), np.arange(n_components)])
    components *= np.where(signs == 0, 1.0, signs)
    total = float(np.clip(eigenvalues, 0, None).sum())
    ratio = np.clip(eigenvalues[order], 0, None) / (total if total > 0 else 1.0)
    return PCAModel(
        mean=mean32,
        components=np.ascontiguousarray(components, dtype=np.float32),
        explained_variance_ratio=ratio,
    )


def pca_reduce(
    matrix: npt.NDArray[np.float32], n_components: int, *, random_state: int = 42
) -> npt.NDArray[np.float32]:
    """Fit PCA on a sample and project every row."""
    return fit_pca(matrix, n_components, random_state=random_state).transform(matrix)


def umap_reduce(
    matrix: npt.NDArray[np.float32],
    n_components: int,
    *,
    random_state: int = 42,
    n_neighbors: int = 15,
) -> npt.NDArray[np.float32]:
    """Non-linear reduction with UMAP (slow; only when the config asks for it).

    A fixed random_state makes UMAP deterministic at the price of running
    single-threaded, which the engine accepts: reproducible runs are a
    requirement, and UMAP is an opt-in.
    """
    from .umapcache import fit_umap  # umap-learn: a heavy import, only on demand

    init = "spectral" if matrix.shape[0] > n_components + 1 else "random"
    return fit_umap(matrix, n_components, n_neighbors, random_state, init=init)


def reduce(
    matrix: npt.NDArray[np.float32], reduction: Reduction, *, random_state: int = 42
) -> npt.NDArray[np.float32]:
    """Apply the configured reduction; a new N × n_components matrix."""
    if reduction.method == "pca":
        return pca_reduce(matrix, reduction.n_components, random_state=random_state)
    return umap_reduce(matrix, reduction.n_components, random_state=random_state)
