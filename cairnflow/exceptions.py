"""Errors cairnflow raises for user mistakes and store problems.

Each carries a message meant to be shown as is: one line that says what went
wrong and what to do next. The CLI prints it without a traceback.
"""

from __future__ import annotations

__all__ = [
    "CairnflowError", "FlowValidationError", "MissingParameterError", "StoreError",
    "StoreLockedError", "SchemaVersionError", "UnknownRunError", "AmbiguousRunError",
    "ResultNotFoundError", "ResultLoadError", "RunStillAliveError", "FlowLoadError",
    "FencedOutError", "UnresumableRunError",
]


class CairnflowError(Exception):
    """Base class of cairnflow's own errors."""


class FlowValidationError(CairnflowError, ValueError):
    """The flow's graph is invalid (a cycle, a task outside the flow, ...)."""


class MissingParameterError(CairnflowError, ValueError):
    """A required parameter was not given."""


class FlowLoadError(CairnflowError):
    """A flow could not be loaded from a file or from the store."""


class StoreError(CairnflowError):
    """The checkpoint store cannot be used or a write to it failed."""


class StoreLockedError(StoreError):
    """The database stayed locked by another process past every retry."""


class SchemaVersionError(StoreError):
    """The database was written by a newer cairnflow."""


class UnknownRunError(StoreError, LookupError):
    """No run matches the given id."""


class AmbiguousRunError(StoreError, LookupError):
    """A run id prefix matches several runs."""


class ResultNotFoundError(StoreError, LookupError):
    """A task has no checkpointed result."""


class ResultLoadError(StoreError):
    """A stored result exists but cannot be deserialized."""


class RunStillAliveError(CairnflowError):
    """A resume was asked for a run whose process is still running."""


class FencedOutError(CairnflowError):
    """This process's attempt is no longer its run's current one: another process
    resumed the run (it looked dead), or the run was deleted. The write that
    found it out stored nothing; the engine stops the attempt at once and
    records nothing more."""


class UnresumableRunError(CairnflowError):
    """A run cannot be resumed as it ran (a parameter of it could not be saved)."""
