"""An audit log of every request, in the terms RBAC rules are written in.

A later test compares what the operator actually asked of the API with what the Helm
chart's Role/ClusterRole grants, so each record carries exactly the RBAC coordinates:
API group, resource, subresource, verb, namespace, plus who asked.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class AuditRecord:
    """One request. ``resource`` is empty for non-resource URLs (then ``path`` says which)."""

    verb: str  # get, list, watch, create, update, patch, delete, deletecollection
    api_group: str
    resource: str
    subresource: str
    namespace: str | None
    name: str | None
    user: str  # from the bearer token (see EmulatedCluster.add_token) or system:anonymous
    user_agent: str
    code: int
    path: str = ""

    @property
    def rule(self) -> tuple[str, str, str]:
        """``(apiGroup, resource[/subresource], verb)`` as it would appear in a Role."""
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return (self.api_group, resource, self.verb)


class AuditLog:
    """Recent records in full (bounded) plus a complete count per distinct request shape."""

    def __init__(self, max_records: int | None = 100_000) -> None:
        self._records: collections.deque[AuditRecord] = collections.deque(maxlen=max_records)
        self._counts: collections.Counter[AuditRecord] = collections.Counter()

    def append(self, record: AuditRecord) -> None:
        self._records.append(record)
        # Names make the counter grow with the number of objects; shapes do not need them.
        self._counts[
            AuditRecord(
                record.verb,
                record.api_group,
                record.resource,
                record.subresource,
                record.namespace,
                None,
                record.user,
                record.user_agent,
                record.code,
                record.path,
            )
        ] += 1

    def __iter__(self) -> Iterator[AuditRecord]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        self._records.clear()
        self._counts.clear()

    def records(
        self, *, user_agent: str | None = None, user: str | None = None
    ) -> list[AuditRecord]:
        """Recent records, optionally only those of one client (a user-agent prefix or user)."""
        return [r for r in self._records if _wanted(r, user_agent, user)]

    def rules(
        self, *, user_agent: str | None = None, user: str | None = None, resources_only: bool = True
    ) -> set[tuple[str, str, str]]:
        """Every distinct ``(apiGroup, resource[/subresource], verb)`` used since the start.

        Complete even when old records were dropped from the bounded list.
        """
        return {
            shape.rule
            for shape in self._counts
            if _wanted(shape, user_agent, user) and (shape.resource or not resources_only)
        }

    def counts(self) -> dict[AuditRecord, int]:
        """How often each request shape (a record without the object name) occurred."""
        return dict(self._counts)


def _wanted(record: AuditRecord, user_agent: str | None, user: str | None) -> bool:
    if user_agent is not None and not record.user_agent.startswith(user_agent):
        return False
    return user is None or record.user == user


def format_rules(rules: Iterable[tuple[str, str, str]]) -> str:
    """A readable, sorted listing of rules (for assertion messages and the CLI)."""
    return "\n".join(f"{g or '<core>'}\t{r}\t{v}" for g, r, v in sorted(rules))
