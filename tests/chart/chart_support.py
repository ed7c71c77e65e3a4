"""What the chart tests share: values combinations, the helm runner, rendered manifests."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from helm_support import CHART, NAMESPACE, RELEASE, ROOT, Helm, get_helm, values_table
from recluster.api.jobtemplate import JobTemplate
from recluster.api.trigger import ClusterTriggerSpec
from recluster.controller.settings import Settings
from recluster.core.jobs import JobRequest, build_job

__all__ = ["CHART", "NAMESPACE", "RELEASE", "ROOT", "Helm", "get_helm", "values_table"]


# The values combinations every test of test_chart.py renders.
COMBINATIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "gateway": {"gateway": {"enabled": True}},
    "postgresql": {
        "store": {"type": "postgresql", "postgresql": {"uriSecret": {"name": "pg", "key": "dsn"}}}
    },
    "s3": {
        "store": {
            "type": "s3",
            "s3": {
                "uri": "s3://embeddings/recluster",
                "endpointUrl": "http://minio.storage:9000",
                "region": "eu-west-1",
                "credentialsSecret": {"name": "s3-credentials"},
            },
        }
    },
    "monitoring": {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "networkPolicy": {
            "enabled": True,
            "metricsFrom": [
                {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}},
            ],
        },
    },
    "examples": {"examples": {"enabled": True}},
    # runtime ray (issue 16): RayJobs watched, created and granted only then
    "ray": {
        "watchNamespaces": ["team-a"],
        "ray": {"enabled": True, "image": "registry.example/recluster:0.1.0-ray"},
    },
    # a store every node can mount: two operator replicas, their disruption budget
    "shared-store": {
        "operator": {"replicas": 2},
        "store": {"parquet": {"persistence": {"accessModes": ["ReadWriteMany"]}}},
    },
    "everything": {
        "watchNamespaces": ["team-a"],
        "gateway": {"enabled": True, "replicas": 1, "service": {"type": "LoadBalancer"}},
        "operator": {
            "replicas": 1,
            "extraEnv": [{"name": "LOG_LEVEL", "value": "debug"}],
            "affinity": {"nodeAffinity": {}},
        },
        "image": {"digest": "sha256:" + "a" * 64, "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "registry"}],
        "job": {
            "image": "registry.example/recluster-job:1.2.3",
            "pullPolicy": "IfNotPresent",
            "extraEnv": [
                {
                    "name": "HF_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}},
                }
            ],
            "extraVolumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
            "extraVolumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
            "activeDeadlineSeconds": 3600,
            "resources": {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": 4}},
        },
        "store": {"parquet": {"volume": {"nfs": {"server": "nfs.local", "path": "/store"}}}},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "networkPolicy": {"enabled": True, "gatewayFrom": [{"podSelector": {}}]},
        "examples": {"enabled": True, "namespace": "team-a"},
        "commonLabels": {"team": "search"},
        "notifications": {
            "webhooks": [
                {"url": "https://hooks.example.com/recluster", "secret_ref": {"name": "hook"}}
            ]
        },
    },
}


def kube_version_floor() -> str:
    """The oldest Kubernetes the chart installs on (Chart.yaml `kubeVersion: ">=X.Y.Z-0"`)."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    found = re.fullmatch(r">=(\d+\.\d+\.\d+)-0", chart["kubeVersion"])
    assert found, f"kubeVersion {chart['kubeVersion']!r} is not a lower bound"
    return found.group(1)


@dataclass
class Rendered:
    """The manifests of one `helm template`, with lookups."""

    text: str
    documents: list[dict[str, Any]]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.documents if d["kind"] == kind]

    def one(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        found = [
            d
            for d in self.all(kind)
            if d["metadata"]["name"] == name
            and (namespace is None or d["metadata"].get("namespace") == namespace)
        ]
        assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
        return found[0]

    def names(self, kind: str) -> set[str]:
        return {d["metadata"]["name"] for d in self.all(kind)}


def values_file(directory: Path, values: dict[str, Any], name: str = "values") -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A container's env as name -> EnvVar."""
    return {e["name"]: e for e in container.get("env", [])}


def operator_container(rendered: Rendered, name: str = "rel-recluster-operator") -> dict[str, Any]:
    """The operator Deployment's container."""
    container: dict[str, Any] = rendered.one("Deployment", name)["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def job_from_chart(
    rendered: Rendered, namespace: str = "team-a", template: JobTemplate | None = None
) -> dict[str, Any]:
    """The Job the operator would build for examples/cron-daily-2am.yaml, from the operator's
    env as the chart renders it, parsed as the operator parses it (Settings.from_env)."""
    env = env_of(operator_container(rendered))
    literal = {name: e["value"] for name, e in env.items() if "value" in e}
    trigger = yaml.safe_load((ROOT / "examples" / "cron-daily-2am.yaml").read_text())
    spec = ClusterTriggerSpec.model_validate(trigger["spec"])
    assert spec.execution_config is not None
    request = JobRequest(
        name="daily-2am-0123456789", execution="0123456789", scheduled_at=None,
        reason="manual", execution_config=spec.execution_config,
    )  # fmt: skip
    metadata = {"name": "daily-2am", "namespace": namespace, "uid": "u-1"}
    return build_job(metadata, template, request, Settings.from_env(literal).job_settings())


Render = Callable[[dict[str, Any]], "Rendered"]
"""A chart test's render fixture: values in, the rendered objects out."""
OPERATOR = f"{RELEASE}-recluster-operator"
"""The operator Deployment's name in a render of RELEASE."""
GATEWAY = f"{RELEASE}-recluster-gateway"
"""The gateway Deployment's name in a render of RELEASE."""
