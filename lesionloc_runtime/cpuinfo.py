"""What the kernel says of the CPU: its model and flags (Linux /proc/cpuinfo; read by the cache
of compiled image encoders, its key, and by the benchmarks' record of the CPU kind) and how many
CPUs this process can use (every default thread and worker count). Standard library only, so
the benchmark scripts that run in venvs without lesionloc can import it."""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["cgroup_cpu_limit", "cpu_model_and_flags", "usable_cpus"]


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


def usable_cpus(cgroup_file: Path = Path("/proc/self/cgroup"),
                cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process can use: those it may run on (its affinity: `taskset`, a Slurm
    job's cpuset) and no more than its control group's CPU limit allows (a container's
    `--cpus`, a Kubernetes CPU limit), rounded up. os.cpu_count() counts neither: a container
    limited to 2 CPUs on a 64-core host would get 64 threads that use up its quota in a few
    milliseconds and then wait out every period."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit(cgroup_file, cgroup_root)
    if limit is not None:
        count = min(count, math.ceil(limit))
    return max(1, count)


def cgroup_cpu_limit(cgroup_file: Path = Path("/proc/self/cgroup"),
                     cgroup_root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs' worth of time the process's control group may use (its CFS quota over its period,
    cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us`), the smallest of its own and every group's
    above it; None without a limit or where none can be read."""
    try:
        lines = cgroup_file.read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "" and path:  # the unified hierarchy (v2)
            unified = cgroup_root if (cgroup_root / "cgroup.controllers").exists() \
                else cgroup_root / "unified"
            limits += [_v2_limit(folder) for folder in _folders_up(unified, path)]
        elif "cpu" in controllers.split(","):  # v1
            mount = next((cgroup_root / name for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu")
                          if (cgroup_root / name).is_dir()), None)
            if mount is not None:
                limits += [_v1_limit(folder) for folder in _folders_up(mount, path)]
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def _folders_up(mount: Path, path: str) -> list[Path]:
    """The group's folder and each above it up to the mount, those that exist. In a container
    without its own cgroup namespace the path names the host's group, which the container's
    mount shows as its top: then only the mount's own files are found."""
    parts = [part for part in path.split("/") if part and part not in (".", "..")]
    folders = [mount.joinpath(*parts[:k]) for k in range(len(parts), -1, -1)]
    return [folder for folder in folders if folder.is_dir()]


def _v2_limit(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()
        return int(quota) / int(period) if quota != "max" and int(period) > 0 else None
    except (OSError, ValueError):
        return None


def _v1_limit(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None
