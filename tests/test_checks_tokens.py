"""The notebook-01 checkers accept every right answer and name the mistake in each wrong one."""

import itertools
from collections import Counter, defaultdict

import pytest
import torch

from course_lib import tokenizers as tok
from course_lib.checks import tokens as check


def stub(*args):
    raise NotImplementedError


# ---- count_pairs ----------------------------------------------------------------------------


def count_counter(word_freqs):
    counts = Counter()
    for word, freq in word_freqs.items():
        for pair in zip(word, word[1:]):
            counts[pair] += freq
    return counts


def count_dict_get(word_freqs):
    counts = {}
    for word, freq in word_freqs.items():
        for i in range(len(word) - 1):
            counts[word[i], word[i + 1]] = counts.get((word[i], word[i + 1]), 0) + freq
    return counts


def count_pairwise(word_freqs):
    counts = defaultdict(int)
    for word, freq in word_freqs.items():
        for pair in itertools.pairwise(word):
            counts[pair] += freq
    return dict(counts)


def count_unweighted(word_freqs):
    counts = Counter()
    for word in word_freqs:
        for pair in zip(word, word[1:]):
            counts[pair] += 1
    return counts


def count_once_per_word(word_freqs):
    counts = Counter()
    for word, freq in word_freqs.items():
        for pair in set(zip(word, word[1:])):
            counts[pair] += freq
    return counts


def count_across_words(word_freqs):
    sequence = [s for word, freq in word_freqs.items() for _ in range(freq) for s in word]
    return Counter(zip(sequence, sequence[1:]))


def count_across_words_unique(word_freqs):
    sequence = [s for word in word_freqs for s in word]
    counts = Counter()
    for pair in zip(sequence, sequence[1:]):
        counts[pair] += 1
    return counts


def count_missing_last(word_freqs):
    counts = Counter()
    for word, freq in word_freqs.items():
        for i in range(len(word) - 2):
            counts[word[i], word[i + 1]] += freq
    return counts


def count_string_keys(word_freqs):
    counts = Counter()
    for word, freq in word_freqs.items():
        for a, b in zip(word, word[1:]):
            counts[a + b] += freq
    return counts


RIGHT_COUNT = [tok.count_pairs, count_counter, count_dict_get, count_pairwise]
WRONG_COUNT = [
    (count_unweighted, "frequency"),
    (count_once_per_word, "twice"),
    (count_across_words, "across two words"),
    (count_across_words_unique, "across two words"),
    (count_missing_last, "last pair"),
    (count_string_keys, "pairs of symbols"),
    (lambda wf: list(count_counter(wf).items()), "dict or Counter"),
    (lambda wf: Counter({p: c + 1 for p, c in count_counter(wf).items()}), "should be"),
]


@pytest.mark.parametrize("fn", RIGHT_COUNT)
def test_count_pairs_accepts_right_answers(fn):
    verdict = check.count_pairs(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_COUNT)
def test_count_pairs_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.count_pairs(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- merge_pair -----------------------------------------------------------------------------


def merge_while(word, pair, new_token):
    out, i = [], 0
    while i < len(word):
        if i < len(word) - 1 and (word[i], word[i + 1]) == tuple(pair):
            out.append(new_token)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def merge_skip_flag(word, pair, new_token):
    out, skip = [], False
    for i, symbol in enumerate(word):
        if skip:
            skip = False
            continue
        if i + 1 < len(word) and symbol == pair[0] and word[i + 1] == pair[1]:
            out.append(new_token)
            skip = True
        else:
            out.append(symbol)
    return tuple(out)


def merge_list(word, pair, new_token):
    return list(merge_while(word, pair, new_token))


def merge_string_replace(word, pair, new_token):
    return tuple(" ".join(word).replace(" ".join(pair), "".join(pair)).split())


def merge_first_only(word, pair, new_token):
    for i in range(len(word) - 1):
        if (word[i], word[i + 1]) == tuple(pair):
            return word[:i] + (new_token,) + word[i + 2 :]
    return tuple(word)


def merge_right_to_left(word, pair, new_token):
    return tuple(reversed(merge_while(tuple(reversed(word)), (pair[1], pair[0]), new_token)))


def merge_overlapping(word, pair, new_token):
    out = []
    for i in range(len(word) - 1):
        if (word[i], word[i + 1]) == tuple(pair):
            out.append(new_token)
        elif not (i > 0 and (word[i - 1], word[i]) == tuple(pair)):
            out.append(word[i])
    if not (len(word) > 1 and (word[-2], word[-1]) == tuple(pair)):
        out.append(word[-1])
    return tuple(out)


def merge_drops_last(word, pair, new_token):
    out, i = [], 0
    while i < len(word) - 1:
        if (word[i], word[i + 1]) == tuple(pair):
            out.append(new_token)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def merge_concatenates(word, pair, new_token):
    return merge_while(word, pair, pair[0] + pair[1])


RIGHT_MERGE = [tok.merge_pair, merge_while, merge_skip_flag]
WRONG_MERGE = [
    (merge_list, "tuple"),
    (merge_string_replace, "whole symbols"),
    (merge_first_only, "first occurrence"),
    (merge_right_to_left, "scan from the left"),
    (merge_overlapping, "used twice"),
    (merge_drops_last, "last symbol"),
    (merge_concatenates, "new_token"),
    (lambda word, pair, new_token: tuple(word), "nothing was merged"),
]


@pytest.mark.parametrize("fn", RIGHT_MERGE)
def test_merge_pair_accepts_right_answers(fn):
    verdict = check.merge_pair(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_MERGE)
def test_merge_pair_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.merge_pair(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- bpe_encode_word ------------------------------------------------------------------------


def encode_in_order(word, merges):
    word = tuple(word)
    for left, right in merges:
        word = merge_while(word, (left, right), left + right)
    return word


def encode_by_rank(word, merges):
    ranks = {pair: i for i, pair in enumerate(merges)}
    word = list(word)
    while len(word) > 1:
        pairs = [(ranks.get(p, float("inf")), i) for i, p in enumerate(zip(word, word[1:]))]
        rank, i = min(pairs)
        if rank == float("inf"):
            break
        pair = (word[i], word[i + 1])
        word = list(merge_while(tuple(word), pair, pair[0] + pair[1]))
    return word  # a list is accepted too


def encode_reversed(word, merges):
    return encode_in_order(word, list(reversed(merges)))


def encode_leftmost_first(word, merges):
    known = set(merges)
    word = tuple(word)
    changed = True
    while changed:
        changed = False
        for i in range(len(word) - 1):
            if (word[i], word[i + 1]) in known:
                word = word[:i] + (word[i] + word[i + 1],) + word[i + 2 :]
                changed = True
                break
    return word


def encode_single_step(word, merges):
    ranks = {pair: i for i, pair in enumerate(merges)}
    word = tuple(word)
    pairs = [p for p in zip(word, word[1:]) if p in ranks]
    if not pairs:
        return word
    best = min(pairs, key=ranks.get)
    return merge_while(word, best, best[0] + best[1])


def encode_first_occurrence(word, merges):
    word = tuple(word)
    for pair in merges:
        word = merge_first_only(word, pair, pair[0] + pair[1])
    return word


def encode_sorted_merges(word, merges):
    return encode_in_order(word, sorted(merges))


RIGHT_ENCODE = [tok.bpe_encode_word, encode_in_order, encode_by_rank]
WRONG_ENCODE = [
    (encode_reversed, "wrong order"),
    (encode_sorted_merges, "wrong order"),
    (encode_leftmost_first, "leftmost"),
    (encode_single_step, "keep merging"),
    (encode_first_occurrence, "every occurrence"),
    (lambda word, merges: "".join(encode_in_order(word, merges)), "not one string"),
    (lambda word, merges: tuple(word), "should give"),
]


@pytest.mark.parametrize("fn", RIGHT_ENCODE)
def test_bpe_encode_word_accepts_right_answers(fn):
    verdict = check.bpe_encode_word(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_ENCODE)
def test_bpe_encode_word_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.bpe_encode_word(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


def test_bpe_encode_word_rejects_tokens_that_do_not_spell_the_word():
    verdict = check.bpe_encode_word(lambda word, merges: tuple(word)[:-1])
    assert verdict.status == "wrong" and "do not spell" in verdict.message, verdict


# ---- pad_batch ------------------------------------------------------------------------------


def pad_full(sequences, pad_id):
    length = max((len(s) for s in sequences), default=0)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros(len(sequences), length, dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def pad_lists(sequences, pad_id):
    length = max(len(s) for s in sequences)
    ids = [s + [pad_id] * (length - len(s)) for s in sequences]
    mask = [[1] * len(s) + [0] * (length - len(s)) for s in sequences]
    return torch.tensor(ids), torch.tensor(mask)


def pad_bool_mask(sequences, pad_id):
    ids, mask = pad_full(sequences, pad_id)
    return ids, mask.bool()


def pad_rnn_utils(sequences, pad_id):
    tensors = [torch.tensor(s, dtype=torch.long) for s in sequences]
    ids = torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True, padding_value=pad_id)
    lengths = torch.tensor([len(s) for s in sequences])
    mask = (torch.arange(ids.shape[1]) < lengths[:, None]).long()
    return ids, mask


def pad_left(sequences, pad_id):
    length = max(len(s) for s in sequences)
    ids = [[pad_id] * (length - len(s)) + s for s in sequences]
    mask = [[0] * (length - len(s)) + [1] * len(s) for s in sequences]
    return torch.tensor(ids), torch.tensor(mask)


def pad_with_zero(sequences, pad_id):
    return pad_full(sequences, 0)


def pad_inverted_mask(sequences, pad_id):
    ids, mask = pad_full(sequences, pad_id)
    return ids, 1 - mask


def pad_mask_from_values(sequences, pad_id):
    ids, _ = pad_full(sequences, pad_id)
    return ids, (ids != pad_id).long()


def pad_float_ids(sequences, pad_id):
    ids, mask = pad_full(sequences, pad_id)
    return ids.float(), mask


def pad_one_extra(sequences, pad_id):
    length = max(len(s) for s in sequences) + 1
    ids = torch.tensor([s + [pad_id] * (length - len(s)) for s in sequences])
    mask = torch.tensor([[1] * len(s) + [0] * (length - len(s)) for s in sequences])
    return ids, mask


RIGHT_PAD = [pad_full, pad_lists, pad_bool_mask, pad_rnn_utils]
WRONG_PAD = [
    (pad_left, "left"),
    (pad_with_zero, "fill them with pad_id"),
    (pad_inverted_mask, "wrong way round"),
    (pad_mask_from_values, "length"),
    (pad_float_ids, "integers"),
    (pad_one_extra, "shape"),
    (lambda s, p: pad_full(s, p)[0], "two tensors"),
    (lambda s, p: ([list(x) for x in pad_full(s, p)[0]], pad_full(s, p)[1]), "torch.Tensor"),
]


@pytest.mark.parametrize("fn", RIGHT_PAD)
def test_pad_batch_accepts_right_answers(fn):
    verdict = check.pad_batch(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_PAD)
def test_pad_batch_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.pad_batch(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


def test_pad_batch_reference_agrees_with_the_hf_tokenizer():
    """The checker's padding is what a transformers tokenizer does (right padding, 1 = real)."""
    bert = tok.train_hf_wordpiece(["the cat sat on the mat", "a dog ran"] * 20, 40)
    texts = ["the cat sat", "a dog", "the mat sat on the cat"]
    encoded = [bert(t)["input_ids"] for t in texts]
    batch = bert(texts, padding=True, return_tensors="pt")
    ids, mask = check._reference_pad(encoded, bert.pad_token_id)
    assert torch.equal(ids, batch["input_ids"]) and torch.equal(mask, batch["attention_mask"])


# ---- the shared machinery -------------------------------------------------------------------
@pytest.mark.parametrize(
    "checker", [check.count_pairs, check.merge_pair, check.bpe_encode_word, check.pad_batch]
)
def test_a_stub_is_not_done_yet_not_a_crash(checker):
    verdict = checker(stub)
    assert verdict.status == "not done" and not verdict


@pytest.mark.parametrize(
    "checker", [check.count_pairs, check.merge_pair, check.bpe_encode_word, check.pad_batch]
)
def test_learner_exceptions_become_a_short_verdict(checker):
    def broken(*args):
        return args[0].no_such_method()

    verdict = checker(broken)
    assert verdict.status == "wrong" and "AttributeError" in verdict.message
