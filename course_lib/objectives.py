"""Pretraining objectives: the causal-LM loss (GPT), masked-LM masking and loss, next-sentence pairs (BERT).

Label conventions follow Hugging Face ``transformers``, so batches built here train HF models too:
``-100`` marks a position that does not count in a loss, and a next-sentence label is 0 when
sentence B follows sentence A in the same document and 1 when B is a random sentence.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F

from course_lib import _validate as validate

__all__ = [
    "IGNORE_INDEX",
    "causal_lm_loss",
    "mask_tokens",
    "mlm_loss",
    "make_nsp_pairs",
    "nsp_loss",
]

IGNORE_INDEX = -100


def _check_logits_and_targets(logits: torch.Tensor, targets: torch.Tensor, name: str) -> None:
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise TypeError(f"{name} expected tensors, got {type(logits).__name__} and {type(targets).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"{name} expected float logits, got dtype {logits.dtype}")
    if targets.is_floating_point():
        raise TypeError(f"{name} expected integer token ids as targets, got dtype {targets.dtype}")
    if logits.dim() != targets.dim() + 1 or logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"{name} expected logits of shape targets.shape + (vocab,) = "
            f"{tuple(targets.shape) + ('vocab',)}, got logits {tuple(logits.shape)}"
        )


def _mean_over_counted(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over the positions whose target is not IGNORE_INDEX.

    With no counted position the loss is an exact 0 that still belongs to the graph (``F.cross_entropy``
    would return nan), so a batch where no token happened to be masked does not poison training.
    """
    flat_logits = logits.reshape(-1, logits.shape[-1])
    flat_targets = targets.reshape(-1)
    if not (flat_targets != IGNORE_INDEX).any():
        return flat_logits.sum() * 0.0
    return F.cross_entropy(flat_logits.float(), flat_targets, ignore_index=IGNORE_INDEX)


def causal_lm_loss(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Next-token cross-entropy: the prediction at position t is scored against the token at t + 1.

    Args:
        logits: (batch, seq, vocab), the model's scores at every position.
        input_ids: (batch, seq), the same ids the model was given; targets are ``input_ids[:, 1:]``.
            Positions holding ``IGNORE_INDEX`` do not count.
        attention_mask: optional (batch, seq), 1 for real tokens and 0 for padding; a target that is
            padding does not count.

    Returns:
        The mean negative log-likelihood per predicted token (a 0-dim tensor), in nats:
        ``-1/N sum_t log P(w_t | w_<t)``. ``exp`` of it is the perplexity.
    """
    _check_logits_and_targets(logits, input_ids, "causal_lm_loss")
    if input_ids.shape[-1] < 2:
        raise ValueError(
            f"causal_lm_loss needs at least 2 tokens per sequence (one to read, one to predict), "
            f"got sequences of length {input_ids.shape[-1]}"
        )
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, "
            f"got {tuple(attention_mask.shape)}"
        )
    # Position t is scored against the token at t + 1; the last position has nothing to predict
    # (its target is IGNORE_INDEX) and the first token is never a target. Shifting the targets
    # rather than slicing the logits keeps the (batch, seq, vocab) scores uncopied, in the
    # forward and the backward pass (as Hugging Face's loss does).
    targets = F.pad(input_ids[..., 1:], (0, 1), value=IGNORE_INDEX)
    if attention_mask is not None:
        padding = F.pad(attention_mask[..., 1:] == 0, (0, 1), value=True)
        targets = targets.masked_fill(padding, IGNORE_INDEX)
    return _mean_over_counted(logits, targets)


def mask_tokens(
    input_ids: torch.Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    special_token_ids: Iterable[int],
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: select tokens for the masked-LM loss and corrupt them 80/10/10.

    Each token that is not special is selected with probability ``mlm_probability``. Of the
    selected, 80% are replaced by ``mask_token_id``, 10% by a random token (never a special token),
    and 10% are left as they are, so the model cannot assume that an unmasked token is correct.

    Args:
        input_ids: (batch, seq) or (seq,) integer ids; not modified.
        mask_token_id: the id of [MASK].
        vocab_size: ids of random replacements are drawn from [0, vocab_size).
        special_token_ids: ids never selected nor drawn ([CLS], [SEP], [PAD], [MASK], [UNK]...).
        mlm_probability: the selection probability, in (0, 1).
        generator: a ``torch.Generator`` for reproducible masking.

    Returns:
        ``(masked_input_ids, labels)``, both shaped like ``input_ids``; ``labels`` holds the original
        id at selected positions and ``IGNORE_INDEX`` (-100) elsewhere.
    """
    if not isinstance(input_ids, torch.Tensor) or input_ids.is_floating_point():
        raise TypeError("mask_tokens expected an integer tensor of token ids")
    caller = "mask_tokens"
    mlm_probability = validate.number(mlm_probability, "mlm_probability", caller, low=0, high=1, low_open=True, high_open=True)
    vocab_size = validate.positive_int(vocab_size, "vocab_size", caller)
    mask_token_id = validate.positive_int(mask_token_id, "mask_token_id", caller, minimum=0)
    special = torch.tensor(sorted(set(int(i) for i in special_token_ids)), dtype=torch.long)
    if mask_token_id not in special.tolist():
        special = torch.cat([special, torch.tensor([mask_token_id])])
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_token_id {mask_token_id} is outside the vocabulary [0, {vocab_size})")
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab_size):
        raise ValueError(
            f"input_ids must lie in [0, {vocab_size}), got values from {int(input_ids.min())} "
            f"to {int(input_ids.max())}"
        )
    device = input_ids.device
    is_special = torch.isin(input_ids, special.to(device))
    draw = torch.rand(input_ids.shape, generator=generator, device="cpu").to(device)
    selected = (draw < mlm_probability) & ~is_special

    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    masked = input_ids.clone()
    kind = torch.rand(input_ids.shape, generator=generator, device="cpu").to(device)
    to_mask = selected & (kind < 0.8)
    to_random = selected & (kind >= 0.8) & (kind < 0.9)
    masked[to_mask] = mask_token_id

    # Random replacements come from the ordinary tokens only.
    allowed = torch.ones(vocab_size, dtype=torch.bool)
    allowed[special[special < vocab_size]] = False
    ordinary = allowed.nonzero().squeeze(1)
    if len(ordinary) == 0:
        raise ValueError("every id of the vocabulary is special: nothing to draw random tokens from")
    picks = torch.randint(len(ordinary), (int(to_random.sum()),), generator=generator)
    masked[to_random] = ordinary[picks].to(device)
    return masked, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Masked-LM cross-entropy over the selected positions only.

    Args:
        logits: (batch, seq, vocab).
        labels: (batch, seq), the original id at selected positions and -100 elsewhere, as returned
            by ``mask_tokens``.

    Returns:
        The mean loss over selected positions (0-dim). Unselected positions contribute nothing, not
        even to the average's denominator; a batch with no selected position gives 0.
    """
    _check_logits_and_targets(logits, labels, "mlm_loss")
    return _mean_over_counted(logits, labels)


def nsp_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-sentence-prediction cross-entropy: logits (batch, 2), labels (batch,) with 0 = B follows A."""
    _check_logits_and_targets(logits, labels, "nsp_loss")
    if logits.shape[-1] != 2:
        raise ValueError(f"nsp_loss expected 2 scores per pair, got logits {tuple(logits.shape)}")
    return F.cross_entropy(logits.float(), labels)


def make_nsp_pairs(
    documents: Sequence[Sequence[str]], *, seed: int = 0
) -> list[tuple[str, str, int]]:
    """Sentence pairs for next-sentence prediction, about half true continuations and half random.

    For every sentence A that has a next sentence in its document, B is that next sentence
    (label 0) or, with probability 1/2, a random sentence from another document (label 1).

    Args:
        documents: a list of documents, each a list of sentences (strings). At least two documents,
            and at least one with two sentences.
        seed: the pairs are the same for the same documents and seed.

    Returns:
        A list of ``(sentence_a, sentence_b, label)``.
    """
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise TypeError("make_nsp_pairs expected a list of documents, each a list of sentences")
    docs = []
    for i, doc in enumerate(documents):
        if isinstance(doc, str) or not isinstance(doc, Sequence):
            raise TypeError(
                f"document {i} is a {type(doc).__name__}; each document must be a list of sentences "
                "(for course_lib.data documents use [doc.sentences for doc in documents])"
            )
        docs.append([s for s in doc if isinstance(s, str) and s.strip()])
    if sum(1 for d in docs if d) < 2:
        raise ValueError("make_nsp_pairs needs sentences from at least two documents (for random B)")
    if not any(len(d) >= 2 for d in docs):
        raise ValueError("make_nsp_pairs needs a document with at least two sentences")
    rng = random.Random(validate.positive_int(seed, "seed", "make_nsp_pairs", minimum=0))
    non_empty = [i for i, d in enumerate(docs) if d]
    pairs = []
    for index, doc in enumerate(docs):
        for a, following in zip(doc, doc[1:]):
            if rng.random() < 0.5:
                pairs.append((a, following, 0))
            else:
                other = index
                while other == index:
                    other = rng.choice(non_empty)
                pairs.append((a, rng.choice(docs[other]), 1))
    return pairs
