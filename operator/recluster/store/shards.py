"""A Parquet store cut into shards, for runs spread over many workers (runtime ray).

A shard is a run of row groups of one part file: the unit one worker reads,
assigns and writes back. The layout of results stays the single-node one
(store/parquet.py), with one difference readers already take: a run's
`assignments.parquet` is a directory of `part-<5 digits>.parquet` shards.

Rules:

1. Shards are numbered in row order: collections in the run's order, part
   files in append order, row groups in file order. Assignment shard i holds
   the rows of shard i, so reading the shards in name order gives the rows
   grouped by collection in the run's order, as `RunResults.offsets` needs.
2. Workers write only their own shard files; the driver alone commits
   (`commit`): clusters, baseline and summary, then the index entry and
   `_SUCCESS`, exactly as `ParquetStore.write_run`. An uncommitted run is
   invisible and the next attempt of the same run id starts over (`begin`).
3. A shard is at most `rows_per_shard` rows (whole row groups), so one worker's
   memory is bounded whatever the part files' sizes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from .errors import RunExists
from .parquet import (
    ASSIGNMENTS,
    ID_COLUMN,
    SUCCESS,
    ParquetStore,
    _baseline_table,
    _fixed_size_list,
    _guarded,
)
from .types import Baseline, Float32Matrix, check_id

DEFAULT_ROWS_PER_SHARD = 262_144
"""~400 MB of float32 at D=384: a worker holds one shard and its labels at a time."""


@dataclass(frozen=True)
class Shard:
    """Row groups [first, stop) of one part file of one collection."""

    index: int
    collection_id: str
    path: str
    size: int
    """The part file's size in bytes (with its path, the key of its footer)."""
    first: int
    stop: int
    rows: int


def plan_shards(
    store: ParquetStore,
    namespace: str,
    collection_ids: Sequence[str],
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
) -> list[Shard]:
    """Every row of the collections, in run order, as shards of whole row groups (rules 1, 3)."""
    shards: list[Shard] = []
    for cid in collection_ids:
        parts = store._parts(namespace, cid)
        file_sizes = {path: size for path, size in store._footers}
        for part in parts:
            groups = part.row_group_rows
            start, rows = 0, 0
            for index, count in enumerate([*groups, 0]):
                if rows and (index == len(groups) or rows + count > rows_per_shard):
                    shards.append(
                        Shard(
                            len(shards), cid, part.path, file_sizes[part.path], start, index, rows
                        )
                    )
                    start, rows = index, 0
                rows += count
    return shards


@_guarded
def read_shard(store: ParquetStore, shard: Shard) -> tuple[list[str], Float32Matrix]:
    """Document ids and embeddings of one shard (the store's own fast row-group reader)."""
    part = store._load_footer((shard.path, shard.size))
    matrix = np.empty((shard.rows, part.dim), dtype=np.float32)
    ids: list[str] = []
    pos = 0
    for index in range(shard.first, shard.stop):
        rows = part.row_group_rows[index]
        got, _ = store._read_row_group(part, index, matrix[pos : pos + rows])
        ids.extend(got)
        pos += rows
    return ids, matrix


def _assignments_dir(store: ParquetStore, namespace: str, run_id: str) -> str:
    return f"{store._run_dir(namespace, run_id)}/{ASSIGNMENTS}"


@_guarded
def begin(store: ParquetStore, namespace: str, run_id: str) -> None:
    """Start a sharded run: RunExists if it committed; an earlier attempt's files go."""
    run_dir = store._run_dir(namespace, run_id)
    if store._exists(f"{run_dir}/{SUCCESS}"):
        raise RunExists(namespace, run_id, store.location)
    if store._exists(run_dir):
        store._fs.rm(run_dir, recursive=True)


@_guarded
def write_assignment_shard(
    store: ParquetStore,
    namespace: str,
    run_id: str,
    shard: Shard,
    document_ids: Sequence[str],
    labels: Any,
) -> None:
    """Assignment shard `shard.index`: collection_id, document_id, label (rule 2)."""
    table = pa.table(
        {
            "collection_id": pa.array([shard.collection_id] * len(document_ids), pa.string()),
            ID_COLUMN: pa.array(list(document_ids), type=pa.string()),
            "label": pa.array(np.asarray(labels, dtype=np.int32)),
        }
    )
    path = f"{_assignments_dir(store, namespace, run_id)}/part-{shard.index:05d}.parquet"
    store._write_table(table, path, atomic=True)


@_guarded
def relabel_shard(
    store: ParquetStore, namespace: str, run_id: str, shard: Shard, remap: Any
) -> None:
    """Renumber the labels of a written shard (clusters left empty are dropped)."""
    path = f"{_assignments_dir(store, namespace, run_id)}/part-{shard.index:05d}.parquet"
    table = pq.read_table(path, filesystem=store._pafs)
    labels = np.asarray(remap)[table.column("label").to_numpy()]
    table = table.set_column(2, "label", pa.array(labels.astype(np.int32)))
    store._write_table(table, path, atomic=True)


@_guarded
def commit(
    store: ParquetStore,
    namespace: str,
    run_id: str,
    collection_ids: Sequence[str],
    *,
    num_documents: int,
    cluster_sizes: Any,
    centroids: Float32Matrix,
    summary: dict[str, Any],
    baseline: Baseline | None,
    created_at: datetime,
) -> None:
    """The driver's part of a sharded run: the single-node files, then the commit (rule 2)."""
    check_id("run id", run_id)
    run_dir = store._run_dir(namespace, run_id)
    sizes = np.ascontiguousarray(cluster_sizes, dtype=np.int64)
    clusters = pa.table(
        {
            "cluster_id": pa.array(np.arange(sizes.shape[0], dtype=np.int32)),
            "size": pa.array(sizes),
            "centroid": _fixed_size_list(np.ascontiguousarray(centroids, dtype=np.float32)),
        }
    )
    store._write_table(clusters, f"{run_dir}/clusters.parquet", atomic=False)
    if baseline is not None:
        store._write_table(_baseline_table(baseline), f"{run_dir}/baseline.parquet", atomic=False)
    text = json.dumps(summary, sort_keys=True, allow_nan=False).encode()
    store._write_bytes(text, f"{run_dir}/summary.json", atomic=False)
    store._commit(
        namespace,
        run_id,
        collection_ids,
        created_at=created_at,
        num_documents=num_documents,
        num_clusters=int(sizes.shape[0]),
        dim=int(centroids.shape[1]),
        has_baseline=baseline is not None,
    )
