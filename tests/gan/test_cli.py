import gzip
import json
import subprocess
import sys

import pytest

from gan.cli import main
from training.presets import PRESETS


def test_train_cli_end_to_end(tmp_path, mnist_small, capsys):
    out = tmp_path / "run"
    args = ["train", "--preset", "mnist-cdcgan", "--data", str(mnist_small), "--out", str(out), "--steps", "2",
            "--set", 'arch_params={"g_width": 8, "d_width": 8}', "--no-progress", "--eval-every", "0"]  # fmt: skip
    assert main(args) == 0
    assert "steps: 2 steps" in capsys.readouterr().out
    card = json.loads((out / "card.json").read_text())
    assert card["name"] == "mnist-cdcgan" and card["variant"] == "hinge" and card["arch"] == "dcgan"
    assert main([*args, "--steps", "3", "--resume"]) == 0
    assert json.loads((out / "card.json").read_text())["steps"] == 3


@pytest.mark.parametrize(
    "setup,expected",
    [
        ("missing", "gan train: error: {p}: no such file or folder"),
        (
            "magic",
            "gan train: error: {p}/train-images-idx3-ubyte.gz: wrong magic number 7 for an IDX images file (expected 2051)",
        ),
        ("truncated", "gan train: error: {p}/train-images-idx3-ubyte.gz: truncated or padded IDX data"),
    ],
)
def test_bad_data_is_one_clear_line(tmp_path, capsys, setup, expected):
    p = tmp_path / "data"
    if setup != "missing":
        p.mkdir()
        magic = 7 if setup == "magic" else 2051
        body = (
            magic.to_bytes(4, "big")
            + (3).to_bytes(4, "big")
            + (28).to_bytes(4, "big") * 2
            + bytes(28 * 28 * 3 - (50 if setup == "truncated" else 0))
        )
        with gzip.open(p / "train-images-idx3-ubyte.gz", "wb") as f:
            f.write(body)
        with gzip.open(p / "train-labels-idx1-ubyte.gz", "wb") as f:
            f.write((2049).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(3))
    assert (
        main(["train", "--data", str(p), "--out", str(tmp_path / "o"), "--steps", "1", "--no-progress"]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith(expected.format(p=p)) and "\n" not in err and "Traceback" not in err


def test_bad_flag_values(tmp_path, capsys):
    assert main(["train", "--steps", "-1", "--out", str(tmp_path)]) == 2
    assert "steps: Input should be greater than or equal to 0" in capsys.readouterr().err
    assert main(["train", "--set", "nonsense", "--out", str(tmp_path)]) == 2
    assert "--set expects FIELD=JSON, got 'nonsense'" in capsys.readouterr().err
    assert main(["train", "--set", "steps=null", "--out", str(tmp_path)]) == 2
    assert "steps: Input should be a valid integer" in capsys.readouterr().err
    # the family's settings are refused before the data is read: no such folder is named, the field is
    missing = str(tmp_path / "no-data")
    assert main(["train", "--preset", "mnist-sngan", "--data", missing, "--set", 'family_params={"cluster_trunks": 0}',
                 "--out", str(tmp_path)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "cluster_trunks" in err and "no-data" not in err and "Traceback" not in err


def test_set_null_gives_a_field_none_where_a_left_out_flag_keeps_the_preset():
    import argparse

    from training import train_cmd

    parser = argparse.ArgumentParser()
    train_cmd.add_arguments(parser)
    config = lambda *argv: train_cmd.config_from_args(parser.parse_args(["--preset", "mnist-began", *argv]))  # noqa: E731
    assert config().lr_decay_from == 0.5 and config().steps == 36_000  # the preset's
    assert config("--set", "lr_decay_from=null").lr_decay_from is None  # no decay, as asked
    last_wins = config("--set", "lr_decay_from=null", "--set", "lr_decay_from=0.2")
    assert last_wins.lr_decay_from == 0.2
    assert config("--set", "lr_decay_from=0.25", "--steps", "100").lr_decay_from == 0.25


def test_make_demo_data_defaults_to_the_default_backgrounds():
    """The CLI keeps its default as a literal (its work is imported lazily); it must name the library's set."""
    import argparse

    from gan import demo_data_cmd
    from gan_core.demo_data import BACKGROUND_KINDS, BACKGROUNDS

    parser = argparse.ArgumentParser()
    demo_data_cmd.add_arguments(parser)
    assert tuple(parser.parse_args(["--out", "x"]).backgrounds.split(",")) == BACKGROUNDS
    help_text = parser.format_help()
    assert all(kind in help_text for kind in BACKGROUND_KINDS)


def test_console_script_help():
    out = subprocess.run(
        [sys.executable, "-m", "gan.cli", "train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in ("--preset", "--data", "--out", "--steps", "--max-minutes", "--seed", "--resume"):
        assert flag in out


@pytest.mark.parametrize("preset", ["mnist-gan", "mnist-dcgan", "mnist-cdcgan", "mnist-wgan-gp"])
def test_every_preset_trains_from_the_cli(tmp_path, mnist_small, preset):
    small = (
        {"g_hidden": [32, 32], "d_hidden": [32, 16]}
        if preset == "mnist-gan"
        else {"g_width": 8, "d_width": 8}
    )
    out = tmp_path / preset
    args = ["train", "--preset", preset, "--data", str(mnist_small), "--out", str(out), "--steps", "2", "--no-progress",
            "--eval-every", "0", "--set", f"arch_params={json.dumps(small)}"]  # fmt: skip
    assert main(args) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["name"] == preset and card["steps"] == 2
    assert card["conditional"] == PRESETS[preset].get("conditional", False)
    family = PRESETS[preset].get("family", "gan")  # the classic family's variant is its loss
    assert card["variant"] == ("" if family == "gan" else f"{family}-") + PRESETS[preset]["loss"]


def test_serving_only_install_keeps_torch_free_commands(tmp_path):
    """Without torch, `gan augment` still parses and torch commands fail with one line naming the extra."""
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
        "from gan.cli import main\n"
        "assert main(['train', '--preset', 'mnist-cdcgan', '--steps', '1']) == 2\n"
        "try:\n    main(['augment', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "assert 'torch' not in [m for m, v in sys.modules.items() if v is not None]\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**__import__("os").environ, "PYTHONPATH": __import__("os").pathsep.join(sys.path)})  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.strip() == (
        "gan train: error: 'gan train' needs torch: pip install torch==2.13.0 && pip install 'gan-service[train]'"
    )
    assert "--per-class" in r.stdout


def test_train_resizes_a_mixed_flat_folder_when_asked(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 50), (32, 32), (70, 64)] * 6):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"{i:02d}.png")
    args = ["train", "--preset", "dcgan", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--steps", "1",
            "--batch-size", "8", "--set", 'arch_params={"g_width": 8, "d_width": 8}', "--no-progress"]  # fmt: skip
    assert main(args) == 2
    assert capsys.readouterr().err.startswith(
        f"gan train: error: {tmp_path / '01.png'}: image size 32x32 differs"
    )
    assert main([*args, "--image-size", "32", "--fit", "stretch"]) == 0
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert card["image_shape"] == [3, 32, 32] and card["conditional"] is False
    assert card["dataset"]["preprocess"] == {"size": 32, "fit": "stretch", "resample": "lanczos"}
    assert card["dataset"]["labelled"] is False and card["class_names"] == ["unlabeled"]
    # the preset evaluates every 1,000 steps: with no evaluator bound to this data it says how to get one
    assert "note: quick evaluation off: no evaluator is bound to" in capsys.readouterr().err
