"""Cluster labels without a network: class-based TF-IDF keywords, else representative ids.

Pure functions (no I/O, no clock); the job runner (`jobrunner.runner`) reads
the texts from the store and calls them. Invariants:

- every cluster gets exactly one label and a (possibly empty) keyword list,
  aligned with cluster ids 0..K-1; noise (-1) is never labelled;
- keywords come only from the texts of the cluster's own members (a sample of
  them), ranked by c-TF-IDF: a word ranks high when it is frequent in the
  cluster and rare in the others (BERTopic's weighting, Grootendorst 2022):
  ``w(t, c) = tf(t, c) / |c| · log(1 + A / f(t))`` with ``tf(t, c)`` the count
  of t in cluster c, ``|c|`` the number of words in c, ``f(t)`` the count of t
  in all clusters and ``A`` the average number of words per cluster;
- without texts, a cluster's label is the id of its most central document.

An LLM (or anything else) may name clusters instead, behind `Labeller`; none is
used unless the runner is given one (see jobrunner/labelling.py), and no test
needs one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse  # type: ignore[import-untyped]
from sklearn.feature_extraction.text import CountVectorizer  # type: ignore[import-untyped]

KEYWORDS_PER_CLUSTER = 8
"""Keywords kept per cluster (the label uses the first LABEL_WORDS)."""
LABEL_WORDS = 3
TEXTS_PER_CLUSTER = 300
"""Member texts per cluster that keyword extraction reads (the most central first)."""
MAX_FEATURES = 50_000
TOKEN_PATTERN = r"(?u)\b[^\W\d_][\w\-]{2,}\b"
"""Words of at least three characters starting with a letter: no numbers, versions or ids."""


@dataclass(frozen=True)
class ClusterDescription:
    """What a labeller knows about one cluster."""

    cluster_id: int
    size: int
    keywords: tuple[str, ...]
    representative_ids: tuple[str, ...]
    representative_texts: tuple[str, ...]
    """Empty when the collection has no text column."""


class Labeller(Protocol):
    """Names clusters; `label_clusters` returns one short label per description, in order.

    Implementations may call a network service (jobrunner/labelling.py); the
    default, `KeywordLabeller`, does not.
    """

    def label_clusters(self, clusters: Sequence[ClusterDescription]) -> list[str]: ...


class KeywordLabeller:
    """The default: the first keywords joined, else the most central document's id."""

    def label_clusters(self, clusters: Sequence[ClusterDescription]) -> list[str]:
        return [default_label(c) for c in clusters]


def default_label(cluster: ClusterDescription) -> str:
    if cluster.keywords:
        return " ".join(cluster.keywords[:LABEL_WORDS])
    if cluster.representative_ids:
        return cluster.representative_ids[0]
    return f"cluster {cluster.cluster_id}"


def class_tfidf_keywords(
    texts: Sequence[str],
    labels: npt.NDArray[np.int32],
    num_clusters: int,
    top: int = KEYWORDS_PER_CLUSTER,
    stop_words: str | list[str] | None = "english",
) -> list[list[str]]:
    """The `top` c-TF-IDF keywords of each cluster 0..num_clusters-1 (see the module doc).

    `texts[i]` belongs to cluster `labels[i]` (-1 rows are ignored). Clusters
    without texts, or whose texts hold no word, get an empty list. Ties are
    broken by the word, so the result is deterministic.
    """
    labels = np.asarray(labels, dtype=np.int32)
    if len(texts) != labels.shape[0]:
        raise ValueError(f"{len(texts)} texts for {labels.shape[0]} labels")
    keep = np.flatnonzero(labels >= 0)
    empty: list[list[str]] = [[] for _ in range(num_clusters)]
    if keep.size == 0 or num_clusters == 0:
        return empty
    vectorizer = CountVectorizer(
        stop_words=stop_words,
        token_pattern=TOKEN_PATTERN,
        max_features=MAX_FEATURES,
        dtype=np.float64,
    )
    try:
        counts = vectorizer.fit_transform([texts[i] for i in keep.tolist()])
    except ValueError:  # no word at all (empty vocabulary)
        return empty
    words = vectorizer.get_feature_names_out()
    indicator = scipy.sparse.csr_matrix(
        (np.ones(keep.size), (labels[keep], np.arange(keep.size))),
        shape=(num_clusters, keep.size),
    )
    per_cluster = scipy.sparse.csr_matrix(indicator @ counts)  # K × V word counts
    words_in = np.asarray(per_cluster.sum(axis=1)).ravel()
    frequency = np.asarray(per_cluster.sum(axis=0)).ravel()
    present = words_in > 0
    average = float(words_in[present].mean()) if present.any() else 0.0
    idf = np.log(1.0 + average / np.maximum(frequency, 1.0))
    out = empty
    for k in np.flatnonzero(present).tolist():
        row = per_cluster.getrow(k)
        cols, tf = row.indices, row.data
        weights = tf / words_in[k] * idf[cols]
        # Highest weight first; ties by the word itself (stable across runs).
        order = np.lexsort((words[cols], -weights))[:top]
        out[k] = [str(words[cols[j]]) for j in order.tolist()]
    return out
