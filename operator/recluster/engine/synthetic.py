"""Generated embeddings with known clusters, easy and hard, for tests, benchmarks and warm-up.

The hard kind reproduces what made the engine's first hdbscan fail on data the
tests never saw (issue 13), as a class of problem rather than one example:

- **anisotropic clusters**: each topic spreads along its own few directions,
  with scales that differ by an order of magnitude, plus a little isotropic
  noise in every dimension;
- **topics that overlap pairwise**: topics come in pairs whose centres differ
  by a small step along one random direction, smaller than either topic's
  own spread, but larger than their spread along that direction; the pair is
  separable only in that direction, which a projection onto the leading
  principal components (dominated by the topics' large spreads) drops;
- **Zipf-skewed sizes**: topic i has a share proportional to 1/(i+1);
- **uniform noise**: a fraction of rows (5 % by default) drawn uniformly on
  the unit sphere, labelled -1.

All rows are L2-normalised, as sentence embeddings usually are.

`topic_texts` writes a text per row for a labelled set: words of its topic's
own vocabulary mixed with words common to all topics (the artifacts' tests
check that a cluster's keywords are its planted topic's words).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Labelled:
    """Embeddings with their generating labels (-1 = noise)."""

    matrix: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int32]
    name: str


def blobs(n: int, d: int, k: int, seed: int, *, spread: float = 5.0) -> Labelled:
    """Isotropic Gaussian blobs of equal expected size (the easy case)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=spread, size=(k, d)).astype(np.float32)
    labels = rng.integers(0, k, size=n).astype(np.int32)
    rows = centers[labels] + rng.normal(size=(n, d)).astype(np.float32)
    return Labelled(np.ascontiguousarray(rows, dtype=np.float32), labels, f"blobs-{n}x{d}-k{k}")


def zipf_sizes(n: int, k: int, exponent: float = 1.0) -> npt.NDArray[np.int64]:
    """k sizes summing to n, proportional to 1/(i+1)^exponent (largest first)."""
    weights = 1.0 / np.arange(1, k + 1, dtype=np.float64) ** exponent
    sizes = np.floor(n * weights / weights.sum()).astype(np.int64)
    sizes[: n - int(sizes.sum())] += 1
    return np.asarray(sizes, dtype=np.int64)


def hard_embeddings(
    n: int,
    d: int,
    k: int = 20,
    seed: int = 0,
    *,
    noise_fraction: float = 0.05,
    topic_distance: float = 0.6,
    pair_distance: float = 0.35,
    shared_directions: int | None = None,
    own_directions: int | None = None,
    zipf_exponent: float = 1.0,
) -> Labelled:
    """Anisotropic, pairwise-overlapping, Zipf-sized topics plus uniform noise (see module doc).

    Every row is ``centre + shared + own + isotropic``: ``shared`` spreads all
    topics along the same ``shared_directions`` directions (default
    min(48, D/4); standard deviations 0.08 down to 0.02: the largest variance
    of the data, and none of it separates topics, like style or length in
    sentence embeddings); ``own`` spreads each topic along its own directions
    (default min(8, D/4); 0.08 to 0.03); the isotropic part is 0.1 in all.
    Topic centres differ along all dimensions at once (``topic_distance``
    between unrelated pairs, spread thinly over D directions, so that no
    principal component carries much of it), and the two topics of a pair
    only by ``pair_distance``.
    """
    if k < 2 or k % 2:
        raise ValueError(f"k must be an even number of at least 2 (topics come in pairs), got {k}")
    if not 0 <= noise_fraction < 1:
        raise ValueError(f"noise_fraction must be in [0, 1), got {noise_fraction}")
    shared_directions = shared_directions or min(48, d // 4)
    own_directions = own_directions or min(8, d // 4)
    if d < shared_directions + own_directions + 2:
        raise ValueError(f"d must be at least {shared_directions + own_directions + 2}, got {d}")
    rng = np.random.default_rng(seed)
    n_noise = round(n * noise_fraction)
    sizes = zipf_sizes(n - n_noise, k, zipf_exponent)
    rng.shuffle(sizes)  # pairs mix large and small topics
    base = rng.normal(size=d)
    base *= 1.0 / np.linalg.norm(base)
    shared, _ = np.linalg.qr(rng.normal(size=(d, shared_directions)))
    shared_scales = np.geomspace(0.08, 0.02, shared_directions)
    parents = rng.normal(size=(k // 2, d))
    parents *= topic_distance / np.sqrt(2) / np.linalg.norm(parents, axis=1, keepdims=True)
    isotropic = 0.1 / np.sqrt(d)
    rows = []
    labels = []
    for pair in range(k // 2):
        step = rng.normal(size=d)
        step *= pair_distance / 2 / np.linalg.norm(step)
        for side, topic in ((-1.0, 2 * pair), (1.0, 2 * pair + 1)):
            m = int(sizes[topic])
            own, _ = np.linalg.qr(rng.normal(size=(d, own_directions)))
            own_scales = np.geomspace(0.08, 0.03, own_directions)
            centre = base + parents[pair] + side * step
            spread = (rng.normal(size=(m, shared_directions)) * shared_scales) @ shared.T
            spread += (rng.normal(size=(m, own_directions)) * own_scales) @ own.T
            rows.append(centre + spread + rng.normal(scale=isotropic, size=(m, d)))
            labels.append(np.full(m, topic, dtype=np.int32))
    noise = rng.normal(size=(n_noise, d))
    rows.append(noise / np.linalg.norm(noise, axis=1, keepdims=True))
    labels.append(np.full(n_noise, -1, dtype=np.int32))
    matrix = np.concatenate(rows).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    all_labels = np.concatenate(labels)
    order = rng.permutation(n)
    return Labelled(np.ascontiguousarray(matrix[order]), all_labels[order], f"hard-{n}x{d}-k{k}")


_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "su", "da", "fo", "gu", "he")


def _vocabulary(count: int, rng: np.random.Generator, taken: set[str]) -> list[str]:
    words: list[str] = []
    while len(words) < count:
        # Three syllables give 2,744 words; longer ones once half of those are taken.
        syllables = 3 if len(taken) < len(_SYLLABLES) ** 3 // 2 else 4
        word = "".join(rng.choice(_SYLLABLES, size=syllables))
        if word not in taken:
            taken.add(word)
            words.append(word)
    return words


@dataclass(frozen=True)
class TopicTexts:
    """A text per row, and the words planted for each topic (topic i: ``topic_words[i]``)."""

    texts: list[str]
    topic_words: list[list[str]]
    common_words: list[str]


def topic_texts(
    labels: npt.NDArray[np.int32],
    seed: int,
    *,
    words_per_topic: int = 10,
    topic_words_per_text: int = 6,
    common_words_per_text: int = 8,
) -> TopicTexts:
    """Texts whose topical words follow `labels` (noise rows get only common words)."""
    rng = np.random.default_rng(seed)
    k = int(labels.max()) + 1 if labels.size else 0
    taken: set[str] = set()
    common = _vocabulary(40, rng, taken)
    vocab = [_vocabulary(words_per_topic, rng, taken) for _ in range(k)]
    texts = []
    for label in labels.tolist():
        words = list(rng.choice(common, size=common_words_per_text))
        if label >= 0:
            words += list(rng.choice(vocab[label], size=topic_words_per_text))
        rng.shuffle(words)
        texts.append(" ".join(str(w) for w in words).capitalize() + ".")
    return TopicTexts(texts, vocab, common)
