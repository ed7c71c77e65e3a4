"""Identifiers checked in Python refuse a trailing newline, as the apiserver does.

Python's `$` also matches before a final newline, so `^...$` patterns used with
`re.match` accepted `"team-a\\n"`; pydantic's `pattern=` (Rust regex) and the
apiserver (Go RE2) read `$` as the end of the text and refuse it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from recluster.api.admission import admit
from recluster.api.base import Identifier, name_problem, namespace_problem
from recluster.store.types import check_id

# A seed example as its manifest.
TRIGGER: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "examples" / "interval-every-6-hours.yaml").read_text()
)


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
    bad["spec"]["execution_config"]["collection_ids"] = ["col_products\n"]
    [problem] = admit("ClusterTrigger", bad)
    assert problem.path == "spec.execution_config.collection_ids[0]"
    assert problem.message.startswith("must match the pattern")
