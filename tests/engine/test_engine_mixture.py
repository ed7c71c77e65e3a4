"""The Gaussian mixture gives scikit-learn's model from the same start, without scikit-learn."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from engine_support import make_blobs, modules_loaded
from scipy.special import logsumexp  # type: ignore[import-untyped]
from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped]
from sklearn.metrics import adjusted_rand_score  # type: ignore[import-untyped]
from sklearn.mixture import GaussianMixture  # type: ignore[import-untyped]
from sklearn.mixture._gaussian_mixture import (  # type: ignore[import-untyped]
    _compute_precision_cholesky,
    _estimate_gaussian_parameters,
    _estimate_log_gaussian_prob,
)

from recluster.engine import mixture
from recluster.engine.mixture import (
    COVARIANCE_TYPES,
    ROW_BLOCK,
    CovarianceType,
    MixtureFit,
    estimate_parameters,
    fit_from_labels,
    fit_gaussian_mixture,
)
from recluster.engine.synthetic import hard_embeddings

Rows = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]


def overlapping_start() -> tuple[Rows, Labels]:
    """Overlapping blobs and a random labelling: EM takes 10-20 iterations to undo it."""
    rows, _ = make_blobs(n=400, k=3, d=4, std=1.0)
    return rows, np.random.default_rng(0).integers(3, size=rows.shape[0])


def scikit_learn_from(
    rows: Rows, labels: Labels, k: int, kind: CovarianceType, **options: Any
) -> GaussianMixture:
    """scikit-learn's GaussianMixture started where `fit_from_labels` starts."""
    start = estimate_parameters(rows, np.eye(k)[labels], kind)
    covariances = start.covariances
    precisions = np.linalg.inv(covariances) if kind in ("full", "tied") else 1 / covariances
    return GaussianMixture(
        k,
        covariance_type=kind,
        weights_init=start.weights,
        means_init=start.means,
        precisions_init=precisions,
        **options,
    )


def fit_both(
    rows: Rows, labels: Labels, k: int, kind: CovarianceType, **options: Any
) -> tuple[MixtureFit, GaussianMixture, Labels]:
    ours = fit_from_labels(rows, labels, k, covariance_type=kind, **options)
    theirs = scikit_learn_from(rows, labels, k, kind, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # float64: the oracle's own float32 fit rounds more than ours (see mixture's docstring)
        their_labels = theirs.fit_predict(rows.astype(np.float64))
    return ours, theirs, their_labels


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_agrees_with_scikit_learn_on_separated_blobs(kind: CovarianceType) -> None:
    rows, truth = make_blobs(n=400, k=4, d=8, std=0.4)
    ours = mixture.gaussian_mixture(rows, n_clusters=4, covariance_type=kind, random_state=0)
    theirs = GaussianMixture(4, covariance_type=kind, random_state=0).fit_predict(rows)
    assert adjusted_rand_score(theirs, ours) >= 0.95
    assert adjusted_rand_score(truth, ours) >= 0.95


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_agrees_with_scikit_learn_on_hard_embeddings(kind: CovarianceType) -> None:
    """Different starts (the engine's k-means, scikit-learn's KMeans) reach different optima
    on overlapping topics: measured ARI 0.911-0.916 here (0.59-0.97 over other seeds and
    sizes), and as close to the topics (0.926-0.931 against 0.933)."""
    data = hard_embeddings(1_000, 64, 10, seed=2)
    ours = mixture.gaussian_mixture(
        data.matrix, n_clusters=10, covariance_type=kind, random_state=0
    )
    theirs = GaussianMixture(10, covariance_type=kind, random_state=0).fit_predict(data.matrix)
    assert adjusted_rand_score(theirs, ours) >= 0.85
    truth = data.labels
    assert adjusted_rand_score(truth, ours) >= adjusted_rand_score(truth, theirs) - 0.02


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_one_m_step_is_scikit_learns(kind: CovarianceType) -> None:
    rows, truth = make_blobs(n=300, k=3, d=6, std=1.5)
    noise = np.random.default_rng(1).dirichlet(np.ones(3), size=rows.shape[0])
    resp = 0.7 * np.eye(3)[truth] + 0.3 * noise  # soft, and each component's mean its own
    ours = estimate_parameters(rows, resp, kind)
    counts, means, covariances = _estimate_gaussian_parameters(
        rows.astype(np.float64), resp, 1e-6, kind
    )
    np.testing.assert_allclose(ours.weights, counts / counts.sum(), rtol=1e-6)
    np.testing.assert_allclose(ours.means, means, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.covariances, covariances, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_rank_deficient_covariances_keep_their_likelihood(kind: CovarianceType) -> None:
    """50 rows per component in 96 dimensions, at scale 10: most covariance eigenvalues are
    reg_covar, which float32 scatters would blur (0.37 nats per row off, measured)."""
    rows, truth = make_blobs(n=300, k=6, d=96, std=1.0, box=10.0)
    wide, resp = rows.astype(np.float64), np.eye(6)[truth]
    counts, means, covariances = _estimate_gaussian_parameters(wide, resp, 1e-6, kind)
    precision_factors = _compute_precision_cholesky(covariances, kind)
    weighted = _estimate_log_gaussian_prob(wide, means, precision_factors, kind)
    expected = logsumexp(weighted + np.log(counts / counts.sum()), axis=1).mean()
    ours = estimate_parameters(rows, resp, kind)
    assert mixture.mean_log_likelihood(rows, ours) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_fit_is_scikit_learns_from_the_same_start(kind: CovarianceType) -> None:
    rows, start = overlapping_start()
    ours, theirs, their_labels = fit_both(rows, start, 3, kind)
    assert ours.converged and theirs.converged_
    assert ours.n_iter == theirs.n_iter_
    np.testing.assert_array_equal(ours.labels, their_labels)
    np.testing.assert_allclose(ours.mixture.weights, theirs.weights_, atol=1e-6)
    np.testing.assert_allclose(ours.mixture.means, theirs.means_, atol=1e-4)
    np.testing.assert_allclose(ours.mixture.covariances, theirs.covariances_, atol=1e-4)
    assert ours.lower_bound == pytest.approx(theirs.lower_bound_, abs=1e-5)
    assert mixture.mean_log_likelihood(rows, ours.mixture) == pytest.approx(
        theirs.score(rows.astype(np.float64)), abs=1e-5
    )


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_max_iter_is_honoured(kind: CovarianceType) -> None:
    rows, start = overlapping_start()
    for max_iter in (1, 2):
        ours, theirs, _ = fit_both(rows, start, 3, kind, max_iter=max_iter, tol=0.0)
        assert (ours.n_iter, ours.converged) == (max_iter, False)
        np.testing.assert_allclose(ours.mixture.means, theirs.means_, atol=1e-4)


def test_labels_come_from_a_final_e_step() -> None:
    """After one iteration the labels are those of the parameters returned, not of the
    iteration's E-step (which still saw the random start)."""
    rows, start = overlapping_start()
    ours, _, their_labels = fit_both(rows, start, 3, "full", max_iter=1)
    np.testing.assert_array_equal(ours.labels, their_labels)


def test_stops_when_the_log_likelihood_moves_less_than_tol() -> None:
    rows, start = overlapping_start()
    fit = fit_from_labels(rows, start, 3, covariance_type="diag", tol=1e-3)
    assert fit.converged and 3 <= fit.n_iter < mixture.DEFAULT_MAX_ITER

    def bound_after(iterations: int) -> float:
        return fit_from_labels(
            rows, start, 3, covariance_type="diag", max_iter=iterations, tol=0.0
        ).lower_bound

    assert bound_after(fit.n_iter) == fit.lower_bound
    assert abs(bound_after(fit.n_iter) - bound_after(fit.n_iter - 1)) < 1e-3
    assert abs(bound_after(fit.n_iter - 1) - bound_after(fit.n_iter - 2)) >= 1e-3
    # the first change is from -inf, so any tol stops at the second iteration
    assert fit_from_labels(rows, start, 3, covariance_type="diag", tol=1e9).n_iter == 2


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_a_component_without_rows_keeps_a_vanishing_weight(kind: CovarianceType) -> None:
    rows, truth = make_blobs(n=200, k=2, d=6, std=0.5)
    fit = fit_from_labels(rows, truth, 3, covariance_type=kind)  # component 2 starts empty
    assert fit.mixture.weights[2] < 1e-6
    assert np.bincount(fit.labels, minlength=3)[2] == 0
    assert adjusted_rand_score(truth, fit.labels) == 1.0


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_duplicate_rows_get_reg_covar_as_their_variance(kind: CovarianceType) -> None:
    rows = np.full((50, 6), 3.0, dtype=np.float32)
    fit = fit_gaussian_mixture(rows, 2, covariance_type=kind)
    assert np.unique(fit.labels).size == 1
    variances = fit.mixture.covariances
    if kind in ("full", "tied"):
        variances = np.diagonal(variances, axis1=-2, axis2=-1)
    assert np.ravel(variances).max() == pytest.approx(mixture.REG_COVAR, rel=1e-3)


@pytest.mark.parametrize("kind", ["full", "tied"])
def test_fewer_rows_than_dimensions(kind: CovarianceType) -> None:
    """reg_covar makes the rank-deficient scatter definite; scikit-learn's float32 fit fails
    here (its tied covariance xᵀx - Σ nμμᵀ loses the small eigenvalues to cancellation)."""
    rows, truth = make_blobs(n=30, k=2, d=64, std=1.0)
    fit = fit_gaussian_mixture(rows, 2, covariance_type=kind)
    assert adjusted_rand_score(truth, fit.labels) == 1.0
    theirs = GaussianMixture(2, covariance_type=kind, random_state=42)
    assert adjusted_rand_score(theirs.fit_predict(rows.astype(np.float64)), fit.labels) == 1.0


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_a_collapsed_component_without_regularisation_names_the_cause(
    kind: CovarianceType,
) -> None:
    # three groups of identical rows, the middle one at the mean: a variance of exactly zero
    rows = np.repeat(np.array([[-1.0] * 4, [0.0] * 4, [1.0] * 4], dtype=np.float32), 20, axis=0)
    labels = np.repeat([0, 1, 2], 20)
    with pytest.raises(ValueError, match="not positive definite"):
        fit_from_labels(rows, labels, 3, covariance_type=kind, reg_covar=0.0)


def test_rejects_inputs_it_cannot_fit() -> None:
    rows, truth = make_blobs(n=20, k=2, d=4)
    with pytest.raises(ValueError, match="fewer rows"):
        fit_gaussian_mixture(rows, 21)
    with pytest.raises(ValueError, match="initial labels"):
        fit_from_labels(rows, truth + 1, 2)
    with pytest.raises(ValueError, match="covariance_type"):
        mixture.gaussian_mixture(rows, n_clusters=2, covariance_type="banded")


def test_same_random_state_same_bits() -> None:
    rows, _ = make_blobs(n=300, k=6, d=4, std=2.0)  # overlapping: the start decides
    first, second = (fit_gaussian_mixture(rows, 6, random_state=0) for _ in range(2))
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.mixture.means, second.mixture.means)
    np.testing.assert_array_equal(first.mixture.covariances, second.mixture.covariances)
    other = fit_gaussian_mixture(rows, 6, random_state=1)
    assert not np.array_equal(first.labels, other.labels)  # the seed reaches the start


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_threads_do_not_change_the_bits(
    kind: CovarianceType, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows, _ = make_blobs(n=3 * ROW_BLOCK + 17, k=5, d=12, std=1.5)
    start = np.random.default_rng(0).integers(5, size=rows.shape[0])
    fits = []
    for workers in (1, 3):
        monkeypatch.setattr(mixture, "parallel_workers", lambda work, w=workers: w)
        fits.append(fit_from_labels(rows, start, 5, covariance_type=kind))
    np.testing.assert_array_equal(fits[0].labels, fits[1].labels)
    np.testing.assert_array_equal(fits[0].mixture.covariances, fits[1].mixture.covariances)
    assert fits[0].lower_bound == fits[1].lower_bound


def test_gaussian_mixture_imports_no_scikit_learn() -> None:
    """A fresh Job must not pay scikit-learn's import (seconds) for EM numpy does."""
    configs = (
        {"algorithm": "gaussian_mixture", "n_clusters": 3},
        {"algorithm": "gaussian_mixture", "n_clusters": 3, "covariance_type": "diag"},
    )
    assert modules_loaded("sklearn", *configs) == []
