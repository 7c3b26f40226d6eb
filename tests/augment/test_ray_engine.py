"""`--engine ray` on a real two-node Ray cluster on this machine (loopback, one CPU per node).

The job goes in as a user sends it (`ray job submit`) with a worker killed mid-job, and through the
Python API after a Ctrl-C; each output must be the local engine's bytes, with nothing lost or made
twice (the manifest lists every image once). Every Ray process is stopped at the end of the module.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from augment import writers
from augment.errors import AugmentError
from augment.job import RAY_MISSING, run_job
from augment.state import done_chunks
from gan.cli import main as gan
from tests.augment.ray_cluster import ONE_THREAD, RAY_QUIET, REPO, LocalRayCluster, free_port
from tests.augment.test_job import visible

JOB = ["--per-class", "20", "--chunk-size", "10", "--seed", "3"]


@pytest.fixture(scope="module")
def cluster():
    with LocalRayCluster(nodes=2) as c:
        yield c


def env(**extra) -> dict:
    return {**os.environ, **ONE_THREAD, **RAY_QUIET, "PYTHONPATH": str(REPO), **extra}


def augment_argv(model, out, *extra) -> list[str]:
    return [sys.executable, "-m", "augment", "augment", "--model", str(model), "--out", str(out),
            "--no-progress", *extra]  # fmt: skip


def local_reference(model, out: Path, *job) -> dict[str, bytes]:
    subprocess.run(augment_argv(model, out, *job), env=env(), check=True, capture_output=True, timeout=120)
    return visible(out)


def test_ray_job_submit_with_a_killed_worker_writes_the_local_bytes(cluster, cond_onnx, tmp_path):
    ref = local_reference(cond_onnx, tmp_path / "local", *JOB)
    killed = tmp_path / "killed"
    runtime_env = {"env_vars": {writers.KILL_AFTER_ENV: "25", writers.KILL_ONCE_ENV: str(killed)}}
    r = subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", cluster.dashboard, "--runtime-env-json", json.dumps(runtime_env),
         "--", *augment_argv(cond_onnx, tmp_path / "ray", *JOB, "--engine", "ray")],
        env=env(),
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert killed.exists()  # an actor process was SIGKILLed after 25 images, mid-chunk
    assert "2 actors x 1 CPU" in r.stdout and "complete: 200 images" in r.stdout
    assert visible(tmp_path / "ray") == ref
    manifest = (tmp_path / "ray" / "manifest.jsonl").read_text().splitlines()
    assert sorted(json.loads(m)["seed_index"] for m in manifest) == list(range(200))


def test_ctrl_c_then_the_python_api_resumes_to_the_local_bytes(cluster, cond_onnx, tmp_path):
    job = ["--per-class", "200", "--chunk-size", "4", "--format", "npz"]
    ref = local_reference(cond_onnx, tmp_path / "local", *job)
    out = tmp_path / "ray"
    p = subprocess.Popen(
        augment_argv(cond_onnx, out, *job, "--engine", "ray", "--address", cluster.gcs),
        env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len(done_chunks(out)) < 2 and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 2 and err.strip().splitlines()[-1] == (
        f"python -m augment augment: error: interrupted: the finished chunks in {out} are kept; "
        "rerun the same command to resume"
    ), err[-2000:]
    done = len(done_chunks(out))
    assert 2 <= done < 500 and not (out / "train.npz").exists()
    code = (
        "from augment.job import run_job\n"
        f"r = run_job({str(cond_onnx)!r}, {str(out)!r}, per_class=200, chunk_size=4, format='npz', "
        f"engine='ray', address={cluster.gcs!r})\n"
        "print(r.generated, r.complete, r.backend)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    generated, complete, backend = r.stdout.split(maxsplit=2)
    assert complete == "True" and int(generated) <= 2000 - 4 * done  # only what had no marker
    assert backend.startswith(f"the Ray cluster at {cluster.gcs}, 2 actors")
    assert visible(out) == ref


def test_bad_addresses_fail_in_one_line_at_once(cond_onnx, tmp_path, capsys):
    port = free_port()  # nothing listens there
    cases = [
        (f"127.0.0.1:{port}", f"address: no Ray cluster answers at 127.0.0.1:{port} (Connection refused); "
         "start one with `ray start --head` or fix --address"),
        (f"ray://127.0.0.1:{port}", f"address: no Ray cluster answers at 127.0.0.1:{port} (Connection refused); "
         "start one with `ray start --head` or fix --address"),
        ("head-node", "address: must be auto, HOST:PORT or ray://HOST:PORT, got 'head-node'"),
    ]  # fmt: skip
    for address, message in cases:
        argv = ["augment", "--model", str(cond_onnx), "--out", str(tmp_path / "o"), "--per-class", "1",
                "--engine", "ray", "--address", address, "--no-progress"]  # fmt: skip
        assert gan(argv) == 2
        assert capsys.readouterr().err.strip() == f"gan augment: error: {message}"
    with pytest.raises(AugmentError, match=r"^engine: ray runs the model in the cluster's actors; give an"):
        run_job("http://127.0.0.1:1#m", tmp_path / "h", total=1, engine="ray")


def test_an_actor_that_sees_another_output_folder_is_refused(cluster, cond_onnx, tmp_path):
    """The driver writes its token under another name, as if the actors' nodes mounted another
    folder at --out: the first actor refuses, and the driver says so in one line."""
    out = tmp_path / "o"
    code = (
        "import sys; import augment.ray_engine as r; r.TOKEN_FILE = 'elsewhere'\n"
        "from augment.__main__ import main\n"
        f"sys.exit(main(['augment', '--model', {str(cond_onnx)!r}, '--out', {str(out)!r}, '--per-class', '1', "
        f"'--engine', 'ray', '--address', {cluster.gcs!r}, '--no-progress']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 2, r.stderr[-3000:]
    assert r.stderr.strip().splitlines()[-1] == (
        f"python -m augment augment: error: out: {out} is not the driver's folder on node {socket.gethostname()}; "
        "with --engine ray --out must be on storage every node mounts at the same path"
    )
    assert not done_chunks(out)


def test_without_ray_the_engine_says_what_to_install(cond_onnx, tmp_path):
    code = (
        "import sys, runpy; sys.modules['ray'] = None\n"
        f"sys.argv = ['x', 'augment', '--model', {str(cond_onnx)!r}, '--out', {str(tmp_path / 'o')!r}, "
        "'--per-class', '1', '--engine', 'ray']\n"
        "runpy.run_module('augment', run_name='__main__')\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=env(), capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert r.returncode == 2 and r.stderr.strip() == f"python -m augment augment: error: {RAY_MISSING}"


def test_a_ctrl_c_that_ray_swallows_is_latched_and_the_handler_restored():
    """Ray Data's iterator may catch the KeyboardInterrupt a Ctrl-C raises; the latch keeps it for the loop."""
    from augment.ray_engine import interrupt_latch

    before = signal.getsignal(signal.SIGINT)
    with interrupt_latch() as latch:
        with contextlib.suppress(KeyboardInterrupt):  # what a swallowing iterator does
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler runs at the next bytecode, long before this ends
        assert latch.is_set()
    assert signal.getsignal(signal.SIGINT) is before
