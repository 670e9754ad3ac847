"""Tokenizers: from raw text to integer ids and back.

Three tokenizers built from scratch, with one interface (``train``, ``encode``, ``decode``,
``tokenize``, ``vocab_size``):

* :class:`CharTokenizer`: one token per character, ``<unk>`` for characters never seen.
* :class:`WordTokenizer`: words and punctuation marks split by a regular expression, ``<unk>``
  for words outside the vocabulary (optionally capped by ``max_vocab`` / ``min_count``).
* :class:`BPETokenizer`: byte-level byte-pair encoding as in GPT-2. It works on the UTF-8 bytes
  of the text, so *any* string (accents, Greek, Chinese, emoji) round-trips exactly and no token
  is ever unknown; ``train`` learns merges greedily by pair frequency.

The steps of BPE are public so a notebook can build them and a checker can test a learner's
version: :func:`count_pairs`, :func:`merge_pair`, :func:`bpe_encode_word` and the trainer
:func:`learn_merges`. Their symbols are ``str`` (for readable toy examples) or ``bytes`` (what
:class:`BPETokenizer` uses); a merged token is the concatenation of its two parts.

Around Hugging Face ``tokenizers`` (the Rust library behind ``transformers``):

* :func:`train_hf_bpe`: a GPT-2 style byte-level BPE with ``<|endoftext|>`` and a pad token;
* :func:`train_hf_wordpiece`: a BERT style WordPiece with ``[PAD] [UNK] [CLS] [SEP] [MASK]`` and
  the ``[CLS] A [SEP] B [SEP]`` template with ``token_type_ids``;
* :func:`course_bpe_tokenizer` and :func:`course_wordpiece_tokenizer`: those two trained on the
  training split of the course corpus, cached on disk, so the GPT and BERT notebooks use exactly
  the same tokenizers. Both return a ``transformers.PreTrainedTokenizerFast``.

Example::

    from course_lib import tokenizers as tok
    bpe = tok.BPETokenizer.train(["low lower newest widest"] * 10, vocab_size=270)
    ids = bpe.encode("lowest 😀")
    assert bpe.decode(ids) == "lowest 😀"

Why one module of about 1,400 lines: the three tokenizers share one interface and the BPE steps the
notebook builds, and the Hugging Face tokenizers reuse the course's cache; each part is a section
that reads on its own, and the fast BPE trainer sits apart from the teaching loop it equals.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import operator
import os
import pathlib
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from numbers import Integral
from typing import Any

from course_lib import _validate as validate
from course_lib._files import atomic_write

__all__ = [
    "UNK_TOKEN",
    "END_OF_TEXT",
    "PAD_TOKEN",
    "BERT_SPECIAL_TOKENS",
    "TOKENIZER_VERSION",
    "DEFAULT_BPE_VOCAB_SIZE",
    "DEFAULT_WORDPIECE_VOCAB_SIZE",
    "WORD_PATTERN",
    "PRETOKENIZE_PATTERN",
    "split_words",
    "pretokenize",
    "count_pairs",
    "merge_pair",
    "bpe_encode_word",
    "learn_merges",
    "Tokenizer",
    "CharTokenizer",
    "WordTokenizer",
    "BPETokenizer",
    "bytes_to_unicode",
    "GPT2_BYTE_ORDER",
    "hf_bpe_merges",
    "train_hf_bpe",
    "train_hf_wordpiece",
    "wrap_hf_bpe",
    "wrap_hf_wordpiece",
    "course_training_texts",
    "course_bpe_tokenizer",
    "course_wordpiece_tokenizer",
]

UNK_TOKEN = "<unk>"
END_OF_TEXT = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
BERT_SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# Bump whenever the training recipe of the course tokenizers changes: it is part of their cache
# key, so a tokenizer cached by older code is never read back.
TOKENIZER_VERSION = 1
DEFAULT_BPE_VOCAB_SIZE = 8192
DEFAULT_WORDPIECE_VOCAB_SIZE = 8192

# Words (letters/digits, with inner hyphens or apostrophes: "well-known", "don't") or one
# punctuation mark or symbol. Every non-space character falls in one of the two.
WORD_PATTERN = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]")

# GPT-2's pre-tokenizer, written for Python's ``re`` (which lacks \p{L} and \p{N}): English
# contractions, an optional space + letters, an optional space + digits, an optional space +
# other symbols, then whitespace. A space sticks to the word after it (" the"). The pieces
# always concatenate back to the text: every character is a space, letter, digit or other.
PRETOKENIZE_PATTERN = re.compile(
    r"'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"
)

_BYTE_TOKENS: tuple[bytes, ...] = tuple(bytes([i]) for i in range(256))


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from byte values to printable characters (``" "`` -> ``"Ġ"``, ``"\\n"`` -> ``"Ċ"``).

    Byte-level BPE in Hugging Face (and GPT-2's files) store tokens as strings with each byte
    shown as one of these characters; this is how to read them.

    Returns:
        dict mapping each of the 256 byte values to a one-character str.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


# The 256 bytes in GPT-2's order (printable ones first): the base ids of byte-level BPE in GPT-2's
# files and in Hugging Face's ByteLevel BPE, and so in BPETokenizer.
GPT2_BYTE_ORDER: tuple[int, ...] = tuple(sorted(range(256), key=bytes_to_unicode().__getitem__))


# --------------------------------------------------------------------------------------------
# Input checks shared by everything below
# --------------------------------------------------------------------------------------------


def _check_text(text: Any, caller: str) -> str:
    if not isinstance(text, str):
        hint = " (decode bytes first: data.decode('utf-8'))" if isinstance(text, bytes) else ""
        raise TypeError(f"{caller} expects a str, got {type(text).__name__}{hint}")
    return text


def _check_texts(texts: Any, caller: str) -> list[str]:
    """A str or an iterable of str -> a list of str with at least one non-empty text."""
    if isinstance(texts, str):
        texts = [texts]
    elif isinstance(texts, bytes) or not isinstance(texts, Iterable):
        raise TypeError(
            f"{caller} expects a str or a list of str (the training texts), "
            f"got {type(texts).__name__}"
        )
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"{caller} expects every training text to be a str, but item {i} is a "
                f"{type(text).__name__}"
            )
    if not any(texts):
        raise ValueError(
            f"{caller} got an empty corpus ({len(texts)} texts, all empty): a tokenizer needs "
            "some text to learn its vocabulary from, e.g. data.corpus_sentences(corpus.train)"
        )
    return texts


def _check_int(value: Any, name: str, caller: str, minimum: int, why: str = "") -> int:
    """``value`` as an int >= ``minimum``, checked by ``course_lib._validate.positive_int``.

    Something that is not a number at all (``300.0``, ``"8192"``) is a ``TypeError``; a bool or an
    int below ``minimum`` is a ``ValueError``, with ``why`` (the reason for the minimum) appended.
    """
    if not isinstance(value, Integral):  # bool is Integral: positive_int rejects it as a ValueError
        raise TypeError(
            f"{caller} expected {name} to be an int, got {type(value).__name__} {value!r}"
        )
    try:
        return validate.positive_int(value, name, caller, minimum=minimum)
    except ValueError as error:
        if not why:
            raise
        raise ValueError(f"{error} ({why})") from None


def _as_id_list(ids: Any, vocab_size: int) -> list[int]:
    """Token ids (list, tuple, 1-D tensor or array of ints) -> list[int], each in range."""
    if isinstance(ids, (str, bytes)):
        raise TypeError(
            f"decode expects a sequence of token ids (ints), got {type(ids).__name__} {ids!r:.40}"
        )
    if hasattr(ids, "tolist") and hasattr(ids, "ndim"):  # torch tensor or numpy array
        if ids.ndim != 1:
            raise ValueError(
                "decode expects a 1-D sequence of ids (one text); got an array of shape "
                f"{tuple(ids.shape)}: decode each row separately"
            )
        ids = ids.tolist()
    if not isinstance(ids, Iterable):
        raise TypeError(f"decode expects a sequence of token ids (ints), got {type(ids).__name__}")
    out = []
    for position, token_id in enumerate(ids):
        if isinstance(token_id, bool):  # an int to Python, but True is no token id
            raise ValueError(
                f"decode expects integer token ids, but position {position} holds a bool, "
                f"{token_id!r}"
            )
        try:
            token_id = operator.index(token_id)
        except TypeError:
            raise TypeError(
                f"decode expects integer token ids, but position {position} holds "
                f"{type(token_id).__name__} {token_id!r}"
            ) from None
        if not 0 <= token_id < vocab_size:
            raise ValueError(
                f"token id {token_id} at position {position} is out of range: this tokenizer's "
                f"ids run from 0 to {vocab_size - 1} (vocab_size={vocab_size})"
            )
        out.append(token_id)
    return out


# --------------------------------------------------------------------------------------------
# Splitting text into words
# --------------------------------------------------------------------------------------------


def split_words(text: str) -> list[str]:
    """Split text into words and punctuation marks; whitespace is dropped.

    ``"Don't panic, it's well-known!"`` -> ``["Don't", "panic", ",", "it's", "well-known", "!"]``.

    Args:
        text: a str.

    Returns:
        list of str, the words (runs of letters/digits, with inner ``-`` or ``'``) and single
        punctuation or symbol characters, in order.
    """
    return WORD_PATTERN.findall(_check_text(text, "split_words"))


def pretokenize(text: str) -> list[str]:
    """Cut text into the pieces BPE works within, as GPT-2 does; nothing is dropped.

    A space sticks to the word after it, and letters, digits and other symbols are kept apart,
    so BPE merges never cross a word boundary: ``"Hello world, 2024!"`` ->
    ``["Hello", " world", ",", " 2024", "!"]``. ``"".join(pretokenize(t)) == t`` always.

    Args:
        text: a str.

    Returns:
        list of str pieces that concatenate back to ``text``.
    """
    return PRETOKENIZE_PATTERN.findall(_check_text(text, "pretokenize"))


# --------------------------------------------------------------------------------------------
# The steps of byte-pair encoding
# --------------------------------------------------------------------------------------------


def _check_word_freqs(word_freqs: Any, caller: str) -> Mapping:
    if not isinstance(word_freqs, Mapping):
        raise TypeError(
            f"{caller} expects a dict mapping words (tuples of symbols) to counts, e.g. "
            f"{{('l', 'o', 'w'): 5}}; got {type(word_freqs).__name__}"
        )
    for word, freq in word_freqs.items():
        if not isinstance(word, tuple):
            raise TypeError(
                f"{caller}: each word must be a tuple of symbols such as ('l', 'o', 'w'), "
                f"got {type(word).__name__} {word!r:.40}"
            )
        validate.positive_int(freq, f"the count of {word!r:.40}", caller, minimum=0)
    return word_freqs


def count_pairs(word_freqs: Mapping[tuple, int]) -> Counter:
    """Count adjacent symbol pairs inside each word, weighted by the word's frequency.

    Pairs are counted within words only (never across two words), at every position (``aaa``
    holds the pair ``(a, a)`` twice).

    Args:
        word_freqs: dict mapping a word, as a tuple of symbols (``("l", "o", "w")``), to how
            often it occurs.

    Returns:
        ``collections.Counter`` mapping ``(left, right)`` to its total count.

    Example: ``count_pairs({("l","o","w"): 5, ("l","o"): 2})`` ->
    ``Counter({("l","o"): 7, ("o","w"): 5})``.

    Built in notebook 02, section 4.
    """
    counts: Counter = Counter()
    for word, freq in _check_word_freqs(word_freqs, "count_pairs").items():
        for pair in zip(word, word[1:]):
            counts[pair] += freq
    return counts


def _merge(word: Sequence, left: Any, right: Any, new_token: Any) -> tuple:
    out = []
    i, n = 0, len(word)
    while i < n:
        if i + 1 < n and word[i] == left and word[i + 1] == right:
            out.append(new_token)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def merge_pair(word: tuple, pair: tuple, new_token: Any) -> tuple:
    """Replace every occurrence of ``pair`` in ``word`` by ``new_token``, scanning left to right.

    Occurrences do not overlap: ``merge_pair(("a","a","a"), ("a","a"), "aa")`` gives
    ``("aa", "a")``. The input is not changed.

    Args:
        word: tuple of symbols.
        pair: the two adjacent symbols to merge, ``(left, right)``.
        new_token: the symbol that replaces them (usually ``left + right``).

    Returns:
        a new tuple of symbols, never longer than ``word``.

    Built in notebook 02, section 4.
    """
    if not isinstance(word, (tuple, list)):
        raise TypeError(
            f"merge_pair expects the word as a tuple of symbols, got {type(word).__name__}"
        )
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(f"merge_pair expects pair = (left, right), got {pair!r}")
    return _merge(word, pair[0], pair[1], new_token)


def _check_merges(merges: Any, caller: str) -> list[tuple]:
    if isinstance(merges, (str, bytes)) or not isinstance(merges, Iterable):
        raise TypeError(
            f"{caller} expects merges as a list of (left, right) pairs, got {type(merges).__name__}"
        )
    merges = [tuple(m) if isinstance(m, (tuple, list)) else m for m in merges]
    for m in merges:
        if not isinstance(m, tuple) or len(m) != 2:
            raise TypeError(f"{caller}: every merge must be a pair (left, right), got {m!r:.40}")
    return merges


def _bpe_with_ranks(symbols: tuple, ranks: Mapping[tuple, int]) -> tuple:
    """Apply merges to a word: repeatedly merge the adjacent pair learned earliest."""
    while len(symbols) > 1:
        best_rank, best = None, None
        for pair in zip(symbols, symbols[1:]):
            rank = ranks.get(pair)
            if rank is not None and (best_rank is None or rank < best_rank):
                best_rank, best = rank, pair
        if best is None:
            break
        symbols = _merge(symbols, best[0], best[1], best[0] + best[1])
    return symbols


def bpe_encode_word(word: Sequence, merges: Sequence[tuple]) -> tuple:
    """Split one word into BPE tokens by applying the learned merges in the order they were learned.

    The result equals applying each merge of ``merges`` in turn, every occurrence at once, as
    training did; this implementation instead repeatedly merges the pair with the earliest
    merge (GPT-2's loop), which is the same and faster.

    Args:
        word: the word as a sequence of base symbols, e.g. ``("l","o","w","e","s","t")`` or a
            ``str`` (its characters); symbols are ``str`` or ``bytes``.
        merges: list of ``(left, right)`` pairs in training order; a merged token is
            ``left + right``.

    Returns:
        tuple of tokens whose concatenation is the word, e.g. ``("low", "est")``.

    Built in notebook 02, section 4.
    """
    if isinstance(word, str):
        word = tuple(word)
    if not isinstance(word, Sequence) or isinstance(word, bytes):
        raise TypeError(
            f"bpe_encode_word expects a tuple of symbols or a str, got {type(word).__name__}"
        )
    ranks: dict[tuple, int] = {}
    for rank, pair in enumerate(_check_merges(merges, "bpe_encode_word")):
        ranks.setdefault(pair, rank)
    return _bpe_with_ranks(tuple(word), ranks)


def learn_merges(
    word_freqs: Mapping[tuple, int],
    num_merges: int,
    *,
    min_frequency: int = 2,
    alphabet: Sequence | None = None,
    fast: bool = False,
) -> list[tuple]:
    """Learn BPE merges: count the adjacent pairs, merge the most frequent everywhere, repeat.

    Each step counts the pairs inside every word (:func:`count_pairs`), takes the most frequent,
    records it, and merges it in every word (:func:`merge_pair`, with ``left + right`` as the new
    token). Ties go to the pair with the smallest token ids: the base symbols are numbered in
    ``alphabet`` order and each new token gets the next id (Hugging Face's rule; any fixed rule
    makes training deterministic). It stops after ``num_merges`` merges, when every word is one
    token, or when the best pair occurs fewer than ``min_frequency`` times.

    This loop recounts every pair at every step: clear, and quick enough for a toy corpus.
    ``fast=True`` gives the same merges in the same order, recounting only the words a merge
    changed (what :class:`BPETokenizer` does), so thousands of merges on a real corpus take seconds.

    Args:
        word_freqs: dict mapping words, as tuples of ``str`` or of ``bytes`` symbols, to counts.
        num_merges: how many merges to learn at most (an int >= 0).
        min_frequency: stop early when the best pair occurs fewer times than this.
        alphabet: the base symbols in id order; ``None``: the symbols of the words, sorted.
        fast: learn them incrementally (same result, much faster on large corpora).

    Returns:
        list of ``(left, right)`` pairs in the order learned (at most ``num_merges``).

    Example: on ``{("l","o","w"): 5, ("n","e","w","e","s","t"): 6, ("w","i","d","e","s","t"): 3}``
    the first merges are ``("e","s")`` (9, tied with ``("s","t")``; ``"e"`` has the smaller id),
    then ``("es","t")``.

    Built in notebook 02, section 4.
    """
    alphabet = _check_learn_merges_args(word_freqs, num_merges, min_frequency, alphabet)
    if fast:
        learned = _learn_merges_fast(word_freqs, min_frequency, alphabet)
        return [pair for pair, _ in itertools.islice(learned, num_merges)]
    ids: dict[Any, int] = {}  # token -> id, for the tie rule: the alphabet, then new tokens as made
    for symbol in alphabet:
        ids.setdefault(symbol, len(ids))
    merges: list[tuple] = []
    for _ in range(num_merges):
        pairs = count_pairs(word_freqs)  # {(left, right): count}
        if not pairs:
            break  # every word is a single token
        # the most frequent pair; a tie goes to the pair with the smallest ids
        best = min(pairs, key=lambda p: (-pairs[p], ids[p[0]], ids[p[1]]))
        if pairs[best] < min_frequency:
            break  # a pair this rare is not worth a token
        new_token = best[0] + best[1]
        ids.setdefault(new_token, len(ids))
        merges.append(best)
        merged: Counter = Counter()  # two spellings of a word can merge into one: add their counts
        for word, freq in word_freqs.items():
            merged[merge_pair(word, best, new_token)] += freq
        word_freqs = merged
    return merges


def _check_learn_merges_args(
    word_freqs: Any, num_merges: Any, min_frequency: Any, alphabet: Any
) -> list:
    """Check :func:`learn_merges`'s arguments; return the alphabet (sorted symbols if ``None``)."""
    _check_word_freqs(word_freqs, "learn_merges")
    _check_int(num_merges, "num_merges", "learn_merges", 0)
    _check_int(min_frequency, "min_frequency", "learn_merges", 1)
    return _check_alphabet(word_freqs, alphabet, "learn_merges")


def _check_alphabet(word_freqs: Mapping[tuple, int], alphabet: Any, caller: str) -> list:
    symbols = {symbol for word in word_freqs for symbol in word}
    kinds = {type(symbol) for symbol in symbols}
    if not kinds <= {str, bytes} or len(kinds) > 1:
        names = sorted(k.__name__ for k in kinds)
        raise TypeError(
            f"{caller} needs symbols that are all str or all bytes (a merged token is left + "
            f"right), got symbols of types {names}"
        )
    if alphabet is None:
        return sorted(symbols)
    if isinstance(alphabet, (str, bytes)) or not isinstance(alphabet, Iterable):
        raise TypeError(
            f"{caller}: alphabet must be a list of symbols, got {type(alphabet).__name__}"
        )
    alphabet = list(alphabet)
    missing = symbols - set(alphabet)
    if missing:
        raise ValueError(
            f"{caller}: the alphabet must hold every symbol of the words; missing "
            f"{sorted(missing)[:5]!r}"
        )
    return alphabet


# The fast version of learn_merges's loop, for real corpora: used by BPETokenizer.train and by
# learn_merges(fast=True). Private, and not what the notebook builds.


def _learn_merges_fast(
    word_freqs: Mapping[tuple, int], min_frequency: int, alphabet: Sequence
) -> Iterator[tuple[tuple, int]]:
    """:func:`learn_merges` made incremental: yield ``(pair, count)`` merges in training order.

    The same merges in the same order as the loop of :func:`learn_merges` (a test checks it), but
    instead of recounting every pair at every step it keeps the counts up to date: when a pair is
    merged, only the words that contain it are recounted. The most frequent pair comes from a
    heap of ``(-count, id_left, id_right)`` with stale entries skipped, so ties go to the pair whose
    tokens have the smallest ids (position in ``alphabet``, then merged tokens in the order made),
    the same rule. Arguments are not checked: the callers have done it. Stops (the caller may stop
    earlier) when no pair occurs ``min_frequency`` times.
    """
    ids: dict[Any, int] = {}
    for symbol in alphabet:
        ids.setdefault(symbol, len(ids))
    words: list[tuple] = []
    freqs: list[int] = []
    for word, freq in word_freqs.items():
        if freq > 0 and len(word) > 1:
            words.append(tuple(word))
            freqs.append(freq)
    pair_counts: dict[tuple, int] = defaultdict(int)
    where: dict[tuple, set[int]] = defaultdict(set)
    for index, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freq
            where[pair].add(index)
    heap = [(-count, ids[a], ids[b], (a, b)) for (a, b), count in pair_counts.items()]
    heapq.heapify(heap)
    while heap:
        negative_count, _, _, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -negative_count:
            continue  # a stale entry: the count changed since it was pushed
        if count < min_frequency:
            return
        yield pair, count
        left, right = pair
        new_token = left + right
        ids.setdefault(new_token, len(ids))
        changed: set[tuple] = set()
        for index in where.pop(pair, ()):
            word, freq = words[index], freqs[index]
            merged = _merge(word, left, right, new_token)
            if len(merged) == len(word):
                continue
            for old in zip(word, word[1:]):
                pair_counts[old] -= freq
                changed.add(old)
            for new in zip(merged, merged[1:]):
                pair_counts[new] += freq
                where[new].add(index)
                changed.add(new)
            words[index] = merged
        for a, b in changed:
            changed_count = pair_counts[(a, b)]
            if changed_count <= 0:
                del pair_counts[(a, b)]
            else:
                heapq.heappush(heap, (-changed_count, ids[a], ids[b], (a, b)))


# --------------------------------------------------------------------------------------------
# The from-scratch tokenizers
# --------------------------------------------------------------------------------------------


class Tokenizer:
    """The interface every course tokenizer shares.

    ``encode(text) -> list[int]``, ``decode(ids) -> str``, ``tokenize(text) -> list[str]`` (the
    tokens as readable strings), ``vocab_size`` and ``id_to_token(id)``. ``len(tokenizer)`` is
    the vocabulary size.
    """

    def encode(self, text: str) -> list[int]:  # pragma: no cover - the subclasses implement it
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:  # pragma: no cover
        raise NotImplementedError

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` as readable strings (one per id of ``encode(text)``)."""
        return [self.id_to_token(i) for i in self.encode(text)]

    def id_to_token(self, token_id: int) -> str:  # pragma: no cover
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:  # pragma: no cover
        raise NotImplementedError

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class _VocabularyTokenizer(Tokenizer):
    """A tokenizer with a list of string tokens and ``<unk>`` at id 0 (characters or words)."""

    def __init__(self, tokens: Iterable[str], unk_token: str) -> None:
        if not isinstance(unk_token, str) or not unk_token:
            raise TypeError(f"unk_token must be a non-empty str, got {unk_token!r}")
        self.unk_token = unk_token
        self.unk_id = 0
        self._tokens: list[str] = [unk_token]
        for token in tokens:
            if not isinstance(token, str):
                raise TypeError(
                    f"vocabulary entries must be str, got {type(token).__name__} {token!r}"
                )
            if token == unk_token:
                continue
            self._tokens.append(token)
        self._ids = {token: i for i, token in enumerate(self._tokens)}
        if len(self._ids) != len(self._tokens):
            raise ValueError("the vocabulary holds a token twice")

    @property
    def vocab_size(self) -> int:
        """Number of tokens, ``<unk>`` included."""
        return len(self._tokens)

    @property
    def vocab(self) -> list[str]:
        """The tokens in id order (a copy): ``vocab[i]`` is the token of id ``i``."""
        return list(self._tokens)

    def id_to_token(self, token_id: int) -> str:
        return self._tokens[_as_id_list([token_id], self.vocab_size)[0]]

    def token_to_id(self, token: str) -> int:
        """The id of ``token``, or ``unk_id`` (0) when it is not in the vocabulary."""
        return self._ids.get(_check_text(token, "token_to_id"), self.unk_id)

    def _pieces(self, text: str) -> list[str]:  # pragma: no cover
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``: a list of ints in ``[0, vocab_size)``, 0 for unknown pieces."""
        get = self._ids.get
        return [get(piece, 0) for piece in self._pieces(_check_text(text, "encode"))]

    def tokenize(self, text: str) -> list[str]:
        """The pieces of ``text``, with ``unk_token`` in place of the unknown ones."""
        ids = self._ids
        unk = self.unk_token
        return [p if p in ids else unk for p in self._pieces(_check_text(text, "tokenize"))]

    def unknown(self, text: str) -> list[str]:
        """The pieces of ``text`` that are not in the vocabulary (they encode to ``<unk>``)."""
        return [p for p in self._pieces(_check_text(text, "unknown")) if p not in self._ids]


class CharTokenizer(_VocabularyTokenizer):
    """One token per Unicode character; characters never seen in training become ``<unk>``.

    Ids: 0 is ``<unk>``, then the training characters sorted by code point. Text made of known
    characters round-trips exactly: ``decode(encode(text)) == text``.

    Built in notebook 02, section 2.
    """

    def __init__(self, chars: Iterable[str], *, unk_token: str = UNK_TOKEN) -> None:
        chars = sorted(set(chars))
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"CharTokenizer needs single characters, got {c!r}")
        super().__init__(chars, unk_token)

    @classmethod
    def train(cls, texts: str | Iterable[str], *, unk_token: str = UNK_TOKEN) -> CharTokenizer:
        """Build the vocabulary from every character of ``texts`` (a str or a list of str)."""
        texts = _check_texts(texts, "CharTokenizer.train")
        chars: set[str] = set()
        for text in texts:
            chars.update(text)
        return cls(chars, unk_token=unk_token)

    def _pieces(self, text: str) -> list[str]:
        return list(text)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (a list or 1-D tensor of ints); ``<unk>`` ids give ``unk_token``."""
        tokens = self._tokens
        return "".join(tokens[i] for i in _as_id_list(ids, self.vocab_size))


class WordTokenizer(_VocabularyTokenizer):
    """Words and punctuation marks (see :func:`split_words`); other words become ``<unk>``.

    Ids: 0 is ``<unk>``, then the words from most to least frequent (ties alphabetical).
    Whitespace is not kept: ``decode`` joins tokens with single spaces, so
    ``decode(encode("Hi, you!")) == "Hi , you !"``: a word tokenizer cannot give the text back.

    Built in notebook 02, section 3.
    """

    def __init__(self, words: Iterable[str], *, unk_token: str = UNK_TOKEN) -> None:
        super().__init__(words, unk_token)

    @classmethod
    def train(
        cls,
        texts: str | Iterable[str],
        *,
        max_vocab: int | None = None,
        min_count: int = 1,
        unk_token: str = UNK_TOKEN,
    ) -> WordTokenizer:
        """Build the vocabulary from the words of ``texts`` (a str or a list of str).

        Args:
            texts: training text(s).
            max_vocab: keep at most this many tokens, ``<unk>`` included (the most frequent
                words); ``None`` keeps every word.
            min_count: keep only words seen at least this many times.
            unk_token: the token for every other word.

        Returns:
            a :class:`WordTokenizer`; its ``word_counts`` attribute holds the training counts.
        """
        texts = _check_texts(texts, "WordTokenizer.train")
        if max_vocab is not None:
            _check_int(max_vocab, "max_vocab", "WordTokenizer.train", 2)
        _check_int(min_count, "min_count", "WordTokenizer.train", 1)
        counts: Counter = Counter()
        for text in texts:
            counts.update(split_words(text))
        if not counts:
            raise ValueError(
                "WordTokenizer.train found no words in the corpus (only whitespace): "
                "expected text with at least one word"
            )
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        words = [w for w, c in ranked if c >= min_count and w != unk_token]
        if max_vocab is not None:
            words = words[: max_vocab - 1]
        tokenizer = cls(words, unk_token=unk_token)
        tokenizer.word_counts = counts
        return tokenizer

    def _pieces(self, text: str) -> list[str]:
        return WORD_PATTERN.findall(text)

    def decode(self, ids: Sequence[int]) -> str:
        """The tokens of ``ids`` joined by single spaces (the original spacing is lost)."""
        tokens = self._tokens
        return " ".join(tokens[i] for i in _as_id_list(ids, self.vocab_size))


def _split_special(text: str, pattern: re.Pattern | None) -> list[tuple[str, bool]]:
    """Cut text into (chunk, is_special) around special-token strings."""
    if pattern is None:
        return [(text, False)] if text else []
    out = []
    position = 0
    for match in pattern.finditer(text):
        if match.start() > position:
            out.append((text[position : match.start()], False))
        out.append((match.group(0), True))
        position = match.end()
    if position < len(text):
        out.append((text[position:], False))
    return out


def _to_bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"the text holds a character that UTF-8 cannot encode ({error.object[error.start]!r} "
            f"at position {error.start}, a lone surrogate): expected valid Unicode text"
        ) from None


def _check_bpe_train_args(
    texts: Any, vocab_size: Any, min_frequency: Any, special_tokens: Any
) -> tuple[list[str], list[str]]:
    """Check :meth:`BPETokenizer.train`'s arguments; return the texts and the distinct specials."""
    texts = _check_texts(texts, "BPETokenizer.train")
    if isinstance(special_tokens, str):
        special_tokens = [special_tokens]
    special_tokens = list(dict.fromkeys(special_tokens))
    _check_int(
        vocab_size, "vocab_size", "BPETokenizer.train", 256 + len(special_tokens),
        why=f"the 256 byte values every byte-level BPE starts from + {len(special_tokens)} "
        "special token(s)",
    )
    _check_int(min_frequency, "min_frequency", "BPETokenizer.train", 1)
    return texts, special_tokens


class BPETokenizer(Tokenizer):
    """Byte-level byte-pair encoding, as in GPT-2.

    The base vocabulary is the 256 byte values, so every string can be encoded and
    ``decode(encode(text)) == text`` for any text; nothing is ever unknown. Ids, as in Hugging
    Face's byte-level BPE: first the special tokens (0, 1, ...), then the 256 bytes in GPT-2's
    order (:data:`GPT2_BYTE_ORDER`, printable bytes first), then the merged tokens in the order
    learned. Trained on the same text with the same settings, this tokenizer learns the same
    merges as :func:`train_hf_bpe` and gives the same ids.

    Args:
        merges: ``(left, right)`` pairs of ``bytes`` in training order, as from ``train``;
            each part must be a byte or the result of an earlier merge.
        special_tokens: strings such as ``"<|endoftext|>"`` that get one id each and are
            never split when they appear in a text.
        pretokenize: split text with :func:`pretokenize` first, so merges never cross words
            (GPT-2's choice). ``False`` treats each text as one sequence: slow, for small demos.
        merge_counts: optional pair counts seen when each merge was learned (for plots).
    """

    def __init__(
        self,
        merges: Sequence[tuple[bytes, bytes]] = (),
        *,
        special_tokens: Sequence[str] = (),
        pretokenize: bool = True,
        merge_counts: Sequence[int] | None = None,
    ) -> None:
        merges = _check_merges(merges, "BPETokenizer")
        if isinstance(special_tokens, str):
            special_tokens = [special_tokens]
        self._special: dict[str, int] = {}
        for token in special_tokens:
            if not isinstance(token, str) or not token:
                raise TypeError(f"special tokens must be non-empty str, got {token!r}")
            self._special.setdefault(token, len(self._special))
        self._special_by_id = {i: t for t, i in self._special.items()}
        self._special_pattern = (
            re.compile("|".join(re.escape(t) for t in sorted(self._special, key=len, reverse=True)))
            if self._special
            else None
        )
        # _tokens[i] is the bytes of id i; special tokens hold their UTF-8 text.
        self._tokens: list[bytes] = [t.encode("utf-8") for t in self._special]
        self._tokens += [_BYTE_TOKENS[b] for b in GPT2_BYTE_ORDER]
        self._ids: dict[bytes, int] = {
            t: len(self._special) + i for i, t in enumerate(self._tokens[len(self._special) :])
        }
        self._ranks: dict[tuple[bytes, bytes], int] = {}
        self._merges: list[tuple[bytes, bytes]] = []
        for rank, (left, right) in enumerate(merges):
            if not isinstance(left, bytes) or not isinstance(right, bytes):
                raise TypeError(
                    f"merge {rank} must be a pair of bytes, got ({type(left).__name__}, "
                    f"{type(right).__name__})"
                )
            if left not in self._ids or right not in self._ids:
                raise ValueError(
                    f"merge {rank} {(left, right)!r} uses a token that is neither a byte nor made "
                    "by an earlier merge"
                )
            self._ranks.setdefault((left, right), rank)
            self._merges.append((left, right))
            if left + right not in self._ids:
                self._ids[left + right] = len(self._tokens)
                self._tokens.append(left + right)
        self.pretokenize = bool(pretokenize)
        self.merge_counts = list(merge_counts) if merge_counts is not None else None
        self._cache: dict[str, tuple[int, ...]] = {}

    # -- training ---------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        texts: str | Iterable[str],
        vocab_size: int,
        *,
        min_frequency: int = 2,
        special_tokens: Sequence[str] = (),
        pretokenize: bool = True,
    ) -> BPETokenizer:
        """Learn merges on ``texts`` until the vocabulary has ``vocab_size`` tokens.

        Words (pieces of :func:`pretokenize`) are counted once per distinct piece, then pairs of
        tokens are merged greedily by frequency (see :func:`learn_merges`); ties go to the pair
        with the smallest ids, so training is deterministic.

        Args:
            texts: training text(s), a str or a list of str.
            vocab_size: the target size: special tokens + 256 bytes + merged tokens.
            min_frequency: stop early (with a warning) when no pair occurs this often.
            special_tokens: strings that get their own ids and are never learned from.
            pretokenize: see the class docstring.

        Returns:
            a trained :class:`BPETokenizer`.
        """
        texts, special_tokens = _check_bpe_train_args(
            texts, vocab_size, min_frequency, special_tokens
        )
        specials = cls(special_tokens=special_tokens)._special_pattern
        word_freqs: Counter = Counter()
        for text in texts:
            for chunk, is_special in _split_special(text, specials):
                if is_special:
                    continue
                pieces = PRETOKENIZE_PATTERN.findall(chunk) if pretokenize else [chunk]
                word_freqs.update(pieces)
        byte_words = {
            tuple(_BYTE_TOKENS[b] for b in _to_bytes(w)): c for w, c in word_freqs.items()
        }
        alphabet = [_BYTE_TOKENS[b] for b in GPT2_BYTE_ORDER]
        target_new = vocab_size - 256 - len(special_tokens)  # merged tokens still to make
        merges, counts, made = [], [], set(_BYTE_TOKENS)
        if target_new > 0:
            for pair, count in _learn_merges_fast(byte_words, min_frequency, alphabet):
                merges.append(pair)
                counts.append(count)
                made.add(pair[0] + pair[1])
                if len(made) - 256 == target_new:
                    break
        if len(made) - 256 < target_new:
            warnings.warn(
                f"BPETokenizer.train stopped at vocab_size {len(made) + len(special_tokens)} "
                f"instead of {vocab_size}: no pair of tokens occurs {min_frequency} or more times "
                "any more (the corpus is too small for that vocabulary)",
                stacklevel=2,
            )
        return cls(
            merges, special_tokens=special_tokens, pretokenize=pretokenize, merge_counts=counts
        )

    def truncate(self, vocab_size: int) -> BPETokenizer:
        """The same tokenizer with only its first merges, up to ``vocab_size`` tokens.

        BPE vocabularies are nested: training to a smaller size would learn exactly these first
        merges, so this is how to compare vocabulary sizes without retraining.
        """
        minimum = 256 + len(self._special)
        _check_int(vocab_size, "vocab_size", "BPETokenizer.truncate", minimum)
        if vocab_size > self.vocab_size:
            raise ValueError(
                f"cannot truncate to vocab_size {vocab_size}: this tokenizer has only "
                f"{self.vocab_size} tokens"
            )
        target_new = vocab_size - minimum
        made: set[bytes] = set()
        keep = 0
        for left, right in self._merges:
            if len(made) == target_new:
                break
            made.add(left + right)
            keep += 1
        counts = self.merge_counts[:keep] if self.merge_counts is not None else None
        return type(self)(
            self._merges[:keep],
            special_tokens=list(self._special),
            pretokenize=self.pretokenize,
            merge_counts=counts,
        )

    # -- the interface ----------------------------------------------------------------------

    @property
    def merges(self) -> list[tuple[bytes, bytes]]:
        """The learned merges, ``(left, right)`` pairs of bytes in training order (a copy)."""
        return list(self._merges)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token strings and their ids (a copy)."""
        return dict(self._special)

    @property
    def vocab_size(self) -> int:
        """Special tokens + 256 bytes + merged tokens."""
        return len(self._tokens)

    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        cached = self._cache.get(piece)
        if cached is None:
            symbols = _bpe_with_ranks(tuple(_BYTE_TOKENS[b] for b in _to_bytes(piece)), self._ranks)
            ids = self._ids
            cached = tuple(ids[s] for s in symbols)
            if len(self._cache) < 200_000:
                self._cache[piece] = cached
        return cached

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``: a list of ints in ``[0, vocab_size)``; any str works."""
        _check_text(text, "encode")
        out: list[int] = []
        for chunk, is_special in _split_special(text, self._special_pattern):
            if is_special:
                out.append(self._special[chunk])
                continue
            pieces = PRETOKENIZE_PATTERN.findall(chunk) if self.pretokenize else [chunk]
            for piece in pieces:
                out.extend(self._encode_piece(piece))
        return out

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes a token stands for (a special token: its UTF-8 string)."""
        return self._tokens[_as_id_list([token_id], self.vocab_size)[0]]

    def id_to_token(self, token_id: int) -> str:
        """A readable form of a token: its text, with ``\\xNN`` for bytes that are part of a
        multi-byte character (a token can hold half a character)."""
        return self.token_bytes(token_id).decode("utf-8", errors="backslashreplace")

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (a list or 1-D tensor of ints).

        Bytes are joined, then read as UTF-8; an invalid byte sequence (possible only for ids
        that did not come from ``encode``, e.g. sampled by a model) becomes U+FFFD.
        """
        tokens = self._tokens
        data = b"".join(tokens[i] for i in _as_id_list(ids, self.vocab_size))
        return data.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------------
# Hugging Face tokenizers
# --------------------------------------------------------------------------------------------


def hf_bpe_merges(tokenizer: Any) -> list[tuple[bytes, bytes]]:
    """The merges of a Hugging Face byte-level BPE, as ``(left, right)`` pairs of bytes.

    Args:
        tokenizer: a ``transformers`` fast tokenizer or a ``tokenizers.Tokenizer`` whose model
            is a byte-level BPE (e.g. from :func:`train_hf_bpe`).

    Returns:
        list of pairs of bytes, in the order learned, comparable with ``BPETokenizer.merges``.
    """
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if not hasattr(backend, "to_str"):
        raise TypeError(
            "hf_bpe_merges expects a transformers fast tokenizer or a tokenizers.Tokenizer, got "
            f"{type(tokenizer).__name__}"
        )
    model = json.loads(backend.to_str())["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"hf_bpe_merges expects a BPE model, got a {model.get('type')} model")
    decoder = {c: b for b, c in bytes_to_unicode().items()}

    def to_bytes(token: str) -> bytes:
        try:
            return bytes(decoder[c] for c in token)
        except KeyError:
            raise ValueError(
                f"token {token!r} is not byte-level (not GPT-2's byte alphabet)"
            ) from None

    out = []
    for merge in model["merges"]:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        out.append((to_bytes(left), to_bytes(right)))
    return out


def _require_hf() -> None:
    try:
        import tokenizers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as error:  # pragma: no cover - both are in requirements.txt
        raise ImportError(
            "this function needs the Hugging Face packages `tokenizers` and `transformers`: "
            "run `pip install -r requirements.txt` in the course folder"
        ) from error


def _check_hf_train_args(
    caller: str, texts: Any, vocab_size: Any, min_frequency: Any, minimum: int, why: str
) -> list[str]:
    """Check the arguments of :func:`train_hf_bpe` or :func:`train_hf_wordpiece`; return texts."""
    texts = _check_texts(texts, caller)
    _check_int(vocab_size, "vocab_size", caller, minimum, why)
    _check_int(min_frequency, "min_frequency", caller, 0)
    return texts


def _check_hf_bpe_special_tokens(special_tokens: Any) -> list[str]:
    special_tokens = list(special_tokens)
    if special_tokens[:2] != [END_OF_TEXT, PAD_TOKEN]:
        raise ValueError(
            f"special_tokens must start with {END_OF_TEXT!r} and {PAD_TOKEN!r} (eos and pad), "
            f"got {special_tokens!r}"
        )
    return special_tokens


def _as_backend(tokenizer: Any, caller: str) -> Any:
    """A ``tokenizers.Tokenizer`` from itself, a tokenizer.json path, or a transformers tokenizer."""
    _require_hf()
    from tokenizers import Tokenizer as HFTokenizer

    if isinstance(tokenizer, HFTokenizer):
        return tokenizer
    if hasattr(tokenizer, "backend_tokenizer"):
        return tokenizer.backend_tokenizer
    if isinstance(tokenizer, (str, os.PathLike)):
        path = pathlib.Path(tokenizer)
        if not path.is_file():
            raise FileNotFoundError(f"{caller}: no tokenizer file at {path}")
        return HFTokenizer.from_file(str(path))
    raise TypeError(
        f"{caller} expects a tokenizers.Tokenizer, a transformers fast tokenizer or the path of a "
        f"tokenizer.json; got {type(tokenizer).__name__}"
    )


def wrap_hf_bpe(tokenizer: Any) -> Any:
    """Wrap a byte-level BPE (as trained by :func:`train_hf_bpe`) for ``transformers``.

    Use it to load a saved course GPT tokenizer: ``wrap_hf_bpe("tokenizer.json")``.

    Args:
        tokenizer: a ``tokenizers.Tokenizer``, a ``transformers`` fast tokenizer, or the path of
            a ``tokenizer.json`` holding ``<|endoftext|>`` and ``<|pad|>``.

    Returns:
        ``transformers.PreTrainedTokenizerFast`` with bos/eos ``<|endoftext|>``, pad ``<|pad|>``,
        no unknown token, and model inputs ``input_ids`` and ``attention_mask``.
    """
    from transformers import PreTrainedTokenizerFast

    backend = _as_backend(tokenizer, "wrap_hf_bpe")
    for token in (END_OF_TEXT, PAD_TOKEN):
        if backend.token_to_id(token) is None:
            raise ValueError(
                f"wrap_hf_bpe expects a tokenizer with the token {token!r}; it has none"
            )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        unk_token=None,
        pad_token=PAD_TOKEN,
        model_input_names=["input_ids", "attention_mask"],
        clean_up_tokenization_spaces=False,
    )


def wrap_hf_wordpiece(tokenizer: Any) -> Any:
    """Wrap a BERT style WordPiece (as trained by :func:`train_hf_wordpiece`) for ``transformers``.

    Args:
        tokenizer: a ``tokenizers.Tokenizer``, a ``transformers`` fast tokenizer, or the path of
            a ``tokenizer.json`` holding ``[PAD] [UNK] [CLS] [SEP] [MASK]``.

    Returns:
        ``transformers.PreTrainedTokenizerFast`` with the five BERT special tokens (``[MASK]``
        absorbs the space before it, as in BERT) and model inputs ``input_ids``,
        ``token_type_ids`` and ``attention_mask``.
    """
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    backend = _as_backend(tokenizer, "wrap_hf_wordpiece")
    for token in BERT_SPECIAL_TOKENS:
        if backend.token_to_id(token) is None:
            raise ValueError(
                f"wrap_hf_wordpiece expects a tokenizer with the token {token!r}; it has none"
            )
    pad, unk, cls, sep, mask = BERT_SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=pad,
        unk_token=unk,
        cls_token=cls,
        sep_token=sep,
        mask_token=AddedToken(mask, lstrip=True, special=True, normalized=False),
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        clean_up_tokenization_spaces=True,
    )


def train_hf_bpe(
    texts: str | Iterable[str],
    vocab_size: int,
    *,
    min_frequency: int = 2,
    special_tokens: Sequence[str] = (END_OF_TEXT, PAD_TOKEN),
) -> Any:
    """Train a GPT-2 style byte-level BPE with Hugging Face ``tokenizers``, wrapped for ``transformers``.

    The pre-tokenizer and decoder are ``ByteLevel`` (GPT-2's regex; every byte is in the base
    alphabet, so nothing is unknown); ``<|endoftext|>`` is the bos and eos token (put it between
    documents), ``<|pad|>`` the pad token. No token is added automatically.

    Args:
        texts: training text(s), a str or a list of str.
        vocab_size: total tokens: special tokens + 256 bytes + merges.
        min_frequency: pairs seen fewer times are never merged.
        special_tokens: the first is used as bos/eos, the second as pad (ids 0, 1, ...).

    Returns:
        ``transformers.PreTrainedTokenizerFast`` (in transformers 5 an alias of
        ``TokenizersBackend``): ``tok(text)["input_ids"]``, ``tok.decode(ids)``,
        ``tok.pad_token_id``, ``tok.eos_token_id``; ``len(tok) == vocab_size``.
    """
    _require_hf()
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, processors, trainers

    special_tokens = _check_hf_bpe_special_tokens(special_tokens)
    texts = _check_hf_train_args(
        "train_hf_bpe", texts, vocab_size, min_frequency,
        256 + len(special_tokens), f"256 bytes + {len(special_tokens)} special tokens",
    )
    backend = HFTokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return wrap_hf_bpe(backend)


def train_hf_wordpiece(
    texts: str | Iterable[str],
    vocab_size: int,
    *,
    min_frequency: int = 2,
    lowercase: bool = True,
) -> Any:
    """Train a BERT style WordPiece tokenizer with Hugging Face ``tokenizers``, wrapped for ``transformers``.

    Lower-cases and strips accents (like ``bert-base-uncased``), splits on whitespace and
    punctuation, marks word-inner pieces with ``##``, and adds ``[CLS] A [SEP]`` for one text and
    ``[CLS] A [SEP] B [SEP]`` for a pair, with ``token_type_ids`` 0 for A and 1 for B.
    Special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]`` get ids 0-4.

    Args:
        texts: training text(s), a str or a list of str.
        vocab_size: total tokens, the five special tokens included.
        min_frequency: pieces seen fewer times are not added.
        lowercase: lower-case and strip accents (uncased BERT); ``False`` keeps case.

    Returns:
        ``transformers.PreTrainedTokenizerFast`` that works as a BERT tokenizer:
        ``tok(a, b)`` gives ``input_ids``, ``token_type_ids`` and ``attention_mask``.
    """
    _require_hf()
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

    texts = _check_hf_train_args(
        "train_hf_wordpiece", texts, vocab_size, min_frequency,
        2 * len(BERT_SPECIAL_TOKENS), "the 5 special tokens + some pieces",
    )
    pad, unk, cls, sep, mask = BERT_SPECIAL_TOKENS
    backend = HFTokenizer(models.WordPiece(unk_token=unk, max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    # HF's trainer gives the "##x" pieces their ids in hash-map order, which changes from one
    # process to the next, and those ids break ties between equally frequent pairs: the same
    # text can give different vocabularies (huggingface/tokenizers issue #1794). Registering
    # every "##x" up front, sorted, as extra special tokens fixes their ids, so training is
    # deterministic; they are removed from the special (added) tokens afterwards.
    continuation: set[str] = set()
    for text in texts:
        for word, _ in backend.pre_tokenizer.pre_tokenize_str(
            backend.normalizer.normalize_str(text)
        ):
            continuation.update(word[1:])
    fixed = [f"##{c}" for c in sorted(continuation)]
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,  # the fixed "##x" count towards it, as they would anyway
        min_frequency=min_frequency,
        special_tokens=list(BERT_SPECIAL_TOKENS) + fixed,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer, length=len(texts))
    state = json.loads(backend.to_str())
    state["added_tokens"] = [
        t for t in state["added_tokens"] if t["content"] in BERT_SPECIAL_TOKENS
    ]
    backend = HFTokenizer.from_str(json.dumps(state))
    cls_id, sep_id = backend.token_to_id(cls), backend.token_to_id(sep)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, cls_id), (sep, sep_id)],
    )
    return wrap_hf_wordpiece(backend)


# --------------------------------------------------------------------------------------------
# The course tokenizers, trained once and cached
# --------------------------------------------------------------------------------------------


def course_training_texts() -> list[str]:
    """The texts the course tokenizers learn from: each article of the wiki training split.

    Returns:
        list of str, one per training document (paragraphs separated by blank lines), in the
        corpus's fixed order.
    """
    from course_lib import data

    return [document.text for document in data.load_corpus("wiki").train]


def _course_tokenizer(kind: str, vocab_size: int, cache_dir: Any, refresh: bool) -> Any:
    from course_lib import data

    _require_hf()
    from tokenizers import Tokenizer as HFTokenizer

    texts = course_training_texts()
    digest = hashlib.sha1()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    key = f"{kind}|{vocab_size}|{TOKENIZER_VERSION}|{digest.hexdigest()}"
    name = f"tokenizer-{kind}-{vocab_size}-v{TOKENIZER_VERSION}-"
    name += hashlib.sha1(key.encode()).hexdigest()[:12] + ".json"
    folder = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else data.cache_dir()
    path = folder / name
    wrap = wrap_hf_bpe if kind == "bpe" else wrap_hf_wordpiece
    if path.is_file() and not refresh:
        try:
            return wrap(HFTokenizer.from_file(str(path)))
        except Exception:  # a corrupt or foreign cache file: train again and overwrite it
            pass
    if kind == "bpe":
        tokenizer = train_hf_bpe(texts, vocab_size)
    else:
        tokenizer = train_hf_wordpiece(texts, vocab_size)
    state = tokenizer.backend_tokenizer.to_str()
    try:
        atomic_write(path, lambda tmp: tmp.write_text(state, encoding="utf-8"))
    except OSError as error:
        warnings.warn(
            f"could not cache the course tokenizer in {folder} ({error}); it will be trained "
            "again next time. Set COURSE_CACHE_DIR to a writable folder to fix this.",
            stacklevel=3,
        )
    return tokenizer


def course_bpe_tokenizer(
    vocab_size: int = DEFAULT_BPE_VOCAB_SIZE, *, cache_dir: Any = None, refresh: bool = False
) -> Any:
    """The course's GPT tokenizer: :func:`train_hf_bpe` on the wiki training split, cached.

    The first call trains (a few seconds) and writes the tokenizer JSON to the cache folder
    (``course_lib.data.cache_dir()``); later calls load it. The cache key holds the vocab size,
    :data:`TOKENIZER_VERSION` and a hash of the training text, so every notebook gets the same
    tokenizer.

    Args:
        vocab_size: total tokens (``<|endoftext|>`` and ``<|pad|>`` included).
        cache_dir: folder for the cached JSON; ``None``: ``course_lib.data.cache_dir()``.
        refresh: train again even if a cached tokenizer exists.

    Returns:
        ``transformers.PreTrainedTokenizerFast`` (eos/bos ``<|endoftext|>``, pad ``<|pad|>``).
    """
    _check_int(
        vocab_size, "vocab_size", "course_bpe_tokenizer", 258, "256 bytes + 2 special tokens"
    )
    return _course_tokenizer("bpe", vocab_size, cache_dir, refresh)


def course_wordpiece_tokenizer(
    vocab_size: int = DEFAULT_WORDPIECE_VOCAB_SIZE, *, cache_dir: Any = None, refresh: bool = False
) -> Any:
    """The course's BERT tokenizer: :func:`train_hf_wordpiece` on the wiki training split, cached.

    Same caching as :func:`course_bpe_tokenizer`.

    Args:
        vocab_size: total tokens (``[PAD] [UNK] [CLS] [SEP] [MASK]`` included).
        cache_dir: folder for the cached JSON; ``None``: ``course_lib.data.cache_dir()``.
        refresh: train again even if a cached tokenizer exists.

    Returns:
        ``transformers.PreTrainedTokenizerFast`` that works as an uncased BERT tokenizer.
    """
    _check_int(
        vocab_size, "vocab_size", "course_wordpiece_tokenizer", 10,
        "the 5 special tokens + some pieces",
    )
    return _course_tokenizer("wordpiece", vocab_size, cache_dir, refresh)
