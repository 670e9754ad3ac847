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

from course_lib import _validate as validate

__all__ = [
    "stable_softmax",
    "scaled_dot_product_attention",
    "causal_mask",
    "padding_mask",
    "split_heads",
    "merge_heads",
    "KVCache",
    "MultiHeadAttention",
]


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
    x = validate.tensor(x, "x", "stable_softmax")
    if not x.is_floating_point():
        raise TypeError(f"stable_softmax expected floating-point scores, got dtype {x.dtype}")
    if x.dim() == 0:
        raise ValueError("stable_softmax expected at least one dimension, got a 0-dim tensor")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"stable_softmax: dim={dim} is out of range for a tensor of shape {tuple(x.shape)}")
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
    weights_shape = validate.queries_keys_values(q, k, v, caller)
    if mask is not None:
        mask = validate.attention_mask(mask, weights_shape, caller)
    if is_causal:
        if q.shape[-2] != k.shape[-2]:
            raise ValueError(
                f"{caller}: is_causal=True needs as many queries as keys, got {q.shape[-2]} queries "
                f"and {k.shape[-2]} keys; pass an explicit mask instead (e.g. for a KV cache)"
            )
        causal = causal_mask(q.shape[-2], device=q.device)
        mask = causal if mask is None else mask & causal
    validate.dropout_p(dropout_p, caller, "dropout_p")
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
    validate.positive_int(T, "length T", "causal_mask")
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
        max_len = longest if max_len is None else validate.positive_int(max_len, "max_len", caller)
        if max_len < longest:
            raise ValueError(
                f"{caller}: max_len={max_len!r} is shorter than the longest sequence ({longest})"
            )
        mask = torch.arange(max_len, device=x.device) < x.unsqueeze(-1)
    elif x.dim() == 2:  # attention_mask (batch, T)
        if max_len is not None and max_len != x.shape[-1]:
            raise ValueError(
                f"{caller}: got an attention_mask of shape {tuple(x.shape)} and max_len={max_len}; "
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
            f"{caller} expected lengths (batch,) or an attention_mask (batch, T), got shape {tuple(x.shape)}"
        )
    return mask[:, None, None, :].to(device)


# ---- heads ----------------------------------------------------------------------------------
def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Cut the features into ``num_heads`` heads: ``(batch, seq, d)`` -> ``(batch, heads, seq, d // heads)``.

    Head ``h`` holds features ``h * d_head`` to ``(h + 1) * d_head - 1`` of every position.
    """
    x = validate.tensor(x, "x", "split_heads")
    if x.dim() != 3:
        raise ValueError(f"split_heads expected x of shape (batch, seq, d), got {tuple(x.shape)}")
    validate.positive_int(num_heads, "num_heads", "split_heads")
    batch, seq, d = x.shape
    if d % num_heads:
        raise ValueError(
            f"split_heads: the feature size {d} of x {tuple(x.shape)} is not divisible by num_heads={num_heads}"
        )
    return x.view(batch, seq, num_heads, d // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """Undo ``split_heads``: ``(batch, heads, seq, d_head)`` -> ``(batch, seq, heads * d_head)``."""
    x = validate.tensor(x, "x", "merge_heads")
    if x.dim() != 4:
        raise ValueError(
            f"merge_heads expected x of shape (batch, heads, seq, d_head), got {tuple(x.shape)}"
        )
    batch, heads, seq, d_head = x.shape
    return x.transpose(1, 2).reshape(batch, seq, heads * d_head)


# ---- a cache of keys and values, for generation ---------------------------------------------
class KVCache:
    """The keys and values every layer has computed so far, so a new token needs only its own.

    ``keys[i]`` and ``values[i]`` are ``(batch, heads, seen, d_head)`` for layer ``i``. Pass one
    cache to successive calls ``model(new_ids, cache=cache)``: each call attends over everything
    cached plus its new positions, and appends its keys and values.

    Built in notebook 08, section 10 (and by hand in notebook 14, section 6).
    """

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def __len__(self) -> int:
        """Number of positions cached (0 for a new cache)."""
        return 0 if not self.keys else int(self.keys[0].shape[-2])

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append layer ``layer``'s new ``k, v (batch, heads, new, d_head)``; return all of them."""
        if layer == len(self.keys):
            self.keys.append(k)
            self.values.append(v)
        elif layer < len(self.keys):
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=-2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=-2)
        else:
            raise ValueError(f"KVCache: layer {layer} updated before layer {len(self.keys)}")
        return self.keys[layer], self.values[layer]

    def __repr__(self) -> str:
        return f"KVCache(layers={len(self.keys)}, positions={len(self)})"


# ---- multi-head attention -------------------------------------------------------------------
class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate query, key, value and output projections.

    ``num_heads`` attentions run side by side, each on its own ``d_head = d_model // num_heads``
    slice of the projected queries, keys and values; their outputs are concatenated and mixed by
    ``out_proj``. Equal to ``torch.nn.MultiheadAttention(d_model, num_heads, batch_first=True)``
    given the same weights (``from_torch``). GPT, BERT and the Transformer all run this module.

    Args:
        d_model: the size of each position's vector (input and output).
        num_heads: the number of heads; must divide ``d_model``.
        dropout: dropout probability on the attention weights, applied in training mode only.
        bias: whether the four projections have biases.
        rotary: optional module applied to the queries and keys of every head after the split,
            ``rotary(x) -> x`` on ``(batch, heads, seq, d_head)`` (e.g.
            ``course_lib.positional.RotaryEmbedding(d_head)``): rotary position embeddings.
        layer_idx: the layer's slot in a ``KVCache`` (GPT numbers its layers 0, 1, ...).

    Attributes:
        q_proj, k_proj, v_proj, out_proj: ``nn.Linear(d_model, d_model)`` each.

    Built in notebook 05, section 6.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        rotary: nn.Module | None = None,
        layer_idx: int = 0,
    ) -> None:
        super().__init__()
        validate.positive_int(d_model, "d_model", "MultiHeadAttention")
        validate.positive_int(num_heads, "num_heads", "MultiHeadAttention")
        if d_model % num_heads:
            raise ValueError(
                f"MultiHeadAttention: d_model={d_model} must be divisible by num_heads={num_heads} "
                "(each head gets d_model // num_heads features)"
            )
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_head = d_model // num_heads
        self.dropout = validate.dropout_p(dropout, "MultiHeadAttention")
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.rotary = rotary
        self.layer_idx = layer_idx

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_heads={self.num_heads}, dropout={self.dropout}"

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        need_weights: bool = True,
        is_causal: bool = False,
        *,
        cache: KVCache | None = None,
        scale: float | None = None,
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
            cache: a ``KVCache``: this call's keys and values are appended to the layer's cached
                ones (slot ``layer_idx``) and the queries attend over all of them. The mask must
                then cover ``(n_q, cached + n_k)``.
            scale: the factor on the scores; ``1 / sqrt(d_head)`` when None.

        Returns:
            ``(output, weights)``: output ``(batch, n_q, d_model)``; weights as above, or None.
        """
        query, key, value = self._check_inputs(query, key, value)
        if cache is not None and self.rotary is not None:
            raise ValueError("MultiHeadAttention: a KVCache with rotary embeddings is not supported")
        # 1. project: (batch, seq, d_model) each; 2. split into heads: (batch, heads, seq, d_head).
        if key is query and value is query:
            # Self-attention: one matrix product for the three projections (as GPT-2's fused
            # c_attn does), the same numbers as q_proj(x), k_proj(x), v_proj(x) in a third of the launches.
            q, k, v = F.linear(query, self._qkv_weight(), self._qkv_bias()).chunk(3, dim=-1)
        else:
            q, k, v = self.q_proj(query), self.k_proj(key), self.v_proj(value)
        q, k, v = (split_heads(x, self.num_heads) for x in (q, k, v))
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        if cache is not None:  # the keys and values of earlier calls, then these: (batch, heads, cached + n_k, d_head)
            k, v = cache.update(self.layer_idx, k, v)
        # 3. attend, 4. merge the heads back (batch, n_q, d_model) and mix them.
        out, weights = self.attend(q, k, v, mask=mask, need_weights=need_weights, is_causal=is_causal, scale=scale)
        return self.out_proj(merge_heads(out)), weights

    def _qkv_weight(self) -> torch.Tensor:
        return torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])

    def _qkv_bias(self) -> torch.Tensor | None:
        if self.q_proj.bias is None:
            return None
        return torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])

    def _check_inputs(self, query, key, value) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        layout = f"(batch, seq, d_model={self.d_model})"
        query = validate.float_tensor(query, "query", "MultiHeadAttention", dims=3, last=self.d_model, layout=layout)
        key = query if key is None else validate.float_tensor(key, "key", "MultiHeadAttention", dims=3, last=self.d_model, layout=layout)
        value = key if value is None else validate.float_tensor(value, "value", "MultiHeadAttention", dims=3, last=self.d_model, layout=layout)
        if key.shape[:2] != value.shape[:2] or query.shape[0] != key.shape[0]:
            raise ValueError(
                "MultiHeadAttention expected query (batch, n_q, d), key and value (batch, n_k, d) "
                f"with one batch size and as many keys as values; got query {tuple(query.shape)}, key "
                f"{tuple(key.shape)}, value {tuple(value.shape)}"
            )
        return query, key, value

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None = None,
        need_weights: bool = True,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention of per-head ``q (batch, heads, n_q, d_head)`` over ``k, v (batch, heads, n_k, d_head)``.

        Returns ``(output (batch, heads, n_q, d_head), weights (batch, heads, n_q, n_k) or None)``.
        """
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            return scaled_dot_product_attention(
                q, k, v, mask, is_causal=is_causal, dropout_p=dropout_p, scale=scale
            )
        caller = "MultiHeadAttention"
        weights_shape = validate.queries_keys_values(q, k, v, caller)
        if is_causal and q.shape[-2] != k.shape[-2]:
            raise ValueError(
                f"{caller}: is_causal=True needs as many queries as keys, got {q.shape[-2]} queries "
                f"and {k.shape[-2]} keys; pass an explicit mask instead (e.g. for a KV cache)"
            )
        if mask is not None:
            mask = validate.attention_mask(mask, weights_shape, caller)
            if is_causal:  # the fused kernel takes one or the other
                mask = mask & causal_mask(q.shape[-2], device=q.device)
                is_causal = False
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale
        )
        return out, None

    @classmethod
    def from_torch(cls, torch_mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """A copy of an ``nn.MultiheadAttention`` (``course_lib.interop.mha_from_torch``)."""
        from course_lib.interop import mha_from_torch

        return mha_from_torch(torch_mha)

    def to_torch(self) -> nn.MultiheadAttention:
        """An ``nn.MultiheadAttention`` with these weights (``course_lib.interop.mha_to_torch``)."""
        from course_lib.interop import mha_to_torch

        return mha_to_torch(self)
