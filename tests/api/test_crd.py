"""The CRD generator (api/crd.py): pydantic JSON Schema to structural OpenAPI v3, and the files."""

from __future__ import annotations

from pathlib import Path

import pytest

from recluster.api.crd import HEADER, StructuralSchemaError, render, to_structural, write_crds

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("recluster.io_clustertriggers.yaml", "recluster.io_clusterdefinitions.yaml")


def test_write_crds_writes_every_crd_into_each_directory(tmp_path: Path) -> None:
    first, second = tmp_path / "crds", tmp_path / "chart" / "crds"  # the second does not exist yet
    written = write_crds([first, second])
    assert written == [first / NAMES[0], first / NAMES[1], second / NAMES[0], second / NAMES[1]]
    for path in written:
        assert path.read_text() == (ROOT / "crds" / path.name).read_text()
    # Writing again replaces the files (make crds after a model change).
    (first / NAMES[0]).write_text("stale")
    write_crds([first])
    assert (first / NAMES[0]).read_text() == (ROOT / "crds" / NAMES[0]).read_text()


def test_render_keeps_the_models_order_and_writes_unicode_as_is() -> None:
    text = render({"spec": {"zeta": "naïve — ok", "alpha": 1}})
    assert text == HEADER + "spec:\n  zeta: naïve — ok\n  alpha: 1\n"


def test_a_union_of_shapes_is_refused_with_the_options() -> None:
    union = {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}
    with pytest.raises(StructuralSchemaError) as caught:
        to_structural(union, {})
    assert str(caught.value) == (
        "union of several shapes is not structural: [{'type': 'string'}, {'type': 'integer'}]"
    )


def test_optional_fields_become_their_type_with_the_outer_annotations() -> None:
    optional = {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}
    assert to_structural({**optional, "description": "d"}, {}) == {
        "description": "d",
        "type": "integer",
    }
    assert to_structural({**optional, "default": 3}, {}) == {"type": "integer", "default": 3}
    defs = {
        "A": {"type": "object", "description": "inner", "properties": {"a": {"type": "string"}}}
    }
    assert to_structural({"$ref": "#/$defs/A", "description": "outer"}, defs) == {
        "description": "outer",
        "type": "object",
        "properties": {"a": {"type": "string"}},
    }


def test_a_null_default_does_not_hide_the_inner_default() -> None:
    defs = {"E": {"type": "string", "enum": ["a", "b"], "default": "a"}}
    node = {"anyOf": [{"$ref": "#/$defs/E"}, {"type": "null"}], "default": None}
    assert to_structural(node, defs) == {
        "type": "string",
        "enum": ["a", "b"],
        "default": "a",
        "maxLength": 1,
    }


def test_int_or_string_keeps_only_its_marker() -> None:
    node = {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}
    assert to_structural(node, {}) == {"x-kubernetes-int-or-string": True}
    assert to_structural({"type": "string", "x-kubernetes-int-or-string": True}, {}) == {
        "x-kubernetes-int-or-string": True
    }


def test_openapi_v3_forms_of_json_schema_keywords() -> None:
    node = {"title": "T", "exclusiveMaximum": 1, "type": "number", "exclusiveMinimum": 0}
    assert list(to_structural(node, {}).items()) == [
        ("type", "number"),
        ("minimum", 0),
        ("exclusiveMinimum", True),
        ("maximum", 1),
        ("exclusiveMaximum", True),
    ]
    assert to_structural({"type": "string", "const": "only"}, {}) == {
        "type": "string",
        "enum": ["only"],
        "maxLength": 4,
    }
    assert to_structural({"type": "string", "enum": ["a", "abc"]}, {})["maxLength"] == 3
    assert to_structural({"type": "string", "format": "date-time"}, {})["maxLength"] == 64
    assert to_structural({"type": "string", "default": None}, {}) == {"type": "string"}
    dated = {"type": "string", "format": "date-time", "maxLength": 10}
    assert to_structural(dated, {})["maxLength"] == 10


def test_objects_without_properties_keep_unknown_fields() -> None:
    assert to_structural({"type": "object", "additionalProperties": True}, {}) == {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    mapping = {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}}
    assert to_structural(mapping, {}) == mapping
    of_models = {"type": "object", "additionalProperties": {"$ref": "#/$defs/S"}}
    assert to_structural(of_models, {"S": {"type": "string"}}) == {
        "type": "object",
        "additionalProperties": {"type": "string"},
    }
    listed = {"type": "array", "items": {"$ref": "#/$defs/S"}}
    assert to_structural(listed, {"S": {"type": "string", "title": "S"}}) == {
        "type": "array",
        "items": {"type": "string"},
    }
