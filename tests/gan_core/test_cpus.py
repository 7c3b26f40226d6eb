"""ORT's default thread count follows a container's CPU quota, read from (here fake) cgroup files."""

from __future__ import annotations

import pytest

from gan_core import cpus
from gan_core.runtime import resolve_threads
from service.settings import Settings


@pytest.fixture
def many_cores(monkeypatch):
    """A 64-core host whose affinity mask allows all of them."""
    monkeypatch.setattr(cpus.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)


def v2(root, text):
    (root / "cpu.max").write_text(text)
    return root


def v1(root, quota, period="100000"):
    (root / "cpu").mkdir()
    (root / "cpu" / "cpu.cfs_quota_us").write_text(quota + "\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(period + "\n")
    return root


@pytest.mark.parametrize(
    ("make", "quota", "cpus_"),
    [
        (lambda r: v2(r, "200000 100000\n"), 2.0, 2),
        (lambda r: v2(r, "150000 100000\n"), 1.5, 2),  # rounded up
        (lambda r: v2(r, "50000 100000\n"), 0.5, 1),
        (lambda r: v2(r, "max 100000\n"), None, 64),  # no limit
        (lambda r: v1(r, "300000"), 3.0, 3),
        (lambda r: v1(r, "25000", "10000"), 2.5, 3),
        (lambda r: v1(r, "-1"), None, 64),  # no limit
        (lambda r: v2(r, "garbage\n"), None, 64),  # unreadable: the host's count
        (lambda r: r, None, 64),  # no cgroup files at all (not Linux, or not mounted)
    ],
    ids=["v2-2", "v2-1.5", "v2-0.5", "v2-max", "v1-3", "v1-2.5", "v1-none", "v2-garbage", "absent"],
)
def test_quota_from_cgroup_files(tmp_path, many_cores, make, quota, cpus_):
    root = make(tmp_path)
    assert cpus.cgroup_cpu_quota(root) == quota
    assert cpus.available_cpus(root) == cpus_


def test_affinity_bounds_it_too(tmp_path, monkeypatch, many_cores):
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert cpus.available_cpus(tmp_path) == 3
    assert cpus.available_cpus(v2(tmp_path, "800000 100000")) == 3


def test_service_and_runtime_defaults_follow_the_quota(tmp_path, monkeypatch, many_cores):
    monkeypatch.setattr(cpus, "CGROUP_ROOT", v2(tmp_path, "400000 100000"))
    monkeypatch.delenv("GAN_ORT_THREADS", raising=False)
    assert resolve_threads(None) == 4  # not the host's 64
    assert Settings.from_env({}).ort_threads == 4
    assert Settings.from_env({"GAN_WORKERS": "2"}).ort_threads == 2
    assert Settings.from_env({"GAN_ORT_THREADS": "7"}).ort_threads == 7  # an explicit setting wins
    monkeypatch.setenv("GAN_ORT_THREADS", "5")
    assert resolve_threads(None) == 5
