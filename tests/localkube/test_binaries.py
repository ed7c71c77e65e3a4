"""Where the control plane's binaries come from, and what they are stamped with."""

from __future__ import annotations

import os
from pathlib import Path

from recluster.localkube.binaries import (
    BINARIES,
    GO_MODULE,
    PINNED,
    Versions,
    cache_root,
    locate,
    read_versions,
    version_ldflags,
)


def test_the_package_knows_the_versions_go_mod_pins() -> None:
    assert read_versions(GO_MODULE / "go.mod") == PINNED
    text = (GO_MODULE / "go.mod").read_text()
    # every staging module of the release is replaced by its matching v0.X.Y
    minor = PINNED.kubernetes.lstrip("v").split(".", 1)[1]
    assert f"k8s.io/api => k8s.io/api v0.{minor}" in text
    assert f"k8s.io/apiserver => k8s.io/apiserver v0.{minor}" in text


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_kubebuilder_assets_win_and_the_rest_comes_from_the_cache(tmp_path: Path) -> None:
    versions = Versions("v1.36.3", "v3.6.8", "1.26.0")
    env = {"RECLUSTER_KUBE_CACHE": str(tmp_path / "cache"),
           "KUBEBUILDER_ASSETS": str(tmp_path / "assets")}  # fmt: skip
    cached = tmp_path / "cache" / "v1.36.3-etcd-v3.6.8"
    assert cache_root(env) / versions.key == cached
    assert locate(versions, env) == dict.fromkeys(BINARIES)
    for name in BINARIES:
        executable(cached / name)
    # envtest's bundles hold etcd and kube-apiserver only
    assets = {name: executable(tmp_path / "assets" / name) for name in ("etcd", "kube-apiserver")}
    found = locate(versions, env)
    assert found["etcd"] == assets["etcd"] and found["kube-apiserver"] == assets["kube-apiserver"]
    assert found["kube-scheduler"] == cached / "kube-scheduler"


def test_the_cache_follows_xdg_then_home(tmp_path: Path) -> None:
    assert cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "recluster" / "kube"
    assert cache_root({}) == Path(os.path.expanduser("~")) / ".cache" / "recluster" / "kube"


def test_binaries_are_stamped_with_the_release() -> None:
    flags = version_ldflags(PINNED, "2026-01-01T00:00:00Z")
    assert "-X k8s.io/component-base/version.gitVersion=v1.36.3" in flags
    assert "-X k8s.io/client-go/pkg/version.gitMinor=36" in flags
