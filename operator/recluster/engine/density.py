"""Density-based clustering: hdbscan (fast path), dbscan and optics.

hdbscan. The reference implementation (`hdbscan.HDBSCAN`) and scikit-learn's
build the mutual-reachability MST with space trees that degrade to brute force
in hundreds of dimensions (about two minutes for 20k × 384 on two cores).
Here the MST is built from a k-nearest-neighbour graph instead:

1. Project to ``GRAPH_DIMS`` principal components when the data has more.
   Embedding clusters differ along few directions; 32 components keep the
   neighbourhoods and cut every distance computation twelvefold at D=384.
2. k-NN graph with faiss: exact (flat) for small collections, IVF above
   ``EXACT_KNN_MAX_ROWS`` (recall ≈ 0.99 on clustered data at these settings).
   Core distances come from these neighbours, so they are exact (flat) or
   nearly so (IVF).
3. A k-NN graph lacks the edges between clusters: clusters end up joined
   through chains of outliers (or not at all, and fast_hdbscan then bridges
   the pieces with infinite edges). Either way every cluster is "born" too
   early and absorbs outliers that the exact algorithm calls noise. So the
   graph gets the missing edges back: the "core pieces" (components of the
   edges no longer than both end points' core distances, i.e. the dense
   cores) of at least min_cluster_size rows are joined by a minimum spanning
   tree over real distances between sampled members of each piece. These are
   true distances, so the MST can only get closer to the exact one.
4. fast_hdbscan (numba) turns the sparse graph into the MST, condensed tree
   and flat clusters. Pairs outside the graph are never mutual-reachability
   neighbours of dense points, so the clusters match the exact algorithm's on
   clustered data; only the hierarchy above the clusters is approximated.

fast_hdbscan compiles its kernels with numba on first use (20+ s). Its
functions are declared ``cache=True``; :mod:`recluster.engine.warmup` runs
this path once at image build time so that Jobs load the compiled code.
"""

from __future__ import annotations

import faiss
import numpy as np
import numpy.typing as npt
import scipy.sparse  # type: ignore[import-untyped]
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree  # type: ignore[import-untyped]

from .preprocess import pca_reduce, sample_rows

GRAPH_DIMS = 32
EXACT_KNN_MAX_ROWS = 8_192
IVF_NPROBE = 10
MIN_GRAPH_NEIGHBOURS = 16
BRIDGE_SAMPLE_ROWS = 2_048
"""Members sampled across all pieces to measure the gaps between them."""
MAX_BRIDGED_PIECES = 1_024
DEFAULT_MIN_CLUSTER_SIZE = 5


def knn_search(
    matrix: npt.NDArray[np.float32], n_neighbors: int, *, random_state: int = 42
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Euclidean distances and ids of each row's nearest rows, itself included (first).

    Missing neighbours (IVF lists too short) come back as (inf, -1).
    """
    n, d = matrix.shape
    k = min(n, n_neighbors)
    index: faiss.Index
    if n <= EXACT_KNN_MAX_ROWS:
        index = faiss.IndexFlatL2(d)
    else:
        nlist = max(16, int(2 * np.sqrt(n)))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
        ivf.cp.seed = random_state
        ivf.cp.min_points_per_centroid = 1
        train = sample_rows(n, 64 * nlist, random_state)
        ivf.train(np.ascontiguousarray(matrix[train]))
        ivf.nprobe = IVF_NPROBE
        index = ivf
    index.add(matrix)
    sq_distances, neighbours = index.search(matrix, k)
    distances = np.sqrt(np.maximum(sq_distances, 0))
    distances[neighbours < 0] = np.inf
    return distances, neighbours


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
    core = distances[:, min(min_samples, distances.shape[1]) - 1]
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
    *,
    random_state: int = 42,
) -> scipy.sparse.csr_matrix:
    """Add to ``graph`` the edges of a spanning tree over its pieces of ``min_size`` rows.

    Pieces are the core pieces that are large enough to be clusters (the
    largest ``MAX_BRIDGED_PIECES``), plus any component of the graph holding
    none of them, so the result is connected. A piece is represented by a
    seeded sample of its members; the gap between two pieces is the shortest
    distance between their representatives; each tree edge is then snapped to
    the nearest member of the far piece.
    """
    n = matrix.shape[0]
    sizes = np.bincount(pieces)
    big = np.flatnonzero(sizes >= min_size)
    big = big[np.argsort(-sizes[big], kind="stable")][:MAX_BRIDGED_PIECES]
    label = np.full(n, -1, dtype=np.int64)
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
    rng = np.random.default_rng(random_state)
    per_piece = max(4, BRIDGE_SAMPLE_ROWS // n_pieces)
    members_of = np.flatnonzero(label >= 0)
    order = members_of[np.argsort(label[members_of], kind="stable")]
    bounds = np.searchsorted(label[order], np.arange(n_pieces + 1))
    chosen = []
    for p in range(n_pieces):
        members = order[bounds[p] : bounds[p + 1]]
        if members.size > per_piece:
            members = np.sort(rng.choice(members, size=per_piece, replace=False))
        chosen.append(members)
    reps = np.concatenate(chosen)  # grouped by piece, in piece order
    rep_piece = label[reps]
    starts = np.searchsorted(rep_piece, np.arange(n_pieces + 1))
    points = np.ascontiguousarray(matrix[reps])
    sq = np.einsum("ij,ij->i", points, points)
    gaps = np.full((n_pieces, n_pieces), np.inf)
    best_rep = np.zeros((n_pieces, n_pieces), dtype=np.int64)
    for start in range(0, reps.size, 1_024):
        stop = min(reps.size, start + 1_024)
        dist = sq[start:stop, None] + sq[None, :] - 2 * (points[start:stop] @ points.T)
        to_piece = np.minimum.reduceat(dist, starts[:-1], axis=1)  # rows × pieces
        for a in np.unique(rep_piece[start:stop]):
            rows = np.flatnonzero(rep_piece[start:stop] == a)
            sub = to_piece[rows]
            arg = sub.argmin(axis=0)
            value = sub[arg, np.arange(n_pieces)]
            better = value < gaps[a]
            gaps[a, better] = value[better]
            best_rep[a, better] = start + rows[arg[better]]
    np.fill_diagonal(gaps, 0.0)  # zero = no edge for scipy's spanning tree
    tree = minimum_spanning_tree(np.sqrt(np.maximum(gaps, 1e-24))).tocoo()
    src: list[int] = []
    dst: list[int] = []
    weights: list[float] = []
    for a, b in zip(tree.row, tree.col, strict=True):
        r = int(best_rep[a, b])
        far = points[starts[b] : starts[b + 1]] - points[r]
        d2 = np.einsum("ij,ij->i", far, far)
        j = int(np.argmin(d2))
        src.append(int(reps[r]))
        dst.append(int(reps[starts[b] + j]))
        weights.append(max(float(np.sqrt(d2[j])), 1e-12))
    extra = scipy.sparse.csr_matrix((weights, (src, dst)), shape=graph.shape)
    return (graph + extra + extra.T).tocsr()


def hdbscan(
    matrix: npt.NDArray[np.float32],
    *,
    min_cluster_size: int | None = None,
    min_samples: int | None = None,
    cluster_selection_epsilon: float | None = None,
    cluster_selection_method: str | None = None,
    random_state: int = 42,
) -> npt.NDArray[np.int32]:
    """HDBSCAN labels (-1 = noise) via a faiss k-NN graph and fast_hdbscan.

    ``min_samples`` follows the hdbscan library's convention (the point itself
    counts), and defaults to ``min_cluster_size`` as there.
    """
    from fast_hdbscan.hdbscan import fast_hdbscan  # type: ignore[import-untyped]

    mcs = min_cluster_size or DEFAULT_MIN_CLUSTER_SIZE
    ms = min_samples or mcs
    work = matrix
    if matrix.shape[1] > GRAPH_DIMS:
        work = pca_reduce(matrix, GRAPH_DIMS, random_state=random_state)
    distances, neighbours = knn_search(
        work, max(2 * ms, MIN_GRAPH_NEIGHBOURS) + 1, random_state=random_state
    )
    graph = bridge_pieces(
        knn_graph(distances, neighbours),
        work,
        core_pieces(distances, neighbours, ms),
        mcs,
        random_state=random_state,
    )
    labels, _ = fast_hdbscan(
        graph,
        metric="precomputed",
        min_samples=max(1, ms - 1),  # fast_hdbscan does not count the point itself
        min_cluster_size=mcs,
        cluster_selection_method=cluster_selection_method or "eom",
        cluster_selection_epsilon=float(cluster_selection_epsilon or 0.0),
    )
    return np.asarray(labels, dtype=np.int32)


def dbscan(
    matrix: npt.NDArray[np.float32], *, eps: float | None = None, min_samples: int | None = None
) -> npt.NDArray[np.int32]:
    """scikit-learn's DBSCAN (defaults eps=0.5, min_samples=5)."""
    from sklearn.cluster import DBSCAN  # type: ignore[import-untyped]

    model = DBSCAN(eps=eps if eps is not None else 0.5, min_samples=min_samples or 5)
    return np.asarray(model.fit_predict(matrix), dtype=np.int32)


def optics(
    matrix: npt.NDArray[np.float32],
    *,
    min_samples: int | None = None,
    max_eps: float | None = None,
    xi: float | None = None,
) -> npt.NDArray[np.int32]:
    """scikit-learn's OPTICS with xi extraction (defaults min_samples=5, xi=0.05)."""
    from sklearn.cluster import OPTICS

    model = OPTICS(
        min_samples=min_samples or 5,
        max_eps=max_eps if max_eps is not None else np.inf,
        xi=xi if xi is not None else 0.05,
    )
    return np.asarray(model.fit_predict(matrix), dtype=np.int32)
