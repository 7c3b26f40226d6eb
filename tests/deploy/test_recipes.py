"""The cluster recipes in deploy/ (Slurm scripts, Kubernetes manifests) are what a user can run.

Manifests: parsed, their key fields checked, their commands parsed by the project's own argument
parsers (a renamed flag breaks them here); test_manifests.py runs them through `kubectl apply
--dry-run=client` with the other manifests. Slurm scripts:
`bash -n`, and their gan / augment commands parsed the same way.
"""

from __future__ import annotations

import re
import shlex
import subprocess

import yaml

from augment import cli as augment_cli
from gan.cli import build_parser
from tests.conftest import REPO

DEPLOY = REPO / "deploy"


def gan_args(argv: list[str]):
    """argv after `-m gan.cli` through gan's parser (SystemExit on an unknown flag)."""
    return build_parser().parse_args(argv)


def augment_args(argv: list[str]):
    import argparse

    p = argparse.ArgumentParser()
    augment_cli.add_arguments(p)
    return p.parse_args(argv)


def test_pytorchjob_runs_torchrun_on_every_pod():
    doc = yaml.safe_load((DEPLOY / "k8s" / "pytorchjob.yaml").read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    specs = doc["spec"]["pytorchReplicaSpecs"]
    assert specs["Master"]["replicas"] == 1 and specs["Worker"]["replicas"] >= 1
    assert doc["spec"]["nprocPerNode"] == "1"
    for role in ("Master", "Worker"):
        pod = specs[role]["template"]["spec"]
        (c,) = pod["containers"]
        assert c["name"] == "pytorch"  # the operator finds its container by this name
        assert c["command"][:3] == ["torchrun", "-m", "gan.cli"]
        args = gan_args(c["command"][3:])
        assert args.command == "train" and args.out.startswith(c["volumeMounts"][0]["mountPath"])
        assert {v["name"] for v in pod["volumes"]} == {m["name"] for m in c["volumeMounts"]}
        threads = {e["name"]: e["value"] for e in c["env"]}["OMP_NUM_THREADS"]
        assert str(args.threads) == threads == c["resources"]["limits"]["cpu"]


def test_rayjob_runs_the_ray_engine_on_a_shared_volume():
    doc = yaml.safe_load((DEPLOY / "k8s" / "rayjob-augment.yaml").read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayJob")
    cmd = shlex.split(doc["spec"]["entrypoint"])
    assert cmd[:4] == ["python", "-m", "augment", "augment"]
    args = augment_args(cmd[4:])
    assert args.engine == "ray" and args.address is None  # KubeRay sets RAY_ADDRESS for the driver
    cluster = doc["spec"]["rayClusterSpec"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f"ray[data,default]=={cluster['rayVersion']}" in pyproject
    pods = [cluster["headGroupSpec"]["template"]["spec"]] + [
        g["template"]["spec"] for g in cluster["workerGroupSpecs"]
    ]
    for pod in pods:
        mounts = {m["mountPath"] for c in pod["containers"] for m in c["volumeMounts"]}
        assert any(args.out.startswith(m) and args.model.startswith(m) for m in mounts)


SLURM_VALUES = {"SLURM_CPUS_PER_TASK": "8", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_ID": "17", "HEAD": "node1",
                "PORT": "6379", "PRESET": "mnist-cdcgan", "OUT": "/shared/out", "MODEL": "/shared/m.onnx",
                "PER_CLASS": "100", "RESUME": ""}  # fmt: skip


def _command_after(script: str, marker: str) -> list[str]:
    """The words of the (backslash-continued) command line that holds `marker`, with example values
    for the script's variables (as Slurm and the script would set them)."""
    text = script.replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if marker in ln and not ln.lstrip().startswith("#"))
    line = re.sub(r"\$\{?(\w+)\}?", lambda m: SLURM_VALUES[m.group(1)], line)
    return shlex.split(line)


def test_slurm_scripts_parse_and_run_the_project_commands():
    for name in ("train-multinode.sbatch", "augment-ray.sbatch"):
        r = subprocess.run(["bash", "-n", str(DEPLOY / "slurm" / name)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    train = (DEPLOY / "slurm" / "train-multinode.sbatch").read_text()
    assert re.search(r"^#SBATCH --ntasks-per-node=1$", train, re.M)
    words = _command_after(train, "srun torchrun")
    assert words[:2] == ["srun", "torchrun"] and "--rdzv_backend=c10d" in words
    rest = words[words.index("gan.cli") + 1 :]
    args = gan_args(rest)
    assert args.command == "train" and args.threads == 8 and args.out == "/shared/out"
    aug = _command_after((DEPLOY / "slurm" / "augment-ray.sbatch").read_text(), "python -m augment augment")
    args = augment_args(aug[4:])
    assert args.engine == "ray" and args.address == "node1:6379" and args.out == "/shared/out"
