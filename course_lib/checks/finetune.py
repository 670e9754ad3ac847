"""Checkers for notebook 11 (fine-tuning and evaluation): the confusion matrix, macro F1, early stopping.

The confusion-matrix and F1 cases hold a class that never occurs or is never predicted, the case
where the common mistakes (a matrix sized by the largest id seen, NaN for an empty class) show;
the F1 matrices are imbalanced, so macro, micro and support-weighted F1 all differ. The
early-stopping cases are loss curves on which each misreading of the rule stops at a different
evaluation.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence

import numpy as np
import torch

from course_lib.checks.core import Mistake, Verdict, run_checker

__all__ = ["confusion_matrix", "macro_f1", "early_stopping_point"]


def _as_tensor(value, what: str) -> torch.Tensor:
    """A tensor (or a numpy array, or nested lists of numbers) as a float64 tensor."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double()
    if isinstance(value, np.ndarray | list | tuple):
        try:
            return torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            pass
    raise Mistake(f"{what} should return a torch.Tensor, it returned a {type(value).__name__}.")


def _show(matrix: torch.Tensor) -> str:
    """A small matrix as nested lists, integers where the values are whole."""
    if torch.isfinite(matrix).all() and torch.equal(matrix, matrix.round()):
        return str(matrix.long().tolist())
    return str([[round(v, 3) for v in row] for row in matrix.tolist()])


# ---- exercise 1: the confusion matrix -----------------------------------------------------------
def _normalised(counts: torch.Tensor, by: torch.Tensor) -> torch.Tensor:
    return torch.where(by > 0, counts / by.clamp_min(1), torch.zeros_like(counts))


def confusion_matrix(fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> Verdict:
    """Check ``fn(targets, predictions, num_classes)``: a ``(num_classes, num_classes)`` matrix of counts,
    ``matrix[i, j]`` = the number of examples of true class i predicted as class j."""

    def check() -> str:
        from course_lib.metrics import confusion_matrix as library

        gen = torch.Generator().manual_seed(9)
        # class 3 of 4 never occurs, neither as a target nor as a prediction; pairs repeat
        small_t = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 0, 1])
        small_p = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0, 0, 1])
        big_t = torch.randint(0, 6, (300,), generator=gen)
        big_p = torch.where(torch.rand(300, generator=gen) < 0.6, big_t, torch.randint(0, 6, (300,), generator=gen))
        big_t[big_t == 4], big_p[big_p == 4] = 5, 2  # class 4 of 7: never seen; class 6 neither
        cases = [(small_t, small_p, 4), (big_t, big_p, 7)]
        for targets, predictions, num_classes in cases:
            t_in, p_in = targets.clone(), predictions.clone()
            out = _as_tensor(fn(t_in, p_in, num_classes), "confusion_matrix")
            if not (torch.equal(t_in, targets) and torch.equal(p_in, predictions)):
                raise Mistake(
                    "your function changed targets or predictions in place (e.g. a sort_ or an "
                    "in-place shift); the caller's tensors must come back as they went in: work on copies."
                )
            right = library(targets, predictions, num_classes).double()
            n = num_classes
            if out.shape != right.shape:
                seen = int(max(targets.max(), predictions.max())) + 1
                if out.dim() == 2 and out.shape[0] == out.shape[1] == seen:
                    raise Mistake(
                        f"expected a ({n}, {n}) matrix, got shape {tuple(out.shape)}: it is sized by the "
                        f"largest class id seen ({seen - 1}) + 1, but some classes never occur in "
                        f"this test. Size it by num_classes ({n}): every class gets its row and column."
                    )
                raise Mistake(
                    f"expected a ({n}, {n}) matrix (num_classes rows and columns), got shape {tuple(out.shape)}."
                )
            if torch.isnan(out).any():
                raise Mistake(
                    "your matrix holds NaN (did you divide by a row or column sum of 0?): it should "
                    f"hold counts. Expected {_show(right)}."
                )
            if torch.equal(out, right):
                continue
            if torch.equal(out, right.T):
                raise Mistake(
                    "the matrix is transposed: yours has the predicted class on the rows. Rows are the "
                    f"true class, columns the predicted one: matrix[targets[k], predictions[k]] += 1. "
                    f"Expected {_show(right)}, got {_show(out)}."
                )
            for by, how in (
                (right.sum(1, keepdim=True), "each row divided by its sum (recall-normalised)"),
                (right.sum(0, keepdim=True), "each column divided by its sum"),
                (right.sum(), "divided by the number of examples"),
            ):
                if torch.allclose(out, _normalised(right, by), atol=1e-4):
                    raise Mistake(
                        f"those are fractions, {how}; return the counts themselves (integers). "
                        f"Expected {_show(right)}, got {_show(out)}."
                    )
            if torch.equal(out, (right > 0).double()):
                raise Mistake(
                    "every cell holds 0 or 1: repeated (true, predicted) pairs are counted once. "
                    "matrix[targets, predictions] += 1 does not add up repeated index pairs; use "
                    "index_put_(..., accumulate=True), torch.bincount, or a loop over the examples. "
                    f"Expected {_show(right)}, got {_show(out)}."
                )
            if torch.equal(out.sum(), right.sum()):
                raise Mistake(
                    f"the counts add up to the {int(right.sum())} examples but sit in the wrong cells: "
                    f"matrix[i, j] counts the examples of true class i predicted as j. Expected "
                    f"{_show(right)}, got {_show(out)}."
                )
            raise Mistake(
                f"expected {_show(right)} (matrix[i, j] = examples of true class i predicted as j), "
                f"got {_show(out)}."
            )
        return "counts of (true class, predicted class), rows true, every class included."

    return run_checker("confusion_matrix", check)


# ---- exercise 2: macro F1 -----------------------------------------------------------------------
def _as_number(value, what: str, per_class: torch.Tensor) -> float:
    """A float from a Python number, a one-element tensor or array; several numbers are a Mistake."""
    if isinstance(value, bool):
        raise Mistake(f"{what} should return a number, it returned a bool.")
    if isinstance(value, torch.Tensor | np.ndarray | list | tuple):
        array = _as_tensor(value, what)
        if array.numel() != 1:
            if array.shape == per_class.shape and torch.allclose(array, per_class.double(), atol=1e-4):
                raise Mistake(
                    f"you returned the per-class F1 ({array.numel()} numbers, "
                    f"{[round(v, 4) for v in array.tolist()]}): macro F1 is their mean, one number."
                )
            raise Mistake(f"return one number (the macro F1), got {array.numel()} numbers of shape {tuple(array.shape)}.")
        return float(array.item())
    try:
        return float(value)
    except (TypeError, ValueError):
        raise Mistake(f"{what} should return a number (a float), it returned a {type(value).__name__}.") from None


def macro_f1(fn: Callable[[torch.Tensor], float]) -> Verdict:
    """Check ``fn(confusion)``: the macro-averaged F1 of a square confusion matrix (rows true class,
    columns predicted), a class never predicted or never present scoring F1 = 0."""

    def check() -> str:
        from course_lib.metrics import f1_scores

        matrices = [
            # imbalanced; class 3 has 6 examples and is never predicted
            torch.tensor([[50, 3, 2, 0], [10, 5, 5, 0], [4, 1, 8, 0], [2, 3, 1, 0]]),
            # class 2 never occurs and is never predicted
            torch.tensor([[6, 2, 0, 1], [3, 9, 0, 0], [0, 0, 0, 0], [1, 4, 0, 2]]),
            # every class predicted and present
            torch.tensor([[7, 1, 2], [0, 3, 1], [4, 0, 12]]),
        ]
        for confusion in matrices:
            given = confusion.clone()
            scores = f1_scores(confusion)
            out = _as_number(fn(given), "macro_f1", scores["f1"])
            if not torch.equal(given, confusion):
                raise Mistake("your function changed the confusion matrix in place; work on a copy (no fill_diagonal_, no /=).")
            right = scores["macro_f1"]
            if math.isclose(out, right, abs_tol=1e-4):
                continue
            shown = f"For {confusion.tolist()} expected {right:.4f}, got {out:.4f}"
            c = confusion.double()
            right_c, support, predicted = c.diagonal(), c.sum(1), c.sum(0)
            with np.errstate(divide="ignore", invalid="ignore"):
                raw_p, raw_r = (right_c / predicted).numpy(), (right_c / support).numpy()
                raw_f1 = 2 * raw_p * raw_r / (raw_p + raw_r)
            if math.isnan(out):
                raise Mistake(
                    f"{shown}: a class that is never predicted (or never present) divides 0 by 0. Its "
                    "precision, recall and F1 count as 0, not NaN (torch.where(count > 0, ..., 0))."
                )
            if not np.isnan(raw_f1).all() and math.isclose(out, float(np.nanmean(raw_f1)), abs_tol=1e-4):
                raise Mistake(
                    f"{shown}: you left out the classes whose F1 is 0/0. Such a class scores F1 = 0 "
                    "and still counts in the mean: macro F1 divides by the number of classes."
                )
            micro = float(right_c.sum() / c.sum())
            if math.isclose(out, micro, abs_tol=1e-4):
                raise Mistake(
                    f"{shown}: that is the accuracy (trace / total), which is also micro F1 here. "
                    "Macro F1 computes F1 for each class and takes their plain mean."
                )
            f1 = scores["f1"].double()
            weighted = float((f1 * support).sum() / support.sum())
            if math.isclose(out, weighted, abs_tol=1e-4):
                raise Mistake(
                    f"{shown}: that is the F1 weighted by each class's number of examples. Macro F1 "
                    "is the plain mean of the per-class F1s: every class counts the same, however rare."
                )
            mean_p, mean_r = float(scores["precision"].mean()), float(scores["recall"].mean())
            f1_of_means = 2 * mean_p * mean_r / (mean_p + mean_r) if mean_p + mean_r else 0.0
            if math.isclose(out, f1_of_means, abs_tol=1e-4):
                raise Mistake(
                    f"{shown}: that is the harmonic mean of the mean precision and the mean recall. "
                    "Compute F1 for each class first (from its own precision and recall), then average the F1s."
                )
            if math.isclose(out, mean_p, abs_tol=1e-4) or math.isclose(out, mean_r, abs_tol=1e-4):
                raise Mistake(
                    f"{shown}: that is the mean precision (or the mean recall) alone. F1 of a class "
                    "is 2 * precision * recall / (precision + recall); macro F1 is the mean of those."
                )
            raise Mistake(
                f"{shown}. Per class: precision = diagonal / column sum, recall = diagonal / row "
                "sum, F1 = 2PR / (P + R) (0 when P + R = 0); then the mean over the classes."
            )
        return "per-class F1 from the diagonal, column and row sums, 0 for an empty class, plain mean."

    return run_checker("macro_f1", check)


# ---- exercise 3: early stopping -----------------------------------------------------------------
_NA = object()  # a misreading that makes no prediction on a case


def _stop(losses: Sequence[float], patience: int, min_delta: float, *, previous: bool = False,
          misses: int | None = None, use_delta: bool = True, or_equal: bool = False) -> tuple[int | None, int]:
    """Where a (possibly misread) early-stopping rule stops, and the best evaluation so far then."""
    misses = patience if misses is None else misses
    delta = min_delta if use_delta else 0.0
    best = reference = None
    best_at, waited = 0, 0
    for i, loss in enumerate(losses):
        better = reference is None or loss < reference - delta or (or_equal and loss <= reference - delta)
        if better:
            best, best_at, waited = loss, i, 0
        else:
            waited += 1
            if waited >= misses:
                return i, best_at
        reference = loss if previous else best
    return None, best_at


def early_stopping_point(fn: Callable[..., int | None]) -> Verdict:
    """Check ``fn(eval_losses, patience, min_delta=0.0)``: the 0-based index of the evaluation at which
    early stopping ends training (the ``patience``-th evaluation in a row that is not below the best
    loss so far by more than ``min_delta``), or None when it never stops."""

    def check() -> str:
        from course_lib.train import early_stopping_point as library

        cases = [
            # dips below the previous loss, never below the best (0.8): stops at 3
            ([1.0, 0.8, 0.9, 0.85, 0.88, 0.86, 0.87, 0.89], 2, 0.0),
            # improves at 0, 1, 3 and 6; misses 4, 5, then 7, 8, 9: stops at 9 with patience 3
            ([2.0, 1.5, 1.6, 1.2, 1.3, 1.25, 1.1, 1.15, 1.12, 1.3, 1.2], 3, 0.0),
            # each step better by less than min_delta = 0.05: stops at 3
            ([1.0, 0.97, 0.96, 0.955, 0.9, 0.85, 0.8], 3, 0.05),
            # a plateau: an equal loss is no improvement; stops at 4
            ([1.0, 0.7, 0.7, 0.7, 0.7, 0.6], 3, 0.0),
            # patience 1: the first miss stops
            ([3.0, 2.0, 1.0, 1.5, 0.5], 1, 0.0),
            # keeps improving (or waits less than patience): never stops
            ([1.0, 0.9, 0.95, 0.8, 0.7, 0.75, 0.6], 2, 0.0),
            ([0.5, 0.4, 0.3], 1, 0.01),
        ]
        # Each misreading: what it returns on a case (_NA where it says nothing) and its hint. A
        # misreading is ruled out once the answer was right on a case where it would have been wrong.
        misreadings = [
            ("best", lambda xs, p, d: _stop(xs, p, d)[1] if _stop(xs, p, d)[0] is not None else _NA,
             ", the index of the best evaluation: that is the checkpoint to keep, but the exercise "
             "asks for the evaluation at which training stops (the patience-th miss in a row)."),
            ("previous", lambda xs, p, d: _stop(xs, p, d, previous=True)[0],
             ": you compared each loss with the previous one. An evaluation improves only when it "
             "beats the best loss so far (by more than min_delta)."),
            ("late", lambda xs, p, d: _stop(xs, p, d, misses=p + 1)[0],
             ", one evaluation late: you stopped after patience + 1 misses in a row. Stop at the "
             "patience-th one (waited >= patience right after counting it)."),
            ("early", lambda xs, p, d: _stop(xs, p, d, misses=p - 1)[0] if p > 1 else _NA,
             ", one evaluation early: you stopped after patience - 1 misses in a row. patience "
             "tolerates patience - 1 misses and stops at the next one."),
            ("delta", lambda xs, p, d: _stop(xs, p, d, use_delta=False)[0] if d else _NA,
             ": min_delta is ignored. A loss counts as better only when loss < best - min_delta; "
             "smaller gains are misses."),
            ("equal", lambda xs, p, d: _stop(xs, p, d, or_equal=True)[0],
             ": an equal loss counted as an improvement. Better means strictly lower: "
             "loss < best - min_delta, not <=."),
        ]
        ruled_out: set[str] = set()
        for losses, patience, min_delta in cases:
            given = list(losses)
            out = fn(given, patience, min_delta)
            if given != losses:
                raise Mistake("your function changed eval_losses in place (a sort, a pop?); read it without changing it.")
            if out is not None:
                if isinstance(out, bool):
                    raise Mistake(f"return the index of an evaluation (an int) or None, got {out!r}.")
                try:
                    out = operator.index(out.item() if isinstance(out, torch.Tensor) and out.numel() == 1 else out)
                except TypeError:
                    raise Mistake(
                        f"return the index of an evaluation (an int) or None, got a {type(out).__name__}."
                    ) from None
            right = library(losses, patience, min_delta)
            predicted = {key: guess(losses, patience, min_delta) for key, guess, _ in misreadings}
            if out == right:
                ruled_out |= {key for key, value in predicted.items() if value is not _NA and value != right}
                continue
            setting = f"with eval_losses={losses}, patience={patience}, min_delta={min_delta} training"
            shown = (
                f"{setting} stops at evaluation {right}, yours returned {out}" if right is not None
                else f"{setting} never stops (expected None), yours returned {out}"
            )
            for key, _, hint in misreadings:
                if key not in ruled_out and predicted[key] is not _NA and out == predicted[key]:
                    raise Mistake(shown + hint)
            if right is None and out in (-1, len(losses), len(losses) - 1):
                raise Mistake(
                    f"{shown}: when the misses never reach patience, return None (no early stop), "
                    "not a made-up index."
                )
            raise Mistake(
                f"{shown}. An evaluation improves when loss < best_so_far - min_delta (the first "
                "always does); count the misses in a row and stop at the patience-th."
            )
        return "stops at the patience-th evaluation in a row not better than the best by min_delta; None otherwise."

    return run_checker("early_stopping_point", check)
