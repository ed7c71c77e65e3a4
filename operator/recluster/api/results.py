"""REST bodies of a trigger's runs and their artifacts (gateway/runs.py serves them).

The shape follows the product's `/v1/clusters/{id}/artifacts` where it fits:
one object per run with its clusters (id, label, keywords, size, centroid
position on the map, representative documents) and links to the files.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from .base import Model
from .rest import MAX_PAGE_SIZE


class ArtifactFile(Model):
    """One file of a run, as stored (Parquet layouts in docs/store.md, "Artifacts")."""

    name: str = Field(description="File name, e.g. centroids.parquet, report.html, map.png.")
    size_bytes: int
    media_type: str
    url: str = Field(description="Where to GET the file (same authentication).")


class RunEntry(Model):
    """One run of a trigger (an execution whose Job ran), newest first."""

    run_id: str = Field(description="The run's id: its Job's name (job_id in the history).")
    status: Literal["running", "succeeded", "failed", "skipped", "cancelled"]
    triggered_at: datetime
    finished_at: datetime | None = None
    num_clusters: int | None = None
    num_documents: int | None = None
    artifacts_url: str | None = Field(
        default=None, description="The run's artifacts; set for succeeded runs."
    )
    report_url: str | None = Field(
        default=None, description="The run's HTML report; set for succeeded runs."
    )


class RunListResponse(Model):
    results: list[RunEntry] = Field(max_length=MAX_PAGE_SIZE)
    total: int
    offset: int
    limit: int


class Representative(Model):
    rank: int = Field(description="0 is the most central member.")
    document_id: str
    distance: float = Field(description="Cosine distance to the cluster's centroid.")
    text: str | None = Field(default=None, description="When the collection has a text column.")


class ClusterArtifact(Model):
    cluster_id: int
    label: str
    keywords: list[str]
    size: int
    share: float = Field(description="Fraction of the run's documents in this cluster.")
    spread: float = Field(description="Mean cosine distance of the members to the centroid.")
    x: float | None = Field(default=None, description="The centroid's position on the map.")
    y: float | None = None
    representatives: list[Representative]


class RunArtifactsResponse(Model):
    """A run's clusters and files; the centroid vectors are in centroids.parquet."""

    trigger_id: str
    run_id: str
    num_clusters: int
    clusters: list[ClusterArtifact]
    files: list[ArtifactFile]
    report_url: str | None = None
