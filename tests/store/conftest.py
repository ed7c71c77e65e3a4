"""Real backends for the store tests: a local directory, moto's S3 server, a throwaway PostgreSQL.

PostgreSQL refuses to run as root, so when the tests run as root (CI and the
development machines do) the server is initialised and started as the
`postgres` OS user that the Debian package creates, in a temporary directory
owned by it, listening on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgserver import free_port, pg_server
from recluster.store import CollectionStore, open_store
from recluster.store.postgres import PostgresStore

BUCKET = "recluster-test"
BACKENDS = ["local", "s3", "postgres", "postgres-vector"]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    yield from pg_server()


@pytest.fixture(scope="session")
def pg_vector_url(pg_url: str) -> str:
    """A database where `CREATE EXTENSION vector` works, or a skip saying why not."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE recluster_vector")
    url = pg_url.rsplit("/", 1)[0] + "/recluster_vector"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0]
        pytest.skip(f"pgvector is not installed on this PostgreSQL ({first_line})")
    return url


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
    else:
        s = PostgresStore(request.getfixturevalue("pg_vector_url"), embedding_type="vector")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def ns() -> str:
    return f"ns-{uuid.uuid4().hex[:12]}"
