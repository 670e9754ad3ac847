"""Pretraining data and evaluation: what GPT and BERT read while they learn, and how they are scored.

The losses themselves are ``course_lib.objectives`` (``causal_lm_loss``, ``mask_tokens``, ``mlm_loss``,
``make_nsp_pairs``, ``nsp_loss``); this module turns documents into the batches those losses read and
scores a model on held-out batches.

- **GPT** (causal LM): ``encode_documents`` (one stream of token ids, an end-of-text token between
  documents), ``lm_batches`` (windows of ``seq_len`` tokens), ``bigram_log_probs`` (the counting
  baseline a neural LM must beat) and ``evaluate_lm`` (loss and perplexity).
- **BERT** (masked LM + next-sentence prediction): ``encode_pairs`` (``[CLS] A [SEP] B [SEP]``),
  ``pack_segments`` (spans of sentences), ``PretrainingBatches`` (pairs, masked 80/10/10, new every
  pass), ``pretraining_loss`` (for ``course_lib.train.Trainer``) and ``evaluate_pretraining``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import _validate as validate
from course_lib.metrics import perplexity
from course_lib.objectives import (
    IGNORE_INDEX,
    causal_lm_loss,
    make_nsp_pairs,
    mask_tokens,
    mlm_loss,
    nsp_loss,
)

__all__ = [
    "encode_documents",
    "bigram_log_probs",
    "lm_batches",
    "evaluate_lm",
    "encode_pairs",
    "pack_segments",
    "PretrainingBatches",
    "pretraining_loss",
    "evaluate_pretraining",
]


# ---- GPT: one stream of tokens ----------------------------------------------------------------
def encode_documents(tokenizer: Any, documents: Iterable[Any]) -> torch.Tensor:
    """One stream of token ids for a causal LM: each document's text, then the end-of-text token.

    The end-of-text token between documents tells the model that what follows is unrelated, and
    gives generation a way to start from nothing.

    Args:
        tokenizer: a ``transformers`` tokenizer with an ``eos_token_id`` (e.g.
            ``course_lib.tokenizers.course_bpe_tokenizer()``).
        documents: ``course_lib.data.Document`` objects (e.g. ``load_corpus("wiki").train``) or strings.

    Returns:
        A ``(n,)`` long tensor.
    """
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError("encode_documents needs a tokenizer with an end-of-text token (eos_token_id)")
    ids: list[int] = []
    for document in documents:
        text = document if isinstance(document, str) else document.text
        ids.extend(tokenizer(text)["input_ids"])
        ids.append(eos)
    if not ids:
        raise ValueError("encode_documents got no documents")
    return torch.tensor(ids, dtype=torch.long)


def bigram_log_probs(ids: torch.Tensor, vocab_size: int, smoothing: float = 0.01) -> torch.Tensor:
    """The bigram language model: ``log P(next | previous)`` estimated by counting, with add-``smoothing``.

    ``P(b | a) = (count(a, b) + smoothing) / (count(a) + smoothing * vocab_size)``, counted over
    consecutive pairs of ``ids``. Its mean negative log-likelihood on held-out text is the
    baseline a neural language model should beat.

    Args:
        ids: a ``(n,)`` stream of token ids (n >= 2).
        vocab_size: the number of tokens V.
        smoothing: the pseudo-count added to every pair (> 0, so no pair has probability 0).

    Returns:
        A ``(V, V)`` float tensor; row a holds the log-probabilities of every next token after a.
    """
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    if len(ids) < 2:
        raise ValueError(f"bigram_log_probs needs at least 2 token ids, got {len(ids)}")
    validate.number(smoothing, "smoothing", "bigram_log_probs", low=0.0, low_open=True)
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"bigram_log_probs: ids must lie in [0, {vocab_size}), got {int(ids.min())} to {int(ids.max())}")
    counts = torch.zeros(vocab_size, vocab_size)
    counts.index_put_((ids[:-1], ids[1:]), torch.ones(len(ids) - 1), accumulate=True)
    counts += smoothing
    return (counts / counts.sum(dim=1, keepdim=True)).log()


def lm_batches(
    ids: torch.Tensor | Iterable[int],
    seq_len: int,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
) -> list[torch.Tensor]:
    """Cut one long stream of token ids into batches of training windows for a causal LM.

    The stream is cut into consecutive, non-overlapping windows of ``seq_len`` tokens (the
    remainder shorter than a window is dropped); ``causal_lm_loss`` then predicts tokens 2 .. seq_len
    of each window from the ones before.

    Args:
        ids: the token ids of the whole text, ``(n,)`` (a tensor or a list).
        seq_len: tokens per window, >= 2 (at most the model's ``max_len``).
        batch_size: windows per batch.
        shuffle: shuffle the windows (once, with ``seed``) before batching.
        seed: the shuffling seed.
        drop_last: drop a last batch smaller than ``batch_size``.

    Returns:
        A list of ``(batch, seq_len)`` long tensors.
    """
    ids = torch.as_tensor(ids if isinstance(ids, torch.Tensor) else list(ids), dtype=torch.long).flatten()
    validate.positive_int(seq_len, "seq_len", "lm_batches", minimum=2)
    validate.positive_int(batch_size, "batch_size", "lm_batches")
    windows = len(ids) // seq_len
    if windows == 0:
        raise ValueError(f"lm_batches: {len(ids)} tokens are fewer than one window of seq_len={seq_len}")
    data = ids[: windows * seq_len].view(windows, seq_len)
    if shuffle:
        data = data[torch.randperm(windows, generator=torch.Generator().manual_seed(seed))]
    batches = list(data.split(batch_size))
    if drop_last and len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


@torch.no_grad()
def evaluate_lm(model: nn.Module, batches: Iterable[torch.Tensor], *, max_batches: int | None = None) -> dict[str, float]:
    """Mean next-token loss (nats per predicted token) and perplexity of ``model`` on ``batches``.

    Every predicted token counts once (a token-weighted mean over batches of any size).

    Args:
        model: maps ``(batch, seq)`` ids to ``(batch, seq, vocab)`` logits.
        batches: ``(batch, seq)`` long tensors, e.g. from ``lm_batches``.
        max_batches: use only the first batches (a quicker estimate).

    Returns:
        ``{"loss": float, "perplexity": float, "tokens": int}``.
    """
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with validate.eval_mode(model):
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            batch = batch.to(device)
            n = batch.shape[0] * (batch.shape[1] - 1)  # predicted tokens: all but each window's first
            total += causal_lm_loss(model(batch), batch).item() * n
            count += n
    if count == 0:
        raise ValueError("evaluate_lm got no batches")
    return {"loss": total / count, "perplexity": perplexity(total / count), "tokens": count}


# ---- BERT: sentence pairs, masked -------------------------------------------------------------
def _special_ids(tokenizer) -> list[int]:
    return sorted({int(i) for i in tokenizer.all_special_ids})


def encode_pairs(
    tokenizer, pairs: Sequence[tuple[str, str, int]], *, max_len: int = 128
) -> dict[str, torch.Tensor]:
    """Tokenise sentence pairs as ``[CLS] A [SEP] B [SEP]``, padded to the longest pair.

    Args:
        tokenizer: a BERT tokenizer (``transformers.PreTrainedTokenizerFast``) whose pair template
            adds [CLS]/[SEP] and ``token_type_ids``.
        pairs: ``(sentence_a, sentence_b, label)`` as from ``make_nsp_pairs``; label 0 = B follows A.
        max_len: longer pairs are truncated, the longer sentence first.

    Returns:
        ``{"input_ids", "token_type_ids", "attention_mask"}`` each ``(n, seq)`` with ``seq <= max_len``,
        and ``"next_sentence_label"`` ``(n,)``.
    """
    validate.bert_tokenizer(tokenizer, "encode_pairs")
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence) or not pairs:
        raise ValueError("encode_pairs expected a non-empty list of (sentence_a, sentence_b, label)")
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 3 and isinstance(pair[0], str)
                and isinstance(pair[1], str) and pair[2] in (0, 1)):
            raise ValueError(
                f"encode_pairs: pair {i} is {pair!r}; expected (sentence_a: str, sentence_b: str, label 0 or 1)"
            )
    validate.positive_int(max_len, "max_len", "encode_pairs", minimum=5)
    enc = tokenizer(
        [a for a, _, _ in pairs],
        [b for _, b, _ in pairs],
        truncation="longest_first",
        max_length=max_len,
        padding="longest",
        return_tensors="pt",
        return_token_type_ids=True,
        return_attention_mask=True,
    )
    return {
        "input_ids": enc["input_ids"],
        "token_type_ids": enc["token_type_ids"],
        "attention_mask": enc["attention_mask"],
        "next_sentence_label": torch.tensor([label for _, _, label in pairs], dtype=torch.long),
    }


def _as_sentence_lists(documents) -> list[list[str]]:
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise TypeError("expected a list of documents (course_lib.data.Document or lists of sentences)")
    out = []
    for doc in documents:
        sentences = getattr(doc, "sentences", doc)
        if isinstance(sentences, str) or not isinstance(sentences, Sequence):
            raise TypeError(
                f"each document must be a course_lib.data.Document or a list of sentences, got {type(doc).__name__}"
            )
        out.append(list(sentences))
    return out


def pack_segments(documents, tokenizer, max_tokens: int) -> list[list[str]]:
    """Group each document's consecutive sentences into segments of at most ``max_tokens`` tokens.

    BERT's "sentences" A and B are really spans of text: consecutive sentences packed up to a
    length, so a pair fills the model's input and carries enough words to tell a continuation
    from a random span. A sentence longer than ``max_tokens`` forms a segment alone (it is
    truncated later).

    Args:
        documents: ``course_lib.data.Document`` objects or lists of sentences.
        tokenizer: the tokenizer that will encode the segments (lengths are counted with it).
        max_tokens: the longest segment, in tokens without [CLS]/[SEP].

    Returns:
        One list of segments (str) per document, in order; use it as ``make_nsp_pairs``'s documents.
    """
    validate.positive_int(max_tokens, "max_tokens", "pack_segments")
    packed = []
    for sentences in _as_sentence_lists(documents):
        sentences = [s for s in sentences if isinstance(s, str) and s.strip()]
        lengths = (
            [len(ids) for ids in tokenizer(sentences, add_special_tokens=False)["input_ids"]]
            if sentences else []
        )
        segments, current, size = [], [], 0
        for sentence, length in zip(sentences, lengths):
            if current and size + length > max_tokens:
                segments.append(" ".join(current))
                current, size = [], 0
            current.append(sentence)
            size += length
        if current:
            segments.append(" ".join(current))
        packed.append(segments)
    return packed


class PretrainingBatches:
    """BERT pretraining batches from documents: NSP pairs, tokenised, masked 80/10/10.

    Each pass (epoch) draws new sentence pairs (``make_nsp_pairs`` with seed ``seed + epoch``), new
    batch order and new masks (*dynamic masking*, as RoBERTa does), so the model seldom sees the same
    example twice. With ``fixed=True`` every pass yields exactly the same batches: use it for
    evaluation on held-out documents.

    Args:
        documents: ``course_lib.data.Document`` objects (or lists of sentences).
        tokenizer: a BERT tokenizer (see ``encode_pairs``).
        batch_size: pairs per batch.
        max_len: the longest tokenised pair.
        mlm_probability: the share of tokens selected for the MLM loss.
        seed: pairs, order and masks are reproducible from it.
        fixed: the same batches on every pass (evaluation).
        max_pairs: use at most this many pairs per pass (a quick evaluation sample).
        segment_tokens: None: A and B are single sentences; an int: A and B are spans of
            consecutive sentences of up to that many tokens (``pack_segments``), as in BERT.

    Each batch is a dict of tensors: ``input_ids`` (masked), ``token_type_ids``, ``attention_mask``,
    ``labels`` (original ids at selected positions, -100 elsewhere), all ``(batch, seq)``, and
    ``next_sentence_label`` ``(batch,)``.
    """

    def __init__(
        self,
        documents,
        tokenizer,
        *,
        batch_size: int = 32,
        max_len: int = 128,
        mlm_probability: float = 0.15,
        seed: int = 0,
        fixed: bool = False,
        max_pairs: int | None = None,
        segment_tokens: int | None = None,
    ) -> None:
        validate.bert_tokenizer(tokenizer, "PretrainingBatches")
        validate.positive_int(batch_size, "batch_size", "PretrainingBatches")
        if max_pairs is not None:
            validate.positive_int(max_pairs, "max_pairs", "PretrainingBatches")
        self.documents = (
            _as_sentence_lists(documents) if segment_tokens is None
            else pack_segments(documents, tokenizer, segment_tokens)
        )
        self.segment_tokens = segment_tokens
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_len = max_len
        self.mlm_probability = mlm_probability
        self.seed = seed
        self.fixed = fixed
        self.max_pairs = max_pairs
        self.epoch = 0
        self.special_ids = _special_ids(tokenizer)
        self.vocab_size = len(tokenizer)
        # The number of pairs is the same every pass (one per adjacent sentence pair).
        self._num_pairs = len(make_nsp_pairs(self.documents, seed=seed))
        if max_pairs is not None:
            self._num_pairs = min(self._num_pairs, max_pairs)

    def __len__(self) -> int:
        return math.ceil(self._num_pairs / self.batch_size)

    def pairs(self, epoch: int = 0) -> list[tuple[str, str, int]]:
        """The shuffled sentence pairs of a pass."""
        seed = self.seed + (0 if self.fixed else epoch)
        pairs = make_nsp_pairs(self.documents, seed=seed)
        random.Random(seed).shuffle(pairs)
        return pairs[: self._num_pairs]

    def _batches_of_pairs(self, pairs: list, rng: random.Random) -> list[list]:
        """Cut shuffled pairs into batches of similar length, in random order.

        Within each window of 50 batches the pairs are sorted by length, so a batch is padded to
        a length close to that of its pairs (about a third less computation than random batches).
        """
        size = self.batch_size
        window = 50 * size
        batches = []
        for start in range(0, len(pairs), window):
            chunk = sorted(pairs[start:start + window], key=lambda p: len(p[0]) + len(p[1]))
            batches += [chunk[i:i + size] for i in range(0, len(chunk), size)]
        rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        epoch = self.epoch
        if not self.fixed:
            self.epoch += 1
        seed = self.seed * 1_000_003 + (0 if self.fixed else epoch)
        batches = self._batches_of_pairs(self.pairs(epoch), random.Random(seed))
        generator = torch.Generator().manual_seed(seed)
        for pairs in batches:
            batch = encode_pairs(self.tokenizer, pairs, max_len=self.max_len)
            batch["input_ids"], batch["labels"] = mask_tokens(
                batch["input_ids"],
                mask_token_id=self.tokenizer.mask_token_id,
                vocab_size=self.vocab_size,
                special_token_ids=self.special_ids,
                mlm_probability=self.mlm_probability,
                generator=generator,
            )
            yield batch


def pretraining_loss(model: nn.Module, batch: Mapping[str, torch.Tensor], *, nsp_weight: float = 1.0):
    """BERT's pretraining loss for ``course_lib.train.Trainer``: MLM + ``nsp_weight`` x NSP.

    The MLM head scores only the selected positions (``labels != -100``). Returns
    ``{"loss", "mlm_loss", "nsp_loss"}`` (0-dim tensors); with ``nsp_weight=0`` the NSP loss is
    still logged but does not train the model (the RoBERTa ablation).
    """
    selected = batch["labels"] != IGNORE_INDEX
    out = model(
        batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], masked_positions=selected
    )
    mlm = mlm_loss(out.prediction_logits, batch["labels"][selected])
    nsp = nsp_loss(out.seq_relationship_logits, batch["next_sentence_label"])
    loss = mlm + nsp_weight * nsp if nsp_weight else mlm
    return {"loss": loss, "mlm_loss": mlm.detach(), "nsp_loss": nsp.detach()}


@torch.no_grad()
def evaluate_pretraining(model: nn.Module, batches, *, device: torch.device | str | None = None) -> dict[str, float]:
    """MLM and NSP scores of ``model`` on ``batches`` (e.g. ``PretrainingBatches(..., fixed=True)``).

    Returns:
        ``{"mlm_accuracy", "nsp_accuracy", "mlm_loss", "nsp_loss", "masked_tokens", "pairs"}``:
        top-1 accuracy over every selected position (the 80% [MASK], 10% random and 10% unchanged,
        as BERT reports it), NSP accuracy over pairs, the mean losses, and the counts.
        Also ``"mlm_accuracy_mask"``, ``"..._random"``, ``"..._unchanged"``: accuracy on each kind.
    """
    if device is None:
        device = next(model.parameters()).device
    totals = {"correct": 0, "masked": 0, "nsp_correct": 0, "pairs": 0, "mlm_nll": 0.0, "nsp_nll": 0.0}
    kinds = {"mask": [0, 0], "random": [0, 0], "unchanged": [0, 0]}
    mask_id = None
    with validate.eval_mode(model):
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            selected = batch["labels"] != IGNORE_INDEX
            out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                        masked_positions=selected)
            targets = batch["labels"][selected]
            logits = out.prediction_logits.float()
            hit = logits.argmax(-1) == targets
            totals["correct"] += int(hit.sum())
            totals["masked"] += int(selected.sum())
            totals["mlm_nll"] += float(F.cross_entropy(logits, targets, reduction="sum")) if len(targets) else 0.0
            nsp_logits = out.seq_relationship_logits.float()
            labels = batch["next_sentence_label"]
            totals["nsp_correct"] += int((nsp_logits.argmax(-1) == labels).sum())
            totals["pairs"] += len(labels)
            totals["nsp_nll"] += float(F.cross_entropy(nsp_logits, labels, reduction="sum"))
            shown = batch["input_ids"][selected]
            if mask_id is None and hasattr(batches, "tokenizer"):
                mask_id = batches.tokenizer.mask_token_id
            if mask_id is not None:
                for kind, where in (
                    ("mask", shown == mask_id),
                    ("unchanged", shown == targets),
                    ("random", (shown != mask_id) & (shown != targets)),
                ):
                    kinds[kind][0] += int(hit[where].sum())
                    kinds[kind][1] += int(where.sum())
    if totals["masked"] == 0 or totals["pairs"] == 0:
        raise ValueError("evaluate_pretraining: the batches hold no masked token or no pair")
    result = {
        "mlm_accuracy": totals["correct"] / totals["masked"],
        "nsp_accuracy": totals["nsp_correct"] / totals["pairs"],
        "mlm_loss": totals["mlm_nll"] / totals["masked"],
        "nsp_loss": totals["nsp_nll"] / totals["pairs"],
        "masked_tokens": totals["masked"],
        "pairs": totals["pairs"],
    }
    for kind, (hits, count) in kinds.items():
        if count:
            result[f"mlm_accuracy_{kind}"] = hits / count
    return result
