"""The bento's own file set runs the service and the augmentation job with torch unimportable.

`bentoml build` (offline) makes the real bento; its src/ folder is exactly what the container gets.
A sitecustomize on PYTHONPATH makes torch, the export toolchain and every package the bento leaves
out (training, export, gan) fail to import, so a missing file or an upward import fails here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.local_server import local_serve

REPO = Path(__file__).resolve().parent.parent
BLOCKED = ("torch", "onnx", "onnxscript", "safetensors", "scipy", "training", "export", "gan", "tests")


@pytest.fixture(scope="module")
def bento_src(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("bentoml-home")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    bentoml = Path(sys.executable).with_name("bentoml")
    done = subprocess.run(
        [str(bentoml), "build"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (src,) = (home / "bentos" / "gan-generator").glob("*/src")
    return src


@pytest.fixture(scope="module")
def no_torch_env(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("blocker")
    (d / "sitecustomize.py").write_text(
        textwrap.dedent(
            f"""
            import sys

            class _Blocker:
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] in {BLOCKED!r}:
                        raise ModuleNotFoundError(f"No module named {{name!r}} (not in the bento)", name=name)
                    return None

            sys.meta_path.insert(0, _Blocker())
            """
        )
    )
    return {"PYTHONPATH": str(d)}


def test_bento_holds_whole_packages_and_no_training_side(bento_src):
    files = {p.relative_to(bento_src).as_posix() for p in bento_src.rglob("*") if p.is_file()}
    for pkg in ("gan_core", "service", "augment"):
        want = {
            p.relative_to(REPO).as_posix() for p in (REPO / pkg).rglob("*.py") if "__pycache__" not in p.parts
        }
        assert want <= files, sorted(want - files)
    assert "service/models/mnist-cdcgan.onnx" in files
    static = {
        p.relative_to(REPO).as_posix() for p in (REPO / "service" / "ui" / "static").rglob("*") if p.is_file()
    }
    assert static <= files, sorted(static - files)  # the playground page travels with the service
    assert not any(f.startswith(("training/", "export/", "tests/", "gan/")) for f in files)


def test_augment_job_runs_from_the_bento_without_torch(bento_src, no_torch_env, tmp_path):
    env = {**os.environ, **no_torch_env, "GAN_ORT_THREADS": "1"}
    probe = subprocess.run(
        [sys.executable, "-c", "import torch"], cwd=bento_src, env=env, capture_output=True, text=True
    )
    assert probe.returncode != 0 and "not in the bento" in probe.stderr  # the blocker works
    run = subprocess.run(
        [sys.executable, "-m", "augment", "--help"], cwd=bento_src, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0 and "augment" in run.stdout, run.stderr
    out = tmp_path / "synth"
    cmd = [sys.executable, "-m", "augment", "augment", "--model", "service/models/mnist-cdcgan.onnx",
           "--per-class", "2", "--format", "npz", "--out", str(out), "--no-progress"]  # fmt: skip
    run = subprocess.run(cmd, cwd=bento_src, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    with np.load(out / "train.npz") as z:
        assert z["images"].shape == (20, 28, 28) and z["labels"].tolist() == list(range(10)) * 2


def test_service_serves_from_the_bento_without_torch(bento_src, no_torch_env):
    with local_serve(bento_src / "service" / "models", cwd=bento_src, env=no_torch_env) as url:
        r = httpx.post(url + "/generate", json={"count": 2, "seed": 3, "labels": 7}, timeout=30)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert [img["label"] for img in doc["images"]] == [7, 7] and doc["seed"] == 3
        assert httpx.get(url + "/models", timeout=30).json()["default"] == "mnist-cdcgan"
        page = httpx.get(url + "/", follow_redirects=True, timeout=30)
        assert page.url.path == "/ui/" and "<title>GAN playground</title>" in page.text
