"""Numbers that judge a model: perplexity, accuracy, F1, BLEU, and ``show`` for a notebook's headline numbers.

``show(label, value, name=...)`` is how every headline number leaves a notebook: it prints
``label: value`` for the learner and, when the environment variable ``COURSE_METRICS_FILE`` names a
file, appends one JSON line ``{"name": ..., "value": ...}`` to it (``record`` writes that line), so a
whole run of the course can be measured without parsing prose::

    COURSE_METRICS_FILE=metrics.jsonl pytest notebooks/
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence

import torch

from course_lib import _validate as validate

__all__ = ["METRICS_FILE_ENV", "accuracy", "bleu", "confusion_matrix", "f1_scores", "perplexity", "record", "show"]

METRICS_FILE_ENV = "COURSE_METRICS_FILE"
_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")


def perplexity(mean_nll: float | torch.Tensor) -> float:
    """Perplexity from a mean negative log-likelihood per token, in nats: ``exp(mean_nll)``.

    Args:
        mean_nll: the mean cross-entropy loss per token (a float or a 0-dim tensor), as returned
            by ``torch.nn.functional.cross_entropy`` with its default ``reduction="mean"``.

    Returns:
        A float >= 1. A uniform guess over a vocabulary of V tokens has perplexity V.
    """
    if isinstance(mean_nll, torch.Tensor):
        if mean_nll.numel() != 1:
            raise ValueError(
                "perplexity expected the mean loss (a single number), got a tensor of shape "
                f"{tuple(mean_nll.shape)}; average it first, e.g. loss.mean()"
            )
        mean_nll = mean_nll.item()
    mean_nll = validate.number(mean_nll, "mean_nll (the mean negative log-likelihood, in nats)", "perplexity", low=0)
    # exp overflows a float past ~709 nats; such a model is infinitely perplexed anyway.
    return math.exp(mean_nll) if mean_nll < 709 else math.inf


def accuracy(
    predictions: torch.Tensor, targets: torch.Tensor, *, ignore_index: int | None = None
) -> float:
    """Fraction of positions where the prediction equals the target.

    Args:
        predictions: either class ids of the same shape as ``targets``, or scores/logits of shape
            ``targets.shape + (num_classes,)`` (the arg-max is taken over the last dimension).
        targets: integer class ids, any shape, e.g. (batch,) or (batch, seq).
        ignore_index: a target value to leave out (e.g. -100 for unmasked MLM positions).

    Returns:
        A float in [0, 1].
    """
    if not isinstance(predictions, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise TypeError(
            "accuracy expected two tensors, got "
            f"{type(predictions).__name__} and {type(targets).__name__}"
        )
    if targets.is_floating_point():
        raise TypeError(f"accuracy expected integer class ids as targets, got dtype {targets.dtype}")
    if predictions.shape == targets.shape + predictions.shape[-1:] and predictions.dim() == targets.dim() + 1:
        predictions = predictions.argmax(dim=-1)
    elif predictions.shape != targets.shape:
        raise ValueError(
            "accuracy expected predictions of shape targets.shape "
            f"{tuple(targets.shape)} (class ids) or {tuple(targets.shape) + ('num_classes',)} "
            f"(scores), got {tuple(predictions.shape)}"
        )
    keep = torch.ones_like(targets, dtype=torch.bool)
    if ignore_index is not None:
        keep = targets != ignore_index
    counted = int(keep.sum())
    if counted == 0:
        raise ValueError("accuracy has no positions to count: every target is ignored or empty")
    correct = int(((predictions == targets) & keep).sum())
    return correct / counted


def confusion_matrix(targets: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts of (true class, predicted class): ``matrix[i, j]`` = examples of class i predicted j.

    Args:
        targets: ``(n,)`` true class ids in ``[0, num_classes)``.
        predictions: ``(n,)`` predicted class ids.
        num_classes: the number of classes (rows and columns).

    Returns:
        A ``(num_classes, num_classes)`` int64 tensor; the diagonal holds the right answers.
    """
    num_classes = validate.positive_int(num_classes, "num_classes", "confusion_matrix")
    targets, predictions = torch.as_tensor(targets), torch.as_tensor(predictions)
    if targets.shape != predictions.shape or targets.dim() != 1:
        raise ValueError(
            "confusion_matrix expected two (n,) tensors of class ids, got shapes "
            f"{tuple(targets.shape)} and {tuple(predictions.shape)}"
        )
    if targets.is_floating_point() or predictions.is_floating_point():
        raise TypeError("confusion_matrix expected integer class ids (take .argmax(-1) of scores first)")
    for name, ids in (("targets", targets), ("predictions", predictions)):
        if ids.numel() and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(f"confusion_matrix: {name} hold ids outside [0, {num_classes})")
    codes = targets.long() * num_classes + predictions.long()
    return torch.bincount(codes, minlength=num_classes * num_classes).view(num_classes, num_classes)


def f1_scores(confusion: torch.Tensor) -> dict[str, object]:
    """Precision, recall and F1 of every class, and their macro average, from a confusion matrix.

    For class c: precision = right c / predicted c (column sum), recall = right c / true c (row
    sum), F1 = their harmonic mean; a class never predicted (or never present) scores 0 there.
    Macro F1 is the plain mean of the per-class F1s: every class counts the same, however rare.

    Returns:
        ``{"precision", "recall", "f1"}`` as ``(num_classes,)`` float tensors and ``"macro_f1"`` a float.
    """
    confusion = torch.as_tensor(confusion)
    if confusion.dim() != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"f1_scores expected a square (classes, classes) matrix, got {tuple(confusion.shape)}")
    confusion = confusion.double()
    right = confusion.diagonal()
    predicted, true = confusion.sum(0), confusion.sum(1)
    precision = torch.where(predicted > 0, right / predicted.clamp_min(1), torch.zeros_like(right))
    recall = torch.where(true > 0, right / true.clamp_min(1), torch.zeros_like(right))
    both = precision + recall
    f1 = torch.where(both > 0, 2 * precision * recall / both.clamp_min(1e-12), torch.zeros_like(right))
    return {"precision": precision.float(), "recall": recall.float(), "f1": f1.float(), "macro_f1": float(f1.mean())}


def bleu(hypotheses: Sequence[str], references: Sequence[str], *, tokenize: str = "13a") -> float:
    """Corpus BLEU (0-100) of ``hypotheses`` against one reference each, computed by sacrebleu.

    Args:
        hypotheses: the system's outputs, one string per example.
        references: the expected outputs, one string per example, in the same order.
        tokenize: sacrebleu's tokenizer (``"13a"``, its default; ``"char"`` scores characters,
            useful for outputs without spaces).

    Returns:
        BLEU in [0, 100], as reported in papers.
    """
    import sacrebleu  # imported here: only the notebooks that translate need it

    for name, seq in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(seq, str) or not all(isinstance(s, str) for s in seq):
            raise TypeError(f"bleu expected {name} as a list of strings, got {type(seq).__name__}")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"bleu expected one reference per hypothesis, got {len(hypotheses)} hypotheses and "
            f"{len(references)} references"
        )
    if not hypotheses:
        raise ValueError("bleu needs at least one hypothesis")
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize).score)


def record(name: str, value: float | int | torch.Tensor) -> float:
    """Record a headline number: append ``{"name": name, "value": value}`` as one JSON line.

    Writes to the file named by ``COURSE_METRICS_FILE`` when it is set, and does nothing
    otherwise, so notebooks call it unconditionally.

    Args:
        name: a short identifier such as ``"gpt_val_perplexity"`` (letters, digits, ``_.-``).
        value: a finite real number (a 1-element tensor is accepted).

    Returns:
        The value as a float, so ``print(record("acc", acc))`` shows what was recorded.
    """
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(
            "record expected a name like 'gpt_val_perplexity' (a letter, then letters, digits, "
            f"'_', '.' or '-'), got {name!r}"
        )
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"record expected a single number, got a tensor of shape {tuple(value.shape)}"
            )
        value = value.item()
    value = validate.number(value, f"a number for {name!r}", "record")
    if not math.isfinite(value):
        raise ValueError(f"record expected a finite number for {name!r}, got {value}")
    path = os.environ.get(METRICS_FILE_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": name, "value": value}) + "\n")
    return value


def show(label: str, value: float | int | torch.Tensor, *, name: str, fmt: str = ".3f", unit: str = "") -> float:
    """Print a headline number for the learner as ``label: value unit`` and :func:`record` it.

    Args:
        label: what the number is, in words (``"validation perplexity"``).
        value: a finite real number (a 1-element tensor is accepted).
        name: the identifier it is recorded under (``"gpt_val_perplexity"``); see :func:`record`.
        fmt: a format specification for the value (``".3f"``, ``".1%"``, ``",.0f"``).
        unit: printed after the value (``"s"``, ``"nats/token"``), empty for none.

    Returns:
        The value as a float, so ``accuracy = show("test accuracy", acc, name="acc")`` keeps it.
    """
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"show expected a label in words, such as 'validation perplexity', got {label!r}")
    try:
        format(1.0, fmt)
    except (TypeError, ValueError):
        raise ValueError(f"show expected a format for a number, such as '.3f' or '.1%', got {fmt!r}") from None
    value = record(name, value)  # checks the name and the value before anything is printed
    text = format(value, fmt)
    print(f"{label}: {text}{' ' + unit if unit else ''}")
    return value
