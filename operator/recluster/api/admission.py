"""What the apiserver would say about an object, offline.

Applies the CRD schema's defaults, validates the object against the
openAPIV3Schema (unknown fields refused, as `kubectl apply` does with its
default strict field validation) and evaluates the CEL rules with a Python
CEL implementation. Used by `recluster validate` and by the tests that prove
the CRDs enforce the seed's rules.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from jsonschema import Draft4Validator, ValidationError, validators

from .crd import Schema, schema_of


@dataclass(frozen=True)
class Problem:
    """One reason an object is refused: where (dotted JSON path) and why."""

    path: str
    message: str
    source: str = "schema"


def join_path(parts: list[str | int] | tuple[str | int, ...]) -> str:
    """`['spec', 'collection_ids', 0]` -> `spec.collection_ids[0]`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def apply_defaults(schema: Schema, value: Any) -> Any:
    """Fill schema defaults into a copy of value, as the apiserver does before validating."""
    value = copy.deepcopy(value)
    _default_into(schema, value)
    return value


def _default_into(schema: Schema, value: Any) -> None:
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _default_into(sub, value[name])
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _default_into(schema["items"], item)


def _strict(schema: Schema) -> Schema:
    """A copy where objects with declared properties refuse undeclared ones."""
    out: Schema = {k: v for k, v in schema.items() if k != "x-kubernetes-validations"}
    if "properties" in out:
        out["properties"] = {n: _strict(s) for n, s in out["properties"].items()}
        if not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _strict(out["additionalProperties"])
    if "items" in out:
        out["items"] = _strict(out["items"])
    if out.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if out.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


_END_OF_TEXT = re.compile(r"(?<!\\)\$")


@cache
def python_pattern(pattern: str) -> re.Pattern[str]:
    """A schema `pattern` as Python reads it: `$` becomes `\\Z`.

    In a CRD's patterns (Go RE2, like ECMA-262 without the m flag) `$` is the end of
    the text; Python's `$` also matches before a final newline, so jsonschema's
    default check would admit `"col_abc\\n"`, which the apiserver refuses.
    """
    return re.compile(_END_OF_TEXT.sub(r"\\Z", pattern))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not python_pattern(pattern).search(instance):
        yield ValidationError(f"does not match {pattern!r}")


_Draft4EndOfText = validators.extend(Draft4Validator, {"pattern": _pattern})


@cache
def _validator(kind: str) -> Any:
    strict = _strict(schema_of(kind))
    # metadata is the apiserver's to check; the schema only caps the name's length.
    strict["properties"]["metadata"].pop("additionalProperties", None)
    return _Draft4EndOfText(strict)


def _message(error: Any) -> str:
    """jsonschema's message, phrased the way the apiserver words it."""
    kind, bound = error.validator, error.validator_value
    texts = {
        "maxLength": f"must be at most {bound} characters",
        "minLength": f"must be at least {bound} characters",
        "maxItems": f"must have at most {bound} items",
        "minItems": f"must have at least {bound} items",
        "pattern": f"must match the pattern {bound}",
        "type": f"must be of type {bound}",
    }
    if kind == "enum":
        return "must be one of " + ", ".join(repr(v) for v in bound)
    if kind in ("minimum", "maximum"):
        exclusive = error.schema.get(f"exclusive{kind.capitalize()}")
        word = ("greater" if kind == "minimum" else "less") + " than"
        return f"must be {word}{'' if exclusive else ' or equal to'} {bound}"
    return str(texts.get(kind, error.message))


@cache
def _program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def schema_problems(kind: str, obj: dict[str, Any]) -> list[Problem]:
    """Schema violations of an already defaulted object."""
    problems = []
    for error in sorted(_validator(kind).iter_errors(obj), key=lambda e: list(e.path)):
        path = join_path(list(error.path))
        message = _message(error)
        if error.validator == "additionalProperties":
            declared = set(error.schema.get("properties", {}))
            for name in sorted(set(error.instance) - declared):
                problems.append(Problem(join_path([*error.path, name]), "unknown field"))
            continue
        if error.validator == "uniqueItems":
            message = "must not list the same value twice"
        elif error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else error.message
            path = join_path([*error.path, missing])
            message = "required field is missing"
        problems.append(Problem(path, message, "schema"))
    return problems


def cel_problems(schema: Schema, value: Any, path: tuple[str | int, ...] = ()) -> list[Problem]:
    """Evaluate every x-kubernetes-validations rule that applies to value."""
    problems: list[Problem] = []
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:
            continue  # transition rules only apply to updates
        try:
            ok = bool(_program(rule["rule"]).evaluate({"self": json_to_cel(value)}))
        except Exception as exc:  # evaluation errors are refusals too
            ok, rule = False, {**rule, "message": f"{rule['message']} ({exc})"}
        if not ok:
            where = join_path(path) + rule.get("fieldPath", "")
            problems.append(Problem(where.lstrip("."), rule["message"], "cel"))
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                problems += cel_problems(sub, value[name], (*path, name))
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += cel_problems(schema["items"], item, (*path, index))
    return problems


def admit(kind: str, obj: dict[str, Any]) -> list[Problem]:
    """Everything the apiserver would refuse in obj (empty when it would admit it)."""
    schema = schema_of(kind)
    defaulted = apply_defaults(schema, obj)
    problems = schema_problems(kind, defaulted)
    if problems:
        return problems  # like the apiserver: CEL is not run on a schema-invalid object
    return cel_problems(schema, defaulted)
