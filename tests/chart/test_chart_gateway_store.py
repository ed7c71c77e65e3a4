"""The gateway reads the install's store (issue 15): what the chart gives its pods.

The gateway's run, artifact and report endpoints read the store (gateway/runs.py),
so with gateway.enabled its Deployment gets the store the operator gets, from one
helper (recluster.storePodAccess): the S3 settings and the install's keys, the
PostgreSQL DSN from the release namespace's Secret, or the Parquet volume, mounted
read-only. The chart's ReadWriteOnce claim attaches to one node, so then the
operator's and the gateway's pods must share one: each requires a pod of the other
(or of its own kind) on its node, the gateway has no disruption budget (it would
block `kubectl drain`), and nodeSelectors that no node can meet for both are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chart_support import (
    CHART,
    COMBINATIONS,
    GATEWAY,
    NAMESPACE,
    OPERATOR,
    RELEASE,
    Helm,
    Render,
    Rendered,
    env_of,
    values_file,
)

STORE_PATH = "/var/lib/recluster/store"
GATEWAY_ON: dict[str, Any] = {"gateway": {"enabled": True}}
RWX = {"store": {"parquet": {"persistence": {"accessModes": ["ReadWriteMany"]}}}}
NFS = {"store": {"parquet": {"volume": {"nfs": {"server": "nfs.local", "path": "/store"}}}}}


def _with_gateway(values: dict[str, Any], **gateway: Any) -> dict[str, Any]:
    return {**values, "gateway": {**values.get("gateway", {}), "enabled": True, **gateway}}


def _pod(rendered: Rendered, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = rendered.one("Deployment", name)["spec"]["template"]["spec"]
    return spec


def _pod_labels(rendered: Rendered, name: str) -> dict[str, str]:
    labels: dict[str, str] = rendered.one("Deployment", name)["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector's verdict on a pod's labels (matchLabels; matchExpressions In/NotIn)."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        value = labels.get(expression["key"])
        inside = value in expression["values"]
        if inside != (expression["operator"] == "In"):
            return False
    return True


def _store_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: e for n, e in env_of(container).items() if n.startswith(("RECLUSTER_STORE", "AWS_"))}


def _store_mounts(container: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in container["volumeMounts"] if m["name"] == "store"]


def _store_volumes(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in pod["volumes"] if v["name"] == "store"]


# --- the store reaches the gateway ------------------------------------------------------


def test_the_gateway_mounts_the_charts_claim_read_only(render: Render) -> None:
    rendered = render(COMBINATIONS["gateway"])
    gateway, operator = _pod(rendered, GATEWAY), _pod(rendered, OPERATOR)
    container = gateway["containers"][0]
    assert env_of(container)["RECLUSTER_STORE_URI"] == {
        "name": "RECLUSTER_STORE_URI",
        "value": STORE_PATH,
    }
    claim = {"name": "store", "persistentVolumeClaim": {"claimName": "rel-recluster-store"}}
    assert _store_volumes(gateway) == [claim] == _store_volumes(operator)
    assert _store_mounts(container) == [
        {"name": "store", "mountPath": STORE_PATH, "readOnly": True}
    ]
    # the operator writes (results of namespaces' runs, its own bookkeeping): read-write
    assert _store_mounts(operator["containers"][0]) == [{"name": "store", "mountPath": STORE_PATH}]
    # the whole volume, not one namespace's directory: the gateway reads the caller's namespace
    assert "subPathExpr" not in _store_mounts(container)[0]


def test_a_given_store_volume_reaches_the_gateway_read_only(render: Render) -> None:
    rendered = render(_with_gateway(NFS))
    gateway = _pod(rendered, GATEWAY)
    assert _store_volumes(gateway) == [
        {"name": "store", "nfs": {"server": "nfs.local", "path": "/store"}}
    ]
    mounts = _store_mounts(gateway["containers"][0])
    assert mounts == [{"name": "store", "mountPath": STORE_PATH, "readOnly": True}]


@pytest.mark.parametrize("combination", ["s3", "postgresql"])
def test_object_and_database_stores_reach_the_gateway_with_the_installs_credentials(
    render: Render, combination: str
) -> None:
    rendered = render(_with_gateway(COMBINATIONS[combination]))
    gateway = _pod(rendered, GATEWAY)
    container = gateway["containers"][0]
    operator_env = _store_env(_pod(rendered, OPERATOR)["containers"][0])
    expected = {n: e for n, e in operator_env.items() if n != "RECLUSTER_STORE_URI_SECRET"}
    assert _store_env(container) == expected, "the same store, from the release namespace"
    assert _store_volumes(gateway) == [] and _store_mounts(container) == []
    if combination == "s3":
        assert expected["RECLUSTER_STORE_URI"]["value"] == "s3://embeddings/recluster"
        assert expected["AWS_ENDPOINT_URL"]["value"] == "http://minio.storage:9000"
        assert expected["AWS_REGION"]["value"] == "eu-west-1"
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert expected[name]["valueFrom"]["secretKeyRef"] == {
                "name": "s3-credentials",
                "key": name,
            }
    else:
        assert expected == {
            "RECLUSTER_STORE_URI": {
                "name": "RECLUSTER_STORE_URI",
                "valueFrom": {"secretKeyRef": {"name": "pg", "key": "dsn"}},
            }
        }
        assert "postgresql://" not in rendered.text, "no DSN in clear"
    # a Secret is read in the pod's namespace: the gateway's is the release namespace
    assert rendered.one("Deployment", GATEWAY)["metadata"]["namespace"] == NAMESPACE


def test_the_gateway_store_uri_is_what_recluster_gateway_reads(render: Render) -> None:
    """`recluster gateway --store` takes RECLUSTER_STORE_URI: the name the chart sets."""
    from recluster.cli import main

    command = main.commands["gateway"]
    (option,) = [p for p in command.params if p.name == "store_uri"]
    assert option.envvar == "RECLUSTER_STORE_URI"
    args = _pod(render(COMBINATIONS["gateway"]), GATEWAY)["containers"][0]["args"]
    assert not any(a.startswith("--store") for a in args), "the env var is the one source"


def test_without_the_gateway_nothing_changes_for_the_operator(render: Render) -> None:
    assert GATEWAY not in render({}).names("Deployment")
    operator = _pod(render({}), OPERATOR)
    assert "podAffinity" not in operator["affinity"]
    assert "podAntiAffinity" in operator["affinity"]


# --- where the pods run ---------------------------------------------------------------


def _group_term(pod: dict[str, Any]) -> dict[str, Any]:
    terms = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    found = [t for t in terms if t["topologyKey"] == "kubernetes.io/hostname"]
    assert len(found) == 1, terms
    return found[0]


def test_with_the_charts_claim_the_operator_and_gateway_share_a_node(render: Render) -> None:
    rendered = render(COMBINATIONS["gateway"])
    labels = {name: _pod_labels(rendered, name) for name in (OPERATOR, GATEWAY)}
    for name in (OPERATOR, GATEWAY):
        pod = _pod(rendered, name)
        term = _group_term(pod)
        assert "namespaces" not in term, "the pod's own namespace: the release namespace"
        # selects the operator's and the gateway's pods, so the first of them goes anywhere
        # (it matches its own term) and every later one goes where the volume is
        assert _selects(term["labelSelector"], labels[OPERATOR]), name
        assert _selects(term["labelSelector"], labels[GATEWAY]), name
        other = {**labels[OPERATOR], "app.kubernetes.io/instance": "other-release"}
        assert not _selects(term["labelSelector"], other), "this release's pods only"
        metrics = {**labels[OPERATOR], "app.kubernetes.io/component": "metrics"}
        assert not _selects(term["labelSelector"], metrics)
        assert "podAntiAffinity" not in pod["affinity"], "replicas on one node, by design"
    # a budget would block `kubectl drain`: a replacement can only start on the drained node
    assert rendered.all("PodDisruptionBudget") == []
    assert rendered.one("Deployment", GATEWAY)["spec"]["replicas"] == 2
    assert rendered.one("Deployment", OPERATOR)["spec"]["strategy"] == {"type": "Recreate"}


def test_the_users_gateway_affinity_is_kept_beside_the_stores_rule(render: Render) -> None:
    zone_term = {"topologyKey": "topology.kubernetes.io/zone", "labelSelector": {}}
    node_affinity = {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["web"]}]}
            ]
        }
    }
    affinity = {
        "nodeAffinity": node_affinity,
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [zone_term]},
    }
    pod = _pod(render(_with_gateway({}, affinity=affinity)), GATEWAY)
    assert pod["affinity"]["nodeAffinity"] == node_affinity
    terms = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0] == zone_term and len(terms) == 2
    assert _group_term(pod)["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == (
        RELEASE
    )


@pytest.mark.parametrize(
    "values",
    [RWX, NFS, COMBINATIONS["s3"], COMBINATIONS["postgresql"]],
    ids=["ReadWriteMany", "nfs-volume", "s3", "postgresql"],
)
def test_stores_every_node_can_mount_leave_the_gateway_free(
    render: Render, values: dict[str, Any]
) -> None:
    rendered = render(_with_gateway(values))
    for name in (OPERATOR, GATEWAY):
        affinity = _pod(rendered, name)["affinity"]
        assert "podAffinity" not in affinity and "podAntiAffinity" in affinity, name
    assert rendered.one("PodDisruptionBudget", GATEWAY)["spec"]["maxUnavailable"] == 1


# --- values that cannot work together --------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            _with_gateway(
                {"operator": {"nodeSelector": {"pool": "system"}}}, nodeSelector={"pool": "web"}
            ),
            (
                "gateway.nodeSelector pool=web and operator.nodeSelector pool=system",
                "with gateway.enabled and a ReadWriteOnce store claim",
                "its pods must run on the operator's node",
                "Give both the same nodeSelector",
                "store.parquet.persistence.accessModes [ReadWriteMany]",
                "store.type=s3",
                "store.type=postgresql",
            ),
        ),
        (
            _with_gateway({"operator": {"replicas": 2}}),
            ("operator.replicas=2 with a ReadWriteOnce store claim", "Multi-Attach"),
        ),
        (
            _with_gateway(
                {"store": {"parquet": {"persistence": {"accessModes": ["ReadWriteOncePod"]}}}}
            ),
            ("ReadWriteOncePod admits one pod", "(and the gateway, when enabled)"),
        ),
    ],
    ids=["nodeSelectors", "operator-replicas", "ReadWriteOncePod"],
)
def test_a_gateway_that_cannot_reach_the_store_is_refused_saying_why(
    helm: Helm, tmp_path: Path, values: dict[str, Any], expected: tuple[str, ...]
) -> None:
    path = values_file(tmp_path, values)
    done = helm.run("template", RELEASE, CHART, "--namespace", NAMESPACE, "-f", path, check=False)
    assert done.returncode != 0
    for part in expected:
        assert part in done.stderr, done.stderr


@pytest.mark.parametrize(
    "values",
    [
        # the same selector, or keys that do not contradict: a node may have both labels
        _with_gateway({"operator": {"nodeSelector": {"pool": "a"}}}, nodeSelector={"pool": "a"}),
        _with_gateway({"operator": {"nodeSelector": {"pool": "a"}}}, nodeSelector={"disk": "ssd"}),
        # a store every node can mount: no shared node, any selectors
        _with_gateway(
            {**RWX, "operator": {"nodeSelector": {"pool": "a"}}}, nodeSelector={"pool": "b"}
        ),
    ],
    ids=["same", "other-keys", "ReadWriteMany"],
)
def test_node_selectors_some_node_can_meet_are_accepted(
    render: Render, values: dict[str, Any]
) -> None:
    pod = _pod(render(values), GATEWAY)
    assert pod["nodeSelector"] == values["gateway"]["nodeSelector"]
