"""Position information for attention: sinusoidal, learned and rotary (RoPE) position embeddings.

Attention on its own treats a sequence as a bag: shuffle the inputs and the outputs shuffle the
same way. Each scheme here tells the model where a token is:

* ``sinusoidal_encoding`` / ``SinusoidalPositionalEmbedding``: a fixed table added to the token
  embeddings ("Attention Is All You Need"): ``PE[pos, 2i] = sin(pos / base^(2i/d))``,
  ``PE[pos, 2i+1] = cos(pos / base^(2i/d))``;
* ``LearnedPositionalEmbedding``: a trained vector per position, added likewise (GPT-2, BERT);
* ``RotaryEmbedding`` / ``apply_rotary``: rotary embeddings (RoPE, LLaMA) rotate queries and keys
  inside attention so that ``q_m . k_n`` depends on the positions only through ``m - n``.
* ``alibi_bias``: a distance penalty added to the attention scores (ALiBi, BLOOM, MPT).
  The convention is Hugging Face's / LLaMA's "rotate_half": feature ``i`` is paired with feature
  ``i + d/2``, the pair rotated by the angle ``pos * base^(-2i/d)``.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib import _validate as validate

__all__ = [
    "sinusoidal_encoding",
    "SinusoidalPositionalEmbedding",
    "LearnedPositionalEmbedding",
    "rotary_inverse_frequencies",
    "rotary_cos_sin",
    "rotate_half",
    "apply_rotary",
    "RotaryEmbedding",
    "alibi_bias",
]


# ---- sinusoidal -----------------------------------------------------------------------------
def sinusoidal_encoding(
    max_len: int, d_model: int, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The sinusoidal position table of "Attention Is All You Need" (Vaswani et al., 2017).

    ``PE[pos, 2i] = sin(pos / base^(2i / d_model))`` and ``PE[pos, 2i + 1] = cos(pos / base^(2i / d_model))``:
    dimension pair ``(2i, 2i+1)`` turns at the angular frequency ``base^(-2i/d_model)``, from 1 radian per
    position (i = 0) down to nearly ``1/base`` (the last pair).

    Args:
        max_len: the number of positions (rows), 0 to ``max_len - 1``.
        d_model: the vector size (columns); must be even (sin and cos come in pairs).
        base: the wavelength scale (10000 in the paper).
        dtype: the table's floating-point dtype (computed in float64, then cast).

    Returns:
        A ``(max_len, d_model)`` tensor with values in [-1, 1].
    """
    caller = "sinusoidal_encoding"
    validate.positive_int(max_len, "max_len", caller)
    validate.positive_int(d_model, "d_model", caller)
    base = validate.number(base, "base", caller, low=0, low_open=True)
    if d_model % 2:
        raise ValueError(
            f"{caller} expected an even d_model (sin and cos fill the dimensions in pairs), got {d_model}"
        )
    position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)  # (max_len, 1)
    frequency = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (d/2,)
    angle = position * frequency  # (max_len, d/2)
    table = torch.empty(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = angle.sin()
    table[:, 1::2] = angle.cos()
    return table.to(dtype)


def _check_sequence(x, d_model: int, offset: int, max_len: int, caller: str) -> int:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{caller} expected a tensor (batch, seq, d_model), got {type(x).__name__}")
    if x.dim() < 2 or x.shape[-1] != d_model:
        raise ValueError(
            f"{caller} expected x of shape (..., seq, d_model={d_model}), got {tuple(x.shape)}"
        )
    validate.positive_int(offset, "offset", caller, minimum=0)
    seq = x.shape[-2]
    if offset + seq > max_len:
        raise ValueError(
            f"{caller}: the sequence needs positions {offset} to {offset + seq - 1} but this "
            f"embedding has only max_len={max_len} positions (0 to {max_len - 1}); truncate the "
            "input or build the embedding with a larger max_len"
        )
    return seq


class SinusoidalPositionalEmbedding(nn.Module):
    """Adds the fixed sinusoidal table to a sequence of vectors: ``x + PE[offset : offset + seq]``.

    The table is a buffer (moves with ``.to(device)``, not trained, not saved in the state dict).

    Args:
        max_len: the longest sequence (plus offset) the module accepts.
        d_model: the vector size, even.
        base: the wavelength scale.
    """

    def __init__(self, max_len: int, d_model: int, base: float = 10000.0) -> None:
        super().__init__()
        self.max_len, self.d_model = max_len, d_model
        self.register_buffer("table", sinusoidal_encoding(max_len, d_model, base), persistent=False)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"

    def positions(self, seq_len: int, offset: int = 0) -> torch.Tensor:
        """The table rows for positions ``offset .. offset + seq_len - 1``: ``(seq_len, d_model)``."""
        validate.positive_int(seq_len, "seq_len", "SinusoidalPositionalEmbedding.positions")
        _check_sequence(
            self.table.new_empty(seq_len, self.d_model), self.d_model, offset, self.max_len,
            "SinusoidalPositionalEmbedding",
        )
        return self.table[offset : offset + seq_len]

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """``x (..., seq, d_model)`` -> ``x + PE[offset : offset + seq]``, same shape."""
        seq = _check_sequence(x, self.d_model, offset, self.max_len, "SinusoidalPositionalEmbedding")
        return x + self.table[offset : offset + seq].to(x.dtype)


# ---- learned --------------------------------------------------------------------------------
class LearnedPositionalEmbedding(nn.Module):
    """A trained vector for each position, added to a sequence of vectors (GPT-2's ``wpe``, BERT's
    ``position_embeddings``): ``x + E[offset : offset + seq]``.

    Args:
        max_len: the number of positions it has vectors for; longer inputs raise ``ValueError``
            (a learned table cannot say anything about a position it never saw).
        d_model: the vector size.

    Attributes:
        embedding: ``nn.Embedding(max_len, d_model)``, initialised with std 0.02 as in GPT-2.
    """

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        caller = "LearnedPositionalEmbedding"
        self.max_len = validate.positive_int(max_len, "max_len", caller)
        self.d_model = validate.positive_int(d_model, "d_model", caller)
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"

    def positions(self, seq_len: int, offset: int = 0) -> torch.Tensor:
        """The vectors of positions ``offset .. offset + seq_len - 1``: ``(seq_len, d_model)``."""
        validate.positive_int(seq_len, "seq_len", "LearnedPositionalEmbedding.positions")
        weight = self.embedding.weight
        _check_sequence(
            weight.new_empty(seq_len, self.d_model), self.d_model, offset, self.max_len,
            "LearnedPositionalEmbedding",
        )
        return self.embedding(torch.arange(offset, offset + seq_len, device=weight.device))

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """``x (..., seq, d_model)`` -> ``x + E[offset : offset + seq]``, same shape."""
        seq = _check_sequence(x, self.d_model, offset, self.max_len, "LearnedPositionalEmbedding")
        return x + self.positions(seq, offset)


# ---- rotary ---------------------------------------------------------------------------------
def rotary_inverse_frequencies(d_head: int, base: float = 10000.0) -> torch.Tensor:
    """The rotation speeds of RoPE: ``base^(-2i / d_head)`` for i = 0 .. d_head/2 - 1, ``(d_head/2,)`` float32."""
    caller = "rotary_inverse_frequencies"
    validate.positive_int(d_head, "d_head", caller)
    base = validate.number(base, "base", caller, low=0, low_open=True)
    if d_head % 2:
        raise ValueError(f"{caller} expected an even d_head (features rotate in pairs), got {d_head}")
    # Hugging Face's formula, in float32, so the angles match theirs to the last bit.
    return 1.0 / (base ** (torch.arange(0, d_head, 2, dtype=torch.int64).float() / d_head))


def _positions_tensor(positions, caller: str) -> torch.Tensor:
    if not isinstance(positions, torch.Tensor):
        positions = torch.as_tensor(positions)
    if positions.is_floating_point() or positions.dtype == torch.bool or positions.dim() == 0:
        raise ValueError(
            f"{caller} expected integer positions of shape (seq,) or (..., seq), got "
            f"dtype {positions.dtype} and shape {tuple(positions.shape)}"
        )
    return positions


def rotary_cos_sin(
    positions: torch.Tensor, d_head: int, base: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The cosines and sines RoPE multiplies by, in the rotate_half layout.

    Args:
        positions: integer positions ``(seq,)`` or ``(..., seq)``.
        d_head: the (even) feature size of a head.
        base: the wavelength scale.

    Returns:
        ``(cos, sin)``, each ``positions.shape + (d_head,)`` float32 (computed in float32, as in
        Hugging Face's LLaMA, so that results match it): the angles
        ``pos * base^(-2i/d_head)`` for i = 0 .. d_head/2 - 1, written twice (``cat([a, a])``).
    """
    positions = _positions_tensor(positions, "rotary_cos_sin")
    return _cos_sin(positions, rotary_inverse_frequencies(d_head, base).to(positions.device))


def _cos_sin(
    positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    # float32 angles (float64 for float64 inputs): half precision would blur large positions.
    dtype = torch.float64 if dtype == torch.float64 else torch.float32
    angles = positions.to(dtype).unsqueeze(-1) * inv_freq.to(dtype)  # (..., seq, d/2)
    angles = torch.cat([angles, angles], dim=-1)  # (..., seq, d)
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the last dimension split in two halves: a 90° turn of each pair
    ``(x[i], x[i + d/2])``. ``x (..., d)`` -> same shape."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"rotate_half expected a tensor, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] % 2:
        raise ValueError(f"rotate_half expected an even last dimension, got shape {tuple(x.shape)}")
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(
    x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10000.0
) -> torch.Tensor:
    """Rotate queries or keys by their positions (RoPE, Hugging Face / LLaMA "rotate_half" layout).

    ``out = x * cos + rotate_half(x) * sin``: each pair ``(x[i], x[i + d/2])`` turns by the angle
    ``pos * base^(-2i/d)``. Rotations keep lengths, and the dot product of a query rotated at ``m``
    with a key rotated at ``n`` depends on the positions only through ``m - n``.

    Args:
        x: ``(..., seq, d_head)`` queries or keys, e.g. ``(batch, heads, seq, d_head)``; ``d_head`` even.
        positions: integer positions ``(seq,)`` (or broadcastable ``(..., seq)``); default
            ``0 .. seq-1``.
        base: the wavelength scale.

    Returns:
        A tensor of ``x``'s shape and dtype.
    """
    return _rotate(x, positions, None, base, "apply_rotary")


def _rotate(x, positions, inv_freq: torch.Tensor | None, base: float, caller: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{caller} expected a tensor (..., seq, d_head), got {type(x).__name__}")
    if x.dim() < 2 or x.shape[-1] % 2:
        raise ValueError(
            f"{caller} expected x of shape (..., seq, d_head) with an even d_head, got {tuple(x.shape)}"
        )
    if positions is None:
        positions = torch.arange(x.shape[-2], device=x.device)
    positions = _positions_tensor(positions, caller).to(x.device)
    if positions.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"{caller}: got {positions.shape[-1]} positions (shape {tuple(positions.shape)}) for a "
            f"sequence of {x.shape[-2]} (x of shape {tuple(x.shape)})"
        )
    if inv_freq is None:
        inv_freq = rotary_inverse_frequencies(x.shape[-1], base)
    if inv_freq.device != x.device:
        inv_freq = inv_freq.to(x.device)
    cos, sin = _cos_sin(positions, inv_freq, x.dtype)
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding for one head size, to use inside attention.

    ``MultiHeadAttention(d_model, num_heads, rotary=RotaryEmbedding(d_model // num_heads))``
    applies it to every head's queries and keys. No trained parameters.

    Args:
        d_head: the (even) feature size of a head.
        base: the wavelength scale (10000 in RoFormer and LLaMA).
    """

    def __init__(self, d_head: int, base: float = 10000.0) -> None:
        super().__init__()
        self.base = validate.number(base, "base", "RotaryEmbedding", low=0, low_open=True)
        self.d_head = d_head
        self.register_buffer(
            "inv_freq", rotary_inverse_frequencies(d_head, self.base), persistent=False
        )

    def extra_repr(self) -> str:
        return f"d_head={self.d_head}, base={self.base:g}"

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """``x (..., seq, d_head)`` rotated by ``positions`` (default ``0 .. seq-1``), same shape."""
        if isinstance(x, torch.Tensor) and x.dim() >= 1 and x.shape[-1] != self.d_head:
            raise ValueError(
                f"RotaryEmbedding(d_head={self.d_head}) got x of shape {tuple(x.shape)}: its last "
                f"dimension must be {self.d_head}"
            )
        return _rotate(x, positions, self.inv_freq, self.base, "RotaryEmbedding")


# ---- ALiBi ----------------------------------------------------------------------------------
def alibi_bias(T: int, slope: float | torch.Tensor) -> torch.Tensor:
    """The two-sided ALiBi bias ``-slope * |i - j|``, added to attention scores before the softmax.

    (Press et al., 2022. The original is causal: it uses ``-slope * (i - j)`` for ``j <= i`` together
    with a causal mask, which gives the same scores wherever the mask allows attention.)

    Args:
        T: the sequence length.
        slope: how fast attention fades with the distance: a positive float, or a ``(heads,)``
            tensor of slopes, one per head.

    Returns:
        A ``(T, T)`` float32 tensor, or ``(heads, T, T)`` for a tensor of slopes: 0 on the diagonal,
        more negative with the distance either way.
    """
    caller = "alibi_bias"
    validate.positive_int(T, "T", caller)
    position = torch.arange(T, dtype=torch.float32)
    distance = (position[:, None] - position[None, :]).abs()  # (T, T)
    if isinstance(slope, torch.Tensor):
        if slope.dim() != 1 or not slope.is_floating_point() or not (slope > 0).all():
            raise ValueError(
                f"{caller} expected a positive float slope or a (heads,) float tensor of positive "
                f"slopes, got a tensor of shape {tuple(slope.shape)} and dtype {slope.dtype}"
            )
        return -slope.float()[:, None, None] * distance.to(slope.device)
    return -validate.number(slope, "slope", caller, low=0, low_open=True) * distance
