"""fp32 export: the ONNX contract, parity with torch, the card round trip, reproducibility."""

import numpy as np
import onnx
import pytest
import torch

from export import export_checkpoint
from export.graph_edit import drop_output
from export.graph_head import FLOAT_OUTPUT
from export.onnx_export import OPSET, to_onnx
from export.phase_generator import phase_rewrite
from gan_core.card_files import read_card
from gan_core.imaging import float_to_uint8
from gan_core.latents import balanced_labels, latents
from gan_core.runtime import open_generator
from tests.conftest import UNCOND, zl_feeds
from training.checkpoint import build_generator, load_checkpoint


def _inputs(card, n, seed=3):
    z = latents(seed, range(n), card.latent_dim)
    return z, (balanced_labels(range(n), card.num_classes) if card.conditional else None)


def _torch_pixels(g, z, labels):
    with torch.no_grad():
        x = g(torch.from_numpy(z), torch.from_numpy(labels) if labels is not None else None).numpy()
    return x, float_to_uint8(x)


# the MLP, the DCGAN (unconditional: z alone), the conditional DCGAN, the critic-trained DCGAN; every registered
# preset's own model (its declared inputs): tests/service/test_family_models.py
@pytest.mark.parametrize("name", ["mnist-gan", UNCOND, "mnist-cdcgan", "mnist-wgan-gp"])
def test_every_preset_architecture_exports_with_parity(name, tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint(name)
    out = tmp_path / "g.onnx"
    card = export_checkpoint(ckpt, out)
    ck = load_checkpoint(ckpt)
    # The card travels unchanged apart from the export field the exporter adds.
    assert read_card(out) == card
    assert card.model_copy(update={"export": None}) == ck.card
    e = card.export
    assert (e.precision, e.opset, e.parity_batches) == ("fp32", OPSET, [1, 7, 256])
    assert e.parity_max_abs_diff <= 1 and e.float_parity_max_abs_diff <= 1e-4
    assert e.exporter == "torch.onnx.export(dynamo=True)" + (
        "" if name == "mnist-gan" else " + convtranspose-as-phase-convs"
    )
    from training.checkpoint import sha256_file

    assert e.checkpoint_sha256 == sha256_file(ckpt)
    sess = open_generator(out, threads=1)
    assert sess.input_names == (["z", "labels"] if ck.card.conditional else ["z"])
    g = build_generator(ck)
    for n in (1, 7, 256):
        z, labels = _inputs(ck.card, n)
        images = sess.run(zl_feeds(z, labels))
        assert images.dtype == np.uint8 and images.shape == (n, 28, 28, 1)
        _, ref = _torch_pixels(g, z, labels)
        diff = np.abs(images.astype(int) - ref.astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99


def test_graph_contract_and_self_contained_file(cdcgan_onnx):
    _, path, card = cdcgan_onnx
    m = onnx.load(path, load_external_data=False)
    onnx.checker.check_model(m, full_check=True)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
    ins = {i.name: i.type.tensor_type for i in m.graph.input}
    assert ins["z"].elem_type == onnx.TensorProto.FLOAT and ins["labels"].elem_type == onnx.TensorProto.INT64
    assert ins["z"].shape.dim[0].dim_param and ins["z"].shape.dim[1].dim_value == card.latent_dim
    (out,) = m.graph.output
    assert out.name == "images" and out.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = out.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [28, 28, 1]
    assert {p.key for p in m.metadata_props} >= {"gan_service.card"}
    # The speed rewrite replaced every ConvTranspose with stride-1 Convs.
    ops = [n.op_type for n in m.graph.node]
    assert "ConvTranspose" not in ops and ops.count("Conv") == 8 and ops.count("DepthToSpace") == 1


def test_dynamic_batch_gives_the_same_image_whatever_the_batch(cdcgan_onnx):
    _, path, card = cdcgan_onnx
    sess = open_generator(path, threads=1)
    z, labels = _inputs(card, 300)
    big = sess.run(zl_feeds(z, labels))
    for n in (1, 3, 64):
        small = sess.run(zl_feeds(z[:n], labels[:n]))
        assert small.shape == (n, 28, 28, 1)
        assert np.abs(small.astype(int) - big[:n].astype(int)).max() <= 1


def test_export_is_byte_reproducible(cdcgan_onnx, tmp_path):
    ckpt, path, _ = cdcgan_onnx
    again = tmp_path / "again.onnx"
    export_checkpoint(ckpt, again)
    assert again.read_bytes() == path.read_bytes()


def test_run_folder_exports_its_newest_checkpoint(cdcgan_onnx, tmp_path):
    ckpt, _, card = cdcgan_onnx
    from_folder = export_checkpoint(ckpt.parent, tmp_path / "f.onnx")
    assert from_folder == card


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("conditional", [True, False])
def test_phase_rewrite_is_the_same_function(size, conditional):
    """Random weights and BatchNorm statistics, every image size (64 px: 3 layers), 1 and 3 channels: same floats."""
    from training.nets.dcgan import DCGANGenerator

    torch.manual_seed(size + conditional)
    for channels in (1, 3):
        g = DCGANGenerator(16, 10, conditional, (channels, size, size), width=8, embed_dim=4)
        bns = [m for m in g.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
        assert len(bns) == (3 if size == 64 else 2)
        for bn in bns:
            bn.running_mean.normal_(0, 0.5), bn.running_var.uniform_(0.5, 2), bn.weight.data.normal_(1, 0.3)
            bn.bias.data.normal_(0, 0.3)
        g.up[-2].bias.data.normal_(0, 0.3)
        g.eval()
        fast = phase_rewrite(g)
        z, labels = torch.randn(9, 16), torch.arange(9) % 10
        with torch.no_grad():
            want = g(z, labels if conditional else None)
            got = fast(z, labels if conditional else None)
        assert got.shape == want.shape == (9, channels, size, size)
        assert torch.allclose(got, want, atol=1e-5)


def test_phase_rewrite_skips_what_it_does_not_know(tiny_checkpoint):
    g = build_generator(load_checkpoint(tiny_checkpoint("mnist-cdcgan")))
    assert phase_rewrite(build_generator(load_checkpoint(tiny_checkpoint("mnist-gan")))) is None
    assert phase_rewrite(g.train()) is None  # batch statistics cannot be folded
    g.eval().up[0] = torch.nn.ConvTranspose2d(g.c0, g.up[0].out_channels, 3, 2, 1, 1, bias=False)
    assert phase_rewrite(g) is None  # another kernel size


def test_float_output_parity_without_the_rewrite(tiny_checkpoint):
    """The plain exporter path (no rewrite) keeps ConvTranspose and matches torch's floats to 1e-4."""
    import onnxruntime as ort

    ck = load_checkpoint(tiny_checkpoint(UNCOND))
    g = build_generator(ck)
    m = to_onnx(g, ck.card, rewrite=False)
    assert "ConvTranspose" in {n.op_type for n in m.graph.node}
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    z, _ = _inputs(ck.card, 7)
    images, floats = sess.run(None, {"z": z})
    ref_f, ref_u8 = _torch_pixels(g, z, None)
    assert np.abs(floats - ref_f).max() <= 1e-4 and np.abs(images.astype(int) - ref_u8).max() <= 1
    assert [o.name for o in drop_output(m, FLOAT_OUTPUT).graph.output] == ["images"]


def test_plain_graph_flag_keeps_convtranspose(tiny_checkpoint, tmp_path, capsys):
    from gan.cli import main

    out = tmp_path / "plain.onnx"
    assert (
        main(
            [
                "export",
                str(tiny_checkpoint(UNCOND)),
                "--out",
                str(out),
                "--plain-graph",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith(f"wrote {out}: mnist-dcgan step 2, fp32, opset 18, parity ")
    assert "ConvTranspose" in {n.op_type for n in onnx.load(out).graph.node}
    assert read_card(out).export.exporter == "torch.onnx.export(dynamo=True)"
