"""The domain-pair builder: disjoint halves, labels kept, the restyling exact and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from gan_core.card import ModelCard, Translation
from gan_core.datasets import load_dataset
from gan_core.domain_pair import SPLIT_SEED, dilate, make_domain_pair, split_halves
from gan_core.idx import DataError
from gan_core.imaging import uniform_cells


def test_dilation_by_a_cross_and_a_square():
    x = np.zeros((1, 1, 5, 5), np.uint8)
    x[0, 0, 2, 2] = 200
    cross = dilate(x)[0, 0]
    assert cross.tolist() == [[0] * 5, [0, 0, 200, 0, 0], [0, 200, 200, 200, 0], [0, 0, 200, 0, 0], [0] * 5]
    from gan_core.domain_pair import SQUARE

    assert (dilate(x, SQUARE)[0, 0] == 200).sum() == 9 and dilate(x, SQUARE)[0, 0, 0].tolist() == [0] * 5


def test_pair_is_two_disjoint_labelled_halves(domain_pair, mnist_train):
    a, b = load_dataset(domain_pair / "a"), load_dataset(domain_pair / "b")
    ia, ib = split_halves(2000, SPLIT_SEED)
    assert len(a) == len(b) == 1000 and not set(ia) & set(ib)
    assert np.array_equal(a.images, mnist_train.images[ia]) and np.array_equal(
        a.labels, mnist_train.labels[ia]
    )
    assert np.array_equal(b.images, dilate(mnist_train.images[ib])) and np.array_equal(
        b.labels, mnist_train.labels[ib]
    )
    assert b.images.mean() > 1.5 * a.images.mean()  # thicker strokes: more ink
    assert len(load_dataset(domain_pair / "a", "test")) == 200 and a.class_names == [
        str(i) for i in range(10)
    ]


def test_same_input_same_bytes_and_bad_requests(domain_pair, tmp_path):
    src = domain_pair.parent
    make_domain_pair(src, tmp_path / "again")
    for f in ("a/train.npz", "b/test.npz"):
        assert (tmp_path / "again" / f).read_bytes() == (domain_pair / f).read_bytes()
    with pytest.raises(DataError, match="transform: must be one of thick, bold, outline, got 'wavy'"):
        make_domain_pair(src, tmp_path / "x", "wavy")
    np.savez(tmp_path / "one.npz", images=np.zeros((4, 28, 28), np.uint8))
    with pytest.raises(DataError, match="no separate test split to halve"):
        make_domain_pair(tmp_path / "one.npz", tmp_path / "y")


def test_translation_card_and_grid_cells(cyclegan_onnx):
    card = cyclegan_onnx["a2b"][1]
    again = ModelCard.from_json(card.to_json())
    assert again == card and isinstance(again.translation, Translation) and again.latent_dim == 0
    cells = uniform_cells([np.ones((2, 28, 28, 1), np.uint8), np.full((3, 32, 32, 3), 7, np.uint8)])
    assert cells.shape == (5, 32, 32, 3) and cells[0, :28, :28].min() == 1 and cells[0, 28:].max() == 0
