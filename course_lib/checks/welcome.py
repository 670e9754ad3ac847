"""Checkers for notebook 00 (welcome): the three PyTorch warm-ups every later notebook relies on."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from course_lib.checks.core import Mistake, Verdict, expect_tensor, run_checker

__all__ = ["one_hot", "count_parameters", "pairwise_scores"]



def one_hot(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> Verdict:
    """Check ``fn(ids, vocab_size)``: ids of any shape (...,) -> float one-hot vectors (..., vocab_size)."""

    def check() -> str:
        for ids, vocab in [
            (torch.tensor([2, 0, 1]), 4),
            (torch.tensor([[3, 3], [0, 4]]), 5),
            (torch.tensor([6]), 7),  # the last id: catches an off-by-one vocabulary size
        ]:
            out = expect_tensor(fn(ids.clone(), vocab), "one_hot")
            expected = torch.nn.functional.one_hot(ids, vocab).float()
            if out.shape == ids.shape + (vocab - 1,) or out.shape == ids.shape + (vocab + 1,):
                raise Mistake(
                    f"shape {tuple(out.shape)} for vocab_size={vocab}: the last dimension must be "
                    "exactly vocab_size (ids run from 0 to vocab_size - 1)."
                )
            if out.shape != expected.shape:
                raise Mistake(
                    f"for ids of shape {tuple(ids.shape)} and vocab_size={vocab} expected shape "
                    f"{tuple(expected.shape)}, got {tuple(out.shape)}: add one new last dimension."
                )
            if not out.is_floating_point():
                raise Mistake(
                    f"the values have dtype {out.dtype}; use float (e.g. .float()) so the vectors "
                    "can be multiplied by a weight matrix."
                )
            if not torch.equal(out, expected):
                if torch.equal(out.sum(-1), torch.ones(ids.shape)):
                    raise Mistake("each vector has a single 1, but in the wrong place: put it at index ids[...].")
                raise Mistake("each vector must hold exactly one 1 (at the token's id) and 0 elsewhere.")
        return "one 1 per vector, at the token's id, as floats, any input shape."

    return run_checker("one_hot", check)


class _TiedModel(nn.Module):
    """A tiny model with the three traps: tied weights, a frozen layer and a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.hidden = nn.Linear(4, 4)
        self.frozen = nn.Linear(4, 3)
        self.frozen.requires_grad_(False)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight  # tied: one parameter under two names
        self.register_buffer("position_ids", torch.arange(8))


def count_parameters(fn: Callable[[nn.Module], int]) -> Verdict:
    """Check ``fn(model)``: the number of trainable numbers (elements) in a model."""

    def check() -> str:
        model = _TiedModel()
        right = sum(p.numel() for p in model.parameters() if p.requires_grad)  # 40 + 20 = 60
        got = fn(model)
        if isinstance(got, torch.Tensor):
            got = got.item()
        if not isinstance(got, int):
            raise Mistake(f"return an int, got {type(got).__name__}.")
        tensors = len([p for p in model.parameters() if p.requires_grad])
        all_params = sum(p.numel() for p in model.parameters())
        state_total = sum(t.numel() for t in model.state_dict().values())
        untied = right + model.head.weight.numel()
        if got == tensors:
            raise Mistake("that is the number of parameter tensors; count their elements with .numel().")
        if got == all_params:
            raise Mistake("frozen parameters (requires_grad=False) are not trained: leave them out.")
        if got in (state_total, untied, state_total - model.frozen.weight.numel() - model.frozen.bias.numel()):
            raise Mistake(
                "a tied weight (one tensor under two names) or a buffer was counted: iterate over "
                "model.parameters(), which lists each parameter once and no buffers."
            )
        if got != right:
            raise Mistake(f"expected {right} trainable numbers in the test model, got {got}.")
        fresh = nn.Linear(3, 2)
        if fn(fresh) != 8:
            raise Mistake("nn.Linear(3, 2) has 3*2 weights + 2 biases = 8 trainable numbers.")
        return "elements of trainable parameters, tied weights once, buffers and frozen layers left out."

    return run_checker("count_parameters", check)


def pairwise_scores(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Verdict:
    """Check ``fn(queries, keys)``: (batch, n_q, d) x (batch, n_k, d) -> dot products (batch, n_q, n_k)."""

    def check() -> str:
        gen = torch.Generator().manual_seed(0)
        q = torch.randn(2, 3, 4, generator=gen)
        k = torch.randn(2, 5, 4, generator=gen)
        expected = torch.einsum("bqd,bkd->bqk", q, k)
        try:
            out = expect_tensor(fn(q.clone(), k.clone()), "pairwise_scores")
        except NotImplementedError:  # the student stub: "not done yet", handled by run_checker
            raise
        except RuntimeError as exc:  # a shape mismatch inside matmul or broadcasting
            raise Mistake(
                f"with queries {tuple(q.shape)} and keys {tuple(k.shape)} your code raised "
                f"RuntimeError: {exc}. Multiply the queries by the keys with their last two "
                "dimensions swapped: keys.transpose(-2, -1) has shape (batch, d, n_k)."
            ) from None
        if out.shape == (2, 5, 3):
            raise Mistake("shape (batch, n_k, n_q): you computed keys · queries; put the queries first.")
        if out.shape != expected.shape:
            raise Mistake(
                f"queries {tuple(q.shape)} and keys {tuple(k.shape)} should give scores of shape "
                f"{tuple(expected.shape)} (batch, n_q, n_k), got {tuple(out.shape)}. "
                "Transpose only the last two dimensions of the keys: keys.transpose(-2, -1)."
            )
        if torch.allclose(out, expected / 2.0, atol=1e-5):  # d ** 0.5 with d = 4
            raise Mistake("the scores are divided by sqrt(d): that scaling comes later, in attention.")
        if not torch.allclose(out, expected, atol=1e-5):
            raise Mistake("the shape is right but the values are not the dot products q[b, i] · k[b, j].")
        square = fn(q[:, :3], k[:, :3])
        if not torch.allclose(square, torch.einsum("bqd,bkd->bqk", q[:, :3], k[:, :3]), atol=1e-5):
            raise Mistake("wrong values when n_q == n_k: check which dimensions you transpose.")
        return "every query against every key, per batch element, shape (batch, n_q, n_k)."

    return run_checker("pairwise_scores", check)
