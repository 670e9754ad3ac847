"""The notebook-00 checkers accept every right answer and name the mistake in each wrong one."""

import pytest
import torch

from course_lib.checks import Verdict
from course_lib.checks import welcome as check


def stub(*args):
    raise NotImplementedError


# ---- one_hot --------------------------------------------------------------------------------
RIGHT_ONE_HOT = [
    lambda ids, v: torch.nn.functional.one_hot(ids, v).float(),
    lambda ids, v: torch.eye(v)[ids],
    lambda ids, v: (ids.unsqueeze(-1) == torch.arange(v)).float(),
    lambda ids, v: torch.zeros(*ids.shape, v).scatter_(-1, ids.unsqueeze(-1), 1.0),
]
WRONG_ONE_HOT = [
    (lambda ids, v: torch.nn.functional.one_hot(ids, v), "dtype"),
    (lambda ids, v: torch.eye(v - 1 if v > 1 else v)[ids.clamp(max=v - 2)], "exactly vocab_size"),
    (lambda ids, v: torch.eye(v)[(ids + 1) % v], "wrong place"),
    (lambda ids, v: torch.eye(v)[ids].flatten(), "expected shape"),
    (lambda ids, v: torch.ones(*ids.shape, v), "exactly one 1"),
    (lambda ids, v: torch.eye(v)[ids].tolist(), "torch.Tensor"),
]


@pytest.mark.parametrize("fn", RIGHT_ONE_HOT)
def test_one_hot_accepts_right_answers(fn):
    verdict = check.one_hot(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_ONE_HOT)
def test_one_hot_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.one_hot(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- count_parameters -----------------------------------------------------------------------
RIGHT_COUNT = [
    lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad),
    lambda m: int(sum(torch.tensor(p.shape).prod() for p in m.parameters() if p.requires_grad)),
    lambda m: sum(p.numel() for n, p in m.named_parameters() if p.requires_grad),
]
WRONG_COUNT = [
    (lambda m: len([p for p in m.parameters() if p.requires_grad]), "numel"),
    (lambda m: sum(p.numel() for p in m.parameters()), "frozen"),
    (lambda m: sum(t.numel() for t in m.state_dict().values()), "tied"),
    (
        lambda m: sum(p.numel() for _, p in m.named_parameters(remove_duplicate=False) if p.requires_grad),
        "tied",
    ),
    (lambda m: float(sum(p.numel() for p in m.parameters() if p.requires_grad)), "int"),
]


@pytest.mark.parametrize("fn", RIGHT_COUNT)
def test_count_parameters_accepts_right_answers(fn):
    verdict = check.count_parameters(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_COUNT)
def test_count_parameters_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.count_parameters(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- pairwise_scores ------------------------------------------------------------------------
RIGHT_SCORES = [
    lambda q, k: q @ k.transpose(-2, -1),
    lambda q, k: torch.bmm(q, k.transpose(1, 2)),
    lambda q, k: torch.einsum("bqd,bkd->bqk", q, k),
    lambda q, k: (q.unsqueeze(2) * k.unsqueeze(1)).sum(-1),
]
WRONG_SCORES = [
    (lambda q, k: k @ q.transpose(-2, -1), "queries first"),
    (lambda q, k: q @ k.mT.transpose(0, 1), "transpose(-2, -1)"),  # batch and query axes swapped
    (lambda q, k: q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, "sqrt(d)"),
    (lambda q, k: q @ k.transpose(-2, -1) + 1, "dot products"),
    (lambda q, k: (q * k).sum(-1), "transpose(-2, -1)"),  # (2,3,4) * (2,5,4) do not broadcast
]


@pytest.mark.parametrize("fn", RIGHT_SCORES)
def test_pairwise_scores_accepts_right_answers(fn):
    verdict = check.pairwise_scores(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_SCORES)
def test_pairwise_scores_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.pairwise_scores(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- the shared machinery -------------------------------------------------------------------
@pytest.mark.parametrize("checker", [check.one_hot, check.count_parameters, check.pairwise_scores])
def test_a_stub_is_not_done_yet_not_a_crash(checker):
    verdict = checker(stub)
    assert verdict.status == "not done" and not verdict
    assert repr(verdict).startswith("⏳ Not done yet")


def test_verdict_is_one_short_line():
    verdict = check.one_hot(RIGHT_ONE_HOT[0])
    assert isinstance(verdict, Verdict) and bool(verdict)
    assert repr(verdict).startswith("✅ Correct (one_hot)") and "\n" not in repr(verdict)


def test_learner_exceptions_become_a_short_verdict():
    def broken(ids, vocab_size):
        return ids.no_such_method()

    verdict = check.one_hot(broken)
    assert verdict.status == "wrong"
    assert "AttributeError" in verdict.message and "ids.no_such_method()" in verdict.message
