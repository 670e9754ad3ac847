"""Benchmarks: the course models against Hugging Face, attention kernels, and the KV cache.

One command runs them all and prints a Markdown table (the one in ``docs/benchmarks.md``)::

    python -m course_lib.bench                 # the default configuration, on the best device
    python -m course_lib.bench --quick         # a tiny configuration, a few seconds (smoke test)
    python -m course_lib.bench --json out.json # also write every number as JSON

What is measured, each time over repeated steps after warm-up steps, with the contenders
**interleaved** (A, B, A, B, ...) so that anything else running on the machine slows them alike
(the **median** step, except for the two train-step comparisons with Hugging Face, which compare
the **fastest** step of each, see ``_fastest``):

* one training step (forward, loss, backward, AdamW update) of ``course_lib.gpt.GPT`` against
  ``transformers.GPT2LMHeadModel`` (SDPA attention) of the same configuration, on the same batch;
* the same for ``course_lib.bert.Bert`` against ``transformers.BertForPreTraining`` (MLM + NSP);
* attention forward + backward: the course's fused path (``MultiHeadAttention.attend`` with
  ``need_weights=False``), PyTorch's ``F.scaled_dot_product_attention`` and the course's explicit
  path that also returns the weights (``need_weights=True``);
* greedy generation of ``new_tokens`` tokens with and without the KV cache.

Word2vec against gensim is measured in notebook 03, not here.

The functions below are the pieces (``time_interleaved``, ``gpt_vs_hf``, ``bert_vs_hf``,
``attention_times``, ``generation_times``, ``flops_per_token``); notebook 14 calls them too.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from course_lib import _validate as validate

__all__ = [
    "time_interleaved",
    "gpt_vs_hf",
    "bert_vs_hf",
    "attention_times",
    "generation_times",
    "flops_per_token",
    "matmul_flops_per_second",
    "run_all",
    "main",
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":  # pragma: no cover - Apple GPUs only
        torch.mps.synchronize()


def time_interleaved(
    contenders: Mapping[str, Callable[[], Any]],
    *,
    repeats: int = 10,
    warmup: int = 2,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, float]]:
    """Median wall time of each contender's ``fn()``, the contenders taking turns.

    Every round calls each function once, in order (A, B, C, A, B, C, ...); the first ``warmup``
    rounds are not timed (they fill caches, pick kernels, allocate memory). On CUDA the device is
    synchronised around each call, so the time is the GPU's, not the launch's.

    Args:
        contenders: ``{name: fn}``; ``fn()`` runs one step (its result is ignored).
        repeats: timed rounds (>= 1).
        warmup: untimed rounds first (>= 0).
        device: the device the functions run on (for synchronisation).

    Returns:
        ``{name: {"median_s", "min_s", "max_s"}}`` in seconds.
    """
    if not isinstance(contenders, Mapping) or not contenders:
        raise ValueError("time_interleaved expected a non-empty dict {name: fn}")
    for name, fn in contenders.items():
        if not callable(fn):
            raise TypeError(f"time_interleaved: contender {name!r} is not callable (got {type(fn).__name__})")
    validate.positive_int(repeats, "repeats", "time_interleaved")
    validate.positive_int(warmup, "warmup", "time_interleaved", minimum=0)
    device = torch.device(device)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(warmup + repeats):
        for name, fn in contenders.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {
        name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t)}
        for name, t in times.items()
    }


def _train_step(model: torch.nn.Module, loss_of: Callable, batch: Any, lr: float = 1e-4) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_of(model, batch).backward()
        optimizer.step()

    return step


def _device(device: torch.device | str | None) -> torch.device:
    if device is None:
        from course_lib.env import get_device

        return get_device()
    return torch.device(device)


def _fastest(times: Mapping[str, Mapping[str, float]]) -> tuple[float, float]:
    """The fastest step of each model: ``(ours_s, hf_s)``.

    A step cannot run faster than it costs, while anything else on the machine (another process, a
    garbage collection, a frequency change) only adds time to the steps it hits. The minimum over the
    interleaved rounds is therefore the steadiest estimate of a model's own cost, and the comparison
    of two models with it does not flip when one round of one of them is slowed (timeit's advice).
    """
    return times["ours"]["min_s"], times["hf"]["min_s"]


def gpt_vs_hf(
    config: Any = None,
    *,
    batch_size: int = 16,
    seq_len: int | None = None,
    repeats: int = 10,
    warmup: int = 2,
    device: torch.device | str | None = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """Training-step time of ``course_lib.gpt.GPT`` against ``transformers.GPT2LMHeadModel``.

    Both models hold the same weights (``GPT.to_hf(attn_implementation="sdpa")``) and train on the
    same ``(batch_size, seq_len)`` batch of random token ids with the causal-LM loss.

    Args:
        config: a ``GPTConfig`` (default: notebook 08's CPU model, vocabulary 4096, d_model 128,
            4 layers, 4 heads, context 128).
        batch_size: sequences per batch.
        seq_len: tokens per sequence (default: the context ``config.max_len``).
        repeats, warmup: as in ``time_interleaved``.
        device: where to run (None: ``course_lib.env.get_device()``).
        seed: weights and batch seed.

    Returns:
        ``{"ours_s", "hf_s" (the fastest step of each), "speedup" (= hf_s / ours_s, > 1 when ours
        is faster), "ours_median_s", "hf_median_s", "config", "batch", "parameters"}``.
    """
    from course_lib import gpt, objectives

    config = gpt.GPTConfig() if config is None else config
    if not isinstance(config, gpt.GPTConfig):
        raise TypeError(f"gpt_vs_hf expected a course_lib.gpt.GPTConfig, got {type(config).__name__}")
    validate.positive_int(batch_size, "batch_size", "gpt_vs_hf")
    seq_len = config.max_len if seq_len is None else validate.positive_int(seq_len, "seq_len", "gpt_vs_hf", minimum=2)
    if seq_len > config.max_len:
        raise ValueError(f"gpt_vs_hf: seq_len={seq_len} is longer than the context max_len={config.max_len}")
    device = _device(device)
    torch.manual_seed(seed)
    ours = gpt.GPT(config).to(device).train()
    hf = ours.to_hf(attn_implementation="sdpa").to(device).train()
    batch = torch.randint(0, config.vocab_size, (batch_size, seq_len), generator=torch.Generator().manual_seed(seed))
    batch = batch.to(device)
    times = time_interleaved(
        {
            "ours": _train_step(ours, lambda m, b: objectives.causal_lm_loss(m(b), b), batch),
            "hf": _train_step(hf, lambda m, b: m(b, labels=b).loss, batch),
        },
        repeats=repeats, warmup=warmup, device=device,
    )
    ours_s, hf_s = _fastest(times)
    return {"ours_s": ours_s, "hf_s": hf_s, "speedup": hf_s / ours_s, "config": config.to_dict(),
            "ours_median_s": times["ours"]["median_s"], "hf_median_s": times["hf"]["median_s"],
            "batch": [batch_size, seq_len], "parameters": ours.num_parameters(), "device": device.type}


def _bert_batch(vocab_size: int, batch_size: int, seq_len: int, seed: int) -> dict[str, torch.Tensor]:
    """A fixed MLM + NSP batch: 15% of positions (never [CLS] at 0) carry labels."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab_size, (batch_size, seq_len), generator=g)
    chosen = torch.rand(batch_size, seq_len, generator=g) < 0.15
    chosen[:, 0] = False
    chosen[0, 1] = True  # at least one label
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    half = seq_len // 2
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, half:] = 1
    return {
        "input_ids": input_ids,
        "token_type_ids": token_type_ids,
        "attention_mask": torch.ones_like(input_ids),
        "labels": labels,
        "next_sentence_label": torch.randint(0, 2, (batch_size,), generator=g),
    }


def bert_vs_hf(
    config: Any = None,
    *,
    batch_size: int = 16,
    seq_len: int | None = None,
    repeats: int = 10,
    warmup: int = 2,
    device: torch.device | str | None = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """Training-step time of ``course_lib.bert.Bert`` against ``transformers.BertForPreTraining``.

    The same weights (``Bert.to_hf()``, SDPA attention), the same ``(batch_size, seq_len)`` batch
    (15% of positions masked, sentence pairs with an NSP label) and the same loss, MLM + NSP. The
    course computes it with ``course_lib.pretraining.pretraining_loss`` (the MLM head scores only the
    masked positions, which gives the same loss); HF with ``labels=..., next_sentence_label=...``.

    Args:
        config: a ``BertConfig`` (default: vocabulary 4096, d_model 128, 4 layers, 4 heads,
            context 128, dropout 0.1).
        batch_size, seq_len, repeats, warmup, device, seed: as in ``gpt_vs_hf``.

    Returns:
        ``{"ours_s", "hf_s" (the fastest step of each), "speedup" (= hf_s / ours_s), "ours_median_s",
        "hf_median_s", "config", "batch", "parameters"}``.
    """
    from course_lib import bert, pretraining

    config = bert.BertConfig(vocab_size=4096, d_model=128, num_layers=4, num_heads=4) if config is None else config
    if not isinstance(config, bert.BertConfig):
        raise TypeError(f"bert_vs_hf expected a course_lib.bert.BertConfig, got {type(config).__name__}")
    validate.positive_int(batch_size, "batch_size", "bert_vs_hf")
    seq_len = config.max_len if seq_len is None else validate.positive_int(seq_len, "seq_len", "bert_vs_hf", minimum=2)
    if seq_len > config.max_len:
        raise ValueError(f"bert_vs_hf: seq_len={seq_len} is longer than the context max_len={config.max_len}")
    device = _device(device)
    torch.manual_seed(seed)
    ours = bert.Bert(config).to(device).train()
    hf = ours.to_hf().to(device).train()
    batch = {k: v.to(device) for k, v in _bert_batch(config.vocab_size, batch_size, seq_len, seed).items()}

    def hf_loss(model, b):
        return model(**{k: b[k] for k in ("input_ids", "token_type_ids", "attention_mask")},
                     labels=b["labels"], next_sentence_label=b["next_sentence_label"]).loss

    times = time_interleaved(
        {
            "ours": _train_step(ours, lambda m, b: pretraining.pretraining_loss(m, b)["loss"], batch),
            "hf": _train_step(hf, hf_loss, batch),
        },
        repeats=repeats, warmup=warmup, device=device,
    )
    ours_s, hf_s = _fastest(times)
    return {"ours_s": ours_s, "hf_s": hf_s, "speedup": hf_s / ours_s, "config": config.to_dict(),
            "ours_median_s": times["ours"]["median_s"], "hf_median_s": times["hf"]["median_s"],
            "batch": [batch_size, seq_len], "parameters": ours.num_parameters(), "device": device.type}


def attention_times(
    batch_size: int = 16,
    num_heads: int = 4,
    seq_len: int = 128,
    d_head: int = 32,
    *,
    causal: bool = True,
    repeats: int = 20,
    warmup: int = 3,
    device: torch.device | str | None = "cpu",
    seed: int = 0,
) -> dict[str, float]:
    """Attention forward + backward on ``(batch, heads, seq, d_head)`` queries, keys and values.

    Three contenders on the same tensors: ``"course fused"`` (``MultiHeadAttention.attend`` with
    ``need_weights=False``, the path the course models train with), ``"torch sdpa"``
    (``F.scaled_dot_product_attention`` called directly) and ``"course explicit"`` (the course's
    own ``softmax(q k^T / sqrt(d)) v``, which also returns the ``(batch, heads, seq, seq)``
    weights: what ``output_attentions=True`` costs).

    Returns:
        ``{name: median seconds}`` for the three, plus ``"fused_vs_sdpa"`` (sdpa time / course
        fused time; about 1: the same kernel) and ``"fused_speedup_over_explicit"``.
    """
    from course_lib.attention import MultiHeadAttention

    for name, value in (("batch_size", batch_size), ("num_heads", num_heads), ("seq_len", seq_len), ("d_head", d_head)):
        validate.positive_int(value, name, "attention_times")
    device = _device(device)
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch_size, num_heads, seq_len, d_head, generator=g).to(device).requires_grad_()
               for _ in range(3))
    mha = MultiHeadAttention(num_heads * d_head, num_heads).to(device)

    def run(fn: Callable) -> Callable[[], None]:
        def step() -> None:
            for t in (q, k, v):
                t.grad = None
            fn().sum().backward()

        return step

    times = time_interleaved(
        {
            "course fused": run(lambda: mha.attend(q, k, v, need_weights=False, is_causal=causal)[0]),
            "torch sdpa": run(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)),
            "course explicit": run(lambda: mha.attend(q, k, v, need_weights=True, is_causal=causal)[0]),
        },
        repeats=repeats, warmup=warmup, device=device,
    )
    out = {name: t["median_s"] for name, t in times.items()}
    out["fused_vs_sdpa"] = out["torch sdpa"] / out["course fused"]
    out["fused_speedup_over_explicit"] = out["course explicit"] / out["course fused"]
    return out


def generation_times(
    model: Any = None,
    *,
    prompt_len: int = 64,
    new_tokens: int = 256,
    repeats: int = 1,
    warmup: int = 0,
    seed: int = 0,
) -> dict[str, float]:
    """Greedy generation of ``new_tokens`` tokens with and without the KV cache.

    Args:
        model: a ``course_lib.gpt.GPT`` with ``max_len >= prompt_len + new_tokens`` (default: the
            shipped GPT's shape, vocabulary 4096, d_model 256, 4 layers, 8 heads, d_ff 768, with a
            context of ``prompt_len + new_tokens`` and random weights: the time does not depend on
            the weights).
        prompt_len: tokens in the (random) prompt.
        new_tokens: tokens to generate.
        repeats, warmup: as in ``time_interleaved`` (each repeat generates the whole sequence).
        seed: weights and prompt seed.

    Returns:
        ``{"no_cache_s", "cache_s", "speedup" (= no_cache_s / cache_s), "same_tokens" (1.0 when
        both produced the same tokens)}``.
    """
    from course_lib import gpt

    validate.positive_int(prompt_len, "prompt_len", "generation_times")
    validate.positive_int(new_tokens, "new_tokens", "generation_times")
    if model is None:
        torch.manual_seed(seed)
        model = gpt.GPT(gpt.GPTConfig(vocab_size=4096, max_len=prompt_len + new_tokens, d_model=256,
                                      num_layers=4, num_heads=8, d_ff=768))
    if not isinstance(model, gpt.GPT):
        raise TypeError(f"generation_times expected a course_lib.gpt.GPT, got {type(model).__name__}")
    if prompt_len + new_tokens > model.config.max_len:
        raise ValueError(
            f"generation_times: prompt_len + new_tokens = {prompt_len + new_tokens} is more than the "
            f"model's context max_len={model.config.max_len}; build the model with a longer max_len"
        )
    model = model.eval()
    device = model.token_embedding.weight.device
    prompt = torch.randint(0, model.config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(seed))
    prompt = prompt.to(device)
    outputs: dict[bool, torch.Tensor] = {}

    def run(use_cache: bool) -> Callable[[], None]:
        def go() -> None:
            with torch.no_grad():
                outputs[use_cache] = gpt.generate(model, prompt, new_tokens, use_cache=use_cache)

        return go

    times = time_interleaved({"no_cache": run(False), "cache": run(True)}, repeats=repeats, warmup=warmup,
                             device=device)
    no_cache, cache = times["no_cache"]["median_s"], times["cache"]["median_s"]
    return {"no_cache_s": no_cache, "cache_s": cache, "speedup": no_cache / cache,
            "same_tokens": float(torch.equal(outputs[True], outputs[False]))}


def flops_per_token(
    num_parameters: int, num_layers: int, d_model: int, seq_len: int, *, training: bool = True
) -> float:
    """Floating-point operations per token of a decoder-only Transformer, as PaLM counts them.

    Forward: ``2 N`` (each parameter is one multiply and one add) plus the attention scores and
    the weighted sum, ``2 * 2 * num_layers * seq_len * d_model`` (``q k^T`` and ``weights v``, over
    ``seq_len`` keys). Training (forward + backward, the backward costing twice the forward):
    ``6 N + 12 num_layers seq_len d_model``, the accounting of PaLM (Chowdhery et al. 2022,
    appendix B). Kaplan et al. (2020) count the attention term as half that
    (``2 num_layers seq_len d_model`` forward), and a causal mask halves it again in principle,
    since each query reads only the keys before it; either way it is a small share when
    ``d_model`` is large against ``seq_len``. Count ``N`` without the embedding tables (a lookup
    is not a matrix product) but with the output layer when it is a separate matrix: for a tied
    output layer add the ``vocab x d_model`` product yourself, as notebook 14 does.

    Args:
        num_parameters: N, the parameters taking part in matrix products.
        num_layers, d_model: the model's shape.
        seq_len: the context length T the attention runs over.
        training: forward + backward (True) or forward only (False).

    Returns:
        FLOPs per token (a float).
    """
    for name, value in (("num_parameters", num_parameters), ("num_layers", num_layers),
                        ("d_model", d_model), ("seq_len", seq_len)):
        validate.positive_int(value, name, "flops_per_token")
    forward = 2 * num_parameters + 4 * num_layers * seq_len * d_model
    return float(3 * forward if training else forward)


def matmul_flops_per_second(n: int = 512, repeats: int = 5, *, device: torch.device | str = "cpu",
                            dtype: torch.dtype = torch.float32) -> float:
    """What this machine reaches on a plain ``(n, n) @ (n, n)`` matrix product, in FLOP/s.

    A practical peak for model FLOPs utilisation (MFU) when the vendor's number is unknown (a
    laptop CPU): ``2 n^3`` FLOPs per product, the median of ``repeats`` after one warm-up.
    """
    validate.positive_int(n, "n", "matmul_flops_per_second")
    device = torch.device(device)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = time_interleaved({"mm": lambda: a @ b}, repeats=repeats, warmup=1, device=device)["mm"]["median_s"]
    return 2 * n**3 / t


# ---- the command -------------------------------------------------------------------------------
def run_all(*, quick: bool = False, device: torch.device | str | None = None, repeats: int | None = None) -> dict[str, Any]:
    """Every benchmark of the table, with the default (or, with ``quick``, a tiny) configuration."""
    from course_lib import bert, gpt

    device = _device(device)
    if quick:
        gcfg = gpt.GPTConfig(vocab_size=256, max_len=32, d_model=32, num_layers=2, num_heads=2)
        bcfg = bert.BertConfig(vocab_size=256, d_model=32, num_layers=2, num_heads=2, max_len=32)
        batch, reps, att, gen = 4, repeats or 3, dict(batch_size=2, num_heads=2, seq_len=32, d_head=16), (8, 24)
    else:
        big = device.type == "cuda"
        gcfg = gpt.GPTConfig(vocab_size=4096, max_len=128, d_model=256 if big else 128, num_layers=6 if big else 4,
                             num_heads=8 if big else 4)
        bcfg = bert.BertConfig(vocab_size=4096, d_model=256 if big else 128, num_layers=6 if big else 4,
                               num_heads=8 if big else 4, max_len=128)
        batch, reps = (64 if big else 16), repeats or 10
        att, gen = dict(batch_size=batch, num_heads=gcfg.num_heads, seq_len=128, d_head=32), (64, 256)
    results: dict[str, Any] = {"device": device.type, "torch": torch.__version__,
                               "threads": torch.get_num_threads(), "machine": platform.machine()}
    try:
        import transformers

        results["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - transformers is in requirements.txt
        pass
    results["gpt"] = gpt_vs_hf(gcfg, batch_size=batch, repeats=reps, device=device)
    results["bert"] = bert_vs_hf(bcfg, batch_size=batch, repeats=reps, device=device)
    results["attention"] = attention_times(**att, repeats=2 * reps, device=device)
    model = None
    if quick:
        torch.manual_seed(0)
        model = gpt.GPT(gpt.GPTConfig(vocab_size=256, max_len=sum(gen), d_model=32, num_layers=2, num_heads=2))
    elif device.type != "cpu":
        torch.manual_seed(0)
        model = gpt.GPT(gpt.GPTConfig(vocab_size=4096, max_len=sum(gen), d_model=256, num_layers=4,
                                      num_heads=8, d_ff=768)).to(device)
    results["generation"] = generation_times(model, prompt_len=gen[0], new_tokens=gen[1],
                                             repeats=1 if quick else 3, warmup=0 if quick else 1)
    return results


def format_table(results: Mapping[str, Any]) -> str:
    """The Markdown table of ``run_all``'s results."""
    g, b, a, n = results["gpt"], results["bert"], results["attention"], results["generation"]
    rows = [
        ("| what | course | reference | speed-up (reference time / course time) |"),
        ("|---|---|---|---|"),
        (f"| GPT train step, {g['parameters']:,} parameters, batch {g['batch'][0]} x {g['batch'][1]} | "
         f"{1000 * g['ours_s']:.1f} ms | {1000 * g['hf_s']:.1f} ms (`GPT2LMHeadModel`, sdpa) | {g['speedup']:.2f}x |"),
        (f"| BERT train step (MLM + NSP), {b['parameters']:,} parameters, batch {b['batch'][0]} x {b['batch'][1]} | "
         f"{1000 * b['ours_s']:.1f} ms | {1000 * b['hf_s']:.1f} ms (`BertForPreTraining`, sdpa) | {b['speedup']:.2f}x |"),
        (f"| attention forward + backward, fused path | {1000 * a['course fused']:.2f} ms | "
         f"{1000 * a['torch sdpa']:.2f} ms (`F.scaled_dot_product_attention`) | {a['fused_vs_sdpa']:.2f}x |"),
        (f"| attention forward + backward, explicit (returns the weights) | {1000 * a['course explicit']:.2f} ms | "
         f"{1000 * a['course fused']:.2f} ms (course fused path) | {1 / a['fused_speedup_over_explicit']:.2f}x |"),
        (f"| greedy generation, KV cache vs none | {n['cache_s']:.2f} s | {n['no_cache_s']:.2f} s (no cache) | "
         f"{n['speedup']:.2f}x |"),
    ]
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m course_lib.bench [--quick] [--device cpu|cuda|mps] [--repeats N] [--json FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny configuration (seconds; a smoke test)")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per contender (default 10)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads before measuring")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    results = run_all(quick=args.quick, device=args.device, repeats=args.repeats)
    print(f"device {results['device']}, torch {results['torch']}, transformers {results.get('transformers')}, "
          f"{results['threads']} threads; medians of {args.repeats or (3 if args.quick else 10)} interleaved steps")
    print(format_table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2, default=lambda o: o if math.isfinite(o) else None)
    return results


if __name__ == "__main__":  # pragma: no cover
    main()
