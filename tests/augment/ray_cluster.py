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
    from ray._common.utils import get_default_ray_temp_dir
    from ray.cluster_utils import Cluster

    nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    # the head writes its address to <default temp>/ray/ray_current_cluster whatever temp_dir says, and
    # fails on a machine where Ray never ran (no /tmp/ray yet): make the folder first
    os.makedirs(get_default_ray_temp_dir(), exist_ok=True)
    # short: Ray's socket paths must fit 107 bytes; LocalRayCluster makes it (and removes it, whatever happens)
    temp = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="ray-")
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

    def __init__(self, nodes: int = 2, env: dict | None = None, timeout_s: float = 120, tries: int = 3):
        self.nodes, self.timeout_s, self.tries = nodes, timeout_s, tries
        self.env = {**os.environ, **ONE_THREAD, **RAY_QUIET, "PYTHONPATH": str(REPO), **(env or {})}

    def __enter__(self) -> LocalRayCluster:
        # Now and then Ray's start-up fails on a busy 2-core machine (seen twice in full CI runs, never
        # when started alone), so a failed start is retried, and the last try's stderr is the error.
        why = ""
        for _ in range(self.tries):
            why = self._start()
            if not why:
                return self
        raise RuntimeError(f"the Ray cluster failed to start ({self.tries} tries); last: {why}")

    def _start(self) -> str:
        """'' when the cluster is up (self.gcs, .dashboard, .temp_dir set), else why it is not."""
        import selectors
        import shutil

        temp = tempfile.mkdtemp(prefix="ray-")
        with tempfile.TemporaryFile("w+") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.augment.ray_cluster", str(self.nodes), temp],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                env=self.env, cwd=REPO, start_new_session=True,
            )  # fmt: skip
            sel = selectors.DefaultSelector()
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            line = self.proc.stdout.readline() if sel.select(self.timeout_s) else None
            if line:
                info = json.loads(line)
                self.gcs, self.dashboard, self.temp_dir = info["gcs"], info["dashboard"], info["temp_dir"]
                return ""
            self.stop()
            shutil.rmtree(temp, ignore_errors=True)  # a failed start leaves no Ray session folder behind
            err.seek(0)
            tail = err.read()[-2000:].strip() or "no output on stderr"
            return f"did not start within {self.timeout_s} s: {tail}" if line is None else tail

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
