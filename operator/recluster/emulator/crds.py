"""Custom resources for the emulator, read from CustomResourceDefinition manifests.

The emulator learns a custom resource the same way a real cluster does: from its CRD.
Group, plural, kind, scope, short names, categories and the subresources of every
served version come from the YAML files (``crds/`` in this repository), so the
emulated API can never drift from what we ship.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceDefinition:
    """What the emulator needs to serve one resource at one version."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    subresources: frozenset[str] = frozenset()
    shortnames: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    verbs: frozenset[str] = frozenset(VERBS)
    custom: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def definitions_from_crd(crd: Mapping[str, Any]) -> list[ResourceDefinition]:
    """The served versions of one CRD object (``apiextensions.k8s.io/v1``)."""
    if crd.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"not a CustomResourceDefinition: kind={crd.get('kind')!r}")
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    result: list[ResourceDefinition] = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        result.append(
            ResourceDefinition(
                group=str(spec["group"]),
                version=str(version["name"]),
                plural=str(names["plural"]),
                kind=str(names["kind"]),
                singular=str(names.get("singular") or str(names["kind"]).lower()),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                subresources=frozenset((version.get("subresources") or {}).keys()),
                shortnames=frozenset(names.get("shortNames") or ()),
                categories=frozenset(names.get("categories") or ()),
            )
        )
    return result


def _manifest_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    for path in map(Path, paths):
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        else:
            yield path


def load_crd_documents(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """All CustomResourceDefinition documents in the given files or directories."""
    docs: list[dict[str, Any]] = []
    for file in _manifest_files(paths):
        with file.open(encoding="utf-8") as stream:
            for doc in yaml.safe_load_all(stream):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    docs.append(doc)
    return docs
