"""Benchmark the clustering engine against the baselines named in issue 3.

Every case runs in its own fresh Python process (as a Job would), so that its
peak RSS and its cold-start costs (imports, numba cache loading or compiling)
are its own. The parent prints one table: seconds, ratios to Recluster, ARI
against the generating labels, and peak RSS.

Data: Gaussian blobs (centres uniform in [-10, 10]^D, unit variance), then
L2-normalised, float32, generated in chunks so that generation adds little to
the peak RSS.

Examples::

    python benchmarks/bench_engine.py --small          # a minute, smoke test
    python benchmarks/bench_engine.py                  # the issue's sizes
    python benchmarks/bench_engine.py --stream-rows 10000000 --stream-dir /var/tmp
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

STARTED = time.perf_counter()


def blobs(
    n: int, d: int, k: int, seed: int = 0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]:
    """L2-normalised Gaussian blobs in float32, written chunk by chunk."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, size=(k, d)).astype(np.float32)
    truth = rng.integers(0, k, size=n).astype(np.int32)
    rows = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 65_536):
        stop = min(n, start + 65_536)
        block = rows[start:stop]
        block[:] = rng.standard_normal((stop - start, d), dtype=np.float32)
        block += centers[truth[start:stop]]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    return rows, truth


def run_case(args: argparse.Namespace) -> dict[str, Any]:
    """Child side: build the data, time one method, report figures as JSON."""
    from sklearn.metrics import adjusted_rand_score  # type: ignore[import-untyped]

    if args.case == "kmeans_streaming":  # reads its rows from disk, generates nothing
        return run_streaming(args)
    data_start = time.perf_counter()
    rows, truth = blobs(args.rows, args.dims, args.clusters, seed=args.seed)
    data_ready = time.perf_counter()
    out: dict[str, Any] = {"case": args.case, "rows": args.rows}
    if args.case == "kmeans":
        from recluster.api.clustering import ClusteringConfig
        from recluster.engine import cluster

        config = ClusteringConfig(algorithm="kmeans", n_clusters=args.clusters)
        started = time.perf_counter()
        result = cluster(rows, config)
        labels = result.labels
        out["stage_ms"] = result.timings_ms
    elif args.case == "kmeans_sklearn":
        from sklearn.cluster import KMeans  # type: ignore[import-untyped]

        started = time.perf_counter()
        labels = KMeans(n_clusters=args.clusters, random_state=0).fit_predict(rows)
    elif args.case == "kmeans_faiss_full":
        import faiss

        started = time.perf_counter()
        km = faiss.Kmeans(
            args.dims,
            args.clusters,
            niter=25,
            seed=0,
            max_points_per_centroid=args.rows // args.clusters + 1,  # all rows
        )
        km.train(rows)
        labels = km.index.search(rows, 1)[1][:, 0]
    elif args.case in ("hdbscan", "hdbscan_nocache"):
        from recluster.api.clustering import ClusteringConfig
        from recluster.engine import cluster

        config = ClusteringConfig(algorithm="hdbscan", min_cluster_size=args.min_cluster_size)
        started = time.perf_counter()
        result = cluster(rows, config)
        labels = result.labels
        out["stage_ms"] = result.timings_ms
        out["noise_fraction"] = result.noise_fraction
    elif args.case == "hdbscan_reference":
        import hdbscan  # type: ignore[import-untyped]

        started = time.perf_counter()
        labels = hdbscan.HDBSCAN(min_cluster_size=args.min_cluster_size).fit_predict(rows)
    else:
        raise SystemExit(f"unknown case {args.case}")
    finished = time.perf_counter()
    out["fit_s"] = finished - started
    # Process time minus data generation: what a Job would spend on this step,
    # imports and JIT compilation (or numba cache loading) included.
    out["job_s"] = (finished - STARTED) - (data_ready - data_start)
    out["ari"] = float(adjusted_rand_score(truth, labels))
    return out


def run_streaming(args: argparse.Namespace) -> dict[str, Any]:
    """k-means over a raw float32 file read block by block (no mmap: its pages count as RSS)."""
    from sklearn.metrics import adjusted_rand_score

    from recluster.engine import kmeans_streaming

    path = Path(args.stream_file)
    d = args.dims
    block_rows = 65_536  # 100 MB at D=384; peak is a few blocks plus the sample

    def blocks() -> Any:
        with path.open("rb") as f:
            while True:
                buf = np.fromfile(f, dtype=np.float32, count=block_rows * d)
                if buf.size == 0:
                    return
                yield buf.reshape(-1, d)

    started = time.perf_counter()
    result = kmeans_streaming(blocks, args.clusters)
    finished = time.perf_counter()
    truth = np.fromfile(path.with_suffix(".labels"), dtype=np.int32)
    picked = np.random.default_rng(0).choice(truth.size, size=min(truth.size, 1_000_000))
    return {
        "case": args.case,
        "rows": int(truth.size),
        "fit_s": finished - started,
        "job_s": finished - STARTED,
        "ari": float(adjusted_rand_score(truth[picked], result.labels[picked])),
        "stage_ms": result.timings_ms,
    }


def write_stream_file(path: Path, n: int, d: int, k: int, seed: int) -> None:
    """The blobs, chunk by chunk, as raw float32 rows plus an int32 label file."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, size=(k, d)).astype(np.float32)
    with path.open("wb") as f, path.with_suffix(".labels").open("wb") as g:
        for start in range(0, n, 262_144):
            m = min(n, start + 262_144) - start
            truth = rng.integers(0, k, size=m).astype(np.int32)
            block = rng.standard_normal((m, d), dtype=np.float32) + centers[truth]
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            block.tofile(f)
            truth.tofile(g)


def spawn(
    case: str, rows: int, args: argparse.Namespace, env: dict[str, str]
) -> dict[str, Any] | None:
    """Run one case in a fresh interpreter; add its peak RSS (from wait4)."""
    if args.only and case not in args.only.split(","):
        return None
    cmd = [
        sys.executable,
        __file__,
        "--case",
        case,
        "--rows",
        str(rows),
        "--dims",
        str(args.dims),
        "--clusters",
        str(args.clusters),
        "--min-cluster-size",
        str(args.min_cluster_size),
        "--seed",
        str(args.seed),
    ]
    if case == "kmeans_streaming":
        cmd += ["--stream-file", args.stream_file]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"case": case, "rows": rows, "error": f"exit {proc.returncode}"}
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--stream-file", help=argparse.SUPPRESS)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--min-cluster-size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kmeans-rows", type=int, default=1_000_000)
    parser.add_argument("--hdbscan-rows", type=int, default=20_000)
    parser.add_argument(
        "--hdbscan-more-rows",
        type=int,
        nargs="*",
        default=[100_000, 1_000_000],
        help="extra sizes for Recluster's hdbscan alone (no reference run)",
    )
    parser.add_argument("--stream-rows", type=int, default=0, help="0 = skip the streaming case")
    parser.add_argument("--stream-dir", default=tempfile.gettempdir())
    parser.add_argument("--skip-sklearn", action="store_true", help="skip sklearn KMeans (slow)")
    parser.add_argument(
        "--skip-hdbscan-reference", action="store_true", help="skip hdbscan.HDBSCAN (slow)"
    )
    parser.add_argument("--small", action="store_true", help="smoke-test sizes")
    parser.add_argument("--only", default="", help="comma-separated case names to run")
    args = parser.parse_args()

    if args.case:
        print(json.dumps(run_case(args)))
        return

    if args.small:
        args.kmeans_rows, args.hdbscan_rows, args.hdbscan_more_rows = 100_000, 5_000, [20_000]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    cache_dir = tempfile.mkdtemp(prefix="numba-cache-")
    env["NUMBA_CACHE_DIR"] = cache_dir
    # What the image build does: compile the numba kernels into the cache.
    if not args.only or "hdbscan" in args.only:
        warm = subprocess.run(
            [sys.executable, "-m", "recluster.engine.warmup"],
            env=env,
            capture_output=True,
            text=True,
        )
        print(f"warm-up into {cache_dir}: {warm.stdout.strip()} (exit {warm.returncode})")

    results: list[dict[str, Any] | None] = []
    results.append(spawn("kmeans", args.kmeans_rows, args, env))
    results.append(spawn("kmeans_faiss_full", args.kmeans_rows, args, env))
    if not args.skip_sklearn:
        results.append(spawn("kmeans_sklearn", args.kmeans_rows, args, env))
    results.append(spawn("hdbscan", args.hdbscan_rows, args, env))
    cold_env = dict(env, NUMBA_CACHE_DIR=tempfile.mkdtemp(prefix="numba-empty-"))
    results.append(spawn("hdbscan_nocache", args.hdbscan_rows, args, cold_env))
    if not args.skip_hdbscan_reference:
        results.append(spawn("hdbscan_reference", args.hdbscan_rows, args, env))
    for rows in args.hdbscan_more_rows:
        results.append(spawn("hdbscan", rows, args, env))
    if args.stream_rows:
        path = Path(args.stream_dir) / f"bench-stream-{args.stream_rows}x{args.dims}.f32"
        if not path.exists():
            print(f"writing {path} ...", flush=True)
            write_stream_file(path, args.stream_rows, args.dims, args.clusters, args.seed)
        args.stream_file = str(path)
        results.append(spawn("kmeans_streaming", args.stream_rows, args, env))

    report([r for r in results if r is not None], args)


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    base = {(r["case"], r["rows"]): r for r in results if "error" not in r}
    print()
    print(f"{'case':<20}{'rows':>10}{'fit s':>9}{'job s':>9}{'ratio':>9}{'ARI':>8}{'RSS MB':>9}")
    for r in results:
        if "error" in r:
            print(f"{r['case']:<20}{r['rows']:>10}  {r['error']}")
            continue
        ours = "kmeans" if r["case"].startswith("kmeans") else "hdbscan"
        mine = base.get((ours, r["rows"]))
        ratio = f"{r['job_s'] / mine['job_s']:.1f}x" if mine and r is not mine else ""
        print(
            f"{r['case']:<20}{r['rows']:>10}{r['fit_s']:>9.2f}{r['job_s']:>9.2f}"
            f"{ratio:>9}{r['ari']:>8.3f}{r['peak_rss_mb']:>9.0f}"
        )
    matrix_mb = {rows: rows * args.dims * 4 / 2**20 for (_, rows) in base}
    print()
    print("matrix MB by rows:", {k: round(v) for k, v in sorted(matrix_mb.items())})
    print("ratio = job seconds of the baseline / job seconds of Recluster on the same rows")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
