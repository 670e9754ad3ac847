"""The notebook-08 checkers accept every right answer and name the mistake in each wrong one."""

import pytest
import torch
import torch.nn.functional as F

from course_lib import gpt, objectives
from course_lib.checks import gpt as check


def stub(*args, **kwargs):
    raise NotImplementedError


# ---- causal_lm_loss -------------------------------------------------------------------------
def loss_right_ignore_index(logits, ids, attention_mask=None):
    targets = ids[:, 1:].clone()
    if attention_mask is not None:
        targets[attention_mask[:, 1:] == 0] = -100
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


def loss_right_by_hand(logits, ids, attention_mask=None):
    logp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    weight = torch.ones_like(logp) if attention_mask is None else attention_mask[:, 1:].float()
    return -(logp * weight).sum() / weight.sum()


def loss_right_transposed(logits, ids, attention_mask=None):
    per_token = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    if attention_mask is None:
        return per_token.mean()
    keep = attention_mask[:, 1:].bool()
    return per_token[keep].mean()


RIGHT_LOSS = [loss_right_ignore_index, loss_right_by_hand, loss_right_transposed, objectives.causal_lm_loss]


def loss_not_shifted(logits, ids, attention_mask=None):
    return F.cross_entropy(logits.flatten(0, 1), ids.flatten())


def loss_shifted_wrong_way(logits, ids, attention_mask=None):
    return F.cross_entropy(logits[:, 1:].flatten(0, 1), ids[:, :-1].flatten())


def loss_padding_counted(logits, ids, attention_mask=None):
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())


def loss_mask_wrong_side(logits, ids, attention_mask=None):
    targets = ids[:, 1:].clone()
    if attention_mask is not None:
        targets[attention_mask[:, :-1] == 0] = -100
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=-100)


def loss_per_sequence_mean(logits, ids, attention_mask=None):
    per_token = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    weight = torch.ones_like(per_token) if attention_mask is None else attention_mask[:, 1:].float()
    return ((per_token * weight).sum(1) / weight.sum(1)).mean()


def loss_zeroed_but_counted(logits, ids, attention_mask=None):
    per_token = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    if attention_mask is not None:
        per_token = per_token * attention_mask[:, 1:]
    return per_token.mean()


def loss_sum(logits, ids, attention_mask=None):
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="sum")


def loss_per_token(logits, ids, attention_mask=None):
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")


def loss_positive_log_prob(logits, ids, attention_mask=None):
    return -loss_right_ignore_index(logits, ids, attention_mask)


def loss_in_place(logits, ids, attention_mask=None):
    if attention_mask is not None:
        ids.masked_fill_(attention_mask == 0, -100)
    return loss_right_ignore_index(logits, ids, attention_mask)


def loss_no_log_softmax(logits, ids, attention_mask=None):
    return F.nll_loss(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())


WRONG_LOSS = [
    (loss_not_shifted, "not shifted"),
    (loss_shifted_wrong_way, "wrong way"),
    (loss_padding_counted, "padding counts"),
    (loss_mask_wrong_side, "attention_mask[:, 1:]"),
    (loss_per_sequence_mean, "all counted tokens at once"),
    (loss_zeroed_but_counted, "number of real targets"),
    (loss_sum, "sum"),
    (loss_per_token, "one number"),
    (loss_positive_log_prob, "negative"),
    (loss_in_place, "in place"),
    (loss_no_log_softmax, "log_softmax"),
]


@pytest.mark.parametrize("fn", RIGHT_LOSS)
def test_causal_lm_loss_accepts_right_answers(fn):
    verdict = check.causal_lm_loss(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_LOSS, ids=[f.__name__ for f, _ in WRONG_LOSS])
def test_causal_lm_loss_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.causal_lm_loss(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- top_k_filter ---------------------------------------------------------------------------
def top_k_right(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_k_right_scatter(logits, k):
    idx = logits.topk(k, dim=-1).indices
    out = torch.full_like(logits, float("-inf"))
    return out.scatter(-1, idx, logits.gather(-1, idx))


def top_k_right_sort(logits, k):
    kth = logits.sort(dim=-1, descending=True).values[..., k - 1 : k]
    return torch.where(logits >= kth, logits, torch.tensor(float("-inf")))


def top_k_right_very_negative(logits, k):
    kth = torch.topk(logits, k).values[..., -1:]
    return logits.masked_fill(logits < kth, -1e9)


def top_k_right_log_probs(logits, k):  # renormalised log-probabilities: the same distribution
    return top_k_right(logits, k).log_softmax(-1)


RIGHT_TOP_K = [top_k_right, top_k_right_scatter, top_k_right_sort, top_k_right_very_negative,
               top_k_right_log_probs, gpt.top_k_filter]


def top_k_keeps_k_minus_1(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits <= kth, float("-inf"))


def top_k_keeps_k_plus_1(logits, k):
    kth = logits.sort(dim=-1, descending=True).values[..., min(k, logits.shape[-1] - 1) : k + 1]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_k_smallest(logits, k):
    kth = torch.topk(logits, k, dim=-1, largest=False).values[..., -1:]
    return logits.masked_fill(logits > kth, float("-inf"))


def top_k_probabilities(logits, k):
    probs = logits.softmax(-1)
    kth = torch.topk(probs, k, dim=-1).values[..., -1:]
    return probs * (probs >= kth)


def top_k_renormalised_probabilities(logits, k):
    probs = top_k_probabilities(logits, k)
    return probs / probs.sum(-1, keepdim=True)


def top_k_zero(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, 0.0)


def top_k_whole_batch(logits, k):
    kth = torch.topk(logits.flatten(), k).values[-1]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_k_in_place(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill_(logits < kth, float("-inf"))


def top_k_changes_kept(logits, k):
    return top_k_right(logits, k) * 2


WRONG_TOP_K = [
    (top_k_keeps_k_minus_1, "strictly *below*"),
    (top_k_keeps_k_plus_1, "one too many"),
    (top_k_smallest, "smallest"),
    (top_k_probabilities, "probabilities"),
    (top_k_renormalised_probabilities, "probabilities"),
    (top_k_zero, "-inf"),
    (top_k_whole_batch, "dim=-1"),
    (top_k_in_place, "in place"),
    (top_k_changes_kept, "scores changed"),
]


@pytest.mark.parametrize("fn", RIGHT_TOP_K)
def test_top_k_accepts_right_answers(fn):
    verdict = check.top_k_filter(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_TOP_K, ids=[f.__name__ for f, _ in WRONG_TOP_K])
def test_top_k_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.top_k_filter(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- top_p_filter ---------------------------------------------------------------------------
def top_p_right(logits, p):
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    remove = probs.cumsum(-1) - probs >= p
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


def top_p_right_ascending_like_hf(logits, p):
    sorted_logits, order = logits.sort(dim=-1)
    cumulative = sorted_logits.softmax(-1).cumsum(-1)
    remove = cumulative <= 1 - p
    remove[..., -1] = False
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


def top_p_right_gather(logits, p):
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    keep_sorted = (probs.cumsum(-1) - probs) < p
    keep = keep_sorted.gather(-1, order.argsort(-1))
    return torch.where(keep, logits, torch.full_like(logits, float("-inf")))


RIGHT_TOP_P = [top_p_right, top_p_right_ascending_like_hf, top_p_right_gather, gpt.top_p_filter]


def top_p_drops_crossing_token(logits, p):
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    remove = sorted_logits.softmax(-1).cumsum(-1) >= p
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


def top_p_unsorted(logits, p):
    probs = logits.softmax(-1)
    remove = probs.cumsum(-1) - probs >= p
    return logits.masked_fill(remove, float("-inf"))


def top_p_not_put_back(logits, p):
    sorted_logits, _ = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    return logits.masked_fill(probs.cumsum(-1) - probs >= p, float("-inf"))


def top_p_ascending(logits, p):
    sorted_logits, order = logits.sort(dim=-1)
    probs = sorted_logits.softmax(-1)
    remove = probs.cumsum(-1) - probs >= p
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


def top_p_cumsum_of_logits(logits, p):
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    remove = sorted_logits.cumsum(-1) - sorted_logits >= p
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


def top_p_probabilities(logits, p):
    return top_p_right(logits, p).softmax(-1)


def top_p_zero(logits, p):
    out = top_p_right(logits, p)
    return out.masked_fill(torch.isinf(out), 0.0)


def top_p_in_place(logits, p):
    out = top_p_right(logits, p)
    logits.copy_(out)
    return logits


def top_p_flattened(logits, p):
    flat = logits.reshape(-1)
    return top_p_right(flat, p).reshape(logits.shape)


WRONG_TOP_P = [
    (top_p_drops_crossing_token, "crosses p"),
    (top_p_unsorted, "sort the tokens"),
    (top_p_not_put_back, "put back in vocabulary order"),
    (top_p_ascending, "least"),
    (top_p_cumsum_of_logits, "softmax first"),
    (top_p_probabilities, "probabilities"),
    (top_p_zero, "-inf"),
    (top_p_in_place, "in place"),
    (top_p_flattened, "dim=-1"),
]


@pytest.mark.parametrize("fn", RIGHT_TOP_P)
def test_top_p_accepts_right_answers(fn):
    verdict = check.top_p_filter(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_TOP_P, ids=[f.__name__ for f, _ in WRONG_TOP_P])
def test_top_p_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.top_p_filter(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- shared --------------------------------------------------------------------------------
@pytest.mark.parametrize("checker", [check.causal_lm_loss, check.top_k_filter, check.top_p_filter])
def test_a_stub_is_not_done_yet_not_a_crash(checker):
    verdict = checker(stub)
    assert verdict.status == "not done" and not verdict


def test_verdicts_are_one_line():
    for verdict in (check.causal_lm_loss(loss_right_by_hand), check.top_k_filter(top_k_right),
                    check.top_p_filter(top_p_right), check.top_p_filter(top_p_unsorted)):
        assert "\n" not in repr(verdict)


# ---- the block and the model ------------------------------------------------------------------
def _block(block, x, *, causal=True, post=False, skip=True, normed_skip=False):
    norms = (block.attention_norm, block.feed_forward_norm)
    subs = (lambda h: block.attention(h, is_causal=causal)[0], block.feed_forward)
    for i, (f, norm) in enumerate(zip(subs, norms)):
        if post:
            x = norm(x + f(x))
        else:
            h = norm(x)
            x = (h if normed_skip else x if (skip or i) else 0) + block.dropout(f(h))
    return x


def _block_with_mask(block, x):
    from course_lib.attention import causal_mask

    a, _ = block.attention(block.attention_norm(x), mask=causal_mask(x.shape[1]))
    x = x + a
    return x + block.feed_forward(block.feed_forward_norm(x))


@pytest.mark.parametrize("fn", [lambda b, x: b(x)[0], _block, _block_with_mask])
def test_gpt_block_forward_accepts_right_answers(fn):
    assert check.gpt_block_forward(fn).passed


@pytest.mark.parametrize("fn,hint", [
    (lambda b, x: _block(b, x, causal=False), "causal"),
    (lambda b, x: _block(b, x, post=True), "post-LN"),
    (lambda b, x: _block(b, x, skip=False), "around the attention"),
    (lambda b, x: _block(b, x, normed_skip=True), "NORMALISED"),
    (lambda b, x: b(x), "not a tuple"),
    (lambda b, x: 2 * _block(b, x), "differs"),
])
def test_gpt_block_forward_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.gpt_block_forward(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict.message


def _forward(model, ids, *, positions=True, final=True, unpack=True, head=True):
    x = model.token_embedding(ids)
    if positions:
        x = x + model.position_embedding.positions(ids.shape[1])
    x = model.dropout(x)
    for block in model.layers:
        x = block(x)[0] if unpack else block(x)
    x = model.final_norm(x) if final else x
    return model.lm_head(x) if head else x


@pytest.mark.parametrize("fn", [lambda m, ids: m(ids), _forward])
def test_gpt_forward_accepts_right_answers(fn):
    assert check.gpt_forward(fn).passed


@pytest.mark.parametrize("kwargs,hint", [
    (dict(positions=False), "position embeddings"),
    (dict(final=False), "final_norm"),
    (dict(unpack=False), "unpack"),
    (dict(head=False), "lm_head"),
])
def test_gpt_forward_rejects_mistakes_with_a_hint(kwargs, hint):
    verdict = check.gpt_forward(lambda m, ids: _forward(m, ids, **kwargs))
    assert verdict.status == "wrong" and hint in verdict.message, verdict.message


# ---- the training loop ------------------------------------------------------------------------
def _loop(model, batches, optimizer, scheduler, max_grad_norm, *, order=("zero", "backward", "clip", "step", "schedule"),
          train=True, item=True):
    if train:
        model.train()
    losses = []
    for batch in batches:
        loss = objectives.causal_lm_loss(model(batch), batch)
        for action in order:
            if action == "zero":
                optimizer.zero_grad(set_to_none=True)
            elif action == "backward":
                loss.backward()
            elif action == "clip":
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            elif action == "step":
                optimizer.step()
            elif action == "schedule":
                scheduler.step()
        losses.append(loss.item() if item else loss.detach())
    return losses


@pytest.mark.parametrize("kwargs", [{}, dict(item=False)])
def test_train_steps_accepts_right_answers(kwargs):
    verdict = check.train_steps(lambda *a: _loop(*a, **kwargs))
    assert verdict.passed, verdict


@pytest.mark.parametrize("kwargs,hint", [
    (dict(order=("backward", "clip", "step", "schedule")), "zero the gradients"),
    (dict(order=("backward", "zero", "clip", "step", "schedule")), "never change"),
    (dict(order=("zero", "backward", "step", "schedule")), "BEFORE optimizer.step()"),
    (dict(order=("zero", "backward", "step", "clip", "schedule")), "BEFORE optimizer.step()"),
    (dict(order=("zero", "backward", "clip", "step")), "scheduler"),
    (dict(order=("zero", "schedule", "backward", "clip", "step")), "after optimizer.step()"),
    (dict(train=False), "model.train()"),
])
def test_train_steps_rejects_mistakes_with_a_hint(kwargs, hint):
    verdict = check.train_steps(lambda *a: _loop(*a, **kwargs))
    assert verdict.status == "wrong" and hint in verdict.message, verdict.message


def test_train_steps_wants_one_loss_per_batch():
    verdict = check.train_steps(lambda *a: _loop(*a)[:-1])
    assert verdict.status == "wrong" and "one loss per batch" in verdict.message
