"""Quick evaluation during training, and the collapse warnings it prints."""

from __future__ import annotations

import logging
import time
from typing import Any

from training import metrics as M
from training.evaluation.reference import Reference, real_reference
from training.evaluation.report import measure
from training.evaluation.sampling import sample_generator
from training.evaluator import Evaluator, find_evaluator

log = logging.getLogger(__name__)


class QuickEval:
    """Periodic small evaluation of a Trainer's inference generator against its own training data.

    The reference is `eval_n` training images, so numbers track progress within a run (FID at small
    n is biased upwards; compare only within one run). Warns when the run looks like collapsing.
    """

    def __init__(self, ev: Evaluator, n: int, seed: int = 0):
        self.ev, self.n, self.seed = ev, n, seed
        self.best: dict[str, float] = {}
        self.ref: Reference | None = None

    def __call__(self, trainer) -> dict[str, Any]:
        t0 = time.perf_counter()
        if self.ref is None:
            self.ref = real_reference(self.ev, trainer.ds, "train", self.n, self.seed)
        ref = self.ref
        g = trainer.inference_generator()
        images, labels = sample_generator(g, trainer.card(), self.n, self.seed)
        m = measure(self.ev, images, ref, labels if trainer.cfg.conditional else None)
        m.pop("_predicted")
        result = {
            k: m[k]
            for k in (
                "evaluator",
                "n",
                "fid",
                "classifier_score",
                "precision",
                "recall",
                "density",
                "coverage",
            )
        }
        result["modes_covered"] = m["modes"]["covered"]
        result["kl_to_data"] = m["modes"]["kl_to_data"]
        if "class_accuracy" in m:
            result["class_accuracy"] = m["class_accuracy"]
        result = {
            "source": "quick_eval",
            "reference": "train",
            **result,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        trainer.log.write({"step": trainer.step, "eval": result})
        for msg in self.collapse_warnings(result):
            warn(f"step {trainer.step}: {msg}")
        return result

    def collapse_warnings(self, r: dict[str, Any]) -> list[str]:
        """Compare with the best values so far, then update them."""
        msgs, best = [], self.best
        # Collapse from the start has no "best" to fall from: realistic samples (precision) that
        # cover almost none of the real data (recall) mean the generator ignores its latent.
        if r.get("precision", 0.0) > 0.5 and r.get("recall", 1.0) < 0.05:
            msgs.append(
                f"mode collapse: samples look real (precision {r['precision']:.2f}) but cover almost no real "
                f"data (recall {r['recall']:.2f}); the generator may be ignoring z (try diversity_weight)"
            )
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
        return msgs


def warn(msg: str) -> None:
    log.warning(msg)
    try:
        from tqdm import tqdm

        tqdm.write(f"WARNING: {msg}")
    except ImportError:
        pass


def attach_quick_eval(trainer) -> QuickEval | None:
    """Set `trainer.quick_eval` when a shipped evaluator measures the trainer's data; else skip with a log note."""
    ds = trainer.ds
    if any(i.kind == "image" for i in trainer.family.card_inputs()):
        log.info("quick evaluation skipped: image-to-image models are measured with gan evaluate-translation")
        return None
    ev = find_evaluator(ds.image_shape, ds.num_classes)
    if ev is None:
        log.info(
            "quick evaluation skipped: no evaluator for images %s with %d classes",
            ds.image_shape,
            ds.num_classes,
        )
        return None
    if len(ds) <= M.NN_K:
        log.info("quick evaluation skipped: dataset too small (%d images)", len(ds))
        return None
    qe = QuickEval(ev, min(trainer.cfg.eval_n, len(ds)))
    trainer.quick_eval = qe
    return qe
