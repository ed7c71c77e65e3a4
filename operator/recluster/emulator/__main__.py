"""``python -m recluster.emulator``: serve the emulated API until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .cluster import EmulatedCluster


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recluster.emulator",
        description="Serve an emulated Kubernetes API on 127.0.0.1 (no TLS, no auth).",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for the server here")
    parser.add_argument("--token", help="bearer token to put into the kubeconfig")
    parser.add_argument(
        "--crds",
        type=Path,
        action="append",
        default=[],
        help="a CRD file or directory to serve (repeatable)",
    )
    parser.add_argument(
        "--no-gc", action="store_true", help="disable garbage collection by ownerReferences"
    )
    parser.add_argument(
        "--lenient-namespaces",
        action="store_true",
        help="create missing namespaces on demand instead of answering 404",
    )
    parser.add_argument("--verbose", "-v", action="store_true")
    return parser


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with EmulatedCluster(
        crds=args.crds,
        host=args.host,
        port=args.port,
        garbage_collection=not args.no_gc,
        strict_namespaces=not args.lenient_namespaces,
    ) as cluster:
        if args.kubeconfig:
            cluster.write_kubeconfig(args.kubeconfig, token=args.token)
        # One parseable line for whoever started us (``recluster dev``, tests).
        print(f"serving {cluster.url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
