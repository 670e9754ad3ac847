"""The course models in the Hugging Face ecosystem: export them, and load hub models with an offline path.

- ``export_classifier``, ``export_gpt``, ``export_fill_mask`` write a course model as a
  ``transformers`` model folder (``save_pretrained``: weights, config, tokenizer), so that
  ``transformers.pipeline(task, model=folder)`` and ``AutoModel...from_pretrained(folder)`` use it.
- ``load_pipeline(task, name, fallback_folder=...)`` builds a ``transformers.pipeline`` from a
  local folder, the Hugging Face cache or the hub, and offline says so in one line and uses the
  fallback (a course model exported above) instead: a notebook cell never fails for want of network.
- ``load_model(name, model_class)`` loads a model and its tokenizer from the same places (e.g. the
  real GPT-2 for ``GPT.from_hf``), and offline says so in one line and returns ``model=None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "LoadedModel",
    "LoadedPipeline",
    "export_classifier",
    "export_fill_mask",
    "export_gpt",
    "load_model",
    "load_pipeline",
]


@contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars ("Loading weights", "Writing model shards") nor warnings from transformers."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _save_tokenizer(tokenizer: Any, folder: Path, max_len: int) -> None:
    """Save the tokenizer with the model's context as its ``model_max_length`` (pipelines truncate to it)."""
    before = tokenizer.model_max_length
    tokenizer.model_max_length = max_len
    try:
        tokenizer.save_pretrained(str(folder))
    finally:
        tokenizer.model_max_length = before


def export_classifier(model: Any, tokenizer: Any, folder: str | Path) -> Path:
    """Write a ``course_lib.finetune.BertClassifier`` as a ``BertForSequenceClassification`` folder."""
    folder = Path(folder)
    hf_model = model.to_hf().eval()
    with _quiet():
        hf_model.save_pretrained(str(folder))
    _save_tokenizer(tokenizer, folder, model.config.max_len)
    return folder


def export_gpt(model: Any, tokenizer: Any, folder: str | Path) -> Path:
    """Write a ``course_lib.gpt.GPT`` as a ``GPT2LMHeadModel`` folder (with its tokenizer)."""
    folder = Path(folder)
    hf_model = model.to_hf(attn_implementation="sdpa").eval()
    hf_model.generation_config.pad_token_id = tokenizer.eos_token_id  # GPT-2 has no padding token
    with _quiet():
        hf_model.save_pretrained(str(folder))
    _save_tokenizer(tokenizer, folder, model.config.max_len)
    return folder


def export_fill_mask(model: Any, tokenizer: Any, folder: str | Path) -> Path:
    """Write a ``course_lib.bert.Bert`` as a ``BertForMaskedLM`` folder (encoder + MLM head).

    The fill-mask pipeline wants a masked-LM model; ``BertForPreTraining`` holds the same MLM head
    plus NSP, so the weights are copied over by name (the pooler and NSP head are left out).
    """
    from transformers import BertForMaskedLM

    folder = Path(folder)
    pretraining = model.to_hf().eval()
    masked_lm = BertForMaskedLM(pretraining.config).eval()
    state = {k: v for k, v in pretraining.state_dict().items() if k in masked_lm.state_dict()}
    missing, _ = masked_lm.load_state_dict(state, strict=False)
    if missing:  # pragma: no cover - a transformers version that names the MLM head differently
        raise RuntimeError(f"export_fill_mask: BertForMaskedLM weights not found in the course BERT: {missing[:5]}")
    masked_lm.tie_weights()
    with _quiet():
        masked_lm.save_pretrained(str(folder))
    _save_tokenizer(tokenizer, folder, model.config.max_len)
    return folder


def _load_from_folder_cache_or_hub(name: str, build: Callable[[str], Any], timeout: float) -> tuple[Any, str]:
    """``build(path)`` on the first place that holds ``name``: a local folder, the HF cache, the hub.

    The hub only when it answers within ``timeout`` seconds and ``HF_HUB_OFFLINE`` is not set.
    Returns ``(built, where)``: where it came from, or, with ``built`` None, why no place had it.
    """
    from course_lib.viz import _hub_reachable

    if Path(name).is_dir():
        return build(name), f"the local folder {Path(name).name!r}"
    try:  # downloaded once already: the cached snapshot folder, with no network
        from huggingface_hub import snapshot_download

        cached = snapshot_download(name, local_files_only=True)
        return build(cached), f"{name} (Hugging Face cache)"
    except (OSError, ValueError):  # not cached (LocalEntryNotFoundError is an OSError), or incomplete
        pass
    if not _hub_reachable(timeout):
        return None, "the Hugging Face hub cannot be reached"
    try:
        return build(name), f"{name} (Hugging Face hub)"
    except (OSError, ValueError) as exc:
        return None, f"loading it failed ({type(exc).__name__})"


class LoadedPipeline(NamedTuple):
    """What ``load_pipeline`` returns: the pipeline (None when nothing could stand in), its source."""

    pipeline: Any
    source: str
    is_fallback: bool


def load_pipeline(
    task: str,
    name: str,
    *,
    fallback_folder: str | Path | None = None,
    timeout: float = 2.0,
    device: str | int | None = None,
    **pipeline_kwargs: Any,
) -> LoadedPipeline:
    """A ``transformers.pipeline(task)`` for ``name``, with an offline path.

    The order: ``name`` as a local folder; the Hugging Face cache; the hub, when it answers within
    ``timeout`` seconds and ``HF_HUB_OFFLINE`` is not set. Otherwise one printed line says why and
    the pipeline is built on ``fallback_folder`` (a course model written by ``export_*``); with no
    fallback it says that no course model does this task and returns ``pipeline=None``.

    Returns:
        ``LoadedPipeline(pipeline, source, is_fallback)``.
    """
    from transformers import pipeline

    def build(model: str):
        with _quiet():
            return pipeline(task, model=model, device=device, **pipeline_kwargs)

    if not isinstance(name, str) or not name:
        raise ValueError(f"load_pipeline expected a hub name or a folder, got {name!r}")
    loaded, where = _load_from_folder_cache_or_hub(name, build, timeout)
    if loaded is not None:
        return LoadedPipeline(loaded, where, False)
    if fallback_folder is None:
        print(f"{name!r} is not available ({where}), and no course model does {task!r}: skipped.")
        return LoadedPipeline(None, "none", True)
    print(f"{name!r} is not available ({where}): using the course model in {Path(fallback_folder).name!r} instead.")
    return LoadedPipeline(build(str(fallback_folder)), f"the course model {Path(fallback_folder).name!r}", True)


class LoadedModel(NamedTuple):
    """What ``load_model`` returns: the model and its tokenizer (both None when not available), their source."""

    model: Any
    tokenizer: Any
    source: str


def load_model(name: str, model_class: str = "AutoModelForCausalLM", *, timeout: float = 2.0) -> LoadedModel:
    """A ``transformers`` model and its tokenizer for ``name``, with an offline path.

    The order is ``load_pipeline``'s: ``name`` as a local folder; the Hugging Face cache; the hub,
    when it answers within ``timeout`` seconds and ``HF_HUB_OFFLINE`` is not set. Otherwise one
    printed line says why, and the caller goes on without it. E.g. the real GPT-2 (124M):
    ``gpt.GPT.from_hf(load_model("gpt2", "GPT2LMHeadModel").model)``.

    Args:
        name: a hub name (``"gpt2"``) or a folder written by ``save_pretrained``.
        model_class: the name of a ``transformers`` class with ``from_pretrained``.
        timeout: seconds to wait for the hub to answer.

    Returns:
        ``LoadedModel(model, tokenizer, source)``, the model in eval mode; ``(None, None, "none")``
        when nothing holds ``name``.
    """
    import transformers

    if not isinstance(name, str) or not name:
        raise ValueError(f"load_model expected a hub name or a folder, got {name!r}")
    model_type = getattr(transformers, model_class, None) if isinstance(model_class, str) else None
    if not hasattr(model_type, "from_pretrained"):
        raise ValueError(f"load_model expected the name of a transformers model class, got {model_class!r}")

    def build(path: str):
        with _quiet():
            return model_type.from_pretrained(path).eval(), transformers.AutoTokenizer.from_pretrained(path)

    loaded, where = _load_from_folder_cache_or_hub(name, build, timeout)
    if loaded is None:
        print(f"{name!r} is not available ({where}): going on without it.")
        return LoadedModel(None, None, "none")
    return LoadedModel(*loaded, where)
