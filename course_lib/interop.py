"""Moving weights between the course's models and Hugging Face's (and PyTorch's attention).

The course's modules use the course's names (``d_model``, ``num_layers``, ``attention``,
``feed_forward``...); Hugging Face's use the original papers' (``n_embd``, ``c_attn``, ``intermediate``...).
Everything that knows Hugging Face's names lives here, as tables read in both directions:

- a **config table** ``(course name, HF name)`` per model;
- a **weight table** ``(course name, HF name, how)`` per model, where ``how`` is ``"copy"``, or
  ``"conv1d"`` for GPT-2's ``Conv1D`` layers, which keep their weights as ``(in, out)`` where
  ``nn.Linear`` keeps ``(out, in)`` (a transpose), or ``"qkv"`` for GPT-2's fused ``c_attn``
  (queries, keys and values side by side, cut into ``q_proj``, ``k_proj``, ``v_proj``).

    from course_lib import interop
    ours = interop.gpt_from_hf(hf_gpt2)          # also GPT.from_hf(hf_gpt2)
    theirs = interop.bert_to_hf(our_bert)        # also our_bert.to_hf()

Given the same input, both sides compute the same logits (within 1e-5 in float32). Also
``mha_from_torch`` / ``mha_to_torch`` for ``torch.nn.MultiheadAttention`` (``in_proj_weight`` is the
three input projections stacked).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from course_lib.attention import MultiHeadAttention
from course_lib.bert import Bert, BertConfig
from course_lib.gpt import GPT, GPTConfig
from course_lib.transformer import ACTIVATIONS

__all__ = [
    "GPT2_CONFIG",
    "BERT_CONFIG",
    "gpt_weight_table",
    "bert_weight_table",
    "gpt_config_to_hf",
    "gpt_config_from_hf",
    "gpt_from_hf",
    "gpt_to_hf",
    "bert_config_to_hf",
    "bert_config_from_hf",
    "bert_from_hf",
    "bert_to_hf",
    "bert_classifier_encoder_table",
    "bert_encoder_to_hf",
    "bert_encoder_from_hf",
    "mha_from_torch",
    "mha_to_torch",
]

# ---- the tables -------------------------------------------------------------------------------
# (course GPTConfig field, transformers.GPT2Config field)
GPT2_CONFIG: tuple[tuple[str, str], ...] = (
    ("vocab_size", "vocab_size"),
    ("max_len", "n_positions"),
    ("d_model", "n_embd"),
    ("num_layers", "n_layer"),
    ("num_heads", "n_head"),
    ("d_ff", "n_inner"),
    ("activation", "activation_function"),
    ("dropout", "resid_pdrop"),
    ("embedding_dropout", "embd_pdrop"),
    ("attention_dropout", "attn_pdrop"),
    ("layer_norm_eps", "layer_norm_epsilon"),
    ("scale_attn_weights", "scale_attn_weights"),
    ("scale_attn_by_inverse_layer_idx", "scale_attn_by_inverse_layer_idx"),
    ("tie_embeddings", "tie_word_embeddings"),
)

# (course BertConfig field, transformers.BertConfig field)
BERT_CONFIG: tuple[tuple[str, str], ...] = (
    ("vocab_size", "vocab_size"),
    ("d_model", "hidden_size"),
    ("num_layers", "num_hidden_layers"),
    ("num_heads", "num_attention_heads"),
    ("d_ff", "intermediate_size"),
    ("max_len", "max_position_embeddings"),
    ("type_vocab_size", "type_vocab_size"),
    ("activation", "hidden_act"),
    ("layer_norm_eps", "layer_norm_eps"),
    ("dropout", "hidden_dropout_prob"),
    ("attention_dropout", "attention_probs_dropout_prob"),
    ("pad_token_id", "pad_token_id"),
    ("tie_embeddings", "tie_word_embeddings"),
    ("initializer_range", "initializer_range"),
)


def gpt_weight_table(config: GPTConfig) -> list[tuple[str, str, str]]:
    """``(course name, GPT2LMHeadModel name, how)`` for every weight of a GPT with ``config``.

    A ``"qkv"`` row names the three course projections as ``layers.i.attention.{q,k,v}_proj.weight``
    with ``{q,k,v}`` written literally.
    """
    rows = [
        ("token_embedding.weight", "transformer.wte.weight", "copy"),
        ("position_embedding.embedding.weight", "transformer.wpe.weight", "copy"),
        ("final_norm.weight", "transformer.ln_f.weight", "copy"),
        ("final_norm.bias", "transformer.ln_f.bias", "copy"),
    ]
    if not config.tie_embeddings:
        rows.append(("lm_head.weight", "lm_head.weight", "copy"))
    for i in range(config.num_layers):
        ours, theirs = f"layers.{i}.", f"transformer.h.{i}."
        for part in ("weight", "bias"):
            rows += [
                (f"{ours}attention_norm.{part}", f"{theirs}ln_1.{part}", "copy"),
                (f"{ours}attention.{{q,k,v}}_proj.{part}", f"{theirs}attn.c_attn.{part}", "qkv"),
                (f"{ours}attention.out_proj.{part}", f"{theirs}attn.c_proj.{part}", "conv1d"),
                (f"{ours}feed_forward_norm.{part}", f"{theirs}ln_2.{part}", "copy"),
                (f"{ours}feed_forward.fc_in.{part}", f"{theirs}mlp.c_fc.{part}", "conv1d"),
                (f"{ours}feed_forward.fc_out.{part}", f"{theirs}mlp.c_proj.{part}", "conv1d"),
            ]
    return rows


def bert_weight_table(config: BertConfig) -> list[tuple[str, str, str]]:
    """``(course name, BertForPreTraining name, "copy")`` for every weight of a BERT with ``config``."""
    pairs = [
        ("embeddings.word", "bert.embeddings.word_embeddings"),
        ("embeddings.position", "bert.embeddings.position_embeddings"),
        ("embeddings.token_type", "bert.embeddings.token_type_embeddings"),
    ]
    rows = [(f"{a}.weight", f"{b}.weight", "copy") for a, b in pairs]
    rows += [(f"embeddings.norm.{p}", f"bert.embeddings.LayerNorm.{p}", "copy") for p in ("weight", "bias")]
    for i in range(config.num_layers):
        ours, theirs = f"layers.{i}.", f"bert.encoder.layer.{i}."
        for a, b in [
            ("attention.q_proj", "attention.self.query"),
            ("attention.k_proj", "attention.self.key"),
            ("attention.v_proj", "attention.self.value"),
            ("attention.out_proj", "attention.output.dense"),
            ("attention_norm", "attention.output.LayerNorm"),
            ("feed_forward.fc_in", "intermediate.dense"),
            ("feed_forward.fc_out", "output.dense"),
            ("feed_forward_norm", "output.LayerNorm"),
        ]:
            rows += [(f"{ours}{a}.{p}", f"{theirs}{b}.{p}", "copy") for p in ("weight", "bias")]
    for a, b in [
        ("pooler", "bert.pooler.dense"),
        ("mlm_transform", "cls.predictions.transform.dense"),
        ("mlm_norm", "cls.predictions.transform.LayerNorm"),
        ("nsp_head", "cls.seq_relationship"),
    ]:
        rows += [(f"{a}.{p}", f"{b}.{p}", "copy") for p in ("weight", "bias")]
    rows.append(("mlm_decoder.bias", "cls.predictions.decoder.bias", "copy"))
    if not config.tie_embeddings:
        rows.append(("mlm_decoder.weight", "cls.predictions.decoder.weight", "copy"))
    return rows


# ---- reading a table in either direction --------------------------------------------------------
def _course_state(table: list[tuple[str, str, str]], hf: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF tensors -> course names, following ``table``."""
    out: dict[str, torch.Tensor] = {}
    for ours, theirs, how in table:
        tensor = hf[theirs]
        if how == "qkv":  # Conv1D (in, 3 d) or bias (3 d): [queries | keys | values]
            for name, part in zip("qkv", tensor.chunk(3, dim=-1)):
                out[ours.replace("{q,k,v}", name)] = part.t() if part.dim() == 2 else part
        elif how == "conv1d" and tensor.dim() == 2:
            out[ours] = tensor.t()  # Conv1D (in, out) -> nn.Linear (out, in)
        else:
            out[ours] = tensor
    return out


def _hf_state(table: list[tuple[str, str, str]], ours: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Course tensors -> HF names, following ``table`` backwards."""
    out: dict[str, torch.Tensor] = {}
    for name, theirs, how in table:
        if how == "qkv":
            parts = [ours[name.replace("{q,k,v}", x)] for x in "qkv"]
            out[theirs] = torch.cat([p.t() if p.dim() == 2 else p for p in parts], dim=-1)
        elif how == "conv1d" and ours[name].dim() == 2:
            out[theirs] = ours[name].t()
        else:
            out[theirs] = ours[name]
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def _load(model: nn.Module, state: Mapping[str, torch.Tensor], like: nn.Module, tied: tuple[str, str] | None) -> None:
    """Copy ``state`` into ``model`` (strict, except a tied matrix named once), then take ``like``'s mode."""
    state = dict(state)
    if tied is not None:
        state[tied[0]] = state[tied[1]]
    missing, unexpected = model.load_state_dict(state, strict=False)
    # GPT-2 keeps a causal-mask buffer "attn.bias" in some transformers versions: not a weight.
    missing = [m for m in missing if not m.endswith(".attn.bias") and not m.endswith(".attn.masked_bias")]
    if missing or unexpected:  # pragma: no cover - a transformers version with other names
        raise RuntimeError(f"interop: names do not match (missing {missing[:5]}, unexpected {unexpected[:5]})")
    model.train(like.training)


def _config_to_hf(config: Any, table: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return {theirs: getattr(config, ours) for ours, theirs in table}


def _config_from_hf(hf_config: Any, table: tuple[tuple[str, str], ...], defaults: Mapping[str, Any]) -> dict[str, Any]:
    return {ours: getattr(hf_config, theirs, defaults.get(ours)) for ours, theirs in table}


# ---- GPT-2 ------------------------------------------------------------------------------------
def gpt_config_to_hf(config: GPTConfig, attn_implementation: str = "eager") -> Any:
    """The ``transformers.GPT2Config`` of a course ``GPTConfig``."""
    from transformers import GPT2Config

    return GPT2Config(**_config_to_hf(config, GPT2_CONFIG), bos_token_id=None, eos_token_id=None,
                      pad_token_id=None, attn_implementation=attn_implementation)


def gpt_config_from_hf(hf_config: Any) -> GPTConfig:
    """The course ``GPTConfig`` of a ``transformers.GPT2Config``; ``ValueError`` for what the course lacks."""
    if getattr(hf_config, "add_cross_attention", False):
        raise ValueError("GPT.from_hf: this GPT-2 has cross-attention layers (add_cross_attention=True); the course GPT is decoder-only")
    if hf_config.activation_function not in ACTIVATIONS:
        raise ValueError(
            f"GPT.from_hf: activation_function={hf_config.activation_function!r} is not supported; "
            f"supported: {list(ACTIVATIONS)}"
        )
    values = _config_from_hf(hf_config, GPT2_CONFIG, {"tie_embeddings": True})
    for name in ("dropout", "embedding_dropout", "attention_dropout", "layer_norm_eps"):
        values[name] = float(values[name])
    for name in ("scale_attn_weights", "scale_attn_by_inverse_layer_idx", "tie_embeddings"):
        values[name] = bool(values[name])
    return GPTConfig(**values)


def gpt_from_hf(hf_model: Any) -> GPT:
    """A course ``GPT`` with the weights of a ``transformers.GPT2LMHeadModel`` (any size).

    The result has the HF model's dtype, device and train/eval mode; given the same input both compute
    the same logits. (``reorder_and_upcast_attn`` only changes the rounding of half-precision attention
    in HF and is not kept.)
    """
    from transformers import GPT2LMHeadModel

    if not isinstance(hf_model, GPT2LMHeadModel):
        hint = (" (for a GPT2Model, wrap it: GPT2LMHeadModel(config) with its weights)"
                if type(hf_model).__name__ == "GPT2Model" else "")
        raise TypeError(f"GPT.from_hf expected a transformers.GPT2LMHeadModel, got {type(hf_model).__name__}{hint}")
    config = gpt_config_from_hf(hf_model.config)
    reference = hf_model.transformer.wte.weight
    model = GPT(config).to(device=reference.device, dtype=reference.dtype)
    state = _course_state(gpt_weight_table(config), {k: v.detach() for k, v in hf_model.state_dict().items()})
    tied = ("lm_head.weight", "token_embedding.weight") if config.tie_embeddings else None
    with torch.no_grad():
        _load(model, state, hf_model, tied)
    return model


def gpt_to_hf(model: GPT, attn_implementation: str = "eager") -> Any:
    """A ``transformers.GPT2LMHeadModel`` with the weights of a course ``GPT`` (the inverse of ``gpt_from_hf``).

    Args:
        attn_implementation: HF's attention code: ``"eager"`` (returns attention weights) or
            ``"sdpa"`` (PyTorch's fused kernel).
    """
    from transformers import GPT2LMHeadModel

    c = model.config
    reference = model.token_embedding.weight
    hf_model = GPT2LMHeadModel(gpt_config_to_hf(c, attn_implementation)).to(device=reference.device, dtype=reference.dtype)
    state = _hf_state(gpt_weight_table(c), model.state_dict())
    _load(hf_model, state, model, ("lm_head.weight", "transformer.wte.weight") if c.tie_embeddings else None)
    if c.tie_embeddings:
        hf_model.tie_weights()
    return hf_model


# ---- BERT -------------------------------------------------------------------------------------
def bert_config_to_hf(config: BertConfig) -> Any:
    """The ``transformers.BertConfig`` of a course ``BertConfig``."""
    from transformers import BertConfig as HFBertConfig

    return HFBertConfig(**_config_to_hf(config, BERT_CONFIG))


def bert_config_from_hf(hf_config: Any) -> BertConfig:
    """Translate a ``transformers.BertConfig``; ``ValueError`` for what the course does not implement."""
    if getattr(hf_config, "model_type", None) != "bert":
        raise TypeError(f"BertConfig.from_hf expected a transformers BertConfig, got {type(hf_config).__name__}")
    if getattr(hf_config, "is_decoder", False) or getattr(hf_config, "add_cross_attention", False):
        raise ValueError("course_lib.bert is an encoder: is_decoder / add_cross_attention are not supported")
    position_kind = getattr(hf_config, "position_embedding_type", "absolute") or "absolute"
    if position_kind != "absolute":
        raise ValueError(
            f"course_lib.bert has learned absolute positions only, got position_embedding_type={position_kind!r}"
        )
    act = hf_config.hidden_act
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise ValueError(f"hidden_act {act!r} is not supported by course_lib.bert; use one of {sorted(ACTIVATIONS)}")
    values = _config_from_hf(hf_config, BERT_CONFIG, {"tie_embeddings": True})
    for name in ("layer_norm_eps", "dropout", "attention_dropout", "initializer_range"):
        values[name] = float(values[name])
    values["tie_embeddings"] = bool(values["tie_embeddings"])
    return BertConfig(**values)


def bert_from_hf(hf_model: Any) -> Bert:
    """A course ``Bert`` with a copy of a ``transformers.BertForPreTraining``'s weights.

    The two give the same MLM and NSP logits (on every non-padding position) in eval mode. Raises
    ``TypeError`` for another kind of model and ``ValueError`` for a configuration the course does
    not implement (a decoder, relative positions, an unknown activation).
    """
    from transformers import BertForPreTraining

    if not isinstance(hf_model, BertForPreTraining):
        raise TypeError(f"Bert.from_hf expected a transformers.BertForPreTraining, got {type(hf_model).__name__}")
    config = bert_config_from_hf(hf_model.config)
    decoder = hf_model.cls.predictions.decoder
    tied = decoder.weight.data_ptr() == hf_model.bert.embeddings.word_embeddings.weight.data_ptr()
    if config.tie_embeddings != tied:
        config = BertConfig.from_dict({**config.to_dict(), "tie_embeddings": tied})
    reference = next(hf_model.parameters())
    model = Bert(config).to(device=reference.device, dtype=reference.dtype)
    state = _course_state(bert_weight_table(config), hf_model.state_dict())
    _load(model, state, hf_model, ("mlm_decoder.weight", "embeddings.word.weight") if tied else None)
    return model


def bert_to_hf(model: Bert) -> Any:
    """A ``transformers.BertForPreTraining`` with a copy of a course ``Bert``'s weights (SDPA attention)."""
    from transformers import BertForPreTraining

    reference = next(model.parameters())
    hf_model = BertForPreTraining(bert_config_to_hf(model.config)).to(device=reference.device, dtype=reference.dtype)
    state = _hf_state(bert_weight_table(model.config), model.state_dict())
    state["cls.predictions.bias"] = state["cls.predictions.decoder.bias"]
    tied = ("cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight")
    _load(hf_model, state, model, tied if model.config.tie_embeddings else None)
    hf_model.tie_weights()
    return hf_model


def bert_classifier_encoder_table(config: BertConfig) -> list[tuple[str, str, str]]:
    """The encoder rows of ``bert_weight_table``: what a ``BertForSequenceClassification`` shares with BERT.

    A classifier keeps BERT's encoder and pooler (``bert.*``) and drops the pretraining heads (``cls.*``).
    """
    return [row for row in bert_weight_table(config) if row[1].startswith("bert.")]


def bert_encoder_to_hf(model: Bert) -> dict[str, torch.Tensor]:
    """A course ``Bert``'s encoder and pooler weights under ``BertModel``'s names (with the ``bert.`` prefix)."""
    return _hf_state(bert_classifier_encoder_table(model.config), model.state_dict())


def bert_encoder_from_hf(model: Bert, hf_state: Mapping[str, torch.Tensor]) -> None:
    """Copy the encoder and pooler of a ``BertFor*`` state dict (``bert.*`` names) into ``model``.

    Raises ``ValueError`` naming what the HF model lacks (a BERT without a pooler cannot classify).
    """
    table = bert_classifier_encoder_table(model.config)
    missing = [theirs for _, theirs, _ in table if theirs not in hf_state]
    if missing:
        raise ValueError(f"from_hf: the model lacks {missing[:3]} (a BERT without a pooler cannot classify)")
    state = model.state_dict()
    state.update(_course_state(table, hf_state))
    model.load_state_dict(state, strict=True)


# ---- torch.nn.MultiheadAttention ---------------------------------------------------------------
def mha_from_torch(torch_mha: nn.MultiheadAttention) -> MultiHeadAttention:
    """A course ``MultiHeadAttention`` holding a copy of an ``nn.MultiheadAttention``'s weights.

    torch keeps the three input projections stacked in one ``in_proj_weight`` of shape
    ``(3 * d_model, d_model)`` (queries, then keys, then values); they are split into ``q_proj``,
    ``k_proj`` and ``v_proj``. The two modules then give the same outputs, with two differences in how
    they are called: torch's boolean ``attn_mask`` and ``key_padding_mask`` mean True = *blocked*
    (pass ``~mask``), and torch averages the weights over the heads unless
    ``average_attn_weights=False``. Build the torch module with ``batch_first=True`` to feed both the
    same ``(batch, seq, d_model)`` inputs.
    """
    if not isinstance(torch_mha, nn.MultiheadAttention):
        raise TypeError(f"from_torch expected an nn.MultiheadAttention, got {type(torch_mha).__name__}")
    if not torch_mha._qkv_same_embed_dim:
        raise ValueError("from_torch supports kdim == vdim == embed_dim only")
    if torch_mha.bias_k is not None or torch_mha.add_zero_attn:
        raise ValueError("from_torch does not support add_bias_kv or add_zero_attn")
    has_bias = torch_mha.in_proj_bias is not None
    weight = torch_mha.in_proj_weight.detach()
    mha = MultiHeadAttention(torch_mha.embed_dim, torch_mha.num_heads, dropout=torch_mha.dropout, bias=has_bias)
    mha = mha.to(device=weight.device, dtype=weight.dtype)
    state = {"out_proj.weight": torch_mha.out_proj.weight.detach()}
    for name, w in zip("qkv", weight.chunk(3, dim=0)):
        state[f"{name}_proj.weight"] = w
    if has_bias:
        state["out_proj.bias"] = torch_mha.out_proj.bias.detach()
        for name, b in zip("qkv", torch_mha.in_proj_bias.detach().chunk(3)):
            state[f"{name}_proj.bias"] = b
    _load(mha, state, torch_mha, None)
    return mha


def mha_to_torch(mha: MultiHeadAttention) -> nn.MultiheadAttention:
    """An ``nn.MultiheadAttention(batch_first=True)`` with a copy of a course ``MultiHeadAttention``'s weights."""
    if mha.rotary is not None:
        raise ValueError("to_torch: nn.MultiheadAttention has no rotary embeddings")
    has_bias = mha.q_proj.bias is not None
    reference = mha.q_proj.weight
    torch_mha = nn.MultiheadAttention(mha.d_model, mha.num_heads, dropout=mha.dropout, bias=has_bias,
                                      batch_first=True).to(device=reference.device, dtype=reference.dtype)
    ours = mha.state_dict()
    state = {"in_proj_weight": torch.cat([ours[f"{x}_proj.weight"] for x in "qkv"]),
             "out_proj.weight": ours["out_proj.weight"]}
    if has_bias:
        state["in_proj_bias"] = torch.cat([ours[f"{x}_proj.bias"] for x in "qkv"])
        state["out_proj.bias"] = ours["out_proj.bias"]
    _load(torch_mha, state, mha, None)
    return torch_mha
