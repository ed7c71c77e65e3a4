"""Helm chart tests: rendered offline with the session's helm (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from chart_support import CHART, NAMESPACE, RELEASE, Helm, Rendered, values_file


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
