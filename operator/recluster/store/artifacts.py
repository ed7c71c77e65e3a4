"""The Parquet layouts of a run's artifacts: one home for their names, columns and types.

The job runner builds these tables (jobrunner/artifacts.py), every store keeps
them as files beside the run (Parquet store: `runs/<run_id>/artifacts/<name>`;
PostgreSQL: rows of `recluster_artifacts`), and readers (the gateway, the CLI,
users with pyarrow) decode them. docs/store.md, "Artifacts", documents the
same columns for users. Invariants:

- every table is one Parquet file, zstd-compressed, with a `recluster.layout`
  key-value metadata naming its layout and version (`centroids/1`, ...);
- cluster ids are 0..K-1 in every table; -1 is noise (members only);
- distances are cosine distances to the cluster's centroid (engine/artifacts.py).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

CENTROIDS = "centroids.parquet"
MEMBERS = "members.parquet"
MAP = "map.parquet"
REPRESENTATIVES = "representatives.parquet"
REPORT_HTML = "report.html"
MAP_PNG = "map.png"
MEDIA_TYPES = {
    "parquet": "application/vnd.apache.parquet",
    "html": "text/html; charset=utf-8",
    "png": "image/png",
    "json": "application/json",
}
LAYOUT_KEY = b"recluster.layout"


def media_type(name: str) -> str:
    return MEDIA_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")


def _parquet(table: Any, layout: str, extra: dict[str, str] | None = None) -> bytes:
    metadata = {
        LAYOUT_KEY: layout.encode(),
        **{k.encode(): v.encode() for k, v in (extra or {}).items()},
    }
    table = table.replace_schema_metadata(metadata)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _float_list(matrix: npt.NDArray[np.float32]) -> Any:
    item = pa.field("element", pa.float32(), nullable=False)
    flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, type=pa.list_(item, int(matrix.shape[1])))


def _nullable_floats(values: npt.NDArray[np.floating[Any]]) -> Any:
    values = np.asarray(values, dtype=np.float32)
    return pa.array(values, type=pa.float32(), mask=np.isnan(values))


def centroids_table(
    *,
    sizes: npt.NDArray[np.int64],
    share: npt.NDArray[np.float64],
    spread: npt.NDArray[np.float32],
    labels: Sequence[str],
    keywords: Sequence[Sequence[str]],
    centroids: npt.NDArray[np.float32],
    xy: npt.NDArray[np.float32],
) -> bytes:
    """One row per cluster: cluster_id, size, share, spread, label, keywords, x, y, centroid."""
    k = int(sizes.shape[0])
    table = pa.table(
        {
            "cluster_id": pa.array(np.arange(k, dtype=np.int32)),
            "size": pa.array(np.asarray(sizes, dtype=np.int64)),
            "share": pa.array(np.asarray(share, dtype=np.float64)),
            "spread": pa.array(np.asarray(spread, dtype=np.float32)),
            "label": pa.array(list(labels), type=pa.string()),
            "keywords": pa.array([list(w) for w in keywords], type=pa.list_(pa.string())),
            "x": _nullable_floats(xy[:, 0]),
            "y": _nullable_floats(xy[:, 1]),
            "centroid": _float_list(centroids),
        }
    )
    return _parquet(table, "centroids/1")


def members_table(
    *,
    collection_ids: Sequence[str],
    row_collections: npt.NDArray[np.int32],
    document_ids: Sequence[str],
    labels: npt.NDArray[np.int32],
    distances: npt.NDArray[np.float32],
) -> bytes:
    """One row per document in the run's order: collection_id, document_id, cluster_id, distance."""
    collection = pa.DictionaryArray.from_arrays(
        pa.array(np.asarray(row_collections, dtype=np.int32)),
        pa.array(list(collection_ids), type=pa.string()),
    )
    table = pa.table(
        {
            "collection_id": collection,
            "document_id": pa.array(list(document_ids), type=pa.string()),
            "cluster_id": pa.array(np.asarray(labels, dtype=np.int32)),
            "distance": _nullable_floats(distances),
        }
    )
    return _parquet(table, "members/1")


def map_table(
    *,
    document_ids: Sequence[str],
    labels: npt.NDArray[np.int32],
    xy: npt.NDArray[np.float32],
    method: str,
) -> bytes:
    """The documents on the map: document_id, cluster_id, x, y; metadata names the method."""
    table = pa.table(
        {
            "document_id": pa.array(list(document_ids), type=pa.string()),
            "cluster_id": pa.array(np.asarray(labels, dtype=np.int32)),
            "x": pa.array(np.asarray(xy[:, 0], dtype=np.float32)),
            "y": pa.array(np.asarray(xy[:, 1], dtype=np.float32)),
        }
    )
    return _parquet(table, "map/1", {"recluster.layout_method": method})


def representatives_table(
    *,
    cluster_ids: Sequence[int],
    ranks: Sequence[int],
    document_ids: Sequence[str],
    distances: Sequence[float],
    texts: Sequence[str | None],
) -> bytes:
    """cluster_id, rank (0 = most central), document_id, distance, text (null without texts)."""
    table = pa.table(
        {
            "cluster_id": pa.array(list(cluster_ids), type=pa.int32()),
            "rank": pa.array(list(ranks), type=pa.int32()),
            "document_id": pa.array(list(document_ids), type=pa.string()),
            "distance": pa.array(list(distances), type=pa.float32()),
            "text": pa.array(list(texts), type=pa.string()),
        }
    )
    return _parquet(table, "representatives/1")


def read_table(content: bytes) -> Any:
    """A pyarrow Table of one artifact's bytes."""
    return pq.read_table(io.BytesIO(content))


def layout_of(content: bytes) -> str:
    """The `recluster.layout` of an artifact table (`centroids/1`, ...)."""
    metadata = pq.read_schema(io.BytesIO(content)).metadata or {}
    return cast(bytes, metadata.get(LAYOUT_KEY, b"")).decode()


def cluster_summaries(
    centroids: bytes, representatives: bytes | None, include_centroids: bool = False
) -> list[dict[str, Any]]:
    """JSON-ready clusters: the centroids table's rows with their representatives nested."""
    table = read_table(centroids)
    columns = [c for c in table.column_names if include_centroids or c != "centroid"]
    rows = cast(list[dict[str, Any]], table.select(columns).to_pylist())
    reps: dict[int, list[dict[str, Any]]] = {}
    if representatives is not None:
        for rep in read_table(representatives).to_pylist():
            cluster = int(rep.pop("cluster_id"))
            reps.setdefault(cluster, []).append(rep)
    for row in rows:
        row["representatives"] = sorted(reps.get(row["cluster_id"], []), key=lambda r: r["rank"])
    return rows
