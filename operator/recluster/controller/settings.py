"""Install-wide operator settings, read from the environment (the Helm chart sets them)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import __version__

DEFAULT_IMAGE = f"ghcr.io/recluster/recluster:{__version__}"
DEFAULT_STORE_URI = ".recluster/dev/store"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Settings:
    """What every Job gets, and how the operator paces itself."""

    image: str = DEFAULT_IMAGE
    store_uri: str = DEFAULT_STORE_URI
    image_pull_policy: str | None = None
    job_service_account: str | None = None
    job_env: list[dict[str, Any]] = field(default_factory=list)
    max_sleep: float = 60.0
    """A trigger's loop re-checks at least this often, whatever it expects next."""
    retry_delay: float = 5.0
    """Pause before retrying a reconcile whose API calls failed."""
    clock: Callable[[], datetime] = utcnow
    """Injected in tests; the core never reads the clock itself."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        job_env = json.loads(env["RECLUSTER_JOB_ENV"]) if env.get("RECLUSTER_JOB_ENV") else []
        if not isinstance(job_env, list):
            raise ValueError("RECLUSTER_JOB_ENV must be a JSON list of EnvVar objects")
        return cls(
            image=env.get("RECLUSTER_IMAGE") or DEFAULT_IMAGE,
            store_uri=env.get("RECLUSTER_STORE_URI") or DEFAULT_STORE_URI,
            image_pull_policy=env.get("RECLUSTER_IMAGE_PULL_POLICY") or None,
            job_service_account=env.get("RECLUSTER_JOB_SERVICE_ACCOUNT") or None,
            job_env=job_env,
        )
