"""Data-parallel training with ``torch.nn.parallel.DistributedDataParallel`` (DDP), launched by torchrun.

Every process (a **rank**) holds a full copy of the model and trains on its own shard of each
global batch; after the backward pass DDP averages the gradients of all ranks (an all-reduce), so
every copy takes the same optimizer step, the one a single process would take on the whole
global batch. That equality is what this module demonstrates and ``tests/test_ddp_distributed.py``
checks.

One machine, two processes (CPU: the ``gloo`` backend; GPUs: ``nccl``, one GPU per process)::

    torchrun --nproc_per_node=2 -m course_lib.distributed --steps 3 --out ddp.safetensors
    python -m course_lib.distributed --single --steps 3 --out single.safetensors   # the reference

Several machines (run the same command on each, ``--node_rank`` 0 .. nnodes-1; the address and
port of node 0 must be reachable from the others)::

    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=4 --master_addr=10.0.0.1 --master_port=29500 \\
        -m course_lib.distributed --steps 100

torchrun sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` for each
process; :func:`setup` reads them. ``--rdzv-backend=c10d --rdzv-endpoint=HOST:PORT`` is the
elastic alternative to ``--master_addr/--master_port``.

The training loop is ``course_lib.train.Trainer`` (the course's one loop) with the DDP-wrapped
model. The data is a fixed stream of random token ids (seeded), cut into global batches of
``global_batch`` sequences; rank ``r`` of ``W`` trains on rows ``r * global_batch / W`` to
``(r + 1) * global_batch / W`` of each. The result file (safetensors) holds the global loss of
every step (the mean of the ranks' losses, all-reduced), the gradients of the first step and
the parameters at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from course_lib import _validate as validate

__all__ = ["setup", "cleanup", "shard", "global_batches", "train", "main"]


def setup(backend: str | None = None) -> tuple[int, int, torch.device]:
    """Join the process group torchrun prepared: ``(rank, world_size, device)``.

    Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment (set by torchrun).
    ``backend`` None picks ``nccl`` when CUDA is available (process ``LOCAL_RANK`` uses GPU
    ``LOCAL_RANK``) and ``gloo`` (CPU) otherwise.
    """
    missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"distributed.setup: the environment lacks {missing}; launch with torchrun, e.g. "
            "`torchrun --nproc_per_node=2 -m course_lib.distributed`, or pass --single"
        )
    use_cuda = torch.cuda.is_available() and backend != "gloo"
    backend = backend or ("nccl" if use_cuda else "gloo")
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"distributed.setup expected backend 'gloo' or 'nccl', got {backend!r}")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), device


def cleanup() -> None:
    """Leave the process group (safe to call when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s rows of a global ``(global_batch, ...)`` batch: ``(global_batch / world_size, ...)``.

    The global batch must divide evenly (equal shards make the mean of the ranks' mean losses the
    mean loss of the whole batch, and so DDP's averaged gradient the whole batch's gradient).
    """
    if not isinstance(batch, torch.Tensor) or batch.dim() < 1:
        raise TypeError("shard expected a tensor batch (global_batch, ...)")
    world_size = validate.positive_int(world_size, "world_size", "shard")
    rank = validate.positive_int(rank, "rank", "shard", minimum=0)
    if rank >= world_size:
        raise ValueError(f"shard expected 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    if batch.shape[0] % world_size:
        raise ValueError(
            f"shard: a global batch of {batch.shape[0]} does not split into {world_size} equal shards; "
            f"use a multiple of {world_size}"
        )
    size = batch.shape[0] // world_size
    return batch[rank * size : (rank + 1) * size]


def global_batches(steps: int, global_batch: int, seq_len: int, vocab_size: int, seed: int = 0) -> list[torch.Tensor]:
    """``steps`` global batches of random token ids, ``(global_batch, seq_len)`` each, the same in every process."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab_size, (global_batch, seq_len), generator=g) for _ in range(steps)]


def _config(args: argparse.Namespace):
    from course_lib.gpt import GPTConfig

    return GPTConfig(vocab_size=args.vocab_size, max_len=args.seq_len, d_model=args.d_model,
                     num_layers=args.num_layers, num_heads=args.num_heads)


def train(args: argparse.Namespace, *, distributed: bool) -> dict[str, torch.Tensor] | None:
    """Train a small GPT for ``args.steps`` steps; in every process with DDP, or alone (the reference).

    Returns (on rank 0 or the single process; None on the other ranks) ``{"losses" (steps,),
    "grad.<name>" first-step gradients, "param.<name>" final parameters}``.
    """
    from course_lib import env, gpt, objectives
    from course_lib import train as training

    if distributed:
        rank, world, device = setup(args.backend)
    else:
        rank, world = 0, 1
        device = torch.device(args.device) if args.device else torch.device("cpu")
    try:
        env.seed_everything(args.seed)
        model = gpt.GPT(_config(args)).to(device)     # the same seed: the same start in every process
        batches = global_batches(args.steps, args.global_batch, args.seq_len, args.vocab_size, args.seed)
        local = [shard(b, rank, world) for b in batches]
        net: torch.nn.Module = model
        if distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

        def loss_fn(m, batch):
            loss = objectives.causal_lm_loss(m(batch), batch)
            global_loss = loss.detach().clone()
            if distributed:  # the mean of the equal shards' means = the global batch's mean
                dist.all_reduce(global_loss, op=dist.ReduceOp.SUM)
                global_loss /= world
            return {"loss": loss, "global_loss": global_loss}

        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
        trainer = training.Trainer(net, optimizer, loss_fn, local, device=device, max_grad_norm=None,
                                   mixed_precision="off", progress=False, live_plot=False)
        quiet = contextlib.redirect_stdout(io.StringIO()) if rank else contextlib.nullcontext()
        with quiet:  # the Trainer's summary line, from rank 0 only
            trainer.fit(steps=1)  # fit(steps=n) trains until n steps in all
            grads = {f"grad.{n}": p.grad.detach().cpu().clone() for n, p in model.named_parameters()}
            if args.steps > 1:
                trainer.fit(steps=args.steps)
        losses = torch.tensor(trainer.history.extras["global_loss"], dtype=torch.float64)
        if rank != 0:
            return None
        out = {"losses": losses, **grads}
        out.update({f"param.{n}": p.detach().cpu().clone() for n, p in model.named_parameters()})
        return out
    finally:
        if distributed:
            cleanup()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="torchrun --nproc_per_node=2 -m course_lib.distributed",
        description="Train a small GPT with DistributedDataParallel on shards of a global batch.",
    )
    p.add_argument("--single", action="store_true", help="one process on the whole global batch (the reference)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--global-batch", type=int, default=8, help="sequences per step, over all ranks")
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--vocab-size", type=int, default=256)
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--num-heads", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=["gloo", "nccl"], default=None, help="default: nccl on GPUs, else gloo")
    p.add_argument("--device", default=None, help="with --single: the device (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--out", default=None, help="write losses, first-step gradients, final parameters (safetensors)")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """The command line; see the module docstring."""
    args = _parser().parse_args(argv)
    for name in ("steps", "global_batch", "seq_len", "threads"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    result = train(args, distributed=not args.single)
    if result is None:
        return None
    world = 1 if args.single else int(os.environ.get("WORLD_SIZE", "1"))
    losses = ", ".join(f"{v:.6f}" for v in result["losses"].tolist())
    print(f"{'single process' if args.single else f'DDP, {world} processes'}: global batch "
          f"{args.global_batch}, losses per step: {losses}")
    if args.out:
        from safetensors.torch import save_file

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in result.items()}, args.out)
    return result


if __name__ == "__main__":  # pragma: no cover
    main()
