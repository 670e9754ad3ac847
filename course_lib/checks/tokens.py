"""Checkers for notebook 02 (text and tokens): the steps of byte-pair encoding and padding a batch.

Each checker runs the learner's function on small cases chosen so that every usual mistake gives
a different answer, compares with ``course_lib.tokenizers`` (or a few lines of reference code),
and names the mistake it sees.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

import torch

from course_lib import tokenizers as reference
from course_lib.checks.core import Mistake, Verdict, run_checker

__all__ = ["count_pairs", "merge_pair", "bpe_encode_word", "pad_batch"]

# Sennrich et al.'s example: word -> count, each word a tuple of characters.
TOY_WORDS = {
    tuple("low"): 5,
    tuple("lower"): 2,
    tuple("newest"): 6,
    tuple("widest"): 3,
}


# ---- count_pairs ----------------------------------------------------------------------------


def _nonzero(counts: Mapping) -> dict:
    return {k: v for k, v in counts.items() if v != 0}


def _diagnose_pairs(word_freqs: dict, got: dict, expected: dict) -> str:
    """The hint for a wrong pair count on ``word_freqs``."""
    extra = [p for p in got if p not in expected]
    if extra:
        words = list(word_freqs)
        across = {(a[-1], b[0]) for a in words for b in words if a and b}
        if any(p in across for p in extra):
            return (
                f"your counts hold the pair {extra[0]!r}, which only appears across two words: "
                "count pairs inside each word only (a word's last symbol and the next word's "
                "first are not neighbours)."
            )
        return f"your counts hold the pair {extra[0]!r}, which occurs in no word."
    missing = [p for p in expected if p not in got]
    if missing:
        ends = {(w[-2], w[-1]) for w in word_freqs if len(w) > 1}
        starts = {(w[0], w[1]) for w in word_freqs if len(w) > 1}
        where = "last" if missing[0] in ends else "first" if missing[0] in starts else "a"
        return (
            f"the pair {missing[0]!r} is missing: a word of n symbols has n - 1 pairs, "
            f"{where} pair included; zip(word, word[1:]) gives them all."
        )
    unweighted: Counter = Counter()
    per_word_once: Counter = Counter()
    for word, freq in word_freqs.items():
        for pair in zip(word, word[1:]):
            unweighted[pair] += 1
        for pair in set(zip(word, word[1:])):
            per_word_once[pair] += freq
    if got == _nonzero(unweighted) and got != expected:
        return (
            "each word counts once, whatever its frequency: add the word's count "
            "(word_freqs[word]) for every pair in it, not 1."
        )
    if got == _nonzero(per_word_once):
        return (
            "a pair that occurs twice in one word was counted once: count every position, "
            "so ('a', 'a', 'a') holds the pair ('a', 'a') twice."
        )
    pair = next(p for p in expected if got.get(p) != expected[p])
    return f"the count of {pair!r} should be {expected[pair]}, your function gives {got.get(pair)}."


def count_pairs(fn: Callable[[dict], Mapping]) -> Verdict:
    """Check ``fn(word_freqs) -> Counter``: adjacent pairs inside words, weighted by frequency."""

    def check() -> str:
        cases = [
            dict(TOY_WORDS),
            {tuple("aaa"): 1, tuple("ab"): 2},
            {tuple("ab"): 1, tuple("cd"): 1},
            {tuple("hug"): 10, tuple("pug"): 5, tuple("hugs"): 5, ("x",): 7, (): 2},
            {(b"t", b"h", b"e"): 3, (b" ", b"t", b"h", b"e"): 4},
        ]
        for word_freqs in cases:
            got = fn({w: f for w, f in word_freqs.items()})
            if not isinstance(got, Mapping):
                raise Mistake(
                    f"return a dict or Counter mapping (left, right) to a count, got "
                    f"{type(got).__name__}."
                )
            for key in got:
                if not (isinstance(key, tuple) and len(key) == 2):
                    raise Mistake(
                        f"the keys must be pairs of symbols like ('l', 'o'), got the key {key!r}: "
                        "keep the two symbols apart in a tuple."
                    )
            got = _nonzero(got)
            expected = _nonzero(reference.count_pairs(word_freqs))
            if got != expected:
                raise Mistake(_diagnose_pairs(word_freqs, got, expected))
        return "every adjacent pair inside each word, weighted by the word's frequency."

    return run_checker("count_pairs", check)


# ---- merge_pair -----------------------------------------------------------------------------


def _as_tuple(value, what: str) -> tuple:
    if isinstance(value, list):
        raise Mistake(
            f"{what} returned a list; return a tuple: words are dictionary keys, and a list "
            "cannot be one (tuple(symbols) converts)."
        )
    if not isinstance(value, tuple):
        raise Mistake(f"{what} should return a tuple of symbols, got {type(value).__name__}.")
    return value


def merge_pair(fn: Callable[[tuple, tuple, object], tuple]) -> Verdict:
    """Check ``fn(word, pair, new_token) -> tuple``: every non-overlapping occurrence, left to right."""

    def run(word, pair, new_token):
        return _as_tuple(fn(tuple(word), tuple(pair), new_token), "merge_pair")

    def check() -> str:
        got = run(tuple("lower"), ("l", "o"), "lo")
        if got == ("lo", "w", "e"):
            raise Mistake(
                "merging ('l', 'o') in ('l','o','w','e','r') gave ('lo', 'w', 'e'): the last "
                "symbol went missing. After the loop, keep the final symbol when it was not merged."
            )
        if got != ("lo", "w", "e", "r"):
            if got == tuple("lower"):
                raise Mistake("nothing was merged: replace each ('l', 'o') by new_token.")
            raise Mistake(
                f"merging ('l', 'o') in {tuple('lower')} should give ('lo', 'w', 'e', 'r'), got {got}."
            )
        got = run(tuple("low"), ("x", "y"), "xy")
        if got != tuple("low"):
            raise Mistake(f"a word without the pair must come back unchanged, got {got}.")
        got = run(tuple("low"), ("o", "w"), "ow")
        if got != ("l", "ow"):
            raise Mistake(
                f"merging the pair at the end of the word, ('o', 'w') in ('l', 'o', 'w'), "
                f"gave {got} instead of ('l', 'ow'): check the last position."
            )
        got = run(("x", "ab", "c"), ("b", "c"), "bc")
        if got != ("x", "ab", "c"):
            raise Mistake(
                f"('x', 'ab', 'c') has no pair ('b', 'c') but became {got}: compare whole symbols, "
                "not the joined text (replacing inside ' '.join(word) matches across symbols)."
            )
        got = run(tuple("abcab"), ("a", "b"), "ab")
        if got != ("ab", "c", "ab"):
            if got == ("ab", "c", "a", "b"):
                raise Mistake("only the first occurrence was merged: merge every occurrence.")
            raise Mistake(
                f"merging ('a', 'b') in ('a','b','c','a','b') should give ('ab', 'c', 'ab'), got {got}."
            )
        got = run(tuple("aaa"), ("a", "a"), "aa")
        if got != ("aa", "a"):
            if got == ("a", "aa"):
                raise Mistake(
                    "('a','a','a') gave ('a', 'aa'): scan from the left, so the first two merge "
                    "and the third stays: ('aa', 'a')."
                )
            if got == ("aa", "aa"):
                raise Mistake(
                    "('a','a','a') gave ('aa', 'aa'): the middle 'a' was used twice. After a merge "
                    "skip both symbols (i += 2): occurrences do not overlap."
                )
            raise Mistake(
                f"('a','a','a') with the pair ('a','a') should give ('aa', 'a'), got {got}."
            )
        got = run(tuple("aaaa"), ("a", "a"), "aa")
        if got != ("aa", "aa"):
            raise Mistake(
                f"('a','a','a','a') with the pair ('a','a') should give ('aa', 'aa'), got {got}."
            )
        got = run(tuple("lower"), ("l", "o"), "<LO>")
        if got != ("<LO>", "w", "e", "r"):
            raise Mistake(
                f"put new_token in place of the pair (it need not be left + right); got {got}."
            )
        got = run((b" ", b"t", b"h", b"e"), (b"t", b"h"), b"th")
        if got != (b" ", b"th", b"e"):
            raise Mistake(
                f"symbols can be bytes too (b'th'); got {got} for (b' ', b't', b'h', b'e')."
            )
        word = tuple("hello")
        got = run(word, ("l", "l"), "ll")
        if got != ("h", "e", "ll", "o"):
            raise Mistake(
                f"merging ('l', 'l') in {word} should give ('h', 'e', 'll', 'o'), got {got}."
            )
        return "every occurrence replaced, left to right, without overlaps, whole symbols only."

    return run_checker("merge_pair", check)


# ---- bpe_encode_word ------------------------------------------------------------------------


def bpe_encode_word(fn: Callable[[tuple, list], tuple]) -> Verdict:
    """Check ``fn(word, merges) -> tuple``: apply the learned merges in the order learned."""

    def run(word, merges):
        got = fn(tuple(word), [tuple(m) for m in merges])
        if isinstance(got, str):
            raise Mistake(
                f"return the tokens (a tuple such as ('low', 'est')), not one string {got!r}."
            )
        if isinstance(got, list):
            got = tuple(got)
        if not isinstance(got, tuple):
            raise Mistake(f"return a tuple of tokens, got {type(got).__name__}.")
        if "".join(map(str, got)) != "".join(word):
            raise Mistake(
                f"the tokens {got} do not spell the word {''.join(word)!r}: merging never adds "
                "or drops characters."
            )
        return got

    def check() -> str:
        if run(tuple("cat"), []) != tuple("cat"):
            raise Mistake("with no merges, every character stays a token of its own.")
        got = run(tuple("est"), [("e", "s"), ("s", "t"), ("es", "t")])
        if got != ("est",):
            if got == ("e", "st"):
                raise Mistake(
                    "'est' gave ('e', 'st'): the merges were applied in the wrong order. Apply "
                    "them in the order learned: ('e','s') comes first, so 'es' forms, then 'est'."
                )
            if got == ("es", "t"):
                raise Mistake(
                    "the word stopped at ('es', 't'): after a merge, new pairs appear (('es','t')); "
                    "keep merging until no learned pair is left."
                )
            raise Mistake(f"'est' should give ('est',) with these merges, got {got}.")
        got = run(tuple("abab"), [("a", "b")])
        if got != ("ab", "ab"):
            raise Mistake(
                f"'abab' with the merge ('a','b') gave {got}: a merge applies to every "
                "occurrence in the word, giving ('ab', 'ab')."
            )
        got = run(tuple("abc"), [("b", "c"), ("a", "b")])
        if got != ("a", "bc"):
            if got == ("ab", "c"):
                raise Mistake(
                    "'abc' gave ('ab', 'c'): the merges were applied in the wrong order. The merge "
                    "learned first wins wherever it sits in the word: ('b','c') comes before "
                    "('a','b') in the list, so the answer is ('a', 'bc'). Merging the leftmost "
                    "known pair first, or sorting the merges, gives ('ab', 'c')."
                )
            raise Mistake(
                f"'abc' with merges [('b','c'), ('a','b')] should give ('a', 'bc'), got {got}."
            )
        merges = reference.learn_merges(TOY_WORDS, 10)
        for word in ("lowest", "newer", "wider", "slow", "x"):
            expected = reference.bpe_encode_word(tuple(word), merges)
            got = run(tuple(word), merges)
            if got != expected:
                raise Mistake(
                    f"with the merges learned on the toy corpus, {word!r} should become "
                    f"{expected}, your function gives {got}."
                )
        if run((), merges) != ():
            raise Mistake("an empty word has no tokens: return ().")
        return "merges applied in the order learned, every occurrence, until none applies."

    return run_checker("bpe_encode_word", check)


# ---- pad_batch ------------------------------------------------------------------------------


def _reference_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = max((len(s) for s in sequences), default=0)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[row, : len(sequence)] = 1
    return ids, mask


def pad_batch(fn: Callable[[list, int], tuple]) -> Verdict:
    """Check ``fn(sequences, pad_id) -> (input_ids, attention_mask)``: right padding to the longest."""

    def run(sequences, pad_id):
        out = fn([list(s) for s in sequences], pad_id)
        if not isinstance(out, tuple) or len(out) != 2:
            raise Mistake("return two tensors: (input_ids, attention_mask).")
        ids, mask = out
        for value, name in ((ids, "input_ids"), (mask, "attention_mask")):
            if not isinstance(value, torch.Tensor):
                raise Mistake(f"{name} should be a torch.Tensor, got {type(value).__name__}.")
        return ids, mask

    def check() -> str:
        cases = [
            ([[5, 6, 7], [8], [9, 10]], 0),
            ([[11, 12], [13, 14, 15, 16]], 3),
            ([[2, 1, 2], [1]], 1),  # id 1 is also a real token here (as when eos doubles as pad)
            ([[4, 5], []], 0),
        ]
        for sequences, pad_id in cases:
            ids, mask = run(sequences, pad_id)
            want_ids, want_mask = _reference_pad(sequences, pad_id)
            if ids.shape != want_ids.shape or mask.shape != want_mask.shape:
                raise Mistake(
                    f"for {len(sequences)} sequences, the longest of length {want_ids.shape[1]}, "
                    f"both tensors should have shape {tuple(want_ids.shape)} (batch, longest); got "
                    f"{tuple(ids.shape)} and {tuple(mask.shape)}."
                )
            if ids.is_floating_point():
                raise Mistake(
                    f"input_ids has dtype {ids.dtype}; token ids are integers (torch.long), "
                    "as nn.Embedding needs."
                )
            lengths = [len(s) for s in sequences]
            left_ids = torch.full_like(want_ids, pad_id)
            left_mask = torch.zeros_like(want_mask)
            for row, sequence in enumerate(sequences):
                if sequence:
                    left_ids[row, -len(sequence) :] = torch.tensor(sequence)
                    left_mask[row, -len(sequence) :] = 1
            if torch.equal(ids, left_ids) and not torch.equal(ids, want_ids):
                raise Mistake(
                    "the padding went on the left; put the tokens first and the pad ids after "
                    "them (right padding), as BERT and this course do."
                )
            if not torch.equal(ids, want_ids):
                real = want_mask.bool()
                if torch.equal(ids[real], want_ids[real]):
                    raise Mistake(
                        f"the pad positions hold {ids[~real].unique().tolist()} instead of "
                        f"pad_id={pad_id}: fill them with pad_id, not a fixed number."
                    )
                raise Mistake(
                    f"input_ids for {sequences} should be {want_ids.tolist()}, got {ids.tolist()}."
                )
            mask_values = mask.long()
            if torch.equal(mask_values, 1 - want_mask):
                raise Mistake(
                    "the mask is the wrong way round: 1 marks a real token (attend to it), "
                    "0 marks padding."
                )
            if torch.equal(mask_values, (want_ids != pad_id).long()) and not torch.equal(
                mask_values, want_mask
            ):
                raise Mistake(
                    f"in {sequences} the real token {pad_id} was masked out: build the mask from "
                    "each sequence's length, not from the id values (a pad id can also be a real "
                    "token, e.g. GPT-2's <|endoftext|>)."
                )
            if not torch.equal(mask_values, want_mask):
                raise Mistake(
                    f"attention_mask for lengths {lengths} should be {want_mask.tolist()}, got "
                    f"{mask_values.tolist()}."
                )
        return "right padding with pad_id to the longest sequence, and a mask of 1s on real tokens."

    return run_checker("pad_batch", check)
