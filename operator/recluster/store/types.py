"""The values stores exchange with the job runner and the operator.

Matrices are float32 and C-contiguous because that is what the clustering
engine (faiss, fast_hdbscan, scikit-learn) consumes without another copy.
The classes check shapes on construction so that a store never writes a run
whose parts disagree.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

# The identifier pattern of the API (recluster.api.base.ID_PATTERN), repeated
# here so that the store does not depend on the API models. It also keeps ids
# safe as path components and SQL values: no "/", no "..", no ",". A full match:
# Python's `$` would let a trailing newline into a path.
ID_PATTERN = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?")
MAX_ID_LENGTH = 253
ARTIFACT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.[a-z0-9]+")
"""Artifact file names: lower-case, one extension (`centroids.parquet`, `report.html`)."""
MAX_ARTIFACT_NAME = 64

Float32Matrix = NDArray[np.float32]


def check_id(kind: str, value: str) -> str:
    """Reject ids that are not API identifiers: they become paths and keys."""
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH or not ID_PATTERN.fullmatch(value):
        raise ValueError(
            f"invalid {kind} {value!r}: expected 1-{MAX_ID_LENGTH} characters of"
            " letters, digits, '_', '.', ':', '-', starting and ending with a letter or digit"
        )
    return value


def check_artifact_name(value: str) -> str:
    """Artifact names become file names and keys: a plain lower-case name with an extension."""
    if (
        not isinstance(value, str)
        or len(value) > MAX_ARTIFACT_NAME
        or not ARTIFACT_NAME.fullmatch(value)
    ):
        raise ValueError(
            f"invalid artifact name {value!r}: expected at most {MAX_ARTIFACT_NAME} lower-case"
            " letters, digits, '_', '-' and one extension, like 'centroids.parquet'"
        )
    return value


def as_matrix(values: Any, what: str = "embeddings") -> Float32Matrix:
    """Return `values` as a C-contiguous float32 N×D matrix, copying only if needed."""
    matrix = np.ascontiguousarray(values, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"{what} must be a 2-D matrix, got shape {matrix.shape}")
    return matrix


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, eq=False)
class Collection:
    """Rows of one or more collections: ids and a float32 matrix, row for row.

    `collection_ids` and `offsets` say which rows came from which collection
    (rows ``offsets[i]:offsets[i+1]`` belong to ``collection_ids[i]``), so a
    run over several collections can write each assignment back to its source.
    """

    document_ids: list[str]
    embeddings: Float32Matrix
    collection_ids: tuple[str, ...] = ()
    offsets: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.embeddings.dtype != np.float32 or self.embeddings.ndim != 2:
            raise ValueError("embeddings must be a float32 N×D matrix")
        if not self.embeddings.flags.c_contiguous:
            raise ValueError("embeddings must be C-contiguous")
        if len(self.document_ids) != self.embeddings.shape[0]:
            raise ValueError(
                f"{len(self.document_ids)} document ids for {self.embeddings.shape[0]} embeddings"
            )
        if self.collection_ids and len(self.offsets) != len(self.collection_ids) + 1:
            raise ValueError("offsets must have one more entry than collection_ids")
        if self.offsets and (self.offsets[0] != 0 or self.offsets[-1] != len(self.document_ids)):
            raise ValueError("offsets must start at 0 and end at the number of rows")

    def __len__(self) -> int:
        return len(self.document_ids)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])


@dataclass(frozen=True, eq=False)
class Baseline:
    """What drift triggers compare new data against: the state of the last good run."""

    run_id: str
    collection_ids: tuple[str, ...]
    centroids: Float32Matrix  # K×D
    mean: NDArray[np.float32]  # D
    document_count: int
    created_at: datetime = field(default_factory=utc_now)
    stats: dict[str, float | list[float]] = field(default_factory=dict)
    """What drift metrics need about the baseline's own documents (`core.drift.baseline_stats`).

    JSON numbers and lists of numbers; empty for baselines written before they existed.
    """

    def __post_init__(self) -> None:
        check_id("run id", self.run_id)
        if not self.collection_ids:
            raise ValueError("a baseline needs at least one collection id")
        object.__setattr__(self, "stats", _check_stats(self.stats))
        for cid in self.collection_ids:
            check_id("collection id", cid)
        object.__setattr__(self, "collection_ids", tuple(self.collection_ids))
        object.__setattr__(self, "centroids", as_matrix(self.centroids, "baseline centroids"))
        mean = np.ascontiguousarray(self.mean, dtype=np.float32)
        if mean.ndim != 1 or (self.centroids.shape[0] and mean.shape[0] != self.centroids.shape[1]):
            raise ValueError(
                f"baseline mean has shape {mean.shape}, centroids {self.centroids.shape}"
            )
        object.__setattr__(self, "mean", mean)
        if self.created_at.tzinfo is None:
            raise ValueError("baseline created_at must be timezone-aware")

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])


def _check_stats(stats: dict[str, Any]) -> dict[str, float | list[float]]:
    """Plain floats and lists of floats, finite: what JSON, jsonb and Parquet metadata hold."""
    out: dict[str, float | list[float]] = {}
    for key, value in stats.items():
        if not isinstance(key, str):
            raise ValueError(f"baseline stats keys must be strings, got {key!r}")
        try:
            if isinstance(value, list | tuple | np.ndarray):
                out[key] = [float(v) for v in value]
            else:
                out[key] = float(value)
            json.dumps(out[key], allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError(
                f"baseline stats {key!r} must be a finite number or a list of them"
            ) from None
    return out


@dataclass(frozen=True, eq=False)
class RunResults:
    """Everything one clustering run writes; a store makes it visible all at once.

    `labels` are cluster numbers 0..K-1, or -1 for noise (hdbscan, dbscan,
    optics). `offsets` has the meaning it has in `Collection`; it may be left
    empty when the run covers a single collection. `artifacts` are named files
    (Parquet tables, the report) written and committed with the run; their
    layouts are documented in docs/store.md, "Artifacts".
    """

    run_id: str
    collection_ids: tuple[str, ...]
    document_ids: list[str]
    labels: NDArray[np.int32]
    cluster_sizes: NDArray[np.int64]  # K
    centroids: Float32Matrix  # K×D
    summary: dict[str, Any]
    baseline: Baseline | None = None
    offsets: tuple[int, ...] = ()
    created_at: datetime = field(default_factory=utc_now)
    artifacts: Mapping[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_id("run id", self.run_id)
        if not self.collection_ids:
            raise ValueError("a run needs at least one collection id")
        for name, content in self.artifacts.items():
            check_artifact_name(name)
            if not isinstance(content, bytes):
                raise ValueError(f"artifact {name!r} must be bytes, got {type(content).__name__}")
        object.__setattr__(self, "artifacts", dict(self.artifacts))
        for cid in self.collection_ids:
            check_id("collection id", cid)
        object.__setattr__(self, "collection_ids", tuple(self.collection_ids))
        n = len(self.document_ids)
        labels = np.ascontiguousarray(self.labels, dtype=np.int32)
        if labels.shape != (n,):
            raise ValueError(f"{labels.shape[0]} labels for {n} documents")
        object.__setattr__(self, "labels", labels)
        centroids = as_matrix(self.centroids, "centroids")
        sizes = np.ascontiguousarray(self.cluster_sizes, dtype=np.int64)
        if sizes.shape != (centroids.shape[0],):
            raise ValueError(f"{sizes.shape[0]} cluster sizes for {centroids.shape[0]} centroids")
        object.__setattr__(self, "centroids", centroids)
        object.__setattr__(self, "cluster_sizes", sizes)
        if n and (labels.min() < -1 or labels.max() >= centroids.shape[0]):
            raise ValueError(f"labels must lie in -1..{centroids.shape[0] - 1}")
        offsets = tuple(int(o) for o in self.offsets)
        if not offsets:
            if len(self.collection_ids) != 1:
                raise ValueError("offsets are required when a run covers several collections")
            offsets = (0, n)
        if len(offsets) != len(self.collection_ids) + 1 or offsets[0] != 0 or offsets[-1] != n:
            raise ValueError(
                "offsets must run from 0 to the number of documents, one per collection"
            )
        if any(b < a for a, b in itertools.pairwise(offsets)):
            raise ValueError("offsets must not decrease")
        object.__setattr__(self, "offsets", offsets)
        if self.created_at.tzinfo is None:
            raise ValueError("run created_at must be timezone-aware")
        try:
            json.dumps(self.summary, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"run summary must be JSON (no NaN, no objects): {exc}") from None

    @property
    def num_clusters(self) -> int:
        return int(self.centroids.shape[0])

    def collection_of_rows(self) -> NDArray[np.int32]:
        """Index into `collection_ids` of each row."""
        counts = [b - a for a, b in itertools.pairwise(self.offsets)]
        return np.repeat(np.arange(len(self.collection_ids), dtype=np.int32), counts)


def collection_set_key(collection_ids: Sequence[str]) -> str:
    """Stable name of a set of collections: order and repeats do not matter."""
    ids = sorted({check_id("collection id", c) for c in collection_ids})
    if not ids:
        raise ValueError("at least one collection id is required")
    return ",".join(ids)
