"""k-means over blocks: the bounded-memory streaming path (engine/streaming.py)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest
from engine_support import make_blobs
from sklearn.metrics import adjusted_rand_score  # type: ignore[import-untyped]

from recluster.engine import NOISE, kmeans_streaming


def blocks_of(rows: npt.NDArray[np.float32], size: int) -> Iterator[npt.NDArray[np.float32]]:
    for start in range(0, rows.shape[0], size):
        yield rows[start : start + size]


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
