"""The suite follows the registries: every registered preset and family has a tiny model the suite trains,
exports with parity, serves and augments (tests/conftest.py generative_presets), so none escapes coverage.

These checks only read the registries (no training): a preset or family added without its tiny size
fails here with what to add, before the parametrised tests would fail on it one by one."""

from __future__ import annotations

from tests.conftest import (
    MISSING_TINY,
    TINY_ARCH,
    TINY_OVERRIDES,
    TINY_REPAIR,
    TINY_TRANSLATION,
    family_presets,
    generative_presets,
    mnist_presets,
    repair_presets,
    translation_presets,
)
from training.config import preset
from training.presets import PRESETS
from training.registry import FAMILIES, discover


def test_every_generative_mnist_preset_has_a_tiny_size():
    missing = ", ".join(n for n in generative_presets() if n not in TINY_ARCH)
    assert not missing, f"registered in training/presets/ without a tiny size: {missing}; {MISSING_TINY}"
    stale = sorted((set(TINY_ARCH) | set(TINY_OVERRIDES)) - set(generative_presets()))
    assert not stale, f"tests/conftest.py TINY_ARCH / TINY_OVERRIDES name no generative preset: {stale}"


def test_every_repair_preset_has_a_tiny_size():
    """The paired image-to-image presets (repair, super-resolution) train through tiny_checkpoint at TINY_REPAIR."""
    assert sorted(TINY_REPAIR) == repair_presets(), (
        f"tests/conftest.py TINY_REPAIR must name exactly the repair presets {repair_presets()}, got {sorted(TINY_REPAIR)}"
    )


def test_every_image_to_image_preset_has_fixtures_of_its_own():
    """The image-to-image fixtures (cyclegan_checkpoint, cyclegan_onnx) train mnist-cyclegan only, at TINY_TRANSLATION."""
    assert sorted(TINY_TRANSLATION) == translation_presets(), (
        f"tests/conftest.py TINY_TRANSLATION must name exactly the two-dataset presets {translation_presets()}"
    )
    assert translation_presets() == ["mnist-cyclegan"], (
        "tests/conftest.py trains only mnist-cyclegan of the image-to-image (needs_data_b) presets; give "
        f"{sorted(set(translation_presets()) - {'mnist-cyclegan'})} tiny sizes and fixtures like "
        "cyclegan_checkpoint / cyclegan_onnx, with tests like tests/export/test_translation_export.py"
    )


def test_every_family_in_training_families_has_an_mnist_preset():
    discover()
    # families defined in the package (test modules register families of their own)
    shipped = {n for n, f in FAMILIES.items() if f.__module__.startswith("training.families.")}
    missing = sorted(shipped - set(family_presets()))
    assert not missing, (
        f"families without an mnist-* preset: {missing}; add training/presets/mnist-FAMILY.yaml "
        "(then its tiny size in tests/conftest.py TINY_ARCH), so the suite trains, exports, serves and augments it"
    )


def test_every_data_agnostic_preset_varies_an_mnist_preset_of_its_family_and_networks():
    """'dcgan', 'stylegan', ... are an mnist-* preset's recipe sized from the data: that preset covers them."""

    def nets(name):
        cfg = preset(name)
        return cfg.family, cfg.arch

    covered = {nets(n) for n in mnist_presets()}
    lone = [n for n in sorted(set(PRESETS) - set(mnist_presets())) if nets(n) not in covered]
    assert not lone, (
        f"presets whose family and arch no mnist-* preset has: {lone}; add an mnist-* preset of them "
        "(and its tiny size in tests/conftest.py TINY_ARCH), so the suite trains, exports, serves and augments them"
    )
