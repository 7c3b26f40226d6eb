"""The seeded feed builder: image i of seed s is fixed whatever the batch; values are checked by the card."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gan_core.card import InputSpec, ModelCard, class_input, latent_input
from gan_core.feeds import FeedError, build_feeds, concat_feeds
from gan_core.latents import latents

CARD = ModelCard(
    name="toy", variant="x", arch="x", num_classes=3, class_names=["a", "b", "c"], image_shape=(1, 8, 8),
    inputs=[
        latent_input(6),
        class_input(),
        InputSpec(name="digit", kind="categorical", dtype="int64", num_choices=5),
        InputSpec(name="slant", kind="continuous", dtype="float32", range=(-1, 1), distribution="uniform"),
        InputSpec(name="psi", kind="scalar", dtype="float32", default=0.7, range=(0, 2)),
        InputSpec(name="noise0", kind="noise", dtype="float32", shape=[1, 4, 4], distribution="normal"),
        latent_input(6, name="z_mix"),
    ],
)  # fmt: skip


def test_first_latent_is_the_published_stream_and_labels_are_balanced():
    f = build_feeds(CARD, 5, range(3, 7))
    np.testing.assert_array_equal(f["z"], latents(5, range(3, 7), 6))
    assert f["labels"].tolist() == [0, 1, 2, 0] and f["labels"].dtype == np.int64
    assert f["psi"].tolist() == pytest.approx([0.7] * 4)
    assert f["digit"].dtype == np.int64 and f["digit"].min() >= 0 and f["digit"].max() < 5
    assert (np.abs(f["slant"]) <= 1).all() and f["noise0"].shape == (4, 1, 4, 4)
    assert not np.array_equal(f["z_mix"], f["z"])  # each input has its own stream


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**63 - 1), start=st.integers(0, 10**9), count=st.integers(1, 9), k=st.integers(0, 8)
)
def test_image_i_does_not_depend_on_the_request(seed, start, count, k):
    k = k % count
    whole = build_feeds(CARD, seed, range(start, start + count))
    one = build_feeds(CARD, seed, [start + k])
    for name in whole:
        np.testing.assert_array_equal(whole[name][k], one[name][0], err_msg=name)


def test_values_override_and_broadcast():
    f = build_feeds(CARD, 1, range(3), {"labels": [2, 0, 1], "digit": 4, "slant": [-1, 0, 1], "psi": 1.5})
    assert f["labels"].tolist() == [2, 0, 1] and f["digit"].tolist() == [4, 4, 4]
    assert f["slant"].tolist() == [-1, 0, 1] and f["psi"].tolist() == [1.5] * 3
    g = build_feeds(CARD, 1, range(3), {"digit": 4})
    np.testing.assert_array_equal(f["z"], g["z"])  # setting a code leaves the noise alone


def test_noise_modes():
    seeded = build_feeds(CARD, 1, range(2))["noise0"]
    const = build_feeds(CARD, 1, range(2), noise_mode="const")["noise0"]
    none = build_feeds(CARD, 1, range(2), noise_mode="none")["noise0"]
    assert not np.array_equal(seeded[0], seeded[1]) and np.array_equal(const[0], const[1])
    assert np.array_equal(const, build_feeds(CARD, 99, range(2), noise_mode="const")["noise0"])
    assert not none.any()


@pytest.mark.parametrize(
    "values, message",
    [
        ({"digit": 5}, r"^digit: must be in 0..4 \(5 choices\)$"),
        ({"digit": 1.5}, r"^digit: must be whole numbers"),
        ({"digit": True}, r"^digit: must be whole numbers"),
        ({"slant": 2}, r"^slant: must be in \[-1, 1\], got 2$"),
        ({"psi": "a"}, r"^psi: must be numbers"),
        ({"psi": float("nan")}, r"^psi: values must be finite float32 numbers$"),
        ({"slant": [0.1, 0.2]}, r"^slant: expected one value or a list of 3, got shape \[2\]$"),
        ({"labels": 3}, r"^labels: class 3 is not in 0..2 \(model 'toy'\)$"),
        ({"nope": 1}, r"^nope: model 'toy' has no such input"),
    ],
)
def test_bad_values_name_the_input_and_the_limit(values, message):
    with pytest.raises(FeedError, match=message):
        build_feeds(CARD, 0, range(3), values)


def test_image_inputs_must_be_given_and_truncation_checked():
    card = ModelCard(name="t", variant="x", arch="x", num_classes=1, class_names=["x"], image_shape=(3, 4, 4),
                     inputs=[InputSpec(name="image", kind="image", dtype="uint8", shape=[4, 4, 3])])  # fmt: skip
    with pytest.raises(
        FeedError, match=r"^image: model 't' needs input images \(uint8 \[4, 4, 3\]\); none given$"
    ):
        build_feeds(card, 0, range(2))
    img = np.zeros((2, 4, 4, 3), np.uint8)
    assert build_feeds(card, 0, range(2), {"image": img})["image"].shape == (2, 4, 4, 3)
    with pytest.raises(FeedError, match=r"^truncation: must be a finite number > 0, got -1"):
        build_feeds(CARD, 0, range(2), truncation=-1)


def test_concat_feeds_is_row_wise():
    a, b = build_feeds(CARD, 1, range(2)), build_feeds(CARD, 1, range(2, 5))
    np.testing.assert_array_equal(concat_feeds([a, b])["slant"], build_feeds(CARD, 1, range(5))["slant"])
