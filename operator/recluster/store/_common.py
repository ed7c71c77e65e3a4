"""Helpers shared by the backends: argument checks, re-blocking, sampling, redaction."""

from __future__ import annotations

import mmap
import re
from collections.abc import Iterable, Iterator, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
from numpy.typing import ArrayLike

from .errors import InvalidCollection
from .types import Collection, Float32Matrix, as_matrix, check_id


def check_append(
    namespace: str,
    collection_id: str,
    document_ids: Sequence[str],
    embeddings: ArrayLike,
    texts: Sequence[str] | None = None,
) -> tuple[list[str], Float32Matrix]:
    """Validate what `append` receives and return it as a list and a float32 matrix."""
    check_id("namespace", namespace)
    check_id("collection id", collection_id)
    ids = list(document_ids)
    for doc in ids:
        if not isinstance(doc, str) or not doc:
            raise ValueError(f"document ids must be non-empty strings, got {doc!r}")
    matrix = as_matrix(embeddings)
    if matrix.shape[0] != len(ids):
        raise ValueError(f"{len(ids)} document ids for {matrix.shape[0]} embeddings")
    if matrix.shape[1] == 0:
        raise ValueError("embeddings must have at least one dimension")
    if len(set(ids)) != len(ids):
        raise ValueError("document ids must be unique within one append")
    if not np.isfinite(matrix).all():
        raise ValueError("embeddings must be finite (no NaN or infinity)")
    if texts is not None:
        if len(texts) != len(ids):
            raise ValueError(f"{len(texts)} texts for {len(ids)} document ids")
        bad = next((t for t in texts if not isinstance(t, str)), None)
        if bad is not None:
            raise ValueError(f"texts must be strings, got {bad!r}")
    return ids, matrix


def check_block_size(rows_per_block: int) -> int:
    if rows_per_block < 1:
        raise ValueError(f"rows_per_block must be at least 1, got {rows_per_block}")
    return rows_per_block


def check_sample_size(n: int) -> int:
    if n < 0:
        raise ValueError(f"sample size must be non-negative, got {n}")
    return n


def reblock(
    pieces: Iterable[tuple[list[str], Float32Matrix]], rows_per_block: int, collection_id: str
) -> Iterator[Collection]:
    """Turn pieces of any size into blocks of exactly `rows_per_block` rows (last may be short).

    A block owns its matrix (a fresh buffer), so the caller may keep it while
    the next block is produced.
    """
    ids: list[str] = []
    parts: list[Float32Matrix] = []
    held = 0
    for piece_ids, piece in pieces:
        start = 0
        while start < len(piece_ids):
            take = min(rows_per_block - held, len(piece_ids) - start)
            ids.extend(piece_ids[start : start + take])
            parts.append(piece[start : start + take])
            held += take
            start += take
            if held == rows_per_block:
                yield _block(ids, parts, collection_id)
                ids, parts, held = [], [], 0
    if held:
        yield _block(ids, parts, collection_id)


def _block(ids: list[str], parts: list[Float32Matrix], collection_id: str) -> Collection:
    if len(parts) == 1 and parts[0].base is None and parts[0].flags.c_contiguous:
        matrix = parts[0]
    else:
        matrix = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0].copy()
    return Collection(ids, matrix, (collection_id,), (0, len(ids)))


def new_matrix(rows: int, dim: int) -> Float32Matrix:
    """An uninitialised float32 rows × dim matrix in its own anonymous mapping.

    Why not ``np.empty``: numpy asks for transparent huge pages on large
    arrays (madvise), and where the kernel's THP defrag is ``madvise`` (the
    default) each first touch may compact memory to find one, on a node whose
    memory is mostly page cache. Measured on the development VM, first write
    of 1M × 384 float32: 2.5 s of CPU (26-28 s wall under load 17) with huge
    pages, 0.75-1.0 s (8-12 s) without; a PostgreSQL read of that matrix took
    2.1-3.0 s of client CPU instead of 3.5-4.3 s.
    """
    size = rows * dim * 4
    if size == 0:
        return np.empty((rows, dim), dtype=np.float32)
    return np.frombuffer(mmap.mmap(-1, size), dtype=np.float32).reshape(rows, dim)


def empty_collection(dim: int, collection_id: str) -> Collection:
    return Collection([], np.empty((0, dim), dtype=np.float32), (collection_id,), (0, 0))


SECRET_PARAMETERS = frozenset({
    "password", "passwd", "pwd", "sslpassword", "sslkey_password", "secret", "token",
    "access_key", "secret_key", "secret_access_key", "aws_secret_access_key",
    "session_token", "aws_session_token", "key", "sig", "signature",
})  # fmt: skip
"""URI query and libpq conninfo parameters whose values are credentials."""
_CONNINFO_SECRET = re.compile(
    r"\b(" + "|".join(sorted(SECRET_PARAMETERS, key=len, reverse=True)) + r")(\s*=\s*)"
    r"('(?:\\.|[^'\\])*'|\S+)",
    re.IGNORECASE,
)


def redact(uri: str) -> str:
    """The URI or conninfo without its credentials, for messages and logs.

    `user:password@` in a URL, query parameters such as `?password=` or
    `?sslpassword=` (libpq accepts both), and `password=...` in a libpq
    keyword/value string all become `***`.
    """
    if "://" not in uri:
        return _CONNINFO_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}***", uri)
    parts = urlsplit(uri)
    netloc = parts.netloc
    if parts.password is not None:
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username}:***@{host}" if parts.username else host
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() in SECRET_PARAMETERS for name, _ in pairs):
            query = urlencode(
                [(n, "***" if n.lower() in SECRET_PARAMETERS else v) for n, v in pairs],
                safe="*",
            )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def single_dim(namespace: str, collection_ids: Sequence[str], dims: set[int]) -> int:
    """The one embedding dimension of collections read together (0 when none has rows)."""
    if len(dims) > 1:
        raise InvalidCollection(
            f"collections {list(collection_ids)} in namespace {namespace!r} have different"
            f" embedding dimensions {sorted(dims)}"
        )
    return dims.pop() if dims else 0


def run_offsets(collection_ids: Sequence[str], sources: Iterable[str]) -> tuple[int, ...]:
    """Offsets of each collection's rows in a run, from the collection of every row.

    A run's rows are grouped by collection, in the order of its collection ids.
    """
    position = {c: i for i, c in enumerate(collection_ids)}
    counts = [0] * len(collection_ids)
    for source in sources:
        counts[position[source]] += 1
    return tuple(int(x) for x in np.cumsum([0, *counts]))
