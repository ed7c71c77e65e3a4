"""The live table of `recluster dev`: what `kubectl get ctr` would show, plus the last result,
and under it where each trigger's latest cluster map and report are."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

COLUMNS = ("NAME", "TYPE", "STATUS", "SCHEDULE", "NEXT", "LAST", "EXEC", "FAIL", "CLUSTERS")


def _ago(value: Any, now: datetime) -> str:
    if not value:
        return "-"
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    seconds = int((moment - now).total_seconds())
    return f"in {seconds}s" if seconds >= 0 else f"{-seconds}s ago"


def rows(triggers: Iterable[Mapping[str, Any]], now: datetime | None = None) -> list[list[str]]:
    now = now or datetime.now(UTC)
    table = []
    for trigger in sorted(triggers, key=lambda t: str(t["metadata"]["name"])):
        status = trigger.get("status") or {}
        history = status.get("history") or []
        last_result = next((h for h in history if h.get("status") == "succeeded"), None)
        clusters = (
            f"{last_result.get('num_clusters')} of {last_result.get('num_documents')} docs"
            if last_result
            else "-"
        )
        table.append(
            [
                str(trigger["metadata"]["name"]),
                str(trigger["spec"]["trigger_type"]),
                str(status.get("status") or "-"),
                str(status.get("schedule") or "-"),
                _ago(status.get("next_scheduled_at"), now),
                _ago(status.get("last_triggered_at"), now),
                str(status.get("execution_count", 0)),
                str(status.get("consecutive_failures", 0)),
                clusters,
            ]
        )
    return table


def render(
    triggers: Iterable[Mapping[str, Any]],
    now: datetime | None = None,
    maps: Mapping[str, str] | None = None,
) -> str:
    """The table; `maps` (trigger name -> latest map's location) adds the lines under it."""
    body = rows(triggers, now)
    widths = [max(len(r[i]) for r in [list(COLUMNS), *body]) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in
             [list(COLUMNS), *body]]  # fmt: skip
    if maps:
        lines.append("")
        lines.append("latest cluster maps (report.html beside each):")
        width = max(len(name) for name in maps)
        lines += [f"  {name.ljust(width)}  {maps[name]}" for name in sorted(maps)]
    return "\n".join(line.rstrip() for line in lines)
