"""The checks every public function of the course runs on its arguments, written once.

Private: the teaching modules call these so that their own bodies read like the idea, and a
learner's wrong argument gets the same kind of message everywhere: who expected what, and what
arrived ("GPTConfig expected a positive int num_layers, got True"). ``bool`` is a subclass of
``int`` in Python, so every integer check rejects ``True`` and ``False`` explicitly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from numbers import Integral, Real
from typing import Any

import torch
from torch import nn

__all__ = [
    "positive_int",
    "number",
    "probability",
    "dropout_p",
    "tensor",
    "float_tensor",
    "token_ids",
    "bert_tokenizer",
    "attention_mask",
    "queries_keys_values",
    "eval_mode",
]


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def positive_int(value: Any, name: str, caller: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (no upper end by default); bools are rejected.

    Raises ``ValueError`` naming ``caller`` and ``name``: "{caller} expected a positive int
    {name}, got {value!r}" for the default range, "{caller} expected {name} to be an int >= m
    (and <= M), got ..." for another.
    """
    if _is_int(value) and value >= minimum and (maximum is None or value <= maximum):
        return int(value)
    if minimum == 1 and maximum is None:
        raise ValueError(f"{caller} expected a positive int {name}, got {value!r}")
    upper = "" if maximum is None else f" and <= {maximum}"
    raise ValueError(f"{caller} expected {name} to be an int >= {minimum}{upper}, got {value!r}")


def number(
    value: Any,
    name: str,
    caller: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float in the interval given (``low_open``: ``low`` itself excluded); bools rejected."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and value == value  # NaN fails
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if ok:
        return float(value)
    left = "" if low is None else f"{low} {'<' if low_open else '<='} "
    right = "" if high is None else f" {'<' if high_open else '<='} {high}"
    raise ValueError(f"{caller} expected {left}{name}{right}, got {value!r}")


def probability(value: Any, name: str, caller: str) -> float:
    """A probability in ``[0, 1]``."""
    return number(value, name, caller, low=0.0, high=1.0)


def dropout_p(value: Any, caller: str, name: str = "dropout") -> float:
    """A dropout probability in ``[0, 1)`` (1 would drop everything)."""
    return number(value, name, caller, low=0.0, high=1.0, high_open=True)


def tensor(value: Any, name: str, caller: str) -> torch.Tensor:
    """``value`` itself if it is a ``torch.Tensor``; ``TypeError`` otherwise."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{caller} expected {name} to be a torch.Tensor, got {type(value).__name__}")
    return value


def float_tensor(value: Any, name: str, caller: str, *, dims: int | None = None, last: int | None = None,
                 layout: str = "") -> torch.Tensor:
    """A floating-point tensor, optionally with ``dims`` dimensions and last dimension ``last``.

    ``layout`` names the expected shape in the message, e.g. ``"(batch, seq, d_model=64)"``.
    """
    value = tensor(value, name, caller)
    if not value.is_floating_point():
        raise TypeError(f"{caller} expected floating-point {name}, got dtype {value.dtype}")
    if (dims is not None and value.dim() != dims) or (last is not None and (value.dim() == 0 or value.shape[-1] != last)):
        raise ValueError(f"{caller} expected {name} of shape {layout or f'({dims} dims)'}, got {tuple(value.shape)}")
    return value


def token_ids(
    value: Any,
    caller: str,
    *,
    name: str = "input_ids",
    vocab_size: int | None = None,
    dims: int = 2,
) -> torch.Tensor:
    """An integer tensor of token ids with ``dims`` dimensions (``(batch, seq)`` by default), in
    ``[0, vocab_size)`` when ``vocab_size`` is given; returned as ``torch.long``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{caller} expected {name} as a torch.Tensor of token ids, got {type(value).__name__}; "
            "e.g. torch.tensor([ids])"
        )
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"{caller} expected integer token ids for {name}, got dtype {value.dtype}")
    if value.dim() != dims:
        layout = "(batch, seq)" if dims == 2 else "(seq,)" if dims == 1 else f"({dims} dims)"
        hint = " (one sequence: input_ids.unsqueeze(0))" if dims == 2 and value.dim() == 1 else ""
        raise ValueError(f"{caller} expected {name} of shape {layout}, got {tuple(value.shape)}{hint}")
    if vocab_size is not None and value.numel():
        low, high = int(value.min()), int(value.max())
        if low < 0 or high >= vocab_size:
            raise ValueError(
                f"{caller}: token ids must lie in [0, vocab_size={vocab_size}), got ids from {low} to "
                f"{high}; was the text encoded with this model's tokenizer?"
            )
    return value.long()


def bert_tokenizer(tokenizer: Any, caller: str) -> Any:
    """A tokenizer with the four special tokens BERT needs: [CLS], [SEP], [MASK] and [PAD]."""
    for name in ("cls_token_id", "sep_token_id", "mask_token_id", "pad_token_id"):
        if getattr(tokenizer, name, None) is None:
            raise ValueError(
                f"{caller} needs a BERT tokenizer with [CLS], [SEP], [MASK] and [PAD] "
                f"(e.g. course_lib.tokenizers.course_wordpiece_tokenizer()); this one has no {name}"
            )
    return tokenizer


# ---- attention ------------------------------------------------------------------------------
def attention_mask(mask, weights_shape: tuple[int, ...], caller: str) -> torch.Tensor:
    """Validate a boolean attention mask against the weights' shape ``(..., n_q, n_k)``."""
    mask = tensor(mask, "mask", caller)
    if mask.dtype != torch.bool:
        raise TypeError(
            f"{caller} expected a boolean mask (True where attention is allowed), got dtype "
            f"{mask.dtype}. A float mask is a common trap: PyTorch *adds* a float mask to the scores "
            "(0 = allowed, -inf = blocked), so a 0/1 float mask would silently change the scores "
            "instead of blocking anything. If 1 means 'allowed', pass mask.bool(); if your mask is "
            "additive (0 / -inf), pass mask == 0."
        )
    try:
        broadcast = torch.broadcast_shapes(tuple(mask.shape), weights_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != weights_shape:
        raise ValueError(
            f"{caller}: the mask of shape {tuple(mask.shape)} cannot broadcast to the attention weights' "
            f"shape {weights_shape} (..., n_queries, n_keys). Its last two dimensions must be "
            "(n_queries or 1, n_keys or 1), e.g. (T, T) for a causal mask or (batch, 1, 1, n_keys) "
            "for a padding mask."
        )
    return mask


def queries_keys_values(q, k, v, caller: str) -> tuple[int, ...]:
    """Validate query/key/value shapes; return the attention weights' shape (..., n_q, n_k)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        tensor(t, name, caller)
        if t.dim() < 2:
            raise ValueError(
                f"{caller} expected {name} with at least 2 dimensions (..., seq, features), "
                f"got shape {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise TypeError(f"{caller} expected floating-point {name}, got dtype {t.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"{caller}: queries and keys must have the same last dimension d_k to be compared by dot "
            f"product; got q of shape {tuple(q.shape)} (d_k={q.shape[-1]}) and k of shape {tuple(k.shape)} "
            f"(d_k={k.shape[-1]})"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"{caller}: keys and values come in pairs, so they need the same length; got k of shape "
            f"{tuple(k.shape)} ({k.shape[-2]} keys) and v of shape {tuple(v.shape)} ({v.shape[-2]} values)"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(
            f"{caller} expected q, k and v of one dtype, got {q.dtype}, {k.dtype} and {v.dtype}"
        )
    try:
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"{caller}: the leading (batch, head) dimensions of q {tuple(q.shape)[:-2]}, k "
            f"{tuple(k.shape)[:-2]} and v {tuple(v.shape)[:-2]} must be equal or broadcastable"
        ) from None
    return tuple(batch) + (q.shape[-2], k.shape[-2])


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with ``model.eval()`` (no dropout) and give back the mode it had, even on error."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
