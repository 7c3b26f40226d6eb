"""Every script in benchmarks/ runs, at tiny sizes, and prints its figures: none can rot silently.

The scripts are found by globbing, so a new one fails here until SMOKE says how to run it tiny. Each
runs as its own process (`python benchmarks/X.py ARGS`, from the repository root, one thread) on the
session's tiny artefacts (tests/conftest.py): small data, models trained a few steps, loopback servers
with bounded counts. A script that cannot run tiny gets a flag for it, not a special case here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.conftest import REPO

BENCHMARKS = REPO / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))
TIMEOUT_S = 300  # per run; each takes seconds on an idle core
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "GAN_ORT_THREADS": "1",
    "BENTOML_DO_NOT_TRACK": "true",
    "ORT_DISABLE_TELEMETRY": "1",
}


class Smoke(NamedTuple):
    """One run: its command line after the script ({name} = the path the fixture `name` gives, see
    ARTEFACTS; {tmp} = a fresh folder) and a regular expression its stdout must match (^ and $ match
    at line ends)."""

    args: str
    expect: str


# script -> its tiny runs. Every figure a script prints comes from code these runs go through.
SMOKE: dict[str, list[Smoke]] = {
    # the writers-only replay, the local job and (--serve) the HTTP job, per format
    "bench_augment.py": [
        Smoke(
            "--model {models_dir}/mnist-cdcgan.onnx --n 200 --batch-size 64 --chunk-size 100 --threads 1 "
            "--workers 1 --serve --concurrency 2 --tmp {tmp}/augment",
            r"^idx +[\d,]+ +[\d,]+ +[\d,]+ +[\d,]+$[\s\S]*^latents alone",
        ),
    ],
    # its two modes: a clusterer trained for 0.5 s, and the frozen one of a finished InfoGAN run
    "bench_clusterer.py": [
        Smoke(
            "--data {mnist_small} --seeds 0 --seconds 0.5 --every 0.5 --threads 1",
            r"^seed 0: \d+s/\d+ steps: [\d.]+%",
        ),
        Smoke(
            "--run {infogan_run} --data {mnist_small}",
            r"\(step \d+\): head \d+, test-split accuracy [\d.]+%",
        ),
    ],
    "bench_cyclegan.py": [
        Smoke(
            "--data-a {domain_pair}/a --data-b {domain_pair}/b --steps 1 --threads 1 --onnx {cyclegan_a2b}",
            r"steps/s wall[\s\S]*images/s \(ONNX Runtime",
        ),
    ],
    # the trainer's batch of 64 needs 64 images; the demo data comes in 28, 32 or 64 px
    "bench_data.py": [
        Smoke("--size 28 --n 64 --steps 2 --threads 1", r"^in memory +2 [\s\S]*^memory-mapped +2 "),
    ],
    "bench_evaluate.py": [
        Smoke(
            "--data {mnist_small_evaluated} --n 200 --threads 1",
            r"^data-cold +[\d.]+ +[\d.]+[\s\S]*^checkpoint +[\d.]+ +[\d.]+",
        ),
    ],
    # progan's cost follows its schedule: probed at 2 points of the run
    "bench_family_steps.py": [
        Smoke(
            "--data {mnist_small} --presets mnist-cdcgan mnist-progan mnist-wgan-gp@gp_every=1 --probe-steps 1 "
            "--probes 2 --rounds 1 --threads 1",
            r"^mnist-progan +\d+ +0:[\d.]+ \d+:[\d.]+[\s\S]*^mnist-wgan-gp@gp_every=1 +\d+ +0:",
        ),
        # an override whose JSON value holds a comma (braces doubled for str.format), on a preset sized from the data
        Smoke(
            '--data {mnist_small} --presets \'stylegan@family_params={{"r1_gamma":0.5,"aux_weight":0.2}},batch_size=8\' '
            "--probe-steps 1 --probes 1 --rounds 1 --threads 1",
            r'^stylegan@family_params=\{"r1_gamma":0.5,"aux_weight":0.2\},batch_size=8 +\d+ +0:',
        ),
    ],
    # two seeds of a tiny run to step 4, measured at steps 2 and 4; then the same folder again: nothing
    # trained or evaluated twice (the table straight away)
    "fid_vs_steps.py": [
        Smoke(
            "--preset mnist-cdcgan --data {mnist_small_evaluated} --seeds 0 1 --steps 4 --every 2 --n 100 "
            "--threads 1 --target 100000 --set log_every=1 --out {tmp}/fvs",
            r"^seed 1 step 4: fid [\d.]+$[\s\S]*^ +2 +[\d.]+ +[\d.]+ \( *[\d.]+x\) +[\d.]+ \( *[\d.]+x\) +[\d.]+$\n"
            r"^ +4 [^\n]+$\n[\s\S]*^the mean is at or under 100000x from step 2, [\d.]+ minutes here$",
        ),
        Smoke(
            "--preset mnist-cdcgan --data {mnist_small_evaluated} --seeds 0 1 --steps 4 --every 2 --n 100 "
            "--threads 1 --out {tmp}/../0/fvs",
            r"\A\nmnist-cdcgan on \S+, n=100, floor per report\n",
        ),
    ],
    "bench_fid_sensitivity.py": [
        Smoke(
            "--data {mnist_small_evaluated} --n 100 --threads 1",
            r"^\| contrast x0.9 \| [\d.]+ \|[\s\S]*^evaluator mnist2k-tiny, floor",
        ),
    ],
    # loopback server; at most 4 requests and 1 s per cell; no request may fail (errors column 0)
    "bench_http.py": [
        Smoke(
            "--models-dir {models_dir} --model mnist-cdcgan --threads 1 --concurrency 1,2 --requests 4 "
            "--seconds 1 --client aiohttp",
            r"^png1 +2 +[\d.]+ +\d+ +[\d.]+ +[\d.]+ +0 [\s\S]*^npz256 +2 +[\d.]+ +\d+ +[\d.]+ +[\d.]+ +0 ",
        ),
    ],
    # every row (int8 and the legacy exporter too); the peak from 128 x 128 matmuls, not 1024..2048
    "bench_inference.py": [
        Smoke(
            "--checkpoint {cdcgan_checkpoint} --threads 1 --batches 1 4 --seconds 0.05 --rounds 1 --int8 --fp16 "
            "--compare-exporters --peak-sizes 128 --peak-seconds 0.02",
            r"^ort fp32 legacy +\d+[\s\S]*(^ort int8 +\d+|int8 variant not timed)[\s\S]*^ort fp16 +\d+",
        ),
    ],
    # every phase on loopback, bounded by the script's own flags (the sigterm phase's 4 requests of
    # 1,024 images are fixed in the script)
    "bench_overload.py": [
        Smoke(
            "--models-dir {models_dir} --threads 1 --seconds 1 --small 1 --bulk 1 --bulk-count 8 --slow 4 "
            "--hangups 4 --urls 4 --header-timeout 0.5 --probes 30 --probe-clients 2 --header-floods 2 --header-mib 0.25",
            r"^mixed [\s\S]*^slow [\s\S]*^hangup [\s\S]*^urls [\s\S]*^probes [\s\S]*^headers [\s\S]*^sigterm server exited",
        ),
    ],
    # a tiny filling-in preset and its L1-only twin, 2 steps each, measured on 40 images
    "bench_repair.py": [
        Smoke(
            "--preset mnist-inpaint --data {mnist_small_evaluated} --steps 2 --minutes 1 --n 40 --threads 1 "
            "--width 4 --blocks 1 "
            "--out {tmp}/repair --grid {tmp}/repair.png",
            r"^\| inpaint \(biharmonic\) \| [\d.]+ [\s\S]*^\| GAN \(L1 \+ adversarial\) \| [\d.]+ [\s\S]*rows, top to bottom: damaged, inpaint \(biharmonic\), L1-only, GAN, truth$",
        ),
        # the same two runs measured again as finished runs (the first smoke's tmp folder is ../0)
        Smoke(
            "--runs {tmp}/../0/repair/mnist-inpaint-gan {tmp}/../0/repair/mnist-inpaint-l1-only "
            "--data {mnist_small_evaluated} --n 40 --threads 1 --grid {tmp}/again.png",
            r"^runs \S+mnist-inpaint-gan and \S+mnist-inpaint-l1-only: restore, corruption mask:box, threads 1, "
            r"finished runs$\n^GAN: 2 steps$\n^L1-only: 2 steps$[\s\S]*^\| GAN \(L1 \+ adversarial\) \| [\d.]+ ",
        ),
    ],
    # a local Ray of 1 CPU against the local engine, the writer ceilings, and torchrun both ways
    "bench_scale.py": [
        Smoke(
            "--model {models_dir}/mnist-cdcgan.onnx --n 200 --chunk-size 50 --cpus 1 --writer-n 50 "
            "--train-steps 2 --preset mnist-cdcgan --data {mnist_small} --tmp {tmp}/scale",
            r"^ray / local +[\d.]+x[\s\S]*^same bytes +True$[\s\S]*1,000,000,000 images/h[\s\S]*"
            r"^training +1 node x 2 procs [\d.]+ steps/s; 2 nodes x 1 proc [\d.]+ steps/s",
        ),
    ],
    # the folder as it is (2 models) and grown to 3 by a renamed copy
    "bench_startup.py": [
        Smoke(
            "--models-dir {models_dir} --sizes 2,3 --threads 1",
            r"^ +2 +[\d.]+ +[\d.]+ +\d+ +\d+ +[\d.]+ +[\d.]+  mnist-cdcgan$\n^ +3 +[\d.]+ +[\d.]+ +\d+ +\d+ +[\d.]+ +[\d.]+  mnist-cdcgan$",
        ),
    ],
    "bench_train.py": [
        Smoke(
            "--data {mnist_small} --steps 2 --rounds 1 --threads 1",
            r"^trainer +[\d.]+[\s\S]*^bare nets +[\d.]+[\s\S]*outside the networks: -?[\d.]+%",
        ),
    ],
    # exports the cdcgan run itself (`gan export`); the other two come exported (see gallery_runs)
    "family_gallery.py": [
        Smoke(
            "--runs {gallery_runs} --out {tmp}/gallery",
            r"^families.png bands, top to bottom: mnist-cdcgan, mnist-stylegan, mnist-infogan$",
        ),
        # a models folder: the generating models only (no repair models), in card-FID order (none here)
        Smoke(
            "--models {family_routes_dir} --out {tmp}/gallery",
            r"^families.png bands, top to bottom: mnist-cdcgan, mnist-dcgan, mnist-infogan, mnist-stylegan$",
        ),
    ],
    # a generative and a translation preset, 2 steps each, evaluated on 100 images
    "family_table.py": [
        Smoke(
            "--presets mnist-cdcgan,mnist-cyclegan --steps 2 --minutes 1 --threads 1 --n 100 "
            "--data {mnist_small_evaluated} --pair {domain_pair} --out {tmp}/table",
            r"^\| `mnist-cdcgan` \| [^|]+ \| 2 in [^|]+ \| [\d.]+ \| [\d.]+ \| 1\.00 \| <= 2\.5x floor, acc\. >= 99% \| "
            r"[\s\S]*^\| `mnist-cyclegan` \| [^|]+ \| 2 in [^|]+ \| - \| - \| - \| labels kept >= 97% \| .*a2b: labels kept",
        ),
    ],
}


# ---- the artefacts the arguments name -------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist_small_evaluated(mnist_small, mnist_small_evaluator):
    """The 2k-digit .npz with its evaluator in the session's store (what evaluating it needs)."""
    return mnist_small


@pytest.fixture(scope="module")
def cdcgan_checkpoint(tiny_checkpoint):
    return tiny_checkpoint("mnist-cdcgan")


@pytest.fixture(scope="module")
def infogan_run(tiny_checkpoint):
    return Path(tiny_checkpoint("mnist-infogan")).parent


@pytest.fixture(scope="module")
def cyclegan_a2b(cyclegan_onnx):
    return cyclegan_onnx["a2b"][0]


@pytest.fixture(scope="module")
def gallery_runs(tiny_checkpoint, tiny_onnx, tmp_path_factory):
    """A family table's folder as family_table.py leaves it: table.json and one run folder per preset
    (tiny runs: cdcgan, stylegan for the mixing grid, infogan for the code traversals). stylegan and
    infogan come exported already, as a rerun finds them; cdcgan's export is left to the script."""
    runs = tmp_path_factory.mktemp("table")
    presets = ["mnist-cdcgan", "mnist-stylegan", "mnist-infogan"]
    (runs / "onnx").mkdir()
    for p in presets:
        (runs / p).symlink_to(Path(tiny_checkpoint(p)).parent)
        if p != "mnist-cdcgan":
            shutil.copy(tiny_onnx(p)[1], runs / "onnx" / f"{p}.onnx")
    (runs / "table.json").write_text("[" + ", ".join(f'{{"preset": "{p}"}}' for p in presets) + "]\n")
    return runs


ARTEFACTS = ["mnist_small", "mnist_small_evaluated", "models_dir", "domain_pair", "cyclegan_a2b",
             "cdcgan_checkpoint", "infogan_run", "gallery_runs", "family_routes_dir"]  # fmt: skip


def resolve(args: str, request, tmp: Path) -> list[str]:
    """The arguments, every {name} replaced by its artefact's path (made only when a run names it)."""
    names = set(re.findall(r"\{(\w+)\}", args)) - {"tmp"}
    unknown = names - set(ARTEFACTS)
    assert not unknown, f"SMOKE names artefacts no fixture makes: {sorted(unknown)}"
    paths = {n: str(request.getfixturevalue(n)) for n in names}
    return [a.format(tmp=tmp, **paths) for a in shlex.split(args)]


def run_script(script: str, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **ONE_THREAD}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip


def test_smoke_table_names_existing_scripts():
    stale = sorted(set(SMOKE) - set(SCRIPTS))
    assert not stale, f"SMOKE lists scripts benchmarks/ no longer has: {stale}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_tiny(script, request, tmp_path):
    runs = SMOKE.get(script)
    assert runs, f"benchmarks/{script} has no smoke run: add its tiny arguments to SMOKE in {__file__}"
    for k, smoke in enumerate(runs):
        tmp = tmp_path / str(k)
        tmp.mkdir()
        args = resolve(smoke.args, request, tmp)
        t0 = time.perf_counter()
        done = run_script(script, args)
        seconds = time.perf_counter() - t0
        print(f"benchmarks/{script} {' '.join(args)}: exit {done.returncode} in {seconds:.1f} s")
        where = f"python benchmarks/{script} {' '.join(args)}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr[-4000:]}"
        assert done.returncode == 0, where
        assert re.search(smoke.expect, done.stdout, re.MULTILINE), f"stdout lacks /{smoke.expect}/:\n{where}"
