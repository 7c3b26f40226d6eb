"""The models folder `make serve` ships (service/models, whatever `gan bundle` put there): every model
measured and documented, the whole within the bundle's size limit, and mnist-cdcgan still the default."""

from __future__ import annotations

import pytest

from export.bundle import CARD, DEFAULT_LIMIT_MB, GRID, MB, folder_bytes
from gan_core.card_files import read_card
from service.model_set import scan_models
from service.settings import DEFAULT_MODELS_DIR, Settings

SHIPPED = sorted(DEFAULT_MODELS_DIR.glob("*.onnx"))


@pytest.mark.parametrize("model", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_model_carries_its_measured_fid_its_card_and_its_grid(model):
    card = read_card(model)
    assert isinstance((card.metrics or {}).get("fid"), float), (
        f"{model.name}: no FID (gan evaluate RUN --n 10000)"
    )
    assert read_card(model.with_name(model.stem + CARD)) == card
    assert model.with_name(model.stem + GRID).stat().st_size > 0


def test_the_shipped_folder_is_within_the_limit_and_keeps_its_default():
    assert SHIPPED
    assert folder_bytes(DEFAULT_MODELS_DIR) <= DEFAULT_LIMIT_MB * MB
    scan = scan_models(Settings(models_dir=DEFAULT_MODELS_DIR), report=False, run_check=False)
    assert sorted(p.name for p, _ in scan.usable.values()) == [p.name for p in SHIPPED] and not scan.failed
    assert scan.default == "mnist-cdcgan"
