"""2-D positions for the cluster map: `umap` (default), `clusters` or `pca`.

Pure numpy/scikit-learn, no I/O; called by `engine.artifacts.GeometryBuilder`.

- **umap** (default): UMAP on the rows' first 50 principal components, on a
  k-NN graph from faiss; PCA when it cannot run (see `layout_2d`).
- **clusters**: a schematic map, cheap at any size. Each cluster is a disc
  whose area is proportional to its size, placed where its centroid falls in
  the centroids' own 2-D PCA, then pushed apart until no two discs overlap
  (so neighbouring clusters stay neighbours, and none hides another). Inside
  its disc, a member sits along the cluster's own two principal directions,
  scaled so that 95 % of the sampled members fall inside. Noise rows ring the
  disc of their nearest centroid. Distances *between* discs are approximate;
  UMAP preserves neighbourhoods better (docs/engine.md, "Artifacts").
- **pca**: the rows' two leading principal components (cosine geometry).

Invariant: a centroid's position is its disc's centre (clusters), or the
position of one of its members, their medoid (pca, umap; see `medoid`); NaN
when no member is on the map.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

LayoutMethod = Literal["clusters", "pca", "umap"]
LAYOUT_METHODS: tuple[LayoutMethod, ...] = ("clusters", "pca", "umap")
DEFAULT_LAYOUT: LayoutMethod = "umap"
PACKING_ROUNDS = 300
UMAP_NEIGHBOURS = 15
MEDOID_SAMPLE = 400
"""Points of a cluster a medoid is chosen from (400² distances: a few ms)."""
UMAP_MIN_ROWS = 16
"""Fewer rows than this get PCA: a neighbour graph of a handful of points says nothing."""
UMAP_MAX_ROWS = 200_000
"""More rows than this get PCA (issue 15): UMAP's time grows with the rows."""
UMAP_EPOCHS = 200
"""umap-learn's own choice above 10,000 rows (500 below): the epochs are most of a fit's time."""
GAP = 0.08
"""Space between two discs, in units of the median disc radius."""

Float32s = npt.NDArray[np.float32]


def unit_rows(matrix: npt.NDArray[np.float32]) -> Float32s:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: Float32s = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


def pca(unit: npt.NDArray[np.float32], components: int, seed: int) -> Float32s:
    """The leading principal components; zero columns when there are fewer than asked.

    numpy, not scikit-learn: the layout calls this once per cluster on a few
    hundred rows, where scikit-learn's per-call overhead dominated (seconds
    under load). Deterministic: each direction's largest coordinate is positive.
    `seed` is unused (kept for the other layouts' signature).
    """
    n, d = unit.shape
    usable = max(0, min(components, d, n - 1))
    out = np.zeros((n, components), dtype=np.float32)
    if usable == 0:
        return out
    centred = np.asarray(unit, dtype=np.float64) - unit.mean(axis=0, dtype=np.float64)
    if n > d:
        _, vectors = np.linalg.eigh(centred.T @ centred)
        directions = vectors[:, ::-1][:, :usable]
    else:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        directions = vt[:usable].T
    largest = np.abs(directions).argmax(axis=0)
    directions = directions * np.sign(directions[largest, np.arange(usable)])
    out[:, :usable] = centred @ directions
    return out


def pack_discs(
    centres: npt.NDArray[np.float64], radii: npt.NDArray[np.float64], rounds: int = PACKING_ROUNDS
) -> npt.NDArray[np.float64]:
    """Discs pulled towards their common centre and pushed apart where they overlap.

    The pull (weakening over the rounds) closes the empty space outliers of the
    centroids' PCA would leave; the push, larger discs moving less, leaves no
    two discs overlapping at the end (up to `rounds`).
    """
    p = np.array(centres, dtype=np.float64)
    k = p.shape[0]
    if k < 2:
        return p
    gap = GAP * float(np.median(radii))
    weight = 1.0 / np.maximum(radii, 1e-9) ** 2
    share = weight[:, None] / (weight[:, None] + weight[None, :])  # i's part of the push
    need = radii[:, None] + radii[None, :] + gap
    np.fill_diagonal(need, 0.0)
    rng = np.random.default_rng(0)
    for round_ in range(rounds):
        if round_ < rounds // 2:
            p -= 0.05 * (1 - 2 * round_ / rounds) * (p - p.mean(axis=0))
        delta = p[:, None, :] - p[None, :, :]
        dist = np.sqrt((delta**2).sum(axis=2))
        overlap = need - dist
        np.fill_diagonal(overlap, 0.0)
        if overlap.max() <= 1e-9 and round_ >= rounds // 2:
            break
        coincident = (dist < 1e-9) & (overlap > 0)
        if coincident.any():  # discs on the same spot: any direction will do
            jitter = rng.normal(scale=1e-3, size=p.shape)
            p += jitter
            continue
        push = np.where(overlap > 0, overlap * share, 0.0) / np.maximum(dist, 1e-12)
        p += (push[:, :, None] * delta).sum(axis=1) * 0.5
    return p


def clusters_layout(
    unit: Float32s,
    row_labels: npt.NDArray[np.int32],
    unit_centroids: Float32s,
    sizes: npt.NDArray[np.int64],
    seed: int,
) -> tuple[Float32s, Float32s]:
    """Row positions and centroid positions of the schematic map (see the module doc)."""
    k = unit_centroids.shape[0]
    centres2d = pca(unit_centroids, 2, seed).astype(np.float64)
    radii = np.sqrt(np.maximum(sizes, 1) / max(float(np.mean(np.maximum(sizes, 1))), 1.0))
    if k > 1:
        # Scale the centroids' layout so that discs of mean radius about touch their neighbours.
        from scipy.spatial import cKDTree  # type: ignore[import-untyped]

        nearest, _ = cKDTree(centres2d).query(centres2d, k=2)
        typical = float(np.median(nearest[:, 1]))
        centres2d *= 2.0 / typical if typical > 1e-12 else 1.0
    centres2d = pack_discs(centres2d, radii)
    xy = np.zeros((unit.shape[0], 2), dtype=np.float64)
    noise = row_labels < 0
    owner = row_labels.copy()
    ring = np.ones(unit.shape[0])
    if noise.any():
        owner[noise] = np.argmax(unit[noise] @ unit_centroids.T, axis=1)
        ring[noise] = 1.35
    rng = np.random.default_rng(seed)
    for c in np.unique(owner).tolist():
        rows = np.flatnonzero(owner == c)
        offsets = unit[rows] - unit_centroids[c]
        local = pca(offsets, 2, seed) if rows.size >= 3 else rng.normal(size=(rows.size, 2))
        reach = np.linalg.norm(local, axis=1)
        scale = float(np.quantile(reach[~noise[rows]], 0.95)) if (~noise[rows]).any() else 0.0
        if scale <= 1e-12:
            scale = float(reach.max()) or 1.0
        placed = local / scale
        placed *= np.minimum(1.0, 1.1 / np.maximum(np.linalg.norm(placed, axis=1), 1e-12))[:, None]
        outside = noise[rows]
        if outside.any():  # noise: on a ring just outside the disc, in its own direction
            direction = placed[outside] / np.maximum(
                np.linalg.norm(placed[outside], axis=1, keepdims=True), 1e-12
            )
            placed[outside] = direction * ring[rows][outside, None]
        xy[rows] = centres2d[c] + placed * radii[c]
    return xy.astype(np.float32), centres2d.astype(np.float32)


def umap_layout(unit: Float32s, seed: int) -> Float32s:
    """UMAP of the rows' first 50 principal components (`umapcache.fit_umap`)."""
    from .umapcache import fit_umap

    with threadpool_limits(1):  # small products: one BLAS thread (engine/__init__.py)
        reduced = np.ascontiguousarray(pca(unit, min(50, unit.shape[1]), seed))
    options = {"min_dist": 0.1, "low_memory": True, "n_epochs": UMAP_EPOCHS}
    return fit_umap(reduced, 2, UMAP_NEIGHBOURS, seed, **options)


def layout_2d(
    matrix: npt.NDArray[np.float32],
    row_labels: npt.NDArray[np.int32],
    unit_centroids: Float32s,
    sizes: npt.NDArray[np.int64],
    method: LayoutMethod,
    seed: int,
) -> tuple[Float32s, Float32s, str]:
    """Positions of the rows and of the centroids, and the method used (see the module doc).

    `umap` falls back to `pca` (logged, and the returned method says so) when
    the sample is outside [UMAP_MIN_ROWS, UMAP_MAX_ROWS], when umap-learn
    cannot be imported, or when the fit raises.
    """
    n, k = matrix.shape[0], unit_centroids.shape[0]
    unit = unit_rows(matrix)
    if n < 3 or k == 0:
        return np.zeros((n, 2), np.float32), np.full((k, 2), np.nan, np.float32), "none"
    if method == "clusters":
        # Many small products: one BLAS thread avoids the pools' spinning (engine/__init__.py).
        with threadpool_limits(1):
            xy, centres = clusters_layout(unit, row_labels, unit_centroids, sizes, seed)
        return xy, centres, method
    used: str = method
    if method == "umap":
        if not UMAP_MIN_ROWS <= n <= UMAP_MAX_ROWS:
            log.info("map: %d rows, outside UMAP's %d..%d; PCA instead", n, UMAP_MIN_ROWS,
                     UMAP_MAX_ROWS)  # fmt: skip
            used = "pca"
        else:
            try:
                xy = umap_layout(unit, seed)
            except Exception as error:  # the map must never fail the run
                log.warning("map: UMAP failed (%s: %s); PCA instead", type(error).__name__, error)
                used = "pca"
    if used == "pca":
        xy = pca(unit, 2, seed)
    centres = np.full((k, 2), np.nan, dtype=np.float32)
    rng = np.random.default_rng(seed)
    for c in np.unique(row_labels[row_labels >= 0]).tolist():
        centres[c] = medoid(xy[row_labels == c], rng)
    return xy, centres, used


def medoid(points: Float32s, rng: np.random.Generator) -> Float32s:
    """The point with the smallest summed distance to the others (of a seeded sample).

    A cluster's place on a UMAP map: unlike the mean or the median, it is one
    of its points, in its largest island when UMAP split it (a label at the
    median of two islands would point at the empty space between them).
    """
    if points.shape[0] > MEDOID_SAMPLE:
        points = points[rng.choice(points.shape[0], MEDOID_SAMPLE, replace=False)]
    p = points.astype(np.float64)
    total = np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(axis=2)).sum(axis=1)
    best: Float32s = points[int(np.argmin(total))].astype(np.float32)
    return best
