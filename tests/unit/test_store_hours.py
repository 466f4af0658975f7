"""Opening hours: open now and next opening, in the store's time zone (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from eatcloud.domain.hours import (
    Schedule,
    interval_minutes,
    known_time_zone,
    next_opening,
    open_now,
)

SEOUL = ZoneInfo("Asia/Seoul")
WEEKDAYS = {"mon": [("09:00", "14:00"), ("17:00", "22:00")], "fri": [("18:00", "02:00")]}


def _seoul(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SEOUL)


def test_a_store_without_hours_is_open_whenever_its_manager_says_so() -> None:
    now = _seoul(2026, 12, 7, 3, 0)
    assert open_now(Schedule(is_open=True, time_zone="Asia/Seoul"), now)
    assert not open_now(Schedule(is_open=False, time_zone="Asia/Seoul"), now)
    assert next_opening(Schedule(is_open=False, time_zone="Asia/Seoul"), now) is None


@pytest.mark.parametrize(
    ("hour", "minute", "expected"),
    [(8, 59, False), (9, 0, True), (13, 59, True), (14, 0, False), (17, 30, True), (22, 0, False)],
)
def test_a_day_has_several_intervals_each_open_from_its_start_to_just_before_its_end(
    hour: int, minute: int, expected: bool
) -> None:
    schedule = Schedule(is_open=True, time_zone="Asia/Seoul", hours=WEEKDAYS)
    assert open_now(schedule, _seoul(2026, 12, 7, hour, minute)) is expected  # a Monday


def test_a_day_missing_from_the_week_has_no_hours() -> None:
    schedule = Schedule(is_open=True, time_zone="Asia/Seoul", hours=WEEKDAYS)
    assert not open_now(schedule, _seoul(2026, 12, 8, 12, 0))  # Tuesday


def test_an_interval_past_midnight_belongs_to_the_day_it_starts() -> None:
    schedule = Schedule(is_open=True, time_zone="Asia/Seoul", hours=WEEKDAYS)
    assert open_now(schedule, _seoul(2026, 12, 11, 23, 0))  # Friday night
    assert open_now(schedule, _seoul(2026, 12, 12, 1, 59))  # Saturday, Friday's interval
    assert not open_now(schedule, _seoul(2026, 12, 12, 2, 0))
    assert not open_now(schedule, _seoul(2026, 12, 12, 18, 30))  # Saturday has none of its own


def test_a_closed_date_cancels_the_intervals_that_start_on_it() -> None:
    closed = Schedule(
        is_open=True,
        time_zone="Asia/Seoul",
        hours=WEEKDAYS,
        closed_dates=frozenset({date(2026, 12, 7), date(2026, 12, 12)}),
    )
    assert not open_now(closed, _seoul(2026, 12, 7, 10, 0))
    # Friday's interval runs on into a closed Saturday: it is Friday's.
    assert open_now(closed, _seoul(2026, 12, 12, 1, 0))
    always = Schedule(
        is_open=True, time_zone="Asia/Seoul", closed_dates=frozenset({date(2026, 12, 25)})
    )
    assert not open_now(always, _seoul(2026, 12, 25, 12, 0))
    assert next_opening(always, _seoul(2026, 12, 25, 12, 0)) == _seoul(2026, 12, 26, 0, 0)


def test_hours_are_wall_clock_times_in_the_store_s_zone() -> None:
    hours = {"mon": [("09:00", "10:00")]}
    instant = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)  # 09:30 in Seoul, 01:30 in Paris
    assert open_now(Schedule(is_open=True, time_zone="Asia/Seoul", hours=hours), instant)
    assert not open_now(Schedule(is_open=True, time_zone="Europe/Paris", hours=hours), instant)


def test_hours_hold_across_a_daylight_saving_change() -> None:
    # New York springs forward on Sunday 2026-03-08 at 02:00 and falls back on 2026-11-01.
    ny = ZoneInfo("America/New_York")
    hours = {"sun": [("01:00", "04:00")], "sat": [("22:00", "03:00")]}
    schedule = Schedule(is_open=True, time_zone="America/New_York", hours=hours)
    # 01:00 EST to 04:00 EDT is two real hours: 06:00 to 08:00 UTC.
    assert open_now(schedule, datetime(2026, 3, 8, 7, 59, tzinfo=UTC))
    assert not open_now(schedule, datetime(2026, 3, 8, 8, 0, tzinfo=UTC))
    assert open_now(schedule, datetime(2026, 3, 8, 3, 30, tzinfo=ny))  # 03:30 EDT
    # Fall back: 01:00 EDT to 04:00 EST is four real hours: 05:00 to 09:00 UTC.
    assert open_now(schedule, datetime(2026, 11, 1, 8, 59, tzinfo=UTC))
    assert not open_now(schedule, datetime(2026, 11, 1, 9, 0, tzinfo=UTC))


def test_next_opening_is_the_next_start_in_utc() -> None:
    schedule = Schedule(is_open=True, time_zone="Asia/Seoul", hours=WEEKDAYS)
    assert next_opening(schedule, _seoul(2026, 12, 7, 15, 0)) == _seoul(2026, 12, 7, 17, 0)
    assert next_opening(schedule, _seoul(2026, 12, 8, 12, 0)) == _seoul(2026, 12, 11, 18, 0)
    nothing = Schedule(is_open=True, time_zone="Asia/Seoul", hours={})
    assert next_opening(nothing, _seoul(2026, 12, 8, 12, 0)) is None


def test_intervals_and_zones_are_validated() -> None:
    assert interval_minutes("18:00", "02:00") == (18 * 60, 26 * 60)
    assert interval_minutes("00:00", "24:00") == (0, 24 * 60)
    for start, end in (("09:00", "09:00"), ("24:00", "01:00"), ("9:00", "10:00"), ("10:60", "x")):
        with pytest.raises(ValueError):
            interval_minutes(start, end)
    assert known_time_zone("Europe/Paris") == "Europe/Paris"
    for bad in ("", "Mars/Olympus", "../../etc/passwd", "/etc/localtime"):
        with pytest.raises(ValueError):
            known_time_zone(bad)
