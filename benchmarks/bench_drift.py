"""Drift check time on a large Parquet collection, and the data behind the cosine_drift choice.

Default mode: writes N×D documents (L2-normalised Gaussian blobs around K
topic centres that share a common direction, like real embeddings) as one
collection with the Parquet store, records a baseline built directly from the
generating centres (statistics from a fresh 200k-row draw of the same mix),
then times `recluster.drift_check.check` end to end (baseline read + count +
sample + measure) for each metric, `--repeat` times with different seeds.
Then it appends documents of a new topic (`--new-share` of the total, as
newer part files, the way ingestion appends them) and measures again.

`--candidates`: prints the table in docs/drift.md (candidate (a) mean shift,
(b) similarity drop, and the chosen cosine_drift and outlier_fraction) for
generated scenarios, with a baseline clustered by the engine's k-means.

Usage:
    python benchmarks/bench_drift.py --rows 1000000 --dim 384 --dir /tmp/bench-drift
    python benchmarks/bench_drift.py --candidates
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "operator"))

from recluster.core.drift import (  # noqa: E402
    baseline_stats,
    mean_shift,
    measure,
    similarity_drop,
)
from recluster.store.types import Baseline  # noqa: E402

NAMESPACE = "bench"
COLLECTION = "docs"
METRICS = ("cosine_drift", "outlier_fraction", "document_growth")


class Topics:
    """Topic centres (the last one appears later) and documents around them."""

    def __init__(self, k: int, dim: int, spread: float, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        common = _unit(rng.standard_normal((1, dim)))
        self.centres = _unit(0.6 * common + 0.8 * _unit(rng.standard_normal((k + 1, dim))))
        self.mix = rng.dirichlet(np.full(k, 3.0))
        self.k, self.dim, self.spread = k, dim, spread

    def docs(self, topics: np.ndarray, rng: np.random.Generator, wider: float = 1.0) -> np.ndarray:
        noise = rng.standard_normal((len(topics), self.dim), dtype=np.float32)
        scale = wider * self.spread / self.dim**0.5
        block = self.centres[topics].astype(np.float32) + scale * noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        return np.asarray(block, dtype=np.float32)

    def draw(
        self, n: int, rng: np.random.Generator, mix: np.ndarray | None = None, new: float = 0.0
    ) -> np.ndarray:
        m = round(n * new)
        old = rng.choice(self.k, size=n - m, p=self.mix if mix is None else mix)
        return np.vstack([self.docs(old, rng), self.docs(np.full(m, self.k), rng)])

    def shifted_mix(self, tvd: float) -> np.ndarray:
        mix = self.mix.copy()
        half = self.k // 2
        mix[:half] *= 1 - tvd / mix[:half].sum()
        mix[half:] += tvd * mix[half:] / mix[half:].sum()
        return mix


def _unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True))


def _append(store: Any, topics: Topics, rows: int, start: int, seed: int, new: float) -> None:
    rng = np.random.default_rng(seed)
    chunk = 250_000
    for first in range(0, rows, chunk):
        n = min(chunk, rows - first)
        block = topics.draw(n, rng, new=new)
        ids = [f"doc-{i:09d}" for i in range(start + first, start + first + n)]
        store.append(NAMESPACE, COLLECTION, ids, block)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def bench_check(args: argparse.Namespace) -> None:
    from recluster.drift_check import check
    from recluster.store.parquet import ParquetStore

    root = args.dir or tempfile.mkdtemp(prefix="recluster-drift-")
    if Path(root).exists() and args.fresh:
        shutil.rmtree(root)
    store = ParquetStore(root, rows_per_row_group=args.row_group)
    topics = Topics(args.clusters, args.dim, args.spread)
    try:
        present = store.count(NAMESPACE, COLLECTION)
    except Exception:
        present = 0
    if present != args.rows:
        if present:
            shutil.rmtree(f"{root}/{NAMESPACE}")
        seconds, _ = timed(lambda: _append(store, topics, args.rows, 0, seed=1, new=0.0))
        print(f"generated {args.rows}×{args.dim} in {seconds:.1f} s under {root}")
    reference = topics.draw(200_000, np.random.default_rng(2))
    seconds, stats = timed(lambda: baseline_stats(reference, topics.centres[: args.clusters]))
    print(f"baseline statistics on 200000 rows × K={args.clusters}: {seconds:.2f} s")
    store.write_baseline(
        NAMESPACE,
        Baseline(
            run_id="bench-baseline",
            collection_ids=(COLLECTION,),
            centroids=topics.centres[: args.clusters].astype(np.float32),
            mean=reference.mean(axis=0),
            document_count=args.rows,
            stats=stats,
        ),
    )

    def report(label: str) -> None:
        print(f"\n{label}")
        print(
            f"{'metric':18s} {'best s':>7s} {'median s':>8s} {'max s':>7s}  values (one per seed)"
        )
        for metric in METRICS:
            times: list[float] = []
            values: list[float] = []
            note = ""
            for seed in range(args.repeat):
                started = time.perf_counter()
                got = check(store, NAMESPACE, [COLLECTION], metric, seed)
                times.append(time.perf_counter() - started)
                assert got is not None
                values.append(got.value)
                note = got.note
            shown = " ".join(f"{v:.3f}" for v in values)
            print(
                f"{metric:18s} {min(times):7.3f} {statistics.median(times):8.3f} "
                f"{max(times):7.3f}  {shown}"
            )
            print(f"{'':18s} last note: {note}")

    report(f"unchanged collection ({args.rows} rows, K={args.clusters})")
    if args.new_share > 0:
        added = round(args.rows * args.new_share / (1 - args.new_share))
        seconds, _ = timed(lambda: _append(store, topics, added, args.rows, seed=3, new=1.0))
        print(
            f"\nappended {added} documents of a new topic ({args.new_share:.0%}) in {seconds:.1f} s"
        )
        report(f"after the new topic ({args.rows + added} rows)")
        # Put the collection back for the next run of the benchmark.
        parts = sorted(Path(root, NAMESPACE, "collections", COLLECTION).glob("part-*.parquet"))
        for part in parts[len(parts) - -(-added // 250_000) :]:
            part.unlink()
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)


def candidates(args: argparse.Namespace) -> None:
    """The table of docs/drift.md: scenario → (a), (b), cosine_drift, outlier_fraction."""
    from recluster.api.clustering import ClusteringConfig
    from recluster.engine.algorithms import cluster

    k, dim, n = 20, args.dim, 10_000
    topics = Topics(k, dim, args.spread)
    base = topics.draw(50_000, np.random.default_rng(1))
    result = cluster(base.copy(), ClusteringConfig(algorithm="kmeans", n_clusters=k))
    baseline = Baseline(
        "b",
        ("c",),
        result.centroids,
        base.mean(axis=0),
        len(base),
        stats=baseline_stats(base, result.centroids),
    )
    scenarios: list[tuple[str, Callable[[np.random.Generator], np.ndarray]]] = [
        ("unchanged (fresh sample, same mix)", lambda r: topics.draw(n, r)),
        (
            "unchanged, row norms × U(0.01, 100)",
            lambda r: topics.draw(n, r) * r.uniform(0.01, 100, (n, 1)).astype(np.float32),
        ),
        ("new topic, 10% of documents", lambda r: topics.draw(n, r, new=0.1)),
        ("new topic, 20%", lambda r: topics.draw(n, r, new=0.2)),
        ("new topic, 30%", lambda r: topics.draw(n, r, new=0.3)),
        ("new topic, 40%", lambda r: topics.draw(n, r, new=0.4)),
        ("mix shift, total variation 0.10", lambda r: topics.draw(n, r, topics.shifted_mix(0.1))),
        ("mix shift, total variation 0.30", lambda r: topics.draw(n, r, topics.shifted_mix(0.3))),
        (
            "same mix, every topic 30% wider",
            lambda r: topics.docs(r.choice(k, size=n, p=topics.mix), r, wider=1.3),
        ),
    ]
    print(
        f"D={dim}, {k} topics (spread {args.spread}), baseline: k-means K={k} on 50000 rows;"
        f" samples of {n}; mean ± sd over 5 seeds; similarity_mean at baseline"
        f" {baseline.stats['similarity_mean']:.2f}\n"
    )
    print("| scenario | (a) mean shift | (b) similarity drop | cosine_drift | outlier_fraction |")
    print("|---|---|---|---|---|")
    for label, make in scenarios:
        cols: list[list[float]] = [[], [], [], []]
        for seed in range(5):
            sample = make(np.random.default_rng(100 + seed))
            cols[0].append(mean_shift(sample, baseline))
            cols[1].append(similarity_drop(sample, baseline))
            cols[2].append(measure("cosine_drift", sample, baseline, 0).value)
            cols[3].append(measure("outlier_fraction", sample, baseline, 0).value)
        cells = " | ".join(f"{np.mean(c):.3f} ± {np.std(c):.3f}" for c in cols)
        print(f"| {label} | {cells} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=50, help="topics = baseline centroids")
    parser.add_argument("--spread", type=float, default=1.5, help="noise around each centre")
    parser.add_argument("--row-group", type=int, default=32_768)
    parser.add_argument("--repeat", type=int, default=5, help="checks per metric (seeds)")
    parser.add_argument("--new-share", type=float, default=0.3, help="0 skips the drift part")
    parser.add_argument("--dir", help="keep the generated store here (reused if it matches)")
    parser.add_argument("--fresh", action="store_true", help="regenerate even if --dir exists")
    parser.add_argument("--candidates", action="store_true", help="print the docs/drift.md table")
    args = parser.parse_args()
    if args.candidates:
        candidates(args)
    else:
        bench_check(args)


if __name__ == "__main__":
    main()
