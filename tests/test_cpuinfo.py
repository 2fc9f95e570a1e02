"""How many CPUs the process can use, its affinity and its control group's CPU limit (a
container's `--cpus`, a Kubernetes limit), on fake cgroup trees laid out as the kernel lays
them out (v2 `cpu.max`, v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`); and work spread over
processes (`processes.in_processes`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lesionloc_runtime.cpuinfo import cgroup_cpu_limit, usable_cpus


def _v2(root: Path, group: str, limits: dict[str, str]) -> Path:
    (root / "cgroup.controllers").parent.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    for folder, value in limits.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "cpu.max").write_text(value + "\n")
    (root / group.strip("/")).mkdir(parents=True, exist_ok=True)
    cgroup = root.parent / "cgroup"
    cgroup.write_text(f"0::{group}\n")
    return cgroup


def _v1(root: Path, line: str, groups: dict[str, tuple[int, int]], mount: str = "cpu,cpuacct") -> Path:
    for folder, (quota, period) in groups.items():
        target = root / mount / folder
        target.mkdir(parents=True, exist_ok=True)
        (target / "cpu.cfs_quota_us").write_text(f"{quota}\n")
        (target / "cpu.cfs_period_us").write_text(f"{period}\n")
    cgroup = root.parent / "cgroup"
    cgroup.write_text(f"12:memory:/x\n{line}\n0::/\n")
    return cgroup


def test_a_v2_limit_here_or_above_counts_and_the_smallest_wins(tmp_path):
    root = tmp_path / "sys"
    cgroup = _v2(root, "/kubepods/pod1/ctr", {"kubepods/pod1/ctr": "250000 100000",
                                               "kubepods/pod1": "150000 100000",
                                               "kubepods": "max 100000"})
    assert cgroup_cpu_limit(cgroup, root) == 1.5
    assert usable_cpus(cgroup, root) == min(2, len(os.sched_getaffinity(0)))  # rounded up


def test_no_limit_leaves_the_affinity(tmp_path):
    root = tmp_path / "sys"
    cgroup = _v2(root, "/user.slice/session-1.scope", {"user.slice": "max 100000"})
    assert cgroup_cpu_limit(cgroup, root) is None
    assert usable_cpus(cgroup, root) == len(os.sched_getaffinity(0))


def test_a_v1_container_sees_its_own_group_at_the_top_of_the_mount(tmp_path):
    """Docker on cgroup v1 without a cgroup namespace: /proc/self/cgroup names the host's
    group (/docker/ID), which does not exist inside; the mount's top is the container's."""
    root = tmp_path / "sys"
    cgroup = _v1(root, "4:cpu,cpuacct:/docker/0123abcd", {"": (50000, 100000)})
    assert cgroup_cpu_limit(cgroup, root) == 0.5
    assert usable_cpus(cgroup, root) == 1


def test_a_v1_host_group_with_no_quota(tmp_path):
    root = tmp_path / "sys"
    cgroup = _v1(root, "4:cpu:/batch", {"": (-1, 100000), "batch": (-1, 100000)}, mount="cpu")
    assert cgroup_cpu_limit(cgroup, root) is None


@pytest.mark.parametrize("content", ["", "garbage", "0::", "max\n"])
def test_what_cannot_be_read_is_no_limit(tmp_path, content):
    root = tmp_path / "sys"
    cgroup = _v2(root, "/a", {"a": content})
    assert cgroup_cpu_limit(cgroup, root) is None
    assert cgroup_cpu_limit(tmp_path / "missing", root) is None


def test_this_process(monkeypatch):
    """On the machine itself: never more than the affinity, never less than one."""
    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert usable_cpus() == 1


def test_work_in_processes_comes_back_in_order_and_a_killed_worker_is_an_error():
    """multiprocessing.Pool replaced a killed worker and waited for its lost tasks for ever
    (`lesionloc-train synth` and `cache`); in_processes raises WorkerLost."""
    import batch_fakes

    from lesionloc_runtime.errors import WorkerLost
    from lesionloc_runtime.processes import in_processes

    assert list(in_processes(batch_fakes.square_or_die, range(7), 2, chunksize=2)) == \
        [k * k for k in range(7)]
    with pytest.raises(WorkerLost, match="a worker process died .* fewer --workers than 2 "):
        list(in_processes(batch_fakes.square_or_die, [1, 2, -1, 3, 4], 2))
