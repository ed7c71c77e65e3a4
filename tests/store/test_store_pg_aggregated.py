"""Ranges fetched on several threads land in the matrix in range order (no server needed)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from recluster.store.errors import InvalidCollection
from recluster.store.pg_aggregated import _Placer
from recluster.store.pgcodec import encode, record_dtype


def values(matrix: np.ndarray) -> bytes:
    """The send() values of the rows, joined (COPY's field lengths dropped)."""
    size = 4 + record_dtype("vector", matrix.shape[1]).itemsize
    fields = np.frombuffer(encode("vector", matrix), dtype=np.uint8).reshape(-1, size)
    return fields[:, 4:].tobytes()


def test_a_range_fetched_first_waits_for_the_ranges_before_it() -> None:
    rows = np.arange(10, dtype=np.float32).reshape(5, 2)
    out = np.zeros_like(rows)
    placer = _Placer("ns", [("c", 5)], "vector", out)
    later: list[list[str]] = []
    thread = threading.Thread(
        target=lambda: later.append(placer.place(2, 0, (["d3", "d4"], values(rows[3:]), False)))
    )
    thread.start()  # range 2 arrives first: it must not take rows 0-1
    assert placer.place(0, 0, (["d0", "d1"], values(rows[:2]), False)) == ["d0", "d1"]
    assert placer.place(1, 0, (["d2"], values(rows[2:3]), False)) == ["d2"]
    thread.join(timeout=60)
    assert later == [["d3", "d4"]]
    np.testing.assert_array_equal(out, rows)
    tasks = [(0, 0), (0, 1), (0, 2)]
    assert placer.finish([["d0", "d1"], ["d2"], ["d3", "d4"]], tasks) == [
        ["d0", "d1", "d2", "d3", "d4"]
    ]


def test_a_skipped_or_empty_range_lets_the_next_ones_through() -> None:
    rows = np.ones((2, 3), dtype=np.float32)
    out = np.zeros_like(rows)
    placer = _Placer("ns", [("c", 2)], "vector", out)
    placer.skip(0)  # its fetch failed
    assert placer.place(1, 0, None) == []  # no rows in that range
    assert placer.place(2, 0, (["a", "b"], values(rows), False)) == ["a", "b"]
    np.testing.assert_array_equal(out, rows)


def test_errors_name_the_collection_and_column() -> None:
    out = np.zeros((2, 3), dtype=np.float32)
    placer = _Placer("ns", [("c", 2)], "vector", out)
    named = r"collection 'c' in namespace 'ns' \(column recluster_documents.embedding\)"
    with pytest.raises(InvalidCollection, match=named + ": some documents have a NULL"):
        placer.place(0, 0, (["a"], b"", True))
    with pytest.raises(InvalidCollection, match=named + ": rows changed"):
        placer.place(1, 0, (["a", "b", "c"], values(np.ones((3, 3), np.float32)), False))
    with pytest.raises(InvalidCollection, match=named + ": embeddings of different dim"):
        placer.place(2, 0, (["a"], values(np.ones((1, 4), np.float32)), False))
    with pytest.raises(InvalidCollection, match=named + ": rows changed"):
        placer.finish([[], [], ["a"]], [(0, 0), (0, 1), (0, 2)])
