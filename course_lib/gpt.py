"""GPT: a GPT-2-style decoder-only language model, and how it writes text.

The model reads token ids and, at every position, scores every vocabulary token as the next one:

    token embedding + learned position embedding
    -> num_layers x [ x + Attention(LayerNorm(x)),  x + FeedForward(LayerNorm(x)) ]   (pre-LN blocks)
    -> final LayerNorm -> output head (tied to the token embedding) -> logits (batch, seq, vocab)

Every piece comes from an earlier notebook: the attention is ``course_lib.attention.MultiHeadAttention``
(notebook 05) with a causal mask, the position table ``course_lib.positional.LearnedPositionalEmbedding``
(notebook 06), the feed-forward layer ``course_lib.transformer.FeedForward`` (notebook 07)::

    from course_lib.gpt import GPT, GPTConfig, generate
    model = GPT(GPTConfig(vocab_size=4096, max_len=128, d_model=128, num_layers=4, num_heads=4))
    logits = model(input_ids)                                   # (batch, seq, 4096)
    logits, attentions = model(input_ids, output_attentions=True)  # + one (batch, heads, seq, seq) per layer
    out = generate(model, prompt_ids, max_new_tokens=50, do_sample=True, top_p=0.9)

``generate`` decodes greedily (token for token what Hugging Face's greedy ``generate`` gives on the
same weights) or samples with temperature, top-k and nucleus (top-p) filtering, with a
``KVCache`` so that each new token costs one position's work instead of the whole sequence's.

Elsewhere: the conversion to and from Hugging Face's ``GPT2LMHeadModel`` is ``course_lib.interop``
(``GPT.from_hf`` and ``model.to_hf`` call it); the training data, the bigram baseline and the
evaluation are ``course_lib.pretraining``; saving and loading are ``course_lib.checkpoint``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import torch
from torch import nn

from course_lib import _validate as validate
from course_lib.attention import KVCache, MultiHeadAttention
from course_lib.positional import LearnedPositionalEmbedding
from course_lib.transformer import ACTIVATIONS, FeedForward

__all__ = [
    "GPTConfig",
    "GPTBlock",
    "GPT",
    "GPTOutput",
    "top_k_filter",
    "top_p_filter",
    "generate",
]


# ---- configuration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class GPTConfig:
    """The shape and settings of a GPT (names shared with ``BertConfig``; ``course_lib.interop``
    maps them to Hugging Face's ``GPT2Config``).

    Attributes:
        vocab_size: number of tokens the model reads and predicts.
        max_len: the context: the longest sequence the model accepts.
        d_model: the width of every position's vector.
        num_layers: number of Transformer blocks.
        num_heads: attention heads per block; must divide ``d_model``.
        d_ff: width of the feed-forward hidden layer; None means ``4 * d_model``.
        activation: the feed-forward activation, a key of ``course_lib.transformer.ACTIVATIONS``
            (GPT-2's is ``"gelu_new"``, the tanh approximation of GELU).
        dropout: dropout on each block's two residual branches.
        embedding_dropout: dropout on the summed embeddings.
        attention_dropout: dropout on the attention weights.
        layer_norm_eps: the epsilon of every LayerNorm.
        scale_attn_weights: divide attention scores by ``sqrt(d_head)`` (always True in GPT-2).
        scale_attn_by_inverse_layer_idx: also divide the scores of block ``i`` by ``i + 1``.
        tie_embeddings: the output head reuses the token-embedding matrix.

    Built in notebook 08, section 4.
    """

    vocab_size: int = 4096
    max_len: int = 128
    d_model: int = 128
    num_layers: int = 4
    num_heads: int = 4
    d_ff: int | None = None
    activation: str = "gelu_new"
    dropout: float = 0.0
    embedding_dropout: float = 0.0
    attention_dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_len", "d_model", "num_layers", "num_heads"):
            validate.positive_int(getattr(self, name), name, "GPTConfig")
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", 4 * self.d_model)
        validate.positive_int(self.d_ff, "d_ff", "GPTConfig")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"GPTConfig: d_model={self.d_model} must be divisible by num_heads={self.num_heads} "
                "(each head gets d_model // num_heads features)"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"GPTConfig: unknown activation {self.activation!r}; choose one of {list(ACTIVATIONS)}")
        for name in ("dropout", "embedding_dropout", "attention_dropout"):
            validate.dropout_p(getattr(self, name), "GPTConfig", name)
        validate.number(self.layer_norm_eps, "layer_norm_eps", "GPTConfig", low=0.0, low_open=True)

    @property
    def d_head(self) -> int:
        """Features per attention head: ``d_model // num_heads``."""
        return self.d_model // self.num_heads

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


# ---- the block --------------------------------------------------------------------------------
class GPTBlock(nn.Module):
    """One pre-LN decoder block: ``x + Attention(LN(x))``, then ``x + FeedForward(LN(x))``.

    The attention is causal self-attention, ``course_lib.attention.MultiHeadAttention``; with a
    ``KVCache`` it also attends over the positions of earlier calls.

    Args:
        config: the model's ``GPTConfig``.
        layer_idx: the block's index (its slot in a ``KVCache``; the score scale of
            ``scale_attn_by_inverse_layer_idx``).

    Built in notebook 08, section 4.
    """

    def __init__(self, config: GPTConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.attention = MultiHeadAttention(
            config.d_model, config.num_heads, dropout=config.attention_dropout, layer_idx=layer_idx
        )
        self.feed_forward_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config.d_model, config.d_ff, activation=config.activation)
        self.dropout = nn.Dropout(config.dropout)
        # GPT-2's two options on the scores; None keeps attention's own 1 / sqrt(d_head).
        scale = 1.0 / math.sqrt(config.d_head) if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            scale /= layer_idx + 1
        self.scale = None if config.scale_attn_weights and not config.scale_attn_by_inverse_layer_idx else scale

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        is_causal: bool = True,
        cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x (batch, seq, d_model)`` -> ``(x' of the same shape, attention weights or None)``."""
        attended, weights = self.attention(
            self.attention_norm(x), mask=mask, need_weights=need_weights, is_causal=is_causal,
            cache=cache, scale=self.scale,
        )
        x = x + self.dropout(attended)  # residual around attention
        x = x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))  # residual around the MLP
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
        layers: ``num_layers`` ``GPTBlock``.
        final_norm: the final ``LayerNorm``.
        lm_head: ``nn.Linear(d_model, vocab_size, bias=False)``; its weight *is* the token
            embedding's when ``config.tie_embeddings`` (one matrix, trained by both uses).

    Built in notebook 08, section 4.
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
        self.dropout = nn.Dropout(config.embedding_dropout)
        self.layers = nn.ModuleList(GPTBlock(config, i) for i in range(config.num_layers))
        self.final_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
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
        for block in self.layers:
            for proj in (block.attention.out_proj, block.feed_forward.fc_out):
                nn.init.normal_(proj.weight, std=std / math.sqrt(2 * self.config.num_layers))

    def num_parameters(self, *, exclude_embeddings: bool = False) -> int:
        """Trainable numbers (a tied matrix counted once); optionally without the two embeddings."""
        total = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            total -= self.token_embedding.weight.numel() + self.position_embedding.embedding.weight.numel()
        return total

    def extra_repr(self) -> str:
        return f"parameters={self.num_parameters():,}"

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
        past = self._check_cache(cache, input_ids)
        input_ids = self._check_ids(input_ids, past)
        batch, seq = input_ids.shape
        device = self.token_embedding.weight.device
        input_ids = input_ids.to(device)

        x = self.token_embedding(input_ids)  # (batch, seq, d_model)
        if position_ids is None:
            x = x + self.position_embedding.positions(seq, offset=past)  # + (seq, d_model), broadcast
        else:
            x = x + self.position_embedding.embedding(self._check_positions(position_ids, batch, seq, device))
        x = self.dropout(x)
        mask, is_causal = self._attention_mask(attention_mask, batch, past, seq, device)
        attentions = []
        for block in self.layers:
            x, weights = block(x, mask, is_causal, cache, output_attentions)
            attentions.append(weights)
        logits = self.lm_head(self.final_norm(x))  # (batch, seq, vocab_size)
        return GPTOutput(logits, tuple(attentions)) if output_attentions else logits

    # ---- Hugging Face (course_lib.interop) --------------------------------------------------
    @classmethod
    def from_hf(cls, hf_model: Any) -> GPT:
        """A ``GPT`` with the weights of a ``transformers.GPT2LMHeadModel`` (``interop.gpt_from_hf``)."""
        from course_lib.interop import gpt_from_hf

        return gpt_from_hf(hf_model)

    def to_hf(self, attn_implementation: str = "eager") -> Any:
        """A ``transformers.GPT2LMHeadModel`` with these weights (``interop.gpt_to_hf``)."""
        from course_lib.interop import gpt_to_hf

        return gpt_to_hf(self, attn_implementation)

    # ---- input checks ----------------------------------------------------------------------
    @staticmethod
    def _check_cache(cache: Any, input_ids: Any) -> int:
        """The number of cached positions (0 without a cache)."""
        if cache is None:
            return 0
        if not isinstance(cache, KVCache):
            raise TypeError(f"GPT expected cache to be a KVCache, got {type(cache).__name__}")
        if len(cache) and isinstance(input_ids, torch.Tensor) and cache.keys[0].shape[0] != input_ids.shape[0]:
            raise ValueError(f"GPT: the cache holds {cache.keys[0].shape[0]} sequences but input_ids has {input_ids.shape[0]}")
        return len(cache)

    def _check_ids(self, input_ids: Any, past: int) -> torch.Tensor:
        input_ids = validate.token_ids(input_ids, "GPT", vocab_size=self.config.vocab_size)
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
        return input_ids

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
        validate.tensor(attention_mask, "attention_mask", "GPT")
        if tuple(attention_mask.shape) != (batch, keys):
            extra = f" (the {past} cached positions plus the {seq} new ones)" if past else ""
            raise ValueError(
                f"GPT expected attention_mask of shape (batch, seq) = {(batch, keys)}{extra}, "
                f"got {tuple(attention_mask.shape)}; 1 marks a real token, 0 padding"
            )
        if attention_mask.is_floating_point() or not ((attention_mask == 0) | (attention_mask == 1)).all():
            raise ValueError("GPT expected attention_mask of 0/1 integers or booleans (1 = real token)")
        padding = attention_mask.to(device=device, dtype=torch.bool)[:, None, None, :]  # (batch, 1, 1, keys)
        return (padding if causal is None else padding & causal), False

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


# ---- sampling filters -------------------------------------------------------------------------
def _check_logits(logits: Any, caller: str) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"{caller} expected float logits (..., vocab), got {type(logits).__name__}")
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError(f"{caller} expected logits of shape (..., vocab), got {tuple(logits.shape)}")
    return logits


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

    Built in notebook 08, section 9.
    """
    logits = _check_logits(logits, "top_k_filter")
    k = min(validate.positive_int(k, "top_k", "top_k_filter"), logits.shape[-1])
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

    Built in notebook 08, section 9.
    """
    logits = _check_logits(logits, "top_p_filter")
    p = validate.number(p, "top_p", "top_p_filter", low=0.0, high=1.0, low_open=True)
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
    repetition_penalty: float = 1.0,
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
        repetition_penalty: > 0; before each choice, every token already in the sequence (prompt
            included) has its logit divided by it (multiplied, if negative), as in HF: above 1 it
            breaks greedy decoding's loops; 1.0 is off.

    Returns:
        The prompts with the new tokens appended: ``(batch, seq + new)``, or ``(seq + new,)`` for a
        1-D prompt.

    Built in notebook 08, sections 9 and 10.
    """
    ids, squeeze = _check_prompt(model, input_ids, max_new_tokens)
    _check_sampling(do_sample, temperature, top_k, top_p, repetition_penalty)
    if eos_token_id is not None and not 0 <= eos_token_id < model.config.vocab_size:
        raise ValueError(f"generate: eos_token_id={eos_token_id} is outside the vocabulary")
    pad = eos_token_id if pad_token_id is None else pad_token_id
    device = model.token_embedding.weight.device
    ids = ids.to(device)
    batch = ids.shape[0]
    positions = None
    if attention_mask is not None:  # left padding: positions count from each prompt's first real token
        attention_mask = _check_prompt_mask(attention_mask, ids)
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)

    with validate.eval_mode(model):
        cache = KVCache() if use_cache else None
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        logits = model(ids, attention_mask, positions, cache=cache)[:, -1]  # (batch, vocab): the last position
        for step in range(max_new_tokens):
            next_token = _choose(logits, ids, do_sample, temperature, top_k, top_p, repetition_penalty, generator)
            if eos_token_id is not None:  # a finished sequence gets padding from now on
                next_token = torch.where(finished, torch.full_like(next_token, pad), next_token)
                finished |= next_token == eos_token_id
            ids = torch.cat([ids, next_token[:, None]], dim=1)  # (batch, seq + 1)
            if attention_mask is not None:
                attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
                positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
            if step == max_new_tokens - 1 or (eos_token_id is not None and bool(finished.all())):
                break
            if use_cache:  # only the new token goes through the model; the cache holds the rest
                new_positions = positions[:, -1:] if positions is not None else None
                logits = model(ids[:, -1:], attention_mask, new_positions, cache=cache)[:, -1]
            else:
                logits = model(ids, attention_mask, positions)[:, -1]
    return ids[0] if squeeze else ids


def _check_prompt(model: Any, input_ids: Any, max_new_tokens: Any) -> tuple[torch.Tensor, bool]:
    """The prompt as ``(batch, seq)``, and whether it came as one ``(seq,)`` sequence."""
    if not isinstance(model, GPT):
        raise TypeError(f"generate expected a course_lib.gpt.GPT model, got {type(model).__name__}")
    if not isinstance(input_ids, torch.Tensor) or input_ids.is_floating_point():
        raise TypeError("generate expected input_ids as an integer tensor (batch, seq) or (seq,)")
    squeeze = input_ids.dim() == 1
    if squeeze:
        input_ids = input_ids.unsqueeze(0)
    if input_ids.dim() != 2:
        raise ValueError(f"generate expected input_ids of shape (batch, seq) or (seq,), got {tuple(input_ids.shape)}")
    context, prompt_len = model.config.max_len, input_ids.shape[1]
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
    validate.positive_int(max_new_tokens, "max_new_tokens", "generate", minimum=0)
    if prompt_len + max_new_tokens > context:
        raise ValueError(
            f"generate: a prompt of {prompt_len} tokens plus max_new_tokens={max_new_tokens} is "
            f"{prompt_len + max_new_tokens} tokens, more than the context of {context}; ask for at "
            f"most {context - prompt_len} new tokens or shorten the prompt"
        )
    return input_ids, squeeze


def _check_sampling(do_sample: Any, temperature: Any, top_k: Any, top_p: Any, repetition_penalty: Any) -> None:
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
        validate.positive_int(top_k, "top_k", "generate")
    if top_p is not None:
        validate.number(top_p, "top_p", "generate", low=0.0, high=1.0, low_open=True)
    validate.number(repetition_penalty, "repetition_penalty", "generate", low=0.0, low_open=True)


def _check_prompt_mask(attention_mask: Any, ids: torch.Tensor) -> torch.Tensor:
    if not isinstance(attention_mask, torch.Tensor) or tuple(attention_mask.shape) != tuple(ids.shape):
        got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
        raise ValueError(f"generate expected attention_mask of the prompt's shape {tuple(ids.shape)}, got {got}")
    return attention_mask.to(device=ids.device, dtype=torch.long)


def _choose(logits, ids, do_sample, temperature, top_k, top_p, repetition_penalty, generator) -> torch.Tensor:
    """The next token of each row of ``logits (batch, vocab)`` after ``ids (batch, seq)``: ``(batch,)``."""
    if repetition_penalty != 1.0:  # the tokens already in each row become less likely (HF's order: first)
        seen = logits.float().gather(1, ids)  # (batch, seq): the logits of the tokens seen so far
        seen = torch.where(seen < 0, seen * repetition_penalty, seen / repetition_penalty)
        logits = logits.float().scatter(1, ids, seen)
    if not do_sample:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
