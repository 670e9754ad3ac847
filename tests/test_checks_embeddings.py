"""The notebook-02 checkers accept every right answer and name the mistake in each wrong one."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import embeddings
from course_lib.checks import embeddings as check


def stub(*args):
    raise NotImplementedError


# ---- ppmi -----------------------------------------------------------------------------------
def ppmi_by_probabilities(counts):
    p_wc = counts / counts.sum()
    p_w = p_wc.sum(dim=1, keepdim=True)
    p_c = p_wc.sum(dim=0, keepdim=True)
    pmi = torch.log(p_wc / (p_w * p_c))
    return torch.nan_to_num(pmi, nan=0.0, neginf=0.0).clamp(min=0)


def ppmi_with_mask(counts):
    out = torch.zeros_like(counts)
    seen = counts > 0
    rows = counts.sum(1, keepdim=True).expand_as(counts)
    cols = counts.sum(0, keepdim=True).expand_as(counts)
    out[seen] = torch.log(counts[seen] * counts.sum() / (rows[seen] * cols[seen])).clamp(min=0)
    return out


RIGHT_PPMI = [
    embeddings.ppmi,
    ppmi_by_probabilities,
    ppmi_with_mask,
    lambda c: torch.maximum(
        torch.log(c * c.sum() / (c.sum(1, keepdim=True) @ c.sum(0, keepdim=True))).nan_to_num(neginf=0.0, nan=0.0),
        torch.tensor(0.0),
    ),
]


def _pmi(c):
    return torch.log(c * c.sum() / (c.sum(1, keepdim=True) * c.sum(0, keepdim=True)))


def _safe(x):
    return torch.nan_to_num(x, nan=0.0, neginf=0.0, posinf=0.0)


WRONG_PPMI = [
    (lambda c: _safe(_pmi(c)), "positive part"),  # no clipping
    (lambda c: _pmi(c).clamp(min=0), "nan or inf"),  # log(0) not handled
    (lambda c: _safe(torch.log(c / (c.sum(1, keepdim=True) * c.sum(0, keepdim=True)))).clamp(min=0), "total count"),
    (lambda c: _safe(torch.log(c * c.sum() / (c.sum(0, keepdim=True).T * c.sum(1, keepdim=True).T))).clamp(min=0), "swapped"),
    (lambda c: _safe(torch.log(c * c.sum() / (c.sum(1, keepdim=True) * c.sum(1, keepdim=True).T))).clamp(min=0), "marginals"),
    (lambda c: _safe(torch.log2(c * c.sum() / (c.sum(1, keepdim=True) * c.sum(0, keepdim=True)))).clamp(min=0), "natural logarithm"),
    (lambda c: _safe(c * c.sum() / (c.sum(1, keepdim=True) * c.sum(0, keepdim=True))).clamp(min=0) * (c > 0), "not the ratio"),
    (lambda c: _safe(_pmi(c)).clamp(min=0).sum(1), "same shape"),
    (lambda c: c.add_(1).log(), "in-place"),
    (lambda c: _safe(_pmi(c)).clamp(min=0).tolist(), "torch.Tensor"),
    (lambda c: _safe(_pmi(c)).clamp(min=0) * 2, "not PPMI"),
]


@pytest.mark.parametrize("fn", RIGHT_PPMI)
def test_ppmi_accepts_right_answers(fn):
    verdict = check.ppmi(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_PPMI)
def test_ppmi_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.ppmi(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- sgns_loss ------------------------------------------------------------------------------
def _scores(u, v, n):
    return (u * v).sum(-1), torch.einsum("bkd,bd->bk", n, u)


def sgns_naive_logs(u, v, n):
    pos, neg = _scores(u, v, n)
    return (-torch.log(torch.sigmoid(pos)) - torch.log(torch.sigmoid(-neg)).sum(-1)).mean()


def sgns_with_bmm(u, v, n):
    pos = torch.bmm(u.unsqueeze(1), v.unsqueeze(2)).squeeze(-1).squeeze(-1)
    neg = torch.bmm(n, u.unsqueeze(2)).squeeze(-1)
    return (F.softplus(-pos) + F.softplus(neg).sum(dim=1)).mean()


def sgns_bce(u, v, n):
    pos, neg = _scores(u, v, n)
    logits = torch.cat([pos[:, None], neg], 1)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / len(u)


RIGHT_SGNS = [embeddings.sgns_loss, sgns_naive_logs, sgns_with_bmm, sgns_bce]


def _wrong(fn):
    def wrapped(u, v, n):
        pos, neg = _scores(u, v, n)
        return fn(pos, neg, u, v, n)

    return wrapped


WRONG_SGNS = [
    (_wrong(lambda p, q, u, v, n: -(F.logsigmoid(p) + F.logsigmoid(q).sum(-1)).mean()), "sign error"),
    (_wrong(lambda p, q, u, v, n: -(F.logsigmoid(p) + F.logsigmoid(-q).mean(-1)).mean()), "averaged; sum them"),
    (_wrong(lambda p, q, u, v, n: -(F.logsigmoid(p) + F.logsigmoid(-q).sum(-1)).sum()), "summed over the batch"),
    (_wrong(lambda p, q, u, v, n: -torch.cat([F.logsigmoid(p)[:, None], F.logsigmoid(-q)], 1).mean()), "averaged together"),
    (_wrong(lambda p, q, u, v, n: F.cross_entropy(torch.cat([p[:, None], q], 1), torch.zeros(len(p), dtype=torch.long))), "softmax"),
    (_wrong(lambda p, q, u, v, n: -F.logsigmoid(p).mean()), "negatives are missing"),
    (_wrong(lambda p, q, u, v, n: (F.logsigmoid(p) + F.logsigmoid(-q).sum(-1)).mean()), "flipped"),
    (_wrong(lambda p, q, u, v, n: -(F.logsigmoid(p) + F.logsigmoid(-torch.einsum("bkd,bd->bk", n, v)).sum(-1)).mean()), "centre"),
    (_wrong(lambda p, q, u, v, n: -(torch.sigmoid(p) + torch.sigmoid(-q).sum(-1)).mean()), "log is missing"),
    (_wrong(lambda p, q, u, v, n: -(F.logsigmoid(p) + F.logsigmoid(-q).sum(-1))), "one loss per pair"),
    (_wrong(lambda p, q, u, v, n: -(F.logsigmoid(p) + F.logsigmoid(-q).sum(-1)).mean() + 1), "is not mean_b"),
    (lambda u, v, n: u.mul_(2).sum(), "in place"),
    (lambda u, v, n: 0.5, "torch.Tensor"),
]


@pytest.mark.parametrize("fn", RIGHT_SGNS)
def test_sgns_loss_accepts_right_answers(fn):
    verdict = check.sgns_loss(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_SGNS)
def test_sgns_loss_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.sgns_loss(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- nearest_neighbours ---------------------------------------------------------------------
def nn_topk(vectors, query, k):
    unit = vectors / vectors.norm(dim=1, keepdim=True)
    sims = unit @ unit[query]
    sims[query] = -math.inf
    return sims.topk(k).indices


def nn_argsort_list(vectors, query, k):
    sims = F.cosine_similarity(vectors, vectors[query][None], dim=1)
    order = [i for i in sims.argsort(descending=True).tolist() if i != query]
    return order[:k]


RIGHT_NN = [nn_topk, nn_argsort_list, lambda v, q, k: embeddings.nearest_neighbours(v, q, k)[0]]


def _cos(v, q):
    return F.cosine_similarity(v, v[q][None], dim=1)


def nn_excludes_by_similarity(v, q, k):
    sims = _cos(v, q)
    sims[sims > 0.9999] = -math.inf
    return sims.topk(k).indices


def nn_dot(v, q, k):
    sims = v @ v[q]
    sims[q] = -math.inf
    return sims.topk(k).indices


def nn_columns(v, q, k):
    unit = v / v.norm(dim=0, keepdim=True)
    sims = unit @ unit[q]
    sims[q] = -math.inf
    return sims.topk(k).indices


def nn_ascending(v, q, k):
    order = [i for i in _cos(v, q).argsort().tolist() if i != q]
    return torch.tensor(order[:k])


def nn_fixed_row(v, q, k):
    sims = _cos(v, 0)
    sims[0] = -math.inf
    return sims.topk(k).indices


WRONG_NN = [
    (lambda v, q, k: _cos(v, q).topk(k).indices, "own neighbours"),
    (lambda v, q, k: _cos(v, q).topk(k + 1).indices[1:][: k - 1], "exactly k"),
    (nn_excludes_by_similarity, "by its id"),
    (nn_dot, "dot product"),
    (nn_columns, "columns"),
    (nn_ascending, "least similar"),
    (lambda v, q, k: nn_topk(v, q, k).flip(0), "wrong order"),
    (lambda v, q, k: nn_topk(v, q, k).float(), "ids"),
    (nn_fixed_row, "query argument"),
    (lambda v, q, k: torch.arange(1, k + 1), "not the k rows"),
]


@pytest.mark.parametrize("fn", RIGHT_NN)
def test_nearest_neighbours_accepts_right_answers(fn):
    verdict = check.nearest_neighbours(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_NN)
def test_nearest_neighbours_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.nearest_neighbours(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- shared ---------------------------------------------------------------------------------
@pytest.mark.parametrize("checker", [check.ppmi, check.sgns_loss, check.nearest_neighbours])
def test_a_stub_is_not_done_yet_not_a_crash(checker):
    verdict = checker(stub)
    assert verdict.status == "not done" and not verdict


def test_learner_exceptions_become_a_short_verdict():
    def broken(counts):
        return counts.no_such_method()

    verdict = check.ppmi(broken)
    assert verdict.status == "wrong" and "AttributeError" in verdict.message
