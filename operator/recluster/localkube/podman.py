"""The node agent's container runtime: each container of a pod is a podman container.

`PodmanRuntime` implements the `PodRuntime` port (runtime.py): a container
runs from its image, in its own file system, with the pod's volumes bind
mounted at their `mountPath`, the user, read-only root, capabilities and
limits of its securityContext and resources (isolation.py), on the host's
network (the apiserver listens on loopback). `create_arguments` is the pure
part (the `podman create` command line); the rest is the shell.

Rules:

1. Every podman command runs with `CONTAINERS_CONF` set (`containers_conf()`):
   these machines need runc and no default ulimits (tools/image/containers.conf
   says why).
2. A container is named `k8s_<container>_<pod>_<namespace>_<pod uid>_<attempt>`
   (the kubelet's dockershim convention) and labelled with its node and its
   agent (`agent_label`: the node's name and the agent's working directory, so
   two control planes on one machine, e.g. two test sessions, whose nodes share
   a name never touch each other's containers): an agent that starts again
   removes every container an earlier run of it left (`clean_up`); the pod's
   status then says ContainerStatusUnknown (nodeagent.py).
3. Images are never pulled (no registry is reachable from these machines): an
   image missing from the local store is the kubelet's ErrImagePull.
4. OOM kills: podman's `State.OOMKilled` where the engine detects it; on a
   cgroup-v1 host with the cgroupfs manager (where conmon misses them) each
   container with a memory limit also gets a parent memory cgroup of its own
   with that limit (the kubelet's pod-level cgroup): a SIGKILLed container
   whose cgroup's peak usage reached the limit was OOM-killed.
5. A container is removed once its exit has been read; nothing is left in
   podman's store when its pod ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .isolation import non_root_violation
from .kubelet import ContainerConfigError
from .processes import ChildProcess
from .runtime import ContainerExit, ContainerLaunch, ImageUnavailable, RunningContainer

NODE_LABEL = "recluster.io/node"
AGENT_LABEL = "recluster.io/node-agent"
CONTAINERS_CONF = "CONTAINERS_CONF"
REPOSITORY_CONF = Path(__file__).resolve().parents[3] / "tools" / "image" / "containers.conf"
"""The settings these machines need, in a checkout (an installed package has no tools/)."""
CGROUP_V1_MEMORY = Path("/sys/fs/cgroup/memory")
CGROUP_V1_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "recluster-node-agent"
OOM_MARGIN_BYTES = 1 << 20
"""How close to its limit a cgroup's peak usage must come to count as having hit it."""
COMMAND_TIMEOUT = 120.0
START_ERROR_EXIT_CODE = 128
HOSTNAME_LENGTH = 63


class PodmanUnavailable(RuntimeError):
    """podman is not installed or does not answer."""


def containers_conf() -> Path | None:
    """$CONTAINERS_CONF if set, else the repository's tools/image/containers.conf."""
    configured = os.environ.get(CONTAINERS_CONF)
    if configured:
        return Path(configured)
    return REPOSITORY_CONF if REPOSITORY_CONF.is_file() else None


def container_name(launch: ContainerLaunch) -> str:
    """Deterministic from the pod's uid (rule 2)."""
    return (
        f"k8s_{launch.container}_{launch.pod}_{launch.namespace}_{launch.pod_uid}_{launch.attempt}"
    )


def _mount_option(value: str, what: str) -> str:
    if "," in value or "=" in value:
        raise ContainerConfigError(f"{what} {value!r}: commas and '=' cannot be bind mounted")
    return value


def agent_label(node: str, owner: str) -> str:
    """Which agent a container belongs to: the same across restarts of one agent (rule 2)."""
    return hashlib.sha256(f"{node}\0{owner}".encode()).hexdigest()[:16]


def create_arguments(
    launch: ContainerLaunch, name: str, node: str, cgroup_parent: str | None = None,
    agent: str = "",
) -> list[str]:  # fmt: skip
    """The `podman create` arguments for one container (pure)."""
    iso = launch.isolation
    argv = [
        "create", "--name", name, "--pull", "never", "--network", "host",
        "--hostname", launch.pod[:HOSTNAME_LENGTH].rstrip(".-") or "pod",
        "--label", f"{NODE_LABEL}={node}", "--label", f"{AGENT_LABEL}={agent}",
        "--label", f"io.kubernetes.pod.name={launch.pod}",
        "--label", f"io.kubernetes.pod.namespace={launch.namespace}",
        "--label", f"io.kubernetes.pod.uid={launch.pod_uid}",
        "--label", f"io.kubernetes.container.name={launch.container}",
    ]  # fmt: skip
    for key, value in launch.env.items():
        argv += ["--env", f"{key}={value}"]
    for mount in launch.paths.mounts:
        option = (
            f"type=bind,source={_mount_option(mount.host_path, 'volume path')},"
            f"destination={_mount_option(mount.container_path, 'mountPath')}"
        )
        argv += ["--mount", option + (",ro=true" if mount.read_only else "")]
    if iso.run_as_user is not None:
        user = str(iso.run_as_user)
        argv += ["--user", f"{user}:{iso.run_as_group}" if iso.run_as_group is not None else user]
    for group in iso.supplemental_groups:
        argv += ["--group-add", str(group)]
    if iso.read_only_root:
        # Kubernetes mounts nothing writable on a read-only root: no tmpfs on /tmp, /run
        argv += ["--read-only", "--read-only-tmpfs=false"]
    if iso.privileged:
        argv.append("--privileged")
    for capability in iso.capabilities_drop:
        argv += ["--cap-drop", capability]
    for capability in iso.capabilities_add:
        argv += ["--cap-add", capability]
    if iso.no_new_privileges:
        argv += ["--security-opt", "no-new-privileges"]
    if iso.seccomp_unconfined:
        argv += ["--security-opt", "seccomp=unconfined"]
    if iso.memory_limit_bytes is not None:
        # no swap beyond the limit, as the kubelet configures a node without swap
        limit = str(iso.memory_limit_bytes)
        argv += ["--memory", limit, "--memory-swap", limit]
    if iso.cpu_limit_cores is not None:
        argv += ["--cpus", f"{iso.cpu_limit_cores:g}"]
    if iso.cpu_shares is not None:
        argv += ["--cpu-shares", str(iso.cpu_shares)]
    if cgroup_parent is not None:
        argv += ["--cgroup-parent", cgroup_parent]
    if launch.working_dir:
        argv += ["--workdir", launch.working_dir]
    if launch.command:
        # Kubernetes' command replaces ENTRYPOINT, and the image's CMD with it
        argv += ["--entrypoint", json.dumps(list(launch.command))]
    argv.append(launch.image)
    argv += list(launch.args)
    return argv


@dataclass
class _MemoryCgroup:
    """A v1 memory cgroup of our own around one container (rule 4)."""

    path: str
    """Relative to each hierarchy's root: /recluster-node-agent/<agent label>/<container>."""
    limit: int

    @property
    def memory_dir(self) -> Path:
        return CGROUP_V1_MEMORY / self.path.lstrip("/")

    def create(self) -> None:
        self.memory_dir.mkdir(parents=True, exist_ok=True)
        (self.memory_dir / "memory.limit_in_bytes").write_text(str(self.limit))
        with contextlib.suppress(OSError):  # absent without swap accounting
            (self.memory_dir / "memory.memsw.limit_in_bytes").write_text(str(self.limit))

    def reached_limit(self) -> bool:
        try:
            peak = int((self.memory_dir / "memory.max_usage_in_bytes").read_text())
        except (OSError, ValueError):
            return False
        return peak >= self.limit - OOM_MARGIN_BYTES

    def remove(self) -> None:
        remove_cgroups(self.path)
        # the agent's directory too, once its last container's is gone (else rmdir refuses)
        remove_cgroups(self.path.rsplit("/", 1)[0], recursive=False)


def remove_cgroups(relative: str, *, recursive: bool = True) -> None:
    """rmdir a cgroup (and the empty ones below it) in every v1 hierarchy, if it is there."""
    for hierarchy in CGROUP_V1_ROOT.iterdir() if CGROUP_V1_ROOT.is_dir() else ():
        top = hierarchy / relative.lstrip("/")
        if not top.is_dir():
            continue
        below = (p for p in top.rglob("*") if p.is_dir()) if recursive else ()
        for directory in sorted(below, key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


@dataclass
class PodmanRuntime:
    """Containers of the pods bound to `node`, as podman containers (module rules)."""

    node: str
    owner: str = ""
    """What tells this agent from another of the same node name: its working directory."""
    podman: str = "podman"
    conf: Path | None = field(default_factory=containers_conf)
    name: str = "container"
    _cgroup_manager: str | None = None

    # -- podman commands ---------------------------------------------------------------

    @property
    def agent(self) -> str:
        return agent_label(self.node, self.owner)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.conf is not None:
            env[CONTAINERS_CONF] = str(self.conf)
        return env

    def run(
        self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(
                [self.podman, *args], capture_output=True, text=True, env=self.env(),
                timeout=timeout, check=False, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise PodmanUnavailable(f"{self.podman} is not installed") from exc
        if check and done.returncode != 0:
            raise subprocess.CalledProcessError(
                done.returncode, done.args, done.stdout, done.stderr
            )
        return done

    def version(self) -> str:
        """podman's version; PodmanUnavailable when it is missing or does not answer."""
        try:
            done = self.run("version", "--format", "{{.Client.Version}}", timeout=60)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise PodmanUnavailable(f"podman does not answer: {exc}") from exc
        return done.stdout.strip()

    def cgroup_manager(self) -> str:
        if self._cgroup_manager is None:
            done = self.run("info", "--format", "{{.Host.CgroupManager}}", check=False)
            self._cgroup_manager = done.stdout.strip() if done.returncode == 0 else ""
        return self._cgroup_manager

    def _memory_cgroup(self, name: str, limit: int | None) -> _MemoryCgroup | None:
        if limit is None or not (CGROUP_V1_MEMORY / "memory.limit_in_bytes").exists():
            return None
        if self.cgroup_manager() != "cgroupfs":
            return None
        return _MemoryCgroup(f"/{CGROUP_PARENT}/{self.agent}/{name}", limit)

    # -- the port ----------------------------------------------------------------------

    def clean_up(self) -> None:
        """Remove every container an earlier run of this node's agent left (rule 2)."""
        listed = self.run(
            "ps", "--all", "--filter", f"label={AGENT_LABEL}={self.agent}",
            "--format", "{{.Names}}",
        )  # fmt: skip
        names = listed.stdout.split()
        if names:
            self.run("rm", "--force", "--time", "0", *names, check=False)
        remove_cgroups(f"/{CGROUP_PARENT}/{self.agent}")

    def image_user(self, image: str) -> str:
        """The image's USER, or ImageUnavailable when the local store lacks it (rule 3)."""
        done = self.run("image", "inspect", "--format", "{{.Config.User}}", image, check=False)
        if done.returncode != 0:
            raise ImageUnavailable(
                f'image "{image}" is not in the node\'s image store and the node agent does not '
                f"pull (no registry is reachable): build or load it first (podman images lists "
                f"the store){': ' + done.stderr.strip() if done.stderr.strip() else ''}"
            )
        return done.stdout.strip()

    def start(self, launch: ContainerLaunch) -> RunningContainer:
        violation = non_root_violation(launch.isolation, self.image_user(launch.image))
        if violation:
            raise ContainerConfigError(violation)
        name = container_name(launch)
        self.run("rm", "--force", "--time", "0", name, check=False)  # a leftover of a crash
        launch.directory.mkdir(parents=True, exist_ok=True)
        # the termination message file is bind mounted: it must exist, writable by any user
        launch.termination_file.write_text("")
        launch.termination_file.chmod(0o666)
        cgroup = self._memory_cgroup(name, launch.isolation.memory_limit_bytes)
        if cgroup is not None:
            cgroup.create()
        argv = create_arguments(
            launch, name, self.node, cgroup.path if cgroup else None, self.agent
        )
        done = self.run(*argv, check=False)
        if done.returncode != 0:
            if cgroup is not None:
                cgroup.remove()
            message = done.stderr.strip().splitlines()[-1:] or ["podman create failed"]
            raise ContainerConfigError(f"cannot create the container: {message[0]}")
        container_id = done.stdout.strip().splitlines()[-1]
        # conmon (started by `podman start`) leaves files such as `oom` in its working
        # directory: the container's own, never the agent's
        child = ChildProcess(
            launch.container,
            [self.podman, "start", "--attach", name],
            launch.log_file,
            env=self.env(),
            cwd=launch.directory,
            die_with_thread=True,
        )
        child.start()
        return _PodmanContainer(self, name, f"podman://{container_id}", child, cgroup)


class _PodmanContainer:
    def __init__(
        self,
        runtime: PodmanRuntime,
        name: str,
        container_id: str,
        child: ChildProcess,
        cgroup: _MemoryCgroup | None,
    ) -> None:
        self.runtime, self.name, self.container_id = runtime, name, container_id
        self.child, self.cgroup = child, cgroup
        self.stopped = False
        self.exit: ContainerExit | None = None

    def wait(self, timeout: float | None) -> ContainerExit | None:
        if self.exit is not None:
            return self.exit
        process = self.child.process
        if process is None:
            return ContainerExit(exit_code=137, signal=signal.SIGKILL)
        try:
            attached = process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.exit = self._read_exit(attached)
        return self.exit

    def _read_exit(self, attached: int) -> ContainerExit:
        done = self.runtime.run(
            "inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}} {{.State.Status}}",
            self.name, check=False,
        )  # fmt: skip
        fields = done.stdout.split()
        exit_code, oom, reason = attached, False, None
        if done.returncode == 0 and len(fields) == 3 and re.fullmatch(r"-?\d+", fields[0]):
            exit_code, oom = int(fields[0]), fields[1] == "true"
            if fields[2] not in ("exited", "stopped"):
                # it never ran (the runtime refused it; podman's error is in the log):
                # the exit code containerd gives a container that failed to start
                exit_code, reason = START_ERROR_EXIT_CODE, "StartError"
        if (
            not oom
            and exit_code == 128 + signal.SIGKILL
            and not self.stopped
            and self.cgroup is not None
        ):
            oom = self.cgroup.reached_limit()
        self.runtime.run("rm", "--force", "--time", "0", self.name, check=False)
        if self.cgroup is not None:
            self.cgroup.remove()
        self.child.stop(timeout=1)
        return ContainerExit(exit_code=exit_code, oom_killed=oom, reason=reason)

    def terminate(self, grace_seconds: float) -> None:
        """`podman stop`: the image's stop signal (SIGTERM), SIGKILL after the grace period."""
        self.stopped = True
        seconds = str(max(0, math.ceil(grace_seconds)))
        thread = threading.Thread(
            target=self.runtime.run,
            args=("stop", "--time", seconds, self.name),
            kwargs={"check": False, "timeout": max(COMMAND_TIMEOUT, grace_seconds + 60)},
            name=f"podman-stop-{self.name}",
            daemon=True,
        )
        thread.start()
