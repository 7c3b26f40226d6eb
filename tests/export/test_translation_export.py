"""Image-to-image export (CycleGAN): one file per direction, uint8 NHWC in and out with the pre- and
post-processing in the graph, parity with torch, cards naming the direction and both domains."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from export import ExportError, export_checkpoint
from export.verify import parity_feeds
from gan.cli import main
from gan_core.card_files import read_card
from gan_core.datasets import load_dataset
from gan_core.imaging import float_to_uint8
from gan_core.runtime import open_generator
from tests.conftest import UNCOND
from training.checkpoint import build_generator, load_checkpoint


def test_both_directions_export_with_an_image_input_and_parity(
    cyclegan_onnx, cyclegan_checkpoint, domain_pair
):
    ck = load_checkpoint(cyclegan_checkpoint)
    real = {d: load_dataset(domain_pair / d, "test").images[:9].transpose(0, 2, 3, 1) for d in ("a", "b")}
    for direction, net, src, dst in (("a2b", "g_ema", "a", "b"), ("b2a", "f_ema", "b", "a")):
        path, card = cyclegan_onnx[direction]
        assert read_card(path) == card and card.name == f"mnist-cyclegan-{direction}"
        t = card.translation
        assert (t.model, t.direction, t.source.name, t.target.name) == ("mnist-cyclegan", direction, src, dst)
        assert t.source.dataset["fingerprint"] == load_dataset(domain_pair / src).fingerprint()
        assert [(i.name, i.kind, i.dtype, i.shape) for i in card.inputs] == [
            ("image", "image", "uint8", [28, 28, 1])
        ]
        assert card.export.parity_batches == [1, 7, 256] and card.export.parity_max_abs_diff <= 1
        assert card.export.float_parity_max_abs_diff <= 1e-4
        graph = onnx.load(path)
        (inp,) = graph.graph.input
        assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
        assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim][1:] == [28, 28, 1]
        sess = open_generator(path, threads=1)
        out = sess.run({"image": real[src]})
        with torch.no_grad():
            ref = float_to_uint8(build_generator(ck, net)(torch.from_numpy(real[src])).numpy())
        assert out.dtype == np.uint8 and out.shape == (9, 28, 28, 1)
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
        one = sess.run({"image": real[src][4:5]})  # row-independent: image i whatever the batch
        assert np.array_equal(one[0], out[4])


def test_direction_is_required_known_and_variants_refused(cyclegan_checkpoint, tiny_checkpoint, tmp_path):
    with pytest.raises(ExportError, match=r"direction: .* one file per direction \(a2b, b2a\); name one"):
        export_checkpoint(cyclegan_checkpoint, tmp_path / "x.onnx")
    with pytest.raises(ExportError, match="direction: must be one of a2b, b2a, got 'c2d'"):
        export_checkpoint(cyclegan_checkpoint, tmp_path / "x.onnx", direction="c2d")
    with pytest.raises(
        ExportError, match="direction: must be omitted: the 'gan' family exports one generator"
    ):
        export_checkpoint(tiny_checkpoint(UNCOND), tmp_path / "x.onnx", direction="a2b")
    with pytest.raises(ExportError, match="variant: int8 variants are judged by the FID"):
        export_checkpoint(cyclegan_checkpoint, tmp_path / "x.onnx", "int8", direction="a2b")
    assert not list(tmp_path.iterdir())


def test_parity_feeds_give_seeded_images_per_index(cyclegan_onnx):
    card = cyclegan_onnx["a2b"][1]
    a, b = parity_feeds(card, 5, 0)["image"], parity_feeds(card, 3, 2)["image"]
    assert a.dtype == np.uint8 and a.shape == (5, 28, 28, 1) and np.array_equal(a[2:5], b)


def test_cli_writes_one_file_per_direction_and_names_bad_ones(
    cyclegan_onnx, cyclegan_checkpoint, tmp_path, capsys
):
    assert sorted(p.name for p in cyclegan_onnx["a2b"][0].parent.iterdir()) == [
        "mnist-cyclegan-a2b.onnx", "mnist-cyclegan-b2a.onnx"
    ]  # fmt: skip
    assert (
        main(["export", str(cyclegan_checkpoint), "--out", str(tmp_path / "x.onnx"), "--direction", "up"])
        == 2
    )
    assert (
        capsys.readouterr().err.strip() == "gan export: error: direction: must be one of a2b, b2a, got 'up'"
    )
