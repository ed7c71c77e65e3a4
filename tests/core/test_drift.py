"""Drift metrics on generated topics: stable data stays low, new topics and mix shifts read high.

Documents are Gaussian blobs on the unit sphere around topic centres that
share a common direction (real embeddings are anisotropic: topics have cosine
~0.35 with each other here). The baseline is what the job runner records: a
k-means clustering of the baseline documents and `baseline_stats` on them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from recluster.api.clustering import ClusteringConfig
from recluster.core.drift import (
    MAX_SAMPLE_ROWS,
    MIN_SAMPLE_ROWS,
    Measurement,
    baseline_stats,
    mean_shift,
    measure,
    nearest_centroid,
    noise_floor,
    row_sample_blocks,
    sample_counts,
    sample_size_for,
    similarity_drop,
    unit_centroids,
)
from recluster.drift_check import check, sample_collections
from recluster.engine.algorithms import cluster
from recluster.jobrunner.runner import parse_input, run_job
from recluster.store import Baseline, open_store

D = 64
K = 8
N_BASE = 8000
N_SAMPLE = 4000
THRESHOLD = 0.3  # the seed's example: "re-cluster when drift exceeds 30%"


def unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True))


class Topics:
    """K + 3 topic centres (the last 3 appear later); documents around them."""

    def __init__(self, seed: int = 0, spread: float = 1.0) -> None:
        rng = np.random.default_rng(seed)
        common = unit(rng.normal(size=(1, D)))
        self.centres = unit(0.6 * common + 0.8 * unit(rng.normal(size=(K + 3, D))))
        self.mix = rng.dirichlet(np.full(K, 3.0))
        self.spread = spread

    def docs(self, topics: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = self.spread * rng.normal(size=(len(topics), D)) / np.sqrt(D)
        return unit(self.centres[topics] + noise).astype(np.float32)

    def sample(
        self, n: int, seed: int, mix: np.ndarray | None = None, new: float = 0.0
    ) -> np.ndarray:
        """n documents from `mix` (default: the baseline's), a share `new` from topic K."""
        rng = np.random.default_rng(seed)
        m = round(n * new)
        old = rng.choice(K, size=n - m, p=self.mix if mix is None else mix)
        return np.vstack([self.docs(old, rng), self.docs(np.full(m, K), rng)])

    def shifted_mix(self, tvd: float) -> np.ndarray:
        """The baseline mix with `tvd` of the mass moved from the first half to the second."""
        mix = self.mix.copy()
        half = K // 2
        mix[:half] *= 1 - tvd / mix[:half].sum()
        mix[half:] += tvd * mix[half:] / mix[half:].sum()
        return mix


def make_baseline(topics: Topics, matrix: np.ndarray, count: int = N_BASE) -> Baseline:
    result = cluster(matrix.copy(), ClusteringConfig(algorithm="kmeans", n_clusters=K))
    return Baseline(
        run_id="base",
        collection_ids=("docs",),
        centroids=result.centroids,
        mean=matrix.mean(axis=0),
        document_count=count,
        stats=baseline_stats(matrix, result.centroids),
    )


@pytest.fixture(scope="module")
def topics() -> Topics:
    return Topics()


@pytest.fixture(scope="module")
def baseline(topics: Topics) -> Baseline:
    return make_baseline(topics, topics.sample(N_BASE, seed=1000))


def value(metric: str, sample: np.ndarray, baseline: Baseline) -> float:
    return measure(metric, sample, baseline, N_BASE).value


# The chosen definitions --------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_a_fresh_sample_of_the_same_mix_stays_near_zero(
    topics: Topics, baseline: Baseline, seed: int
) -> None:
    sample = topics.sample(N_SAMPLE, seed)
    # Expected sampling noise with 9 bins and 4000 rows is ~0.025 (the note says so).
    assert value("cosine_drift", sample, baseline) < 0.06
    assert value("outlier_fraction", sample, baseline) < 0.02


@pytest.mark.parametrize(("new", "low", "high"), [(0.1, 0.07, 0.13), (0.4, 0.36, 0.44)])
def test_a_new_topic_reads_as_its_share(
    topics: Topics, baseline: Baseline, new: float, low: float, high: float
) -> None:
    """'30% drift' ≈ 30% of documents from a topic the baseline does not know."""
    for seed in range(3):
        sample = topics.sample(N_SAMPLE, seed, new=new)
        assert low < value("cosine_drift", sample, baseline) < high
        assert low < value("outlier_fraction", sample, baseline) < high
    assert (value("cosine_drift", topics.sample(N_SAMPLE, 0, new=0.4), baseline)) > THRESHOLD


def test_a_shift_of_the_topic_mix_moves_cosine_drift_only(
    topics: Topics, baseline: Baseline
) -> None:
    steady = value("cosine_drift", topics.sample(N_SAMPLE, 7), baseline)
    small = value("cosine_drift", topics.sample(N_SAMPLE, 7, topics.shifted_mix(0.1)), baseline)
    large = topics.sample(N_SAMPLE, 7, topics.shifted_mix(0.35))
    assert steady < 0.06 < small < 0.14  # a 10-point shift is measurable
    assert 0.3 < value("cosine_drift", large, baseline) < 0.4  # ~its total variation 0.35
    assert value("outlier_fraction", large, baseline) < 0.02  # no new topic


def test_the_rejected_candidates_fail_where_the_chosen_one_does_not(
    topics: Topics, baseline: Baseline
) -> None:
    """The data behind docs/drift.md: (a) mean shift and (b) similarity drop vs the choice."""
    stable = topics.sample(N_SAMPLE, 3)
    new40 = topics.sample(N_SAMPLE, 3, new=0.4)
    shifted = topics.sample(N_SAMPLE, 3, topics.shifted_mix(0.35))
    # All three stay near 0 on unchanged data...
    assert mean_shift(stable, baseline) < 0.01 and similarity_drop(stable, baseline) < 0.01
    # ...but (a) needs far more than 40% new documents to reach 0.3 and barely sees a mix shift,
    assert mean_shift(new40, baseline) < 0.2 and mean_shift(shifted, baseline) < 0.05
    # (b) reads a new topic at about half its share and a mix shift not at all,
    assert 0.1 < similarity_drop(new40, baseline) < 0.3
    assert similarity_drop(shifted, baseline) < 0.01
    # while the chosen cosine_drift reads both on the scale of the share of documents moved.
    assert value("cosine_drift", new40, baseline) > 0.36
    assert value("cosine_drift", shifted, baseline) > 0.3


def test_embeddings_need_not_be_unit_vectors(topics: Topics, baseline: Baseline) -> None:
    rng = np.random.default_rng(5)

    def rescale(x: np.ndarray) -> np.ndarray:
        return x * rng.uniform(0.01, 100.0, size=(len(x), 1)).astype(np.float32)

    data = topics.sample(N_BASE, seed=1000)
    # The same centroids at other lengths, statistics from rescaled rows: the same baseline.
    stats = baseline_stats(rescale(data), rescale(baseline.centroids))
    assert stats["cluster_fractions"] == baseline.stats["cluster_fractions"]
    assert stats["similarity_mean"] == pytest.approx(baseline.stats["similarity_mean"], abs=1e-6)
    for new in (0.0, 0.4):
        sample = topics.sample(N_SAMPLE, 11, new=new)
        for metric in ("cosine_drift", "outlier_fraction"):
            expected = value(metric, sample, baseline)
            assert value(metric, rescale(sample), baseline) == pytest.approx(expected, abs=0.002)
    # Clustering raw rescaled rows (Euclidean k-means, no normalize) finds worse clusters,
    # yet unchanged data still reads near 0 and a 40% new topic still crosses 0.3.
    raw_base = make_baseline(topics, rescale(data))
    assert value("cosine_drift", rescale(topics.sample(N_SAMPLE, 12)), raw_base) < 0.06
    assert value("cosine_drift", rescale(topics.sample(N_SAMPLE, 12, new=0.4)), raw_base) > 0.3
    # A zero vector matches no topic: it is an outlier, never a division by zero.
    zeros = np.zeros((10, D), dtype=np.float32)
    assert value("outlier_fraction", zeros, baseline) > 0.9


def test_document_growth_is_exact(baseline: Baseline) -> None:
    empty = np.empty((0, D), dtype=np.float32)
    assert measure("document_growth", empty, baseline, 10_400) == Measurement(
        0.3, "10400 documents now, 8000 at the baseline"
    )
    assert measure("document_growth", empty, baseline, 8000).value == 0.0
    assert measure("document_growth", empty, baseline, 100).value == 0.0  # deletions: no growth
    zero = Baseline("z", ("c",), baseline.centroids, baseline.mean, 0)
    assert measure("document_growth", empty, zero, 25).value == 25.0


def test_what_cannot_be_compared_reads_as_full_drift(topics: Topics, baseline: Baseline) -> None:
    sample = topics.sample(100, 0)
    old = Baseline("old-run", ("c",), baseline.centroids, baseline.mean, N_BASE)  # no stats
    got = measure("cosine_drift", sample, old, N_BASE)
    assert got.value == 1.0 and "old-run has no drift statistics" in got.note
    other_model = np.ones((5, D + 1), dtype=np.float32)
    got = measure("outlier_fraction", other_model, baseline, N_BASE)
    assert got.value == 1.0 and "65 dimensions" in got.note
    nothing = measure("cosine_drift", np.empty((0, D), np.float32), baseline, 0)
    assert nothing == Measurement(0.0, "no documents to sample")
    with pytest.raises(ValueError, match="unknown metric 'entropy'"):
        measure("entropy", sample, baseline, N_BASE)


def test_the_note_says_what_moved(topics: Topics, baseline: Baseline) -> None:
    note = measure("cosine_drift", topics.sample(N_SAMPLE, 1, new=0.4), baseline, 0).note
    assert note.startswith("outside known topics 4")  # 40% + 5% of 60%
    assert "(baseline 5.0%)" in note and f"{N_SAMPLE} sampled, noise floor ~0.0" in note


def test_baseline_stats_in_blocks_equal_the_whole_and_are_json(
    topics: Topics, baseline: Baseline
) -> None:
    data = topics.sample(N_BASE, seed=1000)
    whole = baseline_stats(data, baseline.centroids)
    blocks = baseline_stats(iter(np.array_split(data, 7)), baseline.centroids)
    assert whole.keys() == blocks.keys() == baseline.stats.keys()
    for key, expected in whole.items():  # BLAS rounds differently for other chunk shapes
        assert blocks[key] == pytest.approx(expected, abs=1e-6)
    assert json.loads(json.dumps(whole, allow_nan=False)) == whole
    assert whole["rows"] == N_BASE and sum(whole["cluster_fractions"]) == pytest.approx(1.0)  # type: ignore[arg-type]
    assert sum(whole["inlier_fractions"]) == pytest.approx(0.95, abs=0.005)  # type: ignore[arg-type]
    # Bounded: a sample of rows, gathered chunk by chunk.
    picked = list(row_sample_blocks(data, max_rows=1000, seed=1))
    assert sum(len(b) for b in picked) == 1000
    again = list(row_sample_blocks(data, max_rows=1000, seed=1))
    assert np.array_equal(np.vstack(picked), np.vstack(again)), "the same seed, the same rows"
    assert len(np.unique(np.vstack(picked), axis=0)) == 1000
    no_clusters = baseline_stats(data, np.empty((0, D), np.float32))
    assert no_clusters["cluster_fractions"] == [] and no_clusters["rows"] == N_BASE


def test_sample_sizes_are_bounded_and_proportional() -> None:
    assert sample_size_for(8, 1_000_000) == MIN_SAMPLE_ROWS
    assert sample_size_for(100, 1_000_000) == 20_200
    assert sample_size_for(100_000, 10**9) == MAX_SAMPLE_ROWS
    assert sample_size_for(8, 300) == 300
    parts = sample_counts({"a": 700, "b": 200, "c": 100, "d": 0}, 10)
    assert parts == {"a": 7, "b": 2, "c": 1, "d": 0}
    parts = sample_counts({"a": 1, "b": 1, "c": 1}, 2)
    assert sum(parts.values()) == 2 and max(parts.values()) == 1
    assert sample_counts({"a": 3, "b": 4}, 100) == {"a": 3, "b": 4}
    # largest remainders: 2 of {a: 2, b: 1} is 4/3 and 2/3, so b's remainder wins the second
    assert sample_counts({"a": 2, "b": 1}, 2) == {"a": 1, "b": 1}
    assert sample_counts({"a": 3, "b": 1}, 1) == {"a": 1, "b": 0}
    assert sample_counts({"a": 1, "b": 0}, 5) == {"a": 1, "b": 0}
    assert sample_counts({"a": 0, "b": 0}, 10) == {"a": 0, "b": 0}
    assert sample_size_for(8, 0) == 0


# Exact answers on small constructed data --------------------------------------
#
# Rows with integer coordinates from Pythagorean triples (a, b, c): their cosine
# with an axis is a/c or b/c, computed exactly in float32, so every statistic is
# known by hand. Centroids need not be unit vectors; the third one gets no rows.

CENTROIDS = np.array([[2, 0], [0, 3], [-1, 0]], dtype=np.float32)
# Cluster 0, exactly MIN_ROWS_FOR_CLUSTER_THRESHOLD (20) rows: its own 5th percentile,
# which is its two lowest similarities (21/29, twice): rows at it are inliers.
NEAR_X = [(21, 20), (21, 20), (72, 65), (55, 48), (4, 3), (45, 28), (56, 33), (15, 8),
          (80, 39), (77, 36), (12, 5), (35, 12), (24, 7), (63, 16), (40, 9), (60, 11),
          (84, 13), (1, 0), (7, 0), (3, 0)]  # fmt: skip
# Cluster 1, 7 rows (too few): the global 5th percentile, between 120/169 and 21/29.
NEAR_Y = [(696, 697), (119, 120), (20, 21), (3, 4), (8, 15), (0, 2), (0, 1)]
HYPOTENUSE = {(21, 20): 29, (72, 65): 97, (55, 48): 73, (4, 3): 5, (45, 28): 53, (56, 33): 65,
              (15, 8): 17, (80, 39): 89, (77, 36): 85, (12, 5): 13, (35, 12): 37, (24, 7): 25,
              (63, 16): 65, (40, 9): 41, (60, 11): 61, (84, 13): 85, (696, 697): 985,
              (119, 120): 169, (20, 21): 29, (3, 4): 5, (8, 15): 17}  # fmt: skip


def cosine(row: tuple[int, int], axis: int) -> float:
    """The row's cosine with the x (0) or y (1) axis, rounded to float32 as computed."""
    c = HYPOTENUSE.get(row, max(row))
    return float(np.float32(row[axis] / c))


def quantile_05(values: list[float]) -> float:
    """numpy's default (linear) quantile, written out: the oracle of the thresholds."""
    ordered = sorted(values)
    position = 0.05 * (len(ordered) - 1)
    low = int(position)
    return ordered[low] + (position - low) * (ordered[low + 1] - ordered[low])


def test_baseline_statistics_of_known_rows() -> None:
    rows = np.array(NEAR_X + NEAR_Y, dtype=np.float32)
    sims = [cosine(r, 0) for r in NEAR_X] + [cosine(r, 1) for r in NEAR_Y]
    global_p05 = quantile_05(sims)
    assert cosine((119, 120), 1) < global_p05 < cosine((20, 21), 1) == cosine((21, 20), 0)
    stats = baseline_stats(rows, CENTROIDS)
    assert stats["similarity_p05"] == pytest.approx(global_p05, abs=1e-7)  # float32 quantile
    assert stats["similarity_mean"] == pytest.approx(math.fsum(sims) / 27, rel=1e-12, abs=0)
    assert {k: v for k, v in stats.items() if k not in ("similarity_p05", "similarity_mean")} == {
        "rows": 27.0,
        "cluster_fractions": [round(20 / 27, 8), round(7 / 27, 8), 0.0],
        # all of cluster 0 (two rows exactly at its threshold), 5 of cluster 1's 7
        "inlier_fractions": [round(20 / 27, 8), round(5 / 27, 8), 0.0],
        "similarity_p05_by_cluster": [round(21 / 29, 6), round(global_p05, 6),
                                      round(global_p05, 6)],
    }  # fmt: skip


def test_baseline_statistics_of_one_row_and_of_none() -> None:
    one = baseline_stats(np.array([[3, 4]], dtype=np.float32), CENTROIDS)
    point8 = float(np.float32(0.8))
    assert one == {
        "rows": 1.0,
        "cluster_fractions": [0.0, 1.0, 0.0],
        "inlier_fractions": [0.0, 1.0, 0.0],
        "similarity_mean": point8,
        "similarity_p05": point8,
        "similarity_p05_by_cluster": [0.8, 0.8, 0.8],
    }
    assert baseline_stats(iter([]), CENTROIDS) == {
        "rows": 0.0,
        "cluster_fractions": [0.0, 0.0, 0.0],
        "inlier_fractions": [0.0, 0.0, 0.0],
        "similarity_mean": 0.0,
        "similarity_p05": -1.0,
        "similarity_p05_by_cluster": [-1.0, -1.0, -1.0],
    }


def hand_baseline(**stats: float | list[float]) -> Baseline:
    """Two topics on the axes; 50 % and 30 % of the baseline inside them, 20 % outside."""
    defaults: dict[str, float | list[float]] = {
        "inlier_fractions": [0.5, 0.3],
        "similarity_p05_by_cluster": [1.0, 0.8],
        "similarity_mean": 0.9,
    }
    centroids = np.array([[1, 0], [0, 1]], dtype=np.float32)
    mean = np.array([1, 0], dtype=np.float32)
    return Baseline("hand", ("c",), centroids, mean, 100, stats={**defaults, **stats})


def test_measures_of_a_known_sample() -> None:
    # (2, 0) is exactly at topic 0's threshold 1.0: inside; (4, 3) is below it: outside.
    sample = np.array([[2, 0], [0, 5], [4, 3]], dtype=np.float32)
    base = hand_baseline()
    assert measure("outlier_fraction", sample, base, 0) == Measurement(
        round((1 / 3 - 0.2) / 0.8, 6), "outside known topics 33.3% (baseline 20.0%), 3 sampled"
    )
    tvd = 0.5 * (abs(1 / 3 - 0.5) + abs(1 / 3 - 0.3) + abs(1 / 3 - 0.2))
    drift = measure("cosine_drift", sample, base, 0)
    assert drift == Measurement(
        round(tvd / 0.8, 6),
        "outside known topics 33.3% (baseline 20.0%); largest cluster change: 0 50.0% -> 33.3%;"
        " 3 sampled, noise floor ~0.391",
    )
    # the largest change is topic 1's, 30 % -> 50 % (topic 0 moved 15 points)
    mix = np.array([[2, 0]] * 7 + [[0, 5]] * 10 + [[4, 3]] * 3, dtype=np.float32)
    assert (
        "; largest cluster change: 1 30.0% -> 50.0%; " in measure("cosine_drift", mix, base, 0).note
    )
    # one row, outside every topic: all of the room the baseline left is taken
    alone = measure("outlier_fraction", np.array([[4, 3]], dtype=np.float32), base, 0)
    assert alone.value == 1.0
    # all of a sample in a topic that held 10 % (40 % outside): TVD 0.9 / 0.6, clipped to 1
    small_topic = hand_baseline(inlier_fractions=[0.5, 0.1])
    assert measure("cosine_drift", np.array([[0, 5]], np.float32), small_topic, 0).value == 1.0


def test_a_baseline_without_clusters_reads_no_cluster_change() -> None:
    empty = np.empty((0, 2), dtype=np.float32)
    stats: dict[str, float | list[float]] = {
        "inlier_fractions": [], "similarity_p05_by_cluster": [], "similarity_mean": 0.0,
    }  # fmt: skip
    base = Baseline("none", ("c",), empty, np.array([1, 0], np.float32), 5, stats=stats)
    assert measure("cosine_drift", np.ones((5, 2), np.float32), base, 0) == Measurement(
        0.0, "outside known topics 100.0% (baseline 100.0%); 5 sampled, noise floor ~0.000"
    )


def test_nearest_centroid_of_known_rows() -> None:
    index, sim = nearest_centroid(np.array([[0, 3]], dtype=np.float32), CENTROIDS)
    assert (index.tolist(), sim.tolist(), sim.dtype) == ([1], [1.0], np.float32)
    # a zero row is similar to nothing (0); with no centroids every row matches nothing (-1)
    rows = np.array([[0, 0], [4, 3], [0.5, 0]], np.float64)  # read as float32
    index, sim = nearest_centroid(rows, CENTROIDS)
    assert (index.tolist(), sim.tolist()) == ([0, 0, 0], [0.0, float(np.float32(0.8)), 1.0])
    index, sim = nearest_centroid(np.ones((3, 2), np.float32), np.empty((0, 2), np.float32))
    assert (index.tolist(), sim.tolist(), sim.dtype) == ([-1] * 3, [-1.0] * 3, np.float32)


def test_centroids_are_scaled_to_unit_length_and_a_zero_one_stays_zero() -> None:
    got = unit_centroids(np.array([[3, 4], [0, 0], [0, -2]], dtype=np.float64))
    assert got.dtype == np.float32  # whatever the centroids' dtype, as the rows
    assert got.tolist() == [[0.6000000238418579, 0.800000011920929], [0.0, 0.0], [0.0, -1.0]]


def test_what_is_not_a_sample_of_the_baseline_reads_exactly() -> None:
    base = hand_baseline()
    assert measure("cosine_drift", np.empty((0, 3), np.float32), base, 0) == Measurement(
        0.0, "no documents to sample"
    )
    assert measure("cosine_drift", np.ones(3, np.float32), base, 0) == Measurement(
        1.0, "embeddings now have 3 dimensions, 2 at the baseline: the embedding model changed"
    )
    old = Baseline("old-run", ("c",), base.centroids, base.mean, 100)
    assert measure("outlier_fraction", np.ones((1, 2), np.float32), old, 0) == Measurement(
        1.0,
        "the baseline of run old-run has no drift statistics (written before they existed): "
        "a new run will record them",
    )
    with pytest.raises(ValueError) as refused:
        measure("entropy", np.ones((1, 2), np.float32), base, 0)
    assert str(refused.value) == (
        "unknown metric 'entropy'; expected one of cosine_drift, document_growth, outlier_fraction"
    )


def test_noise_floor_is_the_expected_total_variation_of_a_fresh_sample() -> None:
    # two even bins: 0.5 * 2 * sqrt(2 * 0.25 / (pi n)) = sqrt(1 / (2 pi n))
    for n in (1, 100):
        half = noise_floor(np.array([0.5, 0.5]), n)
        assert half == pytest.approx(math.sqrt(1 / (2 * math.pi * n)), rel=1e-12)
    # 0.5 * (sqrt(0.5 / 3pi) + sqrt(0.42 / 3pi) + sqrt(0.32 / 3pi))
    assert noise_floor(np.array([0.5, 0.3, 0.2]), 3) == pytest.approx(0.3128467, abs=1e-7)
    assert noise_floor(np.array([0.5, 0.5]), 0) == 0.0
    # shares a rounding step put just outside [0, 1] are read as 0 and 1, never NaN
    assert noise_floor(np.array([1 + 2e-16, -2e-16]), 10) == 0.0
    assert noise_floor(np.array([0.5, 0.5, -1e-17]), 100) == noise_floor(np.array([0.5, 0.5]), 100)


def test_the_rejected_candidates_on_known_samples() -> None:
    base = hand_baseline()
    # similarity drop: 1 - mean similarity now / at baseline, 0 where there is no baseline mean
    one = np.array([[4, 3]], dtype=np.float32)
    assert similarity_drop(one, base) == pytest.approx(1 - float(np.float32(0.8)) / 0.9, rel=1e-12)
    three = np.array([[4, 3], [12, 5], [7, 24]], dtype=np.float32)
    mean64 = math.fsum(float(np.float32(x)) for x in (4 / 5, 12 / 13, 24 / 25)) / 3
    assert similarity_drop(three, base) == pytest.approx(1 - mean64 / 0.9, rel=1e-12, abs=0)
    assert similarity_drop(one, hand_baseline(similarity_mean=0.0)) == 0.0
    no_stats = Baseline("old", ("c",), base.centroids, base.mean, 100)
    assert similarity_drop(one, no_stats) == 0.0
    # mean shift: 1 - cos(mean now, mean then), accumulated in float64 (a large coordinate
    # does not swallow a small one), and 1.0 when the mean now is zero
    big = np.array([[2**24, 1], [1, 0], [-(2**24), 0]], dtype=np.float32)
    assert mean_shift(big, base) == pytest.approx(1 - 1 / math.sqrt(2), rel=1e-12)
    assert mean_shift(np.zeros((2, 2), np.float32), base) == 1.0


# The impure check, against a real store and a baseline from the real job runner ------


def test_check_end_to_end_against_a_parquet_store(topics: Topics, tmp_path: Path) -> None:
    uri = str(tmp_path / "store")
    store = open_store(uri)
    first = topics.sample(6000, seed=21)
    store.append("team", "news", [f"n{i}" for i in range(4000)], first[:4000])
    store.append("team", "blogs", [f"b{i}" for i in range(2000)], first[4000:])
    collections = ["news", "blogs"]
    assert check(store, "team", collections, "cosine_drift", seed=1) is None  # no baseline yet

    config = {"collection_ids": collections, "config": {"algorithm": "kmeans", "n_clusters": K}}
    job = parse_input(json.dumps(config), "run-1", "team", uri)
    assert run_job(job, open_store, log=lambda _: None)["num_documents"] == 6000

    # More of the same: growth, but no drift.
    more = topics.sample(3000, seed=22)
    store.append("team", "news", [f"m{i}" for i in range(3000)], more)
    growth = check(store, "team", collections, "document_growth", seed=2)
    assert growth == Measurement(0.5, "9000 documents now, 6000 at the baseline")
    for seed in range(3):
        stable = check(store, "team", collections, "cosine_drift", seed=seed)
        assert stable is not None and stable.value < 0.06, stable
        assert "9000 sampled" in stable.note  # small collections: every row
        outliers = check(store, "team", collections, "outlier_fraction", seed=seed)
        assert outliers is not None and outliers.value < 0.02

    # A new topic arrives in one collection: 6000 of 15000 documents (40%).
    rng = np.random.default_rng(23)
    fresh = topics.docs(np.full(6000, K), rng)
    store.append("team", "blogs", [f"t{i}" for i in range(6000)], fresh)
    drifted = check(store, "team", collections, "cosine_drift", seed=4)
    assert drifted is not None and 0.36 < drifted.value < 0.44 and drifted.value > THRESHOLD
    outliers = check(store, "team", collections, "outlier_fraction", seed=4)
    # Lower: this k-means merged two small topics into one broad cluster, whose
    # low threshold admits some of the new topic (cosine_drift sees it as its growth).
    assert outliers is not None and 0.3 < outliers.value < 0.44


def test_sample_collections_splits_by_size(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "store"))
    store.append("ns", "big", [f"a{i}" for i in range(900)], np.ones((900, 4), np.float32))
    store.append("ns", "small", [f"b{i}" for i in range(100)], np.zeros((100, 4), np.float32))
    sample = sample_collections(store, "ns", {"big": 900, "small": 100}, 50, seed=3)
    assert sample.shape == (50, 4) and sample.dtype == np.float32
    assert int((sample[:, 0] == 1).sum()) == 45  # 90% from the big collection
    store.append("ns", "wide", ["w"], np.ones((1, 5), np.float32))
    with pytest.raises(ValueError, match="different dimensions"):
        sample_collections(store, "ns", {"big": 900, "wide": 1}, 901, seed=3)
