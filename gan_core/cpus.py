"""CPUs this process may really use: affinity and the container's cgroup CPU quota, not the host's cores.

A container given `--cpus 2` on a 64-core host still sees 64 in os.cpu_count(); sizing ONNX Runtime's
pool to that makes 64 threads share 2 CPUs' worth of time and throttles them all. The quota is read
where a container sees its own cgroup (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`,
as joblib's loky reads them) and rounded up, so 1.5 CPUs gives 2 threads.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: str | os.PathLike | None = None) -> float | None:
    """The CPU quota in CPUs (quota / period), or None when there is none or it cannot be read."""
    root = Path(CGROUP_ROOT if root is None else root)
    try:
        if (root / "cpu.max").is_file():  # cgroup v2: "max 100000" or "150000 100000"
            quota, period = (root / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = root / "cpu"
        if (v1 / "cpu.cfs_quota_us").is_file():  # cgroup v1: quota -1 means no limit
            quota = int((v1 / "cpu.cfs_quota_us").read_text())
            return None if quota <= 0 else quota / int((v1 / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None


def available_cpus(root: str | os.PathLike | None = None) -> int:
    """min(cores, affinity, the cgroup quota rounded up), at least 1."""
    cores = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        cores = min(cores, len(os.sched_getaffinity(0)) or cores)
    quota = cgroup_cpu_quota(root)
    if quota is not None and quota > 0:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)
