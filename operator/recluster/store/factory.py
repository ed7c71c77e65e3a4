"""Open the store an install is configured with, from one URI.

- a path or ``file:///path``            Parquet on the local filesystem (the embedded default)
- ``s3://bucket/prefix``                Parquet on S3 through s3fs; credentials and region
  from the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION, AWS_PROFILE), endpoint
  from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (MinIO, Ceph, moto)
- ``postgresql://user@host:port/db``    PostgreSQL (libpq URI: PGPASSWORD, sslmode... apply)
- any other fsspec URL (``gs://``, ``memory://``) Parquet through that filesystem

Opening does no I/O: an unreachable store shows up as `StoreUnavailable` on
first use, with the URI (without password) in the message.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from ._common import redact
from .base import CollectionStore

__all__ = [
    "DEFAULT_STORE_URI",
    "local_path",
    "open_store",
    "redact",
    "run_artifacts",
    "s3_storage_options",
]

#: Where `recluster dev` keeps its embedded store, relative to the working directory.
DEFAULT_STORE_URI = ".recluster/dev/store"

# Bounded waits: a Job must fail with "store unreachable" in seconds, not hang.
S3_CONNECT_TIMEOUT_S = 10.0
S3_READ_TIMEOUT_S = 60.0
S3_MAX_ATTEMPTS = 3


def s3_storage_options(**overrides: Any) -> dict[str, Any]:
    """s3fs options from the AWS environment, with bounded timeouts and retries."""
    options: dict[str, Any] = {
        "use_listings_cache": False,
        "config_kwargs": {
            "connect_timeout": S3_CONNECT_TIMEOUT_S,
            "read_timeout": S3_READ_TIMEOUT_S,
            "retries": {"max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"},
        },
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options.setdefault("client_kwargs", {})["region_name"] = region
    for key, value in overrides.items():
        if key == "config_kwargs" and isinstance(value, dict):
            options["config_kwargs"] = {**options["config_kwargs"], **value}
        else:
            options[key] = value
    return options


def local_path(uri: str) -> str | None:
    """The directory of a store on the local file system (a path or file://), else None."""
    scheme = urlsplit(uri).scheme.lower() if "://" in uri else ""
    if scheme not in ("", "file", "local"):
        return None
    return os.path.abspath(os.path.expanduser(uri.split("://", 1)[1] if scheme else uri))


def open_store(
    uri: str = DEFAULT_STORE_URI, *, namespace_root: str | None = None, **options: Any
) -> CollectionStore:
    """The store behind `uri`; `options` go to the backend (s3fs options, or PostgresStore's).

    `namespace_root`: the path is that namespace's own directory of a Parquet
    store (a Job's `subPathExpr` mount, core.jobs.STORE_SCOPE_ENV); only local paths can be.
    """
    scheme = urlsplit(uri).scheme.lower() if "://" in uri else ""
    local = scheme in ("", "file", "local")
    if namespace_root is not None and not local:
        raise ValueError(
            f"store {redact(uri)}: a namespace's own mount is a local Parquet path; object "
            "stores and PostgreSQL partition namespaces by credentials (docs/security.md)"
        )
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return PostgresStore(uri, **options)
    from .parquet import ParquetStore, open_parquet

    if local:
        path = uri.split("://", 1)[1] if scheme else uri
        return ParquetStore(path, namespace=namespace_root, **options)
    if scheme in ("s3", "s3a"):
        return open_parquet("s3://" + uri.split("://", 1)[1], **s3_storage_options(**options))
    return open_parquet(uri, **options)


RUN_FILES = ("assignments.parquet", "clusters.parquet", "summary.json")
"""The files of a run a reader wants (parquet.py's layout; docs/store.md)."""


def run_artifacts(uri: str, namespace: str, run_id: str) -> dict[str, str]:
    """Where a run's outputs are in the store behind `uri`, without credentials (no I/O).

    Parquet stores: the run's directory and its files, as URLs a reader with
    access to the store opens (`s3://...`, `file:///...`). PostgreSQL: the
    database (redacted DSN) and the run's key in its tables.
    """
    scheme = urlsplit(uri).scheme.lower() if "://" in uri else ""
    if scheme in ("postgresql", "postgres"):
        return {"store": redact(uri), "run_id": run_id,
                "tables": "recluster_runs, recluster_assignments, recluster_clusters"}  # fmt: skip
    if scheme in ("", "file", "local"):
        path = uri.split("://", 1)[1] if scheme else uri
        base = "file://" + os.path.abspath(path)
    else:
        base = redact(uri).rstrip("/")
    run = f"{base}/{namespace}/runs/{run_id}/"
    return {"run": run, **{name.split(".")[0]: run + name for name in RUN_FILES}}
