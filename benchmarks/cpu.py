"""Which kind of CPU a figure comes from: its model name and the instruction sets ONNX
Runtime's int8 kernels depend on. Read by the benchmark suites and the training record; no
pytest and nothing outside the standard library (the runtime's cpuinfo module is standard
library too), so scripts can import it."""

from __future__ import annotations

import os

from lesionloc_runtime.cpuinfo import cpu_model_and_flags

# The instruction sets ONNX Runtime's int8 kernels depend on: without VNNI the u8 x s8 products
# go through 16-bit sums, with AMX the matrix tiles take them. Figures from CPUs that differ
# in these are never put in one table.
INT8_FLAGS = ("avx2", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def cpu_kind() -> dict[str, object]:
    """The CPU's model name and which of INT8_FLAGS it has (Linux /proc/cpuinfo)."""
    model, flags = cpu_model_and_flags()
    return {"model": model or "unknown CPU", "int8_flags": [f for f in INT8_FLAGS if f in flags],
            "logical_cpus": len(os.sched_getaffinity(0))}


def describe(kind: dict[str, object] | None = None) -> str:
    """'AMD EPYC, 2 logical CPUs, int8 flags avx2 avx512f ...' for a record or a heading."""
    kind = kind or cpu_kind()
    flags = " ".join(kind["int8_flags"]) or "none"  # type: ignore[arg-type]
    return f"{kind['model']}, {kind['logical_cpus']} logical CPUs, int8 flags {flags}"
