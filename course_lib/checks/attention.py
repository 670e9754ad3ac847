"""Checkers for notebook 05 (attention): a stable softmax, the causal mask, masked attention, and
splitting and merging heads.

Each checker runs the learner's function on inputs picked so that every plausible mistake gives a
different answer, compares with the right answer and with the answer each known mistake would give,
and names the mistake it recognises.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from course_lib.checks.core import Mistake, Verdict, expect_tensor, run_checker

__all__ = ["stable_softmax", "causal_mask", "masked_attention", "split_merge_heads"]



def _same(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    """Equal shapes and values (NaN equal to NaN, inf to inf): recognises a mistake's fingerprint."""
    if a.shape != b.shape:
        return False
    a, b = a.detach().double(), b.detach().double()
    return bool(torch.allclose(a, b, atol=atol, rtol=1e-4, equal_nan=True))


def _match(out: torch.Tensor, mistakes: list[tuple[Callable[[], torch.Tensor], str]]) -> None:
    """Raise the hint of the first known mistake whose output ``out`` reproduces."""
    for wrong, hint in mistakes:
        try:
            expected_wrong = wrong()
        except RuntimeError:  # that mistake would have crashed on this input
            continue
        if _same(out, expected_wrong):
            raise Mistake(hint)


# ---- Exercise: stable softmax ---------------------------------------------------------------
def stable_softmax(fn: Callable[[torch.Tensor], torch.Tensor]) -> Verdict:
    """Check ``fn(x)``: softmax over the last dimension of ``x (..., n)``, safe from overflow."""

    def check() -> str:
        small = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, -1.0]])
        square = torch.tensor([[1.0, 2.0, 3.0], [3.0, 0.0, -2.0], [0.0, 1.0, 0.0]])
        large = torch.tensor([[1000.0, 999.0, 998.0], [-100.0, 0.0, 100.0]])  # exp(100) = inf in float32
        spread = torch.tensor([[0.0, 1.0, 2.0], [1000.0, 1001.0, 1002.0]])  # rows on different scales
        cube = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0)) * 3

        def naive(x):
            return x.exp() / x.exp().sum(-1, keepdim=True)

        def call(x):
            try:
                return expect_tensor(fn(x.clone()), "stable_softmax")
            except NotImplementedError:  # the student stub: "not done yet"
                raise
            except RuntimeError as exc:
                raise Mistake(
                    f"for x of shape {tuple(x.shape)} your code raised RuntimeError: {exc}. Did the max "
                    "or the sum lose its last dimension? Use keepdim=True so it broadcasts."
                ) from None

        for x in (square, small, cube):
            out = call(x)
            right = torch.softmax(x, dim=-1)
            if out.shape != x.shape:
                raise Mistake(
                    f"for x of shape {tuple(x.shape)} the output has shape {tuple(out.shape)}: softmax "
                    "keeps the shape of its input (use keepdim=True in the max and the sum)."
                )
            if not _same(out, right):
                _match(out, [
                    (lambda x=x: x.exp() / x.exp().sum(-2, keepdim=True),
                     "softmax over the wrong dimension: each row (the last dimension) must sum to 1; "
                     "sum over dim=-1."),
                    (lambda x=x: torch.softmax(x, dim=0),
                     "softmax over the wrong dimension: each row (the last dimension) must sum to 1; "
                     "sum over dim=-1."),
                    (lambda x=x: x.exp() / x.exp().sum(),
                     "you divided by the sum over the whole tensor: sum each row on its own "
                     "(dim=-1, keepdim=True)."),
                    (lambda x=x: (x - x.amax(-1)).exp() / (x - x.amax(-1)).exp().sum(-1, keepdim=True),
                     "the maximum was subtracted without keepdim=True, so it broadcast against the "
                     "wrong dimension: use x.amax(dim=-1, keepdim=True)."),
                    (lambda x=x: (x - x.amax(-1)[..., None]).exp() / (x - x.amax(-1)[..., None]).exp().sum(-1),
                     "the sum lost its last dimension and broadcast wrongly: use keepdim=True."),
                ])
                raise Mistake(
                    "on a small input (no overflow possible) the result differs from torch.softmax(x, "
                    "dim=-1): compute exp(x - max) / sum(exp(x - max)) along the last dimension."
                )
        out = call(large)
        right = torch.softmax(large, dim=-1)
        if not _same(out, right):
            _match(out, [
                (lambda: naive(large),
                 "exp(1000.) overflows to inf in float32 and inf / inf = nan: subtract each row's "
                 "maximum before exp (the log-sum-exp trick); the result does not change."),
                (lambda: naive(large - large.amin(-1, keepdim=True)),
                 "you subtracted the minimum: then the largest score still overflows. Subtract the "
                 "maximum, so the largest exponent is exp(0) = 1."),
                (lambda: naive(large - large.max()),
                 "you subtracted the maximum of the whole tensor: a row far below it underflows to "
                 "0 / 0 = nan. Subtract each row's own maximum: x.amax(dim=-1, keepdim=True)."),
            ])
            if not torch.isfinite(out).all():
                raise Mistake(
                    "large scores (1000) gave inf or nan: subtract each row's maximum before exp."
                )
            raise Mistake("on large scores the result differs from torch.softmax(x, dim=-1).")
        out = call(spread)
        if not _same(out, torch.softmax(spread, dim=-1)):
            _match(out, [
                (lambda: naive(spread - spread.max()),
                 "you subtracted the maximum of the whole tensor: a row far below it underflows to "
                 "0 / 0 = nan. Subtract each row's own maximum: x.amax(dim=-1, keepdim=True)."),
            ])
            raise Mistake(
                "rows on very different scales ([0, 1, 2] and [1000, 1001, 1002]) should give the "
                "same probabilities: subtract each row's own maximum."
            )
        return "rows sum to 1, no overflow on scores of 1000, each row shifted by its own maximum."

    return run_checker("stable_softmax", check)


# ---- Exercise: causal mask ------------------------------------------------------------------
def causal_mask(fn: Callable[[int], torch.Tensor]) -> Verdict:
    """Check ``fn(T)``: a ``(T, T)`` boolean mask, True where query i may attend to key j (j <= i)."""

    def check() -> str:
        for T in (4, 1, 7):
            out = expect_tensor(fn(T), "causal_mask")
            right = torch.ones(T, T, dtype=torch.bool).tril()
            if out.shape != (T, T):
                raise Mistake(f"causal_mask({T}) should have shape ({T}, {T}), got {tuple(out.shape)}.")
            if out.dtype != torch.bool:
                raise Mistake(
                    f"the mask has dtype {out.dtype}: return booleans (True = may attend), e.g. with "
                    ".bool() or dtype=torch.bool. A float mask means something else in PyTorch: it is "
                    "added to the scores."
                )
            if torch.equal(out, right):
                continue
            ones = torch.ones(T, T, dtype=torch.bool)
            if torch.equal(out, ones.triu(1)):
                raise Mistake(
                    "the meaning is inverted: True must mark what a query MAY attend to (the past and "
                    "itself), the lower triangle; you marked the blocked future."
                )
            if torch.equal(out, ones.triu()):
                raise Mistake(
                    "upper triangle: that lets each token see the future, not the past. Query i (row) "
                    "may attend to keys j <= i (columns): the lower triangle, torch.tril."
                )
            if torch.equal(out, ones.tril(-1)):
                raise Mistake(
                    "the diagonal is excluded (off by one): each token must be able to attend to "
                    "itself, so keep the diagonal (tril with diagonal=0)."
                )
            if torch.equal(out, ones.tril(1)):
                raise Mistake(
                    "off by one: each query also sees the next token. Keep only j <= i (diagonal=0)."
                )
            raise Mistake(f"causal_mask({T}) should be True exactly where column j <= row i.")
        return "(T, T) booleans, True on and below the diagonal: each token sees itself and the past."

    return run_checker("causal_mask", check)


# ---- Exercise: masked attention -------------------------------------------------------------
def _right_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def _attention_mistakes(q, k, v, mask):
    """(function giving the wrong weights, hint) for each plausible mistake."""
    d_k, d_v = q.shape[-1], v.shape[-1]
    raw = q @ k.transpose(-2, -1)
    blocked = float("-inf")

    def masked(scores, m=mask):
        return scores if m is None else scores.masked_fill(~m, blocked)

    mistakes = [
        (lambda: torch.softmax(masked(raw), -1),
         "missing scaling: divide the scores by sqrt(d_k) before the softmax, or large d_k pushes "
         "the softmax into saturation (one weight near 1, the others near 0)."),
        (lambda: torch.softmax(masked(raw / d_k), -1),
         "you divided by d_k: divide by its square root, sqrt(d_k) (the scores' standard deviation)."),
        (lambda: torch.softmax(masked(raw / math.sqrt(d_v)), -1),
         "you scaled by sqrt(d_v), the values' size: scale by sqrt(d_k), the size of queries and keys."),
        (lambda: torch.softmax(masked(raw / math.sqrt(d_k)), -2),
         "softmax over the wrong dimension: each query's weights over the keys must sum to 1, so "
         "take the softmax over the last dimension (dim=-1), not over the queries."),
        (lambda: torch.softmax(masked(raw / math.sqrt(d_k)), 0),
         "softmax over the wrong dimension (the batch): take it over the keys, dim=-1."),
        (lambda: torch.softmax(masked(raw / math.sqrt(d_k)), 1),
         "softmax over the wrong dimension: take it over the keys, the last dimension (dim=-1)."),
    ]
    if mask is not None:
        scaled = raw / math.sqrt(d_k)
        mistakes += [
            (lambda: torch.softmax(scaled, -1) * mask,
             "mask applied after the softmax: the rows no longer sum to 1 (the blocked keys took "
             "their share of the probability). Fill the blocked scores with -inf BEFORE the softmax."),
            (lambda: torch.softmax(scaled, -1).masked_fill(~mask, 0.0),
             "mask applied after the softmax: the rows no longer sum to 1. Fill the blocked scores "
             "with -inf BEFORE the softmax."),
            (lambda: torch.softmax(scaled.masked_fill(mask, blocked), -1),
             "the mask's meaning is inverted: True means 'may attend' (PyTorch's convention), so "
             "block where the mask is False: scores.masked_fill(~mask, float('-inf'))."),
            (lambda: torch.softmax(scaled.masked_fill(~mask, 0.0), -1),
             "blocked scores set to 0 still get weight exp(0) > 0: fill them with float('-inf') "
             "(or a very large negative number) so that their weight is exactly 0."),
            (lambda: torch.softmax(scaled.masked_fill(mask, 0.0), -1),
             "the mask's meaning is inverted (True = may attend), and blocked scores must be -inf, not 0."),
            (lambda: torch.softmax(scaled, -1),
             "the mask was ignored: block the scores where mask is False before the softmax."),
        ]
    return mistakes


def masked_attention(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> Verdict:
    """Check ``fn(q, k, v, mask=None) -> (output, weights)``: scaled dot-product attention with an
    optional boolean mask (True = may attend), on any leading dimensions."""

    def check() -> str:
        gen = torch.Generator().manual_seed(0)
        # d_k = 16 (so sqrt(d_k) = 4 differs from d_k) and d_v = 5; 3 queries, 6 keys.
        q = torch.randn(2, 3, 16, generator=gen) * 2
        k = torch.randn(2, 6, 16, generator=gen) * 2
        v = torch.randn(2, 6, 5, generator=gen)
        mask = torch.rand(2, 3, 6, generator=gen) > 0.5
        mask[..., 0], mask[..., 1] = True, False  # every row allows some key and blocks another
        q4 = torch.randn(2, 2, 4, 16, generator=gen)
        k4 = torch.randn(2, 2, 4, 16, generator=gen)
        v4 = torch.randn(2, 2, 4, 5, generator=gen)
        causal = torch.ones(4, 4, dtype=torch.bool).tril()

        cases = [
            ("without a mask", (q, k, v), None),
            ("with a (batch, n_q, n_k) mask", (q, k, v), mask),
            ("with (batch, heads, seq, d) inputs and a (seq, seq) causal mask", (q4, k4, v4), causal),
        ]
        for label, (qq, kk, vv), m in cases:
            args = (qq.clone(), kk.clone(), vv.clone())
            try:
                result = fn(*args) if m is None else fn(*args, mask=m.clone())
            except NotImplementedError:
                raise
            except RuntimeError as exc:
                raise Mistake(
                    f"{label}, q {tuple(qq.shape)}, k {tuple(kk.shape)}, v {tuple(vv.shape)}: your "
                    f"code raised RuntimeError: {exc}. The scores are q @ k.transpose(-2, -1), of "
                    "shape (..., n_q, n_k); the output is weights @ v."
                ) from None
            if not isinstance(result, tuple) or len(result) != 2:
                raise Mistake("return a pair (output, weights).")
            out = expect_tensor(result[0], "the output")
            weights = expect_tensor(result[1], "the weights")
            right_out, right_w = _right_attention(qq, kk, vv, m)
            if out.shape == right_w.shape and weights.shape == right_out.shape:
                raise Mistake("return (output, weights) in that order: the output first.")
            if weights.shape != right_w.shape:
                raise Mistake(
                    f"{label}: the weights should have shape (..., n_q, n_k) = {tuple(right_w.shape)}, "
                    f"got {tuple(weights.shape)}. Multiply the queries by the keys transposed on their "
                    "last two dimensions: k.transpose(-2, -1)."
                )
            if not _same(weights, right_w):
                _match(weights, _attention_mistakes(qq, kk, vv, m))
                raise Mistake(
                    f"{label}: the weights differ from softmax(q @ k^T / sqrt(d_k)) with the blocked "
                    "scores set to -inf."
                )
            if out.shape != right_out.shape:
                raise Mistake(
                    f"{label}: the output should have shape (..., n_q, d_v) = {tuple(right_out.shape)}, "
                    f"got {tuple(out.shape)}: multiply the weights by the values, weights @ v."
                )
            if not _same(out, right_out):
                raise Mistake(f"{label}: the weights are right but the output is not weights @ v.")
        return "scaled by 1/sqrt(d_k), softmax over the keys, blocked scores -inf before the softmax."

    return run_checker("masked_attention", check)


# ---- Exercise: split and merge heads --------------------------------------------------------
def split_merge_heads(
    split_heads: Callable[[torch.Tensor, int], torch.Tensor],
    merge_heads: Callable[[torch.Tensor], torch.Tensor],
) -> Verdict:
    """Check ``split_heads(x, num_heads)``: ``(batch, seq, d)`` -> ``(batch, heads, seq, d_head)``,
    head h holding features ``h*d_head .. (h+1)*d_head - 1``; and ``merge_heads``, its inverse."""

    def check() -> str:
        batch, seq, heads, d_head = 2, 5, 3, 4
        # Distinct values that say where they came from: position p, feature f -> 100 p + f.
        x = (100 * torch.arange(seq)[:, None] + torch.arange(heads * d_head)).float()
        x = x.expand(batch, seq, heads * d_head).clone()
        x[1] += 10_000
        right = x.view(batch, seq, heads, d_head).transpose(1, 2)

        out = expect_tensor(split_heads(x.clone(), heads), "split_heads")
        if out.shape == (batch, seq, heads, d_head):
            raise Mistake(
                "split_heads returned (batch, seq, heads, d_head): swap the seq and heads "
                "dimensions with .transpose(1, 2) to get (batch, heads, seq, d_head)."
            )
        if out.shape != right.shape:
            raise Mistake(
                f"split_heads(x of shape {tuple(x.shape)}, num_heads={heads}) should have shape "
                f"(batch, heads, seq, d_head) = {tuple(right.shape)}, got {tuple(out.shape)}."
            )
        if not torch.equal(out, right):
            if torch.equal(out, x.reshape(batch, heads, seq, d_head)):
                raise Mistake(
                    "reshaping straight to (batch, heads, seq, d_head) mixes features of different "
                    "positions into one head: view as (batch, seq, heads, d_head) first, then "
                    ".transpose(1, 2)."
                )
            if torch.equal(out, x.view(batch, seq, d_head, heads).permute(0, 3, 1, 2)):
                raise Mistake(
                    "the heads are interleaved (head h got features h, h + heads, ...): head h must "
                    "hold the contiguous block h*d_head .. (h+1)*d_head - 1, so view as "
                    "(batch, seq, heads, d_head)."
                )
            raise Mistake(
                "split_heads puts the wrong numbers in the heads: out[b, h, t] must be "
                "x[b, t, h*d_head:(h+1)*d_head]."
            )
        try:
            # contiguous, like the output of weights @ v in attention
            merged = expect_tensor(merge_heads(right.contiguous()), "merge_heads")
        except NotImplementedError:
            raise
        except RuntimeError as exc:
            if "view" in str(exc):
                raise Mistake(
                    "merge_heads: .view fails after .transpose, because transposing does not move "
                    "the data; use .reshape(...) (or .contiguous().view(...))."
                ) from None
            raise
        if merged.shape != x.shape:
            raise Mistake(
                f"merge_heads(x of shape {tuple(right.shape)}) should have shape (batch, seq, "
                f"heads * d_head) = {tuple(x.shape)}, got {tuple(merged.shape)}."
            )
        if not torch.equal(merged, x):
            if torch.equal(merged, right.reshape(batch, seq, heads * d_head)):
                raise Mistake(
                    "heads merged in the wrong order: reshaping (batch, heads, seq, d_head) straight "
                    "to (batch, seq, heads * d_head) mixes positions. .transpose(1, 2) back to "
                    "(batch, seq, heads, d_head) first, then .reshape."
                )
            if torch.equal(merged, right.permute(0, 2, 3, 1).reshape(batch, seq, heads * d_head)):
                raise Mistake(
                    "heads merged in the wrong order: the features came out interleaved across "
                    "heads. Put each head's d_head features side by side: .transpose(1, 2).reshape(...)."
                )
            raise Mistake("merge_heads(split_heads(x)) should give x back exactly.")
        seq1 = x[:, :1].clone()  # one position: catches code that assumes seq > 1 or seq == heads
        if not torch.equal(merge_heads(split_heads(seq1, heads)), seq1):
            raise Mistake("merge_heads(split_heads(x)) fails for a sequence of length 1.")
        return "head h holds features h*d_head..(h+1)*d_head-1 of every position; merge undoes split."

    return run_checker("split_merge_heads", check)
