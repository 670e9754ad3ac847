"""course_lib.gpt: equal to HF GPT-2 on shared weights, greedy generation token for token, the KV
cache, the sampling filters, clear errors on bad input, and the shipped checkpoint."""

import math
import time

import pytest
import torch

from course_lib import pretraining
from course_lib.attention import KVCache
from course_lib.bench import time_interleaved
from course_lib.checkpoint import load_pretrained, save_pretrained
from course_lib.gpt import GPT, GPTConfig, generate, top_k_filter, top_p_filter
from course_lib.objectives import causal_lm_loss

transformers = pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

HF_CONFIGS = [
    dict(n_layer=2, n_head=2, n_embd=32, vocab_size=101, n_positions=40),
    dict(n_layer=3, n_head=4, n_embd=48, vocab_size=57, n_positions=24, n_inner=37,
         activation_function="relu", layer_norm_epsilon=1e-3),
    dict(n_layer=1, n_head=1, n_embd=16, vocab_size=30, n_positions=16, activation_function="gelu",
         scale_attn_weights=False, scale_attn_by_inverse_layer_idx=True, tie_word_embeddings=False),
    dict(n_layer=2, n_head=8, n_embd=64, vocab_size=300, n_positions=32, activation_function="silu"),
    dict(n_layer=2, n_head=3, n_embd=24, vocab_size=50, n_positions=20, activation_function="gelu_pytorch_tanh",
         n_inner=8),
]


def random_hf(seed: int = 0, attn_implementation: str = "eager", **kwargs) -> GPT2LMHeadModel:
    """A GPT2LMHeadModel of the given shape with every weight (LayerNorms too) random."""
    torch.manual_seed(seed)
    config = GPT2Config(**kwargs, attn_implementation=attn_implementation, bos_token_id=None,
                        eos_token_id=None, pad_token_id=None)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def small_hf():
    return random_hf(**HF_CONFIGS[0])


# ---- equality with Hugging Face ------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", HF_CONFIGS, ids=lambda k: f"L{k['n_layer']}H{k['n_head']}D{k['n_embd']}")
def test_logits_and_attentions_equal_hf(kwargs):
    hf = random_hf(**kwargs)
    ours = GPT.from_hf(hf)
    ids = torch.randint(0, kwargs["vocab_size"], (3, kwargs["n_positions"]), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(ids, output_attentions=True)
        logits = ours(ids)
        out = ours(ids, output_attentions=True)
    assert logits.shape == (3, kwargs["n_positions"], kwargs["vocab_size"])
    torch.testing.assert_close(logits, expected.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.logits, expected.logits, atol=1e-5, rtol=0)
    assert len(out.attentions) == kwargs["n_layer"]
    for a, b in zip(out.attentions, expected.attentions):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_equal_to_hf_sdpa_and_in_training_mode_without_dropout():
    kwargs = dict(HF_CONFIGS[1], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf = random_hf(attn_implementation="sdpa", **kwargs).train()
    ours = GPT.from_hf(hf)
    assert ours.training
    ids = torch.randint(0, kwargs["vocab_size"], (2, 10))
    torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=0)
    # and the loss, HF shifting the labels inside the model
    torch.testing.assert_close(causal_lm_loss(ours(ids), ids), hf(ids, labels=ids).loss, atol=1e-5, rtol=0)


def test_from_hf_copies_the_config_and_to_hf_goes_back():
    hf = random_hf(**HF_CONFIGS[2])
    ours = GPT.from_hf(hf)
    c = ours.config
    assert (c.vocab_size, c.max_len, c.d_model, c.num_layers, c.num_heads) == (30, 16, 16, 1, 1)
    assert c.activation == "gelu" and not c.tie_embeddings and not c.scale_attn_weights
    back = ours.to_hf()
    hf_state, back_state = hf.state_dict(), back.state_dict()
    for name, value in hf_state.items():
        torch.testing.assert_close(back_state[name], value, atol=0, rtol=0)
    ids = torch.randint(0, 30, (2, 16))
    torch.testing.assert_close(back(ids).logits, hf(ids).logits, atol=0, rtol=0)


def test_tied_head_is_one_matrix_and_round_trips():
    model = GPT(GPTConfig(vocab_size=50, max_len=8, d_model=16, num_layers=1, num_heads=2))
    assert model.lm_head.weight is model.token_embedding.weight
    hf = model.to_hf()
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()
    ids = torch.randint(0, 50, (2, 8))
    torch.testing.assert_close(hf(ids).logits, model(ids), atol=1e-5, rtol=0)


def test_padding_matches_hf_on_real_tokens(small_hf):
    ours = GPT.from_hf(small_hf)
    ids = torch.randint(0, 101, (2, 12))
    # right padding: positions count from 0 in both, padded keys are never attended to
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 7:] = 0
    expected = small_hf(ids, attention_mask=mask).logits
    got = ours(ids, attention_mask=mask)
    torch.testing.assert_close(got[0], expected[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(got[1, :7], expected[1, :7], atol=1e-5, rtol=0)
    torch.testing.assert_close(got[1, :7], ours(ids[1:, :7])[0], atol=1e-5, rtol=0)
    # left padding with positions counted from the first real token
    left = torch.ones(2, 12, dtype=torch.long)
    left[0, :4] = 0
    positions = (left.cumsum(-1) - 1).clamp(min=0)
    expected = small_hf(ids, attention_mask=left, position_ids=positions).logits
    got = ours(ids, attention_mask=left, position_ids=positions)
    torch.testing.assert_close(got[0, 4:], expected[0, 4:], atol=1e-5, rtol=0)
    torch.testing.assert_close(got[0, 4:], ours(ids[:1, 4:])[0], atol=1e-5, rtol=0)


# ---- generation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", HF_CONFIGS[:4], ids=lambda k: f"L{k['n_layer']}H{k['n_head']}D{k['n_embd']}")
def test_greedy_generation_equals_hf_token_for_token(kwargs):
    hf = random_hf(seed=3, **kwargs)
    ours = GPT.from_hf(hf)
    prompt = torch.randint(0, kwargs["vocab_size"], (3, 4), generator=torch.Generator().manual_seed(2))
    new = kwargs["n_positions"] - 4
    expected = hf.generate(prompt, max_new_tokens=new, do_sample=False)
    assert expected.shape == (3, 4 + new)
    assert torch.equal(generate(ours, prompt, new), expected)
    assert torch.equal(generate(ours, prompt, new, use_cache=False), expected)


def test_greedy_generation_with_eos_and_left_padding_equals_hf(small_hf):
    ours = GPT.from_hf(small_hf)
    prompt = torch.randint(2, 101, (4, 6), generator=torch.Generator().manual_seed(5))
    free = generate(ours, prompt, 20)
    eos = int(free[1, 9])  # a token the model will produce, so some sequences finish early
    expected = small_hf.generate(prompt, max_new_tokens=20, do_sample=False, eos_token_id=eos, pad_token_id=0)
    got = generate(ours, prompt, 20, eos_token_id=eos, pad_token_id=0)
    assert torch.equal(got, expected)
    # prompts of different lengths, padded on the left
    mask = torch.ones(4, 6, dtype=torch.long)
    mask[0, :3] = 0
    mask[2, :1] = 0
    padded = prompt.masked_fill(mask == 0, 0)
    expected = small_hf.generate(padded, attention_mask=mask, max_new_tokens=15, do_sample=False)
    for use_cache in (True, False):
        got = generate(ours, padded, 15, attention_mask=mask, use_cache=use_cache)
        assert torch.equal(got, expected)
    # the padded prompt continues as the unpadded one does
    assert torch.equal(got[0, 3:], generate(ours, prompt[:1, 3:], 15)[0])


def test_sampling_equals_hf_with_the_same_seed(small_hf):
    ours = GPT.from_hf(small_hf)
    prompt = torch.randint(0, 101, (2, 5))
    settings = dict(do_sample=True, temperature=0.8, top_k=20, top_p=0.9)
    torch.manual_seed(7)
    expected = small_hf.generate(prompt, max_new_tokens=25, **settings)
    torch.manual_seed(7)
    assert torch.equal(generate(ours, prompt, 25, **settings), expected)


def test_repetition_penalty_equals_hf_greedy_and_sampling(small_hf):
    ours = GPT.from_hf(small_hf)
    prompt = torch.randint(0, 101, (2, 5), generator=torch.Generator().manual_seed(4))
    expected = small_hf.generate(prompt, max_new_tokens=20, do_sample=False, repetition_penalty=1.3)
    assert torch.equal(generate(ours, prompt, 20, repetition_penalty=1.3), expected)
    assert not torch.equal(expected, small_hf.generate(prompt, max_new_tokens=20, do_sample=False))
    settings = dict(do_sample=True, temperature=0.8, top_k=20, top_p=0.9, repetition_penalty=1.5)
    torch.manual_seed(7)
    expected = small_hf.generate(prompt, max_new_tokens=20, **settings)
    torch.manual_seed(7)
    assert torch.equal(generate(ours, prompt, 20, **settings), expected)


def test_repetition_penalty_of_1_is_off_and_the_cache_does_not_change_it(small_hf):
    ours = GPT.from_hf(small_hf)
    prompt = torch.randint(0, 101, (2, 5), generator=torch.Generator().manual_seed(5))
    assert torch.equal(generate(ours, prompt, 20, repetition_penalty=1.0), generate(ours, prompt, 20))
    for penalty in (0.7, 1.3):  # below 1 favours repeats
        with_cache = generate(ours, prompt, 20, repetition_penalty=penalty)
        assert torch.equal(generate(ours, prompt, 20, use_cache=False, repetition_penalty=penalty), with_cache)
        assert torch.equal(generate(ours, prompt[0], 20, repetition_penalty=penalty), with_cache[0])  # 1-D


@pytest.mark.parametrize("penalty", [0, 0.0, -1.3, float("nan"), "1.3", True, None])
def test_repetition_penalty_must_be_a_positive_number(penalty):
    model = GPT(GPTConfig(vocab_size=20, max_len=10, d_model=8, num_layers=1, num_heads=2))
    with pytest.raises((ValueError, TypeError), match="repetition_penalty"):
        generate(model, torch.tensor([[1]]), 2, repetition_penalty=penalty)


def test_sampling_is_reproducible_with_a_generator_and_respects_top_k():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=40, max_len=32, d_model=16, num_layers=1, num_heads=2))
    prompt = torch.tensor([[1, 2, 3]])
    a = generate(model, prompt, 20, do_sample=True, generator=torch.Generator().manual_seed(1))
    b = generate(model, prompt, 20, do_sample=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    # top_k=1 and a tiny top_p are greedy
    greedy = generate(model, prompt, 20)
    assert torch.equal(generate(model, prompt, 20, do_sample=True, top_k=1), greedy)
    assert torch.equal(generate(model, prompt, 20, do_sample=True, top_p=1e-6), greedy)


def test_kv_cache_gives_the_logits_of_the_full_sequence():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=60, max_len=20, d_model=32, num_layers=3, num_heads=4)).eval()
    ids = torch.randint(0, 60, (2, 15))
    full, full_attn = model(ids, output_attentions=True)
    cache = KVCache()
    pieces = [model(ids[:, :6], cache=cache)]
    for t in range(6, 15):
        out = model(ids[:, t : t + 1], cache=cache, output_attentions=True)
        pieces.append(out.logits)
        assert out.attentions[1].shape == (2, 4, 1, t + 1)
        torch.testing.assert_close(out.attentions[1][:, :, 0], full_attn[1][:, :, t, : t + 1], atol=1e-6, rtol=0)
    assert len(cache) == 15 and len(cache.keys) == 3
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)
    # several new positions at once over a cache
    cache = KVCache()
    model(ids[:, :5], cache=cache)
    torch.testing.assert_close(model(ids[:, 5:], cache=cache), full[:, 5:], atol=1e-5, rtol=0)


def test_kv_cache_is_faster_for_long_generations():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=100, max_len=256, d_model=64, num_layers=4, num_heads=4))
    prompt = torch.randint(0, 100, (1, 8))

    def best_time(**kwargs):
        times = []
        for _ in range(2):
            start = time.perf_counter()
            out = generate(model, prompt, 200, **kwargs)
            times.append(time.perf_counter() - start)
        return min(times), out

    cached, a = best_time(use_cache=True)
    uncached, b = best_time(use_cache=False)
    assert torch.equal(a, b)
    assert cached < uncached, (cached, uncached)


def test_generate_keeps_a_1d_prompt_1d_and_restores_training_mode():
    model = GPT(GPTConfig(vocab_size=20, max_len=10, d_model=8, num_layers=1, num_heads=2)).train()
    out = generate(model, torch.tensor([1, 2]), 3)
    assert out.shape == (5,) and model.training
    assert torch.equal(generate(model, torch.tensor([1, 2]), 0), torch.tensor([1, 2]))


# ---- sampling filters ----------------------------------------------------------------------------
def test_top_k_filter_equals_hf_warper():
    from transformers.generation.logits_process import TopKLogitsWarper

    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    for k in (1, 5, 50, 80):
        expected = TopKLogitsWarper(top_k=k)(None, logits.clone())
        got = top_k_filter(logits, k)
        assert torch.equal(torch.isinf(got), torch.isinf(expected))
        assert ((got == logits) | torch.isinf(got)).all()
        assert (~torch.isinf(got)).sum(-1).tolist() == [min(k, 50)] * 4


def test_top_k_filter_keeps_ties_and_leaves_input_alone():
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0]])
    before = logits.clone()
    assert torch.isinf(top_k_filter(logits, 1)).tolist() == [[True, False, False, True]]
    assert torch.equal(logits, before)


def test_top_p_filter_equals_hf_warper():
    from transformers.generation.logits_process import TopPLogitsWarper

    logits = 2 * torch.randn(6, 40, generator=torch.Generator().manual_seed(1))
    for p in (1e-4, 0.1, 0.5, 0.9, 0.999, 1.0):
        expected = TopPLogitsWarper(top_p=p)(None, logits.clone())
        got = top_p_filter(logits, p)
        assert torch.equal(torch.isinf(got), torch.isinf(expected)), p


def test_top_p_filter_keeps_the_token_that_crosses_p():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    assert torch.isinf(top_p_filter(logits, 0.6)).tolist() == [False, False, True, True]
    assert torch.isinf(top_p_filter(logits, 0.4)).tolist() == [False, True, True, True]
    assert torch.isinf(top_p_filter(logits, 1.0)).tolist() == [False] * 4
    kept = top_p_filter(logits, 0.79).softmax(-1)
    torch.testing.assert_close(kept[:2], torch.tensor([0.5, 0.3]) / 0.8)


@pytest.mark.parametrize("p", [0, -0.1, 1.5, float("nan")])
def test_top_p_outside_0_1_is_an_error(p):
    with pytest.raises(ValueError, match=r"0.0 < top_p <= 1.0"):
        top_p_filter(torch.zeros(5), p)
    model = GPT(GPTConfig(vocab_size=20, max_len=10, d_model=8, num_layers=1, num_heads=2))
    with pytest.raises(ValueError, match=r"0.0 < top_p <= 1.0"):
        generate(model, torch.tensor([[1]]), 2, do_sample=True, top_p=p)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_top_k_must_be_a_positive_int(k):
    with pytest.raises(ValueError, match="top_k"):
        top_k_filter(torch.zeros(5), k)


# ---- bad input -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=20, max_len=10, d_model=8, num_layers=1, num_heads=2))


def test_prompt_longer_than_the_context_is_an_error(tiny):
    with pytest.raises(ValueError, match="longer than the model's context of 10"):
        generate(tiny, torch.zeros(1, 11, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="more than the context of 10"):
        generate(tiny, torch.zeros(1, 8, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="max_len=10"):
        tiny(torch.zeros(1, 11, dtype=torch.long))
    cache = KVCache()
    tiny(torch.zeros(1, 8, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="8 cached \\+ 3 new"):
        tiny(torch.zeros(1, 3, dtype=torch.long), cache=cache)


def test_empty_prompt_is_an_error(tiny):
    with pytest.raises(ValueError, match="empty prompt"):
        generate(tiny, torch.zeros(1, 0, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="empty prompt"):
        generate(tiny, torch.tensor([], dtype=torch.long), 3)
    with pytest.raises(ValueError, match="empty sequence"):
        tiny(torch.zeros(2, 0, dtype=torch.long))


@pytest.mark.parametrize("temperature", [0, 0.0, -1.0])
def test_temperature_must_be_positive_when_sampling(tiny, temperature):
    with pytest.raises(ValueError, match="temperature > 0 when sampling"):
        generate(tiny, torch.tensor([[1]]), 2, do_sample=True, temperature=temperature)
    # greedy ignores the temperature (it does not change the most likely token)
    assert generate(tiny, torch.tensor([[1]]), 2, temperature=temperature).shape == (1, 3)


def test_other_bad_inputs_get_clear_errors(tiny):
    with pytest.raises(ValueError, match="unsqueeze"):
        tiny(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="integer token ids"):
        tiny(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"\[0, vocab_size=20\)"):
        tiny(torch.tensor([[1, 25]]))
    with pytest.raises(ValueError, match="attention_mask of shape"):
        tiny(torch.zeros(2, 3, dtype=torch.long), attention_mask=torch.ones(2, 4))
    with pytest.raises(TypeError, match="GPT model"):
        generate(torch.nn.Linear(2, 2), torch.tensor([[1]]), 2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(tiny, torch.tensor([[1]]), -1)
    with pytest.raises(TypeError, match="GPT2LMHeadModel"):
        GPT.from_hf(torch.nn.Linear(2, 2))


def test_config_validation():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        GPTConfig(d_model=10, num_heads=3)
    with pytest.raises(ValueError, match="unknown activation"):
        GPTConfig(activation="swiglu")
    with pytest.raises(ValueError, match="unknown settings"):
        GPTConfig.from_dict({"d_model": 8, "n_embd": 8})
    config = GPTConfig(vocab_size=10, d_ff=7)
    assert GPTConfig.from_dict(config.to_dict()) == config and config.d_ff == 7


def test_from_hf_rejects_what_the_course_gpt_does_not_have():
    with pytest.raises(ValueError, match="cross-attention"):
        GPT.from_hf(random_hf(n_layer=1, n_head=1, n_embd=8, vocab_size=10, n_positions=8, add_cross_attention=True))
    with pytest.raises(ValueError, match="not supported"):
        GPT.from_hf(random_hf(n_layer=1, n_head=1, n_embd=8, vocab_size=10, n_positions=8, activation_function="mish"))


# ---- training helpers ----------------------------------------------------------------------------
def test_lm_batches_and_evaluate_lm():
    ids = torch.arange(103)
    batches = pretraining.lm_batches(ids, seq_len=10, batch_size=4)
    assert [tuple(b.shape) for b in batches] == [(4, 10), (4, 10), (2, 10)]
    assert torch.equal(torch.cat(batches).flatten(), ids[:100])
    shuffled = pretraining.lm_batches(ids, 10, 4, shuffle=True, drop_last=True)
    starts = torch.cat(shuffled)[:, 0].tolist()
    assert len(shuffled) == 2 and len(starts) == 8 and set(starts) <= set(range(0, 100, 10))
    assert starts != sorted(starts)  # shuffled windows, each still a run of consecutive ids
    assert all(torch.equal(w, torch.arange(w[0], w[0] + 10)) for w in torch.cat(shuffled))
    with pytest.raises(ValueError, match="fewer than one window"):
        pretraining.lm_batches(torch.arange(5), 10, 2)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=103, max_len=10, d_model=16, num_layers=1, num_heads=2))
    result = pretraining.evaluate_lm(model, batches)
    manual = sum(causal_lm_loss(model(b), b).item() * b.shape[0] for b in batches) / 10
    assert result["tokens"] == 10 * 9 and math.isclose(result["loss"], manual, rel_tol=1e-5)
    assert math.isclose(result["perplexity"], math.exp(result["loss"]), rel_tol=1e-9)
    # an untrained model is close to uniform: loss about log(vocab)
    assert abs(result["loss"] - math.log(103)) < 0.2


def test_a_few_trainer_steps_lower_the_loss():
    from course_lib.train import Trainer

    torch.manual_seed(0)
    ids = torch.arange(20).repeat(40)  # a cycle: perfectly predictable
    batches = pretraining.lm_batches(ids, seq_len=16, batch_size=8)
    model = GPT(GPTConfig(vocab_size=20, max_len=16, d_model=32, num_layers=1, num_heads=2))
    trainer = Trainer(model, torch.optim.AdamW(model.parameters(), lr=3e-3),
                      lambda m, b: causal_lm_loss(m(b), b), batches, progress=False, live_plot=False)
    history = trainer.fit(steps=60)
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]


def test_save_and_load_pretrained_strictly(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, max_len=12, d_model=16, num_layers=2, num_heads=2))
    save_pretrained(model, None, tmp_path, settings={"steps": 5})
    loaded, tokenizer, info = load_pretrained(tmp_path)
    assert info["dtype"] == "float16"
    assert tokenizer is None and info["settings"] == {"steps": 5}
    assert info["config"] == model.config.to_dict()
    assert loaded.lm_head.weight is loaded.token_embedding.weight
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value.half().float(), atol=0, rtol=0)
    # a checkpoint of another shape does not load silently
    from course_lib.checkpoint import CheckpointError, load_weights

    other = GPT(GPTConfig(vocab_size=30, max_len=12, d_model=16, num_layers=1, num_heads=2))
    with pytest.raises(CheckpointError, match="not in the model"):
        load_weights(other, tmp_path / "model.safetensors")


# ---- the shipped checkpoint ----------------------------------------------------------------------
def test_shipped_checkpoint_loads_strictly_and_predicts_well():
    from course_lib import data
    from course_lib.checkpoint import asset_path

    try:
        folder = asset_path("gpt")
    except FileNotFoundError:
        pytest.fail("assets/gpt is missing: run `python -m course_lib.pretrain gpt`")
    model, tokenizer, info = load_pretrained(folder)
    assert model.num_parameters() * 2 < 8e6  # a few MB in float16
    assert len(tokenizer) == model.config.vocab_size
    settings = info["settings"]
    assert "command" in settings and settings["val_loss"] < settings["bigram_val_loss"]
    text = data.load_corpus("wiki").validation[0].text
    ids = torch.tensor(tokenizer(text)["input_ids"][: 4 * model.config.max_len])
    batches = pretraining.lm_batches(ids, model.config.max_len, 4)
    loss = pretraining.evaluate_lm(model, batches)["loss"]
    assert loss < settings["bigram_val_loss"], loss
    prompt = torch.tensor(tokenizer("The city of")["input_ids"])
    out = generate(model, prompt, 10)
    assert tokenizer.decode(out).startswith("The city of")


def test_training_step_at_least_as_fast_as_hf():
    """The blueprint's bar (with 25% room for timing noise): forward, loss, backward and AdamW step."""
    torch.manual_seed(0)
    ours = GPT(GPTConfig(vocab_size=1024, max_len=64, d_model=64, num_layers=2, num_heads=4)).train()
    hf = ours.to_hf(attn_implementation="sdpa").train()
    batch = torch.randint(0, 1024, (8, 64))
    steps = {
        "ours": (torch.optim.AdamW(ours.parameters()), lambda: causal_lm_loss(ours(batch), batch)),
        "hf": (torch.optim.AdamW(hf.parameters()), lambda: hf(batch, labels=batch).loss),
    }

    def step_of(optimizer, loss_of):
        def step():
            optimizer.zero_grad(set_to_none=True)
            loss_of().backward()
            optimizer.step()
        return step

    # The two take turns (course_lib.bench.time_interleaved), so that a busy machine slows both alike.
    times = time_interleaved({name: step_of(*pair) for name, pair in steps.items()}, repeats=7, warmup=1)
    best = {name: t["min_s"] for name, t in times.items()}
    assert best["ours"] < 1.25 * best["hf"], best


def test_shipped_checkpoint_was_made_by_the_current_recipe():
    from course_lib.pretrain.gpt import DEFAULTS

    _, _, info = load_pretrained("gpt")
    settings = info["settings"]
    assert settings["command"] == "python -m course_lib.pretrain gpt"
    assert {k: settings[k] for k in DEFAULTS} == DEFAULTS
    config = info["config"]
    for key in ("vocab_size", "max_len", "d_model", "num_layers", "num_heads", "d_ff", "dropout"):
        assert config[key] == DEFAULTS[key], key


def test_pretrain_recipe_runs_end_to_end(tmp_path, capsys):
    from course_lib.pretrain.__main__ import main

    argv = ["gpt", "--steps", "2", "--vocab-size", "300", "--d-model", "16", "--num-layers", "1",
            "--num-heads", "2", "--d-ff", "32", "--eval-every", "1", "--batch-size", "4", "--score-batches", "2",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    model, tokenizer, info = load_pretrained(tmp_path)
    assert model.config.d_model == 16 and model.config.vocab_size == len(tokenizer) == 300
    assert info["settings"]["steps"] == 2 and info["settings"]["command"].endswith(str(tmp_path))
    assert "validation: loss" in capsys.readouterr().out

