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
- idempotent: a second call switches nothing.

The cache is invalidated when the caller's own source file changes, not when a
kernel it inlined from another file does: numba's rule for every cached
function, harmless in an image (nothing changes), and a reinstall of either
package touches all its files anyway.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Any

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
