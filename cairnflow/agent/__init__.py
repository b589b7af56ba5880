"""The local agent: claims due runs from the store and runs each in its own process.

``cairnflow agent local start`` runs ``LocalAgent.run_forever`` (see
``cairnflow.agent.local``): a loop of claim, deploy, reap and heartbeat over
the store, as Prefect 1's local agent did over its server.
"""

from __future__ import annotations

__all__ = ["LocalAgent"]


def __getattr__(name: str):  # the agent's modules load only when an agent is used
    if name == "LocalAgent":
        from cairnflow.agent.local import LocalAgent

        return LocalAgent
    raise AttributeError(name)
