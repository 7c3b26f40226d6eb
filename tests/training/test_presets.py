"""Presets are files: each validates on load, a user's edited copy trains by path, a bad one is one line."""

import json

import pytest
import yaml

from gan.cli import main
from gan_core.errors import UserError
from training.config import TrainConfig, preset
from training.presets import PRESET_DIR, PRESETS, note, read

FILES = sorted(PRESET_DIR.glob("*.yaml"))


def test_the_registry_is_the_folder_of_files():
    assert sorted(PRESETS) == sorted(p.stem for p in FILES) and len(FILES) >= 18
    assert {"mnist-cdcgan", "cdcgan", "mnist-began", "stylegan"} <= set(PRESETS)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_file_validates_and_is_what_the_name_gives(path):
    raw = yaml.safe_load(path.read_text())
    cfg = preset(path.stem)
    assert cfg == TrainConfig(name=path.stem, out=f"runs/{path.stem}", **raw)
    assert cfg.model_fields_set == {"name", "out", *raw}  # what a file leaves out stays unset
    assert preset(str(path)) == cfg  # the same file by path
    cfg.resolved()  # the family accepts the settings too
    lines = path.read_text().splitlines()
    comments = [i for i, line in enumerate(lines) if line.lstrip().startswith("#") or " #" in line]
    assert comments == [0] and note(path) and len(note(path)) <= 110  # one note line, at the top


@pytest.mark.parametrize(
    "agnostic,mnist,differs",
    [
        ("cdcgan", "mnist-cdcgan", {"arch_params": {"d_hidden": 256}}),  # the widths left to the data
        ("dcgan", "mnist-dcgan", {"arch_params": {"d_hidden": 256}}),
        ("wgan-gp", "mnist-wgan-gp", {}),
        ("gan", "mnist-gan", {"latent_dim": 100}),  # the MLP takes any size: nothing to leave to the data
        (
            "stylegan",
            "mnist-stylegan",
            {"latent_dim": 64, "family_params": {"r1_gamma": 0.5}, "lr_g": 0.006, "lr_d": 0.006},
        ),
        *[
            (n, f"mnist-{n}", {"arch_params": PRESETS[f"mnist-{n}"]["arch_params"]})
            for n in ("sr4", "inpaint", "restore")
        ],
    ],
)
def test_the_data_agnostic_files_repeat_their_mnist_recipe(agnostic, mnist, differs):
    recipe = {k: v for k, v in PRESETS[mnist].items() if k not in ("arch_params", "latent_dim")}
    assert PRESETS[agnostic] == {**recipe, **differs, "size_from_data": True}


def test_an_edited_copy_trains_by_path(tmp_path, mnist_small, capsys):
    mine = tmp_path / "my-cdcgan.yaml"
    text = (PRESET_DIR / "mnist-cdcgan.yaml").read_text()
    text = text.replace("diversity_weight: 0.25", "diversity_weight: 0.5")
    text = text.replace("g_width: 32, d_width: 32", "g_width: 8, d_width: 8")
    mine.write_text(text)
    cfg = preset(str(mine))
    assert (cfg.name, cfg.out, cfg.diversity_weight, cfg.arch_params) == (
        "my-cdcgan", "runs/my-cdcgan", 0.5, {"g_width": 8, "d_width": 8, "d_hidden": 256}
    )  # fmt: skip
    assert cfg.model_copy(update={"name": "mnist-cdcgan", "out": "runs/mnist-cdcgan"}) == preset(
        "mnist-cdcgan", diversity_weight=0.5, arch_params={"g_width": 8, "d_width": 8, "d_hidden": 256}
    )
    out = tmp_path / "run"
    args = ["train", "--preset", str(mine), "--data", str(mnist_small), "--out", str(out), "--steps", "1",
            "--threads", "1", "--eval-every", "0", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["name"] == "my-cdcgan" and card["steps"] == 1 and card["variant"] == "hinge"
    from training.checkpoint import load_checkpoint

    saved = load_checkpoint(out).config
    assert (saved.diversity_weight, saved.arch_params["g_width"], saved.steps) == (0.5, 8, 1)


@pytest.mark.parametrize(
    "line,field,message",
    [
        ("lr: 0.001", "lr", "Extra inputs are not permitted"),  # a typo of lr_g
        ("latent_dim: 0", "latent_dim", "Input should be greater than or equal to 1"),
        ("cond_mode: sideways", "cond_mode", "Input should be 'concat' or 'projection'"),
    ],
)
def test_a_bad_field_is_one_line_naming_the_file_and_the_field(tmp_path, capsys, line, field, message):
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"# my preset\narch: dcgan\n{line}\nsteps: 5\n")
    with pytest.raises(UserError) as e:
        read(mine)
    assert str(e.value) == f"{mine}: {field}: {message}"
    assert main(["train", "--preset", str(mine), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == f"gan train: error: {mine}: {field}: {message}\n"
    assert not (tmp_path / "o").exists()  # refused before anything ran


@pytest.mark.parametrize(
    "text,message",
    [
        ("arch: [dcgan\n", "not valid YAML (line 2): expected ',' or ']', but got '<stream end>'"),
        ("- arch: dcgan\n", "a preset is a mapping of config fields (field: value), not list"),
    ],
)
def test_a_file_that_is_not_a_preset_is_one_line(tmp_path, capsys, text, message):
    mine = tmp_path / "mine.yaml"
    mine.write_text(text)
    assert main(["train", "--preset", str(mine), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == f"gan train: error: {mine}: {message}\n"


def test_unknown_names_and_missing_files_are_one_line(tmp_path, capsys):
    assert main(["train", "--preset", "mnist-cdgan", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "gan train: error: unknown preset 'mnist-cdgan'; known: cdcgan, collapse-demo, dcgan, gan, "
    )
    assert err.endswith(" (or a preset file's path, NAME.yaml)\n") and err.count("\n") == 1
    missing = tmp_path / "nope.yaml"
    assert main(["train", "--preset", str(missing), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (
        f"gan train: error: {missing}: cannot read the preset file (No such file or directory)\n"
    )
