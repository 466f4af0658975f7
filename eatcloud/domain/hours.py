"""Store opening hours: is a store open at an instant, and when does it open next (pure).

A store's week is a map of weekday (``mon`` .. ``sun``) to intervals of local wall-clock time,
``("09:00", "22:00")``; a day may have several, and a day missing from the map has none. An
interval whose end is not after its start runs past midnight and belongs to the day it
starts: ``("18:00", "02:00")`` on Friday is open until 02:00 on Saturday morning. ``"24:00"``
is a valid end (midnight). A closed date cancels the intervals that start on it (Friday
night's interval still ends at 02:00 on a closed Saturday); a store with no hours at all is
open around the clock except on its closed dates, which then close the whole local day.

Every instant is compared in UTC after placing the wall-clock times in the store's zone, so a
day of 23 or 25 hours (DST) is handled by zoneinfo: an opening time that does not exist that
day (in the spring gap) falls just after the gap, an ambiguous one takes its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_A_DAY = 24 * 60
# How far ahead "next opening" looks: past a year of closed dates we say nothing.
HORIZON_DAYS = 400


def known_time_zone(name: str) -> str:
    """``name`` if it is an IANA time zone this system knows; ValueError otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # a bad name, a path, NUL
        raise ValueError(f"{name!r} is not a known IANA time zone") from exc
    return name


def minutes(hhmm: str) -> int:
    """Minutes after midnight of ``"HH:MM"`` (``"24:00"`` is 1440); ValueError when invalid."""
    hours, sep, mins = hhmm.partition(":")
    if not (sep and len(hours) == 2 and len(mins) == 2 and hours.isdigit() and mins.isdigit()):
        raise ValueError(f"{hhmm!r} is not HH:MM")
    total = int(hours) * 60 + int(mins)
    if int(mins) > 59 or total > MINUTES_A_DAY:
        raise ValueError(f"{hhmm!r} is not a time of day")
    return total


def interval_minutes(start: str, end: str) -> tuple[int, int]:
    """(start, end) in minutes after the owning day's midnight; an end not after the start
    is on the next day. ValueError for an empty interval or a start of 24:00."""
    begin, finish = minutes(start), minutes(end)
    if begin == MINUTES_A_DAY:
        raise ValueError("an interval cannot start at 24:00")
    if finish == begin:
        raise ValueError(f"the interval {start}-{end} is empty")
    if finish < begin:
        finish += MINUTES_A_DAY
    return begin, finish


@dataclass(frozen=True)
class Schedule:
    """What decides whether a store is open: the manager's switch, the zone, the week and the
    closed dates. ``hours`` None: no hours set, open whenever ``is_open``."""

    is_open: bool
    time_zone: str
    hours: Mapping[str, Sequence[Sequence[str]]] | None = None
    closed_dates: frozenset[date] = frozenset()

    def openings(self, first: date, days: int) -> Iterator[tuple[datetime, datetime]]:
        """The (start, end) instants in UTC of the intervals owned by ``days`` local days
        from ``first``, in order of their day, skipping closed dates."""
        zone = ZoneInfo(self.time_zone)
        for n in range(days):
            day = first + timedelta(days=n)
            if day in self.closed_dates:
                continue
            if self.hours is None:
                spans = [(0, MINUTES_A_DAY)]
            else:
                wanted = self.hours.get(WEEKDAYS[day.weekday()], ())
                spans = sorted(interval_minutes(s, e) for s, e in wanted)
            midnight = datetime.combine(day, time(0), tzinfo=zone)
            for begin, finish in spans:
                # Wall-clock arithmetic on the aware datetime, then UTC: DST-safe.
                yield (
                    (midnight + timedelta(minutes=begin)).astimezone(UTC),
                    (midnight + timedelta(minutes=finish)).astimezone(UTC),
                )


def open_now(schedule: Schedule, now: datetime) -> bool:
    """Is the store open at ``now`` (an aware datetime)?"""
    if not schedule.is_open:
        return False
    local = now.astimezone(ZoneInfo(schedule.time_zone)).date()
    # Yesterday's intervals may run past midnight into today.
    first = local - timedelta(days=1)
    return any(s <= now < e for s, e in schedule.openings(first, 2))


def next_opening(schedule: Schedule, now: datetime) -> datetime | None:
    """When a store that is closed at ``now`` opens next (UTC), or None when nothing in its
    hours says so (the manager's switch is off, or no opening within ``HORIZON_DAYS``)."""
    if not schedule.is_open:
        return None
    local = now.astimezone(ZoneInfo(schedule.time_zone)).date()
    openings = schedule.openings(local - timedelta(days=1), HORIZON_DAYS)
    # In order of day, and within a day by start: the first start after now is the next.
    return next((s for s, _ in openings if s > now), None)
