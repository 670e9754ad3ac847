"""course_lib._validate: the one home of the argument checks, and bools are never ints."""

import pytest
import torch

from course_lib import _validate as validate
from course_lib.attention import MultiHeadAttention
from course_lib.bert import BertConfig
from course_lib.gpt import GPT, GPTConfig, generate, top_k_filter
from course_lib.transformer import FeedForward


@pytest.mark.parametrize("value", [True, False, 2.0, "3", None, 0, -1])
def test_positive_int_rejects_bools_floats_and_non_positive_values(value):
    with pytest.raises(ValueError, match=r"f expected a positive int n, got"):
        validate.positive_int(value, "n", "f")


def test_positive_int_ranges_and_messages():
    assert validate.positive_int(3, "n", "f") == 3
    assert validate.positive_int(0, "n", "f", minimum=0) == 0
    with pytest.raises(ValueError, match=r"f expected n to be an int >= 2 and <= 4, got 5"):
        validate.positive_int(5, "n", "f", minimum=2, maximum=4)


@pytest.mark.parametrize("name", ["vocab_size", "max_len", "d_model", "num_layers", "num_heads", "d_ff"])
def test_every_gpt_size_refuses_a_bool(name):
    with pytest.raises(ValueError, match=f"GPTConfig expected a positive int {name}, got True"):
        GPTConfig(**{name: True})


@pytest.mark.parametrize("name", ["vocab_size", "d_model", "num_layers", "num_heads", "d_ff", "max_len"])
def test_every_bert_size_refuses_a_bool(name):
    with pytest.raises(ValueError, match=f"BertConfig expected .*{name}"):
        BertConfig(**{"vocab_size": 30, name: True})


def test_modules_and_decoding_refuse_bools_for_ints():
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(8, True)
    with pytest.raises(ValueError, match="d_ff"):
        FeedForward(8, True)
    with pytest.raises(ValueError, match="top_k"):
        top_k_filter(torch.randn(3, 5), True)
    model = GPT(GPTConfig(vocab_size=10, max_len=8, d_model=8, num_layers=1, num_heads=2))
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, torch.tensor([1, 2]), True)
    with pytest.raises(ValueError, match="top_k"):
        generate(model, torch.tensor([1, 2]), 2, do_sample=True, top_k=True)


def test_probabilities_and_numbers():
    assert validate.probability(0.5, "p", "f") == 0.5
    for bad in (True, -0.1, 1.5, float("nan"), "0.5"):
        with pytest.raises(ValueError, match="f expected"):
            validate.probability(bad, "p", "f")
    with pytest.raises(ValueError, match=r"0.0 < top_p <= 1.0"):
        validate.number(0.0, "top_p", "f", low=0.0, high=1.0, low_open=True)


def test_token_ids_say_what_was_expected_and_what_arrived():
    ids = validate.token_ids(torch.tensor([[1, 2]], dtype=torch.int32), "f", vocab_size=5)
    assert ids.dtype == torch.long
    with pytest.raises(TypeError, match="integer token ids"):
        validate.token_ids(torch.ones(1, 2), "f")
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        validate.token_ids(torch.tensor([1, 2]), "f")
    with pytest.raises(ValueError, match=r"\[0, vocab_size=5\), got ids from 1 to 7"):
        validate.token_ids(torch.tensor([[1, 7]]), "f", vocab_size=5)


def test_eval_mode_restores_the_training_flag_even_after_an_error():
    model = torch.nn.Dropout(0.5).train()
    with validate.eval_mode(model):
        assert not model.training
    assert model.training
    with pytest.raises(RuntimeError), validate.eval_mode(model):
        raise RuntimeError("inside")
    assert model.training
    model.eval()
    with validate.eval_mode(model):
        pass
    assert not model.training
