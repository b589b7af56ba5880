"""The README's "a run failed at 3 a.m." story runs as written.

Every ``$ command`` of the story's console blocks is run in order, in a fresh
directory with its own CAIRNFLOW_HOME, through a real shell; each command's
output must equal the README's once run ids, times, durations and the
directory are normalised.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STORY_TITLE = "## A run failed at 3 a.m."

NORMALISE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<run-id>"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+"), "<time>"),
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "<clock>"),
    (re.compile(r"start \(\S+\)"), "start (<zone>)"),
    (re.compile(r"\b\d+(\.\d+)?(ms|s)\b"), "<duration>"),
    (re.compile(r"line \d+"), "line <n>"),
]


def story_steps(readme: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each ``$`` line of the story's blocks."""
    section = readme.split(STORY_TITLE, 1)[1].split("\n## ", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", section, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
    return steps


def normalise(lines: list[str], directory: str) -> list[str]:
    out = []
    for line in lines:
        if line.strip() and set(line.strip()) <= set("^~"):
            continue  # traceback markers: Python 3.11+ prints them, 3.10 does not
        line = re.sub(r"/\S*/(nightly\.py)", r"<dir>/\1", line.replace(directory, "<dir>"))
        for pattern, replacement in NORMALISE:
            line = pattern.sub(replacement, line)
        out.append(" ".join(line.split()))
    while out and not out[-1]:
        out.pop()
    return out


def test_the_story_has_the_steps_it_promises():
    commands = [c for c, _ in story_steps((ROOT / "README.md").read_text())]
    assert [c.split()[:2] for c in commands if c.startswith("cairnflow")] == [
        ["cairnflow", "run"], ["cairnflow", "runs"], ["cairnflow", "runs"],
        ["cairnflow", "resume"], ["cairnflow", "runs"]]


@pytest.mark.skipif(shutil.which("bash") is None, reason="the story is a shell session")
def test_the_readme_story_runs_as_written(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "cairnflow").exists():
        pytest.skip("the cairnflow command is not installed next to this Python")
    env = {**os.environ, "CAIRNFLOW_HOME": str(tmp_path / ".cairnflow"),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "100"}
    env.pop("CAIRNFLOW_DB_URL", None)

    for command, expected in story_steps((ROOT / "README.md").read_text()):
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        want_status = 1 if command.startswith("cairnflow run ") else 0
        assert done.returncode == want_status, (command, done.stdout)
        assert normalise(done.stdout.splitlines(), str(tmp_path)) == \
            normalise(expected, str(tmp_path)), command
