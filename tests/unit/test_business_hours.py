"""SLA due times in business hours (bot.policy.add_business_time), with hypothesis for the
properties and worked examples for the edges."""
from __future__ import annotations

import dataclasses
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from bot.policy import add_business_time, due_times
from config.content import BusinessHours, load_content

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEKDAYS = BusinessHours(frozenset({1, 2, 3, 4, 5}), time(9), time(18))


def local(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


def test_worked_examples() -> None:
    # 2026-12-04 is a Friday.
    assert add_business_time(local(2026, 12, 4, 10), timedelta(hours=2), WEEKDAYS) == local(2026, 12, 4, 12)
    # Two hours at 17:00 on Friday: one hour Friday, one Monday morning.
    assert add_business_time(local(2026, 12, 4, 17), timedelta(hours=2), WEEKDAYS) == local(2026, 12, 7, 10)
    # Opened on Saturday night: the clock starts on Monday at 9.
    assert add_business_time(local(2026, 12, 5, 23), timedelta(minutes=15), WEEKDAYS) == local(2026, 12, 7, 9, 15)
    # Before opening: from 9 the same day; 48 business hours = five days and a third.
    assert add_business_time(local(2026, 12, 7, 7), timedelta(hours=48), WEEKDAYS) == local(2026, 12, 14, 12)
    # In UTC in, UTC out.
    utc = local(2026, 12, 4, 10).astimezone(timezone.utc)
    assert add_business_time(utc, timedelta(hours=1), WEEKDAYS).tzinfo == timezone.utc


moments = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                       timezones=st.just(timezone.utc))


@settings(max_examples=300, deadline=None)
@given(moments, st.integers(min_value=1, max_value=60 * 24 * 10), st.integers(min_value=1, max_value=600))
def test_the_due_time_is_in_business_hours_later_by_at_least_the_span(start: datetime, minutes: int, more: int) -> None:
    span = timedelta(minutes=minutes)
    due = add_business_time(start, span, WEEKDAYS)
    assert due >= start + span  # business time never runs faster than the clock
    local_due = due.astimezone(SHANGHAI)
    assert local_due.isoweekday() in WEEKDAYS.days and time(9) < local_due.time() <= time(18)
    assert add_business_time(start, span + timedelta(minutes=more), WEEKDAYS) > due  # more time, later


def test_without_business_hours_the_clock_runs_around_the_clock() -> None:
    rules = load_content().rules
    now = local(2026, 12, 5, 23).astimezone(timezone.utc)
    assert rules.business_hours is None
    assert due_times("P1", now, rules) == (now + timedelta(minutes=15), now + timedelta(hours=4))
    weekdays = dataclasses.replace(rules, business_hours=WEEKDAYS)
    first, resolution = due_times("P1", now, weekdays)
    assert first.astimezone(SHANGHAI) == local(2026, 12, 7, 9, 15) and resolution.astimezone(SHANGHAI) == local(
        2026, 12, 7, 13)


def test_a_bad_business_hours_setting_is_a_clear_error(tmp_path) -> None:
    import pytest

    from config import ConfigError
    from config.content import load_rules

    source = (Path(__file__).parents[2] / "config" / "bot.yaml").read_text(encoding="utf-8")
    for value, problem in (('{open: "22:00", close: "09:00"}', "close must be after open"),
                           ('{days: [0, 8], open: "09:00", close: "18:00"}', "ISO weekdays"),
                           ('{open: "9 am", close: "18:00"}', "HH:MM"),
                           ('{open: "09:00", close: "18:00", zone: Mars/Base}', "IANA")):
        bad = tmp_path / "bot.yaml"
        bad.write_text(source + f"\nsla_business_hours: {value}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=problem):
            load_rules(bad)
    good = tmp_path / "bot.yaml"
    good.write_text(source + '\nsla_business_hours: {days: [1, 2, 3, 4, 5], open: "09:00", close: "18:00"}\n',
                    encoding="utf-8")
    assert load_rules(good).business_hours == WEEKDAYS
