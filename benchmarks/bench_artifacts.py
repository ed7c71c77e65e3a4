"""What a run's artifacts and report cost, against the run itself, measured in the same process.

Writes N×D hard generated embeddings (engine.synthetic.hard_embeddings, Zipf
sizes, 5 % noise) with a planted-topic text per document into a Parquet store,
then runs the job runner on it twice per repeat: without artifacts (the
baseline) and with them, alternating, and prints the stages of each (wall
ms) and each run's CPU seconds. The overhead is (run with artifacts − run
without) / run without.

Usage: python benchmarks/bench_artifacts.py --rows 100000 --dim 384 --clusters 50 \
           [--layout clusters|pca|umap] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from recluster.api.clustering import ExecutionConfig
from recluster.engine.maplayout import DEFAULT_LAYOUT, LAYOUT_METHODS
from recluster.engine.synthetic import hard_embeddings, topic_texts
from recluster.jobrunner.runner import JobInput, Runner
from recluster.store import open_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--layout", default=DEFAULT_LAYOUT, choices=LAYOUT_METHODS)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    data = hard_embeddings(args.rows, args.dim, args.clusters, seed=0)
    texts = topic_texts(data.labels, 0).texts
    root = tempfile.mkdtemp(prefix="bench-artifacts-")
    store = open_store(root)
    store.append("bench", "docs", [f"doc-{i}" for i in range(args.rows)], data.matrix, texts)
    config = ExecutionConfig.model_validate(
        {"collection_ids": ["docs"], "config": {"algorithm": "kmeans", "n_clusters": args.clusters}}
    )
    seconds: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    stages: dict[bool, dict[str, float]] = {}
    for i in range(args.repeat):
        for with_artifacts in (False, True):
            job = JobInput(config, f"run-{i}-{int(with_artifacts)}", "bench", root)
            runner = Runner(job, store, log=lambda _: None, layout=args.layout,
                            artifacts=with_artifacts)  # fmt: skip
            started, cpu_started = time.perf_counter(), time.process_time()
            summary = runner.run()
            seconds[with_artifacts].append(time.perf_counter() - started)
            cpu[with_artifacts].append(time.process_time() - cpu_started)
            stages[with_artifacts] = summary["stage_ms"]
    base, full = statistics.median(seconds[False]), statistics.median(seconds[True])
    extra = {k: stages[True][k] for k in ("artifacts", "report") if k in stages[True]}
    print(json.dumps({
        "rows": args.rows, "dim": args.dim, "clusters": args.clusters, "layout": args.layout,
        "run_s_without": round(base, 2), "run_s_with": round(full, 2),
        "overhead": round((full - base) / base, 3),
        # CPU seconds of the process (all threads): less sensitive to other load than wall time
        "cpu_s_without": round(statistics.median(cpu[False]), 2),
        "cpu_s_with": round(statistics.median(cpu[True]), 2),
        "artifact_stage_ms": extra, "stages_with": stages[True],
        "sizes": store.list_artifacts("bench", f"run-{args.repeat - 1}-1"),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
