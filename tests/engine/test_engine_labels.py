"""Keyword labels without a network: class-based TF-IDF on planted topics (engine/labels.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recluster.engine.labels import (
    ClusterDescription,
    KeywordLabeller,
    class_tfidf_keywords,
)
from recluster.engine.synthetic import topic_texts
from recluster.jobrunner.artifacts import name_clusters


def test_keywords_are_the_planted_topic_words() -> None:
    labels = np.repeat(np.arange(8), 150).astype(np.int32)
    labels[::37] = -1
    planted = topic_texts(labels, seed=2)
    keywords = class_tfidf_keywords(planted.texts, labels, 8, top=6)
    for k in range(8):
        assert len(keywords[k]) == 6
        assert set(keywords[k]) <= set(planted.topic_words[k]), (k, keywords[k])
        assert not set(keywords[k]) & set(planted.common_words)


def test_common_words_rank_below_a_cluster_s_own() -> None:
    # "the" is as frequent in cluster 0 as "apple", but it is everywhere (a lower idf).
    texts = ["apple banana the", "apple cherry the", "engine motor the"]
    labels = np.array([0, 0, 1], dtype=np.int32)
    keywords = class_tfidf_keywords(texts, labels, 2, stop_words=None)
    assert keywords[0][0] == "apple"
    assert keywords[1] == ["engine", "motor", "the"]


def test_clusters_without_words_get_no_keywords() -> None:
    keywords = class_tfidf_keywords(["1234 5678", "", "x"], np.array([0, 1, -1], np.int32), 3)
    assert keywords == [[], [], []]


def describe(cluster_id: int, keywords: Sequence[str], ids: Sequence[str]) -> ClusterDescription:
    return ClusterDescription(cluster_id, 10, tuple(keywords), tuple(ids), ())


def test_labels_are_keywords_else_the_most_central_id() -> None:
    clusters = [describe(0, ["kubernetes", "pods", "nodes", "scheduler"], ["a"]),
                describe(1, [], ["doc-17", "doc-3"]), describe(2, [], [])]  # fmt: skip
    assert KeywordLabeller().label_clusters(clusters) == [
        "kubernetes pods nodes", "doc-17", "cluster 2"
    ]  # fmt: skip


class Naming:
    """A labeller (e.g. an LLM) behind the Labeller protocol."""

    def __init__(self, answer: list[str] | Exception) -> None:
        self.answer = answer

    def label_clusters(self, clusters: Sequence[ClusterDescription]) -> list[str]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_a_labeller_names_clusters_and_its_failure_falls_back_to_keywords() -> None:
    clusters = [describe(0, ["espresso", "beans", "roast"], ["a"]), describe(1, [], ["b"])]
    assert name_clusters(clusters, Naming(["Coffee", "  "])) == ["Coffee", "b"]
    assert name_clusters(clusters, Naming(TimeoutError("no network"))) == [
        "espresso beans roast",
        "b",
    ]
    assert name_clusters(clusters, Naming(["only one"])) == ["espresso beans roast", "b"]
    assert name_clusters(clusters, None) == ["espresso beans roast", "b"]
