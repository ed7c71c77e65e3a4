"""The shell around engine/artifacts.py and engine/labels.py: texts in, artifact files out.

`RunArtifactsBuilder` is fed the run's rows (the whole matrix, or each
streamed block), reads the texts it needs from the store (only those of the
most central members of each cluster), names the clusters and returns the
files the store writes with the run (layouts in store/artifacts.py). The
report (report/) is drawn from the same values.

Artifacts never fail a run: `build` is called by the runner inside a guard
that logs the reason and writes the run without them (jobrunner/runner.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..engine.artifacts import GeometryBuilder, RunArtifacts
from ..engine.labels import (
    TEXTS_PER_CLUSTER,
    ClusterDescription,
    KeywordLabeller,
    Labeller,
    class_tfidf_keywords,
    default_label,
)
from ..engine.maplayout import DEFAULT_LAYOUT, LayoutMethod
from ..store import artifacts as layouts
from ..store.base import CollectionStore

log = logging.getLogger(__name__)


def read_row_texts(
    store: CollectionStore,
    namespace: str,
    collection_ids: Sequence[str],
    row_collections: npt.NDArray[np.int32],
    document_ids: Sequence[str],
    rows: npt.NDArray[np.int64],
) -> dict[int, str] | None:
    """Texts of the given rows (row -> text); None when no collection has a text column."""
    texts: dict[int, str] = {}
    any_text = False
    for index, cid in enumerate(collection_ids):
        mine = rows[row_collections[rows] == index]
        if mine.size == 0:
            continue
        found = store.read_texts(namespace, cid, [document_ids[r] for r in mine.tolist()])
        if found is None:
            continue
        any_text = True
        for r in mine.tolist():
            text = found.get(document_ids[r])
            if text is not None:
                texts[r] = text
    return texts if any_text else None


class RunArtifactsBuilder:
    """Geometry from the rows, then texts, keywords and labels: see the module doc."""

    def __init__(
        self,
        *,
        offsets: Sequence[int],
        run_id: str,
        collection_ids: Sequence[str],
        document_ids: Sequence[str],
        row_collections: npt.NDArray[np.int32],
        labels: npt.NDArray[np.int32],
        sizes: npt.NDArray[np.int64],
        centroids: npt.NDArray[np.float32],
        seed: int,
        layout: LayoutMethod = DEFAULT_LAYOUT,
        labeller: Labeller | None = None,
    ) -> None:
        self.run_id = run_id
        self.offsets = tuple(offsets)
        self.collection_ids = tuple(collection_ids)
        self.document_ids = document_ids
        self.row_collections = row_collections
        self.labels, self.sizes, self.centroids = labels, sizes, centroids
        self.layout = layout
        self.labeller = labeller
        self.geometry = GeometryBuilder(labels, centroids, seed)

    def add(self, start: int, rows: npt.NDArray[np.float32]) -> None:
        self.geometry.add(start, rows)

    def build(
        self, store: CollectionStore, namespace: str, summary: dict[str, Any]
    ) -> RunArtifacts:
        geometry = self.geometry.finish(self.layout)
        k = int(self.sizes.shape[0])
        text_rows = np.unique(geometry.central_rows(TEXTS_PER_CLUSTER))
        texts = read_row_texts(
            store,
            namespace,
            self.collection_ids,
            self.row_collections,
            self.document_ids,
            text_rows,
        )
        keywords: list[list[str]] = [[] for _ in range(k)]
        rep_texts: list[list[str]] | None = None
        if texts:
            with_text = np.asarray([r for r in text_rows.tolist() if r in texts], dtype=np.int64)
            keywords = class_tfidf_keywords(
                [texts[r] for r in with_text.tolist()], self.labels[with_text], k
            )
            rep_texts = [
                [texts.get(r, "") for r in reps.tolist()] for reps in geometry.representatives
            ]
        descriptions = [
            ClusterDescription(
                cluster_id=c,
                size=int(self.sizes[c]),
                keywords=tuple(keywords[c]),
                representative_ids=tuple(self.document_ids[r] for r in reps.tolist()),
                representative_texts=tuple(rep_texts[c]) if rep_texts else (),
            )
            for c, reps in enumerate(geometry.representatives)
        ]
        cluster_labels = name_clusters(descriptions, self.labeller)
        return RunArtifacts(
            run_id=self.run_id,
            collection_ids=self.collection_ids,
            document_ids=self.document_ids,
            row_collections=self.row_collections,
            labels=self.labels,
            sizes=self.sizes,
            centroids=self.centroids,
            geometry=geometry,
            cluster_labels=cluster_labels,
            keywords=keywords,
            representative_texts=rep_texts,
            summary=dict(summary),
        )


def name_clusters(
    descriptions: Sequence[ClusterDescription], labeller: Labeller | None
) -> list[str]:
    """The labeller's names; the keyword labels when there is none or it fails."""
    if labeller is None:
        return KeywordLabeller().label_clusters(descriptions)
    try:
        names = labeller.label_clusters(descriptions)
        if len(names) != len(descriptions):
            raise ValueError(f"{len(names)} labels for {len(descriptions)} clusters")
    except Exception as exc:  # any labeller failure: keep the run, fall back to keywords
        log.warning("cluster labeller failed (%s); using keyword labels", exc)
        return [default_label(d) for d in descriptions]
    return [
        str(n).strip()[:120] or default_label(d) for n, d in zip(names, descriptions, strict=True)
    ]


def artifact_files(artifacts: RunArtifacts) -> dict[str, bytes]:
    """The Parquet tables of store/artifacts.py for one run."""
    g = artifacts.geometry
    ids = artifacts.document_ids
    rep_clusters, rep_ranks, rep_ids, rep_distances, rep_texts = [], [], [], [], []
    for c, reps in enumerate(g.representatives):
        for rank, row in enumerate(reps.tolist()):
            rep_clusters.append(c)
            rep_ranks.append(rank)
            rep_ids.append(ids[row])
            rep_distances.append(float(g.distances[row]))
            texts = artifacts.representative_texts
            rep_texts.append(texts[c][rank] if texts is not None else None)
    return {
        layouts.CENTROIDS: layouts.centroids_table(
            sizes=artifacts.sizes,
            share=artifacts.share,
            spread=g.spread,
            labels=artifacts.cluster_labels,
            keywords=artifacts.keywords,
            centroids=artifacts.centroids,
            xy=g.centroid_xy,
        ),
        layouts.MEMBERS: layouts.members_table(
            collection_ids=artifacts.collection_ids,
            row_collections=artifacts.row_collections,
            document_ids=ids,
            labels=artifacts.labels,
            distances=g.distances,
        ),
        layouts.MAP: layouts.map_table(
            document_ids=[ids[r] for r in g.layout_rows.tolist()],
            labels=artifacts.labels[g.layout_rows],
            xy=g.layout_xy,
            method=g.layout_method,
        ),
        layouts.REPRESENTATIVES: layouts.representatives_table(
            cluster_ids=rep_clusters,
            ranks=rep_ranks,
            document_ids=rep_ids,
            distances=rep_distances,
            texts=rep_texts,
        ),
    }
