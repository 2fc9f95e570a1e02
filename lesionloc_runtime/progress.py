"""Progress of the long commands (a batch, an evaluation, phantoms, a cache, training): tqdm's
bar on a terminal; anywhere else (a log file, cron's mail, systemd's journal, a Slurm output
file) one plain line a minute. tqdm redraws its bar with carriage returns, which a file keeps
in one growing line: a batch of 260 demo studies (15.4 s, stderr to a file) wrote 134 redraws,
9.8 KB, about 2.3 MB an hour at that rate."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

__all__ = ["LOG_EVERY_S", "LineProgress", "progress"]

LOG_EVERY_S = 60.0
_PLURAL = {"study": "studies"}


def progress(total: int | None, desc: str, unit: str, enabled: bool = True,
             file: IO[str] | None = None, initial: int = 0, **bar_options: Any) -> Any:
    """A context manager with tqdm's `update`, `write` and `set_postfix`: the bar when `file`
    (standard error by default) is a terminal, LineProgress otherwise, nothing when not
    `enabled`."""
    from tqdm import tqdm

    stream = file if file is not None else sys.stderr
    if not enabled:
        return tqdm(total=total, disable=True)
    if _is_terminal(stream):
        return tqdm(total=total, desc=desc, unit=unit, file=stream, initial=initial,
                    **bar_options)
    return LineProgress(total, desc, _PLURAL.get(unit, f"{unit}s"), stream, initial)


def _is_terminal(stream: IO[str] | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed, or no such method
        return False


class LineProgress:
    """`desc: 1,200 of 10,000 studies (12%), 14.2 a second, about 10 min left` at most once a
    LOG_EVERY_S, each a line of its own."""

    def __init__(self, total: int | None, desc: str, units: str, file: IO[str],
                 initial: int = 0) -> None:
        self.total, self.desc, self.units, self.file = total, desc, units, file
        self.n = self._first = initial
        self._start = self._shown = time.monotonic()
        self._postfix = ""

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._shown >= LOG_EVERY_S:
            self._shown = now
            self.write(self._line(now))

    def _line(self, now: float) -> str:
        done = f"{self.n:,} of {self.total:,}" if self.total else f"{self.n:,}"
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        rate = (self.n - self._first) / max(now - self._start, 1e-9)
        left = ""
        if self.total and rate > 0 and self.n < self.total:
            minutes = (self.total - self.n) / rate / 60
            left = f", about {minutes:.0f} min left" if minutes >= 1 else ", under a minute left"
        return f"{self.desc}: {done} {self.units}{share}, {rate:.1f} a second{left}{self._postfix}"

    def set_postfix(self, **values: Any) -> None:
        self._postfix = "".join(f", {key} {value}" for key, value in values.items())

    def write(self, text: str, file: IO[str] | None = None) -> None:
        print(text, file=file if file is not None else self.file, flush=True)

    def close(self) -> None:
        """Nothing to draw: the command says how it ended."""

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
