"""Pretrain the course's GPT (next-token prediction) and write it under ``assets/gpt``.

    python -m course_lib.pretrain gpt              # the shipped checkpoint (about 15 minutes on 2 CPU cores)
    python -m course_lib.pretrain gpt --steps 100 --out /tmp/gpt-try   # a quick try

The recipe: the course BPE tokenizer (``course_bpe_tokenizer``, notebook 02), the wiki training
split as one stream of tokens with ``<|endoftext|>`` between articles, cut into windows of
``max_len`` tokens (shuffled again every epoch), AdamW with linear warm-up and cosine decay,
``course_lib.train.Trainer``. At the end the model is scored on the held-out validation and test
articles, next to the bigram baseline, and saved in float16 with its config, its tokenizer, these
settings, the command and the scores.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from course_lib.train import build_optimizer, warmup_cosine  # the recipe's optimizer and schedule

DEFAULTS = {
    "vocab_size": 4096,
    "max_len": 128,
    "d_model": 256,
    "num_layers": 4,
    "num_heads": 8,
    "d_ff": 768,
    "dropout": 0.1,
    "batch_size": 16,
    "steps": 2000,
    "lr": 2e-3,
    "warmup": 100,
    "weight_decay": 0.1,
    "seed": 0,
    "eval_every": 250,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.pretrain gpt",
        description="Pretrain the course GPT (next-token prediction) on the wiki training split.",
    )
    for name, value in DEFAULTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--out", default=None, help="output folder (default: the course's assets/gpt)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: course_lib.env.get_device())")
    parser.add_argument("--float32", action="store_true", help="store float32 weights (default: float16)")
    parser.add_argument("--score-batches", type=int, default=None,
                        help="score on the first N batches of validation and test only (default: all; for quick tries)")
    return parser.parse_args(argv)


class EpochWindows:
    """Training windows of a token stream, reshuffled every epoch (and cut at a new offset)."""

    def __init__(self, ids: torch.Tensor, seq_len: int, batch_size: int, seed: int = 0) -> None:
        self.ids, self.seq_len, self.batch_size, self.seed = ids, seq_len, batch_size, seed
        self.epoch = 0

    def __len__(self) -> int:
        return (len(self.ids) // self.seq_len) // self.batch_size

    def __iter__(self):
        from course_lib.pretraining import lm_batches

        offset = (self.epoch * 37) % self.seq_len  # windows start at another place every epoch
        batches = lm_batches(self.ids[offset:], self.seq_len, self.batch_size, shuffle=True,
                             seed=self.seed + self.epoch, drop_last=True)
        self.epoch += 1
        return iter(batches)


def main(argv: list[str] | None = None) -> int:
    from course_lib import data, env
    from course_lib.checkpoint import ASSETS_DIR, save_pretrained
    from course_lib.gpt import GPT, GPTConfig
    from course_lib.metrics import perplexity
    from course_lib.objectives import causal_lm_loss
    from course_lib.pretraining import bigram_log_probs, encode_documents, evaluate_lm, lm_batches
    from course_lib.tokenizers import course_bpe_tokenizer
    from course_lib.train import Trainer

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    env.seed_everything(args.seed)
    device = torch.device(args.device) if args.device else env.get_device()
    out = Path(args.out) if args.out else ASSETS_DIR / "gpt"

    tokenizer = course_bpe_tokenizer(args.vocab_size)
    corpus = data.load_corpus("wiki")
    ids = {split: encode_documents(tokenizer, corpus.split(split)) for split in ("train", "validation", "test")}
    train = EpochWindows(ids["train"], args.max_len, args.batch_size, seed=args.seed)
    validation = lm_batches(ids["validation"], args.max_len, 32)
    config = GPTConfig(
        vocab_size=len(tokenizer), max_len=args.max_len, d_model=args.d_model,
        num_layers=args.num_layers, num_heads=args.num_heads, d_ff=args.d_ff, dropout=args.dropout,
        embedding_dropout=args.dropout, attention_dropout=0.0,
    )
    model = GPT(config)
    print(f"GPT {config.num_layers} layers x d_model {config.d_model}: {model.num_parameters():,} parameters; "
          f"{len(ids['train']):,} training tokens, {len(train)} batches of {args.batch_size} x "
          f"{args.max_len} per epoch; training on {device}", flush=True)
    bigram = bigram_log_probs(ids["train"], config.vocab_size)
    baseline = {split: -bigram[ids[split][:-1], ids[split][1:]].mean().item() for split in ("validation", "test")}
    print(f"bigram baseline: validation loss {baseline['validation']:.3f}", flush=True)

    optimizer = build_optimizer(model, args.lr, args.weight_decay)
    start = time.perf_counter()

    def report(_model) -> dict:
        done = trainer.history.step
        print(f"step {done}/{args.steps}: {time.perf_counter() - start:.0f} s", flush=True)
        return {}

    trainer = Trainer(
        model, optimizer, lambda m, batch: causal_lm_loss(m(batch), batch), train,
        eval_data=validation[:10], eval_metrics=report, eval_every=args.eval_every,
        scheduler=warmup_cosine(optimizer, args.warmup, args.steps),
        device=device, log_every=50, live_plot=False, progress=sys.stderr.isatty(),
    )
    history = trainer.fit(steps=args.steps)
    seconds = time.perf_counter() - start
    for step, loss in zip(history.eval_steps, history.eval_loss):
        print(f"step {step}: validation loss {loss:.3f} (first 10 batches)", flush=True)

    scores = {}
    for split in ("validation", "test"):
        result = evaluate_lm(model, lm_batches(ids[split], args.max_len, 32), max_batches=args.score_batches)
        scores[split] = {"loss": round(result["loss"], 4), "perplexity": round(result["perplexity"], 2),
                         "tokens": result["tokens"], "bigram_loss": round(baseline[split], 4),
                         "bigram_perplexity": round(perplexity(baseline[split]), 2)}
        print(f"{split}: loss {result['loss']:.3f} (perplexity {result['perplexity']:.1f}) on "
              f"{result['tokens']:,} tokens; bigram {baseline[split]:.3f} "
              f"(perplexity {perplexity(baseline[split]):.1f})", flush=True)
    settings = {
        **{k: getattr(args, k) for k in DEFAULTS},
        "command": "python -m course_lib.pretrain gpt" + (" " + shlex.join(argv) if argv else ""),
        "tokenizer": f"course_lib.tokenizers.course_bpe_tokenizer({args.vocab_size})",
        "data": "course_lib.pretraining.encode_documents(tokenizer, course_lib.data.load_corpus('wiki').train)",
        "train_seconds": round(seconds, 1),
        "device": device.type,
        "torch_threads": torch.get_num_threads(),
        "final_train_loss": round(history.train_loss[-1], 4),
        "val_loss": scores["validation"]["loss"],
        "val_perplexity": scores["validation"]["perplexity"],
        "bigram_val_loss": scores["validation"]["bigram_loss"],
        "scores": scores,
    }
    path = save_pretrained(model.cpu(), tokenizer, out, settings=settings, half=not args.float32)
    (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path.name} ({path.stat().st_size / 1e6:.1f} MB) and the tokenizer to {out.name}/ "
          f"after {seconds / 60:.1f} minutes of training", flush=True)
    return 0
