"""The in-process cache of task results kept for ``cache_for``.

As in Prefect 1, cached results live in the process that computed them: a
flow run on a schedule, or run again in the same process, reuses them. (Across
processes, resume is what reuses finished work.)
"""

from __future__ import annotations

import threading
from typing import Any

from cairnflow import cache_validators
from cairnflow.core.task import Task
from cairnflow.states import Cached
from cairnflow._lazy import lazy_module

pendulum = lazy_module("pendulum")  # imported on first use: see cairnflow._lazy


class TaskCache:
    """Cached states by cache key (the task's ``cache_key``, else flow name and slug)."""

    def __init__(self) -> None:
        self._entries: dict[str, list[Cached]] = {}
        self._lock = threading.Lock()

    def lookup(self, key: str, task: Task, inputs: dict[str, Any],
               parameters: dict[str, Any]) -> Cached | None:
        """A cached state that ``task``'s validator accepts for these inputs, if any."""
        validator = task.cache_validator or cache_validators.duration_only
        with self._lock:
            candidates = list(self._entries.get(key, ()))
        for state in reversed(candidates):
            if validator(state, inputs, parameters):
                return Cached(message="Task run was cached.", result=state.result,
                              cached_inputs=state.cached_inputs,
                              cached_result_expiration=state.cached_result_expiration)
        return None

    def store(self, key: str, task: Task, result: Any, inputs: dict[str, Any],
              parameters: dict[str, Any]) -> None:
        """Remember ``result`` for ``task.cache_for``."""
        state = Cached(result=result, cached_inputs=dict(inputs),
                       cached_result_expiration=pendulum.now("UTC") + task.cache_for)
        state.cached_parameters = dict(parameters)
        with self._lock:
            entries = self._entries.setdefault(key, [])
            entries[:] = [s for s in entries if cache_validators.duration_only(s, {}, {})]
            entries.append(state)


CACHE = TaskCache()
"""The process's cache; the task runner is its only user."""
