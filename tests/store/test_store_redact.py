"""Credentials never appear in a store's messages: URL userinfo, query parameters, conninfo."""

from __future__ import annotations

import pytest

from recluster.store._common import redact


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("postgresql://u:pw@db:5432/x?sslmode=require", "postgresql://u:***@db:5432/x?sslmode=require"),
        ("postgresql://db/x?password=hunter2&sslmode=require",
         "postgresql://db/x?password=***&sslmode=require"),
        ("postgresql://db/x?sslpassword=abc", "postgresql://db/x?sslpassword=***"),
        ("host=db password=hunter2 dbname=x", "host=db password=*** dbname=x"),
        ("host=db password='a b\\' c' user=u", "host=db password=*** user=u"),
        ("host=db PASSWORD = x user=u", "host=db PASSWORD = *** user=u"),
        ("s3://bucket/x?aws_secret_access_key=zz&region=eu", "s3://bucket/x?aws_secret_access_key=***&region=eu"),
        ("postgresql://db/x", "postgresql://db/x"),
        ("/var/lib/recluster/store", "/var/lib/recluster/store"),
    ],
)  # fmt: skip
def test_redact(uri: str, shown: str) -> None:
    assert redact(uri) == shown
