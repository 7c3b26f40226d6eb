"""Measure a generator (checkpoint, run folder, .onnx) or an image set (.npz, image/IDX folder).

One module per job: the evaluator network, its card and its training (classifier), which evaluator
measures which data and the user's store of trained ones (store), the shipped evaluators (weights/),
what gets sampled (sampling), the real reference and its cache (reference), the metrics report
(report), where results go (results), quick evaluation during training (quick), categorical codes
as classifiers (codes), image-to-image models (translation). The `gan` commands are
training/evaluate_cmd.py, training/evaluate_translation_cmd.py and training/train_evaluator_cmd.py.
"""

from training.evaluation.quick import QuickEval, attach_quick_eval
from training.evaluation.reference import Reference, cache_dir, fid_floor, real_reference
from training.evaluation.report import (
    classification_accuracy_score,
    evaluate_samples,
    evaluate_target,
    measure,
)
from training.evaluation.results import card_metrics, summary_line, write_card_metrics, write_report
from training.evaluation.sampling import Samples, sample_generator, sample_target, subset_indices, target_kind

__all__ = [
    "QuickEval", "Reference", "Samples", "attach_quick_eval", "cache_dir", "card_metrics",
    "classification_accuracy_score", "evaluate_samples", "evaluate_target", "fid_floor", "measure",
    "real_reference", "sample_generator", "sample_target", "subset_indices", "summary_line", "target_kind",
    "write_card_metrics", "write_report",
]  # fmt: skip
