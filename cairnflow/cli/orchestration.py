"""``cairnflow register``, ``cairnflow runs cancel`` and ``cairnflow agent local start``.

Thin shells: registration is ``cairnflow.registration``, writes are
``cairnflow.statestore.actions``, the agent is ``cairnflow.agent.local``.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Optional

import typer

from cairnflow.cli import output
from cairnflow.cli.errors import CommandGroup
from cairnflow.cli.options import Db, RunRef, writing

__all__ = ["register_command", "cancel_command", "agent_app"]

Labels = Annotated[Optional[list[str]], typer.Option(
    "--label", "-l", metavar="LABEL", show_default=False,
    help="A label (repeatable).")]


def register_command(
    flow_ref: Annotated[str, typer.Argument(
        metavar="FILE[:VARIABLE]", show_default=False,
        help="The flow file, and the flow's variable name if the file defines several.")],
    label: Labels = None,
    project: Annotated[Optional[str], typer.Option(
        "--project", metavar="NAME", help="A project name, kept for people to read.")] = None,
    idempotency_key: Annotated[Optional[str], typer.Option(
        "--idempotency-key", metavar="KEY",
        help="Register nothing new if the latest version has this key.")] = None,
    schedule: Annotated[bool, typer.Option(
        "--schedule/--no-schedule", help="Whether the flow's schedule creates runs.")] = True,
    db: Db = None,
) -> None:
    """Register a flow for the web UI and agents: a new version per call.

    An agent runs the flow's runs only if it has all the flow's labels
    (default: this host's name). No server needs to be running.

    Example: cairnflow register hello.py --label etl
    """
    from cairnflow.registration import register_flow
    from cairnflow.runner.loading import load_flow_from_file, split_flow_ref

    path, variable = split_flow_ref(flow_ref)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"flow\.run\(\) was called while")
        flow = load_flow_from_file(path, variable)
    with writing(db) as store:
        register_flow(flow, project_name=project, labels=label or None,
                      idempotency_key=idempotency_key, set_schedule_active=schedule,
                      store=store)


def cancel_command(run_id: RunRef, db: Db = None) -> None:
    """Cancel a run: a queued one at once, a running one within seconds.

    A running run's process is stopped by the agent on its host (killed after
    a grace period) and the run and its running task runs end Cancelled.

    Example: cairnflow runs cancel last
    """
    from cairnflow.statestore import actions, queries

    with writing(db) as store:
        rid = queries.resolve_run_id(store, run_id)
        state = actions.cancel_run(store, rid)
    if state == "Cancelled":
        output.echo(f"Run {rid} was cancelled.")
    elif state == "Running":
        output.echo(f"Run {rid} is being cancelled: its agent stops it within seconds.")
    else:
        output.echo(f"Run {rid} already ended {state}; nothing to cancel.")


agent_app = CommandGroup(name="agent", help="Run agents that start registered flows' runs.",
                         no_args_is_help=True)
local_app = CommandGroup(name="local", help="The local agent: runs flows as processes here.",
                         no_args_is_help=True)
agent_app.add_typer(local_app, name="local")


@local_app.command("start")
def agent_start(
    label: Labels = None,
    limit: Annotated[int, typer.Option(
        "--limit", min=1, help="At most this many runs at once.")] = 10,
    name: Annotated[Optional[str], typer.Option(
        "--name", metavar="NAME", help="The agent's name (default: agent@host).")] = None,
    no_hostname_label: Annotated[bool, typer.Option(
        "--no-hostname-label", help="Do not add this host's name to the labels.")] = False,
    db: Db = None,
) -> None:
    """Start a local agent: it claims due runs and runs each in its own process.

    A run is taken only if all its labels are among the agent's (the agent
    has this host's name as a label too). Stop it with Ctrl-C or SIGTERM (runs
    it started keep running).

    Example: cairnflow agent local start --label etl
    """
    from cairnflow.agent.local import LocalAgent
    from cairnflow.cli.interrupts import stop_on_sigint, stop_on_sigterm
    from cairnflow.registration import host_name

    labels = list(label or [])
    if not no_hostname_label:
        labels.append(host_name())
    agent = LocalAgent(db=db, labels=labels, limit=limit, name=name)
    stop_on_sigint()  # even when started as `nohup ... &`
    stop_on_sigterm()
    agent.run_forever()
