"""Notebook 10's tools: the bertviz adaptor, the offline pictures and viewer, head statistics, HF loading.

Small random models only (never the shipped checkpoints) and no network: the Hugging Face loading
path reads a model written with save_pretrained to a temporary folder, with HF_HUB_OFFLINE=1 and
socket connections refused.
"""

import math
import socket

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from bertviz import head_view, model_view  # noqa: E402

from course_lib import bert, checkpoint, data, gpt, viz, widgets  # noqa: E402
from course_lib.attention import scaled_dot_product_attention, split_heads  # noqa: E402
from course_lib.tokenizers import train_hf_bpe, train_hf_wordpiece  # noqa: E402

TEXT = "The cat sat on the mat."
PAIR = ("The cat sat on the mat.", "It was happy there.")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def texts():
    return [d.text for d in data.load_corpus("wiki").train[:20]]


@pytest.fixture(scope="module")
def bpe(texts):
    return train_hf_bpe(texts, 400)


@pytest.fixture(scope="module")
def wordpiece(texts):
    return train_hf_wordpiece(texts, 600)


@pytest.fixture(scope="module")
def tiny_gpt(bpe):
    torch.manual_seed(0)
    return gpt.GPT(gpt.GPTConfig(vocab_size=len(bpe), max_len=64, d_model=32, num_layers=3, num_heads=4)).eval()


@pytest.fixture(scope="module")
def tiny_bert(wordpiece):
    torch.manual_seed(1)
    config = bert.BertConfig(vocab_size=len(wordpiece), d_model=32, num_layers=2, num_heads=4, max_len=64,
                             initializer_range=0.2)
    return bert.Bert(config).eval()


def ids_of(tokenizer, *texts):
    return tokenizer(*texts, return_tensors="pt")


# ---- the adaptor equals our attention ------------------------------------------------------------
def test_gpt_adaptor_gives_the_weights_our_attention_computes(tiny_gpt, bpe):
    enc = ids_of(bpe, TEXT)
    data_ = viz.model_attentions(tiny_gpt, bpe, TEXT)
    with torch.no_grad():
        returned = tiny_gpt(enc["input_ids"], output_attentions=True).attentions
        # layer 0 by hand: softmax(q k^T / sqrt(d)) under the causal mask, from the block's projections
        x = tiny_gpt.position_embedding(tiny_gpt.token_embedding(enc["input_ids"]))
        h = tiny_gpt.layers[0].attention_norm(x)
        attn = tiny_gpt.layers[0].attention
        q, k = split_heads(attn.q_proj(h), 4), split_heads(attn.k_proj(h), 4)
        seq = h.shape[1]
        _, by_hand = scaled_dot_product_attention(q, k, k, torch.ones(seq, seq).tril().bool())
    assert data_.tokens == bpe.convert_ids_to_tokens(enc["input_ids"][0])
    assert data_.num_layers == 3 and data_.num_heads == 4 and data_.sentence_b_start is None
    for ours, theirs in zip(data_.attention, returned):
        assert ours.shape == (1, 4, seq, seq) and ours.device.type == "cpu"
        torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(data_.attention[0], by_hand, atol=1e-5, rtol=0)
    assert torch.triu(data_.stacked(), diagonal=1).abs().max() == 0  # causal


def test_bert_pair_adaptor_finds_sentence_b_and_matches_the_model(tiny_bert, wordpiece):
    enc = ids_of(wordpiece, *PAIR)
    data_ = viz.model_attentions(tiny_bert, wordpiece, *PAIR)
    with torch.no_grad():
        returned = tiny_bert(enc["input_ids"], enc["token_type_ids"], output_attentions=True).attentions
    types = enc["token_type_ids"][0].tolist()
    assert data_.sentence_b_start == types.index(1) and data_.tokens[data_.sentence_b_start - 1] == "[SEP]"
    assert data_.tokens[0] == "[CLS]" and data_.tokens[-1] == "[SEP]"
    for ours, theirs in zip(data_.attention, returned):
        torch.testing.assert_close(ours, theirs)
    assert torch.triu(data_.stacked(), diagonal=1).abs().max() > 0  # bidirectional


def test_hf_eager_models_give_the_same_weights_as_the_course_models(tiny_gpt, tiny_bert, bpe, wordpiece):
    hf_gpt = tiny_gpt.to_hf(attn_implementation="eager")
    for ours, theirs in zip(viz.model_attentions(tiny_gpt, bpe, TEXT).attention,
                            viz.model_attentions(hf_gpt, bpe, TEXT).attention):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    hf_bert = tiny_bert.to_hf()
    hf_bert.set_attn_implementation("eager")
    course, hf = viz.model_attentions(tiny_bert, wordpiece, *PAIR), viz.model_attentions(hf_bert, wordpiece, *PAIR)
    assert hf.sentence_b_start == course.sentence_b_start and hf.tokens == course.tokens
    for ours, theirs in zip(course.attention, hf.attention):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_an_sdpa_hf_model_is_refused_with_the_eager_hint(tiny_gpt, bpe):
    hf_gpt = tiny_gpt.to_hf(attn_implementation="sdpa")
    with pytest.raises(ValueError, match="eager"):
        viz.model_attentions(hf_gpt, bpe, TEXT)
    with pytest.raises(ValueError, match="eager"):
        viz.to_bertviz((), ["a"])


@pytest.mark.parametrize("view", [head_view, model_view])
def test_bertviz_accepts_the_adaptor_output_for_gpt_bert_and_a_pair(view, tiny_gpt, tiny_bert, bpe, wordpiece):
    single = viz.model_attentions(tiny_bert, wordpiece, PAIR[0])
    pair = viz.model_attentions(tiny_bert, wordpiece, *PAIR)
    for data_ in (viz.model_attentions(tiny_gpt, bpe, TEXT), single, pair):
        html = view(**data_, html_action="return").data
        assert "cdnjs.cloudflare.com" in html  # bertviz loads require.js, d3 and jQuery from a CDN
        assert '"left_text"' in html
    assert "Sentence A -&gt; Sentence B" in html or "Sentence A -> Sentence B" in html  # the pair's menu
    assert "Sentence A" not in view(**single, html_action="return").data


def test_rounded_weights_stay_close_and_print_short(tiny_gpt, bpe):
    exact = viz.model_attentions(tiny_gpt, bpe, TEXT)
    short = viz.model_attentions(tiny_gpt, bpe, TEXT, decimals=3)
    for a, b in zip(exact.attention, short.attention):
        assert b.dtype == torch.float64 and (a.double() - b).abs().max() <= 5e-4 + 1e-12
    assert len(str(short.attention[0].tolist())) < len(str(exact.attention[0].tolist()))


def test_to_bertviz_picks_an_example_and_explains_wrong_inputs():
    weights = [torch.softmax(torch.randn(2, 3, 4, 4), -1) for _ in range(2)]
    tokens = list("abcd")
    picked = viz.to_bertviz(weights, tokens, example=1)
    torch.testing.assert_close(picked.attention[1], weights[1][1:2])
    assert dict(**picked)["tokens"] == tokens and picked["sentence_b_start"] is None
    assert viz.to_bertviz([w[0] for w in weights], tokens).attention[0].shape == (1, 3, 4, 4)  # (heads, q, k)
    with pytest.raises(ValueError, match="3 tokens for attention over 4 positions"):
        viz.to_bertviz(weights, tokens[:3])
    with pytest.raises(ValueError, match="rows sum to 1"):
        viz.to_bertviz([torch.randn(1, 3, 4, 4).abs()], tokens)
    with pytest.raises(ValueError, match="sentence_b_start"):
        viz.to_bertviz(weights, tokens, sentence_b_start=4)
    with pytest.raises(ValueError, match="example"):
        viz.to_bertviz(weights, tokens, example=2)
    with pytest.raises(TypeError, match="unsqueeze"):
        viz.to_bertviz(torch.stack([w[0] for w in weights]), tokens)
    with pytest.raises(ValueError, match="layer 1 gave no attention"):
        viz.to_bertviz([weights[0], None], tokens)
    with pytest.raises(ValueError, match="layer 1 has shape"):
        viz.to_bertviz([weights[0], weights[1][:, :2]], tokens)
    with pytest.raises(KeyError):
        picked["weights"]


def test_model_attentions_validates(tiny_gpt, tiny_bert, bpe, wordpiece):
    with pytest.raises(ValueError, match="BERT's idea"):
        viz.model_attentions(tiny_gpt, bpe, *PAIR)
    with pytest.raises(ValueError, match="marks no sentence B"):
        viz.model_attentions(tiny_gpt.to_hf(), bpe, *PAIR)
    with pytest.raises(TypeError, match="course GPT"):
        viz.model_attentions(torch.nn.Linear(2, 2), bpe, TEXT)
    with pytest.raises(ValueError, match="non-empty text"):
        viz.model_attentions(tiny_bert, wordpiece, "  ")
    tiny_bert.train()
    viz.model_attentions(tiny_bert, wordpiece, TEXT)
    assert tiny_bert.training  # its mode is given back
    tiny_bert.eval()
    assert viz.model_attentions(tiny_bert, wordpiece, TEXT * 10, max_length=12).seq_len == 12


# ---- head statistics --------------------------------------------------------------------------------
def test_entropy_distance_and_previous_token_score_on_known_patterns():
    n = 6
    uniform = torch.full((n, n), 1 / n)
    identity = torch.eye(n)
    previous = torch.diag(torch.ones(n - 1), -1)
    previous[0, 0] = 1.0
    stack = torch.stack([uniform, identity, previous])[None]  # (1 layer, 3 heads, n, n)
    torch.testing.assert_close(viz.attention_entropy(stack)[0],
                               torch.tensor([math.log(n), 0.0, 0.0], dtype=torch.float64))
    expected_uniform = sum(abs(i - j) for i in range(n) for j in range(n)) / n**2
    torch.testing.assert_close(viz.mean_attention_distance(stack)[0],
                               torch.tensor([expected_uniform, 0.0, (n - 1) / n], dtype=torch.float64))
    torch.testing.assert_close(viz.previous_token_score(stack)[0],
                               torch.tensor([1 / n, 0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(viz.previous_token_score(stack, 0)[0],
                               torch.tensor([1 / n, 1.0, 1 / n], dtype=torch.float64))
    torch.testing.assert_close(viz.attention_to(stack, [0, n - 1])[0],
                               torch.tensor([2 / n, 2 / n, 2 / n], dtype=torch.float64))  # rows 0 and 1 -> key 0
    mask = torch.zeros(n, dtype=torch.bool)
    mask[0] = True
    torch.testing.assert_close(viz.attention_to(stack, mask), viz.attention_to(stack, 0))
    with pytest.raises(ValueError, match="outside"):
        viz.attention_to(stack, 9)
    with pytest.raises(ValueError, match="self-attention"):
        viz.mean_attention_distance(torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match="offset"):
        viz.previous_token_score(stack, n)


def test_head_statistics_average_over_inputs_and_find_special_tokens(tiny_bert, wordpiece):
    items = [viz.model_attentions(tiny_bert, wordpiece, *PAIR), viz.model_attentions(tiny_bert, wordpiece, TEXT)]
    stats = viz.head_statistics(items)
    assert list(stats) == ["entropy", "distance", "self", "previous", "first", "[CLS]", "[SEP]"]
    assert all(v.shape == (2, 4) for v in stats.values())
    by_hand = torch.stack([viz.attention_entropy(d.stacked()) for d in items]).mean(0)
    torch.testing.assert_close(stats["entropy"], by_hand)
    torch.testing.assert_close(stats["[CLS]"], stats["first"])  # [CLS] is the first token
    seps = [[i for i, t in enumerate(d.tokens) if t == "[SEP]"] for d in items]
    sep_by_hand = torch.stack([viz.attention_to(d.stacked(), s) for d, s in zip(items, seps)]).mean(0)
    torch.testing.assert_close(stats["[SEP]"], sep_by_hand)
    assert "[SEP]" not in viz.head_statistics(items, special_tokens=())
    best = viz.top_heads(stats["entropy"], 2, largest=False)
    assert len(best) == 2 and best[0][2] <= best[1][2] == sorted(stats["entropy"].flatten().tolist())[1]
    assert stats["entropy"][best[0][0], best[0][1]] == best[0][2]
    with pytest.raises(TypeError, match="AttentionData"):
        viz.head_statistics([torch.rand(1, 2, 3, 3)])


# ---- pictures -----------------------------------------------------------------------------------------
def test_layers_grid_draws_every_layer_and_head(tiny_gpt, bpe):
    data_ = viz.model_attentions(tiny_gpt, bpe, TEXT)
    fig = viz.attention_layers_grid(data_, suptitle="tiny GPT")
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 3 * 4
    assert [ax.get_title() for ax in panels[:4]] == [f"head {h}" for h in range(4)]
    assert [panels[4 * r].get_ylabel() for r in range(3)] == ["layer 0", "layer 1", "layer 2"]
    torch.testing.assert_close(torch.tensor(panels[5].images[0].get_array().data),
                               data_.head(1, 1).double(), check_dtype=False)
    assert [t.get_text() for t in panels[-4].get_xticklabels()] == viz.display_tokens(data_.tokens)
    part = viz.attention_layers_grid(data_.attention, layers=[2], heads=[0, 3], vmax=0.5)
    assert len([ax for ax in part.axes if ax.images]) == 2
    with pytest.raises(ValueError, match="layer"):
        viz.attention_layers_grid(data_, layers=[3])


def test_links_and_strongest_links():
    weights = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.2, 0.7, 0.1]])
    tokens = ["a", "b", "c"]
    links = viz.strongest_links(weights, tokens, 3)
    assert [(link.query, link.key) for link in links] == [(0, 0), (1, 0), (2, 1)]
    assert links[2].query_token == "c" and links[2].key_token == "b" and links[2].weight == pytest.approx(0.7)
    assert [(link.query, link.key) for link in viz.strongest_links(weights, tokens, 2, skip_first=True)] == [
        (1, 0), (2, 1)]
    assert all(link.query != link.key for link in viz.strongest_links(weights, tokens, 5, skip_self=True))
    ax = viz.attention_links(weights, tokens, title="one head")
    assert len(ax.lines) == 6  # the six nonzero weights
    assert len(viz.attention_links(weights, tokens, top_k=1).lines) == 3
    assert [t.get_text() for t in ax.texts] == tokens + tokens and ax.get_title() == "one head"
    with pytest.raises(ValueError, match="one head"):
        viz.attention_links(weights[None], tokens)
    assert viz.display_tokens(["Ġthe", "##s", "Ċ"]) == ["_the", "##s", "\\n"]


# ---- the offline viewer -----------------------------------------------------------------------------
def test_attention_viewer_follows_its_controls(tiny_bert, wordpiece):
    pair = viz.model_attentions(tiny_bert, wordpiece, *PAIR)
    single = viz.model_attentions(tiny_bert, wordpiece, TEXT)
    viewer = widgets.AttentionViewer({"pair": pair, "single": single}, layer=1, head=2)
    torch.testing.assert_close(viewer.weights(), pair.head(1, 2))
    viewer.head.value = 3
    viewer.layer.value = 0
    torch.testing.assert_close(viewer.weights(), pair.head(0, 3))
    assert viewer.links(2) == viz.strongest_links(pair.head(0, 3), viz.display_tokens(pair.tokens), 2)
    viewer.example.value = "single"
    assert viewer.data() is single and len(viewer.highlight.options) == single.seq_len + 1
    viewer.highlight.value = 2
    fig = viewer.draw()
    assert "layer 0, head 3" in fig._suptitle.get_text()
    assert any(line.get_color() == "tab:red" for ax in fig.axes for line in ax.lines)  # the highlighted query
    listed = widgets.AttentionViewer([pair, single])
    assert len(listed.example.options) == 2
    with pytest.raises(TypeError, match="AttentionData"):
        widgets.AttentionViewer([torch.rand(2, 2)])
    with pytest.raises(ValueError, match="head"):
        widgets.AttentionViewer(pair, head=4)


def test_attention_viewer_skips_the_trivial_first_query_of_a_causal_model(tiny_gpt, bpe):
    viewer = widgets.AttentionViewer(viz.model_attentions(tiny_gpt, bpe, TEXT))
    assert all(link.query > 0 for link in viewer.links(5))


def test_attention_viewer_mixes_models_of_different_sizes(tiny_gpt, tiny_bert, bpe, wordpiece):
    gpt_data = viz.model_attentions(tiny_gpt, bpe, TEXT)  # 3 layers
    bert_data = viz.model_attentions(tiny_bert, wordpiece, TEXT)  # 2 layers
    viewer = widgets.AttentionViewer({"gpt": gpt_data, "bert": bert_data}, layer=2, head=1)
    assert viewer.layer.max == 2
    viewer.example.value = "bert"
    assert viewer.layer.max == 1 and viewer.layer.value == 1 and viewer.head.value == 1
    torch.testing.assert_close(viewer.weights(), bert_data.head(1, 1))
    viewer.example.value = "gpt"
    assert viewer.layer.max == 2


# ---- Hugging Face loading, offline ----------------------------------------------------------------------
@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise OSError("tests never touch the network")

    monkeypatch.setattr(socket, "create_connection", refuse)


def test_load_attention_model_reads_a_saved_hf_model_with_eager_attention(offline, tmp_path, tiny_gpt, bpe):
    folder = tmp_path / "tiny-gpt2"
    tiny_gpt.to_hf(attn_implementation="sdpa").save_pretrained(folder)
    bpe.save_pretrained(folder)
    loaded = viz.load_attention_model(str(folder))
    assert not loaded.is_fallback and "tiny-gpt2" in loaded.source
    assert loaded.model.config._attn_implementation == "eager" and not loaded.model.training
    for ours, theirs in zip(viz.model_attentions(tiny_gpt, bpe, TEXT).attention,
                            viz.model_attentions(loaded.model, loaded.tokenizer, TEXT).attention):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_load_attention_model_falls_back_to_a_course_checkpoint_offline(offline, tmp_path, capsys, tiny_bert,
                                                                          tiny_gpt, bpe, wordpiece):
    checkpoint.save_pretrained(tiny_bert, wordpiece, tmp_path / "bert", half=False)
    loaded = viz.load_attention_model("no-such-org/no-such-bert", fallback_folder=tmp_path / "bert")
    message = capsys.readouterr().out
    assert loaded.is_fallback and "course BERT" in loaded.source
    assert message.count("\n") == 1 and "'no-such-org/no-such-bert' is not available" in message
    for ours, theirs in zip(viz.model_attentions(tiny_bert, wordpiece, *PAIR).attention,
                            viz.model_attentions(loaded.model, loaded.tokenizer, *PAIR).attention):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    checkpoint.save_pretrained(tiny_gpt, bpe, tmp_path / "gpt", half=False)
    loaded = viz.load_attention_model("no-such-gpt2", fallback_folder=tmp_path / "gpt")
    assert loaded.is_fallback and "course GPT" in loaded.source
    assert loaded.model.config._attn_implementation == "eager"
    with pytest.raises(ValueError, match="fallback"):
        viz.load_attention_model("gpt2", fallback="t5")


def test_hub_probe_respects_hf_hub_offline_and_a_failed_download_falls_back(monkeypatch, tmp_path, capsys,
                                                                            tiny_gpt, bpe):
    calls = []

    def record(*args, **kwargs):
        calls.append(args)
        raise OSError("no network in tests")

    monkeypatch.setattr(socket, "create_connection", record)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert viz._hub_reachable(0.1) is False and calls == []  # offline mode: not even a connection attempt
    monkeypatch.delenv("HF_HUB_OFFLINE")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # as read when huggingface_hub was imported
    assert viz._hub_reachable(0.1) is False and len(calls) == 1  # tried once, refused

    class Answer:
        def close(self):
            pass

    monkeypatch.setattr(socket, "create_connection", lambda *args, **kwargs: Answer())
    assert viz._hub_reachable(0.1) is True
    monkeypatch.setattr(viz, "_hub_reachable", lambda timeout: True)  # pretend the hub answers...

    def broken_download(name, local_only, device):
        raise OSError(f"{name}: 404")  # ...but the model cannot be loaded (cache miss, then a bad name)

    monkeypatch.setattr(viz, "_load_hf", broken_download)
    checkpoint.save_pretrained(tiny_gpt, bpe, tmp_path, half=False)
    loaded = viz.load_attention_model("gpt2-typo", fallback_folder=tmp_path)
    assert loaded.is_fallback and "loading it failed (OSError)" in capsys.readouterr().out
