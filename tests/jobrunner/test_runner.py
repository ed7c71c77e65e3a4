"""`recluster run-job` end to end: data in a store -> results + termination message."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from recluster.cli import main
from recluster.store import artifacts as artifact_tables
from recluster.store.factory import open_store

CONFIG = {"collection_ids": ["col_abc123"], "config": {"algorithm": "kmeans", "n_clusters": 4}}


def blobs(n: int, k: int = 4, dim: int = 16, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)).astype(np.float32) * 5
    labels = np.arange(n) % k
    return (centres[labels] + rng.normal(size=(n, dim)).astype(np.float32)).astype(np.float32)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    store = open_store(str(tmp_path / "store"))
    store.append("default", "col_abc123", [f"d{i}" for i in range(400)], blobs(400))
    store.append("default", "col_empty_src", ["x"], blobs(1)[:1])
    store.close()
    return tmp_path / "store"


def run(
    store_dir: Path | str, tmp_path: Path, config: Any = CONFIG, run_id: str = "run-1", **env: str
) -> tuple[int, dict[str, Any], str]:
    log = tmp_path / f"termination-{run_id}"
    result = CliRunner().invoke(
        main,
        ["run-job", "--run-id", run_id, "--store", str(store_dir), "--termination-log", str(log)],
        env={
            "RECLUSTER_EXECUTION_CONFIG": config if isinstance(config, str) else json.dumps(config),
            "RECLUSTER_NAMESPACE": "default",
            **env,
        },
    )
    return result.exit_code, json.loads(log.read_text()), result.output


def test_success_writes_results_and_the_summary(store_dir: Path, tmp_path: Path) -> None:
    code, summary, output = run(store_dir, tmp_path)
    assert code == 0, output
    assert summary["status"] == "succeeded" and summary["run_id"] == "run-1"
    assert summary["num_clusters"] == 4 and summary["num_documents"] == 400
    assert summary["noise_fraction"] == 0.0 and summary["quality_score"] > 0.5
    assert summary["execution_time_ms"] >= 0
    assert {"load", "write", "cluster"} <= set(summary["stage_ms"])
    assert "loaded 400 rows" in output
    store = open_store(str(store_dir))
    written = store.read_run("default", "run-1")
    assert len(written.document_ids) == 400 and written.num_clusters == 4
    assert store.latest_run("default", ["col_abc123"]) == "run-1"
    baseline = store.read_baseline("default", ["col_abc123"])
    assert baseline is not None and baseline.document_count == 400
    assert baseline.centroids.shape == (4, 16)
    assert_drift_stats(baseline.stats, 4, rows=400)
    assert "drift_stats" in summary["stage_ms"]


def assert_drift_stats(stats: dict[str, Any], k: int, rows: int) -> None:
    """The statistics drift checks need, consistent with 4 equal, well-separated blobs."""
    assert stats["rows"] == rows
    assert stats["cluster_fractions"] == [0.25] * k  # every blob is its centroid's
    inlier = stats["inlier_fractions"]
    assert len(inlier) == k and 0.93 <= sum(inlier) <= 0.96  # 5% below their p05
    assert len(stats["similarity_p05_by_cluster"]) == k
    assert 0.9 < stats["similarity_mean"] < 1.0  # blobs of radius ~1 at distance ~20
    assert stats["similarity_p05"] < stats["similarity_mean"]


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({**CONFIG, "collection_ids": ["col_missing"]},
         "collection 'col_missing' not found in namespace 'default'"),
        ({**CONFIG, "config": {"algorithm": "kmeans", "n_clusters": 500}},
         "fewer documents (400) than n_clusters (500)"),
        ({**CONFIG, "config": {"algorithm": "kmeans"}},
         "invalid execution config: config.n_clusters: required when algorithm is kmeans"),
        ("{not json", "invalid execution config"),
    ],
)  # fmt: skip
def test_failures_say_why_and_leave_earlier_results(
    store_dir: Path, tmp_path: Path, config: Any, reason: str
) -> None:
    assert run(store_dir, tmp_path)[0] == 0
    code, message, output = run(store_dir, tmp_path, config, run_id="run-2")
    assert code == 1
    assert message["status"] == "failed" and reason in message["error"]
    assert f"error: {message['error']}" in output
    store = open_store(str(store_dir))
    assert store.latest_run("default", ["col_abc123"]) == "run-1"
    assert store.read_run("default", "run-1").num_clusters == 4


def test_empty_collection(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    store = open_store(str(store_dir))
    store.append("default", "col_empty", [], np.zeros((0, 8), dtype=np.float32))
    store.close()
    config = {"collection_ids": ["col_empty"], "config": {"algorithm": "hdbscan"}}
    code, message, _ = run(store_dir, tmp_path, config)
    assert code == 1 and message["error"] == "nothing to cluster: col_empty has no documents"


def test_store_unreachable(tmp_path: Path) -> None:
    code, message, _ = run("postgresql://nobody@127.0.0.1:1/none", tmp_path)
    assert code == 1 and message["error"].startswith("store unreachable")


def test_out_of_memory_guard(store_dir: Path, tmp_path: Path) -> None:
    config = {"collection_ids": ["col_abc123"], "config": {"algorithm": "hdbscan"}}
    code, message, _ = run(store_dir, tmp_path, config, RECLUSTER_MEMORY_LIMIT="1000")
    assert code == 1 and message["error"].startswith("out of memory guard")


def test_kmeans_streams_when_the_matrix_exceeds_the_memory_limit(
    store_dir: Path, tmp_path: Path
) -> None:
    code, summary, output = run(store_dir, tmp_path, RECLUSTER_MEMORY_LIMIT="1000")
    assert code == 0, output
    assert "streaming k-means" in output
    assert summary["num_clusters"] == 4 and summary["num_documents"] == 400
    written = open_store(str(store_dir)).read_run("default", "run-1")
    assert sorted(np.bincount(written.labels).tolist()) == [100, 100, 100, 100]
    assert written.baseline is not None
    # Streaming estimates them on a sample of the store (here: all 400 rows).
    assert_drift_stats(written.baseline.stats, 4, rows=400)


def test_a_namespace_scoped_store_is_the_mount_of_that_namespace_only(tmp_path: Path) -> None:
    """A Job mounts <store>/<its namespace> (subPathExpr): the runner reads it as its data.

    The review's reproduction: a runner told another namespace (tenant-b) still
    only reaches the directory it was given, tenant-a's; tenant-b's run index and
    baseline stay as they were.
    """
    whole = open_store(str(tmp_path / "store"))
    for ns in ("tenant-a", "tenant-b"):
        whole.append(ns, "col_abc123", [f"d{i}" for i in range(400)], blobs(400))
    whole.close()
    assert run(tmp_path / "store", tmp_path, run_id="b-1", RECLUSTER_NAMESPACE="tenant-b")[0] == 0
    tenant_b = sorted(p.relative_to(tmp_path) for p in (tmp_path / "store/tenant-b").rglob("*"))

    mount = tmp_path / "store" / "tenant-a"
    code, _, output = run(
        mount, tmp_path, run_id="a-1",
        RECLUSTER_NAMESPACE="tenant-a", RECLUSTER_STORE_SCOPE="namespace",
    )  # fmt: skip
    assert code == 0, output
    store = open_store(str(tmp_path / "store"))
    assert store.latest_run("tenant-a", ["col_abc123"]) == "a-1"
    assert (mount / "runs" / "a-1" / "_SUCCESS").exists(), "no namespace component under it"

    code, _, output = run(
        mount, tmp_path, run_id="forged-1",
        RECLUSTER_NAMESPACE="tenant-b", RECLUSTER_STORE_SCOPE="namespace",
    )  # fmt: skip
    assert code == 0, output
    assert store.latest_run("tenant-b", ["col_abc123"]) == "b-1", "tenant-b's index unchanged"
    baseline = store.read_baseline("tenant-b", ["col_abc123"])
    assert baseline is not None and baseline.run_id == "b-1"
    after = sorted(p.relative_to(tmp_path) for p in (tmp_path / "store/tenant-b").rglob("*"))
    assert after == tenant_b, "nothing written in tenant-b's directory"
    assert (mount / "runs" / "forged-1").is_dir(), "what it wrote stayed in its own mount"


def test_an_unknown_store_scope_is_refused(store_dir: Path, tmp_path: Path) -> None:
    code, message, _ = run(store_dir, tmp_path, RECLUSTER_STORE_SCOPE="everything")
    assert code == 1
    assert message["error"] == "invalid store scope 'everything' (expected 'namespace' or none)"


def test_a_run_writes_its_artifacts_and_report(store_dir: Path, tmp_path: Path) -> None:
    code, summary, output = run(store_dir, tmp_path)
    assert code == 0, output
    assert "artifacts: 6 files" in output
    with open_store(str(store_dir)) as store:
        listed = store.list_artifacts("default", "run-1")
        assert set(listed) == {
            "centroids.parquet", "members.parquet", "map.parquet",
            "representatives.parquet", "map.png", "report.html",
        }  # fmt: skip
        members = artifact_tables.read_table(
            store.read_artifact("default", "run-1", "members.parquet")
        )
        assert members.num_rows == 400
        assert (
            members.column("cluster_id").to_pylist()
            == store.read_run("default", "run-1").labels.tolist()
        )
        centroids = store.read_artifact("default", "run-1", "centroids.parquet")
        assert artifact_tables.layout_of(centroids) == "centroids/1"
        table = artifact_tables.read_table(centroids)
        assert table.column_names == [
            "cluster_id", "size", "share", "spread", "label", "keywords", "x", "y", "centroid",
        ]  # fmt: skip
        assert sum(table.column("share").to_pylist()) == pytest.approx(1.0)
        # No text column: each cluster is named by its most central document.
        reps = artifact_tables.read_table(
            store.read_artifact("default", "run-1", "representatives.parquet")
        )
        first = {r["cluster_id"]: r["document_id"] for r in reps.to_pylist() if r["rank"] == 0}
        assert table.column("label").to_pylist() == [first[k] for k in range(4)]
    assert {"artifacts", "report"} <= set(summary["stage_ms"])


def test_artifacts_that_fail_never_fail_the_run(
    store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr("recluster.report.build.report_files", broken)
    code, summary, output = run(store_dir, tmp_path)
    assert code == 0 and summary["status"] == "succeeded", output
    assert "artifacts skipped: RuntimeError: renderer exploded" in output
    with open_store(str(store_dir)) as store:
        assert store.list_artifacts("default", "run-1") == {}
        assert store.read_run("default", "run-1").num_clusters == 4


def test_streaming_runs_have_the_same_artifacts(store_dir: Path, tmp_path: Path) -> None:
    code, _, output = run(store_dir, tmp_path, run_id="whole")
    assert code == 0, output
    code, _, output = run(store_dir, tmp_path, run_id="streamed", RECLUSTER_MEMORY_LIMIT="20000")
    assert code == 0 and "streaming" in output, output
    with open_store(str(store_dir)) as store:
        tables = {
            r: artifact_tables.read_table(store.read_artifact("default", r, "members.parquet"))
            for r in ("whole", "streamed")
        }
    for table in tables.values():
        distances = np.asarray(table.column("distance").to_pylist(), dtype=float)
        assert np.isfinite(distances).all() and (distances >= 0).all()
    assert tables["whole"].column("document_id").equals(tables["streamed"].column("document_id"))


@pytest.mark.parametrize("layout", ["umap", "clusters", "pca"])
def test_the_map_layout_is_umap_unless_the_environment_picks_another(
    store_dir: Path, tmp_path: Path, layout: str
) -> None:
    env = {} if layout == "umap" else {"RECLUSTER_MAP_LAYOUT": layout}
    code, summary, output = run(store_dir, tmp_path, **env)
    assert code == 0, output
    assert summary["num_clusters"] == 4  # the layout's name is no secret to scrub
    with open_store(str(store_dir)) as store:
        content = store.read_artifact("default", "run-1", "map.parquet")
    metadata = pq.read_schema(io.BytesIO(content)).metadata or {}
    assert metadata[b"recluster.layout_method"] == layout.encode()


def test_a_bad_map_layout_is_refused_by_name(store_dir: Path, tmp_path: Path) -> None:
    code, summary, _ = run(store_dir, tmp_path, RECLUSTER_MAP_LAYOUT="tsne")
    assert code == 1
    assert summary["error"] == "RECLUSTER_MAP_LAYOUT must be one of clusters, pca, umap, not 'tsne'"
