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

The rest of the module turns documents into pretraining batches (``PretrainingBatches``: sentence
pairs from ``course_lib.objectives.make_nsp_pairs``, tokenised ``[CLS] A [SEP] B [SEP]``, masked
80/10/10 with ``course_lib.objectives.mask_tokens``), gives the loss for ``course_lib.train.Trainer``
(``pretraining_loss``), scores a model (``evaluate_pretraining``), fills in ``[MASK]`` tokens
(``fill_mask``) and loads the checkpoint the course ships (``load_pretrained``).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import MultiHeadAttention, padding_mask
from course_lib.objectives import IGNORE_INDEX, make_nsp_pairs, mask_tokens, mlm_loss, nsp_loss

__all__ = [
    "ACTIVATIONS",
    "BertConfig",
    "BertOutput",
    "BertEmbeddings",
    "BertLayer",
    "Bert",
    "neighbour_heads_init",
    "encode_pairs",
    "pack_segments",
    "PretrainingBatches",
    "pretraining_loss",
    "evaluate_pretraining",
    "fill_mask",
    "save_pretrained",
    "load_pretrained",
    "CHECKPOINT_DIR",
]

CHECKPOINT_DIR = "bert"  # under the course's assets/ folder


class _QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``, the activation Hugging Face calls ``quick_gelu``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


# The values of BertConfig.hidden_act that the course supports, as module factories. "gelu" is
# the exact GELU x * Phi(x) (with erf), BERT's own; the "gelu_new" family is the tanh approximation.
ACTIVATIONS = {
    "gelu": lambda: nn.GELU(),
    "gelu_python": lambda: nn.GELU(),
    "gelu_new": lambda: nn.GELU(approximate="tanh"),
    "gelu_pytorch_tanh": lambda: nn.GELU(approximate="tanh"),
    "gelu_fast": lambda: nn.GELU(approximate="tanh"),
    "relu": lambda: nn.ReLU(),
    "silu": lambda: nn.SiLU(),
    "swish": lambda: nn.SiLU(),
    "tanh": lambda: nn.Tanh(),
    "quick_gelu": lambda: _QuickGELU(),
}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(
            f"activation {name!r} is not supported by course_lib.bert; use one of {sorted(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]()


# ---- configuration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class BertConfig:
    """The shape of a BERT model. Names follow the course; ``to_hf`` / ``from_hf`` translate.

    Attributes:
        vocab_size: number of token ids (HF ``vocab_size``).
        d_model: width of every position's vector (HF ``hidden_size``).
        num_layers: encoder blocks (HF ``num_hidden_layers``).
        num_heads: attention heads per block; must divide ``d_model`` (HF ``num_attention_heads``).
        d_ff: width of the feed-forward layer, default ``4 * d_model`` (HF ``intermediate_size``).
        max_len: the longest sequence, i.e. number of learned positions (HF ``max_position_embeddings``).
        type_vocab_size: number of segments (2: sentence A and sentence B).
        activation: feed-forward and MLM-head activation, a key of ``ACTIVATIONS`` (HF ``hidden_act``).
        layer_norm_eps: the epsilon of every LayerNorm (BERT's 1e-12).
        dropout: dropout on embeddings and on each block's two residual branches (HF ``hidden_dropout_prob``).
        attention_dropout: dropout on the attention weights (HF ``attention_probs_dropout_prob``).
        pad_token_id: the padding id; its embedding gets no gradient from lookups (None: no such id).
        tie_word_embeddings: the MLM decoder shares the token-embedding matrix.
        initializer_range: standard deviation of the normal initialisation of weights.
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
    tie_word_embeddings: bool = True
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", 4 * self.d_model)
        for name in ("vocab_size", "d_model", "num_layers", "num_heads", "d_ff", "max_len", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BertConfig expected a positive int {name}, got {value!r}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"BertConfig: d_model={self.d_model} must be divisible by num_heads={self.num_heads}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"BertConfig: activation {self.activation!r} is not supported; use one of "
                f"{sorted(ACTIVATIONS)}"
            )
        for name in ("dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"BertConfig expected 0 <= {name} < 1, got {getattr(self, name)}")
        if not self.layer_norm_eps > 0 or not self.initializer_range > 0:
            raise ValueError("BertConfig expected layer_norm_eps > 0 and initializer_range > 0")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"BertConfig: pad_token_id {self.pad_token_id} is outside the vocabulary [0, {self.vocab_size})"
            )

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

    def to_hf(self):
        """The equivalent ``transformers.BertConfig``."""
        from transformers import BertConfig as HFBertConfig

        return HFBertConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.d_model,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            intermediate_size=self.d_ff,
            max_position_embeddings=self.max_len,
            type_vocab_size=self.type_vocab_size,
            hidden_act=self.activation,
            layer_norm_eps=self.layer_norm_eps,
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.attention_dropout,
            pad_token_id=self.pad_token_id,
            tie_word_embeddings=self.tie_word_embeddings,
            initializer_range=self.initializer_range,
        )

    @classmethod
    def from_hf(cls, hf_config) -> BertConfig:
        """Translate a ``transformers.BertConfig``; raise ``ValueError`` for what the course lacks."""
        if getattr(hf_config, "model_type", None) != "bert":
            raise TypeError(
                f"BertConfig.from_hf expected a transformers BertConfig, got {type(hf_config).__name__}"
            )
        if getattr(hf_config, "is_decoder", False) or getattr(hf_config, "add_cross_attention", False):
            raise ValueError("course_lib.bert is an encoder: is_decoder / add_cross_attention are not supported")
        position_kind = getattr(hf_config, "position_embedding_type", "absolute") or "absolute"
        if position_kind != "absolute":
            raise ValueError(
                f"course_lib.bert has learned absolute positions only, got position_embedding_type={position_kind!r}"
            )
        act = hf_config.hidden_act
        if not isinstance(act, str) or act not in ACTIVATIONS:
            raise ValueError(
                f"hidden_act {act!r} is not supported by course_lib.bert; use one of {sorted(ACTIVATIONS)}"
            )
        return cls(
            vocab_size=hf_config.vocab_size,
            d_model=hf_config.hidden_size,
            num_layers=hf_config.num_hidden_layers,
            num_heads=hf_config.num_attention_heads,
            d_ff=hf_config.intermediate_size,
            max_len=hf_config.max_position_embeddings,
            type_vocab_size=hf_config.type_vocab_size,
            activation=act,
            layer_norm_eps=float(hf_config.layer_norm_eps),
            dropout=float(hf_config.hidden_dropout_prob),
            attention_dropout=float(hf_config.attention_probs_dropout_prob),
            pad_token_id=hf_config.pad_token_id,
            tie_word_embeddings=bool(getattr(hf_config, "tie_word_embeddings", True)),
            initializer_range=float(hf_config.initializer_range),
        )


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

    ``x = LN(x + Dropout(MHA(x)))`` then ``x = LN(x + Dropout(ff_out(act(ff_in(x)))))``.
    ``forward(x (batch, seq, d_model), mask (batch, 1, 1, seq) bool or None, need_weights)``
    returns ``(x, weights (batch, heads, seq, seq) or None)``.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(
            config.d_model, config.num_heads, dropout=config.attention_dropout
        )
        self.attention_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.ff_in = nn.Linear(config.d_model, config.d_ff)
        self.activation = _activation(config.activation)
        self.ff_out = nn.Linear(config.d_ff, config.d_model)
        self.ff_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(x, mask=mask, need_weights=need_weights)
        x = self.attention_norm(x + self.dropout(attended))
        x = self.ff_norm(x + self.dropout(self.ff_out(self.activation(self.ff_in(x)))))
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
        self.mlm_activation = _activation(config.activation)
        self.mlm_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.mlm_decoder = nn.Linear(config.d_model, config.vocab_size)
        self.nsp_head = nn.Linear(config.d_model, 2)
        self.apply(self._init_weights)
        if config.tie_word_embeddings:
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
        if not isinstance(input_ids, torch.Tensor) or input_ids.is_floating_point() or input_ids.dtype == torch.bool:
            raise TypeError(
                "Bert expected input_ids as an integer tensor (batch, seq), got "
                + (f"dtype {input_ids.dtype}" if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__)
            )
        if input_ids.dim() != 2:
            raise ValueError(
                f"Bert expected input_ids of shape (batch, seq), got {tuple(input_ids.shape)}; "
                "for one sequence use input_ids.unsqueeze(0)"
            )
        batch, seq = input_ids.shape
        if not 1 <= seq <= c.max_len:
            raise ValueError(
                f"Bert: sequences of length {seq} do not fit: the model has {c.max_len} positions "
                "(truncate the input, e.g. tokenizer(..., truncation=True, max_length=...))"
            )
        if input_ids.min() < 0 or input_ids.max() >= c.vocab_size:
            raise ValueError(
                f"Bert: token ids must lie in [0, {c.vocab_size}), got values from "
                f"{int(input_ids.min())} to {int(input_ids.max())}: does the tokenizer match the model?"
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
        return token_type_ids, mask

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
        token_type_ids, mask = self._check_inputs(input_ids, token_type_ids, attention_mask)
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

    # ---- Hugging Face ------------------------------------------------------------------------
    def _hf_names(self) -> list[tuple[str, str]]:
        """Pairs (our state_dict name, HF BertForPreTraining state_dict name)."""
        pairs = [
            ("embeddings.word.weight", "bert.embeddings.word_embeddings.weight"),
            ("embeddings.position.weight", "bert.embeddings.position_embeddings.weight"),
            ("embeddings.token_type.weight", "bert.embeddings.token_type_embeddings.weight"),
            ("embeddings.norm.weight", "bert.embeddings.LayerNorm.weight"),
            ("embeddings.norm.bias", "bert.embeddings.LayerNorm.bias"),
        ]
        for i in range(self.config.num_layers):
            ours, theirs = f"layers.{i}.", f"bert.encoder.layer.{i}."
            for a, b in [
                ("attention.q_proj", "attention.self.query"),
                ("attention.k_proj", "attention.self.key"),
                ("attention.v_proj", "attention.self.value"),
                ("attention.out_proj", "attention.output.dense"),
                ("attention_norm", "attention.output.LayerNorm"),
                ("ff_in", "intermediate.dense"),
                ("ff_out", "output.dense"),
                ("ff_norm", "output.LayerNorm"),
            ]:
                for p in ("weight", "bias"):
                    pairs.append((f"{ours}{a}.{p}", f"{theirs}{b}.{p}"))
        for a, b in [
            ("pooler", "bert.pooler.dense"),
            ("mlm_transform", "cls.predictions.transform.dense"),
            ("mlm_norm", "cls.predictions.transform.LayerNorm"),
            ("nsp_head", "cls.seq_relationship"),
        ]:
            for p in ("weight", "bias"):
                pairs.append((f"{a}.{p}", f"{b}.{p}"))
        pairs.append(("mlm_decoder.bias", "cls.predictions.decoder.bias"))
        if not self.config.tie_word_embeddings:
            pairs.append(("mlm_decoder.weight", "cls.predictions.decoder.weight"))
        return pairs

    @classmethod
    def from_hf(cls, hf_model) -> Bert:
        """A ``Bert`` holding a copy of a ``transformers.BertForPreTraining``'s weights.

        The two give the same MLM and NSP logits (on every non-padding position) in eval mode.
        Raises ``TypeError`` for another kind of model and ``ValueError`` for a configuration the
        course does not implement (a decoder, relative positions, an unknown activation).
        """
        try:
            from transformers import BertForPreTraining
        except ImportError as error:  # pragma: no cover - transformers is in requirements.txt
            raise ImportError("Bert.from_hf needs the `transformers` package") from error
        if not isinstance(hf_model, BertForPreTraining):
            raise TypeError(
                f"Bert.from_hf expected a transformers.BertForPreTraining, got {type(hf_model).__name__}"
            )
        config = BertConfig.from_hf(hf_model.config)
        decoder = hf_model.cls.predictions.decoder
        tied = decoder.weight.data_ptr() == hf_model.bert.embeddings.word_embeddings.weight.data_ptr()
        if config.tie_word_embeddings != tied:
            config = BertConfig.from_dict({**config.to_dict(), "tie_word_embeddings": tied})
        reference = next(hf_model.parameters())
        model = cls(config).to(device=reference.device, dtype=reference.dtype)
        theirs = hf_model.state_dict()
        ours = {name: theirs[hf_name] for name, hf_name in model._hf_names()}
        if tied:
            ours["mlm_decoder.weight"] = ours["embeddings.word.weight"]
        model.load_state_dict(ours, strict=True)
        model.train(hf_model.training)
        return model

    def to_hf(self):
        """A ``transformers.BertForPreTraining`` with a copy of these weights (SDPA attention)."""
        from transformers import BertForPreTraining

        reference = next(self.parameters())
        hf_model = BertForPreTraining(self.config.to_hf()).to(device=reference.device, dtype=reference.dtype)
        ours = self.state_dict()
        theirs = {hf_name: ours[name].detach().clone() for name, hf_name in self._hf_names()}
        theirs["cls.predictions.bias"] = theirs["cls.predictions.decoder.bias"]
        if self.config.tie_word_embeddings:
            theirs["cls.predictions.decoder.weight"] = theirs["bert.embeddings.word_embeddings.weight"]
        missing, unexpected = hf_model.load_state_dict(theirs, strict=False)
        if missing or unexpected:  # pragma: no cover - a transformers version with other names
            raise RuntimeError(
                f"to_hf: this transformers version names BERT's weights differently "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
        hf_model.tie_weights()
        hf_model.train(self.training)
        return hf_model


# ---- data -------------------------------------------------------------------------------------
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


def _special_ids(tokenizer) -> list[int]:
    return sorted({int(i) for i in tokenizer.all_special_ids})


def _check_tokenizer(tokenizer, caller: str) -> None:
    for name in ("cls_token_id", "sep_token_id", "mask_token_id", "pad_token_id"):
        if getattr(tokenizer, name, None) is None:
            raise ValueError(
                f"{caller} needs a BERT tokenizer with [CLS], [SEP], [MASK] and [PAD] "
                f"(e.g. course_lib.tokenizers.course_wordpiece_tokenizer()); this one has no {name}"
            )


def encode_pairs(
    tokenizer, pairs: Sequence[tuple[str, str, int]], *, max_len: int = 128
) -> dict[str, torch.Tensor]:
    """Tokenise sentence pairs as ``[CLS] A [SEP] B [SEP]``, padded to the longest pair.

    Args:
        tokenizer: a BERT tokenizer (``transformers.PreTrainedTokenizerFast``) whose pair template
            adds [CLS]/[SEP] and ``token_type_ids``.
        pairs: ``(sentence_a, sentence_b, label)`` as from ``make_nsp_pairs``; label 0 = B follows A.
        max_len: longer pairs are truncated, the longer sentence first.

    Returns:
        ``{"input_ids", "token_type_ids", "attention_mask"}`` each ``(n, seq)`` with ``seq <= max_len``,
        and ``"next_sentence_label"`` ``(n,)``.
    """
    _check_tokenizer(tokenizer, "encode_pairs")
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence) or not pairs:
        raise ValueError("encode_pairs expected a non-empty list of (sentence_a, sentence_b, label)")
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 3 and isinstance(pair[0], str)
                and isinstance(pair[1], str) and pair[2] in (0, 1)):
            raise ValueError(
                f"encode_pairs: pair {i} is {pair!r}; expected (sentence_a: str, sentence_b: str, label 0 or 1)"
            )
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 5:
        raise ValueError(f"encode_pairs expected an int max_len >= 5, got {max_len!r}")
    enc = tokenizer(
        [a for a, _, _ in pairs],
        [b for _, b, _ in pairs],
        truncation="longest_first",
        max_length=max_len,
        padding="longest",
        return_tensors="pt",
        return_token_type_ids=True,
        return_attention_mask=True,
    )
    return {
        "input_ids": enc["input_ids"],
        "token_type_ids": enc["token_type_ids"],
        "attention_mask": enc["attention_mask"],
        "next_sentence_label": torch.tensor([label for _, _, label in pairs], dtype=torch.long),
    }


def _as_sentence_lists(documents) -> list[list[str]]:
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise TypeError("expected a list of documents (course_lib.data.Document or lists of sentences)")
    out = []
    for doc in documents:
        sentences = getattr(doc, "sentences", doc)
        if isinstance(sentences, str) or not isinstance(sentences, Sequence):
            raise TypeError(
                f"each document must be a course_lib.data.Document or a list of sentences, got {type(doc).__name__}"
            )
        out.append(list(sentences))
    return out


def pack_segments(documents, tokenizer, max_tokens: int) -> list[list[str]]:
    """Group each document's consecutive sentences into segments of at most ``max_tokens`` tokens.

    BERT's "sentences" A and B are really spans of text: consecutive sentences packed up to a
    length, so a pair fills the model's input and carries enough words to tell a continuation
    from a random span. A sentence longer than ``max_tokens`` forms a segment alone (it is
    truncated later).

    Args:
        documents: ``course_lib.data.Document`` objects or lists of sentences.
        tokenizer: the tokenizer that will encode the segments (lengths are counted with it).
        max_tokens: the longest segment, in tokens without [CLS]/[SEP].

    Returns:
        One list of segments (str) per document, in order; use it as ``make_nsp_pairs``'s documents.
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"pack_segments expected a positive int max_tokens, got {max_tokens!r}")
    packed = []
    for sentences in _as_sentence_lists(documents):
        sentences = [s for s in sentences if isinstance(s, str) and s.strip()]
        lengths = (
            [len(ids) for ids in tokenizer(sentences, add_special_tokens=False)["input_ids"]]
            if sentences else []
        )
        segments, current, size = [], [], 0
        for sentence, length in zip(sentences, lengths):
            if current and size + length > max_tokens:
                segments.append(" ".join(current))
                current, size = [], 0
            current.append(sentence)
            size += length
        if current:
            segments.append(" ".join(current))
        packed.append(segments)
    return packed


class PretrainingBatches:
    """BERT pretraining batches from documents: NSP pairs, tokenised, masked 80/10/10.

    Each pass (epoch) draws new sentence pairs (``make_nsp_pairs`` with seed ``seed + epoch``), new
    batch order and new masks (*dynamic masking*, as RoBERTa does), so the model seldom sees the same
    example twice. With ``fixed=True`` every pass yields exactly the same batches: use it for
    evaluation on held-out documents.

    Args:
        documents: ``course_lib.data.Document`` objects (or lists of sentences).
        tokenizer: a BERT tokenizer (see ``encode_pairs``).
        batch_size: pairs per batch.
        max_len: the longest tokenised pair.
        mlm_probability: the share of tokens selected for the MLM loss.
        seed: pairs, order and masks are reproducible from it.
        fixed: the same batches on every pass (evaluation).
        max_pairs: use at most this many pairs per pass (a quick evaluation sample).
        segment_tokens: None: A and B are single sentences; an int: A and B are spans of
            consecutive sentences of up to that many tokens (``pack_segments``), as in BERT.

    Each batch is a dict of tensors: ``input_ids`` (masked), ``token_type_ids``, ``attention_mask``,
    ``labels`` (original ids at selected positions, -100 elsewhere), all ``(batch, seq)``, and
    ``next_sentence_label`` ``(batch,)``.
    """

    def __init__(
        self,
        documents,
        tokenizer,
        *,
        batch_size: int = 32,
        max_len: int = 128,
        mlm_probability: float = 0.15,
        seed: int = 0,
        fixed: bool = False,
        max_pairs: int | None = None,
        segment_tokens: int | None = None,
    ) -> None:
        _check_tokenizer(tokenizer, "PretrainingBatches")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"PretrainingBatches expected a positive int batch_size, got {batch_size!r}")
        if max_pairs is not None and (not isinstance(max_pairs, int) or max_pairs < 1):
            raise ValueError(f"PretrainingBatches expected max_pairs to be a positive int or None, got {max_pairs!r}")
        self.documents = (
            _as_sentence_lists(documents) if segment_tokens is None
            else pack_segments(documents, tokenizer, segment_tokens)
        )
        self.segment_tokens = segment_tokens
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_len = max_len
        self.mlm_probability = mlm_probability
        self.seed = seed
        self.fixed = fixed
        self.max_pairs = max_pairs
        self.epoch = 0
        self.special_ids = _special_ids(tokenizer)
        self.vocab_size = len(tokenizer)
        # The number of pairs is the same every pass (one per adjacent sentence pair).
        self._num_pairs = len(make_nsp_pairs(self.documents, seed=seed))
        if max_pairs is not None:
            self._num_pairs = min(self._num_pairs, max_pairs)

    def __len__(self) -> int:
        return math.ceil(self._num_pairs / self.batch_size)

    def pairs(self, epoch: int = 0) -> list[tuple[str, str, int]]:
        """The shuffled sentence pairs of a pass."""
        seed = self.seed + (0 if self.fixed else epoch)
        pairs = make_nsp_pairs(self.documents, seed=seed)
        random.Random(seed).shuffle(pairs)
        return pairs[: self._num_pairs]

    def _batches_of_pairs(self, pairs: list, rng: random.Random) -> list[list]:
        """Cut shuffled pairs into batches of similar length, in random order.

        Within each window of 50 batches the pairs are sorted by length, so a batch is padded to
        a length close to that of its pairs (about a third less computation than random batches).
        """
        size = self.batch_size
        window = 50 * size
        batches = []
        for start in range(0, len(pairs), window):
            chunk = sorted(pairs[start:start + window], key=lambda p: len(p[0]) + len(p[1]))
            batches += [chunk[i:i + size] for i in range(0, len(chunk), size)]
        rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        epoch = self.epoch
        if not self.fixed:
            self.epoch += 1
        seed = self.seed * 1_000_003 + (0 if self.fixed else epoch)
        batches = self._batches_of_pairs(self.pairs(epoch), random.Random(seed))
        generator = torch.Generator().manual_seed(seed)
        for pairs in batches:
            batch = encode_pairs(self.tokenizer, pairs, max_len=self.max_len)
            batch["input_ids"], batch["labels"] = mask_tokens(
                batch["input_ids"],
                mask_token_id=self.tokenizer.mask_token_id,
                vocab_size=self.vocab_size,
                special_token_ids=self.special_ids,
                mlm_probability=self.mlm_probability,
                generator=generator,
            )
            yield batch


def pretraining_loss(model: Bert, batch: Mapping[str, torch.Tensor], *, nsp_weight: float = 1.0):
    """BERT's pretraining loss for ``course_lib.train.Trainer``: MLM + ``nsp_weight`` x NSP.

    The MLM head scores only the selected positions (``labels != -100``). Returns
    ``{"loss", "mlm_loss", "nsp_loss"}`` (0-dim tensors); with ``nsp_weight=0`` the NSP loss is
    still logged but does not train the model (the RoBERTa ablation).
    """
    selected = batch["labels"] != IGNORE_INDEX
    out = model(
        batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], masked_positions=selected
    )
    mlm = mlm_loss(out.prediction_logits, batch["labels"][selected])
    nsp = nsp_loss(out.seq_relationship_logits, batch["next_sentence_label"])
    loss = mlm + nsp_weight * nsp if nsp_weight else mlm
    return {"loss": loss, "mlm_loss": mlm.detach(), "nsp_loss": nsp.detach()}


@torch.no_grad()
def evaluate_pretraining(model: Bert, batches, *, device: torch.device | str | None = None) -> dict[str, float]:
    """MLM and NSP scores of ``model`` on ``batches`` (e.g. ``PretrainingBatches(..., fixed=True)``).

    Returns:
        ``{"mlm_accuracy", "nsp_accuracy", "mlm_loss", "nsp_loss", "masked_tokens", "pairs"}``:
        top-1 accuracy over every selected position (the 80% [MASK], 10% random and 10% unchanged,
        as BERT reports it), NSP accuracy over pairs, the mean losses, and the counts.
        Also ``"mlm_accuracy_mask"``, ``"..._random"``, ``"..._unchanged"``: accuracy on each kind.
    """
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    totals = {"correct": 0, "masked": 0, "nsp_correct": 0, "pairs": 0, "mlm_nll": 0.0, "nsp_nll": 0.0}
    kinds = {"mask": [0, 0], "random": [0, 0], "unchanged": [0, 0]}
    mask_id = None
    try:
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            selected = batch["labels"] != IGNORE_INDEX
            out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                        masked_positions=selected)
            targets = batch["labels"][selected]
            logits = out.prediction_logits.float()
            hit = logits.argmax(-1) == targets
            totals["correct"] += int(hit.sum())
            totals["masked"] += int(selected.sum())
            totals["mlm_nll"] += float(F.cross_entropy(logits, targets, reduction="sum")) if len(targets) else 0.0
            nsp_logits = out.seq_relationship_logits.float()
            labels = batch["next_sentence_label"]
            totals["nsp_correct"] += int((nsp_logits.argmax(-1) == labels).sum())
            totals["pairs"] += len(labels)
            totals["nsp_nll"] += float(F.cross_entropy(nsp_logits, labels, reduction="sum"))
            shown = batch["input_ids"][selected]
            if mask_id is None and hasattr(batches, "tokenizer"):
                mask_id = batches.tokenizer.mask_token_id
            if mask_id is not None:
                for kind, where in (
                    ("mask", shown == mask_id),
                    ("unchanged", shown == targets),
                    ("random", (shown != mask_id) & (shown != targets)),
                ):
                    kinds[kind][0] += int(hit[where].sum())
                    kinds[kind][1] += int(where.sum())
    finally:
        model.train(was_training)
    if totals["masked"] == 0 or totals["pairs"] == 0:
        raise ValueError("evaluate_pretraining: the batches hold no masked token or no pair")
    result = {
        "mlm_accuracy": totals["correct"] / totals["masked"],
        "nsp_accuracy": totals["nsp_correct"] / totals["pairs"],
        "mlm_loss": totals["mlm_nll"] / totals["masked"],
        "nsp_loss": totals["nsp_nll"] / totals["pairs"],
        "masked_tokens": totals["masked"],
        "pairs": totals["pairs"],
    }
    for kind, (hits, count) in kinds.items():
        if count:
            result[f"mlm_accuracy_{kind}"] = hits / count
    return result


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
    """
    _check_tokenizer(tokenizer, "fill_mask")
    if not isinstance(text, str):
        raise TypeError(f"fill_mask expected a str, got {type(text).__name__}")
    if tokenizer.mask_token not in text:
        raise ValueError(f"fill_mask: put at least one {tokenizer.mask_token} in the text, got {text!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"fill_mask expected a positive int top_k, got {top_k!r}")
    device = next(model.parameters()).device
    enc = tokenizer(text, truncation=True, max_length=model.config.max_len, return_tensors="pt")
    ids = enc["input_ids"].to(device)
    was_training = model.training
    model.eval()
    try:
        out = model(ids, enc["token_type_ids"].to(device), enc["attention_mask"].to(device))
    finally:
        model.train(was_training)
    probs = out.prediction_logits[0].float().softmax(-1)
    results = []
    for position in (ids[0] == tokenizer.mask_token_id).nonzero().flatten().tolist():
        p, idx = probs[position].topk(min(top_k, probs.shape[-1]))
        results.append([(tokenizer.convert_ids_to_tokens(int(i)), float(v)) for v, i in zip(p, idx)])
    return results


# ---- the shipped checkpoint --------------------------------------------------------------------
def save_pretrained(model: Bert, tokenizer, folder: str | Path, *, settings: Mapping[str, Any] | None = None,
                    half: bool = True) -> Path:
    """Write ``model.safetensors`` (config and settings as metadata) and the tokenizer to ``folder``.

    The tokenizer is written by ``tokenizer.save_pretrained`` (``tokenizer.json`` and
    ``tokenizer_config.json``), so ``transformers.AutoTokenizer.from_pretrained(folder)`` reads it too.

    ``half=True`` stores float16 weights (half the size); ``load_pretrained`` casts them back.
    """
    from course_lib.checkpoint import save_weights

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:  # keep the tie visible to save_weights: one tensor, two names
        state["mlm_decoder.weight"] = state["embeddings.word.weight"]
    metadata = {"config": model.config.to_dict(), "settings": dict(settings or {}),
                "dtype": "float16" if half else "float32"}
    path = save_weights(state, folder / "model.safetensors", metadata=metadata)
    tokenizer.save_pretrained(str(folder))
    return path


def load_pretrained(folder: str | Path | None = None, *, device: torch.device | str = "cpu"):
    """Load a checkpoint written by ``save_pretrained`` (default: the course's ``assets/bert``), strictly.

    Returns:
        ``(model, tokenizer, metadata)``: the ``Bert`` in eval mode, float32, on ``device``; its
        tokenizer (``transformers.PreTrainedTokenizerFast``); the saved config and settings.
    """
    from course_lib.checkpoint import asset_path, load_weights, read_metadata

    folder = asset_path(CHECKPOINT_DIR) if folder is None else Path(folder)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(
            f"no model.safetensors in the BERT checkpoint folder {folder.name!r}; rebuild it with "
            "`python -m course_lib.pretrain bert`"
        )
    metadata = json.loads(read_metadata(weights)["user"])
    model = Bert(BertConfig.from_dict(metadata["config"]))
    load_weights(model, weights)
    model = model.float().to(device).eval()
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
    return model, tokenizer, metadata
