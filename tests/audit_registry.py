"""What the operator and the gateway asked of the emulated API, across the whole test run.

Every integration test that runs them records its emulator's audit log here;
`tests/test_rbac.py` (run last) compares the union with the Helm chart's RBAC.
"""

from __future__ import annotations

from typing import Any

Rule = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)

USED: dict[str, set[Rule]] = {"operator": set(), "gateway": set()}
SOURCES: dict[str, int] = {"operator": 0, "gateway": 0}


def component(user_agent: str) -> str | None:
    if user_agent.startswith(("recluster-operator", "kopf/")):
        return "operator"
    if user_agent.startswith("recluster-gateway"):
        return "gateway"
    return None


def record(cluster: Any) -> None:
    """Add the rules an emulated cluster saw, by component (by the client's user agent)."""
    seen = set()
    for entry in cluster.audit.counts():
        who = component(entry.user_agent)
        if who is not None and entry.resource and entry.code < 500:
            USED[who].add(entry.rule)
            seen.add(who)
    for who in seen:
        SOURCES[who] += 1
