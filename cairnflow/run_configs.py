"""How an agent runs a registered flow (Prefect 1's ``run_configs``).

The local agent honours ``LocalRun``: its environment variables, its working
directory and its labels.

Example:
    >>> from cairnflow import Flow
    >>> from cairnflow.run_configs import LocalRun
    >>> flow = Flow("etl", run_config=LocalRun(env={"STAGE": "prod"}, labels=["dev"]))
    >>> flow.run_config.labels
    ['dev']
"""

from __future__ import annotations

from typing import Any

__all__ = ["RunConfig", "LocalRun", "UniversalRun"]


class RunConfig:
    """Base class: ``env`` and ``labels`` every run config has."""

    def __init__(self, env: dict[str, str] | None = None, labels: list[str] | None = None):
        self.env = dict(env or {})
        self.labels = list(labels or ())

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: labels={self.labels}>"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)


class UniversalRun(RunConfig):
    """Runs anywhere an agent with matching labels is."""


class LocalRun(RunConfig):
    """A local process: ``env`` added to the agent's environment, in ``working_dir``."""

    def __init__(self, env: dict[str, str] | None = None, working_dir: str | None = None,
                 labels: list[str] | None = None, **kwargs: Any):
        super().__init__(env=env, labels=labels)
        self.working_dir = working_dir
