"""The job policy: what an install lets job_template choose (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from recluster.api.jobtemplate import JobTemplate
from recluster.core.policy import PERMISSIVE, JobPolicy, allowed, violations


def template(**fields: Any) -> JobTemplate:
    return JobTemplate.model_validate(fields)


CHOICES = template(
    image="registry.example/team-a/recluster:2",
    serviceAccountName="clusterer",
    nodeSelector={"pool": "batch", "zone": "eu-1"},
    tolerations=[{"key": "batch", "operator": "Exists"}, {"operator": "Exists"}],
    env=[{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
         {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "tuning", "key": "mode"}}},
         {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
         {"name": "OMP_NUM_THREADS", "value": "2"}],
)  # fmt: skip


def test_an_empty_policy_allows_nothing_beyond_the_install() -> None:
    assert (
        violations(template(backoffLimit=0, env=[{"name": "A", "value": "1"}]), JobPolicy()) == []
    )
    assert violations(CHOICES, JobPolicy()) == [
        "job_template.image 'registry.example/team-a/recluster:2' is not allowed (allowed: none)",
        "job_template.serviceAccountName 'clusterer' is not allowed (allowed: none)",
        "job_template.nodeSelector pool=batch is not allowed",
        "job_template.nodeSelector zone=eu-1 is not allowed",
        "job_template.tolerations[0] key 'batch' is not allowed",
        "job_template.tolerations[1] key '' is not allowed",
        "job_template.env[0].valueFrom.secretKeyRef: Secret 'hf' is not allowed",
        "job_template.env[1].valueFrom.configMapKeyRef: ConfigMap 'tuning' is not allowed",
    ]


def test_a_policy_allows_exactly_what_it_lists() -> None:
    policy = JobPolicy.from_json({
        "images": ["registry.example/team-a/*"], "serviceAccounts": ["clusterer"],
        "nodeSelectors": {"pool": ["batch"], "zone": ["eu-*"]}, "tolerationKeys": ["batch"],
        "secrets": ["hf"], "configMaps": ["tuning"],
    })  # fmt: skip
    assert violations(CHOICES, policy) == ["job_template.tolerations[1] key '' is not allowed"]
    assert violations(template(image="registry.example/team-b/x:1"), policy) == [
        "job_template.image 'registry.example/team-b/x:1' is not allowed "
        "(allowed: registry.example/team-a/*)"
    ]
    assert violations(template(nodeSelector={"pool": "gpu"}), policy) == [
        "job_template.nodeSelector pool=gpu is not allowed"
    ]
    two = JobPolicy(service_accounts=("clusterer", "team-*"))
    assert violations(template(serviceAccountName="default"), two) == [
        "job_template.serviceAccountName 'default' is not allowed (allowed: clusterer, team-*)"
    ]
    assert violations(CHOICES, PERMISSIVE) == []


def test_prefix_patterns() -> None:
    assert allowed("a/b:1", ["a/*"]) and allowed("x", ["*"]) and allowed("x", ["x"])
    assert not allowed("ab", ["a"]) and not allowed("b/a", ["a/*"]) and not allowed("x", [])
    assert not allowed("a-b", ["a/*"]), "the prefix is everything before the *, slash too"


def test_every_env_reference_is_checked_after_plain_values() -> None:
    env = [
        {"name": "PLAIN", "value": "1"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
    ]
    assert violations(template(env=env), JobPolicy()) == [
        "job_template.env[1].valueFrom.secretKeyRef: Secret 'hf' is not allowed"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"image": ["x"]}, "unknown job policy fields: image"),
        ({"secret": [], "image": ["x"]}, "unknown job policy fields: image, secret"),
        ({"images": "x"}, "job policy images must be a list of strings"),
        (
            {"nodeSelectors": {"pool": "batch"}},
            "job policy nodeSelectors must map label keys to lists of values",
        ),
    ],
)
def test_bad_policies_are_refused_naming_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        JobPolicy.from_json(data)
    assert str(refused.value) == message
