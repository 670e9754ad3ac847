"""Fine-tuning the course BERT for text classification, and judging the result (notebook 11).

What pretraining buys is measured here: the same classifier starts either from the shipped BERT
(``BertClassifier.from_pretrained``) or from random weights (``BertClassifier.from_scratch``) and
gets the same data, steps and learning-rate search.

- ``article_topic_task``: the main task. Sentences of the wiki articles that pretraining never saw
  (the corpus's validation and test articles), labelled with the article they come from; split by
  paragraph, so no two sentences of one paragraph sit on both sides of a split.
- ``BertClassifier``: the encoder, its pooler, dropout and one linear layer (``ClassificationHead``),
  which is Hugging Face's ``BertForSequenceClassification`` (``to_hf`` / ``from_hf``).
- ``ClassificationBatches``, ``classification_loss``, ``predict``, ``evaluate_classifier``,
  ``fine_tune`` (with ``course_lib.train.Trainer``) and ``cross_validate`` (stratified k folds).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import _validate as validate
from course_lib import metrics
from course_lib.bert import Bert, BertConfig

__all__ = [
    "BertClassifier",
    "ClassificationBatches",
    "ClassificationHead",
    "TextClassificationData",
    "article_topic_task",
    "classification_loss",
    "cross_validate",
    "evaluate_classifier",
    "fine_tune",
    "predict",
    "stratified_folds",
]

Example = tuple[str, int]


# ---- data -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextClassificationData:
    """A labelled task: ``(text, label id)`` lists and the label names (``labels[id]``)."""

    train: list[Example]
    validation: list[Example]
    test: list[Example]
    labels: tuple[str, ...]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def article_topic_task(
    documents: Sequence[Any] | None = None,
    *,
    min_sentences: int = 130,
    min_words: int = 5,
    fractions: tuple[float, float] = (0.5, 0.1),
    seed: int = 0,
) -> TextClassificationData:
    """Sentences labelled with their article: "which of these topics is this sentence about?".

    Args:
        documents: the articles (default: the wiki corpus's validation and test articles, which
            neither the shipped BERT nor its tokenizer saw, so what a model knows of them it learns
            here).
        min_sentences: keep the articles with at least this many sentences (default: 9 articles).
        min_words: drop sentences shorter than this (headings, fragments).
        fractions: the share of each article's sentences for training and validation; the rest
            is the test set. Whole paragraphs go to one side (shuffled with ``seed``).
        seed: the paragraph shuffle.

    Returns:
        ``TextClassificationData`` with label names = article titles, in corpus order.
    """
    if documents is None:
        from course_lib import data

        corpus = data.load_corpus("wiki")
        documents = list(corpus.validation) + list(corpus.test)
    if not 0 < fractions[0] < 1 or not 0 <= fractions[1] < 1 or sum(fractions) >= 1:
        raise ValueError(f"article_topic_task: fractions (train, validation) must leave a test share, got {fractions}")
    chosen = [d for d in documents if len(d.sentences) >= min_sentences]
    if len(chosen) < 2:
        raise ValueError(
            f"article_topic_task needs at least 2 articles with >= {min_sentences} sentences, "
            f"found {len(chosen)}: lower min_sentences"
        )
    rng = random.Random(seed)
    splits: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    for label, document in enumerate(chosen):
        paragraphs = [[s for s in p.sentences if len(s.split()) >= min_words] for p in document.paragraphs]
        paragraphs = [p for p in paragraphs if p]
        rng.shuffle(paragraphs)
        total = sum(len(p) for p in paragraphs)
        taken = 0
        for paragraph in paragraphs:
            share = taken / total
            side = "train" if share < fractions[0] else "validation" if share < sum(fractions) else "test"
            splits[side].extend((sentence, label) for sentence in paragraph)
            taken += len(paragraph)
    for side in splits.values():
        rng.shuffle(side)
    return TextClassificationData(splits["train"], splits["validation"], splits["test"],
                                  tuple(d.title for d in chosen))


def stratified_folds(labels: Sequence[int], k: int = 5, *, seed: int = 0) -> list[list[int]]:
    """Split example indices into ``k`` folds with (almost) the same share of each label.

    Returns:
        ``k`` lists of indices; together they hold every index once.
    """
    validate.positive_int(k, "k", "stratified_folds", minimum=2)
    if len(labels) < k:
        raise ValueError(f"stratified_folds: {len(labels)} examples cannot fill {k} folds")
    rng = random.Random(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for label in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == label]
        rng.shuffle(members)
        for j, index in enumerate(members):
            folds[(j + offset) % k].append(index)
        offset += len(members)  # the next label starts where this one stopped: equal fold sizes
    return [sorted(fold) for fold in folds]


class ClassificationBatches:
    """Padded batches of ``(text, label)`` examples; reshuffled at every pass when ``shuffle``.

    Each batch is a dict of ``input_ids (batch, seq)``, ``attention_mask (batch, seq)`` (1 = token,
    0 = padding) and ``labels (batch,)``; ``seq`` is the longest text of the batch, at most
    ``max_len`` tokens (longer texts are cut). The order of the examples is not kept (see
    ``batch_indices``): ``predict`` returns the labels beside the predictions for that reason.
    """

    def __init__(
        self,
        examples: Sequence[Example],
        tokenizer: Any,
        *,
        batch_size: int = 32,
        max_len: int = 64,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        if not examples:
            raise ValueError("ClassificationBatches got no examples")
        bad = next((e for e in examples if not (isinstance(e, tuple) and len(e) == 2 and isinstance(e[0], str)
                                                 and isinstance(e[1], int))), None)
        if bad is not None:
            raise TypeError(f"ClassificationBatches expected (text, label id) pairs, got {bad!r}")
        validate.positive_int(batch_size, "batch_size", "ClassificationBatches")
        self.examples = list(examples)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_len = max_len
        self.shuffle = shuffle
        self.seed = seed
        self._passes = 0
        encoded = tokenizer([t for t, _ in self.examples], truncation=True, max_length=max_len)["input_ids"]
        self._ids = [torch.tensor(ids) for ids in encoded]

    def __len__(self) -> int:
        return math.ceil(len(self.examples) / self.batch_size)

    def _batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = [self._ids[i] for i in indices]
        pad = self.tokenizer.pad_token_id or 0
        input_ids = nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=pad)
        lengths = torch.tensor([len(r) for r in rows])
        attention_mask = (torch.arange(input_ids.shape[1]) < lengths[:, None]).long()
        labels = torch.tensor([self.examples[i][1] for i in indices])
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}

    def batch_indices(self) -> list[list[int]]:
        """The example indices of each batch of the next pass.

        Texts of similar length share a batch, so that little of it is padding (the time goes
        down by about a third here): without shuffling, the examples sorted by length; with it,
        shuffled, sorted by length within windows of 8 batches, and the batches shuffled.
        """
        order = list(range(len(self.examples)))
        length = [len(ids) for ids in self._ids]
        if not self.shuffle:
            order.sort(key=lambda i: length[i])
            return [order[s:s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        rng = random.Random(self.seed + self._passes)
        self._passes += 1
        rng.shuffle(order)
        window = 8 * self.batch_size
        batches = []
        for w in range(0, len(order), window):
            chunk = sorted(order[w:w + window], key=lambda i: length[i])
            batches.extend(chunk[s:s + self.batch_size] for s in range(0, len(chunk), self.batch_size))
        rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for indices in self.batch_indices():
            yield self._batch(indices)


# ---- the model --------------------------------------------------------------------------------
class ClassificationHead(nn.Module):
    """Scores for each class from BERT's pooled [CLS] vector: ``linear(dropout(pooled))``.

    ``pooled (batch, d_model)`` -> ``logits (batch, num_labels)``; Hugging Face's
    ``BertForSequenceClassification`` head (its ``dropout`` and ``classifier``).
    """

    def __init__(self, d_model: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d_model, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled))


class BertClassifier(nn.Module):
    """A course ``Bert`` encoder with a ``ClassificationHead`` on its pooled output.

    Call ``model(input_ids, attention_mask=None, token_type_ids=None)`` with ``(batch, seq)``
    tensors; get ``logits (batch, num_labels)``. The encoder keeps its pretraining heads (unused
    here, so that the checkpoint's weights load strictly), and ``labels`` names the classes.
    """

    def __init__(self, encoder: Bert, num_labels: int, *, labels: Sequence[str] | None = None,
                 dropout: float | None = None) -> None:
        super().__init__()
        if not isinstance(encoder, Bert):
            raise TypeError(f"BertClassifier expected a course_lib.bert.Bert encoder, got {type(encoder).__name__}")
        validate.positive_int(num_labels, "num_labels", "BertClassifier", minimum=2)
        if labels is not None and len(labels) != num_labels:
            raise ValueError(f"BertClassifier: {len(labels)} label names for {num_labels} labels")
        self.encoder = encoder
        self.labels = tuple(labels) if labels is not None else tuple(f"LABEL_{i}" for i in range(num_labels))
        self.head = ClassificationHead(encoder.config.d_model, num_labels,
                                       encoder.config.dropout if dropout is None else dropout)
        nn.init.normal_(self.head.classifier.weight, std=encoder.config.initializer_range)
        nn.init.zeros_(self.head.classifier.bias)

    @property
    def config(self) -> BertConfig:
        return self.encoder.config

    @property
    def num_labels(self) -> int:
        return self.head.classifier.out_features

    @classmethod
    def from_pretrained(cls, num_labels: int, *, folder=None, labels: Sequence[str] | None = None,
                        dropout: float | None = None, seed: int = 0) -> tuple[BertClassifier, Any]:
        """The shipped BERT (or the checkpoint in ``folder``) with a new head: ``(model, tokenizer)``."""
        from course_lib.checkpoint import load_pretrained

        encoder, tokenizer, _ = load_pretrained("bert" if folder is None else folder)
        torch.manual_seed(seed)
        return cls(encoder.train(), num_labels, labels=labels, dropout=dropout).train(), tokenizer

    @classmethod
    def from_scratch(cls, config: BertConfig, num_labels: int, *, labels: Sequence[str] | None = None,
                     dropout: float | None = None, seed: int = 0) -> BertClassifier:
        """The same architecture with random weights (BERT's initialisation), seeded."""
        torch.manual_seed(seed)
        return cls(Bert(config), num_labels, labels=labels, dropout=dropout).train()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        _, pooled, _ = self.encoder.encode(input_ids, token_type_ids, attention_mask)
        return self.head(pooled)

    # ---- Hugging Face ---------------------------------------------------------------------------
    def to_hf(self):
        """A ``transformers.BertForSequenceClassification`` with these weights and label names."""
        from transformers import BertForSequenceClassification

        from course_lib.interop import bert_encoder_to_hf

        hf_config = self.config.to_hf()
        hf_config.num_labels = self.num_labels
        hf_config.id2label = dict(enumerate(self.labels))
        hf_config.label2id = {name: i for i, name in enumerate(self.labels)}
        hf_config.classifier_dropout = self.head.dropout.p
        reference = next(self.parameters())
        hf_model = BertForSequenceClassification(hf_config).to(device=reference.device, dtype=reference.dtype)
        theirs = bert_encoder_to_hf(self.encoder)
        theirs["classifier.weight"] = self.head.classifier.weight.detach().clone()
        theirs["classifier.bias"] = self.head.classifier.bias.detach().clone()
        hf_model.load_state_dict(theirs, strict=True)
        return hf_model.train(self.training)

    @classmethod
    def from_hf(cls, hf_model) -> BertClassifier:
        """Our classifier with the weights of a ``transformers.BertForSequenceClassification``.

        The pretraining heads, which such a model does not have, keep a fresh initialisation
        (the MLM decoder stays tied to the token embeddings).
        """
        from transformers import BertForSequenceClassification

        if not isinstance(hf_model, BertForSequenceClassification):
            raise TypeError(f"from_hf expected a BertForSequenceClassification, got {type(hf_model).__name__}")
        hf_config = hf_model.config
        config = BertConfig.from_hf(hf_config)
        labels = [hf_config.id2label[i] for i in range(hf_config.num_labels)]
        dropout = hf_config.classifier_dropout if hf_config.classifier_dropout is not None else config.dropout
        reference = next(hf_model.parameters())
        model = cls(Bert(config), hf_config.num_labels, labels=labels, dropout=dropout)
        model = model.to(device=reference.device, dtype=reference.dtype)
        from course_lib.interop import bert_encoder_from_hf

        theirs = hf_model.state_dict()
        bert_encoder_from_hf(model.encoder, theirs)
        model.head.classifier.load_state_dict({"weight": theirs["classifier.weight"], "bias": theirs["classifier.bias"]})
        return model.train(hf_model.training)


# ---- training and evaluation ------------------------------------------------------------------
def classification_loss(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of ``model(input_ids, attention_mask)`` against ``batch["labels"]``."""
    logits = model(batch["input_ids"], batch["attention_mask"])
    return F.cross_entropy(logits, batch["labels"])


@torch.no_grad()
def predict(model: nn.Module, batches, *, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Class probabilities for every example of ``batches`` (in eval mode, in batch order).

    Returns:
        ``{"probabilities" (n, num_labels), "predictions" (n,), "labels" (n,)}`` on the CPU.
    """
    device = next(model.parameters()).device if device is None else torch.device(device)
    probabilities, labels = [], []
    with validate.eval_mode(model):
        for batch in batches:
            logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
            probabilities.append(logits.float().softmax(-1).cpu())
            labels.append(batch["labels"])
    p = torch.cat(probabilities)
    return {"probabilities": p, "predictions": p.argmax(-1), "labels": torch.cat(labels)}


def evaluate_classifier(model: nn.Module, batches, num_labels: int | None = None) -> dict[str, Any]:
    """Accuracy, macro F1 and the confusion matrix of ``model`` on ``batches``."""
    out = predict(model, batches)
    num_labels = out["probabilities"].shape[1] if num_labels is None else num_labels
    confusion = metrics.confusion_matrix(out["labels"], out["predictions"], num_labels)
    scores = metrics.f1_scores(confusion)
    loss = F.nll_loss(out["probabilities"].clamp_min(1e-12).log(), out["labels"]).item()
    return {"accuracy": metrics.accuracy(out["predictions"], out["labels"]), "macro_f1": scores["macro_f1"],
            "f1": scores["f1"], "confusion": confusion, "loss": loss, "examples": len(out["labels"])}


def fine_tune(
    model: nn.Module,
    train_batches: ClassificationBatches,
    validation_batches=None,
    *,
    epochs: int = 4,
    lr: float = 1e-4,
    weight_decay: float = 0.01,
    warmup_fraction: float = 0.1,
    early_stopping_patience: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
):
    """Train ``model`` with AdamW and a linear warm-up then decay, evaluating once per epoch.

    Args:
        model: a classifier called as ``model(input_ids, attention_mask)``.
        train_batches: ``ClassificationBatches`` (shuffled).
        validation_batches: evaluated after every epoch: the validation loss (which early stopping
            watches) and ``accuracy`` in ``history.eval_metrics``.
        epochs: passes over ``train_batches``.
        lr, weight_decay: AdamW's.
        warmup_fraction: share of the steps spent warming the learning rate up from 0.
        early_stopping_patience: stop after this many epochs without a better validation loss;
            the model ends with the weights of its best epoch (None: train every epoch, keep the last).
        device: where to train (default: where the model is).
        progress: show the Trainer's progress bar and live plot.

    Returns:
        ``course_lib.train.History``.
    """
    from course_lib.train import Trainer, linear_warmup_decay

    steps = epochs * len(train_batches)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = linear_warmup_decay(optimizer, max(1, round(warmup_fraction * steps)), steps)

    def accuracy_of(m: nn.Module) -> dict[str, float]:
        out = predict(m, validation_batches)
        return {"accuracy": metrics.accuracy(out["predictions"], out["labels"])}

    trainer = Trainer(
        model, optimizer, classification_loss, train_batches,
        eval_data=validation_batches, eval_metrics=accuracy_of if validation_batches is not None else None,
        eval_every=len(train_batches) if validation_batches is not None else None,
        scheduler=schedule, device=device, early_stopping_patience=early_stopping_patience,
        progress=progress, live_plot=progress, log_every=max(1, len(train_batches) // 4),
    )
    history = trainer.fit(steps=steps)
    trainer.load_best_weights()  # also when the best epoch was not the last but patience was not used up
    return history


def cross_validate(
    make_model: Callable[[], nn.Module],
    examples: Sequence[Example],
    tokenizer: Any,
    *,
    folds: int = 5,
    seed: int = 0,
    batch_size: int = 16,
    max_len: int = 64,
    **fine_tune_kwargs: Any,
) -> dict[str, Any]:
    """k-fold cross-validation: train a fresh ``make_model()`` on k-1 folds, test on the last one.

    Every example is tested exactly once, by a model that never trained on it. Use it when the
    data set is too small for a fixed test split (200 sentences give a test set of 40 each time).

    Returns:
        ``{"fold_accuracies": [...], "mean", "std", "examples"}``.
    """
    labels = [y for _, y in examples]
    accuracies = []
    for i, test_indices in enumerate(stratified_folds(labels, folds, seed=seed)):
        held_out = set(test_indices)
        train = [examples[j] for j in range(len(examples)) if j not in held_out]
        test = [examples[j] for j in test_indices]
        model = make_model()
        fine_tune(model, ClassificationBatches(train, tokenizer, batch_size=batch_size, max_len=max_len,
                                               shuffle=True, seed=seed + i), **fine_tune_kwargs)
        out = predict(model, ClassificationBatches(test, tokenizer, batch_size=64, max_len=max_len))
        accuracies.append(metrics.accuracy(out["predictions"], out["labels"]))
    mean = sum(accuracies) / len(accuracies)
    std = (sum((a - mean) ** 2 for a in accuracies) / (len(accuracies) - 1)) ** 0.5
    return {"fold_accuracies": accuracies, "mean": mean, "std": std, "examples": len(examples)}
