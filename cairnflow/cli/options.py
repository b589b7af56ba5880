"""Options every command shares (how commands open the store is ``cairnflow.cli.opening``,
re-exported here).
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cairnflow.cli.opening import READ_LOCK_SECONDS, database_exists, reading, writing

__all__ = ["Db", "Json", "RunRef", "reading", "writing", "database_exists", "READ_LOCK_SECONDS"]

Db = Annotated[Optional[str], typer.Option(
    "--db", metavar="URL", show_default=False,
    help="The checkpoint store: a sqlite:/// URL, a file path or a "
         "postgresql+psycopg:// URL (default: $CAIRNFLOW_DB_URL, else "
         "$CAIRNFLOW_HOME/cairnflow.db).")]

RunRef = Annotated[str, typer.Argument(
    metavar="RUN_ID", show_default=False,
    help="A run id, a unique prefix of one (its first 8 characters usually do), or "
         "'last' for the newest run.")]

Json = Annotated[bool, typer.Option(
    "--json", help="Print JSON (a stable contract, for scripts) instead of a table.")]

