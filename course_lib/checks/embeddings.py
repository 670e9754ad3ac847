"""Checkers for notebook 03 (word embeddings): PPMI, the negative-sampling loss, nearest neighbours."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib.checks.core import Mistake, Verdict, expect_tensor, run_checker

__all__ = ["ppmi", "sgns_loss", "nearest_neighbours"]



def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=tol, rtol=tol))


# ---- PPMI -----------------------------------------------------------------------------------
def _pmi_parts(counts: torch.Tensor):
    total = counts.sum()
    rows = counts.sum(dim=1, keepdim=True)
    cols = counts.sum(dim=0, keepdim=True)
    return total, rows, cols


def _clip_where_counted(pmi: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    return torch.where(counts > 0, pmi.clamp(min=0), torch.zeros_like(pmi))


def _reference_ppmi(counts: torch.Tensor) -> torch.Tensor:
    total, rows, cols = _pmi_parts(counts)
    return _clip_where_counted(torch.log(counts * total / (rows * cols)), counts)


def _ppmi_cases() -> list[torch.Tensor]:
    return [
        # square but not symmetric: row and column sums differ, so swapped marginals show
        torch.tensor([[10.0, 0.0, 3.0, 1.0], [2.0, 8.0, 0.0, 4.0], [1.0, 1.0, 6.0, 0.0], [0.0, 5.0, 2.0, 2.0]]),
        # words x contexts need not be square
        torch.tensor([[4.0, 1.0, 0.0], [2.0, 2.0, 7.0]]),
        # symmetric co-occurrence counts with a word that never co-occurs (a row of zeros)
        torch.tensor([[0.0, 4.0, 1.0, 0.0], [4.0, 2.0, 3.0, 0.0], [1.0, 3.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]),
    ]


# Plausible wrong formulas, each with the hint that names it.
_PPMI_MISTAKES = {
    "forgot the total count N: PMI = log( N(w,c) * N / (N(w) * N(c)) ), i.e. divide each count "
    "and each sum by N to get probabilities.": lambda counts, total, rows, cols: torch.log(counts / (rows * cols)),
    "the marginals are swapped: P(w) comes from the row sums (sum over dim=1), P(c) from the "
    "column sums (dim=0).": lambda counts, total, rows, cols: torch.log(counts * total / (rows.T * cols.T)),
    "wrong marginals: P(w) is the row sum (dim=1) and P(c) the column sum (dim=0); do not use "
    "the same sum for both.": lambda counts, total, rows, cols: torch.log(counts * total / (rows * rows.T)),
    "wrong marginals: P(c) is the column sum (dim=0), P(w) the row sum (dim=1); do not use "
    "the same sum for both.": lambda counts, total, rows, cols: torch.log(counts * total / (cols.T * cols)),
    "that is log base 2; use the natural logarithm, torch.log, like the library.": lambda counts, total, rows, cols: torch.log2(counts * total / (rows * cols)),
    "a probability is a count divided by the total: P(w,c) = N(w,c)/N, P(w) = N(w)/N, "
    "P(c) = N(c)/N (one N too many or too few).": lambda counts, total, rows, cols: torch.log(counts / (total * rows * cols)),
    "PMI is the log of the ratio P(w,c) / (P(w) P(c)), not the ratio itself.": lambda counts, total, rows, cols: counts * total / (rows * cols),
}


def ppmi(fn: Callable[[torch.Tensor], torch.Tensor]) -> Verdict:
    """Check ``fn(counts)``: (V, C) float counts -> (V, C) positive PMI, natural log, 0 where count 0."""

    def check() -> str:
        for counts in _ppmi_cases():
            given = counts.clone()
            with torch.no_grad():
                out = expect_tensor(fn(given), "ppmi")
            if not torch.equal(given, counts):
                raise Mistake("your function changed the counts it was given (an in-place operation): work on a copy.")
            if out.shape != counts.shape:
                raise Mistake(
                    f"counts of shape {tuple(counts.shape)} should give a PPMI matrix of the same "
                    f"shape, got {tuple(out.shape)}: keep the sums with keepdim=True so they broadcast."
                )
            expected = _reference_ppmi(counts)
            if _close(out, expected):
                continue
            if torch.isnan(out).any() or torch.isinf(out).any():
                raise Mistake(
                    "the result holds nan or inf: log(0) = -inf where a count is 0 (and 0/0 = nan for "
                    "a word with no counts). PPMI is 0 there: torch.where(counts > 0, ..., 0)."
                )
            total, rows, cols = _pmi_parts(counts)
            raw_pmi = torch.log(counts * total / (rows * cols))
            if (out < -1e-6).any():
                if _close(torch.where(counts > 0, out, torch.zeros_like(out)), torch.where(counts > 0, raw_pmi, torch.zeros_like(out))):
                    raise Mistake("negative values left in: PPMI keeps only the positive part, max(PMI, 0) (.clamp(min=0)).")
                raise Mistake("PPMI is never negative: clip with .clamp(min=0).")
            variants = _PPMI_MISTAKES
            for hint, make in variants.items():
                try:
                    wrong = make(counts, total, rows, cols)
                except RuntimeError:
                    continue  # e.g. swapped marginals of a non-square matrix do not broadcast
                if wrong.shape != counts.shape:
                    continue
                wrong = torch.where(torch.isfinite(wrong), wrong, torch.zeros_like(wrong))
                if _close(out, _clip_where_counted(wrong, counts)):
                    raise Mistake(hint)
            raise Mistake(
                "the values are not PPMI = max(0, log( N(w,c) * N / (N(w) * N(c)) )) with N(w) the row "
                "sums, N(c) the column sums and N the total."
            )
        return "positive PMI, right marginals, 0 where the count is 0, no nan."

    return run_checker("ppmi", check)


# ---- SGNS loss ------------------------------------------------------------------------------
def _sgns_reference(center, context, negatives):
    pos = (center * context).sum(-1)
    neg = torch.einsum("bkd,bd->bk", negatives, center)
    return -(F.logsigmoid(pos) + F.logsigmoid(-neg).sum(-1)).mean()


def _sgns_variants(center, context, negatives) -> dict[str, torch.Tensor]:
    pos = (center * context).sum(-1)
    neg = torch.einsum("bkd,bd->bk", negatives, center)
    neg_ctx = torch.einsum("bkd,bd->bk", negatives, context)
    both = torch.cat([pos[:, None], neg], dim=1)
    return {
        "sign error on the negatives: noise words must score low, so use log sigmoid(-u . n_k) "
        "(the minus goes inside the sigmoid).": -(F.logsigmoid(pos) + F.logsigmoid(neg).sum(-1)).mean(),
        "the K negative terms are averaged; sum them: every noise word adds its own "
        "-log sigmoid(-u . n_k).": -(F.logsigmoid(pos) + F.logsigmoid(-neg).mean(-1)).mean(),
        "the loss is summed over the batch; take the mean over the batch (the sum over the K "
        "negatives stays a sum).": -(F.logsigmoid(pos) + F.logsigmoid(-neg).sum(-1)).sum(),
        "everything is averaged together (over batch and negatives); the per-pair loss sums the K "
        "negative terms, then the batch is averaged.": -torch.cat([F.logsigmoid(pos)[:, None], F.logsigmoid(-neg)], 1).mean(),
        "that is a softmax over the true context and the noise words; negative sampling scores each "
        "one with its own sigmoid (a yes/no question per word).": F.cross_entropy(both, torch.zeros(len(pos), dtype=torch.long)),
        "the negatives are missing: add -sum_k log sigmoid(-u . n_k) for the K noise words.": -F.logsigmoid(pos).mean(),
        "the sign of the whole loss is flipped: the loss is the *negative* log-likelihood, so it is "
        "positive and training makes it smaller.": (F.logsigmoid(pos) + F.logsigmoid(-neg).sum(-1)).mean(),
        "the noise words are scored against the context vector; score them against the centre "
        "vector u, like the true context: u . n_k.": -(F.logsigmoid(pos) + F.logsigmoid(-neg_ctx).sum(-1)).mean(),
        "the log is missing: the loss is -log sigmoid(...), not -sigmoid(...).": -(torch.sigmoid(pos) + torch.sigmoid(-neg).sum(-1)).mean(),
    }


def sgns_loss(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> Verdict:
    """Check ``fn(center (B,d), context (B,d), negatives (B,K,d))`` -> the mean SGNS loss, a scalar."""

    def check() -> str:
        gen = torch.Generator().manual_seed(0)
        for batch, k, dim in [(6, 3, 4), (1, 1, 3), (5, 4, 8)]:
            center = torch.randn(batch, dim, generator=gen)
            context = torch.randn(batch, dim, generator=gen)
            negatives = torch.randn(batch, k, dim, generator=gen)
            args = (center.clone(), context.clone(), negatives.clone())
            out = expect_tensor(fn(*args), "sgns_loss")
            if not (torch.equal(args[0], center) and torch.equal(args[1], context) and torch.equal(args[2], negatives)):
                raise Mistake("your function changed its inputs in place: work on new tensors.")
            if out.numel() == batch and batch > 1:
                raise Mistake(
                    f"returned {tuple(out.shape)}: one loss per pair. Return their mean over the batch, "
                    "a single number (0-dim tensor)."
                )
            if out.numel() != 1:
                raise Mistake(f"return one number (the mean loss), got a tensor of shape {tuple(out.shape)}.")
            out = out.reshape(())
            expected = _sgns_reference(center, context, negatives)
            if _close(out, expected, 1e-4):
                continue
            for hint, wrong in _sgns_variants(center, context, negatives).items():
                if _close(out, wrong, 1e-4):
                    raise Mistake(hint)
            raise Mistake(
                "the value is not mean_b[ -log sigmoid(u . v) - sum_k log sigmoid(-u . n_k) ] with u the "
                "centre vectors, v the context vectors and n_k the negatives."
            )
        return "-log sigmoid(u.v) - sum_k log sigmoid(-u.n_k), averaged over the batch."

    return run_checker("sgns_loss", check)


# ---- nearest neighbours ---------------------------------------------------------------------
def _neighbour_case() -> tuple[torch.Tensor, int, int]:
    """Vectors where the rankings by cosine, by dot product, by column-normalised dot product
    and by 'similarity below 1' all differ, with clear gaps between cosines (no ties)."""
    vectors = torch.tensor(
        [
            [3.0, 3.0, 2.0],  # 0: the query
            [1.0, -1.5, -0.5],  # 1: cos -0.285
            [1.5, 2.0, 2.0],  # 2: cos 0.966
            [6.0, 6.0, 4.0],  # 3: another word pointing the same way as the query (cos 1)
            [1.5, 3.0, -2.0],  # 4: cos 0.519, but a long vector: ranks higher on the dot product
            [1.5, -0.5, 1.5],  # 5: cos 0.587
            [1.5, -1.0, 2.5],  # 6: cos 0.450
        ]
    )
    return vectors, 0, 4


def _cosine_order(vectors: torch.Tensor, query: int) -> torch.Tensor:
    unit = vectors / vectors.norm(dim=1, keepdim=True)
    sims = unit @ unit[query]
    sims[query] = -math.inf
    return sims.argsort(descending=True)


def nearest_neighbours(fn: Callable[[torch.Tensor, int, int], torch.Tensor]) -> Verdict:
    """Check ``fn(vectors (V,d), query_id, k)`` -> (k,) ids of the k most cosine-similar rows, query left out."""

    def check() -> str:
        vectors, query, k = _neighbour_case()
        out = fn(vectors.clone(), query, k)
        if isinstance(out, (list, tuple)):
            out = torch.as_tensor(out)
        out = expect_tensor(out, "nearest_neighbours")
        if out.is_floating_point():
            raise Mistake("return the ids (integers, e.g. the indices from .topk), not the similarities.")
        out = out.flatten()
        order = _cosine_order(vectors, query)
        if query in out.tolist():
            raise Mistake("the query word is among its own neighbours (its cosine with itself is 1): leave it out.")
        if len(out) != k:
            raise Mistake(f"asked for k={k} neighbours, got {len(out)}: return exactly k ids.")
        if out.tolist() == order[:k].tolist():
            # a second query, to catch code that only works for id 0
            other = fn(vectors.clone(), 6, 2)
            other = torch.as_tensor(other).flatten().tolist()
            if other != _cosine_order(vectors, 6)[:2].tolist():
                raise Mistake("right for query 0 but not for query 6: use the query argument, not a fixed row.")
            return "cosine similarity, most similar first, the query itself left out."
        dots = vectors @ vectors[query]
        dots[query] = -math.inf
        if out.tolist() == dots.argsort(descending=True)[:k].tolist():
            raise Mistake(
                "that is the ranking by dot product, which favours long vectors: divide each vector by "
                "its norm first (cosine similarity), row by row."
            )
        columns = vectors / vectors.norm(dim=0, keepdim=True).clamp(min=1e-12)
        col_sims = columns @ columns[query]
        col_sims[query] = -math.inf
        if out.tolist() == col_sims.argsort(descending=True)[:k].tolist():
            raise Mistake("the norms were taken over columns (dim=0); normalise each word vector (each row, dim=1).")
        if out.tolist() == order.flip(0)[1:k + 1].tolist() or out.tolist() == order.flip(0)[:k].tolist():
            raise Mistake("those are the least similar words: sort by decreasing similarity (descending=True, or topk).")
        if sorted(out.tolist()) == sorted(order[:k].tolist()):
            raise Mistake("the right neighbours in the wrong order: most similar first.")
        if 3 not in out.tolist():
            raise Mistake(
                "a different word whose vector points the same way as the query's (cosine 1) was left out: "
                "leave out the query by its id, not by its similarity."
            )
        raise Mistake("those are not the k rows with the highest cosine similarity to the query.")

    return run_checker("nearest_neighbours", check)
