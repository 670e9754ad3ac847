"""Checkers for notebook 14 (scaling up): top-k routing, the load-balancing loss, a KV-cache step."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib.checks.core import Mistake, Verdict, run_checker

__all__ = ["top_k_routing", "load_balancing_loss", "kv_cache_step"]


def _close(a: torch.Tensor, b: torch.Tensor | float, tol: float = 1e-4) -> bool:
    a = a.detach().float()
    b = torch.as_tensor(b, dtype=torch.float32)
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=tol, rtol=1e-4))


def _tensor(value, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise Mistake(f"{what} should be a torch.Tensor, got a {type(value).__name__}.")
    return value


# ---- exercise 1: top-k routing --------------------------------------------------------------------
def _by_expert(gates: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row's (expert, gate) pairs by expert, so that any order of the k choices compares equal."""
    order = indices.argsort(dim=-1)
    return indices.gather(-1, order), gates.gather(-1, order)


def top_k_routing(fn: Callable) -> Verdict:
    """Check ``fn(router_logits, k) -> (gates, indices)``.

    ``router_logits (tokens, E)``; ``indices (tokens, k)`` the k experts with the highest scores of
    each token; ``gates (tokens, k)`` their softmax probabilities (softmax over the E experts of the
    token) renormalised to sum to 1 over the k chosen. Any order of the k choices is accepted.
    """

    def check() -> str:
        gen = torch.Generator().manual_seed(0)
        logits = 2 * torch.randn(6, 5, generator=gen)
        for k in (2, 1, 3):
            given = logits.clone()
            out = fn(given, k)
            if not torch.equal(given, logits):
                raise Mistake("your function changed router_logits in place; work on a copy.")
            if not isinstance(out, (tuple, list)) or len(out) < 2:
                raise Mistake("return two tensors, (gates, indices), each of shape (tokens, k).")
            gates, indices = _tensor(out[0], "gates (the first value returned)"), _tensor(out[1], "indices (the second)")
            if gates.shape == (6, 5):
                raise Mistake(
                    "gates has one column per expert: keep only the k chosen experts' gates, shape (tokens, k)."
                )
            if tuple(indices.shape) != (6, k) or tuple(gates.shape) != (6, k):
                raise Mistake(
                    f"with k={k}, expected gates and indices of shape (tokens, k) = (6, {k}), got "
                    f"{tuple(gates.shape)} and {tuple(indices.shape)}: is k used?"
                )
            if indices.is_floating_point():
                raise Mistake("indices should be integers (the experts' numbers): torch.topk(...).indices.")
            probs = logits.softmax(-1)
            right_idx = logits.topk(k, dim=-1).indices
            idx, g = _by_expert(gates, indices.long())
            want_idx, _ = _by_expert(probs.gather(-1, right_idx), right_idx)
            if not torch.equal(idx, want_idx):
                smallest = logits.topk(k, dim=-1, largest=False).indices.sort(-1).values
                if torch.equal(idx, smallest):
                    raise Mistake("you picked the k *lowest*-scored experts; torch.topk picks the largest by default.")
                by_tokens = logits.softmax(0).topk(k, dim=-1).indices.sort(-1).values
                if torch.equal(idx, by_tokens):
                    raise Mistake(
                        "the softmax runs over the tokens (dim 0): each token's probabilities must be over the "
                        "experts, softmax(dim=-1)."
                    )
                raise Mistake(f"with k={k} the chosen experts are not each token's {k} highest-scored ones.")
            want = probs.gather(-1, idx)
            if k > 1 and _close(g, want):
                raise Mistake(
                    "the gates are the router probabilities of the chosen experts but do not sum to 1: "
                    "renormalise them, gates / gates.sum(-1, keepdim=True)."
                )
            if _close(g, logits.gather(-1, idx)):
                raise Mistake("the gates are raw logits: turn them into probabilities with a softmax first.")
            by_tokens = logits.softmax(0).gather(-1, idx)
            if k > 1 and (_close(g, by_tokens) or _close(g, by_tokens / by_tokens.sum(-1, keepdim=True))):
                raise Mistake("the softmax runs over the tokens (dim 0); it should run over the experts (dim -1).")
            if k > 1 and _close(g, torch.full_like(g, 1 / k)):
                raise Mistake("every chosen expert gets 1/k: the gates should follow the router's probabilities.")
            if not _close(g, want / want.sum(-1, keepdim=True)):
                raise Mistake(
                    f"with k={k} the gates are not the renormalised softmax probabilities of the chosen experts."
                )
        return "each token's k best experts, gates = their softmax probabilities renormalised to sum to 1."

    return run_checker("top_k_routing", check)


# ---- exercise 2: the load-balancing loss ----------------------------------------------------------
def load_balancing_loss(fn: Callable) -> Verdict:
    """Check ``fn(router_probs, expert_indices, num_experts) -> 0-dim tensor``: ``E * sum_i f_i P_i``.

    ``f_i``: the fraction of the ``tokens * k`` choices in ``expert_indices (tokens, k)`` that are
    expert ``i``; ``P_i``: the mean over tokens of ``router_probs[:, i]``. The gradient must flow
    into ``router_probs``.
    """

    def check() -> str:
        gen = torch.Generator().manual_seed(1)
        E, N, k = 4, 12, 2
        logits = torch.randn(N, E, generator=gen) * 1.5
        logits[:, 0] += 1.0  # expert 0 popular: an unbalanced router
        probs = logits.softmax(-1)
        idx = probs.topk(k, dim=-1).indices
        counts = torch.bincount(idx.flatten(), minlength=E).float()
        f, P = counts / (N * k), probs.mean(0)
        right = E * (f * P).sum()

        given = probs.clone().requires_grad_()
        out = _tensor(fn(given, idx.clone(), E), "load_balancing_loss")
        if out.numel() != 1:
            raise Mistake(f"return one number (a 0-dim tensor), got shape {tuple(out.shape)}: sum over the experts.")
        if _close(out.reshape(()), right / E):
            raise Mistake("the factor num_experts is missing: E * sum_i f_i * P_i (so that uniform routing gives 1).")
        if _close(out.reshape(()), right * k):
            raise Mistake(
                "f_i should be a fraction of all tokens * k choices (it sums to 1 over the experts): divide the "
                "counts by expert_indices.numel(), not by the number of tokens."
            )
        if _close(out.reshape(()), E * (P * P).sum()):
            raise Mistake(
                "f_i is the fraction of choices that *went* to expert i, counted from expert_indices "
                "(torch.bincount), not the mean probability again."
            )
        first = torch.bincount(idx[:, 0], minlength=E).float() / N
        if _close(out.reshape(()), E * (first * P).sum()):
            raise Mistake("only each token's first choice is counted: count all k choices of expert_indices.")
        if _close(out.reshape(()), E * (f * probs.sum(0)).sum()):
            raise Mistake("P_i is the *mean* router probability of expert i over the tokens, not the sum.")
        if _close(out.reshape(()), E * (f * f).sum()):
            raise Mistake("P_i is the mean router probability (from router_probs), not the dispatch fraction again.")
        chosen_mean = torch.zeros(E).index_add_(0, idx.flatten(), probs.gather(-1, idx).flatten()) / N
        if _close(out.reshape(()), E * (f * chosen_mean).sum()):
            raise Mistake("P_i averages router_probs[:, i] over *all* tokens, not only those routed to i.")
        if not _close(out.reshape(()), right):
            raise Mistake(f"expected {right.item():.4f} = E * sum_i f_i * P_i, got {out.float().item():.4f}.")
        if not out.requires_grad:
            raise Mistake(
                "no gradient reaches router_probs: P_i must be computed from router_probs itself (no .detach(), "
                ".item() or torch.tensor(...) around it), or the router never learns to balance."
            )
        out.reshape(()).backward()
        if given.grad is None or not _close(given.grad, (E * f / N).expand(N, E)):
            raise Mistake("the gradient with respect to router_probs is not E * f_i / tokens: is f part of the graph?")

        uniform = fn(torch.full((8, E), 1 / E), (torch.arange(16) % E).view(8, 2), E)
        if not _close(_tensor(uniform, "load_balancing_loss").reshape(()), 1.0):
            raise Mistake(f"uniform routing should give exactly 1, got {float(uniform):.4f}.")
        return "E * sum_i f_i * P_i: 1 for uniform routing, larger when the router favours some experts."

    return run_checker("load_balancing_loss", check)


# ---- exercise 3: one KV-cache decoding step ------------------------------------------------------
def kv_cache_step(fn: Callable) -> Verdict:
    """Check ``fn(q, k_new, v_new, k_cache, v_cache) -> (out, k_cache, v_cache)``.

    ``q, k_new, v_new (batch, heads, 1, d_head)``: the new position's projections; ``k_cache,
    v_cache (batch, heads, seen, d_head)`` (``seen`` may be 0). The new key and value are appended
    at the end of the sequence axis (-2); the new query attends over every cached position and
    itself: ``out = softmax(q K^T / sqrt(d_head)) V``, ``(batch, heads, 1, d_head)``.
    """

    def check() -> str:
        gen = torch.Generator().manual_seed(2)
        B, H, D = 2, 3, 4
        for seen in (5, 0):
            q, k_new, v_new = (torch.randn(B, H, 1, D, generator=gen) for _ in range(3))
            k_cache, v_cache = (torch.randn(B, H, seen, D, generator=gen) for _ in range(2))
            originals = [t.clone() for t in (q, k_new, v_new, k_cache, v_cache)]
            try:
                result = fn(q, k_new, v_new, k_cache, v_cache)
            except RuntimeError as error:
                if "Sizes of tensors must match" in str(error):
                    raise Mistake(
                        f"torch.cat failed ({error}): the cache and the new key differ only along the "
                        "sequence axis, so concatenate along the sequence axis, dim=-2."
                    ) from None
                raise
            if not all(torch.equal(a, b) for a, b in zip(originals, (q, k_new, v_new, k_cache, v_cache))):
                raise Mistake("your function changed its inputs in place; return new tensors (torch.cat does).")
            if not isinstance(result, (tuple, list)) or len(result) != 3:
                raise Mistake("return three tensors: (out, k_cache, v_cache), the new caches included.")
            out, k_all, v_all = (_tensor(t, name) for t, name in zip(result, ("out", "k_cache", "v_cache")))
            right_k = torch.cat([k_cache, k_new], dim=-2)
            right_v = torch.cat([v_cache, v_new], dim=-2)
            want_shape = (B, H, seen + 1, D)
            if tuple(k_all.shape) != want_shape or tuple(v_all.shape) != want_shape:
                if tuple(k_all.shape) == (B, H, 1, D):
                    raise Mistake("the cache holds only the new key: append it to the old ones, torch.cat([k_cache, k_new], dim=-2).")
                raise Mistake(
                    f"the new caches should be (batch, heads, seen + 1, d_head) = {want_shape}, got "
                    f"{tuple(k_all.shape)}: concatenate along the sequence axis, dim=-2 (not heads or features)."
                )
            if seen and torch.equal(k_all, torch.cat([k_new, k_cache], dim=-2)):
                raise Mistake("the new key went to the front: append it at the end, torch.cat([k_cache, k_new], dim=-2).")
            if not (torch.equal(k_all, right_k) and torch.equal(v_all, right_v)):
                raise Mistake("the caches should be the old keys (values) followed by the new one, unchanged.")
            scores = q @ right_k.transpose(-2, -1) / math.sqrt(D)
            right_out = scores.softmax(-1) @ right_v
            if tuple(out.shape) != (B, H, 1, D):
                raise Mistake(f"out should be (batch, heads, 1, d_head) = {(B, H, 1, D)}, got {tuple(out.shape)}.")
            if seen:
                if _close(out, (q @ k_cache.transpose(-2, -1) / math.sqrt(D)).softmax(-1) @ v_cache):
                    raise Mistake("the new token attends only to the cached positions: it must attend to itself too (use the updated cache).")
                if _close(out, v_cache[..., :1, :]):
                    raise Mistake(
                        "the query sees only the first key: is_causal=True with 1 query and many keys masks all keys "
                        "but the first. The new token may see every earlier position: no mask is needed."
                    )
                if _close(out, (q @ right_k.transpose(-2, -1)).softmax(-1) @ right_v):
                    raise Mistake("the scores are not scaled: divide q k^T by sqrt(d_head).")
                if _close(out, (q @ right_k.transpose(-2, -1) / math.sqrt(D)).softmax(-2) @ right_v):
                    raise Mistake("the softmax runs over the wrong axis: normalise over the keys, dim=-1.")
            if not _close(out, right_out):
                raise Mistake("out is not softmax(q K^T / sqrt(d_head)) V over the cached and new positions.")
            if not _close(out, F.scaled_dot_product_attention(q, right_k, right_v)):  # pragma: no cover
                raise Mistake("does not match torch's scaled_dot_product_attention.")
        return "the new key and value appended (dim -2); the new query attends over every position, itself included."

    return run_checker("kv_cache_step", check)
