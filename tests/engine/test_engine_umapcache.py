"""umap-learn's numba kernels switched to the disk cache (engine/umapcache.py)."""

from __future__ import annotations

from numba.core.caching import FunctionCache, NullCache

from recluster.engine.umapcache import enable_umap_caching, module_dispatchers


def test_umap_kernels_are_cached_except_where_one_entry_would_serve_two_dispatchers() -> None:
    enable_umap_caching()
    import umap.layouts  # type: ignore[import-untyped]
    import umap.umap_  # type: ignore[import-untyped]

    # the layout epoch, built twice from one function: the serial one is cached...
    assert isinstance(umap.layouts._nb_optimize_layout_euclidean_single_epoch._cache, FunctionCache)
    # ...the parallel one compiles as before, never loading the serial one's machine code
    parallel = umap.layouts._nb_optimize_layout_euclidean_single_epoch_parallel
    assert isinstance(parallel._cache, NullCache)
    # a kernel declared without cache=True, used by every fit
    assert isinstance(umap.umap_.smooth_knn_dist._cache, FunctionCache)
    dispatchers = module_dispatchers()
    assert len(dispatchers) > 100
    assert enable_umap_caching() == 0, "a second call switches nothing"
