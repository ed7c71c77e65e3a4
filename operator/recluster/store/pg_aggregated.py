"""Large collections out of PostgreSQL: ranges of heap pages aggregated on the server,
fetched over several connections, decoded in order into one matrix.

Each query returns one range's ids as one ``text[]`` and its embeddings as one
``bytea`` (``array_agg`` and ``string_agg`` of the binary values over the same
scan, so in the same order), which numpy decodes in one conversion
(`pgcodec.decode`). Why not a row per message: the client's per-row work (a
protocol message, Python objects) cost more than the server's for pgvector
columns (9 s against 5 s for 1M × 384, issue 13); a binary ``COPY`` is no
better, libpq hands its rows over one at a time (measured under load, 200,000
rows: 14 s through COPY, 8 s aggregated). Why several connections: the
server's ``vector_send`` and scan run on one core per connection (about
2-3.5 s of server CPU per 1M × 384 on this machine, under load), so one
connection is bound by one server core.

Invariants:

- every connection reads in the caller's snapshot (exported from its
  transaction) with TID range scans forced (`force_tid_range_scans`), so
  every range is read once, in physical order;
- tasks are (collection, page range) in collection order, then page order,
  and their results are decoded in that order whatever connection fetched
  them: the rows land in the matrix as a single connection would put them;
- at most ``2 × connections`` fetched ranges wait to be decoded (about 14 MB
  each at D=384), so memory stays near the matrix's own.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from .errors import InvalidCollection
from .pgcodec import EmbeddingType, decode
from .types import Float32Matrix

AGGREGATED_PAGES = 512
"""Heap pages per query: ~2,400 rows, ~3.5 MB at D=384. Measured at 1M × 384,
4 connections, under load: 19 and 24 s against 27 and 28 s with 2,048 pages
(whose 14 MB values the server builds by repeated doubling, then copies)."""
COLUMN = "recluster_documents.embedding"

T = TypeVar("T")
U = TypeVar("U")
Fetched = tuple[list[str], bytes, bool] | None
"""A range's ids, its embeddings' binary values joined, whether any embedding is NULL."""


def force_tid_range_scans(conn: psycopg.Connection[Any]) -> None:
    """A TID range scan for each range (inside a transaction: SET LOCAL).

    A sequential scan, or a bitmap scan of the primary key (which the planner
    picked for one of two identical tables: 49 s instead of 4), would read
    the whole table for every range.
    """
    for method in ("seqscan", "bitmapscan", "indexonlyscan"):
        conn.execute(f"SET LOCAL enable_{method} = off")


def relation_pages(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT pg_relation_size('recluster_documents') / current_setting('block_size')::bigint"
    ).fetchone()
    return int(row[0]) if row else 0


def describe(namespace: str, collection_id: str) -> str:
    """How errors name what was being read."""
    return f"collection {collection_id!r} in namespace {namespace!r} (column {COLUMN})"


def read_aggregated(
    conn: psycopg.Connection[Any],
    connect_worker: Callable[[], AbstractContextManager[psycopg.Connection[Any]]],
    namespace: str,
    collections: Sequence[tuple[str, int]],
    send: sql.SQL,
    kind: EmbeddingType,
    matrix: Float32Matrix,
    connections: int,
) -> list[list[str]]:
    """Read ``collections`` ((id, row count), in order) into ``matrix``; their document ids.

    ``conn`` is in the read's transaction; ``connect_worker`` opens another
    connection already in the same snapshot (used when ``connections`` > 1).
    ``send`` is the SQL of the embedding's binary value in ``kind``'s format.
    Raises InvalidCollection when an embedding is NULL, has another dimension,
    or the rows changed under the read.
    """
    force_tid_range_scans(conn)
    pages = relation_pages(conn)
    query = sql.SQL(
        "SELECT array_agg(document_id), string_agg({send}, ''::bytea), bool_or(embedding IS NULL)"
        " FROM recluster_documents WHERE namespace = %s AND collection_id = %s"
        " AND ctid >= %s::tid AND ctid < %s::tid"
    ).format(send=send)
    tasks = [
        (index, first)
        for index in range(len(collections))
        for first in range(0, pages, AGGREGATED_PAGES)
    ]

    def fetch(on: psycopg.Connection[Any], task: tuple[int, int]) -> Fetched:
        index, first = task
        cid = collections[index][0]
        params = (namespace, cid, f"({first},0)", f"({first + AGGREGATED_PAGES},0)")
        got = on.cursor(binary=True).execute(query, params).fetchone()
        if got is None or got[0] is None:
            return None
        return list(got[0]), bytes(got[1] or b""), bool(got[2])

    if connections <= 1 or len(tasks) <= 1:
        return _place(
            (fetch(conn, task) for task in tasks), tasks, namespace, collections, kind, matrix
        )
    with ExitStack() as opened:
        lock = threading.Lock()
        local = threading.local()

        def fetch_on_worker(task: tuple[int, int]) -> Fetched:
            worker: psycopg.Connection[Any] | None = getattr(local, "conn", None)
            if worker is None:
                context = connect_worker()
                worker = context.__enter__()
                with lock:
                    opened.push(context.__exit__)  # closed after the pool's threads end
                force_tid_range_scans(worker)
                local.conn = worker
            return fetch(worker, task)

        with ThreadPoolExecutor(min(connections, len(tasks))) as pool:
            results = in_order(pool, fetch_on_worker, tasks, window=2 * connections)
            try:
                return _place(results, tasks, namespace, collections, kind, matrix)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)


def _place(
    results: Iterable[Fetched],
    tasks: Sequence[tuple[int, int]],
    namespace: str,
    collections: Sequence[tuple[str, int]],
    kind: EmbeddingType,
    matrix: Float32Matrix,
) -> list[list[str]]:
    """Decode the ranges' results, in task order, into consecutive rows of ``matrix``."""
    starts = list(itertools.accumulate([0, *(n for _, n in collections)]))
    ids: list[list[str]] = [[] for _ in collections]
    dim = matrix.shape[1]
    for (index, _), got in zip(tasks, results, strict=True):
        if got is None:
            continue
        block_ids, blob, has_null = got
        cid, expected = collections[index]
        named = describe(namespace, cid)
        if has_null:
            raise InvalidCollection(f"{named}: some documents have a NULL embedding")
        seen = ids[index]
        if len(seen) + len(block_ids) > expected:
            raise InvalidCollection(f"{named}: rows changed while reading")
        at = starts[index] + len(seen)
        decode(kind, blob, len(block_ids), dim, matrix[at : at + len(block_ids)], named)
        seen.extend(block_ids)
    for (cid, expected), seen in zip(collections, ids, strict=True):
        if len(seen) != expected:
            raise InvalidCollection(f"{describe(namespace, cid)}: rows changed while reading")
    return ids


def in_order(
    pool: ThreadPoolExecutor, fn: Callable[[T], U], items: Sequence[T], *, window: int
) -> Iterator[U]:
    """``fn`` of each item on ``pool``, yielded in the items' order, ≤ ``window`` running ahead."""
    pending: deque[Future[U]] = deque()
    rest = iter(items)
    for item in itertools.islice(rest, window):
        pending.append(pool.submit(fn, item))
    while pending:
        result = pending.popleft().result()
        for item in itertools.islice(rest, 1):
            pending.append(pool.submit(fn, item))
        yield result
