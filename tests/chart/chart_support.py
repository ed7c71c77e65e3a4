"""What the chart tests share: values combinations, the helm runner, rendered manifests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from helm_support import CHART, NAMESPACE, RELEASE, ROOT, Helm, get_helm, values_table

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
        },
        "store": {"parquet": {"volume": {"nfs": {"server": "nfs.local", "path": "/store"}}}},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "networkPolicy": {"enabled": True, "gatewayFrom": [{"podSelector": {}}]},
        "examples": {"enabled": True, "namespace": "team-a"},
        "commonLabels": {"team": "search"},
    },
}


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
