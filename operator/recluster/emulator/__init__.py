"""An emulated Kubernetes API for tests and ``recluster dev`` (no cluster needed).

kmock's Kubernetes scaffold (discovery, request log, fault injection) plus a
project-owned object store with the apiserver rules kopf and our operator rely on:
server-set metadata, resourceVersion and generation, the status subresource,
optimistic concurrency, finalizers, garbage collection, selectors, resumable watches,
and an audit log in RBAC terms. See ``docs/emulator.md``.
"""

from .audit import AuditLog, AuditRecord, format_rules
from .cluster import EmulatedCluster
from .crds import ResourceDefinition, definitions_from_crd, load_crd_documents
from .handler import EmulatorHandler, parse_api_path
from .selectors import FieldSelector, LabelSelector, SelectorError
from .store import ApiError, DeleteOptions, Store

__all__ = [
    "ApiError",
    "AuditLog",
    "AuditRecord",
    "DeleteOptions",
    "EmulatedCluster",
    "EmulatorHandler",
    "FieldSelector",
    "LabelSelector",
    "ResourceDefinition",
    "SelectorError",
    "Store",
    "definitions_from_crd",
    "format_rules",
    "load_crd_documents",
    "parse_api_path",
]
