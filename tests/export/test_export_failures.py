"""Bad input and failed verification: one clear line, exit 2, and never a (half-)written .onnx."""

import pytest

from export import ExportError, export_checkpoint, onnx_export
from export.verify import Tolerance
from gan.cli import main
from tests.conftest import UNCOND


def _no_leftovers(folder, out):
    assert not out.exists()
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


def _gan_export(capsys, *args):
    rc = main(["export", *map(str, args)])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return rc, err[0]


def test_file_that_is_not_a_checkpoint(tmp_path, capsys):
    bogus = tmp_path / "notes.safetensors"
    bogus.write_text("hello, not a checkpoint")
    out = tmp_path / "g.onnx"
    rc, err = _gan_export(capsys, bogus, "--out", out)
    assert rc == 2
    assert err.startswith(f"gan export: error: {bogus}: not a readable checkpoint")
    _no_leftovers(tmp_path, out)


def test_truncated_checkpoint(tiny_checkpoint, tmp_path, capsys):
    data = tiny_checkpoint(UNCOND).read_bytes()
    cut = tmp_path / "ckpt-0000002.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "g.onnx"
    rc, err = _gan_export(capsys, cut, "--out", out)
    assert rc == 2 and "not a readable checkpoint (truncated or not safetensors" in err
    _no_leftovers(tmp_path, out)


def test_missing_checkpoint_and_empty_run_folder(tmp_path, capsys):
    out = tmp_path / "g.onnx"
    rc, err = _gan_export(capsys, tmp_path / "nope", "--out", out)
    assert (rc, err) == (2, f"gan export: error: {tmp_path / 'nope'}: no such file or folder")
    rc, err = _gan_export(capsys, tmp_path, "--out", out)
    assert (rc, err) == (2, f"gan export: error: {tmp_path}: folder holds no ckpt-*.safetensors checkpoint")
    _no_leftovers(tmp_path, out)


def test_unknown_variant(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "g.onnx"
    rc, err = _gan_export(capsys, tiny_checkpoint(UNCOND), "--out", out, "--variant", "bf16")
    assert (rc, err) == (2, "gan export: error: variant must be one of fp32, fp16, int8, got 'bf16'")
    _no_leftovers(tmp_path, out)


def test_output_must_be_an_onnx_file(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "g.bin"
    rc, err = _gan_export(capsys, tiny_checkpoint(UNCOND), "--out", out)
    assert (rc, err) == (2, f"gan export: error: {out}: output file name must end in .onnx")
    _no_leftovers(tmp_path, out)


def test_failed_parity_leaves_no_file_and_keeps_an_old_one(tiny_checkpoint, tmp_path, monkeypatch):
    out = tmp_path / "g.onnx"
    out.write_bytes(b"previous good export")
    monkeypatch.setitem(onnx_export.TOLERANCES, "fp32", Tolerance(levels=1, floats=0.0))
    with pytest.raises(
        ExportError,
        match=r"^fp32 export: ONNX Runtime float output differs from torch by .* \(limit 0\) on batches \[1, 7, 256\]$",
    ):
        export_checkpoint(tiny_checkpoint(UNCOND), out)
    assert out.read_bytes() == b"previous good export"
    assert [p.name for p in tmp_path.iterdir()] == ["g.onnx"]


def test_a_wrong_graph_is_caught_by_parity(tiny_checkpoint, tmp_path, monkeypatch):
    """A rewrite bug (here: a shifted bias) must fail verification, not ship."""
    from export.phase_generator import phase_rewrite

    def broken(g):
        fast = phase_rewrite(g)
        fast.b2 += 0.05
        return fast

    monkeypatch.setattr(onnx_export, "phase_rewrite", broken)
    out = tmp_path / "g.onnx"
    with pytest.raises(
        ExportError,
        match=r"^fp32 export: ONNX Runtime output differs from torch by \d+ uint8 levels \(limit 1\)",
    ):
        export_checkpoint(tiny_checkpoint(UNCOND), out)
    _no_leftovers(tmp_path, out)


def test_checkpoint_from_another_network_version(tiny_checkpoint, tmp_path, capsys):
    """Weights that no longer fit the code's network (e.g. widths changed): one line, no traceback."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    src = tiny_checkpoint(UNCOND)
    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
    cfg = json.loads(meta["config"])
    cfg["arch_params"] = {**cfg["arch_params"], "g_width": 16}
    ckpt = tmp_path / "ckpt-0000002.safetensors"
    save_file(load_file(str(src)), str(ckpt), metadata={**meta, "config": json.dumps(cfg)})
    out = tmp_path / "g.onnx"
    rc, err = _gan_export(capsys, ckpt, "--out", out)
    assert rc == 2 and err.startswith(
        f"gan export: error: {ckpt}: cannot rebuild its generator with this code: "
    )
    _no_leftovers(tmp_path, out)
