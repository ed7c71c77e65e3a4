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


def test_release_on_version_tags_pushes_a_signed_multi_arch_image_and_the_chart() -> None:
    workflow = yaml.safe_load((WORKFLOWS / "release.yaml").read_text())
    # PyYAML reads the key `on` as True
    assert workflow[True] == {"push": {"tags": ["v*.*.*"]}}
    assert workflow["permissions"] == {"contents": "read"}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read", "packages": "write", "id-token": "write"}
    steps: list[dict[str, Any]] = job["steps"]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    runs = [s.get("run", "") for s in steps]
    checks = next(i for i, r in enumerate(runs) if "tools/release.py" in r)
    build = uses.index("docker/build-push-action")
    # nothing is pushed before the checks of the dry run passed
    assert checks < uses.index("docker/login-action") < build
    image = steps[build]["with"]
    assert image["platforms"] == "linux/amd64,linux/arm64"
    assert image["push"] is True and image["sbom"] is True
    assert (
        image["tags"] == "${{ steps.release.outputs.image }}:${{ steps.release.outputs.version }}"
    )
    assert "VERSION=${{ steps.release.outputs.version }}" in image["build-args"]
    signing = "\n".join(runs[build:])
    assert 'cosign sign --yes "$IMAGE"' in signing
    assert 'helm push "$CHART" "$REPOSITORY"' in signing
    assert "cosign sign --yes" in runs[-1]


def test_ci_installs_podman_builds_the_image_dry_runs_the_release_and_runs_e2e() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    for package in ("podman", "runc", "debootstrap"):
        assert f"containers+=({package}" in script
    commands = [line.strip() for line in script.splitlines() if line.startswith("make ")]
    # and the end-to-end test on this machine's control plane, every pod in a container
    assert commands == ["make test", "make release-dry-run", "make e2e"]
    makefile = (ROOT / "Makefile").read_text()
    # the image (tests/image) is built before the suite wherever an engine exists, and
    # the numba kernels compiled before it, outside any test's timeout
    assert "test: $(STAMP) lint typecheck kube image-if-engine warmup\n" in makefile
    assert "warmup: $(STAMP)\n\t$(BIN)/python -m recluster.engine.warmup\n" in makefile
    assert "release-dry-run: $(STAMP) image-if-engine\n" in makefile
