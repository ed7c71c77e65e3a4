"""Let numba cache umap-learn's and pynndescent's kernels on disk, so a Job loads them.

umap-learn declares most of its numba kernels without ``cache=True`` (and
pynndescent a few), so every fresh process compiled them again: 30-75 s of
CPU for a first UMAP fit on two cores (docs/engine.md, "Artifacts"). numba's
dispatchers can be switched to the on-disk cache after the fact
(`Dispatcher.enable_caching`), provided it happens before their first
compilation. `enable_umap_caching` does that for every dispatcher defined at
the top level of umap's and pynndescent's modules; `engine.warmup` then
compiles them into NUMBA_CACHE_DIR at image build time.

Invariants:

- only dispatchers not already cached and not yet compiled are switched;
- numba's cache index is keyed by the Python function (file, line, bytecode)
  and the argument types, not by the compile options. umap-learn builds two
  dispatchers from one function (the layout epoch, serial and
  ``parallel=True``): of such a group only the one serial member is cached
  (a function with one dispatcher is cached whatever its options),
  the others compile as before, so neither can load the other's machine code;
- idempotent: a second call switches nothing;
- every UMAP the engine runs goes through `fit_umap` (the map's layout and the
  `reduction: umap` step): a kernel compiled before `enable_umap_caching` ran
  stays uncached for the process, so one uncached use first (the reduction,
  then the map) cost the other its cache.

The cache is invalidated when the caller's own source file changes, not when a
kernel it inlined from another file does: numba's rule for every cached
function, harmless in an image (nothing changes), and a reinstall of either
package touches all its files anyway.
"""

from __future__ import annotations

import sys
import warnings
from collections import defaultdict
from typing import Any

import numpy as np
import numpy.typing as npt

PACKAGES = ("umap", "pynndescent")


def _is_dispatcher(value: object) -> bool:
    from numba.core.dispatcher import Dispatcher

    return isinstance(value, Dispatcher)


def module_dispatchers(packages: tuple[str, ...] = PACKAGES) -> list[Any]:
    """The numba dispatchers bound at the top level of the packages' loaded modules."""
    found: dict[int, Any] = {}
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in packages:
            continue
        for value in list(vars(module).values()):
            if _is_dispatcher(value):
                found[id(value)] = value
    return list(found.values())


def enable_umap_caching() -> int:
    """Import umap (and pynndescent) and switch their kernels to numba's disk cache.

    Returns how many dispatchers were switched (0 on a second call).
    """
    import umap  # type: ignore[import-untyped]  # noqa: F401  (loads pynndescent too)
    from numba.core.caching import NullCache

    groups: dict[Any, list[Any]] = defaultdict(list)
    for dispatcher in module_dispatchers():
        groups[dispatcher.py_func].append(dispatcher)
    switched = 0
    for members in groups.values():
        serial = [d for d in members if not d.targetoptions.get("parallel")]
        chosen = members if len(members) == 1 else serial
        if len(chosen) != 1 or any(not isinstance(d._cache, NullCache) for d in members):
            continue  # already cached, or options that one cache entry could not tell apart
        dispatcher = chosen[0]
        if dispatcher.overloads:
            continue  # compiled already (an explicit signature, at import): nothing to gain
        dispatcher.enable_caching()
        switched += 1
    return switched


def fit_umap(
    points: npt.NDArray[np.float32],
    n_components: int,
    n_neighbors: int,
    random_state: int,
    **options: Any,
) -> npt.NDArray[np.float32]:
    """UMAP of ``points`` on a k-NN graph found by faiss, umap-learn's kernels from the cache.

    The graph comes from `engine.neighbours.knn_search` (exact up to 32k rows,
    IVF checked above) instead of pynndescent: pynndescent's kernels take the
    metric as a numba function argument, which numba's disk cache cannot key
    across processes, so they compiled again in every Job (~10 s of CPU).
    ``options`` go to ``umap.UMAP`` (min_dist, n_epochs, init, ...).
    """
    import umap
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from .neighbours import knn_search

    enable_umap_caching()
    k = max(2, min(n_neighbors, points.shape[0] - 1))
    with threadpool_limits(1):  # small products: one BLAS thread
        distances, neighbours, _ = knn_search(points, k, k - 1, random_state=random_state)
    reducer = umap.UMAP(
        n_components=n_components,
        n_neighbors=k,
        random_state=random_state,
        n_jobs=1,
        precomputed_knn=(neighbours, distances, None),
        **options,
    )
    with warnings.catch_warnings():
        # "no search index: transform will be unavailable": nothing here transforms
        warnings.filterwarnings("ignore", message="precomputed_knn", category=UserWarning)
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        embedded = reducer.fit_transform(points)
    return np.ascontiguousarray(embedded, dtype=np.float32)
