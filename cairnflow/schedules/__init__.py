"""Schedules decide when a flow runs; the layout and names are Prefect 1's.

``clocks`` emit candidate times (``IntervalClock``, ``CronClock``, ``DatesClock``),
``filters`` keep some of them, ``adjustments`` move them, and a ``Schedule``
combines all three. ``IntervalSchedule`` and ``CronSchedule`` are one-clock
Schedules. Every time is an aware pendulum DateTime.

Example:
    >>> from datetime import timedelta
    >>> import pendulum
    >>> from cairnflow import schedules
    >>> schedule = schedules.Schedule(clocks=[
    ...     schedules.clocks.CronClock("0 9 * * 1-5", parameter_defaults={"report": "daily"}),
    ...     schedules.clocks.IntervalClock(timedelta(days=7),
    ...                                    parameter_defaults={"report": "weekly"}),
    ... ])
    >>> events = schedule.next(3, after=pendulum.datetime(2024, 1, 1), return_events=True)
    >>> [(e.start_time.format("ddd HH:mm"), e.parameter_defaults["report"]) for e in events]
    [('Mon 09:00', 'daily'), ('Tue 00:00', 'weekly'), ('Tue 09:00', 'daily')]
"""

from __future__ import annotations

from cairnflow.schedules import adjustments, clocks, filters
from cairnflow.schedules.schedules import CronSchedule, IntervalSchedule, Schedule

__all__ = ["Schedule", "IntervalSchedule", "CronSchedule", "clocks", "filters", "adjustments"]
