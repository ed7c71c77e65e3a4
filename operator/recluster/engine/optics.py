"""OPTICS with xi extraction: scikit-learn's ``OPTICS(min_samples, max_eps, xi)``, without it.

Why: importing scikit-learn costs ~0.6 s in a fresh Job (1.5-3 s under load),
more than this whole computation on thousands of rows (issue 13), and its fit
is a Python loop with a neighbour query and a matrix-vector product per row
(0.9 s at 1,000 × 384, 12.6 s at 5,000). Here the distances come from float64
matrix products (dgemm) a block of rows at a time, and each step of the loop
is a few numpy operations over one row.

The rules are scikit-learn's (``metric='euclidean'``, ``cluster_method='xi'``,
``predecessor_correction=True``, ``min_cluster_size=None``), kept:

- distances are float64 (scikit-learn converts float32 input), by its formula
  sqrt(max(-2·x·y + |x|² + |y|², 0)), uncentred;
- a row's core distance is the distance to its ``min_samples``-th nearest row,
  the row itself counted; above ``max_eps`` it is infinite; it is then rounded
  to 15 decimals (``np.finfo(float64).precision``);
- the first row processed is row 0; the next is the unprocessed row of lowest
  reachability, ties to the lowest index (so, when none is reachable, the
  lowest unprocessed index); only a row with a finite core distance updates
  the others: each unprocessed row within ``max_eps`` gets
  round(max(distance, core distance), 15) when that is strictly lower than its
  reachability, and the row as its predecessor;
- clusters are the leaves of the xi hierarchy (Ankerst et al. 1999, section
  4.3, with scikit-learn's corrections and the predecessor correction of
  Schubert & Gertz 2018), ``min_cluster_size`` defaulting to ``min_samples``;
  rows outside every leaf are noise (-1).

Invariant: ``ordering``, ``reachability``, ``predecessor``, ``core_distances``
and the labels equal scikit-learn's wherever its decisions do not hinge on
rounding error. Where the arithmetic is exact (integer coordinates, even in
384 dimensions) all are identical (tested). Otherwise they can differ at
near-ties: values equal up to the error of the formula above (about
1e-16·|x|²/distance; ~1e-15 for unit vectors, so not always hidden by the
rounding), such as a row's distance to its ``min_samples``-th neighbour and
its core distance, equal in exact arithmetic, which scikit-learn computes
twice (k-NN query, pairwise distances) with different BLAS kernels; a
distance that close to ``max_eps``; duplicate rows, whose distance is
rounding noise (~1e-8) in both. On real-valued data such ties reorder a few
per cent of the ordering, yet the labels were identical in every test and
measurement (hard embeddings, 1,000 to 20,000 × 384, min_samples 5-15).

Memory: the float64 distance rows held at once are bounded by
``DISTANCE_ROWS_BYTES``: the whole N × N matrix up to 5,792 rows, computed
once; above, a cache of rows computed ``ROW_BATCH`` at a time on the fly
(`_DistanceRows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .distances import squared_distances, squared_norms

DEFAULT_MIN_SAMPLES = 5
DEFAULT_XI = 0.05
ROUNDING_DECIMALS = int(np.finfo(np.float64).precision)
"""scikit-learn rounds core and reachability distances to this many decimals (15)."""

DISTANCE_ROWS_BYTES = 1 << 28
"""Float64 distance rows held at once (256 MB): the whole matrix up to 5,792 rows."""
ROW_BATCH = 64
"""Rows computed together above that: the row processed next and the 63 likely to follow
(`_DistanceRows._batch`). One dgemm instead of 64 matrix-vector products, which ran ~25×
slower per row on this machine; nearly every row computed ahead is used (measured at
8,000 and 20,000 × 384 hard embeddings, max_eps inf or 0.35-0.45: 1.00-1.002 rows
computed per row)."""

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class OpticsGraph:
    """The reachability graph, indexed by row (``ordering`` excepted), as scikit-learn's."""

    ordering: IndexArray
    """Rows in the order processed."""
    core_distances: FloatArray
    reachability: FloatArray
    predecessor: IndexArray
    """The row each row was reached from, -1 for those never reached."""
    rows_computed: int
    """Distance rows computed: N for the whole matrix; on the fly, more when rows computed
    ahead were dropped from the cache before their turn came (see ROW_BATCH)."""


class _DistanceRows:
    """Float64 distance rows and core distances, each row computed once (almost always).

    A stored row holds round(distance, 15), and +inf beyond ``max_eps``; the
    core distance of a row is computed with its row, from the unrounded
    distances. When the N × N matrix fits ``capacity`` rows it is computed
    whole at the start; otherwise rows are computed on demand, a batch at a
    time, and dropped once their row is processed (or, when the cache is
    full, those of lowest priority: the highest reachability).
    """

    def __init__(self, points: FloatArray, min_samples: int, max_eps: float, capacity: int) -> None:
        n = points.shape[0]
        self.points = points
        self.squared_norms: FloatArray = squared_norms(points)
        self.min_samples = min_samples
        self.max_eps = max_eps
        self.core: FloatArray = np.full(n, np.nan)
        self.whole = capacity >= n
        self.capacity = n if self.whole else capacity
        self.store: FloatArray = np.empty((self.capacity, n))
        self.slot_of: IndexArray = np.full(n, -1, dtype=np.int64)
        self.free: list[int] = list(range(self.capacity - 1, -1, -1))
        self.computed = 0
        if self.whole:
            step = max(1, min(n, ROW_BATCH * 8))
            for start in range(0, n, step):
                self._compute(np.arange(start, min(n, start + step)))

    def row(self, point: int, priority: FloatArray, open_rows: npt.NDArray[np.bool_]) -> FloatArray:
        """The stored row of ``point``, computing it (and a batch of likely next ones) if absent."""
        slot = int(self.slot_of[point])
        if slot < 0:
            self._compute(self._batch(point, priority, open_rows))
            slot = int(self.slot_of[point])
        row: FloatArray = self.store[slot]
        return row

    def release(self, point: int) -> None:
        """Free the slot of a processed row (its row is never needed again)."""
        slot = int(self.slot_of[point])
        if slot >= 0 and not self.whole:
            self.slot_of[point] = -1
            self.free.append(slot)

    def _batch(
        self, point: int, priority: FloatArray, open_rows: npt.NDArray[np.bool_]
    ) -> IndexArray:
        """``point`` and the ROW_BATCH - 1 absent open rows likely to come next.

        Those are the reached rows of lowest ``priority``, then the unreached
        ones of lowest index (the order in which they come when nothing is
        reachable).
        """
        others = ROW_BATCH - 1
        absent = open_rows & (self.slot_of < 0)
        absent[point] = False
        reached = np.flatnonzero(absent & (priority < np.inf))
        if reached.size > others:
            reached = reached[np.argpartition(priority[reached], others - 1)[:others]]
        unreached = np.flatnonzero(absent & (priority == np.inf))[: others - reached.size]
        chosen = np.concatenate([[point], reached, unreached]).astype(np.int64)
        missing = chosen.size - len(self.free)
        if missing > 0:
            self._evict(missing, priority)
        return chosen

    def _evict(self, count: int, priority: FloatArray) -> None:
        cached = np.flatnonzero(self.slot_of >= 0)
        drop = cached[np.argsort(-priority[cached], kind="stable")[:count]]
        self.free.extend(self.slot_of[drop].tolist())
        self.slot_of[drop] = -1

    def _compute(self, rows: IndexArray) -> None:
        """Distances from ``rows`` to all rows, by scikit-learn's formula and rounding."""
        block: FloatArray = squared_distances(
            self.points[rows], self.squared_norms[rows], self.points, self.squared_norms
        )
        np.maximum(block, 0, out=block)
        np.sqrt(block, out=block)
        kth = min(self.min_samples, block.shape[1]) - 1
        core = np.partition(block, kth, axis=1)[:, kth]
        core[core > self.max_eps] = np.inf
        self.core[rows] = np.around(core, ROUNDING_DECIMALS)
        beyond = block > self.max_eps if np.isfinite(self.max_eps) else None
        np.around(block, ROUNDING_DECIMALS, out=block)
        if beyond is not None:
            block[beyond] = np.inf
        slots = np.array([self.free.pop() for _ in range(rows.size)], dtype=np.int64)
        self.store[slots] = block
        self.slot_of[rows] = slots
        self.computed += rows.size


def optics_graph(
    matrix: npt.ArrayLike,
    min_samples: int,
    max_eps: float = np.inf,
    *,
    memory_bytes: int = DISTANCE_ROWS_BYTES,
) -> OpticsGraph:
    """scikit-learn's ``compute_optics_graph`` for the Euclidean metric (see the module doc).

    ``memory_bytes`` bounds the distance rows held at once (the whole matrix
    when it fits, a cache of rows otherwise).
    """
    points: FloatArray = np.ascontiguousarray(matrix, dtype=np.float64)
    n = points.shape[0]
    if not 2 <= min_samples <= n:
        raise ValueError(f"optics needs 2 <= min_samples <= {n} rows, got {min_samples}")
    capacity = max(2 * ROW_BATCH, memory_bytes // (8 * n))
    rows = _DistanceRows(points, min_samples, float(max_eps), capacity)
    reachability = np.full(n, np.inf)
    # The reachability of the open rows and +inf for the processed ones: the next row is
    # its argmin (np.argmin keeps the first of equal values: ties go to the lowest index).
    priority = np.full(n, np.inf)
    predecessor = np.full(n, -1, dtype=np.int64)
    open_rows = np.ones(n, dtype=bool)
    ordering = np.empty(n, dtype=np.int64)
    candidate = np.empty(n)
    improved = np.empty(n, dtype=bool)
    lowest_open = 0
    for step in range(n):
        point = int(np.argmin(priority))
        if priority[point] == np.inf:  # nothing reachable: the lowest open index
            while not open_rows[lowest_open]:
                lowest_open += 1
            point = lowest_open
        ordering[step] = point
        reachability[point] = priority[point]
        priority[point] = np.inf
        open_rows[point] = False
        distances = rows.row(point, priority, open_rows)
        core = rows.core[point]
        if core < np.inf:
            # scikit-learn rounds max(distance, core) again: the same value, since both are
            # rounded already and rounding is monotone and leaves a rounded value as it is
            # (checked on 8 million values from 0 to 10^4).
            np.maximum(distances, core, out=candidate)
            np.less(candidate, priority, out=improved)
            improved &= open_rows
            updated = np.flatnonzero(improved)
            priority[updated] = candidate[updated]
            predecessor[updated] = point
        rows.release(point)
    return OpticsGraph(ordering, rows.core, reachability, predecessor, rows.computed)


def _area_end(
    steep: npt.NDArray[np.bool_], against: npt.NDArray[np.bool_], start: int, min_samples: int
) -> int:
    """Last index of the steep area that starts at ``start`` (Ankerst et al., definition 9).

    The area runs on through points that are not steep but do not turn back
    (``against`` False), at most ``min_samples`` of them in a row, stops at
    the first point that turns back, and ends at its last steep point.
    """
    end = start
    flat_run = 0
    for index in range(start, steep.size):
        if steep[index]:
            end = index
            flat_run = 0
        elif against[index]:
            break
        else:
            flat_run += 1
            if flat_run > min_samples:
                break
    return end


@dataclass
class _SteepDownArea:
    start: int
    end: int
    mib: float
    """Maximum reachability between the area's end and the current point (section 4.3.2)."""


def xi_clusters(
    graph: OpticsGraph,
    min_samples: int,
    xi: float = DEFAULT_XI,
    min_cluster_size: int | None = None,
) -> list[tuple[int, int]]:
    """Clusters of the xi method as (first, last) positions in ``graph.ordering``, inclusive.

    scikit-learn's ``cluster_optics_xi`` with predecessor correction: a
    cluster starts in a steep down area and ends in a steep up area of the
    reachability plot (each point at least a factor 1 - xi below/above the
    next), scanned left to right; a plot ends with +inf so that a cluster can
    close at the end. Each steep up area yields its clusters smallest first,
    so a cluster comes after every cluster nested in it.
    """
    size = min_cluster_size if min_cluster_size is not None else min_samples
    plot = np.append(graph.reachability[graph.ordering], np.inf)
    predecessor = graph.predecessor[graph.ordering]
    position = np.empty(graph.ordering.size + 1, dtype=np.int64)
    position[graph.ordering] = np.arange(graph.ordering.size)
    position[-1] = -1  # so position[-1], of predecessor -1 (never reached), is no position
    keep = 1.0 - xi
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = plot[:-1] / plot[1:]
    # The paper's definition 9 has the steep-down inequality reversed; this is the fix.
    steep_up = ratio <= keep
    steep_down = ratio >= 1 / keep
    goes_down = ratio > 1
    goes_up = ratio < 1
    areas: list[_SteepDownArea] = []
    clusters: list[tuple[int, int]] = []
    resume = 0
    mib = 0.0
    for steep in np.flatnonzero(steep_up | steep_down).tolist():
        if steep < resume:  # inside an area already found
            continue
        mib = max(mib, float(plot[resume : steep + 1].max()))
        if mib == np.inf:
            areas = []
        else:
            areas = [a for a in areas if mib <= plot[a.start] * keep]
            for area in areas:
                area.mib = max(area.mib, mib)
        if steep_down[steep]:
            end = _area_end(steep_down, goes_up, steep, min_samples)
            areas.append(_SteepDownArea(steep, end, 0.0))
            resume = end + 1
            mib = float(plot[resume])
            continue
        up_end = _area_end(steep_up, goes_down, steep, min_samples)
        resume = up_end + 1
        mib = float(plot[resume])
        found: list[tuple[int, int]] = []
        for area in areas:
            bounds = _cluster_bounds(plot, predecessor, position, area, steep, up_end, keep)
            if bounds is None:
                continue
            first, last = bounds
            if last - first + 1 >= size and first <= area.end and last >= steep:
                found.append(bounds)
        clusters.extend(reversed(found))
    return clusters


def _cluster_bounds(
    plot: FloatArray,
    predecessor: IndexArray,
    position: IndexArray,
    area: _SteepDownArea,
    up_start: int,
    up_end: int,
    keep: float,
) -> tuple[int, int] | None:
    """The cluster from steep down ``area`` to the steep up area [up_start, up_end], if any.

    Definition 11 of Ankerst et al.: the cluster's ends are moved to about
    the same level (4b, 4c; 4c with the paper's inequality reversed, as
    scikit-learn corrects it), then the predecessor correction (Schubert &
    Gertz 2018, algorithm 2) shortens it from the right until its last point
    was reached from inside it or is lower than its first point.
    """
    after = plot[up_end + 1]
    if after * keep < area.mib:
        return None
    first, last = area.start, up_end
    top = plot[area.start]
    if top * keep >= after:
        while plot[first + 1] > after and first < area.end:
            first += 1
    elif after * keep >= top:
        while plot[last - 1] > top and last > up_start:
            last -= 1
    while first < last:
        if plot[first] > plot[last]:
            return first, last
        if first <= position[predecessor[last]] < last:
            return first, last
        last -= 1
    return None


def xi_labels(ordering: IndexArray, clusters: list[tuple[int, int]]) -> npt.NDArray[np.int32]:
    """Labels by row (-1 = noise): each cluster that holds no earlier one, numbered in turn.

    Since nested clusters come first, these are the leaves of the hierarchy.
    """
    in_order = np.full(ordering.size, -1, dtype=np.int32)
    label = 0
    for first, last in clusters:
        if (in_order[first : last + 1] == -1).all():
            in_order[first : last + 1] = label
            label += 1
    labels = np.empty_like(in_order)
    labels[ordering] = in_order
    return labels


def optics(
    matrix: npt.ArrayLike,
    *,
    min_samples: int | None = None,
    max_eps: float | None = None,
    xi: float | None = None,
) -> npt.NDArray[np.int32]:
    """``OPTICS(min_samples, max_eps, xi).fit_predict(matrix)`` (defaults 5, inf, 0.05)."""
    samples = min_samples or DEFAULT_MIN_SAMPLES
    graph = optics_graph(matrix, samples, max_eps if max_eps is not None else np.inf)
    clusters = xi_clusters(graph, samples, xi if xi is not None else DEFAULT_XI)
    return xi_labels(graph.ordering, clusters)
