"""Checkpoints as safetensors: weights for shipping, full training state for resuming.

Never pickles: a safetensors file holds only tensors and a header of strings, so loading one
cannot run code. Every write is atomic (``course_lib._files.atomic_write``: a temporary file in the
same folder, then a rename), so a crash or a Ctrl-C during a save leaves the previous checkpoint whole.

- ``save_weights`` / ``load_weights``: a model's ``state_dict`` only, loaded strictly (no missing
  or unexpected keys). The course's shipped checkpoints use these.
- ``save_pretrained`` / ``load_pretrained``: a course model (GPT or BERT), its config and training
  settings, and its tokenizer in one folder, like Hugging Face's ``save_pretrained``. The shipped
  ``assets/gpt`` and ``assets/bert`` are such folders.
- ``save_checkpoint`` / ``load_checkpoint``: model, optimizer, learning-rate scheduler, AMP grad
  scaler, random-number generators and any JSON-able trainer state, in one file, for
  ``course_lib.train`` to resume exactly where it stopped.
"""

from __future__ import annotations

import importlib
import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from course_lib._files import atomic_write

__all__ = [
    "CheckpointError",
    "save_weights",
    "load_weights",
    "save_checkpoint",
    "load_checkpoint",
    "read_metadata",
    "asset_path",
    "save_pretrained",
    "load_pretrained",
]

FORMAT = "course_lib.checkpoint/1"


def _assets_dir() -> Path:
    # Installed from a wheel, the assets are package data (course_lib/assets); in the repository
    # (an editable install) they are the top-level assets/ folder beside course_lib/.
    here = Path(__file__).resolve().parent
    return here / "assets" if (here / "assets").is_dir() else here.parent / "assets"


ASSETS_DIR = _assets_dir()


def asset_path(name: str) -> Path:
    """The path of a file the course ships under ``assets/`` (a checkpoint, a tokenizer...).

    Raises ``FileNotFoundError`` naming the file and the script that rebuilds the course's
    checkpoints when it is missing.
    """
    path = ASSETS_DIR / name
    if not path.exists():
        raise FileNotFoundError(
            f"the course asset {name!r} is missing (looked in the course's assets/ folder). "
            "Rebuild the shipped checkpoints with `python -m course_lib.pretrain gpt` or `... bert`."
        )
    return path


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used with the model or optimizer it was given."""


def _shared_names(state_dict: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """Map each name whose tensor is the very same tensor as an earlier name's to that name.

    Tied weights (GPT's embedding and output head) appear under two names in a ``state_dict``;
    safetensors refuses to store shared memory, and storing it twice would waste space.
    """
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict entry {name!r} is a {type(tensor).__name__}, not a tensor")
        key = (
            tensor.untyped_storage().data_ptr(),
            tensor.storage_offset(),
            tuple(tensor.shape),
            tuple(tensor.stride()),
            tensor.dtype,
        )
        if tensor.numel() > 0 and key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
    return aliases


def _flatten(state_dict: Mapping[str, torch.Tensor], prefix: str) -> tuple[dict, dict]:
    """CPU copies of the tensors under ``prefix``, each shared tensor once, and the aliases dropped."""
    shared = _shared_names(state_dict)
    tensors = {
        # A copy, so views into one storage become separate tensors that safetensors accepts.
        prefix + name: tensor.detach().to("cpu", copy=True).contiguous()
        for name, tensor in state_dict.items()
        if name not in shared
    }
    return tensors, {prefix + alias: prefix + target for alias, target in shared.items()}


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> Path:
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint path {path} is a folder; give a file name ending .safetensors")
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string header of a safetensors file (format, kind, settings that made it...)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint: {exc}") from exc
    return tensors, metadata


def _unflatten(tensors: dict, aliases: dict, prefix: str) -> dict[str, torch.Tensor]:
    out = {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}
    for alias, target in aliases.items():
        if alias.startswith(prefix):
            out[alias[len(prefix):]] = tensors[target]
    return out


def _load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    # A file saved elsewhere (safetensors.torch.save_model) keeps one name of tied weights: fill
    # the other names of the model's tied tensors from it.
    for alias, target in _shared_names(expected).items():
        if alias not in state and target in state:
            state[alias] = state[target]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [
        f"{name}: checkpoint {tuple(state[name].shape)}, model {tuple(expected[name].shape)}"
        for name in sorted(set(state) & set(expected))
        if state[name].shape != expected[name].shape
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"not in the model: {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if wrong_shape:
            parts.append("different shapes: " + "; ".join(wrong_shape[:5]))
        raise CheckpointError(
            f"{path} does not fit this model ({', '.join(parts)}). Was it saved from a model "
            "with another configuration (layers, width, vocabulary size)?"
        )
    model.load_state_dict(state, strict=True)


def save_weights(
    model: torch.nn.Module | Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Save a model's weights (its ``state_dict``) to a safetensors file, atomically.

    Args:
        model: an ``nn.Module`` or a ``state_dict``.
        path: the file to write, conventionally ``*.safetensors``; parent folders are created.
        metadata: optional settings to keep with the weights (the config and the command that made
            them); values are stored as JSON strings and come back from ``load_weights``.

    Returns:
        The path written.
    """
    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    if not isinstance(state, Mapping):
        raise TypeError(f"save_weights expected an nn.Module or a state_dict, got {type(model).__name__}")
    tensors, aliases = _flatten(state, "")
    header = {
        "format": FORMAT,
        "kind": "weights",
        "aliases": json.dumps(aliases),
        "user": json.dumps(dict(metadata or {})),
    }
    return _atomic_save(tensors, Path(path), header)


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Load weights saved by ``save_weights`` into ``model``, strictly.

    Raises ``CheckpointError`` naming the missing, unexpected and wrongly shaped entries when the
    file does not fit the model. Returns the metadata saved with the weights.
    """
    path = Path(path)
    tensors, header = _read(path)
    if header.get("format") != FORMAT:
        # A plain safetensors file (e.g. from safetensors.torch.save_model) has no aliases.
        header = {"aliases": "{}", "user": "{}"}
    _load_model_state(model, _unflatten(tensors, json.loads(header["aliases"]), ""), path)
    return json.loads(header.get("user", "{}"))


# ---- a model with its config and tokenizer in one folder -----------------------------------------
# Which class rebuilds each kind of model; imported lazily, because the model modules sit on a higher
# floor of the library than checkpoint does.
PRETRAINED_MODELS = {
    "gpt": ("course_lib.gpt", "GPT", "GPTConfig"),
    "bert": ("course_lib.bert", "Bert", "BertConfig"),
}


def _model_kind(model: torch.nn.Module) -> str:
    for kind, (module, cls, _) in PRETRAINED_MODELS.items():
        if type(model).__name__ == cls and type(model).__module__ == module:
            return kind
    names = ", ".join(cls for _, cls, _ in PRETRAINED_MODELS.values())
    raise TypeError(f"save_pretrained expected one of the course's models ({names}), got {type(model).__name__}")


def save_pretrained(
    model: torch.nn.Module,
    tokenizer: Any | None,
    folder: str | os.PathLike,
    *,
    settings: Mapping[str, Any] | None = None,
    half: bool = True,
) -> Path:
    """Write ``model.safetensors`` (kind, config and settings as metadata) and the tokenizer to ``folder``.

    The tokenizer is written by its own ``save_pretrained`` (``tokenizer.json`` and
    ``tokenizer_config.json``), so ``transformers.AutoTokenizer.from_pretrained(folder)`` reads it
    too and the checkpoint never depends on training the tokenizer again.

    Args:
        model: a ``course_lib.gpt.GPT`` or a ``course_lib.bert.Bert``.
        tokenizer: its ``transformers.PreTrainedTokenizerFast`` (None: weights only).
        folder: where to write (created).
        settings: JSON-able training settings and results to keep with the weights.
        half: store float16 weights (half the size); ``load_pretrained`` casts them back to float32.

    Returns:
        The path of ``model.safetensors``.
    """
    kind = _model_kind(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    full = model.state_dict()
    state = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()) for k, v in full.items()}
    # Halving copies each tensor; re-point tied names (embedding and output head) at one copy so the
    # file stores the tie once and loading restores it.
    for alias, target in _shared_names(full).items():
        state[alias] = state[target]
    metadata = {"model": kind, "config": model.config.to_dict(), "settings": dict(settings or {}),
                "dtype": "float16" if half else "float32"}
    path = save_weights(state, folder / "model.safetensors", metadata=metadata)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))
    return path


def load_pretrained(
    folder: str | os.PathLike | None = None, *, device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """Load a model saved by ``save_pretrained``, strictly (no missing or unexpected weights).

    Args:
        folder: the folder, or ``"gpt"`` / ``"bert"`` for the course's shipped checkpoints
            (``assets/gpt``, ``assets/bert``, made by ``python -m course_lib.pretrain gpt|bert``).
        device: where to put the model.

    Returns:
        ``(model, tokenizer, metadata)``: the model in eval mode, float32, on ``device``; its
        ``transformers.PreTrainedTokenizerFast`` (None if the folder has none); and the saved
        ``{"model": ..., "config": ..., "settings": ..., "dtype": ...}``.
    """
    if folder is None:
        raise TypeError('load_pretrained expected a folder, or "gpt" / "bert" for the shipped checkpoints')
    shipped = isinstance(folder, str) and folder in PRETRAINED_MODELS
    folder = asset_path(folder) if shipped else Path(folder)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(
            f"no model.safetensors in the checkpoint folder {folder.name!r}; the course's own are rebuilt "
            "with `python -m course_lib.pretrain gpt` (or `bert`)"
        )
    metadata = json.loads(read_metadata(weights).get("user", "{}"))
    if metadata.get("model") not in PRETRAINED_MODELS or "config" not in metadata:
        raise CheckpointError(f"{weights} names no course model and config: was it written by save_pretrained?")
    module, model_cls, config_cls = PRETRAINED_MODELS[metadata["model"]]
    module = importlib.import_module(module)
    config = getattr(module, config_cls).from_dict(metadata["config"])
    model = getattr(module, model_cls)(config)
    load_weights(model, weights)  # strict; float16 weights are cast into the float32 model
    model = model.float().to(device).eval()
    tokenizer = None
    if (folder / "tokenizer.json").is_file():
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
    return model, tokenizer, metadata


def _optimizer_to_file(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, slot in state["state"].items():
        for key, value in slot.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"scalars": scalars, "param_groups": state["param_groups"]}


def _optimizer_from_file(optimizer: torch.optim.Optimizer, tensors: dict, saved: dict, path: Path) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for index, slot in saved["scalars"].items():
        state.setdefault(int(index), {}).update(slot)
    groups = saved["param_groups"]
    if len(groups) != len(optimizer.param_groups) or any(
        len(g["params"]) != len(h["params"]) for g, h in zip(groups, optimizer.param_groups)
    ):
        raise CheckpointError(
            f"{path} holds an optimizer for other parameters "
            f"({[len(g['params']) for g in groups]} per group, this optimizer has "
            f"{[len(g['params']) for g in optimizer.param_groups]})"
        )
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
    py_version, py_internal, py_gauss = random.getstate()
    return tensors, {
        "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_version, list(py_internal), py_gauss],
    }


def _set_rng_state(tensors: dict[str, torch.Tensor], saved: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[f"rng.cuda.{i}"] for i in range(torch.cuda.device_count()) if f"rng.cuda.{i}" in tensors]
    if cuda and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    name, pos, has_gauss, cached = saved["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = saved["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: Any | None = None,
    state: Mapping[str, Any] | None = None,
) -> Path:
    """Save everything needed to resume training into one safetensors file, atomically.

    Args:
        path: the file to write; parent folders are created.
        model: its weights are saved under ``model.*``.
        optimizer, scheduler, scaler: saved when given (tensors as tensors, the rest as JSON).
        state: JSON-able trainer state (step, loss history, best loss...).

    Returns:
        The path written. If writing fails half-way, the previous file at ``path`` is untouched.
    """
    tensors, aliases = _flatten(model.state_dict(), "model.")
    header: dict[str, Any] = {"aliases": aliases, "state": dict(state or {})}
    if optimizer is not None:
        opt_tensors, header["optimizer"] = _optimizer_to_file(optimizer)
        tensors.update(opt_tensors)
    if scheduler is not None:
        header["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        header["scaler"] = scaler.state_dict()
    rng_tensors, header["rng"] = _rng_state()
    tensors.update(rng_tensors)
    try:
        metadata = {key: json.dumps(value) for key, value in header.items()}
    except TypeError as exc:
        raise TypeError(f"save_checkpoint: the trainer state must be JSON-able ({exc})") from exc
    metadata.update(format=FORMAT, kind="training")
    return _atomic_save(tensors, Path(path), metadata)


def load_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: Any | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load a file written by ``save_checkpoint`` into the given objects (in place).

    Returns:
        The trainer state saved with it (a dict).
    """
    path = Path(path)
    tensors, metadata = _read(path)
    if metadata.get("format") != FORMAT or metadata.get("kind") != "training":
        raise CheckpointError(
            f"{path} is not a training checkpoint written by course_lib.checkpoint.save_checkpoint"
            " (for weights alone use load_weights)"
        )
    header = {key: json.loads(value) for key, value in metadata.items() if key not in ("format", "kind")}
    _load_model_state(model, _unflatten(tensors, header["aliases"], "model."), path)
    if optimizer is not None:
        if "optimizer" not in header:
            raise CheckpointError(f"{path} holds no optimizer state")
        _optimizer_from_file(optimizer, tensors, header["optimizer"], path)
    if scheduler is not None and "scheduler" in header:
        scheduler.load_state_dict(header["scheduler"])
    if scaler is not None and "scaler" in header:
        scaler.load_state_dict(header["scaler"])
    if restore_rng:
        _set_rng_state(tensors, header["rng"])
    return header["state"]
