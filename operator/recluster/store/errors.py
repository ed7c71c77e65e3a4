"""Errors a store raises, with one-line messages a Job can print as its reason.

The job runner turns them into its exit message and the operator into status
conditions, so every message names the store, the namespace and the object.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error a collection store raises on purpose."""


class CollectionNotFound(StoreError):
    """The collection has no documents (and, for Parquet, no directory) in the store."""

    def __init__(self, namespace: str, collection_id: str, where: str) -> None:
        self.namespace = namespace
        self.collection_id = collection_id
        super().__init__(
            f"collection {collection_id!r} not found in namespace {namespace!r} ({where})"
        )


class RunNotFound(StoreError):
    """No complete run with that id: never written, or its write did not finish."""

    def __init__(self, namespace: str, run_id: str, where: str) -> None:
        self.namespace = namespace
        self.run_id = run_id
        super().__init__(f"run {run_id!r} not found in namespace {namespace!r} ({where})")


class ArtifactNotFound(StoreError):
    """The run is complete but holds no artifact of that name (or the run does not exist)."""

    def __init__(self, namespace: str, run_id: str, name: str, where: str) -> None:
        self.namespace = namespace
        self.run_id = run_id
        self.name = name
        super().__init__(
            f"artifact {name!r} of run {run_id!r} not found in namespace {namespace!r} ({where})"
        )


class RunExists(StoreError):
    """A complete run with that id exists; results are never written over a run."""

    def __init__(self, namespace: str, run_id: str, where: str) -> None:
        self.namespace = namespace
        self.run_id = run_id
        super().__init__(
            f"run {run_id!r} already exists in namespace {namespace!r} ({where});"
            " results are never overwritten"
        )


class InvalidCollection(StoreError):
    """Stored rows cannot form a float32 matrix (mixed dimensions, nulls, wrong type)."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or refused the operation (network, auth, permissions)."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        # Keep the message on one line: it ends up in a termination message.
        reason = " ".join(str(reason).split()) or "unknown error"
        super().__init__(f"store {where} unavailable: {reason}")


class StoreAccessDenied(StoreError):
    """The store refused this namespace's data to these credentials or this mount.

    The partition between namespaces is the store's own (docs/security.md): a
    Job's mount holds only its namespace's directory, an object store credential
    only its namespace's prefix, a PostgreSQL role only its namespace's rows.
    """

    def __init__(self, where: str, namespace: str, reason: str) -> None:
        self.where = where
        self.namespace = namespace
        reason = " ".join(str(reason).split()) or "access denied"
        super().__init__(f"store {where} denied access to namespace {namespace!r}: {reason}")
