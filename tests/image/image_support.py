"""The built Recluster image and a way to run its containers (podman, else Docker).

The image is built once by `make image` (tools/image/build.py; `make test` builds it
before the suite where an engine exists). These tests never build it: with no engine
they skip, saying so; with an engine and no image they fail, saying to run `make image`.
RECLUSTER_IMAGE names another image to test (default localhost/recluster:dev).
"""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _load_build_tool() -> Any:
    """tools/image/build.py (a script beside base.py, not a package): one engine choice."""
    spec = importlib.util.spec_from_file_location("image_build", ROOT / "tools/image/build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_tool = _load_build_tool()


@dataclass(frozen=True)
class Image:
    """One image and the engine that runs it."""

    engine: str
    tag: str

    def read_only_args(self) -> list[str]:
        """Run as the cluster runs it: read-only root, /tmp an empty writable directory.

        podman mounts its own tmpfs on /tmp, /var/tmp and /run with --read-only unless
        told not to; Docker mounts none. Both then get exactly one: /tmp, as the chart's
        emptyDir.
        """
        args = ["--read-only", "--tmpfs", "/tmp:rw,mode=1777"]
        if self.engine == "podman":
            args.append("--read-only-tmpfs=false")
        return args

    def run(
        self,
        args: Sequence[str],
        *,
        options: Sequence[str] = (),
        timeout: float = 240,
    ) -> subprocess.CompletedProcess[str]:
        """`<engine> run --rm <options> <image> <args>`; its output, whatever the exit code."""
        command = [self.engine, "run", "--rm", "--network", "host", *options, self.tag, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)

    def shell(
        self, script: str, *, options: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        """`sh -c script` in a read-only container of the image, as its default user."""
        return self.run(
            ["-c", script], options=[*self.read_only_args(), "--entrypoint", "sh", *options]
        )

    def inspect(self, template: str) -> str:
        done = subprocess.run(
            [self.engine, "image", "inspect", "--format", template, self.tag],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()
