"""What the kernel says of the CPU (Linux /proc/cpuinfo): read by the cache of compiled image
encoders (its key) and by the benchmarks' record of the CPU kind. Standard library only, so
the benchmark scripts that run in venvs without lesionloc can import it."""

from __future__ import annotations

from pathlib import Path

__all__ = ["cpu_model_and_flags"]


def cpu_model_and_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str | None, list[str]]:
    """The first processor's model name and instruction-set flags; (None, []) where they
    cannot be read."""
    fields: dict[str, str] = {}
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields.get("model name"), fields.get("flags", "").split()
