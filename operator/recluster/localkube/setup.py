"""What a fresh local cluster needs before Recluster runs on it: our CRDs, served.

Shared by `recluster dev` and the tests' session fixture.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..api.crd import all_crds
from ..kube.errors import KubeError
from ..kube.paths import MERGE_PATCH, resource_path
from ..kube.sync import KubeApi

CRD_API = "apiextensions.k8s.io/v1"
READY_TIMEOUT = 60.0


def install_crds(api: KubeApi, crds: Iterable[Mapping[str, Any]] | None = None) -> None:
    """Create or update the CRDs, and return once their resources answer lists.

    An apiserver serves a new CRD's resources a moment after `Established`
    (the storage answers 429 "(re)initializing" until then).
    """
    bodies = list(crds if crds is not None else all_crds().values())
    for crd in bodies:
        name = str(crd["metadata"]["name"])
        try:
            api.request("POST", resource_path(CRD_API, "customresourcedefinitions"), dict(crd))
        except KubeError as exc:
            if exc.status != 409:
                raise
            path = resource_path(CRD_API, "customresourcedefinitions", None, name)
            api.request("PATCH", path, {"spec": crd["spec"]}, content_type=MERGE_PATCH)
    deadline = time.monotonic() + READY_TIMEOUT
    pending = list(bodies)
    while pending:
        pending = [crd for crd in pending if not _served(api, crd)]
        if pending and time.monotonic() > deadline:
            names = ", ".join(str(c["metadata"]["name"]) for c in pending)
            raise TimeoutError(f"CRDs not served after {READY_TIMEOUT:.0f} s: {names}")
        if pending:
            time.sleep(0.1)


def _served(api: KubeApi, crd: Mapping[str, Any]) -> bool:
    name = str(crd["metadata"]["name"])
    found = api.get(resource_path(CRD_API, "customresourcedefinitions", None, name)) or {}
    conditions = (found.get("status") or {}).get("conditions") or []
    if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
        return False
    spec = crd["spec"]
    version = next(v["name"] for v in spec["versions"] if v.get("served", True))
    try:
        api.request("GET", resource_path(f"{spec['group']}/{version}", spec["names"]["plural"]))
    except KubeError as exc:
        if exc.status == 429:
            return False
        raise
    return True
