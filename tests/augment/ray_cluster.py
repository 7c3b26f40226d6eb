"""A real two-node Ray cluster on this machine, for the tests and benchmarks of `--engine ray`.

`python -m tests.augment.ray_cluster` starts a head (with the job server) and a second node, one CPU
each, every address on 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 stops Ray swapping loopback for
the host's address), prints one JSON line {gcs, dashboard, temp_dir}, and stops both nodes when its
stdin closes. `LocalRayCluster` runs it in its own session so every process it starts is stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "GAN_ORT_THREADS": "1"}
RAY_QUIET = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # node addresses stay 127.0.0.1
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
    "RAY_AUTH_MODE": "disabled",  # loopback only; `ray job submit` then needs no token
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    from ray.cluster_utils import Cluster

    nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    temp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must fit 107 bytes
    dashboard = free_port()
    cluster = Cluster(
        initialize_head=True,
        head_node_args=dict(
            num_cpus=1, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=dashboard,
            ray_client_server_port=free_port(), temp_dir=temp,
        ),
    )  # fmt: skip
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        print(
            json.dumps(
                {"gcs": cluster.address, "dashboard": f"http://127.0.0.1:{dashboard}", "temp_dir": temp}
            )
        )
        sys.stdout.flush()
        sys.stdin.read()
    finally:
        cluster.shutdown()


class LocalRayCluster:
    """The cluster above in a child process group: `with LocalRayCluster() as c: c.gcs, c.dashboard`."""

    def __init__(self, nodes: int = 2, env: dict | None = None, timeout_s: float = 120):
        self.nodes, self.timeout_s = nodes, timeout_s
        self.env = {**os.environ, **ONE_THREAD, **RAY_QUIET, "PYTHONPATH": str(REPO), **(env or {})}

    def __enter__(self) -> LocalRayCluster:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.augment.ray_cluster", str(self.nodes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=self.env, cwd=REPO, start_new_session=True,
        )  # fmt: skip
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(self.timeout_s):
            self.stop()
            raise RuntimeError(f"the Ray cluster did not start within {self.timeout_s} s")
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the Ray cluster failed to start")
        info = json.loads(line)
        self.gcs, self.dashboard, self.temp_dir = info["gcs"], info["dashboard"], info["temp_dir"]
        return self

    def stop(self) -> None:
        """Close the helper's stdin (it shuts its nodes down), then kill whatever of its group is left."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the helper's own session: only what it started
        except ProcessLookupError:
            pass
        self.proc.wait()

    def __exit__(self, *exc) -> None:
        self.stop()
        if hasattr(self, "temp_dir"):
            import shutil

            shutil.rmtree(self.temp_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
