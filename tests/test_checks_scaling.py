"""The notebook-10 checkers accept every right answer and name the mistake in each wrong one."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import moe
from course_lib.checks import scaling as check


def stub(*args, **kwargs):
    raise NotImplementedError


# ---- top_k_routing --------------------------------------------------------------------------
def routing_right(logits, k):
    probs = logits.softmax(-1)
    gates, idx = probs.topk(k, dim=-1)
    return gates / gates.sum(-1, keepdim=True), idx


def routing_right_softmax_of_chosen(logits, k):  # the same numbers (Mixtral's way)
    top, idx = logits.topk(k, dim=-1)
    return top.softmax(-1), idx


def routing_right_reversed_order(logits, k):
    gates, idx = routing_right(logits, k)
    return gates.flip(-1), idx.flip(-1)


def routing_right_library(logits, k):
    return moe.top_k_routing(logits, k)


RIGHT_ROUTING = [routing_right, routing_right_softmax_of_chosen, routing_right_reversed_order, routing_right_library]


def routing_not_renormalised(logits, k):
    return logits.softmax(-1).topk(k, dim=-1)


def routing_smallest(logits, k):
    probs = logits.softmax(-1)
    g, idx = probs.topk(k, dim=-1, largest=False)
    return g / g.sum(-1, keepdim=True), idx


def routing_softmax_over_tokens(logits, k):
    probs = logits.softmax(0)
    g, idx = probs.topk(k, dim=-1)
    return g / g.sum(-1, keepdim=True), idx


def routing_raw_logits(logits, k):
    return logits.topk(k, dim=-1)


def routing_uniform_gates(logits, k):
    idx = logits.topk(k, dim=-1).indices
    return torch.full(idx.shape, 1 / k), idx


def routing_all_experts(logits, k):
    return logits.softmax(-1), logits.topk(k, dim=-1).indices


def routing_ignores_k(logits, k):
    return routing_right(logits, 2)


def routing_one_value(logits, k):
    return routing_right(logits, k)[0]


WRONG_ROUTING = [
    (routing_not_renormalised, "renormalise"),
    (routing_smallest, "lowest"),
    (routing_softmax_over_tokens, "over the tokens"),
    (routing_raw_logits, "raw logits"),
    (routing_uniform_gates, "1/k"),
    (routing_all_experts, "one column per expert"),
    (routing_ignores_k, "is k used"),
    (routing_one_value, "return two tensors"),
    (stub, "Not done"),
]


@pytest.mark.parametrize("fn", RIGHT_ROUTING)
def test_top_k_routing_accepts_right_answers(fn):
    verdict = check.top_k_routing(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_ROUTING, ids=[f.__name__ for f, _ in WRONG_ROUTING])
def test_top_k_routing_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.top_k_routing(fn)
    assert not verdict.passed and hint in repr(verdict), verdict


# ---- load_balancing_loss --------------------------------------------------------------------
def aux_right(probs, indices, num_experts):
    f = torch.bincount(indices.flatten(), minlength=num_experts).float() / indices.numel()
    return num_experts * (f * probs.mean(0)).sum()


def aux_right_one_hot(probs, indices, num_experts):
    f = F.one_hot(indices, num_experts).float().mean(dim=(0, 1))
    return num_experts * torch.dot(f, probs.mean(dim=0))


def aux_right_library(probs, indices, num_experts):
    return moe.load_balancing_loss(probs, indices, num_experts)


RIGHT_AUX = [aux_right, aux_right_one_hot, aux_right_library]


def aux_no_num_experts(probs, indices, num_experts):
    return aux_right(probs, indices, num_experts) / num_experts


def aux_counts_over_tokens(probs, indices, num_experts):
    f = torch.bincount(indices.flatten(), minlength=num_experts).float() / indices.shape[0]
    return num_experts * (f * probs.mean(0)).sum()


def aux_f_from_probs(probs, indices, num_experts):
    p = probs.mean(0)
    return num_experts * (p * p).sum()


def aux_first_choice_only(probs, indices, num_experts):
    return aux_right(probs, indices[:, :1], num_experts)


def aux_sum_of_probs(probs, indices, num_experts):
    f = torch.bincount(indices.flatten(), minlength=num_experts).float() / indices.numel()
    return num_experts * (f * probs.sum(0)).sum()


def aux_f_squared(probs, indices, num_experts):
    f = torch.bincount(indices.flatten(), minlength=num_experts).float() / indices.numel()
    return num_experts * (f * f).sum()


def aux_detached(probs, indices, num_experts):
    return aux_right(probs.detach(), indices, num_experts)


def aux_per_expert(probs, indices, num_experts):
    f = torch.bincount(indices.flatten(), minlength=num_experts).float() / indices.numel()
    return num_experts * f * probs.mean(0)


def aux_chosen_probs_only(probs, indices, num_experts):
    f = torch.bincount(indices.flatten(), minlength=num_experts).float() / indices.numel()
    chosen = torch.zeros(num_experts).index_add(0, indices.flatten(), probs.gather(-1, indices).flatten())
    return num_experts * (f * chosen / probs.shape[0]).sum()


WRONG_AUX = [
    (aux_no_num_experts, "num_experts is missing"),
    (aux_counts_over_tokens, "expert_indices.numel()"),
    (aux_f_from_probs, "bincount"),
    (aux_first_choice_only, "all k choices"),
    (aux_sum_of_probs, "not the sum"),
    (aux_f_squared, "dispatch fraction"),
    (aux_detached, "no gradient"),
    (aux_per_expert, "one number"),
    (aux_chosen_probs_only, "all* tokens"),
    (stub, "Not done"),
]


@pytest.mark.parametrize("fn", RIGHT_AUX)
def test_load_balancing_loss_accepts_right_answers(fn):
    verdict = check.load_balancing_loss(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_AUX, ids=[f.__name__ for f, _ in WRONG_AUX])
def test_load_balancing_loss_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.load_balancing_loss(fn)
    assert not verdict.passed and hint in repr(verdict), verdict


# ---- kv_cache_step --------------------------------------------------------------------------
def kv_right(q, k_new, v_new, k_cache, v_cache):
    k = torch.cat([k_cache, k_new], dim=-2)
    v = torch.cat([v_cache, v_new], dim=-2)
    return F.scaled_dot_product_attention(q, k, v), k, v


def kv_right_by_hand(q, k_new, v_new, k_cache, v_cache):
    k = torch.cat((k_cache, k_new), dim=2)
    v = torch.cat((v_cache, v_new), dim=2)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
    return weights @ v, k, v


def kv_right_library_cache(q, k_new, v_new, k_cache, v_cache):
    from course_lib.gpt import KVCache

    cache = KVCache()
    cache.update(0, k_cache, v_cache)
    k, v = cache.update(0, k_new, v_new)
    return F.scaled_dot_product_attention(q, k, v), k, v


RIGHT_KV = [kv_right, kv_right_by_hand, kv_right_library_cache]


def kv_heads_axis(q, k_new, v_new, k_cache, v_cache):
    k, v = torch.cat([k_cache, k_new], dim=1), torch.cat([v_cache, v_new], dim=1)
    return q, k, v


def kv_prepended(q, k_new, v_new, k_cache, v_cache):
    k, v = torch.cat([k_new, k_cache], dim=-2), torch.cat([v_new, v_cache], dim=-2)
    return F.scaled_dot_product_attention(q, k, v), k, v


def kv_only_new(q, k_new, v_new, k_cache, v_cache):
    return F.scaled_dot_product_attention(q, k_new, v_new), k_new, v_new


def kv_not_itself(q, k_new, v_new, k_cache, v_cache):
    out = F.scaled_dot_product_attention(q, k_cache, v_cache) if k_cache.shape[-2] else v_new
    return out, torch.cat([k_cache, k_new], dim=-2), torch.cat([v_cache, v_new], dim=-2)


def kv_is_causal(q, k_new, v_new, k_cache, v_cache):
    k, v = torch.cat([k_cache, k_new], dim=-2), torch.cat([v_cache, v_new], dim=-2)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True), k, v


def kv_unscaled(q, k_new, v_new, k_cache, v_cache):
    k, v = torch.cat([k_cache, k_new], dim=-2), torch.cat([v_cache, v_new], dim=-2)
    return (q @ k.transpose(-2, -1)).softmax(-1) @ v, k, v


def kv_softmax_wrong_axis(q, k_new, v_new, k_cache, v_cache):
    k, v = torch.cat([k_cache, k_new], dim=-2), torch.cat([v_cache, v_new], dim=-2)
    return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-2) @ v, k, v


def kv_output_only(q, k_new, v_new, k_cache, v_cache):
    return kv_right(q, k_new, v_new, k_cache, v_cache)[0]


WRONG_KV = [
    (kv_heads_axis, "sequence axis, dim=-2"),
    (kv_prepended, "front"),
    (kv_only_new, "only the new key"),
    (kv_not_itself, "itself too"),
    (kv_is_causal, "is_causal=True"),
    (kv_unscaled, "sqrt(d_head)"),
    (kv_softmax_wrong_axis, "wrong axis"),
    (kv_output_only, "three tensors"),
    (stub, "Not done"),
]


@pytest.mark.parametrize("fn", RIGHT_KV)
def test_kv_cache_step_accepts_right_answers(fn):
    verdict = check.kv_cache_step(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_KV, ids=[f.__name__ for f, _ in WRONG_KV])
def test_kv_cache_step_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.kv_cache_step(fn)
    assert not verdict.passed and hint in repr(verdict), verdict
