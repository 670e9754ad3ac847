"""Smoke tests of the benchmark functions on tiny configurations (the numbers are not checked)."""

import pytest
import torch

from course_lib import bench, bert, gpt


def test_time_interleaved_runs_each_contender_in_turn():
    calls = []
    out = bench.time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=2, warmup=1)
    assert calls == ["a", "b"] * 3
    assert set(out) == {"a", "b"} and all(v["median_s"] >= 0 for v in out.values())
    with pytest.raises(ValueError, match="non-empty"):
        bench.time_interleaved({})
    with pytest.raises(TypeError, match="not callable"):
        bench.time_interleaved({"a": 3})


def test_gpt_and_bert_against_hf_on_a_tiny_config():
    g = bench.gpt_vs_hf(gpt.GPTConfig(vocab_size=64, max_len=16, d_model=16, num_layers=1, num_heads=2),
                        batch_size=2, repeats=1, warmup=0)
    assert g["speedup"] > 0 and g["batch"] == [2, 16]
    b = bench.bert_vs_hf(bert.BertConfig(vocab_size=64, d_model=16, num_layers=1, num_heads=2, max_len=16),
                         batch_size=2, repeats=1, warmup=0)
    assert b["speedup"] > 0
    with pytest.raises(ValueError, match="longer than the context"):
        bench.gpt_vs_hf(gpt.GPTConfig(vocab_size=64, max_len=16, d_model=16, num_layers=1, num_heads=2), seq_len=32)


def test_attention_and_generation_times():
    a = bench.attention_times(batch_size=1, num_heads=2, seq_len=8, d_head=4, repeats=1, warmup=0)
    assert {"course fused", "torch sdpa", "course explicit"} <= set(a)
    torch.manual_seed(0)
    model = gpt.GPT(gpt.GPTConfig(vocab_size=64, max_len=24, d_model=16, num_layers=1, num_heads=2))
    n = bench.generation_times(model, prompt_len=4, new_tokens=8)
    assert n["same_tokens"] == 1.0 and n["speedup"] > 0
    with pytest.raises(ValueError, match="longer max_len"):
        bench.generation_times(model, prompt_len=20, new_tokens=8)


def test_flops_per_token_is_6n_plus_the_attention_term():
    assert bench.flops_per_token(1000, 2, 16, 32) == 6 * 1000 + 12 * 2 * 16 * 32
    assert bench.flops_per_token(1000, 2, 16, 32, training=False) == 2 * 1000 + 4 * 2 * 16 * 32
    with pytest.raises(ValueError, match="num_parameters"):
        bench.flops_per_token(0, 2, 16, 32)
    assert bench.matmul_flops_per_second(32, repeats=1) > 0


def test_the_command_prints_a_table(capsys):
    results = bench.main(["--quick", "--repeats", "1", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "| GPT train step" in out and "KV cache" in out
    assert results["gpt"]["speedup"] > 0
