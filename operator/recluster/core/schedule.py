"""Fire times of cron and interval triggers: pure functions, the clock is always passed in.

Cron syntax is what a Kubernetes CronJob accepts (robfig/cron's standard parser):
five fields ``minute hour day-of-month month day-of-week`` with ``*``, ``?`` (``*`` in
the two day fields), lists, ranges, steps (``*/15``, ``10-40/10``, ``5/20`` means
``5-59/20``), the names JAN-DEC and SUN-SAT (day-of-week 0-6, Sunday is 0; 7 is
rejected as Kubernetes does), and the macros ``@yearly``, ``@annually``, ``@monthly``,
``@weekly``, ``@daily``, ``@midnight`` and ``@hourly`` (``@every`` is not: that is an
interval trigger).
When both day fields are restricted a day matches either one; when one of them is a
``*`` only the other one counts. A ``TZ=``/``CRON_TZ=`` prefix is rejected: the zone
is ``schedule_config.timezone``, so there is exactly one place that says it.

Wall-clock times are matched in the trigger's IANA zone. croniter enumerates matching
*naive* wall times, and this module maps each one to instants with :mod:`zoneinfo`
(croniter's own time-zone arithmetic is not trusted across transitions). Around DST
transitions the behaviour is deliberate and mirrors Vixie cron:

* Spring forward (the wall time does not exist, e.g. 02:30 in America/New_York on
  2026-03-08): a job whose hour field is fixed (a value, list or range) runs once at
  the instant the gap ends (03:00 EDT); several slots inside one gap collapse into that
  single firing. A job whose hour field is a wildcard (starts with ``*``, e.g.
  ``*/15 * * * *``, ``0 * * * *``, ``@hourly``) simply has no firings in the gap.
* Fall back (the wall time occurs twice, e.g. 01:30 in America/New_York on
  2026-11-01): a fixed-hour job runs once, at the first occurrence (fold=0, EDT), so a
  nightly job never runs twice; a wildcard-hour job runs at both occurrences, i.e. it
  keeps firing every real hour / quarter hour through the repeated hour.

Results are in UTC, strictly increasing, never repeat an instant, and naive input
datetimes raise :class:`ValueError`.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import CroniterBadDateError, croniter

__all__ = [
    "MACROS",
    "ScheduleError",
    "cron_fires",
    "cron_fires_between",
    "interval_fires",
    "latest_cron_fire",
    "latest_interval_fire",
    "next_cron_fire",
    "next_interval_fire",
    "validate_cron_expression",
    "validate_timezone",
]


class ScheduleError(ValueError):
    """A cron expression, time zone or interval that can never be scheduled.

    The message is one line meant for a status condition or a CLI error.
    """


MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MONTH_TITLES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# Longest each month can be; February counts its leap day (it fires in leap years).
_MAX_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] means value low + i


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTH_NAMES),
    _Field("day-of-week", 0, 6, _DOW_NAMES),
)
_ASCII_SPACE = " \t\n\r\f\v"
_NUMBER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class _CronSpec:
    """A parsed expression: what croniter should enumerate and how to treat DST."""

    croniter_expression: str
    wildcard_hour: bool


def _parse_value(token: str, field: _Field, part: str) -> int:
    if _NUMBER.fullmatch(token):
        value = int(token)
        if not field.low <= value <= field.high:
            hint = " (Sunday is 0 or SUN)" if field.name == "day-of-week" and value == 7 else ""
            raise ScheduleError(
                f"{field.name} {value} is out of range {field.low}-{field.high}{hint}"
            )
        return value
    if token.lower() in field.names:
        return field.low + field.names.index(token.lower())
    if not token:
        raise ScheduleError(f"{field.name} item {part!r} has an empty value")
    if field.names:
        expected = f"a number {field.low}-{field.high} or a name such as {field.names[0].upper()}"
    else:
        expected = f"a number {field.low}-{field.high}"
    extension = ""
    if field.name in ("day-of-month", "day-of-week") and any(c in token.upper() for c in "LW#"):
        extension = " (the L, W and # extensions are not supported)"
    elif token.upper().startswith("H"):
        extension = " (the H hash extension is not supported)"
    raise ScheduleError(
        f"{field.name} value {token!r} in {part!r} is not valid: expected {expected}{extension}"
    )


def _parse_field(text: str, field: _Field) -> tuple[frozenset[int], bool]:
    """Values of one field, and whether it is a 'star' field (robfig/cron's starBit)."""
    values: set[int] = set()
    star = False
    for part in text.split(","):
        if not part:
            raise ScheduleError(f"{field.name} field {text!r} has an empty list item")
        range_text, slash, step_text = part.partition("/")
        if "/" in step_text:
            raise ScheduleError(f"{field.name} item {part!r} has more than one '/'")
        step = 1
        if slash:
            if not _NUMBER.fullmatch(step_text) or int(step_text) == 0:
                raise ScheduleError(
                    f"{field.name} step in {part!r} must be a positive whole number"
                )
            step = int(step_text)
        if range_text == "?" and field.name not in ("day-of-month", "day-of-week"):
            raise ScheduleError(
                f"'?' is only allowed in day-of-month and day-of-week, not {field.name}"
            )
        if range_text in ("*", "?"):
            start, end = field.low, field.high
            star = star or step == 1
        else:
            bounds = range_text.split("-")
            if len(bounds) > 2:
                raise ScheduleError(f"{field.name} item {part!r} has more than one '-'")
            start = _parse_value(bounds[0], field, part)
            if len(bounds) == 2:
                end = _parse_value(bounds[1], field, part)
            else:
                end = field.high if slash else start
            if start > end:
                raise ScheduleError(
                    f"{field.name} range {range_text!r} runs backwards ({start} > {end})"
                )
        values.update(range(start, end + 1, step))
    return frozenset(values), star


def _check_can_fire(days: frozenset[int], months: frozenset[int]) -> None:
    """Reject day-of-month/month combinations that never occur (e.g. 30 February)."""
    if any(day <= _MAX_MONTH_DAYS[month - 1] for day in days for month in months):
        return
    day_text = ",".join(str(day) for day in sorted(days))
    month_text = ", ".join(_MONTH_TITLES[month - 1] for month in sorted(months))
    raise ScheduleError(f"it can never fire: day-of-month {day_text} never occurs in {month_text}")


def _croniter_field(values: frozenset[int], star: bool) -> str:
    return "*" if star else ",".join(str(value) for value in sorted(values))


@functools.lru_cache(maxsize=512)
def _parse_cron(expression: str) -> _CronSpec:
    """Parse like Kubernetes' CronJob does; the reason of a ScheduleError lacks the prefix."""
    text = expression.strip(_ASCII_SPACE)
    if not text:
        raise ScheduleError("the expression is empty")
    if text.upper().startswith(("TZ=", "CRON_TZ=")):
        raise ScheduleError(
            "a TZ= or CRON_TZ= prefix is not supported: use schedule_config.timezone instead"
        )
    if text.startswith("@"):
        if text.startswith("@every"):
            raise ScheduleError(
                "@every is not supported: use trigger_type 'interval' with interval_seconds"
            )
        if text not in MACROS:
            raise ScheduleError(f"unknown macro {text!r}: use one of {', '.join(MACROS)}")
        text = MACROS[text]
    fields = re.split(r"[ \t\n\r\f\v]+", text)
    if len(fields) in (6, 7):
        raise ScheduleError(
            f"it has {len(fields)} fields, but only the 5-field form 'minute hour day-of-month"
            " month day-of-week' is supported (no seconds or year field)"
        )
    if len(fields) != 5:
        raise ScheduleError(
            f"it has {len(fields)} field{'s' if len(fields) != 1 else ''}, expected 5: "
            "minute hour day-of-month month day-of-week"
        )
    parsed = [_parse_field(item, field) for item, field in zip(fields, _FIELDS, strict=True)]
    (days, day_star), (months, _), (_, weekday_star) = parsed[2], parsed[3], parsed[4]
    # With a '*' day-of-week only day-of-month counts; otherwise any weekday fires.
    if weekday_star and not day_star:
        _check_can_fire(days, months)
    croniter_expression = " ".join(_croniter_field(values, star) for values, star in parsed)
    if not croniter.is_valid(croniter_expression):  # pragma: no cover - a bug guard
        raise ScheduleError(f"croniter rejects the normalised form {croniter_expression!r}")
    return _CronSpec(croniter_expression, wildcard_hour=fields[1].startswith("*"))


def _spec(expression: str) -> _CronSpec:
    if not isinstance(expression, str):
        raise ScheduleError(f"invalid cron expression {expression!r}: it is not a string")
    try:
        return _parse_cron(expression)
    except ScheduleError as exc:
        raise ScheduleError(f"invalid cron expression {expression!r}: {exc}") from None


def validate_cron_expression(expression: str) -> None:
    """Raise ScheduleError, with a one-line reason, unless ``expression`` can be scheduled."""
    _spec(expression)


_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")
# Names a TZPATH may hold that are not IANA zones; "localtime" follows the host's setting.
_NOT_ZONES = frozenset({"localtime", "posixrules", "local"})


def validate_timezone(name: str) -> zoneinfo.ZoneInfo:
    """Return the zone for an IANA name; anything else (paths, '', unknown) is ScheduleError."""
    reason = f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/Berlin'"
    if not isinstance(name, str) or not _ZONE_NAME.fullmatch(name) or name.lower() in _NOT_ZONES:
        raise ScheduleError(reason)
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(reason) from None


# --- instants --------------------------------------------------------------------------
#
# Internally instants are naive datetimes in UTC and wall times are naive local times,
# so that arithmetic is plain and never touches tzinfo rules by accident.

_OFFSET_WINDOW = timedelta(days=2)
_OFFSET_STEP = timedelta(hours=3)


def _utc_naive(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value!r}")
    return value.astimezone(UTC).replace(tzinfo=None)


def _aware(instant: datetime) -> datetime:
    return instant.replace(tzinfo=UTC)


def _offset(zone: tzinfo, instant: datetime) -> timedelta:
    offset = _aware(instant).astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _offset_bounds(zone: tzinfo, instant: datetime) -> tuple[timedelta, timedelta]:
    """Smallest and largest UTC offset the zone uses within about two days of ``instant``.

    They bound how far wall time and real time can drift apart near ``instant``, which
    is what the searches below need to know where to start and when to stop.
    """
    return _offset_bounds_at_hour(zone, instant.replace(minute=0, second=0, microsecond=0))


@functools.lru_cache(maxsize=4096)
def _offset_bounds_at_hour(zone: tzinfo, hour: datetime) -> tuple[timedelta, timedelta]:
    steps = int(_OFFSET_WINDOW / _OFFSET_STEP)
    offsets = [_offset(zone, hour + k * _OFFSET_STEP) for k in range(-steps, steps + 1)]
    return min(offsets), max(offsets)


def _gap_end(zone: tzinfo, wall: datetime, before: datetime, after: datetime) -> datetime:
    """The transition instant that skips ``wall``: the first instant after the gap.

    ``before`` < transition <= ``after``; bisect on whole seconds (tzdata transitions are).
    """
    low = int((_aware(before) - _aware(datetime(1970, 1, 1))).total_seconds())
    high = int((_aware(after) - _aware(datetime(1970, 1, 1))).total_seconds())
    while high - low > 1:
        middle = (low + high) // 2
        local = datetime.fromtimestamp(middle, UTC).astimezone(zone).replace(tzinfo=None)
        if local > wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC).replace(tzinfo=None)


def _instants(zone: tzinfo, wall: datetime, wildcard_hour: bool) -> list[datetime]:
    """The fire instants (naive UTC, ascending) of one matching wall time."""
    first = wall - _not_none(wall.replace(tzinfo=zone, fold=0).utcoffset())
    second = wall - _not_none(wall.replace(tzinfo=zone, fold=1).utcoffset())
    if first == second:
        return [first]
    if first < second:  # the wall time occurs twice (fall back)
        return [first, second] if wildcard_hour else [first]
    # The wall time falls into a gap (spring forward): fold=1 reads it with the
    # offset after the transition, landing before it, fold=0 with the one before.
    return [] if wildcard_hour else [_gap_end(zone, wall, second, first)]


def _not_none(offset: timedelta | None) -> timedelta:
    assert offset is not None
    return offset


def _walls(spec: _CronSpec, start: datetime, *, backwards: bool) -> Iterator[datetime]:
    """Matching naive wall times strictly after ``start`` (or strictly before it)."""
    it = croniter(spec.croniter_expression, start, ret_type=datetime)
    while True:
        try:
            wall: datetime = it.get_prev(datetime) if backwards else it.get_next(datetime)
        except CroniterBadDateError:  # nothing within croniter's 50-year horizon
            return
        yield wall


def _fire_stream(spec: _CronSpec, zone: tzinfo, after: datetime) -> Iterator[datetime]:
    """Fire instants > ``after`` (naive UTC), strictly increasing, until croniter gives up.

    Wall times come in order but instants do not quite (a fold=1 instant follows later
    wall times of the repeated hour; gap slots share one instant), so candidates wait in
    a heap until no later wall time can produce an earlier or equal instant.
    """
    low, _ = _offset_bounds(zone, after)
    # A wall time w fires at w - offset(w) > after only if w > after + offset(w), and
    # offset(w) >= low. Starting there also catches a fold=1 instant whose wall time is
    # earlier than after's own.
    pending: list[datetime] = []
    last = after
    for wall in _walls(spec, after + low, backwards=False):
        # Once w > c + offset, wall times from w on fire after c: c is final.
        while pending and wall > pending[0] + _offset_bounds(zone, pending[0])[1]:
            last = heapq.heappop(pending)
            yield last
        for instant in _instants(zone, wall, spec.wildcard_hour):
            if instant > last and instant not in pending:
                heapq.heappush(pending, instant)
    while pending:
        yield heapq.heappop(pending)


def _latest_fire(
    spec: _CronSpec, zone: tzinfo, after: datetime, until: datetime
) -> datetime | None:
    """Latest instant in (after, until] (naive UTC), walking wall times backwards."""
    _, high = _offset_bounds(zone, until)
    floor = after + _offset_bounds(zone, after)[0]
    # Wall times up to until + high (inclusive) may fire at or before until.
    start = (until + high).replace(second=0, microsecond=0) + timedelta(minutes=1)
    best: datetime | None = None
    stop = floor
    for wall in _walls(spec, start, backwards=True):
        if wall <= stop:
            break
        for instant in _instants(zone, wall, spec.wildcard_hour):
            if after < instant <= until and (best is None or instant > best):
                best = instant
                # No earlier wall time can fire after best once it is below this.
                stop = max(floor, best + _offset_bounds(zone, best)[0])
    return best


def _check_count(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _cron_stream(expression: str, timezone: str, after: datetime) -> Iterator[datetime]:
    spec, zone, start = _spec(expression), validate_timezone(timezone), _utc_naive(after, "after")
    return (_aware(instant) for instant in _fire_stream(spec, zone, start))


def next_cron_fire(expression: str, timezone: str, after: datetime) -> datetime:
    """First fire instant strictly after ``after``, in UTC."""
    found = next(_cron_stream(expression, timezone, after), None)
    if found is None:  # only past year 9999 or so: valid expressions fire every <= 8 years
        raise ScheduleError(f"cron expression {expression!r} does not fire after {after}")
    return found


def cron_fires(expression: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """The first ``count`` fire instants strictly after ``after``, ascending, in UTC."""
    _check_count(count, "count")
    return list(itertools.islice(_cron_stream(expression, timezone, after), count))


def cron_fires_between(
    expression: str, timezone: str, after: datetime, until: datetime, limit: int
) -> list[datetime]:
    """Fire instants t with after < t <= until, the earliest ``limit`` of them, in UTC.

    For missed-schedule catch-up: ``limit`` bounds the work however long the outage was.
    """
    _check_count(limit, "limit")
    end = _utc_naive(until, "until").replace(tzinfo=UTC)
    fires = _cron_stream(expression, timezone, after)
    return list(itertools.islice(itertools.takewhile(lambda t: t <= end, fires), limit))


def latest_cron_fire(
    expression: str, timezone: str, after: datetime, until: datetime
) -> datetime | None:
    """The latest fire instant t with after < t <= until, in UTC, or None.

    Searches backwards from ``until``, so its cost does not grow with ``until - after``.
    """
    spec, zone = _spec(expression), validate_timezone(timezone)
    start, end = _utc_naive(after, "after"), _utc_naive(until, "until")
    if end <= start:
        return None
    found = _latest_fire(spec, zone, start, end)
    return None if found is None else _aware(found)


# --- intervals -------------------------------------------------------------------------

_MICROSECOND = timedelta(microseconds=1)


def _check_interval(interval_seconds: int) -> int:
    if (
        isinstance(interval_seconds, bool)
        or not isinstance(interval_seconds, int)
        or interval_seconds <= 0
    ):
        raise ScheduleError(
            f"interval_seconds must be a positive whole number, got {interval_seconds!r}"
        )
    return interval_seconds * 1_000_000


def _first_index(anchor: datetime, period_us: int, after: datetime, first: int) -> int:
    """Smallest k >= first with anchor + k * period > after (exact integer arithmetic)."""
    elapsed_us = (after - anchor) // _MICROSECOND
    return max(first, elapsed_us // period_us + 1)


def next_interval_fire(
    anchor: datetime, interval_seconds: int, after: datetime, *, start_immediately: bool = False
) -> datetime:
    """First of anchor + k*interval (k >= 1; k >= 0 with start_immediately) after ``after``."""
    period_us = _check_interval(interval_seconds)
    origin, start = _utc_naive(anchor, "anchor"), _utc_naive(after, "after")
    k = _first_index(origin, period_us, start, 0 if start_immediately else 1)
    return _aware(origin + k * period_us * _MICROSECOND)


def interval_fires(
    anchor: datetime,
    interval_seconds: int,
    after: datetime,
    count: int,
    start_immediately: bool = False,
) -> list[datetime]:
    """The first ``count`` instants anchor + k*interval after ``after``, in UTC.

    k >= 1, or k >= 0 with ``start_immediately`` (the anchor itself fires).
    """
    _check_count(count, "count")
    period_us = _check_interval(interval_seconds)
    origin, start = _utc_naive(anchor, "anchor"), _utc_naive(after, "after")
    k = _first_index(origin, period_us, start, 0 if start_immediately else 1)
    return [_aware(origin + (k + i) * period_us * _MICROSECOND) for i in range(count)]


def latest_interval_fire(
    anchor: datetime,
    interval_seconds: int,
    after: datetime,
    until: datetime,
    *,
    start_immediately: bool = False,
) -> datetime | None:
    """The latest anchor + k*interval in (after, until], in UTC, or None.

    k >= 1, or k >= 0 with ``start_immediately``.
    """
    period_us = _check_interval(interval_seconds)
    origin = _utc_naive(anchor, "anchor")
    start, end = _utc_naive(after, "after"), _utc_naive(until, "until")
    k = ((end - origin) // _MICROSECOND) // period_us
    if k < (0 if start_immediately else 1):
        return None
    instant = origin + k * period_us * _MICROSECOND
    return _aware(instant) if instant > start else None
