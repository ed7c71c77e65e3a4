"""Pure pieces of the emulator: selectors, patches, URL parsing, CRD reading."""

from __future__ import annotations

from typing import Any

import pytest
from emulator_helpers import CRDS

from recluster.emulator import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    definitions_from_crd,
    load_crd_documents,
    parse_api_path,
)
from recluster.emulator.patching import (
    JsonPatchError,
    JsonPatchTestFailed,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("", {}, True),
        ("a=b", {"a": "b"}, True),
        ("a==b", {"a": "c"}, False),
        ("a!=b", {}, True),
        ("a!=b", {"a": "b"}, False),
        ("a in (x, y)", {"a": "y"}, True),
        ("a in (x,y)", {}, False),
        ("a notin (x,y)", {}, True),
        ("a notin (x,y)", {"a": "x"}, False),
        ("a", {"a": ""}, True),
        ("!a", {"a": ""}, False),
        ("a,b=1,c notin (z)", {"a": "0", "b": "1"}, True),
        ("recluster.io/trigger=t1", {"recluster.io/trigger": "t1"}, True),
        ("n>3", {"n": "4"}, True),
        ("n<3", {"n": "4"}, False),
    ],
)
def test_label_selector_matching(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.parse(selector).matches(labels) is expected


@pytest.mark.parametrize("bad", ["a in (x", "a=b=c", "=b", "a in x", "a,,b", "n>x", "-a=b"])
def test_label_selector_rejects_garbage(bad: str) -> None:
    with pytest.raises(SelectorError):
        LabelSelector.parse(bad)


def test_field_selector_fields_are_per_resource() -> None:
    obj = {"metadata": {"name": "n", "namespace": "ns"}, "involvedObject": {"name": "x"}}
    assert FieldSelector.parse("metadata.name=n", group="g", plural="p").matches(obj)
    assert not FieldSelector.parse("metadata.namespace!=ns", group="g", plural="p").matches(obj)
    events = FieldSelector.parse("involvedObject.name==x", group="", plural="events")
    assert events.matches(obj)
    with pytest.raises(SelectorError):
        FieldSelector.parse("involvedObject.name=x", group="g", plural="p")


def test_merge_patch_rfc7386() -> None:
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2], "x": 1}
    assert merge_patch(target, {"a": {"b": None, "d": 3}, "l": [3], "x": None}) == {
        "a": {"c": 2, "d": 3},
        "l": [3],
    }
    assert target == {"a": {"b": 1, "c": 2}, "l": [1, 2], "x": 1}  # not mutated
    assert strategic_merge_patch({"a": [1]}, {"a": [2], "$patch": "replace"}) == {"a": [2]}


def test_json_patch_rfc6902() -> None:
    doc: dict[str, Any] = {"metadata": {"resourceVersion": "5", "finalizers": ["a"]}, "l": [1]}
    result = json_patch(
        doc,
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "5"},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "b"},
            {"op": "replace", "path": "/l/0", "value": 9},
            {"op": "copy", "from": "/l", "path": "/m"},
            {"op": "move", "from": "/m", "path": "/n"},
            {"op": "add", "path": "/a~1b", "value": 1},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ],
    )
    expected = {"metadata": {"resourceVersion": "5", "finalizers": ["b"]}, "l": [9], "n": [9]}
    assert result == {**expected, "a/b": 1}
    assert doc["metadata"]["finalizers"] == ["a"]  # atomic: the input is untouched
    with pytest.raises(JsonPatchTestFailed):
        json_patch(doc, [{"op": "test", "path": "/metadata/resourceVersion", "value": "4"}])
    with pytest.raises(JsonPatchError):
        json_patch(doc, [{"op": "remove", "path": "/missing"}])
    with pytest.raises(JsonPatchError):
        json_patch(doc, [{"op": "add", "path": "/l/5", "value": 1}])


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/namespaces", ("", "v1", "namespaces", None, None, None)),
        ("/api/v1/namespaces/default", ("", "v1", "namespaces", None, "default", None)),
        ("/api/v1/namespaces/x/status", ("", "v1", "namespaces", None, "x", "status")),
        ("/api/v1/namespaces/x/events", ("", "v1", "events", "x", None, None)),
        (
            "/apis/batch/v1/namespaces/x/jobs/j/status",
            ("batch", "v1", "jobs", "x", "j", "status"),
        ),
        ("/apis/g.io/v1/things", ("g.io", "v1", "things", None, None, None)),
        ("/api/v1/watch/namespaces/x/pods", ("", "v1", "pods", "x", None, None)),
    ],
)
def test_parse_api_path(path: str, expected: tuple[Any, ...]) -> None:
    parsed = parse_api_path(path)
    assert parsed is not None
    got = (parsed.group, parsed.version, parsed.plural, parsed.namespace, parsed.name)
    assert (*got, parsed.subresource) == expected


@pytest.mark.parametrize("path", ["/", "/api", "/api/v1", "/apis", "/apis/batch", "/apis/batch/v1"])
def test_discovery_paths_are_not_resource_paths(path: str) -> None:
    assert parse_api_path(path) is None


def test_definitions_come_from_the_repository_crds() -> None:
    defs = {d.plural: d for doc in load_crd_documents([CRDS]) for d in definitions_from_crd(doc)}
    ctr = defs["clustertriggers"]
    assert (ctr.group, ctr.version, ctr.kind, ctr.namespaced) == (
        "recluster.io",
        "v1alpha1",
        "ClusterTrigger",
        True,
    )
    assert "status" in ctr.subresources and "ctr" in ctr.shortnames
    assert "clusterdefinitions" in defs
