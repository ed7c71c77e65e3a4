"""Label and field selectors, parsed and matched the way the apiserver does it.

Label selectors follow ``k8s.io/apimachinery/pkg/labels``: comma-separated requirements,
each one of ``key``, ``!key``, ``key=value``, ``key==value``, ``key!=value``,
``key in (a,b)``, ``key notin (a,b)``, ``key>1``, ``key<1``. ``!=`` and ``notin`` also
match objects without the key, exactly as on a real server.

Field selectors accept ``=``, ``==`` and ``!=`` on a per-resource set of fields. A real
server rejects fields it does not index (400 BadRequest); so do we, so that a client
that works here does not break on a real cluster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    """A selector string the apiserver would answer with 400 BadRequest."""


_PREFIX = r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
_KEY = re.compile(rf"^{_PREFIX}[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class Requirement:
    """One requirement of a label selector: ``key <op> values``."""

    key: str
    op: str  # one of: exists, !exists, =, !=, in, notin, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.op:
            case "exists":
                return present
            case "!exists":
                return not present
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "gt" | "lt":
                try:
                    number = int(value) if value is not None else None
                except ValueError:
                    return False
                if number is None:
                    return False
                bound = int(self.values[0])
                return number > bound if self.op == "gt" else number < bound
        raise AssertionError(self.op)  # pragma: no cover


@dataclass(frozen=True)
class LabelSelector:
    """A parsed label selector; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(req.matches(labels) for req in self.requirements)

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        if not text or not text.strip():
            return cls()
        return cls(tuple(_parse_requirement(part) for part in _split_top_level(text)))


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced parentheses in {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise SelectorError(f"unbalanced parentheses in {text!r}")
    parts.append("".join(current))
    return [part.strip() for part in parts]


_SET_RE = re.compile(r"^(?P<key>[^\s!=<>()]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_CMP_RE = re.compile(r"^(?P<key>[^\s!=<>()]+)\s*(?P<op>==|!=|=|>|<)\s*(?P<value>[^\s!=<>(),]*)$")


def _check_key(key: str) -> str:
    if len(key) > 316 or not _KEY.match(key):
        raise SelectorError(f"invalid label key {key!r}")
    return key


def _check_value(value: str) -> str:
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError(f"invalid label value {value!r}")
    return value


def _parse_requirement(part: str) -> Requirement:
    if not part:
        raise SelectorError("empty requirement in a label selector")
    if match := _SET_RE.match(part):
        values = tuple(_check_value(v.strip()) for v in match["values"].split(","))
        return Requirement(_check_key(match["key"]), match["op"], values)
    if match := _CMP_RE.match(part):
        op = {"==": "=", ">": "gt", "<": "lt"}.get(match["op"], match["op"])
        value = match["value"]
        if op in ("gt", "lt") and not re.fullmatch(r"-?\d+", value):
            raise SelectorError(f"{part!r}: {match['op']} needs an integer")
        return Requirement(_check_key(match["key"]), op, (_check_value(value),))
    if part.startswith("!"):
        return Requirement(_check_key(part[1:].strip()), "!exists")
    return Requirement(_check_key(part), "exists")


# Fields a real apiserver indexes, per (group, plural); metadata.name/namespace everywhere.
_COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
_EXTRA_FIELDS: dict[tuple[str, str], frozenset[str]] = {
    ("", "events"): frozenset(
        {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
    ("events.k8s.io", "events"): frozenset(
        {"regarding.kind", "regarding.namespace", "regarding.name", "reason", "type"}
    ),
    ("batch", "jobs"): frozenset({"status.successful"}),
    ("", "namespaces"): frozenset({"status.phase"}),
    ("", "pods"): frozenset(
        {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        }
    ),
    ("", "secrets"): frozenset({"type"}),
}


@dataclass(frozen=True)
class FieldRequirement:
    """One ``path=value`` or ``path!=value`` term of a field selector."""

    path: str
    value: str
    negated: bool

    def matches(self, obj: Mapping[str, Any]) -> bool:
        actual = _field_value(obj, self.path)
        return (actual != self.value) if self.negated else (actual == self.value)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, Mapping) else None
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


@dataclass(frozen=True)
class FieldSelector:
    """A parsed field selector; the empty selector matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(req.matches(obj) for req in self.requirements)

    @classmethod
    def parse(cls, text: str | None, *, group: str, plural: str) -> FieldSelector:
        if not text or not text.strip():
            return cls()
        allowed = _COMMON_FIELDS | _EXTRA_FIELDS.get((group, plural), frozenset())
        requirements: list[FieldRequirement] = []
        for part in text.split(","):
            part = part.strip()
            match = re.fullmatch(r"([^=!\s]+)\s*(==|!=|=)\s*(.*)", part)
            if match is None:
                raise SelectorError(f"invalid field selector term {part!r}")
            path, op, value = match.groups()
            if path not in allowed:
                raise SelectorError(f'field label not supported: "{path}"')
            requirements.append(FieldRequirement(path, value, negated=op == "!="))
        return cls(tuple(requirements))
