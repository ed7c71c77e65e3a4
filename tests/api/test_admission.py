"""What the offline apiserver (api/admission.py) says about an object: where and why, exactly.

tests/test_validate.py checks that each seed rule is refused at the right field;
these tests pin the words and the machinery: defaults, the strict schema, the
apiserver's phrasing of each JSON Schema keyword, CEL evaluation.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from recluster.api.admission import (
    Problem,
    _strict,
    _validator,
    admit,
    apply_defaults,
    cel_problems,
    join_path,
    schema_problems,
)
from recluster.api.base import ID_PATTERN
from recluster.api.crd import schema_of

Body = dict[str, Any]


@pytest.fixture(autouse=True)
def _fresh_validators() -> None:
    """Build the strict validators from the code under test, not from an earlier test's cache.

    A mutation run forks each mutant's tests from a process that has built them already.
    """
    _validator.cache_clear()


def trigger(**spec: Any) -> Body:
    body: Body = {
        "apiVersion": "recluster.io/v1alpha1",
        "kind": "ClusterTrigger",
        "metadata": {"name": "nightly", "namespace": "default"},
        "spec": {
            "trigger_type": "interval",
            "schedule_config": {"interval_seconds": 60, "start_immediately": False},
            "execution_config": {
                "collection_ids": ["col_abc123"],
                "config": {"algorithm": "kmeans", "n_clusters": 5},
            },
        },
    }
    body["spec"].update(spec)
    return body


def config(**changes: Any) -> Body:
    """The execution_config with its config (the clustering parameters) changed."""
    cfg: Body = {"algorithm": "kmeans", "n_clusters": 5}
    cfg.update(changes)
    return {"collection_ids": ["col_abc123"], "config": cfg}


def webhook(**changes: Any) -> Body:
    hook: Body = {"url": "https://hooks.example.com/x", "secret_ref": {"name": "hook"}}
    hook.update(changes)
    return {"webhooks": [hook]}


def test_join_path() -> None:
    assert join_path(["spec", "collection_ids", 0]) == "spec.collection_ids[0]"
    assert join_path([0, "name"]) == "[0].name"
    assert join_path(("spec", "env", 1, "valueFrom")) == "spec.env[1].valueFrom"
    assert join_path([]) == ""


def test_defaults_are_filled_in_a_copy_down_to_list_items() -> None:
    body = trigger(notifications=webhook())
    original = copy.deepcopy(body)
    defaulted = apply_defaults(schema_of("ClusterTrigger"), body)
    assert body == original
    spec = defaulted["spec"]
    assert (spec["status"], spec["concurrency_policy"], spec["max_consecutive_failures"]) == (
        "active",
        "Forbid",
        5,
    )
    assert (spec["successful_jobs_history_limit"], spec["failed_jobs_history_limit"]) == (3, 1)
    hook = spec["notifications"]["webhooks"][0]
    assert hook["timeout_seconds"] == 10
    assert hook["secret_ref"] == {"name": "hook", "key": "secret"}


def test_set_values_are_kept_and_absent_objects_are_not_made() -> None:
    defaulted = apply_defaults(schema_of("ClusterTrigger"), trigger(concurrency_policy="Replace"))
    assert defaulted["spec"]["concurrency_policy"] == "Replace"
    assert "notifications" not in defaulted["spec"]
    assert "status" not in defaulted


def test_a_filled_default_is_a_copy_of_the_schemas_down_to_nested_values() -> None:
    schema = {"properties": {"a": {"default": {"b": [1]}}}}
    filled = apply_defaults(schema, {})
    filled["a"]["b"].append(2)
    assert schema == {"properties": {"a": {"default": {"b": [1]}}}}


def test_defaults_need_a_list_schema_to_reach_items() -> None:
    schema = {"type": "array", "items": {"properties": {"a": {"default": 1}}}}
    assert apply_defaults(schema, [{}, {"a": 2}]) == [{"a": 1}, {"a": 2}]
    assert apply_defaults({"properties": {"a": {"default": 1}}}, [{}]) == [{}]
    assert apply_defaults({"properties": {"a": {"default": 1}}}, "text") == "text"


LONG = "x" * 2049
CASES: list[tuple[str, Body, list[Problem]]] = [
    ("max-length", trigger(description=LONG),
     [Problem("spec.description", "must be at most 2048 characters")]),
    ("min-length", trigger(notifications=webhook(url="")),
     [Problem("spec.notifications.webhooks[0].url", "must be at least 1 characters")]),
    ("unknown-field-then-more", trigger(zeta=1, description=LONG),
     [Problem("spec.zeta", "unknown field"),
      Problem("spec.description", "must be at most 2048 characters")]),
    ("min-items", trigger(execution_config={"collection_ids": [], "config": {
        "algorithm": "kmeans", "n_clusters": 5}}),
     [Problem("spec.execution_config.collection_ids", "must have at least 1 items")]),
    ("max-items", trigger(execution_config={"collection_ids": [f"c{i}" for i in range(101)],
                                            "config": {"algorithm": "kmeans", "n_clusters": 5}}),
     [Problem("spec.execution_config.collection_ids", "must have at most 100 items")]),
    ("pattern", trigger(execution_config=None, cluster_id="bad id"),
     [Problem("spec.cluster_id", f"must match the pattern {ID_PATTERN}")]),
    ("type", trigger(schedule_config={"interval_seconds": "60", "start_immediately": False}),
     [Problem("spec.schedule_config.interval_seconds", "must be of type integer")]),
    ("enum", trigger(trigger_type="webhook"),
     [Problem("spec.trigger_type", "must be one of 'cron', 'interval', 'event', 'conditional'")]),
    ("minimum", trigger(schedule_config={"interval_seconds": 9, "start_immediately": False}),
     [Problem("spec.schedule_config.interval_seconds", "must be greater than or equal to 10")]),
    ("maximum", trigger(max_consecutive_failures=1001),
     [Problem("spec.max_consecutive_failures", "must be less than or equal to 1000")]),
    ("exclusive-minimum", trigger(trigger_type="conditional", schedule_config={
        "condition_type": "drift", "threshold": 0, "metric": "cosine_drift",
        "check_interval_seconds": 60}),
     [Problem("spec.schedule_config.threshold", "must be greater than 0")]),
    ("exclusive-maximum", trigger(execution_config=config(algorithm="optics", n_clusters=None,
                                                          xi=1)),
     [Problem("spec.execution_config.config.xi", "must be less than 1")]),
    ("unique-items", trigger(execution_config={"collection_ids": ["a", "a"], "config": {
        "algorithm": "kmeans", "n_clusters": 5}}),
     [Problem("spec.execution_config.collection_ids", "must not list the same value twice")]),
    ("required", trigger(trigger_type=None),
     [Problem("spec.trigger_type", "required field is missing")]),
    ("unknown-fields", trigger(zeta=1, alpha=2),
     [Problem("spec.alpha", "unknown field"), Problem("spec.zeta", "unknown field")]),
    ("unknown-in-a-list-item", trigger(job_template={"env": [{"name": "A", "valu": "1"}]}),
     [Problem("spec.job_template.env[0].valu", "unknown field")]),
    ("map-values", trigger(job_template={"nodeSelector": {"zone": "z" * 318}}),
     [Problem("spec.job_template.nodeSelector.zone", "must be at most 317 characters")]),
    ("map-size", trigger(execution_config={**config(), "runtime": "ray",
                                           "ray": {"cluster_selector": {}}}),
     [Problem("spec.execution_config.ray.cluster_selector", "{} should be non-empty")]),
    ("int-or-string", trigger(job_template={"resources": {"limits": {"cpu": 1.5}}}),
     [Problem("spec.job_template.resources.limits.cpu", "must be of type ['integer', 'string']")]),
    ("metadata-name", {**trigger(), "metadata": {"name": "n" * 53}},
     [Problem("metadata.name", "must be at most 52 characters")]),
    ("schema-before-cel", trigger(description=LONG, trigger_type="cron"),
     [Problem("spec.description", "must be at most 2048 characters")]),
]  # fmt: skip


def _without_nones(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nones(v) for k, v in value.items() if v is not None}
    return value


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_schema_problems_in_the_apiservers_words(body: Body, expected: list[Problem]) -> None:
    assert admit("ClusterTrigger", _without_nones(body)) == expected


def test_what_the_strict_schema_still_admits() -> None:
    body = trigger(
        job_template={
            "resources": {"limits": {"cpu": 2, "memory": "4Gi"}},
            "nodeSelector": {"zone": "a"},
        }
    )
    body["metadata"] |= {"labels": {"team": "a"}, "uid": "1", "resourceVersion": "7"}
    body["status"] = {"execution_count": 1}
    assert admit("ClusterTrigger", body) == []


def test_objects_that_preserve_unknown_fields_stay_open() -> None:
    schema = {
        "type": "object",
        "properties": {
            "open": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "closed": {"type": "object", "properties": {"a": {"type": "string"}}},
        },
        "x-kubernetes-validations": [{"rule": "true", "message": "m"}],
    }
    strict = _strict(schema)
    assert "additionalProperties" not in strict["properties"]["open"]
    assert strict["properties"]["closed"]["additionalProperties"] is False
    assert strict["additionalProperties"] is False
    assert "x-kubernetes-validations" not in strict
    assert "x-kubernetes-validations" in schema  # the CRD's own schema is not changed


def test_more_problems_are_sorted_by_path() -> None:
    body = trigger(description=LONG, failed_jobs_history_limit=-1)
    body["spec"]["schedule_config"]["interval_seconds"] = 1
    assert [p.path for p in schema_problems("ClusterTrigger", body)] == [
        "spec.description",
        "spec.failed_jobs_history_limit",
        "spec.schedule_config.interval_seconds",
    ]


def test_cel_rules_name_the_field_and_the_reason() -> None:
    body = trigger(trigger_type="cron")
    assert admit("ClusterTrigger", body) == [
        Problem(
            "spec.schedule_config.cron_expression",
            "schedule_config.cron_expression is required when trigger_type is cron",
            "cel",
        ),
        Problem(
            "spec.schedule_config.timezone",
            "schedule_config.timezone is required when trigger_type is cron",
            "cel",
        ),
        Problem(
            "spec.schedule_config.interval_seconds",
            "schedule_config.interval_seconds belongs to trigger_type interval only",
            "cel",
        ),
        Problem(
            "spec.schedule_config.start_immediately",
            "schedule_config.start_immediately belongs to trigger_type interval only",
            "cel",
        ),
    ]


def test_cel_rules_reach_list_items() -> None:
    env = [{"name": "HOME"}, {"name": "OK", "value": "1"}, {"name": "PATH"}]
    assert [
        (p.path, p.source) for p in admit("ClusterTrigger", trigger(job_template={"env": env}))
    ] == [
        ("spec.job_template.env[0].name", "cel"),
        ("spec.job_template.env[2].name", "cel"),
    ]


def test_cel_rule_without_field_path_is_reported_at_the_object() -> None:
    schema = {
        "properties": {
            "a": {"x-kubernetes-validations": [{"rule": "self.size() == 1", "message": "one"}]}
        }
    }
    assert cel_problems(schema, {"a": [1, 2]}) == [Problem("a", "one", "cel")]
    assert cel_problems(schema, {"a": [1]}) == []
    assert cel_problems(schema, {"b": [1, 2]}) == []


def test_paths_keep_the_names_of_the_fields() -> None:
    rule = {"rule": "self > 1", "message": "more than one"}
    schema = {"properties": {"X.y": {"x-kubernetes-validations": [rule]}}}
    assert cel_problems(schema, {"X.y": 1}) == [Problem("X.y", "more than one", "cel")]


def test_transition_rules_are_not_run_on_creation_but_the_others_are() -> None:
    rules = [
        {"rule": "self == oldSelf", "message": "immutable"},
        {"rule": "self > 1", "message": "more than one", "fieldPath": ".count"},
    ]
    assert cel_problems({"x-kubernetes-validations": rules}, 1) == [
        Problem("count", "more than one", "cel")
    ]


def test_a_rule_that_cannot_be_evaluated_refuses_with_its_error() -> None:
    rules = [{"rule": "self.missing > 1", "message": "needs missing", "fieldPath": ".missing"}]
    problems = cel_problems({"x-kubernetes-validations": rules}, {"present": 1}, ("spec",))
    assert len(problems) == 1
    assert problems[0].path == "spec.missing"
    assert problems[0].source == "cel"
    assert problems[0].message.startswith("needs missing (")
    assert problems[0].message.endswith(")")


def test_definitions_are_checked_against_their_own_schema() -> None:
    body = {
        "apiVersion": "recluster.io/v1alpha1",
        "kind": "ClusterDefinition",
        "metadata": {"name": "n" * 60},
        "spec": {"cluster_id": "c", "execution_config": config(n_clusters=None)},
    }
    assert admit("ClusterDefinition", _without_nones(body)) == [
        Problem(
            "spec.execution_config.config.n_clusters",
            "n_clusters is required when algorithm is kmeans",
            "cel",
        )
    ]
