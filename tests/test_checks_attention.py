"""The notebook-03 checkers accept every right answer and name the mistake in each wrong one."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import attention
from course_lib.checks import attention as check


def stub(*args, **kwargs):
    raise NotImplementedError


# ---- stable_softmax -------------------------------------------------------------------------
def _softmax_right(x):
    shifted = x - x.max(dim=-1, keepdim=True).values
    return shifted.exp() / shifted.exp().sum(dim=-1, keepdim=True)


RIGHT_SOFTMAX = [
    _softmax_right,
    lambda x: torch.softmax(x, dim=-1),
    lambda x: (x - torch.logsumexp(x, dim=-1, keepdim=True)).exp(),
    attention.stable_softmax,
]
WRONG_SOFTMAX = [
    (lambda x: x.exp() / x.exp().sum(-1, keepdim=True), "overflows"),
    (lambda x: (x - x.min(-1, keepdim=True).values).exp()
     / (x - x.min(-1, keepdim=True).values).exp().sum(-1, keepdim=True), "minimum"),
    (lambda x: (x - x.max()).exp() / (x - x.max()).exp().sum(-1, keepdim=True), "whole tensor"),
    (lambda x: _softmax_right(x.transpose(-2, -1)).transpose(-2, -1), "wrong dimension"),
    (lambda x: (x - x.max()).exp() / (x - x.max()).exp().sum(), "whole tensor"),
    (lambda x: (x - x.amax(-1)).exp() / (x - x.amax(-1)).exp().sum(-1, keepdim=True), "keepdim"),
    (lambda x: _softmax_right(x).sum(-1), "keeps the shape"),
    (lambda x: _softmax_right(x).tolist(), "torch.Tensor"),
]


@pytest.mark.parametrize("fn", RIGHT_SOFTMAX)
def test_stable_softmax_accepts_right_answers(fn):
    verdict = check.stable_softmax(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_SOFTMAX)
def test_stable_softmax_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.stable_softmax(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- causal_mask ----------------------------------------------------------------------------
RIGHT_CAUSAL = [
    lambda T: torch.ones(T, T, dtype=torch.bool).tril(),
    lambda T: torch.arange(T)[None, :] <= torch.arange(T)[:, None],
    lambda T: ~torch.ones(T, T, dtype=torch.bool).triu(1),
    attention.causal_mask,
]
WRONG_CAUSAL = [
    (lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "upper triangle"),
    (lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), "diagonal is excluded"),
    (lambda T: torch.ones(T, T, dtype=torch.bool).triu(1), "inverted"),
    (lambda T: torch.ones(T, T, dtype=torch.bool).tril(1), "off by one"),
    (lambda T: torch.ones(T, T).tril(), "booleans"),
    (lambda T: torch.tril(torch.ones(T, T, dtype=torch.long)), "booleans"),
    (lambda T: torch.ones(T, dtype=torch.bool), "shape"),
]


@pytest.mark.parametrize("fn", RIGHT_CAUSAL)
def test_causal_mask_accepts_right_answers(fn):
    verdict = check.causal_mask(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_CAUSAL)
def test_causal_mask_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.causal_mask(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- masked_attention -----------------------------------------------------------------------
def make_attention(*, scale="sqrt", softmax_dim=-1, mask_mode="before", fill=float("-inf"),
                   invert=False, swap=False, values="v"):
    """A masked attention written with one deliberate mistake (or none, with the defaults)."""

    def attend(q, k, v, mask=None):
        d_k = q.shape[-1]
        scores = q @ k.transpose(-2, -1)
        if scale == "sqrt":
            scores = scores / math.sqrt(d_k)
        elif scale == "d":
            scores = scores / d_k
        elif scale == "d_v":
            scores = scores / math.sqrt(v.shape[-1])
        blocked = None if mask is None else (mask if invert else ~mask)
        if blocked is not None and mask_mode == "before":
            scores = scores.masked_fill(blocked, fill)
        weights = torch.softmax(scores, dim=softmax_dim)
        if blocked is not None and mask_mode == "after":
            weights = weights.masked_fill(blocked, 0.0)
        if blocked is not None and mask_mode == "multiply":
            weights = weights * mask
        output = weights @ (v if values == "v" else k)
        return (weights, output) if swap else (output, weights)

    return attend


def _einsum_attention(q, k, v, mask=None):
    scores = torch.einsum("...qd,...kd->...qk", q, k) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores + torch.zeros_like(scores).masked_fill(~mask, -1e9)
    weights = scores.softmax(-1)
    return torch.einsum("...qk,...kd->...qd", weights, v), weights


def _renormalised_after(q, k, v, mask=None):
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    if mask is not None:  # masking after the softmax AND renormalising is also right
        weights = weights * mask
        weights = weights / weights.sum(-1, keepdim=True)
    return weights @ v, weights


RIGHT_ATTENTION = [
    make_attention(),
    make_attention(fill=-1e9),
    _einsum_attention,
    _renormalised_after,
    lambda q, k, v, mask=None: attention.scaled_dot_product_attention(q, k, v, mask),
    lambda q, k, v, mask=None: (F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                                attention.scaled_dot_product_attention(q, k, v, mask)[1]),
]
WRONG_ATTENTION = [
    (make_attention(scale=None), "missing scaling"),
    (make_attention(scale="d"), "divided by d_k"),
    (make_attention(scale="d_v"), "sqrt(d_v)"),
    (make_attention(softmax_dim=-2), "wrong dimension"),
    (make_attention(softmax_dim=0), "wrong dimension"),
    (make_attention(softmax_dim=1), "wrong dimension"),
    (make_attention(mask_mode="after"), "after the softmax"),
    (make_attention(mask_mode="multiply"), "after the softmax"),
    (make_attention(invert=True), "inverted"),
    (make_attention(fill=0.0), "set to 0"),
    (make_attention(invert=True, fill=0.0), "inverted"),
    (make_attention(mask_mode="ignore"), "ignored"),
    (make_attention(swap=True), "output first"),
    (make_attention(values="k"), "weights @ v"),
    (lambda q, k, v, mask=None: make_attention()(q, k, v, mask)[0], "pair"),
    (lambda q, k, v, mask=None: (q @ k).softmax(-1) @ v, "k.transpose(-2, -1)"),  # no transpose
]


@pytest.mark.parametrize("fn", RIGHT_ATTENTION)
def test_masked_attention_accepts_right_answers(fn):
    verdict = check.masked_attention(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_ATTENTION)
def test_masked_attention_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.masked_attention(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- split_merge_heads ----------------------------------------------------------------------
def split_right(x, h):
    b, t, d = x.shape
    return x.view(b, t, h, d // h).transpose(1, 2)


def merge_right(x):
    b, h, t, dh = x.shape
    return x.transpose(1, 2).reshape(b, t, h * dh)


RIGHT_HEADS = [
    (split_right, merge_right),
    (attention.split_heads, attention.merge_heads),
    (lambda x, h: x.reshape(x.shape[0], x.shape[1], h, -1).permute(0, 2, 1, 3),
     lambda x: x.permute(0, 2, 1, 3).contiguous().view(x.shape[0], x.shape[2], -1)),
    (lambda x, h: torch.stack(x.chunk(h, dim=-1), dim=1), lambda x: torch.cat(x.unbind(1), dim=-1)),
]
WRONG_HEADS = [
    (lambda x, h: x.reshape(x.shape[0], h, x.shape[1], -1), merge_right, "mixes features"),
    (lambda x, h: x.view(x.shape[0], x.shape[1], -1, h).permute(0, 3, 1, 2), merge_right, "interleaved"),
    (lambda x, h: x.view(x.shape[0], x.shape[1], h, -1), merge_right, "transpose(1, 2)"),
    (split_right, lambda x: x.reshape(x.shape[0], x.shape[2], -1), "wrong order"),
    (split_right, lambda x: x.permute(0, 2, 3, 1).reshape(x.shape[0], x.shape[2], -1), "wrong order"),
    (split_right, lambda x: x.transpose(1, 2).view(x.shape[0], x.shape[2], -1), ".reshape"),
    (split_right, lambda x: x.transpose(1, 2), "should have shape"),
]


@pytest.mark.parametrize("split,merge", RIGHT_HEADS)
def test_split_merge_heads_accepts_right_answers(split, merge):
    verdict = check.split_merge_heads(split, merge)
    assert verdict.passed, verdict


@pytest.mark.parametrize("split,merge,hint", WRONG_HEADS)
def test_split_merge_heads_rejects_mistakes_with_a_hint(split, merge, hint):
    verdict = check.split_merge_heads(split, merge)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- stubs ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda: check.stable_softmax(stub),
        lambda: check.causal_mask(stub),
        lambda: check.masked_attention(stub),
        lambda: check.split_merge_heads(stub, stub),
        lambda: check.split_merge_heads(split_right, stub),
    ],
)
def test_a_stub_is_not_done_yet_not_a_crash(call):
    verdict = call()
    assert verdict.status == "not done" and not verdict
