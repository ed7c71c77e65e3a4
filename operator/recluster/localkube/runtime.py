"""How the node agent runs a container: the `PodRuntime` port, a real and a fake one.

- `ProcessRuntime` runs a container as a local process: the image's entry
  point comes from an `ImageProfile` (the images this machine can run
  without a container engine, the Recluster image by default), the
  container's paths are translated to host directories (`PathMap`), and
  output goes to a log file per run.
- `ScriptedRuntime` is the fake beside it: a container runs until the test
  says how it ends (`finish`), so operator tests decide each Job's outcome
  while the real scheduler, Job controller and node agent do the rest.

Both hand the agent the same `ContainerExit`; the agent turns it into the
pod's status (kubelet.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .isolation import Isolation
from .kubelet import PathMap
from .processes import ChildProcess


class ImageUnavailable(RuntimeError):
    """The runtime cannot run this image (the kubelet's ErrImagePull)."""


@dataclass(frozen=True)
class ContainerLaunch:
    """Everything needed to start one container of one pod."""

    namespace: str
    pod: str
    container: str
    image: str
    command: Sequence[str] | None
    args: Sequence[str]
    env: Mapping[str, str]
    paths: PathMap
    directory: Path
    """A directory of this container's own (logs, the termination message file)."""
    termination_path: str = "/dev/termination-log"
    working_dir: str | None = None
    attempt: int = 0
    pod_uid: str = ""
    isolation: Isolation = field(default_factory=Isolation)
    """What a container runtime enforces (a process runtime ignores it)."""

    @property
    def termination_file(self) -> Path:
        return self.directory / "termination-log"

    @property
    def log_file(self) -> Path:
        return self.directory / f"{self.attempt}.log"


@dataclass(frozen=True)
class ContainerExit:
    exit_code: int
    signal: int | None = None
    oom_killed: bool = False
    reason: str | None = None
    """The terminated state's reason when the exit code does not decide it (StartError)."""


class RunningContainer(Protocol):
    container_id: str

    def wait(self, timeout: float | None) -> ContainerExit | None:
        """The exit, or None if still running after timeout seconds."""

    def terminate(self, grace_seconds: float) -> None:
        """SIGTERM, then SIGKILL after the grace period (returns at once)."""


class PodRuntime(Protocol):
    name: str

    def start(self, launch: ContainerLaunch) -> RunningContainer:
        """Start the container or raise ImageUnavailable."""

    def clean_up(self) -> None:
        """Remove what an earlier run of the agent left behind (called as the agent starts)."""


# -- local processes -------------------------------------------------------------------


@dataclass(frozen=True)
class ImageProfile:
    """An image this machine can run as a process: what its ENTRYPOINT/CMD/WORKDIR are."""

    pattern: str
    """A regular expression the image reference must fully match."""
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    working_dir: str | None = None
    termination_env: str | None = None
    """An environment variable through which the program accepts its termination-message path."""

    def matches(self, image: str) -> bool:
        return re.fullmatch(self.pattern, image) is not None


RECLUSTER_IMAGE = ImageProfile(
    # ghcr.io/recluster/recluster:0.1.0, recluster:dev, registry/x/recluster-job@sha256:...
    pattern=r"(?:[^/\s]+/)*recluster(?:-[a-z0-9-]+)?(?::[\w.\-]+)?(?:@sha256:[0-9a-f]{64})?",
    entrypoint=(sys.executable, "-m", "recluster"),
    cmd=("--help",),
    working_dir="/tmp",
    termination_env="RECLUSTER_TERMINATION_LOG",
)
"""The Dockerfile's ENTRYPOINT (recluster), CMD (--help) and WORKDIR (/tmp), from this Python."""

HOST_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "VIRTUAL_ENV")
"""What a process inherits from the agent's environment; the rest comes from the pod spec."""


class _Process:
    def __init__(self, child: ChildProcess) -> None:
        self.child = child
        self.container_id = f"process://{child.pid}"
        self._killer: threading.Timer | None = None

    def wait(self, timeout: float | None) -> ContainerExit | None:
        process = self.child.process
        if process is None:
            return ContainerExit(exit_code=137, signal=signal.SIGKILL)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._killer is not None:
            self._killer.cancel()
        self.child.stop(timeout=1)  # reap the group: no grandchild survives its container
        if code < 0:  # killed by a signal: report it as a container engine does (128 + n)
            return ContainerExit(exit_code=128 - code, signal=-code)
        return ContainerExit(exit_code=code)

    def terminate(self, grace_seconds: float) -> None:
        pid = self.child.pid
        if pid is None:
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        self._killer = threading.Timer(max(0.0, grace_seconds), self._kill, (pid,))
        self._killer.daemon = True
        self._killer.start()

    @staticmethod
    def _kill(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


@dataclass
class ProcessRuntime:
    """Containers as local processes of the images in `profiles`."""

    profiles: Sequence[ImageProfile] = (RECLUSTER_IMAGE,)
    host_env: Sequence[str] = HOST_ENV
    name: str = "process"

    def profile(self, image: str) -> ImageProfile:
        for profile in self.profiles:
            if profile.matches(image):
                return profile
        raise ImageUnavailable(
            f'image "{image}" cannot run as a local process (the process runtime knows '
            + ", ".join(p.pattern for p in self.profiles)
            + "); a container runtime is needed for it"
        )

    def clean_up(self) -> None:
        """Nothing to do: processes die with the agent (processes.py)."""

    def start(self, launch: ContainerLaunch) -> RunningContainer:
        profile = self.profile(launch.image)
        paths = launch.paths
        # only what the pod spec says is in the container's file system; the profile's
        # entry point is this machine's (a venv under /tmp must not meet an emptyDir there)
        command = [paths.translate(a) for a in launch.command] if launch.command else None
        args = [paths.translate(a) for a in launch.args]
        argv = [
            *(command if command else profile.entrypoint),
            *(args if (args or command) else profile.cmd),
        ]
        env = {k: os.environ[k] for k in self.host_env if k in os.environ}
        env["HOME"] = str(launch.directory / "home")
        env.update({k: paths.translate(v) for k, v in launch.env.items()})
        if profile.termination_env:
            env[profile.termination_env] = str(launch.termination_file)
        if paths.translate("/tmp") != "/tmp":
            env.setdefault("TMPDIR", paths.translate("/tmp"))
        cwd = paths.translate(launch.working_dir or profile.working_dir or "/")
        if not Path(cwd).is_dir():
            cwd = str(launch.directory)
        (launch.directory / "home").mkdir(parents=True, exist_ok=True)
        # the worker thread that starts it waits for it: parent-death follows that thread
        child = ChildProcess(
            launch.container, argv, launch.log_file, env=env, cwd=Path(cwd), die_with_thread=True
        )
        try:
            child.start()
        except OSError as exc:
            raise ImageUnavailable(f"cannot start {argv[0]}: {exc.strerror}") from exc
        return _Process(child)


# -- the fake ----------------------------------------------------------------------------


@dataclass
class _Scripted:
    launch: ContainerLaunch
    container_id: str
    done: threading.Event = field(default_factory=threading.Event)
    exit: ContainerExit | None = None

    def wait(self, timeout: float | None) -> ContainerExit | None:
        return self.exit if self.done.wait(timeout) else None

    def terminate(self, grace_seconds: float) -> None:
        if not self.done.is_set():
            self.exit = ContainerExit(exit_code=143, signal=signal.SIGTERM)
            self.done.set()


class ScriptedRuntime:
    """Containers that run until told how they end; for tests of what sits above the node.

    `outcome(launch)` may decide at once (return a (exit code, termination
    message) pair); otherwise the container runs until `finish()`.
    """

    name = "scripted"

    def __init__(
        self, outcome: Callable[[ContainerLaunch], tuple[int, str] | None] | None = None
    ) -> None:
        self.outcome = outcome
        self._lock = threading.Condition()
        self.containers: list[_Scripted] = []

    def clean_up(self) -> None:
        """Nothing outlives the fake."""

    def start(self, launch: ContainerLaunch) -> RunningContainer:
        if launch.image.startswith("unavailable"):
            raise ImageUnavailable(f'image "{launch.image}" is not available')
        container = _Scripted(
            launch, f"scripted://{launch.namespace}/{launch.pod}/{launch.attempt}"
        )
        with self._lock:
            self.containers.append(container)
            self._lock.notify_all()
        decided = self.outcome(launch) if self.outcome else None
        if decided is not None:
            self._end(container, *decided)
        return container

    def running(self) -> list[ContainerLaunch]:
        with self._lock:
            return [c.launch for c in self.containers if not c.done.is_set()]

    def wait_started(
        self, match: Callable[[ContainerLaunch], bool], timeout: float = 30.0
    ) -> ContainerLaunch:
        """The first running container that matches, waiting for it to start."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for c in self.containers:
                    if not c.done.is_set() and match(c.launch):
                        return c.launch
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching container started")
                self._lock.wait(left)

    def finish(self, launch: ContainerLaunch, exit_code: int, message: str = "") -> None:
        """End a running container with this exit code and termination message."""
        with self._lock:
            found = [c for c in self.containers if c.launch is launch]
        if not found:
            raise KeyError(f"{launch.namespace}/{launch.pod} was never started")
        self._end(found[0], exit_code, message)

    @staticmethod
    def _end(container: _Scripted, exit_code: int, message: str) -> None:
        container.launch.directory.mkdir(parents=True, exist_ok=True)
        container.launch.termination_file.write_text(message)
        container.exit = ContainerExit(exit_code=exit_code)
        container.done.set()
