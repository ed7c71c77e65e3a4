#!/usr/bin/env python3
"""Assemble a Python base image from Debian's packages, for machines with no image registry.

Why: the Dockerfile starts from ``python:3.11-slim-bookworm`` (its ``PYTHON_IMAGE``
argument), which lives on Docker Hub. Our CI and development machines reach Debian's
apt mirror and PyPI but no image registry, so that base cannot be pulled there.
This script builds an equivalent base from Debian bookworm itself:

    debootstrap --variant=minbase bookworm  (+ python3.11, venv, pip, python-is-python3)
        -> tar of the root filesystem -> ``podman import`` -> localhost/recluster-base:bookworm

The Dockerfile then builds unchanged (``--build-arg PYTHON_IMAGE=<that tag>``): it needs
``python -m venv`` and ``pip --python``, both present (Debian's pip 23.0). It is the
same distribution (Debian 12) as the official image, with Debian's Python 3.11 instead
of python.org's build. Release images are built from the official image where the
registry is reachable (.github/workflows/release.yaml); this base serves local builds
and the image tests.

Cached: the image is labelled with a digest of this file (its package list, suite and
mirror logic are its inputs) and the mirror; when an image with that label exists,
nothing is done. ``--force`` rebuilds. Needs root (debootstrap creates device nodes
and chowns files), ``debootstrap`` and a container engine (podman or docker).

    python3 tools/image/base.py [--engine podman] [--tag localhost/recluster-base:bookworm]

Prints the tag on the last line of its output.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = "bookworm"
DEFAULT_TAG = f"localhost/recluster-base:{SUITE}"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# What the Dockerfile's stages use beyond a minimal Debian: python (as `python`),
# the venv module, pip (for `pip --python`), and CA certificates for PyPI over HTTPS.
# Only Depends are installed (debootstrap ignores Recommends), so no compiler comes in.
PACKAGES = ("python3.11", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates")
INPUTS_LABEL = "io.recluster.base.inputs"


def inputs_digest(mirror: str) -> str:
    """The cache key: this script's bytes (packages, suite, steps) and the mirror."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(mirror.encode())
    return digest.hexdigest()[:16]


def existing_digest(engine: str, tag: str) -> str | None:
    """The inputs label of the image `tag`, or None when there is no such image."""
    result = subprocess.run(
        [
            engine,
            "image",
            "inspect",
            "--format",
            f'{{{{index .Config.Labels "{INPUTS_LABEL}"}}}}',
            tag,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def bootstrap(root: Path, mirror: str) -> None:
    """debootstrap a minimal bookworm with PACKAGES into `root`, then drop apt's caches."""
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(root),
            mirror,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # Downloaded .debs and package lists are build leftovers (tens of MB).
    for leftovers in (root / "var/cache/apt/archives", root / "var/lib/apt/lists"):
        for path in leftovers.glob("*"):
            if path.is_file():
                path.unlink()
    for stray in ("debootstrap",):
        shutil.rmtree(root / stray, ignore_errors=True)


def import_image(engine: str, root: Path, tag: str, digest: str) -> None:
    """Import `root` as the image `tag`, with the ENV the official Python image sets."""
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE
    )
    changes = [
        f"LABEL {INPUTS_LABEL}={digest}",
        f"LABEL org.opencontainers.image.description=Debian {SUITE} minbase with Python 3.11",
        "ENV LANG=C.UTF-8",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        'CMD ["python3"]',
    ]
    command = [engine, "import"]
    for change in changes:
        command += ["--change", change]
    subprocess.run([*command, "-", tag], stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
    if tar.stdout is not None:
        tar.stdout.close()
    if tar.wait() != 0:
        raise SystemExit(f"tar of {root} failed")


def ensure_base(engine: str, tag: str, mirror: str, force: bool = False) -> str:
    """Build and import the base unless an image with the same inputs exists; its tag."""
    digest = inputs_digest(mirror)
    if not force and existing_digest(engine, tag) == digest:
        print(f"base image {tag} is up to date (inputs {digest})", flush=True)
        return tag
    if os.geteuid() != 0:
        raise SystemExit("tools/image/base.py needs root: debootstrap creates device nodes")
    if shutil.which("debootstrap") is None:
        raise SystemExit("debootstrap is not installed (apt-get install debootstrap)")
    started = time.monotonic()
    print(f"assembling {tag} from Debian {SUITE} packages ({mirror})...", flush=True)
    # /var/tmp: a disk-backed directory where device nodes may be created.
    with tempfile.TemporaryDirectory(prefix="recluster-base-", dir="/var/tmp") as scratch:
        root = Path(scratch) / "root"
        try:
            bootstrap(root, mirror)
        finally:
            # debootstrap mounts /proc and /sys in the chroot and leaves them mounted when it
            # fails: unmount them before the scratch directory is deleted.
            for mount in ("proc", "sys"):
                if os.path.ismount(root / mount):
                    subprocess.run(["umount", "--lazy", str(root / mount)], check=False)
        print(f"  debootstrap done in {time.monotonic() - started:.0f} s; importing", flush=True)
        import_image(engine, root, tag, digest)
    print(f"base image {tag} built in {time.monotonic() - started:.0f} s", flush=True)
    return tag


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--engine", default="podman", help="podman (default) or docker")
    parser.add_argument("--tag", default=DEFAULT_TAG)
    parser.add_argument("--mirror", default=os.environ.get("DEBIAN_MIRROR", DEFAULT_MIRROR))
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args(argv)
    print(ensure_base(args.engine, args.tag, args.mirror, args.force))


if __name__ == "__main__":
    sys.exit(main())
