"""Chart defaults that work together on a real cluster (issue 11, items 6 and 12).

- The default store is a ReadWriteOnce claim, mounted by the operator and by
  every Job. Such a claim attaches to one node: pods of one node may share it,
  pods of two nodes get a Multi-Attach error. So by default the operator runs
  one replica (recreated, never surged onto another node) and every Job must
  run on the operator's node; values that would spread the claim over nodes
  are refused with the reason.
- Every Job has a deadline (with concurrency_policy Forbid a stuck Job would
  block its trigger forever) and resources, unless its trigger's job_template
  says otherwise.
- The chart's Kubernetes floor is the first release that knows what the CRDs use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import (
    CHART,
    COMBINATIONS,
    NAMESPACE,
    OPERATOR,
    RELEASE,
    Helm,
    Render,
    env_of,
    job_from_chart,
    kube_version_floor,
    operator_container,
    values_file,
)

from recluster.api.jobtemplate import JobTemplate

DEFAULT_RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}


# --- the store's claim and where pods run -------------------------------------------


def test_the_default_claim_holds_every_job_on_the_operators_node(render: Render) -> None:
    rendered = render({})
    claim = rendered.one("PersistentVolumeClaim", "rel-recluster-store")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    deployment = rendered.one("Deployment", OPERATOR)
    assert deployment["spec"]["replicas"] == 1
    # a rolling update would surge a second pod, maybe onto another node: it would never start
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = job_from_chart(rendered, namespace=NAMESPACE)["spec"]["template"]["spec"]
    (term,) = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["namespaces"] == [NAMESPACE], "the operator runs in the release namespace"
    operator_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = term["labelSelector"]["matchLabels"]
    assert selector.items() <= operator_labels.items(), "the term selects the operator's pods"
    assert selector["app.kubernetes.io/component"] == "operator", "and no other component's"
    assert {"name": "store", "persistentVolumeClaim": {"claimName": "rel-recluster-store"}} in (
        pod["volumes"]
    )


@pytest.mark.parametrize("combination", ["shared-store", "s3", "postgresql", "everything"])
def test_stores_every_node_can_mount_leave_jobs_and_replicas_free(
    render: Render, combination: str
) -> None:
    """ReadWriteMany, S3, PostgreSQL and a volume of the user's choosing: no placement rule."""
    rendered = render(COMBINATIONS[combination])
    assert "RECLUSTER_JOB_AFFINITY" not in env_of(operator_container(rendered))
    assert "strategy" not in rendered.one("Deployment", OPERATOR)["spec"]
    assert "affinity" not in job_from_chart(rendered)["spec"]["template"]["spec"]


def test_a_trigger_cannot_move_its_job_away_from_the_store(render: Render) -> None:
    template = JobTemplate.model_validate({"nodeSelector": {"pool": "batch"}})
    pod = job_from_chart(render({}), NAMESPACE, template)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "batch"}
    assert "podAffinity" in pod["affinity"], "the store's rule stays; both must hold"


MULTI_ATTACH = (
    "with a ReadWriteOnce store claim",
    "attaches to one node at a time",
    "Multi-Attach",
    "Keep operator.replicas=1",
    "store.parquet.persistence.accessModes [ReadWriteMany]",
    "store.type=s3",
    "store.type=postgresql",
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"operator": {"replicas": 2}}, ("operator.replicas=2", *MULTI_ATTACH)),
        (
            {
                "operator": {"replicas": 3},
                "store": {"parquet": {"persistence": {"accessModes": ["ReadWriteOnce"]}}},
            },
            ("operator.replicas=3", '["ReadWriteOnce"]', *MULTI_ATTACH),
        ),
        (
            {"store": {"parquet": {"persistence": {"accessModes": ["ReadWriteOncePod"]}}}},
            (
                "store.parquet.persistence.accessModes ReadWriteOncePod admits one pod",
                "the operator and every Job mount the store",
                "ReadWriteMany",
            ),
        ),
    ],
)
def test_values_that_cannot_work_together_are_refused_saying_why(
    helm: Helm, tmp_path: Path, values: dict[str, Any], expected: tuple[str, ...]
) -> None:
    path = values_file(tmp_path, values)
    done = helm.run("template", RELEASE, CHART, "--namespace", NAMESPACE, "-f", path, check=False)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" not in done.stderr
    for part in expected:
        assert part in done.stderr, done.stderr


@pytest.mark.parametrize(
    "values",
    [
        {"store": {"type": "s3", "s3": {"uri": "s3://embeddings/recluster"}}},
        {"store": {"parquet": {"volume": {"nfs": {"server": "nfs.local", "path": "/store"}}}}},
        # a claim that is not created here is the user's to place
        {"store": {"parquet": {"persistence": {"create": False}}}},
    ],
)
def test_several_replicas_are_fine_without_a_created_single_node_claim(
    render: Render, values: dict[str, Any]
) -> None:
    rendered = render({**values, "operator": {"replicas": 2}})
    assert rendered.one("Deployment", OPERATOR)["spec"]["replicas"] == 2
    assert rendered.one("PodDisruptionBudget", OPERATOR)["spec"]["maxUnavailable"] == 1


# --- deadline and resources of every Job ------------------------------------------------


def test_every_job_has_a_deadline_and_resources_by_default(render: Render) -> None:
    rendered = render({})
    env = env_of(operator_container(rendered))
    assert env["RECLUSTER_JOB_ACTIVE_DEADLINE_SECONDS"]["value"] == "21600"
    assert json.loads(env["RECLUSTER_JOB_RESOURCES"]["value"]) == DEFAULT_RESOURCES
    job = job_from_chart(rendered, NAMESPACE)
    assert job["spec"]["activeDeadlineSeconds"] == 6 * 3600
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"] == DEFAULT_RESOURCES


def test_the_job_template_wins_over_the_chart_defaults(render: Render) -> None:
    template = JobTemplate.model_validate(
        {"activeDeadlineSeconds": 600, "resources": {"requests": {"cpu": "4", "memory": "16Gi"}}}
    )
    job = job_from_chart(render({}), NAMESPACE, template)
    assert job["spec"]["activeDeadlineSeconds"] == 600
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "4", "memory": "16Gi"}}


def test_values_of_the_install_reach_every_job(render: Render) -> None:
    job = job_from_chart(render(COMBINATIONS["everything"]))
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "2", "memory": "2Gi"},
        "limits": {"cpu": 4, "memory": "4Gi"},  # helm merges the values into the defaults
    }


@pytest.mark.parametrize("deadline", [0, None])
def test_a_zero_or_null_deadline_means_none(render: Render, deadline: int | None) -> None:
    rendered = render({"job": {"activeDeadlineSeconds": deadline, "resources": None}})
    env = env_of(operator_container(rendered))
    assert "RECLUSTER_JOB_ACTIVE_DEADLINE_SECONDS" not in env
    assert "RECLUSTER_JOB_RESOURCES" not in env
    job = job_from_chart(rendered, NAMESPACE)
    assert "activeDeadlineSeconds" not in job["spec"]
    assert "resources" not in job["spec"]["template"]["spec"]["containers"][0]


# --- the Kubernetes floor -----------------------------------------------------------------


def _validation_rules(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield from node.get("x-kubernetes-validations", [])
        for value in node.values():
            yield from _validation_rules(value)
    elif isinstance(node, list):
        for value in node:
            yield from _validation_rules(value)


def test_the_chart_needs_the_kubernetes_that_knows_its_crds(helm: Helm) -> None:
    """The CRDs' CEL rules give a `reason` and a `fieldPath` (a refusal names the field and
    says Invalid/Required), fields of x-kubernetes-validations that Kubernetes 1.28 added:
    an older apiserver does not know them. So the chart says kubeVersion >=1.28, and helm
    refuses an older cluster before it installs anything."""
    rules = [
        rule
        for crd in sorted((CHART / "crds").glob("*.yaml"))
        for rule in _validation_rules(yaml.safe_load(crd.read_text()))
    ]
    assert any("reason" in rule for rule in rules) and any("fieldPath" in rule for rule in rules)
    assert kube_version_floor() == "1.28.0"
    old = helm.run("template", RELEASE, CHART, "--kube-version", "1.27.16", check=False)
    assert old.returncode != 0
    assert "chart requires kubeVersion: >=1.28.0-0" in old.stderr
    assert "incompatible with Kubernetes v1.27.16" in old.stderr
    helm.run("template", RELEASE, CHART, "--kube-version", "1.28.0")
