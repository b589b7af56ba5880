"""Schedule filters: functions of a candidate datetime that return True to keep it.

Plain filters (``is_weekday``) are passed as they are; the others are factories
that return a filter (``between_times(time(9), time(17))``). Times and dates are
read in the candidate's own timezone, which is its clock's.

Example:
    >>> from datetime import time
    >>> import pendulum
    >>> from cairnflow.schedules import filters
    >>> saturday_10am = pendulum.datetime(2024, 1, 6, 10)
    >>> filters.is_weekend(saturday_10am), filters.between_times(time(9), time(17))(saturday_10am)
    (True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time

import pendulum

__all__ = [
    "Filter", "on_datetime", "on_date", "at_time", "between_datetimes", "between_dates",
    "between_times", "is_weekday", "is_weekend", "is_day_of_week", "is_month_start",
    "is_month_end",
]

Filter = Callable[[datetime], bool]


def _in_range(value: date | time | tuple, start: date | time | tuple,
              end: date | time | tuple) -> bool:
    """Inclusive range check; a start after the end wraps around (22:00 to 06:00)."""
    if start <= end:
        return start <= value <= end
    return value >= start or value <= end


def on_datetime(dt: datetime) -> Filter:
    """Keep only the event at exactly ``dt``."""
    return lambda candidate: candidate == dt


def on_date(month: int, day: int) -> Filter:
    """Keep events on ``month``/``day`` of any year."""
    return lambda dt: (dt.month, dt.day) == (month, day)


def at_time(t: time) -> Filter:
    """Keep events at wall-clock time ``t``."""
    return lambda dt: dt.time() == t


def between_datetimes(start: datetime, end: datetime) -> Filter:
    """Keep events from ``start`` to ``end``, inclusive."""
    return lambda dt: start <= dt <= end


def between_dates(start_month: int, start_day: int, end_month: int, end_day: int) -> Filter:
    """Keep events between two days of any year, inclusive; (10, 15, 3, 31) spans New Year."""
    return lambda dt: _in_range((dt.month, dt.day), (start_month, start_day), (end_month, end_day))


def between_times(start: time, end: time) -> Filter:
    """Keep events between two wall-clock times, inclusive; may span midnight."""
    return lambda dt: _in_range(dt.time(), start, end)


def is_weekday(dt: datetime) -> bool:
    """Keep Monday to Friday."""
    return dt.weekday() < 5


def is_weekend(dt: datetime) -> bool:
    """Keep Saturday and Sunday."""
    return dt.weekday() > 4


def is_day_of_week(day_of_week: int) -> Filter:
    """Keep one weekday, numbered as ``datetime.weekday()``: Monday is 0, Sunday 6."""
    return lambda dt: dt.weekday() == day_of_week


def is_month_start(dt: datetime) -> bool:
    """Keep the first day of each month."""
    return dt.day == 1


def is_month_end(dt: datetime) -> bool:
    """Keep the last day of each month."""
    return dt.day == pendulum.instance(dt).days_in_month
