"""What runs in the process an agent starts for a run: the CLI's resume path.

A claimed run is at attempt N (0 for a run never started); its process starts
attempt N + 1 with the flow loaded afresh from its recorded source (the pickled
flow where the source is gone), exactly as ``cairnflow resume`` does, so the
history, logs, resume and the CLI see a run like any other. Of two processes
started for one run (an agent that died and the one that claimed the run
again), the store lets exactly one start the attempt.
"""

from __future__ import annotations

import sys
import warnings

__all__ = ["execute_run", "EXIT_OK", "EXIT_FAILED", "EXIT_REFUSED"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 3
"""Another process started this run's attempt first: nothing ran here."""


def execute_run(run_id: str, db: str | None) -> int:
    """Run claimed run ``run_id`` to its end; the exit status for the agent."""
    import os

    from cairnflow.exceptions import RunStillAliveError
    from cairnflow.runner.api import resume_run

    if db:  # the run's tasks (flow of flows) use the agent's store
        os.environ["CAIRNFLOW_DB_URL"] = db

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"flow\.run\(\) was called while")
        try:
            state = resume_run(run_id, store=db)
        except RunStillAliveError as exc:
            print(f"Not started: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        except KeyboardInterrupt:
            print(f"Run {run_id} was cancelled.", flush=True)
            return EXIT_FAILED
    print(f"Run {run_id}: {state.name}" + (f" - {state.message}" if state.message else ""),
          flush=True)
    return EXIT_OK if state.is_successful() else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    """``python -m cairnflow.agent.deploy RUN_ID [--db URL]``: what an agent starts."""
    args = list(sys.argv[1:] if argv is None else argv)
    db = None
    if "--db" in args:
        i = args.index("--db")
        db = args[i + 1]
        del args[i:i + 2]
    return execute_run(args[0], db)


if __name__ == "__main__":
    raise SystemExit(main())
