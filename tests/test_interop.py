"""course_lib.interop: one table per model, read in both directions, and the one attention path."""

import pytest
import torch
from torch import nn
from transformers import BertConfig as HFBertConfig
from transformers import BertForPreTraining, GPT2Config, GPT2LMHeadModel

from course_lib import interop
from course_lib.attention import MultiHeadAttention
from course_lib.bert import Bert, BertConfig
from course_lib.gpt import GPT, GPTBlock, GPTConfig


def _perturbed(model: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():  # biases and LayerNorms start at 0 and 1: make every weight matter
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_gpt_round_trip_through_hf_keeps_every_weight():
    ours = _perturbed(GPT(GPTConfig(vocab_size=40, max_len=12, d_model=16, num_layers=2, num_heads=4, d_ff=24)))
    hf = interop.gpt_to_hf(ours)
    back = interop.gpt_from_hf(hf)
    assert back.config == ours.config
    for name, value in ours.state_dict().items():
        assert torch.equal(back.state_dict()[name], value), name
    ids = torch.randint(0, 40, (2, 12))
    torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=0)


def test_gpt_weight_table_names_every_weight_of_both_sides_once():
    config = GPTConfig(vocab_size=30, max_len=8, d_model=8, num_layers=3, num_heads=2, tie_embeddings=False)
    rows = interop.gpt_weight_table(config)
    hf_names = [theirs for _, theirs, _ in rows]
    assert len(set(hf_names)) == len(rows)  # each HF tensor read once
    hf = GPT2LMHeadModel(GPT2Config(**interop.gpt_config_to_hf(config).to_dict()))
    # Some transformers versions keep GPT-2's causal mask as a buffer "attn.bias": not a weight.
    assert set(hf_names) == {n for n in hf.state_dict() if not n.endswith((".attn.bias", ".attn.masked_bias"))}
    course = set()
    for ours, _, how in rows:  # a "qkv" row stands for q_proj, k_proj and v_proj
        course |= {ours.replace("{q,k,v}", x) for x in "qkv"} if how == "qkv" else {ours}
    assert course == set(GPT(config).state_dict())


def test_bert_round_trip_through_hf_keeps_every_weight():
    ours = _perturbed(Bert(BertConfig(vocab_size=50, d_model=16, num_layers=2, num_heads=2, d_ff=32, max_len=16)))
    back = interop.bert_from_hf(interop.bert_to_hf(ours))
    assert back.config == ours.config
    for name, value in ours.state_dict().items():
        assert torch.equal(back.state_dict()[name], value), name


def test_bert_config_tables_translate_both_ways():
    hf = HFBertConfig(vocab_size=70, hidden_size=24, num_hidden_layers=2, num_attention_heads=3,
                      intermediate_size=40, max_position_embeddings=20, hidden_act="gelu_new")
    ours = interop.bert_config_from_hf(hf)
    assert (ours.d_model, ours.num_layers, ours.num_heads, ours.d_ff, ours.max_len) == (24, 2, 3, 40, 20)
    again = interop.bert_config_to_hf(ours)
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "hidden_act"):
        assert getattr(again, key) == getattr(hf, key), key
    assert isinstance(interop.bert_from_hf(BertForPreTraining(hf)), Bert)


@pytest.mark.parametrize("bias", [True, False])
def test_mha_to_torch_and_back_compute_the_same(bias):
    torch.manual_seed(0)
    ours = _perturbed(MultiHeadAttention(16, 4, bias=bias))
    theirs = interop.mha_to_torch(ours).eval()
    assert isinstance(theirs, nn.MultiheadAttention) and theirs.batch_first
    x = torch.randn(2, 5, 16)
    expected, _ = theirs(x, x, x, need_weights=False)
    torch.testing.assert_close(ours(x)[0], expected, atol=1e-6, rtol=0)
    back = interop.mha_from_torch(theirs)
    for name, value in ours.state_dict().items():
        assert torch.equal(back.state_dict()[name], value), name


def test_the_gpt_block_runs_multi_head_attention_forward(monkeypatch):
    """One attention path: the learner's MultiHeadAttention of notebook 05 is what every GPT block calls."""
    calls = []
    original = MultiHeadAttention.forward

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("cache"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MultiHeadAttention, "forward", spy)
    config = GPTConfig(vocab_size=20, max_len=8, d_model=8, num_layers=3, num_heads=2)
    model = GPT(config).eval()
    assert all(isinstance(block, GPTBlock) and isinstance(block.attention, MultiHeadAttention)
               for block in model.layers)
    model(torch.randint(0, 20, (1, 6)))
    assert len(calls) == 3
    from course_lib.gpt import generate

    calls.clear()
    generate(model, torch.randint(0, 20, (1, 3)), 2)  # prompt, then one cached step
    assert len(calls) == 6 and all(c is not None for c in calls)
