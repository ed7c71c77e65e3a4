"""load -> cluster -> write results -> summary. Every failure is one clear line.

The runner validates everything it can before reading data, never writes
over an earlier run (each run has its own id), and writes results so that
they become visible all at once: a failed or killed run leaves the previous
results as they were. A run's artifacts and report (jobrunner/artifacts.py,
report/) are written with it; failing to make them is logged and never fails
the run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pydantic import ValidationError

from ..api.clustering import ExecutionConfig
from ..core.drift import STATS_MAX_ROWS, baseline_stats, row_sample_blocks
from ..core.jobs import STORE_SCOPE_NAMESPACE
from ..drift_check import sample_collections
from ..engine.algorithms import DataValidationError, cluster, random_state_of, validate_for_data
from ..engine.labels import Labeller
from ..engine.maplayout import DEFAULT_LAYOUT, LAYOUT_METHODS, LayoutMethod
from ..engine.result import ClusteringResult
from ..engine.streaming import kmeans_streaming
from ..store.base import CollectionStore
from ..store.errors import CollectionNotFound, StoreAccessDenied, StoreUnavailable
from ..store.types import Baseline, RunResults
from .artifacts import RunArtifactsBuilder, artifact_files
from .labelling import labeller_from_env
from .limits import memory_limit_bytes

LAYOUT_ENV = "RECLUSTER_MAP_LAYOUT"
"""UMAP costs more than the clustering on 100k × 384 (docs/engine.md, "Artifacts")."""


def layout_method(env: Mapping[str, str] | None = None) -> LayoutMethod:
    """The 2-D map's method: RECLUSTER_MAP_LAYOUT (clusters, pca or umap), default umap."""
    value = (os.environ if env is None else env).get(LAYOUT_ENV, "").strip() or DEFAULT_LAYOUT
    for method in LAYOUT_METHODS:
        if value == method:
            return method
    raise ValueError(f"{LAYOUT_ENV} must be one of {', '.join(LAYOUT_METHODS)}, not {value!r}")


MEMORY_FACTOR = 2.5
"""Peak memory of the in-memory path relative to the N×D float32 matrix."""
STREAM_BLOCK_ROWS = 65_536


class JobFailure(Exception):
    """The job cannot succeed; the message is the one-line reason users read."""


@dataclass(frozen=True)
class JobInput:
    execution_config: ExecutionConfig
    run_id: str
    namespace: str
    store_uri: str
    namespace_root: bool = False
    """The store path is the namespace's own directory (its Job mounts only that,
    core.jobs.STORE_SCOPE_ENV): there is no namespace path component to escape by."""


def parse_input(
    config_json: str | None,
    run_id: str | None,
    namespace: str | None,
    store_uri: str | None,
    store_scope: str | None = None,
) -> JobInput:
    """Validate the Job's inputs before touching any data."""
    if store_scope not in (None, "", STORE_SCOPE_NAMESPACE):
        raise JobFailure(
            f"invalid store scope {store_scope!r} (expected {STORE_SCOPE_NAMESPACE!r} or none)"
        )
    if not config_json:
        raise JobFailure("no execution config (set RECLUSTER_EXECUTION_CONFIG or --config)")
    try:
        config = ExecutionConfig.model_validate_json(config_json)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise JobFailure(f"invalid execution config: {where}: {error['msg']}") from None
    missing = [n for n, v in (("run id", run_id), ("store", store_uri)) if not v]
    if missing:
        raise JobFailure(f"no {' and no '.join(missing)} given")
    assert run_id is not None and store_uri is not None
    return JobInput(
        config, run_id, namespace or "default", store_uri, store_scope == STORE_SCOPE_NAMESPACE
    )


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


class Runner:
    """One clustering run against one store."""

    def __init__(
        self,
        job: JobInput,
        store: CollectionStore,
        log: Callable[[str], None] = print,
        memory_limit: int | None = None,
        layout: LayoutMethod = DEFAULT_LAYOUT,
        artifacts: bool = True,
        labeller: Labeller | None = None,
    ) -> None:
        self.job, self.store, self.log = job, store, log
        self.memory_limit = memory_limit
        self.layout = layout
        self.with_artifacts = artifacts
        self.labeller = labeller
        self.stages: dict[str, float] = {}

    def lap(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.stages[stage] = round((now - since) * 1000, 1)
        return now

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        job, config = self.job, self.job.execution_config.config
        cids = list(job.execution_config.collection_ids)
        counts = self.count(cids)
        total = sum(counts.values())
        if total == 0:
            raise JobFailure(f"nothing to cluster: {', '.join(cids)} has no documents")
        dim = self.store.sample(job.namespace, next(c for c in cids if counts[c]), 1, 0).dim
        try:
            validate_for_data(config, total, dim)
        except DataValidationError as exc:
            raise JobFailure(str(exc)) from None
        needed = total * dim * 4 * MEMORY_FACTOR
        self.log(f"collections {counts}: {total} documents × {dim} dims (~{_gib(needed)} to load)")
        mark = self.lap("count", started)
        streaming = self.memory_limit is not None and needed > self.memory_limit
        matrix = None
        if self.memory_limit is not None and streaming:
            if config.algorithm != "kmeans":
                raise JobFailure(
                    f"out of memory guard: {total} × {dim} float32 needs ~{_gib(needed)}, the "
                    f"memory limit is {_gib(self.memory_limit)}; raise the limit, or use kmeans "
                    "(which streams)"
                )
            ids, offsets, mean, result = self.cluster_streaming(cids)
            # A second full pass would cost as much as the clustering: estimate on a
            # sample, of at most an eighth of the memory limit.
            rows = min(STATS_MAX_ROWS, max(10_000, self.memory_limit // 8 // (4 * dim)))
            stats_data: Any = sample_collections(
                self.store, job.namespace, counts, rows, random_state_of(config)
            )
        else:
            collection = self.store.read_many(job.namespace, cids)
            mark = self.lap("load", mark)
            self.log(f"loaded {len(collection)} rows in {self.stages['load']:.0f} ms")
            mean = collection.embeddings.mean(axis=0, dtype=np.float64).astype(np.float32)
            ids, offsets = collection.document_ids, collection.offsets
            matrix = collection.embeddings
            result = cluster(collection.embeddings, config, inplace=True)
            # Rows may now be unit vectors (normalize): the statistics are cosine, unaffected.
            stats_data = row_sample_blocks(collection.embeddings, STATS_MAX_ROWS)
            mark = time.perf_counter()
        builder = self.artifacts_builder(list(ids), offsets, result)
        if builder is not None and matrix is None:
            mark = self.feed_streaming(builder, cids, mark)
        elif builder is not None and matrix is not None:
            builder.add(0, matrix)
        self.log(
            f"{config.algorithm}: {result.num_clusters} clusters, noise "
            f"{result.noise_fraction:.1%}, silhouette {result.quality}"
        )
        summary = self.summary(result, started)
        baseline = Baseline(
            run_id=job.run_id,
            collection_ids=tuple(cids),
            centroids=result.centroids,
            mean=mean,
            document_count=total,
            stats=baseline_stats(stats_data, result.centroids),
        )
        mark = self.lap("drift_stats", mark)
        files = self.artifact_files(builder, summary)
        mark = time.perf_counter()
        run = RunResults(
            run_id=job.run_id,
            collection_ids=tuple(cids),
            document_ids=list(ids),
            labels=result.labels,
            cluster_sizes=result.sizes,
            centroids=result.centroids,
            summary=summary,
            baseline=baseline,
            offsets=offsets,
            artifacts=files,
        )
        self.store.write_run(job.namespace, run)
        self.lap("write", mark)
        summary["stage_ms"] = {**summary["stage_ms"], **self.stages}
        summary["execution_time_ms"] = int((time.perf_counter() - started) * 1000)
        self.log(f"wrote run {job.run_id} in {self.stages['write']:.0f} ms")
        return summary

    def artifacts_builder(
        self, ids: list[str], offsets: tuple[int, ...], result: ClusteringResult
    ) -> RunArtifactsBuilder | None:
        if not self.with_artifacts or result.num_clusters == 0:
            return None
        job = self.job
        bounds = offsets or (0, len(ids))
        row_collections = np.repeat(
            np.arange(len(bounds) - 1, dtype=np.int32), np.diff(np.asarray(bounds))
        )
        return RunArtifactsBuilder(
            offsets=bounds,
            run_id=job.run_id,
            collection_ids=job.execution_config.collection_ids,
            document_ids=ids,
            row_collections=row_collections,
            labels=result.labels,
            sizes=result.sizes,
            centroids=result.centroids,
            seed=random_state_of(job.execution_config.config),
            layout=self.layout,
            labeller=self.labeller,
        )

    def feed_streaming(
        self, builder: RunArtifactsBuilder, cids: Sequence[str], mark: float
    ) -> float:
        """One more pass over the blocks, for distances and the map sample (bounded memory).

        Rows appended since the clustering pass (at the end of a collection) are left out.
        """
        start = 0
        for index, cid in enumerate(cids):
            end = builder.offsets[index + 1]
            for block in self.store.iter_blocks(self.job.namespace, cid, STREAM_BLOCK_ROWS):
                rows = block.embeddings[: max(0, end - start)]
                if len(rows):
                    builder.add(start, rows)
                start += len(rows)
            start = end
        return self.lap("artifacts_pass", mark)

    def artifact_files(
        self, builder: RunArtifactsBuilder | None, summary: dict[str, Any]
    ) -> dict[str, bytes]:
        """Artifact tables and the report; on any failure, none (logged), never a failed run."""
        if builder is None:
            return {}
        from ..report.build import report_files

        mark = time.perf_counter()
        try:
            artifacts = builder.build(self.store, self.job.namespace, summary)
            files = artifact_files(artifacts)
            mark = self.lap("artifacts", mark)
            files.update(report_files(artifacts))
            self.lap("report", mark)
        except StoreUnavailable:
            raise
        except Exception as exc:  # artifacts are a view of the run; the run stands without them
            self.log(f"artifacts skipped: {type(exc).__name__}: {exc}")
            return {}
        self.log(
            f"artifacts: {len(files)} files, {sum(map(len, files.values())) / 1e6:.1f} MB in "
            f"{self.stages['artifacts'] + self.stages['report']:.0f} ms"
        )
        return files

    def count(self, cids: Sequence[str]) -> dict[str, int]:
        counts = {}
        for cid in cids:
            try:
                counts[cid] = self.store.count(self.job.namespace, cid)
            except CollectionNotFound:
                raise JobFailure(
                    f"collection {cid!r} not found in namespace {self.job.namespace!r}"
                ) from None
        return counts

    def cluster_streaming(
        self, cids: Sequence[str]
    ) -> tuple[list[str], tuple[int, ...], Any, ClusteringResult]:
        """Bounded memory: ids, offsets and mean in one pass, then streaming k-means."""
        config = self.job.execution_config.config
        ns = self.job.namespace

        def blocks() -> Iterator[Any]:
            for cid in cids:
                for block in self.store.iter_blocks(ns, cid, STREAM_BLOCK_ROWS):
                    yield block.embeddings

        ids: list[str] = []
        offsets = [0]
        total: Any = None
        for cid in cids:
            for block in self.store.iter_blocks(ns, cid, STREAM_BLOCK_ROWS):
                ids.extend(block.document_ids)
                part = block.embeddings.sum(axis=0, dtype=np.float64)
                total = part if total is None else total + part
            offsets.append(len(ids))
        mean = (total / max(len(ids), 1)).astype(np.float32)
        self.log(f"streaming k-means over {len(ids)} rows in blocks of {STREAM_BLOCK_ROWS}")
        assert config.n_clusters is not None
        result = kmeans_streaming(
            blocks,
            config.n_clusters,
            normalize=bool(config.normalize),
            max_iter=config.max_iter,
            n_init=config.n_init,
            random_state=random_state_of(config),
        )
        return ids, tuple(offsets), mean, result

    def summary(self, result: ClusteringResult, started: float) -> dict[str, Any]:
        return {
            "status": "succeeded",
            "run_id": self.job.run_id,
            "algorithm": self.job.execution_config.config.algorithm,
            "num_clusters": result.num_clusters,
            "num_documents": result.num_documents,
            "noise_fraction": round(result.noise_fraction, 6),
            "quality_score": None if result.quality is None else round(result.quality, 6),
            "execution_time_ms": int((time.perf_counter() - started) * 1000),
            "stage_ms": {k: round(v, 1) for k, v in result.timings_ms.items()},
        }


class StoreOpener(Protocol):
    """`store.factory.open_store`, or a fake: the store of a URI, maybe one namespace's root."""

    def __call__(self, uri: str, *, namespace_root: str | None = None) -> CollectionStore: ...


def run_job(
    job: JobInput,
    open_store: StoreOpener,
    log: Callable[[str], None] = print,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run one job; raises JobFailure with the reason on any failure."""
    try:
        store = open_store(
            job.store_uri, namespace_root=job.namespace if job.namespace_root else None
        )
    except StoreUnavailable as exc:
        raise JobFailure(f"store unreachable: {exc}") from None
    try:
        try:
            layout = layout_method(env)
            labeller = labeller_from_env(os.environ if env is None else env)
        except ValueError as exc:
            raise JobFailure(str(exc)) from None
        return Runner(job, store, log, memory_limit_bytes(env), layout, labeller=labeller).run()
    except StoreUnavailable as exc:
        raise JobFailure(f"store unreachable: {exc}") from None
    except StoreAccessDenied as exc:
        raise JobFailure(str(exc)) from None
    except MemoryError:
        raise JobFailure("out of memory while clustering (raise the Job's memory limit)") from None
    finally:
        store.close()


def termination_message(summary: Mapping[str, Any] | None, error: str | None = None) -> str:
    """The JSON the operator reads from the pod (at most 4096 bytes)."""
    data = dict(summary or {}) if error is None else {"status": "failed", "error": error[:3500]}
    text = json.dumps(data, separators=(",", ":"))
    if len(text) > 4096:
        data.pop("stage_ms", None)
        text = json.dumps(data, separators=(",", ":"))
    return text
