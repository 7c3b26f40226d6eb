"""The augmentation plan and job config: labels per index, class mixes, shards, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augment.config import JobConfig
from augment.errors import AugmentError
from augment.plan import chunk_range, largest_remainder, num_chunks, plan_labels, shard_chunks
from augment.request import resolve_job
from gan_core.card import ModelCard


def card(conditional=True, channels=1, **kw) -> ModelCard:
    fields = dict(name="tiny", variant="ns", arch="dcgan", latent_dim=8, conditional=conditional, num_classes=10,
                  class_names=[str(i) for i in range(10)], image_shape=(channels, 28, 28))  # fmt: skip
    return ModelCard(**{**fields, **kw})


def test_per_class_plan_is_round_robin_over_the_chosen_classes():
    cfg = resolve_job(card(), "ab" * 32, per_class=4, classes="0,3,7")
    labels = plan_labels(cfg.classes, cfg.counts)
    assert cfg.classes == [0, 3, 7] and cfg.counts == [4, 4, 4] and cfg.total == 12
    assert labels.tolist() == [[0, 3, 7][i % 3] for i in range(12)]


def test_classes_accept_names_and_ids():
    named = card(class_names=[f"digit{i}" for i in range(10)])
    assert resolve_job(named, "x", per_class=1, classes="digit2, 5").classes == [2, 5]


def test_distribution_counts_are_exact_and_interleaved():
    cfg = resolve_job(card(), "x", total=1000, class_dist='{"1": 3, "2": 1}')
    assert cfg.classes == [1, 2] and cfg.counts == [750, 250]
    labels = plan_labels(cfg.classes, cfg.counts)
    assert np.bincount(labels, minlength=3).tolist() == [0, 750, 250]
    # every window of 8 consecutive images holds the 3:1 mix (interleaved, not blocks)
    assert all((labels[a : a + 8] == 2).sum() == 2 for a in range(0, 1000, 8))


def test_distribution_list_and_largest_remainder():
    cfg = resolve_job(card(), "x", total=10, class_dist=[1] * 3 + [0] * 7)
    assert cfg.classes == [0, 1, 2] and cfg.counts == [4, 3, 3]
    assert largest_remainder([0.5, 0.25, 0.25], 3) == [1, 1, 1]  # quotas 1.5, .75, .75
    assert largest_remainder([1, 1, 1], 100) == [34, 33, 33]


def test_class_dist_data_follows_the_real_label_frequencies(mnist_small):
    cfg = resolve_job(card(), "x", total=2000, class_dist="data", data=str(mnist_small))
    real = np.bincount(np.load(mnist_small)["labels"], minlength=10)
    assert cfg.counts == real.tolist()


@given(st.lists(st.integers(0, 50), min_size=1, max_size=8))
@settings(max_examples=50, deadline=None)
def test_plan_holds_exactly_the_counts(counts):
    labels = plan_labels(list(range(len(counts))), counts)
    assert np.bincount(labels, minlength=len(counts)).tolist() == counts


@given(st.integers(1, 500), st.integers(1, 64), st.integers(1, 9))
@settings(max_examples=60, deadline=None)
def test_shards_partition_the_chunks_and_chunks_partition_the_indices(total, chunk_size, n):
    k = num_chunks(total, chunk_size)
    chunks = [c for s in range(n) for c in shard_chunks(k, s, n)]
    assert chunks == list(range(k))
    assert [i for c in chunks for i in chunk_range(c, total, chunk_size)] == list(range(total))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(per_class=0), "per_class: must be >= 1, got 0"),
        (dict(total=-5), "total: must be >= 1, got -5"),
        (dict(), "give exactly one of per_class (--per-class N) or total (--total N)"),
        (dict(per_class=1, total=1), "give exactly one of per_class (--per-class N) or total (--total N)"),
        (
            dict(per_class=1, classes="0,12"),
            "classes: unknown class '12'; model 'tiny' has classes 0, 1, 2, 3, 4, 5, 6, 7, 8, 9",
        ),
        (
            dict(per_class=1, classes="cat"),
            "classes: unknown class 'cat'; model 'tiny' has classes 0, 1, 2, 3, 4, 5, 6, 7, 8, 9",
        ),
        (dict(per_class=1, classes="3,3"), "classes: a class is listed twice (3,3)"),
        (
            dict(total=5, class_dist='{"1": -1}'),
            "class_dist: weight of class '1' must be a finite number >= 0, got -1",
        ),
        (dict(total=5, class_dist="[1, 2]"), "class_dist: a list needs one weight per class (10), got 2"),
        (
            dict(total=5, class_dist="{nope"),
            "class_dist: not JSON and not 'data' (Expecting property name enclosed in double quotes at char 1)",
        ),
        (dict(total=5, class_dist='{"1": 0}'), "class_dist: gives zero weight to every requested class"),
        (dict(per_class=2, class_dist='{"1": 1}'), "class_dist: goes with --total N, not with --per-class"),
        (dict(per_class=1, format="tiff"), "format: must be one of folder, npz, idx, got 'tiff'"),
    ],
)
def test_bad_requests_name_the_field(kw, message):
    with pytest.raises(AugmentError) as e:
        resolve_job(card(), "x", **kw)
    assert str(e.value) == message


def test_unconditional_model_refuses_classes_but_makes_a_total():
    with pytest.raises(
        AugmentError,
        match=r"^model 'tiny' is unconditional: its card has no classes to ask for; use --total N",
    ):
        resolve_job(card(conditional=False), "x", per_class=3)
    cfg = resolve_job(card(conditional=False), "x", total=7)
    assert cfg.classes == [0] and cfg.counts == [7] and cfg.class_names == ["unlabeled"]


def test_idx_refuses_colour_images():
    with pytest.raises(
        AugmentError, match=r"^format: idx holds single-channel images; model 'tiny' makes 3-channel images"
    ):
        resolve_job(card(channels=3), "x", per_class=1, format="idx")


def test_config_hash_and_differences():
    a = resolve_job(card(), "x", per_class=2, seed=1)
    b = resolve_job(card(), "x", per_class=2, seed=1)
    c = resolve_job(card(), "x", per_class=3, seed=2)
    assert a.config_hash() == b.config_hash() != c.config_hash()
    assert a.differences(c) == [
        "counts: existing [2, 2, 2, 2, 2, 2, 2, 2, 2, 2], now [3, 3, 3, 3, 3, 3, 3, 3, 3, 3]",
        "seed: existing 1, now 2",
    ]
    assert JobConfig.from_file_bytes(a.to_file_bytes()) == a


def test_manifest_lines_are_exactly_json_of_the_record():
    from augment.manifest import manifest_lines

    names = ['zero "0"', "ünï", *[str(i) for i in range(2, 10)]]
    cfg = resolve_job(card(class_names=names), "cd" * 32, total=6, seed=7)
    labels = plan_labels(cfg.classes, cfg.counts)
    for files in (None, [f"train/{i}/{i:08d}.png" for i in range(6)]):
        lines = manifest_lines(cfg, range(6), labels, files)
        for k, line in enumerate(lines):
            where = {"index": k} if files is None else {"file": files[k]}
            rec = {**where, "label": int(labels[k]), "class": names[labels[k]], "seed": 7, "seed_index": k,
                   "model_sha256": "cd" * 32, "job": cfg.config_hash()}  # fmt: skip
            assert line == json.dumps(rec, separators=(",", ":"))
