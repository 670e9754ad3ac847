"""The one training loop of the course.

Every notebook trains with ``Trainer``: it moves batches to the device, runs the forward and
backward passes (with mixed precision on CUDA), clips gradients, steps the optimizer and the
learning-rate schedule, evaluates now and then, stops early when validation stops improving,
saves and resumes checkpoints, shows a progress bar and a live loss plot in notebooks, and
survives Ctrl-C (the kernel's interrupt button): the model keeps the weights of the last finished
step, the loss history so far is kept, and calling ``fit`` again carries on.

A notebook supplies the model, the optimizer, the batches and a ``loss_fn(model, batch)``::

    def loss_fn(model, batch):
        inputs, targets = batch
        logits = model(inputs)                           # (batch, seq, vocab)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    trainer = Trainer(model, torch.optim.AdamW(model.parameters(), lr=3e-4), loss_fn,
                      train_batches, eval_data=val_batches, eval_every=100)
    history = trainer.fit(steps=1000)
    history.plot()
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from course_lib import _validate as validate
from course_lib.checkpoint import load_checkpoint, save_checkpoint
from course_lib.env import in_notebook

__all__ = [
    "History",
    "Trainer",
    "early_stopping_point",
    "move_to_device",
    "moving_average",
    "build_optimizer",
    "warmup_inverse_sqrt",
    "warmup_cosine",
    "linear_warmup_decay",
]

LossOutput = torch.Tensor | Mapping[str, torch.Tensor]


@dataclass
class History:
    """What happened during training: one entry per logged step and per evaluation.

    ``train_loss[i]`` is the mean training loss of the optimizer steps since the previous log,
    logged at step ``train_steps[i]``; ``eval_loss[j]`` the validation loss at ``eval_steps[j]``.
    ``extras`` holds any further values a ``loss_fn`` returned (e.g. ``"mlm_loss"``).
    """

    step: int = 0
    train_steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    extras: dict[str, list[float]] = field(default_factory=dict)
    eval_steps: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    eval_metrics: list[dict[str, float]] = field(default_factory=list)
    best_eval_loss: float | None = None
    best_step: int | None = None
    interrupted: bool = False
    stopped_early: bool = False
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy (used in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        return cls(**dict(data))

    def plot(self, ax=None, *, smooth_steps: int | None = None, log_scale: bool = False):
        """Plot training loss (raw, faint, and smoothed) and validation loss against steps.

        The smoothed training curve is a *centred* moving average: each point is the mean of the
        logged losses within ``smooth_steps / 2`` optimizer steps on either side. Being centred,
        it does not lag behind the raw points (an exponential average would, and would then sit
        above the validation curve while the loss falls), so the two curves can be compared.

        Args:
            ax: a matplotlib Axes to draw on; a new figure is made when None.
            smooth_steps: the width of the averaging window in optimizer steps; None picks about
                a twentieth of the steps run; 0 draws no smoothed curve.
            log_scale: a logarithmic loss axis.

        Returns:
            The matplotlib Figure.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 3.5))
        else:
            fig = ax.figure
        ax.clear()
        if self.train_loss:
            if smooth_steps is None:
                smooth_steps = max(1, (self.train_steps[-1] - self.train_steps[0]) // 20)
            ax.plot(self.train_steps, self.train_loss, color="tab:blue", alpha=0.25, lw=1,
                    label=None if smooth_steps else "train")
            if smooth_steps:
                smoothed = moving_average(self.train_steps, self.train_loss, smooth_steps)
                ax.plot(self.train_steps, smoothed, color="tab:blue", label="train")
        if self.eval_loss:
            ax.plot(self.eval_steps, self.eval_loss, "o-", color="tab:orange", label="validation")
        if self.best_step is not None:
            ax.axvline(self.best_step, color="tab:orange", ls=":", lw=1)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss")
        if log_scale:
            ax.set_yscale("log")
        if self.train_loss or self.eval_loss:
            ax.legend(loc="upper right")
        ax.grid(alpha=0.3)
        return fig


def moving_average(steps: Sequence[int], values: Sequence[float], window: int) -> list[float]:
    """The centred moving average of ``values`` logged at ``steps``, over a window of ``window`` steps.

    Point i is the mean of the values whose step lies within ``window / 2`` of ``steps[i]``, so
    the window is measured in optimizer steps whatever the logging interval, and near the ends it
    simply holds fewer points (no padding, no lag).

    Args:
        steps: increasing step numbers, length n.
        values: the value logged at each step, length n.
        window: the window's width in steps (>= 1).

    Returns:
        n averaged values.
    """
    if len(steps) != len(values):
        raise ValueError(f"moving_average expected as many steps as values, got {len(steps)} and {len(values)}")
    if window < 1:
        raise ValueError(f"moving_average expected a window of at least 1 step, got {window!r}")
    half = window / 2
    out, lo, hi, total = [], 0, 0, 0.0
    for step in steps:  # two pointers: the window [lo, hi) slides right as step grows
        while hi < len(steps) and steps[hi] <= step + half:
            total += values[hi]
            hi += 1
        while steps[lo] < step - half:
            total -= values[lo]
            lo += 1
        out.append(total / (hi - lo))
    return out


def _improves(loss: float, best: float | None, min_delta: float) -> bool:
    """Early stopping's test: the first evaluation, or a loss below the best by more than min_delta."""
    return best is None or loss < best - min_delta


def early_stopping_point(eval_losses: Sequence[float], patience: int, min_delta: float = 0.0) -> int | None:
    """The evaluation after which early stopping ends training, or None if it never does.

    The rule ``Trainer`` follows: an evaluation *improves* when its loss is below the best loss so
    far by more than ``min_delta`` (the first always does); training stops at the ``patience``-th
    evaluation in a row that does not improve. The weights to keep are the best evaluation's.

    Args:
        eval_losses: validation losses, one per evaluation, in order.
        patience: evaluations without improvement to tolerate (>= 1).
        min_delta: how much lower a loss must be to count as better.

    Returns:
        The 0-based index of the evaluation at which training stops, or None.
    """
    validate.positive_int(patience, "patience", "early_stopping_point")
    best, waited = None, 0
    for i, loss in enumerate(eval_losses):
        if _improves(loss, best, min_delta):
            best, waited = loss, 0
        else:
            waited += 1
            if waited >= patience:
                return i
    return None


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a batch (a tensor, or tuples/lists/dicts of them) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)({key: move_to_device(value, device) for key, value in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to_device(value, device) for value in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(value, device) for value in batch)
    return batch


def _batch_size(batch: Any) -> int:
    """Number of examples in a batch: the first dimension of its first tensor (1 if none)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() > 0 else 1
    values = batch.values() if isinstance(batch, Mapping) else batch
    if isinstance(values, (list, tuple)) or isinstance(batch, Mapping):
        for value in values:
            size = _batch_size(value)
            if size:
                return size
    return 1


def _model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without any)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


class _DeferredInterrupt:
    """Turn the first Ctrl-C into a request to stop after the current step.

    Stopping between two optimizer steps keeps the weights consistent (never half-updated). A second
    Ctrl-C interrupts at once, as usual. Only the main thread may install signal handlers; elsewhere
    this does nothing and a KeyboardInterrupt is caught by the training loop instead.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _LivePlot:
    """A loss plot redrawn in place in a notebook output, at most every ``every_s`` seconds."""

    def __init__(self, every_s: float = 2.0) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.every_s = every_s
        self.last = 0.0
        self.fig, self.ax = plt.subplots(figsize=(7, 3.5))
        plt.close(self.fig)  # drawn only through the display handle, never twice
        self.handle = display(self.fig, display_id=True)

    def update(self, history: History, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        history.plot(ax=self.ax)
        self.handle.update(self.fig)


def _check_trainer_arguments(
    model: Any, optimizer: Any, loss_fn: Any, train_data: Any, *, eval_data: Any, max_grad_norm: Any,
    mixed_precision: Any, **counts: int | None,
) -> None:
    """Refuse, with a message saying what was expected, what ``Trainer`` cannot train with."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"Trainer expected an nn.Module as model, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"Trainer expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not callable(loss_fn):
        raise TypeError("Trainer expected loss_fn(model, batch) -> loss, got a non-callable")
    if not isinstance(train_data, Iterable):
        raise TypeError(f"Trainer expected train_data to be an iterable of batches, got {type(train_data).__name__}")
    optional = ("eval_every", "checkpoint_every", "early_stopping_patience")  # None switches them off
    for name, value in counts.items():
        if value is not None or name not in optional:
            validate.positive_int(value, name, "Trainer")
    if counts.get("early_stopping_patience") is not None and eval_data is None:
        raise ValueError("early stopping watches the validation loss: give eval_data too")
    if max_grad_norm is not None:
        validate.number(max_grad_norm, "max_grad_norm", "Trainer", low=0.0, low_open=True)
    if mixed_precision not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(f"mixed_precision must be 'auto', 'bf16', 'fp16' or 'off', got {mixed_precision!r}")


class Trainer:
    """Train ``model`` on ``train_data`` by minimising ``loss_fn(model, batch)``.

    Args:
        model: any ``nn.Module``; it is moved to ``device``.
        optimizer: a ``torch.optim.Optimizer`` over the model's parameters.
        loss_fn: ``loss_fn(model, batch)`` returns a scalar loss tensor, or a dict with a
            ``"loss"`` entry plus other scalars to log (e.g. ``{"loss": l, "mlm_loss": m}``).
        train_data: an iterable of batches (a DataLoader, a list...), re-iterated every epoch.
            A batch is a tensor or a tuple/list/dict of tensors; it is moved to the device.
        eval_data: batches for validation; the validation loss is the example-weighted mean of
            ``loss_fn`` over them, computed in ``model.eval()`` mode without gradients.
        eval_metrics: optional ``fn(model) -> dict[str, float]`` run at every evaluation (accuracy,
            BLEU...), stored in ``history.eval_metrics``.
        eval_every: evaluate every this many optimizer steps (and always at the end).
        scheduler: a learning-rate scheduler, stepped after every optimizer step.
        device: where to train; the model's current device when None.
        max_grad_norm: clip the gradient norm to this (None: no clipping). The norm before
            clipping is logged in ``history.grad_norm``.
        grad_accum_steps: batches whose gradients are summed before one optimizer step.
        mixed_precision: ``"auto"`` (bfloat16, or float16 with loss scaling, on CUDA; off
            elsewhere), ``"bf16"``, ``"fp16"`` or ``"off"``.
        early_stopping_patience: stop after this many evaluations without the validation loss
            improving by more than ``min_delta``; None disables early stopping.
        restore_best: after early stopping, load the weights of the best evaluation back.
        checkpoint_path: a ``.safetensors`` file for checkpoints (model, optimizer, scheduler,
            history); written every ``checkpoint_every`` steps, at the end and on Ctrl-C.
        resume: if ``checkpoint_path`` exists, load it before training and carry on from its step.
        log_every: average the training loss over this many steps per logged point.
        progress: show a ``tqdm`` progress bar.
        live_plot: redraw a loss plot during training; ``"auto"`` does so in notebooks only.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[torch.nn.Module, Any], LossOutput],
        train_data: Iterable,
        *,
        eval_data: Iterable | None = None,
        eval_metrics: Callable[[torch.nn.Module], Mapping[str, float]] | None = None,
        eval_every: int | None = None,
        scheduler: Any | None = None,
        device: torch.device | str | None = None,
        max_grad_norm: float | None = 1.0,
        grad_accum_steps: int = 1,
        mixed_precision: str = "auto",
        early_stopping_patience: int | None = None,
        min_delta: float = 0.0,
        restore_best: bool = True,
        checkpoint_path: str | Path | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
        log_every: int = 1,
        progress: bool = True,
        live_plot: bool | str = "auto",
    ) -> None:
        _check_trainer_arguments(
            model, optimizer, loss_fn, train_data, eval_data=eval_data, max_grad_norm=max_grad_norm,
            mixed_precision=mixed_precision, eval_every=eval_every, checkpoint_every=checkpoint_every,
            early_stopping_patience=early_stopping_patience, grad_accum_steps=grad_accum_steps,
            log_every=log_every,
        )
        self.device = _model_device(model) if device is None else torch.device(device)
        self.model = model.to(self.device)
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.train_data = train_data
        self.eval_data = eval_data
        self.eval_metrics = eval_metrics
        self.eval_every = eval_every
        self.scheduler = scheduler
        self.max_grad_norm = max_grad_norm
        self.grad_accum_steps = grad_accum_steps
        self.early_stopping_patience = early_stopping_patience
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.checkpoint_every = checkpoint_every
        self.log_every = log_every
        self.progress = progress
        self.live_plot = in_notebook() if live_plot == "auto" else bool(live_plot)

        self.amp_dtype = self._choose_amp_dtype(mixed_precision)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None  # fp16 only
        self.history = History()
        self._best_state: dict[str, torch.Tensor] | None = None
        self._evals_without_improvement = 0
        self._epoch_iter = None
        self._skip_batches = 0
        if resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.load_checkpoint()

    # ---- setup helpers -------------------------------------------------------------------
    def _choose_amp_dtype(self, mode: str) -> torch.dtype | None:
        if mode == "off" or self.device.type != "cuda":
            if mode in ("bf16", "fp16") and self.device.type != "cuda":
                raise ValueError(f"mixed_precision={mode!r} needs a CUDA device, training on {self.device}")
            return None
        if mode == "fp16":
            return torch.float16
        if mode == "bf16" or torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _next_batch(self) -> Any:
        if self._epoch_iter is None:
            self._epoch_iter = iter(self.train_data)
            # After a resume, carry on from the same place in the epoch (exact for fixed batches;
            # a shuffling DataLoader draws a new order anyway).
            for _ in range(self._skip_batches):
                next(self._epoch_iter, None)
            self._skip_batches = 0
        try:
            return next(self._epoch_iter)
        except StopIteration:
            self._epoch_iter = iter(self.train_data)
            try:
                return next(self._epoch_iter)
            except StopIteration:
                raise ValueError("train_data yielded no batches: is the training split empty?") from None

    def _compute_loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with self._autocast():
            out = self.loss_fn(self.model, move_to_device(batch, self.device))
        if isinstance(out, Mapping):
            if "loss" not in out:
                raise ValueError(
                    f"loss_fn returned a dict without a 'loss' entry (keys: {sorted(out)})"
                )
            loss, extras = out["loss"], {k: v for k, v in out.items() if k != "loss"}
        else:
            loss, extras = out, {}
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(
                f"loss_fn must return a scalar loss tensor, got {shape}; reduce it with .mean()"
            )
        return loss.reshape(()), extras

    # ---- the loop ------------------------------------------------------------------------
    def _train_step(self) -> tuple[float, float, dict[str, float]]:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total, extras_total = 0.0, {}
        for _ in range(self.grad_accum_steps):
            loss, extras = self._compute_loss(self._next_batch())
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the loss became {loss.item()} at step {self.history.step + 1}: "
                    "try a smaller learning rate or check the inputs for inf/nan"
                )
            scaled = loss / self.grad_accum_steps
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total += loss.item() / self.grad_accum_steps
            for key, value in extras.items():
                value = value.item() if isinstance(value, torch.Tensor) else float(value)
                extras_total[key] = extras_total.get(key, 0.0) + value / self.grad_accum_steps
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(
            params, self.max_grad_norm if self.max_grad_norm is not None else math.inf
        )
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return total, float(norm), extras_total

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss (example-weighted mean of ``loss_fn``) and ``eval_metrics``, in eval mode."""
        if self.eval_data is None:
            raise ValueError("evaluate needs eval_data: pass it to the Trainer")
        with validate.eval_mode(self.model):
            total, count = 0.0, 0
            for batch in self.eval_data:
                loss, _ = self._compute_loss(batch)
                size = _batch_size(batch)
                total += loss.item() * size
                count += size
            if count == 0:
                raise ValueError("eval_data yielded no batches: is the validation split empty?")
            result = {"loss": total / count}
            if self.eval_metrics is not None:
                result.update({k: float(v) for k, v in self.eval_metrics(self.model).items()})
        return result

    def _after_eval(self, result: dict[str, float]) -> bool:
        """Record an evaluation; return True when early stopping says stop."""
        h = self.history
        h.eval_steps.append(h.step)
        h.eval_loss.append(result["loss"])
        h.eval_metrics.append({k: v for k, v in result.items() if k != "loss"})
        if _improves(result["loss"], h.best_eval_loss, self.min_delta):
            h.best_eval_loss, h.best_step = result["loss"], h.step
            self._evals_without_improvement = 0
            if self.early_stopping_patience is not None and self.restore_best:
                self._best_state = {
                    k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()
                }
            return False
        self._evals_without_improvement += 1
        return (
            self.early_stopping_patience is not None
            and self._evals_without_improvement >= self.early_stopping_patience
        )

    def load_best_weights(self) -> bool:
        """Put back the weights of the best evaluation so far (kept when early stopping is on).

        ``fit`` does this itself when it stops early; after a run that used every step, the best
        evaluation may still be an earlier one. Returns True when weights were loaded.
        """
        if self._best_state is None or self.history.best_step == self.history.step:
            return False
        self.model.load_state_dict(self._best_state)
        return True

    def fit(self, steps: int | None = None, *, epochs: int | None = None) -> History:
        """Train until ``history.step`` reaches ``steps`` (a total, so calling ``fit`` again after an
        interruption or a resume carries on to the same goal), or for ``epochs`` passes over
        ``train_data`` (which then needs a length). Returns the ``History`` (also ``self.history``).
        """
        steps = self._goal(steps, epochs)
        h = self.history
        h.interrupted = False
        if h.step >= steps:
            print(f"Already trained {h.step} steps (goal {steps}); nothing to do.")
            return h
        from tqdm.auto import tqdm

        plot = _LivePlot() if self.live_plot else None
        bar = tqdm(total=steps, initial=h.step, disable=not self.progress, unit="step", leave=True)
        start = time.perf_counter()
        window: list[float] = []
        window_extras: dict[str, list[float]] = {}
        evaluated_at = None
        try:
            with _DeferredInterrupt() as interrupt:
                while h.step < steps and not interrupt.requested:
                    loss, norm, extras = self._train_step()
                    h.step += 1
                    window.append(loss)
                    for key, value in extras.items():
                        window_extras.setdefault(key, []).append(value)
                    if len(window) == self.log_every or h.step == steps:
                        self._log(window, window_extras, norm)
                        bar.set_postfix(loss=f"{h.train_loss[-1]:.4f}", refresh=False)
                        window, window_extras = [], {}
                    bar.update(1)
                    stop = False
                    if self.eval_data is not None and self._due(self.eval_every):
                        stop = self._after_eval(self.evaluate())
                        evaluated_at = h.step
                    if plot:
                        plot.update(h, force=evaluated_at == h.step)  # always redraw after an evaluation
                    if self.checkpoint_path and self._due(self.checkpoint_every):
                        self.save_checkpoint()
                    if stop:
                        h.stopped_early = True
                        break
                if interrupt.requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            h.interrupted = True
        finally:
            h.elapsed_s += time.perf_counter() - start
            bar.close()

        if not h.interrupted and self.eval_data is not None and evaluated_at != h.step:
            self._after_eval(self.evaluate())
        if h.stopped_early and self.restore_best and self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        if self.checkpoint_path is not None:
            self.save_checkpoint()
        if plot:
            plot.update(h, force=True)
        self._report()
        return h

    def _due(self, every: int | None) -> bool:
        """Whether the step just finished is a multiple of ``every`` (never when ``every`` is None)."""
        return every is not None and self.history.step % every == 0

    def _goal(self, steps: int | None, epochs: int | None) -> int:
        """The step count ``fit`` trains to: ``steps``, or ``epochs`` passes over ``train_data``."""
        if (steps is None) == (epochs is None):
            raise ValueError("fit needs exactly one of steps=... or epochs=...")
        if epochs is not None:
            validate.positive_int(epochs, "epochs", "fit")
            try:
                per_epoch = len(self.train_data)  # type: ignore[arg-type]
            except TypeError:
                raise TypeError("fit(epochs=...) needs train_data with a len(); use steps=...") from None
            steps = math.ceil(epochs * per_epoch / self.grad_accum_steps)
        return validate.positive_int(steps, "steps", "fit")

    def _log(self, losses: list[float], extras: dict[str, list[float]], grad_norm: float) -> None:
        """One logged point: the mean of the steps since the last one, the rate and the gradient norm."""
        h = self.history
        h.train_steps.append(h.step)
        h.train_loss.append(sum(losses) / len(losses))
        h.learning_rate.append(self.optimizer.param_groups[0]["lr"])
        h.grad_norm.append(grad_norm)
        for key, values in extras.items():
            h.extras.setdefault(key, []).append(sum(values) / len(values))

    def _report(self) -> None:
        h = self.history
        parts = [f"step {h.step}"]
        if h.train_loss:
            parts.append(f"train loss {h.train_loss[-1]:.4f}")
        if h.best_eval_loss is not None:
            parts.append(f"best validation loss {h.best_eval_loss:.4f} at step {h.best_step}")
        parts.append(f"{h.elapsed_s:.1f} s")
        if h.interrupted:
            print(
                f"Interrupted at {', '.join(parts)}. The model keeps the weights of step {h.step} "
                "and trainer.history the losses so far; run trainer.fit(...) again to carry on."
            )
        elif h.stopped_early:
            restored = f"; weights of step {h.best_step} restored" if self.restore_best else ""
            print(f"Early stop: no improvement in {self.early_stopping_patience} evaluations ({', '.join(parts)}{restored}).")
        else:
            print(f"Done: {', '.join(parts)}.")

    # ---- checkpoints -----------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Save model, optimizer, scheduler, grad scaler and history (atomically, safetensors)."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("save_checkpoint needs a path (or checkpoint_path= on the Trainer)")
        state = {
            "history": self.history.to_dict(),
            "evals_without_improvement": self._evals_without_improvement,
        }
        return save_checkpoint(
            path, self.model, optimizer=self.optimizer, scheduler=self.scheduler,
            scaler=self.scaler, state=state,
        )

    def load_checkpoint(self, path: str | Path | None = None) -> History:
        """Load a checkpoint written by ``save_checkpoint`` and carry on from its step."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("load_checkpoint needs a path (or checkpoint_path= on the Trainer)")
        state = load_checkpoint(
            path, self.model, optimizer=self.optimizer, scheduler=self.scheduler, scaler=self.scaler
        )
        self.history = History.from_dict(state["history"])
        self._evals_without_improvement = int(state.get("evals_without_improvement", 0))
        self._epoch_iter = None
        try:
            per_epoch = len(self.train_data)  # type: ignore[arg-type]
        except TypeError:
            per_epoch = 0
        if per_epoch:
            self._skip_batches = (self.history.step * self.grad_accum_steps) % per_epoch
        return self.history


# ---- the optimizer and the learning-rate schedules ---------------------------------------------
def build_optimizer(
    model: torch.nn.Module,
    lr: float,
    weight_decay: float,
    *,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
    decay_embeddings: bool = False,
) -> torch.optim.AdamW:
    """AdamW with weight decay on the weight matrices only.

    Biases and LayerNorm weights (1-D) are not decayed: shrinking them towards 0 does not make the
    model simpler, it only fights the normalisation. Embedding tables are decayed only with
    ``decay_embeddings`` (GPT-2 and nanoGPT leave them alone; BERT's recipe decays them).

    Args:
        model: its trainable parameters are split into the two groups.
        lr: the peak learning rate.
        weight_decay: the decay of the matrices' group.
        betas, eps: AdamW's; GPT's recipe uses (0.9, 0.95), BERT's (RoBERTa's) (0.9, 0.98) and 1e-6.
        decay_embeddings: also decay parameters whose name contains "embedding".
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        matrix = param.dim() >= 2 and (decay_embeddings or "embedding" not in name)
        (decay if matrix else no_decay).append(param)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=betas, eps=eps,
    )


def _check_schedule(caller: str, optimizer: Any, *, warmup: int, total: int | None = None,
                    warmup_name: str = "warmup", min_warmup: int = 0) -> None:
    """The schedules' arguments: an optimizer, a warm-up of ``min_warmup`` or more steps, a positive total."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"{caller} expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
    validate.positive_int(warmup, warmup_name, caller, minimum=min_warmup)
    if total is not None:
        validate.positive_int(total, "total", caller)


def warmup_inverse_sqrt(optimizer: torch.optim.Optimizer, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The Transformer paper's learning-rate schedule, scaled so the peak is the optimizer's ``lr``.

    The rate grows linearly for ``warmup_steps`` steps (Adam's moment estimates are noisy at the
    start, and large early updates can wreck a fresh network), then decays as ``1 / sqrt(step)``:
    ``lr(step) = lr * min(step / warmup, sqrt(warmup / step))``.

    Returns:
        A ``LambdaLR`` to step once per optimizer step (the ``Trainer``'s ``scheduler=``).

    Explained and used in notebook 07, section 5.
    """
    _check_schedule("warmup_inverse_sqrt", optimizer, warmup=warmup_steps, warmup_name="warmup_steps", min_warmup=1)

    def factor(step: int) -> float:
        step = step + 1
        return min(step / warmup_steps, math.sqrt(warmup_steps / step))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int, floor: float = 0.1):
    """Learning rate rising linearly over ``warmup`` steps, then a cosine down to ``floor`` x lr at ``total``.

    The schedule of the shipped GPT (``python -m course_lib.pretrain gpt``), as in GPT-3 and nanoGPT.
    ``warmup=0`` starts at the peak.
    """
    _check_schedule("warmup_cosine", optimizer, warmup=warmup, total=total)
    validate.number(floor, "floor", "warmup_cosine", low=0.0, high=1.0)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def linear_warmup_decay(optimizer: torch.optim.Optimizer, warmup: int, total: int):
    """Learning rate rising linearly over ``warmup`` steps, then falling linearly to 0 at ``total``.

    BERT's schedule (the shipped BERT's and the fine-tuning recipe's). ``warmup=0`` starts at the peak.
    """
    _check_schedule("linear_warmup_decay", optimizer, warmup=warmup, total=total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
