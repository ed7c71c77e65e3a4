"""The committed CRDs are what the models generate, and a real apiserver would accept them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import pytest
from jsonschema import Draft4Validator

from recluster.api.crd import all_crds, render
from recluster.api.trigger import ClusterTriggerSpec, TriggerRequest

ROOT = Path(__file__).resolve().parents[2]
CRD_DIRS = [ROOT / "crds", ROOT / "charts" / "recluster" / "crds"]
FORBIDDEN_KEYS = {"$ref", "anyOf", "oneOf", "allOf", "not", "nullable", "title", "uniqueItems"}


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        yield from nodes(schema["items"], f"{path}[]")


def schemas() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, crd in all_crds().items():
        yield name, crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("directory", CRD_DIRS, ids=["crds", "chart"])
def test_committed_crds_match_the_models(directory: Path) -> None:
    expected = {name: render(crd) for name, crd in all_crds().items()}
    found = {p.name: p.read_text() for p in directory.glob("*.yaml")}
    assert found == expected, f"{directory} is stale: run `make crds` and commit the result"


@pytest.mark.parametrize(("name", "schema"), list(schemas()), ids=lambda v: str(v)[:30])
def test_schema_is_structural(name: str, schema: dict[str, Any]) -> None:
    for path, node in nodes(schema):
        assert not FORBIDDEN_KEYS & node.keys(), f"{name}{path}: {FORBIDDEN_KEYS & node.keys()}"
        untyped_ok = node.get("x-kubernetes-int-or-string") or node.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        assert "type" in node or untyped_ok, f"{name}{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        if node.get("type") == "object" and "properties" not in node and path != ".metadata":
            assert "additionalProperties" in node or untyped_ok, f"{name}{path} is opaque"


@pytest.mark.parametrize(("name", "schema"), list(schemas()), ids=lambda v: str(v)[:30])
def test_every_string_and_list_is_bounded_for_cel_cost(name: str, schema: dict[str, Any]) -> None:
    """The apiserver estimates CEL cost from maxLength/maxItems; unbounded ones blow the budget."""
    for path, node in nodes(schema):
        if node.get("type") == "string" and path.count(".") > 1:
            assert "maxLength" in node, f"{name}{path} string without maxLength"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{name}{path} list without maxItems"


@pytest.mark.parametrize(("name", "schema"), list(schemas()), ids=lambda v: str(v)[:30])
def test_rules_compile_and_defaults_are_valid(name: str, schema: dict[str, Any]) -> None:
    env = celpy.Environment()
    count = 0
    for path, node in nodes(schema):
        for rule in node.get("x-kubernetes-validations", []):
            env.compile(rule["rule"])
            assert rule["message"], f"{name}{path}: rule without message"
            count += 1
        if "default" in node:
            plain = {k: v for k, v in node.items() if not k.startswith("x-kubernetes")}
            assert Draft4Validator(plain).is_valid(node["default"]), f"{name}{path} default"
    assert count > 0


def test_spec_fields_carry_the_seed_descriptions() -> None:
    spec = dict(schemas())["recluster.io_clustertriggers.yaml"]["properties"]["spec"]
    for path, node in nodes(spec):
        if not path.endswith(("[]", ".*")):
            assert node.get("description"), f"spec{path} has no description (kubectl explain)"
    seed = TriggerRequest.model_fields
    for field, info in seed.items():
        assert spec["properties"][field]["description"] == info.description
    assert spec["properties"]["cluster_id"]["description"].startswith(
        "OPTIONAL. Reference to existing cluster definition."
    )
    assert set(spec["properties"]) == set(ClusterTriggerSpec.model_fields)


def test_crd_shape_for_kubectl() -> None:
    trigger = all_crds()["recluster.io_clustertriggers.yaml"]
    definition = all_crds()["recluster.io_clusterdefinitions.yaml"]
    assert trigger["spec"]["group"] == "recluster.io"
    assert trigger["spec"]["scope"] == "Namespaced"
    assert trigger["spec"]["names"]["shortNames"] == ["ctr"]
    assert definition["spec"]["names"]["shortNames"] == ["cdef"]
    version = trigger["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c]
    assert columns == [
        "Type", "Schedule", "Status", "Next", "Last", "Executions", "Failures", "Age",
    ]  # fmt: skip
    for column in version["additionalPrinterColumns"]:
        assert column["jsonPath"].startswith((".spec.", ".status.", ".metadata."))


RESERVED = [
    "RECLUSTER_NAMESPACE",
    "RECLUSTER_STORE_URI",
    "AWS_SECRET_ACCESS_KEY",
    "PGPASSWORD",
    "PYTHONWARNINGS",
    "PYTHONSTARTUP",
    "LD_PRELOAD",
    "BROWSER",
    "HTTPS_PROXY",
    "PATH",
]


@pytest.mark.parametrize("name", RESERVED)
def test_reserved_env_names_are_refused_by_the_models_and_the_crd(name: str) -> None:
    """Issue 12: a trigger's env must not reach the Job's identity, credentials or runtime."""
    from recluster.api.admission import admit
    from recluster.api.trigger import ClusterTriggerSpec

    spec = {
        "trigger_type": "interval",
        "schedule_config": {"interval_seconds": 3600, "start_immediately": False},
        "execution_config": {"collection_ids": ["c"],
                             "config": {"algorithm": "kmeans", "n_clusters": 2}},
        "job_template": {"env": [{"name": "OMP_NUM_THREADS", "value": "2"},
                                 {"name": name, "value": "x"}]},
    }  # fmt: skip
    with pytest.raises(ValueError, match=f"{name} is reserved"):
        ClusterTriggerSpec.model_validate(spec)
    problems = admit("ClusterTrigger", {"apiVersion": "recluster.io/v1alpha1",
                                        "kind": "ClusterTrigger", "metadata": {"name": "t"},
                                        "spec": spec})  # fmt: skip
    assert [(p.path, "reserved" in p.message) for p in problems] == [
        ("spec.job_template.env[1].name", True)
    ]
