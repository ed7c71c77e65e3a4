"""``python -m recluster.emulator`` serves from its own process until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
from emulator_helpers import CRDS, ROOT


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_until_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    kubeconfig = tmp_path / "dev" / "kubeconfig"
    command = [sys.executable, "-m", "recluster.emulator", "--port", "0", "--crds", str(CRDS)]
    process = subprocess.Popen(
        [*command, "--kubeconfig", str(kubeconfig)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:"), line
        url = line.split()[1]
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["clusters"][0]["cluster"]["server"] == url

        async def probe() -> tuple[int, list[str]]:
            async with aiohttp.ClientSession(url, headers={"Connection": "close"}) as session:
                async with session.get("/apis/recluster.io/v1alpha1/clustertriggers") as r:
                    status = r.status
                async with session.get(
                    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
                ) as r:
                    crds = [c["metadata"]["name"] for c in (await r.json())["items"]]
                return status, crds

        status, crds = asyncio.run(probe())
        assert status == 200
        assert "clustertriggers.recluster.io" in crds
        process.send_signal(sig)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
