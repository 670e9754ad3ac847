"""The notebook-09 checkers accept every right answer and name the mistake in each wrong one."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib import metrics, train
from course_lib.checks import finetune as check


def stub(*args, **kwargs):
    raise NotImplementedError


# ---- confusion_matrix -----------------------------------------------------------------------
def cm_right_loop(targets, predictions, num_classes):
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for t, p in zip(targets.tolist(), predictions.tolist()):
        matrix[t, p] += 1
    return matrix


def cm_right_index_put(targets, predictions, num_classes):
    matrix = torch.zeros(num_classes, num_classes)
    return matrix.index_put_((targets, predictions), torch.ones(len(targets)), accumulate=True)


def cm_right_one_hot(targets, predictions, num_classes):
    return F.one_hot(targets, num_classes).T.float() @ F.one_hot(predictions, num_classes).float()


def cm_right_numpy(targets, predictions, num_classes):
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (targets.numpy(), predictions.numpy()), 1)
    return matrix


RIGHT_CM = [cm_right_loop, cm_right_index_put, cm_right_one_hot, cm_right_numpy, metrics.confusion_matrix]


def cm_transposed(targets, predictions, num_classes):
    return metrics.confusion_matrix(predictions, targets, num_classes)


def cm_sized_by_max_id(targets, predictions, num_classes):
    n = int(max(targets.max(), predictions.max())) + 1
    return metrics.confusion_matrix(targets, predictions, n)


def cm_row_normalised(targets, predictions, num_classes):
    counts = metrics.confusion_matrix(targets, predictions, num_classes).float()
    return counts / counts.sum(1, keepdim=True).clamp_min(1)


def cm_fractions(targets, predictions, num_classes):
    counts = metrics.confusion_matrix(targets, predictions, num_classes).float()
    return counts / len(targets)


def cm_no_accumulate(targets, predictions, num_classes):
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)
    matrix[targets, predictions] += 1
    return matrix


def cm_in_place(targets, predictions, num_classes):
    codes = targets.mul_(num_classes).add_(predictions)
    return torch.bincount(codes, minlength=num_classes**2).view(num_classes, num_classes)


def cm_wrong_cells(targets, predictions, num_classes):  # every count one column to the right
    return cm_right_loop(targets, predictions, num_classes).roll(1, dims=1)


WRONG_CM = [
    (cm_transposed, "transposed"),
    (cm_sized_by_max_id, "largest class id seen"),
    (cm_row_normalised, "each row divided by its sum"),
    (cm_fractions, "divided by the number of examples"),
    (cm_no_accumulate, "accumulate=True"),
    (cm_in_place, "in place"),
    (cm_wrong_cells, "wrong cells"),
]


@pytest.mark.parametrize("fn", RIGHT_CM)
def test_confusion_matrix_accepts_right_answers(fn):
    verdict = check.confusion_matrix(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_CM, ids=[f.__name__ for f, _ in WRONG_CM])
def test_confusion_matrix_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.confusion_matrix(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- macro_f1 -------------------------------------------------------------------------------
def f1_library(confusion):
    return metrics.f1_scores(confusion)["macro_f1"]


def f1_right_by_hand(confusion):
    c = confusion.double()
    tp = c.diagonal()
    denominator = c.sum(0) + c.sum(1)  # 2TP + FP + FN
    f1 = torch.where(denominator > 0, 2 * tp / denominator, torch.zeros_like(tp))
    return f1.mean()


def f1_right_loop(confusion):
    rows = confusion.tolist()
    total = 0.0
    for c in range(len(rows)):
        tp = rows[c][c]
        predicted = sum(row[c] for row in rows)
        present = sum(rows[c])
        precision = tp / predicted if predicted else 0.0
        recall = tp / present if present else 0.0
        total += 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return total / len(rows)


RIGHT_F1 = [f1_library, f1_right_by_hand, f1_right_loop]


def f1_micro(confusion):
    return (confusion.trace() / confusion.sum()).item()


def f1_weighted(confusion):
    f1 = metrics.f1_scores(confusion)["f1"]
    support = confusion.sum(1).float()
    return float((f1 * support).sum() / support.sum())


def f1_of_mean_precision_and_recall(confusion):
    scores = metrics.f1_scores(confusion)
    p, r = scores["precision"].mean(), scores["recall"].mean()
    return float(2 * p * r / (p + r))


def f1_nan(confusion):
    c = confusion.double()
    precision, recall = c.diagonal() / c.sum(0), c.diagonal() / c.sum(1)
    return float((2 * precision * recall / (precision + recall)).mean())


def f1_nanmean(confusion):
    c = confusion.double()
    precision, recall = c.diagonal() / c.sum(0), c.diagonal() / c.sum(1)
    return float((2 * precision * recall / (precision + recall)).nanmean())


def f1_per_class(confusion):
    return metrics.f1_scores(confusion)["f1"]


def f1_mean_precision(confusion):
    return float(metrics.f1_scores(confusion)["precision"].mean())


WRONG_F1 = [
    (f1_micro, "accuracy"),
    (f1_weighted, "weighted"),
    (f1_of_mean_precision_and_recall, "harmonic mean of the mean precision"),
    (f1_nan, "not NaN"),
    (f1_nanmean, "left out the classes"),
    (f1_per_class, "per-class F1"),
    (f1_mean_precision, "mean precision"),
]


@pytest.mark.parametrize("fn", RIGHT_F1)
def test_macro_f1_accepts_right_answers(fn):
    verdict = check.macro_f1(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_F1, ids=[f.__name__ for f, _ in WRONG_F1])
def test_macro_f1_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.macro_f1(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- early_stopping_point -------------------------------------------------------------------
def stop_right_since_best(eval_losses, patience, min_delta=0.0):
    best, best_index = float("inf"), 0
    for i, loss in enumerate(eval_losses):
        if loss < best - min_delta:
            best, best_index = loss, i
        elif i - best_index == patience:
            return i
    return None


def stop_right_numpy_index(eval_losses, patience, min_delta=0.0):
    best, waited = eval_losses[0], 0
    for i in range(1, len(eval_losses)):
        if eval_losses[i] < best - min_delta:
            best, waited = eval_losses[i], 0
        else:
            waited += 1
            if waited == patience:
                return np.int64(i)
    return None


RIGHT_STOP = [stop_right_since_best, stop_right_numpy_index, train.early_stopping_point]


def stop_against_previous(eval_losses, patience, min_delta=0.0):
    previous, waited = float("inf"), 0
    for i, loss in enumerate(eval_losses):
        if loss < previous - min_delta:
            waited = 0
        else:
            waited += 1
            if waited >= patience:
                return i
        previous = loss
    return None


def stop_one_late(eval_losses, patience, min_delta=0.0):
    best, waited = float("inf"), 0
    for i, loss in enumerate(eval_losses):
        if loss < best - min_delta:
            best, waited = loss, 0
        else:
            if waited >= patience:
                return i
            waited += 1
    return None


def stop_one_early(eval_losses, patience, min_delta=0.0):
    best, waited = float("inf"), 0
    for i, loss in enumerate(eval_losses):
        if loss < best - min_delta:
            best, waited = loss, 0
        else:
            waited += 1
            if waited >= patience - 1:
                return i
    return None


def stop_ignores_min_delta(eval_losses, patience, min_delta=0.0):
    return train.early_stopping_point(eval_losses, patience)


def stop_returns_best_index(eval_losses, patience, min_delta=0.0):
    best, best_index, waited = float("inf"), 0, 0
    for i, loss in enumerate(eval_losses):
        if loss < best - min_delta:
            best, best_index, waited = loss, i, 0
        else:
            waited += 1
            if waited >= patience:
                return best_index
    return None


def stop_never_none(eval_losses, patience, min_delta=0.0):
    stop = train.early_stopping_point(eval_losses, patience, min_delta)
    return len(eval_losses) - 1 if stop is None else stop


def stop_minus_one(eval_losses, patience, min_delta=0.0):
    stop = train.early_stopping_point(eval_losses, patience, min_delta)
    return -1 if stop is None else stop


def stop_equal_is_better(eval_losses, patience, min_delta=0.0):
    best, waited = float("inf"), 0
    for i, loss in enumerate(eval_losses):
        if loss <= best - min_delta:
            best, waited = loss, 0
        else:
            waited += 1
            if waited >= patience:
                return i
    return None


def stop_sorts_in_place(eval_losses, patience, min_delta=0.0):
    stop = train.early_stopping_point(eval_losses, patience, min_delta)
    eval_losses.sort()
    return stop


WRONG_STOP = [
    (stop_against_previous, "previous one"),
    (stop_one_late, "one evaluation late"),
    (stop_one_early, "one evaluation early"),
    (stop_ignores_min_delta, "min_delta is ignored"),
    (stop_returns_best_index, "index of the best evaluation"),
    (stop_never_none, "return None"),
    (stop_minus_one, "return None"),
    (stop_equal_is_better, "not <="),
    (stop_sorts_in_place, "in place"),
]


@pytest.mark.parametrize("fn", RIGHT_STOP)
def test_early_stopping_point_accepts_right_answers(fn):
    verdict = check.early_stopping_point(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_STOP, ids=[f.__name__ for f, _ in WRONG_STOP])
def test_early_stopping_point_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.early_stopping_point(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- shared --------------------------------------------------------------------------------
@pytest.mark.parametrize("checker", [check.confusion_matrix, check.macro_f1, check.early_stopping_point])
def test_a_stub_is_not_done_yet_not_a_crash(checker):
    verdict = checker(stub)
    assert verdict.status == "not done" and not verdict


def test_verdicts_are_one_line():
    for verdict in (check.confusion_matrix(cm_transposed), check.macro_f1(f1_per_class),
                    check.early_stopping_point(stop_one_late), check.early_stopping_point(stop_right_since_best)):
        assert "\n" not in repr(verdict)
