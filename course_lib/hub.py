"""The course models in the Hugging Face ecosystem: export them, and load hub models with an offline path.

- ``export_classifier``, ``export_gpt``, ``export_fill_mask`` write a course model as a
  ``transformers`` model folder (``save_pretrained``: weights, config, tokenizer), so that
  ``transformers.pipeline(task, model=folder)`` and ``AutoModel...from_pretrained(folder)`` use it.
- ``load_pipeline(task, name, fallback_folder=...)`` builds a ``transformers.pipeline`` from a
  local folder, the Hugging Face cache or the hub, and offline says so in one line and uses the
  fallback (a course model exported above) instead: a notebook cell never fails for want of network.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["LoadedPipeline", "export_classifier", "export_fill_mask", "export_gpt", "load_pipeline"]


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

    from course_lib.viz import _hub_reachable

    def build(model: str):
        with _quiet():
            return pipeline(task, model=model, device=device, **pipeline_kwargs)

    if not isinstance(name, str) or not name:
        raise ValueError(f"load_pipeline expected a hub name or a folder, got {name!r}")
    if Path(name).is_dir():
        return LoadedPipeline(build(name), f"the local folder {Path(name).name!r}", False)
    try:  # downloaded once already: the cached snapshot folder, with no network
        from huggingface_hub import snapshot_download

        cached = snapshot_download(name, local_files_only=True)
        return LoadedPipeline(build(cached), f"{name} (Hugging Face cache)", False)
    except (OSError, ValueError):  # not cached (LocalEntryNotFoundError is an OSError), or incomplete
        pass
    reason = "the Hugging Face hub cannot be reached"
    if _hub_reachable(timeout):
        try:
            return LoadedPipeline(build(name), f"{name} (Hugging Face hub)", False)
        except (OSError, ValueError) as exc:
            reason = f"loading it failed ({type(exc).__name__})"
    if fallback_folder is None:
        print(f"{name!r} is not available ({reason}), and no course model does {task!r}: skipped.")
        return LoadedPipeline(None, "none", True)
    print(f"{name!r} is not available ({reason}): using the course model in {Path(fallback_folder).name!r} instead.")
    return LoadedPipeline(build(str(fallback_folder)), f"the course model {Path(fallback_folder).name!r}", True)
