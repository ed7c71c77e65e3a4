"""Fire-time previews for `recluster next`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from .api.trigger import ClusterTrigger
from .core.schedule import cron_fires, interval_fires, validate_timezone


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def preview(body: dict[str, Any], after: datetime, count: int) -> Iterator[str]:
    """Lines `name  local-time (zone)  utc-time` for the next fires of one trigger."""
    try:
        trigger = ClusterTrigger.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = f"invalid manifest ({where}: {first['msg']}); run recluster validate"
        raise ValueError(msg) from None
    name = trigger.metadata.name or ""
    schedule = trigger.spec.schedule_config
    if trigger.spec.trigger_type == "cron":
        assert schedule.cron_expression is not None and schedule.timezone is not None
        zone = validate_timezone(schedule.timezone)
        times = cron_fires(schedule.cron_expression, schedule.timezone, after, count)
        label = schedule.timezone
    elif trigger.spec.trigger_type == "interval":
        assert schedule.interval_seconds is not None
        zone = validate_timezone("UTC")
        # As if created at `after`: with start_immediately, `after` itself is the first fire.
        times = interval_fires(
            after,
            schedule.interval_seconds,
            after - timedelta(microseconds=1),
            count,
            bool(schedule.start_immediately),
        )
        label = "UTC"
    else:
        return
    for moment in times:
        local = moment.astimezone(zone).isoformat(timespec="seconds")
        yield f"{name}  {local} ({label})  {_utc(moment)}"
