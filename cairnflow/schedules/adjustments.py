"""Schedule adjustments: functions that move a datetime that passed the filters.

Example:
    >>> from datetime import timedelta
    >>> import pendulum
    >>> from cairnflow.schedules import adjustments
    >>> saturday = pendulum.datetime(2024, 1, 6, 9)
    >>> adjustments.next_weekday(saturday).format("dddd")
    'Monday'
    >>> adjustments.add(timedelta(hours=1))(saturday).hour
    10
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pendulum

from cairnflow.schedules.filters import is_weekday

__all__ = ["Adjustment", "add", "next_weekday"]

Adjustment = Callable[[datetime], datetime]


def add(interval: timedelta) -> Adjustment:
    """An adjustment that adds ``interval`` to each time."""
    return lambda dt: pendulum.instance(dt) + interval


def next_weekday(dt: datetime) -> pendulum.DateTime:
    """Move a Saturday or Sunday to the following Monday; weekdays are unchanged."""
    moved = pendulum.instance(dt)
    while not is_weekday(moved):
        moved = moved.add(days=1)
    return moved
