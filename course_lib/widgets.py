"""Interactive explorers (ipywidgets) for the ideas that have a knob.

Each explorer is an object that shows itself when it is the last value of a cell, and exposes the
numbers it draws (``.weights()``, ``.similarities()``...) so its behaviour can be tested and used
without a browser::

    from course_lib import widgets
    widgets.softmax_temperature_explorer(scores, labels)
    widgets.AttentionExplorer(tokens, queries, keys)
    widgets.PositionExplorer(max_len=64, d_model=32)
    widgets.AttentionViewer({"GPT": gpt_data, "BERT pair": bert_data})   # offline attention viewer

A widget's picture lives in the widget state, which a stored notebook or GitHub does not show: draw
one static picture of the same idea before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from course_lib import _validate as validate
from course_lib.attention import causal_mask, scaled_dot_product_attention
from course_lib.positional import apply_rotary, sinusoidal_encoding

__all__ = [
    "SoftmaxTemperatureExplorer",
    "softmax_temperature_explorer",
    "AttentionExplorer",
    "PositionExplorer",
    "AttentionViewer",
]


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError as exc:  # pragma: no cover - ipywidgets is in requirements.txt
        raise ImportError(
            "the explorers need ipywidgets: `pip install ipywidgets` (it comes with requirements.txt)"
        ) from exc
    return ipywidgets


def _float64_cpu(values) -> torch.Tensor:
    """A float64 CPU copy of a tensor (any device, with or without gradients) or a list of numbers."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().clone()  # cpu first: MPS has no float64
    return torch.tensor(values, dtype=torch.float64)


class _Explorer:
    """Shared plumbing: a widget tree in ``self.widget`` and an ``Output`` redrawn by ``draw``."""

    widget = None
    _output = None

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def refresh(self, *_) -> None:
        """Redraw the picture for the current control values."""
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig = self.draw()
        self._output.clear_output(wait=True)
        with self._output:
            display(fig)  # this figure only: plt.show() would also flush the notebook's own figures
        plt.close(fig)

    def draw(self):  # pragma: no cover - overridden
        """Draw the picture on a new figure and return the figure."""
        raise NotImplementedError


# ---- softmax temperature --------------------------------------------------------------------
class SoftmaxTemperatureExplorer(_Explorer):
    """A temperature slider over ``softmax(scores / temperature)``, drawn as bars with the entropy.

    Args:
        scores: ``(n,)`` scores (logits), a tensor or a list of numbers.
        labels: ``n`` names for the bars.
        temperature: the starting temperature.
        min_temperature, max_temperature: the slider's range (log scale), both > 0.
    """

    def __init__(
        self,
        scores,
        labels: Sequence[str],
        temperature: float = 1.0,
        min_temperature: float = 0.05,
        max_temperature: float = 20.0,
    ) -> None:
        w = _ipywidgets()
        scores = _float64_cpu(scores)
        if scores.dim() != 1 or scores.numel() < 2:
            raise ValueError(
                f"SoftmaxTemperatureExplorer expected (n,) scores with n >= 2, got shape {tuple(scores.shape)}"
            )
        if len(labels) != scores.numel():
            raise ValueError(
                f"SoftmaxTemperatureExplorer: {len(labels)} labels for {scores.numel()} scores"
            )
        caller = "SoftmaxTemperatureExplorer"  # 0 < min_temperature <= temperature <= max_temperature
        min_temperature = validate.number(min_temperature, "min_temperature", caller, low=0, low_open=True)
        max_temperature = validate.number(max_temperature, "max_temperature", caller, low=min_temperature)
        temperature = validate.number(temperature, "temperature", caller, low=min_temperature, high=max_temperature)
        self.scores, self.labels = scores, [str(label) for label in labels]
        self.slider = w.FloatLogSlider(
            value=temperature, base=10, min=math.log10(min_temperature),
            max=math.log10(max_temperature), step=0.05, description="temperature",
            continuous_update=True, readout_format=".2f",
        )
        self._output = w.Output()
        self.slider.observe(self.refresh, names="value")
        self.widget = w.VBox([self.slider, self._output])
        self.refresh()

    def probabilities(self) -> torch.Tensor:
        """``softmax(scores / temperature)`` at the slider's temperature, ``(n,)`` float64."""
        return torch.softmax(self.scores / self.slider.value, dim=0)

    def draw(self):
        import matplotlib.pyplot as plt

        p = self.probabilities()
        entropy = float(-(p * p.clamp_min(1e-300).log()).sum())
        fig, ax = plt.subplots(figsize=(6, 2.6))
        ax.bar(self.labels, p.numpy(), color="tab:purple")
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.set_title(
            f"temperature {self.slider.value:.2f}: entropy {entropy:.2f} nats "
            f"(uniform: {math.log(len(p)):.2f})"
        )
        return fig


def softmax_temperature_explorer(scores, labels: Sequence[str], **kwargs) -> SoftmaxTemperatureExplorer:
    """Shortcut for ``SoftmaxTemperatureExplorer(scores, labels, **kwargs)``."""
    return SoftmaxTemperatureExplorer(scores, labels, **kwargs)


# ---- attention ------------------------------------------------------------------------------
class AttentionExplorer(_Explorer):
    """Edit one query vector and the mask, and watch the attention weights change.

    Controls: which query to edit, one slider per feature of that query, the mask (none, causal),
    keys hidden from every query (padding), and whether scores are scaled by ``1/sqrt(d_k)``.
    The picture is the full weights matrix (the edited row framed) and the edited row as bars.

    Args:
        tokens: the ``T`` tokens (labels of queries and keys: self-attention).
        queries: ``(T, d_k)`` query vectors, ``d_k <= 8`` so that each feature gets a slider.
        keys: ``(T, d_k)`` key vectors.
        query: the query selected at first (default: the last token).
        slider_range: the sliders' range ``(-r, r)``.
    """

    MAX_FEATURES = 8

    def __init__(
        self,
        tokens: Sequence[str],
        queries,
        keys,
        query: int | None = None,
        slider_range: float = 4.0,
    ) -> None:
        w = _ipywidgets()
        caller = "AttentionExplorer"
        queries, keys = _float64_cpu(queries), _float64_cpu(keys)
        if queries.dim() != 2 or keys.dim() != 2 or queries.shape != keys.shape:
            raise ValueError(
                f"{caller} expected queries and keys of one shape (T, d_k), got "
                f"{tuple(queries.shape)} and {tuple(keys.shape)}"
            )
        T, d = queries.shape
        if len(tokens) != T:
            raise ValueError(f"{caller}: {len(tokens)} tokens for {T} queries and keys")
        if d > self.MAX_FEATURES:
            raise ValueError(
                f"{caller} gives each query feature a slider, so d_k must be at most "
                f"{self.MAX_FEATURES}; got d_k={d}"
            )
        if query is None:
            query = T - 1
        query = validate.positive_int(query, "query (a position)", caller, minimum=0, maximum=T - 1)
        self.tokens = [str(t) for t in tokens]
        self.queries, self.keys = queries, keys
        self.query = w.Dropdown(
            options=[(f"{i}: {t}", i) for i, t in enumerate(self.tokens)], value=query,
            description="query",
        )
        self.sliders = [
            w.FloatSlider(value=float(queries[query, j]), min=-slider_range, max=slider_range,
                          step=0.1, description=f"q[{j}]", continuous_update=False)
            for j in range(d)
        ]
        self.mask_kind = w.ToggleButtons(options=["none", "causal"], value="none", description="mask")
        self.hidden_keys = w.SelectMultiple(
            options=[(f"{i}: {t}", i) for i, t in enumerate(self.tokens)], value=(),
            description="hide keys", rows=min(T, 6),
        )
        self.scaled = w.Checkbox(value=True, description="scale scores by 1/sqrt(d_k)")
        self._output = w.Output()
        self._syncing = False
        self.query.observe(self._select_query, names="value")
        for slider in self.sliders:
            slider.observe(self._edit_query, names="value")
        for control in (self.mask_kind, self.hidden_keys, self.scaled):
            control.observe(self.refresh, names="value")
        controls = w.VBox([self.query, *self.sliders])
        options = w.VBox([self.mask_kind, self.hidden_keys, self.scaled])
        self.widget = w.VBox([w.HBox([controls, options]), self._output])
        self.refresh()

    def _select_query(self, change) -> None:
        self._syncing = True  # moving the sliders to the new query is not an edit
        for j, slider in enumerate(self.sliders):
            slider.value = float(self.queries[change["new"], j])
        self._syncing = False
        self.refresh()

    def _edit_query(self, change) -> None:
        if self._syncing:
            return
        self.queries[self.query.value] = torch.tensor([s.value for s in self.sliders])
        self.refresh()

    def mask(self) -> torch.Tensor:
        """The current ``(T, T)`` boolean mask (True = allowed)."""
        T = len(self.tokens)
        mask = causal_mask(T) if self.mask_kind.value == "causal" else torch.ones(T, T, dtype=torch.bool)
        hidden = list(self.hidden_keys.value)
        if hidden:
            mask = mask.clone()
            mask[:, hidden] = False
        return mask

    def weights(self) -> torch.Tensor:
        """The ``(T, T)`` attention weights for the current queries, mask and scaling."""
        scale = None if self.scaled.value else 1.0
        values = torch.eye(len(self.tokens), dtype=torch.float64)  # only the weights are shown
        _, weights = scaled_dot_product_attention(
            self.queries, self.keys, values, self.mask(), scale=scale
        )
        return weights

    def draw(self):
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle

        from course_lib.viz import attention_heatmap

        weights = self.weights()
        i = self.query.value
        T = len(self.tokens)
        fig, (left, right) = plt.subplots(
            1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1.2, 1]}
        )
        attention_heatmap(weights, self.tokens, self.tokens, ax=left, annotate=T <= 8)
        left.add_patch(Rectangle((-0.5, i - 0.5), T, 1, fill=False, edgecolor="tab:red", lw=2))
        right.bar(range(T), weights[i].numpy(), color="tab:red")
        right.set_xticks(range(T))
        right.set_xticklabels(self.tokens, rotation=90)
        right.set_ylim(0, 1)
        right.set_ylabel("weight")
        right.set_title(f"query {i} ({self.tokens[i]!r}) attends to")
        fig.tight_layout()
        return fig


# ---- position -------------------------------------------------------------------------------
class PositionExplorer(_Explorer):
    """Explore sinusoidal and rotary position encodings: frequencies and dot products between positions.

    Controls: the encoding (sinusoidal or rotary), a reference position, the base (wavelength
    scale) and which frequency pair to draw. The left picture draws the chosen pair of dimensions
    against the position; the right one the dot product between the reference position and every
    other one. For sinusoidal tables it is ``PE[ref] . PE[n]``; for rotary it is the score of one
    fixed query rotated to ``ref`` against one fixed key rotated to ``n``, which depends on
    ``n - ref`` only: move the reference and the curve slides without changing shape.

    Args:
        max_len: the number of positions drawn.
        d_model: the encoding size (even).
        seed: the seed of the random query and key of the rotary picture.
    """

    def __init__(self, max_len: int = 64, d_model: int = 32, seed: int = 0) -> None:
        w = _ipywidgets()
        sinusoidal_encoding(max_len, d_model)  # validates both sizes
        self.max_len, self.d_model = max_len, d_model
        generator = torch.Generator().manual_seed(seed)
        self.query_vector = torch.randn(d_model, generator=generator, dtype=torch.float64)
        self.key_vector = self.query_vector + 0.3 * torch.randn(
            d_model, generator=generator, dtype=torch.float64
        )
        self.kind = w.ToggleButtons(options=["sinusoidal", "rotary"], value="sinusoidal",
                                    description="encoding")
        self.position = w.IntSlider(value=max_len // 2, min=0, max=max_len - 1,
                                    description="reference", continuous_update=False)
        self.base = w.FloatLogSlider(value=10000.0, base=10, min=1, max=5, step=0.25,
                                     description="base", continuous_update=False)
        self.pair = w.IntSlider(value=0, min=0, max=d_model // 2 - 1, description="pair i",
                                continuous_update=False)
        self._output = w.Output()
        for control in (self.kind, self.position, self.base, self.pair):
            control.observe(self.refresh, names="value")
        self.widget = w.VBox([w.HBox([self.kind, self.position]), w.HBox([self.base, self.pair]),
                              self._output])
        self.refresh()

    def table(self) -> torch.Tensor:
        """The ``(max_len, d_model)`` sinusoidal table at the current base (float64)."""
        return sinusoidal_encoding(self.max_len, self.d_model, base=self.base.value, dtype=torch.float64)

    def similarities(self) -> torch.Tensor:
        """Dot products between the reference position and every position, ``(max_len,)``."""
        ref = self.position.value
        if self.kind.value == "sinusoidal":
            table = self.table()
            return table @ table[ref]
        positions = torch.arange(self.max_len)
        keys = apply_rotary(self.key_vector.expand(self.max_len, -1), positions, self.base.value)
        query = apply_rotary(self.query_vector[None], torch.tensor([ref]), self.base.value)[0]
        return keys @ query

    def wavelength(self) -> float:
        """The wavelength, in positions, of the chosen pair: ``2 pi base^(2i/d)``."""
        return 2 * math.pi * self.base.value ** (2 * self.pair.value / self.d_model)

    def draw(self):
        import matplotlib.pyplot as plt

        i, ref = self.pair.value, self.position.value
        positions = torch.arange(self.max_len)
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.2))
        table = self.table()
        left.plot(positions, table[:, 2 * i], label=f"sin (dim {2 * i})")
        left.plot(positions, table[:, 2 * i + 1], label=f"cos (dim {2 * i + 1})")
        left.axvline(ref, color="gray", ls=":")
        left.set_xlabel("position")
        left.set_title(f"pair {i}: wavelength {self.wavelength():.1f} positions")
        left.legend(loc="lower right", fontsize=8)
        right.plot(positions, self.similarities(), color="tab:green")
        right.axvline(ref, color="gray", ls=":")
        right.set_xlabel("position n")
        what = "PE[ref] . PE[n]" if self.kind.value == "sinusoidal" else "rot(q, ref) . rot(k, n)"
        right.set_title(f"{self.kind.value}: {what}, ref = {ref}")
        fig.tight_layout()
        return fig


# ---- looking inside: an offline attention viewer -----------------------------------------------
class AttentionViewer(_Explorer):
    """Pick an input, a layer and a head; see the heatmap and the strongest links, without internet.

    The offline twin of bertviz's head view (which loads its JavaScript from a CDN and shows
    nothing offline or on GitHub). Controls: the input (sentence), the layer, the head, the
    number of links kept per query, and a query to highlight. The picture: the head's heatmap,
    the same head as lines (queries left, keys right), and the head's entropy, mean distance and
    strongest links in the title.

    Args:
        examples: an ``AttentionData`` (from ``course_lib.viz.model_attentions``), a list of them,
            or a dict ``{name: AttentionData}``; they may come from different models (the layer and
            head sliders follow the selected input's model).
        layer, head: the starting layer and head (of the first input).
        top_k: links kept per query at first.
    """

    def __init__(self, examples, layer: int = 0, head: int = 0, top_k: int = 2) -> None:
        from course_lib.viz import AttentionData, display_tokens

        w = _ipywidgets()
        caller = "AttentionViewer"
        if isinstance(examples, AttentionData):
            examples = {"input": examples}
        elif isinstance(examples, (list, tuple)) and all(isinstance(d, AttentionData) for d in examples):
            examples = {f"{i}: {' '.join(display_tokens(d.tokens[:6]))}": d for i, d in enumerate(examples)}
        if not isinstance(examples, dict) or not examples or not all(
            isinstance(d, AttentionData) for d in examples.values()
        ):
            raise TypeError(
                f"{caller} expected AttentionData (from course_lib.viz.model_attentions), a list of them "
                "or a dict {name: AttentionData}"
            )
        first = next(iter(examples.values()))
        shape = (first.num_layers, first.num_heads)
        for value, size, what in ((layer, shape[0], "layer"), (head, shape[1], "head")):
            validate.positive_int(value, what, caller, minimum=0, maximum=size - 1)
        top_k = validate.positive_int(top_k, "top_k", caller)
        self.examples = dict(examples)
        self.example = w.Dropdown(options=list(self.examples), description="input")
        self.layer = w.IntSlider(value=layer, min=0, max=shape[0] - 1, description="layer",
                                 continuous_update=False)
        self.head = w.IntSlider(value=head, min=0, max=shape[1] - 1, description="head",
                                continuous_update=False)
        self.top_k = w.IntSlider(value=min(top_k, first.seq_len), min=1, max=max(first.seq_len, 1),
                                 description="links/query", continuous_update=False)
        self.highlight = w.Dropdown(description="highlight")
        self._set_highlight_options()
        self._output = w.Output()
        self.example.observe(self._change_example, names="value")
        for control in (self.layer, self.head, self.top_k, self.highlight):
            control.observe(self.refresh, names="value")
        self.widget = w.VBox([
            w.HBox([self.example, self.highlight]), w.HBox([self.layer, self.head, self.top_k]), self._output,
        ])
        self.refresh()

    def _set_highlight_options(self) -> None:
        from course_lib.viz import display_tokens

        tokens = display_tokens(self.data().tokens)
        self._syncing = True
        self.highlight.options = [("none", -1)] + [(f"{i}: {t}", i) for i, t in enumerate(tokens)]
        self.highlight.value = -1
        self._syncing = False

    def _change_example(self, _change) -> None:
        data = self.data()
        self._syncing = True  # the inputs may come from models of other sizes: adapt the sliders
        self.layer.value = min(self.layer.value, data.num_layers - 1)
        self.layer.max = data.num_layers - 1
        self.head.value = min(self.head.value, data.num_heads - 1)
        self.head.max = data.num_heads - 1
        self.top_k.max = max(data.seq_len, 1)
        self._syncing = False
        self._set_highlight_options()
        self.refresh()

    def refresh(self, *_) -> None:
        if getattr(self, "_syncing", False):
            return
        super().refresh()

    def data(self):
        """The selected input's ``AttentionData``."""
        return self.examples[self.example.value]

    def weights(self) -> torch.Tensor:
        """The selected head's ``(seq, seq)`` weights."""
        return self.data().head(self.layer.value, self.head.value)

    def links(self, k: int = 5):
        """The selected head's ``k`` strongest links (``course_lib.viz.strongest_links``).

        In a causal model the first query, which can only attend to itself, is left out.
        """
        from course_lib.viz import display_tokens, strongest_links

        weights = self.weights()
        causal = bool((torch.triu(weights, diagonal=1) == 0).all())  # row 0 can only see itself
        return strongest_links(weights, display_tokens(self.data().tokens), k, skip_first=causal)

    def draw(self):
        import matplotlib.pyplot as plt

        from course_lib.viz import (
            attention_entropy,
            attention_heatmap,
            attention_links,
            display_tokens,
            mean_attention_distance,
        )

        data, weights = self.data(), self.weights()
        tokens = display_tokens(data.tokens)
        n = len(tokens)
        highlight = None if self.highlight.value in (None, -1) else self.highlight.value
        fig, (left, right) = plt.subplots(
            1, 2, figsize=(11, max(3.2, 0.26 * n + 1.2)), gridspec_kw={"width_ratios": [1.4, 1]}
        )
        attention_heatmap(weights, tokens, tokens, ax=left, annotate=n <= 8)
        if data.sentence_b_start is not None:  # the border between sentence A and sentence B
            for line in (left.axvline, left.axhline):
                line(data.sentence_b_start - 0.5, color="tab:orange", lw=1.2)
        attention_links(weights, tokens, ax=right, top_k=self.top_k.value, highlight=highlight)
        best = "; ".join(f"{link.query_token}->{link.key_token} {link.weight:.2f}" for link in self.links(3))
        fig.suptitle(
            f"layer {self.layer.value}, head {self.head.value}: entropy "
            f"{float(attention_entropy(weights)):.2f} nats, mean distance "
            f"{float(mean_attention_distance(weights)):.1f} positions\nstrongest: {best}", fontsize=10,
        )
        fig.tight_layout()
        return fig
