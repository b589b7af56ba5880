"""A flow with a schedule, run once now (run_on_schedule=False)."""
from datetime import timedelta

import pendulum

from cairnflow import task, Flow
from cairnflow.schedules import IntervalSchedule
from cairnflow.schedules.clocks import IntervalClock
from cairnflow.schedules.schedules import Schedule

schedule = IntervalSchedule(start_date=pendulum.datetime(2030, 1, 1), interval=timedelta(hours=1))
other = Schedule(clocks=[IntervalClock(timedelta(days=1))])


@task
def tick():
    return "tick"


with Flow("scheduled", schedule=schedule) as flow:
    out = tick()

upcoming = flow.schedule.next(2)
state = flow.run(run_on_schedule=False)
print("RESULT:", state.result[out].result, [t.hour for t in upcoming])
