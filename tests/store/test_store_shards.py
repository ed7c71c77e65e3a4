"""A Parquet store cut into shards: planned in row order, written by workers, read as one run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from recluster.store.errors import RunExists, RunNotFound
from recluster.store.parquet import ParquetStore
from recluster.store.shards import (
    begin,
    commit,
    plan_shards,
    read_shard,
    relabel_shard,
    write_assignment_shard,
)

NS = "default"


@pytest.fixture
def store(tmp_path: Path) -> ParquetStore:
    """col_a: parts of 2,500 and 1,000 rows; col_b: 1,200 rows; row groups of 500."""
    s = ParquetStore(str(tmp_path / "store"), rows_per_row_group=500)
    rng = np.random.default_rng(0)
    for cid, start, stop in (("col_a", 0, 2_500), ("col_a", 2_500, 3_500), ("col_b", 0, 1_200)):
        rows = rng.standard_normal((stop - start, 4)).astype(np.float32)
        s.append(NS, cid, [f"{cid}-{i}" for i in range(start, stop)], rows)
    return s


def test_shards_are_whole_row_groups_in_row_order(store: ParquetStore) -> None:
    shards = plan_shards(store, NS, ["col_b", "col_a"], rows_per_shard=1_000)
    assert [(s.collection_id, s.rows) for s in shards] == [
        ("col_b", 1_000), ("col_b", 200),
        ("col_a", 1_000), ("col_a", 1_000), ("col_a", 500), ("col_a", 1_000),
    ]  # fmt: skip
    assert [s.index for s in shards] == list(range(6))
    ids, matrix = read_shard(store, shards[3])
    assert ids[0] == "col_a-1000" and ids[-1] == "col_a-1999" and matrix.shape == (1_000, 4)
    whole = store.read(NS, "col_a").embeddings
    np.testing.assert_array_equal(matrix, whole[1_000:2_000])


def test_assignment_shards_read_back_as_one_run(store: ParquetStore) -> None:
    shards = plan_shards(store, NS, ["col_a", "col_b"], rows_per_shard=1_000)
    begin(store, NS, "run-1")
    for shard in reversed(shards):  # workers finish in any order
        ids, _ = read_shard(store, shard)
        write_assignment_shard(store, NS, "run-1", shard, ids, np.full(len(ids), 2, np.int32))
    with pytest.raises(RunNotFound):
        store.read_run(NS, "run-1")  # invisible until the driver commits
    for shard in shards:  # cluster 0 and 1 stayed empty: 2 becomes 0
        relabel_shard(store, NS, "run-1", shard, np.array([-1, -1, 0], dtype=np.int32))
    commit(
        store, NS, "run-1", ["col_a", "col_b"], num_documents=4_700,
        cluster_sizes=[4_700], centroids=np.zeros((1, 4), np.float32),
        summary={"num_clusters": 1}, baseline=None, created_at=datetime.now(UTC),
    )  # fmt: skip
    run = store.read_run(NS, "run-1")
    assert run.document_ids == store.read_many(NS, ["col_a", "col_b"]).document_ids
    assert run.offsets == (0, 3_500, 4_700) and set(run.labels.tolist()) == {0}
    assert store.run_summary(NS, "run-1") == {"num_clusters": 1}
    assert store.latest_run(NS, ["col_b", "col_a"]) == "run-1"
    with pytest.raises(RunExists):
        begin(store, NS, "run-1")


def test_an_uncommitted_attempt_is_started_over(store: ParquetStore) -> None:
    [first, *_] = plan_shards(store, NS, ["col_a"], rows_per_shard=1_000)
    begin(store, NS, "run-2")
    write_assignment_shard(store, NS, "run-2", first, ["x"], [0])
    begin(store, NS, "run-2")  # the driver died before its commit: a new attempt
    assert not Path(store._run_dir(NS, "run-2")).exists()
