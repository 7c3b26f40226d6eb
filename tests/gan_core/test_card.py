"""Model card schema 2: inputs and outputs declared, latent_dim / conditional derived, v1 cards read."""

import json

import pytest
from pydantic import ValidationError

from gan_core.card import CARD_SCHEMA_VERSION, InputSpec, ModelCard, class_input, latent_input
from gan_core.card_files import read_card

BASE = dict(name="m", variant="hinge", arch="dcgan", num_classes=10, class_names=[str(i) for i in range(10)],
            image_shape=(1, 28, 28))  # fmt: skip


def test_version_1_card_is_read_as_version_2():
    v1 = {**BASE, "schema_version": 1, "latent_dim": 64, "latent_distribution": "normal", "conditional": True,
          "export": {"exporter": "x", "exporter_version": "1", "opset": 18, "checkpoint_sha256": "ab",
                     "output": {"name": "images", "dtype": "uint8", "layout": "NHWC", "range": [0, 255]}}}  # fmt: skip
    card = ModelCard.model_validate(v1)
    assert card.schema_version == CARD_SCHEMA_VERSION == 2
    assert [(i.name, i.kind, i.dtype, i.shape) for i in card.inputs] == [
        ("z", "latent", "float32", [64]),
        ("labels", "class", "int64", []),
    ]
    assert (card.latent_dim, card.conditional, card.output.name) == (64, True, "images")
    unconditional = ModelCard.model_validate({**v1, "conditional": False})
    assert [i.name for i in unconditional.inputs] == ["z"] and not unconditional.conditional


def test_bundled_card_reads_and_round_trips():
    card = read_card("service/models/mnist-cdcgan.onnx")
    assert card.latent_dim == 64 and card.conditional and card.export.parity_max_abs_diff <= 1
    doc = json.loads(card.model_dump_json())
    assert doc["latent_dim"] == 64 and doc["conditional"] is True  # derived fields are serialized for readers
    assert ModelCard.model_validate(doc) == card  # ... and ignored when read back


def test_derived_fields_follow_the_inputs():
    codes = [
        latent_input(62),
        InputSpec(name="digit", kind="categorical", dtype="int64", num_choices=10),
        InputSpec(name="slant", kind="continuous", dtype="float32", range=(-1, 1), distribution="uniform"),
    ]
    card = ModelCard(**BASE, inputs=codes)
    assert (card.latent_dim, card.conditional) == (62, False)
    assert ModelCard(**BASE, inputs=[*codes, class_input()]).conditional


@pytest.mark.parametrize(
    "spec, message",
    [
        (dict(name="c", kind="categorical", dtype="int64"), "a categorical input needs num_choices"),
        (dict(name="c", kind="class", dtype="float32"), "a class input has dtype int64, not float32"),
        (dict(name="s", kind="scalar", dtype="float32"), "a scalar input needs default"),
        (
            dict(name="s", kind="continuous", dtype="float32", range=(1, -1)),
            "range \\[1.0, -1.0\\] has low > high",
        ),
        (dict(name="s", kind="scalar", dtype="float32", default=1, shape=[2]), "one value per image"),
    ],
)
def test_inconsistent_input_specs_are_refused(spec, message):
    with pytest.raises(ValidationError, match=message):
        InputSpec(**spec)


def test_input_names_must_be_unique():
    with pytest.raises(ValidationError, match=r"names must be unique, \['z'\] repeated"):
        ModelCard(**BASE, inputs=[latent_input(8), latent_input(8)])
