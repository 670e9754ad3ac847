"""Probing trained models for two risks: memorised training text, and associations the corpus carries.

Both are probes, not proofs: a probe finds what it asks for. A model can hold memorised text that
greedy decoding from these prefixes does not bring out, and a fill-mask preference in a template
says what the model learned about that template, not how it behaves in every use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from course_lib import _validate as validate

__all__ = ["mask_probabilities", "memorisation_probe"]


@torch.no_grad()
def memorisation_probe(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    prefix_tokens: int = 12,
    continuation_tokens: int = 12,
) -> dict[str, Any]:
    """How much of each text the GPT reproduces, greedily, from its first ``prefix_tokens`` tokens.

    For every text of at least ``prefix_tokens + continuation_tokens`` tokens: greedy decoding
    from the prefix, compared token by token with the text's true continuation. Run it on training
    sentences and on held-out ones: the difference is what the model memorised, beyond what it can
    predict of any text of the kind.

    Returns:
        ``{"matched": [tokens matched before the first mistake, per text], "mean_matched",
        "exact_fraction" (the whole continuation reproduced), "texts" (how many were long enough),
        "examples": [(prefix, true continuation, generated continuation), ...] as text, one per text}``.
    """
    from course_lib.gpt import generate

    prefix_tokens = validate.positive_int(prefix_tokens, "prefix_tokens", "memorisation_probe")
    continuation_tokens = validate.positive_int(continuation_tokens, "continuation_tokens", "memorisation_probe")
    need = prefix_tokens + continuation_tokens
    if need > model.config.max_len:
        raise ValueError(f"memorisation_probe: {need} tokens do not fit the model's context of {model.config.max_len}")
    device = next(model.parameters()).device
    rows = [ids[:need] for ids in (tokenizer(text)["input_ids"] for text in texts) if len(ids) >= need]
    if not rows:
        raise ValueError(f"memorisation_probe: no text has the {need} tokens a probe needs")
    tokens = torch.tensor(rows)
    matched, examples = [], []
    for start in range(0, len(rows), 64):  # equal-length prefixes: one batched greedy decoding
        batch = tokens[start:start + 64]
        out = generate(model, batch[:, :prefix_tokens].to(device), continuation_tokens)[:, prefix_tokens:].cpu()
        right = (out == batch[:, prefix_tokens:]).long()
        matched.extend(right.cumprod(dim=1).sum(dim=1).tolist())  # tokens right before the first mistake
        for row, generated in zip(batch.tolist(), out.tolist()):
            examples.append((tokenizer.decode(row[:prefix_tokens]), tokenizer.decode(row[prefix_tokens:]),
                             tokenizer.decode(generated)))
    return {
        "matched": matched,
        "mean_matched": sum(matched) / len(matched),
        "exact_fraction": sum(m == continuation_tokens for m in matched) / len(matched),
        "texts": len(matched),
        "examples": examples,
    }


@torch.no_grad()
def mask_probabilities(model: Any, tokenizer: Any, text: str, candidates: Sequence[str]) -> Mapping[str, float]:
    """The course BERT's probability of each candidate word at the one ``[MASK]`` of ``text``.

    Args:
        model: a ``course_lib.bert.Bert``.
        tokenizer: its WordPiece tokenizer.
        text: a sentence with exactly one ``[MASK]``.
        candidates: words that are single tokens of the vocabulary (e.g. ``["he", "she"]``).

    Returns:
        ``{candidate: probability}`` (probabilities over the whole vocabulary, so they need not sum to 1).
    """
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    where = (ids[0] == tokenizer.mask_token_id).nonzero().flatten()
    if len(where) != 1:
        raise ValueError(f"mask_probabilities expected exactly one [MASK] in the text, found {len(where)}: {text!r}")
    vocab = tokenizer.get_vocab()
    unknown = [c for c in candidates if c not in vocab]
    if unknown:
        raise ValueError(f"mask_probabilities: {unknown} are not single tokens of the vocabulary; pick whole-word tokens")
    with validate.eval_mode(model):
        device = next(model.parameters()).device
        logits = model(ids.to(device)).prediction_logits[0, int(where[0])]
    probabilities = logits.float().softmax(-1)
    return {c: float(probabilities[vocab[c]]) for c in candidates}
