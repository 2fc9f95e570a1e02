"""What every fuzzing target shares: the pass rule, deterministic mutations (bytes, text, JSON),
the child processes that run the cases (so a crash or a hang is caught and named), the
summary, and the command line (`--cases`, `--start`, `--timeout`, `--show`).

A target is a module of this package with a `TARGET = Target(...)`; its command is
`python tests/fuzz/<target>.py`. Case N always means the same input: mutations draw from
`random.Random(N)` and the seeds are generated (plus the public real files, when present).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:  # the targets reuse the tests' generators
    sys.path.insert(0, str(TESTS))


@dataclass(frozen=True)
class Target:
    """`make_seeds(folder)` writes what the cases start from (once per campaign, emptied
    first); `run_case(seeds, case, work)` builds case `case` in the empty folder `work`, runs
    it and returns its outcome: "ok ...", "refused ..." or "PROBLEM ..." (see `guard`)."""

    name: str
    file: str  # the target's script: the child processes run it
    make_seeds: Callable[[Path], None]
    run_case: Callable[[Path, int, Path], str]
    description: str = ""
    timeout: float = 20.0  # seconds without progress before a case counts as a hang


# -- the pass rule -------------------------------------------------------------------------

def one_line(message: str) -> bool:
    return bool(message) and "\n" not in message and message.isprintable()


def refused(exc: BaseException) -> str:
    """The outcome of a LesionlocError: fine when its message is one printable line."""
    message = str(exc)
    if not one_line(message):
        return f"PROBLEM message not one printable line: {message[-160:]!r}"
    return f"refused {type(exc).__name__}"


def problem(exc: BaseException) -> str:
    return f"PROBLEM {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def guard(work: Callable[[], str]) -> str:
    """`work()`'s outcome, a LesionlocError as `refused`, anything else a PROBLEM."""
    from lesionloc_runtime.errors import LesionlocError

    try:
        return work()
    except LesionlocError as exc:
        return refused(exc)
    except BaseException as exc:  # a Rust panic is a BaseException too
        if isinstance(exc, KeyboardInterrupt):
            raise
        return problem(exc)


def json_problem(document: Any) -> str | None:
    """Why `document` is not strict JSON (NaN, infinity, a non-string key...), or None."""
    try:
        json.dumps(document, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"not strict JSON ({exc})"
    return None


# Lines a lesionloc command may print on stderr besides its final `error: ...` line: warnings
# and, in batch mode, the failed studies.
CLI_LINE_PREFIXES = ("error: ", "warning: ", "  failed: ", "  ... and ")


def run_cli(main: Any, args: Sequence[str], exit_codes: set[int],
            extra_prefixes: tuple[str, ...] = ()) -> str:
    """A click command run in this process with fd 2 captured: "exit N" when the exit code is
    one of `exit_codes`, every stderr line is printable and starts with one of
    CLI_LINE_PREFIXES or `extra_prefixes`, and a failure (exit >= 2) ends with one `error:`
    line."""
    prefixes = CLI_LINE_PREFIXES + extra_prefixes
    with captured_stderr() as sink:
        try:
            main.main(list(args), standalone_mode=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            return problem(exc)
    lines = sink.text().splitlines()
    if "Traceback (most recent call last):" in lines:
        return f"PROBLEM traceback on stderr: {' | '.join(lines[-2:])[:200]}"
    for line in lines:
        if not (line.isprintable() and line.startswith(prefixes)):
            return f"PROBLEM stderr line {line[:160]!r} (exit {code})"
    if code not in exit_codes:
        return f"PROBLEM exit code {code}: {' | '.join(lines[-2:])[:200]}"
    if code >= 2 and not (lines and lines[-1].startswith("error: ")):
        return f"PROBLEM exit {code} without an error line"
    return f"exit {code}"


_MODELS: dict[tuple, Any] = {}


def reuse_models() -> None:
    """Make `Localizer.load` in this process return the localizer it loaded before for the
    same arguments: a target that runs a whole command per case fuzzes its inputs, not the
    loading of the same bundle thousands of times (the bundles target loads for real)."""
    from lesionloc_runtime.localizer import Localizer

    if getattr(Localizer.load, "reused", False):
        return
    load = Localizer.load

    def cached(bundle=None, **options):
        key = (str(bundle), *sorted((k, repr(v)) for k, v in options.items()))
        if key not in _MODELS:
            _MODELS[key] = load(bundle, **options)
        return _MODELS[key]

    cached.reused = True  # type: ignore[attr-defined]
    Localizer.load = cached  # type: ignore[method-assign]


class _Sink:
    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()

    def text(self) -> str:
        self.file.seek(0)
        return self.file.read().decode("utf-8", "replace")


@contextmanager
def captured_stderr():
    """Everything written on fd 2 (Python, C libraries, decoders) goes to a sink meanwhile."""
    sink = _Sink()
    sys.stderr.flush()
    saved, python_stderr = os.dup(2), sys.stderr
    os.dup2(sink.file.fileno(), 2)
    # Python-level writers too, where sys.stderr is not fd 2 (under pytest's capture)
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")
    try:
        yield sink
    finally:
        sys.stderr.flush()
        sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)


# -- mutations -------------------------------------------------------------------------------

def damage(data: bytes, rng: random.Random, how: str | None = None) -> bytes:
    """Bytes damaged one way: flips (biased to the first 2 KiB, where headers are), a cut,
    inserted or zeroed bytes, or a duplicated run."""
    how = how or rng.choice(["flip", "flip", "cut", "insert", "zero", "repeat"])
    buffer = bytearray(data)
    n = len(buffer)
    if n == 0:
        return bytes(rng.randrange(256) for _ in range(rng.choice([1, 8, 64])))
    if how == "cut":
        return bytes(buffer[: rng.randrange(n)])
    if how == "insert":
        at = rng.randrange(n)
        buffer[at:at] = bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 64])))
    elif how == "zero":
        at = rng.randrange(n)
        span = min(rng.choice([4, 64, 1024]), n - at)
        buffer[at:at + span] = bytes(span)
    elif how == "repeat":
        at = rng.randrange(n)
        end = rng.randrange(at, min(n, at + 4096) + 1)
        buffer[end:end] = buffer[at:end]
    else:
        for _ in range(rng.choice([1, 2, 5, 20, 100])):
            at = rng.randrange(min(n, 2048)) if rng.random() < 0.6 else rng.randrange(n)
            buffer[at] = rng.randrange(256)
    return bytes(buffer)


# Strings that break naive text handling: line and paragraph separators, bidi and zero-width
# marks, a BOM, NUL and escape, combining marks, astral characters, huge tokens, separators.
HOSTILE_TEXT = [
    "\u2028", "\u2029", "\u202e", "\u200b", "\ufeff", "\x00", "\x1b[31m", "\r", "\r\n", "\t",
    "e\u0301\u0301\u0301", "\U0001d518\U0001f600", "\ud7ff", "..." * 40, "x" * 5000, "9" * 400,
    "1.", "2)", "a.", "Dr.", "e.g.", "3.5 cm", "___", ":", ";", ",", '"', "\\", "/", "../",
    "FINDINGS:", "IMPRESSION:", "\n\n", " " * 300, "No ", "not ", "normal", "Patient: X",
]


def mutate_text(text: str, rng: random.Random) -> str:
    """Text with hostile strings inserted, spans deleted or repeated, or its case changed."""
    for _ in range(rng.choice([1, 1, 2, 4, 16])):
        how = rng.choice(["insert", "insert", "insert", "delete", "repeat", "case"])
        at = rng.randrange(len(text) + 1)
        end = min(len(text), at + rng.choice([1, 5, 40, 400]))
        if how == "insert":
            text = text[:at] + rng.choice(HOSTILE_TEXT) + text[at:]
        elif how == "delete":
            text = text[:at] + text[end:]
        elif how == "repeat":
            text = text[:end] + text[at:end] * rng.choice([2, 50]) + text[end:]
        else:
            text = text[:at] + rng.choice([str.upper, str.lower, str.swapcase])(text[at:end]) \
                + text[end:]
    return text


def encode_text(text: str, rng: random.Random) -> bytes:
    """`text` as a file might hold it: mostly UTF-8, sometimes with a BOM, UTF-16 or cp1252."""
    how = rng.choice(["utf-8"] * 6 + ["utf-8-sig", "utf-16", "utf-16-le", "cp1252"])
    return text.encode(how, errors="replace" if how == "cp1252" else "surrogatepass")


# JSON values that a hand-edited or damaged file may hold where something else belongs.
HOSTILE_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 2**63, -(2**63) - 1, 1e308, -1e-320, 0.5, float("nan"),
    float("inf"), "", " ", "x" * 5000, "../../etc/passwd", "/", "\x00", "a\nb", "NaN", "1e999",
    [], [[]], {}, {"": None}, [1, "a", None], "\u2028", "C:\\x", "é" * 10,
]


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def mutate_json(document: Any, rng: random.Random) -> Any:
    """A copy of `document` with one to three edits: a value replaced by a hostile one or by
    another part of the document, a key removed or added, a value nested deeper."""
    document = json.loads(json.dumps(document))
    for _ in range(rng.choice([1, 1, 2, 3])):
        path = rng.choice(_paths(document))
        how = rng.choice(["replace", "replace", "replace", "remove", "add", "nest", "borrow"])
        if not path:
            if how in ("replace", "borrow"):
                document = rng.choice(HOSTILE_VALUES)
            continue
        *parent_path, last = path
        parent = document
        for key in parent_path:
            parent = parent[key]
        if how == "remove":
            del parent[last]
        elif how == "add" and isinstance(parent, dict):
            parent[rng.choice(["extra", "x" * 300, "", str(last).upper()])] = rng.choice(
                HOSTILE_VALUES)
        elif how == "nest":
            parent[last] = [parent[last]] if rng.random() < 0.5 else {"value": parent[last]}
        elif how == "borrow":
            source = rng.choice(_paths(document))
            value = document
            for key in source:
                value = value[key]
            parent[last] = json.loads(json.dumps(value))
        else:
            parent[last] = rng.choice(HOSTILE_VALUES)
    return document


def json_text(document: Any, rng: random.Random) -> str:
    """`document` serialized, sometimes indented, sometimes damaged as text or cut deep."""
    text = json.dumps(document, indent=rng.choice([None, None, 2]))
    roll = rng.random()
    if roll < 0.1:
        return "[" * 100_000 + text  # nesting beyond the parser's recursion limit
    if roll < 0.25:
        return mutate_text(text, rng)
    return text


# -- running the cases -----------------------------------------------------------------------

class _LogRecords(logging.Handler):
    """Collects what the code logs during a case: each record must be one printable line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not one_line(message):
            self.bad.append(message)


def run_one(target: Target, seeds: Path, case: int, work: Path) -> str:
    """Case `case` in the empty folder `work`, with fd 2 and logging watched."""
    records = _LogRecords()
    root = logging.getLogger()
    root.addHandler(records)
    try:
        with captured_stderr() as sink:
            result = guard(lambda: target.run_case(seeds, case, work))
    finally:
        root.removeHandler(records)
    printed = sink.text().strip()
    if printed and not result.startswith("PROBLEM"):
        result = f"PROBLEM printed on stderr: {' | '.join(printed.splitlines()[:2])[:200]}"
    if records.bad and not result.startswith("PROBLEM"):
        result = f"PROBLEM logged a message that is not one printable line: {records.bad[0][:160]!r}"
    return result


def _child(target: Target, seeds: Path, start: int, end: int) -> None:
    """Cases [start, end): one 'S case' line before and one 'R case outcome' after each, on
    the original stdout; what the code under test prints on stdout goes to /dev/null."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 1)
    logging.getLogger().setLevel(logging.WARNING)
    scratch = Path(tempfile.mkdtemp(prefix=f"fuzz-{target.name}-"))
    try:
        for case in range(start, end):
            work = scratch / "case"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            print(f"S {case}", file=channel, flush=True)
            result = run_one(target, seeds, case, work)
            sys.stdout.flush()
            print(f"R {case} {' '.join(result.split())}", file=channel, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _Problems(list):
    """The problem lines, printed as they come when `echo` (a long campaign shows progress)."""

    def __init__(self, echo: bool) -> None:
        super().__init__()
        self.echo = echo

    def append(self, line: str) -> None:
        super().append(line)
        if self.echo:
            print(line, flush=True)


@dataclass
class Summary:
    counts: Counter
    problems: list[str]
    seconds: float

    def line(self) -> str:
        counts = ", ".join(f"{n} {what}" for what, n in self.counts.most_common())
        return f"{counts} in {self.seconds:.0f} s"


def campaign(target: Target, seeds: Path, start: int, end: int, timeout: float | None = None,
             echo: bool = True) -> Summary:
    """Cases [start, end) in child processes; after a crash or a hang, a new child goes on
    with the next case. Outcomes are counted by their first two words."""
    timeout = target.timeout if timeout is None else timeout
    counts: Counter = Counter()
    problems = _Problems(echo)
    began = time.perf_counter()
    following = start  # the first case not yet finished
    while following < end:
        child = subprocess.Popen(
            [sys.executable, target.file, "--child", str(seeds), str(following), str(end)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert child.stdout is not None
        running: int | None = None
        while True:
            ready, _, _ = select.select([child.stdout], [], [], timeout)
            line = child.stdout.readline() if ready else ""
            if not line:
                if not ready:
                    child.kill()
                code = child.wait()
                if ready and code == 0 and running is None:
                    following = end  # the child did every case
                    break
                what = "hang" if not ready else f"crash (exit {code})"
                problems.append(f"case {following}: PROBLEM {what}")
                counts[f"PROBLEM {what.split()[0]}"] += 1
                following += 1
                break
            kind, number, *rest = line.rstrip("\n").split(" ", 2)
            if kind == "S":
                running = int(number)
                continue
            running, following = None, int(number) + 1
            outcome = rest[0] if rest else ""
            if outcome.startswith("PROBLEM"):
                problems.append(f"case {number}: {outcome}")
                outcome = "PROBLEM"
            counts[" ".join(outcome.split()[:2])] += 1
        child.stdout.close()
    return Summary(counts, list(problems), time.perf_counter() - began)


def main(target: Target, argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python tests/fuzz/{Path(target.file).name}", description=target.description,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=target.timeout,
                        help="seconds without progress before a case is a hang")
    parser.add_argument("--show", type=int, default=None, metavar="N",
                        help="build case N in ./fuzz-<target>-N/, run it here, print its outcome")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(target, Path(args.child[0]), int(args.child[1]), int(args.child[2]))
        return 0
    seeds = Path(tempfile.mkdtemp(prefix=f"fuzz-{target.name}-seeds-"))
    try:
        target.make_seeds(seeds)
        if args.show is not None:
            work = Path(f"fuzz-{target.name}-{args.show}").resolve()
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            print(f"{work}: {run_one(target, seeds, args.show, work)}")
            return 0
        print(f"{target.name}: {len(list(seeds.iterdir()))} seeds, cases {args.start} to "
              f"{args.start + args.cases - 1}", flush=True)
        summary = campaign(target, seeds, args.start, args.start + args.cases, args.timeout)
    finally:
        shutil.rmtree(seeds, ignore_errors=True)
    print(summary.line())
    return 1 if summary.problems else 0
