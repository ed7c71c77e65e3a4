"""Pushed document events acknowledged per second, durably, against the emulated API.

Three processes, as in a cluster: the emulated Kubernetes API, the gateway
(`recluster gateway`), and this load generator. 100 event triggers listen on
100 collections; every acknowledged event has been written to its trigger's
status before the answer. Reports single-event requests and batched requests
(a list of events per request), and checks at the end that the triggers'
counters add up to exactly what was acknowledged.

    .venv/bin/python benchmarks/bench_events.py --triggers 100 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from recluster.gateway.keys import make_api_key_secret

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A child process logging to a file (a full pipe would block it)."""
    return subprocess.Popen(
        args, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True, env=env
    )


def first_line(log: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if "\n" in text:
            return text.split("\n", 1)[0]
        time.sleep(0.05)
    raise TimeoutError(f"nothing in {log}")


def trigger(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "recluster.io/v1alpha1",
        "kind": "ClusterTrigger",
        "metadata": {"name": f"events-{i}", "namespace": "default"},
        "spec": {
            "trigger_type": "event",
            "schedule_config": {
                "event_type": "documents_added",
                "event_threshold": 10**9,
                "collection_id": f"col_{i}",
                "cooldown_seconds": 0,
            },
            "cluster_id": "unused",
        },
    }


async def load(
    url: str, key: str, triggers: int, seconds: float, concurrency: int, batch: int, tag: str
) -> tuple[int, int, float]:
    headers = {"Authorization": f"Bearer {key}", "X-Namespace": "default"}
    acknowledged = requests = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)

    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:

        async def worker(w: int) -> None:
            nonlocal acknowledged, requests
            n = 0
            while time.monotonic() < deadline:
                events = [
                    {
                        "event_type": "documents_added",
                        "collection_id": f"col_{(w + n + j) % triggers}",
                        "count": 1,
                        "idempotency_key": f"{tag}-{w}-{n}-{j}",
                    }
                    for j in range(batch)
                ]
                n += 1
                body: Any = events if batch > 1 else events[0]
                async with session.post(f"{url}/v1/events", json=body) as response:
                    if response.status != 200:
                        raise RuntimeError(f"{response.status}: {await response.text()}")
                    await response.read()
                acknowledged += batch
                requests += 1

        started = time.monotonic()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.monotonic() - started
    return acknowledged, requests, elapsed


async def counted(server: str, triggers: int) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{server}/apis/recluster.io/v1alpha1/namespaces/default/clustertriggers"
        ) as response,
    ):
        items = (await response.json())["items"]
    return sum((item.get("status") or {}).get("event_counter", 0) for item in items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--triggers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch", type=int, default=50, help="events per batched request")
    parser.add_argument("--port", type=int, default=18090)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-events-"))
    kubeconfig = work / "kubeconfig"
    emulator = start(
        [PY, "-m", "recluster.emulator", "--kubeconfig", str(kubeconfig),
         "--crds", str(ROOT / "crds")],
        work / "emulator.log",
    )  # fmt: skip
    server = first_line(work / "emulator.log").split()[-1]
    key, secret = make_api_key_secret("bench", ["default"], name="bench-key")

    async def setup() -> None:
        async with aiohttp.ClientSession() as session:
            await session.post(f"{server}/api/v1/namespaces/default/secrets", json=secret)
            path = f"{server}/apis/recluster.io/v1alpha1/namespaces/default/clustertriggers"
            for i in range(args.triggers):
                async with session.post(path, json=trigger(i)) as response:
                    assert response.status == 201, await response.text()

    asyncio.run(setup())
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    gateway = start(
        [PY, "-m", "recluster", "gateway", "--host", "127.0.0.1", "--port", str(args.port),
         "--namespace-of-keys", "default"],
        work / "gateway.log",
        env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(200):
            try:
                out = subprocess.run(
                    ["curl", "-sf", f"{url}/readyz"], capture_output=True, timeout=2, check=False
                )
                if out.returncode == 0:
                    break
            except (OSError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.1)
        results = {}
        for label, batch in (("single events", 1), (f"batches of {args.batch}", args.batch)):
            acked, requests, elapsed = asyncio.run(
                load(url, key, args.triggers, args.seconds, args.concurrency, batch, label[:6])
            )
            results[label] = (acked, requests, elapsed)
        total = asyncio.run(counted(server, args.triggers))
        acknowledged = sum(a for a, _, _ in results.values())
        print(f"{args.triggers} event triggers, {args.concurrency} concurrent clients, "
              f"{os.cpu_count()} cores (emulator, gateway and load share them)")  # fmt: skip
        print(f"{'requests':<22}{'events/s':>10}{'requests/s':>12}{'events':>9}")
        for label, (acked, requests, elapsed) in results.items():
            print(f"{label:<22}{acked / elapsed:>10.0f}{requests / elapsed:>12.0f}{acked:>9}")
        print(f"counted on the triggers: {total} of {acknowledged} acknowledged "
              f"({'exact' if total == acknowledged else 'MISMATCH'})")  # fmt: skip
        print(json.dumps({k: v[0] / v[2] for k, v in results.items()}))
    finally:
        for process in (gateway, emulator):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)


if __name__ == "__main__":
    main()
