"""Every command's ``--help`` has an example, and the README's CLI reference
lists every command ``--help`` shows, with the options of the commands it
documents in full."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cairnflow.cli import app

ROOT = Path(__file__).resolve().parent.parent

# Commands whose every option the reference line must list (the others' lines
# need only name the command).
FULL = {"run", "resume", "runs ls", "runs show", "runs history", "runs result", "runs logs",
        "runs rm", "runs prune", "flows ls"}
EVERYWHERE = {"--db", "--help"}  # said once for all commands, under the reference


def commands(cmd=None, path=()):
    """(path, click command) of every leaf command of the app."""
    cmd = cmd or typer.main.get_command(app)
    if hasattr(cmd, "list_commands"):
        for name in cmd.list_commands(None):
            yield from commands(cmd.get_command(None, name), (*path, name))
    else:
        yield " ".join(path), cmd


def reference() -> dict[str, str]:
    """The README's CLI reference: command -> its line."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("\n## The CLI\n", 1)[1].split("```", 2)[1]
    lines = {}
    for line in block.strip().splitlines():
        words = line.split()
        name = " ".join(w for w in words[1:4] if w[0].isalpha() and w.islower()
                        and w.replace("-", "").isalpha())
        lines[name] = line
    return lines


ALL = sorted(name for name, _ in commands())


def test_there_are_commands_to_check():
    assert {"run", "resume", "runs ls", "runs logs", "runs prune", "flows ls"} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_every_command_is_in_the_readme_reference(name):
    assert name in reference(), (f"`cairnflow {name}` is not in the README's CLI "
                                 "reference (the block under '## The CLI'): add its line")


@pytest.mark.parametrize("name", sorted(FULL & set(ALL)))
def test_the_reference_line_lists_every_option(name):
    cmd = dict(commands())[name]
    line = reference()[name]
    for param in cmd.params:
        if param.param_type_name != "option":
            continue
        long = [o for o in param.opts if o.startswith("--")]
        if set(long) & EVERYWHERE:
            continue
        assert any(o in line for o in long), f"{long} of `cairnflow {name}` is not in {line!r}"


@pytest.mark.parametrize("name", ALL)
def test_every_help_has_an_example_and_the_exit_statuses(name):
    result = CliRunner().invoke(app, [*name.split(), "--help"], terminal_width=100)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "Example: cairnflow " + name in text
    assert "Exit status: 0 done" in text
