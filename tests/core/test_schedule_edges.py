"""Fire times at the edges: the repeated hour seen from its end, the exact cost of the
backward search, and interval arithmetic that stays exact across the whole datetime range
(tests/core/test_schedule.py has the rules and the property tests).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, tzinfo
from typing import Any

import pytest
from test_schedule import BERLIN, LORD_HOWE, NY, utc

import recluster.core.schedule as schedule_module
from recluster.core.schedule import (
    ScheduleError,
    cron_fires,
    latest_cron_fire,
    latest_interval_fire,
    next_cron_fire,
    next_interval_fire,
    validate_cron_expression,
    validate_timezone,
)


@pytest.fixture(autouse=True)
def _parse_afresh() -> None:
    """Parse each expression here anew: a parse cached by an earlier test (or by the
    process mutmut forks its workers from) would hide the parser from these tests."""
    schedule_module._parse_cron.cache_clear()


def test_the_latest_fire_of_a_wildcard_job_can_be_a_second_occurrence_further_back() -> None:
    """Until 01:20 EST: 01:45 EDT (05:45Z) is found first, but 01:15 EST (06:15Z) is later."""
    found = latest_cron_fire("*/15 * * * *", NY, utc(2026, 11, 1), utc(2026, 11, 1, 6, 20))
    assert found == utc(2026, 11, 1, 6, 15)


@pytest.mark.parametrize(
    ("after", "until", "walked", "found"),
    [
        # from the last wall time at or before until, down to the first that cannot fire later
        (utc(2026, 1, 1, 11), utc(2026, 1, 1, 12, 0, 30, 500), [(12, 0), (11, 59)], (12, 0)),
        # nothing in (after, until]: the walk stops at after's own wall time
        (utc(2026, 1, 1, 11, 58), utc(2026, 1, 1, 11, 58, 30), [(11, 58)], None),
        # an empty range is not searched at all
        (utc(2026, 1, 1, 11, 58), utc(2026, 1, 1, 11, 58), [], None),
    ],
)
def test_latest_cron_fire_walks_only_the_wall_times_that_can_matter(
    monkeypatch: pytest.MonkeyPatch,
    after: datetime,
    until: datetime,
    walked: list[tuple[int, int]],
    found: tuple[int, int] | None,
) -> None:
    """Counted, not timed: the wall times the backward search asks croniter for."""
    seen: list[datetime] = []
    real = schedule_module._walls

    def counting(spec: Any, start: datetime, *, backwards: bool) -> Iterator[datetime]:
        for wall in real(spec, start, backwards=backwards):
            seen.append(wall)
            yield wall

    monkeypatch.setattr(schedule_module, "_walls", counting)
    result = latest_cron_fire("* * * * *", "UTC", after, until)
    assert result == (None if found is None else utc(2026, 1, 1, *found))
    assert [(wall.hour, wall.minute) for wall in seen] == walked


# anchor + k * 7 s for k = 45072337371 is 9998-12-31T23:59:57: one microsecond before it,
# the elapsed time (3.2e17 us) is beyond a float's exact integers (2**53).
ANCHOR = utc(1, 1, 1)
SLOT = utc(9998, 12, 31, 23, 59, 57)
JUST_BEFORE = SLOT - timedelta(microseconds=1)


def test_intervals_are_exact_across_the_whole_datetime_range() -> None:
    assert next_interval_fire(ANCHOR, 7, JUST_BEFORE) == SLOT
    assert latest_interval_fire(ANCHOR, 7, ANCHOR, JUST_BEFORE) == SLOT - timedelta(seconds=7)
    assert latest_interval_fire(ANCHOR, 7, ANCHOR, SLOT) == SLOT


def test_every_minute_of_the_spring_forward_gap_fires_at_its_end_exactly() -> None:
    """02:00-02:59 do not exist on 2026-03-08 in New York: each runs at 03:00 EDT, to the second."""
    after = utc(2026, 3, 7, 12)
    fires = {minute: next_cron_fire(f"{minute} 2 * * *", NY, after) for minute in range(60)}
    assert fires == dict.fromkeys(range(60), utc(2026, 3, 8, 7))


@pytest.mark.parametrize("expression", ["0 0 31 1 *", "0 0 29 2 *", "0 0 30 4 *"])
def test_the_last_day_a_month_can_have_is_accepted(expression: str) -> None:
    validate_cron_expression(expression)
    assert next_cron_fire(expression, "UTC", utc(2027, 6, 1)).day == int(expression.split()[2])


def test_question_marks_stand_for_any_day_and_a_bare_start_steps_to_the_end() -> None:
    """robfig/cron: '?' is '*' in the two day fields; '5/20' means '5-59/20'."""
    mondays = cron_fires("0 0 ? * MON", "UTC", utc(2026, 1, 1), 2)
    assert mondays == [utc(2026, 1, 5), utc(2026, 1, 12)]
    firsts = cron_fires("0 0 1 * ?", "UTC", utc(2026, 1, 1), 2)
    assert firsts == [utc(2026, 2, 1), utc(2026, 3, 1)]
    steps = cron_fires("5/20 * * * *", "UTC", utc(2026, 1, 1), 4)
    assert steps == [utc(2026, 1, 1, 0, m) for m in (5, 25, 45)] + [utc(2026, 1, 1, 1, 5)]


def test_a_value_that_is_not_a_string_is_refused_naming_it() -> None:
    """YAML gives a number where a string belongs (`schedule: 5`, `timezone: 5`): the
    error names the value and the reason, never a TypeError from deeper down."""
    with pytest.raises(ScheduleError) as caught:
        validate_cron_expression(5)  # type: ignore[arg-type]
    assert str(caught.value) == "invalid cron expression 5: it is not a string"
    with pytest.raises(ScheduleError) as caught:
        validate_timezone(5)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "unknown time zone 5: use an IANA name such as 'UTC' or 'Europe/Berlin'"
    )


class _NoOffset(tzinfo):
    """A tzinfo that knows no offset: Python counts such a datetime as naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str:
        return "nowhere"


def test_a_datetime_whose_zone_gives_no_offset_is_refused_as_naive() -> None:
    """Aware means tzinfo set *and* utcoffset() not None (the datetime docs' definition)."""
    with pytest.raises(ValueError, match=r"^after must be a timezone-aware datetime, got naive"):
        next_cron_fire("* * * * *", "UTC", datetime(2026, 1, 1, tzinfo=_NoOffset()))


@pytest.fixture
def machine_zone() -> Iterator[Any]:
    """Set the process's local time zone (TZ + tzset) for a test, and restore it."""
    saved = os.environ.get("TZ")

    def use(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield use
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


def _fires_near_transitions() -> list[Any]:
    return [
        next_cron_fire("30 2 * * *", BERLIN, utc(2026, 3, 28, 12)),  # 02:30 is skipped
        cron_fires("0 * * * *", NY, utc(2026, 11, 1, 4), 4),  # 01:00 happens twice
        cron_fires("15 2 * * *", LORD_HOWE, utc(2026, 10, 2), 3),  # a 30-minute gap
        latest_cron_fire("*/15 * * * *", NY, utc(2026, 11, 1), utc(2026, 11, 1, 6, 20)),
    ]


def test_fire_times_do_not_depend_on_the_machines_local_time_zone(machine_zone: Any) -> None:
    """The operator's pod may run with any TZ: a conversion through local time (astimezone()
    or fromtimestamp() without a zone) would move every fire time by the node's offset."""
    machine_zone("UTC")
    expected = _fires_near_transitions()
    assert expected[0] == utc(2026, 3, 29, 1)  # the gap's end: 03:00 CEST
    for zone in ("America/Sao_Paulo", "Asia/Kathmandu", "Australia/Lord_Howe"):
        machine_zone(zone)
        assert time.localtime(0).tm_gmtoff != 0, zone
        assert _fires_near_transitions() == expected, zone
