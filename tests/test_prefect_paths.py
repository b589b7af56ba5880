"""Prefect 1's module paths: every one SPEC.md lists imports, and the deep path
gives the very object of the short one; and a flow pickled by the first release
still loads and runs (pickles name the modules they were made from)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import cairnflow
from cairnflow.statestore import serialize

# deep module -> {name: the object the short path gives}
PATHS = {
    "cairnflow.engine.state": {n: getattr(cairnflow.states, n) for n in (
        "State", "Pending", "Scheduled", "Paused", "Retrying", "Running", "Finished",
        "Success", "Cached", "Mapped", "Skipped", "Looped", "Failed", "TriggerFailed",
        "TimedOut", "ValidationFailed", "Crashed", "Cancelled")},
    "cairnflow.engine.signals": {n: getattr(cairnflow.signals, n) for n in (
        "FAIL", "SUCCESS", "SKIP", "RETRY", "LOOP", "PAUSE", "ENDRUN", "TRIGGERFAIL",
        "PrefectStateSignal")},
    "cairnflow.engine.results": {"Result": "cairnflow.results:Result",
                                 "LocalResult": "cairnflow.results:LocalResult",
                                 "PrefectResult": "cairnflow.results:PrefectResult"},
    "cairnflow.engine.result": {"Result": "cairnflow.results:Result",
                                "NoResult": "cairnflow.results:NoResult"},
    "cairnflow.engine.serializers": {
        "PickleSerializer": "cairnflow.serializers:PickleSerializer",
        "JSONSerializer": "cairnflow.serializers:JSONSerializer"},
    "cairnflow.engine.cache_validators": {
        "all_inputs": "cairnflow.cache_validators:all_inputs",
        "duration_only": "cairnflow.cache_validators:duration_only"},
    "cairnflow.engine.executors": {
        "LocalExecutor": cairnflow.executors.LocalExecutor,
        "LocalDaskExecutor": cairnflow.executors.LocalDaskExecutor,
        "DaskExecutor": cairnflow.executors.DaskExecutor},
    "cairnflow.engine.flow_runner": {"FlowRunner": "cairnflow.engine:FlowRunner"},
    "cairnflow.engine.task_runner": {"TaskRunner": "cairnflow.engine:TaskRunner",
                                     "ENDRUN": cairnflow.signals.ENDRUN},
    "cairnflow.core.task": {"Task": cairnflow.Task},
    "cairnflow.core.flow": {"Flow": cairnflow.Flow},
    "cairnflow.core.parameter": {"Parameter": cairnflow.Parameter,
                                 "DateTimeParameter": cairnflow.DateTimeParameter},
    "cairnflow.core.edge": {"Edge": "cairnflow.core:Edge"},
    "cairnflow.tasks.control_flow": {"case": cairnflow.case, "merge": cairnflow.merge,
                                     "ifelse": "cairnflow.tasks.control_flow.conditional:ifelse",
                                     "switch": "cairnflow.tasks.control_flow.conditional:switch",
                                     "FilterTask": "cairnflow.tasks.control_flow.filter:FilterTask"},
    "cairnflow.tasks.control_flow.conditional": {
        "merge": cairnflow.merge, "CompareValue": "cairnflow.core.control_flow:CompareValue"},
    "cairnflow.tasks.core.function": {"FunctionTask": type(cairnflow.task(lambda: None))},
    "cairnflow.tasks.core.constants": {"Constant": "cairnflow.core.collections:Constant"},
    "cairnflow.tasks.core.collections": {n: f"cairnflow.core.collections:{n}"
                                         for n in ("List", "Tuple", "Dict", "Set")},
    "cairnflow.tasks.core.operators": {n: f"cairnflow.core.collections:{n}"
                                       for n in ("Add", "GetItem", "Equal", "Not")},
    "cairnflow.tasks.core.resource_manager": {"resource_manager": cairnflow.resource_manager},
    "cairnflow.tasks.shell": {"ShellTask": "cairnflow.tasks.shell:ShellTask"},
    "cairnflow.utilities.edges": {"unmapped": cairnflow.unmapped, "mapped": cairnflow.mapped,
                                  "flatten": cairnflow.flatten},
    "cairnflow.utilities.tasks": {"tags": cairnflow.tags, "apply_map": cairnflow.apply_map,
                                  "task": cairnflow.task, "unmapped": cairnflow.unmapped,
                                  "defaults_from_attrs":
                                      "cairnflow.core.functional:defaults_from_attrs"},
    "cairnflow.utilities.logging": {"get_logger": "cairnflow.context:get_logger"},
    "cairnflow.utilities.context": {"context": cairnflow.context,
                                    "Context": "cairnflow.context:Context"},
    "cairnflow.schedules.clocks": {"IntervalClock": "cairnflow.schedules:clocks.IntervalClock",
                                   "CronClock": "cairnflow.schedules:clocks.CronClock"},
    "cairnflow.schedules.filters": {"is_weekday": "cairnflow.schedules:filters.is_weekday"},
    "cairnflow.schedules.adjustments": {
        "next_weekday": "cairnflow.schedules:adjustments.next_weekday"},
    "cairnflow.schedules.schedules": {"Schedule": cairnflow.schedules.Schedule,
                                      "IntervalSchedule": cairnflow.schedules.IntervalSchedule,
                                      "CronSchedule": cairnflow.schedules.CronSchedule},
    "cairnflow.run_configs": {"LocalRun": "cairnflow.run_configs:LocalRun"},
    "cairnflow.storage": {"Local": "cairnflow.storage:Local",
                          "Module": "cairnflow.storage:Module"},
    "cairnflow.triggers": {"all_successful": cairnflow.triggers.all_successful},
    "cairnflow.context": {"context": cairnflow.context},
}


def _resolve(ref):
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    value = importlib.import_module(module)
    for part in attr.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize("module", sorted(PATHS))
def test_deep_path_gives_the_same_objects_as_the_short_one(module):
    deep = importlib.import_module(module)
    for name, short in PATHS[module].items():
        assert getattr(deep, name) is _resolve(short), f"{module}.{name}"


@pytest.mark.parametrize("module", sorted(PATHS))
def test_compat_module_declares_what_it_exports(module):
    deep = importlib.import_module(module)
    exported = getattr(deep, "__all__", None)
    assert exported is not None, f"{module} has no __all__"
    for name in exported:
        assert hasattr(deep, name), f"{module}.__all__ names missing {name}"


def test_prefect_style_attribute_access_after_a_bare_import():
    import cairnflow as prefect  # what the sed turns `import prefect` into

    assert prefect.engine.signals.SKIP is cairnflow.signals.SKIP
    assert prefect.engine.state.Success is cairnflow.states.Success
    assert prefect.utilities.edges.unmapped is cairnflow.unmapped


def test_compat_modules_copy_no_code():
    """Signposts, not rooms: the compat modules only import and list names."""
    root = Path(cairnflow.__file__).parent
    thin = [*root.glob("engine/*.py"), *root.glob("utilities/*.py"),
            *root.glob("tasks/control_flow/*.py"), *root.glob("tasks/core/*.py")]
    assert len(thin) >= 20
    for path in thin:
        source = path.read_text()
        assert "def " not in source and "class " not in source, path


FIXTURE = Path(__file__).parent / "fixtures" / "flow_first_release.pickle"


def test_a_flow_pickled_by_the_first_release_still_loads_and_runs(memory_store):
    """tests/fixtures/flow_first_release.pickle was written by main at 5f3478e (the
    first release) with serialize.dump, as every run's saved flow is: mapping,
    unmapped, nout, case/merge, an operator, a collection, a Task subclass, a
    trigger, a schedule and an executor. Its module paths are permanent."""
    blob = serialize.SerializedResult(FIXTURE.read_bytes(), python_version="3.11.7",
                                      cloudpickle_version="3.1.3")
    flow = serialize.load(blob, "the fixture flow")
    assert flow.name == "pickled-first-release"
    state = flow.run(store=memory_store, run_on_schedule=False, n=3,
                     executor=cairnflow.executors.LocalExecutor())
    assert state.is_successful(), state
    results = {flow.slugs[t]: s.result for t, s in state.result.items()}
    assert results["report-1"] == "33/3 big [33, 3, {'k': 3}]"
    assert results["inc-1"] == [10, 11, 12]
    (no,) = flow.get_tasks(name="no")
    assert state.result[no].is_skipped()
