"""The Transformer of "Attention Is All You Need" (Vaswani et al., 2017): blocks, encoder, decoder,
the encoder-decoder model, and decoding (greedy and beam search).

Built from ``course_lib.attention`` (multi-head attention, masks) and ``course_lib.positional``
(sinusoidal position table). Conventions as in ``course_lib.attention``: ``(batch, seq, d_model)``
activations, boolean masks that are **True where attention is allowed**.

    from course_lib import transformer as tf
    model = tf.Seq2SeqTransformer(src_vocab_size=40, tgt_vocab_size=16, pad_id=0)
    logits = model(src, tgt_in)                           # (batch, T, tgt_vocab_size)
    out = tf.greedy_decode(model, src, max_len=12, bos_id=1, eos_id=2)   # (batch, <= 13)
    out = tf.beam_search(model, src, beam_width=4, max_len=12, bos_id=1, eos_id=2)

Pieces, each a module you can use on its own: ``LayerNorm`` (by hand, equal to ``nn.LayerNorm``),
``FeedForward``, ``EncoderLayer`` / ``DecoderLayer`` (pre-LN or post-LN with residual connections
and dropout), ``Encoder``, ``Decoder``, ``Seq2SeqTransformer``. Masks: ``source_mask`` and
``decoder_mask`` (causal AND target padding). Decoding: ``greedy_decode``, ``beam_search_step``,
``beam_search``. The paper's learning-rate schedule is ``course_lib.train.warmup_inverse_sqrt``; BLEU is
``course_lib.metrics.bleu``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from course_lib import _validate as validate
from course_lib.attention import MultiHeadAttention, causal_mask
from course_lib.positional import SinusoidalPositionalEmbedding

__all__ = [
    "layer_norm",
    "LayerNorm",
    "FeedForward",
    "EncoderLayer",
    "DecoderLayer",
    "Encoder",
    "Decoder",
    "Seq2SeqTransformer",
    "source_mask",
    "decoder_mask",
    "greedy_decode",
    "beam_search_step",
    "beam_search",
    "ACTIVATIONS",
]


def _check_ids(ids, name: str, caller: str) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{caller} expected {name} as a torch.Tensor of token ids, got {type(ids).__name__}")
    if ids.dim() != 2:
        raise ValueError(f"{caller} expected {name} of shape (batch, seq) token ids, got {tuple(ids.shape)}")
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise TypeError(f"{caller} expected integer token ids for {name}, got dtype {ids.dtype}")
    return ids


def _check_activations(x, d_model: int, name: str, caller: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{caller} expected {name} as a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{caller} expected {name} of shape (batch, seq, d_model={d_model}), got {tuple(x.shape)}")
    return x


# ---- layer normalisation ---------------------------------------------------------------------
def layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Layer normalisation by hand: each vector (last dimension) to mean 0 and variance 1, then
    scaled by ``weight`` and shifted by ``bias``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the mean and the **biased** variance
    (divide by ``d``, not ``d - 1``) over the last dimension. Equal to
    ``torch.nn.functional.layer_norm(x, (d,), weight, bias, eps)``.

    Args:
        x: ``(..., d)`` floating-point activations.
        weight, bias: optional ``(d,)`` gain and shift (1 and 0 when None).
        eps: added to the variance inside the square root, for stability.

    Returns:
        A tensor of ``x``'s shape.
    """
    caller = "layer_norm"
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{caller} expected a floating-point tensor x (..., d), got {type(x).__name__}"
                        + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    if x.dim() == 0:
        raise ValueError(f"{caller} expected x with at least one dimension (..., d), got a 0-dim tensor")
    d = x.shape[-1]
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (d,):
            raise ValueError(f"{caller} expected {name} of shape ({d},) for x of shape {tuple(x.shape)}, got {tuple(p.shape)}")
    mean = x.mean(dim=-1, keepdim=True)
    var = (x - mean).pow(2).mean(dim=-1, keepdim=True)  # biased: divide by d
    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class LayerNorm(nn.Module):
    """``layer_norm`` with a learned gain (``weight``, starts at 1) and shift (``bias``, starts at 0).

    Same parameters, names and outputs as ``nn.LayerNorm(d_model, eps=eps)``, so state dicts load
    both ways.
    """

    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        validate.positive_int(d_model, "d_model", "LayerNorm")
        self.d_model, self.eps = d_model, eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def extra_repr(self) -> str:
        return f"{self.d_model}, eps={self.eps}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., d_model)`` -> same shape."""
        if isinstance(x, torch.Tensor) and x.dim() >= 1 and x.shape[-1] != self.d_model:
            raise ValueError(f"LayerNorm({self.d_model}) expected x of shape (..., {self.d_model}), got {tuple(x.shape)}")
        return layer_norm(x, self.weight, self.bias, self.eps)


# ---- feed-forward ----------------------------------------------------------------------------
class _QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``, the activation Hugging Face calls ``quick_gelu``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def _tanh_gelu() -> nn.Module:
    return nn.GELU(approximate="tanh")


# The feed-forward activations of every model in the course, by the names Hugging Face configs use.
# "gelu" is the exact GELU x * Phi(x) (BERT's); "gelu_new" and its aliases are the tanh
# approximation (GPT-2's).
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "gelu_python": nn.GELU,
    "gelu_new": _tanh_gelu,
    "gelu_fast": _tanh_gelu,
    "gelu_pytorch_tanh": _tanh_gelu,
    "gelu_python_tanh": _tanh_gelu,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "quick_gelu": _QuickGELU,
}


class FeedForward(nn.Module):
    """The position-wise feed-forward network: ``fc_out(dropout(act(fc_in(x))))``.

    The same two-layer network is applied to every position independently (no mixing between
    positions: that is attention's job). ``d_ff`` is usually ``4 * d_model``. The Transformer,
    GPT and BERT all use this one; their blocks add the dropout on its output.

    Args:
        d_model: input and output size.
        d_ff: hidden size.
        dropout: dropout on the hidden activations (training only).
        activation: a key of ``ACTIVATIONS``: ``"relu"`` (the 2017 paper), ``"gelu"`` (BERT),
            ``"gelu_new"`` (GPT-2).

    Built in notebook 07, section 2.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu") -> None:
        super().__init__()
        self.d_model = validate.positive_int(d_model, "d_model", "FeedForward")
        validate.positive_int(d_ff, "d_ff", "FeedForward")
        if activation not in ACTIVATIONS:
            raise ValueError(f"FeedForward: unknown activation {activation!r}; choose one of {list(ACTIVATIONS)}")
        self.fc_in = nn.Linear(d_model, d_ff)
        self.activation = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(validate.dropout_p(dropout, "FeedForward"))
        self.fc_out = nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., d_model)`` -> ``(..., d_ff)`` -> ``(..., d_model)``."""
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[-1] != self.d_model:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"FeedForward expected x of shape (..., d_model={self.d_model}), got {got}")
        return self.fc_out(self.dropout(self.activation(self.fc_in(x))))


# ---- blocks ----------------------------------------------------------------------------------
def _sublayer(x: torch.Tensor, sublayer: Callable[[torch.Tensor], torch.Tensor], norm: nn.Module,
              dropout: nn.Module, norm_first: bool, residual: bool) -> torch.Tensor:
    """One sub-layer with its residual connection, dropout and layer norm.

    pre-LN (GPT-2 and most models since): ``x + dropout(sublayer(norm(x)))``;
    post-LN (the 2017 paper): ``norm(x + dropout(sublayer(x)))``.
    ``residual=False`` drops the ``x +`` (an ablation: notebook 07 measures what it costs).
    """
    skip = x if residual else 0.0
    if norm_first:
        return skip + dropout(sublayer(norm(x)))
    return norm(skip + dropout(sublayer(x)))


def _norm(d_model: int, layer_norm: bool) -> nn.Module:
    return LayerNorm(d_model) if layer_norm else nn.Identity()


class EncoderLayer(nn.Module):
    """One encoder block: self-attention over the source, then the feed-forward network, each
    wrapped in a residual connection with dropout and layer norm.

    In the default pre-LN form the forward pass is::

        x = x + dropout(attention(attention_norm(x), mask=src_mask))
        x = x + dropout(feed_forward(feed_forward_norm(x)))

    Args:
        d_model, num_heads, d_ff: sizes (``num_heads`` divides ``d_model``).
        dropout: on the attention weights, on each sub-layer's output and inside the feed-forward.
        norm_first: True for pre-LN (trains stably without warm-up tricks), False for the paper's post-LN.
        residual, layer_norm: False removes the residual connections or the layer norms (ablations).

    Attributes: ``attention``, ``attention_norm``, ``feed_forward``, ``feed_forward_norm``, ``dropout``
    (the names ``GPTBlock`` and ``BertLayer`` use). Written by the learner in notebook 07, section 2.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1, norm_first: bool = True,
                 residual: bool = True, layer_norm: bool = True) -> None:
        super().__init__()
        dropout = validate.dropout_p(dropout, "EncoderLayer")
        self.d_model, self.norm_first, self.residual = d_model, norm_first, residual
        self.attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.attention_norm = _norm(d_model, layer_norm)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.feed_forward_norm = _norm(d_model, layer_norm)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x (batch, S, d_model)``, ``src_mask`` boolean broadcastable to ``(batch, heads, S, S)``
        (``source_mask``'s ``(batch, 1, 1, S)``) -> ``(batch, S, d_model)``."""
        x = _check_activations(x, self.d_model, "x", "EncoderLayer")
        wrap = dict(dropout=self.dropout, norm_first=self.norm_first, residual=self.residual)
        x = _sublayer(x, lambda h: self.attention(h, mask=src_mask, need_weights=False)[0],
                      self.attention_norm, **wrap)
        return _sublayer(x, self.feed_forward, self.feed_forward_norm, **wrap)


class DecoderLayer(nn.Module):
    """One decoder block: masked self-attention over the target so far, cross-attention to the
    encoder's output (the "memory"), then the feed-forward network; each with residual, dropout
    and layer norm. In the default pre-LN form::

        y = y + dropout(self_attention(self_attention_norm(y), mask=tgt_mask))
        y = y + dropout(cross_attention(cross_attention_norm(y), memory, mask=memory_mask))
        y = y + dropout(feed_forward(feed_forward_norm(y)))

    The cross-attention's queries come from the decoder, its keys and values from ``memory``.
    Arguments as ``EncoderLayer``; attributes ``self_attention``, ``self_attention_norm``,
    ``cross_attention``, ``cross_attention_norm``, ``feed_forward``, ``feed_forward_norm``, ``dropout``.
    Written by the learner in notebook 07, section 3.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1, norm_first: bool = True,
                 residual: bool = True, layer_norm: bool = True) -> None:
        super().__init__()
        dropout = validate.dropout_p(dropout, "DecoderLayer")
        self.d_model, self.norm_first, self.residual = d_model, norm_first, residual
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.self_attention_norm = _norm(d_model, layer_norm)
        self.cross_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.cross_attention_norm = _norm(d_model, layer_norm)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.feed_forward_norm = _norm(d_model, layer_norm)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        y: torch.Tensor,
        memory: torch.Tensor,
        tgt_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Args:
            y: the target so far ``(batch, T, d_model)``.
            memory: the encoder's output ``(batch, S, d_model)``.
            tgt_mask: boolean, broadcastable to ``(batch, heads, T, T)``: ``decoder_mask`` (causal
                AND target padding). Without it a position could read the future.
            memory_mask: boolean, broadcastable to ``(batch, heads, T, S)``: ``source_mask``.
            need_weights: also return the cross-attention weights (slower path).

        Returns:
            ``(y, cross_weights)``: ``(batch, T, d_model)`` and ``(batch, heads, T, S)`` or None.
        """
        y = _check_activations(y, self.d_model, "y", "DecoderLayer")
        memory = _check_activations(memory, self.d_model, "memory", "DecoderLayer")
        wrap = dict(dropout=self.dropout, norm_first=self.norm_first, residual=self.residual)
        y = _sublayer(y, lambda h: self.self_attention(h, mask=tgt_mask, need_weights=False)[0],
                      self.self_attention_norm, **wrap)
        weights = []  # the cross-attention's weights, kept on the way through

        def cross(h: torch.Tensor) -> torch.Tensor:
            out, w = self.cross_attention(h, memory, mask=memory_mask, need_weights=need_weights)
            weights.append(w)
            return out

        y = _sublayer(y, cross, self.cross_attention_norm, **wrap)
        return _sublayer(y, self.feed_forward, self.feed_forward_norm, **wrap), weights[0]


class Encoder(nn.Module):
    """A stack of ``num_layers`` ``EncoderLayer``s (with a final layer norm for pre-LN)."""

    def __init__(self, num_layers: int, d_model: int, num_heads: int, d_ff: int,
                 dropout: float = 0.1, norm_first: bool = True, residual: bool = True,
                 layer_norm: bool = True) -> None:
        super().__init__()
        validate.positive_int(num_layers, "num_layers", "Encoder")
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, num_heads, d_ff, dropout, norm_first, residual, layer_norm)
            for _ in range(num_layers)
        )
        self.norm = _norm(d_model, layer_norm) if norm_first else nn.Identity()

    def forward(self, x: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, S, d_model)`` -> ``(batch, S, d_model)``."""
        for layer in self.layers:
            x = layer(x, src_mask)
        return self.norm(x)


class Decoder(nn.Module):
    """A stack of ``num_layers`` ``DecoderLayer``s (with a final layer norm for pre-LN)."""

    def __init__(self, num_layers: int, d_model: int, num_heads: int, d_ff: int,
                 dropout: float = 0.1, norm_first: bool = True, residual: bool = True,
                 layer_norm: bool = True) -> None:
        super().__init__()
        validate.positive_int(num_layers, "num_layers", "Decoder")
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, num_heads, d_ff, dropout, norm_first, residual, layer_norm)
            for _ in range(num_layers)
        )
        self.norm = _norm(d_model, layer_norm) if norm_first else nn.Identity()

    def forward(self, y, memory, tgt_mask=None, memory_mask=None, need_weights: bool = False):
        """``y (batch, T, d_model)``, ``memory (batch, S, d_model)`` -> ``(y, cross_weights)`` with
        ``cross_weights`` a list of one ``(batch, heads, T, S)`` tensor per layer (None entries
        unless ``need_weights``)."""
        weights = []
        for layer in self.layers:
            y, w = layer(y, memory, tgt_mask, memory_mask, need_weights=need_weights)
            weights.append(w)
        return self.norm(y), weights


# ---- masks -----------------------------------------------------------------------------------
def source_mask(src: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The source padding mask: ``(batch, S)`` ids -> ``(batch, 1, 1, S)`` bool, True on real tokens.

    Used by encoder self-attention and by decoder cross-attention: no query ever reads a padding key.
    """
    src = _check_ids(src, "src", "source_mask")
    return (src != pad_id)[:, None, None, :]


def decoder_mask(tgt: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The decoder's self-attention mask: causal AND target key padding.

    ``mask[b, 0, i, j]`` is True when position ``i`` may read position ``j``: ``j <= i`` (no peeking
    at later tokens) **and** ``tgt[b, j]`` is not padding.

    Args:
        tgt: ``(batch, T)`` target ids (the decoder's input).
        pad_id: the padding id.

    Returns:
        ``(batch, 1, T, T)`` boolean mask.
    """
    tgt = _check_ids(tgt, "tgt", "decoder_mask")
    keys_real = (tgt != pad_id)[:, None, None, :]  # (batch, 1, 1, T): padding on the KEYS
    return causal_mask(tgt.shape[1], device=tgt.device) & keys_real


# ---- the model -------------------------------------------------------------------------------
class Seq2SeqTransformer(nn.Module):
    """The encoder-decoder Transformer: embeddings (scaled by sqrt(d_model)) + sinusoidal positions,
    an ``Encoder`` over the source, a ``Decoder`` over the target with cross-attention to the
    encoder's output, and a linear layer to target-vocabulary logits.

    Args:
        src_vocab_size, tgt_vocab_size: vocabulary sizes.
        d_model, num_heads, num_encoder_layers, num_decoder_layers, d_ff: sizes.
        dropout: dropout everywhere (embeddings, attention weights, sub-layer outputs, feed-forward).
        max_len: the longest source or target sequence.
        pad_id: the padding id (shared by both vocabularies); ignored by attention.
        norm_first: pre-LN (True) or the paper's post-LN (False).
        tie_embeddings: share the target embedding matrix with the output layer (as the paper
            does): fewer parameters, and the output scores a token by the dot product with its own
            embedding.
        residual, layer_norm, positional: False removes the residual connections, the layer norms
            or the position encodings everywhere (the ablations of notebook 07).

    The forward pass, which the learner writes in notebook 07, section 5::

        src_mask = source_mask(src, pad_id)
        memory = encoder(dropout(positions(src_embed(src) * sqrt(d_model))), src_mask)
        y, _ = decoder(dropout(positions(tgt_embed(tgt) * sqrt(d_model))), memory,
                       decoder_mask(tgt, pad_id), src_mask)
        logits = out_proj(y)
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 2,
        d_ff: int = 256,
        dropout: float = 0.1,
        max_len: int = 128,
        pad_id: int = 0,
        norm_first: bool = True,
        tie_embeddings: bool = True,
        residual: bool = True,
        layer_norm: bool = True,
        positional: bool = True,
    ) -> None:
        super().__init__()
        caller = "Seq2SeqTransformer"
        for name, value in (("src_vocab_size", src_vocab_size), ("tgt_vocab_size", tgt_vocab_size),
                            ("d_model", d_model), ("max_len", max_len)):
            validate.positive_int(value, name, caller)
        dropout = validate.dropout_p(dropout, caller)
        if d_model % 2:
            raise ValueError(f"{caller} expected an even d_model (sinusoidal positions), got {d_model}")
        self.d_model, self.pad_id, self.max_len = d_model, pad_id, max_len
        self.src_embed = nn.Embedding(src_vocab_size, d_model, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d_model, padding_idx=pad_id)
        self.positions = SinusoidalPositionalEmbedding(max_len, d_model) if positional else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        stack = dict(dropout=dropout, norm_first=norm_first, residual=residual, layer_norm=layer_norm)
        self.encoder = Encoder(num_encoder_layers, d_model, num_heads, d_ff, **stack)
        self.decoder = Decoder(num_decoder_layers, d_model, num_heads, d_ff, **stack)
        self.out_proj = nn.Linear(d_model, tgt_vocab_size, bias=False)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
        nn.init.normal_(self.src_embed.weight, std=d_model**-0.5)
        nn.init.normal_(self.tgt_embed.weight, std=d_model**-0.5)
        with torch.no_grad():
            self.src_embed.weight[pad_id].zero_()
            self.tgt_embed.weight[pad_id].zero_()
        if tie_embeddings:
            self.out_proj.weight = self.tgt_embed.weight

    def _embed(self, ids: torch.Tensor, table: nn.Embedding, name: str) -> torch.Tensor:
        if ids.shape[1] > self.max_len:
            raise ValueError(f"Seq2SeqTransformer: {name} has {ids.shape[1]} tokens, more than max_len={self.max_len}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= table.num_embeddings):
            raise ValueError(
                f"Seq2SeqTransformer: {name} ids must lie in [0, {table.num_embeddings}), "
                f"got values from {int(ids.min())} to {int(ids.max())}"
            )
        return self.dropout(self.positions(table(ids) * math.sqrt(self.d_model)))

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``src (batch, S)`` ids -> ``(memory (batch, S, d_model), src_mask (batch, 1, 1, S))``."""
        src = _check_ids(src, "src", "Seq2SeqTransformer.encode")
        mask = source_mask(src, self.pad_id)
        return self.encoder(self._embed(src, self.src_embed, "src"), mask), mask

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor,
               need_weights: bool = False):
        """``tgt (batch, T)`` ids with the encoder's ``memory`` -> ``(logits (batch, T, V), cross_weights)``.

        ``cross_weights``: one ``(batch, heads, T, S)`` tensor per decoder layer if ``need_weights``.
        """
        tgt = _check_ids(tgt, "tgt", "Seq2SeqTransformer.decode")
        if memory.shape[0] != tgt.shape[0]:
            raise ValueError(f"Seq2SeqTransformer.decode: memory {tuple(memory.shape)} and tgt {tuple(tgt.shape)} "
                             "must have the same batch size")
        y, weights = self.decoder(self._embed(tgt, self.tgt_embed, "tgt"), memory,
                                  decoder_mask(tgt, self.pad_id), src_mask, need_weights=need_weights)
        return self.out_proj(y), weights

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, need_weights: bool = False):
        """Teacher-forced pass: ``src (batch, S)``, ``tgt (batch, T)`` (the target shifted right,
        starting with BOS) -> logits ``(batch, T, tgt_vocab_size)`` for the next token at each
        position. With ``need_weights=True`` returns ``(logits, cross_weights)``, a list of
        ``(batch, heads, T, S)`` per decoder layer."""
        src = _check_ids(src, "src", "Seq2SeqTransformer")
        tgt = _check_ids(tgt, "tgt", "Seq2SeqTransformer")
        if src.shape[0] != tgt.shape[0]:
            raise ValueError(f"Seq2SeqTransformer expected src and tgt with one batch size, got "
                             f"{tuple(src.shape)} and {tuple(tgt.shape)}")
        memory, mask = self.encode(src)
        logits, weights = self.decode(tgt, memory, mask, need_weights=need_weights)
        return (logits, weights) if need_weights else logits


# ---- decoding --------------------------------------------------------------------------------
def _check_decode_args(model, src, max_len, bos_id, eos_id, caller):
    if not isinstance(model, Seq2SeqTransformer):
        raise TypeError(f"{caller} expected a Seq2SeqTransformer, got {type(model).__name__}")
    src = _check_ids(src, "src", caller)
    validate.positive_int(max_len, "max_len", caller)
    vocab = model.out_proj.out_features
    for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
        validate.positive_int(value, name, caller, minimum=0, maximum=vocab - 1)
    if max_len + 1 > model.max_len:
        raise ValueError(f"{caller}: max_len={max_len} (+1 for BOS) exceeds the model's max_len={model.max_len}")
    return src.to(next(model.parameters()).device)


@torch.no_grad()
def greedy_decode(model: Seq2SeqTransformer, src: torch.Tensor, max_len: int, bos_id: int, eos_id: int) -> torch.Tensor:
    """Translate by taking the most likely next token at every step.

    Args:
        model: a ``Seq2SeqTransformer`` (put in eval mode here, restored afterwards).
        src: ``(batch, S)`` source ids, padded with ``model.pad_id``.
        max_len: the most tokens to generate after BOS.
        bos_id, eos_id: begin- and end-of-sequence ids.

    Returns:
        ``(batch, L)`` ids, ``L <= max_len + 1``, each row ``BOS, t1, t2, ..., EOS, pad, pad...``
        (no EOS if ``max_len`` ran out). Decoding stops once every row has its EOS.
    """
    src = _check_decode_args(model, src, max_len, bos_id, eos_id, "greedy_decode")
    with validate.eval_mode(model):
        memory, mask = model.encode(src)
        out = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            logits, _ = model.decode(out, memory, mask)
            nxt = logits[:, -1].argmax(-1)
            nxt = nxt.masked_fill(done, model.pad_id)
            out = torch.cat([out, nxt[:, None]], dim=1)
            done |= nxt == eos_id
            if done.all():
                break
    return out


def beam_search_step(
    log_probs: torch.Tensor, beam_scores: torch.Tensor, beam_width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of beam search: extend every beam by every token, keep the best ``beam_width``.

    A candidate's score is its beam's score plus the log-probability of the new token (log-probs
    add where probabilities multiply, without underflow); the top ``beam_width`` are taken over
    **all beams' candidates together**, so a strong beam may keep several children and a weak one none.

    Args:
        log_probs: ``(batch, beams, vocab)`` log-probabilities of the next token for each beam.
        beam_scores: ``(batch, beams)`` the summed log-probabilities of each beam so far.
        beam_width: how many candidates to keep (at most ``beams * vocab``).

    Returns:
        ``(scores, beam_index, token)`` each ``(batch, beam_width)``, best first: the new scores, the
        beam each candidate extends, and the token it appends.
    """
    caller = "beam_search_step"
    if not isinstance(log_probs, torch.Tensor) or log_probs.dim() != 3:
        got = tuple(log_probs.shape) if isinstance(log_probs, torch.Tensor) else type(log_probs).__name__
        raise ValueError(f"{caller} expected log_probs of shape (batch, beams, vocab), got {got}")
    if not isinstance(beam_scores, torch.Tensor) or tuple(beam_scores.shape) != tuple(log_probs.shape)[:2]:
        got = tuple(beam_scores.shape) if isinstance(beam_scores, torch.Tensor) else type(beam_scores).__name__
        raise ValueError(f"{caller} expected beam_scores of shape {tuple(log_probs.shape)[:2]} (batch, beams), got {got}")
    batch, beams, vocab = log_probs.shape
    validate.positive_int(beam_width, "beam_width", caller)
    if beam_width > beams * vocab:
        raise ValueError(f"{caller}: beam_width={beam_width} exceeds the {beams * vocab} candidates")
    candidates = (beam_scores[:, :, None] + log_probs).reshape(batch, beams * vocab)
    scores, flat = candidates.topk(beam_width, dim=-1)
    return scores, flat // vocab, flat % vocab


@torch.no_grad()
def beam_search(
    model: Seq2SeqTransformer,
    src: torch.Tensor,
    beam_width: int,
    max_len: int,
    bos_id: int,
    eos_id: int,
    length_penalty: float = 1.0,
) -> torch.Tensor:
    """Translate keeping the ``beam_width`` best partial translations at every step (batched).

    Finished beams (that produced EOS) are carried on unchanged, padded, with their score frozen.
    At the end each sentence's beams are ranked by ``score / length ** length_penalty`` (length =
    generated tokens, EOS included): 0 ranks by raw log-probability (favours short outputs), 1 by
    mean log-probability per token. With ``beam_width=1`` this is exactly ``greedy_decode``.

    Args:
        model, src, max_len, bos_id, eos_id: as in ``greedy_decode``.
        beam_width: beams kept per sentence.
        length_penalty: the exponent above, >= 0.

    Returns:
        ``(batch, L)`` ids as ``greedy_decode`` returns: the best beam of each sentence.
    """
    caller = "beam_search"
    src = _check_decode_args(model, src, max_len, bos_id, eos_id, caller)
    validate.positive_int(beam_width, "beam_width", caller)
    if not isinstance(length_penalty, (int, float)) or length_penalty < 0:
        raise ValueError(f"{caller} expected length_penalty >= 0, got {length_penalty!r}")
    with validate.eval_mode(model):
        batch, k, dev = src.shape[0], beam_width, src.device
        memory, mask = model.encode(src)
        memory = memory.repeat_interleave(k, dim=0)  # (batch * k, S, d)
        mask = mask.repeat_interleave(k, dim=0)
        seqs = torch.full((batch, k, 1), bos_id, dtype=torch.long, device=dev)
        scores = torch.full((batch, k), float("-inf"), device=dev)
        scores[:, 0] = 0.0  # all beams start identical: let only the first one expand at step 1
        done = torch.zeros(batch, k, dtype=torch.bool, device=dev)
        lengths = torch.zeros(batch, k, device=dev)
        for _ in range(max_len):
            logits, _ = model.decode(seqs.flatten(0, 1), memory, mask)
            log_probs = logits[:, -1].float().log_softmax(-1).view(batch, k, -1)
            # A finished beam has one continuation, padding, at no cost: its score stays frozen.
            frozen = torch.full_like(log_probs, float("-inf"))
            frozen[..., model.pad_id] = 0.0
            log_probs = torch.where(done[..., None], frozen, log_probs)
            scores, beam_idx, token = beam_search_step(log_probs, scores, k)
            seqs = torch.cat([seqs.gather(1, beam_idx[..., None].expand(-1, -1, seqs.shape[-1])),
                              token[..., None]], dim=-1)
            was_done = done.gather(1, beam_idx)
            lengths = lengths.gather(1, beam_idx) + (~was_done).float()
            done = was_done | (token == eos_id)
            if done.all():
                break
        ranked = scores / lengths.clamp_min(1.0) ** length_penalty
        best = ranked.argmax(dim=-1)  # (batch,)
        rows = torch.arange(batch, device=dev)
        out = seqs[rows, best][:, : 1 + int(lengths[rows, best].max())]  # drop all-padding columns
    return out
