"""k-means internals and the bounded-memory streaming path."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest
from engine_support import make_blobs
from sklearn.metrics import adjusted_rand_score  # type: ignore[import-untyped]

from recluster.engine import NOISE, kmeans_streaming
from recluster.engine.kmeans import (
    PARALLEL_BLOCK,
    assign,
    cores_of_cpu_max,
    kmeans,
    kmeans_plus_plus,
    lloyd_pass,
    parallel_workers,
)


def blocks_of(rows: npt.NDArray[np.float32], size: int) -> Iterator[npt.NDArray[np.float32]]:
    for start in range(0, rows.shape[0], size):
        yield rows[start : start + size]


def test_kmeans_plus_plus_picks_one_seed_per_blob() -> None:
    rows, truth = make_blobs(n=400, k=5, d=6, std=0.2, box=20.0)
    seeds = kmeans_plus_plus(rows, 5, np.random.default_rng(0))
    labels, _ = assign(rows, seeds)
    assert adjusted_rand_score(truth, labels) == pytest.approx(1.0)


def test_assign_returns_nearest_centroid_and_squared_distance() -> None:
    centroids = np.array([[0, 0], [10, 0]], dtype=np.float32)
    rows = np.array([[1, 0], [9, 1], [4.9, 0]], dtype=np.float32)
    labels, sq = assign(rows, centroids)
    np.testing.assert_array_equal(labels, [0, 1, 0])
    np.testing.assert_allclose(sq, [1.0, 2.0, 24.01], rtol=1e-5)


@pytest.mark.parametrize("workers", [1, 2])
def test_assign_returns_nearest_centroid_and_squared_distance_on_any_number_of_threads(
    workers: int,
) -> None:
    centroids = np.array([[0, 0], [10, 0]], dtype=np.float32)
    rows = np.array([[1, 0], [9, 1], [4.9, 0], [5, 0]], dtype=np.float32)
    labels, sq = assign(rows, centroids, workers)
    np.testing.assert_array_equal(labels, [0, 1, 0, 0])  # a tie goes to the first centroid
    np.testing.assert_allclose(sq, [1.0, 2.0, 24.01, 25.0], rtol=1e-5)


def test_parallel_lloyd_pass_equals_the_one_thread_pass() -> None:
    """Same labels, counts and member sums (to float rounding) on threads as on one."""
    rows, _ = make_blobs(n=3 * PARALLEL_BLOCK + 17, k=12, d=24, std=1.0, box=3.0, seed=2)
    centroids = np.ascontiguousarray(rows[::300][:12])
    sums, counts, labels, partial = lloyd_pass(rows, centroids, workers=1)
    p_sums, p_counts, p_labels, p_partial = lloyd_pass(rows, centroids, workers=2)
    np.testing.assert_array_equal(p_labels, labels)
    np.testing.assert_array_equal(p_counts, counts)
    assert p_counts.sum() == rows.shape[0]
    np.testing.assert_allclose(p_sums, sums, rtol=1e-5, atol=1e-3)
    assert p_partial == pytest.approx(partial, rel=1e-5)
    p_labels_assigned, p_distances = assign(rows, centroids, workers=2)
    labels_assigned, distances = assign(rows, centroids)
    np.testing.assert_array_equal(p_labels_assigned, labels_assigned)
    np.testing.assert_allclose(p_distances, distances, rtol=1e-4, atol=1e-4)


def test_parallel_lloyd_pass_gives_the_same_bits_on_any_number_of_threads() -> None:
    rows, _ = make_blobs(n=5 * PARALLEL_BLOCK, k=8, d=32, std=1.0, box=3.0, seed=3)
    centroids = np.ascontiguousarray(rows[:8])
    two = lloyd_pass(rows, centroids, workers=2)
    three = lloyd_pass(rows, centroids, workers=3)
    np.testing.assert_array_equal(two[0], three[0])
    np.testing.assert_array_equal(two[2], three[2])
    assert two[3] == three[3]


def test_kmeans_large_enough_to_run_on_threads_finds_the_blobs() -> None:
    rows, truth = make_blobs(n=40_000, k=20, d=160, std=1.0, box=4.0, seed=5)
    assert 1 <= parallel_workers(rows.shape[0] * 20 * rows.shape[1]) <= len(os.sched_getaffinity(0))
    labels = kmeans(rows, 20)
    assert adjusted_rand_score(truth, labels) == pytest.approx(1.0)


def test_small_kmeans_stays_on_one_thread() -> None:
    assert parallel_workers(1_000 * 16 * 384) == 1


@pytest.mark.parametrize(
    ("text", "cores"),
    [
        ("200000 100000\n", 2),  # limits.cpu: 2
        ("150000 100000", 2),  # 1.5 CPUs: two threads, each busy part of the time
        ("50000 100000", 1),
        ("max 100000\n", None),  # no limit
        ("", None),
        ("garbage", None),
        ("x 100000", None),
        ("0 100000", None),
    ],
)
def test_cores_of_cpu_max_reads_the_cgroup_quota(text: str, cores: int | None) -> None:
    assert cores_of_cpu_max(text) == cores


def test_streaming_recovers_blobs_fed_in_blocks() -> None:
    rows, truth = make_blobs(n=12_000, k=10, d=16, std=1.0, box=6.0, seed=4)
    passes = []

    def factory() -> Iterator[npt.NDArray[np.float32]]:
        passes.append(1)
        return blocks_of(rows, 1_000)

    result = kmeans_streaming(factory, 10, sample_size=2_000, random_state=3)
    assert len(passes) == 3  # sample, one mini-batch pass, the labelling pass
    assert adjusted_rand_score(truth, result.labels) > 0.99
    assert result.labels.shape == (12_000,) and result.labels.dtype == np.int32
    assert result.sizes.sum() == 12_000
    for c in range(result.num_clusters):
        np.testing.assert_allclose(
            result.centroids[c], rows[result.labels == c].mean(axis=0), atol=1e-4
        )
    assert result.quality is not None and 0.5 < result.quality <= 1.0
    assert {"sample", "fit", "minibatch", "assign", "quality", "total"} <= result.timings_ms.keys()


def test_streaming_is_deterministic_and_block_size_independent_on_clear_blobs() -> None:
    rows, truth = make_blobs(n=6_000, k=6, d=8, std=0.5, box=6.0, seed=8)
    a = kmeans_streaming(lambda: blocks_of(rows, 500), 6, sample_size=1_500, random_state=1)
    b = kmeans_streaming(lambda: blocks_of(rows, 500), 6, sample_size=1_500, random_state=1)
    c = kmeans_streaming(lambda: blocks_of(rows, 2_048), 6, sample_size=1_500, random_state=1)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert adjusted_rand_score(a.labels, c.labels) == pytest.approx(1.0)
    assert adjusted_rand_score(truth, a.labels) == pytest.approx(1.0)


def test_streaming_normalize_keeps_raw_space_centroids() -> None:
    rng = np.random.default_rng(0)
    directions = np.eye(5, dtype=np.float32)[:3]
    truth = np.arange(3_000) % 3
    scale = rng.uniform(1, 50, size=(3_000, 1))
    rows = ((directions[truth] + rng.normal(scale=0.05, size=(3_000, 5))) * scale).astype(
        np.float32
    )
    result = kmeans_streaming(
        lambda: blocks_of(rows, 700), 3, normalize=True, sample_size=1_000, passes=1
    )
    assert adjusted_rand_score(truth, result.labels) == pytest.approx(1.0)
    for c in range(3):
        np.testing.assert_allclose(
            result.centroids[c], rows[result.labels == c].mean(axis=0), rtol=1e-4, atol=1e-3
        )
    assert NOISE not in result.labels


def test_streaming_rejects_too_few_rows_and_unrepeatable_blocks() -> None:
    rows, _ = make_blobs(n=5, k=1, d=3)
    with pytest.raises(ValueError, match=r"fewer documents \(5\) than n_clusters \(8\)"):
        kmeans_streaming(lambda: blocks_of(rows, 2), 8)
    calls: list[int] = []
    big, _ = make_blobs(n=600, k=3, d=3)

    def shrinking() -> Iterator[npt.NDArray[np.float32]]:
        calls.append(1)
        return blocks_of(big[: 600 - 100 * (len(calls) - 1)], 100)

    with pytest.raises(ValueError, match="not repeatable"):
        kmeans_streaming(shrinking, 3, passes=1)
