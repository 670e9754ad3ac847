"""Pictures the course draws again and again: attention heatmaps with tokens on the axes, a grid of
heads, and a general matrix heatmap (position tables, similarity matrices); and the attention views
of notebook 10: the bertviz adaptor, offline pictures of every layer and head, and head statistics.

    from course_lib import viz
    viz.attention_heatmap(weights[0, 0], tokens, tokens)        # one head: (n_q, n_k)
    viz.attention_heads_grid(weights[0], tokens, tokens)         # all heads: (heads, n_q, n_k)

    data = viz.model_attentions(model, tokenizer, "The cat sat.")   # GPT, BERT or an HF model
    bertviz.head_view(**data)                                    # what bertviz wants (needs internet)
    viz.attention_layers_grid(data)                              # the same, offline: layers x heads
    viz.head_statistics(data)["entropy"]                         # (layers, heads)

Every function takes a torch tensor (on any device, with or without gradients) or a NumPy array.
Queries are rows (the y axis, read top to bottom), keys are columns (the x axis).

Why one module of over 1,000 lines: the pictures share one input convention (tensor or array,
queries by keys) and one ``AttentionData`` record, which the bertviz adaptor, the offline grids and
the head statistics all read; each function stands alone and none is long.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from course_lib import _validate as validate

__all__ = [
    "attention_heatmap",
    "attention_heads_grid",
    "matrix_heatmap",
    # attention views (notebook 10)
    "AttentionData",
    "to_bertviz",
    "model_attentions",
    "load_attention_model",
    "LoadedModel",
    "display_tokens",
    "Link",
    "strongest_links",
    "attention_links",
    "attention_layers_grid",
    "attention_entropy",
    "mean_attention_distance",
    "previous_token_score",
    "attention_to",
    "head_statistics",
    "top_heads",
]


def _to_numpy(values, what: str, caller: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()  # cpu first: MPS has no float64
    elif not isinstance(values, np.ndarray):
        try:
            values = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{caller} expected {what} as a tensor or an array, got {type(values).__name__}"
            ) from None
    return np.asarray(values, dtype=np.float64)


def _labels(tokens, size: int, what: str, caller: str) -> list[str] | None:
    if tokens is None:
        return None
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"{caller} expected {what} as a list of strings, got {type(tokens).__name__}")
    if len(tokens) != size:
        raise ValueError(f"{caller}: {len(tokens)} {what} for a matrix with {size} of them")
    return [str(t) for t in tokens]


def _font_size(n: int) -> float:
    return 10 if n <= 12 else 8 if n <= 24 else 6


def _new_axes(n_rows: int, n_cols: int):
    import matplotlib.pyplot as plt

    width = min(12.0, 1.8 + 0.38 * n_cols)
    height = min(12.0, 1.2 + 0.38 * n_rows)
    _, ax = plt.subplots(figsize=(max(width, 3.5), max(height, 2.5)))
    return ax


def attention_heatmap(
    weights,
    x_tokens: Sequence[str] | None = None,
    y_tokens: Sequence[str] | None = None,
    ax=None,
    *,
    title: str | None = None,
    colorbar: bool = True,
    annotate: bool | None = None,
    cmap: str = "Blues",
    vmax: float | None = None,
    xlabel: str = "keys (attended to)",
    ylabel: str = "queries (attending)",
):
    """Draw one attention matrix with the tokens on the axes.

    Args:
        weights: ``(n_q, n_k)`` attention weights (rows sum to 1), a tensor or an array. Pick one
            example and one head first, e.g. ``weights[0, head]``.
        x_tokens: the ``n_k`` key tokens, written under the columns.
        y_tokens: the ``n_q`` query tokens, written beside the rows; default ``x_tokens`` when the
            matrix is square (self-attention).
        ax: a matplotlib Axes to draw on; a new figure sized to the matrix when None.
        title: the Axes title.
        colorbar: add a colour bar.
        annotate: write each weight in its cell (default: when the matrix has at most 12 columns
            and 12 rows).
        cmap: the colour map (weights are drawn on a 0..vmax scale).
        vmax: the top of the colour scale; default the largest weight (at least a small positive
            number, so an all-zero matrix still draws).
        xlabel, ylabel: the axis titles.

    Returns:
        The matplotlib Axes.
    """
    caller = "attention_heatmap"
    matrix = _to_numpy(weights, "weights", caller)
    if matrix.ndim != 2:
        raise ValueError(
            f"{caller} expected a 2-D (n_queries, n_keys) matrix, got shape {matrix.shape}; pick one "
            "example and one head first, e.g. weights[0, head], or use attention_heads_grid for all heads"
        )
    n_q, n_k = matrix.shape
    if y_tokens is None and x_tokens is not None and n_q == n_k:
        y_tokens = x_tokens
    x_labels = _labels(x_tokens, n_k, "x_tokens (keys, columns)", caller)
    y_labels = _labels(y_tokens, n_q, "y_tokens (queries, rows)", caller)
    if ax is None:
        ax = _new_axes(n_q, n_k)
    if vmax is None:
        vmax = max(float(np.nanmax(matrix)) if matrix.size else 1.0, 1e-6)
    image = ax.imshow(matrix, cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(n_k))
    ax.set_yticks(range(n_q))
    ax.set_xticklabels(x_labels if x_labels is not None else range(n_k), rotation=90,
                       fontsize=_font_size(n_k))
    ax.set_yticklabels(y_labels if y_labels is not None else range(n_q), fontsize=_font_size(n_q))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if annotate is None:
        annotate = n_q <= 12 and n_k <= 12
    if annotate:
        for i in range(n_q):
            for j in range(n_k):
                value = matrix[i, j]
                color = "white" if value > 0.6 * vmax else "black"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=color)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    return ax


def attention_heads_grid(
    weights,
    x_tokens: Sequence[str] | None = None,
    y_tokens: Sequence[str] | None = None,
    *,
    ncols: int = 4,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
    cmap: str = "Blues",
    panel_size: float = 2.6,
):
    """Draw every head's attention matrix side by side, on one shared colour scale.

    Args:
        weights: ``(heads, n_q, n_k)``, e.g. ``weights[0]`` of a ``MultiHeadAttention`` output.
        x_tokens, y_tokens: as in ``attention_heatmap``; the labels go on the outer panels only.
        ncols: panels per row.
        titles: one title per head (default ``"head 0"``, ``"head 1"``, ...).
        suptitle: a title over the whole grid.
        cmap: the colour map.
        panel_size: the size of one panel in inches.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    caller = "attention_heads_grid"
    stack = _to_numpy(weights, "weights", caller)
    if stack.ndim != 3:
        raise ValueError(
            f"{caller} expected (heads, n_queries, n_keys), got shape {stack.shape}; for a "
            "(batch, heads, n_q, n_k) tensor pick one example first, e.g. weights[0]"
        )
    ncols = validate.positive_int(ncols, "ncols", caller)
    heads, n_q, n_k = stack.shape
    if y_tokens is None and x_tokens is not None and n_q == n_k:
        y_tokens = x_tokens
    x_labels = _labels(x_tokens, n_k, "x_tokens (keys, columns)", caller)
    y_labels = _labels(y_tokens, n_q, "y_tokens (queries, rows)", caller)
    if titles is None:
        titles = [f"head {h}" for h in range(heads)]
    elif len(titles) != heads:
        raise ValueError(f"{caller}: {len(titles)} titles for {heads} heads")
    ncols = min(ncols, heads)
    nrows = math.ceil(heads / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_size * ncols + 1.2, panel_size * nrows + 0.6), squeeze=False,
        constrained_layout=True,
    )
    vmax = max(float(np.nanmax(stack)) if stack.size else 1.0, 1e-6)
    image = None
    for h, ax in enumerate(axes.flat):
        if h >= heads:
            ax.axis("off")
            continue
        row, col = divmod(h, ncols)
        image = ax.imshow(stack[h], cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto",
                          interpolation="nearest")
        ax.set_title(titles[h], fontsize=10)
        bottom = row == nrows - 1 or h + ncols >= heads
        ax.set_xticks(range(n_k))
        ax.set_yticks(range(n_q))
        if bottom and x_labels is not None:
            ax.set_xticklabels(x_labels, rotation=90, fontsize=_font_size(n_k))
        elif not bottom:
            ax.set_xticklabels([])
        if col == 0 and y_labels is not None:
            ax.set_yticklabels(y_labels, fontsize=_font_size(n_q))
        elif col != 0:
            ax.set_yticklabels([])
        if bottom:
            ax.set_xlabel("keys")
        if col == 0:
            ax.set_ylabel("queries")
    fig.colorbar(image, ax=axes, fraction=0.03, pad=0.02, label="attention weight")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def matrix_heatmap(
    matrix,
    ax=None,
    *,
    x_tokens: Sequence[str] | None = None,
    y_tokens: Sequence[str] | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    cmap: str = "RdBu_r",
    centered: bool = True,
    colorbar: bool = True,
    colorbar_label: str | None = None,
):
    """Draw any 2-D matrix (a position table, a similarity matrix) as a heatmap.

    Args:
        matrix: ``(rows, columns)`` tensor or array.
        ax: a matplotlib Axes; a new figure when None.
        x_tokens, y_tokens: optional labels for the columns and the rows (e.g. tokens, for a
            matrix of raw scores that can be negative, which ``attention_heatmap`` does not draw).
        title, xlabel, ylabel: labels.
        cmap: the colour map; the default diverging map shows signs (blue < 0 < red).
        centered: a colour scale symmetric around 0 (for signed values).
        colorbar: add a colour bar; ``colorbar_label`` titles it.

    Returns:
        The matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    values = _to_numpy(matrix, "matrix", "matrix_heatmap")
    if values.ndim != 2:
        raise ValueError(f"matrix_heatmap expected a 2-D matrix, got shape {values.shape}")
    x_labels = _labels(x_tokens, values.shape[1], "x_tokens (columns)", "matrix_heatmap")
    y_labels = _labels(y_tokens, values.shape[0], "y_tokens (rows)", "matrix_heatmap")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    if x_labels is not None:
        ax.set_xticks(range(len(x_labels)))
        ax.set_xticklabels(x_labels, rotation=90, fontsize=_font_size(len(x_labels)))
    if y_labels is not None:
        ax.set_yticks(range(len(y_labels)))
        ax.set_yticklabels(y_labels, fontsize=_font_size(len(y_labels)))
    if centered:
        bound = max(float(np.nanmax(np.abs(values))) if values.size else 1.0, 1e-12)
        limits = {"vmin": -bound, "vmax": bound}
    else:
        limits = {}
    image = ax.imshow(values, cmap=cmap, aspect="auto", interpolation="nearest", **limits)
    if title:
        ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=colorbar_label)
    return ax


# =============================================================================================
# Attention views (notebook 10): the bertviz adaptor, offline pictures and head statistics
# =============================================================================================
_EAGER_HINT = (
    "load a Hugging Face model with attn_implementation=\"eager\" (or call "
    "model.set_attn_implementation(\"eager\")): with transformers 5 the default (sdpa) attention "
    "returns no weights; call course models with output_attentions=True"
)


@dataclass
class AttentionData:
    """One input's attention weights in every layer, in the format bertviz's views take.

    ``bertviz.head_view(**data)`` and ``bertviz.model_view(**data)`` work as they are: ``data``
    unpacks as the keyword arguments ``attention``, ``tokens`` and ``sentence_b_start``.

    Attributes:
        attention: one ``(1, heads, seq, seq)`` CPU tensor per layer (a batch of one, as bertviz
            wants), queries on dim 2 and keys on dim 3.
        tokens: the ``seq`` tokens, as the tokenizer wrote them (``"Ġthe"``, ``"##ing"``).
        sentence_b_start: for a BERT sentence pair, the position of sentence B's first token;
            otherwise None.
    """

    attention: list[torch.Tensor]
    tokens: list[str]
    sentence_b_start: int | None = None

    def keys(self) -> tuple[str, str, str]:
        """The keyword names ``**data`` gives: bertviz's ``attention``, ``tokens``, ``sentence_b_start``."""
        return ("attention", "tokens", "sentence_b_start")

    def __getitem__(self, key: str):
        if key not in self.keys():
            raise KeyError(f"AttentionData has {list(self.keys())}, not {key!r}")
        return getattr(self, key)

    @property
    def num_layers(self) -> int:
        return len(self.attention)

    @property
    def num_heads(self) -> int:
        return int(self.attention[0].shape[1])

    @property
    def seq_len(self) -> int:
        return len(self.tokens)

    def stacked(self) -> torch.Tensor:
        """All weights as one ``(layers, heads, seq, seq)`` tensor."""
        return torch.stack([a[0] for a in self.attention])

    def head(self, layer: int, head: int) -> torch.Tensor:
        """One head's ``(seq, seq)`` weights (queries are rows)."""
        _check_index(layer, self.num_layers, "layer", "AttentionData.head")
        _check_index(head, self.num_heads, "head", "AttentionData.head")
        return self.attention[layer][0, head]

    def __repr__(self) -> str:
        pair = "" if self.sentence_b_start is None else f", sentence_b_start={self.sentence_b_start}"
        return (f"AttentionData({self.num_layers} layers x {self.num_heads} heads, "
                f"{self.seq_len} tokens{pair})")


def _check_index(value, size: int, what: str, caller: str) -> int:
    return validate.positive_int(value, what, caller, minimum=0, maximum=size - 1)


def _layer_list(attentions, caller: str) -> list[torch.Tensor]:
    """Validate per-layer attention weights; return a list of 4-D ``(batch, heads, q, k)`` tensors."""
    if hasattr(attentions, "attentions") and not isinstance(attentions, (list, tuple)):
        attentions = attentions.attentions  # a model output
    if isinstance(attentions, torch.Tensor):
        raise TypeError(
            f"{caller} expected a list or tuple with one (batch, heads, seq, seq) tensor per layer, got "
            f"one tensor of shape {tuple(attentions.shape)}; for a stacked (layers, heads, seq, seq) "
            "tensor pass list(stack.unsqueeze(1))"
        )
    if attentions is None or (isinstance(attentions, (list, tuple)) and len(attentions) == 0):
        raise ValueError(f"{caller} got no attention weights: {_EAGER_HINT}")
    if not isinstance(attentions, (list, tuple)):
        raise TypeError(
            f"{caller} expected a list or tuple with one (batch, heads, seq, seq) tensor per layer, "
            f"got {type(attentions).__name__}"
        )
    layers = []
    for i, a in enumerate(attentions):
        if a is None:
            raise ValueError(f"{caller}: layer {i} gave no attention weights (None): {_EAGER_HINT}")
        if not isinstance(a, torch.Tensor):
            raise TypeError(f"{caller}: layer {i} is a {type(a).__name__}, expected a torch.Tensor")
        if a.dim() == 3:
            a = a.unsqueeze(0)
        if a.dim() != 4:
            raise ValueError(
                f"{caller}: layer {i} has shape {tuple(a.shape)}; expected (batch, heads, seq, seq) "
                "or (heads, seq, seq)"
            )
        if layers and a.shape != layers[0].shape:
            raise ValueError(
                f"{caller}: layer {i} has shape {tuple(a.shape)} but layer 0 has {tuple(layers[0].shape)}; "
                "every layer must hold the same batch, heads and positions"
            )
        layers.append(a)
    if layers[0].shape[-1] != layers[0].shape[-2]:
        raise ValueError(
            f"{caller} draws self-attention, (seq, seq) per head; got {tuple(layers[0].shape[-2:])} "
            "(cross-attention or a KV cache? run the whole sequence without a cache)"
        )
    return layers


def _check_rows(a: torch.Tensor, caller: str) -> None:
    values = a.detach().float()
    if not bool(torch.isfinite(values).all()) or bool((values < -1e-6).any()):
        raise ValueError(f"{caller} expected attention weights (softmax outputs, in [0, 1]), got "
                         "negative or non-finite values: are these scores before the softmax?")
    sums = values.sum(-1)
    if not bool(torch.allclose(sums, torch.ones_like(sums), atol=2e-3)):
        raise ValueError(
            f"{caller} expected attention weights whose rows sum to 1, got row sums from "
            f"{float(sums.min()):.3f} to {float(sums.max()):.3f}: are these scores before the softmax?"
        )


def _check_tokens(tokens, seq: int, caller: str) -> list[str]:
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"{caller} expected tokens as a list of strings, got {type(tokens).__name__}")
    if len(tokens) != seq:
        raise ValueError(
            f"{caller}: {len(tokens)} tokens for attention over {seq} positions; pass exactly one token "
            "per position (for a padded batch keep the example's own positions, or use model_attentions "
            "on one text)"
        )
    return [str(t) for t in tokens]


def to_bertviz(
    attentions,
    tokens: Sequence[str],
    *,
    sentence_b_start: int | None = None,
    example: int = 0,
    decimals: int | None = None,
) -> AttentionData:
    """Turn a model's attention weights into what ``bertviz.head_view`` / ``model_view`` take.

    bertviz wants a list with one ``(1, heads, seq, seq)`` tensor per layer (a batch of one), the
    ``seq`` tokens, and for a sentence pair the position where sentence B starts.

    Args:
        attentions: one ``(batch, heads, seq, seq)`` (or ``(heads, seq, seq)``) tensor per layer:
            ``model(ids, output_attentions=True).attentions`` of the course GPT or BERT, or of a
            Hugging Face model loaded with ``attn_implementation="eager"``; a model output with an
            ``attentions`` attribute works too.
        tokens: the ``seq`` tokens of the chosen example.
        sentence_b_start: position of sentence B's first token (``1..seq-1``), or None.
        example: which element of the batch to keep.
        decimals: round the weights (to float64) so a stored notebook's bertviz output stays
            small; None keeps them exact (float32).

    Returns:
        An ``AttentionData``: ``bertviz.head_view(**to_bertviz(...))``.
    """
    caller = "to_bertviz"
    layers = _layer_list(attentions, caller)
    batch, _, seq, _ = layers[0].shape
    _check_index(example, batch, "example (the batch element)", caller)
    words = _check_tokens(tokens, seq, caller)
    if sentence_b_start is not None:
        # Position 0 is [CLS], so sentence B starts at 1 at the earliest.
        validate.positive_int(sentence_b_start, "sentence_b_start (sentence B's first token)", caller, maximum=seq - 1)
    if decimals is not None:
        decimals = validate.positive_int(decimals, "decimals", caller, maximum=8)
    out = []
    for a in layers:
        one = a[example : example + 1].detach().to("cpu", torch.float32, copy=True)
        _check_rows(one, caller)
        if decimals is not None:
            one = one.double().round(decimals=decimals)
        out.append(one)
    return AttentionData(out, words, sentence_b_start)


def _model_kind(model) -> str:
    from course_lib.bert import Bert
    from course_lib.gpt import GPT

    if isinstance(model, GPT):
        return "gpt"
    if isinstance(model, Bert):
        return "bert"
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is in requirements.txt
        PreTrainedModel = ()
    if PreTrainedModel and isinstance(model, PreTrainedModel):
        return "hf"
    raise TypeError(
        "model_attentions expected the course GPT, the course Bert or a transformers model, got "
        f"{type(model).__name__}"
    )


def model_attentions(
    model,
    tokenizer,
    text: str,
    text_pair: str | None = None,
    *,
    max_length: int | None = None,
    decimals: int | None = None,
) -> AttentionData:
    """Run a model on one text (or a BERT sentence pair) and collect its attention for bertviz.

    Works with the course ``GPT`` and ``Bert`` and with any Hugging Face model loaded with
    ``attn_implementation="eager"``. The model runs in eval mode (no dropout) without gradients;
    its training/eval mode is restored afterwards.

    Args:
        model: the model; it stays on its device.
        tokenizer: its tokenizer (``transformers`` tokenizer: ``tokenizer(text, text_pair)``).
        text: the text (sentence A for a pair).
        text_pair: sentence B, for BERT-style models whose tokenizer gives ``token_type_ids``.
        max_length: truncate to this many tokens (None: no truncation).
        decimals: as in ``to_bertviz``.

    Returns:
        ``AttentionData`` with ``num_layers`` tensors ``(1, heads, seq, seq)``, the ``seq`` tokens and,
        for a pair, ``sentence_b_start``.
    """
    caller = "model_attentions"
    kind = _model_kind(model)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{caller} expected a non-empty text, got {text!r}")
    if text_pair is not None and (not isinstance(text_pair, str) or not text_pair.strip()):
        raise ValueError(f"{caller} expected text_pair to be None or a non-empty text, got {text_pair!r}")
    if kind == "gpt" and text_pair is not None:
        raise ValueError(
            f"{caller}: sentence pairs (text_pair) are BERT's idea; GPT reads one text: join the two"
        )
    if max_length is not None:
        validate.positive_int(max_length, "max_length", caller, minimum=2)
    if not callable(tokenizer) or not hasattr(tokenizer, "convert_ids_to_tokens"):
        raise TypeError(
            f"{caller} expected a transformers tokenizer (callable, with convert_ids_to_tokens), got "
            f"{type(tokenizer).__name__}"
        )
    enc = tokenizer(text, text_pair, return_tensors="pt", truncation=max_length is not None,
                    max_length=max_length)
    ids = enc["input_ids"]
    types = enc.get("token_type_ids")
    sentence_b_start = None
    if text_pair is not None:
        if types is None or not bool((types[0] == 1).any()):
            raise ValueError(
                f"{caller}: this tokenizer marks no sentence B (no token_type_ids equal to 1), so the "
                "pair cannot be split; use a BERT tokenizer, or pass one text"
            )
        sentence_b_start = int((types[0] == 1).nonzero()[0, 0])
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in enc.items() if isinstance(v, torch.Tensor)}
    with validate.eval_mode(model), torch.no_grad():
        if kind == "gpt":
            attentions = model(inputs["input_ids"], output_attentions=True).attentions
        elif kind == "bert":
            attentions = model(inputs["input_ids"], inputs.get("token_type_ids"),
                               inputs.get("attention_mask"), output_attentions=True).attentions
        else:
            import inspect

            accepted = inspect.signature(model.forward).parameters
            kwargs = {k: v for k, v in inputs.items()
                      if k in ("input_ids", "token_type_ids", "attention_mask") and k in accepted}
            attentions = getattr(model(**kwargs, output_attentions=True), "attentions", None)
            if not attentions or any(a is None for a in attentions):
                impl = getattr(model.config, "_attn_implementation", "unknown")
                raise ValueError(
                    f"{caller}: {type(model).__name__} (attention implementation {impl!r}) returned "
                    "no attention weights: load it with attn_implementation=\"eager\" or call "
                    "model.set_attn_implementation(\"eager\") (transformers 5's default, sdpa, "
                    "computes no weights)"
                )
    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    return to_bertviz(attentions, tokens, sentence_b_start=sentence_b_start, decimals=decimals)


# ---- Hugging Face models, with an offline fallback -------------------------------------------
class LoadedModel(NamedTuple):
    """What ``load_attention_model`` returns: the model, its tokenizer and where they came from."""

    model: Any
    tokenizer: Any
    source: str
    is_fallback: bool


def _hub_reachable(timeout: float) -> bool:
    """True when the Hugging Face hub answers a TCP connection within ``timeout`` seconds."""
    import os
    import socket
    import threading
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    try:
        from huggingface_hub import constants

        if getattr(constants, "HF_HUB_OFFLINE", False):
            return False
        endpoint = urlparse(constants.ENDPOINT)
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return False
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    answered: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
            answered.append(True)
        except OSError:
            answered.append(False)

    # in a thread: the name lookup before the connection ignores the timeout and can hang offline
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answered and answered[0])


def _load_hf(name: str, local_only: bool, device) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # no "weights not used" report for the LM head we do not need
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_only)
        model = AutoModel.from_pretrained(name, local_files_only=local_only, attn_implementation="eager")
    finally:
        hf_logging.set_verbosity(verbosity)
    return model.to(device).eval(), tokenizer


def load_attention_model(
    name: str = "bert-base-uncased",
    *,
    fallback: str | None = None,
    fallback_folder=None,
    device: torch.device | str = "cpu",
    timeout: float = 3.0,
) -> LoadedModel:
    """Load a Hugging Face model whose attention weights can be read, with an offline fallback.

    The order: a local folder ``name`` (written by ``save_pretrained``); the Hugging Face cache;
    the hub, when it answers within ``timeout`` seconds and ``HF_HUB_OFFLINE`` is not set.
    Otherwise it prints one line saying so and loads the course checkpoint instead (``fallback``:
    ``"gpt"`` or ``"bert"``, default from the name), converted to a ``transformers`` model.
    Either way the model uses eager attention (``output_attentions=True`` returns weights).

    Args:
        name: a hub name (``"bert-base-uncased"``, ``"gpt2"``) or a local folder.
        fallback: which course model replaces it offline, ``"gpt"`` or ``"bert"``; None: ``"gpt"``
            when the name contains "gpt", else ``"bert"``.
        fallback_folder: load the fallback from this folder (a course checkpoint written by
            ``course_lib.checkpoint.save_pretrained``) instead of
            the shipped ``assets/``.
        device: where to put the model.
        timeout: seconds to wait for the hub.

    Returns:
        ``LoadedModel(model, tokenizer, source, is_fallback)``: the model in eval mode.
    """
    from pathlib import Path

    caller = "load_attention_model"
    if not isinstance(name, str) or not name:
        raise ValueError(f"{caller} expected a model name or folder, got {name!r}")
    if fallback is None:
        fallback = "gpt" if "gpt" in name.lower() else "bert"
    if fallback not in ("gpt", "bert"):
        raise ValueError(f"{caller} expected fallback 'gpt' or 'bert', got {fallback!r}")
    if Path(name).is_dir():
        model, tokenizer = _load_hf(name, True, device)
        return LoadedModel(model, tokenizer, f"the local folder {Path(name).name!r}", False)
    try:  # already downloaded once: no network needed
        model, tokenizer = _load_hf(name, True, device)
        return LoadedModel(model, tokenizer, f"{name} (Hugging Face cache)", False)
    except (OSError, ValueError):
        pass
    reason = "the Hugging Face hub cannot be reached"
    if _hub_reachable(timeout):
        try:
            model, tokenizer = _load_hf(name, False, device)
            return LoadedModel(model, tokenizer, f"{name} (Hugging Face hub)", False)
        except (OSError, ValueError) as exc:  # a wrong name, a broken download
            reason = f"loading it failed ({type(exc).__name__})"
    print(f"{name!r} is not available ({reason}): using the course {fallback.upper()} checkpoint "
          "instead, converted to a transformers model.")
    from course_lib.checkpoint import load_pretrained

    course, tokenizer, _ = load_pretrained(fallback_folder or fallback, device=device)
    if fallback == "gpt":
        model = course.to_hf(attn_implementation="eager")
    else:
        model = course.to_hf()
        model.set_attn_implementation("eager")
    if tokenizer is None:
        raise FileNotFoundError(f"{caller}: the course {fallback.upper()} checkpoint folder holds no tokenizer")
    return LoadedModel(model.eval(), tokenizer, f"course {fallback.upper()} checkpoint", True)


# ---- offline pictures --------------------------------------------------------------------------
def display_tokens(tokens: Sequence[str]) -> list[str]:
    """Tokens as labels: byte-level BPE's ``Ġ`` (a space before the word) becomes ``_``, ``Ċ`` a ``\\n``."""
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"display_tokens expected a list of strings, got {type(tokens).__name__}")
    return [str(t).replace("Ġ", "_").replace("▁", "_").replace("Ċ", "\\n") for t in tokens]


class Link(NamedTuple):
    """One attention link: ``query`` (a row) attends to ``key`` (a column) with ``weight``."""

    query: int
    key: int
    query_token: str
    key_token: str
    weight: float

    def __str__(self) -> str:
        return f"{self.query_token!r}({self.query}) -> {self.key_token!r}({self.key}): {self.weight:.2f}"


def _square_or_matrix(weights, caller: str) -> np.ndarray:
    matrix = _to_numpy(weights, "weights", caller)
    if matrix.ndim != 2:
        raise ValueError(
            f"{caller} expected one head's (n_queries, n_keys) weights, got shape {matrix.shape}; pick "
            "one head first, e.g. data.head(layer, head)"
        )
    return matrix


def strongest_links(
    weights,
    tokens: Sequence[str] | None = None,
    k: int = 5,
    *,
    x_tokens: Sequence[str] | None = None,
    skip_self: bool = False,
    skip_first: bool = False,
) -> list[Link]:
    """The ``k`` largest weights of one head, strongest first.

    Args:
        weights: ``(n_q, n_k)`` one head's weights.
        tokens: the query tokens (and the key tokens, unless ``x_tokens`` is given); default the
            positions as text.
        k: how many links.
        x_tokens: the key tokens, for cross-attention.
        skip_self: leave out a token attending to its own position.
        skip_first: leave out the first query (in a causal model it can only attend to itself,
            with weight 1, which says nothing about the head).

    Returns:
        A list of ``Link(query, key, query_token, key_token, weight)``.
    """
    caller = "strongest_links"
    matrix = _square_or_matrix(weights, caller)
    n_q, n_k = matrix.shape
    k = validate.positive_int(k, "k", caller)
    if x_tokens is None and tokens is not None and n_q == n_k:
        x_tokens = tokens
    y_labels = _labels(tokens, n_q, "tokens (queries, rows)", caller) or [str(i) for i in range(n_q)]
    x_labels = _labels(x_tokens, n_k, "x_tokens (keys, columns)", caller) or [str(j) for j in range(n_k)]
    values = matrix.copy()
    if skip_self:
        np.fill_diagonal(values, -np.inf)
    if skip_first:
        values[0] = -np.inf
    order = np.argsort(-values, axis=None, kind="stable")[: min(k, values.size)]
    links = []
    for flat in order:
        i, j = divmod(int(flat), n_k)
        if not np.isfinite(values[i, j]):
            break
        links.append(Link(i, j, y_labels[i], x_labels[j], float(matrix[i, j])))
    return links


def attention_links(
    weights,
    tokens: Sequence[str],
    ax=None,
    *,
    x_tokens: Sequence[str] | None = None,
    top_k: int | None = None,
    title: str | None = None,
    color: str = "tab:blue",
    highlight: int | None = None,
):
    """Draw one head as bertviz does: queries on the left, keys on the right, a line per weight.

    Each line's opacity and width grow with its weight (relative to the head's largest), so a
    sharp head shows a few dark lines and a broad head a grey fan.

    Args:
        weights: ``(n_q, n_k)`` one head's weights.
        tokens: the ``n_q`` query tokens (and the keys', unless ``x_tokens``).
        ax: a matplotlib Axes; a new figure when None.
        x_tokens: the ``n_k`` key tokens.
        top_k: draw only each query's ``top_k`` strongest links (None: all of them).
        title: the Axes title.
        color: the colour of the lines.
        highlight: one query position whose links are drawn in red, the others faded.

    Returns:
        The matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    caller = "attention_links"
    matrix = _square_or_matrix(weights, caller)
    n_q, n_k = matrix.shape
    if x_tokens is None and n_q == n_k:
        x_tokens = tokens
    y_labels = _labels(tokens, n_q, "tokens (queries, left)", caller)
    x_labels = _labels(x_tokens, n_k, "x_tokens (keys, right)", caller)
    if y_labels is None or x_labels is None:
        raise ValueError(f"{caller} needs the tokens to write beside the lines")
    if top_k is not None:
        top_k = validate.positive_int(top_k, "top_k", caller)
    if highlight is not None:
        _check_index(highlight, n_q, "highlight (a query position)", caller)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, max(2.5, 0.28 * max(n_q, n_k) + 0.8)))
    vmax = max(float(matrix.max()) if matrix.size else 1.0, 1e-6)
    keep = np.ones_like(matrix, dtype=bool)
    if top_k is not None and top_k < n_k:
        cut = -np.sort(-matrix, axis=1)[:, top_k - 1 : top_k]
        keep = matrix >= cut
    for i in range(n_q):
        for j in range(n_k):
            strength = matrix[i, j] / vmax
            if not keep[i, j] or strength < 0.02:
                continue
            line_color, alpha = color, 0.9 * strength
            if highlight is not None:
                line_color, alpha = ("tab:red", 0.95 * strength) if i == highlight else (color, 0.15 * strength)
            ax.plot([0.0, 1.0], [i, j], color=line_color, alpha=alpha, lw=0.5 + 3.0 * strength,
                    solid_capstyle="round")
    size = _font_size(max(n_q, n_k))
    for i, label in enumerate(y_labels):
        ax.text(-0.04, i, label, ha="right", va="center", fontsize=size,
                color="tab:red" if i == highlight else "black")
    for j, label in enumerate(x_labels):
        ax.text(1.04, j, label, ha="left", va="center", fontsize=size)
    ax.set_xlim(-0.6, 1.6)
    ax.set_ylim(max(n_q, n_k) - 0.5, -0.5)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def _as_stack(attention, caller: str) -> tuple[torch.Tensor, list[str] | None]:
    """``(layers, heads, q, k)`` float64 weights and the tokens, from any of the accepted inputs."""
    if isinstance(attention, AttentionData):
        return attention.stacked().detach().cpu().double(), list(attention.tokens)
    if isinstance(attention, (list, tuple)):
        layers = _layer_list(attention, caller)
        if layers[0].shape[0] != 1:
            raise ValueError(
                f"{caller} draws one example; got a batch of {layers[0].shape[0]}: use to_bertviz(..., example=i)"
            )
        return torch.stack([a[0] for a in layers]).detach().cpu().double(), None
    stack = torch.as_tensor(_to_numpy(attention, "attention", caller))
    if stack.dim() != 4:
        raise ValueError(
            f"{caller} expected AttentionData, a list of per-layer (1, heads, seq, seq) tensors or a "
            f"(layers, heads, seq, seq) tensor, got shape {tuple(stack.shape)}"
        )
    return stack, None


def attention_layers_grid(
    attention,
    tokens: Sequence[str] | None = None,
    *,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    panel_size: float = 1.4,
    show_tokens: bool | None = None,
    suptitle: str | None = None,
    cmap: str = "Blues",
    vmax: float | None = None,
):
    """A static "model view": one small heatmap per layer (rows) and head (columns).

    Every panel shares one colour scale (0 .. the largest weight), so a sharp head (a few dark
    cells) stands out from a broad one (a pale wash).

    Args:
        attention: an ``AttentionData``, a list with one ``(1, heads, seq, seq)`` tensor per layer,
            or a ``(layers, heads, seq, seq)`` tensor.
        tokens: the ``seq`` tokens (default: the ``AttentionData``'s).
        layers, heads: which layers and heads to draw (default: all).
        panel_size: the size of one panel in inches.
        show_tokens: write the tokens on the outer panels (default: when ``seq <= 12``).
        suptitle: a title over the grid.
        cmap: the colour map.
        vmax: the top of the shared colour scale (default: the largest weight drawn); a lower
            value saturates the strong cells and shows the faint patterns.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    caller = "attention_layers_grid"
    stack, own_tokens = _as_stack(attention, caller)
    n_layers, n_heads, n_q, n_k = stack.shape
    if tokens is None:
        tokens = own_tokens
    labels = _labels(display_tokens(tokens) if tokens is not None else None, n_k, "tokens", caller)
    layers = list(range(n_layers)) if layers is None else [_check_index(i, n_layers, "layer", caller) for i in layers]
    heads = list(range(n_heads)) if heads is None else [_check_index(h, n_heads, "head", caller) for h in heads]
    if not layers or not heads:
        raise ValueError(f"{caller} needs at least one layer and one head to draw")
    if show_tokens is None:
        show_tokens = labels is not None and n_k <= 12
    fig, axes = plt.subplots(
        len(layers), len(heads), figsize=(panel_size * len(heads) + 1.0, panel_size * len(layers) + 0.5),
        squeeze=False, constrained_layout=True,
    )
    if vmax is None:
        vmax = float(stack[layers][:, heads].max())
    else:
        vmax = validate.number(vmax, "vmax", caller, low=0, low_open=True)
    vmax = max(float(vmax), 1e-6)
    image = None
    for r, layer in enumerate(layers):
        for c, head in enumerate(heads):
            ax = axes[r, c]
            image = ax.imshow(stack[layer, head].numpy(), cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto",
                              interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"head {head}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=9)
            if show_tokens and labels is not None:
                if r == len(layers) - 1:
                    ax.set_xticks(range(n_k))
                    ax.set_xticklabels(labels, rotation=90, fontsize=6)
                if c == 0:
                    ax.set_yticks(range(n_q))
                    ax.set_yticklabels(labels, fontsize=6)
    fig.colorbar(image, ax=axes, fraction=0.02, pad=0.01, label="attention weight")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


# ---- head statistics ---------------------------------------------------------------------------
def _stat_input(weights, caller: str, square: bool) -> torch.Tensor:
    if isinstance(weights, AttentionData):
        values = weights.stacked().detach().cpu().double()
    else:
        values = torch.as_tensor(_to_numpy(weights, "weights", caller))
    if values.dim() < 2:
        raise ValueError(
            f"{caller} expected weights with queries and keys as the last two dims (..., n_q, n_k), "
            f"got shape {tuple(values.shape)}"
        )
    if square and values.shape[-1] != values.shape[-2]:
        raise ValueError(
            f"{caller} compares query and key positions, so it needs self-attention (..., seq, seq); "
            f"got {tuple(values.shape[-2:])}"
        )
    if values.shape[-1] == 0 or values.shape[-2] == 0:
        raise ValueError(f"{caller} got an empty attention matrix {tuple(values.shape)}")
    return values


def attention_entropy(weights) -> torch.Tensor:
    """Each head's average attention entropy, in nats: how spread out its weights are.

    For one query row ``p``, ``H = -sum_k p_k log p_k`` (0 log 0 = 0): 0 when the query looks at a
    single key, ``log n`` when it spreads evenly over ``n`` keys. Averaged over the query rows.
    (A causal model's early rows see few keys, so its entropies are lower for that reason alone.)

    Args:
        weights: ``(..., n_q, n_k)`` weights, e.g. ``(layers, heads, seq, seq)``, or ``AttentionData``.

    Returns:
        ``(...)`` float64 tensor, e.g. ``(layers, heads)``.
    """
    p = _stat_input(weights, "attention_entropy", square=False)
    return (-torch.xlogy(p, p).sum(-1)).mean(-1)


def mean_attention_distance(weights) -> torch.Tensor:
    """Each head's average attention distance: how far, in positions, its queries look.

    For query ``i``: ``sum_j p_ij |i - j|``, averaged over the query rows. A previous-token head
    gives about 1, a head on the first token about half the length, a head on itself 0.

    Args:
        weights: ``(..., seq, seq)`` self-attention weights, or ``AttentionData``.

    Returns:
        ``(...)`` float64 tensor.
    """
    p = _stat_input(weights, "mean_attention_distance", square=True)
    n = p.shape[-1]
    positions = torch.arange(n, dtype=p.dtype)
    distance = (positions[:, None] - positions[None, :]).abs()
    return (p * distance).sum(-1).mean(-1)


def previous_token_score(weights, offset: int = 1) -> torch.Tensor:
    """The average weight each query puts on the token ``offset`` positions before it.

    ``mean over i >= offset of p[i, i - offset]``; ``offset=1`` scores previous-token heads,
    ``offset=0`` attention to oneself, a negative offset the tokens after (BERT only). Queries
    without such a key (the first ``offset`` ones) are left out of the average.

    Args:
        weights: ``(..., seq, seq)`` self-attention weights, or ``AttentionData``.
        offset: how many positions back.

    Returns:
        ``(...)`` float64 tensor.
    """
    caller = "previous_token_score"
    p = _stat_input(weights, caller, square=True)
    n = p.shape[-1]
    offset = validate.positive_int(offset, "offset", caller, minimum=1 - n, maximum=n - 1)  # |offset| < seq
    return torch.diagonal(p, offset=-offset, dim1=-2, dim2=-1).mean(-1)


def attention_to(weights, positions) -> torch.Tensor:
    """The average total weight the queries put on some key positions (e.g. ``[CLS]``, ``[SEP]``).

    Args:
        weights: ``(..., n_q, n_k)`` weights, or ``AttentionData``.
        positions: one key position, a list of them, or a boolean ``(n_k,)`` mask.

    Returns:
        ``(...)`` float64 tensor: ``mean over queries of sum over those keys``.
    """
    caller = "attention_to"
    p = _stat_input(weights, caller, square=False)
    n = p.shape[-1]
    if isinstance(positions, torch.Tensor) and positions.dtype == torch.bool:
        if positions.shape != (n,):
            raise ValueError(f"{caller} expected a boolean mask of shape ({n},), got {tuple(positions.shape)}")
        index = positions.nonzero().flatten().tolist()
    elif isinstance(positions, int) and not isinstance(positions, bool):
        index = [positions]
    elif isinstance(positions, (Sequence, torch.Tensor)) and not isinstance(positions, str):
        index = [int(i) for i in positions]
    else:
        raise TypeError(f"{caller} expected positions as an int, a list of ints or a boolean mask, "
                        f"got {type(positions).__name__}")
    if not index:
        raise ValueError(f"{caller} got no positions to measure attention to")
    for i in index:
        if not -n <= i < n:
            raise ValueError(f"{caller}: key position {i} is outside 0..{n - 1}")
    return p[..., sorted({i % n for i in index})].sum(-1).mean(-1)


def head_statistics(
    data: AttentionData | Sequence[AttentionData],
    special_tokens: Sequence[str] = ("[CLS]", "[SEP]"),
) -> dict[str, torch.Tensor]:
    """The usual per-head measures, each a ``(layers, heads)`` tensor, averaged over the inputs.

    Keys: ``"entropy"`` (nats), ``"distance"`` (positions), ``"self"`` and ``"previous"``
    (``previous_token_score`` with offset 0 and 1), ``"first"`` (attention to position 0) and, for
    each special token found in at least one input, that token (attention to all its positions,
    averaged over the inputs that hold it).

    Args:
        data: one ``AttentionData`` or a list of them (from the same model).
        special_tokens: tokens to measure attention to.

    Returns:
        ``{name: (layers, heads) float64 tensor}``.
    """
    caller = "head_statistics"
    items = [data] if isinstance(data, AttentionData) else list(data) if isinstance(data, Sequence) else None
    if not items or not all(isinstance(d, AttentionData) for d in items):
        raise TypeError(f"{caller} expected AttentionData or a non-empty list of them (from model_attentions)")
    shape = (items[0].num_layers, items[0].num_heads)
    for d in items:
        if (d.num_layers, d.num_heads) != shape:
            raise ValueError(
                f"{caller}: inputs from different models: {shape} and {(d.num_layers, d.num_heads)} (layers, heads)"
            )
        if d.seq_len < 2:
            raise ValueError(f"{caller} needs inputs of at least 2 tokens, got {d.tokens}")
    measures = {
        "entropy": attention_entropy,
        "distance": mean_attention_distance,
        "self": lambda w: previous_token_score(w, 0),
        "previous": previous_token_score,
        "first": lambda w: attention_to(w, 0),
    }
    stats = {name: torch.stack([fn(d.stacked().double()) for d in items]).mean(0) for name, fn in measures.items()}
    for token in special_tokens:
        found = [(d, [i for i, t in enumerate(d.tokens) if t == token]) for d in items]
        found = [(d, index) for d, index in found if index]
        if found:
            stats[token] = torch.stack([attention_to(d.stacked().double(), index) for d, index in found]).mean(0)
    return stats


def top_heads(scores, k: int = 3, *, largest: bool = True) -> list[tuple[int, int, float]]:
    """The ``k`` heads with the largest (or smallest) score.

    Args:
        scores: ``(layers, heads)``, e.g. ``head_statistics(data)["previous"]``.
        k: how many.
        largest: False for the smallest scores (e.g. the sharpest heads by entropy).

    Returns:
        ``[(layer, head, score), ...]``, best first.
    """
    values = torch.as_tensor(_to_numpy(scores, "scores", "top_heads"))
    if values.dim() != 2:
        raise ValueError(f"top_heads expected (layers, heads) scores, got shape {tuple(values.shape)}")
    k = validate.positive_int(k, "k", "top_heads")
    best = torch.topk(values.flatten(), min(k, values.numel()), largest=largest)
    n_heads = values.shape[1]
    return [(int(i) // n_heads, int(i) % n_heads, float(v)) for v, i in zip(best.values, best.indices)]
