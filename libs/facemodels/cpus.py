"""How many cores this process may use: its CPU affinity, capped by a container's CPU limit.

Kubernetes enforces a pod's CPU limit as a cgroup quota, not as affinity, so a pod limited to 2
CPUs on a 64-core node still sees 64 cores; sizing XNNPACK's thread pool to 64 would only get the
threads throttled. The limit is read from cgroup v2 (``cpu.max``) or v1 (``cpu.cfs_quota_us``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _quota_cpus(root: Path) -> float | None:
    """The cgroup's CPU limit in cores, or None when there is none."""
    v2 = root / "cpu.max"
    if v2.is_file():
        quota, _, period = v2.read_text().strip().partition(" ")
        return None if quota == "max" else int(quota) / int(period or 100_000)
    v1_quota, v1_period = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
    if v1_quota.is_file() and v1_period.is_file():
        quota_us = int(v1_quota.read_text())
        return None if quota_us <= 0 else quota_us / int(v1_period.read_text())
    return None


def usable_cpus(root: Path = CGROUP_ROOT) -> int:
    """At least 1; the affinity's core count, or fewer when a CPU limit is lower (rounded up)."""
    cores = len(os.sched_getaffinity(0))
    try:
        limit = _quota_cpus(root)
    except (OSError, ValueError):  # an unreadable or unexpected cgroup file: trust the affinity
        limit = None
    return max(1, min(cores, math.ceil(limit)) if limit else cores)
