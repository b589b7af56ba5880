"""Prefect 1's ``prefect.engine.cache_validators``; they live in ``cairnflow.cache_validators``."""

from cairnflow.cache_validators import (  # noqa: F401 - re-exported
    never_use, duration_only, all_inputs, all_parameters, partial_inputs_only,
    partial_parameters_only,
)

__all__ = [
    "never_use", "duration_only", "all_inputs", "all_parameters", "partial_inputs_only",
    "partial_parameters_only",
]
