"""The built image as a deployment runs it (`make container-test`; not in `make test`'s suite).

`make container-test` builds the image first (deploy/container.sh) and names it in
build/container/image; this file runs it read-only, with a CPU quota and a models folder mounted
from the host, on a loopback port, and checks it against `make serve`'s service on the same folder.
Run with `-p tests.conftest` for the tiny-model fixtures.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

from service import local_server
from service.local_server import bulk_requests_in_flight, free_port, local_serve
from tests.service.test_http_serve import in_progress

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "service" / "models" / "mnist-cdcgan.onnx"
TOOL = "podman"  # `make container-test` installs it where missing
ENV = {
    **os.environ,
    "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "deploy/containers.conf")),
}


def ctr(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run([TOOL, *args], env=ENV, capture_output=True, text=True, timeout=timeout)
    assert not check or done.returncode == 0, f"{TOOL} {' '.join(args)}: {done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def image() -> str:
    tag_file = REPO / "build" / "container" / "image"
    assert tag_file.is_file(), "no image built: run `make container` (deploy/container.sh build) first"
    tag = tag_file.read_text().strip()
    ctr("image", "inspect", tag)
    return tag


@pytest.fixture(scope="module")
def models(tmp_path_factory, uncond_onnx, cyclegan_onnx) -> Path:
    """A host folder: the bundled model, a model the image does not hold, and a translation pair."""
    d = tmp_path_factory.mktemp("mounted")
    shutil.copy(BUNDLED, d / BUNDLED.name)
    shutil.copy(uncond_onnx, d / "mnist-dcgan.onnx")
    for path, _ in cyclegan_onnx.values():
        shutil.copy(path, d / path.name)
    d.chmod(0o755)
    return d


def run(image: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Start the image detached (read-only root, 1 CPU); returns its id."""
    opts = ["run", "-d", "--read-only", "--tmpfs", "/tmp", "--cpus", "1", "--health-interval", "disable"]
    for k, v in (env or {}).items():
        opts += ["-e", f"{k}={v}"]
    return ctr(*opts, *args, image).stdout.strip()


def wait_ready(url: str, cid: str) -> None:
    def exited() -> str | None:
        state = ctr("inspect", "--format", "{{.State.Status}}", cid).stdout.strip()
        return (
            None
            if state == "running"
            else f"container {state}: {ctr('logs', cid, check=False).stderr[-3000:]}"
        )

    local_server.wait_ready(url, 120, exited)


@pytest.fixture(scope="module")
def served(image, models):
    """(url, container id) of the image serving the mounted folder on a loopback port."""
    port = free_port()
    cid = run(
        image, "-p", f"127.0.0.1:{port}:3000", "-v", f"{models}:/models:ro", env={"GAN_MODELS_DIR": "/models"}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, cid)
        yield url, cid
    finally:
        ctr("rm", "-f", "-t", "0", cid, check=False)


def test_ready_healthy_and_not_root(served):
    url, cid = served
    assert httpx.get(url + "/readyz").status_code == 200
    assert ctr("healthcheck", "run", cid).returncode == 0  # the image's HEALTHCHECK on /readyz
    uid = ctr("exec", cid, "id", "-u").stdout.strip()
    assert uid != "0" and ctr("inspect", "--format", "{{.Config.User}}", cid).stdout.strip() == "1034:1034"


def test_serves_the_mounted_folder_with_the_cpu_quota(served, models):
    doc = httpx.get(served[0] + "/models").json()
    assert {m["file"] for m in doc["models"]} == {p.name for p in models.glob("*.onnx")}
    assert {m["provider"] for m in doc["models"]} == {"CPUExecutionProvider"}
    assert {m["threads"] for m in doc["models"]} == {1}  # --cpus 1, not the host's cores
    assert doc["failed"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"model": "mnist-cdcgan", "count": 10, "seed": 5, "format": "npz"},
        {"model": "mnist-cdcgan", "count": 3, "seed": 11, "labels": 7},  # base64 PNGs in JSON
        {"model": "mnist-dcgan", "count": 4, "seed": 2, "format": "grid"},  # only in the mounted folder
    ],
    ids=["bundled-npz", "bundled-png", "mounted-grid"],
)
def test_generate_answers_the_bytes_of_the_local_service(served, models, body):
    got = httpx.post(served[0] + "/generate", json=body, timeout=60)
    with local_serve(models) as local:
        want = httpx.post(local + "/generate", json=body, timeout=60)
    assert got.status_code == want.status_code == 200
    if body.get("format") != "npz":
        assert got.content == want.content
        return
    # an npz is a zip whose entries carry the time they were written: its arrays are compared
    with np.load(io.BytesIO(got.content)) as g, np.load(io.BytesIO(want.content)) as w:
        assert sorted(g.files) == sorted(w.files) == ["images", "indices", "labels", "seed"]
        for name in g.files:
            np.testing.assert_array_equal(g[name], w[name])


def test_translate_refuses_a_non_image(served):
    files = {"images": ("notes.png", b"this is not an image", "image/png")}
    r = httpx.post(served[0] + "/translate?direction=a2b", files=files, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "images[0] (notes.png): not a PNG or JPEG image"


def test_augment_job_in_the_image_writes_a_dataset(image, served, tmp_path):
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)  # the job runs as the image's user
    port = served[0].rsplit(":", 1)[1]
    job = ["run", "--rm", "--read-only", "--network", "host", "-v", f"{out}:/out", image]
    job += ["python", "-m", "augment", "augment", "--model", f"http://127.0.0.1:{port}#mnist-cdcgan",
            "--per-class", "3", "--format", "npz", "--out", "/out/synth", "--no-progress"]  # fmt: skip
    ctr(*job, timeout=300)
    with np.load(out / "synth" / "train.npz") as z:
        assert z["images"].shape == (30, 28, 28) and sorted(z["labels"].tolist()) == sorted(
            list(range(10)) * 3
        )
    assert (out / "synth" / "job.json").is_file()


def test_sigterm_answers_requests_in_flight_and_exits_0(image):
    port = free_port()
    # one image per ORT call, so 1024-image requests are still running when the signal comes
    cid = run(image, "-p", f"127.0.0.1:{port}:3000", env={"GAN_MAX_BATCH": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, cid)
        clients, answers = bulk_requests_in_flight(url, 3, timeout=120, wait=20)
        assert in_progress(url) == 3
        ctr("stop", "-t", "60", cid, timeout=90)  # SIGTERM, SIGKILL only after 60 s
        for t in clients:
            t.join(60)
        assert answers == [200, 200, 200]
        state = ctr("inspect", "--format", "{{.State.ExitCode}} {{.State.Status}}", cid).stdout.split()
        assert state == ["0", "exited"], ctr("logs", cid, check=False).stderr[-3000:]
    finally:
        ctr("rm", "-f", "-t", "0", cid, check=False)
