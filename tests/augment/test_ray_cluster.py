"""The test Ray cluster helper: a start that fails is reported and leaves no Ray session folder behind."""

from __future__ import annotations

import tempfile

import pytest

from tests.augment.ray_cluster import LocalRayCluster


def test_a_failed_start_says_why_and_removes_its_session_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where this process's mkdtemp puts folders
    with pytest.raises(
        RuntimeError, match=r"^the Ray cluster failed to start \(1 tries\); last: did not start within"
    ):
        LocalRayCluster(env={"TMPDIR": str(tmp_path)}, timeout_s=0.01, tries=1).__enter__()  # and the child's
    assert list(tmp_path.glob("ray-*")) == []
