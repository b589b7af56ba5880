"""The README's quickstart and CI agree: CI installs and tests exactly as the README says."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quickstart_commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("python3.11 ")]


def test_the_quickstart_has_two_commands():
    commands = quickstart_commands()
    assert len(commands) == 2
    assert "examples/quickstart.py" in commands[0] and "cairnflow resume" in commands[0]
    assert '".[test]"' in commands[1] and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert quickstart_commands()[1] in ci
