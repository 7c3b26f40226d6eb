"""`gan presets`: one line a registered preset, with its family, loss, data and note."""

from gan.cli import main
from training.config import preset
from training.presets import PRESET_DIR, PRESETS, note


def test_lists_every_preset_with_its_family_loss_and_data(capsys):
    assert main(["presets"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["NAME", "FAMILY", "LOSS", "DATA", "NOTE"]
    rows = {line.split()[0]: line for line in lines}
    assert len(lines) == len(rows) and sorted(rows) == sorted(PRESETS)
    for name, line in rows.items():
        assert line.split()[1] == preset(name).family
        assert line.endswith(note(PRESET_DIR / f"{name}.yaml"))
    cells = {name: line.split()[:4] for name, line in rows.items()}
    assert cells["mnist-cdcgan"] == ["mnist-cdcgan", "gan", "hinge", "MNIST"]
    assert cells["mnist-progan"][2] == "wgan-gp"  # the resolved loss: what the run records
    assert cells["mnist-began"][2] == "equilibrium"  # the family's own, not the unused loss field
    assert rows["mnist-cyclegan"].split()[3:6] == ["MNIST", "+", "--data-b"]
    assert rows["cdcgan"].split()[3:6] == ["any", "labelled", "images"]
    assert rows["dcgan"].split()[3:5] == ["any", "images"]
