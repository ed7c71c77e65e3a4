"""Reading manifests: files or directories of (multi-document) YAML or JSON."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Document:
    """One document of a manifest file; `error` is set when it could not be parsed."""

    file: str
    index: int
    body: Any = None
    error: str | None = None

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", "")) if isinstance(self.body, dict) else ""

    @property
    def name(self) -> str:
        if not isinstance(self.body, dict):
            return ""
        meta = self.body.get("metadata") or {}
        return (
            str(meta.get("name") or meta.get("generateName") or "")
            if isinstance(meta, dict)
            else ""
        )

    @property
    def namespace(self) -> str | None:
        meta = self.body.get("metadata") if isinstance(self.body, dict) else None
        ns = meta.get("namespace") if isinstance(meta, dict) else None
        return str(ns) if ns else None


def manifest_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files named by paths; directories are searched recursively for manifests."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(
                p for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file()
            )
        else:
            files.append(path)
    return files


def parse_documents(text: str, file: str) -> list[Document]:
    """Every non-empty document of a YAML (or JSON) text."""
    try:
        bodies = [b for b in yaml.safe_load_all(text) if b is not None]
    except yaml.YAMLError as exc:
        return [Document(file, 0, error=f"not valid YAML: {_one_line(str(exc))}")]
    documents = []
    for index, body in enumerate(bodies):
        if isinstance(body, dict) and body.get("kind") == "List" and "items" in body:
            documents += [Document(file, index, item) for item in body["items"] or []]
        else:
            documents.append(Document(file, index, body))
    return documents


def load_documents(paths: Iterable[str | Path]) -> list[Document]:
    """Parse every manifest file under paths; unreadable files become error documents."""
    documents: list[Document] = []
    for path in manifest_files(paths):
        try:
            text = path.read_text()
        except OSError as exc:
            documents.append(Document(str(path), 0, error=f"cannot read: {exc.strerror}"))
            continue
        documents += parse_documents(text, str(path))
    return documents


def _one_line(text: str) -> str:
    return " ".join(text.split())
