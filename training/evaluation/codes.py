"""A categorical latent code as a classifier: which class each code value draws, and how often.

An InfoGAN's categorical code is learned without labels, so its values come in no particular
order. Each value is matched to one class by the best one-to-one assignment (Hungarian method,
scipy.optimize.linear_sum_assignment) on the evaluator's predictions for the generated images; the
accuracy is the share of images whose predicted class is their code value's class (the paper's
"5% error on MNIST" measure). The map goes into the card, where `gan augment --label-from code:NAME`
reads it to label the images it makes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from gan_core.card import ModelCard


def categorical_codes(card: ModelCard) -> list[str]:
    return [i.name for i in card.inputs if i.kind == "categorical"]


def code_assignment(
    codes: np.ndarray, predicted: np.ndarray, num_choices: int, class_names: Sequence[str]
) -> dict:
    """{"classes": {code value: class name}, "accuracy", "purity", "n", "confusion"} for one code.

    accuracy: one-to-one (each class used by at most one value); purity: each value's majority class
    (many-to-one, so two values drawing the same digit are not penalised: the gap shows a merge).
    """
    codes, predicted = np.asarray(codes, np.int64), np.asarray(predicted, np.int64)
    counts = np.zeros((num_choices, len(class_names)), np.int64)
    np.add.at(counts, (codes, predicted), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    n = len(codes)
    return {
        "classes": {str(int(r)): class_names[int(c)] for r, c in zip(rows, cols, strict=True)},
        "accuracy": float(counts[rows, cols].sum() / n) if n else 0.0,
        "purity": float(counts.max(1).sum() / n) if n else 0.0,
        "n": int(n),
        "confusion": counts.tolist(),
    }


def code_classes(
    card: ModelCard, codes: Mapping[str, np.ndarray], predicted: np.ndarray, class_names: Sequence[str]
) -> dict[str, dict]:
    """The assignment of every categorical code of the card (empty for models without one)."""
    out = {}
    for name in categorical_codes(card):
        if name in codes:
            out[name] = code_assignment(codes[name], predicted, card.input(name).num_choices, class_names)
    return out
