"""The three PATCH flavours of the Kubernetes API, as pure functions on JSON values.

* JSON merge patch (RFC 7386): dicts merge recursively, ``null`` deletes, anything
  else (lists included) replaces.
* Strategic merge patch: the real server merges some lists by a patch key taken from
  the Go types (e.g. containers by ``name``). We have no Go types, so lists are
  replaced, as in a merge patch. kopf and our operator never rely on list merging.
* JSON patch (RFC 6902): ``add``, ``remove``, ``replace``, ``move``, ``copy``, ``test``.
  kopf guards its finalizer edits with ``test /metadata/resourceVersion``; a failed
  ``test`` must answer 422 (kopf retries on that, not on other codes).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any


class JsonPatchError(ValueError):
    """A JSON patch that cannot be applied (bad operation or path): 422 on a server."""


class JsonPatchTestFailed(JsonPatchError):
    """A ``test`` operation did not hold."""


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch and return a new value (inputs are not mutated)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch without Go type information: a merge patch minus directives."""
    if isinstance(patch, Mapping):
        patch = {k: v for k, v in patch.items() if not str(k).startswith("$")}
    return merge_patch(target, patch)


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise JsonPatchError(f"invalid JSON pointer {pointer!r}")
    return [_unescape(token) for token in pointer[1:].split("/")]


def _list_index(container: list[Any], token: str, *, for_insert: bool) -> int:
    if for_insert and token == "-":
        return len(container)
    if not token.isdigit() or (token.startswith("0") and token != "0"):
        raise JsonPatchError(f"invalid list index {token!r}")
    index = int(token)
    limit = len(container) if for_insert else len(container) - 1
    if index > limit:
        raise JsonPatchError(f"list index {index} out of range")
    return index


def _resolve(doc: Any, tokens: Sequence[str]) -> Any:
    current = doc
    for token in tokens:
        if isinstance(current, dict):
            if token not in current:
                raise JsonPatchError(f"path element {token!r} not found")
            current = current[token]
        elif isinstance(current, list):
            current = current[_list_index(current, token, for_insert=False)]
        else:
            raise JsonPatchError(f"cannot traverse into a scalar at {token!r}")
    return current


def _add(doc: Any, tokens: Sequence[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, last, for_insert=True), value)
    else:
        raise JsonPatchError("cannot add into a scalar")
    return doc


def _remove(doc: Any, tokens: Sequence[str]) -> Any:
    if not tokens:
        raise JsonPatchError("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchError(f"path element {last!r} not found")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_list_index(parent, last, for_insert=False)]
    else:
        raise JsonPatchError("cannot remove from a scalar")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch atomically and return a new document."""
    if not isinstance(operations, list):
        raise JsonPatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, Mapping) or "op" not in operation:
            raise JsonPatchError(f"invalid operation {operation!r}")
        op = operation["op"]
        tokens = _split_pointer(str(operation.get("path", "")))
        if op == "add":
            doc = _add(doc, tokens, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            doc = _remove(doc, tokens)
        elif op == "replace":
            _resolve(doc, tokens)  # must exist
            if tokens:
                doc = _remove(doc, tokens)
            doc = _add(doc, tokens, copy.deepcopy(operation.get("value")))
        elif op in ("move", "copy"):
            source = _split_pointer(str(operation.get("from", "")))
            value = copy.deepcopy(_resolve(doc, source))
            if op == "move":
                if tokens[: len(source)] == source and len(tokens) > len(source):
                    raise JsonPatchError("cannot move a value into its own child")
                doc = _remove(doc, source)
            doc = _add(doc, tokens, value)
        elif op == "test":
            try:
                actual = _resolve(doc, tokens)
            except JsonPatchError as e:
                raise JsonPatchTestFailed(f"test failed: {e}") from e
            if actual != operation.get("value"):
                raise JsonPatchTestFailed(
                    f"test failed at {operation.get('path')!r}: "
                    f"expected {operation.get('value')!r}, found {actual!r}"
                )
        else:
            raise JsonPatchError(f"unknown operation {op!r}")
    return doc
