"""Pictures the course draws again and again: attention heatmaps with tokens on the axes, a grid of
heads, and a general matrix heatmap (position tables, similarity matrices).

    from course_lib import viz
    viz.attention_heatmap(weights[0, 0], tokens, tokens)        # one head: (n_q, n_k)
    viz.attention_heads_grid(weights[0], tokens, tokens)         # all heads: (heads, n_q, n_k)

Every function takes a torch tensor (on any device, with or without gradients) or a NumPy array.
Queries are rows (the y axis, read top to bottom), keys are columns (the x axis).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["attention_heatmap", "attention_heads_grid", "matrix_heatmap"]


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
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"{caller} expected a positive int ncols, got {ncols!r}")
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
