"""Drift metrics: how far a collection has moved from the baseline of its last good run.

Pure functions over float32 matrices and a `Baseline`; the impure shell that
samples a store is `recluster.drift_check`. Definitions, and the data that
chose them, are in docs/drift.md. In short, every document (of the baseline
and of a sample now) goes into one *bin*: the baseline centroid it is most
cosine-similar to, or the bin "none" when that similarity is below the
centroid's own 5th-percentile similarity at baseline time. Then

- ``cosine_drift`` is the total variation distance between the bin shares now
  and at baseline, divided by the baseline's share of documents inside
  clusters, clipped to [0, 1]: about the share of documents whose topic is new
  or whose topic's share changed ("0.3" ≈ 30 % of documents from a new topic);
- ``outlier_fraction`` is the excess share of "none" now over baseline,
  rescaled the same way: about the share of documents from no known topic;
- ``document_growth`` is (count now − count at baseline) / count at baseline.

Everything is cosine (rows and centroids are normalised here), so embeddings
need not be unit vectors, and the baseline's own statistics are computed by
the same function that bins a sample, so a fresh sample of unchanged data
lands on the baseline's shares up to sampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol, get_args

import numpy as np
from numpy.typing import NDArray

from ..api.schedule import Metric

Float32Matrix = NDArray[np.float32]
"""An N×D float32 matrix (the store's `Float32Matrix`; the same numpy type)."""


class DriftBaseline(Protocol):
    """What drift metrics read of a baseline; `recluster.store.types.Baseline` is one.

    A protocol, so that the core depends on nothing of the package but the API
    (the import contracts in pyproject.toml), not on the store that keeps baselines.
    """

    @property
    def run_id(self) -> str: ...

    @property
    def centroids(self) -> Float32Matrix: ...

    @property
    def mean(self) -> NDArray[np.float32]: ...

    @property
    def document_count(self) -> int: ...

    @property
    def stats(self) -> Mapping[str, float | list[float]]: ...

    @property
    def dim(self) -> int: ...


METRICS: tuple[str, ...] = get_args(Metric)
"""The metrics a conditional trigger can name (the API's enum)."""

OUTLIER_QUANTILE = 0.05
"""A document is an outlier of its cluster below this quantile of the cluster's similarities."""
MIN_ROWS_FOR_CLUSTER_THRESHOLD = 20
"""Smaller clusters use the global quantile: a 5th percentile of a few rows is noise."""
MIN_SAMPLE_ROWS = 10_000
MAX_SAMPLE_ROWS = 50_000
SAMPLE_ROWS_PER_BIN = 200
"""Sample rows per bin: keeps the sampling noise of cosine_drift near 0.03 (see docs)."""
STATS_MAX_ROWS = 200_000
"""Baseline statistics are estimated on at most this many rows (quantiles to ±0.002)."""
_CHUNK_ROWS = 32_768

Stats = dict[str, float | list[float]]


@dataclass(frozen=True)
class Measurement:
    """A metric's value and one line saying what it is made of (for status and Events)."""

    value: float
    note: str


def unit_centroids(centroids: Float32Matrix) -> Float32Matrix:
    """Centroids scaled to unit length (a zero centroid stays zero and matches nothing)."""
    c = np.asarray(centroids, dtype=np.float32)
    norms = np.linalg.norm(c, axis=1, keepdims=True)
    out: Float32Matrix = np.divide(c, norms, out=np.zeros_like(c), where=norms > 0)
    return out


def nearest_centroid(
    matrix: Float32Matrix, centroids: Float32Matrix
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Index of the most cosine-similar centroid of each row, and that similarity.

    Rows are not copied or normalised: similarities are divided by the row
    norms afterwards, one chunk at a time, so memory stays at chunk × K.
    Zero rows get similarity 0; with no centroids every row gets index -1
    and similarity -1 (it matches nothing).
    """
    n = matrix.shape[0]
    index = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, -1.0, dtype=np.float32)
    if centroids.shape[0] == 0 or n == 0:
        return index, similarity
    unit_t = np.ascontiguousarray(unit_centroids(centroids).T)
    for start in range(0, n, _CHUNK_ROWS):
        rows = np.asarray(matrix[start : start + _CHUNK_ROWS], dtype=np.float32)
        dots = rows @ unit_t
        best = dots.argmax(axis=1)
        top = dots[np.arange(len(best)), best]
        norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float32))
        index[start : start + len(best)] = best
        similarity[start : start + len(best)] = np.divide(
            top, norms, out=np.zeros_like(top), where=norms > 0
        )
    return index, similarity


def baseline_stats(
    data: Float32Matrix | Iterable[Float32Matrix], centroids: Float32Matrix
) -> Stats:
    """What the drift metrics need to know about the baseline's own documents.

    `data` is the matrix the run clustered (or blocks of it, or a uniform
    sample). The clustering labels are deliberately not used: checks bin new
    documents by nearest centroid, so the baseline is binned the same way, or
    unchanged data would show drift wherever an algorithm's labels differ
    from nearest-centroid (hdbscan noise, Euclidean k-means on raw vectors).
    """
    blocks = [data] if isinstance(data, np.ndarray) else data
    k = int(centroids.shape[0])
    indexes: list[NDArray[np.int64]] = []
    sims: list[NDArray[np.float32]] = []
    for block in blocks:
        i, s = nearest_centroid(block, centroids)
        indexes.append(i)
        sims.append(s)
    index = np.concatenate(indexes) if indexes else np.empty(0, dtype=np.int64)
    sim = np.concatenate(sims) if sims else np.empty(0, dtype=np.float32)
    n = int(index.shape[0])
    if n == 0 or k == 0:
        return {
            "rows": float(n),
            "cluster_fractions": [0.0] * k,
            "inlier_fractions": [0.0] * k,
            "similarity_mean": 0.0,
            "similarity_p05": -1.0,
            "similarity_p05_by_cluster": [-1.0] * k,
        }
    global_p05 = float(np.quantile(sim, OUTLIER_QUANTILE))
    thresholds = np.full(k, global_p05, dtype=np.float64)
    order = np.argsort(index, kind="stable")
    sorted_sim = sim[order]
    bounds = np.searchsorted(index[order], np.arange(k + 1))
    for c in range(k):
        members = sorted_sim[bounds[c] : bounds[c + 1]]
        if len(members) >= MIN_ROWS_FOR_CLUSTER_THRESHOLD:
            thresholds[c] = float(np.quantile(members, OUTLIER_QUANTILE))
    inside = sim >= thresholds[index]
    return {
        "rows": float(n),
        "cluster_fractions": _shares(index, k, n),
        "inlier_fractions": _shares(index[inside], k, n),
        "similarity_mean": float(sim.mean(dtype=np.float64)),
        "similarity_p05": global_p05,
        "similarity_p05_by_cluster": [round(float(t), 6) for t in thresholds],
    }


def row_sample_blocks(
    matrix: Float32Matrix, max_rows: int = STATS_MAX_ROWS, seed: int = 0
) -> Iterator[Float32Matrix]:
    """A seeded uniform sample of at most `max_rows` rows, gathered one chunk at a time.

    Bounds both the time of `baseline_stats` (∝ rows × K × D) and the memory
    of the gather (one chunk), for matrices of any size.
    """
    n = int(matrix.shape[0])
    if n <= max_rows:
        yield matrix
        return
    picks = np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
    for start in range(0, max_rows, _CHUNK_ROWS):
        yield matrix[picks[start : start + _CHUNK_ROWS]]


def _shares(index: NDArray[np.int64], k: int, n: int) -> list[float]:
    counts = np.bincount(index, minlength=k)[:k]
    return [round(float(c) / n, 8) for c in counts]


def bin_shares(sample: Float32Matrix, baseline: DriftBaseline) -> NDArray[np.float64]:
    """Shares of `sample` in each of the K cluster bins, then the "none" bin (K + 1 values)."""
    k = int(baseline.centroids.shape[0])
    index, sim = nearest_centroid(sample, baseline.centroids)
    n = int(index.shape[0])
    out = np.zeros(k + 1, dtype=np.float64)
    if n == 0:
        return out
    if k:
        thresholds = np.asarray(baseline.stats["similarity_p05_by_cluster"], dtype=np.float64)
        inside = sim >= thresholds[index]
        out[:k] = np.bincount(index[inside], minlength=k)[:k] / n
    out[k] = 1.0 - out[:k].sum()
    return out


def baseline_bin_shares(baseline: DriftBaseline) -> NDArray[np.float64]:
    """The baseline's K + 1 bin shares, from its statistics (as `bin_shares` of its own rows)."""
    inlier = np.asarray(baseline.stats["inlier_fractions"], dtype=np.float64)
    return np.append(inlier, max(0.0, 1.0 - float(inlier.sum())))


def needs_stats(metric: str) -> bool:
    """Whether `metric` compares a sample with the baseline (else it needs only counts)."""
    return metric in ("cosine_drift", "outlier_fraction")


def has_stats(baseline: DriftBaseline) -> bool:
    """Whether the baseline carries the statistics the sample-based metrics need."""
    k = int(baseline.centroids.shape[0])
    for key in ("inlier_fractions", "similarity_p05_by_cluster"):
        value = baseline.stats.get(key)
        if not isinstance(value, list) or len(value) != k:
            return False
    return isinstance(baseline.stats.get("similarity_mean"), float)


def sample_size_for(num_clusters: int, available: int) -> int:
    """Rows to sample for a check: enough for the noise to stay low, bounded for speed.

    The sampling noise of a total variation distance over B bins grows like
    √(B / n); 200 rows per bin keeps it near 0.03 up to ~250 clusters (10k
    rows: ~0.1 s on Parquet). Beyond 50k rows the check would stop being
    cheap, so larger K accept more noise (reported in the measurement's note).
    """
    wanted = min(MAX_SAMPLE_ROWS, max(MIN_SAMPLE_ROWS, SAMPLE_ROWS_PER_BIN * (num_clusters + 1)))
    return max(0, min(wanted, available))


def noise_floor(shares: NDArray[np.float64], n: int) -> float:
    """Expected total variation distance between a fresh n-row sample and `shares`.

    Each bin's |p̂ − p| has mean ≈ √(2p(1−p)/(πn)); used only to tell users
    in the note how far from 0 an unchanged collection reads.
    """
    if n == 0:
        return 0.0
    p = np.clip(shares, 0.0, 1.0)
    return float(0.5 * np.sqrt(2 * p * (1 - p) / (math.pi * n)).sum())


def measure(
    metric: str, sample: Float32Matrix, baseline: DriftBaseline, current_count: int
) -> Measurement:
    """Measure `metric` on a uniform `sample` of the collections now (n × D float32).

    `current_count` is the number of documents now (for document_growth).
    A baseline written before drift statistics existed measures 1.0 for the
    sample-based metrics, so that the trigger fires once and the run writes a
    complete baseline; a change of embedding dimension measures 1.0 too.
    """
    if metric == "document_growth":
        base = baseline.document_count
        growth = max(0, current_count - base) / max(1, base)
        return Measurement(growth, f"{current_count} documents now, {base} at the baseline")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    if not has_stats(baseline):
        return Measurement(
            1.0,
            f"the baseline of run {baseline.run_id} has no drift statistics (written before "
            "they existed): a new run will record them",
        )
    if sample.ndim != 2 or (sample.shape[0] and sample.shape[1] != baseline.dim):
        return Measurement(
            1.0,
            f"embeddings now have {sample.shape[-1]} dimensions, {baseline.dim} at the "
            "baseline: the embedding model changed",
        )
    n = int(sample.shape[0])
    if n == 0:
        return Measurement(0.0, "no documents to sample")
    now = bin_shares(sample, baseline)
    then = baseline_bin_shares(baseline)
    inside = max(1e-9, 1.0 - float(then[-1]))
    outside = f"outside known topics {now[-1]:.1%} (baseline {then[-1]:.1%})"
    if metric == "outlier_fraction":
        value = min(1.0, max(0.0, (float(now[-1]) - float(then[-1])) / inside))
        return Measurement(round(value, 6), f"{outside}, {n} sampled")
    tvd = 0.5 * float(np.abs(now - then).sum())
    value = min(1.0, tvd / inside)
    moved = np.abs(now[:-1] - then[:-1])
    biggest = int(moved.argmax()) if moved.size else -1
    parts = [outside]
    if biggest >= 0:
        parts.append(f"largest cluster change: {biggest} {then[biggest]:.1%} -> {now[biggest]:.1%}")
    parts.append(f"{n} sampled, noise floor ~{noise_floor(then, n) / inside:.3f}")
    return Measurement(round(value, 6), "; ".join(parts))


# Candidates that were measured and not chosen (see docs/drift.md); kept for that table.


def mean_shift(sample: Float32Matrix, baseline: DriftBaseline) -> float:
    """Candidate (a): 1 − cos(mean embedding now, mean at baseline)."""
    now = sample.mean(axis=0, dtype=np.float64)
    then = baseline.mean.astype(np.float64)
    denom = float(np.linalg.norm(now) * np.linalg.norm(then))
    return 1.0 - float(now @ then) / denom if denom > 0 else 1.0


def similarity_drop(sample: Float32Matrix, baseline: DriftBaseline) -> float:
    """Candidate (b): 1 − mean nearest-centroid similarity now / at baseline, clipped at 0."""
    _, sim = nearest_centroid(sample, baseline.centroids)
    mean = baseline.stats.get("similarity_mean")
    then = mean if isinstance(mean, float) else 0.0
    if then <= 0 or sim.size == 0:
        return 0.0
    return max(0.0, 1.0 - float(sim.mean(dtype=np.float64)) / then)


def sample_counts(counts: Mapping[str, int], n: int) -> dict[str, int]:
    """Split a sample of n rows over collections in proportion to their sizes.

    Largest remainders, so the parts add up to min(n, total) exactly and a
    collection is never asked for more rows than it has.
    """
    total = sum(counts.values())
    n = min(n, total)
    if total == 0 or n == 0:
        return dict.fromkeys(counts, 0)
    out = {c: n * m // total for c, m in counts.items()}
    rest = n - sum(out.values())
    for c in sorted(counts, key=lambda c: (-(n * counts[c] % total), c))[:rest]:
        out[c] += 1
    return out
