"""Test-wide settings: no telemetry, one thread per process, the shared MNIST copy."""

import functools
import os

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("GAN_ORT_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MNIST = REPO.parent / "shared" / "data" / "mnist"


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


@pytest.fixture(scope="session", autouse=True)
def _private_stores(tmp_path_factory):
    """Decoded image folders and trained evaluators go to this session's temp folder, never ~/.cache."""
    os.environ["GAN_DATA_CACHE"] = str(tmp_path_factory.mktemp("data-cache"))
    os.environ["GAN_EVALUATOR_DIR"] = str(tmp_path_factory.mktemp("evaluators"))


def zl_feeds(z, labels=None) -> dict:
    """Feeds of a z (+ labels) generator: the inputs of every DCGAN / MLP export."""
    return {"z": z} if labels is None else {"z": z, "labels": labels}


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    assert (MNIST / "train-images-idx3-ubyte.gz").exists(), f"tests need the real MNIST files at {MNIST}"
    return MNIST


@pytest.fixture(scope="session")
def mnist_train(mnist_dir):
    from gan_core.datasets import load_dataset

    return load_dataset(mnist_dir, "train")


@pytest.fixture(scope="session")
def mnist_small(mnist_train, tmp_path_factory):
    """2,000 real training digits as an .npz: enough for a few steps of a tiny model."""
    import numpy as np

    path = tmp_path_factory.mktemp("data") / "mnist2k.npz"
    np.savez(path, images=mnist_train.images[:2000, 0], labels=mnist_train.labels[:2000])
    return path


@pytest.fixture(scope="session")
def mnist_small_evaluator(mnist_small):
    """A tiny evaluator bound to the 2k-digit set (1,800 train / 200 held out), in the session's store:
    what evaluation of the tiny models trained on it uses (never MNIST's evaluator, which is other data)."""
    from training.evaluation.store import train_for_data

    card, stem = train_for_data(mnist_small, evaluator_id="mnist2k-tiny", epochs=2, width=8, threads=1)
    return stem


# One tiny model per generative mnist-* preset (generative_presets below), trained a few steps on 2k real
# digits, once per session: every test package (export, service, augment, evaluation) uses these.
# A preset registered without an entry here fails tests/test_registry_coverage.py, naming what to add.
TINY_ARCH = {
    "mnist-gan": {"g_hidden": [16, 32], "d_hidden": [16, 8]},
    "mnist-dcgan": {"g_width": 8, "d_width": 8},
    "mnist-lsgan": {"g_width": 8, "d_width": 8},
    "mnist-wgan": {"g_width": 8, "d_width": 8},
    "mnist-sngan": {"g_width": 8, "d_width": 8},
    "mnist-cdcgan": {"g_width": 8, "d_width": 8},
    "mnist-wgan-gp": {"g_width": 8, "d_width": 8},
    "mnist-infogan": {"g_width": 8, "d_width": 8},
    "mnist-acgan": {"g_width": 8, "d_width": 8},
    "mnist-stylegan": {
        "g_width": 4,
        "g_max_width": 8,
        "d_width": 4,
        "d_max_width": 8,
        "w_dim": 8,
        "mapping_layers": 2,
    },
    "mnist-progan": {"g_width": 4, "g_max_width": 8, "d_width": 4, "d_max_width": 8},
    "mnist-sagan": {"g_width": 8, "d_width": 8},
    "mnist-biggan": {"g_width": 8, "d_width": 8, "shared_dim": 8, "d_pool": False, "d_hidden": 8},
    "mnist-ebgan": {"g_width": 8, "d_width": 8, "code_dim": 8},
    # the preset's shape: fully connected G and autoencoder, LeakyReLU
    "mnist-began": {
        "generator": "mlp",
        "g_hidden": [16],
        "autoencoder": "mlp",
        "d_hidden": 16,
        "code_dim": 8,
        "d_activation": "lrelu",
    },
}
# Further overrides of a tiny run: the progan model trains step 0 at 4 px and step 1 at its final 32 px.
# progan: straight to 32 px; Adam at the paper's 1e-3 (the preset's 1.5e-3 pushes this 4-channel net's few
# steps to outputs whose fp32 ORT-vs-torch gap, 1.1e-4, sits on the exporter's 1e-4 float limit)
TINY_OVERRIDES = {
    # began: the preset's latent constraint compares D's code with z, so z is as small as the tiny code
    "mnist-began": {"latent_dim": 8},
    # infogan: step 0 trains the clusterer, step 1 G and D (D projecting the clusters of the reals)
    "mnist-infogan": {"family_params": {"self_condition": True, "cluster_steps": 1, "cluster_width": 4}},
    # selfcond: step 0 trains the clusterer, step 1 G and D (conditioned on the clusters of the reals)
    "mnist-sngan": {"family_params": {"cluster_steps": 1, "cluster_width": 4}},
    "mnist-dcgan": {"family_params": {"cluster_steps": 1, "cluster_width": 4}},
    "mnist-progan": {
        "family_params": {"stable_steps": [1, 0, 0], "fade_steps": [0, 0, 0]},
        "lr_g": 1e-3,
        "lr_d": 1e-3,
    },
}

# Variants of a preset the suite trains beside the preset itself (name -> (preset, overrides)). UNCOND is
# the plain unconditional generator (z in, images out) that the export, service and augmentation tests
# read as "an unconditional model": mnist-dcgan as Radford et al. trained it, the `--set family=gan` its
# preset file documents (the preset itself is self-conditioned and declares a `cluster` input).
UNCOND = "dcgan-paper"
TINY_VARIANTS = {UNCOND: ("mnist-dcgan", {"family": "gan", "family_params": {}, "diversity_weight": 0.0})}

# The paired image-to-image (repair / super-resolution) presets at a tiny size: arch_params, and the
# family_params merged over the preset's (the tiny digits are MNIST's, so the feature loss may use the
# shipped MNIST evaluator; no evaluator is bound to the 2k-digit set).
TINY_REPAIR_ARCH = {"g_width": 4, "g_blocks": 1, "d_width": 4, "d_layers": 1}
TINY_REPAIR = {
    "mnist-sr4": {"feature_evaluator": "mnist"},
    "mnist-inpaint": {},
    "mnist-restore": {},
}

# The two-dataset (translation) presets at a tiny size: batch 4, as a step runs four nets on each side.
TINY_CYCLEGAN = {"g_width": 4, "g_blocks": 1, "d_width": 4, "d_layers": 1}
TINY_TRANSLATION = {"mnist-cyclegan": TINY_CYCLEGAN}

MISSING_TINY = (
    "add its tiny arch_params (widths 4-8, as the others) to TINY_ARCH in tests/conftest.py, and to "
    "TINY_OVERRIDES whatever else 2 steps of batch 16 need, so the suite trains, exports (with parity), "
    "serves and augments it"
)


# ---- the suite follows the registries: presets (training/presets/) and families (training/registry) ----
@functools.cache
def preset_family(name: str) -> type:
    """The family class that trains registered preset `name`."""
    from training.config import preset
    from training.registry import get_family

    return get_family(preset(name).family)


def mnist_presets() -> list[str]:
    """Every registered mnist-* preset; the other presets are its data-agnostic variants (sized from the data)."""
    from training.presets import PRESETS

    return sorted(n for n in PRESETS if n.startswith("mnist-"))


def generative_presets() -> list[str]:
    """Every mnist-* preset of a family that makes images from latents (not image-to-image): what tiny_checkpoint
    trains and the family tests export with parity, serve and feed to the augmentation job."""
    return [n for n in mnist_presets() if not preset_family(n).takes_images]


def repair_presets() -> list[str]:
    """Every mnist-* preset of a paired image-to-image family (one dataset, damaged on the fly: repair and
    super-resolution): trained at TINY_REPAIR sizes by tiny_checkpoint, exported, served by /restore, /upscale."""
    return [n for n in mnist_presets() if preset_family(n).takes_images and not preset_family(n).needs_data_b]


def translation_presets() -> list[str]:
    """Every mnist-* preset of an image-to-image family (two datasets): trained by its own fixtures below."""
    return [n for n in mnist_presets() if preset_family(n).needs_data_b]


def family_presets() -> dict[str, str]:
    """family name -> its first mnist-* preset, for every family that a registered preset trains."""
    out: dict[str, str] = {}
    for n in mnist_presets():
        out.setdefault(preset_family(n).name, n)
    return dict(sorted(out.items()))


def tiny_config(name: str, out, **overrides):
    """Preset `name` at its tiny size (TINY_ARCH and TINY_OVERRIDES; TINY_REPAIR; TINY_TRANSLATION at batch 4):
    2 steps on one thread, plus `overrides`."""
    from training.config import preset

    if name in TINY_VARIANTS:
        base, extra = TINY_VARIANTS[name]
        return tiny_config(base, out, **{**extra, **overrides})
    if name in TINY_TRANSLATION:
        fields = dict(steps=2, batch_size=4, arch_params=TINY_TRANSLATION[name], threads=1, eval_every=0)
        return preset(name, out=str(out), **{**fields, **overrides})
    if name in TINY_REPAIR:
        params = {**preset(name).family_params, **TINY_REPAIR[name], **overrides.pop("family_params", {})}
        fields = dict(steps=2, batch_size=16, arch_params=TINY_REPAIR_ARCH, threads=1, eval_every=0)
        return preset(name, out=str(out), **{**fields, **overrides, "family_params": params})
    if name not in TINY_ARCH:
        raise KeyError(f"{name}: no tiny size; {MISSING_TINY}")
    fields = dict(steps=2, batch_size=16, arch_params=TINY_ARCH[name], threads=1, eval_every=0)
    return preset(name, out=str(out), **{**fields, **TINY_OVERRIDES.get(name, {}), **overrides})


@pytest.fixture(scope="session")
def tiny_checkpoint(mnist_small, tmp_path_factory):
    """preset name -> path of its checkpoint (trained 2 steps with tiny widths), cached per session."""
    from gan_core.datasets import load_dataset
    from training.trainer import Trainer

    ds = load_dataset(mnist_small)
    made = {}

    def make(name: str):
        if name not in made:
            cfg = tiny_config(name, tmp_path_factory.mktemp(name))
            made[name] = Trainer(cfg, ds, progress=False).train().checkpoint
        return made[name]

    return make


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory):
    """preset name -> (checkpoint, fp32 .onnx, card written) of its tiny model, exported once."""
    from export import export_checkpoint

    made = {}

    def make(name: str):
        if name not in made:
            ckpt = tiny_checkpoint(name)
            out = tmp_path_factory.mktemp("onnx") / f"{name}.onnx"
            made[name] = (ckpt, out, export_checkpoint(ckpt, out))
        return made[name]

    return make


@pytest.fixture(scope="session")
def cdcgan_onnx(tiny_onnx):
    """(checkpoint, fp32 .onnx, card written) of the tiny conditional DCGAN."""
    return tiny_onnx("mnist-cdcgan")


@pytest.fixture(scope="session")
def cond_onnx(tiny_onnx):
    return tiny_onnx("mnist-cdcgan")[1]


@pytest.fixture(scope="session")
def uncond_onnx(tiny_onnx):
    return tiny_onnx(UNCOND)[1]


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, cond_onnx, uncond_onnx):
    """A models folder as the service sees it: one conditional and one unconditional generator."""
    import shutil

    d = tmp_path_factory.mktemp("served")
    shutil.copy(cond_onnx, d / "mnist-cdcgan.onnx")
    shutil.copy(uncond_onnx, d / "mnist-dcgan.onnx")
    return d


@pytest.fixture(scope="session")
def family_routes_dir(tmp_path_factory, models_dir, tiny_onnx, cyclegan_onnx):
    """models_dir plus a model for each family route: tiny InfoGAN (codes, /traverse), StyleGAN
    (/mix), the CycleGAN pair (/translate) and the repair presets (/restore, /upscale)."""
    import shutil

    d = tmp_path_factory.mktemp("family-routes")
    for path in models_dir.glob("*.onnx"):
        shutil.copy(path, d / path.name)
    for name in ("mnist-infogan", "mnist-stylegan"):
        shutil.copy(tiny_onnx(name)[1], d / f"{name}.onnx")
    for path, _ in cyclegan_onnx.values():
        shutil.copy(path, d / path.name)
    for name in repair_presets():
        shutil.copy(tiny_onnx(name)[1], d / f"{name}.onnx")
    return d


# ---- image-to-image (CycleGAN) ---------------------------------------------------------------


@pytest.fixture(scope="session")
def domain_pair(mnist_train, mnist_dir, tmp_path_factory):
    """A tiny MNIST <-> thick-MNIST pair (gan make-domain-pair on 2,000 train / 400 test digits): PAIR/a, PAIR/b."""
    import numpy as np

    from gan_core.datasets import load_dataset
    from gan_core.domain_pair import make_domain_pair

    root = tmp_path_factory.mktemp("pair")
    test = load_dataset(mnist_dir, "test")
    np.savez(root / "train.npz", images=mnist_train.images[:2000, 0], labels=mnist_train.labels[:2000])
    np.savez(root / "test.npz", images=test.images[:400, 0], labels=test.labels[:400])
    make_domain_pair(root, root / "pair")
    return root / "pair"


@pytest.fixture(scope="session")
def cyclegan_checkpoint(domain_pair, tmp_path_factory):
    """The mnist-cyclegan preset at tiny widths, trained 3 steps on the tiny pair: its checkpoint."""
    from gan_core.datasets import load_dataset
    from training.trainer import Trainer

    cfg = tiny_config("mnist-cyclegan", tmp_path_factory.mktemp("cyclegan"), steps=3, log_every=1,
                      data=str(domain_pair / "a"), data_b=str(domain_pair / "b"))  # fmt: skip
    ds_a, ds_b = load_dataset(domain_pair / "a"), load_dataset(domain_pair / "b")
    return Trainer(cfg, ds_a, progress=False, ds_b=ds_b).train().checkpoint


@pytest.fixture(scope="session")
def cyclegan_onnx(cyclegan_checkpoint, tmp_path_factory):
    """direction -> (.onnx, card) of the tiny CycleGAN, as `gan export CKPT --out D/mnist-cyclegan.onnx` writes them."""
    from gan.cli import main
    from gan_core.card_files import read_card

    d = tmp_path_factory.mktemp("cyclegan-onnx")
    assert (
        main(["export", str(cyclegan_checkpoint), "--out", str(d / "mnist-cyclegan.onnx"), "--threads", "1"])
        == 0
    )
    return {
        k: (d / f"mnist-cyclegan-{k}.onnx", read_card(d / f"mnist-cyclegan-{k}.onnx")) for k in ("a2b", "b2a")
    }
