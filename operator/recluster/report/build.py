"""A run's report from its artifacts: the cluster map (PNG) and the HTML page.

`report_files(artifacts)` returns `{"map.png": ..., "report.html": ...}`, which
the job runner writes with the run (store/artifacts.py names them); the CLI
(`recluster report`) and the gateway serve them from the store.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.artifacts import RunArtifacts
from ..store import artifacts as layouts
from .mapplot import MapData, Renderer, render_map
from .page import ClusterRow, render_page

LAYOUT_NAMES = {"clusters": "cluster map", "pca": "PCA", "umap": "UMAP"}


def _quality(summary: dict[str, Any]) -> str:
    q = summary.get("quality_score")
    return "–" if q is None else f"silhouette {float(q):.3f}"


def map_data(artifacts: RunArtifacts, title: str | None = None) -> MapData:
    g = artifacts.geometry
    s = artifacts.summary
    n = int(artifacts.labels.shape[0])
    subtitle = (
        f"{n:,} documents · {artifacts.num_clusters} clusters · {_quality(s)}"
        f" · {LAYOUT_NAMES.get(g.layout_method, g.layout_method)} of"
        f" {g.layout_rows.shape[0]:,} documents"
    )
    return MapData(
        xy=g.layout_xy,
        point_clusters=artifacts.labels[g.layout_rows],
        cluster_labels=artifacts.cluster_labels,
        cluster_sizes=artifacts.sizes,
        centroid_xy=g.centroid_xy,
        title=title or f"{', '.join(artifacts.collection_ids)} — run {artifacts.run_id}",
        subtitle=subtitle,
    )


def report_files(
    artifacts: RunArtifacts,
    metadata: dict[str, Any] | None = None,
    renderer: Renderer = "auto",
    title: str | None = None,
) -> dict[str, bytes]:
    """The map PNG and the HTML page of one run."""
    data = map_data(artifacts, title)
    png, used = render_map(data, renderer)
    s = artifacts.summary
    g = artifacts.geometry
    meta: dict[str, Any] = {
        "run": artifacts.run_id,
        "collections": list(artifacts.collection_ids),
        "algorithm": s.get("algorithm"),
        "documents": int(artifacts.labels.shape[0]),
        "clusters": artifacts.num_clusters,
        "noise fraction": s.get("noise_fraction"),
        "quality score (silhouette)": s.get("quality_score"),
        "execution time (ms)": s.get("execution_time_ms"),
        "map": f"{g.layout_method} of {g.layout_rows.shape[0]} documents, drawn by {used}",
        **(metadata or {}),
    }
    texts = artifacts.representative_texts
    rows = [
        ClusterRow(
            cluster_id=c,
            label=artifacts.cluster_labels[c],
            size=int(artifacts.sizes[c]),
            share=float(artifacts.share[c]),
            spread=float(g.spread[c]) if np.isfinite(g.spread[c]) else 0.0,
            keywords=artifacts.keywords[c],
            representatives=[
                (artifacts.document_ids[r], texts[c][i] if texts is not None else None)
                for i, r in enumerate(reps.tolist())
            ],
        )
        for c, reps in enumerate(g.representatives)
    ]
    page = render_page(
        title=data.title, metadata=meta, clusters=rows, map_png=png, map_caption=data.subtitle
    )
    return {layouts.MAP_PNG: png, layouts.REPORT_HTML: page}
