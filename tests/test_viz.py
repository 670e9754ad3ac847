"""course_lib.viz and course_lib.widgets: the pictures build with labelled axes, the explorers react."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import viz, widgets  # noqa: E402
from course_lib.attention import causal_mask  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


TOKENS = ["the", "cat", "sat", "on", "the", "mat"]


def ticks(labels):
    return [t.get_text() for t in labels]


# ---- attention_heatmap ----------------------------------------------------------------------
def test_attention_heatmap_puts_tokens_on_both_axes_and_a_colour_bar():
    weights = torch.softmax(torch.randn(6, 6), dim=-1)
    ax = viz.attention_heatmap(weights, TOKENS, TOKENS, title="one head")
    assert ticks(ax.get_xticklabels()) == TOKENS and ticks(ax.get_yticklabels()) == TOKENS
    assert ax.get_xlabel().startswith("keys") and ax.get_ylabel().startswith("queries")
    assert ax.get_title() == "one head"
    assert len(ax.figure.axes) == 2  # the heatmap and its colour bar
    np.testing.assert_allclose(ax.images[0].get_array(), weights.numpy(), rtol=1e-6)
    assert len(ax.texts) == 36  # small matrices are annotated


def test_attention_heatmap_cross_attention_and_defaults():
    weights = np.full((2, 5), 0.2)
    queries, keys = ["a", "b"], ["v", "w", "x", "y", "z"]
    ax = viz.attention_heatmap(weights, keys, queries, colorbar=False, annotate=False)
    assert ticks(ax.get_xticklabels()) == keys and ticks(ax.get_yticklabels()) == queries
    assert len(ax.figure.axes) == 1 and not ax.texts
    fig, own = plt.subplots()
    assert viz.attention_heatmap(torch.eye(3, requires_grad=True) * 1, ax=own) is own
    big = viz.attention_heatmap(torch.rand(20, 20), [f"t{i}" for i in range(20)])
    assert not big.texts and ticks(big.get_yticklabels())[-1] == "t19"


def test_attention_heatmap_explains_wrong_inputs():
    with pytest.raises(ValueError, match=r"2-D.*weights\[0, head\]"):
        viz.attention_heatmap(torch.rand(2, 4, 6, 6), TOKENS)
    with pytest.raises(ValueError, match="5 x_tokens"):
        viz.attention_heatmap(torch.rand(6, 6), TOKENS[:5])
    with pytest.raises(TypeError, match="list of strings"):
        viz.attention_heatmap(torch.rand(3, 3), "abc")


# ---- attention_heads_grid -------------------------------------------------------------------
def test_heads_grid_draws_every_head_with_labels_on_the_outer_panels():
    weights = torch.softmax(torch.randn(6, 6, 6), dim=-1)
    fig = viz.attention_heads_grid(weights, TOKENS, ncols=4, suptitle="six heads")
    panels = [ax for ax in fig.axes if ax.images and ax.get_title().startswith("head")]
    assert [ax.get_title() for ax in panels] == [f"head {h}" for h in range(6)]
    assert ticks(panels[0].get_yticklabels()) == TOKENS  # first column
    assert ticks(panels[4].get_xticklabels()) == TOKENS  # bottom row
    assert ticks(panels[1].get_yticklabels()) == [""] * 6  # inner panels stay clean
    assert ticks(panels[2].get_xticklabels()) == TOKENS  # last panel of its column
    assert fig._suptitle.get_text() == "six heads"
    assert any(ax.get_ylabel() == "attention weight" for ax in fig.axes)  # one shared colour bar
    clim = {panel.images[0].get_clim() for panel in panels}
    assert len(clim) == 1


def test_heads_grid_validates():
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        viz.attention_heads_grid(torch.rand(1, 2, 3, 3))
    with pytest.raises(ValueError, match="2 titles for 3 heads"):
        viz.attention_heads_grid(torch.rand(3, 3, 3), titles=["a", "b"])


def test_matrix_heatmap_is_centred_on_zero():
    ax = viz.matrix_heatmap(torch.tensor([[-1.0, 0.5], [0.25, 2.0]]), xlabel="dimension",
                            ylabel="position", title="table")
    assert ax.images[0].get_clim() == (-2.0, 2.0)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("dimension", "position", "table")
    with pytest.raises(ValueError, match="2-D"):
        viz.matrix_heatmap(torch.zeros(3))
    scores = viz.matrix_heatmap(torch.randn(2, 3), x_tokens=["a", "b", "c"], y_tokens=["x", "y"])
    assert ticks(scores.get_xticklabels()) == ["a", "b", "c"] and ticks(scores.get_yticklabels()) == ["x", "y"]
    with pytest.raises(ValueError, match="2 x_tokens"):
        viz.matrix_heatmap(torch.randn(2, 3), x_tokens=["a", "b"])


# ---- widgets --------------------------------------------------------------------------------
def test_softmax_temperature_explorer_follows_its_slider():
    explorer = widgets.softmax_temperature_explorer([2.0, 1.0, 0.0], ["a", "b", "c"])
    explorer.slider.value = 0.1
    assert explorer.probabilities()[0] > 0.99
    explorer.slider.value = 10.0
    assert explorer.probabilities().max() < 0.4
    assert explorer.draw().axes[0].get_title().startswith("temperature 10.00: entropy")
    with pytest.raises(ValueError, match="2 labels for 3 scores"):
        widgets.SoftmaxTemperatureExplorer([1.0, 2.0, 3.0], ["a", "b"])


def test_attention_explorer_edits_the_query_and_the_mask():
    g = torch.Generator().manual_seed(0)
    queries, keys = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    explorer = widgets.AttentionExplorer(TOKENS, queries, keys)
    before = explorer.weights().clone()
    torch.testing.assert_close(before.sum(-1), torch.ones(6, dtype=torch.float64))
    explorer.sliders[0].value = 3.5  # edit the selected (last) query
    after = explorer.weights()
    assert not torch.allclose(after[-1], before[-1]) and torch.allclose(after[:-1], before[:-1])
    explorer.query.value = 2  # selecting another query moves the sliders, edits nothing
    assert explorer.sliders[1].value == pytest.approx(float(queries[2, 1]), abs=1e-9)
    torch.testing.assert_close(explorer.weights(), after)
    explorer.mask_kind.value = "causal"
    assert (explorer.weights()[~causal_mask(6)] == 0).all()
    explorer.hidden_keys.value = (0,)
    assert (explorer.weights()[:, 0] == 0).all()
    assert (explorer.weights()[0] == 0).all()  # query 0 sees only key 0, now hidden: zero row
    explorer.scaled.value = False
    assert explorer.weights().shape == (6, 6)
    fig = explorer.draw()
    assert any(ax.get_title() == "query 2 ('sat') attends to" for ax in fig.axes)
    assert ticks(fig.axes[0].get_xticklabels()) == TOKENS
    with pytest.raises(ValueError, match="at most 8"):
        widgets.AttentionExplorer(["x"] * 3, torch.randn(3, 9), torch.randn(3, 9))


def test_position_explorer_shows_the_relative_property_of_rotary():
    explorer = widgets.PositionExplorer(max_len=32, d_model=16)
    sims = explorer.similarities()
    assert sims.shape == (32,) and sims.argmax() == 16  # a sinusoidal row is most like itself
    explorer.kind.value = "rotary"
    explorer.position.value = 10
    at_10 = explorer.similarities()
    explorer.position.value = 15
    at_15 = explorer.similarities()
    torch.testing.assert_close(at_15[5:], at_10[:-5])  # same curve, slid by 5
    explorer.pair.value = 2
    explorer.base.value = 100.0
    assert explorer.wavelength() == pytest.approx(2 * np.pi * 100 ** (4 / 16))
    fig = explorer.draw()
    assert fig.axes[0].get_title().startswith("pair 2: wavelength 19.9")
    assert fig.axes[1].get_title().startswith("rotary") and fig.axes[1].get_xlabel() == "position n"
