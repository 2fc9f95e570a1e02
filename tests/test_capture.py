"""What native decoders print is caught while a film is read (fd 2 points at a file), and our
own messages from other threads meanwhile still reach the terminal (imageio.capture)."""

from __future__ import annotations

import io
import logging
import os
import sys
import threading

from tqdm import tqdm

from lesionloc_runtime.imageio.capture import stderr_captured, terminal_stderr


def _stderr_on_fd2(monkeypatch) -> io.TextIOWrapper:
    """sys.stderr writing to file descriptor 2 itself, as in a terminal. Set in the test's
    body: pytest puts its own object back into sys.stderr between a fixture and the test."""
    stream = open(2, "w", buffering=1, encoding="utf-8", closefd=False)
    monkeypatch.setattr(sys, "stderr", stream)
    assert sys.stderr.fileno() == 2
    return stream


def _decoding_while(other_thread_writes) -> list[str]:
    """What a reader's stderr_captured caught while, in another thread, `other_thread_writes`
    ran (the reader's decoder prints one line of its own first)."""
    started, done = threading.Event(), threading.Event()
    caught: list[str] = []

    def reader() -> None:
        with stderr_captured() as printed:
            os.write(2, b"openjpeg: a warning of the decoder\n")
            started.set()
            done.wait(10)
        caught.extend(printed)

    thread = threading.Thread(target=reader)
    thread.start()
    assert started.wait(10)
    try:
        other_thread_writes()
    finally:
        done.set()
        thread.join(10)
    return caught


def test_a_warning_and_the_progress_bar_reach_the_terminal_during_a_decode(monkeypatch, capfd):
    _stderr_on_fd2(monkeypatch)
    # as the CLI configures logging, and as the batch draws its bar
    handler = logging.StreamHandler(terminal_stderr())
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    log = logging.getLogger("lesionloc-test-capture")
    log.addHandler(handler)
    log.propagate = False

    def write() -> None:
        log.warning("p000002.dcm: another study's note")
        bar = tqdm(total=3, desc="lesionloc", file=terminal_stderr(), ascii=True, mininterval=0)
        bar.update()
        bar.write("error: p000003: cannot be read", file=terminal_stderr())
        bar.close()

    try:
        caught = _decoding_while(write)
    finally:
        log.removeHandler(handler)
    terminal = capfd.readouterr().err
    assert caught == ["openjpeg: a warning of the decoder"]  # the decoder's line, nothing else
    assert "warning: p000002.dcm: another study's note" in terminal
    assert "lesionloc:" in terminal and "1/3" in terminal
    assert "error: p000003: cannot be read" in terminal
    assert "openjpeg" not in terminal


def test_what_goes_straight_to_fd2_from_another_thread_is_still_caught(monkeypatch, capfd):
    _stderr_on_fd2(monkeypatch)
    # native code of another thread cannot be told apart: that is the documented limit
    caught = _decoding_while(lambda: os.write(2, b"some other library\n"))
    assert caught == ["openjpeg: a warning of the decoder", "some other library"]
    assert capfd.readouterr().err == ""


def test_without_a_capture_it_writes_to_sys_stderr(monkeypatch, capfd):
    _stderr_on_fd2(monkeypatch)
    terminal_stderr().write("plain message\n")
    terminal_stderr().flush()
    assert capfd.readouterr().err == "plain message\n"


def test_a_replaced_sys_stderr_gets_the_message_even_during_a_decode(monkeypatch):
    # click's CliRunner and pytest's capsys replace sys.stderr with a stream of their own,
    # which fd 2's redirection does not touch: the message goes to that stream
    replaced = io.StringIO()
    monkeypatch.setattr(sys, "stderr", replaced)
    caught = _decoding_while(lambda: terminal_stderr().write("to the replaced stream\n"))
    assert replaced.getvalue() == "to the replaced stream\n"
    assert caught == ["openjpeg: a warning of the decoder"]


def test_it_looks_like_a_terminal_stream_to_tqdm_and_logging(monkeypatch):
    fd2 = _stderr_on_fd2(monkeypatch)
    stream = terminal_stderr()
    assert stream.fileno() == 2
    assert stream.isatty() == fd2.isatty()
    assert stream.encoding == "utf-8"


def test_the_terminal_stream_collected_late_in_shutdown_raises_nothing(monkeypatch):
    """io.IOBase closes (and flushes) an object when it is collected; at the interpreter's
    shutdown the module's globals are None by then (Python 3.13 printed `Exception ignored in:
    <..._TerminalStderr ...>` and a TypeError after the test run)."""
    from lesionloc_runtime.imageio import capture

    stream = capture.terminal_stderr()
    monkeypatch.setattr(capture, "_FD_LOCK", None)
    stream.close()
    stream.__del__()
