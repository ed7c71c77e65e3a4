"""The GitHub workflows run what the project runs: .ci/run, and make e2e on kind."""

from __future__ import annotations

from typing import Any

import yaml
from chart_support import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def _steps(name: str) -> list[dict[str, Any]]:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    assert workflow["permissions"] == {"contents": "read"}
    (job,) = workflow["jobs"].values()
    assert job["timeout-minutes"] <= 90
    steps: list[dict[str, Any]] = job["steps"]
    return steps


def test_ci_runs_the_ci_script() -> None:
    runs = [s.get("run", "") for s in _steps("ci.yaml")]
    assert any("bash .ci/run" in r for r in runs)


def test_e2e_builds_creates_kind_and_runs_make_e2e() -> None:
    steps = _steps("e2e.yaml")
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    runs = [s.get("run", "") for s in steps]
    assert uses.index("docker/build-push-action") < uses.index("helm/kind-action")
    build = steps[uses.index("docker/build-push-action")]["with"]
    assert build["load"] is True and build["context"] == "."
    assert any(r.strip() == "make e2e" for r in runs)
    env = yaml.safe_load((WORKFLOWS / "e2e.yaml").read_text())["env"]
    assert build["tags"] == "${{ env.RECLUSTER_E2E_IMAGE }}" and env["RECLUSTER_E2E_SKIP_BUILD"]
