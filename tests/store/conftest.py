"""Real backends for the store tests: a local directory, moto's S3 server, a throwaway PostgreSQL.

PostgreSQL refuses to run as root, so when the tests run as root (CI and the
development machines do) the server is initialised and started as the
`postgres` OS user that the Debian package creates, in a temporary directory
owned by it, listening on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from recluster.store import CollectionStore, open_store
from recluster.store.postgres import PostgresStore

BUCKET = "recluster-test"
BACKENDS = ["local", "s3", "postgres", "postgres-vector"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    return free_port()


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


def _version_key(path: str) -> int:
    part = path.split("/")[4]
    return int(part) if part.isdigit() else 0


class PgServer:
    """A PostgreSQL cluster in a temporary directory, stopped and deleted on exit."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="recluster-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' OS user to run PostgreSQL")
            os.chown(self.base, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        cmd = [*self.as_user, str(self.bindir / args[0]), *args[1:]]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            log = self.base / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr}{result.stdout}{tail}")

    def start(self) -> str:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-locale",
            "-E",
            "UTF8",
        )
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.base / "log"),
            "-w",
            "start",
        )
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    bindir = _pg_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found:"
            " install the Debian 'postgresql' package (.ci/run does)"
        )
    server = PgServer(bindir)
    try:
        yield server.start()
    finally:
        server.stop()


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
