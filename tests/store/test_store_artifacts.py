"""Artifacts and texts: the CollectionStore contract's newer half, against every real backend."""

from __future__ import annotations

from dataclasses import replace

import pytest

from recluster.store import ArtifactNotFound, CollectionStore, RunNotFound

from .test_store_contract import make_rows, make_run


def test_artifacts_are_committed_with_the_run(store: CollectionStore, ns: str) -> None:
    ids, m = make_rows(30, 3)
    store.append(ns, "c", ids, m)
    files = {"centroids.parquet": b"PAR1\x00table\x00PAR1", "report.html": "<p>é</p>".encode()}
    store.write_run(ns, replace(make_run("r1", ("c",), ids), artifacts=files))

    assert store.list_artifacts(ns, "r1") == {k: len(v) for k, v in files.items()}
    assert store.read_artifact(ns, "r1", "report.html") == files["report.html"]
    with pytest.raises(ArtifactNotFound, match=r"artifact 'map\.png' of run 'r1' not found"):
        store.read_artifact(ns, "r1", "map.png")
    with pytest.raises(ArtifactNotFound):
        store.read_artifact(ns, "never-ran", "report.html")
    with pytest.raises(RunNotFound):
        store.list_artifacts(ns, "never-ran")
    with pytest.raises(ValueError, match="invalid artifact name"):
        store.read_artifact(ns, "r1", "../summary.json")


def test_a_run_without_artifacts_lists_none(store: CollectionStore, ns: str) -> None:
    ids, m = make_rows(10, 4)
    store.append(ns, "c", ids, m)
    store.write_run(ns, make_run("plain", ("c",), ids))
    assert store.list_artifacts(ns, "plain") == {}


def test_an_interrupted_run_leaves_no_artifacts(
    store: CollectionStore, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids, m = make_rows(10, 5)
    store.append(ns, "c", ids, m)

    def crash(at: str) -> None:
        if at == "files":
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(store, "_fail_point", crash)
    with pytest.raises(KeyboardInterrupt):
        store.write_run(ns, replace(make_run("r", ("c",), ids), artifacts={"map.png": b"png"}))
    with pytest.raises(ArtifactNotFound):
        store.read_artifact(ns, "r", "map.png")


def test_texts_round_trip_and_are_optional(store: CollectionStore, ns: str) -> None:
    ids, m = make_rows(20, 6)
    texts = [f"text of {d} — ünïcode" for d in ids]
    store.append(ns, "plain", ids, m)
    assert not store.read_texts(ns, "plain", ids[:3])  # None, or {} where another has texts

    store.append(ns, "texts", ids[:10], m[:10], texts=texts[:10])
    store.append(ns, "texts", ids[10:], m[10:])  # a later append without texts
    got = store.read_texts(ns, "texts", [ids[0], ids[9], ids[15], "missing"])
    assert got == {ids[0]: texts[0], ids[9]: texts[9]}
    with pytest.raises(ValueError, match="2 texts for 3 document ids"):
        store.append(ns, "texts", ["a", "b", "c"], m[:3], texts=["x", "y"])
