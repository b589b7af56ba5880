"""Clocks emit the candidate times of a schedule, as in Prefect 1.

A clock's ``events(after)`` yields ``ClockEvent``s in time order, each strictly
after ``after`` (now by default), at or after the clock's ``start_date`` and at
or before its ``end_date``. Times are aware pendulum DateTimes in the start
date's timezone, UTC when there is none.

Example:
    >>> from datetime import timedelta
    >>> import pendulum
    >>> from cairnflow.schedules.clocks import IntervalClock
    >>> clock = IntervalClock(timedelta(hours=1), parameter_defaults={"x": 1})
    >>> event = next(clock.events(after=pendulum.datetime(2024, 1, 1, 9, 30)))
    >>> event.start_time.isoformat(), event.parameter_defaults
    ('2024-01-01T10:00:00+00:00', {'x': 1})
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pendulum
from croniter import CroniterBadDateError, croniter

__all__ = ["ClockEvent", "Clock", "IntervalClock", "CronClock", "DatesClock"]

# Prefect 1 anchors an IntervalClock without a start date here.
DEFAULT_ANCHOR = pendulum.datetime(2019, 1, 1, tz="UTC")
ONE_DAY = timedelta(days=1)


def _aware(dt: datetime | None) -> pendulum.DateTime | None:
    """A pendulum DateTime; a naive datetime is taken to be UTC."""
    return None if dt is None else pendulum.instance(dt)


def _by_time(op: Callable[[datetime, datetime], bool]) -> Callable[[ClockEvent, object], Any]:
    """An ordering method comparing start times with another event or a datetime."""
    def compare(self: ClockEvent, other: object) -> Any:
        if isinstance(other, ClockEvent):
            other = other.start_time
        return op(self.start_time, other) if isinstance(other, datetime) else NotImplemented
    return compare


class ClockEvent:
    """One time a clock fires, with the parameters and labels of that run.

    Events compare and sort by ``start_time``, also against plain datetimes.
    Two events are equal when time, parameter defaults and labels all match.

    Example:
        >>> import pendulum
        >>> e = ClockEvent(pendulum.datetime(2024, 1, 1), {"x": 1})
        >>> e == pendulum.datetime(2024, 1, 1), e < pendulum.datetime(2024, 1, 2)
        (True, True)
    """

    def __init__(self, start_time: datetime, parameter_defaults: dict | None = None,
                 labels: list[str] | None = None) -> None:
        self.start_time = pendulum.instance(start_time)
        self.parameter_defaults = dict(parameter_defaults or {})
        self.labels = labels

    def _key(self) -> tuple[Any, ...]:
        return (self.start_time, self.parameter_defaults, self.labels)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ClockEvent):
            return self._key() == other._key()
        if isinstance(other, datetime):
            return self.start_time == other
        return NotImplemented

    __lt__ = _by_time(operator.lt)
    __le__ = _by_time(operator.le)
    __gt__ = _by_time(operator.gt)
    __ge__ = _by_time(operator.ge)

    def __hash__(self) -> int:
        return hash(self.start_time)

    def __repr__(self) -> str:
        return f"ClockEvent({self.start_time.isoformat()}, {self.parameter_defaults!r})"


class Clock:
    """Base class of clocks; subclasses implement ``events``.

    Args:
        start_date: no event before this time; its timezone is the clock's.
        end_date: no event after this time.
        parameter_defaults: Parameter values for the runs this clock starts.
        labels: labels for the runs this clock starts.
    """

    def __init__(self, start_date: datetime | None = None, end_date: datetime | None = None,
                 parameter_defaults: dict | None = None, labels: list[str] | None = None):
        self.start_date = _aware(start_date)
        self.end_date = _aware(end_date)
        self.parameter_defaults = dict(parameter_defaults or {})
        self.labels = labels

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: start={self.start_date}, end={self.end_date}>"

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """Yield this clock's events strictly after ``after`` (default: now), in order."""
        raise NotImplementedError("Clock subclasses implement events(after)")

    def _emit(self, times: Iterable[pendulum.DateTime],
              after: datetime | None) -> Iterator[ClockEvent]:
        """Wrap increasing ``times`` in events, keeping those after ``after`` and in range."""
        after = _aware(after) or pendulum.now("UTC")
        for t in times:
            if self.end_date is not None and t > self.end_date:
                return
            if t > after and (self.start_date is None or t >= self.start_date):
                yield ClockEvent(t, self.parameter_defaults, self.labels)


class IntervalClock(Clock):
    """Fires every ``interval`` from ``start_date`` (default 2019-01-01 00:00 UTC).

    Intervals of a day or more step whole days on the start date's local calendar
    (the rest as elapsed time): a daily clock at 9am in America/New_York stays at
    9am across DST changes. Shorter intervals are elapsed time: an hourly clock
    fires every hour of UTC, so its local times jump or repeat at a DST change.

    Args:
        interval: time between events; must be positive.
        start_date, end_date, parameter_defaults, labels: as for ``Clock``.

    Raises:
        TypeError: if ``interval`` is not a timedelta.
        ValueError: if ``interval`` is zero or negative.

    Example:
        >>> from datetime import timedelta
        >>> import pendulum
        >>> clock = IntervalClock(timedelta(days=1), start_date=pendulum.datetime(2024, 1, 1, 9))
        >>> events = clock.events(after=pendulum.datetime(2024, 1, 5))
        >>> [next(events).start_time.isoformat() for _ in range(2)]
        ['2024-01-05T09:00:00+00:00', '2024-01-06T09:00:00+00:00']
    """

    def __init__(self, interval: timedelta, start_date: datetime | None = None,
                 end_date: datetime | None = None, parameter_defaults: dict | None = None,
                 labels: list[str] | None = None):
        if not isinstance(interval, timedelta):
            raise TypeError(f"IntervalClock interval must be a timedelta, got {interval!r}.")
        if interval <= timedelta(0):
            raise ValueError(f"IntervalClock interval must be greater than 0, got {interval}; "
                             "pass a positive timedelta such as timedelta(hours=1).")
        self.interval = interval
        super().__init__(start_date, end_date, parameter_defaults, labels)

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        after = _aware(after) or pendulum.now("UTC")
        return self._emit(self._times_from(after), after)

    def _times_from(self, after: pendulum.DateTime) -> Iterator[pendulum.DateTime]:
        anchor = self.start_date or DEFAULT_ANCHOR
        # An estimate, one step early: day-aware steps can be an hour off elapsed time.
        k = max(0, int((after - anchor).total_seconds() // self.interval.total_seconds()) - 1)
        while True:
            yield self._nth(anchor, k)
            k += 1

    def _nth(self, anchor: pendulum.DateTime, k: int) -> pendulum.DateTime:
        """anchor + k intervals: whole days on the local calendar, the rest as elapsed time."""
        step = self.interval * k
        days = step.days if self.interval >= ONE_DAY else 0
        local = anchor.add(days=days)
        return (local.in_tz("UTC") + (step - timedelta(days=days))).in_tz(anchor.tz)


class CronClock(Clock):
    """Fires on a cron expression, read in the start date's timezone (default UTC).

    Cron follows the wall clock: in a timezone with DST, "0 9 * * *" stays at 9am;
    a time skipped when clocks go forward fires just after the jump, and a time
    repeated when they go back fires once, the first time it is reached.

    Args:
        cron: a cron expression, e.g. ``"0 9 * * 1-5"``.
        start_date, end_date, parameter_defaults, labels: as for ``Clock``.
        day_or: True (default) fires when day-of-month OR day-of-week matches,
            as cron does; False requires both.

    Raises:
        ValueError: if ``cron`` is not a valid cron expression.

    Example:
        >>> import pendulum
        >>> clock = CronClock("0 9 * * 1-5")
        >>> friday_noon = pendulum.datetime(2024, 1, 5, 12)
        >>> next(clock.events(after=friday_noon)).start_time.format("dddd HH:mm")
        'Monday 09:00'
    """

    def __init__(self, cron: str, start_date: datetime | None = None,
                 end_date: datetime | None = None, parameter_defaults: dict | None = None,
                 labels: list[str] | None = None, day_or: bool | None = None):
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise ValueError(f"Invalid cron string: {cron!r}. Expected five fields "
                             "'minute hour day-of-month month day-of-week', e.g. '0 9 * * 1-5'.")
        self.cron = cron
        self.day_or = True if day_or is None else day_or
        super().__init__(start_date, end_date, parameter_defaults, labels)

    @property
    def tz(self) -> pendulum.Timezone | pendulum.FixedTimezone:
        return self.start_date.tz if self.start_date is not None else pendulum.UTC

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        after = _aware(after) or pendulum.now("UTC")
        return self._emit(self._times_from(after), after)

    def _times_from(self, after: pendulum.DateTime) -> Iterator[pendulum.DateTime]:
        if self.start_date is not None:  # let croniter find the start date itself
            after = max(after, self.start_date - timedelta(seconds=1))
        # croniter walks naive wall-clock time; DST is resolved in _localize.
        cron = croniter(self.cron, after.in_tz(self.tz).naive(), day_or=self.day_or)
        previous = None
        while True:
            try:
                t = _localize(cron.get_next(datetime), self.tz)
            except CroniterBadDateError:  # e.g. "0 0 31 2 *" never fires
                return
            if previous is None or t > previous:  # a skipped hour can map onto the next
                yield t
                previous = t


def _localize(naive: datetime, tz: Any) -> pendulum.DateTime:
    """Wall time in ``tz``: first occurrence if repeated, shifted forward if skipped."""
    fields = (naive.year, naive.month, naive.day, naive.hour, naive.minute, naive.second,
              naive.microsecond)
    first = pendulum.datetime(*fields, tz=tz, fold=0)
    return first if first.naive() == naive else pendulum.datetime(*fields, tz=tz, fold=1)


class DatesClock(Clock):
    """Fires on each of the given dates.

    Example:
        >>> import pendulum
        >>> clock = DatesClock([pendulum.datetime(2024, 6, 1), pendulum.datetime(2024, 1, 1)])
        >>> [e.start_time.month for e in clock.events(after=pendulum.datetime(2023, 1, 1))]
        [1, 6]
    """

    def __init__(self, dates: list[datetime], parameter_defaults: dict | None = None,
                 labels: list[str] | None = None):
        if not dates:
            raise ValueError("DatesClock needs at least one date.")
        self.dates = sorted(pendulum.instance(d) for d in dates)
        super().__init__(self.dates[0], self.dates[-1], parameter_defaults, labels)

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        return self._emit(self.dates, after)
