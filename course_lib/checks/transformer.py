"""Checkers for notebook 07 (the Transformer): layer norm by hand, the decoder's combined mask, and
one beam-search step, and the forward passes of the encoder layer, the decoder layer and the model."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib.checks.core import (
    Mistake,
    Verdict,
    expect_tensor,
    match_variants,
    randomise_norms,
    run_checker,
)

__all__ = ["layer_norm", "decoder_mask", "beam_search_step", "encoder_layer_forward", "decoder_layer_forward",
           "seq2seq_forward"]



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


# ---- the layers' forward passes ----------------------------------------------------------------
RESIDUAL_HINT = ("the residual connection is missing around the {what}: add the sub-layer's output to its "
                  "input, x = x + dropout(sublayer(norm(x))).")
NORMED_SKIP_HINT = ("the residual adds the NORMALISED input: in pre-LN the skip path carries the raw x, "
                     "x = x + sublayer(norm(x)), so h = norm(x) must not replace x.")
POST_LN_HINT = ("you normalised after the residual (post-LN, the 2017 paper's order); this layer is pre-LN: "
                 "normalise the sub-layer's input, x = x + sublayer(norm(x)).")


def run_sublayers(x, steps, *, norm_first=True, normed_skip=False):
    """Run ``steps``, ``(sublayer, norm, residual)`` triples, as a block does, right or with a known
    mistake (post-LN, a residual that adds the normalised input, a residual left out): the outputs
    the block checkers compare a learner's with."""
    for f, norm, residual in steps:
        if not norm_first:
            x = norm((x if residual else 0) + f(x))
        else:
            h = norm(x)
            x = (h if normed_skip else x if residual else 0) + f(h)
    return x


def _encoder_forward(layer, x, mask, *, norm_first=True, skip_attention=True, skip_ff=True, normed_skip=False,
                     mask_used="given", ff_norm=None, swap=False):
    attention_mask = {"given": mask, "none": None, "inverted": None if mask is None else ~mask}[mask_used]

    def attention(h):
        return layer.attention(h, mask=attention_mask, need_weights=False)[0]

    steps = [(attention, layer.attention_norm, skip_attention),
             (layer.feed_forward, ff_norm or layer.feed_forward_norm, skip_ff)]
    return run_sublayers(x, steps[::-1] if swap else steps, norm_first=norm_first, normed_skip=normed_skip)


def encoder_layer_forward(fn: Callable[..., torch.Tensor]) -> Verdict:
    """Check ``fn(layer, x, src_mask)``: the pre-LN forward pass of ``tf.EncoderLayer`` (returns ``x'``)."""
    from course_lib import transformer as tf

    def check() -> str:
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        layer = tf.EncoderLayer(16, 4, 32, dropout=0.0, norm_first=True).eval()
        randomise_norms(layer, gen)
        x = torch.randn(2, 6, 16, generator=gen) * 2
        mask = tf.source_mask(torch.tensor([[3, 4, 5, 6, 0, 0], [3, 4, 5, 0, 0, 0]]), 0)  # (2, 1, 1, 6)
        with torch.no_grad():
            out = expect_tensor(fn(layer, x.clone(), mask.clone()), "your encoder_layer_forward")
            right = layer(x, mask)
            variants = {
                "post": _encoder_forward(layer, x, mask, norm_first=False),
                "normed skip": _encoder_forward(layer, x, mask, normed_skip=True),
                "no skip attention": _encoder_forward(layer, x, mask, skip_attention=False),
                "no skip ff": _encoder_forward(layer, x, mask, skip_ff=False),
                "no mask": _encoder_forward(layer, x, mask, mask_used="none"),
                "inverted": _encoder_forward(layer, x, mask, mask_used="inverted"),
                "one norm": _encoder_forward(layer, x, mask, ff_norm=layer.attention_norm),
                "swap": _encoder_forward(layer, x, mask, swap=True),
            }
        hints = {
            "post": POST_LN_HINT,
            "normed skip": NORMED_SKIP_HINT,
            "no skip attention": RESIDUAL_HINT.format(what="attention"),
            "no skip ff": RESIDUAL_HINT.format(what="feed-forward network"),
            "no mask": "pass src_mask to the attention: without it every position reads the padding too.",
            "inverted": "the mask is inverted: True means 'may attend' (the course's convention), pass src_mask as it is.",
            "one norm": "each sub-layer has its own norm: attention_norm before attention, feed_forward_norm before "
                        "the feed-forward network.",
            "swap": "attention comes first, then the feed-forward network.",
        }
        match_variants(out, right, variants, hints, "the output differs from layer(x, src_mask): attention, then the "
               "feed-forward network, each as x = x + sublayer(norm(x)).")
        x2 = torch.randn(3, 4, 16, generator=gen)
        with torch.no_grad():
            out2 = expect_tensor(fn(layer, x2, None), "your encoder_layer_forward")
            if out2.shape != x2.shape or not _close(out2, layer(x2)):
                raise Mistake("right with a mask, wrong with src_mask=None (no padding) or another batch shape.")
        return ("x + attention(norm(x), mask), then x + feed_forward(norm(x)): equal to tf.EncoderLayer "
                "within 1e-5.")

    return run_checker("encoder_layer_forward", check)


def _decoder_forward(layer, y, memory, tgt_mask, memory_mask, *, norm_first=True, skips=(True, True, True),
                     normed_skip=False, self_mask="tgt", cross_mask="memory", cross_kv="memory",
                     norm_memory=False, queries_from_memory=False):
    masks = {"tgt": tgt_mask, "memory": memory_mask, None: None}

    def self_attention(h):
        return layer.self_attention(h, mask=masks[self_mask], need_weights=False)[0]

    def cross_attention(h):
        kv = {"memory": memory, "decoder": h}[cross_kv]
        if norm_memory:
            kv = layer.cross_attention_norm(kv)
        q, kv = (kv, h) if queries_from_memory else (h, kv)
        return layer.cross_attention(q, kv, mask=masks[cross_mask], need_weights=False)[0]

    steps = [(self_attention, layer.self_attention_norm), (cross_attention, layer.cross_attention_norm),
             (layer.feed_forward, layer.feed_forward_norm)]
    return run_sublayers(y, [(f, norm, skip) for (f, norm), skip in zip(steps, skips)], norm_first=norm_first,
                         normed_skip=normed_skip)


def decoder_layer_forward(fn: Callable[..., torch.Tensor]) -> Verdict:
    """Check ``fn(layer, y, memory, tgt_mask, memory_mask)``: the pre-LN forward of ``tf.DecoderLayer``."""
    from course_lib import transformer as tf

    def check() -> str:
        gen = torch.Generator().manual_seed(1)
        torch.manual_seed(1)
        layer = tf.DecoderLayer(16, 4, 32, dropout=0.0, norm_first=True).eval()
        randomise_norms(layer, gen)
        # S == T here, so that swapped masks or keys still run and can be recognised
        tgt = torch.tensor([[1, 5, 6, 7, 2, 0], [1, 4, 2, 0, 0, 0]])
        src = torch.tensor([[3, 4, 5, 6, 7, 0], [3, 4, 0, 0, 0, 0]])
        tgt_mask, memory_mask = tf.decoder_mask(tgt, 0), tf.source_mask(src, 0)
        y = torch.randn(2, 6, 16, generator=gen) * 2
        memory = torch.randn(2, 6, 16, generator=gen) * 2
        args = (y, memory, tgt_mask, memory_mask)
        with torch.no_grad():
            out = fn(layer, *(a.clone() for a in args))
            if isinstance(out, tuple):
                raise Mistake("return only y, the layer's output (batch, T, d_model), not a tuple.")
            out = expect_tensor(out, "your decoder_layer_forward")
            right = layer(*args)[0]
            variants = {
                "post": _decoder_forward(layer, *args, norm_first=False),
                "normed skip": _decoder_forward(layer, *args, normed_skip=True),
                "no skip self": _decoder_forward(layer, *args, skips=(False, True, True)),
                "no skip cross": _decoder_forward(layer, *args, skips=(True, False, True)),
                "no skip ff": _decoder_forward(layer, *args, skips=(True, True, False)),
                "no causal": _decoder_forward(layer, *args, self_mask=None),
                "masks swapped": _decoder_forward(layer, *args, self_mask="memory", cross_mask="tgt"),
                "self memory mask": _decoder_forward(layer, *args, self_mask="memory"),
                "cross tgt mask": _decoder_forward(layer, *args, cross_mask="tgt"),
                "no memory mask": _decoder_forward(layer, *args, cross_mask=None),
                "keys from decoder": _decoder_forward(layer, *args, cross_kv="decoder"),
                "keys from decoder, its mask": _decoder_forward(layer, *args, cross_kv="decoder", cross_mask="tgt"),
                "memory normed": _decoder_forward(layer, *args, norm_memory=True),
                "queries from memory": _decoder_forward(layer, *args, queries_from_memory=True),
            }
        mask_hint = ("the masks are on the wrong sides: self-attention takes tgt_mask (causal AND target padding, "
                     "(batch, 1, T, T)), cross-attention takes memory_mask (source padding, (batch, 1, 1, S)).")
        keys_hint = ("the cross-attention's keys and values come from the decoder: they must be the encoder's "
                     "output, cross_attention(norm(y), memory, mask=memory_mask).")
        hints = {
            "post": POST_LN_HINT,
            "normed skip": NORMED_SKIP_HINT,
            "no skip self": RESIDUAL_HINT.format(what="self-attention"),
            "no skip cross": RESIDUAL_HINT.format(what="cross-attention"),
            "no skip ff": RESIDUAL_HINT.format(what="feed-forward network"),
            "no causal": "pass tgt_mask to the self-attention: without it each position reads the tokens after "
                         "it, the very ones it learns to predict.",
            "masks swapped": mask_hint,
            "self memory mask": mask_hint,
            "cross tgt mask": mask_hint,
            "no memory mask": "pass memory_mask to the cross-attention: without it the decoder reads the "
                              "source's padding.",
            "keys from decoder": keys_hint,
            "keys from decoder, its mask": keys_hint,
            "memory normed": "normalise only the decoder's stream, not memory: the encoder's output is already "
                             "normalised by the encoder's final norm.",
            "queries from memory": "the queries come from the decoder (norm(y)) and the keys and values from "
                                   "memory, not the other way round.",
        }
        match_variants(out, right, variants, hints, "the output differs from layer(y, memory, tgt_mask, memory_mask)[0]: "
               "self-attention, cross-attention, feed-forward, each as y = y + sublayer(norm(y)).")
        # S != T: the general case
        y2, memory2 = torch.randn(2, 3, 16, generator=gen), torch.randn(2, 5, 16, generator=gen)
        tgt_mask2 = tf.decoder_mask(torch.tensor([[1, 5, 2], [1, 2, 0]]), 0)
        memory_mask2 = tf.source_mask(torch.tensor([[3, 4, 5, 6, 0], [3, 0, 0, 0, 0]]), 0)
        with torch.no_grad():
            try:
                out2 = expect_tensor(fn(layer, y2, memory2, tgt_mask2, memory_mask2), "your decoder_layer_forward")
            except RuntimeError as error:
                raise Mistake(f"it fails when the source (5 tokens) and the target (3) have different lengths: "
                              f"{mask_hint} ({error})") from None
            if not _close(out2, layer(y2, memory2, tgt_mask2, memory_mask2)[0]):
                raise Mistake("right when source and target have the same length, wrong otherwise.")
        return ("masked self-attention, cross-attention on memory, feed-forward, each pre-LN with its residual: "
                "equal to tf.DecoderLayer within 1e-5.")

    return run_checker("decoder_layer_forward", check)


def seq2seq_forward(fn: Callable[..., torch.Tensor]) -> Verdict:
    """Check ``fn(model, src, tgt)``: the teacher-forced forward pass of ``tf.Seq2SeqTransformer``."""
    import math

    from course_lib import transformer as tf

    def check() -> str:
        gen = torch.Generator().manual_seed(2)
        torch.manual_seed(2)
        model = tf.Seq2SeqTransformer(11, 9, d_model=16, num_heads=4, num_encoder_layers=2, num_decoder_layers=2,
                                      d_ff=32, dropout=0.0, max_len=16, pad_id=0).eval()
        randomise_norms(model, gen)
        src = torch.tensor([[3, 4, 5, 6, 7, 0, 0], [3, 10, 4, 0, 0, 0, 0]])
        tgt = torch.tensor([[1, 5, 6, 7, 0], [1, 4, 8, 3, 2]])
        with torch.no_grad():
            out = expect_tensor(fn(model, src.clone(), tgt.clone()), "your seq2seq_forward")
            right = model(src, tgt)
            if out.shape[:2] == right.shape[:2] and out.shape[-1] == model.d_model:
                raise Mistake("the output layer is missing: model.out_proj turns the decoder's vectors "
                              f"(d_model={model.d_model}) into scores over the {right.shape[-1]} target tokens.")

            def forward(scale=True, positions=True, self_mask="decoder", cross_mask="source", final=True):
                def embed(ids, table):
                    h = table(ids) * (math.sqrt(model.d_model) if scale else 1.0)
                    return model.positions(h) if positions else h

                s_mask = tf.source_mask(src, 0)
                memory = model.encoder(embed(src, model.src_embed), s_mask)
                masks = {"decoder": tf.decoder_mask(tgt, 0), "source": s_mask, "target padding": tf.source_mask(tgt, 0),
                         None: None}
                y, _ = model.decoder(embed(tgt, model.tgt_embed), memory, masks[self_mask], masks[cross_mask])
                return model.out_proj(y)

            variants = {
                "scale": forward(scale=False),
                "positions": forward(positions=False),
                "padding only": forward(self_mask="target padding"),
                "no decoder mask": forward(self_mask=None),
                "no source mask": forward(cross_mask=None),
            }
        hints = {
            "scale": "multiply the embeddings by sqrt(d_model) before adding the positions (the paper's scaling, "
                     "which keeps the token signal larger than the position table).",
            "positions": "add the sinusoidal positions: model.positions(embeddings) (without them the model "
                         "cannot tell word order).",
            "padding only": "the decoder's self-attention needs the CAUSAL mask too: tf.decoder_mask(tgt, pad_id), "
                            "not only the padding mask.",
            "no decoder mask": "give the decoder tf.decoder_mask(tgt, pad_id): without it each position reads the "
                               "tokens it must predict.",
            "no source mask": "give the decoder the source mask as memory_mask: the cross-attention must not read "
                              "the source's padding.",
        }
        match_variants(out, right, variants, hints, "the logits differ from model(src, tgt): embed both sides (x sqrt(d), + "
               "positions, dropout), encode the source with its mask, decode with decoder_mask and the source mask, "
               "then out_proj.")
        return "embeddings, encoder, decoder with both masks, output layer: equal to model(src, tgt) within 1e-5."

    return run_checker("seq2seq_forward", check)
