"""Podman for the tests: is it here, a tiny image to run, and the Recluster image if built.

No registry is reachable from these machines, so the test image is made
locally: Debian's statically linked busybox (the `busybox-static` package,
fetched with `apt-get download` when it is not installed) with a symlink per
applet, imported with `podman import`. The Recluster image is built by
`make image`; tests that need it skip, naming that command, until it exists.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from recluster.localkube.podman import PodmanRuntime, PodmanUnavailable

BUSYBOX_IMAGE = "localhost/recluster-test-busybox:1"
RECLUSTER_IMAGE = "localhost/recluster:dev"
ELF_MAGIC = b"\x7fELF"
PT_INTERP = 3


def podman_missing(runtime: PodmanRuntime) -> str | None:
    """None when podman answers here, else why not (the skip reason)."""
    if shutil.which(runtime.podman) is None:
        return "podman is not installed (apt-get install podman runc; .ci/run does)"
    try:
        runtime.version()
    except PodmanUnavailable as exc:
        return str(exc)
    return None


def image_exists(runtime: PodmanRuntime, image: str) -> bool:
    return runtime.run("image", "exists", image, check=False).returncode == 0


def _is_static_elf(path: Path) -> bool:
    """An ELF executable without a program interpreter (no dynamic loader, no libc needed)."""
    data = path.read_bytes()
    if not data.startswith(ELF_MAGIC) or data[4] != 2:  # 64-bit only
        return False
    order = "little" if data[5] == 1 else "big"
    phoff = int.from_bytes(data[32:40], order)
    size, count = int.from_bytes(data[54:56], order), int.from_bytes(data[56:58], order)
    return all(
        int.from_bytes(data[phoff + i * size : phoff + i * size + 4], order) != PT_INTERP
        for i in range(count)
    )


def static_busybox(cache: Path) -> Path:
    """A statically linked busybox: the installed busybox-static's, else Debian's package."""
    installed = Path("/bin/busybox")
    if installed.is_file() and _is_static_elf(installed):
        return installed
    fetched = cache / "root" / "bin" / "busybox"
    if fetched.is_file():
        return fetched
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["apt-get", "download", "busybox-static"], cwd=cache, check=True, capture_output=True,
        timeout=300,
    )  # fmt: skip
    package = next(cache.glob("busybox-static_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(package), str(cache / "root")], check=True)
    return fetched


def ensure_busybox_image(runtime: PodmanRuntime, cache: Path) -> str:
    """BUSYBOX_IMAGE in podman's store (built once per machine): sh, sleep, id, dd, ..."""
    if image_exists(runtime, BUSYBOX_IMAGE):
        return BUSYBOX_IMAGE
    busybox = static_busybox(cache)
    applets = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            for directory, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777)):
                info = tarfile.TarInfo(directory)
                info.type, info.mode = tarfile.DIRTYPE, mode
                tar.addfile(info)
            tar.add(busybox, "bin/busybox")
            for applet in applets:
                if applet != "busybox":
                    link = tarfile.TarInfo(f"bin/{applet}")
                    link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                    tar.addfile(link)
            passwd = b"root:x:0:0:root:/root:/bin/sh\n"
            info = tarfile.TarInfo("etc/passwd")
            info.size, info.mode = len(passwd), 0o644
            tar.addfile(info, io.BytesIO(passwd))
        runtime.run(
            "import", "--change", 'CMD ["/bin/sh"]', "--change", "ENV PATH=/bin",
            str(archive), BUSYBOX_IMAGE,
        )  # fmt: skip
    return BUSYBOX_IMAGE


def recluster_image_missing(runtime: PodmanRuntime, image: str = RECLUSTER_IMAGE) -> str | None:
    """None when the Recluster image is in podman's store, else why not (naming `make image`)."""
    if image_exists(runtime, image):
        return None
    return f"{image} is not in podman's image store: build it with `make image`"
