"""PostgreSQL's binary embedding formats, checked against the server's own encoder."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from recluster.store.errors import InvalidCollection
from recluster.store.pgcodec import SEND_FUNCTION, EmbeddingType, decode, encode, record_dtype

KINDS: list[EmbeddingType] = ["real[]", "vector", "halfvec"]


@pytest.mark.parametrize("kind", KINDS)
def test_encode_then_decode_gives_back_the_matrix(kind: EmbeddingType) -> None:
    matrix = np.random.default_rng(1).standard_normal((5, 7)).astype(np.float32)
    expected = matrix.astype(np.float16).astype(np.float32) if kind == "halfvec" else matrix
    fields = encode(kind, matrix)
    size = 4 + record_dtype(kind, 7).itemsize
    assert len(fields) == 5 * size
    values = b"".join(fields[i * size + 4 : (i + 1) * size] for i in range(5))
    out = np.empty((5, 7), dtype=np.float32)
    decode(kind, values, 5, 7, out, "here")
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("kind", KINDS)
def test_decode_names_the_collection_when_dimensions_differ(kind: EmbeddingType) -> None:
    values = encode(kind, np.ones((2, 3), dtype=np.float32))
    out = np.empty((2, 4), dtype=np.float32)
    with pytest.raises(InvalidCollection, match=r"collection 'c'.*expected 4"):
        decode(kind, values, 2, 4, out, "collection 'c'")


@pytest.mark.parametrize("kind", KINDS)
def test_decode_reads_what_the_server_sends(kind: EmbeddingType, pg_vector_url: str) -> None:
    """The layouts are PostgreSQL's and pgvector's, not only our own encoder's."""
    literal = "'{0.5,-1.25,3}'::real[]" if kind == "real[]" else f"'[0.5,-1.25,3]'::{kind}"
    with psycopg.connect(pg_vector_url) as conn:
        row = conn.execute(f"SELECT {SEND_FUNCTION[kind]}({literal})").fetchone()
    assert row is not None
    out = np.empty((1, 3), dtype=np.float32)
    decode(kind, bytes(row[0]), 1, 3, out, "here")
    assert out.tolist() == [[0.5, -1.25, 3.0]]
