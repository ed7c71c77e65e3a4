"""The cluster map as a PNG: datamapplot when installed (`recluster[report]`), else matplotlib.

Readable at a glance at 5, 50 or 500 clusters, whichever renderer draws it:

- at most `MAX_LABELS` clusters are labelled, the largest first, and a label
  that would overlap one already placed is dropped (matplotlib) or moved by
  datamapplot's own placement; the subtitle says how many are labelled;
- with more than `MAX_COLOURS` clusters, only the largest MAX_COLOURS get their
  own colour (datamapplot: only the labelled ones), the others are drawn in
  light grey: a map of 500 colours is noise; no cluster's colour is a grey;
- noise (-1) is always a light grey, drawn first (underneath);
- fonts are the system's (DejaVu Sans, which matplotlib bundles): nothing is
  fetched from the network.

The PNG is quantised to a 256-colour palette: a map stays well under 300 KB.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

MAX_LABELS = 24
MAX_COLOURS = 40
NOISE_COLOUR = "#d9d9d9"
UNLABELLED_COLOUR = "#c8c8c8"
FONT = "DejaVu Sans"
HALO_MIN = 0.015
HALO_MAX = 0.12
Renderer = Literal["auto", "datamapplot", "matplotlib"]


@dataclass(frozen=True)
class MapData:
    """What the map shows: points, their clusters, and each cluster's name and place."""

    xy: npt.NDArray[np.float32]
    point_clusters: npt.NDArray[np.int32]
    cluster_labels: list[str]
    cluster_sizes: npt.NDArray[np.int64]
    centroid_xy: npt.NDArray[np.float32]
    title: str
    subtitle: str = ""

    def largest(self, count: int) -> list[int]:
        """The `count` largest clusters that have a place on the map, largest first."""
        placed = [
            c for c in range(len(self.cluster_labels)) if np.isfinite(self.centroid_xy[c]).all()
        ]
        return sorted(placed, key=lambda c: (-int(self.cluster_sizes[c]), c))[:count]

    def labelled(self) -> list[int]:
        """Clusters to label: the largest MAX_LABELS that have a place on the map."""
        return self.largest(MAX_LABELS)


def palette(num_clusters: int, coloured: list[int]) -> list[str]:
    """A colour per cluster: distinct ones for `coloured`, grey for the rest (see module doc)."""
    import matplotlib as mpl

    chosen = list(range(num_clusters)) if num_clusters <= MAX_COLOURS else coloured
    # tab20's dark halves, then its light halves, then tab20b, then two of tab20c:
    # 40 distinct colours. tab20's greys (14, 15) are left out: its light grey is
    # the unlabelled clusters' (a coloured cluster would pass for an unlabelled one).
    tab20, tab20b, tab20c = (mpl.colormaps[name] for name in ("tab20", "tab20b", "tab20c"))
    darks, lights = (i for i in range(0, 20, 2) if i != 14), (i for i in range(1, 20, 2) if i != 15)
    base = [tab20(i) for i in (*darks, *lights)] + [tab20b(i) for i in range(20)]
    base += [tab20c(i) for i in (8, 12)]
    colours = [UNLABELLED_COLOUR] * num_clusters
    for i, c in enumerate(chosen):
        colours[c] = mpl.colors.to_hex(base[i % len(base)])
    return colours


def _to_png(figure: Any, tight: bool = False) -> bytes:
    """Save, then quantise to a palette image (maps compress ~4× better that way).

    `tight`: datamapplot puts its title above the axes' box; only a tight
    bounding box keeps it in the image.
    """
    from PIL import Image

    raw = io.BytesIO()
    extra = {"bbox_inches": "tight", "pad_inches": 0.2} if tight else {}
    figure.savefig(raw, format="png", dpi=figure.dpi, facecolor="white", **extra)
    image = Image.open(io.BytesIO(raw.getvalue())).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return out.getvalue()


def render_matplotlib(data: MapData, size_px: int = 1100) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.patheffects as effects
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.9))
    ax.set_axis_off()
    k = len(data.cluster_labels)
    labelled = data.labelled()
    colours = palette(k, data.largest(MAX_COLOURS))
    n = data.xy.shape[0]
    point_size = float(np.clip(12_000.0 / max(n, 1), 2.5, 14.0))
    noise = data.point_clusters < 0
    if noise.any():
        ax.scatter(
            data.xy[noise, 0],
            data.xy[noise, 1],
            s=point_size,
            c=NOISE_COLOUR,
            linewidths=0,
            rasterized=True,
        )
    members = np.flatnonzero(~noise)
    # Grey (unlabelled) clusters underneath, coloured ones on top.
    rank = np.asarray([colours[c] != UNLABELLED_COLOUR for c in range(k)], dtype=np.int8)
    members = members[np.argsort(rank[data.point_clusters[members]], kind="stable")]
    coloured = rank[data.point_clusters[members]] == 1
    # Grey clusters' points smaller, so that the coloured ones stand out among hundreds.
    sizes = np.where(coloured, point_size * (2.0 if k > MAX_COLOURS else 1.0), point_size)
    ax.scatter(
        data.xy[members, 0],
        data.xy[members, 1],
        s=sizes,
        c=[colours[c] for c in data.point_clusters[members].tolist()],
        linewidths=0,
        alpha=0.8,
        rasterized=True,
    )
    halo = _halo(ax, data, colours)
    ax.set_aspect("equal", adjustable="datalim")
    ax.margins(0.06)
    ax.autoscale_view()
    # The equal aspect changes the limits only when the figure is drawn: apply it now
    # and freeze the limits, so that the labels are placed with the final transform
    # (halos added while placing them would otherwise move the limits again).
    ax.apply_aspect()
    ax.set_autoscale_on(False)
    shown = _place_labels(fig, ax, data, labelled, effects, halo)
    fig.text(0.5, 0.965, data.title, ha="center", va="center", fontsize=15, family=FONT,
             weight="bold")  # fmt: skip
    fig.text(0.5, 0.932, subtitle_with_labels(data, shown), ha="center", va="center",
             fontsize=10, family=FONT, color="#555555")  # fmt: skip
    return _to_png(fig)


def subtitle_with_labels(data: MapData, shown: int) -> str:
    """The data's subtitle, and how many clusters are labelled when not all are."""
    k = len(data.cluster_labels)
    if shown >= k:
        return data.subtitle
    return f"{data.subtitle} · labels: the {shown} largest of {k} clusters".strip(" ·")


def _halo(ax: Any, data: MapData, colours: list[str]) -> Callable[[int], None]:
    """Draws a light disc under a labelled cluster: where its label points.

    The disc holds the nearer half of the cluster's points around its place,
    within [HALO_MIN, HALO_MAX] of the map's span: a cluster UMAP split in two
    islands gets a disc on the one its label sits on, not one spanning both;
    a tight island a disc one can see.
    """
    from matplotlib.patches import Circle

    span = float(np.ptp(data.xy, axis=0).max()) if data.xy.shape[0] else 1.0

    def draw(c: int) -> None:
        points = data.xy[data.point_clusters == c]
        if points.shape[0] == 0:
            return
        reach = np.linalg.norm(points - data.centroid_xy[c], axis=1)
        radius = float(np.clip(np.quantile(reach, 0.5), HALO_MIN * span, HALO_MAX * span))
        colour = colours[c] if colours[c] != UNLABELLED_COLOUR else "#888888"
        ax.add_patch(Circle(tuple(data.centroid_xy[c]), radius, color=colour, alpha=0.15, lw=0))

    return draw


def _place_labels(
    fig: Any,
    ax: Any,
    data: MapData,
    labelled: list[int],
    effects: Any,
    halo: Callable[[int], None],
) -> int:
    """Largest first; a label overlapping a placed one is dropped. Returns how many stay."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()  # type: ignore[no-untyped-call]
    sizes = data.cluster_sizes[labelled] if labelled else np.zeros(0)
    biggest = float(sizes.max()) if sizes.size else 1.0
    placed: list[Any] = []
    for c in labelled:
        scale = np.sqrt(float(data.cluster_sizes[c]) / biggest)
        text = ax.text(
            float(data.centroid_xy[c, 0]),
            float(data.centroid_xy[c, 1]),
            _wrap(data.cluster_labels[c]),
            ha="center",
            va="center",
            fontsize=8 + 6 * scale,
            family=FONT,
            weight="bold",
            color="#222222",
            path_effects=[effects.withStroke(linewidth=3, foreground="white")],
        )
        box = _inside(fig, ax, text, renderer).expanded(1.05, 1.1)
        if any(box.overlaps(other) for other in placed):
            text.remove()
            continue
        placed.append(box)
        halo(c)
    return len(placed)


LABEL_EDGE_PX = 8
"""Pixels a label keeps from the image's edges."""


def _inside(fig: Any, ax: Any, text: Any, renderer: Any) -> Any:
    """Moves a label that would stick out of the image back in; its new extent."""
    box = text.get_window_extent(renderer)
    width, height = fig.bbox.width, fig.bbox.height
    pad = LABEL_EDGE_PX  # the white stroke around the letters, and some air
    dx = max(0.0, pad - box.x0) - max(0.0, box.x1 - (width - pad))
    dy = max(0.0, pad - box.y0) - max(0.0, box.y1 - 0.9 * height)  # not over the title
    if dx or dy:
        x, y = ax.transData.transform(text.get_position())
        text.set_position(ax.transData.inverted().transform((x + dx, y + dy)))
        box = text.get_window_extent(renderer)
    return box


def _wrap(label: str, width: int = 22) -> str:
    """At most two lines, for a label to stay near its cluster."""
    words, lines, line = label.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    text = "\n".join(lines[:2])
    return text if len(lines) <= 2 else text + "…"


def render_datamapplot(data: MapData, size_px: int = 1100) -> bytes:
    """datamapplot's static plot of `MapData`: its labels at our places, our colours.

    `render_plot`, not `create_plot`: the latter places a label at the mean of
    its cluster's points (between two islands when UMAP split the cluster, where
    `MapData.centroid_xy` holds the medoid) and keys clusters by label text (two
    clusters with the same label would merge).
    """
    import datamapplot  # type: ignore[import-not-found, import-untyped, unused-ignore]
    from datamapplot.palette_handling import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
        deep_palette,
    )

    labelled = data.labelled()
    k = len(data.cluster_labels)
    colours = palette(k, data.largest(MAX_COLOURS))
    point_colours = [NOISE_COLOUR if c < 0 else colours[c] for c in data.point_clusters.tolist()]
    n = data.xy.shape[0]
    places = np.asarray(data.centroid_xy[labelled], dtype=np.float32).reshape(-1, 2)
    dpi = 100
    fig, _ = datamapplot.render_plot(
        np.asarray(data.xy, dtype=np.float32),
        point_colours,
        [_wrap(data.cluster_labels[c]) for c in labelled],
        places,
        np.asarray(data.cluster_sizes[labelled]),
        title=data.title,
        sub_title=subtitle_with_labels(data, len(labelled)),
        label_text_colors=deep_palette([colours[c] for c in labelled]) if labelled else None,
        highlight_colors=[colours[c] for c in labelled],
        noise_color=NOISE_COLOUR,
        use_system_fonts=True,
        font_family=FONT,
        figsize=(size_px / dpi, size_px / dpi),
        dpi=dpi,
        darkmode=False,
        label_font_size=11,
        label_over_points=not ring_fits(places),
        point_size=float(np.clip(20_000.0 / max(n, 1), 3.0, 14.0)),
        alpha=0.8,
        title_keywords={"fontsize": 15, "fontfamily": FONT, "fontweight": "bold"},
        sub_title_keywords={"fontsize": 10, "fontfamily": FONT, "color": "#555555"},
    )
    try:
        return _to_png(fig, tight=True)
    finally:
        # datamapplot draws through pyplot, which keeps every figure until closed.
        import matplotlib.pyplot as plt

        plt.close(fig)


def ring_fits(places: npt.NDArray[np.float32]) -> bool:
    """Whether datamapplot can set labels on a ring around their places.

    Its ring points each label away from the places' mean: a place at that
    mean (one label, or labels sharing one place) has no direction and makes
    it fail (NaN); such labels are drawn over their points instead.
    """
    if places.shape[0] < 2:
        return False
    offsets = np.linalg.norm(places - places.mean(axis=0), axis=1)
    span = float(np.ptp(places, axis=0).max())
    return bool(span > 0 and offsets.min() > 1e-6 * span)


def render_map(data: MapData, renderer: Renderer = "auto") -> tuple[bytes, str]:
    """The PNG and the renderer that drew it (datamapplot falls back to matplotlib on failure)."""
    if renderer in ("auto", "datamapplot"):
        try:
            return render_datamapplot(data), "datamapplot"
        except ImportError:
            if renderer == "datamapplot":
                raise
        except Exception as exc:  # a bug or an unexpected input in the optional renderer
            if renderer == "datamapplot":
                raise
            log.warning("datamapplot failed (%s); drawing the map with matplotlib", exc)
    return render_matplotlib(data), "matplotlib"
