"""Every ``element-session`` option the README and docs/ write is one the command accepts.

``element-session ingest --sheet`` was documented before the command had it; this test reads the
documentation and asks click's command objects, so that documentation and command cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from element_session.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OPTION = re.compile(r"(?<![\w-])--[a-z][\w-]*")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
#: Options written in the documents that belong to other programs, and which program.
OTHER_PROGRAMS = {
    "--keep-running": "python -m workflow.demo",
    "--hex-blob": "mysqldump",
    "--option": "a placeholder for any option (docs/security.md)",
}


def _options(command: click.Command) -> set[str]:
    """The options of ``command``, its help option included."""
    params = command.get_params(click.Context(command, help_option_names=["-h", "--help"]))
    return {name for param in params for name in (*param.opts, *param.secondary_opts)}


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        found[prefix + name] = command
        if isinstance(command, click.Group):
            found |= _commands(command, f"{prefix}{name} ")
    return found


def _command_lines() -> list[tuple[str, str]]:
    """Every ``element-session ...`` written in a document: (where, the text after ``element-session``)."""
    lines = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for block in FENCE.findall(text):  # a command line ends at its line's end or comment
            for line in block.splitlines():
                if "element-session " in line:
                    lines.append((path.name, line.split("element-session ", 1)[1].split(" #")[0]))
        prose = FENCE.sub("", text)
        for span in re.findall(r"`([^`]*)`", prose):  # an inline code span may run over a line break
            if "element-session " in span:
                lines.append((path.name, span.split("element-session ", 1)[1]))
    return lines


def _invocation(text: str) -> tuple[click.Command, str]:
    """The (sub)command that ``text`` (what follows ``element-session``) runs, and the rest of the text."""
    command: click.Command = cli
    words = text.split()
    while words and isinstance(command, click.Group):
        word = words.pop(0)
        if word.startswith("-"):
            if word in _options(command) and words and not words[0].startswith("-") and word != "--verbose":
                words.pop(0)  # the group option's value (--pipeline MODULE)
            continue
        if word.isupper():  # a placeholder (COMMAND): the group's own options apply
            break
        assert word in command.commands, f"no command {word!r}"
        command = command.commands[word]
    return command, " ".join(words)


COMMAND_LINES = _command_lines()


def test_the_documents_write_command_lines():
    assert len(COMMAND_LINES) > 20


@pytest.mark.parametrize(("where", "text"), COMMAND_LINES)
def test_each_documented_command_line_uses_options_its_command_accepts(where, text):
    command, rest = _invocation(text)
    unknown = set(OPTION.findall(rest)) - _options(command) - _options(cli)
    assert not unknown, f"{where}: element-session {text}: {command.name} has no {sorted(unknown)}"


def test_each_option_written_alone_is_an_option_of_some_command():
    """``--sheet NAME`` in docs/ingest.md names no command: some command must have it."""
    every = set().union(_options(cli), *map(_options, _commands(cli).values()))
    for path in DOCUMENTS:
        prose = FENCE.sub("", path.read_text(encoding="utf-8"))
        for span in re.findall(r"`(--[^`]*)`", prose):
            (option,) = OPTION.findall(span)[:1]
            assert option in every or option in OTHER_PROGRAMS, f"{path.name}: `{span}` is no element-session option"


def test_a_drifted_document_would_fail():
    command, rest = _invocation("ingest sessions log.xlsx --sheet NAME --no-such-option")
    assert command.name == "ingest" and set(OPTION.findall(rest)) - _options(command) == {"--no-such-option"}
