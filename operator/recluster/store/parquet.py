"""Parquet datasets on a local directory or any fsspec filesystem (S3 through s3fs).

Layout (documented for users in docs/store.md); a store opened with
`namespace=` (a Job's mount of its own namespace's directory) has its root at
`<root>/<namespace>`::

    <root>/<namespace>/collections/<collection_id>/part-<UTC time>-<random>.parquet
        document_id  string, required
        embedding    fixed_size_list<float32>[D], required
        text         string, optional (keywords and representatives of the artifacts)
    <root>/<namespace>/runs/<run_id>/assignments.parquet  collection_id, document_id, label int32
        (a distributed run writes a directory of that name, shards part-00000.parquet, ...)
    <root>/<namespace>/runs/<run_id>/clusters.parquet     cluster_id int32, size int64,
                                                          centroid fixed_size_list<float32>[D]
    <root>/<namespace>/runs/<run_id>/baseline.parquet     (one row, see `_baseline_table`)
    <root>/<namespace>/runs/<run_id>/summary.json
    <root>/<namespace>/runs/<run_id>/artifacts/<name>     centroids.parquet, report.html, ...
    <root>/<namespace>/runs/<run_id>/_SUCCESS             manifest, written last = the commit
    <root>/<namespace>/run-index/<set>/<UTC time>--<run_id>.json
    <root>/<namespace>/baselines/<set>/<UTC time>--<run_id>.parquet

`<set>` is the first 32 hex digits of sha256 of the sorted, comma-joined
collection ids of a run. Part files are immutable: appending adds a file.

Why reading is fast and frugal: the matrix for the whole read is allocated
once (row counts come from the footers) and each row group is read straight
into its rows, several row groups at a time on a thread pool. Embeddings this
store wrote (PLAIN, uncompressed) are read page by page into the matrix
without Arrow's list decoding (`_plain_pages`; on object stores each column
chunk is one ranged read); other files are decoded by pyarrow and copied
once. Peak memory is the matrix plus a few row groups.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar, cast

import fsspec  # type: ignore[import-untyped]
import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.fs as pafs  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]
from numpy.typing import ArrayLike, NDArray

from ._common import (
    check_append,
    check_block_size,
    check_sample_size,
    empty_collection,
    reblock,
    run_offsets,
    single_dim,
)
from ._plain_pages import BufferedChunk, LocalChunk, read_plain_floats
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
from .planning import read_plan, sample_plan
from .types import (
    Baseline,
    Collection,
    Float32Matrix,
    RunResults,
    check_artifact_name,
    check_id,
    collection_set_key,
)

ID_COLUMN = "document_id"
EMBEDDING_COLUMN = "embedding"
TEXT_COLUMN = "text"
SUCCESS = "_SUCCESS"
ASSIGNMENTS = "assignments.parquet"
"""A file; a directory of `part-<5 digits>.parquet` shards, in row order, when a distributed
run (runtime ray, store/shards.py) wrote it: readers take either."""
# ~48 MB row groups at D=384: big enough for sequential throughput, small
# enough that a sample reads little and a few row groups in flight stay cheap.
DEFAULT_ROWS_PER_ROW_GROUP = 8_192
"""Small enough that a sample can touch many row groups (see `sample`), large enough
that reading whole collections stays at memory speed."""
_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"
OBJECT_STORE_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "az"})
"""fsspec filesystems of keys, not directories: nothing to create before a write."""

P = ParamSpec("P")
R = TypeVar("R")


def _unavailable_reason(exc: BaseException) -> str | None:
    """Reason text if `exc` means the store is unreachable or refused us, else None."""
    if isinstance(exc, StoreError | ValueError | TypeError | KeyError):
        return None
    module = type(exc).__module__ or ""
    if isinstance(exc, OSError) or module.startswith(("botocore", "aiobotocore", "aiohttp")):
        return f"{type(exc).__name__}: {exc}"
    return None


def _guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn refusals into `StoreAccessDenied` and I/O and network failures into
    `StoreUnavailable`, with the store's location (methods taking the namespace first)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            error = _store_error(exc, cast(ParquetStore, args[0]), str(args[1]))
            if error is exc:
                raise
            raise error from exc

    return wrapper


def _store_error(exc: Exception, store: ParquetStore, namespace: str) -> Exception:
    """What a failed operation on `namespace`'s data raises: refused, unreachable, or as is.

    A refusal (the object store's AccessDenied, a directory's permissions) is the
    partition between namespaces at work: it names the namespace, on one line.
    """
    if isinstance(exc, PermissionError) and not isinstance(exc, StoreError):
        return StoreAccessDenied(store.location, namespace, f"{type(exc).__name__}: {exc}")
    reason = _unavailable_reason(exc)
    if reason is None:
        return exc
    return StoreUnavailable(store.location, reason)


@dataclass(frozen=True)
class _Part:
    """One part file of a collection, with its footer (parts are immutable)."""

    path: str
    metadata: Any  # pq.FileMetaData
    dim: int
    kind: str  # "fixed_size_list" | "list" | "binary"
    # (column index, max repetition level, max definition level, bytes per value)
    # of the embedding's leaf column when its values can be PLAIN float32 runs.
    leaf: tuple[int, int, int, int] | None = None

    @property
    def row_group_rows(self) -> list[int]:
        md = self.metadata
        return [int(md.row_group(i).num_rows) for i in range(md.num_row_groups)]

    @property
    def row_groups(self) -> range:
        return range(self.metadata.num_row_groups)


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime(_TIME_FORMAT)


def _set_dir_name(collection_ids: Sequence[str]) -> str:
    return hashlib.sha256(collection_set_key(collection_ids).encode()).hexdigest()[:32]


def _float_type(t: Any) -> bool:
    return bool(pa.types.is_floating(t))


def _embedding_kind(schema: Any, path: str) -> tuple[str, int | None]:
    """How a part stores embeddings, and D when the type fixes it."""
    index = schema.get_field_index(EMBEDDING_COLUMN)
    if index < 0 or schema.get_field_index(ID_COLUMN) < 0:
        raise InvalidCollection(
            f"{path}: expected columns {ID_COLUMN!r} and {EMBEDDING_COLUMN!r}, found {schema.names}"
        )
    field = schema.field(index)
    t = field.type
    if pa.types.is_fixed_size_list(t) and _float_type(t.value_type):
        return "fixed_size_list", int(t.list_size)
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and _float_type(t.value_type):
        return "list", None
    meta = field.metadata or {}
    if pa.types.is_fixed_size_binary(t) and meta.get(b"recluster.dtype") == b"float32":
        return "binary", int(t.byte_width) // 4
    raise InvalidCollection(
        f"{path}: column {EMBEDDING_COLUMN!r} has type {t}; expected fixed_size_list<float32>[D]"
    )


def _leaf(metadata: Any, kind: str, dim: int) -> tuple[int, int, int, int] | None:
    """The embedding's leaf column, if its PLAIN values are the float32 matrix's bytes."""
    if kind not in ("fixed_size_list", "binary"):
        return None
    schema = metadata.schema
    leaves = [
        j for j in range(len(schema)) if schema.column(j).path.split(".")[0] == EMBEDDING_COLUMN
    ]
    if len(leaves) != 1:
        return None
    column = schema.column(leaves[0])
    if kind == "fixed_size_list" and column.physical_type == "FLOAT":
        value_size = 4
    elif kind == "binary" and column.physical_type == "FIXED_LEN_BYTE_ARRAY":
        value_size = 4 * dim
    else:
        return None
    return leaves[0], column.max_repetition_level, column.max_definition_level, value_size


def _embedding_view(chunk: Any, dim: int, where: str) -> Float32Matrix:
    """(rows, D) float32 view of one Arrow chunk of embeddings; copies only non-float32 data."""
    if chunk.null_count:
        raise InvalidCollection(f"{where}: {chunk.null_count} null embeddings")
    n = len(chunk)
    if pa.types.is_fixed_size_binary(chunk.type):
        buf = chunk.buffers()[1]
        flat = np.frombuffer(buf, dtype=np.float32, count=n * dim, offset=chunk.offset * dim * 4)
        return flat.reshape(n, dim)
    if pa.types.is_list(chunk.type) or pa.types.is_large_list(chunk.type):
        offsets = chunk.offsets.to_numpy()
        if n and not (np.diff(offsets) == dim).all():
            raise InvalidCollection(f"{where}: embeddings of different lengths (expected {dim})")
    values = chunk.flatten()  # honours slicing offsets; zero-copy without nulls
    if values.null_count:
        raise InvalidCollection(f"{where}: null values inside embeddings")
    if values.type == pa.float32():
        flat = values.to_numpy(zero_copy_only=True)
    else:
        flat = values.to_numpy(zero_copy_only=False).astype(np.float32)
    return cast(Float32Matrix, flat.reshape(n, dim))


def _ids_of(column: Any, where: str) -> list[str]:
    if column.null_count:
        raise InvalidCollection(f"{where}: {column.null_count} null document ids")
    return cast(list[str], column.to_pylist())


class _FSSpecHandler(pafs.FSSpecHandler):  # type: ignore[misc]
    """pyarrow's handler of fsspec filesystems, but a refused read is reported as one.

    pyarrow's asks `isfile`, which answers False on any error: an object store's
    AccessDenied (another namespace's prefix) would read as "not found".
    """

    def _checked(self, path: str) -> Any:
        from pyarrow import PythonFile

        if self.fs.info(path).get("type") != "file":  # FileNotFoundError, PermissionError
            raise FileNotFoundError(path)
        return PythonFile(self.fs.open(path, mode="rb"), mode="r")

    def open_input_file(self, path: str) -> Any:
        return self._checked(path)

    def open_input_stream(self, path: str) -> Any:
        return self._checked(path)


class ParquetStore(CollectionStore):
    """Collections and results as Parquet files under one root directory or prefix."""

    def __init__(
        self,
        root: str,
        filesystem: Any = None,
        *,
        location: str | None = None,
        rows_per_row_group: int = DEFAULT_ROWS_PER_ROW_GROUP,
        read_threads: int | None = None,
        direct_reads: bool = True,
        namespace: str | None = None,
    ) -> None:
        """`direct_reads=False` always decodes through pyarrow (for comparisons and tests).

        `namespace`: the root is that one namespace's directory (what a Job
        mounts with `subPathExpr: $(RECLUSTER_NAMESPACE)`), so paths have no
        namespace component and every other namespace is refused.
        """
        self._namespace = None if namespace is None else check_id("namespace", namespace)
        if filesystem is None or isinstance(filesystem, LocalFileSystem):
            filesystem = filesystem or LocalFileSystem()
            root = os.path.abspath(os.path.expanduser(root))
            self._local = True
            self._pafs = pafs.LocalFileSystem()
            default_threads = min(4, os.cpu_count() or 1)
        else:
            self._local = False
            self._pafs = pafs.PyFileSystem(_FSSpecHandler(filesystem))
            default_threads = 8  # object stores: latency-bound, not CPU-bound
        self._fs = filesystem
        self._root = root.rstrip("/")
        protocol = filesystem.protocol
        protocol = protocol[0] if isinstance(protocol, tuple | list) else protocol
        self._protocol = str(protocol)
        self.location = location or (self._root if self._local else f"{protocol}://{self._root}")
        self._rows_per_row_group = rows_per_row_group
        self._threads = read_threads or default_threads
        self._footers: dict[tuple[str, int], _Part] = {}
        self._footers_lock = threading.Lock()
        self._direct = direct_reads

    # Paths ----------------------------------------------------------------

    def _ns(self, namespace: str) -> str:
        check_id("namespace", namespace)
        if self._namespace is None:
            return f"{self._root}/{namespace}"
        if namespace != self._namespace:
            raise StoreAccessDenied(
                self.location, namespace, f"this mount holds namespace {self._namespace!r} only"
            )
        return self._root

    def _collection_dir(self, namespace: str, collection_id: str) -> str:
        return f"{self._ns(namespace)}/collections/{check_id('collection id', collection_id)}"

    def _run_dir(self, namespace: str, run_id: str) -> str:
        return f"{self._ns(namespace)}/runs/{check_id('run id', run_id)}"

    # Low-level I/O --------------------------------------------------------

    def _listdir(self, path: str) -> list[dict[str, Any]]:
        """Entries of a directory; FileNotFoundError if it does not exist."""
        if not self._local:
            # Other processes (the Job, the user) write here: never trust a cached listing.
            self._fs.invalidate_cache(path)
        return cast(list[dict[str, Any]], self._fs.ls(path, detail=True))

    def _exists(self, path: str) -> bool:
        if not self._local:
            self._fs.invalidate_cache(path)
        return bool(self._fs.exists(path))

    def _makedirs(self, directory: str) -> None:
        """Create a directory, but on object stores, which have none: there `makedirs`
        makes the bucket, and a namespace's credential may neither check nor create it."""
        if self._protocol not in OBJECT_STORE_PROTOCOLS:
            self._fs.makedirs(directory, exist_ok=True)

    def _sync(self, path: str) -> None:
        """Flush a local file to disk, so a commit marker never outlives the data it commits."""
        if self._local:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _write_table(self, table: Any, path: str, *, atomic: bool, **options: Any) -> None:
        """Write a Parquet file; `atomic` publishes it whole or not at all.

        Locally via a hidden temporary name and rename; on object stores a PUT
        (or completed multipart upload) is already all-or-nothing.
        """
        directory = path.rsplit("/", 1)[0]
        self._makedirs(directory)
        if atomic and self._local:
            tmp = f"{directory}/.tmp-{uuid.uuid4().hex}.parquet"
            try:
                pq.write_table(table, tmp, filesystem=self._pafs, **options)
                self._sync(tmp)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            pq.write_table(table, path, filesystem=self._pafs, **options)
            self._sync(path)

    def _write_bytes(self, data: bytes, path: str, *, atomic: bool) -> None:
        directory = path.rsplit("/", 1)[0]
        self._makedirs(directory)
        if atomic and self._local:
            tmp = f"{directory}/.tmp-{uuid.uuid4().hex}"
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            self._fs.pipe_file(path, data)
            self._sync(path)

    def _read_bytes(self, path: str) -> bytes:
        return cast(bytes, self._fs.cat_file(path))

    # Collections: planning ------------------------------------------------

    def _parts(self, namespace: str, collection_id: str) -> list[_Part]:
        """Part files of a collection in append order, with their footers."""
        directory = self._collection_dir(namespace, collection_id)
        try:
            entries = self._listdir(directory)
        except FileNotFoundError:
            raise CollectionNotFound(namespace, collection_id, self.location) from None
        files = sorted(
            (str(e["name"]), int(e.get("size") or 0))
            for e in entries
            if e.get("type") == "file"
            and str(e["name"]).rsplit("/", 1)[-1].startswith("part-")
            and str(e["name"]).endswith(".parquet")
        )
        if not files and not self._local:
            raise CollectionNotFound(namespace, collection_id, self.location)
        missing = [f for f in files if f not in self._footers]
        if missing:
            with ThreadPoolExecutor(min(self._threads, len(missing))) as pool:
                for key, part in zip(missing, pool.map(self._load_footer, missing), strict=True):
                    with self._footers_lock:
                        self._footers[key] = part
        parts = [self._footers[f] for f in files]
        dims = {p.dim for p in parts if p.metadata.num_rows}
        if len(dims) > 1:
            raise InvalidCollection(
                f"collection {collection_id!r} in namespace {namespace!r} mixes"
                f" embedding dimensions {sorted(dims)}"
            )
        return parts

    def _load_footer(self, key: tuple[str, int]) -> _Part:
        path = key[0]
        metadata = pq.read_metadata(path, filesystem=self._pafs)
        kind, dim = _embedding_kind(metadata.schema.to_arrow_schema(), path)
        if dim is None:
            dim = self._first_list_length(path, metadata)
        return _Part(path, metadata, dim, kind, _leaf(metadata, kind, dim))

    def _first_list_length(self, path: str, metadata: Any) -> int:
        """D of a part whose embeddings are variable-size lists (data written by other tools)."""
        if not metadata.num_rows:
            return 0
        pf = pq.ParquetFile(path, filesystem=self._pafs, metadata=metadata)
        batch = next(pf.iter_batches(batch_size=1, columns=[EMBEDDING_COLUMN]))
        first = batch.column(0)
        return int(first.offsets[1].as_py() - first.offsets[0].as_py())

    def _open(self, part: _Part) -> Any:
        return pq.ParquetFile(
            part.path, filesystem=self._pafs, metadata=part.metadata, pre_buffer=not self._local
        )

    def _read_row_group(
        self, part: _Part, index: int, out: Float32Matrix | None = None
    ) -> tuple[list[str], Float32Matrix]:
        """Ids and embeddings of one row group, the embeddings written into `out` (rows×D).

        `out` is allocated when not given. Local files stored as this store
        writes them take the direct path (`_plain_pages`); anything else is
        decoded by pyarrow and copied once.
        """
        rows = int(part.metadata.row_group(index).num_rows)
        if out is None:
            out = np.empty((rows, part.dim), dtype=np.float32)
        where = f"{part.path} row group {index}"
        if self._read_plain(part, index, out):
            table = self._open(part).read_row_group(index, columns=[ID_COLUMN], use_threads=False)
            return _ids_of(table.column(ID_COLUMN), where), out
        table = self._open(part).read_row_group(
            index, columns=[ID_COLUMN, EMBEDDING_COLUMN], use_threads=False
        )
        pos = 0
        for chunk in table.column(EMBEDDING_COLUMN).chunks:
            view = _embedding_view(chunk, part.dim, where)
            out[pos : pos + len(view)] = view
            pos += len(view)
        if pos != rows:
            raise InvalidCollection(f"{where}: {pos} embeddings for {rows} rows")
        return _ids_of(table.column(ID_COLUMN), where), out

    def _read_plain(self, part: _Part, index: int, out: Float32Matrix) -> bool:
        if part.leaf is None or not self._direct:
            return False
        column, max_rep, max_def, value_size = part.leaf
        chunk = part.metadata.row_group(index).column(column)
        if chunk.compression != "UNCOMPRESSED" or chunk.has_dictionary_page:
            return False
        start, length = int(chunk.data_page_offset), int(chunk.total_compressed_size)
        if not self._local:
            data = self._fs.cat_file(part.path, start=start, end=start + length)
            source = BufferedChunk(data, start)
            return read_plain_floats(source, start, length, max_rep, max_def, value_size, out)
        fd = os.open(part.path, os.O_RDONLY)
        try:
            local = LocalChunk(fd)
            return read_plain_floats(local, start, length, max_rep, max_def, value_size, out)
        finally:
            os.close(fd)

    # Collections: operations -----------------------------------------------

    @_guarded
    def count(self, namespace: str, collection_id: str) -> int:
        return sum(int(p.metadata.num_rows) for p in self._parts(namespace, collection_id))

    @_guarded
    def list_collections(self, namespace: str) -> list[str]:
        try:
            entries = self._listdir(f"{self._ns(namespace)}/collections")
        except FileNotFoundError:
            return []
        names = (str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in entries)
        return sorted(n for n in names if _is_id(n))

    @_guarded
    def read_many(self, namespace: str, collection_ids: Sequence[str]) -> Collection:
        cids = [check_id("collection id", c) for c in collection_ids]
        if not cids:
            raise ValueError("read_many needs at least one collection id")
        plans = [self._parts(namespace, cid) for cid in cids]
        dim = single_dim(
            namespace, cids, {p.dim for ps in plans for p in ps if p.metadata.num_rows}
        )
        groups = [(part, index) for parts in plans for part in parts for index in part.row_groups]
        tasks, offsets = read_plan(
            [[rows for part in parts for rows in part.row_group_rows] for parts in plans]
        )
        matrix = np.empty((offsets[-1], dim), dtype=np.float32)
        ids: list[list[str]] = [[] for _ in tasks]

        def load(task_index: int) -> None:
            task = tasks[task_index]
            part, index = groups[task.group]
            rows = part.row_group_rows[index]
            out = matrix[task.out_start : task.out_start + rows]
            ids[task_index], _ = self._read_row_group(part, index, out)

        self._run_parallel(load, len(tasks))
        document_ids = [d for chunk in ids for d in chunk]
        return Collection(document_ids, matrix, tuple(cids), tuple(offsets))

    def _run_parallel(self, fn: Callable[[int], None], n: int) -> None:
        if n <= 1 or self._threads <= 1:
            for i in range(n):
                fn(i)
            return
        with ThreadPoolExecutor(min(self._threads, n)) as pool:
            for _ in pool.map(fn, range(n)):
                pass

    @_guarded
    def sample(self, namespace: str, collection_id: str, n: int, seed: int) -> Collection:
        """A uniform sample of the rows of systematically chosen row groups (`sample_plan`).

        Only the chosen row groups are read: cheap on large collections,
        deterministic for a seed, and recent documents always in their share.
        """
        check_sample_size(n)
        parts = self._parts(namespace, collection_id)
        groups = [(part, index) for part in parts for index in part.row_groups]
        total = sum(part.row_group_rows[index] for part, index in groups)
        dim = next((p.dim for p in parts if p.metadata.num_rows), 0)
        if n == 0 or total == 0:
            return empty_collection(dim, collection_id)
        if n >= total:
            return self.read(namespace, collection_id)
        reads = sample_plan([part.row_group_rows[index] for part, index in groups], n, seed)
        matrix = np.empty((n, dim), dtype=np.float32)
        ids: list[list[str]] = [[] for _ in reads]

        def load(i: int) -> None:
            task = reads[i]
            assert task.rows is not None  # a sample names its rows
            got, whole = self._read_row_group(*groups[task.group])
            matrix[task.out_start : task.out_start + task.rows.size] = whole[task.rows]
            ids[i] = [got[j] for j in task.rows.tolist()]

        self._run_parallel(load, len(reads))
        document_ids = [d for chunk in ids for d in chunk]
        return Collection(document_ids, matrix, (collection_id,), (0, n))

    def iter_blocks(
        self, namespace: str, collection_id: str, rows_per_block: int
    ) -> Iterator[Collection]:
        check_block_size(rows_per_block)
        try:
            parts = self._parts(namespace, collection_id)
        except Exception as exc:
            error = _store_error(exc, self, namespace)
            if error is exc:
                raise
            raise error from exc
        blocks = reblock(self._pieces(parts), rows_per_block, collection_id)
        return _guarded_iter(self, namespace, blocks)

    def _pieces(self, parts: list[_Part]) -> Iterator[tuple[list[str], Float32Matrix]]:
        """Row groups one after the other, the next one read while the caller works."""
        groups = [(p, i) for p in parts for i, rows in enumerate(p.row_group_rows) if rows]
        if not groups:
            return
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(self._read_row_group, *groups[0])
            for k in range(len(groups)):
                ids, matrix = pending.result()
                if k + 1 < len(groups):
                    pending = pool.submit(self._read_row_group, *groups[k + 1])
                yield ids, matrix

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
        directory = self._collection_dir(namespace, collection_id)
        try:
            existing = self._parts(namespace, collection_id)
        except CollectionNotFound:
            existing = []
        dims = {p.dim for p in existing if p.metadata.num_rows}
        if dims and dims != {matrix.shape[1]}:
            raise ValueError(
                f"collection {collection_id!r} has {dims.pop()}-dimensional embeddings;"
                f" cannot append {matrix.shape[1]}-dimensional ones"
            )
        columns = [pa.array(ids, type=pa.string()), _fixed_size_list(matrix)]
        if texts is not None:
            columns.append(pa.array(list(texts), type=pa.string()))
        table = pa.Table.from_arrays(
            columns, schema=collection_schema(matrix.shape[1], with_text=texts is not None)
        )
        name = f"part-{_timestamp(datetime.now(UTC))}-{uuid.uuid4().hex[:8]}.parquet"
        self._write_table(
            table,
            f"{directory}/{name}",
            atomic=True,
            row_group_size=self._rows_per_row_group,
            # Embeddings barely compress and decode fastest uncompressed, plain.
            compression={ID_COLUMN: "zstd", EMBEDDING_COLUMN: "none", TEXT_COLUMN: "zstd"},
            use_dictionary=False,
            write_statistics=[ID_COLUMN],
        )

    @_guarded
    def read_texts(
        self, namespace: str, collection_id: str, document_ids: Sequence[str]
    ) -> dict[str, str] | None:
        """Only the id and text columns of the parts that have a text column are read."""
        parts = self._parts(namespace, collection_id)
        with_text = [
            p
            for p in parts
            if p.metadata.schema.to_arrow_schema().get_field_index(TEXT_COLUMN) >= 0
        ]
        if not with_text:
            return None
        wanted = pa.array(list(dict.fromkeys(document_ids)), type=pa.string())
        found: dict[str, str] = {}
        for part in with_text:
            table = self._open(part).read(columns=[ID_COLUMN, TEXT_COLUMN], use_threads=False)
            table = table.filter(pc.is_in(table.column(ID_COLUMN), value_set=wanted))
            for doc, text in zip(
                table.column(ID_COLUMN).to_pylist(),
                table.column(TEXT_COLUMN).to_pylist(),
                strict=True,
            ):
                if text is not None:
                    found[doc] = text
        return found

    # Results ----------------------------------------------------------------

    def _fail_point(self, step: str) -> None:
        """No-op; tests replace it to interrupt a run write at a given step."""

    @_guarded
    def write_run(self, namespace: str, run: RunResults) -> None:
        run_dir = self._run_dir(namespace, run.run_id)
        if self._exists(f"{run_dir}/{SUCCESS}"):
            raise RunExists(namespace, run.run_id, self.location)
        summary = json.dumps(run.summary, sort_keys=True, allow_nan=False).encode()
        if self._exists(run_dir):
            # An attempt of the same run that never committed (the Job died): start over.
            self._fs.rm(run_dir, recursive=True)
        where = np.asarray(run.collection_of_rows())
        assignments = pa.table(
            {
                "collection_id": pa.DictionaryArray.from_arrays(
                    pa.array(where), pa.array(list(run.collection_ids), type=pa.string())
                ).cast(pa.string()),
                ID_COLUMN: pa.array(run.document_ids, type=pa.string()),
                "label": pa.array(run.labels),
            }
        )
        self._write_table(assignments, f"{run_dir}/{ASSIGNMENTS}", atomic=False)
        self._fail_point("assignments")
        self._write_table(_clusters_table(run), f"{run_dir}/clusters.parquet", atomic=False)
        if run.baseline is not None:
            self._write_table(
                _baseline_table(run.baseline), f"{run_dir}/baseline.parquet", atomic=False
            )
        self._write_bytes(summary, f"{run_dir}/summary.json", atomic=False)
        for name, content in run.artifacts.items():
            self._write_bytes(content, f"{run_dir}/artifacts/{name}", atomic=False)
        self._fail_point("files")
        self._commit(
            namespace,
            run.run_id,
            run.collection_ids,
            created_at=run.created_at,
            num_documents=len(run.document_ids),
            num_clusters=run.num_clusters,
            dim=int(run.centroids.shape[1]),
            has_baseline=run.baseline is not None,
            artifacts={name: len(content) for name, content in run.artifacts.items()},
        )

    def _commit(
        self,
        namespace: str,
        run_id: str,
        collection_ids: Sequence[str],
        *,
        created_at: datetime,
        num_documents: int,
        num_clusters: int,
        dim: int,
        has_baseline: bool,
        artifacts: Mapping[str, int] | None = None,
    ) -> None:
        """Publish a run whose files are written: its index entry, then `_SUCCESS`
        (which lists the run's artifacts: name -> bytes)."""
        committed_at = datetime.now(UTC)
        manifest = {
            "run_id": run_id,
            "collection_ids": list(collection_ids),
            "created_at": created_at.isoformat(),
            "committed_at": committed_at.isoformat(),
            "num_documents": num_documents,
            "num_clusters": num_clusters,
            "dim": dim,
            "has_baseline": has_baseline,
            "artifacts": dict(sorted((artifacts or {}).items())),
        }
        # The index entry goes first: latest_run skips entries whose run has no
        # _SUCCESS, so a crash between the two writes hides nothing complete.
        index = (
            f"{self._ns(namespace)}/run-index/{_set_dir_name(collection_ids)}/"
            f"{_timestamp(committed_at)}--{run_id}.json"
        )
        self._write_bytes(json.dumps(manifest).encode(), index, atomic=True)
        self._fail_point("index")
        self._write_bytes(
            json.dumps(manifest, indent=1).encode(),
            f"{self._run_dir(namespace, run_id)}/{SUCCESS}",
            atomic=True,
        )

    def _manifest(self, namespace: str, run_id: str) -> dict[str, Any]:
        try:
            raw = self._read_bytes(f"{self._run_dir(namespace, run_id)}/{SUCCESS}")
        except FileNotFoundError:
            raise RunNotFound(namespace, run_id, self.location) from None
        return cast(dict[str, Any], json.loads(raw))

    @_guarded
    def read_run(self, namespace: str, run_id: str) -> RunResults:
        manifest = self._manifest(namespace, run_id)
        run_dir = self._run_dir(namespace, run_id)
        assignments = self._read_assignments(f"{run_dir}/{ASSIGNMENTS}")
        clusters = pq.read_table(f"{run_dir}/clusters.parquet", filesystem=self._pafs)
        summary = json.loads(self._read_bytes(f"{run_dir}/summary.json"))
        baseline = None
        if manifest.get("has_baseline"):
            baseline = _baseline_from_table(
                pq.read_table(f"{run_dir}/baseline.parquet", filesystem=self._pafs)
            )
        collection_ids = tuple(manifest["collection_ids"])
        dim = int(manifest["dim"])
        return RunResults(
            run_id=run_id,
            collection_ids=collection_ids,
            document_ids=assignments.column(ID_COLUMN).to_pylist(),
            labels=assignments.column("label").to_numpy(),
            cluster_sizes=clusters.column("size").to_numpy(),
            centroids=_matrix_of_column(clusters.column("centroid"), dim),
            summary=summary,
            baseline=baseline,
            offsets=run_offsets(collection_ids, assignments.column("collection_id").to_pylist()),
            created_at=datetime.fromisoformat(manifest["created_at"]),
        )

    def _read_assignments(self, path: str) -> Any:
        """The assignments file, or the directory of shards a distributed run wrote, in order."""
        if not self._fs.isdir(path):
            return pq.read_table(path, filesystem=self._pafs)
        names = sorted(
            str(e["name"])
            for e in self._listdir(path)
            if str(e["name"]).rsplit("/", 1)[-1].startswith("part-")
        )
        tables = [pq.read_table(name, filesystem=self._pafs) for name in names]
        return pa.concat_tables(tables) if tables else pa.table(
            {"collection_id": pa.array([], pa.string()), ID_COLUMN: pa.array([], pa.string()),
             "label": pa.array([], pa.int32())}
        )  # fmt: skip

    @_guarded
    def run_summary(self, namespace: str, run_id: str) -> dict[str, Any]:
        self._manifest(namespace, run_id)  # RunNotFound unless committed
        raw = self._read_bytes(f"{self._run_dir(namespace, run_id)}/summary.json")
        return cast(dict[str, Any], json.loads(raw))

    @_guarded
    def list_artifacts(self, namespace: str, run_id: str) -> dict[str, int]:
        return {
            str(k): int(v)
            for k, v in self._manifest(namespace, run_id).get("artifacts", {}).items()
        }

    @_guarded
    def read_artifact(self, namespace: str, run_id: str, name: str) -> bytes:
        check_artifact_name(name)
        try:
            listed = self.list_artifacts(namespace, run_id)
        except RunNotFound:
            listed = {}
        if name not in listed:
            raise ArtifactNotFound(namespace, run_id, name, self.location)
        return self._read_bytes(f"{self._run_dir(namespace, run_id)}/artifacts/{name}")

    @_guarded
    def latest_run(self, namespace: str, collection_ids: Sequence[str]) -> str | None:
        wanted = collection_set_key(collection_ids)
        directory = f"{self._ns(namespace)}/run-index/{_set_dir_name(collection_ids)}"
        try:
            entries = self._listdir(directory)
        except FileNotFoundError:
            return None
        names = sorted((str(e["name"]).rsplit("/", 1)[-1] for e in entries), reverse=True)
        for name in names:
            if "--" not in name or not name.endswith(".json"):
                continue
            run_id = name[: -len(".json")].split("--", 1)[1]
            try:
                manifest = self._manifest(namespace, run_id)
            except (RunNotFound, ValueError):
                continue
            if collection_set_key(manifest["collection_ids"]) == wanted:
                return run_id
        return None

    @_guarded
    def write_baseline(self, namespace: str, baseline: Baseline) -> None:
        path = (
            f"{self._ns(namespace)}/baselines/{_set_dir_name(baseline.collection_ids)}/"
            f"{_timestamp(baseline.created_at)}--{baseline.run_id}.parquet"
        )
        self._write_table(_baseline_table(baseline), path, atomic=True)

    @_guarded
    def read_baseline(self, namespace: str, collection_ids: Sequence[str]) -> Baseline | None:
        candidates: list[Baseline] = []
        directory = f"{self._ns(namespace)}/baselines/{_set_dir_name(collection_ids)}"
        try:
            names = sorted(
                str(e["name"])
                for e in self._listdir(directory)
                if str(e["name"]).endswith(".parquet")
                and not str(e["name"]).rsplit("/", 1)[-1].startswith(".")
            )
        except FileNotFoundError:
            names = []
        if names:
            candidates.append(_baseline_from_table(pq.read_table(names[-1], filesystem=self._pafs)))
        run_id = self.latest_run(namespace, collection_ids)
        if run_id is not None and self._manifest(namespace, run_id).get("has_baseline"):
            path = f"{self._run_dir(namespace, run_id)}/baseline.parquet"
            candidates.append(_baseline_from_table(pq.read_table(path, filesystem=self._pafs)))
        return max(candidates, key=lambda b: b.created_at, default=None)


def _is_id(name: str) -> bool:
    try:
        check_id("collection id", name)
    except ValueError:
        return False
    return True


def _guarded_iter(
    store: ParquetStore, namespace: str, blocks: Iterator[Collection]
) -> Iterator[Collection]:
    try:
        yield from blocks
    except Exception as exc:
        error = _store_error(exc, store, namespace)
        if error is exc:
            raise
        raise error from exc


def collection_schema(dim: int, *, with_text: bool = False) -> Any:
    """Arrow schema of a collection's part files (what users write to load their own data)."""
    item = pa.field("element", pa.float32(), nullable=False)
    fields = [
        pa.field(ID_COLUMN, pa.string(), nullable=False),
        pa.field(EMBEDDING_COLUMN, pa.list_(item, dim), nullable=False),
    ]
    if with_text:
        fields.append(pa.field(TEXT_COLUMN, pa.string(), nullable=True))
    return pa.schema(fields)


def _fixed_size_list(matrix: Float32Matrix, dim: int | None = None) -> Any:
    """Zero-copy Arrow fixed_size_list<float32>[D] over a C-contiguous matrix."""
    d = matrix.shape[1] if dim is None else dim
    item = pa.field("element", pa.float32(), nullable=False)
    values = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(values, type=pa.list_(item, d))


def _matrix_of_column(column: Any, dim: int) -> Float32Matrix:
    """Own float32 K×D copy of a (small) fixed-size-list column."""
    if column.num_chunks == 0 or len(column) == 0:
        return np.empty((0, dim), dtype=np.float32)
    chunk = column.combine_chunks()
    return np.array(_embedding_view(chunk, dim, "results"), dtype=np.float32, copy=True)


def _clusters_table(run: RunResults) -> Any:
    return pa.table(
        {
            "cluster_id": pa.array(np.arange(run.num_clusters, dtype=np.int32)),
            "size": pa.array(run.cluster_sizes),
            "centroid": _fixed_size_list(run.centroids),
        }
    )


def _baseline_table(baseline: Baseline) -> Any:
    """One row: run_id, collection_ids, created_at, document_count, mean, centroids (K×D), stats.

    `stats` is a JSON object (string column): drift statistics, see core/drift.py.
    """
    dim = baseline.dim
    centroids = pa.ListArray.from_arrays(
        pa.array([0, baseline.centroids.shape[0]], type=pa.int32()),
        _fixed_size_list(baseline.centroids, dim),
    )
    return pa.table(
        {
            "run_id": pa.array([baseline.run_id]),
            "collection_ids": pa.array([list(baseline.collection_ids)], type=pa.list_(pa.string())),
            "created_at": pa.array([baseline.created_at], type=pa.timestamp("us", tz="UTC")),
            "document_count": pa.array([baseline.document_count], type=pa.int64()),
            "mean": _fixed_size_list(baseline.mean.reshape(1, -1)),
            "centroids": centroids,
            "stats": pa.array([json.dumps(baseline.stats, allow_nan=False)], type=pa.string()),
        }
    )


def _baseline_from_table(table: Any) -> Baseline:
    row = table.slice(0, 1)
    mean_col = row.column("mean").combine_chunks()
    dim = int(mean_col.type.list_size)
    mean: NDArray[np.float32] = _embedding_view(mean_col, dim, "baseline")[0].copy()
    centroids_col = row.column("centroids").combine_chunks()
    centroids = _matrix_of_column(pa.chunked_array([centroids_col.flatten()]), dim)
    return Baseline(
        run_id=row.column("run_id")[0].as_py(),
        collection_ids=tuple(row.column("collection_ids")[0].as_py()),
        centroids=centroids,
        mean=mean,
        document_count=int(row.column("document_count")[0].as_py()),
        created_at=row.column("created_at")[0].as_py(),
        # Baselines written before drift statistics existed have no such column.
        stats=json.loads(row.column("stats")[0].as_py() or "{}")
        if "stats" in row.column_names
        else {},
    )


def open_parquet(url: str, **storage_options: Any) -> ParquetStore:
    """A ParquetStore for any fsspec URL (local path, file://, s3://, memory://...)."""
    fs, root = fsspec.core.url_to_fs(url, **storage_options)
    location = url if "://" in url else os.path.abspath(url)
    return ParquetStore(root, fs, location=location)
