"""States (the class hierarchy and its predicates) and signals raised inside tasks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cairnflow import Flow, signals, states, task

PREDICATES = ("is_pending", "is_scheduled", "is_paused", "is_retrying", "is_running",
              "is_finished", "is_successful", "is_failed", "is_skipped", "is_cached",
              "is_mapped", "is_looped")

# state class -> the predicates that are true for it (every other one is false)
HIERARCHY = {
    states.Pending: {"is_pending"},
    states.Scheduled: {"is_pending", "is_scheduled"},
    states.Paused: {"is_pending", "is_scheduled", "is_paused"},
    states.Retrying: {"is_pending", "is_scheduled", "is_retrying"},
    states.Running: {"is_running"},
    states.Finished: {"is_finished"},
    states.Success: {"is_finished", "is_successful"},
    states.Cached: {"is_finished", "is_successful", "is_cached"},
    states.Mapped: {"is_finished", "is_successful", "is_mapped"},
    states.Skipped: {"is_finished", "is_successful", "is_skipped"},
    states.Looped: {"is_finished", "is_looped"},
    states.Failed: {"is_finished", "is_failed"},
    states.TriggerFailed: {"is_finished", "is_failed"},
    states.TimedOut: {"is_finished", "is_failed"},
    states.ValidationFailed: {"is_finished", "is_failed"},
    states.Crashed: {"is_finished", "is_failed"},
    states.Cancelled: {"is_finished"},
}


def _run_one(fn, store, **task_kwargs):
    """Run a one-task flow; return (flow state, task state)."""
    t = task(fn, **task_kwargs)
    with Flow("one") as flow:
        bound = t()
    state = flow.run(store=store)
    return state, state.result[bound]


# -- states ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", list(HIERARCHY), ids=lambda c: c.__name__)
def test_state_predicates_follow_the_class_hierarchy(cls):
    state = cls()
    true = {name for name in PREDICATES if getattr(state, name)()}
    assert true == HIERARCHY[cls]


def test_skipped_counts_as_successful_and_not_failed():
    assert states.Skipped().is_successful()
    assert not states.Skipped().is_failed()


@pytest.mark.parametrize("cls", [states.TriggerFailed, states.TimedOut, states.Crashed])
def test_special_failures_are_failed(cls):
    assert cls().is_failed() and cls().is_finished() and not cls().is_successful()


def test_retrying_is_pending_and_scheduled_but_not_finished():
    retrying = states.Retrying(run_count=1)
    assert retrying.is_pending() and retrying.is_scheduled() and retrying.is_retrying()
    assert not retrying.is_finished() and not retrying.is_failed()
    assert retrying.run_count == 1


def test_state_keeps_message_and_result():
    state = states.Failed("it broke", result=ValueError("x"))
    assert state.message == "it broke"
    assert isinstance(state.result, ValueError)
    assert repr(state) == '<Failed: "it broke">'


def test_state_name_is_its_class_name_and_round_trips():
    for cls in HIERARCHY:
        assert cls().name == cls.__name__
        assert states.state_from_name(cls.__name__) is cls


def test_state_timestamp_is_aware_utc():
    assert states.Success().timestamp.utcoffset() == timedelta(0)


def test_state_timestamp_is_a_pendulum_datetime_of_its_creation_given_or_set():
    import pickle

    import pendulum

    before = pendulum.now("UTC")
    state = states.Running()
    after = pendulum.now("UTC")
    assert isinstance(state.timestamp, pendulum.DateTime)
    assert before <= state.timestamp <= after
    assert state.timestamp is state.timestamp  # one value, however often it is read
    given = pendulum.datetime(2024, 5, 1, tz="UTC")
    assert states.Success(timestamp=given).timestamp is given
    state.timestamp = given
    assert state.timestamp == given
    copied = pickle.loads(pickle.dumps(states.Failed("x")))
    assert isinstance(copied.timestamp, pendulum.DateTime) and copied.message == "x"


def test_a_state_pickled_with_a_plain_timestamp_attribute_still_loads():
    """States pickled before the timestamp became lazy hold it in ``timestamp``."""
    import pendulum

    given = pendulum.datetime(2024, 5, 1, 12, tz="UTC")
    old = states.Success.__new__(states.Success)
    old.__setstate__({"message": "done", "result": 3, "timestamp": given, "context": {}})
    assert old.timestamp == given and old.result == 3 and old.is_successful()


def test_mapped_counts_its_map_states():
    mapped = states.Mapped(map_states=[states.Success(), states.Failed()])
    assert mapped.n_map_states == 2


# -- signals ---------------------------------------------------------------------------


@pytest.mark.parametrize("signal", [signals.FAIL, signals.SUCCESS, signals.SKIP,
                                    signals.RETRY, signals.LOOP, signals.PAUSE,
                                    signals.TRIGGERFAIL])
def test_signals_are_base_exceptions_not_exceptions(signal):
    assert issubclass(signal, BaseException)
    assert not issubclass(signal, Exception)


def test_endrun_is_a_base_exception_not_an_exception():
    assert issubclass(signals.ENDRUN, BaseException)
    assert not issubclass(signals.ENDRUN, Exception)


@pytest.mark.parametrize("signal, cls", [
    (signals.FAIL, states.Failed), (signals.SUCCESS, states.Success),
    (signals.SKIP, states.Skipped), (signals.RETRY, states.Retrying),
    (signals.LOOP, states.Looped), (signals.PAUSE, states.Paused),
    (signals.TRIGGERFAIL, states.TriggerFailed),
])
def test_signal_carries_its_state_with_the_message(signal, cls):
    sig = signal("because")
    assert type(sig.state) is cls
    assert sig.state.message == "because"


def test_fail_signal_sets_failed_with_its_message(memory_store):
    def fn():
        raise signals.FAIL("nope")

    flow_state, state = _run_one(fn, memory_store)
    assert type(state) is states.Failed
    assert state.message == "nope"
    assert flow_state.is_failed()


def test_success_signal_sets_success(memory_store):
    def fn():
        raise signals.SUCCESS("done early")

    flow_state, state = _run_one(fn, memory_store)
    assert type(state) is states.Success
    assert state.message == "done early"
    assert flow_state.is_successful()


def test_success_signal_result_becomes_the_task_result(memory_store):
    def fn():
        raise signals.SUCCESS(result=42)

    _, state = _run_one(fn, memory_store)
    assert state.is_successful()
    assert state.result == 42


def test_skip_signal_sets_skipped_and_flow_succeeds(memory_store):
    def fn():
        raise signals.SKIP("not today")

    flow_state, state = _run_one(fn, memory_store)
    assert type(state) is states.Skipped
    assert state.message == "not today"
    assert flow_state.is_successful()


def test_endrun_sets_exactly_its_state(memory_store):
    def fn():
        raise signals.ENDRUN(states.Skipped("ended here"))

    _, state = _run_one(fn, memory_store)
    assert type(state) is states.Skipped
    assert state.message == "ended here"


def test_endrun_with_a_failure_is_not_retried(memory_store):
    calls = []

    def fn():
        calls.append(1)
        raise signals.ENDRUN(states.Failed("final"))

    _, state = _run_one(fn, memory_store, max_retries=2, retry_delay=timedelta(0))
    assert type(state) is states.Failed and state.message == "final"
    assert calls == [1]
    [info] = memory_store.get_task_runs(memory_store.list_runs()[0].id)
    assert info.attempts == 1


def test_fail_signal_is_retried_like_an_error(memory_store):
    calls = []

    def fn():
        calls.append(1)
        raise signals.FAIL("again")

    _, state = _run_one(fn, memory_store, max_retries=1, retry_delay=timedelta(0))
    assert state.is_failed()
    assert len(calls) == 2


@pytest.mark.parametrize("signal, cls", [
    (signals.FAIL, states.Failed), (signals.SKIP, states.Skipped),
    (signals.SUCCESS, states.Success),
])
def test_except_exception_in_a_task_does_not_swallow_signals(memory_store, signal, cls):
    def fn():
        try:
            raise signal("raised inside try")
        except Exception:
            return "swallowed"

    _, state = _run_one(fn, memory_store)
    assert type(state) is cls
    assert state.result != "swallowed"


def test_plain_exception_fails_the_task_with_its_repr(memory_store):
    def fn():
        raise ValueError("bad value")

    _, state = _run_one(fn, memory_store)
    assert type(state) is states.Failed
    assert state.message == "Error during execution of task: ValueError('bad value')"
    assert isinstance(state.result, ValueError)


def test_signal_state_is_stored(memory_store):
    def fn():
        raise signals.SKIP("skipped for the store")

    _run_one(fn, memory_store)
    [info] = memory_store.get_task_runs(memory_store.list_runs()[0].id)
    assert (info.state, info.message) == ("Skipped", "skipped for the store")
