"""`gan bundle`: one model per run into a models folder, fp16 where its gates pass, the default kept,
nothing written when a run is missing, a run is not evaluated, the size limit is passed or an export fails."""

from __future__ import annotations

import re
import shutil

import pytest

from export import bundle, quantize
from gan.cli import main
from gan_core.card_files import read_card
from gan_core.default_model import DEFAULT_FILE
from service.model_set import scan_models
from service.settings import Settings
from tests.conftest import UNCOND
from training.evaluation.results import write_metrics

FIDS = {"mnist-dcgan": 40.0, "mnist-lsgan": 25.0}  # what `gan evaluate` would have written into each card
REFUSE = "fp16 variant refused: FID 111.00 exceeds the fp32 export's 100.00 by more than the budget of 10% (limit 110.00, n=50)"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_checkpoint):
    """RUNS/<preset> of tiny runs: mnist-dcgan and mnist-lsgan evaluated, mnist-sngan a run never evaluated."""
    d = tmp_path_factory.mktemp("runs")
    for name, source in (
        ("mnist-dcgan", UNCOND),
        ("mnist-lsgan", "mnist-lsgan"),
        ("mnist-sngan", UNCOND),
    ):
        shutil.copytree(tiny_checkpoint(source).parent, d / name)
    for name, fid in FIDS.items():
        ckpt = next((d / name).glob("ckpt-*.safetensors"))
        write_metrics(ckpt, read_card(ckpt), {"fid": fid, "fid_floor": 2.5, "n": 10000})
    return d


@pytest.fixture
def served(tmp_path, cond_onnx):
    """A models folder as shipped before the bundle: one model (the default by being alone), no default file."""
    d = tmp_path / "models"
    d.mkdir()
    shutil.copy(cond_onnx, d / "mnist-cdcgan.onnx")
    return d


def gan_bundle(capsys, *args) -> tuple[int, str, str]:
    rc = main(["bundle", *map(str, args), "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err.strip()


def contents(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_fp16_where_the_gate_passes_fp32_where_it_refuses_and_the_default_kept(
    runs, served, capsys, monkeypatch
):
    measured = {("mnist-dcgan", "fp32"): 100.0, ("mnist-dcgan", "fp16"): 111.0}  # +11 % against a 10 % budget
    monkeypatch.setattr(
        quantize, "measure_fid", lambda path, n: measured.get((read_card(path).name, path.stem), 30.0)
    )
    before = (served / "mnist-cdcgan.onnx").read_bytes()
    rc, out, err = gan_bundle(
        capsys, runs, "--out", served, "--presets", "mnist-lsgan,mnist-dcgan,mnist-cdcgan", "--fid-n", 50
    )
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["model", "family", "/", "loss", "precision", "onnx", "MB", "files", "MB", "FID", "x", "floor", "s", "why", "fp32", "/", "note"]  # fmt: skip
    rows = {line.split()[0]: line for line in lines[1:4]}
    assert list(rows) == ["mnist-lsgan", "mnist-dcgan", "mnist-cdcgan"]  # best FID first, unmeasured last
    assert rows["mnist-lsgan"].split()[1:5] == ["gan", "/", "lsgan", "fp16"]
    assert rows["mnist-lsgan"].split()[7:9] == ["25.00", "10.0"]
    assert rows["mnist-dcgan"].split()[1:5] == ["gan", "/", "ns", "fp32"] and rows["mnist-dcgan"].endswith(
        REFUSE
    )
    assert rows["mnist-cdcgan"].endswith("kept (default)")
    assert re.fullmatch(r"3 models, \d+\.\d MB in all, limit 30 MB", lines[4])
    assert lines[5:] == [
        "skipped mnist-cdcgan: the default model, kept as it is (--replace-default re-exports it)"
    ]
    files = contents(served)
    assert sorted(files) == [
        DEFAULT_FILE, "mnist-cdcgan.onnx",
        "mnist-dcgan.card.json", "mnist-dcgan.grid.png", "mnist-dcgan.onnx",
        "mnist-lsgan.card.json", "mnist-lsgan.grid.png", "mnist-lsgan.onnx",
    ]  # fmt: skip
    assert files["mnist-cdcgan.onnx"] == before and files[DEFAULT_FILE] == b"mnist-cdcgan\n"
    for name in ("mnist-dcgan", "mnist-lsgan"):
        card = read_card(served / f"{name}.onnx")
        assert read_card(served / f"{name}.card.json") == card and card.metrics["fid"] == FIDS[name]
        assert files[f"{name}.grid.png"] == (runs / name / "samples.png").read_bytes()
    assert read_card(served / "mnist-lsgan.onnx").export.fid == 30.0
    assert read_card(served / "mnist-dcgan.onnx").export.precision == "fp32"
    # the service's default is the one the folder names, not the first by file name; the variable overrides it
    assert scan_models(Settings(models_dir=served), report=False).default == "mnist-cdcgan"
    assert (
        scan_models(Settings(models_dir=served, default_model="mnist-lsgan"), report=False).default
        == "mnist-lsgan"
    )


def test_missing_and_unevaluated_runs_are_named_and_skipped_only_when_asked(runs, tmp_path, capsys):
    out = tmp_path / "models"
    rc, _, err = gan_bundle(
        capsys, runs, "--out", out, "--presets", "mnist-lsgan,mnist-wgan,mnist-sngan", "--fid-n", 0
    )
    ckpt = next((runs / "mnist-sngan").glob("ckpt-*.safetensors")).name
    missing = f"{runs / 'mnist-wgan'}: no such run folder"
    unevaluated = f"{runs / 'mnist-sngan'}: not evaluated (the card of {ckpt} has no FID; run gan evaluate {runs / 'mnist-sngan'} --n 10000)"
    assert (
        rc == 2 and err == f"gan bundle: error: {missing}; {unevaluated} (--skip-missing bundles the others)"
    )
    assert not out.exists()
    rc, text, err = gan_bundle(
        capsys,
        runs,
        "--out",
        out,
        "--presets",
        "mnist-lsgan,mnist-wgan,mnist-sngan",
        "--fid-n",
        0,
        "--skip-missing",
    )
    assert rc == 0, err
    assert text.splitlines()[-2:] == [f"skipped {missing}", f"skipped {unevaluated}"]
    assert sorted(p.name for p in out.iterdir()) == [
        "mnist-lsgan.card.json",
        "mnist-lsgan.grid.png",
        "mnist-lsgan.onnx",
    ]
    assert read_card(out / "mnist-lsgan.onnx").export.precision == "fp16"  # fid-n 0: parity alone decides


def test_over_the_size_limit_or_a_failed_export_writes_nothing(runs, served, capsys, monkeypatch):
    before = contents(served)
    rc, _, err = gan_bundle(
        capsys,
        runs,
        "--out",
        served,
        "--presets",
        "mnist-lsgan,mnist-dcgan",
        "--fid-n",
        0,
        "--limit-mb",
        0.05,
    )
    assert rc == 2
    assert re.fullmatch(
        rf"gan bundle: error: limit-mb: the bundle would hold \d+\.\d MB in {re.escape(str(served))}, over the limit "
        r"of 0\.05 MB \(largest new: mnist-\w+ \d\.\d MB, mnist-\w+ \d\.\d MB\); nothing was written",
        err,
    ), err
    assert contents(served) == before
    real = bundle.export_preferring_fp16

    def second_fails(run, *a):
        if run.preset == "mnist-lsgan":
            raise RuntimeError("killed")
        return real(run, *a)

    monkeypatch.setattr(bundle, "export_preferring_fp16", second_fails)
    with pytest.raises(RuntimeError):
        bundle.bundle(runs, served, ["mnist-dcgan", "mnist-lsgan"], fid_n=0, progress=False)
    assert contents(served) == before  # the first model was exported, but only into the staging folder


def test_an_image_to_image_run_is_refused_by_its_card(tiny_checkpoint, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(tiny_checkpoint("mnist-restore").parent, runs / "mnist-restore")
    rc, _, err = gan_bundle(
        capsys, runs, "--out", tmp_path / "models", "--presets", "mnist-restore", "--skip-missing"
    )
    assert rc == 2 and err == (
        f"gan bundle: error: {runs / 'mnist-restore'}: mnist-restore maps images to images; "
        "the bundle holds models that generate from a seed"
    )
    assert (
        "mnist-restore" not in bundle.generative_presets() and "mnist-cdcgan" in bundle.generative_presets()
    )


def test_the_default_is_named_kept_and_replaced_only_when_asked(runs, served, capsys):
    before = contents(served)
    lsgan = ["--presets", "mnist-lsgan", "--fid-n", 0]
    rc, _, err = gan_bundle(capsys, runs, "--out", served, *lsgan, "--default", "mnist-nope")
    assert rc == 2 and err == (
        "gan bundle: error: default: 'mnist-nope' is not a model of the bundle (mnist-cdcgan, mnist-lsgan)"
    )
    assert contents(served) == before
    assert gan_bundle(capsys, runs, "--out", served, *lsgan, "--default", "mnist-lsgan")[0] == 0
    assert (served / DEFAULT_FILE).read_text() == "mnist-lsgan\n"
    assert (served / "mnist-lsgan.curves.png").read_bytes() == (
        runs / "mnist-lsgan" / "curves.png"
    ).read_bytes()
    rc, _, err = gan_bundle(capsys, runs, "--out", served, *lsgan)
    assert rc == 2 and err == (
        "gan bundle: error: nothing to bundle: mnist-lsgan: the default model, kept as it is "
        "(--replace-default re-exports it)"
    )
    (served / "mnist-lsgan.onnx").write_bytes(b"an older export")
    assert gan_bundle(capsys, runs, "--out", served, *lsgan, "--replace-default")[0] == 0
    assert read_card(served / "mnist-lsgan.onnx").name == "mnist-lsgan"
    assert scan_models(Settings(models_dir=served), report=False).default == "mnist-lsgan"
