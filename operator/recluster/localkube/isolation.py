"""What a container runtime enforces for a container: user, file system, privileges, limits.

Pure: functions of the pod spec, no I/O. The kubelet computes the same from
the pod's and the container's `securityContext` (the container's fields win
over the pod's) and from `resources`; the shell that enforces it is
`podman.PodmanRuntime`. The process runtime enforces none of it (it runs
everything as the agent's user; docs/localkube.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .kubelet import ContainerConfigError, quantity

CPU_SHARES_PER_CORE = 1024
"""cgroup cpu.shares for one core of `requests.cpu`, as the kubelet converts it."""
MIN_CPU_SHARES = 2


@dataclass(frozen=True)
class Isolation:
    """The runtime-enforced settings of one container (None: the image's or engine's default)."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool = False
    supplemental_groups: tuple[int, ...] = ()
    read_only_root: bool = False
    privileged: bool = False
    no_new_privileges: bool = False
    """`allowPrivilegeEscalation: false`."""
    capabilities_add: tuple[str, ...] = ()
    capabilities_drop: tuple[str, ...] = ()
    seccomp_unconfined: bool = False
    memory_limit_bytes: int | None = None
    cpu_limit_cores: float | None = None
    cpu_shares: int | None = None


def _int(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContainerConfigError(f"{field}: expected an integer, got {value!r}")
    return value


def isolation_of(pod: Mapping[str, Any], container: Mapping[str, Any]) -> Isolation:
    """The container's securityContext over the pod's, and its resources (pure)."""
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    own = container.get("securityContext") or {}

    def pick(name: str) -> Any:
        return own.get(name) if own.get(name) is not None else pod_context.get(name)

    capabilities = own.get("capabilities") or {}
    seccomp = (pick("seccompProfile") or {}).get("type")
    limits = (container.get("resources") or {}).get("limits") or {}
    requests = (container.get("resources") or {}).get("requests") or {}
    memory = limits.get("memory")
    cpu_limit = limits.get("cpu")
    # the kubelet: requests default to limits when only limits are given
    cpu_request = requests.get("cpu", cpu_limit)
    shares = None
    if cpu_request is not None:
        shares = max(MIN_CPU_SHARES, int(quantity(str(cpu_request)) * CPU_SHARES_PER_CORE))
    return Isolation(
        run_as_user=_int(pick("runAsUser"), "securityContext.runAsUser"),
        run_as_group=_int(pick("runAsGroup"), "securityContext.runAsGroup"),
        run_as_non_root=bool(pick("runAsNonRoot")),
        supplemental_groups=tuple(int(g) for g in pod_context.get("supplementalGroups") or ()),
        read_only_root=bool(own.get("readOnlyRootFilesystem")),
        privileged=bool(own.get("privileged")),
        no_new_privileges=own.get("allowPrivilegeEscalation") is False,
        capabilities_add=tuple(str(c) for c in capabilities.get("add") or ()),
        capabilities_drop=tuple(str(c) for c in capabilities.get("drop") or ()),
        seccomp_unconfined=seccomp == "Unconfined",
        memory_limit_bytes=int(quantity(str(memory))) if memory is not None else None,
        cpu_limit_cores=quantity(str(cpu_limit)) if cpu_limit is not None else None,
        cpu_shares=shares,
    )


def non_root_violation(isolation: Isolation, image_user: str) -> str | None:
    """The kubelet's runAsNonRoot check against the image's USER; None when it passes.

    Like the kubelet: a numeric user 0 is refused, and a non-numeric image
    user cannot be verified (refused) unless runAsUser says who runs it.
    """
    if not isolation.run_as_non_root:
        return None
    if isolation.run_as_user is not None:
        if isolation.run_as_user == 0:
            return "container's runAsUser breaks non-root policy"
        return None
    user = image_user.split(":", 1)[0]
    if user in ("", "0", "root"):
        return "container has runAsNonRoot and image will run as root"
    if not user.isdigit():
        return (
            f"container has runAsNonRoot and image has non-numeric user ({user}), "
            "cannot verify user is non-root"
        )
    return None
