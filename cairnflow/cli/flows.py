"""``cairnflow flows``: the flows the store has runs of."""

from __future__ import annotations

from cairnflow.cli import output
from cairnflow.cli.errors import CommandGroup
from cairnflow.cli.options import Db, Json, reading

__all__ = ["app"]

app = CommandGroup(name="flows", help="Inspect flows.", no_args_is_help=True)


@app.command("ls")
def list_flows(as_json: Json = False, db: Db = None) -> None:
    """List the flows with runs in the store, each with its newest run.

    Example: cairnflow flows ls --json
    """
    with reading(db) as store:
        flows = store.list_flows()

    def show() -> None:
        table = output.Table(["flow", "runs", "last run", "last state",
                              f"last started ({output.local_zone()})"],
                             state_column=3, right=[1])
        for f in flows:
            table.add(f.name, f.runs, output.short_id(f.last_run_id or ""), f.last_state,
                      output.local_time(f.last_run_at).rsplit(" ", 1)[0])
        table.print()
        if not flows:
            output.echo("(no flows)")

    output.emit(as_json, lambda: [output.flow_json(f) for f in flows], show)
