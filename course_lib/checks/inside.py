"""Checkers for notebook 10 (looking inside): measuring what an attention head does.

Each checker builds attention weights whose answer is known (planted heads, uniform and one-hot
rows, causal and bidirectional patterns), runs the learner's function on copies, and names the
mistake when the result matches a known wrong formula.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from course_lib.checks.core import Mistake, Verdict, expect_tensor, run_checker

__all__ = ["head_entropy", "attention_distance", "previous_token_head"]



def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4) -> bool:
    a, b = a.double(), b.double()
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=tol, rtol=1e-4))


def _random_weights(heads: int, n_q: int, n_k: int, seed: int, causal: bool = False,
                    sharpness: float = 2.0) -> torch.Tensor:
    """Softmax weights ``(heads, n_q, n_k)``; with ``causal`` the upper triangle is exactly 0."""
    gen = torch.Generator().manual_seed(seed)
    scores = sharpness * torch.randn(heads, n_q, n_k, generator=gen, dtype=torch.float64)
    if causal:
        scores = scores.masked_fill(torch.ones(n_q, n_k).triu(1).bool(), float("-inf"))
    return scores.softmax(-1)


def _call(fn, weights: torch.Tensor, what: str):
    copy = weights.clone()
    out = fn(copy)
    if not torch.equal(copy, weights):
        raise Mistake("your function changed the weights in place; work on a copy (no += or *_ methods).")
    return out


# ---- exercise 1: attention entropy ---------------------------------------------------------------
def _entropy_rows(p: torch.Tensor) -> torch.Tensor:
    return -torch.xlogy(p, p).sum(-1)


def head_entropy(fn: Callable[[torch.Tensor], torch.Tensor]) -> Verdict:
    """Check ``fn(weights)``: ``(heads, n_q, n_k)`` -> ``(heads,)`` mean entropy (nats) of the query rows."""

    def check() -> str:
        cases = [
            _random_weights(3, 6, 6, seed=0, causal=True),  # zeros above the diagonal: 0 log 0
            _random_weights(2, 3, 7, seed=1),  # more keys than queries: rows and columns differ
        ]
        uniform = torch.full((1, 4, 4), 0.25, dtype=torch.float64)
        one_hot = torch.eye(5, dtype=torch.float64)[None]
        for p in cases + [uniform, one_hot]:
            out = expect_tensor(_call(fn, p, "head_entropy"), "head_entropy")
            rows = _entropy_rows(p)
            right = rows.mean(-1)
            heads, n_q, n_k = p.shape
            if out.is_floating_point() and bool(torch.isnan(out).any()):
                raise Mistake(
                    "NaN in the result: the zero weights give 0 * log 0 = 0 * -inf = NaN. Use "
                    "torch.xlogy(p, p) (which takes 0 log 0 = 0) or add a tiny number inside the log."
                )
            if out.shape == rows.shape and n_q > 1:
                raise Mistake(
                    f"shape {tuple(out.shape)}: one entropy per query row; average them over the "
                    "queries to get one number per head."
                )
            if out.shape != right.shape:
                raise Mistake(
                    f"weights of shape {tuple(p.shape)} (heads, n_q, n_k) should give shape ({heads},), "
                    f"one number per head; got {tuple(out.shape)}."
                )
            if not out.is_floating_point():
                raise Mistake(f"the entropy is a real number; got dtype {out.dtype}.")
            if _close(out, -right) and not _close(out, right):
                raise Mistake("the sign: entropy is H = -sum p log p, which is >= 0.")
            if _close(out, right / math.log(2)) and not _close(out, right):
                raise Mistake("that is the entropy in bits (log2); use the natural log, so H is in nats.")
            if _close(out, rows.sum(-1)) and not _close(out, right):
                raise Mistake("that is the sum over the query rows; take their mean.")
            columns = -torch.xlogy(p, p).sum(-2).mean(-1)
            if _close(out, columns) and not _close(out, right):
                raise Mistake(
                    "you summed over the queries (dim -2); each query's row (dim -1, over the keys) is "
                    "the distribution whose entropy we want."
                )
            if not _close(out, right):
                raise Mistake(
                    f"for weights of shape {tuple(p.shape)} expected {[round(v, 4) for v in right.tolist()]}, "
                    f"got {[round(float(v), 4) for v in out.tolist()]}: H(row) = -sum_k p_k log p_k, "
                    "averaged over the rows."
                )
        return "mean over the queries of -sum p log p, in nats, with 0 log 0 = 0 (uniform over 4 keys: log 4)."

    return run_checker("head_entropy", check)


# ---- exercise 2: mean attention distance ----------------------------------------------------------
def _distance_matrix(n: int) -> torch.Tensor:
    positions = torch.arange(n, dtype=torch.float64)
    return positions[:, None] - positions[None, :]


def attention_distance(fn: Callable[[torch.Tensor], torch.Tensor]) -> Verdict:
    """Check ``fn(weights)``: ``(heads, seq, seq)`` -> ``(heads,)`` mean over queries of sum_j p_ij |i - j|."""

    def check() -> str:
        previous = torch.diag(torch.ones(5, dtype=torch.float64), -1)[:6, :6]
        previous[0, 0] = 1.0  # the first token has no previous token: it looks at itself
        cases = [
            _random_weights(3, 7, 7, seed=2),  # bidirectional: keys on both sides
            _random_weights(2, 6, 6, seed=3, causal=True),
            torch.stack([torch.eye(6, dtype=torch.float64), previous]),  # distances 0 and 5/6
        ]
        for p in cases:
            out = expect_tensor(_call(fn, p, "attention_distance"), "attention_distance")
            d = _distance_matrix(p.shape[-1])
            per_query = (p * d.abs()).sum(-1)
            right = per_query.mean(-1)
            if out.shape == per_query.shape:
                raise Mistake(
                    f"shape {tuple(out.shape)}: one distance per query; average over the queries to get "
                    "one number per head."
                )
            if out.shape != right.shape:
                raise Mistake(
                    f"weights of shape {tuple(p.shape)} (heads, seq, seq) should give shape "
                    f"({p.shape[0]},), got {tuple(out.shape)}."
                )
            if not out.is_floating_point():
                raise Mistake(f"the distance is an average, a real number; got dtype {out.dtype}.")
            if _close(out, right):
                continue
            if _close(out, (p * d).sum(-1).mean(-1)) or _close(out, (p * -d).sum(-1).mean(-1)):
                raise Mistake(
                    "signed distances: a key 2 positions after the query is as far as one 2 before. "
                    "Use the absolute value |i - j|."
                )
            if _close(out, (p * d.square()).sum(-1).mean(-1)):
                raise Mistake("squared distances; use |i - j|, in positions.")
            if _close(out, d.abs().mean().expand_as(right)) or _close(out, d.abs().mean(-1).mean().expand_as(right)):
                raise Mistake(
                    "the result does not depend on the weights: weight each distance |i - j| by the "
                    "attention p_ij and sum over the keys."
                )
            argmax = (p.argmax(-1) - torch.arange(p.shape[-1])).abs().double().mean(-1)
            if _close(out, argmax):
                raise Mistake(
                    "that is the distance to each query's strongest key only; take the expected distance "
                    "over all keys, sum_j p_ij |i - j|."
                )
            if _close(out, per_query.sum(-1)):
                raise Mistake("that is the sum over the queries; take their mean.")
            raise Mistake(
                f"for weights of shape {tuple(p.shape)} expected {[round(v, 4) for v in right.tolist()]}, "
                f"got {[round(float(v), 4) for v in out.tolist()]}: sum_j p_ij |i - j|, averaged over i."
            )
        return "the expected |i - j| under each query's weights, averaged over the queries."

    return run_checker("attention_distance", check)


# ---- exercise 3: find the previous-token head ------------------------------------------------------
def _planted(layers: int, heads: int, seq: int, seed: int, causal: bool, plant: dict) -> torch.Tensor:
    """Random weights ``(layers, heads, seq, seq)`` with special heads planted.

    ``plant`` maps ``(layer, head)`` to ``"previous"`` (0.7 on i - 1), ``"self"`` (0.9 on i),
    ``"next"`` (0.9 on i + 1), ``"first"`` (0.6 on key 0: below 0.7 even for query 1, whose
    previous token is key 0) or ``"spike"`` (one query puts 1.0 on its previous token, the others
    spread evenly).
    """
    stack = torch.stack([_random_weights(heads, seq, seq, seed + 10 * i, causal, sharpness=0.5)
                         for i in range(layers)])
    allowed = torch.ones(seq, seq, dtype=torch.float64)
    if causal:
        allowed = allowed.tril()
    for (layer, head), kind in plant.items():
        w = allowed / allowed.sum(-1, keepdim=True)
        if kind == "spike":
            w[seq - 2] = 0.0
            w[seq - 2, seq - 3] = 1.0
        else:
            share = {"previous": 0.7, "self": 0.9, "next": 0.9, "first": 0.6}[kind]
            for i in range(seq):
                j = {"previous": i - 1, "self": i, "next": i + 1, "first": 0}[kind]
                if 0 <= j < seq and allowed[i, j]:
                    rest = allowed[i].clone()
                    rest[j] = 0.0
                    total = rest.sum()
                    w[i] = (1 - share) * rest / total if total > 0 else rest
                    w[i, j] = share if total > 0 else 1.0
        stack[layer, head] = w
    return stack


def previous_token_head(fn: Callable[[torch.Tensor], tuple[int, int]]) -> Verdict:
    """Check ``fn(weights)``: ``(layers, heads, seq, seq)`` -> ``(layer, head)`` of the previous-token head.

    The previous-token head is the one whose queries put, on average over the queries that have a
    previous token, the most weight on the token just before them.
    """

    def check() -> str:
        self_hint = ("that head attends to *itself* (the diagonal p[i, i]); the previous token is one "
                     "step left of the diagonal, p[i, i - 1].")
        first_hint = "that head attends to the first token; score p[i, i - 1] for every query i >= 1."
        cases = [
            # bidirectional (BERT-like), first: keys after the query exist, so p[i, i + 1] is not 0
            (_planted(2, 3, 9, seed=1, causal=False,
                      plant={(0, 2): "previous", (1, 0): "next", (1, 1): "self", (0, 0): "first"}), (0, 2),
             {(1, 0): "that head attends to the *next* token (p[i, i + 1]); the previous token of query i "
                      "is key i - 1: torch.diagonal(w, offset=-1, dim1=-2, dim2=-1).",
              (1, 1): self_hint, (0, 0): first_hint}),
            # causal (GPT-like): a self head, a first-token head and a single spike as distractors
            (_planted(3, 4, 8, seed=0, causal=True,
                      plant={(2, 1): "previous", (1, 3): "self", (1, 0): "first", (0, 2): "spike"}), (2, 1),
             {(1, 3): self_hint, (1, 0): first_hint,
              (0, 2): "that head has one strong previous-token link and nothing else: average p[i, i - 1] "
                      "over the queries instead of taking the maximum."}),
        ]
        for stack, right, hints in cases:
            layers, heads = stack.shape[:2]
            got = _call(fn, stack, "previous_token_head")
            if isinstance(got, torch.Tensor) and got.numel() == 2:
                got = tuple(got.flatten().tolist())
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = got.item()
            if isinstance(got, int) and not isinstance(got, bool):
                hint = " (it is the flat index layer * num_heads + head)" if got == right[0] * heads + right[1] else ""
                raise Mistake(
                    f"return a pair (layer, head); you returned one number {got}{hint}: divmod(index, "
                    "num_heads) turns a flat index into (layer, head)."
                )
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise Mistake(f"return a pair (layer, head), got {got!r}.")
            try:
                got = (int(got[0]), int(got[1]))
            except (TypeError, ValueError):
                raise Mistake(f"return two ints (layer, head), got {got!r}.") from None
            if got == right:
                continue
            if got == (right[1], right[0]):
                raise Mistake("that is (head, layer): return the layer first, then the head.")
            if got in hints:
                raise Mistake(hints[got])
            if not (0 <= got[0] < layers and 0 <= got[1] < heads):
                raise Mistake(f"({got[0]}, {got[1]}) is not a head of a model with {layers} layers x {heads} heads.")
            raise Mistake(
                f"in a test model the previous-token head is (layer {right[0]}, head {right[1]}), you found "
                f"{got}: score each head by the mean of p[i, i - 1] over i >= 1, then take the largest."
            )
        return "the head with the largest mean weight on the previous token, as (layer, head)."

    return run_checker("previous_token_head", check)
