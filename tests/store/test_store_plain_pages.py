"""The direct page reader must agree with pyarrow on every layout, or step aside."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recluster.store import InvalidCollection
from recluster.store import parquet as parquet_module
from recluster.store.parquet import ParquetStore

DIM = 12


def write(directory: Path, embedding: Any, rows: int, **options: Any) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    ids = [f"d{i:04d}" for i in range(rows)]
    pq.write_table(
        pa.table({"document_id": ids, "embedding": embedding}),
        directory / "part-0.parquet",
        **options,
    )
    return ids


def fsl(matrix: np.ndarray, nullable: bool = True) -> Any:
    item = pa.field("element", pa.float32(), nullable=nullable)
    return pa.FixedSizeListArray.from_arrays(
        pa.array(matrix.ravel()), type=pa.list_(item, matrix.shape[1])
    )


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records whether each row group went through the direct path."""
    calls: list[bool] = []
    original = parquet_module.read_plain_floats

    def recording(*args: Any) -> bool:
        ok = original(*args)
        calls.append(ok)
        return ok

    monkeypatch.setattr(parquet_module, "read_plain_floats", recording)
    return calls


LAYOUTS = {
    "v1-pages": ({"data_page_version": "1.0", "data_page_size": 1000}, True),
    "v2-pages": ({"data_page_version": "2.0", "data_page_size": 1000}, True),
    "one-page": ({"data_page_size": 1 << 20}, True),
    "snappy": ({"compression": "snappy"}, False),
    "dictionary": ({"compression": "none", "use_dictionary": True}, False),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("nullable", [True, False])
def test_direct_reads_match_pyarrow(
    tmp_path: Path, spy: list[bool], layout: str, nullable: bool
) -> None:
    options, direct = LAYOUTS[layout]
    options = {"compression": "none", "use_dictionary": False, **options}
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((700, DIM)).astype(np.float32)
    if layout == "dictionary":
        matrix = np.round(matrix).astype(np.float32)  # few distinct values: stays dictionary
    ids = write(
        tmp_path / "ns/collections/c", fsl(matrix, nullable), 700, row_group_size=256, **options
    )

    got = ParquetStore(str(tmp_path)).read("ns", "c")
    assert got.document_ids == ids
    assert np.array_equal(got.embeddings, matrix)
    if direct:
        assert spy and all(spy)
    else:
        assert True not in spy  # not attempted, or declined before trusting the data
    reference = ParquetStore(str(tmp_path), direct_reads=False).read("ns", "c")
    assert np.array_equal(reference.embeddings, got.embeddings)


def test_fixed_size_binary_goes_direct(tmp_path: Path, spy: list[bool]) -> None:
    matrix = np.random.default_rng(2).standard_normal((300, DIM)).astype(np.float32)
    field = pa.field("embedding", pa.binary(4 * DIM), metadata={"recluster.dtype": "float32"})
    column = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(4 * DIM), 300, [None, pa.py_buffer(matrix.tobytes())]
    )
    directory = tmp_path / "ns/collections/c"
    directory.mkdir(parents=True)
    table = pa.Table.from_arrays(
        [pa.array([f"d{i}" for i in range(300)]), column],
        schema=pa.schema([("document_id", pa.string()), field]),
    )
    pq.write_table(table, directory / "part-0.parquet", compression="none", use_dictionary=False)
    got = ParquetStore(str(tmp_path)).read("ns", "c")
    assert np.array_equal(got.embeddings, matrix)
    assert spy == [True]


def test_store_written_data_goes_direct(tmp_path: Path, spy: list[bool]) -> None:
    store = ParquetStore(str(tmp_path), rows_per_row_group=100)
    matrix = np.random.default_rng(3).standard_normal((250, DIM)).astype(np.float32)
    store.append("ns", "c", [f"d{i}" for i in range(250)], matrix)
    assert np.array_equal(store.read("ns", "c").embeddings, matrix)
    assert spy == [True, True, True]
    blocks = list(store.iter_blocks("ns", "c", 120))
    assert np.array_equal(np.vstack([b.embeddings for b in blocks]), matrix)


@pytest.mark.parametrize("where", ["row", "element"])
def test_nulls_are_never_read_as_numbers(tmp_path: Path, spy: list[bool], where: str) -> None:
    values = pa.array(np.arange(3 * DIM, dtype=np.float32))
    if where == "row":
        embedding = pa.FixedSizeListArray.from_arrays(
            values, DIM, mask=pa.array([False, True, False])
        )
    else:
        with_null = values.to_pylist()
        with_null[5] = None
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(with_null, pa.float32()), DIM)
    write(tmp_path / "ns/collections/c", embedding, 3, compression="none", use_dictionary=False)
    with pytest.raises(InvalidCollection, match="null"):
        ParquetStore(str(tmp_path)).read("ns", "c")
    assert spy == [False]


def test_object_store_reads_go_direct(s3_env: str, spy: list[bool]) -> None:
    import uuid

    from recluster.store import open_store

    from .conftest import BUCKET

    store = open_store(f"s3://{BUCKET}/{uuid.uuid4().hex}")
    matrix = np.random.default_rng(4).standard_normal((500, DIM)).astype(np.float32)
    store.append("ns", "c", [f"d{i}" for i in range(500)], matrix)
    assert np.array_equal(store.read("ns", "c").embeddings, matrix)
    assert spy == [True]
