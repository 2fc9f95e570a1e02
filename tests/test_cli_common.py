"""Command-line mistakes in every lesionloc CLI: one `error:` line on stderr, exit code 2, a
pointer to the command's --help, never click's usage block or a traceback."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from lesionloc_export.cli import main as export_main
from lesionloc_runtime.cli import main as run_main
from lesionloc_runtime.cli_common import Command, Group
from lesionloc_runtime.evaluation.cli import command as evaluate_main
from lesionloc_train.cli import main as train_main

CASES = [
    (run_main, "lesionloc-run", [], "Missing argument 'SOURCE'", "lesionloc-run"),
    (run_main, "lesionloc-run", ["x.dcm", "--bogus"], "No such option '--bogus'",
     "lesionloc-run"),
    (run_main, "lesionloc-run", ["x.dcm", "--threads", "two"],
     "Invalid value for '--threads': 'two' is not a valid integer", "lesionloc-run"),
    (export_main, "lesionloc-export", ["ckpt", "--out", "b", "--quantize", "int4"],
     "Invalid value for '--quantize'", "lesionloc-export"),
    (evaluate_main, "lesionloc-evaluate", ["--dataset", "nope"],
     "Invalid value for '--dataset'", "lesionloc-evaluate"),
    (train_main, "lesionloc-train", ["nope"], "No such command 'nope'", "lesionloc-train"),
    (train_main, "lesionloc-train", ["pretrain", "--bogus"], "No such option '--bogus'",
     "lesionloc-train pretrain"),
    (train_main, "lesionloc-train", ["synth", "--n", "4"], "Missing option '--out'",
     "lesionloc-train synth"),
    (train_main, "lesionloc-train", ["prepare-mimic"], "Missing argument 'ROOT'",
     "lesionloc-train prepare-mimic"),
]


@pytest.mark.parametrize(("command", "prog", "args", "complaint", "path"), CASES,
                         ids=[" ".join([c[1], *c[2]]) or c[1] for c in CASES])
def test_command_line_mistakes_are_one_line(command, prog, args, complaint, path):
    result = CliRunner().invoke(command, args, prog_name=prog)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr == f"error: {complaint}" + result.stderr.split(complaint, 1)[1]
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.rstrip().endswith(f"(see '{path} --help')"), result.stderr
    assert "Usage:" not in result.stderr


def test_a_bare_group_still_shows_its_help():
    result = CliRunner().invoke(train_main, [], prog_name="lesionloc-train")
    assert "Usage: lesionloc-train" in result.output
    assert "pretrain" in result.output


def test_help_still_works():
    result = CliRunner().invoke(run_main, ["--help"], prog_name="lesionloc-run")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: lesionloc-run")


def _commands(group: click.Group) -> list[click.Command]:
    found = []
    for command in group.commands.values():
        found.append(command)
        if isinstance(command, click.Group):
            found.extend(_commands(command))
    return found


def test_every_command_uses_the_shared_classes():
    """A subcommand registered with plain click would print click's usage block again."""
    assert isinstance(train_main, Group)
    for command in [run_main, export_main, evaluate_main, *_commands(train_main)]:
        assert isinstance(command, Command | Group), command.name


def test_sigterm_stops_a_guarded_command_as_an_interrupt(capsys):
    import os
    import signal

    from lesionloc_runtime.cli_common import guarded
    from lesionloc_runtime.errors import EXIT_TERMINATED

    cleaned = []
    with pytest.raises(SystemExit) as stopped, guarded(terminate=True):
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises at the next bytecode
            pytest.fail("SIGTERM did not stop the work")  # pragma: no cover
        finally:
            cleaned.append(True)  # what an interrupt unwinds, a SIGTERM unwinds
    assert stopped.value.code == EXIT_TERMINATED == 143
    assert capsys.readouterr().err == "terminated\n"
    assert cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back


def test_sigterm_is_left_alone_without_terminate_or_with_a_handler_of_its_own():
    import signal

    from lesionloc_runtime.cli_common import guarded

    with guarded():  # lesionloc-train: a rank blocked in a collective would not unwind
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def own(signum, frame):  # pragma: no cover - never sent
        pass

    before = signal.signal(signal.SIGTERM, own)
    try:
        with guarded(terminate=True):
            assert signal.getsignal(signal.SIGTERM) is own
        assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, before)
