"""Checkers for notebook 08 (causal language model, GPT): the next-token loss, the block's and the model's
forward passes, the training loop and the two sampling filters."""

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

__all__ = ["causal_lm_loss", "gpt_block_forward", "gpt_forward", "train_steps", "top_k_filter", "top_p_filter"]



def _close(a: torch.Tensor, b: torch.Tensor | float, tol: float = 1e-4) -> bool:
    return bool(torch.allclose(a.float(), torch.as_tensor(b, dtype=torch.float32), atol=tol, rtol=1e-4))


# ---- exercise 1: the causal-LM loss -------------------------------------------------------------
def _nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token negative log-likelihood, same shape as targets."""
    return -logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def causal_lm_loss(fn: Callable[..., torch.Tensor]) -> Verdict:
    """Check ``fn(logits, input_ids, attention_mask=None)``: the mean next-token cross-entropy.

    ``logits (batch, seq, vocab)``; the prediction at position t is scored against ``input_ids[:, t+1]``;
    positions whose *target* is padding (``attention_mask == 0``) do not count; the mean is over
    every counted target token.
    """

    def check() -> str:
        gen = torch.Generator().manual_seed(0)
        logits = 2 * torch.randn(3, 7, 11, generator=gen)
        ids = torch.randint(0, 11, (3, 7), generator=gen)
        mask = torch.ones(3, 7, dtype=torch.long)
        mask[1, 4:] = 0
        mask[2, 2:] = 0

        logits_in, ids_in, mask_in = logits.clone(), ids.clone(), mask.clone()
        out = expect_tensor(fn(logits_in, ids_in), "causal_lm_loss")
        if not (torch.equal(logits_in, logits) and torch.equal(ids_in, ids)):
            raise Mistake("your function changed its inputs in place; work on copies (no masked_fill_ / -= on them).")
        if out.numel() != 1:
            raise Mistake(
                f"return one number (the mean loss), got a tensor of shape {tuple(out.shape)}: average "
                "the per-token losses."
            )
        nll = _nll(logits[:, :-1], ids[:, 1:])  # the right per-token losses, (3, 6)
        right = nll.mean()
        if _close(out, F.cross_entropy(logits.flatten(0, 1), ids.flatten())):
            raise Mistake(
                "the targets are not shifted: the logits at position t predict the *next* token, "
                "input_ids[:, t + 1]. Compare logits[:, :-1] with input_ids[:, 1:]."
            )
        if _close(out, F.cross_entropy(logits[:, 1:].flatten(0, 1), ids[:, :-1].flatten())):
            raise Mistake(
                "shifted the wrong way: you scored the logits at position t + 1 against token t (the "
                "past). Use logits[:, :-1] (every position but the last) with input_ids[:, 1:]."
            )
        if _close(out, nll.sum()) or _close(out, nll.sum() / 3):
            raise Mistake("that is a sum; return the mean over the predicted tokens.")
        if _close(out, -right) or _close(out, (-_nll(logits[:, :-1], ids[:, 1:])).exp().mean()):
            raise Mistake("the loss is the *negative* log-probability of the right next token (a number >= 0).")
        if _close(out, F.nll_loss(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())):
            raise Mistake(
                "F.nll_loss expects log-probabilities and got raw logits: apply log_softmax first "
                "(or use F.cross_entropy, which does both)."
            )
        if not _close(out, right):
            raise Mistake(
                f"without a mask expected {right.item():.4f} (the mean of -log softmax(logits[:, :-1])"
                f"[next token]), got {out.float().item():.4f}."
            )

        ids_in = ids.clone()
        out = expect_tensor(fn(logits.clone(), ids_in, mask_in), "causal_lm_loss")
        if not (torch.equal(mask_in, mask) and torch.equal(ids_in, ids)):
            raise Mistake(
                "your function changed input_ids or attention_mask in place; work on copies "
                "(e.g. targets = input_ids[:, 1:].clone())."
            )
        counted = mask[:, 1:].bool()
        right = nll[counted].mean()
        if _close(out, nll.mean()):
            raise Mistake(
                "padding counts in your loss: with attention_mask, a position whose target is padding "
                "(attention_mask[:, 1:] == 0) must not count, neither in the sum nor in the average."
            )
        if _close(out, nll[mask[:, :-1].bool()].mean()):
            raise Mistake(
                "the mask is shifted like the logits instead of like the targets: what matters is "
                "whether the *target* token is real, i.e. attention_mask[:, 1:]."
            )
        per_sequence = torch.stack([nll[b][counted[b]].mean() for b in range(3)]).mean()
        if _close(out, per_sequence):
            raise Mistake(
                "you averaged each sequence, then the sequences: short sequences then weigh as much "
                "as long ones. Average over all counted tokens at once."
            )
        if _close(out, (nll * counted).sum() / nll.numel()):
            raise Mistake("the padded positions are zeroed but still counted in the average: divide by the number of real targets.")
        if not _close(out, right):
            raise Mistake(
                f"with the padding mask expected {right.item():.4f}, got {out.float().item():.4f}."
            )
        from course_lib.objectives import causal_lm_loss as library

        if not _close(out, library(logits, ids, mask)):  # pragma: no cover - the two references agree
            raise Mistake("does not match course_lib.objectives.causal_lm_loss.")
        return "next-token targets (shifted by one), padding left out, mean over the real targets."

    return run_checker("causal_lm_loss", check)


# ---- exercises 2 and 3: the sampling filters ----------------------------------------------------
def _sanity(out, logits: torch.Tensor, expected_kept: torch.Tensor, name: str) -> torch.Tensor:
    """The mistakes any filter can make: shape, dtype, NaN, probabilities instead of scores, 0 instead of -inf."""
    out = expect_tensor(out, name)
    if out.shape != logits.shape:
        raise Mistake(f"return a tensor of the input's shape {tuple(logits.shape)}, got {tuple(out.shape)}.")
    if not out.is_floating_point():
        raise Mistake(f"return float scores, got dtype {out.dtype}.")
    if torch.isnan(out).any():
        raise Mistake("your output holds NaN; removed tokens get float('-inf').")
    probs = logits.softmax(-1)
    if (out >= 0).all() and (
        _close(out.sum(-1), torch.ones(out.shape[:-1]), 1e-3) or _close(out, probs * (out > 0), 1e-5)
    ):
        raise Mistake(
            "you returned probabilities; the filter returns *scores* (logits) with the removed ones "
            "set to -inf. Sampling applies softmax afterwards, and softmax of probabilities is a much "
            "flatter distribution than the one you meant."
        )
    removed = ~expected_kept
    if removed.any() and (out[removed] == 0).all() and not (logits[removed] == 0).all():
        raise Mistake(
            "removed tokens got the score 0, which is an ordinary score: softmax still gives them "
            "probability. Set them to float('-inf') (probability exactly 0)."
        )
    return out


def _kept(out: torch.Tensor) -> torch.Tensor:
    """Tokens a filter kept: a finite score that is not hugely negative (-1e9 also removes)."""
    return torch.isfinite(out) & (out > -1e4)


def _check_filter_output(out, logits: torch.Tensor, expected_kept: torch.Tensor, name: str, detail: str) -> None:
    """Shared verdicts for a filter: same shape, kept logits untouched, others removed (-inf)."""
    out = _sanity(out, logits, expected_kept, name)
    kept = _kept(out)
    if torch.equal(kept, expected_kept):
        if not torch.equal(out[kept], logits[kept]):
            if torch.allclose(out.softmax(-1), _reference_softmax(logits, expected_kept), atol=1e-6):
                return  # shifted/normalised logits: the same distribution after softmax
            raise Mistake("the right tokens are kept, but their scores changed: leave the kept logits as they are.")
        return
    raise Mistake(detail.format(kept=kept.sum(-1).tolist(), expected=expected_kept.sum(-1).tolist()))


def _reference_softmax(logits: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    return logits.masked_fill(~kept, float("-inf")).softmax(-1)


def top_k_filter(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> Verdict:
    """Check ``fn(logits, k)``: logits ``(..., vocab)``, every score outside the k largest of its row -> -inf."""

    def check() -> str:
        gen = torch.Generator().manual_seed(1)
        cases = [
            (torch.randn(10, generator=gen), 3),
            (torch.randn(4, 12, generator=gen) * 2, 5),
            (torch.randn(2, 3, 9, generator=gen), 1),
            (torch.randn(3, 8, generator=gen), 8),
        ]
        for logits, k in cases:
            given = logits.clone()
            out = fn(given, k)
            if not torch.equal(given, logits):
                raise Mistake("your function changed the logits in place; return a new tensor (e.g. masked_fill, not masked_fill_).")
            order = logits.argsort(dim=-1, descending=True)
            expected = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order[..., :k], True)
            kept = _kept(_sanity(out, logits, expected, "top_k_filter"))
            counts = kept.sum(-1)
            smallest = torch.zeros_like(expected).scatter(-1, order[..., -k:], True)
            if k < logits.shape[-1] and torch.equal(kept, smallest):
                raise Mistake("you kept the k *smallest* scores; keep the k largest (torch.topk returns the largest by default).")
            if logits.dim() > 1 and (counts != counts.flatten()[0]).any():
                raise Mistake(
                    "each row (each sequence of the batch) needs its own k best tokens: take the "
                    "top-k along the last dimension, dim=-1, and keep its result's last dimension "
                    "(values[..., -1:]) so it broadcasts row by row."
                )
            if (counts == k - 1).all():
                raise Mistake(
                    f"with k={k} you kept {k - 1} tokens: the k-th largest score itself must stay. "
                    "Remove only the scores strictly *below* it (logits < kth)."
                )
            if (counts == k + 1).all():
                raise Mistake(f"with k={k} you kept {k + 1} tokens: one too many.")
            _check_filter_output(
                out, logits, expected, "top_k_filter",
                f"with k={k} each row should keep {k} tokens (the largest scores), yours kept {{kept}}.",
            )
        return "the k largest scores of each row kept as they are, the rest set to -inf."

    return run_checker("top_k_filter", check)


def top_p_filter(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> Verdict:
    """Check ``fn(logits, p)``: keep the most likely tokens until their probability reaches p
    (the token that crosses p included), the others' scores -> -inf; works on ``(..., vocab)``."""

    def check() -> str:
        # probabilities 0.5, 0.3, 0.15, 0.05 in a scrambled vocabulary order, in two rows
        base = torch.tensor([0.15, 0.5, 0.05, 0.3]).log()
        row2 = torch.tensor([0.05, 0.3, 0.5, 0.15]).log()
        logits = torch.stack([base, row2])
        rank = logits.argsort(-1, descending=True)
        cases = [(0.3, 1), (0.6, 2), (0.9, 3), (0.7, 2), (0.97, 4), (1.0, 4)]
        for p, n_keep in cases:
            given = logits.clone()
            out = fn(given, p)
            if not torch.equal(given, logits):
                raise Mistake("your function changed the logits in place; return a new tensor.")
            expected = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, rank[:, :n_keep], True)
            kept = _kept(_sanity(out, logits, expected, "top_p_filter"))
            n = kept.sum(-1)
            if (n == n_keep - 1).all() and n_keep > 1 or (n == 0).any():
                raise Mistake(
                    f"with p={p} you dropped the token whose probability crosses p. Keep the most "
                    "likely tokens *up to and including* the first one at which the running total "
                    "reaches p (so the kept mass is >= p, and at least one token is always kept)."
                )
            in_order = logits.softmax(-1).cumsum(-1)
            unsorted = (in_order - logits.softmax(-1)) < p
            if torch.equal(kept, unsorted) and not torch.equal(kept, expected):
                raise Mistake(
                    "the running total follows the vocabulary order: sort the tokens by probability "
                    "(most likely first) before adding up, then put the decision back in vocabulary order."
                )
            sorted_probs = logits.softmax(-1).sort(-1, descending=True).values
            in_rank_order = (sorted_probs.cumsum(-1) - sorted_probs) < p
            if torch.equal(kept, in_rank_order) and not torch.equal(kept, expected):
                raise Mistake(
                    "the decision is right in sorted order but was not put back in vocabulary order: "
                    "scatter it back with the sort indices (or index the logits by them)."
                )
            if (n != n[0]).any():
                raise Mistake(
                    "the two rows of the test (the same probabilities in different orders) kept "
                    f"different numbers of tokens ({n.tolist()}): sort and add up each row on its "
                    "own, along the last dimension (dim=-1)."
                )
            up, up_order = logits.softmax(-1).sort(-1)  # least likely first
            up_keep = (up.cumsum(-1) - up) < p
            ascending = up_keep.scatter(-1, up_order, up_keep)
            if not ascending.all() and torch.equal(kept, ascending) and not torch.equal(kept, expected):
                raise Mistake("you added up from the *least* likely token: sort in descending order (most likely first).")
            _check_filter_output(
                out, logits, expected, "top_p_filter",
                f"with probabilities 0.5, 0.3, 0.15, 0.05 and p={p} the nucleus is the {n_keep} most "
                "likely token(s); each row of yours kept {kept}. Add up *probabilities* (softmax "
                "first, not logits) of the tokens sorted most likely first.",
            )
        # a batch with leading dimensions and random logits, against the library
        from course_lib.gpt import top_p_filter as library

        gen = torch.Generator().manual_seed(3)
        logits = 2 * torch.randn(2, 3, 25, generator=gen)
        for p in (0.25, 0.8):
            expected = torch.isfinite(library(logits, p))
            _check_filter_output(
                fn(logits.clone(), p), logits, expected, "top_p_filter",
                f"on a batch of shape (2, 3, 25) with p={p} each row should keep {{expected}} tokens, "
                "yours kept {kept}: sort and add up along the last dimension (dim=-1), row by row.",
            )
        return "the most likely tokens up to and including the one that crosses p, per row; the rest -inf."

    return run_checker("top_p_filter", check)


# ---- the GPT block and the model's forward pass --------------------------------------------------
def _tiny_gpt(seed: int, **overrides):
    from course_lib import gpt

    torch.manual_seed(seed)
    settings = dict(vocab_size=50, max_len=12, d_model=16, num_layers=2, num_heads=4)
    settings.update(overrides)
    return gpt.GPT(gpt.GPTConfig(**settings))


def _block_forward(block, x, *, causal=True, post=False, normed_skip=False, skips=(True, True), ff_norm=None):
    from course_lib.checks.transformer import run_sublayers

    steps = [(lambda h: block.attention(h, is_causal=causal, need_weights=False)[0], block.attention_norm, skips[0]),
             (block.feed_forward, ff_norm or block.feed_forward_norm, skips[1])]
    return run_sublayers(x, steps, norm_first=not post, normed_skip=normed_skip)


def gpt_block_forward(fn: Callable[..., torch.Tensor]) -> Verdict:
    """Check ``fn(block, x)``: the forward pass of a pre-LN ``gpt.GPTBlock`` with causal self-attention."""
    from course_lib.checks.transformer import NORMED_SKIP_HINT, POST_LN_HINT, RESIDUAL_HINT

    def check() -> str:
        gen = torch.Generator().manual_seed(3)
        block = _tiny_gpt(3).layers[0].eval()
        randomise_norms(block, gen)
        x = torch.randn(2, 7, 16, generator=gen) * 2
        with torch.no_grad():
            out = fn(block, x.clone())
            if isinstance(out, tuple):
                raise Mistake("return only x, the block's output (batch, T, d_model), not a tuple.")
            out = expect_tensor(out, "your gpt_block_forward")
            right = block(x)[0]
            variants = {
                "no causal": _block_forward(block, x, causal=False),
                "post": _block_forward(block, x, post=True),
                "normed skip": _block_forward(block, x, normed_skip=True),
                "no skip attention": _block_forward(block, x, skips=(False, True)),
                "no skip mlp": _block_forward(block, x, skips=(True, False)),
                "one norm": _block_forward(block, x, ff_norm=block.attention_norm),
            }
        hints = {
            "no causal": "the attention must be causal: position t may read positions 0..t only, or the model "
                         "learns to copy the next token from its input. Pass is_causal=True (or "
                         "mask=causal_mask(T)).",
            "post": POST_LN_HINT,
            "normed skip": NORMED_SKIP_HINT,
            "no skip attention": RESIDUAL_HINT.format(what="attention"),
            "no skip mlp": RESIDUAL_HINT.format(what="feed-forward network"),
            "one norm": "each sub-layer has its own norm: attention_norm before attention, feed_forward_norm "
                        "before the feed-forward network.",
        }
        match_variants(out, right, variants, hints, "the output differs from block(x)[0]: x + attention(norm(x)) "
                       "with a causal mask, then x + feed_forward(norm(x)).")
        x2 = torch.randn(1, 12, 16, generator=gen)
        with torch.no_grad():
            out2 = expect_tensor(fn(block, x2), "your gpt_block_forward")
            if not _close(out2, block(x2)[0], 1e-5):
                raise Mistake("right on 7 positions, wrong on 12: build the causal mask for the x you are given.")
        return "x + attention(norm(x), causal), then x + feed_forward(norm(x)): equal to gpt.GPTBlock within 1e-5."

    return run_checker("gpt_block_forward", check)


def gpt_forward(fn: Callable[..., torch.Tensor]) -> Verdict:
    """Check ``fn(model, ids)``: the forward pass of ``gpt.GPT`` -> logits ``(batch, T, vocab)``."""

    def check() -> str:
        gen = torch.Generator().manual_seed(4)
        model = _tiny_gpt(4).eval()
        randomise_norms(model, gen)
        ids = torch.randint(0, 50, (2, 9), generator=gen)
        with torch.no_grad():
            try:
                out = fn(model, ids.clone())
            except (TypeError, ValueError, AttributeError) as error:
                if "tuple" in str(error):
                    raise Mistake("each block returns (x, attention weights): unpack it, x, _ = block(x).") from None
                raise
            out = expect_tensor(out, "your gpt_forward")
            right = model(ids)

            def forward(positions=True, final=True, probabilities=False):
                x = model.token_embedding(ids) + (model.position_embedding.positions(9) if positions else 0)
                for block in model.layers:
                    x, _ = block(x)
                logits = model.lm_head(model.final_norm(x) if final else x)
                return logits.softmax(-1) if probabilities else logits

            variants = {"positions": forward(positions=False), "final norm": forward(final=False),
                        "softmax": forward(probabilities=True)}
        if out.shape[:2] == right.shape[:2] and out.shape[-1] == model.config.d_model:
            raise Mistake("the output layer is missing: model.lm_head turns each final vector into "
                          f"{model.config.vocab_size} scores, one per token.")
        hints = {
            "positions": "add the position embeddings, model.position_embedding.positions(T): without them "
                         "attention cannot tell the order of the tokens.",
            "final norm": "apply model.final_norm after the last block (pre-LN leaves the residual stream "
                          "un-normalised), then model.lm_head.",
            "softmax": "return the logits (scores), not probabilities: the loss applies the softmax itself.",
        }
        match_variants(out, right, variants, hints, "the logits differ from model(ids): token + position "
                       "embeddings, dropout, every block, final_norm, lm_head.")
        return "embeddings + positions, the blocks, the final norm and the tied head: equal to model(ids) within 1e-5."

    return run_checker("gpt_forward", check)


# ---- the training loop ---------------------------------------------------------------------------
def _reference_loop(model, batches, optimizer, scheduler, max_grad_norm, *, zero_grad="before", clip="before",
                    schedule="after", train_mode=True):
    from course_lib.objectives import causal_lm_loss as lm_loss

    if train_mode:
        model.train()
    losses = []
    for batch in batches:
        if zero_grad == "before":
            optimizer.zero_grad()
        loss = lm_loss(model(batch), batch)
        if schedule == "before":
            scheduler.step()
        loss.backward()
        if zero_grad == "after backward":
            optimizer.zero_grad()
        if clip == "before":
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        if schedule == "after":
            scheduler.step()
        losses.append(loss.item())
    return losses


def train_steps(fn: Callable[..., list]) -> Verdict:
    """Check ``fn(model, batches, optimizer, scheduler, max_grad_norm)``: one optimizer step per batch
    (train mode; zero the gradients, forward, causal-LM loss, backward, clip, step, schedule), returning
    the losses as a list of floats."""
    import copy
    import warnings

    def check() -> str:
        gen = torch.Generator().manual_seed(5)
        start = _tiny_gpt(5, dropout=0.1).eval()  # handed over in eval mode: the loop must switch to train
        batches = [torch.randint(0, 50, (4, 12), generator=gen) for _ in range(6)]

        def run(loop, **mistake):
            model = copy.deepcopy(start)
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-2, weight_decay=0.1)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 3))
            torch.manual_seed(0)  # the same dropout masks in every run
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
                losses = loop(model, [b.clone() for b in batches], optimizer, scheduler, 0.5, **mistake)
            return losses, torch.cat([p.detach().flatten() for p in model.parameters()])

        losses, weights = run(fn)
        if not isinstance(losses, (list, tuple)) or len(losses) != len(batches):
            raise Mistake(f"return a list with one loss per batch ({len(batches)} here), got "
                          f"{type(losses).__name__}" + (f" of length {len(losses)}" if hasattr(losses, "__len__") else ""))
        try:
            losses = torch.tensor([float(v) for v in losses])
        except (TypeError, ValueError, RuntimeError):
            raise Mistake("each loss should be a number: append loss.item().") from None
        right_losses, right_weights = run(_reference_loop)
        if torch.allclose(losses, torch.tensor(right_losses), atol=1e-5) and torch.allclose(weights, right_weights, atol=1e-5):
            return ("train mode, zero_grad, forward, loss, backward, clip, step, schedule: the same losses and "
                    "weights as the reference loop.")
        mistakes = {
            "no zero_grad": dict(zero_grad="never"),
            "zero_grad late": dict(zero_grad="after backward"),
            "no clip": dict(clip="never"),  # clipping after the step gives the same weights
            "no schedule": dict(schedule="never"),
            "schedule early": dict(schedule="before"),
            "eval mode": dict(train_mode=False),
        }
        hints = {
            "no zero_grad": "zero the gradients at every step (optimizer.zero_grad()): backward() ADDS to .grad, "
                            "so without it each step uses the sum of all the gradients so far.",
            "zero_grad late": "optimizer.zero_grad() between backward() and step() throws the fresh gradients away: "
                              "the weights never change. Zero them before the forward pass.",
            "no clip": "clip the gradient norm after backward() and BEFORE optimizer.step() (clipped afterwards, "
                       "the update has already used the full gradients): "
                       "torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm).",
            "no schedule": "step the scheduler once per optimizer step (scheduler.step()), or the learning rate "
                           "never moves from its first value.",
            "schedule early": "call scheduler.step() after optimizer.step(): stepping it first skips the first "
                              "learning rate of the schedule.",
            "eval mode": "call model.train() first: in eval mode dropout is off, so the model trains without it.",
        }
        for key, mistake in mistakes.items():
            wrong_losses, wrong_weights = run(_reference_loop, **mistake)
            if torch.allclose(losses, torch.tensor(wrong_losses), atol=1e-5) and torch.allclose(weights, wrong_weights, atol=1e-5):
                raise Mistake(hints[key])
        if torch.allclose(weights, right_weights, atol=1e-5):
            raise Mistake("the weights are right but the losses are not: record each batch's loss (loss.item()) "
                          "before the update, in order.")
        raise Mistake("the weights after 6 steps differ from the reference loop's: per batch, zero_grad, "
                      "forward, objectives.causal_lm_loss(model(batch), batch), backward, clip, step, scheduler.step().")

    return run_checker("train_steps", check)
