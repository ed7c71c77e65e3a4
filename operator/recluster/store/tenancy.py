"""What a store administrator grants one namespace: its own prefix, or its own rows.

Pure functions (no I/O): the IAM policy of a namespace's object store
credential, and the SQL that gives a namespace its own PostgreSQL role under
row-level security. `recluster store grant-namespace` prints them (and, for
PostgreSQL with `--apply`, runs the SQL); docs/security.md explains them.

Invariants:
- a namespace's object store credential reaches exactly `<prefix>/<namespace>/`
  of the store's bucket (the Parquet layout's namespace directory);
- a namespace's PostgreSQL role is not a superuser, does not own the tables, has
  no BYPASSRLS, and sees and writes only rows whose `namespace` is its own, by
  policies bound to the role itself (nothing the session can SET changes them).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from .types import check_id

#: The tables of the PostgreSQL store, each keyed by a `namespace` column: the store
#: creates exactly these (store/postgres.py) and a namespace's role is granted each of them
#: under its row-level security policy.
POSTGRES_TABLES = (
    "recluster_documents",
    "recluster_runs",
    "recluster_assignments",
    "recluster_clusters",
    "recluster_baselines",
    "recluster_artifacts",
)
_ROLE = re.compile(r"[a-z_][a-z0-9_$-]{0,62}")
MAX_ROLE_BYTES = 63


def s3_location(store_uri: str) -> tuple[str, str]:
    """(bucket, prefix without slashes) of an `s3://bucket/prefix` store URI."""
    parts = urlsplit(store_uri)
    if parts.scheme.lower() not in ("s3", "s3a") or not parts.netloc:
        raise ValueError(f"not an S3 store URI (s3://bucket/prefix): {store_uri!r}")
    return parts.netloc, parts.path.strip("/")


def namespace_prefix(prefix: str, namespace: str) -> str:
    """The key prefix of a namespace's data: `<prefix>/<namespace>/` (the Parquet layout)."""
    check_id("namespace", namespace)
    return f"{prefix}/{namespace}/" if prefix else f"{namespace}/"


def s3_namespace_policy(store_uri: str, namespace: str) -> dict[str, Any]:
    """The IAM policy of one namespace's credential: its prefix and nothing else.

    Listing is limited by the `s3:prefix` condition key; objects by their ARN.
    The store reads, writes (uploads) and removes the leftovers of an
    interrupted run write, so Get, Put and Delete on the prefix's objects.
    """
    bucket, prefix = s3_location(store_uri)
    own = namespace_prefix(prefix, namespace)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListOwnNamespacePrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [own, f"{own}*"]}},
            },
            {
                "Sid": "ReadWriteOwnNamespaceObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": f"arn:aws:s3:::{bucket}/{own}*",
            },
        ],
    }


def postgres_role_name(namespace: str, role: str | None = None) -> str:
    """The namespace's role: `role`, or `recluster_<namespace>`; at most 63 bytes."""
    check_id("namespace", namespace)
    name = role or f"recluster_{namespace}"
    if not _ROLE.fullmatch(name) or len(name.encode()) > MAX_ROLE_BYTES:
        raise ValueError(
            f"role name {name!r}: expected 1-{MAX_ROLE_BYTES} lower-case letters, digits, "
            "'_', '$' or '-', starting with a letter or '_'"
            + ("" if role else "; name one with --role")
        )
    return name


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def postgres_namespace_sql(
    namespace: str,
    role: str,
    *,
    database: str,
    schema: str = "public",
    password: str | None = None,
) -> list[str]:
    """Statements (run by the tables' owner) giving `namespace` its own login role.

    Idempotent: the role is created if missing and its attributes reset, RLS is
    enabled on every table (the owner, the install's role, stays exempt: it
    polls every namespace), and the role's policy on each table is replaced.
    """
    ident, ns = quote_ident(role), quote_literal(namespace)
    attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"
    # Only a superuser may ALTER the privileged attributes, even to turn them off: an
    # existing role that has one is refused instead.
    privileged = "rolsuper OR rolbypassrls OR rolreplication OR rolcreaterole OR rolcreatedb"
    statements = [
        "DO $$ BEGIN CREATE ROLE " + ident + " " + attributes + "; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        f"DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {quote_literal(role)}"
        f" AND ({privileged})) THEN RAISE EXCEPTION 'role {role} may bypass row-level security,"
        " create roles or databases, or replicate: give the namespace a plain role';"
        " END IF; END $$",
        f"ALTER ROLE {ident} LOGIN NOINHERIT"
        + (f" PASSWORD {quote_literal(password)}" if password is not None else ""),
        f"GRANT CONNECT, TEMPORARY ON DATABASE {quote_ident(database)} TO {ident}",
        f"GRANT USAGE ON SCHEMA {quote_ident(schema)} TO {ident}",
    ]
    for table in POSTGRES_TABLES:
        qualified = f"{quote_ident(schema)}.{quote_ident(table)}"
        statements += [
            f"GRANT SELECT, INSERT ON {qualified} TO {ident}",
            f"ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY",
            f"DROP POLICY IF EXISTS {ident} ON {qualified}",
            f"CREATE POLICY {ident} ON {qualified} AS PERMISSIVE FOR ALL TO {ident}"
            f" USING (namespace = {ns}) WITH CHECK (namespace = {ns})",
        ]
    return statements
