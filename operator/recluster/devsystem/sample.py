"""Generated sample collections: normalised embeddings around a few topic directions."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..store.base import CollectionStore

DIM = 32
TOPICS = 6
SEED = 7


def topic_centres(topics: int, dim: int, seed: int) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return centres


def documents(
    count: int,
    centres: NDArray[np.float32],
    weights: NDArray[np.float64] | None,
    seed: int,
    spread: float = 0.25,
) -> NDArray[np.float32]:
    """`count` unit vectors, each near a topic drawn with the given weights."""
    rng = np.random.default_rng(seed)
    topics = rng.choice(len(centres), size=count, p=weights)
    noise = rng.normal(scale=spread / np.sqrt(centres.shape[1]), size=(count, centres.shape[1]))
    vectors = (centres[topics] + noise).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def ensure_sample(
    store: CollectionStore,
    namespace: str,
    collection_id: str,
    count: int = 1000,
    dim: int = DIM,
    topics: int = TOPICS,
    seed: int = SEED,
) -> int:
    """Create the collection with `count` documents unless it already has documents."""
    try:
        existing = store.count(namespace, collection_id)
    except Exception:  # not found: create it
        existing = 0
    if existing:
        return existing
    centres = topic_centres(topics + 1, dim, seed)[:topics]  # the last one comes later
    vectors = documents(count, centres, None, seed + 1)
    ids = [f"{collection_id}-doc-{i:06d}" for i in range(count)]
    store.append(namespace, collection_id, ids, vectors)
    return count
