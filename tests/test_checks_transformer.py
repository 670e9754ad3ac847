"""The notebook-07 checkers accept every right answer and name the mistake in each wrong one."""

import pytest
import torch
import torch.nn.functional as F

from course_lib import transformer as tf
from course_lib.checks import transformer as check


def stub(*args, **kwargs):
    raise NotImplementedError


# ---- layer norm ------------------------------------------------------------------------------
def _ln(x, w, b, eps, var=None, dim=-1, eps_inside=True, use_w=True, use_b=True, centre=True):
    mean = x.mean(dim, keepdim=True)
    v = x.var(dim, unbiased=False, keepdim=True) if var is None else var(x, dim)
    y = (x - mean if centre else x) / (torch.sqrt(v + eps) if eps_inside else torch.sqrt(v) + eps)
    return y * (w if use_w else 1) + (b if use_b else 0)


RIGHT_LN = [
    lambda x, w, b, eps: F.layer_norm(x, x.shape[-1:], w, b, eps),
    tf.layer_norm,
    lambda x, w, b, eps: _ln(x, w, b, eps),
    lambda x, w, b, eps: (x - x.mean(-1, keepdim=True)) * torch.rsqrt(
        ((x - x.mean(-1, keepdim=True)) ** 2).mean(-1, keepdim=True) + eps) * w + b,
]
WRONG_LN = [
    (lambda x, w, b, eps: _ln(x, w, b, eps, var=lambda x, d: x.var(d, keepdim=True)), "biased variance"),
    (lambda x, w, b, eps: _ln(x, w, b, eps, eps_inside=False), "inside the square root"),
    (lambda x, w, b, eps: _ln(x, w, b, eps, dim=0), "LAST dimension"),
    (lambda x, w, b, eps: _ln(x, w, b, eps, dim=1), "LAST dimension"),
    (lambda x, w, b, eps: _ln(x, w, b, eps, use_w=False), "gain"),
    (lambda x, w, b, eps: _ln(x, w, b, eps, use_b=False), "shift"),
    (lambda x, w, b, eps: _ln(x, w, b, eps, centre=False), "subtract the mean"),
    (lambda x, w, b, eps: (x - x.mean(-1, keepdim=True)) / (x.var(-1, unbiased=False, keepdim=True) + eps) * w + b,
     "standard deviation"),
    (lambda x, w, b, eps: _ln(x, w, b, eps).tolist(), "torch.Tensor"),
    (lambda x, w, b, eps: _ln(x, w, b, eps)[..., :-1], "same shape"),
    (lambda x, w, b, eps: _ln(x.view(3, 5, 4), w, b, eps).view(x.shape), "2-D"),
]


@pytest.mark.parametrize("fn", RIGHT_LN)
def test_layer_norm_accepts_right_answers(fn):
    verdict = check.layer_norm(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_LN)
def test_layer_norm_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.layer_norm(fn)
    assert not verdict.passed and verdict.status == "wrong"
    assert hint in verdict.message, verdict.message


# ---- decoder mask ----------------------------------------------------------------------------
def _causal(T):
    return torch.ones(T, T, dtype=torch.bool).tril()


RIGHT_MASK = [
    tf.decoder_mask,
    lambda tgt, pad: _causal(tgt.shape[1]) & (tgt != pad)[:, None, None, :],
    lambda tgt, pad: (tgt != pad)[:, None, None, :] & ~torch.ones(tgt.shape[1], tgt.shape[1], dtype=torch.bool).triu(1),
    lambda tgt, pad: (_causal(tgt.shape[1])[None] & (tgt != pad)[:, None, :]).unsqueeze(1),
]
WRONG_MASK = [
    (lambda tgt, pad: _causal(tgt.shape[1]) | (tgt != pad)[:, None, None, :], "OR"),
    (lambda tgt, pad: (tgt != pad)[:, None, None, :].expand(-1, 1, tgt.shape[1], -1), "causal part is missing"),
    (lambda tgt, pad: _causal(tgt.shape[1]).expand(tgt.shape[0], 1, -1, -1), "padding part is missing"),
    (lambda tgt, pad: _causal(tgt.shape[1]) & (tgt != pad)[:, None, :, None], "queries (rows)"),
    (lambda tgt, pad: _causal(tgt.shape[1]).T & (tgt != pad)[:, None, None, :], "wrong way"),
    (lambda tgt, pad: torch.ones(tgt.shape[1], tgt.shape[1], dtype=torch.bool).tril(-1)
     & (tgt != pad)[:, None, None, :], "diagonal"),
    (lambda tgt, pad: ~(_causal(tgt.shape[1]) & (tgt != pad)[:, None, None, :]), "inverted"),
    (lambda tgt, pad: (_causal(tgt.shape[1]) & (tgt != pad)[:, None, None, :]).float(), "boolean"),
    (lambda tgt, pad: _causal(tgt.shape[1]) & (tgt != 0)[:, None, None, :], "pad_id argument"),
    (lambda tgt, pad: (_causal(tgt.shape[1]) & (tgt != pad)[:, None, None, :])[:, 0], "expected shape"),
]


@pytest.mark.parametrize("fn", RIGHT_MASK)
def test_decoder_mask_accepts_right_answers(fn):
    verdict = check.decoder_mask(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_MASK)
def test_decoder_mask_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.decoder_mask(fn)
    assert not verdict.passed and verdict.status == "wrong"
    assert hint in verdict.message, verdict.message


# ---- beam-search step ------------------------------------------------------------------------
def _step_right(lp, scores, k):
    b, beams, V = lp.shape
    top, flat = (scores[:, :, None] + lp).view(b, -1).topk(k, dim=-1)
    return top, flat // V, flat % V


def _step_loop(lp, scores, k):
    out_s, out_b, out_t = [], [], []
    for i in range(lp.shape[0]):
        cands = sorted(((scores[i, j] + lp[i, j, t]).item(), j, t)
                       for j in range(lp.shape[1]) for t in range(lp.shape[2]))[::-1][:k]
        out_s.append([c[0] for c in cands])
        out_b.append([c[1] for c in cands])
        out_t.append([c[2] for c in cands])
    return torch.tensor(out_s), torch.tensor(out_b), torch.tensor(out_t)


def _per_beam(lp, scores, k):
    cand = scores[:, :, None] + lp
    top, tok = cand.max(-1)
    return top, torch.arange(lp.shape[1]).expand_as(top), tok


def _per_beam_topk(lp, scores, k):
    cand = scores[:, :, None] + lp
    top, tok = cand.topk(k, dim=-1)
    return top.flatten(1)[:, :k], torch.zeros_like(tok.flatten(1)[:, :k]), tok.flatten(1)[:, :k]


def _with(lp_transform, scores_transform=None, combine=lambda s, p: s[:, :, None] + p):
    def fn(lp, scores, k):
        cand = combine(scores if scores_transform is None else scores_transform(scores), lp_transform(lp))
        top, flat = cand.flatten(1).topk(k, dim=-1)
        return top, flat // lp.shape[-1], flat % lp.shape[-1]
    return fn


RIGHT_STEP = [tf.beam_search_step, _step_right, _step_loop]
WRONG_STEP = [
    (lambda lp, s, k: _step_right(lp, torch.zeros_like(s), k), "add each beam's score"),
    (_with(torch.exp), "log-probabilities"),
    (_with(torch.exp, torch.exp, lambda s, p: s[:, :, None] * p), "log-probabilities"),
    (_per_beam, "each beam separately"),
    (_per_beam_topk, "each beam separately"),
    (lambda lp, s, k: tuple(t.flip(-1) for t in _step_right(lp, s, k)), "best first"),
    (lambda lp, s, k: (lambda r: (r[0], r[2], r[1]))(_step_right(lp, s, k)), "swapped"),
    (lambda lp, s, k: (lambda r: (r[0], r[1] * 0, r[2]))(_step_right(lp, s, k)), "flat // vocab_size"),
    (lambda lp, s, k: (lambda r: (r[0], r[1], r[2] * 0))(_step_right(lp, s, k)), "flat % vocab_size"),
    (lambda lp, s, k: tuple(t[:, 0] for t in _step_right(lp, s, k)), "shape"),
    (lambda lp, s, k: _step_right(lp, s, k)[0], "tuple"),
    (lambda lp, s, k: (lambda c: (c.topk(k, largest=False).values, c.topk(k, largest=False).indices // lp.shape[-1],
                                  c.topk(k, largest=False).indices % lp.shape[-1]))((s[:, :, None] + lp).flatten(1)),
     "LARGEST"),
]


@pytest.mark.parametrize("fn", RIGHT_STEP)
def test_beam_search_step_accepts_right_answers(fn):
    verdict = check.beam_search_step(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_STEP)
def test_beam_search_step_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.beam_search_step(fn)
    assert not verdict.passed and verdict.status == "wrong"
    assert hint in verdict.message, verdict.message


@pytest.mark.parametrize("checker", [check.layer_norm, check.decoder_mask, check.beam_search_step])
def test_a_stub_is_not_done_yet(checker):
    verdict = checker(stub)
    assert verdict.status == "not done"


# ---- the layers' forward passes ----------------------------------------------------------------
def _enc(layer, x, src_mask, *, post=False, skip=True, normed_skip=False, mask="given", one_norm=False):
    m = {"given": src_mask, "none": None, "inverted": None if src_mask is None else ~src_mask}[mask]
    n1 = layer.attention_norm
    n2 = n1 if one_norm else layer.feed_forward_norm
    if post:
        x = n1(x + layer.attention(x, mask=m)[0])
        return n2(x + layer.feed_forward(x))
    h = n1(x)
    x = (h if normed_skip else x if skip else 0) + layer.attention(h, mask=m)[0]
    h = n2(x)
    return (h if normed_skip else x) + layer.feed_forward(h)


RIGHT_ENCODER = [
    lambda layer, x, m: layer(x, m),
    lambda layer, x, m: _enc(layer, x, m),
    lambda layer, x, m: (lambda h: h + layer.dropout(layer.feed_forward(layer.feed_forward_norm(h))))(
        x + layer.dropout(layer.attention(layer.attention_norm(x), mask=m, need_weights=True)[0])),
]
WRONG_ENCODER = [
    (lambda layer, x, m: _enc(layer, x, m, post=True), "post-LN"),
    (lambda layer, x, m: _enc(layer, x, m, skip=False), "residual connection is missing around the attention"),
    (lambda layer, x, m: _enc(layer, x, m, normed_skip=True), "NORMALISED"),
    (lambda layer, x, m: _enc(layer, x, m, mask="none"), "pass src_mask"),
    (lambda layer, x, m: _enc(layer, x, m, mask="inverted"), "inverted"),
    (lambda layer, x, m: _enc(layer, x, m, one_norm=True), "its own norm"),
    (lambda layer, x, m: _enc(layer, x, m)[:, :-1], "shape"),
    (lambda layer, x, m: _enc(layer, x, m).tolist(), "torch.Tensor"),
    (lambda layer, x, m: 2 * _enc(layer, x, m), "differs"),
    (lambda layer, x, m: _enc(layer, x, m if m is not None else torch.ones(1, dtype=torch.bool)[None, None, None]
                              ) if x.shape[0] == 2 else x, "src_mask=None"),
]


@pytest.mark.parametrize("fn", RIGHT_ENCODER)
def test_encoder_layer_forward_accepts_right_answers(fn):
    verdict = check.encoder_layer_forward(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_ENCODER)
def test_encoder_layer_forward_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.encoder_layer_forward(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict.message


def _dec(layer, y, memory, tgt_mask, memory_mask, *, post=False, self_mask="tgt", cross_mask="memory",
         kv="memory", skip_cross=True, q_memory=False):
    masks = {"tgt": tgt_mask, "memory": memory_mask, None: None}
    norms = (layer.self_attention_norm, layer.cross_attention_norm, layer.feed_forward_norm)

    def cross(h):
        keys = memory if kv == "memory" else h
        q, k = (keys, h) if q_memory else (h, keys)
        return layer.cross_attention(q, k, mask=masks[cross_mask])[0]

    subs = (lambda h: layer.self_attention(h, mask=masks[self_mask])[0], cross, layer.feed_forward)
    for i, (f, norm) in enumerate(zip(subs, norms)):
        if post:
            y = norm(y + f(y))
        else:
            y = (y if (skip_cross or i != 1) else 0) + f(norm(y))
    return y


RIGHT_DECODER = [
    lambda layer, y, mem, t, s: layer(y, mem, t, s)[0],
    lambda layer, y, mem, t, s: _dec(layer, y, mem, t, s),
]
WRONG_DECODER = [
    (lambda layer, y, mem, t, s: _dec(layer, y, mem, t, s, post=True), "post-LN"),
    (lambda layer, y, mem, t, s: _dec(layer, y, mem, t, s, self_mask=None), "pass tgt_mask"),
    (lambda layer, y, mem, t, s: _dec(layer, y, mem, t, s, self_mask="memory", cross_mask="tgt"), "wrong sides"),
    (lambda layer, y, mem, t, s: _dec(layer, y, mem, t, s, cross_mask=None), "pass memory_mask"),
    (lambda layer, y, mem, t, s: _dec(layer, y, mem, t, s, kv="decoder"), "come from the decoder"),
    (lambda layer, y, mem, t, s: _dec(layer, y, mem, t, s, kv="decoder", cross_mask="tgt"), "come from the decoder"),
    (lambda layer, y, mem, t, s: _dec(layer, y, mem, t, s, skip_cross=False), "around the cross-attention"),
    (lambda layer, y, mem, t, s: _dec(layer, y, mem, t, s, q_memory=True), "queries come from the decoder"),
    (lambda layer, y, mem, t, s: layer(y, mem, t, s), "return only y"),
]


@pytest.mark.parametrize("fn", RIGHT_DECODER)
def test_decoder_layer_forward_accepts_right_answers(fn):
    verdict = check.decoder_layer_forward(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_DECODER)
def test_decoder_layer_forward_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.decoder_layer_forward(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict.message


def _s2s(model, src, tgt, *, scale=True, positions=True, causal=True, source_mask=True, head=True):
    import math

    def embed(ids, table):
        h = table(ids) * (math.sqrt(model.d_model) if scale else 1)
        return model.dropout(model.positions(h) if positions else h)

    s_mask = tf.source_mask(src, model.pad_id)
    memory = model.encoder(embed(src, model.src_embed), s_mask)
    t_mask = tf.decoder_mask(tgt, model.pad_id) if causal else tf.source_mask(tgt, model.pad_id)
    y, _ = model.decoder(embed(tgt, model.tgt_embed), memory, t_mask, s_mask if source_mask else None)
    return model.out_proj(y) if head else y


@pytest.mark.parametrize("fn", [lambda m, s, t: m(s, t), _s2s])
def test_seq2seq_forward_accepts_right_answers(fn):
    verdict = check.seq2seq_forward(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("kwargs,hint", [
    (dict(scale=False), "sqrt(d_model)"),
    (dict(positions=False), "positions"),
    (dict(causal=False), "CAUSAL"),
    (dict(source_mask=False), "source mask"),
    (dict(head=False), "out_proj"),
])
def test_seq2seq_forward_rejects_mistakes_with_a_hint(kwargs, hint):
    verdict = check.seq2seq_forward(lambda m, s, t: _s2s(m, s, t, **kwargs))
    assert verdict.status == "wrong" and hint in verdict.message, verdict.message
