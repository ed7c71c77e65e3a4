"""tools/release.py: what a version tag publishes, checked without a registry.

The release workflow (.github/workflows/release.yaml) runs it before pushing anything;
`make release-dry-run` runs it in CI.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from chart_support import ROOT, Helm

from helm_support import _load_tool

release = _load_tool("release")
VERSION = release.project_version()


def _packaged_chart(path: Path) -> dict[str, str]:
    with tarfile.open(path) as tar:
        member = tar.extractfile("recluster/Chart.yaml")
        assert member is not None
        chart: dict[str, str] = yaml.safe_load(io.TextIOWrapper(member))
    return chart


def test_a_tag_publishes_where_the_chart_pulls_from() -> None:
    coordinates = release.coordinates(f"v{VERSION}")
    values = yaml.safe_load((ROOT / "charts/recluster/values.yaml").read_text())
    assert coordinates.image == values["image"]["repository"] == "ghcr.io/recluster/recluster"
    assert coordinates.registry == "ghcr.io"
    assert coordinates.chart_ref == "oci://ghcr.io/recluster/charts/recluster"
    assert release.coordinates(f"refs/tags/v{VERSION}") == coordinates


def test_the_packaged_chart_has_the_tags_version_and_runs_that_image(
    helm: Helm, tmp_path: Path
) -> None:
    # a version other than Chart.yaml's: the tag, not the file, decides
    future = release.Coordinates("9.8.7", "ghcr.io", "ghcr.io/recluster/recluster", "oci://x")
    packaged = release.package_chart(future, tmp_path, str(helm.binary))
    chart = _packaged_chart(packaged)
    assert (chart["version"], chart["appVersion"]) == ("9.8.7", "9.8.7")
    assert packaged.name == "recluster-9.8.7.tgz"


@pytest.mark.parametrize(
    ("tag", "says"),
    [
        ("v9.8.7", f"tag 'v9.8.7' is version 9.8.7, pyproject.toml says {VERSION}"),
        ("latest", "a release tag is vMAJOR.MINOR.PATCH"),
        ("v1.2", "a release tag is vMAJOR.MINOR.PATCH"),
    ],
)
def test_a_tag_that_is_not_the_projects_version_is_refused(tag: str, says: str) -> None:
    with pytest.raises(release.ReleaseError, match=says.replace(".", r"\.")):
        release.coordinates(tag)


def test_the_dry_run_says_what_it_would_push(helm: Helm, tmp_path: Path) -> None:
    path = f"{helm.binary.parent}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools/release.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"would push: ghcr.io/recluster/recluster:{VERSION} (linux/amd64, linux/arm64"
        in done.stdout
    )
    install = f"helm install recluster oci://ghcr.io/recluster/charts/recluster --version {VERSION}"
    assert install in done.stdout
    assert _packaged_chart(tmp_path / f"recluster-{VERSION}.tgz")["appVersion"] == VERSION
