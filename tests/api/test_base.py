"""Shared building blocks of the models (api/base.py): names and located errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from recluster.api.base import name_problem, namespace_problem, reject


def test_reject_locates_each_problem_at_its_field() -> None:
    with pytest.raises(ValidationError) as caught:
        reject("TriggerRequest", [(("spec", "a"), "first"), (("b",), "second")])
    assert caught.value.title == "TriggerRequest"
    assert [(e["loc"], e["msg"], e["type"]) for e in caught.value.errors()] == [
        (("spec", "a"), "first", "rule"),
        (("b",), "second", "rule"),
    ]


def test_reject_without_problems_returns() -> None:
    assert reject("TriggerRequest", []) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (None, "required field is missing"),
        ("", "required field is missing"),
        ("a" * 10, None),
        ("a" * 11, "must be at most 10 characters (has 11)"),
        ("a.b-c", None),
        (
            "Team",
            "'Team' is not a valid name: lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit",
        ),
        (
            "team-a\n",  # a full match: Python's `$` would admit the newline
            "'team-a\\n' is not a valid name: lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit",
        ),
    ],
)
def test_name_problem(name: str | None, problem: str | None) -> None:
    assert name_problem(name, 10) == problem


WHY = "(RFC 1123 label, at most 63 chars)"


@pytest.mark.parametrize(
    ("namespace", "problem"),
    [
        (None, None),
        ("team-a", None),
        ("a" * 63, None),
        ("a" * 64, f"{'a' * 64!r} is not a valid namespace name {WHY}"),
        ("a.b", f"'a.b' is not a valid namespace name {WHY}"),
        ("", f"'' is not a valid namespace name {WHY}"),
    ],
)
def test_namespace_problem(namespace: str | None, problem: str | None) -> None:
    assert namespace_problem(namespace) == problem
