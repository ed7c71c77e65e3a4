"""Tests of the pure schedule core: exact instants around DST, properties against oracles.

The oracles read expressions by hand (Reading below), not with croniter, which the
implementation itself uses: a croniter bug shared by both would pass unseen.
"""

from __future__ import annotations

import functools
import itertools
import zoneinfo
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

import pytest
from croniter import croniter
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import recluster.core.schedule as schedule_module
from recluster.core.schedule import (
    ScheduleError,
    cron_fires,
    cron_fires_between,
    interval_fires,
    latest_cron_fire,
    latest_interval_fire,
    next_cron_fire,
    next_interval_fire,
    validate_cron_expression,
    validate_timezone,
)

NY = "America/New_York"
BERLIN = "Europe/Berlin"
LORD_HOWE = "Australia/Lord_Howe"


def utc(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def iso(values: list[datetime]) -> list[str]:
    return [value.strftime("%Y-%m-%dT%H:%MZ") for value in values]


def between(expression: str, zone: str, after: datetime, until: datetime) -> list[str]:
    return iso(cron_fires_between(expression, zone, after, until, 1000))


# --- America/New_York ------------------------------------------------------------------


def test_new_york_spring_forward_fixed_hour_runs_once_at_gap_end() -> None:
    fires = cron_fires("30 2 * * *", NY, utc(2026, 3, 7), 3)
    # 02:30 EST, then 02:30 does not exist -> 03:00 EDT, then 02:30 EDT.
    assert iso(fires) == ["2026-03-07T07:30Z", "2026-03-08T07:00Z", "2026-03-09T06:30Z"]
    assert fires[1].astimezone(zoneinfo.ZoneInfo(NY)).strftime("%H:%M %Z") == "03:00 EDT"
    assert all(fire.tzinfo is UTC for fire in fires)


def test_new_york_spring_forward_slots_in_one_gap_collapse() -> None:
    day = (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))  # local midnight to midnight
    assert between("0,30 2 * * *", NY, *day) == ["2026-03-08T07:00Z"]
    # 03:00 EDT is both the gap end and a real slot: still one firing.
    assert between("0,30 2,3 * * *", NY, *day) == ["2026-03-08T07:00Z", "2026-03-08T07:30Z"]


def test_new_york_spring_forward_wildcard_hour_skips_the_gap() -> None:
    day = (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))
    fires = between("*/15 * * * *", NY, *day)
    assert len(fires) == 23 * 4
    assert fires[5:9] == [
        "2026-03-08T06:30Z",  # 01:30 EST
        "2026-03-08T06:45Z",  # 01:45 EST
        "2026-03-08T07:00Z",  # 03:00 EDT: 02:00-02:45 never happened
        "2026-03-08T07:15Z",
    ]
    assert len(between("0 * * * *", NY, *day)) == 23


def test_new_york_fall_back_fixed_hour_runs_once_at_first_occurrence() -> None:
    day = (utc(2026, 11, 1, 4), utc(2026, 11, 2, 5))
    assert between("30 1 * * *", NY, *day) == ["2026-11-01T05:30Z"]  # 01:30 EDT
    assert iso(cron_fires("30 1 * * *", NY, utc(2026, 10, 31), 3)) == [
        "2026-10-31T05:30Z",
        "2026-11-01T05:30Z",
        "2026-11-02T06:30Z",
    ]


def test_new_york_fall_back_wildcard_hour_fires_at_both_occurrences() -> None:
    fires = between("*/30 * * * *", NY, utc(2026, 11, 1, 4, 45), utc(2026, 11, 1, 7))
    assert fires == [
        "2026-11-01T05:00Z",  # 01:00 EDT
        "2026-11-01T05:30Z",  # 01:30 EDT
        "2026-11-01T06:00Z",  # 01:00 EST
        "2026-11-01T06:30Z",  # 01:30 EST
        "2026-11-01T07:00Z",  # 02:00 EST
    ]
    assert len(between("0 * * * *", NY, utc(2026, 11, 1, 3, 59), utc(2026, 11, 2, 4, 59))) == 25


def test_fold_one_instant_has_an_earlier_wall_time_than_after() -> None:
    # after = 01:45 EDT; the next quarter hour is 01:00 EST, an earlier wall time.
    after = utc(2026, 11, 1, 5, 45)
    assert next_cron_fire("0 * * * *", NY, after) == utc(2026, 11, 1, 6)
    assert next_cron_fire("*/15 * * * *", NY, after) == utc(2026, 11, 1, 6)
    # A fixed-hour job does not repeat 01:00 or 01:30.
    assert next_cron_fire("0,30 1 * * *", NY, after) == utc(2026, 11, 2, 6)


# --- Europe/Berlin ---------------------------------------------------------------------


def test_berlin_spring_forward() -> None:
    # 2026-03-29 02:00 CET -> 03:00 CEST at 01:00Z.
    assert iso(cron_fires("30 2 * * *", BERLIN, utc(2026, 3, 28), 3)) == [
        "2026-03-28T01:30Z",
        "2026-03-29T01:00Z",
        "2026-03-30T00:30Z",
    ]
    day = (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert between("0 2,3 * * *", BERLIN, *day) == ["2026-03-29T01:00Z"]
    assert between("*/30 * * * *", BERLIN, utc(2026, 3, 29, 0), utc(2026, 3, 29, 1, 30)) == [
        "2026-03-29T00:30Z",  # 01:30 CET
        "2026-03-29T01:00Z",  # 03:00 CEST
        "2026-03-29T01:30Z",
    ]


def test_berlin_fall_back() -> None:
    # 2026-10-25 03:00 CEST -> 02:00 CET at 01:00Z; 02:00-02:59 happens twice.
    day = (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert between("30 2 * * *", BERLIN, *day) == ["2026-10-25T00:30Z"]
    assert between("*/30 * * * *", BERLIN, utc(2026, 10, 24, 23, 45), utc(2026, 10, 25, 2)) == [
        "2026-10-25T00:00Z",  # 02:00 CEST
        "2026-10-25T00:30Z",  # 02:30 CEST
        "2026-10-25T01:00Z",  # 02:00 CET
        "2026-10-25T01:30Z",  # 02:30 CET
        "2026-10-25T02:00Z",  # 03:00 CET
    ]


def test_lord_howe_half_hour_shifts() -> None:
    # 2026-10-04 02:00 +10:30 -> 02:30 +11 (at 15:30Z the day before).
    spring = (utc(2026, 10, 3, 14), utc(2026, 10, 3, 16))
    assert between("15 2 * * *", LORD_HOWE, *spring) == ["2026-10-03T15:30Z"]
    assert between("*/15 * * * *", LORD_HOWE, *spring)[4:7] == [
        "2026-10-03T15:15Z",  # 01:45 +10:30
        "2026-10-03T15:30Z",  # 02:30 +11: 02:00 and 02:15 never happened
        "2026-10-03T15:45Z",
    ]
    # 2026-04-05 02:00 +11 -> 01:30 +10:30 (at 15:00Z the day before).
    autumn = (utc(2026, 4, 4, 14), utc(2026, 4, 4, 16))
    assert between("45 1 * * *", LORD_HOWE, *autumn) == ["2026-04-04T14:45Z"]
    assert between("*/15 * * * *", LORD_HOWE, *autumn) == [
        "2026-04-04T14:15Z",
        "2026-04-04T14:30Z",
        "2026-04-04T14:45Z",
        "2026-04-04T15:00Z",  # 01:30 +10:30, the second time
        "2026-04-04T15:15Z",
        "2026-04-04T15:30Z",
        "2026-04-04T15:45Z",
        "2026-04-04T16:00Z",
    ]


def test_date_line_skip_of_a_whole_day() -> None:
    # Samoa skipped 2011-12-30 entirely (-10 -> +14 at 10:00Z).
    assert iso(cron_fires("0 12 * * *", "Pacific/Apia", utc(2011, 12, 29), 3)) == [
        "2011-12-29T22:00Z",
        "2011-12-30T10:00Z",  # the gap end, 00:00 on the 31st
        "2011-12-30T22:00Z",
    ]
    assert iso(cron_fires("0 * * * *", "Pacific/Apia", utc(2011, 12, 30, 8, 30), 3)) == [
        "2011-12-30T09:00Z",
        "2011-12-30T10:00Z",
        "2011-12-30T11:00Z",
    ]


# --- zones without DST, macros, calendar ------------------------------------------------


def test_utc_and_zones_without_dst() -> None:
    assert iso(cron_fires("*/20 * * * *", "UTC", utc(2026, 1, 1, 23, 50), 3)) == [
        "2026-01-02T00:00Z",
        "2026-01-02T00:20Z",
        "2026-01-02T00:40Z",
    ]
    assert iso(cron_fires("0 9 * * MON-FRI", "UTC", utc(2026, 1, 2, 10), 2)) == [
        "2026-01-05T09:00Z",  # Friday 2 January is past 09:00; Monday next
        "2026-01-06T09:00Z",
    ]
    assert iso(cron_fires("0 9 * * *", "Asia/Kolkata", utc(2026, 3, 8), 2)) == [
        "2026-03-08T03:30Z",
        "2026-03-09T03:30Z",
    ]
    assert next_cron_fire("0 0 * * *", "Asia/Tokyo", utc(2026, 6, 30, 15)) == utc(2026, 7, 1, 15)


def test_after_with_seconds_and_other_offsets() -> None:
    berlin = zoneinfo.ZoneInfo(BERLIN)
    after = datetime(2026, 6, 1, 10, 0, 30, 5, tzinfo=berlin)
    assert next_cron_fire("* * * * *", "UTC", after) == utc(2026, 6, 1, 8, 1)
    assert next_cron_fire("0 10 * * *", BERLIN, after) == utc(2026, 6, 2, 8)


@pytest.mark.parametrize(
    ("macro", "expansion"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ],
)
def test_macros_equal_their_expansion(macro: str, expansion: str) -> None:
    validate_cron_expression(macro)
    for zone in ("UTC", NY):
        start = utc(2026, 3, 1)
        assert cron_fires(macro, zone, start, 5) == cron_fires(expansion, zone, start, 5)


def test_macro_instants() -> None:
    assert next_cron_fire("@weekly", "UTC", utc(2026, 1, 1)) == utc(2026, 1, 4)  # a Sunday
    assert next_cron_fire("@yearly", NY, utc(2026, 1, 1)) == utc(2026, 1, 1, 5)
    # @hourly is a wildcard-hour job: 25 firings on the long day.
    assert len(between("@hourly", NY, utc(2026, 11, 1, 3, 59), utc(2026, 11, 2, 4, 59))) == 25
    assert len(between("@daily", NY, utc(2026, 11, 1, 3, 59), utc(2026, 11, 2, 4, 59))) == 1


def test_leap_day() -> None:
    assert iso(cron_fires("0 0 29 2 *", "UTC", utc(2025, 1, 1), 3)) == [
        "2028-02-29T00:00Z",
        "2032-02-29T00:00Z",
        "2036-02-29T00:00Z",
    ]
    # 2100 is not a leap year.
    assert next_cron_fire("0 0 29 2 *", "UTC", utc(2097, 1, 1)) == utc(2104, 2, 29)


def test_day_of_month_or_day_of_week() -> None:
    # Both restricted: either matches (Kubernetes and Vixie cron agree here).
    fires = cron_fires("0 0 13 * FRI", "UTC", utc(2026, 2, 1), 4)
    assert iso(fires) == [
        "2026-02-06T00:00Z",
        "2026-02-13T00:00Z",  # a Friday and the 13th: once
        "2026-02-20T00:00Z",
        "2026-02-27T00:00Z",
    ]
    assert next_cron_fire("0 0 13 3 FRI", "UTC", utc(2026, 3, 7)) == utc(2026, 3, 13)
    assert next_cron_fire("0 0 ? * FRI", "UTC", utc(2026, 2, 1)) == utc(2026, 2, 6)
    # Day 30 never happens in February, Fridays still do.
    assert next_cron_fire("0 0 30 2 FRI", "UTC", utc(2026, 2, 1)) == utc(2026, 2, 6)


def test_names_steps_and_ranges() -> None:
    assert next_cron_fire("5/20 * * * *", "UTC", utc(2026, 1, 1, 0, 46)) == utc(2026, 1, 1, 1, 5)
    assert next_cron_fire("0 0 1 jun-aug/2 *", "UTC", utc(2026, 1, 1)) == utc(2026, 6, 1)
    assert next_cron_fire("0 0 1 JUN-AUG/2 *", "UTC", utc(2026, 6, 1)) == utc(2026, 8, 1)
    assert next_cron_fire("0 12 * * sat,SUN", "UTC", utc(2026, 1, 1)) == utc(2026, 1, 3, 12)
    assert next_cron_fire("  0   0 * * *\n", "UTC", utc(2026, 1, 1)) == utc(2026, 1, 2)


# --- range queries ---------------------------------------------------------------------


def test_cron_fires_between_bounds_and_limit() -> None:
    after, until = utc(2026, 1, 1), utc(2026, 1, 1, 1)
    assert between("*/15 * * * *", "UTC", after, until) == [
        "2026-01-01T00:15Z",
        "2026-01-01T00:30Z",
        "2026-01-01T00:45Z",
        "2026-01-01T01:00Z",  # until is inclusive, after is not
    ]
    assert iso(cron_fires_between("*/15 * * * *", "UTC", after, until, 2)) == [
        "2026-01-01T00:15Z",
        "2026-01-01T00:30Z",
    ]
    assert cron_fires_between("*/15 * * * *", "UTC", after, until, 0) == []
    assert cron_fires_between("*/15 * * * *", "UTC", until, after, 10) == []
    # A years-long outage costs only `limit` steps.
    assert len(cron_fires_between("* * * * *", NY, utc(2020, 1, 1), utc(2028, 1, 1), 3)) == 3


def test_latest_cron_fire() -> None:
    assert latest_cron_fire("*/15 * * * *", "UTC", utc(2026, 1, 1), utc(2026, 1, 1, 1)) == utc(
        2026, 1, 1, 1
    )
    assert latest_cron_fire("*/15 * * * *", "UTC", utc(2026, 1, 1, 1), utc(2026, 1, 1, 1)) is None
    assert latest_cron_fire("0 0 1 1 *", "UTC", utc(2026, 1, 1), utc(2026, 12, 31)) is None
    assert latest_cron_fire("0 0 1 1 *", "UTC", utc(2025, 1, 1), utc(2026, 12, 31)) == utc(
        2026, 1, 1
    )
    # The wildcard job's last firing before 01:40 EST is the second 01:30.
    assert latest_cron_fire("*/30 * * * *", NY, utc(2026, 11, 1), utc(2026, 11, 1, 6, 40)) == utc(
        2026, 11, 1, 6, 30
    )
    # The fixed-hour job's only 01:30 that night is the first one.
    assert latest_cron_fire(
        "30 1 * * *", NY, utc(2026, 10, 31, 12), utc(2026, 11, 1, 6, 40)
    ) == utc(2026, 11, 1, 5, 30)
    assert latest_cron_fire("30 2 * * *", NY, utc(2026, 3, 8), utc(2026, 3, 8, 7)) == utc(
        2026, 3, 8, 7
    )


def test_latest_cron_fire_walks_back_from_until(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its cost does not grow with until - after: a few wall times back from until.

    Counted, not timed: a forward walk over these eight years would visit ~4.4M minutes.
    """
    walked: list[datetime] = []
    real = schedule_module._walls

    def counting(spec: Any, start: datetime, *, backwards: bool) -> Iterator[datetime]:
        for wall in real(spec, start, backwards=backwards):
            walked.append(wall)
            assert len(walked) <= 10, f"walked {len(walked)} wall times from {start}"
            yield wall

    monkeypatch.setattr(schedule_module, "_walls", counting)
    found = latest_cron_fire("* * * * *", NY, utc(2020, 1, 1), utc(2028, 5, 5, 5, 5, 30))
    assert found == utc(2028, 5, 5, 5, 5)
    assert walked, "the search went through the wall-time walk"
    walked.clear()
    found = latest_cron_fire("0 0 29 2 *", BERLIN, utc(2025, 1, 1), utc(2031, 1, 1))
    assert found == utc(2028, 2, 28, 23)


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("", "the expression is empty"),
        ("   ", "the expression is empty"),
        ("61 * * * *", "minute 61 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 0 32 * *", "day-of-month 32 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 7", "day-of-week 7 is out of range 0-6 (Sunday is 0 or SUN)"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-6"),
        ("0-60/5 * * * *", "minute 60 is out of range 0-59"),
        ("0 0 30 2 *", "it can never fire: day-of-month 30 never occurs in February"),
        ("0 0 31 4,6 *", "it can never fire: day-of-month 31 never occurs in April, June"),
        ("0 0 30,31 FEB *", "it can never fire: day-of-month 30,31 never occurs in February"),
        (
            "0 0 0 0 0 *",
            "it has 6 fields, but only the 5-field form 'minute hour day-of-month month "
            "day-of-week' is supported (no seconds or year field)",
        ),
        (
            "0 0 0 1 1 * 2026",
            "it has 7 fields, but only the 5-field form 'minute hour day-of-month month "
            "day-of-week' is supported (no seconds or year field)",
        ),
        ("0 0 *", "it has 3 fields, expected 5: minute hour day-of-month month day-of-week"),
        (
            "TZ=UTC 0 0 * * *",
            "a TZ= or CRON_TZ= prefix is not supported: use schedule_config.timezone instead",
        ),
        (
            "CRON_TZ=Europe/Berlin 0 0 * * *",
            "a TZ= or CRON_TZ= prefix is not supported: use schedule_config.timezone instead",
        ),
        ("@every 1h", "@every is not supported: use trigger_type 'interval' with interval_seconds"),
        (
            "@fortnightly",
            "unknown macro '@fortnightly': use one of @yearly, @annually, @monthly, @weekly, "
            "@daily, @midnight, @hourly",
        ),
        (
            "@DAILY",
            "unknown macro '@DAILY': use one of @yearly, @annually, @monthly, @weekly, "
            "@daily, @midnight, @hourly",
        ),
        ("*/0 * * * *", "minute step in '*/0' must be a positive whole number"),
        ("*/x * * * *", "minute step in '*/x' must be a positive whole number"),
        ("5-2 * * * *", "minute range '5-2' runs backwards (5 > 2)"),
        ("0 0 * * FRI-MON", "day-of-week range 'FRI-MON' runs backwards (5 > 1)"),
        ("1-2-3 * * * *", "minute item '1-2-3' has more than one '-'"),
        ("1/2/3 * * * *", "minute item '1/2/3' has more than one '/'"),
        ("1,,2 * * * *", "minute field '1,,2' has an empty list item"),
        ("-5 * * * *", "minute item '-5' has an empty value"),
        (
            "0 0 L * *",
            "day-of-month value 'L' in 'L' is not valid: expected a number 1-31 (the L, W and"
            " # extensions are not supported)",
        ),
        (
            "0 0 15W * *",
            "day-of-month value '15W' in '15W' is not valid: expected a number 1-31 (the L, W"
            " and # extensions are not supported)",
        ),
        (
            "0 0 * * 5#3",
            "day-of-week value '5#3' in '5#3' is not valid: expected a number 0-6 or a name "
            "such as SUN (the L, W and # extensions are not supported)",
        ),
        (
            "H 0 * * *",
            "minute value 'H' in 'H' is not valid: expected a number 0-59 (the H hash "
            "extension is not supported)",
        ),
        (
            "0 0 * * FOO",
            "day-of-week value 'FOO' in 'FOO' is not valid: expected a number 0-6 or a name "
            "such as SUN",
        ),
        ("0 0 X * *", "day-of-month value 'X' in 'X' is not valid: expected a number 1-31"),
        (
            "0 0 * * MON-FOO",
            "day-of-week value 'FOO' in 'MON-FOO' is not valid: expected a number 0-6 or a name "
            "such as SUN",
        ),
        ("0 MON * * *", "hour value 'MON' in 'MON' is not valid: expected a number 0-23"),
        ("? * * * *", "'?' is only allowed in day-of-month and day-of-week, not minute"),
    ],
)
def test_invalid_cron_expressions(expression: str, reason: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        validate_cron_expression(expression)
    message = str(caught.value)
    assert message == f"invalid cron expression {expression!r}: {reason}"
    assert "\n" not in message
    # Every entry point validates the same way.
    with pytest.raises(ScheduleError, match="invalid cron expression"):
        next_cron_fire(expression, "UTC", utc(2026, 1, 1))


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "*/5 * * * *",
        "0 0 29 2 *",
        "0 0 31 1-12 *",
        "0 0 30 2,3 *",
        "0 0 30 2 MON",
        "0 9-17/2 * * MON-FRI",
        "0,15,30,45 0-23 1-31 JAN-DEC SUN-SAT",
        "0 0 1 jan,Jul *",
        "0 0 ? * ?",
        "59/15 * * * *",
        "@midnight",
    ],
)
def test_valid_cron_expressions(expression: str) -> None:
    validate_cron_expression(expression)


def test_validate_timezone() -> None:
    assert validate_timezone("Europe/Berlin") == zoneinfo.ZoneInfo("Europe/Berlin")
    assert validate_timezone("UTC").key == "UTC"
    assert validate_timezone("America/Argentina/Buenos_Aires").key.endswith("Buenos_Aires")
    assert validate_timezone("Etc/GMT+5").key == "Etc/GMT+5"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Mars/Olympus",
        "/etc/localtime",
        "/usr/share/zoneinfo/UTC",
        "../zoneinfo/UTC",
        "Europe/../UTC",
        "Europe/",
        "localtime",
        "posixrules",
        "Europe Berlin",
        "UTC\n",
    ],
)
def test_validate_timezone_rejects(name: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        validate_timezone(name)
    assert str(caught.value) == (
        f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/Berlin'"
    )
    with pytest.raises(ScheduleError, match="unknown time zone"):
        next_cron_fire("* * * * *", name, utc(2026, 1, 1))


NAIVE = datetime(2026, 1, 1)
AWARE = utc(2026, 1, 1)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: next_cron_fire("* * * * *", "UTC", NAIVE), "after"),
        (lambda: cron_fires("* * * * *", "UTC", NAIVE, 1), "after"),
        (lambda: cron_fires_between("* * * * *", "UTC", NAIVE, AWARE, 1), "after"),
        (lambda: cron_fires_between("* * * * *", "UTC", AWARE, NAIVE, 1), "until"),
        (lambda: latest_cron_fire("* * * * *", "UTC", AWARE, NAIVE), "until"),
        (lambda: latest_cron_fire("* * * * *", "UTC", NAIVE, AWARE), "after"),
        (lambda: next_interval_fire(NAIVE, 60, AWARE), "anchor"),
        (lambda: next_interval_fire(AWARE, 60, NAIVE), "after"),
        (lambda: interval_fires(NAIVE, 60, AWARE, 1), "anchor"),
        (lambda: interval_fires(AWARE, 60, NAIVE, 1), "after"),
        (lambda: latest_interval_fire(NAIVE, 60, AWARE, AWARE), "anchor"),
        (lambda: latest_interval_fire(AWARE, 60, NAIVE, AWARE), "after"),
        (lambda: latest_interval_fire(AWARE, 60, AWARE, NAIVE), "until"),
    ],
)
def test_naive_datetimes_are_rejected_naming_the_argument(
    call: Callable[[], object], argument: str
) -> None:
    with pytest.raises(ValueError) as caught:
        call()
    assert str(caught.value) == (
        f"{argument} must be a timezone-aware datetime, got naive {NAIVE!r}"
    )


def test_bad_counts_and_intervals() -> None:
    with pytest.raises(ValueError, match=r"^count must be a non-negative integer, got -1$"):
        cron_fires("* * * * *", "UTC", AWARE, -1)
    with pytest.raises(ValueError, match=r"^count must be a non-negative integer, got True$"):
        interval_fires(AWARE, 60, AWARE, True)  # type: ignore[arg-type]
    assert interval_fires(AWARE, 60, AWARE, 0) == []
    with pytest.raises(ValueError, match=r"^limit must be a non-negative integer, got -1$"):
        cron_fires_between("* * * * *", "UTC", AWARE, AWARE, -1)
    assert cron_fires("* * * * *", "UTC", AWARE, 0) == []
    for bad in (0, -60, True):
        with pytest.raises(ScheduleError, match="interval_seconds must be a positive"):
            next_interval_fire(AWARE, bad, AWARE)


# --- interval triggers -----------------------------------------------------------------


def test_interval_defaults_do_not_fire_at_the_anchor() -> None:
    anchor = utc(2026, 1, 1, 12)
    assert interval_fires(anchor, 60, anchor - timedelta(hours=1), 1) == [utc(2026, 1, 1, 12, 1)]
    # the first slot (anchor + interval) is the latest one up to it
    before = anchor - timedelta(hours=1)
    assert latest_interval_fire(anchor, 60, before, utc(2026, 1, 1, 12, 1)) == utc(
        2026, 1, 1, 12, 1
    )
    assert latest_interval_fire(anchor, 60, before, utc(2026, 1, 1, 12, 0, 59)) is None


def test_interval_arithmetic_and_boundaries() -> None:
    anchor = utc(2026, 1, 1, 12)
    assert next_interval_fire(anchor, 300, utc(2026, 1, 1)) == utc(2026, 1, 1, 12, 5)
    assert next_interval_fire(anchor, 300, anchor) == utc(2026, 1, 1, 12, 5)
    # Exactly on a fire instant: the next one.
    assert next_interval_fire(anchor, 300, utc(2026, 1, 1, 12, 10)) == utc(2026, 1, 1, 12, 15)
    assert next_interval_fire(anchor, 300, utc(2026, 1, 1, 12, 9, 59, 999999)) == utc(
        2026, 1, 1, 12, 10
    )
    # Far in the future, O(1).
    assert next_interval_fire(anchor, 7, utc(3026, 1, 1)) > utc(3026, 1, 1)
    # Anchor in another zone, result in UTC.
    berlin_anchor = datetime(2026, 1, 1, 13, tzinfo=zoneinfo.ZoneInfo(BERLIN))
    result = next_interval_fire(berlin_anchor, 3600, anchor)
    assert result == utc(2026, 1, 1, 13) and result.tzinfo is UTC


def test_interval_is_real_time_across_dst() -> None:
    anchor = datetime(2026, 11, 1, 0, 30, tzinfo=zoneinfo.ZoneInfo(NY))
    fires = interval_fires(anchor, 3600, anchor, 3)
    assert iso(fires) == ["2026-11-01T05:30Z", "2026-11-01T06:30Z", "2026-11-01T07:30Z"]


def test_interval_fires_and_start_immediately() -> None:
    anchor = utc(2026, 1, 1)
    assert iso(interval_fires(anchor, 60, anchor, 3)) == [
        "2026-01-01T00:01Z",
        "2026-01-01T00:02Z",
        "2026-01-01T00:03Z",
    ]
    before = anchor - timedelta(seconds=1)
    assert iso(interval_fires(anchor, 60, before, 2, start_immediately=True)) == [
        "2026-01-01T00:00Z",
        "2026-01-01T00:01Z",
    ]
    # Once past the anchor, start_immediately changes nothing.
    assert interval_fires(anchor, 60, anchor, 2, start_immediately=True) == interval_fires(
        anchor, 60, anchor, 2
    )
    assert next_interval_fire(anchor, 60, before, start_immediately=True) == anchor
    assert interval_fires(anchor, 60, anchor, 0) == []


def test_latest_interval_fire() -> None:
    anchor = utc(2026, 1, 1)
    assert latest_interval_fire(anchor, 60, anchor, utc(2026, 1, 1, 0, 2, 30)) == utc(
        2026, 1, 1, 0, 2
    )
    assert latest_interval_fire(anchor, 60, anchor, utc(2026, 1, 1, 0, 2)) == utc(2026, 1, 1, 0, 2)
    assert latest_interval_fire(anchor, 60, utc(2026, 1, 1, 0, 2), utc(2026, 1, 1, 0, 2)) is None
    assert latest_interval_fire(anchor, 60, anchor, utc(2026, 1, 1, 0, 0, 59)) is None
    assert latest_interval_fire(anchor - timedelta(hours=1), 60, anchor, anchor) is None
    assert latest_interval_fire(anchor, 60, anchor - timedelta(1), anchor) is None
    assert (
        latest_interval_fire(anchor, 60, anchor - timedelta(1), anchor, start_immediately=True)
        == anchor
    )


# --- properties ------------------------------------------------------------------------

ZONES = [
    NY,
    BERLIN,
    LORD_HOWE,
    "Asia/Kolkata",
    "UTC",
    "America/Sao_Paulo",
    "Pacific/Chatham",
    "America/Santiago",
]
RANGE_START = datetime(2025, 1, 1, tzinfo=UTC)
RANGE_END = datetime(2029, 1, 1, tzinfo=UTC)


@functools.cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """Instants (UTC, to the second) at which the zone's offset changes in 2025-2028."""
    zone = zoneinfo.ZoneInfo(zone_name)
    found: list[datetime] = []
    step = timedelta(hours=1)
    current = RANGE_START
    while current < RANGE_END:
        following = current + step
        if current.astimezone(zone).utcoffset() != following.astimezone(zone).utcoffset():
            low, high = current, following
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high.replace(microsecond=0))
        current = following
    return tuple(found)


def field_values(low: int, high: int) -> st.SearchStrategy[str]:
    """A small grammar of one field; every form is read the same by the oracle and us."""
    value = st.integers(low, high)
    ranges = st.tuples(value, value).filter(lambda pair: pair[0] < pair[1])
    return st.one_of(
        st.just("*"),
        st.integers(2, max(2, (high - low) // 2)).map(lambda step: f"*/{step}"),
        value.map(str),
        st.lists(value, min_size=2, max_size=3, unique=True).map(
            lambda items: ",".join(map(str, items))
        ),
        ranges.map(lambda pair: f"{pair[0]}-{pair[1]}"),
        st.tuples(ranges, st.integers(2, 5)).map(lambda rs: f"{rs[0][0]}-{rs[0][1]}/{rs[1]}"),
    )


EXPRESSIONS = st.one_of(
    st.tuples(
        field_values(0, 59),
        field_values(0, 23),
        st.one_of(st.just("*"), field_values(1, 28)),
        st.one_of(st.just("*"), st.just("*"), field_values(1, 12)),
        st.one_of(st.just("*"), st.just("*"), st.just("MON-FRI"), field_values(0, 6)),
    ).map(" ".join),
    st.sampled_from(
        ["* * * * *", "*/15 * * * *", "30 2 * * *", "0,30 1,2 * * *", "0 0 29 2 *", "@hourly"]
    ),
)


@st.composite
def afters(draw: st.DrawFn, zone_name: str) -> datetime:
    """Uniform in 2025-2028, or within a few hours of one of the zone's transitions."""
    near = transitions(zone_name)
    use_near: bool = draw(st.booleans())
    if near and use_near:
        base = draw(st.sampled_from(near))
        return base + timedelta(seconds=draw(st.integers(-5 * 3600, 5 * 3600)))
    seconds = int((RANGE_END - RANGE_START).total_seconds())
    return RANGE_START + timedelta(seconds=draw(st.integers(0, seconds)))


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str, datetime]:
    zone_name = draw(st.sampled_from(ZONES))
    return draw(EXPRESSIONS), zone_name, draw(afters(zone_name))


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def stable(zone: zoneinfo.ZoneInfo, instant: datetime) -> bool:
    """No offset change within three hours either side."""
    offsets = {
        (instant + timedelta(hours=h)).astimezone(zone).utcoffset() for h in (-3, -1, 0, 1, 3)
    }
    return len(offsets) == 1 and not any(
        abs((t - instant).total_seconds()) <= 3 * 3600 for t in transitions(zone.key)
    )


NAMES = {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
NAMES |= {
    name: i + 1
    for i, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    )
}
MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *"}
BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def expand(field: str, low: int, high: int) -> frozenset[int] | None:
    """The values one field allows, read here by hand (None: a bare `*` or `?`).

    Independent of croniter, which the implementation uses: this is the oracle's parser.
    """
    if field in ("*", "?"):
        return None
    values: set[int] = set()
    for item in field.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            first, last = low, high
        else:
            ends = [NAMES[e.upper()] if e.upper() in NAMES else int(e) for e in base.split("-")]
            first, last = ends[0], (ends[-1] if len(ends) == 2 or not step else high)
        values.update(range(first, last + 1, int(step or 1)))
    return frozenset(0 if high == 6 and v == 7 else v for v in values)


class Reading:
    """An expression read as sets, with the day rule of Kubernetes' cron (robfig/cron).

    croniter.match follows Vixie cron, where a day field that starts with `*`
    (even `*/2`) counts as unrestricted; robfig/cron, which the CronJob
    controller uses and this project follows, treats only `*` and `?` so. With
    both day fields restricted a day matching either one fires.
    """

    def __init__(self, expression: str) -> None:
        fields = MACROS.get(expression, expression).split()
        assert len(fields) == 5, expression
        self.minutes, self.hours, self.days, self.months, self.weekdays = (
            expand(f, low, high) for f, (low, high) in zip(fields, BOUNDS, strict=True)
        )
        self.either_day = self.days is not None and self.weekdays is not None

    @staticmethod
    def has(values: frozenset[int] | None, value: int) -> bool:
        return values is None or value in values

    def day_matches(self, day: date) -> bool:
        if not self.has(self.months, day.month):
            return False
        in_month = self.has(self.days, day.day)
        on_weekday = self.has(self.weekdays, day.isoweekday() % 7)
        return (in_month or on_weekday) if self.either_day else (in_month and on_weekday)

    def matches(self, wall: datetime) -> bool:
        return (
            self.has(self.minutes, wall.minute)
            and self.has(self.hours, wall.hour)
            and self.day_matches(wall.date())
        )

    def walls_after(self, after: datetime) -> Iterator[datetime]:
        """Matching naive wall times strictly after ``after``, ascending, day by day."""
        minutes = sorted(self.minutes if self.minutes is not None else range(60))
        hours = sorted(self.hours if self.hours is not None else range(24))
        day = after.date()
        while True:
            if self.day_matches(day):
                for hour in hours:
                    for minute in minutes:
                        wall = datetime.combine(day, dtime(hour, minute))
                        if wall > after:
                            yield wall
            day += timedelta(days=1)


def kubernetes_match(expression: str, wall: datetime) -> bool:
    """Whether a wall time matches, read independently of croniter (see Reading)."""
    return Reading(expression).matches(wall)


def test_the_oracle_reads_fields_by_hand() -> None:
    assert expand("*/15", 0, 59) == {0, 15, 30, 45}
    assert expand("1-10/4", 0, 59) == {1, 5, 9}
    assert expand("MON-FRI", 0, 6) == {1, 2, 3, 4, 5} and expand("0,7", 0, 6) == {0}
    assert expand("jan,Jul", 1, 12) == {1, 7} and expand("?", 1, 31) is None
    walls = Reading("30 2 29 2 *").walls_after(datetime(2025, 1, 1))
    leap_days = [datetime(2028, 2, 29, 2, 30), datetime(2032, 2, 29, 2, 30)]
    assert [next(walls), next(walls)] == leap_days


def test_the_day_rule_is_kubernetes_not_vixie() -> None:
    """'*/2' restricts the day of month: with a weekday list every day of those fires."""
    expression = "0 0 */2 * 0-6"  # odd days of the month, or any day of the week
    jan_2 = datetime(2025, 1, 2, 0, 0)
    assert kubernetes_match(expression, jan_2) and not croniter.match(expression, jan_2)
    fires = cron_fires(expression, "America/New_York", datetime(2025, 1, 1, 6, 0, tzinfo=UTC), 2)
    assert fires == [datetime(2025, 1, 2, 5, 0, tzinfo=UTC), datetime(2025, 1, 3, 5, 0, tzinfo=UTC)]


@PROPERTY
@given(cases())
def test_property_fires_are_ordered_and_chain(case: tuple[str, str, datetime]) -> None:
    expression, zone_name, after = case
    fires = cron_fires(expression, zone_name, after, 8)
    assert len(fires) == 8
    assert all(fire.tzinfo is UTC for fire in fires)
    assert fires[0] > after
    assert all(a < b for a, b in itertools.pairwise(fires))
    assert next_cron_fire(expression, zone_name, after) == fires[0]
    chained = [next_cron_fire(expression, zone_name, fire) for fire in fires[:-1]]
    assert chained == fires[1:]
    # Every instant is a matching wall time, or the end of a gap for a fixed-hour job.
    zone = zoneinfo.ZoneInfo(zone_name)
    wildcard = expression.startswith("@hourly") or expression.split()[1].startswith("*")
    reading = Reading(expression)
    walls = []
    for fire in fires:
        wall = fire.astimezone(zone).replace(tzinfo=None)
        walls.append(wall)
        if not reading.matches(wall):
            assert not wildcard
            before = (fire - timedelta(seconds=1)).astimezone(zone).utcoffset()
            assert before != fire.astimezone(zone).utcoffset(), f"{fire} is not a gap end"
    if not wildcard:  # a fixed-hour job never runs twice at one wall time
        assert len(set(walls)) == len(walls)


@PROPERTY
@given(EXPRESSIONS, afters("UTC"))
def test_property_utc_matches_the_enumeration(expression: str, after: datetime) -> None:
    walls = Reading(expression).walls_after(after.replace(tzinfo=None))
    expected = [wall.replace(tzinfo=UTC) for wall in itertools.islice(walls, 10)]
    assert cron_fires(expression, "UTC", after, 10) == expected


@PROPERTY
@given(cases())
def test_property_matches_the_naive_enumeration_away_from_transitions(
    case: tuple[str, str, datetime],
) -> None:
    expression, zone_name, after = case
    zone = zoneinfo.ZoneInfo(zone_name)
    fires = cron_fires(expression, zone_name, after, 12)
    last = fires[-1]
    mine = [fire for fire in fires if stable(zone, fire)]
    horizon = last.astimezone(zone).replace(tzinfo=None) + timedelta(hours=4)
    theirs: list[datetime] = []
    for wall in Reading(expression).walls_after(after.astimezone(zone).replace(tzinfo=None)):
        if wall > horizon:
            break
        instant = wall.replace(tzinfo=zone).astimezone(UTC)
        if after < instant <= last and stable(zone, instant):
            theirs.append(instant)
    assert mine == sorted(theirs)


@PROPERTY
@given(cases(), st.integers(0, 3 * 24 * 60), st.integers(0, 6))
def test_property_latest_and_between_agree_with_enumeration(
    case: tuple[str, str, datetime], window_minutes: int, limit: int
) -> None:
    expression, zone_name, after = case
    until = after + timedelta(minutes=window_minutes, seconds=17)
    everything = cron_fires_between(expression, zone_name, after, until, 100_000)
    assume(len(everything) < 100_000)
    assert all(after < fire <= until for fire in everything)
    latest = latest_cron_fire(expression, zone_name, after, until)
    assert latest == (everything[-1] if everything else None)
    limited = cron_fires_between(expression, zone_name, after, until, limit)
    assert limited == everything[:limit]
    if everything:
        assert everything == cron_fires(expression, zone_name, after, len(everything))


@PROPERTY
@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)),
    st.integers(1, 10 * 86400),
    st.integers(-(10**9), 10**9),
    st.booleans(),
)
def test_property_interval(
    anchor_naive: datetime, interval: int, offset_us: int, start_immediately: bool
) -> None:
    anchor = anchor_naive.replace(tzinfo=UTC)
    after = anchor + timedelta(microseconds=offset_us) * 1000
    fires = interval_fires(anchor, interval, after, 3, start_immediately=start_immediately)
    step = timedelta(seconds=interval)
    first_k = 0 if start_immediately else 1
    for fire in fires:
        k, remainder = divmod(fire - anchor, step)
        assert remainder == timedelta(0) and k >= first_k
    assert fires[0] > after
    assert fires[0] - step <= after or fires[0] == anchor + first_k * step
    assert fires[1] - fires[0] == step and fires[2] - fires[1] == step
    assert (
        next_interval_fire(anchor, interval, after, start_immediately=start_immediately)
        == (fires[0])
    )
    until = fires[1] + timedelta(microseconds=offset_us % 1000)
    latest = latest_interval_fire(
        anchor, interval, after, until, start_immediately=start_immediately
    )
    assert latest == fires[1]
    assert latest_interval_fire(anchor, interval, fires[1], until) is None


def oracle(
    expression: str, zone: zoneinfo.ZoneInfo, after: datetime, until: datetime
) -> list[datetime]:
    """The documented DST rules applied minute by minute over real time."""
    matches = Reading(expression).matches
    wildcard = expression == "@hourly" or expression.split()[1].startswith("*")
    fires: list[datetime] = []
    instant = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while instant <= until:
        local = instant.astimezone(zone)
        wall = local.replace(tzinfo=None)
        # A repeated wall time fires twice only for a wildcard hour field.
        fires_here = matches(wall) and (wildcard or local.fold == 0)
        previous = (instant - timedelta(seconds=1)).astimezone(zone)
        if not wildcard and not fires_here and local.utcoffset() != previous.utcoffset():
            # The gap that ends at this instant: its slots collapse into it.
            skipped = previous.replace(tzinfo=None) + timedelta(seconds=1)
            while skipped < wall:
                fires_here = fires_here or matches(skipped)
                skipped += timedelta(minutes=1)
        if fires_here:
            fires.append(instant)
        instant += timedelta(minutes=1)
    return fires


TRANSITION_ZONES = [zone for zone in ZONES if transitions(zone)]


@PROPERTY
@given(
    EXPRESSIONS,
    st.sampled_from(TRANSITION_ZONES),
    st.data(),
    st.integers(-6 * 60, 0),
    st.integers(1, 6 * 60),
)
def test_property_matches_minute_by_minute_oracle_around_transitions(
    expression: str, zone_name: str, data: st.DataObject, start: int, end: int
) -> None:
    transition = data.draw(st.sampled_from(transitions(zone_name)))
    after = transition + timedelta(minutes=start, seconds=data.draw(st.integers(0, 59)))
    until = transition + timedelta(minutes=end)
    expected = oracle(expression, zoneinfo.ZoneInfo(zone_name), after, until)
    assert cron_fires_between(expression, zone_name, after, until, 10_000) == expected
    assert latest_cron_fire(expression, zone_name, after, until) == (
        expected[-1] if expected else None
    )
