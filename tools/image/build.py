#!/usr/bin/env python3
"""Build the Recluster image from the Dockerfile as it is (`make image`).

Engine: Docker when a Docker engine answers, else podman (CI and these machines:
Debian's podman 4.3 with runc, configured by tools/image/containers.conf, used
unless CONTAINERS_CONF is already set). ``RECLUSTER_ENGINE=podman|docker`` chooses.

Base: the Dockerfile's default ``python:3.11-slim-bookworm`` when it is present or can
be pulled (the attempt is bounded: a machine with no registry fails in under a second,
one whose firewall drops packets after PULL_TIMEOUT_S); otherwise a base assembled from
Debian's packages by tools/image/base.py (cached). ``PYTHON_IMAGE=<image>`` forces one.

Tags: ``localhost/recluster:dev`` and ``localhost/recluster:<version of pyproject.toml>``;
with ``--tag <other>``, that tag only (so a trial build moves no shared tag).
With podman as root, images live in the machine's shared storage
(/var/lib/containers/storage), so every checkout and test on the machine sees them.

Prints each step, the build time and the image size; the last line is the image tag.

    python3 tools/image/build.py [--tag localhost/recluster:dev]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from base import DEFAULT_MIRROR, ensure_base  # noqa: E402  (the sibling script, not a package)

IMAGE = "localhost/recluster"
DEV_TAG = f"{IMAGE}:dev"
DEFAULT_BASE = "python:3.11-slim-bookworm"
CONTAINERS_CONF = Path(__file__).resolve().parent / "containers.conf"
PULL_TIMEOUT_S = 60
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def choose_engine() -> str:
    """docker when its engine answers, else podman; RECLUSTER_ENGINE overrides."""
    chosen = os.environ.get("RECLUSTER_ENGINE")
    if chosen:
        if shutil.which(chosen) is None:
            raise SystemExit(f"RECLUSTER_ENGINE={chosen}: no such command on PATH")
        return chosen
    if shutil.which("docker"):
        answered = subprocess.run(
            ["docker", "info"], capture_output=True, check=False, timeout=30
        ).returncode
        if answered == 0:
            return "docker"
    if shutil.which("podman"):
        return "podman"
    raise SystemExit("no container engine: install podman (apt-get install podman runc) or Docker")


def configure_podman() -> None:
    """Point podman at the repository's containers.conf unless the caller chose one."""
    os.environ.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))


def image_exists(engine: str, image: str) -> bool:
    inspected = subprocess.run(
        [engine, "image", "inspect", image], capture_output=True, check=False
    )
    return inspected.returncode == 0


def choose_base(engine: str) -> str:
    """PYTHON_IMAGE, else the default base if present or pullable, else the Debian-made one."""
    forced = os.environ.get("PYTHON_IMAGE")
    if forced:
        print(f"base: {forced} (PYTHON_IMAGE)", flush=True)
        return forced
    if image_exists(engine, DEFAULT_BASE):
        print(f"base: {DEFAULT_BASE} (present)", flush=True)
        return DEFAULT_BASE
    print(f"base: pulling {DEFAULT_BASE} (at most {PULL_TIMEOUT_S} s)...", flush=True)
    try:
        pulled = subprocess.run(
            [engine, "pull", "--quiet", DEFAULT_BASE],
            capture_output=True,
            text=True,
            check=False,
            timeout=PULL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        reason = f"no answer in {PULL_TIMEOUT_S} s"
    else:
        if pulled.returncode == 0:
            return DEFAULT_BASE
        reason = (pulled.stderr.strip().splitlines() or ["failed"])[-1]
    print(f"base: cannot pull {DEFAULT_BASE} ({reason}); using Debian's packages", flush=True)
    mirror = os.environ.get("DEBIAN_MIRROR", DEFAULT_MIRROR)
    return ensure_base(engine, "localhost/recluster-base:bookworm", mirror)


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        version: str = tomllib.load(f)["project"]["version"]
    return version


def git(*args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def build(engine: str, base: str, tags: list[str], version: str) -> None:
    # Revision and date of the commit, not of the build: labels stay the same across
    # rebuilds of one commit, so those rebuilds are served from the layer cache.
    build_args = {
        "PYTHON_IMAGE": base,
        "VERSION": version,
        "REVISION": git("rev-parse", "HEAD"),
        "CREATED": git("show", "-s", "--format=%cI", "HEAD"),
    }
    command = [engine, "build", "--file", str(ROOT / "Dockerfile")]
    if engine == "podman":
        # Host networking for the RUN steps that reach PyPI: podman's bridge needs
        # iptables/netavark set-ups that not every machine has; the host's works.
        command += ["--network", "host"]
        if HOST_CA_BUNDLE.is_file():
            # The RUN steps trust what this machine trusts (a TLS-inspecting egress proxy's
            # CA, here): the host's certificates are mounted for the build only and are in
            # no layer of the image. Debian's pip (the local base) reads this bundle.
            command += ["--volume", f"{HOST_CA_BUNDLE.parent}:{HOST_CA_BUNDLE.parent}:ro"]
    for key, value in build_args.items():
        command += ["--build-arg", f"{key}={value}"]
    for tag in tags:
        command += ["--tag", tag]
    subprocess.run([*command, str(ROOT)], check=True)


def image_id(engine: str, image: str) -> str | None:
    inspected = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Id}}", image],
        capture_output=True,
        text=True,
        check=False,
    )
    return inspected.stdout.strip() if inspected.returncode == 0 else None


def remove_if_untagged(engine: str, old: str | None, new: str | None) -> None:
    """Remove the image the tag named before this build, once no tag names it.

    Each rebuild of the project's layers leaves the previous image behind (over 1 GB of
    storage shared by the machine). Only that image goes: the build cache stays, and an
    image a container still uses is refused by the engine and kept.
    """
    if old is None or old == new:
        return
    tags = subprocess.run(
        [engine, "image", "inspect", "--format", "{{len .RepoTags}}", old],
        capture_output=True,
        text=True,
        check=False,
    )
    if tags.returncode == 0 and tags.stdout.strip() == "0":
        subprocess.run([engine, "rmi", old], capture_output=True, check=False)


def image_size(engine: str, image: str) -> int:
    inspected = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(inspected.stdout.strip())


def tags_for(tag: str, version: str) -> list[str]:
    """The dev tag brings the version tag along; a tag of one's own (a branch's trial
    image) stands alone: it must not move the tags other checkouts on the machine share."""
    return [tag, f"{IMAGE}:{version}"] if tag == DEV_TAG else [tag]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tag", default=DEV_TAG, help=f"default {DEV_TAG}")
    args = parser.parse_args(argv)
    started = time.monotonic()
    engine = choose_engine()
    if engine == "podman":
        configure_podman()
    version = project_version()
    tags = tags_for(args.tag, version)
    print(f"engine: {engine}; image {' and '.join(tags)}", flush=True)
    base = choose_base(engine)
    previous = image_id(engine, args.tag)
    build(engine, base, tags, version)
    remove_if_untagged(engine, previous, image_id(engine, args.tag))
    size = image_size(engine, args.tag)
    print(
        f"built {args.tag} in {time.monotonic() - started:.0f} s; "
        f"size {size / 1e6:.0f} MB (uncompressed)",
        flush=True,
    )
    print(args.tag)


if __name__ == "__main__":
    main()
