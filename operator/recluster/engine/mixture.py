"""Gaussian mixture by expectation-maximisation, with scikit-learn's semantics and none of its code.

Invariants:

- The model is ``sklearn.mixture.GaussianMixture(n_components, covariance_type,
  max_iter, tol=1e-3, reg_covar=1e-6, n_init=1)`` given the same initial
  labelling: the M-step adds ten machine epsilons to each component's count and
  ``reg_covar`` to each covariance's diagonal; the E-step takes responsibilities
  by log-sum-exp; EM stops when the mean log-likelihood per row changes by less
  than ``tol``, or after ``max_iter`` iterations; a final E-step labels the rows
  under the parameters returned (as ``fit_predict`` does). The tests pin the
  parameters against scikit-learn's from the same start.
- The start is the engine's k-means labelling (`recluster.engine.kmeans`,
  seeded with ``random_state``), not scikit-learn's ``KMeans(n_init=1)``: the
  one source of difference from scikit-learn's labels. Measured with 20
  components, random_state 42: on separated blobs (2,000 × 384) the same
  partition (ARI 1.0) for all four types; on ``hard_embeddings`` (1,000-20,000
  × 384, overlapping topics) other optima: ARI 0.59-0.70 against
  scikit-learn's labels, the mean log-likelihood per row higher by 0.5-6.4
  for diag, spherical and tied and lower by 23-41 for full (of 1,000-2,000),
  and against the generating topics ARI higher at 1,000 and 5,000 rows
  (0.68-0.77 against 0.59-0.73) but lower at 20,000 (0.70 against 0.95).
- Imports no scikit-learn: a fresh Job pays 0.6-3 s for ``sklearn.mixture``,
  more than the fit takes on thousands of rows (issue 13).
- Degenerate data is handled as scikit-learn handles it: a component that
  loses all its rows keeps a vanishing weight (its count is the ten epsilons)
  and ``reg_covar`` as its covariance; duplicate rows, or fewer rows than
  dimensions, are made definite by ``reg_covar``; a covariance still not
  positive definite (``reg_covar`` too small for the data's scale) raises
  ValueError naming the cause. Two departures, both where float32 rounding
  would otherwise decide: a diag or spherical variance that rounds below zero
  counts as zero (it is a mean of squares), and the tied covariance is the sum
  of the scatters about each component's mean, not scikit-learn's
  xᵀx - Σ nₖμₖμₖᵀ, which loses the small eigenvalues to cancellation (its
  float32 fit fails on fewer rows than dimensions; this one does not).
- Deterministic: passes over the rows run in fixed ranges of rows
  (`ROW_BLOCK`) whatever the number of threads, and their sums are added in
  range order, so the same input gives the same bits.

Speed: each pass runs in blocks of rows on `parallel_workers` threads with one
BLAS thread each (k-means' layout): a multi-threaded BLAS stalled on these
shapes under load (the M-step's K-row product summed over 20,000 × 768 rows:
467 ms on two BLAS threads, 17 ms on one). Full and tied covariances whiten
the rows by a triangular solve with the Cholesky factor, not a product with
its inverse: half the work (15 ms against 25-34 ms at 5,000 × 384).

Precision: the rows and the products over all rows and components (the
E-step's, and the M-step's moments) are float32 (`COMPUTE_DTYPE`); sums of
them, the parameters, the scatters of full and tied covariances and the
Cholesky factorisations are float64 (the factors are rounded to float32 for the
E-step's triangular solves). The fit works on the rows minus their mean (the
likelihood does not change when rows and means move by the same vector),
which keeps the expanded squared distances (|x|² - 2x·μ + |μ|²) and second
moments (E[x²] - μ²) from losing digits to cancellation. Measured from the
same start against EM in float64 (scikit-learn, or its own M-step and E-step
functions), on 1,000-5,000 × 384 and 2,000 × 64 embeddings and on blobs, all
four types: the same labels and iteration counts, the mean log-likelihood per
row within 2e-4 of ~2,000 (1e-7 relative), covariances within 1e-5 of their
largest entry (2.4e-6 on the embeddings). scikit-learn's own float32 fit,
what it runs on float32 embeddings, is further from its float64 fit (3.4e-3
and 1e-5 at 1,000 × 384; an extra iteration for full). Why the scatters are
float64: a component with fewer rows than dimensions has covariance
eigenvalues of ``reg_covar`` (1e-6), and a float32 scatter errs by ~1e-7 of
the data's squared scale; on blobs of scale 5 (2,000 × 384, 20 components)
float32 scatters put the mean log-likelihood per row at 1506.9 where float64
EM has 1498.2, float64 scatters at 1498.2 too, for 6-22 ms of a 60-320 ms
iteration (1,000-5,000 rows; each row is in one component's scatter). Why
not float64 throughout: the E-step's products are the cost, and a dgemm takes
1.8× an sgemm's time (1,000 × 384 by 384 × 384 on one core: 8.6 ms against
4.8 ms).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, TypeVar, get_args

import numpy as np
import numpy.typing as npt
import scipy.linalg  # type: ignore[import-untyped]
from scipy.linalg import blas

from .kmeans import DEFAULT_N_INIT, PARALLEL_BLOCK, kmeans, one_blas_thread, parallel_workers

CovarianceType = Literal["full", "tied", "diag", "spherical"]
COVARIANCE_TYPES: tuple[CovarianceType, ...] = get_args(CovarianceType)
DEFAULT_COVARIANCE_TYPE: CovarianceType = "full"
DEFAULT_MAX_ITER = 100
TOLERANCE = 1e-3
"""scikit-learn's tol: EM stops when the mean log-likelihood per row moves by less."""
REG_COVAR = 1e-6
"""scikit-learn's reg_covar, added to every covariance's diagonal."""
COUNT_EPSILONS = 10
"""Machine epsilons added to each component's count (scikit-learn's rule): a
component without rows keeps a finite mean and a weight that is tiny, not zero."""
COMPUTE_DTYPE = np.float32
"""dtype of the rows and of the products over them (why: the module's docstring)."""
START_RESTARTS = DEFAULT_N_INIT
"""k-means restarts for the start: k-means' fewest, not the more it runs where they
are cheap (10 at 1,000 × 384, K=20), since the start is the larger part of a fit.
Measured at 1,000 / 5,000 / 20,000 × 384 hard embeddings, 20 components: 0.027 /
0.10 / 0.98 s against 0.055 / 0.19 / 1.09 s, and a start as good (diag: the same
log-likelihood per row but at 1,000 rows, 1013.2 against 1013.6); a single start
(scikit-learn's) lost 7 per row and 0.16 ARI against the topics at 1,000 rows."""
ROW_BLOCK = PARALLEL_BLOCK
"""Rows per task of a pass (k-means' measured block): fixed ranges, so sums do not
depend on the thread count."""
ILL_DEFINED = (
    "the Gaussian mixture failed: a component's covariance is not positive definite "
    "even with reg_covar added to its diagonal (collapsed or duplicate rows in a "
    "component, or data whose scale dwarfs reg_covar); use fewer components or scale "
    "the data"
)
_LOG_2PI = math.log(2 * math.pi)

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
T = TypeVar("T")


@dataclass(frozen=True)
class Mixture:
    """Fitted parameters in the input's coordinates, float64, in scikit-learn's shapes.

    ``covariances``: full (K, D, D), tied (D, D), diag (K, D), spherical (K,).
    """

    covariance_type: CovarianceType
    weights: F64
    means: F64
    covariances: F64


@dataclass(frozen=True)
class MixtureFit:
    """A fitted mixture, the rows' labels under it, and how EM ended."""

    mixture: Mixture
    labels: npt.NDArray[np.int32]
    lower_bound: float
    """Mean log-likelihood per row at the last iteration's E-step (scikit-learn's
    ``lower_bound_``, which precedes that iteration's M-step)."""
    n_iter: int
    converged: bool


@dataclass(frozen=True)
class _Rows:
    """The rows centred, in `COMPUTE_DTYPE`, with what every iteration of one type reuses."""

    centred: F32
    shift: F64
    stacked: F32 | None = None
    """diag: [x², x] side by side, so one product gives both moments (and both E-step terms)."""
    sq_norms: F32 | None = None
    """spherical: |x|² per row."""

    def part(self, start: int, stop: int) -> _Rows:
        """Rows start..stop (views), for a task's block."""
        return _Rows(
            self.centred[start:stop],
            self.shift,
            None if self.stacked is None else self.stacked[start:stop],
            None if self.sq_norms is None else self.sq_norms[start:stop],
        )


@dataclass(frozen=True)
class _Params:
    """Parameters in centred coordinates, with the terms the E-step reuses for every block."""

    weights: F64
    means: F64
    covariances: F64
    log_det: F64
    """log det of each precision's Cholesky factor: half the precision's log-determinant."""
    choleskys: list[F32] = field(default_factory=list)
    """full (one per component) and tied (one): lower L with LLᵀ = Σ, Fortran order for trsm."""
    precisions: F32 | None = None
    """diag (K, D) and spherical (K,): 1/σ²."""

    def offsets(self, d: int) -> F32:
        """log weight + log normalising constant of each component."""
        return np.asarray(
            np.log(self.weights) + self.log_det - 0.5 * d * _LOG_2PI, dtype=COMPUTE_DTYPE
        )


def gaussian_mixture(
    matrix: F32,
    *,
    n_clusters: int,
    covariance_type: str | None = None,
    max_iter: int | None = None,
    random_state: int = 42,
) -> npt.NDArray[np.int32]:
    """Labels of a Gaussian mixture with one component per requested cluster."""
    return fit_gaussian_mixture(
        matrix,
        n_clusters,
        covariance_type=covariance_type_of(covariance_type),
        max_iter=max_iter or DEFAULT_MAX_ITER,
        random_state=random_state,
    ).labels


def covariance_type_of(name: str | None) -> CovarianceType:
    """The covariance type ``name`` names (scikit-learn's default 'full' for None)."""
    for known in COVARIANCE_TYPES:
        if name == known:
            return known
    if name is None:
        return DEFAULT_COVARIANCE_TYPE
    raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {name!r}")


def fit_gaussian_mixture(
    matrix: F32,
    n_components: int,
    *,
    covariance_type: CovarianceType = DEFAULT_COVARIANCE_TYPE,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = TOLERANCE,
    reg_covar: float = REG_COVAR,
    random_state: int = 42,
) -> MixtureFit:
    """EM from the engine's k-means labelling (`START_RESTARTS`, seeded with ``random_state``)."""
    if matrix.ndim == 2 and matrix.shape[0] < n_components:
        raise ValueError(f"fewer rows ({matrix.shape[0]}) than components ({n_components})")
    initial = kmeans(matrix, n_components, n_init=START_RESTARTS, random_state=random_state)
    return fit_from_labels(
        matrix,
        initial,
        n_components,
        covariance_type=covariance_type,
        max_iter=max_iter,
        tol=tol,
        reg_covar=reg_covar,
    )


def fit_from_labels(
    matrix: npt.ArrayLike,
    initial_labels: npt.ArrayLike,
    n_components: int,
    *,
    covariance_type: CovarianceType = DEFAULT_COVARIANCE_TYPE,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = TOLERANCE,
    reg_covar: float = REG_COVAR,
) -> MixtureFit:
    """EM from the parameters of a hard labelling (one label in 0..n_components-1 per row).

    Pure: the same inputs give the same fit. scikit-learn starts from the
    same parameters given ``weights_init``, ``means_init`` and
    ``precisions_init`` from `estimate_parameters` of the one-hot labels.
    """
    labels = np.asarray(initial_labels)
    rows = _rows(matrix, covariance_type)
    n, d = rows.centred.shape
    if labels.shape != (n,):
        raise ValueError(f"expected {n} initial labels, got shape {labels.shape}")
    if n < n_components:
        raise ValueError(f"fewer rows ({n}) than components ({n_components})")
    if n and (labels.min() < 0 or labels.max() >= n_components):
        raise ValueError(f"initial labels must lie in 0..{n_components - 1}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")
    work = n * n_components * d * (d if covariance_type == "full" else 1)  # an E-step's products
    workers = parallel_workers(work)
    with one_blas_thread(), ThreadPoolExecutor(workers) as pool:
        tasks = _Tasks(pool if workers > 1 else None)
        resp = np.zeros((n, n_components), dtype=COMPUTE_DTYPE)
        resp[np.arange(n), labels] = 1
        params = _m_step(rows, resp, covariance_type, reg_covar, tasks)
        lower_bound = -math.inf
        converged = False
        n_iter = 0
        while n_iter < max_iter and not converged:
            n_iter += 1
            previous = lower_bound
            lower_bound = _e_step(rows, params, covariance_type, resp, tasks)
            params = _m_step(rows, resp, covariance_type, reg_covar, tasks)
            converged = abs(lower_bound - previous) < tol
        # the final E-step: labels under the parameters returned, not the last iteration's
        final = _labels(rows, params, covariance_type, tasks)
    return MixtureFit(
        mixture=_in_input_coordinates(params, rows, covariance_type),
        labels=final,
        lower_bound=float(lower_bound),
        n_iter=n_iter,
        converged=converged,
    )


def estimate_parameters(
    matrix: npt.ArrayLike,
    responsibilities: npt.ArrayLike,
    covariance_type: CovarianceType = DEFAULT_COVARIANCE_TYPE,
    reg_covar: float = REG_COVAR,
) -> Mixture:
    """One M-step: the mixture that ``responsibilities`` (N × K, rows summing to 1) imply."""
    rows = _rows(matrix, covariance_type)
    resp = np.ascontiguousarray(responsibilities, dtype=COMPUTE_DTYPE)
    with one_blas_thread():
        params = _m_step(rows, resp, covariance_type, reg_covar, _Tasks())
    return _in_input_coordinates(params, rows, covariance_type)


def mean_log_likelihood(matrix: npt.ArrayLike, mixture: Mixture) -> float:
    """Mean log-likelihood per row under ``mixture`` (scikit-learn's ``score``)."""
    kind = mixture.covariance_type
    rows = _rows(matrix, kind)
    resp = np.empty((rows.centred.shape[0], mixture.weights.size), dtype=COMPUTE_DTYPE)
    centred_means = mixture.means - rows.shift
    with one_blas_thread():
        params = _params(mixture.weights, centred_means, mixture.covariances, kind)
        return _e_step(rows, params, kind, resp, _Tasks())


class _Tasks:
    """Maps a task over its starts, results in order: on a pool's threads, or inline."""

    def __init__(self, pool: ThreadPoolExecutor | None = None) -> None:
        self.pool = pool

    def map(self, task: Callable[[int], T], starts: Iterable[int]) -> list[T]:
        if self.pool is None:
            return [task(start) for start in starts]
        return list(self.pool.map(task, starts))


def _rows(matrix: npt.ArrayLike, covariance_type: CovarianceType) -> _Rows:
    raw = np.asarray(matrix)
    if raw.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {raw.shape}")
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}"
        )
    shift = np.asarray(np.mean(raw, axis=0, dtype=np.float64))
    centred = np.ascontiguousarray(raw - shift, dtype=COMPUTE_DTYPE)
    if covariance_type == "diag":
        return _Rows(centred, shift, stacked=np.hstack([centred * centred, centred]))
    if covariance_type == "spherical":
        return _Rows(centred, shift, sq_norms=np.einsum("ij,ij->i", centred, centred))
    return _Rows(centred, shift)


def _e_step(rows: _Rows, params: _Params, kind: CovarianceType, resp: F32, tasks: _Tasks) -> float:
    """Fill ``resp`` with the responsibilities; return the mean log-likelihood per row."""

    def task(start: int) -> float:
        stop = min(resp.shape[0], start + ROW_BLOCK)
        weighted = _weighted_log_prob(rows.part(start, stop), params, kind)
        top = weighted.max(axis=1, keepdims=True)
        weighted -= top
        log_norm = np.log(np.exp(weighted).sum(axis=1, keepdims=True))
        weighted -= log_norm
        np.exp(weighted, out=resp[start:stop])
        log_norm += top
        return float(log_norm.sum(dtype=np.float64))

    n = int(resp.shape[0])
    return math.fsum(tasks.map(task, range(0, n, ROW_BLOCK))) / n


def _labels(
    rows: _Rows, params: _Params, kind: CovarianceType, tasks: _Tasks
) -> npt.NDArray[np.int32]:
    """Each row's most probable component."""
    n = rows.centred.shape[0]

    def task(start: int) -> npt.NDArray[np.intp]:
        stop = min(n, start + ROW_BLOCK)
        weighted = _weighted_log_prob(rows.part(start, stop), params, kind)
        return np.asarray(np.argmax(weighted, axis=1), dtype=np.intp)

    return np.concatenate(tasks.map(task, range(0, n, ROW_BLOCK))).astype(np.int32)


def _weighted_log_prob(rows: _Rows, params: _Params, kind: CovarianceType) -> F32:
    """log(weight_k) + log N(x | μ_k, Σ_k) for every row and component (rows × K)."""
    x = rows.centred
    means = params.means.astype(COMPUTE_DTYPE)
    if kind == "full":
        distances = np.empty((x.shape[0], means.shape[0]), dtype=COMPUTE_DTYPE)
        diff = np.empty_like(x)
        for k, lower in enumerate(params.choleskys):
            np.subtract(x, means[k], out=diff)
            # L⁻¹(x - μ) by rows, in place: its squared norm is the Mahalanobis distance
            whitened = blas.strsm(1.0, lower, diff.T, lower=1, overwrite_b=1).T
            distances[:, k] = np.einsum("ij,ij->i", whitened, whitened)
    elif kind == "tied":
        lower = params.choleskys[0]
        whitened = blas.strsm(1.0, lower, x.T, lower=1).T
        centres = blas.strsm(1.0, lower, means.T, lower=1).T
        distances = whitened @ (-2 * centres.T)
        distances += np.einsum("ij,ij->i", whitened, whitened)[:, None]
        distances += np.einsum("ij,ij->i", centres, centres)[None, :]
    elif kind == "diag":
        assert rows.stacked is not None and params.precisions is not None
        precisions = params.precisions
        distances = rows.stacked @ np.hstack([precisions, -2 * means * precisions]).T
        distances += np.einsum("ij,ij->i", means * means, precisions)[None, :]
    else:
        assert rows.sq_norms is not None and params.precisions is not None
        distances = x @ (-2 * means.T)
        distances += rows.sq_norms[:, None]
        distances += np.einsum("ij,ij->i", means, means)[None, :]
        distances *= params.precisions[None, :]
    distances *= -0.5
    distances += params.offsets(x.shape[1])[None, :]
    return distances


def _m_step(
    rows: _Rows, resp: F32, kind: CovarianceType, reg_covar: float, tasks: _Tasks
) -> _Params:
    """The parameters ``resp`` imply (scikit-learn's M-step), with their precision factors."""
    n, d = rows.centred.shape

    def task(start: int) -> list[F64]:
        """This block's counts, Σ r·x and (diag, spherical) Σ r·x²."""
        stop = min(n, start + ROW_BLOCK)
        weights = resp[start:stop]
        sums = [weights.sum(axis=0, dtype=np.float64)]
        if kind == "diag":
            assert rows.stacked is not None
            moments = (weights.T @ rows.stacked[start:stop]).astype(np.float64)
            return [*sums, moments[:, d:], moments[:, :d]]
        sums.append((weights.T @ rows.centred[start:stop]).astype(np.float64))
        if kind == "spherical":
            assert rows.sq_norms is not None
            sums.append((weights.T @ rows.sq_norms[start:stop]).astype(np.float64))
        return sums

    parts = tasks.map(task, range(0, n, ROW_BLOCK))
    totals = [np.sum(list(column), axis=0) for column in zip(*parts, strict=True)]
    counts = totals[0] + COUNT_EPSILONS * np.finfo(resp.dtype).eps
    means = totals[1] / counts[:, None]
    weights = counts / counts.sum()
    if kind == "full":
        return _full_params(rows.centred, resp, counts, means, weights, reg_covar, tasks)
    if kind == "tied":
        # the scatters about each component's mean, not xᵀx - Σ nₖμₖμₖᵀ: that
        # difference loses the small eigenvalues to cancellation (not definite
        # when there are fewer rows than dimensions)
        scatter = np.sum(_scatters(rows.centred, resp, means, tasks), axis=0)
        covariances = scatter / counts.sum()
        covariances.flat[:: d + 1] += reg_covar
    else:
        # a variance is a mean of squares: below zero it is rounding, not data
        second = totals[2] / (counts[:, None] if kind == "diag" else counts)
        squares = means * means if kind == "diag" else np.einsum("ij,ij->i", means, means)
        covariances = np.maximum(second - squares, 0.0)
        covariances = (covariances if kind == "diag" else covariances / d) + reg_covar
    return _params(weights, means, covariances, kind)


def _full_params(
    x: F32,
    resp: F32,
    counts: F64,
    means: F64,
    weights: F64,
    reg_covar: float,
    tasks: _Tasks,
) -> _Params:
    """Each component's covariance (its scatter over its count) and Cholesky factor."""
    d = x.shape[1]
    scatters = _scatters(x, resp, means, tasks)

    def task(k: int) -> tuple[F32, float]:
        scatters[k] /= counts[k]
        scatters[k].flat[:: d + 1] += reg_covar
        return _cholesky(scatters[k])

    factors = tasks.map(task, range(means.shape[0]))
    return _Params(
        weights,
        means,
        np.stack(scatters),
        np.array([log_det for _, log_det in factors]),
        choleskys=[lower for lower, _ in factors],
    )


def _scatters(x: F32, resp: F32, means: F64, tasks: _Tasks) -> list[F64]:
    """Σᵢ rᵢₖ (xᵢ - μₖ)(xᵢ - μₖ)ᵀ for each component k (float64, symmetric).

    About each component's own mean, so no digits are lost to cancellation,
    and in float64 (see the module's docstring). A row whose responsibility
    underflowed to zero adds nothing and is skipped: in hundreds of
    dimensions almost every row belongs to one component to the last bit, so
    the K scatters together cost about one N·D² product instead of K. Each
    is a syrk (half a gemm's work) on the rows scaled by √responsibility.
    """

    def task(k: int) -> F64:
        members = np.flatnonzero(resp[:, k])
        diff = x[members] - means[k]
        diff *= np.sqrt(resp[members, k], dtype=np.float64)[:, None]
        lower = np.tril(np.asarray(blas.dsyrk(1.0, diff.T, lower=1), dtype=np.float64))
        return lower + np.tril(lower, -1).T

    return tasks.map(task, range(means.shape[0]))


def _params(weights: F64, means: F64, covariances: F64, kind: CovarianceType) -> _Params:
    """Parameters with the E-step's precision terms; ValueError if a covariance is not definite."""
    k, d = means.shape
    if kind == "full":
        factors = [_cholesky(covariance) for covariance in covariances]
        log_det = np.array([log_det for _, log_det in factors])
        return _Params(weights, means, covariances, log_det, [lower for lower, _ in factors])
    if kind == "tied":
        lower, log_det_one = _cholesky(covariances)
        return _Params(weights, means, covariances, np.full(k, log_det_one), [lower])
    if np.any(covariances <= 0):
        raise ValueError(ILL_DEFINED)
    half_log_precisions = -0.5 * np.log(covariances)
    log_det = half_log_precisions.sum(axis=1) if kind == "diag" else d * half_log_precisions
    precisions = np.asarray(1.0 / covariances, dtype=COMPUTE_DTYPE)
    return _Params(weights, means, covariances, log_det, precisions=precisions)


def _cholesky(covariance: F64) -> tuple[F32, float]:
    """Lower Cholesky factor (float32, Fortran order) and log det of the precision's factor."""
    try:
        lower = scipy.linalg.cholesky(covariance, lower=True, check_finite=False)
    except np.linalg.LinAlgError as failure:
        raise ValueError(ILL_DEFINED) from failure
    log_det = -float(np.sum(np.log(np.diagonal(lower))))
    return np.asfortranarray(lower, dtype=COMPUTE_DTYPE), log_det


def _in_input_coordinates(params: _Params, rows: _Rows, kind: CovarianceType) -> Mixture:
    return Mixture(kind, params.weights, params.means + rows.shift, params.covariances)
