"""PostgreSQL store (psycopg 3): one documents table for every collection, plus result tables.

Tables (created if missing, idempotent; documented for users in docs/store.md)::

    recluster_documents   (namespace, collection_id, document_id, embedding real[] | vector,
                           text: optional, NULL allowed, added on first append with texts)
                          PRIMARY KEY (namespace, collection_id, document_id)
    recluster_runs        one row per complete run: ids, sizes, summary jsonb, committed_at
    recluster_assignments (namespace, run_id, position, collection_id, document_id, label)
    recluster_clusters    (namespace, run_id, cluster_id, size, centroid real[])
    recluster_baselines   (namespace, collection_set, run_id, created_at, document_count,
                           mean real[], centroids real[][], stats jsonb)
    recluster_artifacts   (namespace, run_id, name, content bytea): a run's artifacts,
                          byte for byte the files the Parquet store writes (Parquet
                          tables, report.html, map.png), committed with the run

Why artifacts are blobs rather than tables: they are read whole (by the
gateway, the CLI, pyarrow) and their layouts are documented once, as Parquet
(docs/store.md, "Artifacts"); blobs keep one codec for both backends and need
no DDL when a layout gains a column.

Why one documents table rather than a table per collection: collections come
and go with triggers and the API; with one table they need no DDL, no
dynamic identifiers and no catalog growth, and the primary key
(namespace, collection_id, document_id) serves counts, ordered reads and
sampling by index.

Reading embeddings: `array_send(embedding)` fetched in binary through a
server-side cursor gives each row's array in PostgreSQL's binary layout
(header, then a 4-byte length and a big-endian float per element). A block of
rows is joined into one buffer and decoded by numpy through a structured
dtype straight into the preallocated float32 matrix: no Python float objects.
pgvector `vector` and `halfvec` columns are read in their own binary
formats (`vector_send`, `halfvec_send`; large collections aggregated a range
of pages per query over several connections, `store/pg_aggregated.py`) and
written by binary COPY in the same formats (`store/pgcodec.py`).

A run is written in one transaction: it is visible completely or not at all.
"""

from __future__ import annotations

import functools
import itertools
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ParamSpec, TypeVar, cast

import numpy as np
import psycopg
from numpy.typing import ArrayLike
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.types.json import Jsonb

from ._common import (
    check_append,
    check_block_size,
    check_sample_size,
    empty_collection,
    new_matrix,
    reblock,
    redact,
    run_offsets,
    single_dim,
)
from .base import CollectionStore
from .errors import (
    ArtifactNotFound,
    CollectionNotFound,
    InvalidCollection,
    RunExists,
    RunNotFound,
    StoreAccessDenied,
    StoreError,
    StoreUnavailable,
)
from .pg_aggregated import describe, read_aggregated
from .pgcodec import SEND_FUNCTION, EmbeddingType, copy_rows, decode, encode, record_dtype
from .tenancy import POSTGRES_TABLES, postgres_namespace_sql
from .types import (
    Baseline,
    Collection,
    Float32Matrix,
    RunResults,
    check_artifact_name,
    check_id,
    collection_set_key,
)

# Rows fetched per round trip: ~30 MB of arrays at D=384.
DEFAULT_FETCH_ROWS = 10_000

P = ParamSpec("P")
R = TypeVar("R")

TABLES = POSTGRES_TABLES
_DDL = """
CREATE TABLE IF NOT EXISTS recluster_documents (
    namespace      text NOT NULL,
    collection_id  text NOT NULL,
    document_id    text NOT NULL,
    embedding      {embedding_type} NOT NULL,
    PRIMARY KEY (namespace, collection_id, document_id)
);
CREATE TABLE IF NOT EXISTS recluster_runs (
    namespace      text NOT NULL,
    run_id         text NOT NULL,
    collection_set text NOT NULL,
    collection_ids text[] NOT NULL,
    num_documents  bigint NOT NULL,
    num_clusters   integer NOT NULL,
    dim            integer NOT NULL,
    summary        jsonb NOT NULL,
    created_at     timestamptz NOT NULL,
    committed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (namespace, run_id)
);
CREATE INDEX IF NOT EXISTS recluster_runs_latest
    ON recluster_runs (namespace, collection_set, committed_at DESC);
CREATE TABLE IF NOT EXISTS recluster_assignments (
    namespace      text NOT NULL,
    run_id         text NOT NULL,
    position       bigint NOT NULL,
    collection_id  text NOT NULL,
    document_id    text NOT NULL,
    label          integer NOT NULL,
    PRIMARY KEY (namespace, run_id, position)
);
CREATE TABLE IF NOT EXISTS recluster_clusters (
    namespace      text NOT NULL,
    run_id         text NOT NULL,
    cluster_id     integer NOT NULL,
    size           bigint NOT NULL,
    centroid       real[] NOT NULL,
    PRIMARY KEY (namespace, run_id, cluster_id)
);
CREATE TABLE IF NOT EXISTS recluster_baselines (
    namespace      text NOT NULL,
    collection_set text NOT NULL,
    collection_ids text[] NOT NULL,
    run_id         text NOT NULL,
    created_at     timestamptz NOT NULL,
    document_count bigint NOT NULL,
    mean           real[] NOT NULL,
    centroids      real[] NOT NULL,
    stats          jsonb NOT NULL DEFAULT '{{}}',
    PRIMARY KEY (namespace, collection_set, created_at, run_id)
);
CREATE TABLE IF NOT EXISTS recluster_artifacts (
    namespace      text NOT NULL,
    run_id         text NOT NULL,
    name           text NOT NULL,
    content        bytea NOT NULL,
    PRIMARY KEY (namespace, run_id, name)
);
"""
# Documents' texts are optional: the column is added when texts are first appended.
_ADD_TEXT = "ALTER TABLE recluster_documents ADD COLUMN IF NOT EXISTS text text"
# Added after the first release: tables created earlier get it on first use.
_ADD_STATS = (
    "ALTER TABLE recluster_baselines ADD COLUMN IF NOT EXISTS stats jsonb NOT NULL DEFAULT '{}'"
)


def _begin_read(conn: psycopg.Connection[Any], snapshot: str | None = None) -> None:
    """Start a read: one snapshot, and rows in physical order, the same on every read.

    Index scans would return rows in key order, synchronised scans start
    wherever a concurrent scan is, parallel plans interleave their workers'
    rows: each would change the order between two reads of an unchanged
    collection, or between a single-connection and a multi-connection read.
    """
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    if snapshot is not None:
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
    conn.execute("SET LOCAL synchronize_seqscans = off")
    conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
    conn.execute("SET LOCAL enable_indexscan = off")


def _has_column(conn: psycopg.Connection[Any], table: str, column: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s)"
        " AND attname = %s AND NOT attisdropped",
        (table, column),
    ).fetchone()
    return row is not None


@contextmanager
def _copy_into(
    conn: psycopg.Connection[Any], table: str, columns: Sequence[str], *, binary: bool = False
) -> Iterator[psycopg.Copy]:
    """COPY rows into `table`, inside the caller's transaction.

    PostgreSQL refuses COPY FROM into a table whose row-level security applies
    to the current role (a namespace's own role, docs/security.md): rows then
    go to a temporary table first, and one INSERT ... SELECT moves them, with
    the policies checking every row.
    """
    row = conn.execute("SELECT row_security_active(%s::regclass)", (table,)).fetchone()
    target = sql.Identifier(table)
    if row is not None and row[0]:
        target = sql.Identifier(f"{table}_staging")
        conn.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {}) ON COMMIT DROP").format(
                target, sql.Identifier(table)
            )
        )
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(target, names)
    if binary:
        statement += sql.SQL(" (FORMAT BINARY)")
    with conn.cursor().copy(statement) as copy:
        yield copy
    if target != sql.Identifier(table):
        conn.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                sql.Identifier(table), names, names, target
            )
        )
        conn.execute(sql.SQL("DROP TABLE {}").format(target))


def _guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn connection failures into `StoreUnavailable` with the (redacted) URI, and
    refusals into `StoreAccessDenied` (methods taking the namespace first)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except StoreError:
            raise
        except pg_errors.InsufficientPrivilege as exc:
            # row-level security or a missing grant: the partition between namespaces
            store = cast(PostgresStore, args[0])
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "permission denied"
            raise StoreAccessDenied(store.location, str(args[1]), reason) from exc
        except psycopg.OperationalError as exc:
            store = cast(PostgresStore, args[0])
            raise StoreUnavailable(store.location, str(exc)) from exc

    return wrapper


class PostgresStore(CollectionStore):
    """Collections and results in PostgreSQL tables (see the module docstring)."""

    def __init__(
        self,
        conninfo: str,
        *,
        connect_timeout: int = 10,
        embedding_type: EmbeddingType = "real[]",
        fetch_rows: int = DEFAULT_FETCH_ROWS,
        read_connections: int = 4,
        parallel_min_rows: int = 50_000,
    ) -> None:
        """`embedding_type` only matters when this store creates the documents table.

        `read_connections` bounds the connections one `read` uses (collections
        of at least `parallel_min_rows` rows); 1 reads on a single connection.
        """
        self._conninfo = conninfo
        self._connect_timeout = connect_timeout
        self._create_embedding_type = embedding_type
        self._fetch_rows = fetch_rows
        self._read_connections = max(1, read_connections)
        self._parallel_min_rows = parallel_min_rows
        self.location = redact(conninfo)
        self._ready_lock = threading.Lock()
        self._embedding_type: EmbeddingType | None = None
        self._stats_column = True

    # Connections and schema -----------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection with the tables in place, closed afterwards."""
        conn = psycopg.connect(
            self._conninfo,
            connect_timeout=self._connect_timeout,
            application_name="recluster",
            client_encoding="utf8",
            autocommit=True,  # transactions are explicit: conn.transaction()
        )
        try:
            if self._embedding_type is None:
                with self._ready_lock:
                    if self._embedding_type is None:
                        self._embedding_type = self._prepare(conn)
            yield conn
        finally:
            conn.close()

    def _prepare(self, conn: psycopg.Connection[Any]) -> EmbeddingType:
        """Create missing tables (serialised by an advisory lock) and detect the embedding type."""
        with conn.transaction():
            # Tables created by an administrator need no CREATE privilege here
            # (PostgreSQL 15 no longer grants it on `public` to everyone).
            present = conn.execute(
                "SELECT count(to_regclass(t)) FROM unnest(%s::text[]) AS t", (list(TABLES),)
            ).fetchone()
            if present is None or present[0] != len(TABLES):
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('recluster_store_ddl'))")
                exists = conn.execute("SELECT to_regclass('recluster_documents')").fetchone()
                missing = exists is None or exists[0] is None
                if missing and self._create_embedding_type != "real[]":
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                conn.execute(_DDL.format(embedding_type=self._create_embedding_type).encode())
            self._stats_column = self._add_stats_column(conn)
            row = conn.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = 'recluster_documents'::regclass AND attname = 'embedding'"
            ).fetchone()
        column_type = str(row[0]) if row else ""
        if column_type == "vector" or column_type.startswith("vector("):
            return "vector"
        if column_type == "halfvec" or column_type.startswith("halfvec("):
            return "halfvec"
        if column_type in ("real[]", "float4[]"):
            return "real[]"
        raise InvalidCollection(
            f"recluster_documents.embedding has type {column_type!r};"
            " expected real[], vector or halfvec"
        )

    def _add_stats_column(self, conn: psycopg.Connection[Any]) -> bool:
        """Give an older recluster_baselines its stats column; False if this role may not.

        Without the column (tables owned by an administrator who has not run
        the ALTER yet) baselines are written and read without drift statistics.
        """
        if _has_column(conn, "recluster_baselines", "stats"):
            return True
        try:
            with conn.transaction():  # a savepoint: a refused ALTER keeps the outer one usable
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('recluster_store_ddl'))")
                conn.execute(_ADD_STATS)
        except pg_errors.InsufficientPrivilege:
            return False
        return True

    def _stats_sql(self) -> sql.SQL:
        return sql.SQL("stats" if self._stats_column else "'{}'::jsonb")

    @property
    def embedding_type(self) -> EmbeddingType:
        """The documents table's embedding column type (connects once to find out)."""
        if self._embedding_type is None:
            with self._connect():
                pass
        assert self._embedding_type is not None  # set by _connect
        return self._embedding_type

    def _embedding_sql(self) -> sql.SQL:
        """The embedding column as real[], whatever its stored type."""
        if self._embedding_type == "real[]":
            return sql.SQL("embedding")
        return sql.SQL("embedding::real[]")

    def _send_sql(self) -> sql.SQL:
        """The embedding in its type's binary format (decoded by `pgcodec.decode`)."""
        return sql.SQL(f"{SEND_FUNCTION[self._embedding_type or 'real[]']}(embedding)")

    def _decode(self, rows: Sequence[Any], dim: int, out: Float32Matrix, where: str) -> None:
        """Decode the binary embeddings in the second column of ``rows`` into ``out``."""
        values = [row[1] for row in rows]
        if any(value is None for value in values):
            raise InvalidCollection(f"{where}: some documents have a NULL embedding")
        decode(self._embedding_type or "real[]", b"".join(values), len(rows), dim, out, where)

    # Collections -------------------------------------------------------------

    @_guarded
    def count(self, namespace: str, collection_id: str) -> int:
        check_id("namespace", namespace)
        check_id("collection id", collection_id)
        with self._connect() as conn:
            n = self._count(conn, namespace, collection_id)
        if n == 0:
            raise CollectionNotFound(namespace, collection_id, self.location)
        return n

    def _count(self, conn: psycopg.Connection[Any], namespace: str, collection_id: str) -> int:
        row = conn.execute(
            "SELECT count(*) FROM recluster_documents WHERE namespace = %s AND collection_id = %s",
            (namespace, collection_id),
        ).fetchone()
        return int(row[0]) if row else 0

    def _dim(self, conn: psycopg.Connection[Any], namespace: str, collection_id: str) -> int:
        query = sql.SQL(
            "SELECT cardinality({e}) FROM recluster_documents"
            " WHERE namespace = %s AND collection_id = %s AND embedding IS NOT NULL LIMIT 1"
        ).format(e=self._embedding_sql())
        row = conn.execute(query, (namespace, collection_id)).fetchone()
        if row is None:
            if self._count(conn, namespace, collection_id):
                raise InvalidCollection(
                    f"{describe(namespace, collection_id)}: every document has a NULL embedding"
                )
            raise CollectionNotFound(namespace, collection_id, self.location)
        return int(row[0])

    @_guarded
    def list_collections(self, namespace: str) -> list[str]:
        check_id("namespace", namespace)
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT DISTINCT collection_id FROM recluster_documents WHERE namespace = %s"
                " ORDER BY 1",
                (namespace,),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def _stream(
        self,
        conn: psycopg.Connection[Any],
        query: sql.Composed,
        params: Sequence[Any],
        dim: int,
        where: str,
    ) -> Iterator[tuple[list[str], Float32Matrix]]:
        """(ids, float32 block) from a query selecting (document_id, <send>(embedding))."""
        with conn.cursor(name="recluster_stream", binary=True) as cur:
            cur.itersize = self._fetch_rows
            cur.execute(query, params)
            while rows := cur.fetchmany(self._fetch_rows):
                block = np.empty((len(rows), dim), dtype=np.float32)
                self._decode(rows, dim, block, where)
                yield [r[0] for r in rows], block

    def _select_collection(self) -> sql.Composed:
        """All rows of a collection, in the table's physical order (see `_begin_read`).

        No ORDER BY: sorting a million 1.5 kB rows costs the server seconds and
        a spill to disk, for an order nobody needs.
        """
        return sql.SQL(
            "SELECT document_id, {e} FROM recluster_documents"
            " WHERE namespace = %s AND collection_id = %s"
        ).format(e=self._send_sql())

    @_guarded
    def read_many(self, namespace: str, collection_ids: Sequence[str]) -> Collection:
        """All rows, read by up to `read_connections` connections sharing one snapshot.

        Where pgvector is installed (a `vector` or `halfvec` column, or a
        `real[]` one cast to `vector`), collections of at least
        `parallel_min_rows` rows are read a range of heap pages per query,
        aggregated on the server (`pg_aggregated`). Otherwise the server's
        cost of sending a real[] is per float, so one connection is bound by
        one server core: each collection is cut into ranges of heap pages
        holding about the same number of rows; workers read their range
        (`ctid` bounds) in the snapshot exported by this transaction and
        decode it into their slice of the matrix. Either way ranges follow
        the physical order, so the result is the same as a single scan's.
        """
        check_id("namespace", namespace)
        cids = [check_id("collection id", c) for c in collection_ids]
        if not cids:
            raise ValueError("read_many needs at least one collection id")
        with self._connect() as conn, conn.transaction():
            _begin_read(conn)
            counts = [self._count(conn, namespace, cid) for cid in cids]
            for cid, n in zip(cids, counts, strict=True):
                if n == 0:
                    raise CollectionNotFound(namespace, cid, self.location)
            dim = single_dim(namespace, cids, {self._dim(conn, namespace, cid) for cid in cids})
            total = sum(counts)
            matrix = new_matrix(total, dim)
            send = self._vector_send_sql(conn)
            if total >= self._parallel_min_rows and send is not None:
                kind: EmbeddingType = "halfvec" if self._embedding_type == "halfvec" else "vector"
                exported = (
                    conn.execute("SELECT pg_export_snapshot()").fetchone()
                    if self._read_connections > 1
                    else None
                )
                snapshot = str(exported[0]) if exported else None

                @contextmanager
                def in_snapshot() -> Iterator[psycopg.Connection[Any]]:
                    with self._connect() as worker, worker.transaction():
                        _begin_read(worker, snapshot)
                        yield worker

                read = read_aggregated(
                    conn,
                    in_snapshot,
                    namespace,
                    list(zip(cids, counts, strict=True)),
                    send,
                    kind,
                    matrix,
                    self._read_connections,
                )
                return self._collection(read, matrix, cids, counts)
            # (collection, first page, end page or None, first row in the matrix, rows)
            tasks: list[tuple[str, int, int | None, int, int]] = []
            row = 0
            workers = self._read_connections if total >= self._parallel_min_rows else 1
            for cid, n in zip(cids, counts, strict=True):
                for first, end, rows in self._page_ranges(conn, namespace, cid, n, workers):
                    tasks.append((cid, first, end, row, rows))
                    row += rows
            ids: list[list[str]] = [[] for _ in tasks]
            if len(tasks) == len(cids):  # one range per collection: this connection
                for i, task in enumerate(tasks):
                    ids[i] = self._read_range(conn, namespace, task, dim, matrix)
            else:
                snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()

                def work(i: int) -> None:
                    with self._connect() as worker, worker.transaction():
                        _begin_read(worker, str(snapshot[0]) if snapshot else None)
                        ids[i] = self._read_range(worker, namespace, tasks[i], dim, matrix)

                with ThreadPoolExecutor(min(workers, len(tasks))) as pool:
                    for _ in pool.map(work, range(len(tasks))):
                        pass
        return self._collection(ids, matrix, cids, counts)

    @staticmethod
    def _collection(
        ids: list[list[str]], matrix: Float32Matrix, cids: list[str], counts: list[int]
    ) -> Collection:
        document_ids = [d for chunk in ids for d in chunk]
        offsets = [0, *itertools.accumulate(counts)]
        return Collection(document_ids, matrix, tuple(cids), tuple(offsets))

    def _vector_send_sql(self, conn: psycopg.Connection[Any]) -> sql.SQL | None:
        """The embedding in pgvector's binary format, when pgvector is there; else None.

        A real[] column is cast to vector on the server: the cast reads the
        array's floats in one loop, where sending the array calls the float
        type's send function once per element (measured, 1M × 384: 5.7 s
        through the cast against 15 s as arrays).
        """
        if self._embedding_type in ("vector", "halfvec"):
            return self._send_sql()
        row = conn.execute("SELECT to_regtype('vector') IS NOT NULL").fetchone()
        return sql.SQL("vector_send(embedding::vector)") if row and row[0] else None

    def _page_ranges(
        self, conn: psycopg.Connection[Any], namespace: str, collection_id: str, n: int, k: int
    ) -> list[tuple[int, int | None, int]]:
        """Up to k ranges of heap pages [first, end) with about n/k rows of the collection each."""
        if k <= 1:
            return [(0, None, n)]
        pages = conn.execute(
            "SELECT (ctid::text::point)[0]::bigint AS page, count(*) FROM recluster_documents"
            " WHERE namespace = %s AND collection_id = %s GROUP BY 1 ORDER BY 1",
            (namespace, collection_id),
        ).fetchall()
        ranges: list[tuple[int, int | None, int]] = []
        first = held = seen = 0
        for page, rows in pages:
            # Cut before this page once the rows so far reach the next k-th of the total.
            if held and len(ranges) < k - 1 and seen >= n * (len(ranges) + 1) / k:
                ranges.append((first, int(page), held))
                first, held = int(page), 0
            held += int(rows)
            seen += int(rows)
        ranges.append((first, None, held))
        return ranges

    def _read_range(
        self,
        conn: psycopg.Connection[Any],
        namespace: str,
        task: tuple[str, int, int | None, int, int],
        dim: int,
        matrix: Float32Matrix,
    ) -> list[str]:
        """Decode one page range of a collection into matrix[start:start+rows]; its ids."""
        cid, first, end, start, rows = task
        where = describe(namespace, cid)
        query = self._select_collection()
        params: list[Any] = [namespace, cid]
        if first or end is not None:
            query = query + sql.SQL(" AND ctid >= %s::tid")
            params.append(f"({first},0)")
            if end is not None:
                query = query + sql.SQL(" AND ctid < %s::tid")
                params.append(f"({end},0)")
        ids: list[str] = []
        with conn.cursor(name="recluster_read", binary=True) as cur:
            cur.itersize = self._fetch_rows
            cur.execute(query, params)
            while fetched := cur.fetchmany(self._fetch_rows):
                at = start + len(ids)
                if len(ids) + len(fetched) > rows:
                    raise InvalidCollection(f"{where}: rows changed while reading")
                self._decode(fetched, dim, matrix[at : at + len(fetched)], where)
                ids.extend(r[0] for r in fetched)
        if len(ids) != rows:
            raise InvalidCollection(f"{where}: rows changed while reading")
        return ids

    @_guarded
    def sample(self, namespace: str, collection_id: str, n: int, seed: int) -> Collection:
        """A uniform sample: the n rows with the smallest seeded hash of their document id.

        The ids come from the primary-key index (an index-only scan once the
        table is vacuumed); only the n sampled embeddings are read.
        """
        check_id("namespace", namespace)
        check_id("collection id", collection_id)
        check_sample_size(n)
        query = sql.SQL(
            "SELECT document_id, {e} FROM recluster_documents"
            " WHERE namespace = %s AND collection_id = %s AND document_id IN ("
            "   SELECT document_id FROM recluster_documents"
            "   WHERE namespace = %s AND collection_id = %s"
            "   ORDER BY hashtextextended(document_id, %s), document_id LIMIT %s)"
            " ORDER BY document_id"
        ).format(e=self._send_sql())
        with self._connect() as conn, conn.transaction():
            _begin_read(conn)
            dim = self._dim(conn, namespace, collection_id)
            if n == 0:
                return empty_collection(dim, collection_id)
            params = (namespace, collection_id, namespace, collection_id, seed, n)
            where = describe(namespace, collection_id)
            ids: list[str] = []
            blocks: list[Float32Matrix] = []
            for block_ids, block in self._stream(conn, query, params, dim, where):
                ids.extend(block_ids)
                blocks.append(block)
        matrix = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        return Collection(ids, matrix, (collection_id,), (0, len(ids)))

    def iter_blocks(
        self, namespace: str, collection_id: str, rows_per_block: int
    ) -> Iterator[Collection]:
        check_id("namespace", namespace)
        check_id("collection id", collection_id)
        check_block_size(rows_per_block)
        return self._iter_blocks(namespace, collection_id, rows_per_block)

    def _iter_blocks(
        self, namespace: str, collection_id: str, rows_per_block: int
    ) -> Iterator[Collection]:
        try:
            with self._connect() as conn, conn.transaction():
                _begin_read(conn)
                dim = self._dim(conn, namespace, collection_id)
                where = describe(namespace, collection_id)
                pieces = self._stream(
                    conn, self._select_collection(), (namespace, collection_id), dim, where
                )
                yield from reblock(pieces, rows_per_block, collection_id)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(self.location, str(exc)) from exc

    @_guarded
    def append(
        self,
        namespace: str,
        collection_id: str,
        document_ids: Sequence[str],
        embeddings: ArrayLike,
        texts: Sequence[str] | None = None,
    ) -> None:
        ids, matrix = check_append(namespace, collection_id, document_ids, embeddings, texts)
        rows, dim = matrix.shape
        with self._connect() as conn:
            if texts is not None and not _has_column(conn, "recluster_documents", "text"):
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext('recluster_store_ddl'))")
                    conn.execute(_ADD_TEXT)
            try:
                with conn.transaction():
                    if self._count(conn, namespace, collection_id):
                        existing = self._dim(conn, namespace, collection_id)
                        if existing != dim:
                            raise ValueError(
                                f"collection {collection_id!r} has {existing}-dimensional"
                                f" embeddings; cannot append {dim}-dimensional ones"
                            )
                    self._copy_documents(conn, namespace, collection_id, ids, matrix)
                    if texts is not None:
                        conn.execute(
                            "UPDATE recluster_documents d SET text = t.text"
                            " FROM unnest(%s::text[], %s::text[]) AS t(document_id, text)"
                            " WHERE d.namespace = %s AND d.collection_id = %s"
                            " AND d.document_id = t.document_id",
                            (ids, list(texts), namespace, collection_id),
                        )
            except pg_errors.UniqueViolation:
                raise ValueError(
                    f"some of the {rows} document ids already exist in collection"
                    f" {collection_id!r} of namespace {namespace!r}"
                ) from None

    def _copy_documents(
        self,
        conn: psycopg.Connection[Any],
        namespace: str,
        collection_id: str,
        ids: list[str],
        matrix: Float32Matrix,
    ) -> None:
        """Binary COPY into the table; embeddings encoded by numpy in the column's type."""
        kind = self._embedding_type or "real[]"
        field_size = 4 + record_dtype(kind, matrix.shape[1]).itemsize
        ns, cid = namespace.encode(), collection_id.encode()
        prefix = struct.pack(">hi", 4, len(ns)) + ns + struct.pack(">i", len(cid)) + cid
        batch = 5_000
        columns = ("namespace", "collection_id", "document_id", "embedding")
        with _copy_into(conn, "recluster_documents", columns, binary=True) as copy:
            copy.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
            for start in range(0, matrix.shape[0], batch):
                encoded = encode(kind, matrix[start : start + batch])
                copy.write(copy_rows(prefix, ids[start : start + batch], encoded, field_size))
            copy.write(struct.pack(">h", -1))

    @_guarded
    def read_texts(
        self, namespace: str, collection_id: str, document_ids: Sequence[str]
    ) -> dict[str, str] | None:
        check_id("namespace", namespace)
        check_id("collection id", collection_id)
        with self._connect() as conn:
            if not _has_column(conn, "recluster_documents", "text"):
                return None
            rows = conn.execute(
                "SELECT document_id, text FROM recluster_documents WHERE namespace = %s"
                " AND collection_id = %s AND document_id = ANY(%s) AND text IS NOT NULL",
                (namespace, collection_id, list(document_ids)),
            ).fetchall()
        return {str(doc): str(text) for doc, text in rows}

    # Results -------------------------------------------------------------------

    def _fail_point(self, step: str) -> None:
        """No-op; tests replace it to interrupt a run write at a given step."""

    @_guarded
    def write_run(self, namespace: str, run: RunResults) -> None:
        check_id("namespace", namespace)
        collection_set = collection_set_key(run.collection_ids)
        where = run.collection_of_rows()
        with self._connect() as conn:
            try:
                with conn.transaction():
                    exists = conn.execute(
                        "SELECT 1 FROM recluster_runs WHERE namespace = %s AND run_id = %s",
                        (namespace, run.run_id),
                    ).fetchone()
                    if exists:
                        raise RunExists(namespace, run.run_id, self.location)
                    cur = conn.cursor()
                    columns = (
                        "namespace", "run_id", "position", "collection_id", "document_id", "label"
                    )  # fmt: skip
                    with _copy_into(conn, "recluster_assignments", columns) as copy:
                        sources = run.collection_ids
                        for position, (doc, source, label) in enumerate(
                            zip(run.document_ids, where.tolist(), run.labels.tolist(), strict=True)
                        ):
                            copy.write_row(
                                (namespace, run.run_id, position, sources[source], doc, label)
                            )
                    self._fail_point("assignments")
                    cur.executemany(
                        "INSERT INTO recluster_clusters (namespace, run_id, cluster_id, size,"
                        " centroid) VALUES (%s, %s, %s, %s, %s)",
                        [
                            (namespace, run.run_id, k, int(size), centroid)
                            for k, (size, centroid) in enumerate(
                                zip(run.cluster_sizes.tolist(), run.centroids.tolist(), strict=True)
                            )
                        ],
                    )
                    if run.baseline is not None:
                        self._insert_baseline(conn, namespace, run.baseline)
                    if run.artifacts:
                        cur.executemany(
                            "INSERT INTO recluster_artifacts (namespace, run_id, name, content)"
                            " VALUES (%s, %s, %s, %s)",
                            [
                                (namespace, run.run_id, name, content)
                                for name, content in sorted(run.artifacts.items())
                            ],
                        )
                    self._fail_point("files")
                    # Last, so that committed_at (clock_timestamp()) is as close
                    # to the commit as it can be, and only INSERT is needed.
                    conn.execute(
                        "INSERT INTO recluster_runs (namespace, run_id, collection_set,"
                        " collection_ids, num_documents, num_clusters, dim, summary, created_at)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (
                            namespace,
                            run.run_id,
                            collection_set,
                            list(run.collection_ids),
                            len(run.document_ids),
                            run.num_clusters,
                            int(run.centroids.shape[1]),
                            Jsonb(run.summary),
                            run.created_at,
                        ),
                    )
                    self._fail_point("index")
            except pg_errors.UniqueViolation as exc:
                # A concurrent writer of the same run id committed first.
                if exc.diag.constraint_name in (
                    "recluster_runs_pkey",
                    "recluster_assignments_pkey",
                    "recluster_clusters_pkey",
                    "recluster_artifacts_pkey",
                ):
                    raise RunExists(namespace, run.run_id, self.location) from None
                raise

    def _insert_baseline(
        self, conn: psycopg.Connection[Any], namespace: str, baseline: Baseline
    ) -> None:
        values: tuple[Any, ...] = (
            namespace,
            collection_set_key(baseline.collection_ids),
            list(baseline.collection_ids),
            baseline.run_id,
            baseline.created_at,
            baseline.document_count,
            baseline.mean.tolist(),
            baseline.centroids.tolist(),
        )
        if self._stats_column:
            conn.execute(
                "INSERT INTO recluster_baselines (namespace, collection_set, collection_ids,"
                " run_id, created_at, document_count, mean, centroids, stats)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s::real[], %s::real[], %s)",
                (*values, Jsonb(baseline.stats)),
            )
        else:
            conn.execute(
                "INSERT INTO recluster_baselines (namespace, collection_set, collection_ids,"
                " run_id, created_at, document_count, mean, centroids)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s::real[], %s::real[])",
                values,
            )

    @_guarded
    def read_run(self, namespace: str, run_id: str) -> RunResults:
        check_id("namespace", namespace)
        check_id("run id", run_id)
        with self._connect() as conn, conn.transaction():
            _begin_read(conn)
            run = conn.execute(
                "SELECT collection_ids, dim, summary, created_at FROM recluster_runs"
                " WHERE namespace = %s AND run_id = %s",
                (namespace, run_id),
            ).fetchone()
            if run is None:
                raise RunNotFound(namespace, run_id, self.location)
            collection_ids, dim, summary, created_at = run
            cur = conn.cursor(binary=True)
            cur.execute(
                "SELECT collection_id, document_id, label FROM recluster_assignments"
                " WHERE namespace = %s AND run_id = %s ORDER BY position",
                (namespace, run_id),
            )
            rows = cur.fetchall()
            clusters = conn.execute(
                "SELECT size, centroid FROM recluster_clusters"
                " WHERE namespace = %s AND run_id = %s ORDER BY cluster_id",
                (namespace, run_id),
            ).fetchall()
            baseline_row = conn.execute(
                sql.SQL(
                    "SELECT collection_ids, run_id, created_at, document_count, mean, centroids,"
                    " {stats} FROM recluster_baselines WHERE namespace = %s"
                    " AND collection_set = %s AND run_id = %s ORDER BY created_at DESC LIMIT 1"
                ).format(stats=self._stats_sql()),
                (namespace, collection_set_key(collection_ids), run_id),
            ).fetchone()
        centroids = np.array([c[1] for c in clusters], dtype=np.float32).reshape(-1, dim)
        return RunResults(
            run_id=run_id,
            collection_ids=tuple(collection_ids),
            document_ids=[r[1] for r in rows],
            labels=np.fromiter((r[2] for r in rows), dtype=np.int32, count=len(rows)),
            cluster_sizes=np.array([c[0] for c in clusters], dtype=np.int64),
            centroids=centroids,
            summary=summary,
            baseline=_baseline_of_row(baseline_row) if baseline_row else None,
            offsets=run_offsets(collection_ids, (r[0] for r in rows)),
            created_at=created_at,
        )

    @_guarded
    def list_artifacts(self, namespace: str, run_id: str) -> dict[str, int]:
        check_id("namespace", namespace)
        check_id("run id", run_id)
        with self._connect() as conn, conn.transaction():
            _begin_read(conn)
            if not conn.execute(
                "SELECT 1 FROM recluster_runs WHERE namespace = %s AND run_id = %s",
                (namespace, run_id),
            ).fetchone():
                raise RunNotFound(namespace, run_id, self.location)
            rows = conn.execute(
                "SELECT name, octet_length(content) FROM recluster_artifacts"
                " WHERE namespace = %s AND run_id = %s ORDER BY name",
                (namespace, run_id),
            ).fetchall()
        return {str(name): int(size) for name, size in rows}

    @_guarded
    def read_artifact(self, namespace: str, run_id: str, name: str) -> bytes:
        check_id("namespace", namespace)
        check_id("run id", run_id)
        check_artifact_name(name)
        with self._connect() as conn:
            # Only committed runs have artifacts: both are written in one transaction.
            row = conn.execute(
                "SELECT content FROM recluster_artifacts WHERE namespace = %s AND run_id = %s"
                " AND name = %s",
                (namespace, run_id, name),
            ).fetchone()
        if row is None:
            raise ArtifactNotFound(namespace, run_id, name, self.location)
        return bytes(row[0])

    @_guarded
    def latest_run(self, namespace: str, collection_ids: Sequence[str]) -> str | None:
        check_id("namespace", namespace)
        with self._connect() as conn:
            row = conn.execute(
                "SELECT run_id FROM recluster_runs WHERE namespace = %s AND collection_set = %s"
                " ORDER BY committed_at DESC, run_id DESC LIMIT 1",
                (namespace, collection_set_key(collection_ids)),
            ).fetchone()
        return str(row[0]) if row else None

    @_guarded
    def write_baseline(self, namespace: str, baseline: Baseline) -> None:
        check_id("namespace", namespace)
        with self._connect() as conn, conn.transaction():
            self._insert_baseline(conn, namespace, baseline)

    @_guarded
    def read_baseline(self, namespace: str, collection_ids: Sequence[str]) -> Baseline | None:
        check_id("namespace", namespace)
        with self._connect() as conn:
            row = conn.execute(
                sql.SQL(
                    "SELECT collection_ids, run_id, created_at, document_count, mean, centroids,"
                    " {stats} FROM recluster_baselines WHERE namespace = %s"
                    " AND collection_set = %s ORDER BY created_at DESC, run_id DESC LIMIT 1"
                ).format(stats=self._stats_sql()),
                (namespace, collection_set_key(collection_ids)),
            ).fetchone()
        return _baseline_of_row(row) if row else None

    # Tenancy ----------------------------------------------------------------------

    @_guarded
    def grant_namespace(
        self, namespace: str, role: str, *, password: str | None = None
    ) -> list[str]:
        """Give `namespace` its own role under row-level security (`tenancy`), as this
        store's role: the tables' owner (it creates them when missing) with CREATEROLE,
        or a superuser.

        Returns the statements run, without the password.
        """
        with self._connect() as conn, conn.transaction():
            row = conn.execute("SELECT current_database(), current_schema()").fetchone()
            assert row is not None
            database, schema = str(row[0]), str(row[1])
            for statement in postgres_namespace_sql(
                namespace, role, database=database, schema=schema, password=password
            ):
                conn.execute(statement.encode())
        return postgres_namespace_sql(namespace, role, database=database, schema=schema)


def _baseline_of_row(row: Any) -> Baseline:
    collection_ids, run_id, created_at, document_count, mean, centroids, stats = row
    mean_array = np.array(mean, dtype=np.float32)
    return Baseline(
        run_id=run_id,
        collection_ids=tuple(collection_ids),
        centroids=np.array(centroids, dtype=np.float32).reshape(-1, mean_array.shape[0]),
        mean=mean_array,
        document_count=int(document_count),
        created_at=cast(datetime, created_at),
        stats=stats or {},
    )
