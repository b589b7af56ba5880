"""Live progress of ``cairnflow run`` tells the truth, at 120 and at 60 columns.

The bar and the lines above it are rendered through rich's own Console (a
terminal of a chosen width writing into a string); the whole command runs on
a pseudo-terminal once, with worker processes, to check what a person sees.
"""

from __future__ import annotations

import io
import logging
import os
import re
import textwrap
from datetime import timedelta

import pendulum
import pytest
from rich.console import Console

from cairnflow import Flow, get_run_logger, task
from cairnflow.cli.progress import LiveView, PlainView, Tracker, quiet_engine_console, \
    retry_policies
from cairnflow.statestore.base import Transition
from ptykit import cairnflow_argv, run_in_pty

T0 = pendulum.datetime(2024, 5, 1, 12, 0, 0, tz="UTC")


def terminal(width: int) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None,
                   highlight=False, legacy_windows=False)


def frame(view: LiveView, width: int) -> list[str]:
    """The bar and its counts exactly as the terminal shows them now."""
    shot = terminal(width)
    shot.print(view.progress.get_renderable())
    return shot.file.getvalue().rstrip("\n").splitlines()


def printed(view: LiveView) -> str:
    """The lines printed above the bar, with line wrapping undone."""
    return " ".join(view.console.file.getvalue().split())


def t(slug, state, map_index=None, message=None):
    return Transition("run-1", 1, slug, "work" if slug else "nightly", map_index, state,
                      message, T0)


@pytest.mark.parametrize("width", [120, 60])
def test_the_bar_total_counts_a_maps_children_as_soon_as_it_expands(width):
    view = LiveView("nightly", console=terminal(width))
    tracker = Tracker(view, tasks=3)
    tracker(t(None, "Running"))
    tracker(t("list-1", "Running"))
    tracker(t("list-1", "Success"))
    tracker(t("fetch-1", "Mapped", message="Mapped 200 task runs."))
    assert "2/203" in " ".join(frame(view, width))  # not 2/3: the 200 children count now
    for i in range(5):
        tracker(t("fetch-1", "Running", i))
        tracker(t("fetch-1", "Success", i))
    tracker(t("fetch-1", "Running", 5))
    lines = frame(view, width)
    assert all(len(line) <= width for line in lines)
    assert "7/203" in lines[0] and "nightly" in lines[0] and re.search("[━╸]", lines[0])
    assert "6 Success" in lines[-1] and "1 Mapped" in lines[-1] and "1 Running" in lines[-1]
    assert tracker.total() == 203


@pytest.mark.parametrize("width", [120, 60])
def test_a_failed_try_that_will_be_retried_says_so_and_the_final_failure_once(width):
    view = LiveView("nightly", console=terminal(width))
    tracker = Tracker(view, tasks=1, retries={"flaky-1": (3, 1.0)})
    tracker(t(None, "Running"))
    tracker(t("flaky-1", "Running"))
    tracker.note_failure(("flaky-1", None), "ValueError('nope')")
    tracker(t("flaky-1", "Retrying", message="Retrying Task (after attempt 1 of 4)"))
    assert "flaky-1 Retrying ValueError('nope'): retrying in 1s, attempt 2 of 4" \
        in printed(view)
    tracker(t("flaky-1", "Running"))
    tracker(t("flaky-1", "Failed",
              message="Error during execution of task: KeyError('a very long key name "
                      "that does not fit')"))
    text = printed(view)
    assert "Error:" not in text
    assert text.count("✗ flaky-1 Failed") == 1
    assert "KeyError('a very long key name that does not fit')" in text  # wrapped, not cut
    assert "1/1" in frame(view, width)[0]


def test_a_mapped_child_that_retries_is_named_by_its_slug_and_index():
    view = PlainView(out=io.StringIO())
    tracker = Tracker(view, tasks=1, retries={"fetch-1": (1, 90.0)})
    tracker(t("fetch-1", "Mapped", message="Mapped 2 task runs."))
    tracker(t("fetch-1", "Running", 1))
    tracker(t("fetch-1", "Retrying", 1))
    assert view.out.getvalue().splitlines()[-1] == \
        "fetch-1[1] Retrying retrying in 1m 30s, attempt 2 of 2"


def test_a_resume_counts_the_children_its_run_already_has():
    view = PlainView(out=io.StringIO())
    tracker = Tracker(view, tasks=2, reused={("fetch-1", None): "Mapped",
                                              ("fetch-1", 0): "Success"},
                      children={"fetch-1": 3}, announce=False)
    assert tracker.total() == 5
    tracker(t("fetch-1", "Running", 1))
    assert tracker.total() == 5


# -- through the engine ---------------------------------------------------------------


@task(max_retries=1, retry_delay=timedelta(milliseconds=100))
def flaky():
    get_run_logger().warning("the service answered 503")
    raise ValueError("nope")


@task
def fine(x):
    get_run_logger().info("fine %s", x)
    return x


def test_warnings_name_their_task_and_the_engine_error_is_not_repeated(capsys):
    with Flow("retries") as flow:
        fine.map([1, 2])
        flaky()
    out, err = io.StringIO(), io.StringIO()
    view = PlainView(out=out, err=err)
    tracker = Tracker(view, tasks=len(flow.tasks), retries=retry_policies(flow))
    with quiet_engine_console(view, tracker, logging.WARNING):
        flow.run(on_transition=tracker)
    lines = out.getvalue().splitlines()
    assert "flaky-1 Retrying ValueError('nope'): retrying in 0.1s, attempt 2 of 2" in lines
    assert "flaky-1 Failed Error during execution of task: ValueError('nope')" in lines
    logged = err.getvalue().splitlines()
    assert len(logged) == 2 and all(line.endswith("WARNING  flaky-1  the service answered 503")
                                    for line in logged)
    assert "Error" not in err.getvalue()
    assert capsys.readouterr().err == ""  # nothing else reached the terminal


def test_log_level_info_shows_each_mapped_childs_records_under_its_label():
    with Flow("info") as flow:
        fine.map([1, 2])
    err = io.StringIO()
    view = PlainView(out=io.StringIO(), err=err)
    tracker = Tracker(view, tasks=len(flow.tasks))
    with quiet_engine_console(view, tracker, logging.INFO):
        flow.run(on_transition=tracker)
    assert [line.split("  ", 1)[1] for line in err.getvalue().splitlines()
            if "fine " in line] == ["INFO     fine-1[0]  fine 1", "INFO     fine-1[1]  fine 2"]


# -- a person at a 60-column terminal ------------------------------------------------------

PROCESS_FLOW = """
from datetime import timedelta
from cairnflow import Flow, task, get_run_logger
from cairnflow.executors import LocalDaskExecutor

@task
def fetch(i):
    get_run_logger().info("fetched part %s", i)
    return i

@task(max_retries=1, retry_delay=timedelta(seconds=1))
def upload(parts):
    raise KeyError("a_rather_long_missing_key_name")

with Flow("nightly-report-with-a-long-name",
          executor=LocalDaskExecutor(scheduler="processes", num_workers=2)) as flow:
    upload(fetch.map(list(range(12))))
"""


@pytest.mark.slow  # worker processes start slowly; the rendering tests above run by default
def test_a_run_on_a_60_column_terminal_with_worker_processes(tmp_path):
    path = tmp_path / "nightly.py"
    path.write_text(textwrap.dedent(PROCESS_FLOW))
    env = {**os.environ, "CAIRNFLOW_HOME": str(tmp_path / "home")}
    result = run_in_pty(cairnflow_argv("run", str(path), "-v"), columns=60, env=env,
                        cwd=str(tmp_path))
    assert result.returncode == 1, result.plain
    screen = result.plain
    assert "15/15" in screen  # 3 tasks (the list is one) + 12 children
    after_map = screen[screen.index("Mapped 12 task runs."):]
    assert "/15" in after_map and "/3 " not in after_map  # counted from the map's expansion
    assert ("upload-1 Retrying KeyError('a_rather_long_missing_key_name'): retrying in 1s, "
            "attempt 2 of 2") in " ".join(screen.split())
    assert "Error:" not in screen
    for i in range(12):  # worker records, shown once, in the one live format
        assert screen.count(f"fetch-1[{i}]  fetched part {i}") == 1
    assert "INFO - cairnflow" not in screen  # the engine's console format never leaks
    table = screen[screen.index("1 task run failed:"):].splitlines()
    assert any(line.startswith("upload-1") and "KeyError('a_rather_long_missing_key_name')"
               in line for line in table)
    assert all(len(line) <= 60 for line in table[:3])  # the title, the header, the row
