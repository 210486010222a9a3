"""The single clock of bubble-manager.

Every piece of code asks `clock.utcnow()` for the time, so tests can drive a study through its
life by patching this one function.
"""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.timezone.utc)


def start_of_day(day: dt.date) -> dt.datetime:
    """Midnight UTC at the start of `day`."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def end_of_day(day: dt.date) -> dt.datetime:
    """The instant a day ends in UTC (midnight of the following day)."""
    return start_of_day(day) + dt.timedelta(days=1)


def isoformat(moment: dt.datetime) -> str:
    """Canonical ISO 8601 form, UTC with a `Z`, microseconds kept."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: bubble-manager only handles timezone-aware UTC times")
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> dt.datetime:
    """Parse what `isoformat` writes (or any ISO 8601 time with an offset) into aware UTC."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no timezone; write it in UTC with a trailing Z")
    return value.astimezone(dt.timezone.utc)
