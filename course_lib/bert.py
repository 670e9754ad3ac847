"""BERT: a bidirectional Transformer encoder pretrained with masked-LM and next-sentence prediction.

The model of Devlin et al. (2019), built on ``course_lib.attention.MultiHeadAttention`` and laid out
like Hugging Face's ``BertForPreTraining`` so that weights move both ways (``Bert.from_hf``,
``Bert.to_hf``) and the two give the same logits:

* embeddings: token + learned position + segment (``token_type_ids``: 0 for sentence A, 1 for B),
  then LayerNorm and dropout;
* ``num_layers`` **post-LN** blocks: ``x = LN(x + Dropout(Attention(x)))``,
  ``x = LN(x + Dropout(W2 act(W1 x)))``;
* a pooler (``tanh(W h_[CLS])``) under the next-sentence head ``Linear(d_model, 2)``;
* the masked-LM head: ``LN(act(W h))`` then a decoder tied to the token embeddings plus its own bias.

    from course_lib.bert import Bert, BertConfig
    model = Bert(BertConfig(vocab_size=8192, d_model=128, num_layers=2, num_heads=2))
    mlm_logits, nsp_logits = model(input_ids, token_type_ids, attention_mask)
    # (batch, seq, vocab)          (batch, 2)

``fill_mask`` fills in ``[MASK]`` tokens. Elsewhere: the pretraining batches, loss and evaluation are
``course_lib.pretraining``; the conversion to and from Hugging Face is ``course_lib.interop``
(``Bert.from_hf`` and ``model.to_hf`` call it); saving and loading are ``course_lib.checkpoint``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from course_lib import _validate as validate
from course_lib.attention import MultiHeadAttention, padding_mask
from course_lib.transformer import ACTIVATIONS, FeedForward

__all__ = [
    "BertConfig",
    "BertOutput",
    "BertEmbeddings",
    "BertLayer",
    "Bert",
    "neighbour_heads_init",
    "fill_mask",
]


# ---- configuration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class BertConfig:
    """The shape of a BERT model (names shared with ``GPTConfig``; ``course_lib.interop`` maps them to
    Hugging Face's ``BertConfig``).

    Attributes:
        vocab_size: number of token ids.
        d_model: width of every position's vector.
        num_layers: encoder blocks.
        num_heads: attention heads per block; must divide ``d_model``.
        d_ff: width of the feed-forward layer, default ``4 * d_model``.
        max_len: the longest sequence, i.e. number of learned positions.
        type_vocab_size: number of segments (2: sentence A and sentence B).
        activation: feed-forward and MLM-head activation, a key of
            ``course_lib.transformer.ACTIVATIONS``.
        layer_norm_eps: the epsilon of every LayerNorm (BERT's 1e-12).
        dropout: dropout on embeddings and on each block's two residual branches.
        attention_dropout: dropout on the attention weights.
        pad_token_id: the padding id; its embedding gets no gradient from lookups (None: no such id).
        tie_embeddings: the MLM decoder shares the token-embedding matrix.
        initializer_range: standard deviation of the normal initialisation of weights.

    Built in notebook 09, section 5.
    """

    vocab_size: int
    d_model: int = 128
    num_layers: int = 2
    num_heads: int = 2
    d_ff: int | None = None
    max_len: int = 128
    type_vocab_size: int = 2
    activation: str = "gelu"
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1
    attention_dropout: float = 0.1
    pad_token_id: int | None = 0
    tie_embeddings: bool = True
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", 4 * self.d_model)
        for name in ("vocab_size", "d_model", "num_layers", "num_heads", "d_ff", "max_len", "type_vocab_size"):
            validate.positive_int(getattr(self, name), name, "BertConfig")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"BertConfig: d_model={self.d_model} must be divisible by num_heads={self.num_heads}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"BertConfig: activation {self.activation!r} is not supported; use one of {sorted(ACTIVATIONS)}"
            )
        for name in ("dropout", "attention_dropout"):
            validate.dropout_p(getattr(self, name), "BertConfig", name)
        validate.number(self.layer_norm_eps, "layer_norm_eps", "BertConfig", low=0.0, low_open=True)
        validate.number(self.initializer_range, "initializer_range", "BertConfig", low=0.0, low_open=True)
        if self.pad_token_id is not None:
            validate.positive_int(self.pad_token_id, "pad_token_id", "BertConfig", minimum=0, maximum=self.vocab_size - 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (stored with checkpoints); ``BertConfig(**d)`` rebuilds it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> BertConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"BertConfig.from_dict: unknown settings {unknown}; known: {sorted(known)}")
        return cls(**dict(values))

    def to_hf(self) -> Any:
        """The equivalent ``transformers.BertConfig`` (``course_lib.interop.bert_config_to_hf``)."""
        from course_lib.interop import bert_config_to_hf

        return bert_config_to_hf(self)

    @classmethod
    def from_hf(cls, hf_config: Any) -> BertConfig:
        """Translate a ``transformers.BertConfig`` (``course_lib.interop.bert_config_from_hf``)."""
        from course_lib.interop import bert_config_from_hf

        return bert_config_from_hf(hf_config)


# ---- output -----------------------------------------------------------------------------------
@dataclass
class BertOutput:
    """What ``Bert`` returns. Unpacks as ``mlm_logits, nsp_logits = model(...)``.

    Attributes:
        prediction_logits: masked-LM scores ``(batch, seq, vocab)``, or ``(n_selected, vocab)``
            when the model was called with ``masked_positions``.
        seq_relationship_logits: next-sentence scores ``(batch, 2)`` (index 0: B follows A).
        last_hidden_state: the encoder's output ``(batch, seq, d_model)``.
        pooled_output: ``tanh(W h_[CLS])``, ``(batch, d_model)``.
        attentions: with ``output_attentions=True``, one ``(batch, heads, seq, seq)`` tensor per
            layer; otherwise None.
    """

    prediction_logits: torch.Tensor
    seq_relationship_logits: torch.Tensor
    last_hidden_state: torch.Tensor
    pooled_output: torch.Tensor
    attentions: tuple[torch.Tensor, ...] | None = None

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.prediction_logits, self.seq_relationship_logits))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> torch.Tensor:
        return (self.prediction_logits, self.seq_relationship_logits)[index]


# ---- modules ----------------------------------------------------------------------------------
class BertEmbeddings(nn.Module):
    """Token + position + segment embeddings, then LayerNorm and dropout.

    ``forward(input_ids (batch, seq), token_type_ids (batch, seq))`` -> ``(batch, seq, d_model)``.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_len, config.d_model)
        self.token_type = nn.Embedding(config.type_vocab_size, config.d_model)
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word(input_ids) + self.token_type(token_type_ids) + self.position(positions)
        return self.dropout(self.norm(x))


class BertLayer(nn.Module):
    """One post-LN encoder block, as in BERT and the original Transformer.

    ``x = LN(x + Dropout(MHA(x)))`` then ``x = LN(x + Dropout(FeedForward(x)))``.
    ``forward(x (batch, seq, d_model), mask (batch, 1, 1, seq) bool or None, need_weights)``
    returns ``(x, weights (batch, heads, seq, seq) or None)``.

    Built in notebook 09, section 5.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(config.d_model, config.num_heads, dropout=config.attention_dropout)
        self.attention_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config.d_model, config.d_ff, activation=config.activation)
        self.feed_forward_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(x, mask=mask, need_weights=need_weights)
        x = self.attention_norm(x + self.dropout(attended))  # post-LN: the norm after the residual sum
        x = self.feed_forward_norm(x + self.dropout(self.feed_forward(x)))
        return x, weights


class Bert(nn.Module):
    """BERT with its two pretraining heads (Hugging Face's ``BertForPreTraining``).

    Args:
        config: a ``BertConfig``.

    Call ``model(input_ids, token_type_ids=None, attention_mask=None)`` with
        input_ids: ``(batch, seq)`` token ids, ``seq <= config.max_len``;
        token_type_ids: ``(batch, seq)`` segment ids (0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``);
            None means all 0;
        attention_mask: ``(batch, seq)``, 1 for real tokens and 0 for padding; None means no padding;

    and get a ``BertOutput``: ``mlm_logits (batch, seq, vocab), nsp_logits (batch, 2)``.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(
                f"Bert expected a course_lib.bert.BertConfig, got {type(config).__name__} "
                "(for a transformers model use Bert.from_hf)"
            )
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(BertLayer(config) for _ in range(config.num_layers))
        self.pooler = nn.Linear(config.d_model, config.d_model)
        self.mlm_transform = nn.Linear(config.d_model, config.d_model)
        self.mlm_activation = ACTIVATIONS[config.activation]()
        self.mlm_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.mlm_decoder = nn.Linear(config.d_model, config.vocab_size)
        self.nsp_head = nn.Linear(config.d_model, 2)
        self.apply(self._init_weights)
        if config.tie_embeddings:
            self.mlm_decoder.weight = self.embeddings.word.weight

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        """Number of trainable numbers, each tied tensor counted once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # ---- validation -------------------------------------------------------------------------
    def _check_inputs(self, input_ids, token_type_ids, attention_mask):
        c = self.config
        input_ids = validate.token_ids(input_ids, "Bert", vocab_size=c.vocab_size)
        if not 1 <= input_ids.shape[1] <= c.max_len:
            raise ValueError(
                f"Bert: sequences of length {input_ids.shape[1]} do not fit: the model has {c.max_len} positions "
                "(truncate the input, e.g. tokenizer(..., truncation=True, max_length=...))"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        elif not isinstance(token_type_ids, torch.Tensor) or token_type_ids.shape != input_ids.shape:
            shape = tuple(token_type_ids.shape) if isinstance(token_type_ids, torch.Tensor) else type(token_type_ids).__name__
            raise ValueError(
                f"Bert expected token_type_ids of the shape of input_ids {tuple(input_ids.shape)}, got {shape}"
            )
        elif token_type_ids.min() < 0 or token_type_ids.max() >= c.type_vocab_size:
            raise ValueError(
                f"Bert: token_type_ids must lie in [0, {c.type_vocab_size}) (0 = sentence A, 1 = "
                f"sentence B), got values up to {int(token_type_ids.max())}"
            )
        mask = None
        if attention_mask is not None:
            if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
                shape = (
                    tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor)
                    else type(attention_mask).__name__
                )
                raise ValueError(
                    f"Bert expected attention_mask of the shape of input_ids {tuple(input_ids.shape)} "
                    f"(1 = real token, 0 = padding), got {shape}"
                )
            if not bool(attention_mask.bool().all()):  # no padding at all: the fused kernel's fast path
                mask = padding_mask(attention_mask)
        return input_ids, token_type_ids, mask

    # ---- forward ----------------------------------------------------------------------------
    def encode(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """The encoder alone (what fine-tuning builds on).

        Returns:
            ``(hidden (batch, seq, d_model), pooled (batch, d_model), attentions)`` where
            attentions is a tuple of ``(batch, heads, seq, seq)``, one per layer, or None.
        """
        input_ids, token_type_ids, mask = self._check_inputs(input_ids, token_type_ids, attention_mask)
        x = self.embeddings(input_ids, token_type_ids)
        attentions = [] if output_attentions else None
        for layer in self.layers:
            x, weights = layer(x, mask, need_weights=output_attentions)
            if output_attentions:
                attentions.append(weights)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        return x, pooled, tuple(attentions) if output_attentions else None

    def mlm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Masked-LM scores from hidden states: ``(..., d_model)`` -> ``(..., vocab)``."""
        return self.mlm_decoder(self.mlm_norm(self.mlm_activation(self.mlm_transform(hidden))))

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *,
        output_attentions: bool = False,
        masked_positions: torch.Tensor | None = None,
    ) -> BertOutput:
        """MLM and NSP logits; see the class docstring for the inputs.

        Args:
            output_attentions: also return every layer's attention weights (computed with the
                course's own attention instead of the fused kernel: slower, for pictures).
            masked_positions: optional boolean ``(batch, seq)``; the MLM head then scores only
                those positions and ``prediction_logits`` is ``(n_selected, vocab)`` in row-major
                order of the selected positions. Training needs no more (the loss counts masked
                positions only) and skips a ``(batch, seq, vocab)`` matrix product.
        """
        hidden, pooled, attentions = self.encode(
            input_ids, token_type_ids, attention_mask, output_attentions=output_attentions
        )
        if masked_positions is not None:
            if (
                not isinstance(masked_positions, torch.Tensor)
                or masked_positions.dtype != torch.bool
                or masked_positions.shape != input_ids.shape
            ):
                raise ValueError(
                    "Bert expected masked_positions as a boolean tensor of the shape of input_ids "
                    f"{tuple(input_ids.shape)} (e.g. labels != -100)"
                )
            mlm_logits = self.mlm_head(hidden[masked_positions])
        else:
            mlm_logits = self.mlm_head(hidden)
        return BertOutput(mlm_logits, self.nsp_head(pooled), hidden, pooled, attentions)

    # ---- Hugging Face (course_lib.interop) --------------------------------------------------
    @classmethod
    def from_hf(cls, hf_model: Any) -> Bert:
        """A ``Bert`` with a copy of a ``transformers.BertForPreTraining``'s weights (``interop.bert_from_hf``)."""
        from course_lib.interop import bert_from_hf

        return bert_from_hf(hf_model)

    def to_hf(self) -> Any:
        """A ``transformers.BertForPreTraining`` with a copy of these weights (``interop.bert_to_hf``)."""
        from course_lib.interop import bert_to_hf

        return bert_to_hf(self)


# ---- initialisation ---------------------------------------------------------------------------
def neighbour_heads_init(model: Bert, *, layer: int = 0, boost: float = 1.6) -> Bert:
    """Start a fresh BERT with one head looking at the previous token and one at the next.

    Why: at a [MASK] position the token itself says nothing, so a BERT learns nothing beyond word
    frequencies (and the topic, from attention spread evenly) until some head has learned to look at
    the *neighbouring* positions. With random learned positions that takes small models thousands of
    steps: the masked-LM loss sits on a plateau at the unigram level. GPT has no such plateau, because
    its position t sees its own token, whose successor the bigram statistics already predict.

    How (an initialisation only; the architecture, and so the equality with Hugging Face, is
    unchanged): the position embeddings start as sines and cosines ``p_i = (sin(w_k i), cos(w_k i))_k``
    with the ``d_model / 2`` frequencies ``w_k = pi (k + 1/2) / (d_model / 2)``, which make any two
    different positions orthogonal; shifting a position by one is then a rotation ``R`` of each
    (sin, cos) pair, ``p_{i-1} = R p_i``. In ``layer``, head 0 gets ``W_k = W_q R^T`` so that its
    score ``q_i . k_j`` is largest at ``j = i - 1``, and head 1 ``W_k = W_q R`` (``j = i + 1``); their
    query weights are scaled by ``boost`` so that the neighbour stands out from the other positions.
    The position embeddings get the spread of the token embeddings (``initializer_range * sqrt(2)``
    per entry), so neither drowns the other in the embedding LayerNorm.

    The match is approximate (a head sees a ``d_head``-dimensional projection of the positions, and
    the tokens add noise): with ``d_model=128``, 4 heads and ``initializer_range=0.08`` (the shipped
    recipe) the neighbour gets about a quarter of the head's attention at the start, 16 times the
    uniform share over 64 positions; heads narrower than 32 dimensions get much less.

    Args:
        model: a freshly initialised ``Bert`` with at least 2 heads and an even ``d_model``.
        layer: which layer's heads 0 and 1 to set.
        boost: factor on those heads' query (and so key) weights.

    Returns:
        ``model``, changed in place.
    """
    if not isinstance(model, Bert):
        raise TypeError(f"neighbour_heads_init expected a course_lib.bert.Bert, got {type(model).__name__}")
    config = model.config
    if config.num_heads < 2 or config.d_model % 2:
        raise ValueError(
            "neighbour_heads_init needs at least 2 heads and an even d_model, got "
            f"num_heads={config.num_heads}, d_model={config.d_model}"
        )
    if not 0 <= layer < config.num_layers:
        raise ValueError(f"neighbour_heads_init: layer {layer} of a model with {config.num_layers} layers")
    d, half = config.d_model, config.d_model // 2
    positions = torch.arange(config.max_len, dtype=torch.float64)[:, None]
    omega = math.pi * (torch.arange(half, dtype=torch.float64) + 0.5) / half
    table = torch.zeros(config.max_len, d, dtype=torch.float64)
    table[:, 0::2] = torch.sin(positions * omega)
    table[:, 1::2] = torch.cos(positions * omega)
    shift = torch.zeros(d, d, dtype=torch.float64)  # p_{i-1} = shift @ p_i
    cos, sin = torch.cos(omega), torch.sin(omega)
    even, odd = torch.arange(0, d, 2), torch.arange(1, d, 2)
    shift[even, even], shift[even, odd], shift[odd, odd], shift[odd, even] = cos, -sin, cos, sin
    attention = model.layers[layer].attention
    d_head = d // config.num_heads
    with torch.no_grad():
        model.embeddings.position.weight.copy_(table * config.initializer_range * math.sqrt(2))
        for head, rotation in ((0, shift), (1, shift.T)):  # previous token, next token
            rows = slice(head * d_head, (head + 1) * d_head)
            query = attention.q_proj.weight[rows].double() * boost
            attention.q_proj.weight[rows] = query.float()
            attention.k_proj.weight[rows] = (query @ rotation.T).float()
    return model


@torch.no_grad()
def fill_mask(model: Bert, tokenizer, text: str, *, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """The model's top guesses for each ``[MASK]`` in ``text``.

    Args:
        model: a ``Bert``.
        tokenizer: its tokenizer.
        text: a sentence with one or more ``[MASK]`` (or ``text_a [SEP] text_b`` is not parsed: one text).
        top_k: guesses per mask.

    Returns:
        One list per ``[MASK]``, in order, of ``(token, probability)`` best first.

    Built in notebook 09, section 8.
    """
    validate.bert_tokenizer(tokenizer, "fill_mask")
    if not isinstance(text, str):
        raise TypeError(f"fill_mask expected a str, got {type(text).__name__}")
    if tokenizer.mask_token not in text:
        raise ValueError(f"fill_mask: put at least one {tokenizer.mask_token} in the text, got {text!r}")
    validate.positive_int(top_k, "top_k", "fill_mask")
    device = next(model.parameters()).device
    enc = tokenizer(text, truncation=True, max_length=model.config.max_len, return_tensors="pt")
    ids = enc["input_ids"].to(device)
    with validate.eval_mode(model):
        out = model(ids, enc["token_type_ids"].to(device), enc["attention_mask"].to(device))
    probs = out.prediction_logits[0].float().softmax(-1)
    results = []
    for position in (ids[0] == tokenizer.mask_token_id).nonzero().flatten().tolist():
        p, idx = probs[position].topk(min(top_k, probs.shape[-1]))
        results.append([(tokenizer.convert_ids_to_tokens(int(i)), float(v)) for v, i in zip(p, idx)])
    return results
