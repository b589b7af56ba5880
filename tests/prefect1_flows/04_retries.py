"""A flaky task retried (Prefect 1's max_retries / retry_delay)."""
from datetime import timedelta

from cairnflow import task, Flow

ATTEMPTS = []


@task(max_retries=2, retry_delay=timedelta(seconds=0))
def flaky():
    ATTEMPTS.append(1)
    if len(ATTEMPTS) < 3:
        raise ConnectionError("try again")
    return "third time lucky"


with Flow("retries") as flow:
    out = flaky()

state = flow.run()
assert state.is_successful()
print("RESULT:", state.result[out].result, len(ATTEMPTS))
