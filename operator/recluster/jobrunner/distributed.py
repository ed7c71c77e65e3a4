"""The distributed engine (runtime ray): k-means over a Parquet store on Ray workers.

The shape faiss uses for datasets beyond one node (contrib/clustering.py,
DatasetAssign): train on a sample on one node, then pass over the data where
it lies. Here:

1. the driver (the RayJob's head) samples the collections (the store's
   row-group sampler, 256 rows per cluster, at least 20,000) and fits the
   centroids on the sample with the single-node engine's own fit
   (`engine.kmeans.fit_sample`: k-means++ restarts, Lloyd to tolerance);
2. `passes - 1` distributed Lloyd passes: Ray Data maps every shard
   (store/shards.py) to its per-centroid sums and counts, the driver adds
   them and moves the centroids (one full-data Lloyd iteration, as the
   single-node `kmeans` does with its default two passes);
3. a last distributed pass assigns every row, each worker writing its
   assignment shard, and returns the members' sums in the original space;
4. the driver writes centroids (means of the members' raw embeddings),
   baseline and summary, and commits: the same files as a single-node run,
   so drift checks, reports and the gateway read it unchanged.

What is supported: kmeans (with normalize) only. Density and graph methods
(hdbscan, dbscan, optics, agglomerative, spectral, mean_shift) need
neighbourhoods across shards and are refused by the API
(`api.clustering.runtime_problems`) and again here; so is `reduction`.
Only Parquet stores (a path every Ray pod mounts, or s3://) can be sharded.

Invariants: workers only read shards and write their own assignment shard;
only the driver commits. Every pass sees the shards in the same order, so
labels line up with `read_run`'s rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from ..api.clustering import runtime_problems
from ..core.drift import STATS_MAX_ROWS, baseline_stats
from ..drift_check import sample_collections
from ..engine.algorithms import DataValidationError, random_state_of, validate_for_data
from ..engine.kmeans import (
    DEFAULT_FULL_PASSES,
    assign,
    blas_threads,
    fit_sample,
    lloyd_pass,
    sample_size_for,
    squared_norm,
)
from ..engine.preprocess import l2_normalize
from ..engine.quality import silhouette
from ..engine.result import cluster_means
from ..store.base import CollectionStore
from ..store.errors import CollectionNotFound, StoreUnavailable
from ..store.parquet import ParquetStore
from ..store.shards import (
    DEFAULT_ROWS_PER_SHARD,
    Shard,
    begin,
    commit,
    plan_shards,
    read_shard,
    relabel_shard,
    write_assignment_shard,
)
from ..store.types import Baseline
from .runner import JobFailure, JobInput

QUALITY_SAMPLE_ROWS = 10_000


@dataclass(frozen=True)
class PassResult:
    """What one shard tells the driver after a pass."""

    index: int
    rows: int
    sums: npt.NDArray[np.float64]
    """K × D: sums of the members (clustering space for lloyd, original space for assign)."""
    sizes: npt.NDArray[np.int64]
    partial_inertia: float
    """Sum over the members of squared distance to their centroid."""
    total: npt.NDArray[np.float64]
    """D: the sum of the shard's raw rows (for the collection mean)."""
    seconds: float = 0.0
    """The worker's time on the shard (read, compute, write): per-shard throughput."""


_STORES: dict[str, CollectionStore] = {}
"""One open store per URI in each Ray worker process (tasks of a pass reuse it)."""


def _worker_store(uri: str, opener: Callable[[str], CollectionStore]) -> ParquetStore:
    store = _STORES.get(uri)
    if store is None:
        store = _STORES[uri] = opener(uri)
    assert isinstance(store, ParquetStore)
    return store


def shard_pass(
    store: ParquetStore,
    shard: Shard,
    centroids: npt.NDArray[np.float32],
    *,
    mode: str,
    normalize: bool,
    namespace: str = "",
    run_id: str = "",
    remap: npt.NDArray[np.int32] | None = None,
) -> PassResult:
    """One shard, one pass, on a worker: "lloyd" (sums and counts), "assign" (writes the
    assignment shard), or "relabel" (renumbers a written shard with `remap`)."""
    started = time.perf_counter()
    result = _shard_pass(store, shard, centroids, mode=mode, normalize=normalize,
                         namespace=namespace, run_id=run_id, remap=remap)  # fmt: skip
    return replace(result, seconds=time.perf_counter() - started)


def _shard_pass(
    store: ParquetStore,
    shard: Shard,
    centroids: npt.NDArray[np.float32],
    *,
    mode: str,
    normalize: bool,
    namespace: str,
    run_id: str,
    remap: npt.NDArray[np.int32] | None,
) -> PassResult:
    k, d = centroids.shape
    if mode == "relabel":
        assert remap is not None
        relabel_shard(store, namespace, run_id, shard, remap)
        return PassResult(shard.index, shard.rows, np.zeros((k, d)), np.zeros(k, np.int64), 0.0,
                          np.zeros(d))  # fmt: skip
    ids, raw = read_shard(store, shard)
    work = l2_normalize(raw)[0] if normalize else raw
    with blas_threads(0):  # one task per CPU: one BLAS thread each
        if mode == "lloyd":
            sums, sizes, _, partial = lloyd_pass(work, centroids)
            inertia = squared_norm(work) + partial
            return PassResult(shard.index, len(ids), sums, sizes, inertia,
                              raw.sum(axis=0, dtype=np.float64))  # fmt: skip
        labels, distances = assign(work, centroids)
    write_assignment_shard(store, namespace, run_id, shard, ids, labels)
    means, sizes = cluster_means(raw, labels, k)
    sums = means.astype(np.float64) * sizes[:, None]
    return PassResult(shard.index, len(ids), sums, sizes, float(distances.sum(dtype=np.float64)),
                      raw.sum(axis=0, dtype=np.float64))  # fmt: skip


def _ray_batch(batch: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Ray Data's map_batches function: the shards of a batch, each through `shard_pass`."""
    import ray

    from ..store.factory import open_store

    centroids = ray.get(kwargs["centroids"])
    remap = ray.get(kwargs["remap"]) if kwargs.get("remap") is not None else None
    store = _worker_store(kwargs["store_uri"], open_store)
    results = []
    for i in range(len(batch["index"])):
        shard = Shard(**{name: _scalar(batch[name][i]) for name in Shard.__dataclass_fields__})
        results.append(
            shard_pass(
                store,
                shard,
                centroids,
                mode=kwargs["mode"],
                normalize=kwargs["normalize"],
                namespace=kwargs["namespace"],
                run_id=kwargs["run_id"],
                remap=remap,
            )
        )
    return {
        "index": np.array([r.index for r in results], dtype=np.int64),
        "rows": np.array([r.rows for r in results], dtype=np.int64),
        "sums": np.stack([r.sums for r in results]),
        "sizes": np.stack([r.sizes for r in results]),
        "partial_inertia": np.array([r.partial_inertia for r in results]),
        "total": np.stack([r.total for r in results]),
        "seconds": np.array([r.seconds for r in results]),
    }


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


class RayPasses:
    """Passes over the shards as Ray Data jobs: one task per shard, results streamed back."""

    def __init__(self, store_uri: str, namespace: str, run_id: str, shards: Sequence[Shard]):
        self.store_uri, self.namespace, self.run_id = store_uri, namespace, run_id
        self.shards = list(shards)

    def __call__(
        self,
        mode: str,
        centroids: npt.NDArray[np.float32],
        normalize: bool,
        remap: npt.NDArray[np.int32] | None = None,
    ) -> Iterator[PassResult]:
        import ray
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        items = [asdict(s) for s in self.shards]
        shards = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        dataset = shards.map_batches(
            _ray_batch,
            batch_size=1,
            batch_format="numpy",
            num_cpus=1,
            fn_kwargs={
                "centroids": ray.put(centroids),
                "remap": None if remap is None else ray.put(remap),
                "mode": mode,
                "normalize": normalize,
                "store_uri": self.store_uri,
                "namespace": self.namespace,
                "run_id": self.run_id,
            },
        )
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for i in range(len(batch["index"])):
                yield PassResult(
                    int(batch["index"][i]), int(batch["rows"][i]),
                    np.asarray(batch["sums"][i]), np.asarray(batch["sizes"][i]),
                    float(batch["partial_inertia"][i]), np.asarray(batch["total"][i]),
                    float(batch["seconds"][i]),
                )  # fmt: skip


Passes = Callable[..., Iterator[PassResult]]
"""(mode, centroids, normalize, remap=None) -> one PassResult per shard, in any order: the
port between the driver and its workers (RayPasses; `SerialPasses` runs them in-process)."""


PassesFactory = Callable[[str, str, str, Sequence[Shard]], Passes]
"""(store URI, namespace, run id, shards) -> the passes of one run: RayPasses or SerialPasses."""


class SerialPasses:
    """The passes one shard after the other in this process: the fake of RayPasses."""

    def __init__(self, store_uri: str, namespace: str, run_id: str, shards: Sequence[Shard]):
        from ..store.factory import open_store

        self.store = _worker_store(store_uri, open_store)
        self.namespace, self.run_id, self.shards = namespace, run_id, shards

    def __call__(
        self,
        mode: str,
        centroids: npt.NDArray[np.float32],
        normalize: bool,
        remap: npt.NDArray[np.int32] | None = None,
    ) -> Iterator[PassResult]:
        for shard in self.shards:
            yield shard_pass(self.store, shard, centroids, mode=mode, normalize=normalize,
                             namespace=self.namespace, run_id=self.run_id,
                             remap=remap)  # fmt: skip


@dataclass
class Reduced:
    """A pass's shard results added up on the driver."""

    sums: npt.NDArray[np.float64]
    sizes: npt.NDArray[np.int64]
    total: npt.NDArray[np.float64]
    inertia: float = 0.0
    rows: int = 0
    shard_seconds: float = 0.0


def _reduce(results: Iterator[PassResult], k: int, d: int) -> Reduced:
    out = Reduced(np.zeros((k, d)), np.zeros(k, dtype=np.int64), np.zeros(d))
    for result in results:
        out.sums += result.sums
        out.sizes += result.sizes
        out.total += result.total
        out.inertia += result.partial_inertia
        out.rows += result.rows
        out.shard_seconds += result.seconds
    return out


class DistributedRunner:
    """One distributed run: the driver's side (steps 1-4 of the module docstring)."""

    def __init__(
        self,
        job: JobInput,
        store: CollectionStore,
        passes: PassesFactory | None = None,
        log: Callable[[str], None] = print,
        rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
        full_passes: int = DEFAULT_FULL_PASSES,
    ) -> None:
        self.job, self.store, self.log = job, store, log
        self.passes = passes
        self.rows_per_shard = rows_per_shard
        self.full_passes = full_passes
        self.stages: dict[str, float] = {}

    def lap(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.stages[stage] = round((now - since) * 1000, 1)
        return now

    def check(self) -> ParquetStore:
        execution = self.job.execution_config
        problems = runtime_problems("ray", execution.ray is not None, execution.config)
        if problems:
            where, why = problems[0]
            field = ".".join(str(p) for p in where)
            raise JobFailure(f"execution_config.{field}: {why}")
        if not isinstance(self.store, ParquetStore):
            raise JobFailure(
                f"runtime ray reads Parquet shards: the store {self.store!r} is not a Parquet "
                "store (use a path every Ray pod mounts, or s3://)"
            )
        return self.store

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        store = self.check()
        job, config = self.job, self.job.execution_config.config
        cids = list(job.execution_config.collection_ids)
        counts: dict[str, int] = {}
        for cid in cids:
            try:
                counts[cid] = store.count(job.namespace, cid)
            except CollectionNotFound:
                raise JobFailure(
                    f"collection {cid!r} not found in namespace {job.namespace!r}"
                ) from None
        total = sum(counts.values())
        if total == 0:
            raise JobFailure(f"nothing to cluster: {', '.join(cids)} has no documents")
        seed = random_state_of(config)
        k = int(config.n_clusters or 0)
        dim = store.sample(job.namespace, next(c for c in cids if counts[c]), 1, 0).dim
        try:
            validate_for_data(config, total, dim)
        except DataValidationError as exc:
            raise JobFailure(str(exc)) from None
        sample = sample_collections(store, job.namespace, counts, sample_size_for(total, k), seed)
        begin(store, job.namespace, job.run_id)
        shards = plan_shards(store, job.namespace, cids, self.rows_per_shard)
        passes = (self.passes or RayPasses)(job.store_uri, job.namespace, job.run_id, shards)
        self.log(f"collections {counts}: {total} documents × {dim} dims in {len(shards)} shards")
        mark = self.lap("sample", started)
        normalize = bool(config.normalize)
        work = l2_normalize(sample)[0] if normalize else sample
        with blas_threads(work.shape[0] * k * dim):
            centroids = fit_sample(
                work, k, max_iter=config.max_iter, n_init=config.n_init, random_state=seed
            ).centroids
        mark = self.lap("fit", mark)
        shard_seconds: dict[str, float] = {}
        for _ in range(max(1, self.full_passes) - 1):
            moved = _reduce(passes("lloyd", centroids, normalize), k, dim)
            centroids = np.where(
                moved.sizes[:, None] > 0,
                moved.sums / np.maximum(moved.sizes, 1)[:, None],
                centroids,
            ).astype(np.float32)
            shard_seconds["lloyd"] = shard_seconds.get("lloyd", 0.0) + moved.shard_seconds
        mark = self.lap("lloyd", mark)
        final_pass = _reduce(passes("assign", centroids, normalize), k, dim)
        shard_seconds["assign"] = final_pass.shard_seconds
        raw_sums, sizes, totals = final_pass.sums, final_pass.sizes, final_pass.total
        inertia, rows = final_pass.inertia, final_pass.rows
        if rows != total:
            raise JobFailure(f"the shards held {rows} rows, the collections {total}: changed?")
        keep = sizes > 0
        remap = (np.cumsum(keep, dtype=np.int32) - 1).astype(np.int32)
        if not keep.all():  # clusters left empty: renumber the written shards
            for _ in passes("relabel", centroids, normalize, remap):
                pass
        mark = self.lap("assign", mark)
        final = (raw_sums[keep] / sizes[keep][:, None]).astype(np.float32)
        sample_labels, _ = assign(work, centroids)
        quality = silhouette(work, remap[sample_labels], max_rows=QUALITY_SAMPLE_ROWS,
                             random_state=seed)  # fmt: skip
        mean = (totals / total).astype(np.float32)
        stats_rows = sample[:STATS_MAX_ROWS]  # a uniform sample already
        baseline = Baseline(
            run_id=job.run_id,
            collection_ids=tuple(cids),
            centroids=final,
            mean=mean,
            document_count=total,
            stats=baseline_stats(stats_rows, final),
        )
        summary = {
            "status": "succeeded",
            "run_id": job.run_id,
            "algorithm": config.algorithm,
            "runtime": "ray",
            "num_clusters": int(keep.sum()),
            "num_documents": total,
            "noise_fraction": 0.0,
            "quality_score": None if quality is None else round(quality, 6),
            "inertia": inertia,
            "shards": len(shards),
            "shard_seconds": {name: round(s, 3) for name, s in shard_seconds.items()},
        }
        mark = self.lap("quality", mark)
        summary["execution_time_ms"] = int((time.perf_counter() - started) * 1000)
        summary["stage_ms"] = dict(self.stages)
        commit(
            store, job.namespace, job.run_id, cids,
            num_documents=total, cluster_sizes=sizes[keep], centroids=final, summary=summary,
            baseline=baseline, created_at=datetime.now(UTC),
        )  # fmt: skip
        self.lap("write", mark)
        self.log(f"kmeans on Ray: {int(keep.sum())} clusters over {total} documents, "
                 f"{len(shards)} shards")  # fmt: skip
        return summary


def run_distributed(
    job: JobInput,
    open_store: Callable[[str], CollectionStore],
    log: Callable[[str], None] = print,
    address: str | None = None,
) -> dict[str, Any]:
    """Run one distributed job on the Ray cluster at `address` (the RayJob's, by default)."""
    try:
        import ray
    except ImportError:
        raise JobFailure(
            "runtime ray needs the ray extra in the image (pip install 'recluster[ray]')"
        ) from None
    try:
        store = open_store(job.store_uri)
    except StoreUnavailable as exc:
        raise JobFailure(f"store unreachable: {exc}") from None
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=address or "auto", include_dashboard=False, log_to_driver=True)
    try:
        return DistributedRunner(job, store, log=log).run()
    except StoreUnavailable as exc:
        raise JobFailure(f"store unreachable: {exc}") from None
    finally:
        store.close()
        if started_ray:
            ray.shutdown()
