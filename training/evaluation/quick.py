"""Quick evaluation during training with the evaluator of the run's own data; its collapse and divergence warnings.

The evaluator is the one bound to the run's dataset (its fingerprint); `--evaluator auto` trains
one first when there is none; without one the quick evaluation is off with a one-line note. It
never measures a run with an evaluator of other data, whatever its shape and class count.

Building the evaluator and measuring must not touch torch's global RNG: the training loop draws
from it (gradient-penalty mixing) and checkpoints it, so a draw made here at a different moment
in a resumed run than in a straight one would break bit-identical resume.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import torch

from training import metrics as M
from training.evaluation.classifier import EvaluationError, Evaluator, load_evaluator
from training.evaluation.codes import code_classes
from training.evaluation.reference import Reference, real_reference
from training.evaluation.report import measure
from training.evaluation.sampling import sample_generator
from training.evaluation.store import bound_evaluator, evaluation_splits, matches, train_for_data

log = logging.getLogger(__name__)


STALLED_PR = 0.05  # precision and recall both below this: the samples are nowhere near the data
STALLED_FID_DROP = 0.1  # ... and FID fell less than this fraction since the last evaluation (healthy: 20-45%)
STALLED_MIN_STEPS = 500  # ... at least this many steps earlier
# FID at this multiple of the run's best so far: the run is leaving its best samples behind. A healthy
# run's quick FID wanders ~10% about its plateau (n=2,000), so 1.5x is divergence, not noise.
DIVERGED_FID = 1.5


def rng_untouched():
    """A block after which torch's global RNG (CPU and CUDA) is where it was before."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    return torch.random.fork_rng(devices=devices)


class QuickEval:
    """Periodic small evaluation of a Trainer's inference generator against its own training data.

    The reference is `eval_n` training images, so numbers track progress within a run (FID at small
    n is biased upwards; compare only within one run). Warns when the run looks like collapsing.
    """

    def __init__(self, ev: Evaluator, n: int, seed: int = 0):
        self.ev, self.n, self.seed = ev, n, seed
        self.best: dict[str, Any] = {}  # best modes, coverage, accuracy and FID so far
        self.previous: dict[str, float] = {}  # the last evaluation's FID and step
        self.ref: Reference | None = None

    def __call__(self, trainer) -> dict[str, Any]:
        with rng_untouched():
            return self._measure(trainer)

    def _measure(self, trainer) -> dict[str, Any]:
        t0 = time.perf_counter()
        if self.ref is None:
            self.ref = real_reference(self.ev, trainer.ds, "train", self.n, self.seed)
        ref = self.ref
        g = trainer.inference_generator()
        card = trainer.card()
        images, labels, codes = sample_generator(g, card, self.n, self.seed)
        m = measure(self.ev, images, ref, labels if trainer.cfg.conditional else None)
        predicted = m.pop("_predicted")
        keys = ("evaluator", "n", "fid", "classifier_score", "precision", "recall", "density", "coverage")
        result = {k: m[k] for k in keys if k in m}
        if "modes" in m:
            result["modes_covered"] = m["modes"]["covered"]
            result["kl_to_data"] = m["modes"]["kl_to_data"]
        if "class_accuracy" in m:
            result["class_accuracy"] = m["class_accuracy"]
        if self.ev.measures_classes:
            for name, a in code_classes(card, codes, predicted, self.ev.card.class_names).items():
                result[f"code_accuracy.{name}"] = a["accuracy"]
        caveat = trainer.family.eval_caveat()
        result = {
            "source": "quick_eval",
            "reference": "train",
            **result,
            **({"caveat": caveat} if caveat else {}),
            "seconds": round(time.perf_counter() - t0, 2),
        }
        trainer.log.write({"step": trainer.step, "eval": result})
        if caveat:
            note(f"step {trainer.step}: quick evaluation {caveat}; collapse checks held meanwhile")
        for msg in self.collapse_warnings(result, trainer.step):
            warn(f"step {trainer.step}: {msg}")
        return result

    def collapse_warnings(self, r: dict[str, Any], step: int | None = None) -> list[str]:
        """Compare with the best values so far, then update them.

        An evaluation logged with a caveat (a growing G, whose samples are blurred on purpose) raises
        nothing and sets no best: training's quick evaluation and benchmarks/family_table.py's replay
        of metrics.jsonl both come here, so they agree.
        """
        if r.get("caveat"):
            return []
        msgs, best = [], self.best
        # Collapse from the start has no "best" to fall from: realistic samples (precision) that
        # cover almost none of the real data (recall) mean the generator ignores its latent.
        if r.get("precision", 0.0) > 0.5 and r.get("recall", 1.0) < 0.05:
            msgs.append(
                f"mode collapse: samples look real (precision {r['precision']:.2f}) but cover almost no real "
                f"data (recall {r['recall']:.2f}); the generator may be ignoring z (try diversity_weight)"
            )
        # Collapse before learning anything: samples are neither realistic nor spread over the data,
        # and FID has stopped falling. A slow but healthy start is as unrealistic, but its FID falls
        # from one evaluation to the next (by 20-45% between the first two in every run measured).
        # Too few steps apart, no generator moves far: the evaluations must be STALLED_MIN_STEPS apart.
        last_fid, fid = self.previous.get("fid"), r.get("fid")
        if (
            last_fid is not None
            and step is not None
            and step - self.previous["step"] >= STALLED_MIN_STEPS
            and fid is not None
            and r.get("precision", 1.0) < STALLED_PR
            and r.get("recall", 1.0) < STALLED_PR
            and fid > (1 - STALLED_FID_DROP) * last_fid
        ):
            msgs.append(
                f"mode collapse: nothing realistic (precision {r['precision']:.2f}, recall "
                f"{r['recall']:.2f}) and FID not falling ({last_fid:.1f} -> {fid:.1f}); the generator "
                "collapsed before it learned (try loss ns or diversity_weight)"
            )
        msgs += divergence_warnings(best, last_fid, fid, step)
        if "modes_covered" in best and r["modes_covered"] < best["modes_covered"]:
            msgs.append(
                f"possible mode collapse: modes covered fell to {r['modes_covered']} (best {best['modes_covered']})"
            )
        if "coverage" in best and best["coverage"] > 0.1 and r["coverage"] < 0.5 * best["coverage"]:
            msgs.append(
                f"possible mode collapse: coverage fell to {r['coverage']:.3f} (best {best['coverage']:.3f})"
            )
        if (
            "class_accuracy" in r
            and "class_accuracy" in best
            and r["class_accuracy"] < best["class_accuracy"] - 0.1
        ):
            msgs.append(
                f"class accuracy fell to {r['class_accuracy']:.3f} (best {best['class_accuracy']:.3f})"
            )
        for key in ("modes_covered", "coverage", "class_accuracy"):
            if key in r:
                best[key] = max(best.get(key, r[key]), r[key])
        if fid is not None and step is not None:
            self.previous = {"fid": fid, "step": step}
        return msgs


def divergence_warnings(
    best: dict[str, Any], last_fid: float | None, fid: float | None, step: int | None
) -> list[str]:
    """Warn when FID climbs past DIVERGED_FID x its best, once per excursion: not again while the last
    evaluation (`last_fid`) was past it too."""
    if fid is None:
        return []
    best_fid = best.get("fid")
    if best_fid is None or fid < best_fid:
        best["fid"], best["fid_step"] = fid, step
        return []
    limit = DIVERGED_FID * best_fid
    if fid <= limit or (last_fid is not None and last_fid > limit):
        return []
    at = f" at step {best['fid_step']:,}" if best.get("fid_step") is not None else ""
    return [
        f"instability: FID rose to {fid:.1f}, {fid / best_fid:.1f}x its best ({best_fid:.1f}{at}); the run "
        "is moving away from its best samples (try lower learning rates or lr_decay_from)"
    ]


def warn(msg: str) -> None:
    log.warning(msg)
    try:
        from tqdm import tqdm

        tqdm.write(f"WARNING: {msg}")
    except ImportError:
        pass


def note(msg: str) -> None:
    """One line on stderr about how the run is measured."""
    print(f"note: {msg}", file=sys.stderr)


def _train_run_evaluator(trainer) -> Evaluator:
    """`--evaluator auto`: train the evaluator of the run's data (its own test split when it has one)."""
    from gan_core.preprocess import Preprocess

    cfg, ds = trainer.cfg, trainer.ds
    prep = Preprocess(cfg.image_size, cfg.fit, cfg.channels)
    note(f"training an evaluator for {ds.name} first (--evaluator auto)")
    source = cfg.data
    if evaluation_splits(source, prep).full.fingerprint() != ds.fingerprint():
        source = ds  # data handed over in memory: hold out part of it
    card, stem = train_for_data(source, prep, epochs=cfg.evaluator_epochs, threads=cfg.threads)
    note(f"evaluator {card.id}: test accuracy {card.test_accuracy:.4f} ({card.task}); saved as {stem}.json")
    return load_evaluator(stem)


def attach_quick_eval(trainer, evaluator: str | None = None) -> QuickEval | None:
    """Set `trainer.quick_eval` with the evaluator of the run's own data, else print why it is off.

    evaluator (default: the run config's `evaluator`): None / 'bound' = the one bound to the data,
    if any; 'auto' = that one, else train one first; 'off'; or a name / path stem, which must be
    bound to this data.
    """
    ds, cfg = trainer.ds, trainer.cfg
    choice = evaluator or getattr(cfg, "evaluator", None) or "bound"
    if not trainer.dist.is_main:  # only rank 0 evaluates (and would train the evaluator)
        return None
    if any(i.kind == "image" for i in trainer.family.card_inputs()):
        note("quick evaluation off: image-to-image models are measured with gan evaluate-translation")
        return None
    if choice == "off":
        note("quick evaluation off (--evaluator off)")
        return None
    if len(ds) <= M.NN_K:
        note(f"quick evaluation off: the dataset holds only {len(ds)} images")
        return None
    with rng_untouched():  # building (or training) the evaluator draws initial weights
        if choice in ("bound", "auto"):
            ev = bound_evaluator(ds.fingerprint())
            if ev is None and choice == "auto":
                ev = _train_run_evaluator(trainer)
            if ev is None:
                note(
                    f"quick evaluation off: no evaluator is bound to {ds.name} (fingerprint {ds.fingerprint()}); "
                    f"--evaluator auto trains one first, or run `gan train-evaluator --data {cfg.data or ds.source}`"
                )
                return None
        else:
            ev = load_evaluator(choice)
            if not matches(ev, ds):
                b = ev.card.dataset
                raise EvaluationError(
                    f"--evaluator {choice}: {ev.id} is bound to {b.name if b else 'unrecorded data'} "
                    f"({b.fingerprint if b else '?'}), not to this run's data {ds.name} ({ds.fingerprint()}); "
                    "quick evaluation only uses the evaluator of the run's own data"
                )
    qe = QuickEval(ev, min(cfg.eval_n, len(ds)))
    trainer.quick_eval = qe
    note(f"quick evaluation every {cfg.eval_every} steps with evaluator {ev.id} (bound to {ds.name})")
    return qe
