"""What a run leaves for people to look at: per-cluster geometry, a 2-D map, representatives.

Pure computation on arrays (no I/O, no clock); the job runner feeds it the
rows (all at once, or block by block when it streams) and writes the result
through `engine.artifact_tables` into the store. Invariants:

- **distance** is the cosine distance ``1 - cos(x, centroid)`` of a member to
  its cluster's centroid, in [0, 2]: invariant to the in-place normalisation
  the engine may have applied to the rows, and the metric sentence embeddings
  are compared with. Noise rows (-1) have no distance (NaN).
- a cluster's **representatives** are its members with the smallest distance,
  most central first, ties broken by row order; at most `REPRESENTATIVES`.
- the **map** holds at most `LAYOUT_MAX_ROWS` rows: up to `LAYOUT_PER_CLUSTER`
  random members of every cluster (so that every cluster has a place, however
  small) plus a uniform random sample of all rows (noise included). The
  sample depends only on the labels and the seed.
- positions on the map come from `engine.maplayout` (its invariants there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .maplayout import DEFAULT_LAYOUT, LayoutMethod, layout_2d, unit_rows

REPRESENTATIVES = 5
LAYOUT_MAX_ROWS = 5_000
"""Rows on the map: enough to show every cluster's shape; UMAP on them costs about 2 s of CPU
(docs/engine.md, "Artifacts")."""
LAYOUT_PER_CLUSTER = 5
_CHUNK_ROWS = 16_384

Int64s = npt.NDArray[np.int64]
Float32s = npt.NDArray[np.float32]


def layout_sample(
    labels: npt.NDArray[np.int32],
    num_clusters: int,
    seed: int,
    max_rows: int = LAYOUT_MAX_ROWS,
    per_cluster: int = LAYOUT_PER_CLUSTER,
) -> Int64s:
    """Sorted row positions to place on the map (see the module's invariants)."""
    n = labels.shape[0]
    if n <= max_rows:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    # Shuffled rows grouped by cluster (stable sort keeps the shuffle within a cluster):
    # each cluster's first `per_cluster` are a uniform random choice of its members.
    shuffled_labels = labels[order]
    grouped = order[np.argsort(shuffled_labels, kind="stable")]
    grouped_labels = labels[grouped]
    starts = np.searchsorted(grouped_labels, np.arange(num_clusters))
    ends = np.searchsorted(grouped_labels, np.arange(num_clusters), side="right")
    chosen = [grouped[s : min(e, s + per_cluster)] for s, e in zip(starts, ends, strict=True)]
    guaranteed = np.unique(np.concatenate([*chosen, np.empty(0, dtype=np.int64)]))
    rest = max_rows - guaranteed.size
    if rest > 0:
        taken = np.zeros(n, dtype=bool)
        taken[guaranteed] = True
        extra = order[~taken[order]][:rest]
        guaranteed = np.concatenate([guaranteed, extra])
    return np.sort(guaranteed.astype(np.int64))


@dataclass(frozen=True, eq=False)
class Geometry:
    """Everything about a run that needs the embeddings; labels come after (engine.labels)."""

    distances: Float32s
    """Per row: cosine distance to its centroid; NaN for noise."""
    spread: Float32s
    """Per cluster: mean distance of its members to the centroid."""
    representatives: list[Int64s]
    """Per cluster: row positions of its most central members, most central first."""
    layout_rows: Int64s
    layout_xy: Float32s
    centroid_xy: Float32s
    layout_method: str
    order: Int64s = field(repr=False)
    """Member rows sorted by (cluster, distance, row): the central ones of each cluster first."""
    bounds: Int64s = field(repr=False)
    """`order[bounds[k]:bounds[k+1]]` are cluster k's members."""

    def central_rows(self, per_cluster: int) -> Int64s:
        """The `per_cluster` most central members of every cluster, cluster by cluster."""
        parts = [
            self.order[self.bounds[k] : min(self.bounds[k + 1], self.bounds[k] + per_cluster)]
            for k in range(self.bounds.shape[0] - 1)
        ]
        return np.concatenate([*parts, np.empty(0, dtype=np.int64)])


class GeometryBuilder:
    """Distances and the map sample, one block of rows at a time, then `finish`.

    The runner feeds the whole matrix as one block when it holds it, or each
    streamed block when it does not: memory beyond the caller's is one chunk
    of rows plus the sample (LAYOUT_MAX_ROWS × D).
    """

    def __init__(
        self,
        labels: npt.NDArray[np.int32],
        centroids: npt.NDArray[np.float32],
        seed: int,
        max_layout_rows: int = LAYOUT_MAX_ROWS,
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int32)
        self.num_clusters = int(centroids.shape[0])
        self.unit_centroids = unit_rows(np.asarray(centroids, dtype=np.float32))
        self.seed = seed
        self.distances = np.full(self.labels.shape[0], np.nan, dtype=np.float32)
        self.layout_rows = layout_sample(self.labels, self.num_clusters, seed, max_layout_rows)
        self.layout_matrix = np.zeros(
            (self.layout_rows.shape[0], centroids.shape[1]), dtype=np.float32
        )
        self.seen = 0

    def add(self, start: int, rows: npt.NDArray[np.float32]) -> None:
        """Rows `start .. start+len(rows)` of the run, in the run's order."""
        if start != self.seen:
            raise ValueError(f"blocks must come in order: expected row {self.seen}, got {start}")
        stop = start + rows.shape[0]
        for lo in range(0, rows.shape[0], _CHUNK_ROWS):
            hi = min(rows.shape[0], lo + _CHUNK_ROWS)
            labels = self.labels[start + lo : start + hi]
            members = np.flatnonzero(labels >= 0)
            if members.size:
                x = rows[lo:hi][members]
                norms = np.linalg.norm(x, axis=1)
                dots = np.einsum("ij,ij->i", x, self.unit_centroids[labels[members]])
                cos = dots / np.maximum(norms, 1e-12)
                dist = np.clip(1.0 - cos, 0.0, 2.0)
                self.distances[start + lo + members] = dist
        first, last = np.searchsorted(self.layout_rows, [start, stop])
        if last > first:
            self.layout_matrix[first:last] = rows[self.layout_rows[first:last] - start]
        self.seen = stop

    def finish(self, method: LayoutMethod = DEFAULT_LAYOUT) -> Geometry:
        n = self.labels.shape[0]
        if self.seen != n:
            raise ValueError(f"only {self.seen} of {n} rows were added")
        k = self.num_clusters
        members = np.flatnonzero(self.labels >= 0)
        member_labels = self.labels[members]
        order = members[np.lexsort((members, self.distances[members], member_labels))]
        bounds = np.searchsorted(self.labels[order], np.arange(k + 1)).astype(np.int64)
        sizes = np.diff(bounds)
        sums = np.bincount(member_labels, weights=self.distances[members], minlength=k)
        spread = (sums / np.maximum(sizes, 1)).astype(np.float32)
        reps = [
            order[bounds[c] : min(bounds[c + 1], bounds[c] + REPRESENTATIVES)] for c in range(k)
        ]
        xy, centroid_xy, used = layout_2d(
            self.layout_matrix,
            self.labels[self.layout_rows],
            self.unit_centroids,
            sizes.astype(np.int64),
            method,
            self.seed,
        )
        return Geometry(
            distances=self.distances,
            spread=spread,
            representatives=[r.astype(np.int64) for r in reps],
            layout_rows=self.layout_rows,
            layout_xy=xy,
            centroid_xy=centroid_xy,
            layout_method=used,
            order=order.astype(np.int64),
            bounds=bounds,
        )


@dataclass(frozen=True, eq=False)
class RunArtifacts:
    """A run's artifacts, ready to be written (engine.artifact_tables) and drawn (report/)."""

    run_id: str
    collection_ids: tuple[str, ...]
    document_ids: Sequence[str]
    row_collections: npt.NDArray[np.int32]
    """Index into `collection_ids` of each row."""
    labels: npt.NDArray[np.int32]
    sizes: Int64s
    centroids: Float32s
    geometry: Geometry
    cluster_labels: list[str]
    keywords: list[list[str]]
    representative_texts: list[list[str]] | None
    """Per cluster, the texts of its representatives; None when the collection has no text."""
    summary: dict[str, object]

    def __post_init__(self) -> None:
        k = self.sizes.shape[0]
        if not (len(self.cluster_labels) == len(self.keywords) == k == self.centroids.shape[0]):
            raise ValueError("labels, keywords, sizes and centroids must have one entry a cluster")
        if len(self.document_ids) != self.labels.shape[0]:
            raise ValueError(f"{len(self.document_ids)} ids for {self.labels.shape[0]} labels")

    @property
    def num_clusters(self) -> int:
        return int(self.sizes.shape[0])

    @property
    def share(self) -> npt.NDArray[np.float64]:
        n = max(self.labels.shape[0], 1)
        share: npt.NDArray[np.float64] = np.asarray(self.sizes, dtype=np.float64) / n
        return share
