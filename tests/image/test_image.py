"""The Recluster image, run as the cluster runs it: read-only root, user 10001, /tmp only.

Each test starts containers of the image built by `make image` (image_support.py):
the CLI, the container of the Job the operator creates (recluster.core.jobs) on a
mounted Parquet store (k-means, and HDBSCAN on the numba path, loading the kernels
compiled at build time), the gateway against the real control plane, and the image's
contents (no compilers, no build leftovers).
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from image_support import ROOT, Image

from kube_support import GATEWAY_ACCOUNT, RELEASE_NAMESPACE, LocalKube, user_of
from recluster.api.clustering import ExecutionConfig
from recluster.core.jobs import JobRequest, JobSettings, build_job
from recluster.localkube.controlplane import write_kubeconfig
from recluster.store.factory import open_store

pytestmark = pytest.mark.image

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
NUMBA_SEED = "/opt/recluster/numba-cache"
SIZE_BUDGET_BYTES = 1_500_000_000
"""Uncompressed image size the image must stay under (docs/install.md reports the size)."""


def test_runs_as_10001_with_a_read_only_root_and_only_tmp_writable(image: Image) -> None:
    done = image.shell(
        "id -u; id -g; echo ok > /tmp/probe && cat /tmp/probe; "
        "for d in / /opt/venv /opt/recluster/numba-cache /var/tmp /usr/local/bin; do "
        '  touch "$d/probe" 2>&1 || true; '
        "done"
    )
    assert done.returncode == 0, done.stderr
    uid, gid, tmp, *refused = done.stdout.splitlines()
    assert (uid, gid, tmp) == ("10001", "10001", "ok")
    # EROFS, not EACCES: the root filesystem itself refuses, whoever writes.
    assert len(refused) == 5 and all("Read-only file system" in line for line in refused), refused


def test_version(image: Image) -> None:
    done = image.run(["--version"], options=image.read_only_args())
    assert done.returncode == 0, done.stderr
    assert VERSION in done.stdout
    assert image.inspect('{{index .Config.Labels "org.opencontainers.image.version"}}') == VERSION


def _blobs(n: int, k: int = 4, dim: int = 16, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)).astype(np.float32) * 5
    return (centres[np.arange(n) % k] + rng.normal(size=(n, dim))).astype(np.float32)


def _writable_dir(path: Path) -> Path:
    """A host directory the container's user 10001 may write (uids differ from ours)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o1777)
    return path


STORE_PATH = "/var/lib/recluster/store"
"""Where the chart mounts the Parquet store's volume (store.parquet.path)."""


def _job(image: Image, run_id: str, config: dict[str, Any]) -> dict[str, Any]:
    """The Job the operator creates for a firing of `config` (recluster.core.jobs)."""
    request = JobRequest(run_id, run_id, None, "manual", ExecutionConfig.model_validate(config))
    trigger = {"name": "image-test", "namespace": "default", "uid": "uid-image-test"}
    settings = JobSettings(
        image=image.tag,
        store_uri=STORE_PATH,
        volumes=[{"name": "store", "persistentVolumeClaim": {"claimName": "recluster-store"}}],
        volume_mounts=[{"name": "store", "mountPath": STORE_PATH}],
    )
    return build_job(trigger, None, request, settings)


def _run_job(
    image: Image, store: Path, tmp: Path, run_id: str, config: dict[str, Any]
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """The Job's container, run as a kubelet would: its args, env and security context,
    its emptyDir /tmp (the host directory `tmp`, to inspect), the store's volume (`store`)
    and the termination log file. The JSON summary it wrote there is returned."""
    (container,) = _job(image, run_id, config)["spec"]["template"]["spec"]["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and security["capabilities"]["drop"] == ["ALL"]
    assert not security["allowPrivilegeEscalation"] and security["runAsNonRoot"]
    termination = tmp.parent / f"termination-{run_id}"
    termination.write_text("")
    termination.chmod(0o666)
    mounts = {"tmp": _writable_dir(tmp), "store": store}
    options = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    if image.engine == "podman":
        options.append("--read-only-tmpfs=false")
    for mount in container["volumeMounts"]:
        options += ["-v", f"{mounts[mount['name']]}:{mount['mountPath']}"]
    options += ["-v", f"{termination}:/dev/termination-log"]
    for variable in container["env"]:
        # the downward API's metadata.namespace: the only valueFrom of a Parquet install
        value = variable.get("value", "default")
        options += ["-e", f"{variable['name']}={value}"]
    # numba reports each cache load and save on stdout
    options += ["-e", "NUMBA_DEBUG_CACHE=1"]
    done = image.run(container["args"], options=options)
    return done, json.loads(termination.read_text())


def _files(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): p.stat().st_size for p in directory.rglob("*.nb*")}


def test_run_job_clusters_a_mounted_store_without_compiling_numba(
    image: Image, tmp_path: Path
) -> None:
    """The operator's Job for k-means, then for HDBSCAN, on a Parquet store volume.

    Each Job also draws the map (UMAP, the default layout): its kernels load too.
    """
    store_dir = tmp_path / "store"
    store = open_store(str(store_dir))
    store.append("default", "col_abc123", [f"d{i}" for i in range(600)], _blobs(600))
    store.close()
    for path in [store_dir, *store_dir.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)

    kmeans = {"collection_ids": ["col_abc123"], "config": {"algorithm": "kmeans", "n_clusters": 4}}
    done, summary = _run_job(image, store_dir, tmp_path / "tmp-kmeans", "r-km", kmeans)
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary["status"] == "succeeded" and summary["run_id"] == "r-km"
    assert summary["num_clusters"] == 4 and summary["num_documents"] == 600
    # the map's UMAP: umap-learn's kernels (not declared cache=True upstream) loaded, none compiled
    loads = [line for line in done.stdout.splitlines() if "[cache] data loaded from" in line]
    assert any("layouts._optimize_layout_euclidean_single_epoch" in line for line in loads), loads
    assert any("umap_.smooth_knn_dist" in line for line in loads), loads
    assert "[cache] data saved to" not in done.stdout and "[cache] index saved" not in done.stdout

    # cluster_selection_epsilon > 0: the one path still on numba (engine/warmup.py)
    hdbscan = {
        "collection_ids": ["col_abc123"],
        "config": {
            "algorithm": "hdbscan",
            "min_cluster_size": 10,
            "cluster_selection_epsilon": 0.1,
        },
    }
    tmp = tmp_path / "tmp-hdbscan"
    done, summary = _run_job(image, store_dir, tmp, "r-hdb", hdbscan)
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary["status"] == "succeeded" and summary["num_clusters"] == 4
    # numba loaded machine code from the seeded cache and compiled (hence saved) nothing
    loaded = done.stdout.count("[cache] data loaded from")
    saved = done.stdout.count("[cache] data saved to") + done.stdout.count("[cache] index saved")
    assert loaded > 0 and saved == 0, done.stdout
    seed = image.run(
        ["-c", f"cd {NUMBA_SEED} && find . -name '*.nb*' -printf '%P %s\\n'"],
        options=["--entrypoint", "sh"],
    )
    seeded = {
        name: int(size) for name, size in (line.split() for line in seed.stdout.split("\n") if line)
    }
    assert seeded and _files(tmp / "numba-cache") == seeded

    results = open_store(str(store_dir))
    for run_id in ("r-km", "r-hdb"):
        map_table = results.read_artifact("default", run_id, "map.parquet")
        layout = pq.read_schema(io.BytesIO(map_table)).metadata[b"recluster.layout_method"]
        assert layout == b"umap", run_id
    assert results.read_run("default", "r-km").num_clusters == 4
    assert results.read_run("default", "r-hdb").num_clusters == 4
    assert results.latest_run("default", ["col_abc123"]) == "r-hdb"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_gateway_container_answers_on_its_port(
    image: Image, kube: LocalKube, tmp_path: Path
) -> None:
    """The gateway in its container reaches the apiserver with its ServiceAccount's token."""
    config = _writable_dir(tmp_path / "kube")
    shutil.copy(kube.plane.pki.ca.cert, config / "ca.crt")
    (config / "ca.crt").chmod(0o644)
    write_kubeconfig(
        config / "config",
        kube.plane.url,
        Path("/kube/ca.crt"),
        user=user_of(GATEWAY_ACCOUNT),
        token=kube.tokens[GATEWAY_ACCOUNT],
    ).chmod(0o644)
    namespace = kube.new_namespace(kube.namespace_name("image"))
    key, _ = kube.add_api_key("carol", [namespace])
    port, name = _free_port(), f"recluster-gateway-{uuid.uuid4().hex[:8]}"
    options = [*image.read_only_args(), "--detach", "--name", name, "-v", f"{config}:/kube:ro"]
    options += ["-e", "KUBECONFIG=/kube/config"]
    args = ["gateway", "--host", "127.0.0.1", "--port", str(port)]
    started = image.run([*args, "--namespace-of-keys", RELEASE_NAMESPACE], options=options)
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, _logs(image, name)
            time.sleep(0.1)
        assert httpx.get(url + "/healthz").text == "ok"
        headers = {"Authorization": f"Bearer {key}", "X-Namespace": namespace}
        listed = httpx.get(url + "/v1/clusters/triggers", headers=headers)
        assert listed.status_code == 200 and listed.json()["total"] == 0, listed.text
        assert httpx.get(url + "/v1/clusters/triggers").status_code == 401
    finally:
        subprocess.run([image.engine, "rm", "--force", name], capture_output=True, check=False)


def _logs(image: Image, name: str) -> str:
    done = subprocess.run([image.engine, "logs", name], capture_output=True, text=True, check=False)
    return f"the gateway did not become ready:\n{done.stdout}{done.stderr}"


def test_no_compilers_caches_or_build_leftovers(image: Image) -> None:
    # As root, to see into /root (where pip's cache would be). The distribution's own
    # Python packages (Debian's setuptools, in a base made by tools/image/base.py) keep
    # their *.egg-info metadata: theirs, not leftovers of our build.
    done = image.shell(
        "for c in gcc cc c++ g++ clang ld as make; do command -v $c; done; "
        "find / -xdev -path /usr/lib/python3/dist-packages -prune -o \\( -name '*.egg-info' "
        "-o -path '*/.cache/pip' -o -path /src -o -path /opt/venv/build \\) -print "
        "2>/dev/null; true",
        options=["--user", "0"],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_image_size_is_reported_and_within_budget(image: Image) -> None:
    size = int(image.inspect("{{.Size}}"))
    print(f"\n{image.tag}: {size / 1e6:.0f} MB uncompressed")
    assert size < SIZE_BUDGET_BYTES, f"{image.tag} is {size / 1e6:.0f} MB"
