"""The CollectionStore contract, run unchanged against every backend's real server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from recluster.store import (
    Baseline,
    CollectionNotFound,
    CollectionStore,
    RunExists,
    RunNotFound,
    RunResults,
)

DIM = 16
Stored = Callable[[np.ndarray], np.ndarray]


def make_rows(n: int, seed: int, prefix: str = "doc") -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}-{i:05d}" for i in range(n)]
    # Values that a float64 round trip would change: exactness is part of the test.
    return ids, rng.standard_normal((n, DIM)).astype(np.float32) / 3


def by_id(ids: list[str], matrix: np.ndarray) -> dict[str, bytes]:
    return {d: row.tobytes() for d, row in zip(ids, matrix, strict=True)}


def make_run(
    run_id: str,
    collection_ids: tuple[str, ...],
    ids: list[str],
    offsets: tuple[int, ...] = (),
    k: int = 3,
    created_at: datetime | None = None,
) -> RunResults:
    rng = np.random.default_rng(len(run_id))
    labels = (np.arange(len(ids)) % (k + 1) - 1).astype(np.int32)  # includes noise (-1)
    centroids = rng.standard_normal((k, DIM)).astype(np.float32)
    created = created_at or datetime.now(UTC)
    baseline = Baseline(
        run_id=run_id,
        collection_ids=collection_ids,
        centroids=centroids,
        mean=centroids.mean(axis=0),
        document_count=len(ids),
        created_at=created,
        stats={"cluster_fractions": [0.5, 0.25, 0.25][:k] + [0.0] * (k - 3), "rows": len(ids)},
    )
    return RunResults(
        run_id=run_id,
        collection_ids=collection_ids,
        document_ids=ids,
        labels=labels,
        cluster_sizes=np.bincount(labels[labels >= 0], minlength=k),
        centroids=centroids,
        summary={"num_clusters": k, "quality": {"silhouette": 0.25}, "run_id": run_id},
        baseline=baseline,
        offsets=offsets,
        created_at=created,
    )


def test_append_count_read_round_trip(store: CollectionStore, ns: str, as_stored: Stored) -> None:
    ids1, m1 = make_rows(300, 1, "a")
    ids2, m2 = make_rows(200, 2, "b")
    store.append(ns, "col_1", ids1, m1)
    store.append(ns, "col_1", ids2, m2)
    assert store.count(ns, "col_1") == 500
    assert store.list_collections(ns) == ["col_1"]

    got = store.read(ns, "col_1")
    assert got.embeddings.dtype == np.float32
    assert got.embeddings.flags.c_contiguous
    assert got.embeddings.shape == (500, DIM)
    assert sorted(got.document_ids) == sorted(ids1 + ids2)
    assert by_id(got.document_ids, got.embeddings) == by_id(
        ids1 + ids2, as_stored(np.vstack([m1, m2]))
    )
    # Stable order between reads.
    assert store.read(ns, "col_1").document_ids == got.document_ids


def test_read_many_keeps_collections_apart(
    store: CollectionStore, ns: str, as_stored: Stored
) -> None:
    ids1, m1 = make_rows(50, 1, "x")
    ids2, m2 = make_rows(70, 2, "x")  # same ids in another collection
    store.append(ns, "first", ids1, m1)
    store.append(ns, "second", ids2, m2)
    got = store.read_many(ns, ["second", "first"])
    assert got.collection_ids == ("second", "first")
    assert got.offsets == (0, 70, 120)
    assert by_id(got.document_ids[:70], got.embeddings[:70]) == by_id(ids2, as_stored(m2))
    assert by_id(got.document_ids[70:], got.embeddings[70:]) == by_id(ids1, as_stored(m1))


def test_append_rejects_bad_input(store: CollectionStore, ns: str) -> None:
    ids, m = make_rows(10, 1)
    store.append(ns, "c", ids, m)
    with pytest.raises(ValueError, match="dimensional"):
        store.append(ns, "c", ["other"], np.ones((1, DIM + 1), np.float32))
    with pytest.raises(ValueError, match="unique"):
        store.append(ns, "c", ["d", "d"], np.ones((2, DIM), np.float32))
    with pytest.raises(ValueError, match="finite"):
        store.append(ns, "c", ["n"], np.full((1, DIM), np.nan, np.float32))
    with pytest.raises(ValueError, match="invalid collection id"):
        store.append(ns, "../escape", ["e"], np.ones((1, DIM), np.float32))
    assert store.count(ns, "c") == 10


def test_sample_is_a_deterministic_subset(
    store: CollectionStore, ns: str, as_stored: Stored
) -> None:
    ids, m = make_rows(1000, 3)
    store.append(ns, "c", ids, m)
    full = by_id(ids, as_stored(m))

    a = store.sample(ns, "c", 100, seed=7)
    b = store.sample(ns, "c", 100, seed=7)
    c = store.sample(ns, "c", 100, seed=8)
    assert len(a) == 100 and a.embeddings.shape == (100, DIM)
    assert len(set(a.document_ids)) == 100
    assert a.document_ids == b.document_ids
    assert np.array_equal(a.embeddings, b.embeddings)
    assert a.document_ids != c.document_ids
    assert all(
        full[d] == row.tobytes() for d, row in zip(a.document_ids, a.embeddings, strict=True)
    )

    assert len(store.sample(ns, "c", 5000, seed=1)) == 1000  # capped at the collection
    assert store.sample(ns, "c", 0, seed=1).embeddings.shape == (0, DIM)


def test_iter_blocks_covers_every_row_once(
    store: CollectionStore, ns: str, as_stored: Stored
) -> None:
    ids1, m1 = make_rows(130, 1, "a")
    ids2, m2 = make_rows(75, 2, "b")
    store.append(ns, "c", ids1, m1)
    store.append(ns, "c", ids2, m2)
    blocks = list(store.iter_blocks(ns, "c", rows_per_block=64))
    assert [len(b) for b in blocks] == [64, 64, 64, 13]
    seen = [d for b in blocks for d in b.document_ids]
    assert len(seen) == len(set(seen)) == 205
    merged = np.vstack([b.embeddings for b in blocks])
    assert by_id(seen, merged) == by_id(ids1 + ids2, as_stored(np.vstack([m1, m2])))
    assert seen == store.read(ns, "c").document_ids  # same order as read


def test_missing_collection_says_which(store: CollectionStore, ns: str) -> None:
    for call in (
        lambda: store.count(ns, "nope"),
        lambda: store.read(ns, "nope"),
        lambda: store.sample(ns, "nope", 10, 0),
        lambda: list(store.iter_blocks(ns, "nope", 10)),
    ):
        with pytest.raises(CollectionNotFound) as info:
            call()
        message = str(info.value)
        assert "'nope'" in message and ns in message and "\n" not in message
    assert store.list_collections(ns) == []


def test_runs_round_trip_and_latest(store: CollectionStore, ns: str) -> None:
    ids1, m1 = make_rows(40, 1, "p")
    ids2, m2 = make_rows(30, 2, "q")
    store.append(ns, "c1", ids1, m1)
    store.append(ns, "c2", ids2, m2)
    data = store.read_many(ns, ["c1", "c2"])
    assert store.latest_run(ns, ["c1", "c2"]) is None

    first = make_run("run-1", ("c1", "c2"), data.document_ids, data.offsets)
    store.write_run(ns, first)
    second = make_run("run-2", ("c1", "c2"), data.document_ids, data.offsets, k=4)
    store.write_run(ns, second)
    assert store.latest_run(ns, ["c2", "c1", "c1"]) == "run-2"  # a set: order, repeats ignored
    assert store.latest_run(ns, ["c1"]) is None

    got = store.read_run(ns, "run-1")
    assert got.collection_ids == ("c1", "c2")
    assert got.offsets == first.offsets == (0, 40, 70)
    assert got.document_ids == first.document_ids
    assert np.array_equal(got.labels, first.labels) and got.labels.dtype == np.int32
    assert np.array_equal(got.cluster_sizes, first.cluster_sizes)
    assert np.array_equal(got.centroids, first.centroids) and got.centroids.dtype == np.float32
    assert got.summary == first.summary
    assert got.baseline is not None and first.baseline is not None
    assert np.array_equal(got.baseline.centroids, first.baseline.centroids)
    assert (
        got.baseline.stats
        == first.baseline.stats
        == {
            "cluster_fractions": [0.5, 0.25, 0.25],
            "rows": 70.0,
        }
    )
    assert got.created_at == first.created_at

    with pytest.raises(RunExists, match="run-1"):
        store.write_run(ns, make_run("run-1", ("c1", "c2"), data.document_ids, data.offsets))
    with pytest.raises(RunNotFound, match="'run-9'"):
        store.read_run(ns, "run-9")


def test_baseline_round_trip(store: CollectionStore, ns: str) -> None:
    assert store.read_baseline(ns, ["c1"]) is None
    t0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    rng = np.random.default_rng(0)
    centroids = rng.standard_normal((5, DIM)).astype(np.float32)
    # Drift statistics: values a float32 or decimal round trip would change, and a K-list.
    stats: dict[str, float | list[float]] = {
        "similarity_mean": 0.1 + 0.2,
        "similarity_p05": -1e-300,
        "cluster_fractions": [1 / 3, 2 / 3, 0.0, 0.0, 0.0],
        "rows": 1234,
    }
    written = Baseline("base-1", ("c1", "c2"), centroids, centroids.mean(0), 1234, t0, stats)
    store.write_baseline(ns, written)
    got = store.read_baseline(ns, ["c2", "c1"])
    assert got is not None
    assert got.stats == written.stats and got.stats["rows"] == 1234.0
    assert got.run_id == "base-1" and got.collection_ids == ("c1", "c2")
    assert got.document_count == 1234 and got.created_at == t0
    assert np.array_equal(got.centroids, centroids) and got.centroids.dtype == np.float32
    assert np.array_equal(got.mean, written.mean)
    assert store.read_baseline(ns, ["c1"]) is None

    # A later run's baseline supersedes it; an older explicit one does not.
    ids, m = make_rows(10, 1)
    store.append(ns, "c1", ids, m)
    store.append(ns, "c2", [f"o{i}" for i in range(5)], m[:5])
    data = store.read_many(ns, ["c1", "c2"])
    store.write_run(ns, make_run("run-b", ("c1", "c2"), data.document_ids, data.offsets))
    latest = store.read_baseline(ns, ["c1", "c2"])
    assert latest is not None and latest.run_id == "run-b" and latest.stats["rows"] == 15.0
    old = Baseline("base-0", ("c1", "c2"), centroids, centroids.mean(0), 1, t0 - timedelta(1))
    store.write_baseline(ns, old)
    latest = store.read_baseline(ns, ["c1", "c2"])
    assert latest is not None and latest.run_id == "run-b"

    # A baseline without statistics (what every baseline was before drift checks) reads as {}.
    later = datetime.now(UTC) + timedelta(1)
    bare = Baseline("base-2", ("c1", "c2"), centroids, centroids.mean(0), 7, later)
    store.write_baseline(ns, bare)
    latest = store.read_baseline(ns, ["c1", "c2"])
    assert latest is not None and latest.run_id == "base-2" and latest.stats == {}


@pytest.mark.parametrize("step", ["assignments", "files", "index"])
def test_interrupted_run_leaves_last_good_run(
    store: CollectionStore, ns: str, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    ids, m = make_rows(60, 1)
    store.append(ns, "c", ids, m)
    good = make_run("good", ("c",), ids)
    store.write_run(ns, good)

    def crash(at: str) -> None:
        if at == step:
            raise KeyboardInterrupt(f"killed during {at}")

    monkeypatch.setattr(store, "_fail_point", crash)
    bad = make_run("bad", ("c",), ids, k=5, created_at=datetime.now(UTC) + timedelta(1))
    with pytest.raises(KeyboardInterrupt):
        store.write_run(ns, bad)

    assert store.latest_run(ns, ["c"]) == "good"
    with pytest.raises(RunNotFound):
        store.read_run(ns, "bad")
    kept = store.read_run(ns, "good")
    assert np.array_equal(kept.labels, good.labels) and kept.summary == good.summary
    baseline = store.read_baseline(ns, ["c"])
    assert baseline is not None and baseline.run_id == "good"

    # The Job's retry with the same run id replaces the partial attempt.
    monkeypatch.undo()
    store.write_run(ns, bad)
    assert store.latest_run(ns, ["c"]) == "bad"
    assert store.read_run(ns, "bad").num_clusters == 5
