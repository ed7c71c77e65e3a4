"""One drift check against a store: baseline, counts, a bounded sample, then `core.drift`.

The operator calls `check` every `check_interval_seconds` of a conditional
trigger; the job runner uses `sample_collections` to estimate a baseline's
statistics when it streams. Reads are bounded: the baseline (K × D), one
count per collection and at most `core.drift.MAX_SAMPLE_ROWS` sampled rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .core.drift import (
    Measurement,
    has_stats,
    measure,
    needs_stats,
    sample_counts,
    sample_size_for,
)
from .store.base import CollectionStore
from .store.types import Float32Matrix


def sample_collections(
    store: CollectionStore,
    namespace: str,
    counts: Mapping[str, int],
    n: int,
    seed: int,
) -> Float32Matrix:
    """A sample of about n rows over several collections, each in proportion to its size.

    One float32 matrix, allocated once; each collection gets its own seed so
    that collections with the same layout do not return the same row positions.
    """
    pieces = {
        cid: store.sample(namespace, cid, rows, seed + i).embeddings
        for i, (cid, rows) in enumerate(sample_counts(counts, n).items())
        if rows
    }
    dims = {p.shape[1] for p in pieces.values()}
    if len(dims) > 1:
        raise ValueError(
            "collections have embeddings of different dimensions: "
            + ", ".join(f"{c}={p.shape[1]}" for c, p in pieces.items())
        )
    if len(pieces) == 1:
        return next(iter(pieces.values()))
    rows = sum(p.shape[0] for p in pieces.values())
    out = np.empty((rows, dims.pop() if dims else 0), dtype=np.float32)
    start = 0
    for p in pieces.values():
        out[start : start + p.shape[0]] = p
        start += p.shape[0]
    return out


def check(
    store: CollectionStore,
    namespace: str,
    collection_ids: Sequence[str],
    metric: str,
    seed: int,
) -> Measurement | None:
    """Measure `metric` for these collections now; None when no run left a baseline yet.

    A collection that does not exist raises `CollectionNotFound` (the caller
    reports it); `seed` should change between checks (e.g. the check's
    timestamp) so that successive checks look at different samples.
    """
    baseline = store.read_baseline(namespace, collection_ids)
    if baseline is None:
        return None
    counts = {cid: store.count(namespace, cid) for cid in dict.fromkeys(collection_ids)}
    total = sum(counts.values())
    if needs_stats(metric) and has_stats(baseline):
        n = sample_size_for(int(baseline.centroids.shape[0]), total)
        sample = sample_collections(store, namespace, counts, n, seed)
    else:
        sample = np.empty((0, baseline.dim), dtype=np.float32)
    return measure(metric, sample, baseline, total)
