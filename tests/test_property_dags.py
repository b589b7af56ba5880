"""Random DAGs against a reference evaluator of Prefect 1.4's task and flow semantics.

Hypothesis builds flows of 1..40 tasks: each task picks earlier tasks as upstream
(data edges, state-only edges, or both), a behaviour (return a value computed
from its inputs, return None, raise ValueError / FAIL / SKIP / SUCCESS(result=) /
ENDRUN(Failed)),
optionally failing its first k attempts, a trigger, ``skip_on_upstream_skip``
and retries; the flow may get reference tasks. Every flow runs with
``flow.run(store=MemoryStore())`` (one in five with the threaded
``LocalDaskExecutor``), and every task's final state class, result, inputs and
attempt count, the store's view of them, and the flow's final state must equal
what ``evaluate`` says.

``evaluate`` is written from Prefect 1.4's rules, not from cairnflow's code: a
task walks the DAG in topological order and, in Prefect 1's TaskRunner order,

1. upstream not all finished (behind a Paused ``manual_only`` task) -> Pending;
2. ``skip_on_upstream_skip`` and an upstream Skipped -> Skipped (result None),
   before the trigger is looked at;
3. the trigger over the set of upstream states: fail -> TriggerFailed (result
   the TRIGGERFAIL signal); ``not_all_skipped`` over all-skipped -> Skipped
   (result None); ``manual_only`` -> Paused;
4. run: a return -> Success(value); ValueError -> Failed(the exception); FAIL ->
   Failed(the signal); SKIP -> Skipped(the signal); SUCCESS(result=v) ->
   Success(v); ENDRUN(Failed(...)) -> that state. Any Failed (FAIL included, as
   in Prefect 1; ENDRUN excepted) with retries left runs again.

The flow's final state: any terminal or reference task not finished -> Paused
(Prefect 1: the run is not finished while a terminal task is not); else, over the
reference tasks (the terminal tasks by default), any failed -> Failed, otherwise
Success.

"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from cairnflow import Flow, Task, signals, states, triggers
from cairnflow.executors import LocalDaskExecutor
from cairnflow.statestore.memory import MemoryStore

MOD = 1_000_003  # keeps computed values small however deep the DAG

BEHAVIOURS = ("value", "none", "error", "fail", "skip", "success", "endrun")

TRIGGERS: dict[str, Any] = {
    "all_successful": triggers.all_successful,
    "all_failed": triggers.all_failed,
    "any_successful": triggers.any_successful,
    "any_failed": triggers.any_failed,
    "all_finished": triggers.all_finished,
    "not_all_skipped": triggers.not_all_skipped,
    "some_successful(at_least=1)": triggers.some_successful(at_least=1),
    "some_failed(at_most=1)": triggers.some_failed(at_most=1),
    "some_successful(at_least=0.5)": triggers.some_successful(at_least=0.5),
    "some_failed(at_most=0.5)": triggers.some_failed(at_most=0.5),
    "manual_only": triggers.manual_only,
}

# Root tasks (an empty set of upstream states) never get not_all_skipped, on which
# the engine differs from Prefect 1.4: see test_root_not_all_skipped_*.

# (behaviours, flaky counts) to pick from, per flow: how often its tasks go wrong,
# so that flows of 40 tasks end in Success often enough too
CLIMATES = (
    (("value",) * 30 + ("none", "success", "skip", "error"), (0,) * 9 + (1,)),  # calm
    (("value",) * 6 + BEHAVIOURS[1:], (0, 0, 0, 1, 2, 4)),                     # mixed
    (("value",) + BEHAVIOURS[1:], (0, 1, 2, 4)),                                # stormy
)

SUCCESS_CLASSES = ("Success", "Skipped")
FAILED_CLASSES = ("Failed", "TriggerFailed")
FINISHED_CLASSES = SUCCESS_CLASSES + FAILED_CLASSES


# -- the flow's shape -------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    index: int
    upstream: tuple[tuple[int, str], ...]  # (earlier task, "data" | "state" | "both")
    behaviour: str
    trigger: str
    skip_on_upstream_skip: bool = True
    max_retries: int = 0
    flaky: int = 0  # the first `flaky` attempts raise ValueError("flaky i")

    def __str__(self) -> str:
        ups = ",".join(f"{j}{'' if k == 'data' else '~' if k == 'state' else '+'}"
                       for j, k in self.upstream)
        extra = "" if self.skip_on_upstream_skip else " no-skip-on-skip"
        if self.max_retries or self.flaky:
            extra += f" retries={self.max_retries} flaky={self.flaky}"
        return f"t{self.index} <- [{ups}] {self.behaviour} trigger={self.trigger}{extra}"

    def __repr__(self) -> str:  # paste-able into a regression test, with T()
        args = [str(self.index)]
        if self.upstream:
            args.append(repr(list(self.upstream)))
        if self.behaviour != "value":
            args.append(f"behaviour={self.behaviour!r}")
        if self.trigger != "all_successful":
            args.append(f"trigger={self.trigger!r}")
        if not self.skip_on_upstream_skip:
            args.append("skip_on_upstream_skip=False")
        if self.max_retries:
            args.append(f"max_retries={self.max_retries}")
        if self.flaky:
            args.append(f"flaky={self.flaky}")
        return f"T({', '.join(args)})"


@dataclass(frozen=True)
class Shape:
    tasks: tuple[TaskSpec, ...]
    reference: tuple[int, ...] | None = None  # None: the terminal tasks

    def __repr__(self) -> str:
        ref = "" if self.reference is None else f", reference={self.reference!r}"
        return "Shape((\n" + "".join(f"    {t!r},\n" for t in self.tasks) + f"){ref})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # Hypothesis's reports
        printer.text(repr(self))

    def __str__(self) -> str:
        lines = [str(t) for t in self.tasks]
        lines.append(f"reference tasks: {self.reference}")
        lines.append("(edges: j data, j~ state-only, j+ both)")
        return "\n".join(lines)

    def terminal(self) -> set[int]:
        has_downstream = {j for t in self.tasks for j, _ in t.upstream}
        return {t.index for t in self.tasks} - has_downstream


# -- what a task computes (shared by the tasks and the evaluator) -------------------------


def compute(index: int, inputs: list[Any]) -> int:
    """Robust to failed inputs: ints are summed, anything else is counted."""
    ints = [v for v in inputs if type(v) is int]
    return (index + sum(ints) + 1000 * (len(inputs) - len(ints))) % MOD


def describe(value: Any) -> tuple:
    """A comparable description of a state's result or a task input."""
    if value is None:
        return ("None",)
    if type(value) is int:
        return ("int", value)
    if isinstance(value, (signals.TRIGGERFAIL, signals.PAUSE)):
        return (type(value).__name__, None)  # the engine's own message
    if isinstance(value, signals.PrefectSignal):
        return (type(value).__name__, str(value))
    if isinstance(value, BaseException):
        return (type(value).__name__, str(value))
    return ("other", repr(value))


@dataclass
class Recording:
    attempts: Counter = field(default_factory=Counter)
    inputs: dict[int, dict[str, tuple]] = field(default_factory=dict)


_LOCK = threading.Lock()  # module-level, so a flow (and its Recording) stays picklable


class BehaviourTask(Task):
    def __init__(self, spec: TaskSpec, record: Recording, **kwargs: Any):
        super().__init__(**kwargs)
        self.spec = spec
        self.record = record

    def run(self, **inputs: Any) -> Any:
        i = self.spec.index
        with _LOCK:
            self.record.attempts[i] += 1
            attempt = self.record.attempts[i]
            self.record.inputs[i] = {k: describe(v) for k, v in inputs.items()}
        if attempt <= self.spec.flaky:
            raise ValueError(f"flaky {i}")
        value = compute(i, [inputs[k] for k in sorted(inputs)])
        behaviour = self.spec.behaviour
        if behaviour == "value":
            return value
        if behaviour == "none":
            return None
        if behaviour == "error":
            raise ValueError(f"boom {i}")
        if behaviour == "fail":
            raise signals.FAIL(f"fail {i}")
        if behaviour == "skip":
            raise signals.SKIP(f"skip {i}")
        if behaviour == "success":
            raise signals.SUCCESS(f"ok {i}", result=(value + 7) % MOD)
        if behaviour == "endrun":
            raise signals.ENDRUN(states.Failed(f"end {i}"))
        raise AssertionError(behaviour)


# -- the reference evaluator ---------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    cls: str               # the final state's class name
    result: tuple          # describe() of the final state's result
    attempts: int = 0      # how many times the task's code ran
    inputs: dict | None = None  # describe() of the inputs of the last run, if it ran

    def value(self) -> Any:
        return self.result[1] if self.result[0] == "int" else self.result


def _trigger_verdict(name: str, upstream: list[Outcome]) -> str:
    """Prefect 1.4's triggers over a set of (finished) upstream states:
    "run", "fail", "skip" or "pause"."""
    classes = [u.cls for u in upstream]
    n_ok = sum(c in SUCCESS_CLASSES for c in classes)
    n_failed = sum(c in FAILED_CLASSES for c in classes)
    everyone = len(classes)
    if name == "all_successful":
        return "run" if n_ok == everyone else "fail"
    if name == "all_failed":
        return "run" if n_failed == everyone else "fail"
    if name == "any_successful":
        return "run" if not classes or n_ok else "fail"
    if name == "any_failed":
        return "run" if not classes or n_failed else "fail"
    if name == "all_finished":
        return "run"
    if name == "not_all_skipped":  # Prefect 1.4: all() of nothing is True -> SKIP
        if all(c == "Skipped" for c in classes):
            return "skip"
        return "run" if n_ok == everyone else "fail"
    if name == "some_successful(at_least=1)":  # Prefect 1.4: no upstream -> run
        return "run" if not classes or n_ok >= 1 else "fail"
    if name == "some_failed(at_most=1)":
        return "run" if not classes or n_failed <= 1 else "fail"
    # Prefect 1.4: a bound below 1 is a fraction of the upstream states
    if name == "some_successful(at_least=0.5)":
        return "run" if not classes or n_ok >= 0.5 * everyone else "fail"
    if name == "some_failed(at_most=0.5)":
        return "run" if not classes or n_failed <= 0.5 * everyone else "fail"
    if name == "manual_only":
        return "pause"
    raise AssertionError(name)


def _run_outcome(spec: TaskSpec, inputs: dict[str, Outcome]) -> Outcome:
    keys = sorted(inputs)
    value = compute(spec.index, [inputs[k].value() for k in keys])
    seen = {k: inputs[k].result for k in keys}
    attempts = 0
    for attempt in range(1, spec.max_retries + 2):
        attempts = attempt
        if attempt <= spec.flaky:
            cls, result = "Failed", ("ValueError", f"flaky {spec.index}")
        elif spec.behaviour == "value":
            cls, result = "Success", ("int", value)
        elif spec.behaviour == "none":
            cls, result = "Success", ("None",)
        elif spec.behaviour == "error":
            cls, result = "Failed", ("ValueError", f"boom {spec.index}")
        elif spec.behaviour == "fail":
            cls, result = "Failed", ("FAIL", f"fail {spec.index}")
        elif spec.behaviour == "skip":
            cls, result = "Skipped", ("SKIP", f"skip {spec.index}")
        elif spec.behaviour == "success":
            cls, result = "Success", ("int", (value + 7) % MOD)
        elif spec.behaviour == "endrun":  # ENDRUN(Failed): exactly that state, no retry
            cls, result = "Failed", ("None",)
            break
        else:
            raise AssertionError(spec.behaviour)
        if cls != "Failed":
            break
    return Outcome(cls, result, attempts, seen)


def evaluate(shape: Shape) -> tuple[dict[int, Outcome], str]:
    """Every task's outcome and the flow's final state class, by Prefect 1.4's rules."""
    out: dict[int, Outcome] = {}
    for spec in shape.tasks:  # upstream indices are smaller: already topological
        ups = list(dict.fromkeys(j for j, _ in spec.upstream))
        upstream = [out[j] for j in ups]
        if not all(u.cls in FINISHED_CLASSES for u in upstream):
            out[spec.index] = Outcome("Pending", ("None",))
            continue
        if spec.skip_on_upstream_skip and any(u.cls == "Skipped" for u in upstream):
            out[spec.index] = Outcome("Skipped", ("None",))
            continue
        verdict = _trigger_verdict(spec.trigger, upstream)
        if verdict == "fail":
            out[spec.index] = Outcome("TriggerFailed", ("TRIGGERFAIL", None))
        elif verdict == "skip":
            out[spec.index] = Outcome("Skipped", ("None",))
        elif verdict == "pause":
            out[spec.index] = Outcome("Paused", ("PAUSE", None))
        else:
            data = {f"x{j}": out[j] for j, kind in spec.upstream if kind in ("data", "both")}
            out[spec.index] = _run_outcome(spec, data)
    reference = set(shape.reference or ()) or shape.terminal()
    ref = [out[i].cls for i in reference]
    if any(out[i].cls not in FINISHED_CLASSES for i in reference | shape.terminal()):
        final = "Paused"
    elif any(c in FAILED_CLASSES for c in ref):
        final = "Failed"
    else:
        final = "Success"
    return out, final


# -- running a shape through the engine ----------------------------------------------------


def build(shape: Shape, record: Recording) -> tuple[Flow, list[Task]]:
    flow = Flow(f"property-dag-{len(shape.tasks)}")
    tasks: list[Task] = []
    for spec in shape.tasks:
        t = BehaviourTask(
            spec, record, name=f"t{spec.index}", trigger=TRIGGERS[spec.trigger],
            skip_on_upstream_skip=spec.skip_on_upstream_skip, max_retries=spec.max_retries,
            retry_delay=timedelta(0) if spec.max_retries else None)
        flow.add_task(t)
        for j, kind in spec.upstream:
            if kind in ("data", "both"):
                flow.add_edge(tasks[j], t, key=f"x{j}")
            if kind in ("state", "both"):
                flow.add_edge(tasks[j], t)
        tasks.append(t)
    if shape.reference is not None:
        flow.set_reference_tasks([tasks[i] for i in shape.reference])
    return flow, tasks


def _summary(state: states.State, attempts: int, inputs: dict | None) -> Outcome:
    return Outcome(type(state).__name__, describe(state.result), attempts, inputs)


def check(shape: Shape, executor: Any = None) -> tuple[states.State, dict[int, states.State]]:
    """Run ``shape`` and compare everything with ``evaluate``; returns the states."""
    shown = f"flow shape ({len(shape.tasks)} tasks, executor={executor!r}):\n{shape}"
    if currently_in_test_context():
        note(shown)
    expected, expected_final = evaluate(shape)
    record = Recording()
    flow, tasks = build(shape, record)
    store = MemoryStore()
    final = flow.run(store=store, executor=executor)
    by_index = {i: final.result[t] for i, t in enumerate(tasks)}
    actual = {i: _summary(s, record.attempts[i], record.inputs.get(i))
              for i, s in by_index.items()}
    wrong = {i: (expected[i], actual[i]) for i in expected if expected[i] != actual[i]}
    assert not wrong, f"{len(wrong)} tasks differ from the reference\n{shown}\n" + "\n".join(
        f"  t{i} expected {e}\n     actual   {a}" for i, (e, a) in sorted(wrong.items()))
    assert type(final).__name__ == expected_final, f"flow ended {final!r}, expected " \
        f"{expected_final}\n{shown}"

    # the store tells the same story
    run_id = final.context["flow_run_id"]
    assert store.get_flow_run(run_id).stored_state == expected_final
    runs = {r.task_slug: r for r in store.get_task_runs(run_id)}
    for i, t in enumerate(tasks):
        info = runs.get(flow.slugs[t])
        exp = expected[i]
        if exp.cls == "Pending":
            assert info is None or info.state == "Pending", (i, info)
            continue
        assert info is not None, f"t{i} has no task run in the store"
        assert (info.state, info.attempts) == (exp.cls, exp.attempts), (i, info, exp)
        assert info.has_result == (exp.cls == "Success"), (i, info, exp)
    return final, by_index


# -- the strategy --------------------------------------------------------------------------


KINDS = ("data", "data", "state", "both")
TRIGGER_CHOICES = ("all_successful",) * 5 + tuple(TRIGGERS)  # all_successful first


@st.composite
def shapes(draw: st.DrawFn, max_tasks: int = 40) -> Shape:
    """A flow of 1..max_tasks tasks. Tasks are drawn as a list (so the shrinker can
    delete them) whose upstream picks are resolved against the tasks before them."""
    behaviours, flakiness = draw(st.sampled_from(CLIMATES))
    allow_manual = draw(st.sampled_from((False,) * 7 + (True,)))
    # lists average a handful of elements; a drawn minimum spreads sizes over 1..40
    # (and shrinks first, so the shrinker can then delete tasks one by one)
    at_least = draw(st.sampled_from((1, 1, 1, 5, 10, 15, 20, 25, 30, 35, max_tasks)))
    raw = draw(st.lists(st.tuples(
        st.lists(st.tuples(st.integers(0, max_tasks - 1), st.sampled_from(KINDS)),
                 max_size=4),
        st.sampled_from(behaviours),
        st.sampled_from(TRIGGER_CHOICES),
        st.sampled_from((True, True, False)),           # skip_on_upstream_skip
        st.sampled_from((0, 0, 0, 1, 2, 3)),            # max_retries
        st.sampled_from(flakiness),                     # flaky
    ), min_size=at_least, max_size=max_tasks))
    tasks = []
    for i, (picks, behaviour, trigger, skip, retries, flaky) in enumerate(raw):
        upstream = tuple({p % i: kind for p, kind in picks}.items()) if i else ()
        if trigger not in TRIGGERS or (
                trigger == "manual_only" and not allow_manual):
            trigger = "all_successful"
        tasks.append(TaskSpec(i, upstream, behaviour, trigger, skip, retries, flaky))
    reference = None
    if draw(st.booleans()):
        n = len(tasks)
        reference = tuple(sorted(draw(st.sets(st.integers(0, n - 1), min_size=1,
                                              max_size=min(n, 4)))))
    return Shape(tuple(tasks), reference)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(shape=shapes(), threaded=st.sampled_from((False,) * 4 + (True,)))
def test_random_dags_match_the_reference_evaluator(shape: Shape, threaded: bool) -> None:
    executor = LocalDaskExecutor(scheduler="threads", num_workers=3) if threaded else None
    check(shape, executor)


# -- explicit regressions --------------------------------------------------------------------


def T(index: int, upstream: tuple = (), behaviour: str = "value",
      trigger: str = "all_successful", **kwargs: Any) -> TaskSpec:
    return TaskSpec(index, tuple(upstream), behaviour, trigger, **kwargs)


@pytest.mark.parametrize("threaded", [False, True])
def test_diamond_with_one_failed_branch(threaded: bool) -> None:
    shape = Shape((
        T(0),
        T(1, [(0, "data")], "error"),
        T(2, [(0, "data")]),
        T(3, [(1, "data"), (2, "data")], trigger="all_finished"),
        T(4, [(1, "state"), (2, "state")], trigger="any_failed"),
        T(5, [(1, "data"), (2, "both")]),  # all_successful -> TriggerFailed
        T(6, [(1, "state"), (2, "state")], trigger="all_failed"),
    ))
    executor = LocalDaskExecutor(scheduler="threads", num_workers=3) if threaded else None
    final, st_ = check(shape, executor)
    assert isinstance(st_[1], states.Failed) and isinstance(st_[1].result, ValueError)
    assert type(st_[3]) is states.Success
    assert st_[3].result == (3 + 2 + 1000) % MOD  # t2 gives 0+0+2=2; t1 a ValueError
    assert type(st_[4]) is states.Success
    assert type(st_[5]) is states.TriggerFailed
    assert isinstance(st_[5].result, signals.TRIGGERFAIL)
    assert type(st_[6]) is states.TriggerFailed
    assert type(final) is states.Failed


def test_skips_propagate_before_the_trigger() -> None:
    shape = Shape((
        T(0, behaviour="skip"),
        T(1, [(0, "data")], trigger="all_failed"),  # skipped before the trigger runs
        T(2, [(0, "data")], trigger="all_failed", skip_on_upstream_skip=False),
        T(3, [(0, "state")], trigger="not_all_skipped", skip_on_upstream_skip=False),
        T(4, [(0, "data")], skip_on_upstream_skip=False),  # runs with the SKIP signal
    ))
    final, st_ = check(shape)
    assert type(st_[0]) is states.Skipped and isinstance(st_[0].result, signals.SKIP)
    assert type(st_[1]) is states.Skipped and st_[1].result is None
    assert type(st_[2]) is states.TriggerFailed  # Skipped counts as a success
    assert type(st_[3]) is states.Skipped and st_[3].result is None
    assert type(st_[4]) is states.Success and st_[4].result == 4 + 1000
    assert type(final) is states.Failed  # t2 is terminal and TriggerFailed


def test_retries_count_attempts_and_fail_signals_are_retried() -> None:
    shape = Shape((
        T(0, max_retries=3, flaky=2),                   # succeeds on attempt 3
        T(1, max_retries=2, flaky=5),                   # gives up after 3 attempts
        T(2, behaviour="fail", max_retries=2),          # FAIL is retried, as in Prefect 1
        T(3, behaviour="skip", max_retries=2, flaky=1),  # SKIP is final
        T(4, behaviour="success", max_retries=1, flaky=1),
    ))
    final, st_ = check(shape)
    assert type(st_[0]) is states.Success and st_[0].result == 0
    assert type(st_[1]) is states.Failed and str(st_[1].result) == "flaky 1"
    assert type(st_[2]) is states.Failed and isinstance(st_[2].result, signals.FAIL)
    assert type(st_[3]) is states.Skipped
    assert type(st_[4]) is states.Success and st_[4].result == 4 + 7
    assert type(final) is states.Failed


def test_reference_tasks_decide_the_flow_state() -> None:
    tasks = (
        T(0),
        T(1, [(0, "data")], "error"),   # terminal, failed, not a reference task
        T(2, [(0, "data")], "skip"),
        T(3, [(0, "state")], "none"),
    )
    final, _ = check(Shape(tasks, reference=(2, 3)))
    assert type(final) is states.Success
    final, _ = check(Shape(tasks))
    assert type(final) is states.Failed
    final, _ = check(Shape(tasks, reference=(0, 1)))  # a non-terminal reference task
    assert type(final) is states.Failed


def test_data_and_state_edge_from_the_same_upstream_count_once() -> None:
    shape = Shape((
        T(0, behaviour="error"),
        T(1),
        # upstream states {Failed, Success}: one failure, whatever the edge count
        T(2, [(0, "both"), (1, "both")], trigger="some_failed(at_most=1)"),
    ))
    _, st_ = check(shape, LocalDaskExecutor(scheduler="threads", num_workers=3))
    assert type(st_[2]) is states.Success


def test_root_tasks_see_an_empty_set_of_upstream_states() -> None:
    # Prefect 1.4: any_*, some_* and all_* pass on no upstream states
    names = [n for n in TRIGGERS if n not in ("manual_only", "not_all_skipped")]
    final, st_ = check(Shape(tuple(T(i, trigger=n) for i, n in enumerate(names))))
    assert all(type(s) is states.Success for s in st_.values()), st_
    assert type(final) is states.Success


def test_endrun_ends_the_task_run_without_retries() -> None:
    final, st_ = check(Shape((T(0, behaviour="endrun", max_retries=3, flaky=1),)))
    assert type(st_[0]) is states.Failed and st_[0].message == "end 0"


# -- regressions of divergences the property test found -----------------------------


def test_root_not_all_skipped_is_skipped_as_in_prefect_1() -> None:
    final, st_ = check(Shape((T(0, trigger="not_all_skipped"),)))
    assert type(st_[0]) is states.Skipped


def test_paused_terminal_task_outside_reference_tasks_keeps_the_run_open() -> None:
    final, st_ = check(Shape((T(0), T(1, [(0, "data")], trigger="manual_only")),
                             reference=(0,)))
    assert type(st_[1]) is states.Paused
    assert type(final) is states.Paused
