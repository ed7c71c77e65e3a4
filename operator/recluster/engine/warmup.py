"""Compile the engine's numba kernels ahead of time, into numba's on-disk cache.

Each Job is a fresh process; without a cache, numba kernels compile on first
use (20+ s on two cores, more than the clustering itself). Since issue 13
hdbscan runs on compiled (Cython/C) code from scikit-learn, scipy and faiss;
only ``cluster_selection_epsilon`` > 0 still uses fast_hdbscan's numba tree
code, large k-means its parallel passes (`engine/lloyd_kernels.py`), and
the map its UMAP layout (umap-learn's kernels, made cacheable by
`engine.umapcache`): this warms all three.
Run this once at image build time, with the same NUMBA_CACHE_DIR (and
NUMBA_CPU_NAME, see docs/engine.md) as the Jobs will use::

    NUMBA_CACHE_DIR=/opt/numba-cache python -m recluster.engine.warmup

Jobs then load machine code from the cache (about 0.7 s instead of 20+ s).
The `reduction` step's UMAP (engine/preprocess) is not covered: it lets
umap-learn find its own neighbours with pynndescent, whose kernels take the
metric as a numba function argument and so compile again in every process
(~10 s; see docs/engine.md).
"""

from __future__ import annotations

import argparse
import time

from recluster.api.clustering import ClusteringConfig

from .algorithms import cluster
from .kmeans import assign, lloyd_pass
from .maplayout import umap_layout, unit_rows
from .synthetic import blobs, hard_embeddings


def warmup() -> dict[str, float]:
    """Run every JIT-compiled path once on tiny data; seconds per path."""
    seconds: dict[str, float] = {}
    config = ClusteringConfig(
        algorithm="hdbscan", normalize=True, min_cluster_size=10, cluster_selection_epsilon=0.1
    )
    started = time.perf_counter()
    cluster(blobs(2_000, 48, 5, seed=0).matrix, config)
    seconds["hdbscan_epsilon"] = time.perf_counter() - started
    started = time.perf_counter()
    matrix = blobs(2_000, 48, 5, seed=0).matrix
    lloyd_pass(matrix, matrix[:5], workers=2)  # the kernels' one specialisation each
    assign(matrix, matrix[:5], workers=2)
    seconds["kmeans_parallel"] = time.perf_counter() - started
    started = time.perf_counter()
    # A connected k-NN graph, then one in separate components: UMAP's spectral
    # initialisation of the latter calls umap-learn's euclidean kernel from Python.
    umap_layout(unit_rows(hard_embeddings(1_000, 48, 6, seed=0).matrix), seed=0)
    umap_layout(unit_rows(blobs(1_500, 48, 6, seed=0).matrix), seed=0)
    seconds["map_umap"] = time.perf_counter() - started
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.parse_args(argv)
    for path, secs in warmup().items():
        print(f"warmed {path} in {secs:.1f} s")


if __name__ == "__main__":
    main()
