"""Stand-ins for a batch worker's initializer and chunk, importable by a spawned worker
process (which cannot see a test's monkeypatching): each outcome says which process made it."""

from __future__ import annotations

import os

_STATE: dict[str, object] = {}


def init(settings, shared=None, parent=None) -> None:
    """`batch._init_worker`'s signature: `parent` is given in a spawned worker only."""
    _STATE["spawned"] = parent is not None
    if settings.ground == "fail-here" and parent is None:
        raise RuntimeError("this process could not load the model")


def chunk(tasks) -> list[dict]:
    if _STATE.get("spawned") and tasks[0].study_id.startswith("fail-in-worker"):
        raise RuntimeError(f"a worker failed on {tasks[0].study_id}")
    return [{"study_id": task.study_id, "ok": True, "pid": os.getpid(),
             "spawned": _STATE["spawned"]} for task in tasks]


def chunk_or_die(tasks) -> list[dict]:
    """As `chunk`, but a spawned worker given "die" is killed as the out-of-memory killer
    kills: SIGKILL, no clean-up."""
    import signal

    if _STATE.get("spawned") and tasks[0].study_id == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    return chunk(tasks)


def square_or_die(x: int) -> int:
    """For `processes.in_processes`: -1 kills the worker that gets it as the OOM killer would."""
    import signal

    if x == -1:
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x
