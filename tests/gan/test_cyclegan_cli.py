"""`gan make-domain-pair`, then `gan train --preset mnist-cyclegan --data-a A --data-b B` from the command line."""

from __future__ import annotations

import json

from gan.cli import main
from tests.conftest import TINY_CYCLEGAN


def test_make_pair_then_train_from_the_cli(domain_pair, tmp_path, capsys):
    assert main(["make-domain-pair", "--data", str(domain_pair.parent), "--out", str(tmp_path / "pair")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'pair'}/a: train ")
    out = tmp_path / "run"
    args = ["train", "--preset", "mnist-cyclegan", "--data-a", str(tmp_path / "pair" / "a"), "--data-b",
            str(tmp_path / "pair" / "b"), "--out", str(out), "--steps", "2", "--batch-size", "4", "--threads", "1",
            "--set", f"arch_params={json.dumps(TINY_CYCLEGAN)}", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    card = json.loads((out / "card.json").read_text())
    target = card["translation"]["target"]["dataset"]
    assert (target["name"], target["source"]) == ("b", "b")  # its name, not where it lives
    assert card["steps"] == 2 and (out / "samples.png").exists()
    assert (
        main(
            [
                "train",
                "--preset",
                "mnist-cyclegan",
                "--data-a",
                str(tmp_path / "pair" / "a"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("data_b: the 'cyclegan' family translates between two datasets; give --data-b")
    )
