"""Pretrain the course's BERT (masked-LM + next-sentence prediction) and write it under ``assets/bert``.

    python -m course_lib.pretrain bert --threads 1   # the shipped checkpoint (68.5 minutes on one CPU core)
    python -m course_lib.pretrain bert --steps 200 --out /tmp/bert-try   # a quick try

The recipe: the course WordPiece tokenizer (``course_wordpiece_tokenizer``, notebook 02), sentence
pairs from the wiki training split (``PretrainingBatches``: new pairs and new 80/10/10 masks every
epoch), AdamW with linear warm-up and linear decay, ``course_lib.train.Trainer``. At the end the
model is scored on the held-out validation and test documents and saved in float16 with its
config, its tokenizer, these settings, the command and the scores.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from course_lib import train
from course_lib.train import linear_warmup_decay  # the recipe's schedule

# AdamW as in RoBERTa: betas (0.9, 0.98), eps 1e-6; the embedding tables are decayed too.
OPTIMIZER = {"betas": (0.9, 0.98), "eps": 1e-6, "decay_embeddings": True}

DEFAULTS = {
    "vocab_size": 8192,
    "d_model": 128,
    "num_layers": 3,
    "num_heads": 4,
    "d_ff": 512,
    "max_len": 128,
    "segment_tokens": 62,
    "dropout": 0.05,
    "init_std": 0.08,
    "batch_size": 32,
    "steps": 12000,
    "lr": 2e-3,
    "warmup": 300,
    "weight_decay": 0.01,
    "nsp_weight": 1.0,
    "seed": 0,
    "eval_every": 1000,
    "position_init": "neighbour",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.pretrain bert",
        description="Pretrain the course BERT (MLM + NSP) on the wiki training split.",
    )
    for name, value in DEFAULTS.items():
        if name == "position_init":
            parser.add_argument(
                "--position-init", choices=["neighbour", "random"], default=value,
                help="neighbour: start with a previous-token and a next-token head "
                "(course_lib.bert.neighbour_heads_init); random: BERT's plain initialisation",
            )
            continue
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--out", default=None, help="output folder (default: the course's assets/bert)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: course_lib.env.get_device())")
    parser.add_argument("--float32", action="store_true", help="store float32 weights (default: float16)")
    parser.add_argument(
        "--checkpoint", default=None,
        help="a training checkpoint (.safetensors) written every --eval-every steps; if it exists, "
        "training resumes from it (the result is the same as an uninterrupted run)",
    )
    return parser.parse_args(argv)


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """The recipe's AdamW: ``course_lib.train.build_optimizer`` with the ``OPTIMIZER`` settings."""
    return train.build_optimizer(model, lr, weight_decay, **OPTIMIZER)


def _without_checkpoint(argv: list[str]) -> list[str]:
    """The command-line options that shape the model (``--checkpoint PATH`` only resumes)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--checkpoint":
            skip = True
        elif not arg.startswith("--checkpoint="):
            out.append(shlex.quote(arg))
    return out


def main(argv: list[str] | None = None) -> int:
    from course_lib import data, env
    from course_lib.bert import Bert, BertConfig, neighbour_heads_init
    from course_lib.checkpoint import ASSETS_DIR, save_pretrained
    from course_lib.pretraining import PretrainingBatches, evaluate_pretraining, pretraining_loss
    from course_lib.tokenizers import course_wordpiece_tokenizer
    from course_lib.train import Trainer

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    env.seed_everything(args.seed)
    device = torch.device(args.device) if args.device else env.get_device()
    out = Path(args.out) if args.out else ASSETS_DIR / "bert"

    tokenizer = course_wordpiece_tokenizer(args.vocab_size)
    corpus = data.load_corpus("wiki")
    segments = args.segment_tokens or None  # 0: single sentences
    train = PretrainingBatches(corpus.train, tokenizer, batch_size=args.batch_size,
                               max_len=args.max_len, seed=args.seed, segment_tokens=segments)
    validation = PretrainingBatches(corpus.validation, tokenizer, batch_size=128, max_len=args.max_len,
                                    seed=1, fixed=True, max_pairs=1024, segment_tokens=segments)
    config = BertConfig(
        vocab_size=len(tokenizer), d_model=args.d_model, num_layers=args.num_layers,
        num_heads=args.num_heads, d_ff=args.d_ff, max_len=args.max_len, dropout=args.dropout,
        attention_dropout=args.dropout, pad_token_id=tokenizer.pad_token_id,
        initializer_range=args.init_std,
    )
    model = Bert(config)
    if args.position_init == "neighbour":
        neighbour_heads_init(model)  # no plateau at the unigram level (see its docstring)
    print(f"BERT {config.num_layers} layers x d_model {config.d_model}: {model.num_parameters():,} parameters; "
          f"{len(train)} batches of {args.batch_size} pairs per epoch; training on {device}", flush=True)
    optimizer = build_optimizer(model, args.lr, args.weight_decay)

    def loss_fn(model, batch):
        return pretraining_loss(model, batch, nsp_weight=args.nsp_weight)

    def scores(model):
        result = evaluate_pretraining(model, validation)
        print(f"step {trainer.history.step}: validation MLM acc {result['mlm_accuracy']:.3f}, "
              f"NSP acc {result['nsp_accuracy']:.3f} ({(time.perf_counter() - start) / 60:.1f} min)",
              flush=True)
        return {k: result[k] for k in ("mlm_accuracy", "nsp_accuracy")}

    trainer = Trainer(
        model, optimizer, loss_fn, train,
        eval_data=validation, eval_metrics=scores, eval_every=args.eval_every,
        scheduler=linear_warmup_decay(optimizer, args.warmup, args.steps),
        device=device, log_every=50, live_plot=False, progress=sys.stderr.isatty(),
        checkpoint_path=args.checkpoint, checkpoint_every=args.eval_every if args.checkpoint else None,
        resume=args.checkpoint is not None,
    )
    resumed_at = trainer.history.step
    if resumed_at:
        # Carry on with the pairs and masks of the interrupted epoch, as if never stopped.
        train.epoch = resumed_at // len(train)
        print(f"resumed from step {resumed_at}", flush=True)
    start = time.perf_counter()
    history = trainer.fit(steps=args.steps)
    minutes = (time.perf_counter() - start) / 60
    for step, metrics, loss in zip(history.eval_steps, history.eval_metrics, history.eval_loss):
        print(f"step {step}: validation loss {loss:.3f}, MLM acc {metrics['mlm_accuracy']:.3f}, "
              f"NSP acc {metrics['nsp_accuracy']:.3f}", flush=True)

    scores = {}
    for split, seed in (("validation", 1), ("test", 2)):
        held_out = PretrainingBatches(corpus.split(split), tokenizer, batch_size=128,
                                      max_len=args.max_len, seed=seed, fixed=True, segment_tokens=segments)
        result = evaluate_pretraining(model, held_out)
        scores[split] = {k: round(v, 4) for k, v in result.items()}
        print(f"{split}: MLM top-1 accuracy {result['mlm_accuracy']:.3f} on {result['masked_tokens']} "
              f"masked tokens, NSP accuracy {result['nsp_accuracy']:.3f} on {result['pairs']} pairs", flush=True)
    settings = {
        **{k: getattr(args, k) for k in DEFAULTS},
        "command": " ".join(["python -m course_lib.pretrain bert", *_without_checkpoint(argv)]).strip(),
        "resumed_at_step": resumed_at or None,
        "tokenizer": f"course_lib.tokenizers.course_wordpiece_tokenizer({args.vocab_size})",
        "data": "course_lib.data.load_corpus('wiki').train",
        "train_minutes": round(minutes, 1),
        "device": device.type,
        "final_train_loss": round(history.train_loss[-1], 4),
        "scores": scores,
        "history": {
            "steps": history.eval_steps,
            "mlm_accuracy": [round(m["mlm_accuracy"], 4) for m in history.eval_metrics],
            "nsp_accuracy": [round(m["nsp_accuracy"], 4) for m in history.eval_metrics],
            "validation_loss": [round(v, 4) for v in history.eval_loss],
        },
    }
    path = save_pretrained(model.cpu(), tokenizer, out, settings=settings, half=not args.float32)
    (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path.name} ({path.stat().st_size / 1e6:.1f} MB) and the tokenizer to {out.name}/ "
          f"after {minutes:.1f} minutes", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
