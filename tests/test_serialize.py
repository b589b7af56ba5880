"""``serialize.dumps`` writes exactly what ``cloudpickle.dumps`` writes, faster.

The saved copy of a flow, a result and a parameter are read back with
``cloudpickle.loads`` by any later version of cairnflow, so the faster pickler must not
change a byte: each case compares the two outputs.
"""

from __future__ import annotations

import copyreg
import dataclasses
from collections import namedtuple
from datetime import timedelta

import cloudpickle
import pytest

from cairnflow import Flow, Parameter, Task, task
from cairnflow.statestore import serialize


class Plain:
    def __init__(self, **attributes):
        self.__dict__.update(attributes)


class Unequal:
    """A value that cannot be compared (as numpy arrays cannot be, to a bool)."""

    def __eq__(self, other):
        raise ValueError("the truth value is ambiguous")

    __hash__ = object.__hash__


class Slotted:
    __slots__ = ("x",)

    def __init__(self, x):
        self.x = x


class SlotsAndDict(Plain):
    """Its instances have a __dict__ (from Plain) and a slot: both must be kept."""

    __slots__ = ("s",)

    def __init__(self, s, **attributes):
        super().__init__(**attributes)
        self.s = s


class WithGetstate(Plain):
    def __getstate__(self):
        return {"only": "this"}


class WithReduce(Plain):
    def __reduce__(self):
        return (Plain, ())


class WithReduceEx(Plain):
    def __reduce_ex__(self, protocol):
        return (Plain, ())


class WithNewargs(Plain):
    def __new__(cls, *args):
        return super().__new__(cls)

    def __getnewargs__(self):
        return (1, 2)


class SometimesDefaultReduce(Plain):
    """Reduced as the default would for some instances: the first one seen must not
    decide for the others."""

    def __reduce__(self):
        if self.__dict__.get("default"):
            return copyreg.__newobj__, (type(self),), self.__dict__, None, None
        return (Plain, ())


class SometimesDefaultState(Plain):
    def __getstate__(self):
        return self.__dict__ if self.__dict__.get("default") else {"only": "this"}


class Registered(Plain):
    """Has its own reducer in copyreg's table, which must win."""


copyreg.pickle(Registered, lambda obj: (Plain, (), {"registered": True}))


class DictSubclass(dict):
    pass


class Failing(Exception):
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenSlots:
    a: int


Point = namedtuple("Point", "x y")


class AddOne(Task):
    def run(self, x):
        return x + 1


def _instance_with_getstate():
    obj = Plain(a=1)
    obj.__getstate__ = lambda: {"from": "instance"}
    return obj


def _flow() -> Flow:
    @task
    def numbers(n):
        return list(range(n))

    @task(max_retries=2, retry_delay=timedelta(seconds=1), tags=["t"])
    def inc(x):
        return x + 1

    with Flow("pickled") as flow:
        n = Parameter("n", default=3)
        inc.map(numbers(n))
        AddOne(name="add")(inc(1))
    return flow


CASES = {
    "plain object": lambda: Plain(a=1, b=[1, 2], c={"k": None}),
    "plain object with no attributes": lambda: Plain(),
    "empty then full objects of one class": lambda: [Plain(), Plain(a=1), Plain()],
    "one object twice": lambda: (lambda o: [o, o, {"again": o}])(Plain(a=1)),
    "nested plain objects": lambda: Plain(child=Plain(child=Plain(leaf=1))),
    "a value that cannot be compared": lambda: Plain(value=Unequal()),
    "__slots__": lambda: [Slotted(1), Slotted(2)],
    "__slots__ and a __dict__": lambda: [SlotsAndDict(1, a=2), SlotsAndDict(3)],
    "__getstate__": lambda: [WithGetstate(a=1)],
    "__reduce__": lambda: [WithReduce(a=1)],
    "__reduce_ex__": lambda: [WithReduceEx(a=1)],
    "__getnewargs__": lambda: [WithNewargs()],
    "__reduce__ like the default's for one instance": lambda: [
        SometimesDefaultReduce(default=True), SometimesDefaultReduce(a=1)],
    "__getstate__ like the default's for one instance": lambda: [
        SometimesDefaultState(default=True), SometimesDefaultState(a=1)],
    "__getstate__ on the instance": _instance_with_getstate,
    "a copyreg reducer": lambda: [Registered(a=1)],
    "dict subclass": lambda: DictSubclass(a=Plain(b=1)),
    "exception": lambda: Failing("boom"),
    "frozen dataclass with slots": lambda: FrozenSlots(1),
    "namedtuple": lambda: Point(1, Plain(a=2)),
    "a class and a function": lambda: [Plain, _flow],
    "a flow": _flow,
}


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_dumps_writes_the_bytes_cloudpickle_writes(make):
    value = make()
    assert serialize.dumps(value) == cloudpickle.dumps(value)


def test_a_flow_pickled_by_dumps_loads_with_its_tasks_settings_and_edges():
    flow = _flow()
    loaded = cloudpickle.loads(serialize.dumps(flow))
    assert sorted(loaded.slugs.values()) == sorted(flow.slugs.values())
    inc = next(t for t in loaded.tasks if t.name == "inc")
    assert (inc.max_retries, inc.retry_delay, inc.tags) == (2, timedelta(seconds=1), {"t"})
    assert len(loaded.edges) == len(flow.edges)
    assert loaded.run().is_successful()


def test_an_instance_of_a_plain_class_is_reduced_without_the_default_path():
    pickler = serialize._pickler_class(cloudpickle, dict(cloudpickle.Pickler.dispatch_table),
                                       (0, 0))
    plain = Plain(a=1)
    assert pickler.reducer_override(None, plain) == (copyreg.__newobj__, (Plain,),
                                                     plain.__dict__)
    for declined in (Slotted(1), WithGetstate(a=1), WithReduce(a=1), Registered(a=1)):
        assert pickler.reducer_override(None, declined) is NotImplemented
