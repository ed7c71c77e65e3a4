"""The distributed engine on a local Ray against the single-node engine, on the same data.

Writes N×D L2-normalised Gaussian blobs as a Parquet collection (part files of
262,144 rows, row groups of 8,192: what appends of that size leave), then runs,
each on the same collection:

    single       recluster run-job's Runner (the Job path): load, k-means, write
    ray          DistributedRunner on `ray.init(num_cpus=--cpus)` (the RayJob path):
                 sample + fit on the driver, one distributed Lloyd pass, one
                 distributed assign pass writing assignment shards, commit
    ray-startup  ray.init itself (a RayJob pays its cluster's start-up instead)

and prints wall times, the ratio ray/single, the stages of each, and the
per-shard throughput the Ray workers measured (rows per second per CPU, from
the summed task times of each pass). From that throughput the projection at
100M and 1B vectors: passes × N / (throughput × workers × CPUs), plus the
driver's sample and fit (which depend on K, not N), on a cluster of --workers
workers of --worker-cpus CPUs. It assumes each worker reads at the local disk
rate measured here; on S3 the read share grows (see docs/scale.md).

Usage: python benchmarks/bench_ray.py --rows 100000 1000000 --dim 384 --clusters 100 --cpus 4
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "operator"))

from recluster.api.clustering import ExecutionConfig  # noqa: E402
from recluster.jobrunner.runner import JobInput, Runner  # noqa: E402
from recluster.store.parquet import ParquetStore  # noqa: E402

NAMESPACE = "bench"
COLLECTION = "blobs"
PART_ROWS = 262_144


def generate(root: str, rows: int, dim: int, clusters: int) -> None:
    store = ParquetStore(root)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    for start in range(0, rows, PART_ROWS):
        n = min(PART_ROWS, rows - start)
        labels = rng.integers(0, clusters, n)
        block = centres[labels] + 0.3 * rng.standard_normal((n, dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        store.append(NAMESPACE, COLLECTION, [f"doc-{i:010d}" for i in range(start, start + n)],
                     block)  # fmt: skip
    store.close()


def job(root: str, run_id: str, clusters: int, runtime: str | None) -> JobInput:
    config = ExecutionConfig.model_validate(
        {"collection_ids": [COLLECTION], "runtime": runtime,
         "config": {"algorithm": "kmeans", "n_clusters": clusters, "normalize": True}}
    )  # fmt: skip
    return JobInput(config, run_id, NAMESPACE, root)


def measure(rows: int, dim: int, clusters: int, cpus: int, work: Path) -> dict[str, Any]:
    import ray

    from recluster.jobrunner.distributed import DistributedRunner

    root = str(work / f"store-{rows}")
    started = time.perf_counter()
    generate(root, rows, dim, clusters)
    out: dict[str, Any] = {"rows": rows, "dim": dim, "clusters": clusters, "cpus": cpus,
                           "generate_s": round(time.perf_counter() - started, 2)}  # fmt: skip
    store = ParquetStore(root)
    started = time.perf_counter()
    single = Runner(job(root, f"single-{rows}", clusters, None), store, log=lambda _: None).run()
    out["single_s"] = round(time.perf_counter() - started, 3)
    out["single_stages_ms"] = single["stage_ms"]
    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    out["ray_startup_s"] = round(time.perf_counter() - started, 3)
    try:
        started = time.perf_counter()
        summary = DistributedRunner(job(root, f"ray-{rows}", clusters, "ray"), store,
                                    log=lambda _: None).run()  # fmt: skip
        out["ray_s"] = round(time.perf_counter() - started, 3)
    finally:
        ray.shutdown()
    store.close()
    out["ray_stages_ms"] = summary["stage_ms"]
    out["shards"] = summary["shards"]
    out["shard_seconds"] = summary["shard_seconds"]
    out["ray_over_single"] = round(out["ray_s"] / out["single_s"], 2)
    # rows per second per CPU, from the workers' own task times
    out["rows_per_cpu_s"] = {
        name: round(rows / seconds) for name, seconds in summary["shard_seconds"].items() if seconds
    }
    out["driver_s"] = round(
        (summary["stage_ms"].get("sample", 0) + summary["stage_ms"].get("fit", 0)) / 1000, 3
    )
    return out


def project(result: dict[str, Any], workers: int, worker_cpus: int) -> dict[str, Any]:
    """Wall time at 100M and 1B rows from the measured per-CPU throughput of each pass."""
    cpus = workers * worker_cpus
    rates = result["rows_per_cpu_s"]
    projected = {}
    for rows in (100_000_000, 1_000_000_000):
        passes_s = sum(rows / (rate * cpus) for rate in rates.values())
        bytes_read = rows * result["dim"] * 4 * len(rates)
        projected[f"{rows:.0e}"] = {
            "passes_min": round(passes_s / 60, 1),
            "driver_s": result["driver_s"],
            "data_read_tb": round(bytes_read / 1e12, 2),
            "per_worker_read_mb_s": round(bytes_read / passes_s / workers / 1e6),
        }
    return {"workers": workers, "worker_cpus": worker_cpus, "projection": projected}


def main() -> None:
    import logging

    logging.getLogger("ray").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--cpus", type=int, default=4, help="ray.init(num_cpus=...)")
    parser.add_argument("--workers", type=int, default=16, help="projected cluster: workers")
    parser.add_argument("--worker-cpus", type=int, default=8, help="projected: CPUs per worker")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        for rows in args.rows:
            result = measure(rows, args.dim, args.clusters, args.cpus, Path(tmp))
            result["at_scale"] = project(result, args.workers, args.worker_cpus)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
