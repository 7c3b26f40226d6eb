import pytest
import torch
from pydantic import ValidationError

from tests.conftest import family_presets, preset_family, tiny_config
from training.config import TrainConfig
from training.diffaugment import POLICIES, color, cutout, diff_augment, parse_policy, translation


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_translation_shifts_each_image_by_its_own_offset_with_zero_fill():
    x = torch.rand(64, 2, 16, 16) + 1  # no zeros of its own
    out = translation(x, _gen())
    shifts = set()
    for i in range(len(x)):
        # the offset is where the image's first pixel landed; everything else follows it exactly
        nz = out[i, 0].nonzero()
        top, left = nz.min(0).values.tolist()
        bottom, right = nz.max(0).values.tolist()
        dy = top if top > 0 else bottom - 15  # moved down (rows filled above) or up
        dx = left if left > 0 else right - 15
        shifts.add((dy, dx))
        assert abs(dy) <= 2 and abs(dx) <= 2  # 1/8 of 16 px
        expect = torch.zeros_like(x[i])
        src = x[i][:, max(0, -dy) : 16 - max(0, dy), max(0, -dx) : 16 - max(0, dx)]
        expect[:, max(0, dy) : 16 - max(0, -dy), max(0, dx) : 16 - max(0, -dx)] = src
        assert torch.equal(out[i], expect), i
    assert len(shifts) > 5  # per image, not one shift for the batch


def test_cutout_zeroes_one_square_of_half_the_side_per_image():
    out = cutout(torch.ones(200, 3, 32, 32), _gen())
    holes = out[:, 0] == 0
    assert torch.equal(holes, (out == 0).all(1))  # the same square in every channel
    rows, cols = holes.any(2).sum(1), holes.any(1).sum(1)
    assert rows.max() == cols.max() == 16 and rows.min() >= 8  # clipped at the border, never more than half
    assert torch.equal(holes.sum((1, 2)), rows * cols)  # a rectangle
    assert len({tuple(h.nonzero()[0].tolist()) for h in holes}) > 50


def test_color_moves_brightness_saturation_contrast_per_image_and_keeps_gradients():
    x = torch.rand(8, 3, 8, 8, requires_grad=True)
    out = color(x, _gen())
    assert out.shape == x.shape
    means = (out - x).mean((1, 2, 3))
    assert means.abs().max() <= 0.5 + 1e-5 and means.std() > 0.05  # brightness in [-0.5, 0.5], per image
    out.square().sum().backward()
    assert x.grad.abs().min() > 0


def test_same_generator_state_same_augmentation_and_empty_policy_draws_nothing():
    x = torch.randn(4, 3, 32, 32)
    a = diff_augment(x, POLICIES, _gen(3))
    assert torch.equal(a, diff_augment(x, POLICIES, _gen(3)))
    assert not torch.equal(a, diff_augment(x, POLICIES, _gen(4)))
    g = _gen(5)
    before = g.get_state()
    assert diff_augment(x, (), g) is x
    assert torch.equal(g.get_state(), before)


def test_policy_names_are_checked_and_named_in_the_error():
    assert parse_policy(" color, cutout ") == ("color", "cutout")
    assert parse_policy("") == ()
    assert TrainConfig(name="t", diffaugment="translation, color").diffaugment == "translation,color"
    with pytest.raises(
        ValidationError, match="(?s)diffaugment.*unknown policy 'flip'; known: color, translation, cutout"
    ):
        TrainConfig(name="t", diffaugment="color,flip")


# one preset per family a registered preset trains, split by the family's own `diffaugments` flag
FAMILY_PRESETS = family_presets()
AUGMENTING = sorted(f for f, n in FAMILY_PRESETS.items() if preset_family(n).diffaugments)


@pytest.mark.parametrize("name", [n for f, n in FAMILY_PRESETS.items() if f not in AUGMENTING])
def test_families_whose_d_steps_do_not_augment_refuse_it_naming_those_that_do(name):
    from gan_core.errors import UserError
    from training.config import preset

    cfg = preset(name, diffaugment="color")
    with pytest.raises(UserError) as e:
        cfg.resolved()
    head, can = str(e.value).split("; families that do: ")
    assert head == f"diffaugment: the {cfg.family} family does not apply DiffAugment to what its D sees"
    named = can.split(", ")  # test modules may register families of their own
    assert set(AUGMENTING) <= set(named) and cfg.family not in named and named == sorted(named)
    assert preset(name).resolved().diffaugment == ""  # without it nothing changes


@pytest.mark.parametrize("name", [FAMILY_PRESETS[f] for f in AUGMENTING])
def test_families_that_augment_apply_the_policy_to_what_d_sees(name, mnist_small, tiny_checkpoint, tmp_path):
    """Two tiny steps with DiffAugment: every step that trains D augments (a clustering phase may come first),
    every call changes its images, and the run ends elsewhere than the same two steps without it
    (tiny_checkpoint's)."""
    from gan_core.datasets import load_dataset
    from training.checkpoint import load_checkpoint
    from training.trainer import Trainer

    trainer = Trainer(tiny_config(name, tmp_path, diffaugment="translation,cutout"), load_dataset(mnist_small),
                      progress=False)  # fmt: skip
    fam, seen = trainer.family, []
    plain = fam.diffaugment

    def recording(x, ctx):
        out = plain(x, ctx)
        seen.append((ctx.step, x.shape == out.shape and bool((out != x).any())))
        return out

    fam.diffaugment = recording
    res = trainer.train()
    d_steps = set()
    for step in (0, 1):
        fam.schedule(step)
        d_steps |= {step} if any(p.name == "d" for p in fam.phases()) else set()
    assert d_steps and {step for step, _ in seen} == d_steps and all(changed for _, changed in seen), seen
    augmented = load_checkpoint(res.checkpoint).tensors
    without = load_checkpoint(tiny_checkpoint(name)).tensors  # the same two steps, no policy
    assert augmented.keys() == without.keys()
    d_moved = [k for k in without if k.startswith("d.") and not torch.equal(augmented[k], without[k])]
    assert d_moved  # D saw other images
