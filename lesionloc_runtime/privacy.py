"""Nothing leaves the machine. The runtime itself opens no network connection; the two inference
libraries it runs on each send usage data to their vendor by default, and are kept from it
here (docs/privacy.md says what they send and how to check):

- ONNX Runtime (its Linux wheel 1.32.0, the one checked) records the machine (CPU, memory, operating
  system, container), the process, every session's model file and graph names, run counts and
  error messages, under a device id it keeps in ~/.cache/Microsoft, and uploads them to
  Microsoft. `ORT_DISABLE_TELEMETRY=1` stops all of it, but only if it is set before
  onnxruntime is imported (the collection starts at import): importing lesionloc_runtime sets
  it (`lesionloc_runtime/__init__.py`), unless it is set already. Each session also turns
  the events off, for an onnxruntime that another part of the process imported before.
- OpenVINO's package, when imported, imports its model conversion tools, which send an
  "import" event to Google Analytics and keep a client id and a usage count in ~/intel, unless
  a consent file there declines. The runtime only reads and compiles graphs, so it imports
  OpenVINO without those tools (`import_openvino`).

"""

from __future__ import annotations

import os
import sys
from types import ModuleType

__all__ = ["ORT_SWITCH", "import_openvino", "quiet_sessions"]

ORT_SWITCH = "ORT_DISABLE_TELEMETRY"  # read once, when onnxruntime is imported

_OPENVINO_TOOLS = "openvino.tools.ovc"  # the conversion tools, whose import reports usage


def quiet_sessions(onnxruntime: ModuleType) -> None:
    """Turn off the usage events of an onnxruntime imported before the switch was set."""
    if os.environ.get(ORT_SWITCH) == "1":
        onnxruntime.disable_telemetry_events()


def import_openvino() -> ModuleType:
    """`import openvino` without its model conversion tools (ImportError as from the plain
    import). `openvino.convert_model` is then missing; importing `openvino.tools.ovc` later
    still works, for code of one's own that wants it (and then reports as it does)."""
    if "openvino" in sys.modules:  # imported already: what it did on import is done
        import openvino

        return openvino
    blocked = _OPENVINO_TOOLS not in sys.modules
    if blocked:
        sys.modules[_OPENVINO_TOOLS] = None  # type: ignore[assignment]  # its import: ImportError
    try:
        import openvino
    finally:
        if blocked and sys.modules.get(_OPENVINO_TOOLS, ...) is None:
            del sys.modules[_OPENVINO_TOOLS]
    return openvino
