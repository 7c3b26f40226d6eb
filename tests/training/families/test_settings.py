"""One way to declare and check a family's settings: every registered family declares its family_params
as one FamilySettings model, and resolve() refuses an unknown key or a wrongly typed value in one line
naming the field, the value and what is allowed (through the config and through `gan train`)."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from gan.cli import main
from gan_core.errors import UserError
from training.config import TrainConfig, preset
from training.families.params import FamilySettings, describe, validated
from training.presets import PRESETS
from training.registry import FAMILIES, discover

discover()
# the families of training/families (not the toy ones test modules register)
FAMILY_NAMES = sorted(n for n, f in FAMILIES.items() if f.__module__.startswith("training.families."))
WITH_SETTINGS = [n for n in FAMILY_NAMES if FAMILIES[n].settings_model.model_fields]


def preset_of(family: str) -> str:
    """The first preset of `family` (every registered family needs one: see the first test)."""
    return next(p for p, fields in PRESETS.items() if fields.get("family", "gan") == family)


def config(family: str, **overrides) -> TrainConfig:
    return preset(preset_of(family), **overrides)


def wrong_value(annotation):
    """A value of the wrong type for a field: a number where text is expected, text anywhere else."""
    return 12345 if annotation is str else "x"


def test_every_registered_family_has_a_preset_and_the_shipped_families_are_all_here():
    assert {"gan", "acgan", "infogan", "stylegan", "progan", "biggan", "ebgan", "began", "cyclegan"} <= set(
        FAMILY_NAMES
    )
    for name in FAMILY_NAMES:
        preset_of(name)  # the parametrised tests below resolve through it


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_a_family_declares_its_settings_as_one_model_that_forbids_unknown_keys(family):
    model = FAMILIES[family].settings_model
    assert issubclass(model, FamilySettings)
    assert model.model_config["extra"] == "forbid" and model.model_config["strict"] is True
    resolved = config(family).resolved()
    # written back with every default filled: the checkpoint and the card record what the run used
    assert set(resolved.family_params) == set(model.model_fields)
    assert resolved.resolved().family_params == resolved.family_params  # resolving again changes nothing


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_an_unknown_key_is_refused_in_one_line_naming_it(family):
    with pytest.raises(UserError) as e:
        config(family, family_params={"no_such_setting": 7}).resolved()
    msg = str(e.value)
    assert msg.startswith(
        f"family_params.no_such_setting: not a setting of the {family} family (got 7; allowed: "
    )
    assert "\n" not in msg
    fields = FAMILIES[family].settings_model.model_fields
    assert msg.endswith(f"allowed: {', '.join(fields)})" if fields else "takes no settings)")


@pytest.mark.parametrize(
    ("family", "field"),
    [(f, k) for f in WITH_SETTINGS for k in FAMILIES[f].settings_model.model_fields],
)
def test_a_wrongly_typed_value_is_refused_in_one_line_naming_the_field_and_the_value(family, field):
    info = FAMILIES[family].settings_model.model_fields[field]
    bad = wrong_value(info.annotation)
    with pytest.raises(UserError) as e:
        config(family, family_params={field: bad}).resolved()
    msg = str(e.value)
    assert msg.startswith(f"family_params.{field}: ") and "\n" not in msg
    assert f"(got {bad!r}; allowed: {describe(info.annotation, info.metadata)})" in msg


def test_the_issues_examples_are_one_line_refusals():
    with pytest.raises(UserError) as e:
        preset("mnist-acgan", family_params={"class_loss": "bogus"}).resolved()
    assert (
        str(e.value)
        == "family_params.class_loss: not one of the choices (got 'bogus'; allowed: 'ce' or 'hinge')"
    )
    with pytest.raises(UserError) as e:
        preset("mnist-infogan", family_params={"num_cat": "x"}).resolved()
    assert str(e.value).startswith(
        "family_params.num_cat: not a setting of the infogan family (got 'x'; allowed: cluster_heads, "
    )
    with pytest.raises(UserError) as e:
        preset("mnist-infogan", family_params={"categorical": "x"}).resolved()
    assert (
        str(e.value)
        == "family_params.categorical: Input should be a valid integer (got 'x'; allowed: int >= 2)"
    )


def test_values_are_not_coerced_and_several_bad_entries_share_the_line():
    with pytest.raises(UserError) as e:  # lax pydantic would read "3.0" as 3.0 and 1 as true
        preset("mnist-began", family_params={"gamma": "3.0", "share_fakes": 1}).resolved()
    assert str(e.value) == (
        "family_params.gamma: Input should be a valid number (got '3.0'; allowed: number > 0, <= 4) | "
        "family_params.share_fakes: Input should be a valid boolean (got 1; allowed: true or false)"
    )


def cli_refusal(preset_name: str, params: dict, out, data, capsys) -> str:
    """`gan train` with --set family_params=PARAMS: exit code 2 and the one stderr line it printed."""
    args = ["train", "--preset", preset_name, "--data", str(data), "--out", str(out), "--steps", "1",
            "--no-progress", "--set", f"family_params={json.dumps(params)}"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("gan train: error: "), err
    return err.removeprefix("gan train: error: ").rstrip("\n")


@pytest.mark.parametrize(
    ("preset_name", "params", "want"),
    [
        (
            "mnist-acgan",
            {"class_loss": "bogus"},
            "family_params.class_loss: not one of the choices (got 'bogus'; allowed: 'ce' or 'hinge')",
        ),
        (
            "mnist-infogan",
            {"num_cat": "x"},
            "family_params.num_cat: not a setting of the infogan family (got 'x'; allowed: cluster_heads, "
            "cluster_overcluster, cluster_views, cluster_lamb, cluster_lr, cluster_width, cluster_trunks, "
            "cluster_pick_after, categorical, categorical_name, continuous, lambda_cat, lambda_cont, q_hidden, "
            "self_condition, cluster_steps)",
        ),
    ],
)
def test_the_issues_two_examples_through_the_cli(preset_name, params, want, tmp_path, mnist_small, capsys):
    assert cli_refusal(preset_name, params, tmp_path / "run", mnist_small, capsys) == want


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_the_cli_refuses_an_unknown_key_in_one_line(family, tmp_path, mnist_small, capsys):
    line = cli_refusal(preset_of(family), {"no_such_setting": 7}, tmp_path / "run", mnist_small, capsys)
    assert line.startswith(f"family_params.no_such_setting: not a setting of the {family} family (got 7; ")


@pytest.mark.parametrize("family", WITH_SETTINGS)
def test_the_cli_refuses_a_wrongly_typed_value_in_one_line(family, tmp_path, mnist_small, capsys):
    field, info = next(iter(FAMILIES[family].settings_model.model_fields.items()))
    bad = wrong_value(info.annotation)
    line = cli_refusal(preset_of(family), {field: bad}, tmp_path / "run", mnist_small, capsys)
    assert line.startswith(f"family_params.{field}: ") and f"(got {bad!r}; allowed: " in line


def test_the_helper_describes_what_a_field_allows():
    class Toy(FamilySettings):
        rate: float = Field(0.5, gt=0, le=1)
        steps: list[int] = Field([1], min_length=1)
        mode: Literal["a", "b", "c"] | None = None
        flag: bool = False

    fields = Toy.model_fields
    assert [describe(f.annotation, f.metadata) for f in fields.values()] == [
        "number > 0, <= 1", "a list of int, length >= 1", "'a', 'b', 'c' or null", "true or false",
    ]  # fmt: skip
    with pytest.raises(
        UserError, match=r"^toy\.steps\.1: Input should be a valid integer \(got 'y'; allowed: a list"
    ):
        validated(Toy, {"steps": [1, "y"]}, "toy")

    class Lax(BaseModel):  # a model without an owner's name still names the key and the choices
        model_config = {"extra": "forbid"}

    with pytest.raises(
        UserError, match=r"^x\.k: not a setting \(got 1; allowed: none, this model takes no settings\)$"
    ):
        validated(Lax, {"k": 1}, "x")
