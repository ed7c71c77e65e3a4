"""Identifiers checked in Python refuse a trailing newline, as the apiserver does.

Python's `$` also matches before a final newline, so `^...$` patterns used with
`re.match` accepted `"team-a\\n"`; pydantic's `pattern=` (Rust regex) and the
apiserver (Go RE2) read `$` as the end of the text and refuse it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from recluster.api.admission import admit
from recluster.api.base import Identifier, name_problem, namespace_problem
from recluster.store.types import check_id

TRIGGER: dict[str, Any] = {
    "apiVersion": "recluster.io/v1alpha1",
    "kind": "ClusterTrigger",
    "metadata": {"name": "nightly"},
    "spec": {
        "trigger_type": "interval",
        "schedule_config": {"interval_seconds": 3600, "start_immediately": False},
        "execution_config": {
            "collection_ids": ["col_abc123"],
            "config": {"algorithm": "kmeans", "n_clusters": 3},
        },
    },
}


def test_object_and_namespace_names() -> None:
    assert name_problem("nightly", 52) is None
    assert "not a valid name" in str(name_problem("nightly\n", 52))
    assert namespace_problem("team-a") is None
    assert "not a valid namespace" in str(namespace_problem("team-a\n"))


def test_store_ids() -> None:
    assert check_id("collection", "col_abc123") == "col_abc123"
    with pytest.raises(ValueError, match="invalid collection"):
        check_id("collection", "col_abc123\n")


def test_pydantic_identifiers_already_refused_it() -> None:
    """The models' `pattern=` keeps `$`: Rust's regex reads it as the end of the text."""
    TypeAdapter(Identifier).validate_python("col_abc123")
    with pytest.raises(ValidationError, match="should match pattern"):
        TypeAdapter(Identifier).validate_python("col_abc123\n")


def test_offline_admission_reads_patterns_as_the_apiserver_does() -> None:
    assert admit("ClusterTrigger", TRIGGER) == []
    bad = copy.deepcopy(TRIGGER)
    bad["spec"]["execution_config"]["collection_ids"] = ["col_abc123\n"]
    [problem] = admit("ClusterTrigger", bad)
    assert problem.path == "spec.execution_config.collection_ids[0]"
    assert problem.message.startswith("must match the pattern")
