"""The notebook-08 checkers accept every right answer and name the mistake in each wrong one."""

import pytest
import torch

from course_lib import viz
from course_lib.checks import inside as check


def stub(*args):
    raise NotImplementedError


def positions(w):
    n = w.shape[-1]
    return torch.arange(n, dtype=w.dtype)


def distances(w):
    p = positions(w)
    return p[:, None] - p[None, :]


# ---- head_entropy ---------------------------------------------------------------------------------
def entropy_loop(w):
    out = torch.zeros(w.shape[0], dtype=w.dtype)
    for h in range(w.shape[0]):
        rows = []
        for row in w[h]:
            rows.append(-sum(float(p) * float(torch.log(p)) for p in row if p > 0))
        out[h] = sum(rows) / len(rows)
    return out


RIGHT_ENTROPY = [
    lambda w: -torch.xlogy(w, w).sum(-1).mean(-1),
    lambda w: -(w * torch.log(w.clamp_min(1e-12))).sum(-1).mean(-1),
    lambda w: -(w * (w + 1e-12).log()).sum(-1).mean(-1),
    lambda w: torch.special.entr(w).sum(-1).mean(-1),
    lambda w: torch.distributions.Categorical(probs=w, validate_args=False).entropy().mean(-1),
    lambda w: viz.attention_entropy(w),
    entropy_loop,
]
WRONG_ENTROPY = [
    (lambda w: -(w * w.log()).sum(-1).mean(-1), "NaN"),
    (lambda w: -torch.xlogy(w, w).sum(-1), "one entropy per query"),
    (lambda w: torch.xlogy(w, w).sum(-1).mean(-1), "sign"),
    (lambda w: -(w * torch.log2(w.clamp_min(1e-12))).sum(-1).mean(-1), "bits"),
    (lambda w: -torch.xlogy(w, w).sum(-1).sum(-1), "sum over the query rows"),
    (lambda w: -torch.xlogy(w, w).sum(-2).mean(-1), "dim -2"),
    (lambda w: -torch.xlogy(w, w).sum(-1).mean(), "one number per head"),
    (lambda w: (-torch.xlogy(w, w).sum(-1).mean(-1)).tolist(), "torch.Tensor"),
    (lambda w: -(w.add_(1e-12) * w.log()).sum(-1).mean(-1), "in place"),
    (lambda w: -torch.xlogy(w, w).sum(-1).max(-1).values, "expected ["),
]


@pytest.mark.parametrize("fn", RIGHT_ENTROPY)
def test_head_entropy_accepts_right_answers(fn):
    verdict = check.head_entropy(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_ENTROPY)
def test_head_entropy_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.head_entropy(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- attention_distance ---------------------------------------------------------------------------
def distance_loop(w):
    heads, n, _ = w.shape
    out = []
    for h in range(heads):
        out.append(sum(float(w[h, i, j]) * abs(i - j) for i in range(n) for j in range(n)) / n)
    return torch.tensor(out)


RIGHT_DISTANCE = [
    lambda w: (w * distances(w).abs()).sum(-1).mean(-1),
    lambda w: torch.einsum("hij,ij->hi", w, distances(w).abs()).mean(-1),
    lambda w: (w * distances(w).abs()).sum(-2).mean(-1),  # |i - j| is symmetric: the same total
    lambda w: viz.mean_attention_distance(w),
    distance_loop,
]
WRONG_DISTANCE = [
    (lambda w: (w * distances(w)).sum(-1).mean(-1), "absolute value"),
    (lambda w: (w * -distances(w)).sum(-1).mean(-1), "absolute value"),
    (lambda w: (w * distances(w).square()).sum(-1).mean(-1), "squared"),
    (lambda w: distances(w).abs().mean().expand(w.shape[0]).clone(), "does not depend on the weights"),
    (lambda w: (w.argmax(-1) - torch.arange(w.shape[-1])).abs().double().mean(-1), "strongest key"),
    (lambda w: (w * distances(w).abs()).sum(-1).sum(-1), "sum over the queries"),
    (lambda w: (w * distances(w).abs()).sum(-1), "one distance per query"),
    (lambda w: (w * distances(w).abs()).sum(-1).mean(), "should give shape"),
    (lambda w: (w * distances(w).abs()).sum(-1).mean(-1).long(), "real number"),
    (lambda w: (w * positions(w)).sum(-1).mean(-1), "expected ["),  # the mean key position
]


@pytest.mark.parametrize("fn", RIGHT_DISTANCE)
def test_attention_distance_accepts_right_answers(fn):
    verdict = check.attention_distance(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_DISTANCE)
def test_attention_distance_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.attention_distance(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- previous_token_head --------------------------------------------------------------------------
def by_score(score):
    def find(w):
        index = int(score(w).flatten().argmax())
        return divmod(index, w.shape[1])

    return find


def previous_loop(w):
    best, where = -1.0, None
    for layer in range(w.shape[0]):
        for head in range(w.shape[1]):
            n = w.shape[-1]
            score = sum(float(w[layer, head, i, i - 1]) for i in range(1, n)) / (n - 1)
            if score > best:
                best, where = score, (layer, head)
    return where


RIGHT_PREVIOUS = [
    by_score(lambda w: torch.diagonal(w, offset=-1, dim1=-2, dim2=-1).mean(-1)),
    by_score(lambda w: w[..., torch.arange(1, w.shape[-1]), torch.arange(w.shape[-1] - 1)].mean(-1)),
    lambda w: viz.top_heads(viz.previous_token_score(w), 1)[0][:2],
    lambda w: torch.tensor(by_score(lambda x: torch.diagonal(x, -1, -2, -1).mean(-1))(w)),
    lambda w: list(by_score(lambda x: torch.diagonal(x, -1, -2, -1).sum(-1))(w)),  # sum: same ranking
    previous_loop,
]
WRONG_PREVIOUS = [
    (by_score(lambda w: torch.diagonal(w, offset=0, dim1=-2, dim2=-1).mean(-1)), "itself"),
    (by_score(lambda w: torch.diagonal(w, offset=1, dim1=-2, dim2=-1).mean(-1)), "next"),
    (by_score(lambda w: w[..., 0].mean(-1)), "first token"),
    (by_score(lambda w: torch.diagonal(w, offset=-1, dim1=-2, dim2=-1).max(-1).values), "maximum"),
    (lambda w: int(torch.diagonal(w, -1, -2, -1).mean(-1).flatten().argmax()), "flat index"),
    (lambda w: by_score(lambda x: torch.diagonal(x, -1, -2, -1).mean(-1))(w)[::-1], "(head, layer)"),
    (lambda w: "layer 0", "pair (layer, head)"),
    (lambda w: (0, 1), "previous-token head is"),
    (lambda w: (7, 7), "not a head"),
    (lambda w: by_score(lambda x: torch.diagonal(x.mul_(2), -1, -2, -1).mean(-1))(w), "in place"),
]


@pytest.mark.parametrize("fn", RIGHT_PREVIOUS)
def test_previous_token_head_accepts_right_answers(fn):
    verdict = check.previous_token_head(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_PREVIOUS)
def test_previous_token_head_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.previous_token_head(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- the shared machinery -------------------------------------------------------------------------
@pytest.mark.parametrize("checker", [check.head_entropy, check.attention_distance, check.previous_token_head])
def test_a_stub_is_not_done_yet_not_a_crash(checker):
    verdict = checker(stub)
    assert verdict.status == "not done" and not verdict


def test_the_planted_test_heads_are_what_the_checker_says():
    """The previous-token checker's test models: the planted head wins, each distractor is what it claims."""
    stack = check._planted(3, 4, 8, seed=0, causal=True,
                           plant={(2, 1): "previous", (1, 3): "self", (1, 0): "first", (0, 2): "spike"})
    torch.testing.assert_close(stack.sum(-1), torch.ones(3, 4, 8, dtype=torch.float64))
    assert torch.triu(stack, diagonal=1).abs().max() == 0  # causal
    assert viz.top_heads(viz.previous_token_score(stack), 1)[0][:2] == (2, 1)
    assert viz.top_heads(viz.previous_token_score(stack, 0), 1)[0][:2] == (1, 3)
    assert viz.top_heads(viz.attention_to(stack, 0), 1)[0][:2] == (1, 0)
    spike_max = torch.diagonal(stack, -1, -2, -1).amax(-1)
    assert divmod(int(spike_max.flatten().argmax()), 4) == (0, 2)
