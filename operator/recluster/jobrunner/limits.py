"""How much memory this process may use: the container's cgroup limit, or an override."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CGROUP_FILES = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)
UNLIMITED = 1 << 60


def memory_limit_bytes(env: Mapping[str, str] | None = None) -> int | None:
    """RECLUSTER_MEMORY_LIMIT (bytes) if set, else the cgroup limit, else None."""
    env = os.environ if env is None else env
    if value := env.get("RECLUSTER_MEMORY_LIMIT"):
        if not value.strip().isdigit():
            # the value itself is never quoted: it may come from a Secret
            raise ValueError("RECLUSTER_MEMORY_LIMIT must be a whole number of bytes")
        return int(value)
    for path in CGROUP_FILES:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text and text != "max" and int(text) < UNLIMITED:
            return int(text)
    return None
