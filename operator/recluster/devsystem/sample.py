"""Generated sample collections: normalised embeddings around a few topic directions.

Each document also gets a short text drawn from its topic's words, so that the
runs' reports of `make dev` show keyword labels (engine/labels.py).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..store.base import CollectionStore

DIM = 32
TOPICS = 6
SEED = 7
TOPIC_WORDS = (
    "kubernetes pods nodes scheduler kubelet deployment replicas",
    "espresso coffee beans roast grinder barista crema",
    "football match goal striker referee league stadium",
    "telescope galaxy nebula orbit comet astronomer planet",
    "guitar chords melody drummer concert album chorus",
    "bread flour yeast dough oven sourdough baker",
    "glacier mountain trail summit hiking alpine ridge",
)
COMMON_WORDS = ["the", "new", "about", "with", "notes", "some", "today", "more", "and", "from"]


def texts_for(vectors: NDArray[np.float32], centres: NDArray[np.float32], seed: int) -> list[str]:
    """A text per vector: words of its nearest topic, and a few common ones."""
    rng = np.random.default_rng(seed)
    nearest = np.argmax(vectors @ centres.T, axis=1)
    out = []
    for topic in nearest.tolist():
        words = TOPIC_WORDS[topic % len(TOPIC_WORDS)].split()
        chosen = [*rng.choice(words, size=4), *rng.choice(COMMON_WORDS, size=3)]
        rng.shuffle(chosen)
        out.append(" ".join(str(w) for w in chosen))
    return out


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
    store.append(namespace, collection_id, ids, vectors, texts=texts_for(vectors, centres, seed))
    return count
