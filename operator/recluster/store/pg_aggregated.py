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
  and their rows are given places in the matrix in that order whatever
  connection fetched them (`_Placer`): the rows land as a single connection
  would put them; each range is then decoded by the thread that fetched it;
- at most ``2 × connections`` ranges are in flight (about 3.5 MB each at
  D=384), so memory stays near the matrix's own.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
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

    placer = _Placer(namespace, collections, kind, matrix)

    def fetch_and_place(on: psycopg.Connection[Any], number: int) -> list[str]:
        try:
            got = fetch(on, tasks[number])
        except BaseException:
            placer.skip(number)  # the ranges after it must not wait for it
            raise
        return placer.place(number, tasks[number][0], got)

    if connections <= 1 or len(tasks) <= 1:
        ids = [fetch_and_place(conn, number) for number in range(len(tasks))]
        return placer.finish(ids, tasks)
    with ExitStack() as opened:
        lock = threading.Lock()
        local = threading.local()

        def on_worker(number: int) -> list[str]:
            worker: psycopg.Connection[Any] | None = getattr(local, "conn", None)
            if worker is None:
                context = connect_worker()
                worker = context.__enter__()
                with lock:
                    opened.push(context.__exit__)  # closed after the pool's threads end
                force_tid_range_scans(worker)
                local.conn = worker
            return fetch_and_place(worker, number)

        with ThreadPoolExecutor(min(connections, len(tasks))) as pool:
            try:
                ids = list(in_order(pool, on_worker, range(len(tasks)), window=2 * connections))
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        return placer.finish(ids, tasks)


class _Placer:
    """Gives each range its rows of the matrix, in range order, then decodes it there.

    A range learns its row count only when fetched, so its place is known
    once every range before it has been counted: `place` waits for that
    (a condition, not the decoding of the earlier ranges), then decodes the
    range into its rows outside the lock, in the fetching thread. numpy
    releases the GIL while it converts, so the ranges of several
    connections are decoded, and the fresh matrix's pages first written, on
    several cores. The pool takes ranges in order, so the range a thread
    waits for has always been started by another (no deadlock); a range
    that fails is skipped (`skip`) so that none waits for it forever.
    """

    def __init__(
        self,
        namespace: str,
        collections: Sequence[tuple[str, int]],
        kind: EmbeddingType,
        matrix: Float32Matrix,
    ) -> None:
        self.namespace = namespace
        self.collections = collections
        self.kind = kind
        self.matrix = matrix
        self.starts = list(itertools.accumulate([0, *(n for _, n in collections)]))
        self.taken = [0] * len(collections)
        self.turn = 0
        self.ready = threading.Condition()

    def _claim(self, number: int, index: int, rows: int, has_null: bool) -> int:
        with self.ready:
            self.ready.wait_for(lambda: self.turn >= number)
            self.turn = number + 1
            self.ready.notify_all()
            cid, expected = self.collections[index]
            named = describe(self.namespace, cid)
            if has_null:
                raise InvalidCollection(f"{named}: some documents have a NULL embedding")
            if self.taken[index] + rows > expected:
                raise InvalidCollection(f"{named}: rows changed while reading")
            at = self.starts[index] + self.taken[index]
            self.taken[index] += rows
            return at

    def skip(self, number: int) -> None:
        with self.ready:
            self.ready.wait_for(lambda: self.turn >= number)
            self.turn = number + 1
            self.ready.notify_all()

    def place(self, number: int, index: int, got: Fetched) -> list[str]:
        """Range ``number`` (of collection ``index``) into its rows; its ids."""
        if got is None:
            self.skip(number)
            return []
        block_ids, blob, has_null = got
        at = self._claim(number, index, len(block_ids), has_null)
        named = describe(self.namespace, self.collections[index][0])
        rows = self.matrix[at : at + len(block_ids)]
        decode(self.kind, blob, len(block_ids), self.matrix.shape[1], rows, named)
        return block_ids

    def finish(self, ids: list[list[str]], tasks: Sequence[tuple[int, int]]) -> list[list[str]]:
        """The collections' ids (ranges in order), checked against their counts."""
        per_collection: list[list[str]] = [[] for _ in self.collections]
        for (index, _), block_ids in zip(tasks, ids, strict=True):
            per_collection[index].extend(block_ids)
        for (cid, expected), got in zip(self.collections, per_collection, strict=True):
            if len(got) != expected:
                raise InvalidCollection(
                    f"{describe(self.namespace, cid)}: rows changed while reading"
                )
        return per_collection


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
