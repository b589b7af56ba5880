"""Schedule: clocks propose times, filters keep some, adjustments move them.

``Schedule.next`` merges the events of all clocks in time order, drops duplicate
events, keeps those that pass every ``filters``, at least one ``or_filters``
(when given) and no ``not_filters``, then applies ``adjustments`` in sequence.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

import pendulum

from cairnflow.schedules.adjustments import Adjustment
from cairnflow.schedules.clocks import Clock, ClockEvent, CronClock, IntervalClock
from cairnflow.schedules.filters import Filter

__all__ = ["Schedule", "IntervalSchedule", "CronSchedule"]

# Clocks are endless and filters may reject nearly everything, so, as in Prefect 1,
# next() gives up after looking at this many candidate events.
MAX_CANDIDATES = 10_000


def _start_time(event: ClockEvent) -> pendulum.DateTime:
    return event.start_time  # ties then keep clock order, so merging is deterministic


class Schedule:
    """When a flow runs: one or more clocks, optionally filtered and adjusted.

    Args:
        clocks: the clocks whose events are merged.
        filters: every one must return True for an event to be kept.
        or_filters: when given, at least one must return True.
        not_filters: none may return True.
        adjustments: applied in order to each kept time.

    Example:
        >>> from datetime import time, timedelta
        >>> import pendulum
        >>> from cairnflow.schedules import Schedule, clocks, filters
        >>> schedule = Schedule(
        ...     clocks=[clocks.IntervalClock(timedelta(hours=1))],
        ...     filters=[filters.is_weekday],
        ...     or_filters=[filters.at_time(time(9)), filters.at_time(time(17))],
        ... )
        >>> friday_noon = pendulum.datetime(2024, 1, 5, 12)
        >>> [t.format("ddd HH:mm") for t in schedule.next(3, after=friday_noon)]
        ['Fri 17:00', 'Mon 09:00', 'Mon 17:00']
    """

    def __init__(self, clocks: Iterable[Clock], filters: list[Filter] | None = None,
                 or_filters: list[Filter] | None = None, not_filters: list[Filter] | None = None,
                 adjustments: list[Adjustment] | None = None):
        self.clocks = list(clocks)
        for clock in self.clocks:
            if not isinstance(clock, Clock):
                raise TypeError(f"Schedule clocks must be Clock instances, got {clock!r}; "
                                "use e.g. clocks.IntervalClock(timedelta(hours=1)).")
        self.filters = list(filters or [])
        self.or_filters = list(or_filters or [])
        self.not_filters = list(not_filters or [])
        self.adjustments = list(adjustments or [])

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.clocks}>"

    @property
    def start_date(self) -> pendulum.DateTime | None:
        """The earliest start date of the clocks, if any has one."""
        return min((c.start_date for c in self.clocks if c.start_date), default=None)

    @property
    def end_date(self) -> pendulum.DateTime | None:
        """The latest end date of the clocks, if any has one."""
        return max((c.end_date for c in self.clocks if c.end_date), default=None)

    def next(self, n: int, after: datetime | None = None,
             return_events: bool = False) -> list[pendulum.DateTime] | list[ClockEvent]:
        """The next ``n`` scheduled times strictly after ``after`` (default: now).

        Fewer are returned when the clocks end, or when ``MAX_CANDIDATES`` events
        were examined first.

        Args:
            n: how many times to return.
            after: only times after this one; a naive datetime is taken as UTC.
            return_events: return ``ClockEvent``s, which carry each clock's
                ``parameter_defaults`` and ``labels``, instead of datetimes.
        """
        after = pendulum.instance(after) if after is not None else pendulum.now("UTC")
        found: list[ClockEvent] = []
        candidates = itertools.islice(self._clock_events(after), MAX_CANDIDATES)
        for event in candidates if n > 0 else ():
            if not self._passes_filters(event.start_time):
                continue
            event = ClockEvent(self._adjust(event.start_time), event.parameter_defaults,
                               event.labels)
            if return_events or all(e.start_time != event.start_time for e in found):
                found.append(event)
            if len(found) == n:
                break
        return found if return_events else [e.start_time for e in found]

    def _clock_events(self, after: pendulum.DateTime) -> Iterator[ClockEvent]:
        """All clocks' events merged in time order, each distinct event once."""
        same_time: list[ClockEvent] = []
        for event in heapq.merge(*(c.events(after) for c in self.clocks), key=_start_time):
            if same_time and event.start_time != same_time[0].start_time:
                same_time = []
            if event not in same_time:
                same_time.append(event)
                yield event

    def _passes_filters(self, dt: pendulum.DateTime) -> bool:
        return (all(f(dt) for f in self.filters)
                and (not self.or_filters or any(f(dt) for f in self.or_filters))
                and not any(f(dt) for f in self.not_filters))

    def _adjust(self, dt: pendulum.DateTime) -> pendulum.DateTime:
        for adjust in self.adjustments:
            dt = adjust(dt)
        return pendulum.instance(dt)


class IntervalSchedule(Schedule):
    """A Schedule with one ``IntervalClock`` (Prefect 1's argument order).

    Example:
        >>> from datetime import timedelta
        >>> import pendulum
        >>> schedule = IntervalSchedule(interval=timedelta(minutes=30))
        >>> after = pendulum.datetime(2024, 1, 1, 9, 10)
        >>> [t.format("HH:mm") for t in schedule.next(2, after=after)]
        ['09:30', '10:00']
    """

    def __init__(self, start_date: datetime | None = None, interval: timedelta | None = None,
                 end_date: datetime | None = None):
        super().__init__([IntervalClock(interval, start_date, end_date)])  # type: ignore[arg-type]


class CronSchedule(Schedule):
    """A Schedule with one ``CronClock``.

    Example:
        >>> import pendulum
        >>> paris = pendulum.datetime(2024, 1, 1, tz="Europe/Paris")
        >>> schedule = CronSchedule("30 6 * * *", start_date=paris)
        >>> schedule.next(1, after=pendulum.datetime(2024, 7, 1))[0].isoformat()
        '2024-07-01T06:30:00+02:00'
    """

    def __init__(self, cron: str, start_date: datetime | None = None,
                 end_date: datetime | None = None, day_or: bool | None = None):
        super().__init__([CronClock(cron, start_date, end_date, day_or=day_or)])
