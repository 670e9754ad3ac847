"""GPT: a GPT-2-style decoder-only language model, its sampling, a KV cache, and HF conversion.

The model reads token ids and, at every position, scores every vocabulary token as the next one:

    token embedding + learned position embedding
    -> num_layers x [ x + Attention(LayerNorm(x)),  x + FeedForward(LayerNorm(x)) ]   (pre-LN blocks)
    -> final LayerNorm -> output head (tied to the token embedding) -> logits (batch, seq, vocab)

The attention is ``course_lib.attention.MultiHeadAttention`` with a causal mask (a position sees
itself and the positions before it, never after); the position table is
``course_lib.positional.LearnedPositionalEmbedding``. With the same weights the model computes
what Hugging Face's ``GPT2LMHeadModel`` computes (``GPT.from_hf`` / ``model.to_hf``)::

    from course_lib.gpt import GPT, GPTConfig, generate
    model = GPT(GPTConfig(vocab_size=4096, max_len=128, d_model=128, num_layers=4, num_heads=4))
    logits = model(input_ids)                                   # (batch, seq, 4096)
    logits, attentions = model(input_ids, output_attentions=True)  # + one (batch, heads, seq, seq) per layer
    out = generate(model, prompt_ids, max_new_tokens=50, do_sample=True, top_p=0.9)

``generate`` decodes greedily (``do_sample=False``, token for token what HF's greedy ``generate``
gives on the same weights) or samples with temperature, top-k and nucleus (top-p) filtering;
with ``use_cache=True`` (the default) it keeps every layer's keys and values (``KVCache``) so each
new token costs one position's work instead of the whole sequence's.

The causal-LM loss is ``course_lib.objectives.causal_lm_loss`` and perplexity
``course_lib.metrics.perplexity``; :func:`evaluate_lm` combines them over held-out batches.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import MultiHeadAttention, merge_heads, split_heads
from course_lib.positional import LearnedPositionalEmbedding

__all__ = [
    "ACTIVATIONS",
    "GPTConfig",
    "FeedForward",
    "GPTBlock",
    "GPT",
    "GPTOutput",
    "KVCache",
    "top_k_filter",
    "top_p_filter",
    "generate",
    "encode_documents",
    "bigram_log_probs",
    "lm_batches",
    "evaluate_lm",
    "CHECKPOINT_DIR",
    "save_pretrained",
    "load_pretrained",
]

# The activations of the feed-forward layer, by their Hugging Face names (``GPT2Config.activation_function``).
# "gelu_new" (GPT-2's) is the tanh approximation of GELU; HF's "gelu_fast" and "gelu_pytorch_tanh"
# are the same formula.
_TANH_GELU = ("gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_python_tanh")
ACTIVATIONS: tuple[str, ...] = _TANH_GELU + (
    "gelu", "gelu_python", "relu", "silu", "swish", "tanh", "sigmoid", "quick_gelu",
)


def _activation(name: str, x: torch.Tensor) -> torch.Tensor:
    if name in _TANH_GELU:
        return F.gelu(x, approximate="tanh")
    if name in ("gelu", "gelu_python"):
        return F.gelu(x)
    if name == "relu":
        return F.relu(x)
    if name in ("silu", "swish"):
        return F.silu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "quick_gelu":
        return x * torch.sigmoid(1.702 * x)
    raise ValueError(f"unknown activation {name!r}; GPT supports {list(ACTIVATIONS)}")


# ---- configuration ----------------------------------------------------------------------------
@dataclass
class GPTConfig:
    """The shape and settings of a GPT.

    Attributes:
        vocab_size: number of tokens the model reads and predicts (``GPT2Config.vocab_size``).
        max_len: the context: the longest sequence the model accepts (``n_positions``).
        d_model: the width of every position's vector (``n_embd``).
        num_layers: number of Transformer blocks (``n_layer``).
        num_heads: attention heads per block; must divide ``d_model`` (``n_head``).
        d_ff: width of the feed-forward hidden layer; None means ``4 * d_model`` (``n_inner``).
        activation: the feed-forward activation, one of ``ACTIVATIONS`` (``activation_function``).
        dropout: dropout on each block's two residual branches (``resid_pdrop``).
        embd_dropout: dropout on the summed embeddings (``embd_pdrop``).
        attn_dropout: dropout on the attention weights (``attn_pdrop``).
        layer_norm_eps: the epsilon of every LayerNorm (``layer_norm_epsilon``).
        scale_attn_weights: divide attention scores by ``sqrt(d_head)`` (always True in GPT-2).
        scale_attn_by_inverse_layer_idx: also divide the scores of block ``i`` by ``i + 1``.
        tie_embeddings: the output head reuses the token-embedding matrix (``tie_word_embeddings``).
    """

    vocab_size: int = 4096
    max_len: int = 128
    d_model: int = 128
    num_layers: int = 4
    num_heads: int = 4
    d_ff: int | None = None
    activation: str = "gelu_new"
    dropout: float = 0.0
    embd_dropout: float = 0.0
    attn_dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_len", "d_model", "num_layers", "num_heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig expected a positive int {name}, got {value!r}")
        if self.d_ff is not None and (
            isinstance(self.d_ff, bool) or not isinstance(self.d_ff, int) or self.d_ff < 1
        ):
            raise ValueError(f"GPTConfig expected d_ff to be a positive int or None, got {self.d_ff!r}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"GPTConfig: d_model={self.d_model} must be divisible by num_heads={self.num_heads} "
                "(each head gets d_model // num_heads features)"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"GPTConfig: unknown activation {self.activation!r}; choose one of {list(ACTIVATIONS)}"
            )
        for name in ("dropout", "embd_dropout", "attn_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"GPTConfig expected 0 <= {name} < 1, got {value!r}")
        if not isinstance(self.layer_norm_eps, (int, float)) or not self.layer_norm_eps > 0:
            raise ValueError(f"GPTConfig expected layer_norm_eps > 0, got {self.layer_norm_eps!r}")

    @property
    def d_head(self) -> int:
        """Features per attention head: ``d_model // num_heads``."""
        return self.d_model // self.num_heads

    @property
    def inner_dim(self) -> int:
        """The feed-forward hidden width: ``d_ff``, or ``4 * d_model`` when ``d_ff`` is None."""
        return self.d_ff if self.d_ff is not None else 4 * self.d_model

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy (saved with checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GPTConfig:
        """The config saved by ``to_dict``; an unknown key raises ``ValueError`` naming it."""
        if not isinstance(values, Mapping):
            raise TypeError(f"GPTConfig.from_dict expected a dict, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"GPTConfig.from_dict: unknown settings {unknown}; known: {sorted(known)}")
        return cls(**dict(values))


# ---- KV cache ---------------------------------------------------------------------------------
class KVCache:
    """The keys and values every layer has computed so far, so a new token needs only its own.

    ``keys[i]`` and ``values[i]`` are ``(batch, heads, seen, d_head)`` for layer ``i``. Pass one
    cache to successive calls ``model(new_ids, cache=cache)``: each call attends over everything
    cached plus its new positions, and appends its keys and values.
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


# ---- the blocks -------------------------------------------------------------------------------
class FeedForward(nn.Module):
    """The position-wise feed-forward layer: ``fc_out(act(fc_in(x)))``, then dropout.

    ``x (batch, seq, d_model)`` -> same shape; the hidden layer has ``d_ff`` features.
    """

    def __init__(self, d_model: int, d_ff: int, activation: str = "gelu_new", dropout: float = 0.0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"FeedForward: unknown activation {activation!r}; choose one of {list(ACTIVATIONS)}")
        self.activation = activation
        self.fc_in = nn.Linear(d_model, d_ff)
        self.fc_out = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc_out(_activation(self.activation, self.fc_in(x))))


class GPTBlock(nn.Module):
    """One pre-LN decoder block: ``x + Attention(LN(x))``, then ``x + FeedForward(LN(x))``.

    The attention is causal self-attention (``course_lib.attention.MultiHeadAttention``); a
    ``KVCache`` lets it attend over positions computed in earlier calls.

    Args:
        config: the model's ``GPTConfig``.
        layer_idx: the block's index (its slot in a ``KVCache``; the score scale of
            ``scale_attn_by_inverse_layer_idx``).
    """

    def __init__(self, config: GPTConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.ln_1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.attn = MultiHeadAttention(config.d_model, config.num_heads, dropout=config.attn_dropout)
        self.ln_2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.mlp = FeedForward(config.d_model, config.inner_dim, config.activation, config.dropout)
        self.dropout = nn.Dropout(config.dropout)
        # attend() scales scores by 1/sqrt(d_head); GPT-2's other options rescale the queries.
        scale = 1.0 if config.scale_attn_weights else math.sqrt(config.d_head)
        if config.scale_attn_by_inverse_layer_idx:
            scale /= layer_idx + 1
        self.query_scale = scale

    def self_attention(
        self,
        h: torch.Tensor,
        mask: torch.Tensor | None = None,
        is_causal: bool = True,
        cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Causal self-attention of ``h (batch, new, d_model)`` over the cached and new positions.

        The attention module's projections and ``attend`` do the work; the new keys and values are
        appended to ``cache`` between the projection and the attention. Returns ``(output
        (batch, new, d_model), weights (batch, heads, new, cached + new) or None)``.
        """
        attn = self.attn
        # One matrix product for the three projections (as GPT-2's fused c_attn does): the same
        # numbers as q_proj(h), k_proj(h), v_proj(h), a third of the kernel launches.
        weight = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        bias = None if attn.q_proj.bias is None else torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias])
        q, k, v = (split_heads(x, attn.num_heads) for x in F.linear(h, weight, bias).chunk(3, dim=-1))
        if self.query_scale != 1.0:
            q = q * self.query_scale
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)
        out, weights = attn.attend(q, k, v, mask=mask, need_weights=need_weights, is_causal=is_causal)
        return attn.out_proj(merge_heads(out)), weights

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        is_causal: bool = True,
        cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x (batch, seq, d_model)`` -> ``(x' of the same shape, attention weights or None)``."""
        attended, weights = self.self_attention(self.ln_1(x), mask, is_causal, cache, need_weights)
        x = x + self.dropout(attended)
        x = x + self.mlp(self.ln_2(x))
        return x, weights


class GPTOutput(NamedTuple):
    """What ``model(input_ids, output_attentions=True)`` returns.

    ``logits (batch, seq, vocab)``; ``attentions``: one ``(batch, heads, seq, keys)`` tensor per layer.
    """

    logits: torch.Tensor
    attentions: tuple[torch.Tensor, ...]


# ---- the model --------------------------------------------------------------------------------
class GPT(nn.Module):
    """A GPT-2-style decoder-only language model.

    Args:
        config: a ``GPTConfig`` (or its dict).

    Attributes:
        token_embedding: ``nn.Embedding(vocab_size, d_model)``.
        position_embedding: ``LearnedPositionalEmbedding(max_len, d_model)``.
        blocks: ``num_layers`` ``GPTBlock``.
        ln_f: the final ``LayerNorm``.
        lm_head: ``nn.Linear(d_model, vocab_size, bias=False)``; its weight *is* the token
            embedding's when ``config.tie_embeddings`` (one matrix, trained by both uses).
    """

    def __init__(self, config: GPTConfig | Mapping[str, Any]) -> None:
        super().__init__()
        if isinstance(config, Mapping):
            config = GPTConfig.from_dict(config)
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT expected a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = LearnedPositionalEmbedding(config.max_len, config.d_model)
        self.dropout = nn.Dropout(config.embd_dropout)
        self.blocks = nn.ModuleList(GPTBlock(config, i) for i in range(config.num_layers))
        self.ln_f = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.reset_parameters()
        if config.tie_embeddings:
            self.lm_head.weight = self.token_embedding.weight

    def reset_parameters(self) -> None:
        """GPT-2's initialisation: N(0, 0.02) weights, zero biases, unit LayerNorms, and the two
        projections that write into the residual stream scaled down by ``sqrt(2 * num_layers)``."""
        std = 0.02
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            for proj in (block.attn.out_proj, block.mlp.fc_out):
                nn.init.normal_(proj.weight, std=std / math.sqrt(2 * self.config.num_layers))

    def num_parameters(self, *, exclude_embeddings: bool = False) -> int:
        """Trainable numbers (a tied matrix counted once); optionally without the two embeddings."""
        total = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            total -= self.token_embedding.weight.numel() + self.position_embedding.embedding.weight.numel()
        return total

    def extra_repr(self) -> str:
        return f"parameters={self.num_parameters():,}"

    # ---- input checks ----------------------------------------------------------------------
    def _check_ids(self, input_ids: Any, past: int) -> torch.Tensor:
        if not isinstance(input_ids, torch.Tensor):
            raise TypeError(
                f"GPT expected input_ids as a torch.Tensor of token ids (batch, seq), got "
                f"{type(input_ids).__name__}; e.g. torch.tensor([ids])"
            )
        if input_ids.dtype not in (torch.long, torch.int, torch.int16, torch.uint8, torch.int8):
            raise TypeError(f"GPT expected integer token ids, got dtype {input_ids.dtype}")
        if input_ids.dim() != 2:
            hint = " (one sequence: input_ids.unsqueeze(0))" if input_ids.dim() == 1 else ""
            raise ValueError(f"GPT expected input_ids of shape (batch, seq), got {tuple(input_ids.shape)}{hint}")
        seq = input_ids.shape[1]
        if seq == 0:
            raise ValueError("GPT got an empty sequence (seq = 0): give at least one token")
        if past + seq > self.config.max_len:
            where = f"{past} cached + {seq} new" if past else f"{seq}"
            raise ValueError(
                f"GPT: the sequence is {where} tokens long but the context is "
                f"max_len={self.config.max_len} tokens; truncate it (e.g. input_ids[:, "
                f"-{self.config.max_len}:]) or build a model with a larger max_len"
            )
        if input_ids.numel():
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.config.vocab_size:
                raise ValueError(
                    f"GPT: token ids must lie in [0, vocab_size={self.config.vocab_size}), got ids "
                    f"from {low} to {high}; was the text encoded with this model's tokenizer?"
                )
        return input_ids.long()

    def _attention_mask(
        self, attention_mask: Any, batch: int, past: int, seq: int, device: torch.device
    ) -> tuple[torch.Tensor | None, bool]:
        """The boolean mask for every layer (True = may attend) and whether it is plain causal."""
        keys = past + seq
        causal = None
        if past:  # new query i sits at position past + i and sees keys 0 .. past + i
            if seq > 1:
                causal = torch.arange(keys, device=device) <= (past + torch.arange(seq, device=device))[:, None]
        elif attention_mask is None:
            return None, True  # the fused kernel's fastest path
        elif seq > 1:
            causal = torch.ones(seq, seq, dtype=torch.bool, device=device).tril()
        if attention_mask is None:
            return causal, False
        if not isinstance(attention_mask, torch.Tensor):
            raise TypeError(f"GPT expected attention_mask as a tensor (batch, seq), got {type(attention_mask).__name__}")
        if tuple(attention_mask.shape) != (batch, keys):
            extra = f" (the {past} cached positions plus the {seq} new ones)" if past else ""
            raise ValueError(
                f"GPT expected attention_mask of shape (batch, seq) = {(batch, keys)}{extra}, "
                f"got {tuple(attention_mask.shape)}; 1 marks a real token, 0 padding"
            )
        if attention_mask.is_floating_point() or not ((attention_mask == 0) | (attention_mask == 1)).all():
            raise ValueError("GPT expected attention_mask of 0/1 integers or booleans (1 = real token)")
        padding = attention_mask.to(device=device, dtype=torch.bool)[:, None, None, :]
        return (padding if causal is None else padding & causal), False

    # ---- forward ---------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        *,
        cache: KVCache | None = None,
        output_attentions: bool = False,
    ) -> torch.Tensor | GPTOutput:
        """Next-token scores at every position.

        Args:
            input_ids: token ids ``(batch, seq)``, each in ``[0, vocab_size)``, ``seq <= max_len``.
            attention_mask: optional ``(batch, seq)`` (with a cache: ``(batch, cached + seq)``), 1
                for real tokens and 0 for padding; no position attends to padding.
            position_ids: optional ``(batch, seq)`` or ``(seq,)`` positions; default
                ``cached .. cached + seq - 1`` (as in Hugging Face, padding does not shift them;
                pass them for left-padded batches).
            cache: a ``KVCache``: attend over its positions too, and append this call's keys and
                values to it.
            output_attentions: also return every layer's attention weights (slower: the weights
                are computed explicitly instead of by PyTorch's fused kernel).

        Returns:
            ``logits (batch, seq, vocab_size)``; with ``output_attentions=True`` a ``GPTOutput``
            ``(logits, attentions)``, ``attentions[i]`` of shape ``(batch, heads, seq, cached + seq)``.
        """
        past = len(cache) if cache is not None else 0
        if cache is not None and not isinstance(cache, KVCache):
            raise TypeError(f"GPT expected cache to be a KVCache, got {type(cache).__name__}")
        input_ids = self._check_ids(input_ids, past)
        batch, seq = input_ids.shape
        device = self.token_embedding.weight.device
        if input_ids.device != device:
            input_ids = input_ids.to(device)
        if cache is not None and past and cache.keys[0].shape[0] != batch:
            raise ValueError(
                f"GPT: the cache holds {cache.keys[0].shape[0]} sequences but input_ids has {batch}"
            )

        x = self.token_embedding(input_ids)
        if position_ids is None:
            x = x + self.position_embedding.positions(seq, offset=past)
        else:
            x = x + self.position_embedding.embedding(self._check_positions(position_ids, batch, seq, device))
        x = self.dropout(x)
        mask, is_causal = self._attention_mask(attention_mask, batch, past, seq, device)
        attentions = []
        for block in self.blocks:
            x, weights = block(x, mask, is_causal, cache, output_attentions)
            if output_attentions:
                attentions.append(weights)
        logits = self.lm_head(self.ln_f(x))
        if output_attentions:
            return GPTOutput(logits, tuple(attentions))
        return logits

    def _check_positions(self, position_ids: Any, batch: int, seq: int, device: torch.device) -> torch.Tensor:
        if not isinstance(position_ids, torch.Tensor) or position_ids.is_floating_point():
            raise TypeError("GPT expected position_ids as an integer tensor (batch, seq) or (seq,)")
        if position_ids.shape[-1] != seq or position_ids.dim() not in (1, 2) or (
            position_ids.dim() == 2 and position_ids.shape[0] not in (1, batch)
        ):
            raise ValueError(
                f"GPT expected position_ids of shape (batch, seq) = {(batch, seq)} or (seq,), "
                f"got {tuple(position_ids.shape)}"
            )
        if position_ids.numel() and (position_ids.min() < 0 or position_ids.max() >= self.config.max_len):
            raise ValueError(
                f"GPT: position ids must lie in [0, max_len={self.config.max_len}), got "
                f"{int(position_ids.min())} to {int(position_ids.max())}"
            )
        return position_ids.to(device=device, dtype=torch.long)

    # ---- Hugging Face interoperability -----------------------------------------------------
    @classmethod
    def from_hf(cls, hf_model: Any) -> GPT:
        """A ``GPT`` with the weights of a ``transformers.GPT2LMHeadModel`` (any size).

        HF keeps GPT-2's original ``Conv1D`` layers, whose weights are ``(in, out)``: they are
        transposed into ``nn.Linear`` ``(out, in)`` weights, and the fused ``c_attn`` (queries,
        keys, values side by side) is cut into ``q_proj``, ``k_proj``, ``v_proj``. The result has
        the HF model's dtype, device and train/eval mode; given the same input both compute the
        same logits. (``reorder_and_upcast_attn`` only changes the rounding of half-precision
        attention in HF and is not kept.)
        """
        from transformers import GPT2LMHeadModel

        if not isinstance(hf_model, GPT2LMHeadModel):
            hint = " (for a GPT2Model, wrap it: GPT2LMHeadModel(config) with its weights)" if type(
                hf_model
            ).__name__ == "GPT2Model" else ""
            raise TypeError(f"GPT.from_hf expected a transformers.GPT2LMHeadModel, got {type(hf_model).__name__}{hint}")
        c = hf_model.config
        if getattr(c, "add_cross_attention", False):
            raise ValueError("GPT.from_hf: this GPT-2 has cross-attention layers (add_cross_attention=True); the course GPT is decoder-only")
        if c.activation_function not in ACTIVATIONS:
            raise ValueError(
                f"GPT.from_hf: activation_function={c.activation_function!r} is not supported; "
                f"supported: {list(ACTIVATIONS)}"
            )
        config = GPTConfig(
            vocab_size=c.vocab_size, max_len=c.n_positions, d_model=c.n_embd, num_layers=c.n_layer,
            num_heads=c.n_head, d_ff=c.n_inner, activation=c.activation_function,
            dropout=float(c.resid_pdrop), embd_dropout=float(c.embd_pdrop), attn_dropout=float(c.attn_pdrop),
            layer_norm_eps=float(c.layer_norm_epsilon), scale_attn_weights=bool(c.scale_attn_weights),
            scale_attn_by_inverse_layer_idx=bool(c.scale_attn_by_inverse_layer_idx),
            tie_embeddings=bool(getattr(c, "tie_word_embeddings", True)),
        )
        reference = hf_model.transformer.wte.weight
        model = cls(config).to(device=reference.device, dtype=reference.dtype)
        hf_state = {k: v.detach() for k, v in hf_model.state_dict().items()}
        with torch.no_grad():
            for name, tensor in _hf_to_course_state(hf_state, config).items():
                model.get_parameter(name).copy_(tensor)
        model.train(hf_model.training)
        return model

    def to_hf(self, attn_implementation: str = "eager") -> Any:
        """A ``transformers.GPT2LMHeadModel`` with this model's weights (the inverse of ``from_hf``).

        Args:
            attn_implementation: HF's attention code: ``"eager"`` (returns attention weights) or
                ``"sdpa"`` (PyTorch's fused kernel).
        """
        from transformers import GPT2Config, GPT2LMHeadModel

        c = self.config
        hf_config = GPT2Config(
            vocab_size=c.vocab_size, n_positions=c.max_len, n_embd=c.d_model, n_layer=c.num_layers,
            n_head=c.num_heads, n_inner=c.d_ff, activation_function=c.activation, resid_pdrop=c.dropout,
            embd_pdrop=c.embd_dropout, attn_pdrop=c.attn_dropout, layer_norm_epsilon=c.layer_norm_eps,
            scale_attn_weights=c.scale_attn_weights,
            scale_attn_by_inverse_layer_idx=c.scale_attn_by_inverse_layer_idx,
            tie_word_embeddings=c.tie_embeddings, bos_token_id=None, eos_token_id=None, pad_token_id=None,
            attn_implementation=attn_implementation,
        )
        reference = self.token_embedding.weight
        hf_model = GPT2LMHeadModel(hf_config).to(device=reference.device, dtype=reference.dtype)
        state = _course_to_hf_state({k: v.detach() for k, v in self.state_dict().items()}, c)
        missing, unexpected = hf_model.load_state_dict(state, strict=False)
        missing = [m for m in missing if not (c.tie_embeddings and m == "lm_head.weight") and not m.endswith(".attn.bias")]
        if missing or unexpected:  # pragma: no cover - a bug in the name mapping
            raise RuntimeError(f"to_hf: missing {missing}, unexpected {unexpected}")
        if c.tie_embeddings:
            hf_model.tie_weights()
        hf_model.train(self.training)
        return hf_model


def _hf_to_course_state(hf: Mapping[str, torch.Tensor], config: GPTConfig) -> dict[str, torch.Tensor]:
    """Rename and reshape a ``GPT2LMHeadModel`` state dict into this module's parameter names."""
    d = config.d_model
    out = {
        "token_embedding.weight": hf["transformer.wte.weight"],
        "position_embedding.embedding.weight": hf["transformer.wpe.weight"],
        "ln_f.weight": hf["transformer.ln_f.weight"],
        "ln_f.bias": hf["transformer.ln_f.bias"],
    }
    if not config.tie_embeddings:
        out["lm_head.weight"] = hf["lm_head.weight"]
    for i in range(config.num_layers):
        p, q = f"transformer.h.{i}.", f"blocks.{i}."
        for ln in ("ln_1", "ln_2"):
            out[q + ln + ".weight"] = hf[p + ln + ".weight"]
            out[q + ln + ".bias"] = hf[p + ln + ".bias"]
        # Conv1D keeps (in, out); nn.Linear keeps (out, in). c_attn is [queries | keys | values].
        weight, bias = hf[p + "attn.c_attn.weight"], hf[p + "attn.c_attn.bias"]
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[q + f"attn.{name}.weight"] = weight[:, j * d : (j + 1) * d].t()
            out[q + f"attn.{name}.bias"] = bias[j * d : (j + 1) * d]
        out[q + "attn.out_proj.weight"] = hf[p + "attn.c_proj.weight"].t()
        out[q + "attn.out_proj.bias"] = hf[p + "attn.c_proj.bias"]
        out[q + "mlp.fc_in.weight"] = hf[p + "mlp.c_fc.weight"].t()
        out[q + "mlp.fc_in.bias"] = hf[p + "mlp.c_fc.bias"]
        out[q + "mlp.fc_out.weight"] = hf[p + "mlp.c_proj.weight"].t()
        out[q + "mlp.fc_out.bias"] = hf[p + "mlp.c_proj.bias"]
    return out


def _course_to_hf_state(ours: Mapping[str, torch.Tensor], config: GPTConfig) -> dict[str, torch.Tensor]:
    """The inverse of ``_hf_to_course_state``."""
    out = {
        "transformer.wte.weight": ours["token_embedding.weight"],
        "transformer.wpe.weight": ours["position_embedding.embedding.weight"],
        "transformer.ln_f.weight": ours["ln_f.weight"],
        "transformer.ln_f.bias": ours["ln_f.bias"],
    }
    if not config.tie_embeddings:
        out["lm_head.weight"] = ours["lm_head.weight"]
    for i in range(config.num_layers):
        p, q = f"transformer.h.{i}.", f"blocks.{i}."
        for ln in ("ln_1", "ln_2"):
            out[p + ln + ".weight"] = ours[q + ln + ".weight"]
            out[p + ln + ".bias"] = ours[q + ln + ".bias"]
        out[p + "attn.c_attn.weight"] = torch.cat(
            [ours[q + f"attn.{n}.weight"].t() for n in ("q_proj", "k_proj", "v_proj")], dim=1
        )
        out[p + "attn.c_attn.bias"] = torch.cat([ours[q + f"attn.{n}.bias"] for n in ("q_proj", "k_proj", "v_proj")])
        out[p + "attn.c_proj.weight"] = ours[q + "attn.out_proj.weight"].t()
        out[p + "attn.c_proj.bias"] = ours[q + "attn.out_proj.bias"]
        out[p + "mlp.c_fc.weight"] = ours[q + "mlp.fc_in.weight"].t()
        out[p + "mlp.c_fc.bias"] = ours[q + "mlp.fc_in.bias"]
        out[p + "mlp.c_proj.weight"] = ours[q + "mlp.fc_out.weight"].t()
        out[p + "mlp.c_proj.bias"] = ours[q + "mlp.fc_out.bias"]
    return {k: v.contiguous() for k, v in out.items()}


# ---- sampling filters -------------------------------------------------------------------------
def _check_logits(logits: Any, caller: str) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"{caller} expected float logits (..., vocab), got {type(logits).__name__}")
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError(f"{caller} expected logits of shape (..., vocab), got {tuple(logits.shape)}")
    return logits


def _check_top_k(k: Any, caller: str) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{caller} expected top_k to be a positive int (tokens to keep), got {k!r}")
    return k


def _check_top_p(p: Any, caller: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p <= 1.0:
        raise ValueError(
            f"{caller} expected top_p in (0, 1] (the probability mass to keep; 1 keeps everything), got {p!r}"
        )
    return float(p)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` highest scores of each row; set the others to ``-inf``.

    After a softmax the removed tokens get probability 0 and the kept ones share all of it, in the
    same ratios as before. Ties with the k-th score are all kept (as in Hugging Face's
    ``TopKLogitsWarper``); ``k`` larger than the vocabulary keeps everything.

    Args:
        logits: scores ``(..., vocab)``; not modified.
        k: how many tokens to keep, a positive int.

    Returns:
        A new tensor of the same shape.
    """
    logits = _check_logits(logits, "top_k_filter")
    k = min(_check_top_k(k, "top_k_filter"), logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probability reaches ``p``.

    Sort the tokens by probability, most likely first, and add their probabilities up; keep tokens
    up to and *including* the first one at which the running total reaches ``p`` (so at least one
    token is always kept), set the others' scores to ``-inf``. Equal to Hugging Face's
    ``TopPLogitsWarper`` (up to rounding of exact ties).

    Args:
        logits: scores ``(..., vocab)``; not modified.
        p: the probability mass to keep, in (0, 1]; 1 keeps everything.

    Returns:
        A new tensor of the same shape.
    """
    logits = _check_logits(logits, "top_p_filter")
    p = _check_top_p(p, "top_p_filter")
    if p >= 1.0:
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.float().softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # the probability of the tokens ranked higher
    remove_sorted = mass_before >= p  # already reached p without this token
    remove_sorted[..., 0] = False
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


# ---- generation -------------------------------------------------------------------------------
@torch.no_grad()
def generate(
    model: GPT,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    *,
    use_cache: bool = True,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    attention_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Extend prompts one token at a time: greedy decoding or sampling.

    At each step the model scores every token as the next one from the last position's logits.
    Greedy (``do_sample=False``) takes the highest score (token for token what Hugging Face's
    ``generate(do_sample=False)`` gives on the same weights). Sampling divides the logits by
    ``temperature``, keeps the ``top_k`` best (``top_k_filter``), then the nucleus of mass ``top_p``
    (``top_p_filter``), and draws from the softmax; HF's order too.

    Args:
        model: a ``GPT``.
        input_ids: the prompt, ``(batch, seq)`` or one sequence ``(seq,)``; ``1 <= seq`` and
            ``seq + max_new_tokens <= model.config.max_len`` (the context).
        max_new_tokens: how many tokens to add (fewer if every sequence ends with ``eos_token_id``).
        do_sample: sample (True) or take the most likely token (False).
        temperature: > 0; below 1 sharpens the distribution, above 1 flattens it (sampling only).
        top_k: keep only the k most likely tokens (sampling only); None keeps all.
        top_p: keep the nucleus of probability mass top_p, in (0, 1] (sampling only); None keeps all.
        use_cache: keep the keys and values of past positions (``KVCache``): the same tokens,
            faster; False recomputes the whole sequence at every step.
        eos_token_id: a sequence that produces this token is finished: it gets ``pad_token_id``
            (default: ``eos_token_id``) from then on, and generation stops when all are finished.
        pad_token_id: see ``eos_token_id``.
        attention_mask: ``(batch, seq)`` with 0 for left padding of prompts of different lengths;
            positions then count from each prompt's first real token, as in HF.
        generator: a ``torch.Generator`` for reproducible sampling (default: the global one).

    Returns:
        The prompts with the new tokens appended: ``(batch, seq + new)``, or ``(seq + new,)`` for a
        1-D prompt.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"generate expected a course_lib.gpt.GPT model, got {type(model).__name__}")
    if not isinstance(input_ids, torch.Tensor) or input_ids.is_floating_point():
        raise TypeError("generate expected input_ids as an integer tensor (batch, seq) or (seq,)")
    squeeze = input_ids.dim() == 1
    if squeeze:
        input_ids = input_ids.unsqueeze(0)
    if input_ids.dim() != 2:
        raise ValueError(f"generate expected input_ids of shape (batch, seq) or (seq,), got {tuple(input_ids.shape)}")
    context = model.config.max_len
    prompt_len = input_ids.shape[1]
    if prompt_len == 0:
        raise ValueError(
            "generate got an empty prompt: give at least one token (to start from nothing, use the "
            "end-of-text token, which the model saw between documents)"
        )
    if prompt_len > context:
        raise ValueError(
            f"generate got a prompt of {prompt_len} tokens, longer than the model's context of "
            f"{context} tokens; keep its last tokens, e.g. input_ids[..., -{context}:]"
        )
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"generate expected max_new_tokens to be an int >= 0, got {max_new_tokens!r}")
    if prompt_len + max_new_tokens > context:
        raise ValueError(
            f"generate: a prompt of {prompt_len} tokens plus max_new_tokens={max_new_tokens} is "
            f"{prompt_len + max_new_tokens} tokens, more than the context of {context}; ask for at "
            f"most {context - prompt_len} new tokens or shorten the prompt"
        )
    if not isinstance(do_sample, bool):
        raise TypeError(f"generate expected do_sample to be True or False, got {do_sample!r}")
    if do_sample and (
        isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0
    ):
        raise ValueError(
            f"generate expected temperature > 0 when sampling, got {temperature!r}; for the most "
            "likely token every time use do_sample=False (greedy)"
        )
    if top_k is not None:
        _check_top_k(top_k, "generate")
    if top_p is not None:
        _check_top_p(top_p, "generate")
    if eos_token_id is not None and not 0 <= eos_token_id < model.config.vocab_size:
        raise ValueError(f"generate: eos_token_id={eos_token_id} is outside the vocabulary")
    pad = eos_token_id if pad_token_id is None else pad_token_id

    device = model.token_embedding.weight.device
    ids = input_ids.to(device)
    batch = ids.shape[0]
    positions = None
    if attention_mask is not None:
        if not isinstance(attention_mask, torch.Tensor) or tuple(attention_mask.shape) != tuple(ids.shape):
            raise ValueError(
                f"generate expected attention_mask of the prompt's shape {tuple(ids.shape)}, got "
                f"{tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__}"
            )
        attention_mask = attention_mask.to(device=device, dtype=torch.long)
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)

    was_training = model.training
    model.eval()
    try:
        cache = KVCache() if use_cache else None
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        logits = model(ids, attention_mask, positions, cache=cache)[:, -1]
        for step in range(max_new_tokens):
            next_token = _choose(logits, do_sample, temperature, top_k, top_p, generator)
            if eos_token_id is not None:
                next_token = torch.where(finished, torch.full_like(next_token, pad), next_token)
                finished |= next_token == eos_token_id
            ids = torch.cat([ids, next_token[:, None]], dim=1)
            if attention_mask is not None:
                attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
                positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
            if step == max_new_tokens - 1 or (eos_token_id is not None and bool(finished.all())):
                break
            if use_cache:
                new_positions = positions[:, -1:] if positions is not None else None
                logits = model(ids[:, -1:], attention_mask, new_positions, cache=cache)[:, -1]
            else:
                logits = model(ids, attention_mask, positions)[:, -1]
    finally:
        model.train(was_training)
    return ids[0] if squeeze else ids


def _choose(logits, do_sample, temperature, top_k, top_p, generator) -> torch.Tensor:
    """The next token of each row of ``logits (batch, vocab)``: ``(batch,)``."""
    if not do_sample:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


# ---- data and evaluation ----------------------------------------------------------------------
def encode_documents(tokenizer: Any, documents: Iterable[Any]) -> torch.Tensor:
    """One stream of token ids for a causal LM: each document's text, then the end-of-text token.

    The end-of-text token between documents tells the model that what follows is unrelated, and
    gives generation a way to start from nothing.

    Args:
        tokenizer: a ``transformers`` tokenizer with an ``eos_token_id`` (e.g.
            ``course_lib.tokenizers.course_bpe_tokenizer()``).
        documents: ``course_lib.data.Document`` objects (e.g. ``load_corpus("wiki").train``) or strings.

    Returns:
        A ``(n,)`` long tensor.
    """
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError("encode_documents needs a tokenizer with an end-of-text token (eos_token_id)")
    ids: list[int] = []
    for document in documents:
        text = document if isinstance(document, str) else document.text
        ids.extend(tokenizer(text)["input_ids"])
        ids.append(eos)
    if not ids:
        raise ValueError("encode_documents got no documents")
    return torch.tensor(ids, dtype=torch.long)


def bigram_log_probs(ids: torch.Tensor, vocab_size: int, smoothing: float = 0.01) -> torch.Tensor:
    """The bigram language model: ``log P(next | previous)`` estimated by counting, with add-``smoothing``.

    ``P(b | a) = (count(a, b) + smoothing) / (count(a) + smoothing * vocab_size)``, counted over
    consecutive pairs of ``ids``. Its mean negative log-likelihood on held-out text is the
    baseline a neural language model should beat.

    Args:
        ids: a ``(n,)`` stream of token ids (n >= 2).
        vocab_size: the number of tokens V.
        smoothing: the pseudo-count added to every pair (> 0, so no pair has probability 0).

    Returns:
        A ``(V, V)`` float tensor; row a holds the log-probabilities of every next token after a.
    """
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    if len(ids) < 2:
        raise ValueError(f"bigram_log_probs needs at least 2 token ids, got {len(ids)}")
    if not smoothing > 0:
        raise ValueError(f"bigram_log_probs expected smoothing > 0, got {smoothing!r}")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"bigram_log_probs: ids must lie in [0, {vocab_size}), got {int(ids.min())} to {int(ids.max())}")
    counts = torch.zeros(vocab_size, vocab_size)
    counts.index_put_((ids[:-1], ids[1:]), torch.ones(len(ids) - 1), accumulate=True)
    counts += smoothing
    return (counts / counts.sum(dim=1, keepdim=True)).log()


def lm_batches(
    ids: torch.Tensor | Iterable[int],
    seq_len: int,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
) -> list[torch.Tensor]:
    """Cut one long stream of token ids into batches of training windows for a causal LM.

    The stream is cut into consecutive, non-overlapping windows of ``seq_len`` tokens (the
    remainder shorter than a window is dropped); ``causal_lm_loss`` then predicts tokens 2 .. seq_len
    of each window from the ones before.

    Args:
        ids: the token ids of the whole text, ``(n,)`` (a tensor or a list).
        seq_len: tokens per window, >= 2 (at most the model's ``max_len``).
        batch_size: windows per batch.
        shuffle: shuffle the windows (once, with ``seed``) before batching.
        seed: the shuffling seed.
        drop_last: drop a last batch smaller than ``batch_size``.

    Returns:
        A list of ``(batch, seq_len)`` long tensors.
    """
    ids = torch.as_tensor(ids if isinstance(ids, torch.Tensor) else list(ids), dtype=torch.long).flatten()
    for name, value, low in (("seq_len", seq_len, 2), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"lm_batches expected an int {name} >= {low}, got {value!r}")
    windows = len(ids) // seq_len
    if windows == 0:
        raise ValueError(f"lm_batches: {len(ids)} tokens are fewer than one window of seq_len={seq_len}")
    data = ids[: windows * seq_len].view(windows, seq_len)
    if shuffle:
        data = data[torch.randperm(windows, generator=torch.Generator().manual_seed(seed))]
    batches = list(data.split(batch_size))
    if drop_last and len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


@torch.no_grad()
def evaluate_lm(model: nn.Module, batches: Iterable[torch.Tensor], *, max_batches: int | None = None) -> dict[str, float]:
    """Mean next-token loss (nats per predicted token) and perplexity of ``model`` on ``batches``.

    Every predicted token counts once (a token-weighted mean over batches of any size).

    Args:
        model: maps ``(batch, seq)`` ids to ``(batch, seq, vocab)`` logits.
        batches: ``(batch, seq)`` long tensors, e.g. from ``lm_batches``.
        max_batches: use only the first batches (a quicker estimate).

    Returns:
        ``{"loss": float, "perplexity": float, "tokens": int}``.
    """
    from course_lib.metrics import perplexity
    from course_lib.objectives import causal_lm_loss

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            batch = batch.to(device)
            n = batch.shape[0] * (batch.shape[1] - 1)
            total += causal_lm_loss(model(batch), batch).item() * n
            count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate_lm got no batches")
    return {"loss": total / count, "perplexity": perplexity(total / count), "tokens": count}


# ---- shipped checkpoints ----------------------------------------------------------------------
CHECKPOINT_DIR = "gpt"  # under the course's assets/ folder


def save_pretrained(
    model: GPT,
    tokenizer: Any | None,
    folder: str | Path,
    *,
    settings: Mapping[str, Any] | None = None,
    half: bool = True,
) -> Path:
    """Write ``model.safetensors`` (config and settings as metadata) and the tokenizer to ``folder``.

    The tokenizer is written by ``tokenizer.save_pretrained`` (``tokenizer.json`` and
    ``tokenizer_config.json``), so the checkpoint never depends on training the tokenizer again.

    Args:
        model: a ``GPT``.
        tokenizer: its ``transformers.PreTrainedTokenizerFast`` (None: weights only).
        folder: where to write (created).
        settings: JSON-able training settings and results to keep with the weights.
        half: store float16 weights (half the size); ``load_pretrained`` casts them back to float32.

    Returns:
        The path of ``model.safetensors``.
    """
    from course_lib.checkpoint import save_weights

    if not isinstance(model, GPT):
        raise TypeError(f"save_pretrained expected a GPT, got {type(model).__name__}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().half() if half and v.is_floating_point() else v.detach())
             for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:  # keep the tie visible to save_weights: one tensor, two names
        state["lm_head.weight"] = state["token_embedding.weight"]
    metadata = {"config": model.config.to_dict(), "settings": dict(settings or {}),
                "dtype": "float16" if half else "float32"}
    path = save_weights(state, folder / "model.safetensors", metadata=metadata)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))
    return path


def load_pretrained(
    folder: str | Path | None = None, *, device: torch.device | str = "cpu"
) -> tuple[GPT, Any, dict[str, Any]]:
    """Load a GPT saved by ``save_pretrained``, strictly (no missing or unexpected weights).

    Args:
        folder: the folder; None loads the course's shipped GPT (``assets/gpt``, made by
            ``python -m course_lib.pretrain gpt``).
        device: where to put the model.

    Returns:
        ``(model, tokenizer, metadata)``: the ``GPT`` in eval mode, float32, on ``device``; its
        ``transformers.PreTrainedTokenizerFast`` (None if the folder has none); and the saved
        ``{"config": ..., "settings": ..., "dtype": ...}``.
    """
    from course_lib.checkpoint import asset_path, load_weights, read_metadata

    folder = asset_path(CHECKPOINT_DIR) if folder is None else Path(folder)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(
            f"no model.safetensors in the GPT checkpoint folder {folder.name!r}; rebuild it with "
            "`python -m course_lib.pretrain gpt`"
        )
    metadata = json.loads(read_metadata(weights).get("user", "{}"))
    if "config" not in metadata:
        raise ValueError(f"{weights.name} holds no GPT config in its metadata: was it written by save_pretrained?")
    model = GPT(GPTConfig.from_dict(metadata["config"]))
    load_weights(model, weights)  # strict; float16 weights are cast into the float32 model
    model = model.float().to(device).eval()
    tokenizer = None
    if (folder / "tokenizer.json").is_file():
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
    return model, tokenizer, metadata
