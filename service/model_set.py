"""The served models: every usable *.onnx of the models folder, opened, warmed up, each with its batcher.

One bad file must not take the good ones down: a file that cannot be served (empty, truncated,
not ONNX, no card, a model name already taken) is skipped with one log line naming it and the
reason, and listed in /models as failed. Only when no model is usable, or the settings (or the
folder's default-model.txt) name a default that is not there, does the service refuse to start (`scan_models` raises a UserError,
which service.app turns into one line and a non-zero exit, before any worker starts).
"""

from __future__ import annotations

import functools
import logging
import os
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from gan_core.card import ModelCard
from gan_core.default_model import default_file, read_default
from gan_core.errors import one_line
from gan_core.feeds import build_feeds
from gan_core.fileio import sha256_file
from gan_core.runtime import GeneratorSession, ModelFileError, cuda_device_present, open_generator
from service.batcher import Batcher
from service.metrics import images_dropped
from service.settings import Settings, SettingsError

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


@dataclass(frozen=True)
class FailedModel:
    """A file of the models folder that is not served, and why (shown by /models)."""

    file: str
    error: str


@dataclass
class ModelScan:
    """The models folder checked: the usable files with their cards, the skipped ones, the default."""

    usable: dict[str, tuple[Path, ModelCard]]
    failed: list[FailedModel]
    default: str

    @property
    def cards(self) -> list[ModelCard]:
        return [card for _, card in self.usable.values()]


def _skip(failed: list[FailedModel], path: Path, message: str, report: bool = True) -> None:
    """Record a skipped file; `message` ("PATH: why") is logged unless `report` is off, and kept
    for /models with the file name in place of its path."""
    if report:
        log.warning("not serving %s", message)
    failed.append(FailedModel(path.name, message.replace(str(path), path.name)))


def scan_models(settings: Settings, report: bool = True, run_check: bool = True) -> ModelScan:
    """Open every *.onnx once on the CPU (card + graph), skip the unusable ones; raise when none is left.

    report: log one line per skipped file (off in BentoML's workers: the serving process already did).
    run_check: also run each model's warm-up calls, so a graph that loads but cannot run is skipped
    (off in the workers: load_models warms each model up with its serving session right after).
    """
    if settings.device == "cuda" and not cuda_device_present():
        raise SettingsError("GAN_DEVICE: 'cuda' asked for, but no CUDA GPU is present (use auto or cpu)")
    folder = Path(settings.models_dir)
    if not folder.is_dir():
        raise ModelFileError(f"GAN_MODELS_DIR: {folder} is not a folder")
    usable: dict[str, tuple[Path, ModelCard]] = {}
    failed: list[FailedModel] = []
    for path in sorted(folder.glob("*.onnx")):
        try:
            session = open_generator(path, threads=1, device="cpu")
            if run_check:
                warm_up(session)  # a graph that loads but cannot run is found here, not in every worker
        except ModelFileError as e:
            _skip(failed, path, one_line(e), report)
            continue
        card = session.card
        if card.name in usable:
            other = usable[card.name][0].name
            _skip(failed, path, f"{path}: model name {card.name!r} is also used by {other}", report)
            continue
        usable[card.name] = (path, card)
    if not usable:
        why = "; ".join(f.error for f in failed) or "the folder holds no .onnx file"
        raise ModelFileError(f"GAN_MODELS_DIR: no usable model in {folder} ({why})")
    return ModelScan(usable, failed, choose_default(settings, folder, usable))


def choose_default(settings: Settings, folder: Path, usable: dict[str, tuple[Path, ModelCard]]) -> str:
    """GAN_DEFAULT_MODEL, else the model the folder's default file names (gan_core.default_model: a
    bundle of several generators says which is its default), else the first generative model by name."""
    if settings.default_model:
        if settings.default_model not in usable:
            raise SettingsError(
                f"GAN_DEFAULT_MODEL: unknown model {settings.default_model!r}; usable: {', '.join(usable)}"
            )
        return settings.default_model
    named = read_default(folder)
    if named is not None:
        if named not in usable:
            raise ModelFileError(
                f"{default_file(folder)}: names default model {named!r}, which is not usable here "
                f"(usable: {', '.join(usable)}); fix the file or set GAN_DEFAULT_MODEL"
            )
        return named
    # an image-to-image model needs images in: the default is a generative model when there is one
    generative = [n for n, (_, card) in usable.items() if card.input_of_kind("image") is None]
    return (generative or list(usable))[0]


def warm_up(session: GeneratorSession) -> None:
    """First runs allocate ORT's buffers; do them before /readyz says yes. ModelFileError when
    the graph cannot run (it loaded, but e.g. a shape does not fit at run time)."""
    if session.card.input_of_kind("image") is not None:
        return  # image-to-image models need real inputs; their first request pays instead
    for n in (1, 8):
        try:
            session.run(build_feeds(session.card, 0, range(n)))
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelFileError(
                f"{session.path}: ONNX Runtime cannot run it ({str(e).splitlines()[0][:300]})"
            ) from None


def load_models(settings: Settings, executor: Executor, scan: ModelScan) -> dict[str, Model]:
    """The scanned usable models, opened with the configured threads and device, warmed up."""
    models: dict[str, Model] = {}
    for name, (path, _) in scan.usable.items():
        try:
            sess = open_generator(path, threads=settings.ort_threads, device=settings.device)
            warm_up(sess)
        except ModelFileError as e:  # e.g. the file changed since the scan
            _skip(scan.failed, path, one_line(e))
            continue
        batcher = Batcher(
            sess.run, executor, settings.max_batch, settings.max_queue, settings.inline_images,
            timeout_s=settings.request_timeout_s, on_drop=functools.partial(images_dropped, name),
        )  # fmt: skip
        models[name] = Model(name, path, sess, sha256_file(path), batcher)
    if scan.default not in models:
        raise ModelFileError(f"{scan.usable[scan.default][0]}: default model {scan.default!r} failed to open")
    log.info(
        "serving %s (default %s)%s",
        ", ".join(f"{m.name} [{m.session.provider}, {m.session.threads} threads]" for m in models.values()),
        scan.default,
        f"; not serving {', '.join(f.file for f in scan.failed)}" if scan.failed else "",
    )
    return models


def _no_paths(node):
    """Absolute file paths inside a card (where it was trained, on whose machine) become file names."""
    if isinstance(node, dict):
        return {k: _no_paths(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_no_paths(v) for v in node]
    if isinstance(node, str) and (os.path.isabs(node) or node[1:3] in (":\\", ":/")):
        return Path(node.replace("\\", "/")).name
    return node


def public_card(card: ModelCard) -> dict:
    """The card as /models shows it: the dataset keeps its name and fingerprint, not its location."""
    doc = card.model_dump(mode="json")
    doc["dataset"] = {k: v for k, v in (doc.get("dataset") or {}).items() if k != "source"}
    return _no_paths(doc)


def what_it_does(card: ModelCard) -> str:
    """One line for /models and the playground: what the model makes and the route that serves it."""
    r, t = card.repair, card.translation
    if r is not None and r.task == "upscale":
        return f"upscales images x{r.scale} (POST /upscale)"
    if r is not None:
        filled = ", fills in masked pixels" if r.mask else ""
        return f"repairs {r.corruption} damage{filled} (POST /restore)"
    if t is not None:
        return f"translates domain {t.source.name} to {t.target.name} (POST /translate)"
    return "generates images (POST /generate)"


def models_doc(models: dict[str, Model], default: str, failed: list[FailedModel] = ()) -> dict:
    """GET /models: every served card (without file paths), where and how it runs; skipped files."""
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
                "does": what_it_does(m.card),
                "card": public_card(m.card),
            }
            for m in models.values()
        ],
        "failed": [{"file": f.file, "error": f.error} for f in failed],
    }
