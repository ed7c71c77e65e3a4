"""Import the `kubernetes` package without loading its 768 model modules until one is used.

`import kubernetes.config` runs `kubernetes/__init__.py`, which imports
`kubernetes.client` (every API class and model, about 60 MB of RSS and 0.2 s),
`kubernetes.dynamic`, `watch`, `stream`... The operator needs only the
config loaders and `Configuration`: that is a fifth of an idle operator's
memory spent on classes it never touches.

`install()` puts two lazy package modules in `sys.modules` before the real
ones are imported: `kubernetes` and `kubernetes.client`, with the real
packages' search paths, so `import kubernetes.config` and `from
kubernetes.client import Configuration` load just those modules. Any other
name of `kubernetes.client` (`ApiClient`, `models`, `V1Pod`, ...) is imported
from the real package on first access (PEP 562 `__getattr__`), so code that
uses the full client (the node agent, the tests) works unchanged, and pays
for it then.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

_CLIENT_NAMES = {
    "Configuration": "kubernetes.client.configuration",
    "ApiException": "kubernetes.client.exceptions",
}


def _api_client(*args: Any, **kwargs: Any) -> Any:
    """Stands for kubernetes.client.ApiClient, whose module imports every model: the
    config loaders name it at import time, and use it only in new_client_from_config."""
    real = importlib.import_module("kubernetes.client.api_client").ApiClient
    return real(*args, **kwargs)


def _package(name: str) -> types.ModuleType:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not installed")
    module = types.ModuleType(name)
    module.__path__ = list(spec.submodule_search_locations)
    module.__spec__ = spec
    module.__file__ = spec.origin
    module.__package__ = name
    return module


def _full_client() -> types.ModuleType:
    """The real kubernetes.client package, executed into the lazy module's namespace."""
    lazy = sys.modules["kubernetes.client"]
    spec = lazy.__spec__
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(lazy)  # runs kubernetes/client/__init__.py: every API and model
    lazy.__dict__.pop("__getattr__", None)
    return lazy


def _client_getattr(name: str) -> Any:
    if name == "ApiClient":
        return _api_client
    if name in _CLIENT_NAMES:
        return getattr(importlib.import_module(_CLIENT_NAMES[name]), name)
    if not name.startswith("__") and importlib.util.find_spec(f"kubernetes.client.{name}"):
        return importlib.import_module(f"kubernetes.client.{name}")  # a submodule (rest, ...)
    return getattr(_full_client(), name)


def _kubernetes_getattr(name: str) -> Any:
    return importlib.import_module(f"kubernetes.{name}")


def install() -> None:
    """Make `kubernetes` and `kubernetes.client` lazy, unless they were imported already."""
    if "kubernetes" not in sys.modules:
        root = _package("kubernetes")
        root.__getattr__ = _kubernetes_getattr  # type: ignore[method-assign]
        sys.modules["kubernetes"] = root
    if "kubernetes.client" not in sys.modules:
        client = _package("kubernetes.client")
        client.__getattr__ = _client_getattr  # type: ignore[method-assign]
        sys.modules["kubernetes.client"] = client
        setattr(sys.modules["kubernetes"], "client", client)  # noqa: B010
