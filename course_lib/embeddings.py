"""Word embeddings: counting methods (co-occurrence, PPMI, SVD), word2vec, GloVe, and their evaluation.

The pipeline of notebook 03, one tested piece at a time::

    texts = [p.text for doc in data.load_corpus("wiki") for p in doc.paragraphs]
    sentences = [tokenize(t) for t in texts]                 # lists of words
    vocab = Vocabulary.from_sentences(sentences, min_count=5)
    corpus = encode_corpus(sentences, vocab)                 # token ids + which "sentence" each is in

    counts = cooccurrence_matrix(corpus, len(vocab), window=5)   # (V, V) scipy.sparse
    svd = WordVectors(vocab, svd_embeddings(ppmi(counts), dim=100))

    model = SkipGram(len(vocab), dim=100, noise=noise_distribution(vocab.counts))
    history = train_skipgram(model, SkipGramBatches(corpus, vocab.counts), epochs=20)
    w2v = WordVectors(vocab, model.vectors)

    evaluate(w2v)        # WordSim353 and SimLex-999 Spearman (with OOV counts), Google analogies
    w2v.nearest("king"); w2v.analogy("man", "king", "woman")

Word2vec here is skip-gram with negative sampling (SGNS) as in Mikolov et al. (2013) and gensim:
frequent words are subsampled, every centre word gets a random window of 1..``window`` words, noise
words come from the unigram distribution raised to the power 0.75, and plain SGD's learning rate
decays linearly from 0.025 to 0.0001. Training is vectorised: one step takes a batch of centre words
with all the words of their windows, and the words of one window share the centre word's noise words
(Ji et al., 2016), which turns the work into small batched matrix products; the update is the
hand-derived gradient applied to the rows in the batch only (see ``train_skipgram`` for why this
loop is not ``train.Trainer``).

A "sentence" here is any unit that windows must not cross: notebook 03 uses paragraphs.

Why one module of over 1,200 lines: it is notebook 03 end to end, and its pieces share
``Vocabulary``, the encoded corpus and ``WordVectors``; the counting methods, word2vec, GloVe and
the evaluation each sit in their own section below.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn

from course_lib import _validate as validate
from course_lib.train import History

__all__ = [
    "WORD_PATTERN",
    "UnknownWordError",
    "tokenize",
    "Vocabulary",
    "EncodedCorpus",
    "encode_corpus",
    "cooccurrence_matrix",
    "ppmi",
    "svd_embeddings",
    "keep_probabilities",
    "noise_distribution",
    "sgns_loss",
    "sgns_gradients",
    "SkipGramBatches",
    "SkipGram",
    "train_skipgram",
    "GloVe",
    "GloVeBatches",
    "glove_weights",
    "glove_loss",
    "cosine_similarity",
    "nearest_neighbours",
    "WordVectors",
    "SimilarityResult",
    "AnalogyResult",
    "Evaluation",
    "evaluate_similarity",
    "evaluate_analogies",
    "evaluate",
    "pca_2d",
]

# A word is a run of two or more letters (any alphabet), read from lower-cased text. Digits,
# punctuation and one-letter pieces ("a", the "s" of "it's") are dropped, as gensim's
# simple_preprocess does: they carry little meaning for word vectors and crowd the windows.
WORD_PATTERN = re.compile(r"[^\W\d_]{2,}")


class UnknownWordError(KeyError):
    """A word that is not in the vocabulary (too rare, misspelt, or never seen)."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lower-case words: runs of 2+ letters (``WORD_PATTERN``).

    >>> tokenize("The King's 2 horses, e.g. Ōsaka's!")
    ['the', 'king', 'horses', 'ōsaka']

    Args:
        text: a str.

    Returns:
        list of str, the words in order (empty for text without words).
    """
    if not isinstance(text, str):
        raise TypeError(f"tokenize expected a str, got {type(text).__name__}")
    return WORD_PATTERN.findall(text.lower())


def _check_sentences(sentences: Any, caller: str) -> list[Sequence[str]]:
    if isinstance(sentences, (str, bytes)) or not isinstance(sentences, Iterable):
        raise TypeError(
            f"{caller} expected a list of tokenised sentences (lists of str), "
            f"got {type(sentences).__name__}"
        )
    sentences = list(sentences)
    for i, sentence in enumerate(sentences):
        if isinstance(sentence, str):
            raise TypeError(
                f"{caller} expected tokenised sentences (lists of str) but sentence {i} is a str: "
                "split it into words first, e.g. with tokenize(sentence)"
            )
        if not isinstance(sentence, (list, tuple)):
            raise TypeError(
                f"{caller} expected each sentence to be a list of str, sentence {i} is a "
                f"{type(sentence).__name__}"
            )
    return sentences


# --------------------------------------------------------------------------------------------
# Vocabulary and corpus
# --------------------------------------------------------------------------------------------


class Vocabulary:
    """The words a model has vectors for, most frequent first, with their corpus counts.

    Attributes:
        words: tuple of str; ``words[i]`` is the word with id ``i``.
        counts: int64 array of shape (V,), how often each word occurs in the corpus.

    ``vocab["king"]`` gives an id (``UnknownWordError`` with a hint for an unknown word),
    ``"king" in vocab`` tests membership, ``len(vocab)`` is V.
    """

    def __init__(self, words: Sequence[str], counts: Sequence[int] | np.ndarray) -> None:
        words = tuple(words)
        counts = np.asarray(counts, dtype=np.int64)
        if not all(isinstance(w, str) for w in words):
            raise TypeError("Vocabulary expected words to be str")
        if counts.shape != (len(words),):
            raise ValueError(
                f"Vocabulary expected one count per word: {len(words)} words, counts of shape "
                f"{counts.shape}"
            )
        if len(set(words)) != len(words):
            raise ValueError("Vocabulary expected distinct words, found duplicates")
        if len(words) and counts.min() < 1:
            raise ValueError("Vocabulary expected counts >= 1")
        self.words = words
        self.counts = counts
        self._index = {word: i for i, word in enumerate(words)}

    @classmethod
    def from_sentences(cls, sentences: Iterable[Sequence[str]], min_count: int = 5) -> Vocabulary:
        """Count the words of tokenised sentences and keep those seen at least ``min_count`` times.

        Ids are given by decreasing count, ties broken alphabetically (so the result does not
        depend on the order of the sentences).

        Args:
            sentences: lists of str (e.g. ``[tokenize(s) for s in texts]``).
            min_count: the fewest occurrences a word needs to get a vector (gensim's default 5).

        Raises:
            ValueError: no words at all, or none seen ``min_count`` times.
        """
        sentences = _check_sentences(sentences, "Vocabulary.from_sentences")
        min_count = validate.positive_int(min_count, "min_count", "Vocabulary.from_sentences")
        counter = Counter(word for sentence in sentences for word in sentence)
        if not counter:
            raise ValueError(
                f"Vocabulary.from_sentences got {len(sentences)} sentences holding no words: "
                "is the corpus empty, or did tokenising drop everything?"
            )
        kept = sorted((w for w, n in counter.items() if n >= min_count), key=lambda w: (-counter[w], w))
        if not kept:
            raise ValueError(
                f"no word occurs at least min_count={min_count} times in {sum(counter.values())} "
                f"words (the most frequent occurs {max(counter.values())} times): use a bigger "
                "corpus or a smaller min_count"
            )
        return cls(kept, [counter[w] for w in kept])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __getitem__(self, word: str) -> int:
        try:
            return self._index[word]
        except (KeyError, TypeError):
            raise UnknownWordError(self._unknown_message(word)) from None

    def _unknown_message(self, word: object) -> str:
        if not isinstance(word, str):
            return f"words are str, got {type(word).__name__} {word!r}"
        message = (
            f"{word!r} is not in the vocabulary of {len(self):,} words (a word needs at least "
            "min_count occurrences in the corpus to get a vector)"
        )
        if word.lower() != word and word.lower() in self._index:
            return message + f"; the vocabulary is lower-case: try {word.lower()!r}"
        close = [w for w in self.words if w.startswith(word[:4])][:5] if len(word) >= 4 else []
        if close:
            return message + f"; words that start the same way: {', '.join(close)}"
        return message

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Ids of the tokens that are in the vocabulary, in order; unknown tokens are dropped.

        Returns:
            int64 array of shape (n,) with n <= len(tokens).
        """
        index = self._index
        return np.fromiter((index[t] for t in tokens if t in index), dtype=np.int64)

    def __repr__(self) -> str:
        head = ", ".join(self.words[:5])
        return f"Vocabulary({len(self):,} words: {head}, ...)"


@dataclass(frozen=True)
class EncodedCorpus:
    """A corpus as one long array of token ids, with the sentence each token belongs to.

    Attributes:
        ids: int64 array (N,), the in-vocabulary tokens of all sentences, concatenated.
        sentence_ids: int64 array (N,), non-decreasing; tokens of one sentence share an id.
            Windows never cross from one sentence into the next.
    """

    ids: np.ndarray
    sentence_ids: np.ndarray

    def __post_init__(self) -> None:
        if self.ids.ndim != 1 or self.ids.shape != self.sentence_ids.shape:
            raise ValueError(
                f"EncodedCorpus expected ids and sentence_ids of the same shape (N,), got "
                f"{self.ids.shape} and {self.sentence_ids.shape}"
            )

    def __len__(self) -> int:
        return len(self.ids)


def encode_corpus(sentences: Iterable[Sequence[str]], vocab: Vocabulary) -> EncodedCorpus:
    """Turn tokenised sentences into ids, dropping out-of-vocabulary words (as gensim does).

    Args:
        sentences: lists of str.
        vocab: the :class:`Vocabulary`.

    Returns:
        An :class:`EncodedCorpus` of the N in-vocabulary tokens.
    """
    sentences = _check_sentences(sentences, "encode_corpus")
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"encode_corpus expected a Vocabulary, got {type(vocab).__name__}")
    encoded = [vocab.encode(sentence) for sentence in sentences]
    if not encoded or sum(len(e) for e in encoded) == 0:
        raise ValueError(
            f"encode_corpus found no in-vocabulary word in {len(encoded)} sentences: is the "
            "corpus empty, or the vocabulary built from other text?"
        )
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    return EncodedCorpus(
        ids=np.concatenate(encoded).astype(np.int64),
        sentence_ids=np.repeat(np.arange(len(encoded), dtype=np.int64), lengths),
    )


def _check_corpus(corpus: Any, caller: str) -> EncodedCorpus:
    if not isinstance(corpus, EncodedCorpus):
        raise TypeError(
            f"{caller} expected an EncodedCorpus (from encode_corpus), got {type(corpus).__name__}"
        )
    if len(corpus) == 0:
        raise ValueError(f"{caller} got an empty corpus")
    return corpus


# --------------------------------------------------------------------------------------------
# Counting: co-occurrence, PPMI, SVD
# --------------------------------------------------------------------------------------------


def cooccurrence_matrix(corpus: EncodedCorpus, vocab_size: int, window: int = 5) -> scipy.sparse.csr_matrix:
    """Count how often each pair of words occurs within ``window`` words of each other.

    ``counts[i, j]`` is the number of times word ``j`` appears at most ``window`` positions before
    or after an occurrence of word ``i`` in the same sentence. The matrix is symmetric.
    Vectorised: one pass over the corpus per offset 1..window.

    Args:
        corpus: an :class:`EncodedCorpus`.
        vocab_size: V, the number of words (ids run from 0 to V - 1).
        window: the largest distance counted.

    Returns:
        scipy.sparse CSR matrix of shape (V, V), float64 counts.
    """
    corpus = _check_corpus(corpus, "cooccurrence_matrix")
    vocab_size = validate.positive_int(vocab_size, "vocab_size", "cooccurrence_matrix")
    window = validate.positive_int(window, "window", "cooccurrence_matrix")
    ids, sent = corpus.ids, corpus.sentence_ids
    if ids.max() >= vocab_size or ids.min() < 0:
        raise ValueError(
            f"cooccurrence_matrix got token ids in [{ids.min()}, {ids.max()}] for vocab_size "
            f"{vocab_size}: ids must lie in [0, vocab_size)"
        )
    rows, cols = [], []
    for offset in range(1, window + 1):
        same = sent[:-offset] == sent[offset:]
        left, right = ids[:-offset][same], ids[offset:][same]
        rows += [left, right]
        cols += [right, left]
    row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    counts = scipy.sparse.coo_matrix(
        (np.ones(len(row)), (row, col)), shape=(vocab_size, vocab_size)
    ).tocsr()  # duplicates are summed
    counts.sum_duplicates()
    return counts


def ppmi(counts: torch.Tensor | scipy.sparse.spmatrix, *, context_power: float = 1.0):
    """Positive pointwise mutual information of a word-context count matrix.

    ``PMI(w, c) = log( P(w, c) / (P(w) P(c)) ) = log( N(w,c) * N / (N(w) * N(c)) )`` with
    ``N(w)`` the row sums, ``N(c)`` the column sums and ``N`` the total; ``PPMI = max(PMI, 0)``,
    and 0 where ``N(w, c) = 0`` (log 0 = -inf, clipped). With ``context_power = a < 1`` the context
    probabilities are smoothed, ``P_a(c) = N(c)^a / sum_c N(c)^a`` (Levy et al., 2015), which
    lowers the PMI of rare contexts.

    Args:
        counts: non-negative counts of shape (V_words, V_contexts), a dense float tensor or a
            scipy.sparse matrix.
        context_power: the smoothing exponent a (1.0: plain PPMI).

    Returns:
        The PPMI matrix, same shape and kind as ``counts`` (float tensor, or scipy CSR float64).
    """
    context_power = validate.number(context_power, "context_power", "ppmi", low=0, low_open=True, high=1)
    if scipy.sparse.issparse(counts):
        matrix = scipy.sparse.csr_matrix(counts, dtype=np.float64, copy=True)  # never alter the input
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        _check_counts(matrix.data, matrix.shape, "ppmi")
        total = matrix.data.sum()
        row_sums = np.asarray(matrix.sum(axis=1)).ravel()
        col_sums = np.asarray(matrix.sum(axis=0)).ravel()
        p_context = col_sums**context_power / (col_sums**context_power).sum()
        rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        pmi = np.log(matrix.data / total) - np.log(row_sums[rows] / total) - np.log(p_context[matrix.indices])
        out = scipy.sparse.csr_matrix((np.maximum(pmi, 0.0), matrix.indices.copy(), matrix.indptr.copy()), shape=matrix.shape)
        out.eliminate_zeros()
        return out
    if not isinstance(counts, torch.Tensor):
        raise TypeError(
            f"ppmi expected a count matrix (a torch.Tensor or scipy.sparse matrix), got "
            f"{type(counts).__name__}"
        )
    if counts.dim() != 2:
        raise ValueError(f"ppmi expected a 2-D count matrix (words, contexts), got shape {tuple(counts.shape)}")
    counts = counts.double() if not counts.is_floating_point() else counts
    _check_counts(counts.detach().cpu().numpy().ravel(), tuple(counts.shape), "ppmi")
    total = counts.sum()
    p_word = counts.sum(dim=1, keepdim=True) / total
    col = counts.sum(dim=0, keepdim=True) ** context_power
    p_context = col / col.sum()
    pmi = torch.log(counts / total) - torch.log(p_word) - torch.log(p_context)
    return torch.where(counts > 0, pmi.clamp(min=0.0), torch.zeros_like(pmi))


def _check_counts(values: np.ndarray, shape: tuple, caller: str) -> None:
    if len(values) and (not np.all(np.isfinite(values)) or values.min() < 0):
        raise ValueError(f"{caller} expected finite, non-negative counts")
    if len(values) == 0 or values.sum() <= 0:
        raise ValueError(f"{caller} got a count matrix of shape {shape} with no counts (all zero)")


def svd_embeddings(matrix: torch.Tensor | scipy.sparse.spmatrix, dim: int = 100, *, power: float = 0.5) -> torch.Tensor:
    """Word vectors from a truncated SVD of a (PPMI) matrix: ``U_k * S_k**power``.

    The k = ``dim`` largest singular values and vectors, computed with ARPACK
    (``scipy.sparse.linalg.svds``) from a fixed start vector, so the result is repeatable; the
    sign of each column is fixed so that its largest entry is positive. ``power=0.5`` spreads the
    singular values over words and contexts symmetrically (Levy et al., 2015).

    Args:
        matrix: (V, C) dense tensor or scipy.sparse matrix, with dim < min(V, C).
        dim: k, the size of the vectors.
        power: exponent of the singular values (1: the classic LSA ``U S``; 0: just ``U``).

    Returns:
        float32 tensor of shape (V, dim), columns in order of decreasing singular value.
    """
    if isinstance(matrix, torch.Tensor):
        if matrix.dim() != 2:
            raise ValueError(f"svd_embeddings expected a 2-D matrix, got shape {tuple(matrix.shape)}")
        matrix = matrix.detach().cpu().double().numpy()
    elif scipy.sparse.issparse(matrix):
        matrix = scipy.sparse.csr_matrix(matrix, dtype=np.float64)
    else:
        raise TypeError(f"svd_embeddings expected a torch.Tensor or scipy.sparse matrix, got {type(matrix).__name__}")
    dim = validate.positive_int(dim, "dim", "svd_embeddings")
    if dim >= min(matrix.shape):
        raise ValueError(f"svd_embeddings needs dim < min(matrix shape) = {min(matrix.shape)}, got dim={dim}")
    start = np.ones(min(matrix.shape)) / math.sqrt(min(matrix.shape))
    u, s, _ = scipy.sparse.linalg.svds(matrix, k=dim, v0=start)
    order = np.argsort(-s)
    u, s = u[:, order], s[order]
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(dim)])
    signs[signs == 0] = 1
    return torch.from_numpy(u * signs * s**power).float()


# --------------------------------------------------------------------------------------------
# Skip-gram with negative sampling
# --------------------------------------------------------------------------------------------


def keep_probabilities(counts: np.ndarray | Sequence[int], sample: float = 1e-3) -> np.ndarray:
    """Probability of keeping each occurrence of each word when subsampling frequent words.

    The formula of word2vec's C code and gensim: with ``t = sample * total count`` a word seen
    ``c`` times is kept with probability ``min(1, (sqrt(c / t) + 1) * t / c)``. Words rarer than
    about ``t`` are always kept; "the" loses most of its occurrences. ``sample=0`` keeps everything.

    Args:
        counts: (V,) word counts.
        sample: the threshold (gensim's default 1e-3).

    Returns:
        float64 array (V,) of probabilities in (0, 1].
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0 or counts.min() <= 0:
        raise ValueError(f"keep_probabilities expected positive counts of shape (V,), got shape {counts.shape}")
    sample = validate.number(sample, "sample", "keep_probabilities", low=0)
    if sample == 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1) * threshold / counts)


def noise_distribution(counts: np.ndarray | Sequence[int], power: float = 0.75) -> torch.Tensor:
    """The distribution negative samples are drawn from: ``counts**power``, normalised.

    Returns:
        float32 tensor (V,) that sums to 1. ``power=0.75`` (word2vec) gives rare words more noise
        samples than their frequency would; ``power=1`` is the plain unigram distribution.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0 or counts.min() <= 0:
        raise ValueError(f"noise_distribution expected positive counts of shape (V,), got shape {counts.shape}")
    weights = counts**power
    return torch.from_numpy(weights / weights.sum()).float()


def _check_sgns_inputs(center: Any, context: Any, negatives: Any, caller: str) -> None:
    for name, value in (("center", center), ("context", context), ("negatives", negatives)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{caller} expected {name} to be a torch.Tensor, got {type(value).__name__}")
    if center.dim() != 2 or context.shape != center.shape:
        raise ValueError(
            f"{caller} expected center and context of the same shape (batch, dim), got "
            f"{tuple(center.shape)} and {tuple(context.shape)}"
        )
    if negatives.dim() != 3 or negatives.shape[0] != center.shape[0] or negatives.shape[2] != center.shape[1]:
        raise ValueError(
            f"{caller} expected negatives of shape (batch, K, dim) = ({center.shape[0]}, K, "
            f"{center.shape[1]}), got {tuple(negatives.shape)}"
        )


def sgns_loss(center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """The skip-gram negative-sampling loss, averaged over a batch of (word, context) pairs.

    For one pair, with ``u`` the input vector of the word, ``v`` the output vector of a context
    word seen next to it and ``n_1..n_K`` the output vectors of K noise words::

        loss = -log sigmoid(u . v) - sum_k log sigmoid(-u . n_k)

    a logistic regression that tells the true context (label 1) from noise (label 0).

    Args:
        center: (batch, dim) input vectors u.
        context: (batch, dim) output vectors v of the true context words.
        negatives: (batch, K, dim) output vectors of the noise words.

    Returns:
        0-dim tensor: the mean over the batch of the per-pair loss (summed over the K negatives).
    """
    _check_sgns_inputs(center, context, negatives, "sgns_loss")
    positive = (center * context).sum(-1)  # (batch,)
    negative = torch.einsum("bkd,bd->bk", negatives, center)  # (batch, K)
    # -log sigmoid(x) = softplus(-x), computed without overflow for large |x|.
    return (F.softplus(-positive) + F.softplus(negative).sum(-1)).mean()


def sgns_gradients(
    center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of :func:`sgns_loss`, by the formula worked out by hand.

    With ``s = u . v``, ``s_k = u . n_k`` and ``B`` the batch size (the loss is a mean)::

        dL/du   = [ (sigmoid(s) - 1) v + sum_k sigmoid(s_k) n_k ] / B
        dL/dv   = (sigmoid(s) - 1) u / B
        dL/dn_k = sigmoid(s_k) u / B

    Each is "prediction minus label" times the other vector: ``sigmoid(s) - 1`` for the true
    context (label 1), ``sigmoid(s_k) - 0`` for a noise word (label 0).

    Returns:
        ``(d_center, d_context, d_negatives)`` with the shapes of the inputs.
    """
    _check_sgns_inputs(center, context, negatives, "sgns_gradients")
    batch = center.shape[0]
    g_pos = (torch.sigmoid((center * context).sum(-1)) - 1) / batch  # (batch,)
    g_neg = torch.sigmoid(torch.einsum("bkd,bd->bk", negatives, center)) / batch  # (batch, K)
    d_center = g_pos[:, None] * context + torch.einsum("bk,bkd->bd", g_neg, negatives)
    d_context = g_pos[:, None] * center
    d_negatives = g_neg[..., None] * center[:, None, :]
    return d_center, d_context, d_negatives


class SkipGramBatches:
    """The training examples of skip-gram, drawn afresh for every epoch, as batches of windows.

    Each pass (``for batch in batches``) does what word2vec does before each epoch, vectorised
    with NumPy over the whole corpus:

    1. subsample: drop each occurrence of a word with probability ``1 - keep_probabilities``;
    2. give every remaining (centre) word a random window size ``b`` in 1..``window`` (so near
       words are used more often than far ones, as in word2vec);
    3. collect the words within ``b`` positions of it in the same sentence: its context;
    4. shuffle the centre words and cut them into batches of about ``pairs_per_batch`` pairs.

    :meth:`epoch` returns step 1-3 for the whole corpus: ``(centres, contexts, mask)`` with
    ``centres`` (n,) int64 ids, ``contexts`` (n, 2*window) int64 ids of the words at offsets
    -window..-1, 1..window, and ``mask`` (n, 2*window) bool, True where the slot holds a real context
    word (padding holds id 0). Each True entry is one (context word, centre word) pair.

    Iterating yields batches of the same form, with one twist for speed: the centre words of a
    batch share their window size ``b``, so ``contexts`` and ``mask`` are only ``2*b`` wide (the
    slots at offsets -b..-1, 1..b) instead of padded to ``2*window``, and a batch holds about
    ``pairs_per_batch / (2*b)`` centre words, so every batch has about the same number of pairs.
    Batches of all sizes are shuffled together, so the order of training stays random.

    Args:
        corpus: the :class:`EncodedCorpus`.
        counts: (V,) word counts (``vocab.counts``), for subsampling.
        window: the largest window size (gensim's default 5).
        sample: subsampling threshold (1e-3 like gensim; 0 turns subsampling off).
        pairs_per_batch: about how many (context, centre) pairs a batch holds. Plain SGD sums
            the updates of a batch, so this is capped by stability (frequent words appear in many
            pairs of one batch); 4096 is safe at word2vec's learning rate of 0.025.
        seed: seed of the NumPy generator that draws subsampling, windows and the shuffles.
    """

    def __init__(
        self,
        corpus: EncodedCorpus,
        counts: np.ndarray | Sequence[int],
        *,
        window: int = 5,
        sample: float = 1e-3,
        pairs_per_batch: int = 4096,
        seed: int = 0,
    ) -> None:
        self.corpus = _check_corpus(corpus, "SkipGramBatches")
        self.keep = keep_probabilities(counts, sample)
        if corpus.ids.max() >= len(self.keep):
            raise ValueError(
                f"SkipGramBatches got token ids up to {corpus.ids.max()} but counts for only "
                f"{len(self.keep)} words"
            )
        self.window = validate.positive_int(window, "window", "SkipGramBatches")
        self.pairs_per_batch = validate.positive_int(pairs_per_batch, "pairs_per_batch", "SkipGramBatches")
        self.rng = np.random.default_rng(seed)
        self.offsets = np.array([o for o in range(-self.window, self.window + 1) if o != 0])
        expected_centres = float(self.keep[corpus.ids].sum())
        # A 1/window share of the centre words gets window size b, with up to 2b pairs each.
        self.batches_per_size = [
            max(1, round(expected_centres / self.window * 2 * size / self.pairs_per_batch))
            for size in range(1, self.window + 1)
        ]

    def __len__(self) -> int:
        return sum(self.batches_per_size)

    def _draw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        ids, sent = self.corpus.ids, self.corpus.sentence_ids
        kept = self.rng.random(len(ids)) < self.keep[ids]
        words, sentence = ids[kept], sent[kept]
        n = len(words)
        reach = self.window - self.rng.integers(0, self.window, n)  # 1..window, per centre word
        positions = np.arange(n)[:, None] + self.offsets[None, :]  # (n, 2*window)
        clipped = np.clip(positions, 0, max(n - 1, 0))
        mask = (
            (positions >= 0)
            & (positions < n)
            & (sentence[clipped] == sentence[:, None])
            & (np.abs(self.offsets)[None, :] <= reach[:, None])
        )
        contexts = np.where(mask, words[clipped], 0) if n else np.zeros((0, 2 * self.window), np.int64)
        has_context = mask.any(axis=1)
        order = self.rng.permutation(int(has_context.sum()))
        return words[has_context][order], contexts[has_context][order], mask[has_context][order], reach[has_context][order]

    def epoch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw one epoch of examples: ``(centres (n,), contexts (n, 2*window), mask (n, 2*window))``."""
        centres, contexts, mask, _ = self._draw()
        return torch.from_numpy(centres), torch.from_numpy(contexts), torch.from_numpy(mask)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        centres, contexts, mask, reach = self._draw()
        batches = []
        for size in range(1, self.window + 1):
            rows = np.flatnonzero(reach == size)
            if len(rows) == 0:
                continue
            slots = slice(self.window - size, self.window + size)  # offsets -size..-1, 1..size
            parts = (
                torch.from_numpy(centres[rows]),
                torch.from_numpy(np.ascontiguousarray(contexts[rows, slots])),
                torch.from_numpy(np.ascontiguousarray(mask[rows, slots])),
            )
            chunks = min(self.batches_per_size[size - 1], len(rows))
            batches += list(zip(*(torch.tensor_split(part, chunks) for part in parts)))
        for i in self.rng.permutation(len(batches)):
            yield batches[i]


class SkipGram(nn.Module):
    """Word2vec's two tables of vectors and its negative sampling.

    Every word has an *input* vector (``input_vectors``, the word vectors we keep) and an
    *output* vector (``output_vectors``, used to score it as a context or noise word). Input
    vectors start uniform in [-0.5/dim, 0.5/dim] and output vectors at zero, as in word2vec.

    Args:
        vocab_size: V.
        dim: the size of the vectors.
        noise: (V,) probabilities of drawing each word as a negative (``noise_distribution``).
        negatives: K, noise words per example.
        table_size: negatives are drawn from a table of this many ids sampled from ``noise``
            once (word2vec's unigram table): one cheap random index per draw.
        seed: seed for the initial vectors and the table.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        noise: torch.Tensor,
        *,
        negatives: int = 5,
        table_size: int = 2**20,
        seed: int = 0,
    ) -> None:
        super().__init__()
        vocab_size = validate.positive_int(vocab_size, "vocab_size", "SkipGram")
        dim = validate.positive_int(dim, "dim", "SkipGram")
        self.negatives = validate.positive_int(negatives, "negatives", "SkipGram")
        if not isinstance(noise, torch.Tensor) or noise.shape != (vocab_size,):
            shape = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
            raise ValueError(f"SkipGram expected noise probabilities of shape ({vocab_size},), got {shape}")
        generator = torch.Generator().manual_seed(seed)
        self.input_vectors = nn.Embedding(vocab_size, dim)
        self.output_vectors = nn.Embedding(vocab_size, dim)
        with torch.no_grad():
            self.input_vectors.weight.copy_((torch.rand(vocab_size, dim, generator=generator) - 0.5) / dim)
            self.output_vectors.weight.zero_()
        table = torch.multinomial(noise.double(), table_size, replacement=True, generator=generator)
        self.register_buffer("noise_table", table, persistent=False)

    @property
    def vectors(self) -> torch.Tensor:
        """The word vectors: the input vectors, (V, dim), detached, on the CPU."""
        return self.input_vectors.weight.detach().cpu()

    def sample_negatives(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        """Noise word ids of the given shape, drawn from ``noise`` (on the model's device)."""
        table = self.noise_table
        picks = torch.randint(0, len(table), shape, device=table.device, generator=generator)
        return table[picks]

    def _check_batch(self, centres, contexts, mask, negatives) -> None:
        if centres.dim() != 1 or contexts.dim() != 2 or contexts.shape[0] != centres.shape[0]:
            raise ValueError(
                f"SkipGram expected centres (G,) and contexts (G, C), got {tuple(centres.shape)} "
                f"and {tuple(contexts.shape)}"
            )
        if mask.shape != contexts.shape:
            raise ValueError(f"SkipGram expected mask of shape {tuple(contexts.shape)}, got {tuple(mask.shape)}")
        if negatives.dim() != 2 or negatives.shape[0] != centres.shape[0]:
            raise ValueError(f"SkipGram expected negatives of shape (G, K) with G={centres.shape[0]}, got {tuple(negatives.shape)}")

    def forward(
        self, centres: torch.Tensor, contexts: torch.Tensor, mask: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        """Mean :func:`sgns_loss` over the (context word, centre word) pairs of a batch.

        Each context word's input vector must score its centre word's output vector high and
        the K noise words low (the orientation of word2vec's C code and gensim); the context words
        of one window share the centre word's K noise words.

        Args:
            centres: (G,) ids; contexts: (G, C) ids; mask: (G, C) bool, True for real pairs;
            negatives: (G, K) noise ids.

        Returns:
            0-dim tensor, differentiable (use it with autograd and ``train.Trainer``).
        """
        self._check_batch(centres, contexts, mask, negatives)
        inputs = self.input_vectors(contexts)  # (G, C, d): the input vector of every context word
        outputs = self.output_vectors(torch.cat([centres[:, None], negatives], dim=1))  # (G, 1 + K, d)
        scores = inputs @ outputs.transpose(1, 2)  # (G, C, 1 + K): centre word first, then noise
        per_pair = F.softplus(-scores[..., 0]) + F.softplus(scores[..., 1:]).sum(-1)  # (G, C)
        weight = mask.to(per_pair.dtype)
        return (per_pair * weight).sum() / weight.sum().clamp(min=1)

    @torch.no_grad()
    def sgd_step(
        self,
        centres: torch.Tensor,
        contexts: torch.Tensor,
        mask: torch.Tensor,
        negatives: torch.Tensor,
        lr: float,
    ) -> torch.Tensor:
        """One SGD step with the hand-derived gradient, ``lr`` per pair, in place; returns the loss.

        The same update as ``loss = forward(...) * number_of_pairs; loss.backward()`` followed by
        ``w -= lr * w.grad`` (word2vec's per-example learning rate), without autograd and without a
        dense gradient the size of the whole vocabulary: only the rows in the batch are touched.

        Returns:
            0-dim tensor: the mean loss per pair before the update (no device sync).
        """
        self._check_batch(centres, contexts, mask, negatives)
        table_in, table_out = self.input_vectors.weight, self.output_vectors.weight
        dim = table_in.shape[1]
        targets = torch.cat([centres[:, None], negatives], dim=1)  # (G, 1 + K)
        inputs = table_in.index_select(0, contexts.reshape(-1)).view(*contexts.shape, dim)  # (G, C, d)
        outputs = table_out.index_select(0, targets.reshape(-1)).view(*targets.shape, dim)  # (G, 1+K, d)
        predicted = torch.sigmoid(inputs @ outputs.transpose(1, 2))  # (G, C, 1 + K)
        weight = mask.to(predicted.dtype)
        # The loss is -log of the probability given to the right answer: the centre word is a
        # true context (label 1), the noise words are not (label 0).
        right = torch.where(self._labels(predicted), predicted, 1 - predicted)
        loss = -(right.clamp_min(1e-7).log().sum(-1) * weight).sum() / weight.sum().clamp(min=1)
        # d loss / d score = sigmoid(score) - label
        g = predicted
        g[..., 0] -= 1
        g *= (weight * lr).unsqueeze(-1)
        table_in.index_add_(0, contexts.reshape(-1), (g @ outputs).view(-1, dim), alpha=-1)
        table_out.index_add_(0, targets.reshape(-1), (g.transpose(1, 2) @ inputs).view(-1, dim), alpha=-1)
        return loss

    def _labels(self, like: torch.Tensor) -> torch.Tensor:
        labels = torch.zeros(like.shape[-1], dtype=torch.bool, device=like.device)
        labels[0] = True
        return labels


def train_skipgram(
    model: SkipGram,
    batches: SkipGramBatches,
    *,
    epochs: int = 20,
    lr: float = 0.025,
    min_lr: float = 1e-4,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = True,
    live_plot: bool | str = "auto",
    log_every: int = 100,
) -> History:
    """Train skip-gram with plain SGD, word2vec-style: ``lr`` per pair, decaying linearly to ``min_lr``.

    A vectorised loop over :meth:`SkipGram.sgd_step` (the hand-derived gradient, applied only to
    the rows in the batch). It shows the same progress bar and live loss plot as
    ``train.Trainer`` and returns the same ``History``; notebook 03 measures why it does not go
    through the Trainer (a dense gradient for all V x dim weights at every one of thousands of
    small steps costs more than the step itself). Ctrl-C (the stop button) stops it after the
    current step; the vectors keep what they learned.

    Args:
        model: a :class:`SkipGram`.
        batches: a :class:`SkipGramBatches`; ``epochs * len(batches)`` steps are taken.
        epochs: passes over the corpus (gensim's default 5; the notebook uses 20).
        lr, min_lr: the learning rate per pair at the start and at the end (gensim's alpha and
            min_alpha).
        device: where to train (the model's device when None).
        seed: seeds the noise-word draws.
        progress: show a tqdm progress bar.
        live_plot: redraw a loss plot while training; "auto" does so in notebooks.
        log_every: steps averaged into one logged loss.

    Returns:
        ``train.History`` with ``train_loss`` (mean per pair), ``learning_rate`` and ``elapsed_s``.
    """
    if not isinstance(model, SkipGram):
        raise TypeError(f"train_skipgram expected a SkipGram model, got {type(model).__name__}")
    if not isinstance(batches, SkipGramBatches):
        raise TypeError(f"train_skipgram expected SkipGramBatches, got {type(batches).__name__}")
    epochs = validate.positive_int(epochs, "epochs", "train_skipgram")
    log_every = validate.positive_int(log_every, "log_every", "train_skipgram")
    lr = validate.number(lr, "lr", "train_skipgram", low=0, low_open=True)
    min_lr = validate.number(min_lr, "min_lr", "train_skipgram", low=0, high=lr)  # the floor of the decay
    if model.input_vectors.num_embeddings != len(batches.keep):
        raise ValueError(
            f"the model has {model.input_vectors.num_embeddings} words but the batches count "
            f"{len(batches.keep)}: build both from the same vocabulary"
        )
    from tqdm.auto import tqdm

    from course_lib.env import in_notebook
    from course_lib.train import _LivePlot

    device = torch.device(device) if device is not None else model.input_vectors.weight.device
    model.to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    total = epochs * len(batches)
    history = History()
    plot = _LivePlot() if (in_notebook() if live_plot == "auto" else bool(live_plot)) else None
    bar = tqdm(total=total, disable=not progress, unit="step", leave=True)
    running, in_window = torch.zeros((), device=device), 0
    start = time.perf_counter()
    try:
        for _ in range(epochs):
            for centres, contexts, mask in batches:
                step_lr = lr - (lr - min_lr) * history.step / total
                centres, contexts, mask = (t.to(device, non_blocking=True) for t in (centres, contexts, mask))
                negatives = model.sample_negatives((len(centres), model.negatives), generator)
                running += model.sgd_step(centres, contexts, mask, negatives, step_lr)
                in_window += 1
                history.step += 1
                if in_window == log_every or history.step == total:
                    history.train_steps.append(history.step)
                    history.train_loss.append(running.item() / in_window)
                    history.learning_rate.append(step_lr)
                    running.zero_()
                    in_window = 0
                    bar.set_postfix(loss=f"{history.train_loss[-1]:.4f}", refresh=False)
                    if plot:
                        plot.update(history)
                bar.update(1)
    except KeyboardInterrupt:
        history.interrupted = True
    finally:
        history.elapsed_s = time.perf_counter() - start
        bar.close()
    if plot:
        plot.update(history, force=True)
    state = "Interrupted" if history.interrupted else "Done"
    last = f", train loss {history.train_loss[-1]:.4f}" if history.train_loss else ""
    print(f"{state}: step {history.step} of {total}{last}, {history.elapsed_s:.1f} s.")
    return history


# --------------------------------------------------------------------------------------------
# GloVe
# --------------------------------------------------------------------------------------------


def glove_weights(x: torch.Tensor, x_max: float = 100.0, alpha: float = 0.75) -> torch.Tensor:
    """GloVe's weighting ``f(x) = (x / x_max)**alpha`` for ``x < x_max``, else 1 (same shape as x)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"glove_weights expected a tensor of counts, got {type(x).__name__}")
    x_max = validate.number(x_max, "x_max", "glove_weights", low=0, low_open=True)
    alpha = validate.number(alpha, "alpha", "glove_weights", low=0, low_open=True)
    return (x / x_max).clamp(max=1.0) ** alpha


class GloVeBatches:
    """The non-zero entries of a co-occurrence matrix, shuffled every epoch, in batches.

    A batch is ``(rows, cols, log_counts, weights)``: (B,) int64, (B,) int64, (B,) float32
    ``log X_ij`` and (B,) float32 ``f(X_ij)``.

    Args:
        counts: (V, V) scipy.sparse co-occurrence counts.
        batch_size: entries per batch.
        x_max, alpha: the weighting of :func:`glove_weights` (the GloVe paper's 100 and 0.75).
        seed: seed of the shuffle.
    """

    def __init__(self, counts: scipy.sparse.spmatrix, *, batch_size: int = 65536, x_max: float = 100.0,
                 alpha: float = 0.75, seed: int = 0) -> None:
        if not scipy.sparse.issparse(counts):
            raise TypeError(f"GloVeBatches expected a scipy.sparse count matrix, got {type(counts).__name__}")
        coo = scipy.sparse.coo_matrix(counts)
        keep = coo.data > 0
        if not keep.any():
            raise ValueError(f"GloVeBatches got a count matrix of shape {coo.shape} without a non-zero entry")
        self.rows = torch.from_numpy(coo.row[keep].astype(np.int64))
        self.cols = torch.from_numpy(coo.col[keep].astype(np.int64))
        values = torch.from_numpy(coo.data[keep]).float()
        self.log_counts = values.log()
        self.weights = glove_weights(values, x_max, alpha)
        self.batch_size = validate.positive_int(batch_size, "batch_size", "GloVeBatches")
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = torch.randperm(len(self.rows), generator=self.generator)
        for chunk in order.split(self.batch_size):
            yield self.rows[chunk], self.cols[chunk], self.log_counts[chunk], self.weights[chunk]


class GloVe(nn.Module):
    """GloVe (Pennington et al., 2014): ``w_i . c_j + b_i + b~_j`` should match ``log X_ij``.

    Four tables: word vectors ``word`` and context vectors ``context`` (V, dim), started uniform
    in [-0.5/dim, 0.5/dim] as in the reference code, and biases ``word_bias``, ``context_bias``
    (V, 1), started at 0. The word vectors are ``word + context`` (the paper's choice), see
    :attr:`vectors`.
    """

    def __init__(self, vocab_size: int, dim: int, *, seed: int = 0) -> None:
        super().__init__()
        vocab_size = validate.positive_int(vocab_size, "vocab_size", "GloVe")
        dim = validate.positive_int(dim, "dim", "GloVe")
        generator = torch.Generator().manual_seed(seed)
        self.word = nn.Embedding(vocab_size, dim)
        self.context = nn.Embedding(vocab_size, dim)
        self.word_bias = nn.Embedding(vocab_size, 1)
        self.context_bias = nn.Embedding(vocab_size, 1)
        with torch.no_grad():
            for table in (self.word, self.context):
                table.weight.copy_((torch.rand(vocab_size, dim, generator=generator) - 0.5) / dim)
            self.word_bias.weight.zero_()
            self.context_bias.weight.zero_()

    def forward(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Predicted log counts (B,) for word ids ``rows`` (B,) and context ids ``cols`` (B,)."""
        if rows.shape != cols.shape or rows.dim() != 1:
            raise ValueError(f"GloVe expected rows and cols of the same shape (B,), got {tuple(rows.shape)} and {tuple(cols.shape)}")
        dots = (self.word(rows) * self.context(cols)).sum(-1)
        return dots + self.word_bias(rows)[:, 0] + self.context_bias(cols)[:, 0]

    @property
    def vectors(self) -> torch.Tensor:
        """The word vectors ``word + context``, (V, dim), detached, on the CPU."""
        return (self.word.weight + self.context.weight).detach().cpu()


def glove_loss(model: GloVe, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """GloVe's weighted least squares on a batch from :class:`GloVeBatches` (a ``Trainer`` loss_fn).

    ``mean_ij f(X_ij) (w_i . c_j + b_i + b~_j - log X_ij)^2``.
    """
    rows, cols, log_counts, weights = batch
    return (weights * (model(rows, cols) - log_counts) ** 2).mean()


# --------------------------------------------------------------------------------------------
# Similarity, neighbours, analogies
# --------------------------------------------------------------------------------------------


def _unit_rows(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of ``a`` (n, d) with every row of ``b`` (m, d): (n, m).

    ``cos(x, y) = x . y / (|x| |y|)``: 1 for the same direction, 0 for orthogonal vectors. A
    zero vector has cosine 0 with everything.
    """
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, torch.Tensor) or value.dim() != 2:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"cosine_similarity expected {name} of shape (n, d), got {shape}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"cosine_similarity expected rows of the same size, got {a.shape[1]} and {b.shape[1]}")
    return _unit_rows(a.float()) @ _unit_rows(b.float()).T


def nearest_neighbours(vectors: torch.Tensor, query: int, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` rows of ``vectors`` (V, d) closest in cosine to row ``query``, the query left out.

    Returns:
        ``(ids, similarities)``: (k,) int64 ids, most similar first, and their (k,) cosines.
    """
    if not isinstance(vectors, torch.Tensor) or vectors.dim() != 2:
        raise ValueError("nearest_neighbours expected vectors of shape (V, d)")
    query = validate.positive_int(query, "query", "nearest_neighbours", minimum=0, maximum=len(vectors) - 1)
    k = validate.positive_int(k, "k", "nearest_neighbours")
    if k >= len(vectors):
        raise ValueError(f"nearest_neighbours expected k < V = {len(vectors)}, got {k}")
    similarity = cosine_similarity(vectors[int(query)][None], vectors)[0]
    similarity[int(query)] = -math.inf
    values, ids = similarity.topk(k)
    return ids, values


class WordVectors:
    """Word vectors with their vocabulary: look-ups, neighbours, analogies.

    Args:
        vocab: the :class:`Vocabulary`.
        vectors: (V, dim) tensor, row i the vector of ``vocab.words[i]``.

    ``wv["king"]`` is a vector; ``wv.nearest("king")``, ``wv.analogy("man", "king", "woman")``
    and ``wv.similarity("cat", "dog")`` use cosine similarity. Unknown words raise
    :class:`UnknownWordError` saying so.
    """

    def __init__(self, vocab: Vocabulary, vectors: torch.Tensor) -> None:
        if not isinstance(vocab, Vocabulary):
            raise TypeError(f"WordVectors expected a Vocabulary, got {type(vocab).__name__}")
        if not isinstance(vectors, torch.Tensor) or vectors.dim() != 2 or len(vectors) != len(vocab):
            shape = tuple(vectors.shape) if isinstance(vectors, torch.Tensor) else type(vectors).__name__
            raise ValueError(f"WordVectors expected vectors of shape ({len(vocab)}, dim), one row per word; got {shape}")
        if not torch.isfinite(vectors).all():
            raise ValueError("WordVectors got vectors with inf or nan: did training diverge?")
        self.vocab = vocab
        self.vectors = vectors.detach().float().cpu()
        self.unit = _unit_rows(self.vectors)

    @classmethod
    def from_gensim(cls, keyed_vectors: Any) -> WordVectors:
        """Wrap gensim's ``KeyedVectors`` (``model.wv``) so it is evaluated by the same code."""
        words = list(keyed_vectors.index_to_key)
        counts = [max(1, int(keyed_vectors.get_vecattr(w, "count"))) for w in words]
        return cls(Vocabulary(words, counts), torch.from_numpy(np.asarray(keyed_vectors.vectors)).float())

    def __len__(self) -> int:
        return len(self.vocab)

    def __contains__(self, word: object) -> bool:
        return word in self.vocab

    def __getitem__(self, word: str) -> torch.Tensor:
        return self.vectors[self.vocab[word]]

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words."""
        return float(self.unit[self.vocab[a]] @ self.unit[self.vocab[b]])

    def nearest(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` words closest to ``word`` in cosine, itself left out, as (word, cosine) pairs."""
        ids, sims = nearest_neighbours(self.vectors, self.vocab[word], k)
        return [(self.vocab.words[i], float(s)) for i, s in zip(ids.tolist(), sims.tolist())]

    def analogy(self, a: str, b: str, c: str, k: int = 5) -> list[tuple[str, float]]:
        """"``a`` is to ``b`` as ``c`` is to ?": the words closest to ``b - a + c`` (3CosAdd).

        Unit vectors are combined and the three question words are left out, as in Mikolov et al.
        and gensim's ``most_similar(positive=[b, c], negative=[a])``.
        """
        ids = [self.vocab[w] for w in (a, b, c)]
        query = self.unit[ids[1]] - self.unit[ids[0]] + self.unit[ids[2]]
        scores = self.unit @ _unit_rows(query)
        scores[ids] = -math.inf
        values, best = scores.topk(min(k, len(self.vocab) - 3))
        return [(self.vocab.words[i], float(s)) for i, s in zip(best.tolist(), values.tolist())]

    def __repr__(self) -> str:
        return f"WordVectors({len(self.vocab):,} words x {self.vectors.shape[1]} dims)"


@dataclass(frozen=True)
class SimilarityResult:
    """Spearman correlation between cosine similarities and human scores.

    ``pairs_used`` pairs had both words in the vocabulary; ``pairs_oov`` did not and were left out
    (so two models are only comparable on the same vocabulary, or on the pairs both know).
    """

    spearman: float
    pairs_used: int
    pairs_oov: int


@dataclass(frozen=True)
class AnalogyResult:
    """Google-analogy accuracy (3CosAdd, top-1) over the ``answered`` questions whose four words
    are all in the vocabulary; ``skipped`` questions had an unknown word."""

    accuracy: float
    correct: int
    answered: int
    skipped: int


@dataclass(frozen=True)
class Evaluation:
    """The standard evaluation of word vectors: two similarity sets and the analogies."""

    wordsim353: SimilarityResult
    simlex999: SimilarityResult
    analogies: AnalogyResult

    def row(self) -> dict[str, Any]:
        """A flat dict for a comparison table."""
        return {
            "WordSim353 Spearman": round(self.wordsim353.spearman, 3),
            "WS353 pairs OOV": self.wordsim353.pairs_oov,
            "SimLex-999 Spearman": round(self.simlex999.spearman, 3),
            "SimLex pairs OOV": self.simlex999.pairs_oov,
            "analogy accuracy": round(self.analogies.accuracy, 3),
            "analogies answered": self.analogies.answered,
        }


def _check_word_vectors(wv: Any, caller: str) -> WordVectors:
    if not isinstance(wv, WordVectors):
        raise TypeError(f"{caller} expected WordVectors, got {type(wv).__name__}")
    return wv


def evaluate_similarity(wv: WordVectors, pairs: Sequence[tuple[str, str, float]]) -> SimilarityResult:
    """Spearman correlation of cosine similarity with human scores, over the in-vocabulary pairs.

    Words are lower-cased to match :func:`tokenize`; pairs with a word outside the vocabulary are
    counted in ``pairs_oov`` and left out.

    Args:
        wv: the :class:`WordVectors`.
        pairs: ``(word1, word2, score)`` tuples, e.g. ``data.load_word_similarity("wordsim353")``.

    Raises:
        ValueError: fewer than 3 pairs are in the vocabulary (no meaningful correlation).
    """
    wv = _check_word_vectors(wv, "evaluate_similarity")
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise TypeError(f"evaluate_similarity expected a list of (word1, word2, score), got {type(pairs).__name__}")
    firsts, seconds, gold = [], [], []
    for item in pairs:
        if not (isinstance(item, (tuple, list)) and len(item) == 3):
            raise ValueError(f"evaluate_similarity expected (word1, word2, score) tuples, got {item!r}")
        a, b, score = str(item[0]).lower(), str(item[1]).lower(), float(item[2])
        if a in wv.vocab and b in wv.vocab:
            firsts.append(wv.vocab[a])
            seconds.append(wv.vocab[b])
            gold.append(score)
    used = len(gold)
    if used < 3:
        raise ValueError(
            f"only {used} of {len(pairs)} pairs have both words in the vocabulary of {len(wv.vocab):,} "
            "words: need at least 3 for a correlation"
        )
    cosines = (wv.unit[firsts] * wv.unit[seconds]).sum(-1).numpy()
    rho = float(spearmanr(cosines, np.asarray(gold)).statistic)
    return SimilarityResult(spearman=rho, pairs_used=used, pairs_oov=len(pairs) - used)


def evaluate_analogies(
    wv: WordVectors,
    questions: Mapping[str, Sequence[tuple[str, str, str, str]]] | Sequence[tuple[str, str, str, str]],
    *,
    batch_size: int = 1024,
) -> AnalogyResult:
    """Top-1 accuracy on "a is to b as c is to d" questions, by 3CosAdd over the whole vocabulary.

    For each question whose four words are all known: the answer is the word closest in cosine
    to ``unit(b) - unit(a) + unit(c)``, the three question words left out (as gensim's
    ``evaluate_word_analogies``). Vectorised in batches of questions.

    Args:
        wv: the :class:`WordVectors`.
        questions: a dict of sections (``data.load_analogies()``) or a list of 4-tuples.
    """
    wv = _check_word_vectors(wv, "evaluate_analogies")
    if isinstance(questions, Mapping):
        items = [q for section in questions.values() for q in section]
    elif isinstance(questions, Sequence) and not isinstance(questions, (str, bytes)):
        items = list(questions)
    else:
        raise TypeError(f"evaluate_analogies expected a dict of sections or a list of 4-tuples, got {type(questions).__name__}")
    known = []
    for q in items:
        if not (isinstance(q, (tuple, list)) and len(q) == 4):
            raise ValueError(f"evaluate_analogies expected (a, b, c, d) tuples, got {q!r}")
        words = [str(w).lower() for w in q]
        if all(w in wv.vocab for w in words):
            known.append([wv.vocab[w] for w in words])
    if not known:
        return AnalogyResult(accuracy=0.0, correct=0, answered=0, skipped=len(items))
    ids = torch.tensor(known)  # (n, 4)
    correct = 0
    for chunk in ids.split(batch_size):
        query = wv.unit[chunk[:, 1]] - wv.unit[chunk[:, 0]] + wv.unit[chunk[:, 2]]
        scores = query @ wv.unit.T  # (n, V); the query's norm does not change the arg-max
        scores.scatter_(1, chunk[:, :3], -math.inf)
        correct += int((scores.argmax(dim=1) == chunk[:, 3]).sum())
    return AnalogyResult(accuracy=correct / len(known), correct=correct, answered=len(known), skipped=len(items) - len(known))


def evaluate(wv: WordVectors) -> Evaluation:
    """WordSim353, SimLex-999 and the Google analogies, loaded from ``course_lib.data``."""
    from course_lib import data

    wv = _check_word_vectors(wv, "evaluate")
    return Evaluation(
        wordsim353=evaluate_similarity(wv, data.load_word_similarity("wordsim353")),
        simlex999=evaluate_similarity(wv, data.load_word_similarity("simlex999")),
        analogies=evaluate_analogies(wv, data.load_analogies()),
    )


def pca_2d(vectors: torch.Tensor) -> torch.Tensor:
    """Project rows onto their two first principal components, for a 2-D map.

    The rows are centred and projected on the two right singular vectors with the largest
    singular values; each axis' sign is fixed (largest loading positive), so maps are repeatable.

    Args:
        vectors: (n, d) with n >= 2.

    Returns:
        float32 tensor (n, 2).
    """
    if not isinstance(vectors, torch.Tensor) or vectors.dim() != 2 or len(vectors) < 2:
        shape = tuple(vectors.shape) if isinstance(vectors, torch.Tensor) else type(vectors).__name__
        raise ValueError(f"pca_2d expected at least 2 vectors, shape (n, d); got {shape}")
    centred = vectors.double() - vectors.double().mean(dim=0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    axes = vh[:2]  # (2, d)
    signs = torch.sign(axes.gather(1, axes.abs().argmax(dim=1, keepdim=True)))
    signs[signs == 0] = 1
    return (centred @ (axes * signs).T).float()
