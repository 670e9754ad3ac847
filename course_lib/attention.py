"""Attention: scaled dot-product attention, masks and multi-head attention.

The building block of every model in the course (the Transformer, GPT, BERT). Conventions:

* tensors are laid out ``(..., seq, features)``: ``(batch, seq, d_model)`` for a layer's input and
  output, ``(batch, heads, seq, d_head)`` inside multi-head attention;
* a **mask is boolean, True where attention is allowed** (PyTorch's convention for
  ``torch.nn.functional.scaled_dot_product_attention``), and broadcastable to the attention
  weights' shape ``(..., n_queries, n_keys)``. ``nn.MultiheadAttention``'s ``attn_mask`` uses the
  opposite meaning for booleans (True = *not* allowed): see ``MultiHeadAttention.from_torch``;
* a query whose keys are **all** masked gets all-zero weights and an all-zero output. This is what
  ``torch.nn.functional.scaled_dot_product_attention`` returns in torch >= 2.5 (on CPU and CUDA),
  where ``nn.MultiheadAttention`` and a plain ``softmax`` of ``-inf`` scores give NaN instead.

    from course_lib.attention import MultiHeadAttention, causal_mask
    mha = MultiHeadAttention(d_model=64, num_heads=4)
    out, weights = mha(x, mask=causal_mask(x.shape[1]))   # (batch, seq, 64), (batch, 4, seq, seq)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "stable_softmax",
    "scaled_dot_product_attention",
    "causal_mask",
    "padding_mask",
    "split_heads",
    "merge_heads",
    "MultiHeadAttention",
]


# ---- validation helpers ---------------------------------------------------------------------
def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _require_tensor(value, name: str, caller: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{caller} expected {name} to be a torch.Tensor, got {type(value).__name__}")
    return value


def _check_mask(mask, weights_shape: tuple[int, ...], caller: str) -> torch.Tensor:
    """Validate a boolean attention mask against the weights' shape ``(..., n_q, n_k)``."""
    mask = _require_tensor(mask, "mask", caller)
    if mask.dtype != torch.bool:
        raise TypeError(
            f"{caller} expected a boolean mask (True where attention is allowed), got dtype "
            f"{mask.dtype}. A float mask is a common trap: PyTorch *adds* a float mask to the scores "
            "(0 = allowed, -inf = blocked), so a 0/1 float mask would silently change the scores "
            "instead of blocking anything. If 1 means 'allowed', pass mask.bool(); if your mask is "
            "additive (0 / -inf), pass mask == 0."
        )
    try:
        broadcast = torch.broadcast_shapes(_shape(mask), weights_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != weights_shape:
        raise ValueError(
            f"{caller}: the mask of shape {_shape(mask)} cannot broadcast to the attention weights' "
            f"shape {weights_shape} (..., n_queries, n_keys). Its last two dimensions must be "
            "(n_queries or 1, n_keys or 1), e.g. (T, T) for a causal mask or (batch, 1, 1, n_keys) "
            "for a padding mask."
        )
    return mask


def _check_qkv(q, k, v, caller: str) -> tuple[int, ...]:
    """Validate query/key/value shapes; return the attention weights' shape (..., n_q, n_k)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        _require_tensor(t, name, caller)
        if t.dim() < 2:
            raise ValueError(
                f"{caller} expected {name} with at least 2 dimensions (..., seq, features), "
                f"got shape {_shape(t)}"
            )
        if not t.is_floating_point():
            raise TypeError(f"{caller} expected floating-point {name}, got dtype {t.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"{caller}: queries and keys must have the same last dimension d_k to be compared by dot "
            f"product; got q of shape {_shape(q)} (d_k={q.shape[-1]}) and k of shape {_shape(k)} "
            f"(d_k={k.shape[-1]})"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"{caller}: keys and values come in pairs, so they need the same length; got k of shape "
            f"{_shape(k)} ({k.shape[-2]} keys) and v of shape {_shape(v)} ({v.shape[-2]} values)"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(
            f"{caller} expected q, k and v of one dtype, got {q.dtype}, {k.dtype} and {v.dtype}"
        )
    try:
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"{caller}: the leading (batch, head) dimensions of q {_shape(q)[:-2]}, k "
            f"{_shape(k)[:-2]} and v {_shape(v)[:-2]} must be equal or broadcastable"
        ) from None
    return tuple(batch) + (q.shape[-2], k.shape[-2])


# ---- softmax --------------------------------------------------------------------------------
def stable_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax computed the numerically stable way: subtract the maximum before ``exp``.

    ``softmax(x)_i = exp(x_i) / sum_j exp(x_j)`` equals ``exp(x_i - m) / sum_j exp(x_j - m)`` for any
    ``m``; with ``m = max_j x_j`` the largest exponent is ``exp(0) = 1``, so nothing overflows
    (``exp(89.)`` is already ``inf`` in float32) and the sum is at least 1. Equal to ``torch.softmax``.

    Args:
        x: scores, any shape; a floating-point tensor.
        dim: the dimension that sums to 1.

    Returns:
        A tensor of ``x``'s shape, non-negative, summing to 1 along ``dim``.
    """
    x = _require_tensor(x, "x", "stable_softmax")
    if not x.is_floating_point():
        raise TypeError(f"stable_softmax expected floating-point scores, got dtype {x.dtype}")
    if x.dim() == 0:
        raise ValueError("stable_softmax expected at least one dimension, got a 0-dim tensor")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"stable_softmax: dim={dim} is out of range for a tensor of shape {_shape(x)}")
    shifted = x - x.amax(dim=dim, keepdim=True).detach()  # the shift does not change the result
    exp = shifted.exp()
    return exp / exp.sum(dim=dim, keepdim=True)


# ---- scaled dot-product attention -----------------------------------------------------------
def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of queries over keys, returning the output and the weights.

    ``weights = softmax(q @ k^T * scale)`` over the keys, with ``scale = 1 / sqrt(d_k)`` by default,
    blocked (weight 0) wherever ``mask`` is False; ``output = weights @ v``. The output equals
    ``torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)``.

    Args:
        q: queries ``(..., n_q, d_k)``; ``...`` is any batch/head dimensions (none, ``(batch,)``,
            ``(batch, heads)``), broadcastable between q, k and v.
        k: keys ``(..., n_k, d_k)``; ``n_k`` may differ from ``n_q`` (cross-attention).
        v: values ``(..., n_k, d_v)``.
        mask: optional **boolean** tensor, True where query i may attend to key j, broadcastable to
            ``(..., n_q, n_k)``: a ``(n_q, n_k)`` causal mask, a ``(batch, 1, 1, n_k)`` padding mask.
            A query with no allowed key gets zero weights and a zero output (as in torch's SDPA).
        is_causal: also block every key after the query's own position (needs ``n_q == n_k``; for a
            KV cache, build the mask explicitly).
        dropout_p: dropout probability on the weights (use only while training).
        scale: the factor on the scores; ``1 / sqrt(d_k)`` when None.

    Returns:
        ``(output, weights)``: output ``(..., n_q, d_v)``, weights ``(..., n_q, n_k)`` (after
        dropout, when there is some), each row summing to 1 (or 0 for a fully masked query).
    """
    caller = "scaled_dot_product_attention"
    weights_shape = _check_qkv(q, k, v, caller)
    if mask is not None:
        mask = _check_mask(mask, weights_shape, caller)
    if is_causal:
        if q.shape[-2] != k.shape[-2]:
            raise ValueError(
                f"{caller}: is_causal=True needs as many queries as keys, got {q.shape[-2]} queries "
                f"and {k.shape[-2]} keys; pass an explicit mask instead (e.g. for a KV cache)"
            )
        causal = causal_mask(q.shape[-2], device=q.device)
        mask = causal if mask is None else mask & causal
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{caller} expected 0 <= dropout_p < 1, got {dropout_p}")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])

    scores = (q @ k.transpose(-2, -1)) * scale  # (..., n_q, n_k)
    if mask is None:
        weights = torch.softmax(scores, dim=-1)
    else:
        scores = scores.masked_fill(~mask, float("-inf"))
        # A query with every key blocked would give softmax(-inf, ..., -inf) = 0/0 = NaN. Give those
        # rows finite scores for the softmax, then zero their weights: no NaN, not even in gradients.
        has_key = mask.any(dim=-1, keepdim=True)
        weights = torch.softmax(scores.masked_fill(~has_key, 0.0), dim=-1).masked_fill(~has_key, 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


# ---- masks ----------------------------------------------------------------------------------
def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The causal (look-back only) mask: query i may attend to keys 0..i, itself included.

    Args:
        T: sequence length, a positive int.
        device: where to put the mask.

    Returns:
        A ``(T, T)`` boolean tensor, True on and below the diagonal (lower triangle).
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"causal_mask expected a positive int length T, got {T!r}")
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def padding_mask(
    lengths_or_attention_mask: torch.Tensor | Sequence[int],
    max_len: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A key-padding mask: True where the key is a real token, False where it is padding.

    Args:
        lengths_or_attention_mask: either the lengths of the sequences, ``(batch,)`` ints (a list
            or a tensor; the padding is then at the end), or a Hugging Face style ``attention_mask``
            ``(batch, T)`` of 1/0 or True/False (1 = real token), which also allows left padding.
        max_len: the padded length ``T`` when lengths are given (default: the longest length).
        device: where to put the mask (default: the input's device).

    Returns:
        A boolean mask ``(batch, 1, 1, T)``, broadcastable to attention weights
        ``(batch, heads, n_queries, T)``.
    """
    caller = "padding_mask"
    x = lengths_or_attention_mask
    if not isinstance(x, torch.Tensor):
        if not isinstance(x, Sequence) or isinstance(x, str):
            raise TypeError(
                f"{caller} expected a tensor or a list of lengths, got {type(x).__name__}"
            )
        x = torch.tensor(list(x))
    if device is None:
        device = x.device
    if x.dim() == 1:  # lengths
        if x.is_floating_point() or x.dtype == torch.bool:
            raise TypeError(f"{caller} expected integer lengths, got dtype {x.dtype}")
        if x.numel() == 0 or (x < 0).any():
            raise ValueError(f"{caller} expected non-negative lengths, got {x.tolist()}")
        longest = int(x.max())
        if max_len is None:
            max_len = longest
        if not isinstance(max_len, int) or max_len < longest:
            raise ValueError(
                f"{caller}: max_len={max_len!r} is shorter than the longest sequence ({longest})"
            )
        mask = torch.arange(max_len, device=x.device) < x.unsqueeze(-1)
    elif x.dim() == 2:  # attention_mask (batch, T)
        if max_len is not None and max_len != x.shape[-1]:
            raise ValueError(
                f"{caller}: got an attention_mask of shape {_shape(x)} and max_len={max_len}; "
                "leave max_len out for an attention_mask"
            )
        if x.dtype != torch.bool:
            if x.is_floating_point() or not ((x == 0) | (x == 1)).all():
                raise ValueError(
                    f"{caller} expected an attention_mask of 0/1 integers or booleans (1 = real "
                    f"token), got dtype {x.dtype} with values {sorted(set(x.flatten().tolist()))[:5]}"
                )
        mask = x.bool()
    else:
        raise ValueError(
            f"{caller} expected lengths (batch,) or an attention_mask (batch, T), got shape {_shape(x)}"
        )
    return mask[:, None, None, :].to(device)


# ---- heads ----------------------------------------------------------------------------------
def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Cut the features into ``num_heads`` heads: ``(batch, seq, d)`` -> ``(batch, heads, seq, d // heads)``.

    Head ``h`` holds features ``h * d_head`` to ``(h + 1) * d_head - 1`` of every position.
    """
    x = _require_tensor(x, "x", "split_heads")
    if x.dim() != 3:
        raise ValueError(f"split_heads expected x of shape (batch, seq, d), got {_shape(x)}")
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"split_heads expected a positive int num_heads, got {num_heads!r}")
    batch, seq, d = x.shape
    if d % num_heads:
        raise ValueError(
            f"split_heads: the feature size {d} of x {_shape(x)} is not divisible by num_heads={num_heads}"
        )
    return x.view(batch, seq, num_heads, d // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """Undo ``split_heads``: ``(batch, heads, seq, d_head)`` -> ``(batch, seq, heads * d_head)``."""
    x = _require_tensor(x, "x", "merge_heads")
    if x.dim() != 4:
        raise ValueError(
            f"merge_heads expected x of shape (batch, heads, seq, d_head), got {_shape(x)}"
        )
    batch, heads, seq, d_head = x.shape
    return x.transpose(1, 2).reshape(batch, seq, heads * d_head)


# ---- multi-head attention -------------------------------------------------------------------
class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate query, key, value and output projections.

    ``num_heads`` attentions run side by side, each on its own ``d_head = d_model // num_heads``
    slice of the projected queries, keys and values; their outputs are concatenated and mixed by
    ``out_proj``. Equal to ``torch.nn.MultiheadAttention(d_model, num_heads, batch_first=True)``
    given the same weights (``from_torch``).

    Args:
        d_model: the size of each position's vector (input and output).
        num_heads: the number of heads; must divide ``d_model``.
        dropout: dropout probability on the attention weights, applied in training mode only.
        bias: whether the four projections have biases.
        rotary: optional module applied to the queries and keys of every head after the split,
            ``rotary(x) -> x`` on ``(batch, heads, seq, d_head)`` (e.g.
            ``course_lib.positional.RotaryEmbedding(d_head)``): rotary position embeddings.

    Attributes:
        q_proj, k_proj, v_proj, out_proj: ``nn.Linear(d_model, d_model)`` each.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        rotary: nn.Module | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("d_model", d_model), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MultiHeadAttention expected a positive int {name}, got {value!r}")
        if d_model % num_heads:
            raise ValueError(
                f"MultiHeadAttention: d_model={d_model} must be divisible by num_heads={num_heads} "
                "(each head gets d_model // num_heads features)"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiHeadAttention expected 0 <= dropout < 1, got {dropout}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_head = d_model // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.rotary = rotary

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_heads={self.num_heads}, dropout={self.dropout}"

    def _check_input(self, x, name: str) -> torch.Tensor:
        x = _require_tensor(x, name, "MultiHeadAttention")
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"MultiHeadAttention expected {name} of shape (batch, seq, d_model={self.d_model}), "
                f"got {_shape(x)}"
            )
        return x

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        need_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query`` to ``key``/``value`` (self-attention when they are None).

        Args:
            query: ``(batch, n_q, d_model)``.
            key: ``(batch, n_k, d_model)``; None means ``query`` (self-attention). For
                cross-attention pass the encoder's output as key (and value).
            value: ``(batch, n_k, d_model)``; None means ``key``.
            mask: boolean, True where attention is allowed, broadcastable to
                ``(batch, num_heads, n_q, n_k)``: ``causal_mask(T)`` ``(T, T)``, ``padding_mask``
                ``(batch, 1, 1, n_k)``, or both combined with ``&``.
            need_weights: True computes the weights with the course's own attention and returns
                them ``(batch, num_heads, n_q, n_k)``; False uses PyTorch's fused kernel
                (faster, less memory: use it for training) and returns None for the weights.
            is_causal: add a causal mask (lets the fused kernel use its fastest path).

        Returns:
            ``(output, weights)``: output ``(batch, n_q, d_model)``; weights as above, or None.
        """
        query = self._check_input(query, "query")
        key = query if key is None else self._check_input(key, "key")
        value = key if value is None else self._check_input(value, "value")
        if key.shape[:2] != value.shape[:2] or query.shape[0] != key.shape[0]:
            raise ValueError(
                "MultiHeadAttention expected query (batch, n_q, d), key and value (batch, n_k, d) "
                f"with one batch size and as many keys as values; got query {_shape(query)}, key "
                f"{_shape(key)}, value {_shape(value)}"
            )
        # 1. project, 2. split into heads: (batch, heads, seq, d_head). A KV cache would append the
        # new k, v to the cached ones here, between the projection and the attention.
        q = split_heads(self.q_proj(query), self.num_heads)
        k = split_heads(self.k_proj(key), self.num_heads)
        v = split_heads(self.v_proj(value), self.num_heads)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        # 3. attend, 4. merge the heads back and mix them.
        out, weights = self.attend(q, k, v, mask=mask, need_weights=need_weights, is_causal=is_causal)
        return self.out_proj(merge_heads(out)), weights

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None = None,
        need_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention of per-head ``q (batch, heads, n_q, d_head)`` over ``k, v (batch, heads, n_k, d_head)``.

        Returns ``(output (batch, heads, n_q, d_head), weights (batch, heads, n_q, n_k) or None)``.
        """
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            return scaled_dot_product_attention(
                q, k, v, mask, is_causal=is_causal, dropout_p=dropout_p
            )
        caller = "MultiHeadAttention"
        weights_shape = _check_qkv(q, k, v, caller)
        if is_causal and q.shape[-2] != k.shape[-2]:
            raise ValueError(
                f"{caller}: is_causal=True needs as many queries as keys, got {q.shape[-2]} queries "
                f"and {k.shape[-2]} keys; pass an explicit mask instead (e.g. for a KV cache)"
            )
        if mask is not None:
            mask = _check_mask(mask, weights_shape, caller)
            if is_causal:  # the fused kernel takes one or the other
                mask = mask & causal_mask(q.shape[-2], device=q.device)
                is_causal = False
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
        )
        return out, None

    # ---- interoperability with torch.nn.MultiheadAttention ---------------------------------
    @classmethod
    def from_torch(cls, torch_mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """A ``MultiHeadAttention`` holding a copy of an ``nn.MultiheadAttention``'s weights.

        torch keeps the three input projections stacked in one ``in_proj_weight`` of shape
        ``(3 * d_model, d_model)`` (queries, then keys, then values); they are split into
        ``q_proj``, ``k_proj`` and ``v_proj``. The two modules then give the same outputs, with two
        differences in how they are called: torch's boolean ``attn_mask`` and ``key_padding_mask``
        mean True = *blocked* (pass ``~mask``), and torch averages the weights over the heads unless
        ``average_attn_weights=False``. Build the torch module with ``batch_first=True`` to feed
        both the same ``(batch, seq, d_model)`` inputs.
        """
        if not isinstance(torch_mha, nn.MultiheadAttention):
            raise TypeError(
                f"from_torch expected an nn.MultiheadAttention, got {type(torch_mha).__name__}"
            )
        if not torch_mha._qkv_same_embed_dim:
            raise ValueError("from_torch supports kdim == vdim == embed_dim only")
        if torch_mha.bias_k is not None or torch_mha.add_zero_attn:
            raise ValueError("from_torch does not support add_bias_kv or add_zero_attn")
        has_bias = torch_mha.in_proj_bias is not None
        mha = cls(torch_mha.embed_dim, torch_mha.num_heads, dropout=torch_mha.dropout, bias=has_bias)
        weight = torch_mha.in_proj_weight.detach()
        mha = mha.to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            for proj, w in zip((mha.q_proj, mha.k_proj, mha.v_proj), weight.chunk(3, dim=0)):
                proj.weight.copy_(w)
            mha.out_proj.weight.copy_(torch_mha.out_proj.weight)
            if has_bias:
                for proj, b in zip(
                    (mha.q_proj, mha.k_proj, mha.v_proj), torch_mha.in_proj_bias.detach().chunk(3)
                ):
                    proj.bias.copy_(b)
                mha.out_proj.bias.copy_(torch_mha.out_proj.bias)
        mha.train(torch_mha.training)
        return mha
