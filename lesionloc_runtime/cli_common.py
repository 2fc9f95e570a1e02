"""What every lesionloc CLI shares: user mistakes become `error: <one line>` on stderr and a
non-zero exit code, never a traceback; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from lesionloc_runtime.errors import LesionlocError


def run_guarded(work: Callable[[], Any]) -> Any:
    try:
        return work()
    except LesionlocError as exc:
        message = " ".join(str(exc).split())
        click.echo(f"error: {message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
