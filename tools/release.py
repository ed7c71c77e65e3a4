#!/usr/bin/env python3
"""A release of Recluster, all but the push: `make release-dry-run`, and the release workflow.

A release is a tag ``vX.Y.Z``. .github/workflows/release.yaml then publishes, to the
registry the chart's ``image.repository`` names (charts/recluster/values.yaml):

    image  <image.repository>:X.Y.Z                   amd64 + arm64, SBOM, cosign signature
    chart  oci://<registry>/<owner>/charts/recluster  version = appVersion = X.Y.Z

so that ``helm install recluster oci://<registry>/<owner>/charts/recluster --version X.Y.Z``
installs it without a clone (the chart's image tag defaults to its appVersion).

This script is the part that needs no registry, run by the workflow before it pushes
and by `make release-dry-run` (CI) on every change:

1. the tag's version is pyproject.toml's (what ``recluster --version`` says in the image);
2. ``helm package`` with version and appVersion set to it; the packaged Chart.yaml is
   read back, and the packaged chart rendered: its Deployment runs <image.repository>:X.Y.Z;
3. with ``--image``: a built image carries that version (label and ``recluster --version``);
4. prints the coordinates above (``--github-output``: also as step outputs).

    python tools/release.py [--version vX.Y.Z] [--out dist] [--image localhost/recluster:dev]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "recluster"
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")


class ReleaseError(Exception):
    """The release cannot go ahead; the message says why."""


@dataclass(frozen=True)
class Coordinates:
    """Where a version of Recluster is published."""

    version: str
    registry: str
    image: str  # repository, without tag
    chart_repository: str  # oci://... (helm push target); the chart is <this>/recluster

    @property
    def image_ref(self) -> str:
        return f"{self.image}:{self.version}"

    @property
    def chart_ref(self) -> str:
        return f"{self.chart_repository}/{CHART.name}"


def project_version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


def coordinates(tag: str) -> Coordinates:
    """The coordinates of the release of `tag` (vX.Y.Z or X.Y.Z), or why it cannot be one."""
    version = tag.removeprefix("refs/tags/").removeprefix("v")
    if not SEMVER.match(version):
        raise ReleaseError(f"tag {tag!r}: a release tag is vMAJOR.MINOR.PATCH (e.g. v0.1.0)")
    if version != project_version():
        raise ReleaseError(
            f"tag {tag!r} is version {version}, pyproject.toml says {project_version()}: "
            "bump [project] version (and recluster.__version__) before tagging"
        )
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    image: str = values["image"]["repository"]
    if values["image"].get("tag") or values["image"].get("digest"):
        raise ReleaseError(
            "values.yaml pins image.tag or image.digest: the chart must follow appVersion"
        )
    registry, _, path = image.partition("/")
    if "." not in registry or not path:
        raise ReleaseError(f"image.repository {image!r} names no registry host (e.g. ghcr.io/...)")
    owner = path.rsplit("/", 1)[0] if "/" in path else ""
    charts = f"oci://{registry}/{owner}/charts" if owner else f"oci://{registry}/charts"
    return Coordinates(version, registry, image, charts)


def helm_binary() -> str:
    found = shutil.which("helm")
    if found:
        return found
    sys.path.insert(0, str(ROOT / "tools"))
    import get_helm

    return str(get_helm.ensure_helm())


def package_chart(release: Coordinates, out: Path, helm: str) -> Path:
    """`helm package` at the release's version; checks what was packaged. The .tgz path."""
    out.mkdir(parents=True, exist_ok=True)
    v = release.version
    subprocess.run(
        [
            helm,
            "package",
            str(CHART),
            "--version",
            v,
            "--app-version",
            v,
            "--destination",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    packaged = out / f"{CHART.name}-{v}.tgz"
    with tarfile.open(packaged) as tar:
        member = tar.extractfile(f"{CHART.name}/Chart.yaml")
        assert member is not None
        chart = yaml.safe_load(io.TextIOWrapper(member))
    if (chart["version"], str(chart["appVersion"])) != (v, v):
        raise ReleaseError(
            f"{packaged}: version {chart['version']}, appVersion {chart['appVersion']}"
        )
    rendered = subprocess.run(
        [helm, "template", "recluster", str(packaged), "--namespace", "recluster"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    images = {
        c["image"]
        for d in yaml.safe_load_all(rendered)
        if d and d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    if images != {release.image_ref}:
        raise ReleaseError(f"the packaged chart runs {sorted(images)}, not {release.image_ref}")
    return packaged


def check_image(release: Coordinates, image: str) -> str:
    """A built image carries the release's version; a line saying what was checked."""
    sys.path.insert(0, str(ROOT / "tools" / "image"))
    import build  # the engine `make image` built with (tools/image/build.py)

    try:
        engine = build.choose_engine()
    except SystemExit as exc:
        return f"image {image}: not checked ({exc})"
    if engine == "podman":
        build.configure_podman()
    label = subprocess.run(
        [engine, "image", "inspect", "--format",
         '{{index .Config.Labels "org.opencontainers.image.version"}}', image],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if label.returncode != 0:
        raise ReleaseError(f"{engine} has no image {image}: build it with `make image`")
    said = subprocess.run(
        [engine, "run", "--rm", "--read-only", "--network", "none", image, "--version"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if label.stdout.strip() != release.version or release.version not in said.stdout:
        raise ReleaseError(
            f"image {image}: label version {label.stdout.strip()!r}, `recluster --version` "
            f"says {said.stdout.strip() or said.stderr.strip()!r}; expected {release.version}"
        )
    return f"image {image}: version {release.version} (label and recluster --version)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--version", default=None, help="the tag (default: pyproject's version)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the chart goes")
    parser.add_argument("--image", default=None, help="a built image to check")
    parser.add_argument("--github-output", action="store_true", help="write step outputs")
    args = parser.parse_args(argv)
    try:
        release = coordinates(args.version or f"v{project_version()}")
        packaged = package_chart(release, args.out, helm_binary())
        print(f"chart {packaged.relative_to(ROOT) if packaged.is_relative_to(ROOT) else packaged}: "
              f"version = appVersion = {release.version}, runs {release.image_ref}")  # fmt: skip
        if args.image:
            print(check_image(release, args.image))
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    outputs = {
        "version": release.version,
        "registry": release.registry,
        "image": release.image,
        "chart_package": str(packaged),
        "chart_repository": release.chart_repository,
    }
    print(f"would push: {release.image_ref} (linux/amd64, linux/arm64; SBOM; cosign signature)")
    print(f"would push: {packaged.name} to {release.chart_repository}")
    print(f"install:    helm install recluster {release.chart_ref} --version {release.version}")
    if args.github_output:
        with open(os.environ["GITHUB_OUTPUT"], "a") as github:
            github.writelines(f"{key}={value}\n" for key, value in outputs.items())
    return 0


if __name__ == "__main__":
    sys.exit(main())
