"""Drift metrics on generated topics: stable data stays low, new topics and mix shifts read high.

Documents are Gaussian blobs on the unit sphere around topic centres that
share a common direction (real embeddings are anisotropic: topics have cosine
~0.35 with each other here). The baseline is what the job runner records: a
k-means clustering of the baseline documents and `baseline_stats` on them.
"""

from __future__ import annotations

import json
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
    row_sample_blocks,
    sample_counts,
    sample_size_for,
    similarity_drop,
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
