"""course_lib.transformer: layer norm, blocks, the encoder-decoder, masks and decoding."""

import pytest
import torch
from torch import nn

from course_lib import transformer as tf

PAD, BOS, EOS = 0, 1, 2


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny models: one thread is fastest, and does not fight other processes for the cores
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(seed=0, **kwargs):
    torch.manual_seed(seed)
    config = dict(d_model=32, num_heads=4, num_encoder_layers=2, num_decoder_layers=2, d_ff=64,
                  dropout=0.0, max_len=32, pad_id=PAD)
    config.update(kwargs)
    return tf.Seq2SeqTransformer(20, 12, **config).eval()


def _batch(seed=1):
    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(3, 20, (3, 7), generator=gen)
    src[0, 5:] = PAD
    src[2, 3:] = PAD
    tgt = torch.randint(3, 12, (3, 6), generator=gen)
    tgt[:, 0] = BOS
    return src, tgt


# ---- layer norm ------------------------------------------------------------------------------
def test_layer_norm_equals_torch():
    x = torch.randn(4, 5, 16) * 3 + 2
    ours, ref = tf.LayerNorm(16), nn.LayerNorm(16)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.normal_()
    ours.load_state_dict(ref.state_dict())  # same parameter names
    torch.testing.assert_close(ours(x), ref(x))
    torch.testing.assert_close(tf.layer_norm(x), torch.nn.functional.layer_norm(x, (16,)))


def test_layer_norm_output_has_zero_mean_unit_variance():
    y = tf.layer_norm(torch.randn(8, 32) * 10 + 5, eps=0.0)
    torch.testing.assert_close(y.mean(-1), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(8), atol=1e-4, rtol=0)


def test_layer_norm_validates():
    with pytest.raises(TypeError, match="floating-point"):
        tf.layer_norm(torch.arange(4))
    with pytest.raises(ValueError, match=r"weight of shape \(4,\)"):
        tf.layer_norm(torch.randn(2, 4), weight=torch.ones(3))
    with pytest.raises(ValueError, match="LayerNorm"):
        tf.LayerNorm(8)(torch.randn(2, 4))


# ---- blocks ----------------------------------------------------------------------------------
def test_feed_forward_is_position_wise():
    ff = tf.FeedForward(8, 32).eval()
    x = torch.randn(2, 5, 8)
    out = ff(x)
    assert out.shape == x.shape
    torch.testing.assert_close(ff(x[:, 2:3]), out[:, 2:3])  # one position alone gives the same
    with pytest.raises(ValueError, match="d_model=8"):
        ff(torch.randn(2, 5, 7))


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_layer_matches_torch(norm_first):
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first).eval()
    ours = tf.EncoderLayer(16, 4, 32, dropout=0.0, norm_first=norm_first).eval()
    with torch.no_grad():
        w_q, w_k, w_v = ref.self_attn.in_proj_weight.chunk(3)
        b_q, b_k, b_v = ref.self_attn.in_proj_bias.chunk(3)
        for proj, w, b in ((ours.attention.q_proj, w_q, b_q), (ours.attention.k_proj, w_k, b_k),
                           (ours.attention.v_proj, w_v, b_v)):
            proj.weight.copy_(w)
            proj.bias.copy_(b)
        ours.attention.out_proj.load_state_dict(ref.self_attn.out_proj.state_dict())
        ours.feed_forward.fc_in.load_state_dict(ref.linear1.state_dict())
        ours.feed_forward.fc_out.load_state_dict(ref.linear2.state_dict())
        ours.attention_norm.load_state_dict(ref.norm1.state_dict())
        ours.feed_forward_norm.load_state_dict(ref.norm2.state_dict())
    x = torch.randn(2, 5, 16)
    lengths = torch.tensor([5, 3])
    keep = torch.arange(5) < lengths[:, None]
    got = ours(x, keep[:, None, None, :])
    want = ref(x, src_key_padding_mask=~keep)
    torch.testing.assert_close(got[0], want[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got[1, :3], want[1, :3], atol=1e-5, rtol=1e-4)


def test_pre_and_post_ln_differ_and_post_ln_output_is_normalised():
    x = torch.randn(2, 5, 16) * 5
    post = tf.EncoderLayer(16, 4, 32, dropout=0.0, norm_first=False).eval()(x)
    torch.testing.assert_close(post.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
    torch.manual_seed(0)
    pre = tf.EncoderLayer(16, 4, 32, dropout=0.0, norm_first=True).eval()(x)
    assert pre.mean(-1).abs().max() > 1e-3  # pre-LN keeps the residual stream un-normalised


# ---- masks -----------------------------------------------------------------------------------
def test_decoder_mask_is_causal_and_key_padding():
    tgt = torch.tensor([[1, 5, 2, 0]])
    mask = tf.decoder_mask(tgt, PAD)
    assert mask.shape == (1, 1, 4, 4) and mask.dtype == torch.bool
    expected = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(mask[0, 0], expected)
    assert torch.equal(tf.source_mask(tgt, PAD)[0, 0, 0], torch.tensor([True, True, True, False]))
    with pytest.raises(TypeError, match="integer token ids"):
        tf.decoder_mask(tgt.float(), PAD)


# ---- the encoder-decoder ---------------------------------------------------------------------
def test_output_shapes_and_cross_attention_weights():
    model = _model()
    src, tgt = _batch()
    logits = model(src, tgt)
    assert logits.shape == (3, 6, 12)
    logits2, cross = model(src, tgt, need_weights=True)
    torch.testing.assert_close(logits, logits2)
    assert len(cross) == 2 and cross[0].shape == (3, 4, 6, 7)
    torch.testing.assert_close(cross[0].sum(-1), torch.ones(3, 4, 6))
    assert (cross[-1][0, :, :, 5:] == 0).all()  # never on source padding
    memory, mask = model.encode(src)
    assert memory.shape == (3, 7, 32) and mask.shape == (3, 1, 1, 7)


def test_a_decoder_position_never_sees_a_later_one():
    model = _model()
    src, tgt = _batch()
    before = model(src, tgt)
    changed = tgt.clone()
    changed[:, 4] = (changed[:, 4] + 1 - 3) % 9 + 3  # another real token at position 4
    after = model(src, changed)
    torch.testing.assert_close(after[:, :4], before[:, :4])
    assert not torch.allclose(after[:, 4:], before[:, 4:])


def test_source_padding_never_changes_the_output():
    model = _model()
    src, tgt = _batch()
    logits = model(src, tgt)
    more_padding = torch.cat([src, torch.full((3, 4), PAD)], dim=1)
    torch.testing.assert_close(model(more_padding, tgt), logits, atol=1e-5, rtol=1e-4)
    # and the padded sentence alone, without padding, gives its own logits
    torch.testing.assert_close(model(src[2:, :3], tgt[2:]), logits[2:], atol=1e-5, rtol=1e-4)
    # while a real token there does change it
    garbage = src.clone()
    garbage[2, 3:] = 7
    assert not torch.allclose(model(garbage, tgt)[2], logits[2])


def test_tied_embeddings_share_one_matrix():
    tied, untied = _model(tie_embeddings=True), _model(tie_embeddings=False)
    assert tied.out_proj.weight is tied.tgt_embed.weight
    n = sum(p.numel() for p in tied.parameters())
    assert sum(p.numel() for p in untied.parameters()) == n + 12 * 32


def test_model_validates_inputs():
    model = _model()
    src, tgt = _batch()
    with pytest.raises(ValueError, match="one batch size"):
        model(src, tgt[:2])
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 12\)"):
        model(src, tgt + 20)
    with pytest.raises(ValueError, match="max_len=32"):
        model(torch.ones(1, 40, dtype=torch.long), tgt[:1])
    with pytest.raises(ValueError, match="dropout"):
        tf.Seq2SeqTransformer(5, 5, dropout=1.5)


def test_training_mode_uses_dropout():
    model = _model(dropout=0.3).train()
    src, tgt = _batch()
    assert not torch.allclose(model(src, tgt), model(src, tgt))


# ---- decoding --------------------------------------------------------------------------------
def test_beam_width_one_equals_greedy():
    for seed in range(3):
        model = _model(seed)
        src, _ = _batch(seed)
        greedy = tf.greedy_decode(model, src, max_len=8, bos_id=BOS, eos_id=EOS)
        beam = tf.beam_search(model, src, beam_width=1, max_len=8, bos_id=BOS, eos_id=EOS)
        assert torch.equal(greedy, beam)
        assert (greedy[:, 0] == BOS).all() and greedy.shape[1] <= 9


def _memorised_model():
    """A model trained a few steps to copy 'abc' -> tokens, so it ends with EOS."""
    torch.manual_seed(0)
    model = _model(dropout=0.0).train()
    src = torch.tensor([[5, 6, 7], [8, 9, 0]])
    tgt = torch.tensor([[BOS, 3, 4, 5, EOS], [BOS, 6, EOS, PAD, PAD]])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        opt.zero_grad()
        logits = model(src, tgt[:, :-1])
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD)
        loss.backward()
        opt.step()
    return model.eval(), src, tgt


def test_greedy_and_beam_find_a_learned_translation_and_pad_after_eos():
    model, src, tgt = _memorised_model()
    greedy = tf.greedy_decode(model, src, max_len=6, bos_id=BOS, eos_id=EOS)
    assert greedy.shape == (2, 5)  # stops once every row has its EOS
    assert torch.equal(greedy, tgt)
    for width in (2, 4):
        assert torch.equal(tf.beam_search(model, src, width, 6, BOS, EOS), tgt)


def test_beam_search_never_scores_below_greedy():
    model = _model(3)
    src, _ = _batch(3)

    def log_prob(out):
        logits = model(src, out[:, :-1])
        lp = logits.log_softmax(-1).gather(-1, out[:, 1:, None])[..., 0]
        keep = torch.ones_like(lp, dtype=torch.bool)
        for i, row in enumerate(out[:, 1:]):
            hits = (row == EOS).nonzero()
            if len(hits):
                keep[i, hits[0, 0] + 1:] = False
        return (lp * keep).sum(-1)

    with torch.no_grad():
        greedy = tf.greedy_decode(model, src, 6, BOS, EOS)
        beam = tf.beam_search(model, src, 4, 6, BOS, EOS, length_penalty=0.0)
        assert (log_prob(beam) >= log_prob(greedy) - 1e-4).all()


def test_beam_search_step_keeps_the_best_over_all_beams():
    lp = torch.tensor([[[-0.1, -2.0, -3.0], [-0.5, -0.6, -4.0]]])
    scores, beam, token = tf.beam_search_step(lp, torch.tensor([[0.0, -0.2]]), 3)
    torch.testing.assert_close(scores, torch.tensor([[-0.1, -0.7, -0.8]]))
    assert beam.tolist() == [[0, 1, 1]] and token.tolist() == [[0, 0, 1]]
    with pytest.raises(ValueError, match="beam_scores"):
        tf.beam_search_step(lp, torch.zeros(1, 3), 2)


def test_decoding_validates():
    model = _model()
    src, _ = _batch()
    with pytest.raises(ValueError, match="bos_id"):
        tf.greedy_decode(model, src, 5, bos_id=99, eos_id=EOS)
    with pytest.raises(ValueError, match="max_len"):
        tf.beam_search(model, src, 2, 100, BOS, EOS)
    with pytest.raises(TypeError, match="Seq2SeqTransformer"):
        tf.greedy_decode(nn.Linear(2, 2), src, 5, BOS, EOS)


# ---- the ablation switches of notebook 07 ------------------------------------------------------
def test_ablation_switches_remove_what_they_name():
    torch.manual_seed(0)
    layer = tf.EncoderLayer(16, 4, 32, dropout=0.0, residual=False).eval()
    x = torch.randn(2, 5, 16)
    h = layer.attention(layer.attention_norm(x), need_weights=False)[0]  # no "x +" anywhere
    torch.testing.assert_close(layer(x), layer.feed_forward(layer.feed_forward_norm(h)))

    plain = tf.Seq2SeqTransformer(12, 9, d_model=16, num_heads=4, d_ff=32, dropout=0.0, layer_norm=False)
    assert not any(isinstance(m, (tf.LayerNorm, nn.LayerNorm)) for m in plain.modules())

    torch.manual_seed(0)
    bag = tf.Seq2SeqTransformer(12, 9, d_model=16, num_heads=4, d_ff=32, dropout=0.0, positional=False).eval()
    src = torch.tensor([[3, 4, 5, 6]])
    tgt = torch.tensor([[1, 5]])
    # without positions the encoder sees a bag of words: reordering the source changes nothing
    torch.testing.assert_close(bag(src, tgt), bag(src[:, [2, 0, 3, 1]], tgt), atol=1e-5, rtol=1e-4)
    torch.manual_seed(0)
    ordered = tf.Seq2SeqTransformer(12, 9, d_model=16, num_heads=4, d_ff=32, dropout=0.0).eval()
    assert not torch.allclose(ordered(src, tgt), ordered(src[:, [2, 0, 3, 1]], tgt), atol=1e-4)
