"""Schedules, clocks, filters and adjustments behave as Prefect 1's did."""

from __future__ import annotations

import doctest
import itertools
from datetime import datetime, time, timedelta

import pendulum
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairnflow import schedules
from cairnflow.schedules import adjustments, clocks, filters
from cairnflow.schedules.clocks import ClockEvent, CronClock, DatesClock, IntervalClock
from cairnflow.schedules.schedules import CronSchedule, IntervalSchedule, Schedule

NY = "America/New_York"


def utc(*args: int) -> pendulum.DateTime:
    return pendulum.datetime(*args, tz="UTC")


def ny(*args: int) -> pendulum.DateTime:
    return pendulum.datetime(*args, tz=NY)


def first(n: int, clock: clocks.Clock, after: datetime) -> list[pendulum.DateTime]:
    return [e.start_time for e in itertools.islice(clock.events(after=after), n)]


# --- IntervalClock ---------------------------------------------------------------------

def test_interval_clock_events_are_spaced_by_the_interval():
    clock = IntervalClock(timedelta(minutes=15), start_date=utc(2024, 1, 1))
    times = first(4, clock, after=utc(2024, 1, 1, 10, 1))
    assert times == [utc(2024, 1, 1, 10, 15), utc(2024, 1, 1, 10, 30),
                     utc(2024, 1, 1, 10, 45), utc(2024, 1, 1, 11)]


def test_interval_clock_is_anchored_at_its_start_date():
    clock = IntervalClock(timedelta(hours=1), start_date=utc(2024, 1, 1, 9, 15))
    assert first(1, clock, after=utc(2024, 3, 1, 12)) == [utc(2024, 3, 1, 12, 15)]


def test_interval_clock_without_start_date_is_anchored_at_2019_01_01_utc():
    clock = IntervalClock(timedelta(days=7))  # 2019-01-01 was a Tuesday
    assert first(1, clock, after=utc(2024, 1, 1)) == [utc(2024, 1, 2)]


def test_interval_clock_first_event_is_start_date_when_after_is_earlier():
    clock = IntervalClock(timedelta(hours=1), start_date=utc(2030, 5, 1, 8))
    assert first(1, clock, after=utc(2024, 1, 1)) == [utc(2030, 5, 1, 8)]


def test_interval_clock_event_exactly_at_after_is_skipped():
    clock = IntervalClock(timedelta(hours=1), start_date=utc(2024, 1, 1))
    assert first(1, clock, after=utc(2024, 1, 1, 5)) == [utc(2024, 1, 1, 6)]


def test_interval_clock_stops_after_end_date_inclusive():
    clock = IntervalClock(timedelta(hours=1), start_date=utc(2024, 1, 1),
                          end_date=utc(2024, 1, 1, 3))
    assert first(10, clock, after=utc(2023, 12, 31)) == [utc(2024, 1, 1, h) for h in range(4)]


@pytest.mark.parametrize("interval", [timedelta(0), timedelta(seconds=-1)])
def test_interval_clock_rejects_non_positive_interval_with_clear_message(interval):
    with pytest.raises(ValueError, match="interval must be greater than 0"):
        IntervalClock(interval)


def test_interval_clock_rejects_a_number_instead_of_a_timedelta():
    with pytest.raises(TypeError, match="must be a timedelta"):
        IntervalClock(60)  # type: ignore[arg-type]


def test_daily_interval_clock_keeps_local_wall_time_across_dst():
    clock = IntervalClock(timedelta(days=1), start_date=ny(2024, 3, 1, 9))
    times = first(3, clock, after=ny(2024, 3, 9))
    assert [t.hour for t in times] == [9, 9, 9]
    assert [t.in_tz("UTC").hour for t in times] == [14, 13, 13]


def test_hourly_interval_clock_counts_elapsed_hours_across_dst():
    clock = IntervalClock(timedelta(hours=1), start_date=ny(2024, 3, 1))
    times = first(3, clock, after=ny(2024, 3, 10, 0, 30))
    assert [t.in_tz(NY).hour for t in times] == [1, 3, 4]
    assert times[1] - times[0] == timedelta(hours=1)


def test_daily_interval_clock_does_not_miss_the_first_day_after_fall_back():
    clock = IntervalClock(timedelta(days=1), start_date=ny(2024, 7, 1, 9))
    assert first(1, clock, after=ny(2024, 12, 1, 8, 30)) == [ny(2024, 12, 1, 9)]


# --- CronClock -------------------------------------------------------------------------

def test_cron_clock_weekdays_at_9_skip_the_weekend():
    clock = CronClock("0 9 * * 1-5")
    times = first(3, clock, after=utc(2024, 1, 4, 12))  # a Thursday
    assert times == [utc(2024, 1, 5, 9), utc(2024, 1, 8, 9), utc(2024, 1, 9, 9)]


def test_cron_clock_keeps_local_time_across_dst_in_new_york():
    clock = CronClock("0 9 * * *", start_date=ny(2024, 3, 1))
    times = first(3, clock, after=ny(2024, 3, 9))
    assert times == [ny(2024, 3, 9, 9), ny(2024, 3, 10, 9), ny(2024, 3, 11, 9)]
    assert [t.in_tz("UTC").hour for t in times] == [14, 13, 13]


def test_cron_clock_hourly_fires_just_after_the_skipped_spring_forward_hour():
    clock = CronClock("0 * * * *", start_date=ny(2024, 3, 1))
    times = first(3, clock, after=ny(2024, 3, 10, 0, 30))
    assert [t.isoformat() for t in times] == [
        "2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-10T04:00:00-04:00"]


def test_cron_clock_hourly_fires_once_per_wall_clock_hour_at_fall_back():
    clock = CronClock("0 * * * *", start_date=ny(2024, 11, 1))
    times = first(3, clock, after=ny(2024, 11, 3, 0, 30))
    assert [t.isoformat() for t in times] == [
        "2024-11-03T01:00:00-04:00", "2024-11-03T02:00:00-05:00", "2024-11-03T03:00:00-05:00"]
    assert times[1] - times[0] == timedelta(hours=2)


def test_cron_clock_includes_a_start_date_that_matches():
    clock = CronClock("0 9 * * *", start_date=utc(2030, 1, 1, 9))
    assert first(1, clock, after=utc(2024, 1, 1)) == [utc(2030, 1, 1, 9)]


def test_cron_clock_stops_after_end_date():
    clock = CronClock("0 0 * * *", end_date=utc(2024, 1, 3))
    assert first(10, clock, after=utc(2024, 1, 1)) == [utc(2024, 1, 2), utc(2024, 1, 3)]


def test_cron_clock_rejects_invalid_cron_naming_the_expression():
    with pytest.raises(ValueError, match=r"Invalid cron string: 'every day at 9'"):
        CronClock("every day at 9")


def test_cron_clock_day_or_false_requires_both_day_fields():
    clock = CronClock("0 0 13 * 5", day_or=False)  # Friday the 13th
    assert first(2, clock, after=utc(2024, 1, 1)) == [utc(2024, 9, 13), utc(2024, 12, 13)]


def test_cron_clock_that_can_never_fire_yields_nothing():
    assert first(1, CronClock("0 0 31 2 *"), after=utc(2024, 1, 1)) == []


# --- DatesClock and ClockEvent ---------------------------------------------------------

def test_dates_clock_yields_its_dates_after_after_in_order():
    clock = DatesClock([utc(2024, 3, 1), utc(2024, 1, 1), utc(2024, 2, 1)])
    assert first(5, clock, after=utc(2024, 1, 1)) == [utc(2024, 2, 1), utc(2024, 3, 1)]


def test_clock_event_compares_and_sorts_as_its_start_time():
    later, earlier = ClockEvent(utc(2024, 1, 2)), ClockEvent(utc(2024, 1, 1))
    assert sorted([later, earlier]) == [earlier, later]
    assert earlier == utc(2024, 1, 1) and utc(2024, 1, 1) == earlier
    assert earlier < utc(2024, 1, 2) < ClockEvent(utc(2024, 1, 3))


def test_clock_events_at_one_time_with_different_parameters_are_not_equal():
    assert ClockEvent(utc(2024, 1, 1), {"x": 1}) != ClockEvent(utc(2024, 1, 1), {"x": 2})


# --- Schedule --------------------------------------------------------------------------

def test_schedule_merges_two_clocks_in_order_without_duplicates():
    schedule = Schedule(clocks=[
        IntervalClock(timedelta(hours=2), start_date=utc(2024, 1, 1)),
        IntervalClock(timedelta(hours=3), start_date=utc(2024, 1, 1)),
    ])
    hours = [t.hour for t in schedule.next(6, after=utc(2024, 1, 1))]
    assert hours == [2, 3, 4, 6, 8, 9]


def test_schedule_keeps_events_that_differ_only_in_parameter_defaults():
    schedule = Schedule(clocks=[
        IntervalClock(timedelta(hours=1), parameter_defaults={"x": 1}),
        IntervalClock(timedelta(hours=1), parameter_defaults={"x": 2}),
    ])
    events = schedule.next(2, after=utc(2024, 1, 1), return_events=True)
    assert [(e.start_time, e.parameter_defaults) for e in events] == [
        (utc(2024, 1, 1, 1), {"x": 1}), (utc(2024, 1, 1, 1), {"x": 2})]


def test_schedule_next_datetimes_are_unique_even_when_events_differ():
    schedule = Schedule(clocks=[
        IntervalClock(timedelta(hours=1), parameter_defaults={"x": 1}),
        IntervalClock(timedelta(hours=1), parameter_defaults={"x": 2}),
    ])
    assert schedule.next(2, after=utc(2024, 1, 1)) == [utc(2024, 1, 1, 1), utc(2024, 1, 1, 2)]


def test_schedule_filters_keep_only_matching_times():
    schedule = Schedule(clocks=[IntervalClock(timedelta(days=1))], filters=[filters.is_weekend])
    days = [t.format("ddd") for t in schedule.next(4, after=utc(2024, 1, 1))]
    assert days == ["Sat", "Sun", "Sat", "Sun"]


def test_schedule_needs_one_or_filter_and_no_not_filter():
    schedule = Schedule(
        clocks=[IntervalClock(timedelta(hours=1))],
        or_filters=[filters.at_time(time(9)), filters.at_time(time(17))],
        not_filters=[filters.is_weekend],
    )
    times = schedule.next(3, after=utc(2024, 1, 5, 12))  # a Friday
    assert times == [utc(2024, 1, 5, 17), utc(2024, 1, 8, 9), utc(2024, 1, 8, 17)]


def test_schedule_applies_adjustments_in_order_after_filtering():
    schedule = Schedule(
        clocks=[IntervalClock(timedelta(days=1))],
        filters=[filters.is_weekend],
        adjustments=[adjustments.next_weekday, adjustments.add(timedelta(hours=9))],
    )
    assert schedule.next(1, after=utc(2024, 1, 1)) == [utc(2024, 1, 8, 9)]


def test_clock_parameter_defaults_and_labels_are_carried_on_events():
    clock = CronClock("0 6 * * *", parameter_defaults={"region": "eu"}, labels=["etl"])
    (event,) = Schedule(clocks=[clock]).next(1, after=utc(2024, 1, 1), return_events=True)
    assert (event.start_time, event.parameter_defaults, event.labels) == (
        utc(2024, 1, 1, 6), {"region": "eu"}, ["etl"])


def test_schedule_next_gives_up_after_max_candidates_when_filters_reject_all(monkeypatch):
    monkeypatch.setattr(schedules.schedules, "MAX_CANDIDATES", 50)
    seen: list[datetime] = []
    schedule = Schedule(clocks=[IntervalClock(timedelta(minutes=1))],
                        filters=[lambda dt: seen.append(dt) is not None])
    assert schedule.next(1, after=utc(2024, 1, 1)) == []
    assert len(seen) == 50


def test_schedule_next_defaults_after_to_now():
    before = pendulum.now("UTC")
    (t,) = Schedule(clocks=[IntervalClock(timedelta(seconds=10))]).next(1)
    assert before < t <= before + timedelta(seconds=11)


def test_schedule_next_treats_naive_after_as_utc_and_returns_aware_pendulum():
    (t,) = CronSchedule("0 * * * *").next(1, after=datetime(2024, 1, 1, 10, 30))
    assert isinstance(t, pendulum.DateTime) and t == utc(2024, 1, 1, 11)


def test_schedule_rejects_something_that_is_not_a_clock():
    with pytest.raises(TypeError, match="must be Clock instances"):
        Schedule(clocks=[timedelta(hours=1)])  # type: ignore[list-item]


def test_schedule_start_and_end_date_span_its_clocks():
    schedule = Schedule(clocks=[
        IntervalClock(timedelta(hours=1), start_date=utc(2024, 2, 1), end_date=utc(2024, 3, 1)),
        CronClock("0 0 * * *", start_date=utc(2024, 1, 1), end_date=utc(2024, 2, 1)),
    ])
    assert (schedule.start_date, schedule.end_date) == (utc(2024, 1, 1), utc(2024, 3, 1))


@settings(max_examples=60, deadline=None, database=None)
@given(minutes=st.integers(1, 60 * 24 * 3), offset_s=st.integers(-10**7, 10**8),
       tz=st.sampled_from(["UTC", NY, "Europe/Paris"]))
def test_interval_schedule_next_is_strictly_after_and_increasing(minutes, offset_s, tz):
    start = pendulum.datetime(2024, 1, 1, 9, tz=tz)
    after = start.add(seconds=offset_s)
    times = IntervalSchedule(start, timedelta(minutes=minutes)).next(3, after=after)
    assert len(times) == 3 and after < times[0] < times[1] < times[2]


@settings(max_examples=40, deadline=None, database=None)
@given(offset_s=st.integers(0, 10**8),
       cron=st.sampled_from(["0 * * * *", "30 2 * * *", "*/7 1 * * 0"]))
def test_cron_schedule_next_is_strictly_after_and_increasing_in_new_york(offset_s, cron):
    after = ny(2024, 1, 1).add(seconds=offset_s)
    times = CronSchedule(cron, start_date=ny(2024, 1, 1)).next(3, after=after)
    assert after < times[0] < times[1] < times[2]


# --- convenience schedules and the namespace -------------------------------------------

def test_interval_schedule_takes_prefect_1_positional_order():
    schedule = IntervalSchedule(utc(2024, 1, 1), timedelta(hours=6), utc(2024, 1, 1, 12))
    assert schedule.next(5, after=utc(2023, 1, 1)) == [utc(2024, 1, 1, h) for h in (0, 6, 12)]


def test_cron_schedule_is_a_schedule_with_one_cron_clock():
    schedule = CronSchedule("0 9 * * 1-5", day_or=False)
    assert isinstance(schedule, Schedule)
    assert [type(c) for c in schedule.clocks] == [CronClock] and schedule.clocks[0].day_or is False


def test_clocks_are_reachable_as_schedules_clocks():
    assert schedules.clocks.IntervalClock is IntervalClock
    assert schedules.clocks.CronClock is CronClock


@pytest.mark.parametrize(("flt", "dt", "expected"), [
    (filters.on_datetime(utc(2024, 1, 1, 9)), utc(2024, 1, 1, 9), True),
    (filters.on_date(2, 29), utc(2024, 2, 29, 12), True),
    (filters.on_date(2, 29), utc(2024, 2, 28, 12), False),
    (filters.at_time(time(9, 30)), utc(2024, 1, 1, 9, 30), True),
    (filters.between_datetimes(utc(2024, 1, 1), utc(2024, 2, 1)), utc(2024, 2, 1), True),
    (filters.between_datetimes(utc(2024, 1, 1), utc(2024, 2, 1)), utc(2024, 2, 2), False),
    (filters.between_dates(10, 15, 3, 31), utc(2024, 1, 10), True),
    (filters.between_dates(10, 15, 3, 31), utc(2024, 6, 10), False),
    (filters.between_times(time(22), time(6)), utc(2024, 1, 1, 23), True),
    (filters.between_times(time(22), time(6)), utc(2024, 1, 1, 12), False),
    (filters.between_times(time(9), time(17)), utc(2024, 1, 1, 17), True),
    (filters.is_weekday, utc(2024, 1, 5), True),
    (filters.is_weekday, utc(2024, 1, 6), False),
    (filters.is_weekend, utc(2024, 1, 7), True),
    (filters.is_day_of_week(0), utc(2024, 1, 8), True),
    (filters.is_month_start, utc(2024, 3, 1, 23), True),
    (filters.is_month_end, utc(2024, 2, 29), True),
    (filters.is_month_end, utc(2024, 2, 28), False),
])
def test_filter_accepts_or_rejects_a_datetime(flt, dt, expected):
    assert flt(dt) is expected


@pytest.mark.parametrize("module", [schedules, schedules.schedules, clocks, filters, adjustments])
def test_docstring_examples_run(module):
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0
