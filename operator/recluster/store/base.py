"""The one interface every collection store implements.

The job runner, the operator's document-count polling and drift checks, and
the dev sample generator only ever see this interface; the backend comes from
the install's store URI (see `factory.open_store`).

Contract shared by all backends (and checked by the same tests on each):
- a collection exists once it has been appended to; reading a missing one
  raises `CollectionNotFound`; a store that cannot be reached raises
  `StoreUnavailable`;
- `read`/`read_many` return rows in a stable order (the same on every call
  while nothing is appended), as one C-contiguous float32 matrix;
- `sample` is deterministic for a seed, a subset of the collection, and costs
  far less than a full read on large collections;
- `write_run` makes a run visible all at once or not at all, never replaces a
  complete run, and `latest_run` only ever names complete runs; a run's
  artifacts are part of it (visible with it, never without it);
- a collection may carry a text per document (column `text`); `read_texts`
  returns None for a collection without one, and never fails a run for it.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

import numpy as np

from .types import Baseline, Collection, RunResults


class CollectionStore(abc.ABC):
    """Collections of (document_id, float32 embedding) rows, and clustering results."""

    #: Where the store points, for messages (never includes credentials).
    location: str

    # Collections --------------------------------------------------------

    @abc.abstractmethod
    def count(self, namespace: str, collection_id: str) -> int:
        """Number of documents in a collection (cheap: metadata or an index)."""

    def read(self, namespace: str, collection_id: str) -> Collection:
        """All rows of one collection as ids plus one float32 N×D matrix."""
        return self.read_many(namespace, [collection_id])

    @abc.abstractmethod
    def read_many(self, namespace: str, collection_ids: Sequence[str]) -> Collection:
        """Rows of several collections in one matrix, allocated once (no concatenation copy)."""

    @abc.abstractmethod
    def sample(self, namespace: str, collection_id: str, n: int, seed: int) -> Collection:
        """At most `n` rows, deterministic for `seed`, without reading the whole collection."""

    @abc.abstractmethod
    def iter_blocks(
        self, namespace: str, collection_id: str, rows_per_block: int
    ) -> Iterator[Collection]:
        """Stream the collection in blocks of `rows_per_block` rows (the last may be shorter).

        Memory stays bounded by a few blocks, for clustering collections
        larger than the Job's memory. Rows come in the order of `read`.
        """

    @abc.abstractmethod
    def append(
        self,
        namespace: str,
        collection_id: str,
        document_ids: Sequence[str],
        embeddings: np.typing.ArrayLike,
        texts: Sequence[str] | None = None,
    ) -> None:
        """Add documents to a collection, creating it if needed (dev data, tests, imports).

        `texts`, one per document, fill the collection's optional text column.
        """

    @abc.abstractmethod
    def read_texts(
        self, namespace: str, collection_id: str, document_ids: Sequence[str]
    ) -> dict[str, str] | None:
        """The texts of these documents (those that have one); None without a text column."""

    @abc.abstractmethod
    def list_collections(self, namespace: str) -> list[str]:
        """Ids of the collections in a namespace, sorted."""

    # Results ------------------------------------------------------------

    @abc.abstractmethod
    def write_run(self, namespace: str, run: RunResults) -> None:
        """Write a run's results under its own id; visible only once complete.

        Raises `RunExists` if a complete run has that id. An incomplete run
        with the same id (an earlier attempt of the same Job that died) is
        replaced.
        """

    @abc.abstractmethod
    def read_run(self, namespace: str, run_id: str) -> RunResults:
        """A complete run; `RunNotFound` if it does not exist or never completed."""

    def run_summary(self, namespace: str, run_id: str) -> dict[str, Any]:
        """The summary of a complete run (its `summary.json`); `RunNotFound` like read_run.

        Stores that can read it alone override this; the default reads the run.
        """
        return dict(self.read_run(namespace, run_id).summary)

    @abc.abstractmethod
    def list_artifacts(self, namespace: str, run_id: str) -> dict[str, int]:
        """Names and sizes in bytes of a complete run's artifacts; `RunNotFound` if none."""

    @abc.abstractmethod
    def read_artifact(self, namespace: str, run_id: str, name: str) -> bytes:
        """One artifact of a complete run; `ArtifactNotFound` if the run or the name is unknown."""

    @abc.abstractmethod
    def latest_run(self, namespace: str, collection_ids: Sequence[str]) -> str | None:
        """Id of the last complete run over exactly this set of collections (order ignored)."""

    @abc.abstractmethod
    def write_baseline(self, namespace: str, baseline: Baseline) -> None:
        """Record a baseline for `baseline.collection_ids` outside of a run (e.g. a re-baseline)."""

    @abc.abstractmethod
    def read_baseline(self, namespace: str, collection_ids: Sequence[str]) -> Baseline | None:
        """The newest baseline for this set of collections: from a complete run or written alone."""

    # Lifecycle ----------------------------------------------------------

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release connections; the store must not be used afterwards."""

    def __enter__(self) -> CollectionStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"
