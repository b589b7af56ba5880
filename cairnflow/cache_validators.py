"""Cache validators: decide whether a cached result may stand in for a new run.

Each is a function ``(state, inputs, parameters) -> bool`` over a ``Cached``
state, as in Prefect 1.

Example:
    >>> from datetime import timedelta
    >>> from cairnflow import task, cache_validators
    >>> @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    ... def expensive(x):
    ...     return x * 2
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from cairnflow._lazy import lazy_module
from cairnflow.states import Cached

pendulum = lazy_module("pendulum")  # imported on first use: see cairnflow._lazy

__all__ = ["never_use", "duration_only", "all_inputs", "all_parameters",
           "partial_inputs_only", "partial_parameters_only"]

Validator = Callable[[Cached, dict, dict], bool]


def _unexpired(state: Cached) -> bool:
    expiration = state.cached_result_expiration
    return expiration is None or expiration > pendulum.now("UTC")


def never_use(state: Cached, inputs: dict, parameters: dict) -> bool:
    """Never use the cache."""
    return False


def duration_only(state: Cached, inputs: dict, parameters: dict) -> bool:
    """Use the cache until it expires (the default)."""
    return _unexpired(state)


def all_inputs(state: Cached, inputs: dict, parameters: dict) -> bool:
    """Use the cache while unexpired and the task's inputs are the same."""
    return _unexpired(state) and state.cached_inputs == inputs


def all_parameters(state: Cached, inputs: dict, parameters: dict) -> bool:
    """Use the cache while unexpired and the flow's parameters are the same."""
    return _unexpired(state) and getattr(state, "cached_parameters", None) == parameters


def _partial(attr: str, validate_on: Iterable[str] | None) -> Validator:
    keys = list(validate_on or ())

    def validator(state: Cached, inputs: dict, parameters: dict) -> bool:
        current = inputs if attr == "cached_inputs" else parameters
        cached = getattr(state, attr, None) or {}
        return _unexpired(state) and all(cached.get(k) == current.get(k) for k in keys)

    return validator


def partial_inputs_only(validate_on: Iterable[str] | None = None) -> Validator:
    """Use the cache while unexpired and the named inputs are the same."""
    return _partial("cached_inputs", validate_on)


def partial_parameters_only(validate_on: Iterable[str] | None = None) -> Validator:
    """Use the cache while unexpired and the named parameters are the same."""
    return _partial("cached_parameters", validate_on)
