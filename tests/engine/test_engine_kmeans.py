"""k-means internals: seeding, restarts, the passes and their threads."""

from __future__ import annotations

import os

import numpy as np
import pytest
from engine_support import make_blobs
from sklearn.metrics import adjusted_rand_score  # type: ignore[import-untyped]

from recluster.engine.kmeans import (
    DEFAULT_N_INIT,
    MAX_N_INIT,
    PARALLEL_BLOCK,
    assign,
    cores_of_cpu_max,
    kmeans,
    kmeans_plus_plus,
    kmeans_plus_plus_restarts,
    lloyd_pass,
    parallel_workers,
    restarts_for,
)


def test_kmeans_plus_plus_picks_one_seed_per_blob() -> None:
    rows, truth = make_blobs(n=400, k=5, d=6, std=0.2, box=20.0)
    seeds = kmeans_plus_plus(rows, 5, np.random.default_rng(0))
    labels, _ = assign(rows, seeds)
    assert adjusted_rand_score(truth, labels) == pytest.approx(1.0)


def test_restarts_seeded_together_draw_what_they_drew_one_after_the_other() -> None:
    """Batching the restarts must not change a fit's seeds: restart r's are those a
    sequential run on the same generator gave it (the same bits here; in general up to the
    products' float rounding), so a result does not change with the batching."""
    rows, _ = make_blobs(n=600, k=8, d=12, std=1.0, box=4.0, seed=5)
    together = kmeans_plus_plus_restarts(rows, 8, np.random.default_rng(3), 4)
    one_generator = np.random.default_rng(3)
    alone = [kmeans_plus_plus(rows, 8, one_generator) for _ in range(4)]
    assert len(together) == 4
    for mine, single in zip(together, alone, strict=True):
        np.testing.assert_array_equal(mine, single)
    assert not np.array_equal(together[0], together[1])
    few = np.repeat(rows[:3], 5, axis=0)  # 3 distinct points, 6 clusters asked
    for seeds in kmeans_plus_plus_restarts(few, 6, np.random.default_rng(1), 2):
        # each restart runs out on its own and fills its last seeds with repeated points
        assert seeds.shape == (6, 12)
        assert {tuple(r) for r in seeds} == {tuple(r) for r in rows[:3]}


def test_restarts_are_many_on_small_samples_and_three_on_large_ones() -> None:
    assert restarts_for(30_000, 30, 16) == MAX_N_INIT == 10  # 14 M multiply-adds a pass
    assert restarts_for(5_732, 16, 384) == 7  # 35 M: the real MiniLM sample
    assert restarts_for(20_000, 20, 384) == DEFAULT_N_INIT  # 154 M
    assert restarts_for(20_000, 40, 768) == DEFAULT_N_INIT == 3  # 614 M: 200,000 × 768, K=40
    assert restarts_for(256_000, 1_000, 1_536) == DEFAULT_N_INIT
    assert restarts_for(0, 5, 3) == MAX_N_INIT


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
