"""The run report: an HTML page with the cluster table and the map embedded; maps at any scale."""

from __future__ import annotations

import base64
import io
import re
import socket
import threading
import warnings
from typing import Any

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from recluster.engine.artifacts import GeometryBuilder, RunArtifacts
from recluster.engine.synthetic import blobs, topic_texts
from recluster.report.build import map_data, report_files
from recluster.report.mapplot import (
    MAX_COLOURS,
    MAX_LABELS,
    MapData,
    palette,
    render_map,
    ring_fits,
    subtitle_with_labels,
)


def artifacts(n: int, k: int, texts: bool = True) -> RunArtifacts:
    data = blobs(n, 16, k, seed=k)
    labels = data.labels
    centroids = np.stack([data.matrix[labels == c].mean(0) for c in range(k)]).astype(np.float32)
    builder = GeometryBuilder(labels, centroids, seed=0)
    builder.add(0, data.matrix)
    g = builder.finish("clusters")
    words = topic_texts(labels, 1).topic_words
    ids = [f"doc-{i}" for i in range(n)]
    rep_texts = [[f"<script>alert({c})</script> text {r}" for r in reps] for c, reps in
                 enumerate(g.representatives)] if texts else None  # fmt: skip
    return RunArtifacts(
        run_id="run-7",
        collection_ids=("col_a",),
        document_ids=ids,
        row_collections=np.zeros(n, np.int32),
        labels=labels,
        sizes=np.bincount(labels, minlength=k).astype(np.int64),
        centroids=centroids,
        geometry=g,
        cluster_labels=[" ".join(words[c][:3]) for c in range(k)],
        keywords=[words[c][:6] for c in range(k)],
        representative_texts=rep_texts,
        summary={"algorithm": "kmeans", "quality_score": 0.61, "noise_fraction": 0.0},
    )


def test_the_page_holds_the_table_the_map_and_the_run() -> None:
    a = artifacts(600, 5)
    files = report_files(a, renderer="matplotlib")
    page = files["report.html"].decode()
    assert page.startswith("<!DOCTYPE html>") and "<script>" not in page  # escaped, no scripts
    assert "&lt;script&gt;alert(0)&lt;/script&gt; text" in page
    embedded = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert embedded is not None and base64.b64decode(embedded.group(1)) == files["map.png"]
    rows = re.findall(r"<tr><td class=num>(\d+)</td><td>([^<]*)</td>", page)
    assert sorted(int(c) for c, _ in rows) == list(range(5))
    for c, label in rows:
        assert label == a.cluster_labels[int(c)]
    for needle in ("run-7", "col_a", "kmeans", "0.61", "quality score"):
        assert needle in page, needle
    assert "http://" not in page and "https://" not in page  # self-contained


def test_without_texts_the_page_lists_ids_only() -> None:
    page = report_files(artifacts(300, 3, texts=False), renderer="matplotlib")["report.html"]
    assert b"doc-" in page and b"text " not in page


@pytest.mark.parametrize("k", [5, 50, 500])
def test_maps_stay_small_and_label_at_most_the_largest(k: int) -> None:
    a = artifacts(max(2_000, 8 * k), k)
    data = map_data(a)
    png, renderer = render_map(data, "matplotlib")
    assert renderer == "matplotlib" and len(png) < 300_000
    image = Image.open(io.BytesIO(png))
    assert image.size == (1100, 1100)
    labelled = data.labelled()
    assert len(labelled) == min(k, MAX_LABELS)
    order = sorted(range(k), key=lambda c: (-int(a.sizes[c]), c))
    assert labelled == order[: len(labelled)]
    colours = palette(k, data.largest(MAX_COLOURS))
    distinct = {c for c in colours if c != "#c8c8c8"}
    assert len(distinct) == min(k, MAX_COLOURS)
    # No cluster's own colour is a grey, which would read as unlabelled (or noise).
    greys = [c for c in distinct if max(to_rgb(c)) - min(to_rgb(c)) < 0.1]
    assert greys == []


def test_the_subtitle_says_how_many_clusters_are_labelled() -> None:
    few, many = map_data(artifacts(600, 5)), map_data(artifacts(2_000, 50))
    assert subtitle_with_labels(few, len(few.labelled())) == few.subtitle
    assert subtitle_with_labels(many, 24).endswith("labels: the 24 largest of 50 clusters")


def _four_clusters() -> MapData:
    return MapData(
        xy=np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32),
        point_clusters=np.repeat(np.arange(4), 25).astype(np.int32),
        cluster_labels=["a", "b", "c", "d"],
        cluster_sizes=np.full(4, 25, dtype=np.int64),
        centroid_xy=np.zeros((4, 2), np.float32),
        title="t",
    )


def test_datamapplot_is_used_when_installed_else_matplotlib() -> None:
    data = _four_clusters()
    try:
        import datamapplot  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: F401
    except ImportError:
        assert render_map(data)[1] == "matplotlib"
        with pytest.raises(ImportError):
            render_map(data, "datamapplot")
    else:
        png, renderer = render_map(data)
        assert renderer == "datamapplot" and png.startswith(b"\x89PNG")


def test_datamapplot_draws_the_map_without_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """datamapplot fetches Google Fonts unless told not to: a run must not need the network.

    Every connection the rendering thread opens is refused and recorded; the map
    must still come from datamapplot, with no connection attempted (not even one
    that failed). Other threads (the session's control plane) connect as usual.
    """
    pytest.importorskip("datamapplot", reason="the optional extra recluster[report]")
    attempts: list[object] = []
    this_thread = threading.get_ident()
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(address: object) -> None:
        attempts.append(address)
        raise OSError(f"network disabled by the test (connect to {address!r})")

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        if threading.get_ident() == this_thread:
            refuse(address)
        connect(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
        if threading.get_ident() == this_thread:
            refuse(address)
        return connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. datamapplot's GoogleAPIUnreachable
        png, renderer = render_map(_four_clusters(), "datamapplot")
    assert renderer == "datamapplot" and Image.open(io.BytesIO(png)).format == "PNG"
    assert attempts == []


@pytest.mark.parametrize("k", [1, 50])
def test_datamapplot_draws_one_and_many_clusters_itself(k: int) -> None:
    """No fallback to matplotlib: with renderer="datamapplot", its failures raise."""
    pytest.importorskip("datamapplot", reason="the optional extra recluster[report]")
    png, renderer = render_map(map_data(artifacts(max(600, 8 * k), k)), "datamapplot")
    assert renderer == "datamapplot" and len(png) < 300_000


def test_labels_go_on_a_ring_only_when_every_place_has_a_direction() -> None:
    def places(*xy: tuple[float, float]) -> np.ndarray:
        return np.asarray(xy, dtype=np.float32).reshape(-1, 2)

    assert not ring_fits(places((1.0, 2.0)))  # one label: it is the mean
    assert not ring_fits(places((0.0, 0.0), (0.0, 0.0), (0.0, 0.0)))
    assert not ring_fits(places((-1.0, 0.0), (0.0, 0.0), (1.0, 0.0)))  # the middle one
    assert ring_fits(places((-1.0, 0.0), (0.0, 1.0), (1.0, 0.0)))


def test_datamapplot_leaves_no_figure_open() -> None:
    """pyplot keeps each figure until closed: a long-lived process would keep every map."""
    pytest.importorskip("datamapplot", reason="the optional extra recluster[report]")
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    render_map(_four_clusters(), "datamapplot")
    assert len(plt.get_fignums()) == before


def test_labels_at_the_edge_of_the_map_stay_whole_in_the_image() -> None:
    """A cluster at each side of the map with a long label: no text is cut by the image's edge.

    (`make dev`'s map cut "roast barista grinder" at the right edge: the labels were
    moved inside before the axes' equal aspect changed the limits at drawing time.)
    """
    rng = np.random.default_rng(1)
    places = np.array([[-10.0, 0.0], [10.0, 0.0], [0.0, 3.0], [0.0, -3.0]], dtype=np.float32)
    xy = np.concatenate([p + rng.normal(0, 0.3, (50, 2)) for p in places]).astype(np.float32)
    data = MapData(
        xy=xy,
        point_clusters=np.repeat(np.arange(4), 50).astype(np.int32),
        cluster_labels=["roast barista grinder", "nodes kubelet deployment", "a", "b"],
        cluster_sizes=np.full(4, 50, dtype=np.int64),
        centroid_xy=places,
        title="t",
    )
    png, _ = render_map(data, "matplotlib")
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    edges = np.concatenate([pixels[:, :3].ravel(), pixels[:, -3:].ravel()])
    assert edges.min() > 200, "dark text pixels touch the left or right edge of the image"
