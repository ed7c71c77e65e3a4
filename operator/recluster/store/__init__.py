"""Collection stores: where embeddings are read from and clustering results written to.

`open_store(uri)` picks the backend; every backend implements `CollectionStore`.
"""

from .base import CollectionStore
from .errors import (
    ArtifactNotFound,
    CollectionNotFound,
    InvalidCollection,
    RunExists,
    RunNotFound,
    StoreAccessDenied,
    StoreError,
    StoreUnavailable,
)
from .factory import DEFAULT_STORE_URI, open_store
from .types import Baseline, Collection, RunResults

__all__ = [
    "DEFAULT_STORE_URI",
    "ArtifactNotFound",
    "Baseline",
    "Collection",
    "CollectionNotFound",
    "CollectionStore",
    "InvalidCollection",
    "RunExists",
    "RunNotFound",
    "RunResults",
    "StoreAccessDenied",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]
