"""The corruption specs: parsing (canonical form, one-line refusals), what each part does, and that the
pairs repeat exactly from a seeded generator."""

from __future__ import annotations

import pytest
import torch

from gan_core.errors import UserError
from training.corruption import centre_box, gaussian_blur, parse, random_boxes


def _digits(n=4, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize(
    "spec,canonical,scale,mask,task",
    [
        ("down:4", "down:4", 4, None, "upscale"),
        ("down:2", "down:2", 2, None, "upscale"),
        ("mask:box", "mask:box", 1, "box", "restore"),
        ("mask:random", "mask:random", 1, "random", "restore"),
        ("noise:0.2+blur:1", "noise:0.2+blur:1", 1, None, "restore"),
        (" jpeg:30 + noise:0.10 ", "jpeg:30+noise:0.1", 1, None, "restore"),
        ("old", "blur:0.8+noise:0.1+jpeg:40", 1, None, "restore"),
        ("noise:0.1+down:4", "noise:0.1+down:4", 4, None, "upscale"),
    ],
)
def test_specs_parse_to_their_canonical_form(spec, canonical, scale, mask, task):
    c = parse(spec)
    assert (str(c), c.scale, c.mask, c.task) == (canonical, scale, mask, task)
    assert str(parse(str(c))) == canonical


@pytest.mark.parametrize(
    "spec,message",
    [
        ("rain:3", "family_params.corruption: unknown corruption 'rain:3' in 'rain:3'; known: down:2|4|8, "
         "mask:box, mask:random, noise:SIGMA, blur:SIGMA, jpeg:Q, old"),
        ("noise:0.2+smudge", "family_params.corruption: unknown corruption 'smudge' in 'noise:0.2+smudge'; known: "
         "down:2|4|8, mask:box, mask:random, noise:SIGMA, blur:SIGMA, jpeg:Q, old"),
        ("down:3", "family_params.corruption: 'down:3' in 'down:3': the scale must be one of 2, 4, 8"),
        ("mask:circle", "family_params.corruption: 'mask:circle' in 'mask:circle': mask:box or mask:random"),
        ("noise:x", "family_params.corruption: 'noise:x' in 'noise:x' needs a number in [0, 1]"),
        ("jpeg:50.5", "family_params.corruption: 'jpeg:50.5' in 'jpeg:50.5' needs a whole number in [1, 95]"),
        ("down:2+down:4", "family_params.corruption: 'down:2+down:4' has 2 down parts; at most one"),
        ("down:4+mask:box", "family_params.corruption: 'down:4+mask:box' combines down and mask; a model either "
         "upscales or fills in"),
        ("", "family_params.corruption: give a corruption spec, e.g. 'down:4', 'mask:box' or 'noise:0.2+blur:1'"),
    ],
)  # fmt: skip
def test_a_bad_spec_is_one_line_naming_it(spec, message):
    with pytest.raises(UserError) as e:
        parse(spec)
    assert str(e.value) == message


def test_down_is_the_mean_of_each_block():
    x = _digits()
    y, mask = parse("down:4").apply(x, torch.Generator().manual_seed(0))
    assert y.shape == (4, 1, 7, 7) and mask is None
    assert torch.allclose(y[:, :, 1, 2], x[:, :, 4:8, 8:12].mean((-1, -2)))


def test_the_box_loses_the_centre_14x14_and_keeps_the_rest():
    x = _digits()
    y, mask = parse("mask:box").apply(x, torch.Generator().manual_seed(0))
    assert mask.shape == (4, 1, 28, 28) and (mask.sum((1, 2, 3)) == 196).all()
    assert (mask[:, :, 7:21, 7:21] == 1).all() and (y[:, :, 7:21, 7:21] == 0).all()
    assert torch.equal(y * (1 - mask), x * (1 - mask))
    assert torch.equal(centre_box((1, 1, 32, 32))[0, 0].nonzero().amin(0), torch.tensor([8, 8]))


def test_random_boxes_are_a_quarter_to_a_half_of_the_side_and_inside_the_image():
    m = random_boxes((500, 1, 28, 28), torch.Generator().manual_seed(3))[:, 0]
    rows, cols = m.amax(2).sum(1), m.amax(1).sum(1)
    assert rows.min() >= 7 and rows.max() <= 14 and cols.min() >= 7 and cols.max() <= 14
    assert (m.sum((1, 2)) == rows * cols).all()  # one solid box each
    assert len({tuple(r.nonzero()[0].tolist()) for r in m}) > 50  # at many places


def test_noise_blur_and_jpeg_do_what_they_say():
    flat = torch.full((2, 1, 28, 28), 0.25)
    assert torch.allclose(gaussian_blur(flat, 1.5), flat, atol=1e-6)  # a blur keeps a flat image
    x = _digits(64)
    noisy, _ = parse("noise:0.2").apply(torch.zeros_like(x), torch.Generator().manual_seed(0))
    assert noisy.std().item() == pytest.approx(0.4, rel=0.05)  # 0.2 of the [0, 1] range = 0.4 in [-1, 1]
    blurred, _ = parse("blur:1").apply(x, torch.Generator())
    assert blurred.std() < 0.6 * x.std()  # the pixel noise is smoothed away
    q95, _ = parse("jpeg:95").apply(x, torch.Generator())
    q10, _ = parse("jpeg:10").apply(x, torch.Generator())
    assert (q95 - x).abs().mean() < (q10 - x).abs().mean()
    assert torch.equal(q10, parse("jpeg:10").apply(x, torch.Generator())[0])  # deterministic


def test_pairs_repeat_exactly_from_the_same_seed_and_differ_from_another():
    x = _digits()
    spec = parse("old")
    a = spec.apply(x, torch.Generator().manual_seed(5))[0]
    assert torch.equal(a, spec.apply(x, torch.Generator().manual_seed(5))[0])
    assert not torch.equal(a, spec.apply(x, torch.Generator().manual_seed(6))[0])
    ma = parse("mask:random").apply(x, torch.Generator().manual_seed(5))[1]
    assert torch.equal(ma, parse("mask:random").apply(x, torch.Generator().manual_seed(5))[1])
