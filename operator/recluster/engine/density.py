"""Density-based clustering: hdbscan (exact when small, graph-based above), dbscan.

hdbscan. The reference implementation (`hdbscan.HDBSCAN`) and scikit-learn's
build the mutual-reachability MST with space trees that degrade to brute force
in hundreds of dimensions (about two minutes for 20k × 384 on two cores).
Here:

- **Up to ``EXACT_MST_ROWS`` rows**, the exact algorithm: all pairwise
  distances (one sgemm), core distances, mutual reachability, and Prim's
  minimum spanning tree over the complete graph (`exact_mst`). Same tree as
  the reference, in a fraction of a second.
- **Above**, the MST is built from a k-nearest-neighbour graph instead
  (`knn_mst`):

  1. k-NN with full-space distances, found and checked by
     :mod:`recluster.engine.neighbours` (a projection or an IVF index only
     propose candidates; a seeded sample is verified against brute force and
     the search redone wider when it falls short).
  2. A k-NN graph lacks the edges between clusters: clusters end up joined
     through chains of outliers (or not at all), which makes every cluster
     "born" too early and absorb outliers that the exact algorithm calls
     noise. So the graph gets the missing edges back: the "core pieces"
     (components of the edges no longer than both end points' core
     distances, i.e. the dense cores) of at least min_cluster_size rows are
     joined by a minimum spanning tree over their gaps, exact between each
     piece and its nearest pieces (`bridge_pieces`).
  3. scipy's minimum spanning tree over the mutual reachability of those
     edges (`graph_mst`).

dbscan: scikit-learn's rules computed without scikit-learn (`dbscan`). optics
has its own module, :mod:`recluster.engine.optics`.

Both hdbscan paths end in the same cluster extraction (`labels_from_mst`):
scikit-learn's compiled port of the hdbscan library's tree code. How close
the result is to the reference's is measured, not assumed: see
docs/engine.md and benchmarks/bench_quality.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse  # type: ignore[import-untyped]
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree  # type: ignore[import-untyped]

from .distances import centred_rows, squared_distances, squared_norms
from .neighbours import knn_search

EXACT_MST_ROWS = 4_096
"""Up to here the complete mutual-reachability graph (N² float32, 64 MB) is cheap."""
MIN_GRAPH_NEIGHBOURS = 16
BRIDGE_SAMPLE_ROWS = 4_096
"""Members sampled across all pieces to estimate the gaps between them."""
BRIDGE_REFINED_NEIGHBOURS = 3
"""Nearest pieces (by the estimate) to which each piece's gap is made exact."""
_BRIDGE_CHUNK = 1_024
MAX_BRIDGED_PIECES = 1_024
DEFAULT_MIN_CLUSTER_SIZE = 5


def knn_graph(
    distances: npt.NDArray[np.float32], neighbours: npt.NDArray[np.int64]
) -> scipy.sparse.csr_matrix:
    """The k-NN lists as a sparse N × N distance matrix (self and missing entries dropped)."""
    n = distances.shape[0]
    valid = (neighbours >= 0) & (neighbours != np.arange(n)[:, None])
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(valid.sum(axis=1), out=indptr[1:])
    return scipy.sparse.csr_matrix(
        (distances[valid].astype(np.float64), neighbours[valid].astype(np.int32), indptr),
        shape=(n, n),
    )


def core_pieces(
    distances: npt.NDArray[np.float32], neighbours: npt.NDArray[np.int64], min_samples: int
) -> npt.NDArray[np.int32]:
    """Component id of every row in the graph of "core edges".

    A core edge is no longer than the core distance of both its ends, so its
    mutual-reachability weight is the plain distance: these components are
    the dense cores that the exact hierarchy builds first.
    """
    n = distances.shape[0]
    core = distances[:, core_column(min_samples, distances.shape[1])]
    safe = np.maximum(neighbours, 0)
    keep = (
        (neighbours >= 0)
        & (neighbours != np.arange(n)[:, None])
        & (distances <= np.minimum(core[:, None], core[safe]))
    )
    rows = np.repeat(np.arange(n), keep.sum(axis=1))
    graph = scipy.sparse.csr_matrix(
        (np.ones(rows.size, dtype=np.int8), (rows, neighbours[keep])), shape=(n, n)
    )
    _, labels = connected_components(graph, directed=False)
    return np.asarray(labels, dtype=np.int32)


def bridge_pieces(
    graph: scipy.sparse.csr_matrix,
    matrix: npt.NDArray[np.float32],
    pieces: npt.NDArray[np.int32],
    min_size: int,
    core: npt.NDArray[np.float32],
    *,
    random_state: int = 42,
) -> scipy.sparse.csr_matrix:
    """Add to ``graph`` the edges of a minimum spanning tree over its pieces of ``min_size`` rows.

    Pieces are the core pieces that are large enough to be clusters (the
    largest ``MAX_BRIDGED_PIECES``), plus any component of the graph holding
    none of them, so the result is connected. The gap between two pieces is
    the smallest mutual reachability, max(core_a, core_b, |a - b|), over
    pairs of their members. It is first estimated on a seeded sample of each
    piece (an upper bound); then the gaps from every piece to its
    ``BRIDGE_REFINED_NEIGHBOURS`` nearest pieces are computed over all their
    members, which makes them exact. (The sampled gaps once decided which of
    two overlapping topics the tree joined first, and so whether hdbscan
    kept them apart: measured ARI 0.92 against the reference on such data,
    1.00 with the exact gaps.) Each tree edge joins the pair of rows that
    realised its gap.
    """
    sizes = np.bincount(pieces)
    big = np.flatnonzero(sizes >= min_size)
    big = big[np.argsort(-sizes[big], kind="stable")][:MAX_BRIDGED_PIECES]
    big_id = np.full(sizes.size, -1, dtype=np.int64)
    big_id[big] = np.arange(big.size)
    label = big_id[pieces]
    _, component = connected_components(graph, directed=False)
    covered = np.zeros(int(component.max()) + 1, dtype=bool)
    covered[component[label >= 0]] = True
    orphan = ~covered[component]
    if orphan.any():
        _, orphan_id = np.unique(component[orphan], return_inverse=True)
        label[orphan] = big.size + orphan_id
    n_pieces = int(label.max()) + 1
    if n_pieces <= 1:
        return graph
    members = _members(label, n_pieces)
    gaps = _sampled_gaps(matrix, core, members, random_state)
    symmetric = np.minimum(gaps.values, gaps.values.T)
    np.fill_diagonal(symmetric, np.inf)
    nearest = np.argsort(symmetric, axis=1)[:, :BRIDGE_REFINED_NEIGHBOURS]
    for a in range(n_pieces):
        for b in nearest[a].tolist():
            key = (min(a, b), max(a, b))
            if key not in gaps.exact:
                value, i, j = _exact_gap(matrix, core, members[key[0]], members[key[1]])
                symmetric[key] = symmetric[key[::-1]] = value
                gaps.exact[key] = (i, j)
    np.fill_diagonal(symmetric, 0.0)  # zero = no edge for scipy's spanning tree
    tree = minimum_spanning_tree(np.maximum(symmetric, 1e-12)).tocoo()
    src: list[int] = []
    dst: list[int] = []
    weights: list[float] = []
    for a, b in zip(tree.row.tolist(), tree.col.tolist(), strict=True):
        i, j = gaps.pair(a, b)
        src.append(i)
        dst.append(j)
        weights.append(max(float(np.linalg.norm(matrix[i] - matrix[j])), 1e-12))
    extra = scipy.sparse.csr_matrix((weights, (src, dst)), shape=graph.shape)
    return (graph + extra + extra.T).tocsr()


def _members(label: npt.NDArray[np.int64], n_pieces: int) -> list[npt.NDArray[np.int64]]:
    rows = np.flatnonzero(label >= 0)
    order = rows[np.argsort(label[rows], kind="stable")]
    bounds = np.searchsorted(label[order], np.arange(n_pieces + 1))
    return [order[bounds[p] : bounds[p + 1]] for p in range(n_pieces)]


@dataclass
class _Gaps:
    """Gaps between pieces and the rows realising them, exact where marked."""

    values: npt.NDArray[np.float64]
    """n_pieces × n_pieces, symmetric."""
    reps: npt.NDArray[np.int64]
    """Sampled rows, grouped by piece; piece p's are reps[starts[p]:starts[p + 1]]."""
    starts: npt.NDArray[np.int64]
    points: npt.NDArray[np.float32]
    core: npt.NDArray[np.float32]
    best: npt.NDArray[np.int64]
    """best[a, b]: index into reps of a's sampled row nearest to piece b."""
    exact: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    """(a, b), a < b -> rows realising the exact gap, once computed."""

    def pair(self, a: int, b: int) -> tuple[int, int]:
        """Rows joining pieces a and b at (about) their gap."""
        key = (min(a, b), max(a, b))
        if key in self.exact:
            return self.exact[key]
        if self.values[a, b] < self.values[b, a]:
            a, b = b, a
        r = int(self.best[a, b])
        lo, hi = self.starts[b], self.starts[b + 1]
        reach = _reachability(
            self.points[r : r + 1], self.core[r : r + 1], self.points[lo:hi], self.core[lo:hi]
        )
        return int(self.reps[r]), int(self.reps[lo + int(np.argmin(reach[0]))])


def _sampled_gaps(
    matrix: npt.NDArray[np.float32],
    core: npt.NDArray[np.float32],
    members: list[npt.NDArray[np.int64]],
    random_state: int,
) -> _Gaps:
    """Gaps between pieces over a seeded sample of each (all members of small ones)."""
    n_pieces = len(members)
    per_piece = max(4, BRIDGE_SAMPLE_ROWS // n_pieces)
    rng = np.random.default_rng(random_state)
    chosen = [
        np.sort(rng.choice(m, size=per_piece, replace=False)) if m.size > per_piece else m
        for m in members
    ]
    reps = np.concatenate(chosen)
    rep_piece = np.repeat(np.arange(n_pieces), [c.size for c in chosen])
    starts = np.searchsorted(rep_piece, np.arange(n_pieces + 1))
    points = np.ascontiguousarray(matrix[reps])
    rep_core = core[reps].astype(np.float32)
    gaps = np.full((n_pieces, n_pieces), np.inf)
    best = np.zeros((n_pieces, n_pieces), dtype=np.int64)
    for start in range(0, reps.size, _BRIDGE_CHUNK):
        stop = min(reps.size, start + _BRIDGE_CHUNK)
        reach = _reachability(points[start:stop], rep_core[start:stop], points, rep_core)
        to_piece = np.minimum.reduceat(reach, starts[:-1], axis=1)  # rows × pieces
        for a in np.unique(rep_piece[start:stop]):
            rows = np.flatnonzero(rep_piece[start:stop] == a)
            sub = to_piece[rows]
            arg = sub.argmin(axis=0)
            value = sub[arg, np.arange(n_pieces)]
            better = value < gaps[a]
            gaps[a, better] = value[better]
            best[a, better] = start + rows[arg[better]]
    return _Gaps(gaps, reps, starts, points, rep_core, best)


def _exact_gap(
    matrix: npt.NDArray[np.float32],
    core: npt.NDArray[np.float32],
    a: npt.NDArray[np.int64],
    b: npt.NDArray[np.int64],
) -> tuple[float, int, int]:
    """Smallest mutual reachability between rows ``a`` and rows ``b``, and the pair realising it."""
    rows_b = np.ascontiguousarray(matrix[b])
    core_b = core[b].astype(np.float32)
    best = (np.inf, -1, -1)
    for start in range(0, a.size, _BRIDGE_CHUNK):
        chunk = a[start : start + _BRIDGE_CHUNK]
        reach = _reachability(matrix[chunk], core[chunk].astype(np.float32), rows_b, core_b)
        flat = int(np.argmin(reach))
        i, j = divmod(flat, b.size)
        if reach[i, j] < best[0]:
            best = (float(reach[i, j]), int(chunk[i]), int(b[j]))
    return best


def _reachability(
    rows: npt.NDArray[np.float32],
    rows_core: npt.NDArray[np.float32],
    other: npt.NDArray[np.float32],
    other_core: npt.NDArray[np.float32],
) -> npt.NDArray[np.float32]:
    """Mutual reachability max(core_i, core_j, |x_i - y_j|), len(rows) × len(other)."""
    dist = squared_distances(rows, squared_norms(rows), other, squared_norms(other))
    np.sqrt(np.maximum(dist, 0, out=dist), out=dist)
    np.maximum(dist, rows_core[:, None], out=dist)
    np.maximum(dist, other_core[None, :], out=dist)
    return dist


def pairwise_distances(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """N × N Euclidean distances, float32, centred first (less cancellation in |x|²+|y|²-2x·y)."""
    rows = (matrix - matrix.mean(axis=0)).astype(np.float32)
    sq = squared_norms(rows)
    d2: npt.NDArray[np.float32] = squared_distances(rows, sq, rows, sq)
    np.maximum(d2, 0, out=d2)
    np.fill_diagonal(d2, 0)
    np.sqrt(d2, out=d2)
    return d2


def core_column(min_samples: int, columns: int) -> int:
    """Column of the core distance in a row of sorted distances that starts with the row itself.

    The reference (`hdbscan.HDBSCAN`, with its default
    match_reference_implementation=False) takes the min_samples-th nearest
    *other* point; scikit-learn's HDBSCAN counts the point itself, one
    neighbour less. On real embeddings (many near-duplicates) the two give
    different clusters (measured: 2 clusters and 27 % noise against 30
    clusters and 80 % noise on the Debian MiniLM set, min_cluster_size 10);
    this engine follows the reference the issue names.
    """
    return min(min_samples, columns - 1)


def exact_mst(matrix: npt.NDArray[np.float32], min_samples: int) -> npt.NDArray[Any]:
    """The minimum spanning tree of the complete mutual-reachability graph, by weight.

    Distances by one sgemm; then scikit-learn's compiled Prim over the N × N
    matrix. The result is scikit-learn's MST edge array (current_node,
    next_node, distance), sorted by distance.
    """
    from sklearn.cluster._hdbscan._linkage import (  # type: ignore[import-untyped]
        mst_from_mutual_reachability,
    )

    n = matrix.shape[0]
    dist = pairwise_distances(matrix)
    kth = core_column(min_samples, n)
    core = np.partition(dist, kth, axis=1)[:, kth]
    reach = np.maximum(dist, dist.T).astype(np.float64)  # symmetric whatever the rounding
    del dist
    np.maximum(reach, core[:, None], out=reach)
    np.maximum(reach, core[None, :], out=reach)
    mst = np.asarray(mst_from_mutual_reachability(reach))
    return mst[np.argsort(mst["distance"], kind="mergesort")]


def graph_mst(graph: scipy.sparse.csr_matrix, core: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
    """The minimum spanning tree of the mutual reachability over ``graph``'s edges, by weight.

    ``graph`` holds distances (k-NN edges and bridges, connected); each edge
    weighs max(core_i, core_j, d_ij). scipy's Kruskal builds the tree; the
    result has the layout of `exact_mst`'s.
    """
    from sklearn.cluster._hdbscan._linkage import MST_edge_dtype

    edges = scipy.sparse.triu(graph.maximum(graph.T), k=1).tocoo()  # k-NN lists are one-way
    weight = np.maximum(edges.data, np.maximum(core[edges.row], core[edges.col]))
    # scipy takes a zero weight for a missing edge: duplicates with zero core
    # distances would vanish from the graph. The smallest positive float keeps them.
    weight = np.maximum(weight, np.finfo(np.float64).tiny)
    reach = scipy.sparse.coo_matrix((weight, (edges.row, edges.col)), shape=graph.shape)
    tree = minimum_spanning_tree(reach).tocoo()
    if tree.nnz != graph.shape[0] - 1:
        raise RuntimeError(f"hdbscan graph is not connected ({tree.nnz} tree edges)")
    mst = np.empty(tree.nnz, dtype=MST_edge_dtype)
    mst["current_node"], mst["next_node"], mst["distance"] = tree.row, tree.col, tree.data
    return mst[np.argsort(mst["distance"], kind="mergesort")]


def labels_from_mst(
    mst: npt.NDArray[Any], min_cluster_size: int, method: str, epsilon: float
) -> npt.NDArray[np.intp]:
    """Condensed tree and flat clusters from a sorted MST (the hdbscan library's rules).

    scikit-learn's compiled port of the hdbscan library's tree code, called
    through its private module ``sklearn.cluster._hdbscan``: the public
    estimator counts the point itself in min_samples (see `core_column`) and
    wants an N × N input, and fast_hdbscan's numba equivalent costs ~1.4 s
    of imports and cache loading, more than the whole job at small sizes.
    The engine's tests pin the result against the reference.
    """
    if epsilon > 0:
        # scikit-learn 1.9's epsilon search fails under NumPy 2 (a 1-element
        # array converted to an integer); fast_hdbscan's applies the same rule.
        from fast_hdbscan.hdbscan import clusters_from_spanning_tree  # type: ignore[import-untyped]

        edges = np.column_stack([mst["current_node"], mst["next_node"], mst["distance"]])
        return np.asarray(
            clusters_from_spanning_tree(
                edges.astype(np.float64),
                min_cluster_size=min_cluster_size,
                cluster_selection_method=method,
                cluster_selection_epsilon=epsilon,
            )[0]
        )
    from sklearn.cluster._hdbscan._linkage import make_single_linkage
    from sklearn.cluster._hdbscan._tree import tree_to_labels  # type: ignore[import-untyped]

    labels, _ = tree_to_labels(make_single_linkage(mst), min_cluster_size, method, False, 0.0, None)
    return np.asarray(labels)


def knn_mst(
    matrix: npt.NDArray[np.float32], min_samples: int, min_cluster_size: int, random_state: int
) -> npt.NDArray[Any]:
    """The MST over the checked k-NN graph with bridges between its dense pieces."""
    distances, neighbours, _ = knn_search(
        matrix,
        max(2 * min_samples, MIN_GRAPH_NEIGHBOURS) + 1,  # itself, then the others
        min_samples,
        random_state=random_state,
    )
    core = distances[:, core_column(min_samples, distances.shape[1])]
    graph = bridge_pieces(
        knn_graph(distances, neighbours),
        matrix,
        core_pieces(distances, neighbours, min_samples),
        min_cluster_size,
        core,
        random_state=random_state,
    )
    return graph_mst(graph, core)


def hdbscan(
    matrix: npt.NDArray[np.float32],
    *,
    min_cluster_size: int | None = None,
    min_samples: int | None = None,
    cluster_selection_epsilon: float | None = None,
    cluster_selection_method: str | None = None,
    random_state: int = 42,
) -> npt.NDArray[np.int32]:
    """HDBSCAN labels (-1 = noise): exact up to EXACT_MST_ROWS rows, k-NN graph above.

    ``min_samples`` follows the hdbscan library's convention (the core
    distance is the distance to the min_samples-th nearest *other* point; see
    `core_column`), and defaults to ``min_cluster_size`` as there.
    """
    mcs = min_cluster_size or DEFAULT_MIN_CLUSTER_SIZE
    ms = min_samples or mcs
    if matrix.shape[0] <= EXACT_MST_ROWS:
        mst = exact_mst(matrix, ms)
    else:
        mst = knn_mst(matrix, ms, mcs, random_state)
    method = cluster_selection_method or "eom"
    labels = labels_from_mst(mst, mcs, method, float(cluster_selection_epsilon or 0.0))
    return np.asarray(labels, dtype=np.int32)


def dbscan(
    matrix: npt.NDArray[np.float32], *, eps: float | None = None, min_samples: int | None = None
) -> npt.NDArray[np.int32]:
    """DBSCAN labels (-1 = noise) with scikit-learn's rules (defaults eps=0.5, min_samples=5).

    scikit-learn's DBSCAN in hundreds of dimensions is brute-force radius
    queries plus a search over core points; the same here with one sgemm
    block at a time (`radius_graph`) and SciPy's connected components, which
    saves importing scikit-learn (1.5-3 s in a fresh Job, more than the
    clustering of thousands of rows; issue 13). Its rules, kept:

    - a row's neighbourhood counts the row itself; core rows have at least
      ``min_samples``;
    - clusters are the components of core rows joined within ``eps``,
      numbered by their lowest row;
    - a border row (not core, a core row within ``eps``) joins the
      lowest-numbered cluster among its core neighbours, the one
      scikit-learn's search, which expands clusters in that order, reaches
      first.

    Distances are float32 (scikit-learn: float64), so a pair within about
    1e-6 of ``eps`` can fall on the other side; rows on a lattice of small
    integers have exact distances (see `distances`), so a pair exactly
    ``eps`` apart is within it, as in scikit-learn.
    """
    radius = eps if eps is not None else 0.5
    graph = radius_graph(matrix, radius)
    core = np.diff(graph.indptr) >= (min_samples or 5)
    core_rows = np.flatnonzero(core)
    labels = np.full(matrix.shape[0], -1, dtype=np.int32)
    if core_rows.size == 0:
        return labels
    # The graph is symmetric, so its strong components are the undirected ones,
    # found without the transposed copy that directed=False builds.
    _, component = connected_components(
        graph[core_rows][:, core_rows], directed=True, connection="strong"
    )
    _, first, inverse = np.unique(component, return_index=True, return_inverse=True)
    cluster = np.argsort(np.argsort(first)).astype(np.int32)[inverse]
    labels[core_rows] = cluster
    border = graph[~core][:, core_rows].tocoo()
    if border.nnz:
        nearest = np.full(border.shape[0], np.iinfo(np.int32).max, dtype=np.int32)
        np.minimum.at(nearest, border.row, cluster[border.col])
        reached = nearest < np.iinfo(np.int32).max
        labels[np.flatnonzero(~core)[reached]] = nearest[reached]
    return labels


RADIUS_BLOCK_BYTES = 1 << 27
"""Distance block of `radius_graph`: 128 MB of float32 (1,024 rows at 32,768 columns)."""


def radius_block_rows(n_rows: int) -> int:
    """Rows per distance block of `radius_graph`: 1,024, fewer when a block would pass 128 MB."""
    return int(max(16, min(1_024, RADIUS_BLOCK_BYTES // (4 * max(n_rows, 1)))))


def radius_graph(matrix: npt.NDArray[np.float32], radius: float) -> scipy.sparse.csr_matrix:
    """Pairs of rows within ``radius`` (Euclidean, each row with itself), N × N boolean, symmetric.

    Float32 products of centred rows (`distances.centred_rows`), one block of
    rows at a time against the rows from the block's first on: the pairs
    i < j are computed once (half the N × N products) and entered both ways,
    so the graph is symmetric whatever the rounding. Memory: the block and
    the pairs.
    """
    n = matrix.shape[0]
    rows = centred_rows(matrix)
    sq = squared_norms(rows)
    step = radius_block_rows(n)
    limit = np.float32(radius) ** 2
    indices: list[npt.NDArray[np.int32]] = []
    counts = np.zeros(n, dtype=np.int64)
    for start in range(0, n, step):
        stop = min(n, start + step)
        d2 = squared_distances(rows[start:stop], sq[start:stop], rows[start:], sq[start:])
        within = d2 <= limit
        del d2
        width = stop - start
        within[:, :width] &= np.triu(np.ones((width, width), dtype=bool))  # j >= i only
        within[np.arange(width), np.arange(width)] = True  # each row with itself
        found_rows, found_cols = np.nonzero(within)
        counts[start:stop] = np.bincount(found_rows, minlength=width)
        columns = found_cols.astype(np.int32)
        columns += start
        indices.append(columns)
    column = np.concatenate(indices) if indices else np.zeros(0, dtype=np.int32)
    # int32 offsets while they fit: scipy would otherwise widen (copy) every index
    indptr = np.zeros(n + 1, dtype=np.int32 if 2 * column.size < 2**31 else np.int64)
    np.cumsum(counts, out=indptr[1:])
    upper = scipy.sparse.csr_matrix((np.ones(column.size, dtype=bool), column, indptr), (n, n))
    graph: scipy.sparse.csr_matrix = upper + upper.T.tocsr()  # bool: the diagonal stays True
    return graph
