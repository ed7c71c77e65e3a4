"""Keeps appending generated documents to the dev collections, with a shifting topic mix.

So that `recluster dev` shows the two trigger types a CronJob cannot express:
the event example fires as documents arrive, and the conditional example fires
once a new topic has grown enough to move the collection's drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import numpy as np

from ..store.base import CollectionStore
from .sample import DIM, SEED, TOPICS, documents, topic_centres

log = logging.getLogger(__name__)


def mix(elapsed: float, ramp_seconds: float, topics: int = TOPICS) -> np.ndarray:
    """Topic weights at `elapsed`: the original topics, then more and more of a new one."""
    share = min(0.9, 0.9 * elapsed / ramp_seconds)
    weights = np.full(topics + 1, (1 - share) / topics)
    weights[-1] = share
    return weights


@dataclass(frozen=True)
class FeedPace:
    """`batch` documents per collection every `interval` seconds; the new topic's share
    of them grows to 90% over `ramp_seconds`; feeding stops after `limit` per collection."""

    batch: int = 25
    interval: float = 2.0
    ramp_seconds: float = 60.0
    limit: int = 20_000


class DocumentFeeder:
    """Appends generated documents to each collection at a `FeedPace`."""

    def __init__(
        self,
        store: CollectionStore,
        namespace: str,
        collections: list[str],
        pace: FeedPace | None = None,
    ) -> None:
        self.store, self.namespace, self.collections = store, namespace, collections
        pace = pace or FeedPace()
        self.batch, self.interval, self.ramp_seconds = pace.batch, pace.interval, pace.ramp_seconds
        self.limit = pace.limit
        # the original topics plus one that does not exist yet
        self.centres = topic_centres(TOPICS + 1, DIM, SEED)
        self.added = 0

    def feed_once(self, elapsed: float, round_number: int) -> None:
        weights = mix(elapsed, self.ramp_seconds)
        for index, cid in enumerate(self.collections):
            vectors = documents(self.batch, self.centres, weights, seed=round_number * 31 + index)
            ids = [f"{cid}-new-{round_number:06d}-{i:03d}" for i in range(self.batch)]
            self.store.append(self.namespace, cid, ids, vectors)
        self.added += self.batch * len(self.collections)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        round_number = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            if stop.is_set():
                break
            round_number += 1
            if self.batch * round_number > self.limit:
                continue  # enough for a dev session: the collections stop growing
            try:
                await asyncio.to_thread(self.feed_once, loop.time() - started, round_number)
            except Exception as exc:  # keep feeding; the table shows the rest
                log.warning("cannot append sample documents: %s", exc)
