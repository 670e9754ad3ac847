"""Checkers for notebook 07 (the Transformer): layer norm by hand, the decoder's combined mask, and
one beam-search step."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib.checks.core import Mistake, Verdict, expect_tensor, run_checker

__all__ = ["layer_norm", "decoder_mask", "beam_search_step"]



def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-4)


# ---- layer norm ------------------------------------------------------------------------------
def layer_norm(fn: Callable[..., torch.Tensor]) -> Verdict:
    """Check ``fn(x, weight, bias, eps)``: layer norm over the last dimension of ``x (..., d)``."""

    def check() -> str:
        gen = torch.Generator().manual_seed(0)
        # few features (d = 4): biased and unbiased variance differ by a factor 4/3;
        # a large eps: inside and outside the square root differ clearly.
        x = torch.randn(3, 5, 4, generator=gen) * 2 + 1
        w = torch.rand(4, generator=gen) + 0.5
        b = torch.randn(4, generator=gen)
        eps = 0.5
        out = expect_tensor(fn(x.clone(), w.clone(), b.clone(), eps), "layer_norm")
        right = F.layer_norm(x, (4,), w, b, eps)
        if out.shape != x.shape:
            raise Mistake(f"for x of shape {tuple(x.shape)} expected the same shape back, got {tuple(out.shape)}.")
        if _close(out, right):
            pass
        else:
            mean = x.mean(-1, keepdim=True)
            var = x.var(-1, unbiased=False, keepdim=True)
            wrong = {
                "unbiased": (x - mean) / torch.sqrt(x.var(-1, unbiased=True, keepdim=True) + eps) * w + b,
                "eps outside": (x - mean) / (torch.sqrt(var) + eps) * w + b,
                "std": (x - mean) / (var + eps) * w + b,
                "no weight": (x - mean) / torch.sqrt(var + eps) + b,
                "no bias": (x - mean) / torch.sqrt(var + eps) * w,
                "no mean": x / torch.sqrt(var + eps) * w + b,
            }
            for dim in (0, 1):
                m = x.mean(dim, keepdim=True)
                v = x.var(dim, unbiased=False, keepdim=True)
                wrong[f"dim {dim}"] = (x - m) / torch.sqrt(v + eps) * w + b
                v_u = x.var(dim, unbiased=True, keepdim=True)
                wrong[f"dim {dim} unbiased"] = (x - m) / torch.sqrt(v_u + eps) * w + b
            hints = {
                "unbiased": "use the biased variance (divide by d, not d - 1): use "
                            "x.var(-1, unbiased=False) or ((x - mean) ** 2).mean(-1).",
                "eps outside": "eps goes inside the square root: (x - mean) / sqrt(var + eps), not "
                               "(x - mean) / (sqrt(var) + eps).",
                "std": "divide by the standard deviation sqrt(var + eps), not by the variance.",
                "no weight": "multiply by the gain `weight` after normalising.",
                "no bias": "add the shift `bias` after scaling.",
                "no mean": "subtract the mean before dividing: each vector should end with mean 0.",
            }
            for key, value in wrong.items():
                if _close(out, value):
                    if key.startswith("dim"):
                        raise Mistake(
                            f"you normalised over dimension {key.split()[1]}: layer norm normalises each "
                            "vector over its features, the LAST dimension (dim=-1, keepdim=True)."
                        )
                    raise Mistake(hints[key])
            raise Mistake("the output differs from torch.nn.functional.layer_norm(x, (d,), weight, bias, eps).")
        # a 2-D input and the default shapes: catches code that hard-codes 3 dimensions
        x2 = torch.randn(6, 8, generator=gen)
        w2, b2 = torch.ones(8), torch.zeros(8)
        out2 = expect_tensor(fn(x2.clone(), w2, b2, 1e-5), "layer_norm")
        if not _close(out2, F.layer_norm(x2, (8,), w2, b2, 1e-5), atol=1e-4):
            raise Mistake("right on a 3-D input but wrong on a 2-D (batch, d) one: work on dim=-1 for any shape.")
        return "mean and biased variance over the last dimension, eps inside the square root, then gain and shift."

    return run_checker("layer_norm", check)


# ---- decoder mask ----------------------------------------------------------------------------
def _right_decoder_mask(tgt: torch.Tensor, pad_id: int) -> torch.Tensor:
    T = tgt.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    return causal & (tgt != pad_id)[:, None, None, :]


def decoder_mask(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> Verdict:
    """Check ``fn(tgt, pad_id)``: ``(batch, T)`` ids -> ``(batch, 1, T, T)`` bool, True = may attend."""

    def check() -> str:
        pad = 0
        tgt = torch.tensor([[1, 5, 6, 7, 2, 0, 0], [1, 4, 2, 0, 0, 0, 0]])
        out = expect_tensor(fn(tgt.clone(), pad), "decoder_mask")
        right = _right_decoder_mask(tgt, pad)
        if out.dtype != torch.bool:
            raise Mistake(f"return a boolean mask (True = may attend), got dtype {out.dtype}.")
        try:
            full = torch.broadcast_to(out, right.shape)
        except RuntimeError:
            raise Mistake(
                f"expected shape (batch, 1, T, T) = {tuple(right.shape)} (or one that broadcasts to it), got "
                f"{tuple(out.shape)}."
            ) from None
        if out.dim() != 4:
            raise Mistake(f"expected 4 dimensions (batch, 1, T, T) to broadcast over the heads, got {tuple(out.shape)}.")
        if torch.equal(full, right):
            # a second pad id: catches a hard-coded 0
            tgt2 = torch.tensor([[1, 5, 9, 9], [1, 9, 9, 9]])
            out2 = torch.broadcast_to(expect_tensor(fn(tgt2, 9), "decoder_mask"), (2, 1, 4, 4))
            if not torch.equal(out2, _right_decoder_mask(tgt2, 9)):
                raise Mistake("use the pad_id argument, not a fixed padding id.")
            return "causal AND key padding: no position reads a later one or a padding token."
        T = tgt.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        keys = (tgt != pad)[:, None, None, :]
        queries = (tgt != pad)[:, None, :, None]
        wrong = [
            (causal | keys, "you combined with OR: a position may attend only where BOTH the causal mask and "
                            "the padding mask allow it, so combine them with &."),
            (keys.expand_as(right), "the causal part is missing: position i must not see positions after i "
                                    "(the future token it is learning to predict). Use torch.ones(T, T).tril()."),
            (causal.expand_as(right), "the padding part is missing: no position may attend to a padding key "
                                      "(tgt == pad_id)."),
            (causal & queries, "the padding is applied to the queries (rows) instead of the keys (columns): "
                               "mask the padding positions along the LAST dimension, (batch, 1, 1, T)."),
            (causal.T & keys, "the causal mask points the wrong way: keep the lower triangle (tril), "
                              "key j <= query i."),
            (torch.ones(T, T, dtype=torch.bool).tril(-1) & keys, "the diagonal is masked: a position may attend "
                                                                 "to itself (tril(), not tril(-1))."),
            (~right, "True must mean 'may attend' (the course's convention): your mask is inverted."),
        ]
        for candidate, hint in wrong:
            if torch.equal(full, candidate.expand_as(right)):
                raise Mistake(hint)
        raise Mistake("the mask differs from causal & (tgt != pad_id) on the keys.")

    return run_checker("decoder_mask", check)


# ---- one beam-search step --------------------------------------------------------------------
def beam_search_step(fn: Callable[[torch.Tensor, torch.Tensor, int], tuple]) -> Verdict:
    """Check ``fn(log_probs (batch, beams, V), beam_scores (batch, beams), beam_width)`` ->
    ``(scores, beam_index, token)`` each ``(batch, beam_width)``, best first."""

    def check() -> str:
        batch, vocab, k = 2, 5, 3
        # Chosen so the best 3 candidates are two children of beam 0 and one of beam 1 (beam 2 keeps
        # none): the top per beam, or the top of one beam, or log-probs without the beam scores, or
        # probabilities instead of log-probabilities, all pick something else.
        probs = torch.tensor([[0.5, 0.3, 0.1, 0.06, 0.04],
                              [0.1, 0.7, 0.1, 0.06, 0.04],
                              [0.9, 0.03, 0.03, 0.02, 0.02]])
        order = torch.tensor([1, 2, 0])  # the second sentence: the same beams in another order
        log_probs = torch.stack([probs, probs[order]]).log()
        beam_scores = torch.tensor([[-0.5, -1.0, -4.0], [-1.0, -4.0, -0.5]])
        out = fn(log_probs.clone(), beam_scores.clone(), k)
        if not isinstance(out, tuple) or len(out) != 3:
            raise Mistake("return a tuple (scores, beam_index, token).")
        scores, beam_idx, token = (expect_tensor(t, "beam_search_step") for t in out)
        for name, t in (("scores", scores), ("beam_index", beam_idx), ("token", token)):
            if t.shape != (batch, k):
                raise Mistake(f"{name} should have shape (batch, beam_width) = {(batch, k)}, got {tuple(t.shape)}.")
        cand = beam_scores[:, :, None] + log_probs
        right_scores, flat = cand.flatten(1).topk(k, dim=-1)
        if _close(scores, right_scores):
            if torch.equal(beam_idx.long(), flat // vocab) and torch.equal(token.long(), flat % vocab):
                return (
                    "beam score + log-prob, top beam_width over all beams together, with their beams and tokens."
                )
            if torch.equal(beam_idx.long(), flat % vocab) and torch.equal(token.long(), flat // vocab):
                raise Mistake("beam_index and token are swapped: beam = flat // vocab, token = flat % vocab.")
            if not torch.equal(beam_idx.long(), flat // vocab):
                raise Mistake("the beam of a flat candidate index is flat // vocab_size.")
            raise Mistake("the token of a flat candidate index is flat % vocab_size.")
        # the usual wrong ones
        if _close(scores, log_probs.flatten(1).topk(k, dim=-1).values):
            raise Mistake("add each beam's score to its candidates' log-probs: a sequence's score is the sum "
                          "of all its tokens' log-probs, not just the last one's.")
        probs = log_probs.exp()
        for wrong in (beam_scores[:, :, None] + probs, beam_scores.exp()[:, :, None] * probs,
                      beam_scores[:, :, None] * probs):
            if _close(scores, wrong.flatten(1).topk(k, dim=-1).values):
                raise Mistake("use log-probabilities, and add them: multiplying probabilities underflows to 0 "
                              "after a few dozen tokens, and adding probabilities to log-scores mixes scales.")
        per_beam = cand.topk(k, dim=-1).values  # (batch, beams, k)
        if _close(scores, per_beam[:, :, 0]) or _close(scores, per_beam.flatten(1)[:, :k]):
            raise Mistake("you took the top candidates of each beam separately: take the top beam_width over ALL "
                          "beams' candidates together (flatten beams x vocab first), so a strong beam can keep "
                          "several children and a weak one none.")
        if _close(scores, cand.flatten(1).topk(k, dim=-1, largest=False).values):
            raise Mistake("keep the LARGEST scores (log-probs are <= 0; higher is more likely).")
        if _close(scores.sort(-1, descending=True).values, right_scores):
            raise Mistake("the right candidates, but sort them best first (topk sorts for you).")
        raise Mistake("expected the top beam_width of beam_scores[:, :, None] + log_probs over beams x vocab.")

    return run_checker("beam_search_step", check)
