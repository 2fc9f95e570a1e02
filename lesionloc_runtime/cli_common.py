"""What every lesionloc CLI shares: user mistakes become `error: <one line>` on stderr and a
non-zero exit code, never a traceback; anything else is a bug and keeps its traceback.

A Ctrl-C prints `interrupted` and exits 130; with `terminate`, SIGTERM (what a scheduler or
service manager sends) unwinds the same way, prints `terminated` and exits 143, so files
written atomically stay whole, temporary ones are removed and a batch's workers are shut down.

Two kinds of user mistake:
- a LesionlocError raised by the work (`guarded` / `run_guarded`), with its own exit code;
- a mistake on the command line (unknown option, missing argument, a value that is not a
  number), found by click before the work starts. `Command` and `Group` print it on one line
  too, with the exit code EXIT_USAGE (2) and a pointer to --help, instead of click's usage block.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from lesionloc_runtime.errors import (
    EXIT_HANGUP,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    LesionlocError,
    Terminated,
    printable,
)

__all__ = ["HELP_OPTIONS", "Command", "CommandLineError", "Group", "Terminated", "guarded",
           "run_guarded"]

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


# Signals that stop a command as Ctrl-C does: a scheduler's or `kill`'s, a closed terminal's.
_STOPPING = (signal.SIGTERM, signal.SIGHUP)


def _raise_terminated(signum: int, frame: Any) -> None:
    for stopping in _STOPPING:  # a second one ends the process at once
        signal.signal(stopping, signal.SIG_DFL)
    raise Terminated(signum)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Terminated while the block runs, if this is the main thread,
    each unless something else handles it already (`nohup`'s ignored SIGHUP stays ignored);
    the handlers before are put back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    taken = [s for s in _STOPPING if signal.getsignal(s) is signal.SIG_DFL]
    for stopping in taken:
        signal.signal(stopping, _raise_terminated)
    try:
        yield
    finally:
        for stopping in taken:
            signal.signal(stopping, signal.SIG_DFL)


@contextmanager
def guarded(terminate: bool = False) -> Iterator[None]:
    try:
        if terminate:
            with _terminate_as_interrupt():
                yield
        else:
            yield
    except LesionlocError as exc:
        click.echo(f"error: {printable(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except Terminated as exc:
        try:  # after SIGHUP the terminal may be gone
            click.echo("terminated" if exc.signum == signal.SIGTERM else "hung up", err=True)
        except OSError:
            pass
        sys.exit(EXIT_TERMINATED if exc.signum == signal.SIGTERM else EXIT_HANGUP)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)


def run_guarded(work: Callable[[], Any], terminate: bool = False) -> Any:
    """`work()` inside `guarded(terminate)`."""
    with guarded(terminate):
        return work()


class CommandLineError(click.UsageError):
    """A command-line mistake shown as `error: <message> (see 'PROG --help')`."""

    def __init__(self, original: click.ClickException) -> None:
        super().__init__(original.format_message(), getattr(original, "ctx", None))
        self.exit_code = EXIT_USAGE  # click's code for every mistake parsing can find

    def show(self, file: Any = None) -> None:
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"error: {printable(self.format_message())}{hint}", err=True)


@contextmanager
def _command_line_errors() -> Iterator[None]:
    try:
        yield
    except (CommandLineError, click.exceptions.NoArgsIsHelpError):
        raise  # already one line, or a bare group call that shows its help
    except click.ClickException as exc:
        raise CommandLineError(exc) from None


class Command(click.Command):
    """A click command whose command-line mistakes are one line (see the module docstring)."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        with _command_line_errors():
            return super().make_context(info_name, args, parent=parent, **extra)


class Group(click.Group):
    """A click group whose own and whose subcommands' command-line mistakes are one line."""

    command_class = Command

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        with _command_line_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        with _command_line_errors():
            return super().resolve_command(ctx, args)


Group.group_class = Group
