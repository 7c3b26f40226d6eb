"""The served models: every *.onnx of the models folder, opened, warmed up, each with its batcher."""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from gan_core.card import ModelCard
from gan_core.card_files import CardFileError, read_card
from gan_core.feeds import build_feeds
from gan_core.fileio import sha256_file
from gan_core.runtime import GeneratorSession, ModelFileError, open_generator
from service.batcher import Batcher
from service.settings import Settings

log = logging.getLogger("gan_service")


@dataclass
class Model:
    """One served .onnx file: its session, card, digest and request batcher."""

    name: str
    path: Path
    session: GeneratorSession
    sha256: str
    batcher: Batcher

    @property
    def card(self) -> ModelCard:
        return self.session.card


def warm_up(model: Model) -> None:
    """First runs allocate ORT's buffers; do them before /readyz says yes."""
    if model.card.input_of_kind("image") is not None:
        return  # image-to-image models need real inputs; their first request pays instead
    for n in (1, 8):
        model.session.run(build_feeds(model.card, 0, range(n)))


def served_cards(models_dir: Path) -> list[ModelCard]:
    """The cards of the models folder's files, read without opening sessions (for the API schemas)."""
    cards = []
    for path in sorted(Path(models_dir).glob("*.onnx")):
        try:
            cards.append(read_card(path))
        except CardFileError:
            continue  # load_models reports unusable files
    return cards


def load_models(settings: Settings, executor: Executor) -> tuple[dict[str, Model], str]:
    """(models by name, default name) for every *.onnx in settings.models_dir."""
    models: dict[str, Model] = {}
    paths = sorted(Path(settings.models_dir).glob("*.onnx"))
    if not paths:
        raise ModelFileError(f"{settings.models_dir}: no .onnx models to serve (GAN_MODELS_DIR)")
    for path in paths:
        sess = open_generator(path, threads=settings.ort_threads, device=settings.device)
        name = sess.card.name
        if name in models:
            raise ModelFileError(f"{path}: model name {name!r} is also used by {models[name].path}")
        batcher = Batcher(sess.run, executor, settings.max_batch, settings.max_queue, settings.inline_images)
        models[name] = Model(name, path, sess, sha256_file(path), batcher)
        warm_up(models[name])
    generative = [n for n, m in models.items() if m.card.input_of_kind("image") is None]
    default = settings.default_model or (generative or list(models))[0]
    if default not in models:
        raise ModelFileError(f"GAN_DEFAULT_MODEL: unknown model {default!r}; known: {', '.join(models)}")
    log.info(
        "serving %s (default %s)",
        ", ".join(f"{m.name} [{m.session.provider}, {m.session.threads} threads]" for m in models.values()),
        default,
    )
    return models, default


def models_doc(models: dict[str, Model], default: str) -> dict:
    """GET /models: every card exactly as exported, plus where and how it runs."""
    return {
        "default": default,
        "models": [
            {
                "name": m.name,
                "file": m.path.name,
                "sha256": m.sha256,
                "provider": m.session.provider,
                "threads": m.session.threads,
                "default": m.name == default,
                "card": m.card.model_dump(mode="json"),
            }
            for m in models.values()
        ],
    }
